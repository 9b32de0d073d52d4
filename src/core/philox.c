/* Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and a
 * small sequential stream on top of it. Pure functions of (counter, key): dropout masks are
 * recomputed from (seed, rank, step, layer, element) instead of stored. */
#include "dptrain/core.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

dpt_u32x4 dpt_philox4x32_10(dpt_u32x4 c, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c.v[0], &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c.v[2], &hi1);
        dpt_u32x4 n = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        c = n;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return c;
}

void dpt_rng_init(dpt_rng *r, uint64_t seed, uint32_t stream) {
    r->key0 = (uint32_t)seed;
    r->key1 = (uint32_t)(seed >> 32) ^ (stream * 0x85EBCA6Bu) ^ 0x5EED5EEDu;
    r->ctr = 0;
    r->pos = 4;
}

uint32_t dpt_rng_u32(dpt_rng *r) {
    if (r->pos == 4) {
        dpt_u32x4 c = {{(uint32_t)r->ctr, (uint32_t)(r->ctr >> 32), 0xC0FFEEu, 0}};
        r->buf = dpt_philox4x32_10(c, r->key0, r->key1);
        r->ctr++;
        r->pos = 0;
    }
    return r->buf.v[r->pos++];
}

float dpt_rng_uniform(dpt_rng *r) { return dpt_u32_to_unit(dpt_rng_u32(r)); }

uint64_t dpt_rng_below(dpt_rng *r, uint64_t bound) {
    DPT_ASSERT(bound > 0);
    /* rejection sampling on 64-bit words: unbiased */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    for (;;) {
        uint64_t x = ((uint64_t)dpt_rng_u32(r) << 32) | dpt_rng_u32(r);
        if (x < limit)
            return x % bound;
    }
}
