/* The training trials of every network's own stream (lib/streams.py), in C.
 *
 * Network n's batch at step t is drawn from numpy's default_rng([seed_n, t]): a SeedSequence
 * of that entropy seeds a PCG64 generator. Both are written out here exactly as numpy computes
 * them (bit_generator.pyx: SeedSequence's hash mixing and generate_state; pcg64.h: the
 * 128-bit LCG step and its XSL-RR output), so the words equal random_raw's
 * (tests/test_train.py checks them against numpy), and the flip-flop trials are built from
 * them in the same pass, without a buffer of words per shard or one Python generator per
 * network.
 */
#include <stdint.h>

typedef int64_t I;
typedef unsigned __int128 u128;

/* ---- numpy's SeedSequence (pool size 4) and PCG64 ----------------------------------------- */

#define INIT_A 0x43b0d7e5u
#define MULT_A 0x931e8875u
#define INIT_B 0x8b51f9ddu
#define MULT_B 0x58f38dedu
#define MIX_MULT_L 0xca01f9ddu
#define MIX_MULT_R 0x4973f715u
#define PCG_MULT ((((u128)0x2360ed051fc65da4ull) << 64) | 0x4385df649fccf645ull)

static uint32_t hashmix(uint32_t v, uint32_t *h) {
    v ^= *h;
    *h *= MULT_A;
    v *= *h;
    return v ^ (v >> 16);
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
    return r ^ (r >> 16);
}

typedef struct { u128 state, inc; } pcg64;

/* PCG64(SeedSequence(e)) for the entropy words e [n] (numpy's 32-bit words of the entropy). */
static pcg64 seeded(const uint32_t *e, I n) {
    uint32_t pool[4], h = INIT_A, hb = INIT_B, w[8];
    for (int i = 0; i < 4; i++) pool[i] = hashmix(i < n ? e[i] : 0u, &h);
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 4; d++)
            if (s != d) pool[d] = mix(pool[d], hashmix(pool[s], &h));
    for (I s = 4; s < n; s++)
        for (int d = 0; d < 4; d++) pool[d] = mix(pool[d], hashmix(e[s], &h));
    for (int i = 0; i < 8; i++) {  /* generate_state(4, uint64): 8 words, 2 per uint64 */
        uint32_t v = pool[i % 4] ^ hb;
        hb *= MULT_B;
        v *= hb;
        w[i] = v ^ (v >> 16);
    }
    uint64_t val[4];
    for (int k = 0; k < 4; k++) val[k] = (uint64_t)w[2 * k] | ((uint64_t)w[2 * k + 1] << 32);
    pcg64 g;
    g.inc = (((((u128)val[2]) << 64) | val[3]) << 1) | 1u;
    g.state = g.inc;  /* state 0, one step */
    g.state += (((u128)val[0]) << 64) | val[1];
    g.state = g.state * PCG_MULT + g.inc;
    return g;
}

static inline uint64_t next64(pcg64 *g) {
    g->state = g->state * PCG_MULT + g->inc;
    const uint64_t x = (uint64_t)(g->state >> 64) ^ (uint64_t)g->state;
    const unsigned rot = (unsigned)(g->state >> 122);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

/* The first W words of each of N streams: entropy [N, es] (network k's first elen[k] words),
 * out [N, W]. */
void pcg64_raw(I N, const uint32_t *entropy, I es, const I *elen, I W, uint64_t *out) {
    for (I k = 0; k < N; k++) {
        pcg64 g = seeded(entropy + k * es, elen[k]);
        for (I i = 0; i < W; i++) out[k * W + i] = next64(&g);
    }
}

/* ---- flip-flop trials --------------------------------------------------------------------- */

/* One network's trials from its words w [n + ceil(n / 2)], n = B T C values in (b, t, c) order
 * (FlipFlop.sample's rng.random then rng.integers(0, 2)): value i is a pulse if
 * (w[i] >> 11) 2^-53 < p, and always at t = 0; its sign is +1 if the top bit of 32-bit half
 * (i % 2) of word w[n + i / 2] (low half first) is set, else -1. Writes inputs (the pulses, 0
 * elsewhere) and targets (the sign of the last pulse) [T, B, C]: time-major, as the trainer
 * reads them. */
static void trials(I B, I T, I C, const uint64_t *restrict w, double p, float *restrict in,
                   float *restrict tg) {
    const uint64_t *s = w + B * T * C;
    for (I b = 0; b < B; b++)
        for (I c = 0; c < C; c++) {
            float last = 0.0f;
            for (I t = 0; t < T; t++) {
                const I i = (b * T + t) * C + c, o = (t * B + b) * C + c;
                const int up = (int)((s[i >> 1] >> ((i & 1) ? 63 : 31)) & 1u);
                const int pulse = t == 0 || (double)(w[i] >> 11) * 0x1p-53 < p;
                const float v = pulse ? (up ? 1.0f : -1.0f) : 0.0f;
                if (pulse) last = v;
                in[o] = v;
                tg[o] = last;
            }
        }
}

#define LANES 4  /* streams generated side by side: each LCG step waits on the one before */

/* Flip-flop trials of N networks, each from its own stream (entropy as for pcg64_raw): inputs
 * and targets [N, T, B, C] contiguous; scratch holds LANES networks' n + ceil(n / 2) words. */
void flipflop_streams(I N, const uint32_t *entropy, I es, const I *elen, I B, I T, I C,
                      double p, uint64_t *scratch, float *inputs, float *targets) {
    const I n = B * T * C, W = n + (n + 1) / 2;
    for (I k0 = 0; k0 < N; k0 += LANES) {
        const I L = N - k0 < LANES ? N - k0 : LANES;
        pcg64 g[LANES];
        for (I j = 0; j < LANES; j++) g[j] = seeded(entropy + (k0 + (j < L ? j : 0)) * es,
                                                    elen[k0 + (j < L ? j : 0)]);
        for (I i = 0; i < W; i++)
            for (I j = 0; j < LANES; j++) scratch[j * W + i] = next64(&g[j]);
        for (I j = 0; j < L; j++)
            trials(B, T, C, scratch + j * W, p, inputs + (k0 + j) * n, targets + (k0 + j) * n);
    }
}
