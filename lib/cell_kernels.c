/* Fused elementwise steps of the trainer's cells (lib/bptt.py), float32, one pass each.
 *
 * Every operand is an [N, B, H] view whose last axis is contiguous; it is passed as a pointer
 * and its strides (in elements) over N and B. Each function does, for every network n and
 * trial b, one loop over the H units, which the compiler vectorises: the exponential is a
 * polynomial in plain arithmetic (no libm call), so that loop has no call in it.
 *
 * Built with -ffp-contract=off and without -ffast-math: every operation is IEEE-rounded as
 * written, so the numbers do not depend on the vector width the compiler picks.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef int64_t I;
#define AT(p, n, b) ((p) + (n) * p##n + (b) * p##b)
#define VIEW(p) float *restrict p, I p##n, I p##b
#define CVIEW(p) const float *restrict p, I p##n, I p##b

/* exp(x), |relative error| ~ 2e-7, for x clamped to [-87, 88] (Cephes' expf polynomial). */
static inline float exp_(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = (p * r) * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sig_(float x) { return 1.0f / (1.0f + exp_(-x)); }
static inline float tanh_(float x) { return 2.0f * sig_(2.0f * x) - 1.0f; }
static inline float relu_(float x) { return x > 0.0f ? x : 0.0f; }
static inline float dtanh_(float a) { return 1.0f - a * a; }   /* from a = tanh(z) */
static inline float drelu_(float a) { return a > 0.0f ? 1.0f : 0.0f; }

#define LOOP(...)                                                                             \
    for (I n = 0; n < N; n++)                                                                 \
        for (I b = 0; b < B; b++) {                                                           \
            __VA_ARGS__                                                                       \
        }

/* ---- activations ----------------------------------------------------------------------- */

/* z <- sigmoid(z) on its first S*H columns (S blocks of H), in place; z [N, B, >= S H]. */
void sigmoid_blocks(I N, I B, I H, I S, VIEW(z)) {
    LOOP(float *zz = AT(z, n, b); for (I j = 0; j < S * H; j++) zz[j] = sig_(zz[j]);)
}

/* Everything below comes in two versions: activation phi = tanh and phi = ReLU. */
#define CELLS(ACT, PHI, DPHI)                                                                 \
                                                                                              \
/* h = phi(z): the vanilla step. */                                                           \
void vanilla_fwd_##ACT(I N, I B, I H, CVIEW(z), VIEW(h)) {                                    \
    LOOP(const float *zz = AT(z, n, b); float *hh = AT(h, n, b);                              \
         for (I j = 0; j < H; j++) hh[j] = PHI(zz[j]);)                                       \
}                                                                                             \
                                                                                              \
/* dz = phi'(h) dh. */                                                                        \
void vanilla_bwd_##ACT(I N, I B, I H, CVIEW(h), CVIEW(dh), VIEW(dz)) {                        \
    LOOP(const float *hh = AT(h, n, b), *gg = AT(dh, n, b); float *dd = AT(dz, n, b);         \
         for (I j = 0; j < H; j++) dd[j] = DPHI(hh[j]) * gg[j];)                              \
}                                                                                             \
                                                                                              \
/* c <- phi(c) in place, then h = c + u (hp - c). u: activated update gate. */                \
void mix_fwd_##ACT(I N, I B, I H, CVIEW(u), VIEW(c), CVIEW(hp), VIEW(h)) {                    \
    LOOP(const float *uu = AT(u, n, b), *pp = AT(hp, n, b); float *cc = AT(c, n, b);          \
         float *hh = AT(h, n, b);                                                             \
         for (I j = 0; j < H; j++) {                                                          \
             float a = PHI(cc[j]);                                                            \
             cc[j] = a;                                                                       \
             hh[j] = a + uu[j] * (pp[j] - a);                                                 \
         })                                                                                   \
}                                                                                             \
                                                                                              \
/* Backward of h = c + u (hp - c) from dh: du, dc before their activations, and uh = u dh. */ \
void mix_bwd_##ACT(I N, I B, I H, CVIEW(u), CVIEW(c), CVIEW(hp), CVIEW(dh), VIEW(du),         \
                   VIEW(dc), VIEW(uh)) {                                                      \
    LOOP(const float *uu = AT(u, n, b), *cc = AT(c, n, b), *pp = AT(hp, n, b);                \
         const float *gg = AT(dh, n, b);                                                      \
         float *dU = AT(du, n, b), *dC = AT(dc, n, b), *uH = AT(uh, n, b);                    \
         for (I j = 0; j < H; j++) {                                                          \
             float s = uu[j], g = gg[j];                                                      \
             dU[j] = s * (1.0f - s) * (pp[j] - cc[j]) * g;                                    \
             dC[j] = DPHI(cc[j]) * (1.0f - s) * g;                                            \
             uH[j] = s * g;                                                                   \
         })                                                                                   \
}                                                                                             \
                                                                                              \
/* LSTM step: z = [i, f, g, o] pre-activations -> activated in place; c = f cp + i g;        \
   pc = phi(c); h = o pc. */                                                                  \
void lstm_fwd_##ACT(I N, I B, I H, VIEW(z), CVIEW(cp), VIEW(c), VIEW(pc), VIEW(h)) {          \
    LOOP(float *zz = AT(z, n, b), *cc = AT(c, n, b), *qq = AT(pc, n, b), *hh = AT(h, n, b);   \
         const float *pp = AT(cp, n, b);                                                      \
         for (I j = 0; j < H; j++) {                                                          \
             float i = sig_(zz[j]), f = sig_(zz[H + j]);                                      \
             float g = PHI(zz[2 * H + j]), o = sig_(zz[3 * H + j]);                           \
             zz[j] = i; zz[H + j] = f; zz[2 * H + j] = g; zz[3 * H + j] = o;                  \
             float cn = f * pp[j] + i * g, a = PHI(cn);                                       \
             cc[j] = cn; qq[j] = a; hh[j] = o * a;                                            \
         })                                                                                   \
}                                                                                             \
                                                                                              \
/* LSTM backward step: dz = d[i, f, g, o] pre-activations from dh and the carried dc, which   \
   becomes dL/dc_{t-1}. */                                                                    \
void lstm_bwd_##ACT(I N, I B, I H, CVIEW(z), CVIEW(cp), CVIEW(pc), CVIEW(dh), VIEW(dc),       \
                    VIEW(dz)) {                                                               \
    LOOP(const float *zz = AT(z, n, b), *pp = AT(cp, n, b), *qq = AT(pc, n, b);               \
         const float *gg = AT(dh, n, b); float *dC = AT(dc, n, b), *dd = AT(dz, n, b);        \
         for (I j = 0; j < H; j++) {                                                          \
             float i = zz[j], f = zz[H + j], g = zz[2 * H + j], o = zz[3 * H + j];            \
             float a = qq[j], e = gg[j];                                                      \
             float d = dC[j] + DPHI(a) * o * e;                                               \
             dd[j] = i * (1.0f - i) * g * d;                                                  \
             dd[H + j] = f * (1.0f - f) * pp[j] * d;                                          \
             dd[2 * H + j] = DPHI(g) * i * d;                                                 \
             dd[3 * H + j] = o * (1.0f - o) * a * e;                                          \
             dC[j] = d * f;                                                                   \
         })                                                                                   \
}

CELLS(tanh, tanh_, dtanh_)
CELLS(relu, relu_, drelu_)

/* GRU: rh = r hp (the input of the candidate's matmul). r: activated reset gate. */
void gru_reset(I N, I B, I H, CVIEW(r), CVIEW(hp), VIEW(rh)) {
    LOOP(const float *rr = AT(r, n, b), *pp = AT(hp, n, b); float *oo = AT(rh, n, b);
         for (I j = 0; j < H; j++) oo[j] = rr[j] * pp[j];)
}

/* GRU backward through rh = r hp, given d(rh): dr before the sigmoid; uh += d(rh) r. */
void gru_reset_bwd(I N, I B, I H, CVIEW(r), CVIEW(hp), CVIEW(drh), VIEW(dr), VIEW(uh)) {
    LOOP(const float *rr = AT(r, n, b), *pp = AT(hp, n, b), *gg = AT(drh, n, b);
         float *dR = AT(dr, n, b), *uH = AT(uh, n, b);
         for (I j = 0; j < H; j++) {
             float s = rr[j];
             dR[j] = s * (1.0f - s) * pp[j] * gg[j];
             uH[j] += gg[j] * s;
         })
}

/* ---- loss and optimiser of a shard (one network per n) ---------------------------------- */

/* Masked mean squared error and its output gradient, per network n: tot = sum of the mask,
 * loss[n] = sum ((out - y) mask)^2 / tot, dy = (out - y) mask * (2 act[n] / tot). Operands
 * [N, T, B, O], each a pointer and its strides over N, T and B (O contiguous). The sums run in
 * double, in a fixed order. */
void loss_grad(I N, I T, I B, I O, const float *restrict out, I on, I ot, I ob,
               const float *restrict y, I yn, I yt, I yb, const float *restrict mask, I mn,
               I mt, I mb, const float *restrict act, float *restrict dy, I dn, I dt, I db,
               float *restrict loss) {
    for (I n = 0; n < N; n++) {
        double tot = 0.0, sq = 0.0;
        for (I t = 0; t < T; t++)
            for (I b = 0; b < B; b++)
                for (I o = 0; o < O; o++) tot += mask[n * mn + t * mt + b * mb + o];
        float k = (float)(2.0 * act[n] / tot);
        for (I t = 0; t < T; t++)
            for (I b = 0; b < B; b++) {
                const float *pp = out + n * on + t * ot + b * ob, *yy = y + n * yn + t * yt + b * yb;
                const float *mm = mask + n * mn + t * mt + b * mb;
                float *dd = dy + n * dn + t * dt + b * db;
                for (I o = 0; o < O; o++) {
                    float e = (pp[o] - yy[o]) * mm[o];
                    sq += (double)e * (double)e;
                    dd[o] = e * k;
                }
            }
        loss[n] = (float)(sq / tot);
    }
}

/* Before an Adam step, per network n of g, A [N, K, C] (contiguous): g += l2[n] A on every row
 * but bias_row (the L2 term's gradient; l2[n] = 2 x strength, 0 for a frozen network); then
 * finite[n] = 0 if an entry of g is not finite (it is set to 0), and sumsq[n] += the sum of the
 * squares of g (in double, in a fixed order; sumsq accumulates over several matrices). */
void l2_sumsq(I N, I K, I C, I bias_row, const float *restrict A, float *restrict g,
              const float *restrict l2, double *restrict sumsq, int8_t *restrict finite) {
    for (I n = 0; n < N; n++) {
        double s = 0.0;
        int ok = 1;
        for (I r = 0; r < K; r++) {
            const float *aa = A + (n * K + r) * C;
            float *gg = g + (n * K + r) * C;
            float c = r == bias_row ? 0.0f : l2[n];
            for (I j = 0; j < C; j++) {
                float x = gg[j] + c * aa[j];
                if (!(x - x == 0.0f)) { ok = 0; x = 0.0f; }  /* NaN or infinite */
                gg[j] = x;
                s += (double)x * (double)x;
            }
        }
        sumsq[n] += s;
        if (!ok) finite[n] = 0;
    }
}

/* Adam, per network n of A, g, m, v [N, L] (contiguous): g *= scale[n]; m = keep1[n] m + a1 g;
 * v = keep2[n] v + a2 g^2; A -= step[n] m / (sqrt(v / c2) + eps) (a1 = 1 - beta1, a2 = 1 - beta2,
 * c2 the second moment's bias correction). A frozen network has scale 0, keep 1 and step 0. */
void adam_step(I N, I L, float *restrict A, float *restrict g, float *restrict m,
               float *restrict v, const float *restrict scale, const float *restrict keep1,
               const float *restrict keep2, const float *restrict step, float a1, float a2,
               float c2, float eps) {
    for (I n = 0; n < N; n++) {
        float sc = scale[n], k1 = keep1[n], k2 = keep2[n], st = step[n];
        float *aa = A + n * L, *gg = g + n * L, *mm = m + n * L, *vv = v + n * L;
        for (I j = 0; j < L; j++) {
            float x = gg[j] * sc;
            gg[j] = x;
            mm[j] = mm[j] * k1 + a1 * x;
            vv[j] = vv[j] * k2 + a2 * (x * x);
            aa[j] -= (mm[j] / (sqrtf(vv[j] / c2) + eps)) * st;
        }
    }
}
