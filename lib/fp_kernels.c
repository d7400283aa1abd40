/* Kernels of the fixed-point search (lib/fixed_point_solver.py), one point at a time:
 *
 * - lm_solve (float64): the linear algebra of a Levenberg-Marquardt step of the polish. For
 *   every row A = J - I, d solves (A^T A + mu I) d = -A^T r by Cholesky. A torch version loops
 *   over LAPACK calls per row and allocates [P, S, S] temporaries for J - I, A^T A and the
 *   factor; here one row's matrices stay in the cache.
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

/* Lower triangle of M = A^T A (M[i][j], j <= i) for A [S, S] (row k = A[k][:]): every entry
 * one sum over k in order, computed 4 rows x 8 columns at a time so that each loaded row
 * segment of A serves 32 entries. */
static void gram_lower(I S, const double *restrict A, double *restrict M) {
    I i0 = 0;
    for (; i0 + 4 <= S; i0 += 4) {
        I j0 = 0;
        for (; j0 + 8 <= i0 + 4; j0 += 8) {
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
        for (I u = 0; u < 4; u++)        /* the columns left of the diagonal block's end */
            for (I j = j0; j <= i0 + u; j++) {
                double a = 0.0;
                for (I k = 0; k < S; k++) a += A[k * S + i0 + u] * A[k * S + j];
                M[(i0 + u) * S + j] = a;
            }
    }
    for (; i0 < S; i0++)
        for (I j = 0; j <= i0; j++) {
            double a = 0.0;
            for (I k = 0; k < S; k++) a += A[k * S + i0] * A[k * S + j];
            M[i0 * S + j] = a;
        }
}

/* One row: J [S, S] (J[k][i] = dF_k / ds_i), r [S] -> d [S]; M, A: [S, S] work.
 * Returns 0, or 1 when the normal matrix is not numerically positive definite. */
static int lm_row(I S, const double *restrict J, const double *restrict r, double mu,
                  double *restrict M, double *restrict A, double *restrict d) {
    for (I k = 0; k < S; k++)
        for (I i = 0; i < S; i++) A[k * S + i] = J[k * S + i] - (i == k ? 1.0 : 0.0);
    for (I i = 0; i < S; i++) d[i] = 0.0;
    for (I k = 0; k < S; k++) {          /* d = -A^T r, each entry one sum over k in order */
        const double rk = r[k], *Ak = A + k * S;
        for (I i = 0; i < S; i++) d[i] -= Ak[i] * rk;
    }
    gram_lower(S, A, M);                 /* lower triangle of A^T A + mu I */
    for (I i = 0; i < S; i++) M[i * S + i] += mu;
    for (I j = 0; j < S; j++) {          /* Cholesky M = L L^T in place, column by column */
        double *Lj = M + j * S;
        double piv = Lj[j] - dot4(Lj, Lj, j);
        if (!(piv > 0.0) || !isfinite(piv)) return 1;
        piv = sqrt(piv);
        Lj[j] = piv;
        for (I i = j + 1; i < S; i++) {  /* rows independent of each other: no chain of divisions */
            double *Li = M + i * S;
            Li[j] = (Li[j] - dot4(Li, Lj, j)) / piv;
        }
    }
    for (I i = 0; i < S; i++) d[i] = (d[i] - dot4(M + i * S, d, i)) / M[i * S + i];  /* L y = g */
    for (I i = S - 1; i >= 0; i--) {     /* L^T d = y */
        double v = d[i] / M[i * S + i];
        d[i] = v;
        for (I k = 0; k < i; k++) d[k] -= M[i * S + k] * v;
    }
    return 0;
}

/* P rows: J [P, S, S], r [P, S], mu [P] -> d [P, S], info [P] (1: not positive definite,
 * d undefined). work: 2 S S doubles. */
void lm_solve(I P, I S, const double *restrict J, const double *restrict r,
              const double *restrict mu, double *restrict d, int32_t *restrict info,
              double *restrict work) {
    for (I p = 0; p < P; p++)
        info[p] = lm_row(S, J + p * S * S, r + p * S, mu[p], work, work + S * S, d + p * S);
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
