/* Kernels of the fixed-point search (lib/fixed_point_solver.py), one point at a time:
 *
 * - lm_normal, lm_damped (float64): the linear algebra of a Levenberg-Marquardt step of the
 *   polish, in two parts. lm_normal forms, for every row, A = J - I, the upper triangle of
 *   A^T A and -A^T r; lm_damped adds mu to the diagonal and solves by Cholesky. A rejected
 *   step leaves the point, hence its normal equations, unchanged, so the polish keeps them and
 *   its next try with a larger mu runs only lm_damped. A torch version loops over LAPACK
 *   calls per row and allocates [P, S, S] temporaries; here one row's matrices stay in cache.
 * - adam_points (float32): one iteration of the start phase's Adam, each point with its own
 *   learning rate and gradient clip: the two dozen elementwise torch ops of an iteration in
 *   one pass.
 *
 * Every sum runs in a fixed order (the dot products as four partial sums, the entries of
 * A^T A and A^T r as one sum each, computed several entries at a time), and the build has
 * no FMA contraction and no fast-math, so the numbers do not depend on the vector width.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef int64_t I;

static inline double dot4(const double *restrict x, const double *restrict y, I n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    I k = 0;
    for (; k + 4 <= n; k += 4) {
        a0 += x[k] * y[k];
        a1 += x[k + 1] * y[k + 1];
        a2 += x[k + 2] * y[k + 2];
        a3 += x[k + 3] * y[k + 3];
    }
    for (; k < n; k++) a0 += x[k] * y[k];
    return (a0 + a1) + (a2 + a3);
}

/* Four doubles as one value: the element-wise IEEE operations of GCC's vector extension
 * (a vector register where the target has one, four scalars where it has none). */
typedef double v4d __attribute__((vector_size(32)));
static inline v4d load4(const double *p) { v4d v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store4(double *p, v4d v) { __builtin_memcpy(p, &v, sizeof v); }
static inline v4d splat(double a) { return (v4d){a, a, a, a}; }

/* One entry of A^T A: the sum over k of A[k][i] A[k][j], in order. */
static inline double gram_entry(I S, const double *restrict A, I i, I j) {
    double a = 0.0;
    for (I k = 0; k < S; k++) a += A[k * S + i] * A[k * S + j];
    return a;
}

/* Upper triangle of M = A^T A (M[i][j], j >= i) for A [S, S] (row k = A[k][:]): every entry
 * one sum over k in order, computed 4 rows x 8 columns at a time so that each loaded row
 * segment of A serves 32 entries (a block on the diagonal also writes a few entries below
 * it, which nothing reads). */
static void gram_upper(I S, const double *restrict A, double *restrict M) {
    I i0 = 0;
    for (; i0 + 4 <= S; i0 += 4) {
        I j0 = i0;
        for (; j0 + 8 <= S; j0 += 8) {
            v4d acc[4][2] = {{{0}}};
            for (I k = 0; k < S; k++) {
                const double *Ak = A + k * S;
                const v4d r0 = load4(Ak + j0), r1 = load4(Ak + j0 + 4);
                for (int u = 0; u < 4; u++) {
                    const v4d c = splat(Ak[i0 + u]);
                    acc[u][0] += c * r0;
                    acc[u][1] += c * r1;
                }
            }
            for (int u = 0; u < 4; u++) {
                store4(M + (i0 + u) * S + j0, acc[u][0]);
                store4(M + (i0 + u) * S + j0 + 4, acc[u][1]);
            }
        }
        for (I u = 0; u < 4; u++)        /* the columns right of the last full block */
            for (I j = j0 > i0 + u ? j0 : i0 + u; j < S; j++)
                M[(i0 + u) * S + j] = gram_entry(S, A, i0 + u, j);
    }
    for (; i0 < S; i0++)
        for (I j = i0; j < S; j++) M[i0 * S + j] = gram_entry(S, A, i0, j);
}

/* One row: J [S, S] (J[k][i] = dF_k / ds_i), r [S] -> M [S, S] (upper triangle of A^T A,
 * A = J - I; what lies below the diagonal means nothing) and g = -A^T r [S]; A: [S, S] work. */
static void normal_row(I S, const double *restrict J, const double *restrict r,
                       double *restrict M, double *restrict g, double *restrict A) {
    for (I k = 0; k < S; k++)
        for (I i = 0; i < S; i++) A[k * S + i] = J[k * S + i] - (i == k ? 1.0 : 0.0);
    for (I i = 0; i < S; i++) g[i] = 0.0;
    for (I k = 0; k < S; k++) {          /* g = -A^T r, each entry one sum over k in order */
        const double rk = r[k], *Ak = A + k * S;
        for (I i = 0; i < S; i++) g[i] -= Ak[i] * rk;
    }
    gram_upper(S, A, M);
}

/* Rows k0 .. k1 - 1 of the Cholesky factor U (M = U^T U, upper, row-major, in place), given
 * that rows k0 .. S - 1 carry every update of the rows before k0: each pivot row is scaled,
 * then updates the rows after it up to k1 (U[i][i:] -= U[k][i] U[k][i:]). Every entry takes
 * its updates in the order of k, as an unblocked factorisation would. Returns 1 on a pivot
 * that is not positive. */
static int pivot_rows(I S, double *restrict U, I k0, I k1) {
    for (I k = k0; k < k1; k++) {
        double *Uk = U + k * S;
        double piv = Uk[k];
        if (!(piv > 0.0) || !isfinite(piv)) return 1;
        piv = sqrt(piv);
        Uk[k] = piv;
        for (I j = k + 1; j < S; j++) Uk[j] /= piv;
        for (I i = k + 1; i < k1; i++) {
            const double c = Uk[i];
            double *Ui = U + i * S;
            for (I j = i; j < S; j++) Ui[j] -= c * Uk[j];
        }
    }
    return 0;
}

/* One row: the upper triangle of M [S, S] and g [S] from normal_row -> d [S] solving
 * (M + mu I) d = g; U: [S, S] work. Cholesky M + mu I = U^T U by rows, four pivot rows
 * at a time (each row of the trailing matrix takes their four updates in one contiguous pass),
 * then U^T y = g and U d = y.
 * Returns 0, or 1 when M + mu I is not numerically positive definite. */
static int damped_row(I S, const double *restrict M, const double *restrict g, double mu,
                      double *restrict U, double *restrict d) {
    for (I i = 0; i < S; i++) {
        for (I j = i; j < S; j++) U[i * S + j] = M[i * S + j];
        U[i * S + i] += mu;
        d[i] = g[i];
    }
    I k = 0;
    for (; k + 4 <= S; k += 4) {         /* four pivot rows, then their four updates at once */
        if (pivot_rows(S, U, k, k + 4)) return 1;
        const double *U0 = U + k * S, *U1 = U0 + S, *U2 = U1 + S, *U3 = U2 + S;
        for (I i = k + 4; i < S; i++) {
            const double c0 = U0[i], c1 = U1[i], c2 = U2[i], c3 = U3[i];
            double *Ui = U + i * S;
            for (I j = i; j < S; j++)
                Ui[j] = (((Ui[j] - c0 * U0[j]) - c1 * U1[j]) - c2 * U2[j]) - c3 * U3[j];
        }
    }
    if (pivot_rows(S, U, k, S)) return 1;
    for (I k = 0; k < S; k++) {          /* U^T y = g, y in d */
        const double v = d[k] / U[k * S + k], *Uk = U + k * S;
        d[k] = v;
        for (I j = k + 1; j < S; j++) d[j] -= Uk[j] * v;
    }
    for (I i = S - 1; i >= 0; i--)       /* U d = y */
        d[i] = (d[i] - dot4(U + i * S + i + 1, d + i + 1, S - i - 1)) / U[i * S + i];
    return 0;
}

/* P rows: J [P, S, S], r [P, S] -> M [P, S, S] (upper triangles), g [P, S]. work: S S doubles. */
void lm_normal(I P, I S, const double *restrict J, const double *restrict r, double *restrict M,
               double *restrict g, double *restrict work) {
    for (I p = 0; p < P; p++)
        normal_row(S, J + p * S * S, r + p * S, M + p * S * S, g + p * S, work);
}

/* P rows: M [P, S, S] (upper triangles), g [P, S], mu [P] -> d [P, S], info [P] (1: not
 * positive definite, d undefined). work: S S doubles. */
void lm_damped(I P, I S, const double *restrict M, const double *restrict g,
               const double *restrict mu, double *restrict d, int32_t *restrict info,
               double *restrict work) {
    for (I p = 0; p < P; p++)
        info[p] = damped_row(S, M + p * S * S, g + p * S, mu[p], work, d + p * S);
}

/* One Adam iteration of P points of S coordinates, in place (lib.fixed_point_solver.adam):
 * rate *= up after a lower q, *= down after a higher one (then at most lr_max); q_prev = q;
 * log_g = log|g| at t = 1, else 0.9 log_g + 0.1 log|g|; g clipped at 2 exp(log_g); then m, v
 * and s of the active points take Adam's step (c1 = 1 - b1^t, c2 = 1 - b2^t).
 * s, g, m, v [P, S]; rate, log_g, q, q_prev [P]; active [P] (0/1 bytes). */
void adam_points(I P, I S, float *restrict s, const float *restrict g, float *restrict m,
                 float *restrict v, float *restrict rate, float *restrict log_g,
                 const float *restrict q, float *restrict q_prev, const uint8_t *restrict active,
                 I t, float up, float down, float lr_max, float c1, float c2) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    for (I p = 0; p < P; p++) {
        float r = rate[p];
        r = q[p] < q_prev[p] ? r * up : (q[p] > q_prev[p] ? r * down : r);
        r = r > lr_max ? lr_max : r;
        rate[p] = r;
        q_prev[p] = q[p];
        const float *gp = g + p * S;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        I k = 0;
        for (; k + 4 <= S; k += 4) {
            a0 += gp[k] * gp[k];
            a1 += gp[k + 1] * gp[k + 1];
            a2 += gp[k + 2] * gp[k + 2];
            a3 += gp[k + 3] * gp[k + 3];
        }
        for (; k < S; k++) a0 += gp[k] * gp[k];
        float gn = sqrtf((a0 + a1) + (a2 + a3));
        gn = gn < 1e-30f ? 1e-30f : gn;
        float lg = logf(gn);
        lg = t == 1 ? lg : 0.9f * log_g[p] + 0.1f * lg;
        log_g[p] = lg;
        float clip = 2.0f * expf(lg) / gn;
        clip = clip > 1.0f ? 1.0f : clip;
        if (!active[p]) continue;
        float *sp = s + p * S, *mp = m + p * S, *vp = v + p * S;
        for (I i = 0; i < S; i++) {
            float gi = gp[i] * clip;
            float mi = b1 * mp[i] + (1.0f - b1) * gi;
            float vi = b2 * vp[i] + (1.0f - b2) * (gi * gi);
            mp[i] = mi;
            vp[i] = vi;
            sp[i] = sp[i] - r * (mi / c1) / (sqrtf(vi / c2) + eps);
        }
    }
}

/* The LSTM's Jacobian d[h', c']/d[h, c] of P points of one network, assembled as
 * lib/cell_jacobians.py's torch ops do, operation for operation (so bit for bit):
 * W [H, 4H] (z = h W + drive), v [P, 6, H] = (vi, vf, vg, vo, k, f) -> J [P, 2H, 2H],
 *   dc'/dh [i, j] = (vi_i W[j, i] + vf_i W[j, H + i]) + vg_i W[j, 2H + i],
 *   dh'/dh [i, j] = k_i dc'/dh [i, j] + vo_i W[j, 3H + i],
 *   dh'/dc = diag(k f), dc'/dc = diag(f). */
void lstm_jacobian(I P, I H, const double *restrict W, const double *restrict v,
                   double *restrict J) {
    I S = 2 * H, G = 4 * H;
    for (I p = 0; p < P; p++) {
        const double *vi = v + p * 6 * H, *vf = vi + H, *vg = vf + H, *vo = vg + H, *k = vo + H,
                     *f = k + H;
        double *Jp = J + p * S * S;
        memset(Jp, 0, (size_t)(S * S) * sizeof(double));
        for (I i = 0; i < H; i++) {
            double *hh = Jp + i * S, *ch = Jp + (H + i) * S;
            for (I j = 0; j < H; j++) {
                const double *w = W + j * G;
                double dc = (vi[i] * w[i] + vf[i] * w[H + i]) + vg[i] * w[2 * H + i];
                ch[j] = dc;
                hh[j] = k[i] * dc + vo[i] * w[3 * H + i];
            }
            hh[H + i] = k[i] * f[i];
            ch[H + i] = f[i];
        }
    }
}
