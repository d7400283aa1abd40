/* Kernels of the fixed-point search (lib/fixed_point_solver.py):
 *
 * - lm_normal, lm_damped (float64): the linear algebra of a Levenberg-Marquardt step of the
 *   polish, in two parts. lm_normal forms, for every row, A = J - I, the upper triangle of
 *   A^T A and -A^T r; lm_damped adds mu to the diagonal and solves by Cholesky, eight rows side by side (one in each lane of a vector). A rejected
 *   step leaves the point, hence its normal equations, unchanged, so the polish keeps them and
 *   its next try with a larger mu runs only lm_damped. A torch version loops over LAPACK
 *   calls per row and allocates [P, S, S] temporaries; here a row's matrices stay in cache.
 * - greedy_merge (float64): the merge rule of lib.fixed_point_solver.merge (a point joins the
 *   first kept point of its system within tol, in q order, else it is kept), point by point:
 *   its cost is points x kept points, where a distance matrix costs points^2.
 * - adam_points (float32): one iteration of the start phase's Adam, each point with its own
 *   learning rate and gradient clip: the two dozen elementwise torch ops of an iteration in
 *   one pass.
 *
 * Every sum runs in a fixed order (the dot products as four partial sums, the entries of
 * A^T A and A^T r as one sum each, computed several entries at a time), and the build has
 * no FMA contraction and no fast-math, so the numbers do not depend on the vector width, nor
 * a row's on the rows beside it.
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

/* Four (eight) doubles as one value: the element-wise IEEE operations of GCC's vector
 * extension (vector registers where the target has them, scalars where it has none). */
typedef double v8d __attribute__((vector_size(64)));
static inline v8d load8(const double *p) { v8d v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store8(double *p, v8d v) { __builtin_memcpy(p, &v, sizeof v); }
static inline v8d splat8(double a) { return (v8d){a, a, a, a, a, a, a, a}; }

/* One entry of A^T A: the sum over k of A[k][i] A[k][j], in order. */
static inline double gram_entry(I S, const double *restrict A, I i, I j) {
    double a = 0.0;
    for (I k = 0; k < S; k++) a += A[k * S + i] * A[k * S + j];
    return a;
}

/* Rows i0 .. i0 + 3, columns j0 .. j0 + 8 W - 1 of A^T A (W = 1 or 2 vectors of 8): each
 * entry one sum over k in order; each loaded row segment of A serves 32 or 64 entries. */
#define GRAM_BLOCK(W)                                                                        \
    do {                                                                                     \
        v8d acc[4][W];                                                                       \
        for (int u = 0; u < 4; u++)                                                          \
            for (int w = 0; w < W; w++) acc[u][w] = splat8(0.0);                             \
        for (I k = 0; k < S; k++) {                                                          \
            const double *Ak = A + k * S;                                                    \
            v8d r[W];                                                                        \
            for (int w = 0; w < W; w++) r[w] = load8(Ak + j0 + 8 * w);                       \
            for (int u = 0; u < 4; u++) {                                                    \
                const v8d c = splat8(Ak[i0 + u]);                                            \
                for (int w = 0; w < W; w++) acc[u][w] += c * r[w];                           \
            }                                                                                \
        }                                                                                    \
        for (int u = 0; u < 4; u++)                                                          \
            for (int w = 0; w < W; w++) store8(M + (i0 + u) * S + j0 + 8 * w, acc[u][w]);   \
    } while (0)

/* Upper triangle of M = A^T A (M[i][j], j >= i) for A [S, S] (row k = A[k][:]), four rows at
 * a time in blocks of 16 or 8 columns that start at a multiple of 8 (so a block that meets
 * the diagonal also writes a few entries below it, which nothing reads). */
static void gram_upper(I S, const double *restrict A, double *restrict M) {
    I i0 = 0;
    for (; i0 + 4 <= S; i0 += 4) {
        I j0 = i0 & ~(I)7;
        for (; j0 + 16 <= S; j0 += 16) GRAM_BLOCK(2);
        for (; j0 + 8 <= S; j0 += 8) GRAM_BLOCK(1);
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

/* The damped solve runs L rows side by side, one in each lane of a vector: the Cholesky
 * factorisation of a small matrix is a chain of dependent steps (each pivot waits on the
 * updates before it), which a single row cannot fill a vector unit with. Every lane performs
 * exactly the operations, in exactly the order, of a one-row factorisation by rows with four
 * pivot rows at a time, so a row's result does not depend on its neighbours. */
#define L 8
typedef v8d vl;
static inline vl splatl(double a) { return splat8(a); }

/* Packed upper triangle of an S x S matrix of lanes: row i holds columns i .. S - 1. */
static inline I tri(I S, I i) { return i * S - i * (i - 1) / 2; }
#define U_(i, j) U[tri(S, i) + (j) - (i)]

/* Rows k0 .. k1 - 1 of the factor U (M = U^T U, upper, in place), given that rows
 * k0 .. S - 1 carry every update of the rows before k0: each pivot row is scaled, then updates
 * the rows after it up to k1 (U[i][i:] -= U[k][i] U[k][i:]); bad[l] is set where lane l meets
 * a pivot that is not positive (its lane then carries NaN, which no other lane sees). */
static void pivot_lanes(I S, vl *restrict U, I k0, I k1, int *restrict bad) {
    for (I k = k0; k < k1; k++) {
        vl piv = U_(k, k);
        for (int l = 0; l < L; l++) {
            if (!(piv[l] > 0.0) || !isfinite(piv[l])) bad[l] = 1;
            piv[l] = sqrt(piv[l]);
        }
        U_(k, k) = piv;
        for (I j = k + 1; j < S; j++) U_(k, j) /= piv;
        for (I i = k + 1; i < k1; i++) {
            const vl c = U_(k, i);
            for (I j = i; j < S; j++) U_(i, j) -= c * U_(k, j);
        }
    }
}

/* L rows: U holds the packed upper triangles of M + mu I, d the right-hand sides g; on return
 * d holds the solutions. Cholesky M + mu I = U^T U by rows, four pivot rows at a time (each
 * row of the trailing matrix takes their four updates in one pass), then U^T y = g, U d = y. */
static void damped_lanes(I S, vl *restrict U, vl *restrict d, int *restrict bad) {
    I k = 0;
    for (; k + 4 <= S; k += 4) {
        pivot_lanes(S, U, k, k + 4, bad);
        for (I i = k + 4; i < S; i++) {
            const vl c0 = U_(k, i), c1 = U_(k + 1, i), c2 = U_(k + 2, i), c3 = U_(k + 3, i);
            for (I j = i; j < S; j++)
                U_(i, j) = (((U_(i, j) - c0 * U_(k, j)) - c1 * U_(k + 1, j)) - c2 * U_(k + 2, j))
                           - c3 * U_(k + 3, j);
        }
    }
    pivot_lanes(S, U, k, S, bad);
    for (I k = 0; k < S; k++) {          /* U^T y = g, y in d */
        const vl v = d[k] / U_(k, k);
        d[k] = v;
        for (I j = k + 1; j < S; j++) d[j] -= U_(k, j) * v;
    }
    for (I i = S - 1; i >= 0; i--) {     /* U d = y: the dot product as four partial sums */
        vl a0 = splatl(0.0), a1 = a0, a2 = a0, a3 = a0;
        const I n = S - i - 1;
        I k = 0;
        for (; k + 4 <= n; k += 4) {
            a0 += U_(i, i + 1 + k) * d[i + 1 + k];
            a1 += U_(i, i + 2 + k) * d[i + 2 + k];
            a2 += U_(i, i + 3 + k) * d[i + 3 + k];
            a3 += U_(i, i + 4 + k) * d[i + 4 + k];
        }
        for (; k < n; k++) a0 += U_(i, i + 1 + k) * d[i + 1 + k];
        d[i] = (d[i] - ((a0 + a1) + (a2 + a3))) / U_(i, i);
    }
}

/* P rows: J [P, S, S], r [P, S] -> the upper triangle of M and g of row at[p] of M [*, S, S],
 * g [*, S] (at NULL: row p). work: S S doubles. */
void lm_normal(I P, I S, const double *restrict J, const double *restrict r, double *restrict M,
               double *restrict g, const int64_t *restrict at, double *restrict work) {
    for (I p = 0; p < P; p++) {
        const I o = at ? at[p] : p;
        normal_row(S, J + p * S * S, r + p * S, M + o * S * S, g + o * S, work);
    }
}

/* P rows: the upper triangles of M [*, S, S] and g [*, S] at rows at[p] (at NULL: row p),
 * mu [P] -> d [P, S] solving (M + mu I) d = g, info [P] (1: not positive definite, d
 * undefined). L rows at a time (the last group repeats its first row in the unused lanes).
 * work: L (S (S + 1) / 2 + S) doubles, aligned to 64 bytes. */
void lm_damped(I P, I S, const double *restrict M, const double *restrict g,
               const int64_t *restrict at, const double *restrict mu, double *restrict d,
               int32_t *restrict info, double *restrict work) {
    vl *U = (vl *)work, *x = U + tri(S, S);
    for (I p0 = 0; p0 < P; p0 += L) {
        I rows[L], m[L];
        int bad[L];
        for (int l = 0; l < L; l++) {
            m[l] = p0 + l < P ? p0 + l : p0;
            rows[l] = at ? at[m[l]] : m[l];
            bad[l] = 0;
        }
        for (I i = 0; i < S; i++) {
            for (I j = i; j < S; j++)
                for (int l = 0; l < L; l++) U_(i, j)[l] = M[rows[l] * S * S + i * S + j];
            for (int l = 0; l < L; l++) {
                U_(i, i)[l] += mu[m[l]];
                x[i][l] = g[rows[l] * S + i];
            }
        }
        damped_lanes(S, U, x, bad);
        for (int l = 0; l < L && p0 + l < P; l++) {
            for (I i = 0; i < S; i++) d[(p0 + l) * S + i] = x[i][l];
            info[p0 + l] = bad[l];
        }
    }
}
#undef U_

/* Greedy merge of n points s [n, S] ordered by (system, q): sys [n] their (non-decreasing)
 * systems. rep[i] = the first kept point of i's system whose Euclidean distance to i is below
 * tol, or i itself (then kept). kept [n] is work space. */
void greedy_merge(I n, I S, const double *restrict s, const int64_t *restrict sys, double tol,
                  int64_t *restrict rep, int64_t *restrict kept) {
    /* partial sums of squares only grow, so a pair is far once one passes cut (> tol^2,
     * with room for rounding): most pairs are decided after a few coordinates */
    const double cut = tol * tol * (1.0 + 1e-9);
    I nk = 0;
    for (I i = 0; i < n; i++) {
        if (i && sys[i] != sys[i - 1]) nk = 0;
        const double *x = s + i * S;
        I r = i;
        for (I a = 0; a < nk; a++) {
            const double *y = s + kept[a] * S;
            double d = 0.0;
            for (I k0 = 0; k0 < S && d < cut; k0 += 8) {
                I k1 = k0 + 8 < S ? k0 + 8 : S;
                for (I k = k0; k < k1; k++) {
                    double e = x[k] - y[k];
                    d += e * e;
                }
            }
            if (d < cut && sqrt(d) < tol) {
                r = kept[a];
                break;
            }
        }
        if (r == i) kept[nk++] = i;
        rep[i] = r;
    }
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
