/* The Keras Dropout layer, inverted: in training each unit is kept with probability 1 - rate and
 * scaled by 1/(1 - rate); at inference (or rate 0) it is the identity. The mask is a pure function
 * of (seed, rank, stream, step, layer, element) through Philox-4x32-10 (dpt_dropout_keep), one
 * block per 4 elements, so backward recomputes it instead of storing it. The Keras `seed` key is
 * ignored (the run seed is used). noise_shape (e.g. [null, 1, 64]: one mask per sample and channel,
 * broadcast over the steps) goes through dpt_mask_apply (noise.c) with the mask indexed in the
 * noise shape; without it the mask index is the element's rank-local position.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base;     /* first */
    double rate;        /* as configured, [0, 1) */
    float rate_f;       /* compared with the uniform draw */
    float scale;        /* 1 / (1 - rate) */
    uint32_t thr;       /* keep iff (word >> 8) >= thr, the same test as unit(word) >= rate_f */
    dpt_noise_shape ns; /* noise_shape (broadcast mask), see dpt_mask_apply */
    float *chan;        /* (last dim) scratch for a channel-only noise_shape */
} dpt_dropout;

bool dpt_dropout_keep(const dpt_pass *p, uint32_t layer_index, uint64_t idx, float rate) {
    return dpt_mask_keep(p, layer_index, 0, idx, rate);
}

bool dpt_mask_keep(const dpt_pass *p, uint32_t layer_index, uint32_t mask_id, uint64_t idx,
                   float rate) {
    dpt_u32x4 c = {{(uint32_t)(idx / 4), dpt_mask_word(layer_index, mask_id), (uint32_t)p->step,
                    (uint32_t)(p->step >> 32)}};
    dpt_u32x4 r = dpt_philox4x32_10(c, p->seed, p->rank ^ (p->stream << 20));
    return dpt_u32_to_unit(r.v[idx % 4]) >= rate;
}

/* Philox-4x32-10 for LANES consecutive blocks q0, q0+1, ... with the other counter words fixed,
 * in structure-of-arrays form (the same arithmetic as dpt_philox4x32_10, which the tests compare
 * against). words[w][l] = word w of block q0 + l. A portable version the compiler vectorises
 * with SSE2, and an AVX2 one chosen at run time on x86-64. */
#define LANES 16
typedef void (*philox_lanes_fn)(uint32_t q0, uint32_t c1v, uint32_t c2v, uint32_t c3v, uint32_t k0,
                                uint32_t k1, uint32_t words[4][LANES]);

static void philox_lanes_generic(uint32_t q0, uint32_t c1v, uint32_t c2v, uint32_t c3v, uint32_t k0,
                                 uint32_t k1, uint32_t words[4][LANES]) {
    uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
    for (int l = 0; l < LANES; l++) {
        c0[l] = q0 + (uint32_t)l;
        c1[l] = c1v;
        c2[l] = c2v;
        c3[l] = c3v;
    }
    for (int r = 0; r < 10; r++) {
        for (int l = 0; l < LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    memcpy(words[0], c0, sizeof c0);
    memcpy(words[1], c1, sizeof c1);
    memcpy(words[2], c2, sizeof c2);
    memcpy(words[3], c3, sizeof c3);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DPT_HAVE_AVX2_PATH 1

/* hi and lo 32-bit halves of the lane-wise products c * m (8 lanes) */
__attribute__((target("avx2"))) static inline void mulhilo8(__m256i c, __m256i m, __m256i *hi,
                                                            __m256i *lo) {
    __m256i even = _mm256_mul_epu32(c, m);                       /* lanes 0, 2, 4, 6 */
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m); /* lanes 1, 3, 5, 7 */
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

__attribute__((target("avx2"))) static void philox_lanes_avx2(uint32_t q0, uint32_t c1v,
                                                              uint32_t c2v, uint32_t c3v,
                                                              uint32_t k0, uint32_t k1,
                                                              uint32_t words[4][LANES]) {
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u),
                  m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i a0 = _mm256_add_epi32(_mm256_set1_epi32((int)q0), iota);
    __m256i b0 = _mm256_add_epi32(_mm256_set1_epi32((int)(q0 + 8)), iota);
    __m256i a1 = _mm256_set1_epi32((int)c1v), b1 = a1;
    __m256i a2 = _mm256_set1_epi32((int)c2v), b2 = a2;
    __m256i a3 = _mm256_set1_epi32((int)c3v), b3 = a3;
    for (int r = 0; r < 10; r++) {
        __m256i key0 = _mm256_set1_epi32((int)k0), key1 = _mm256_set1_epi32((int)k1);
        __m256i ahi0, alo0, ahi1, alo1, bhi0, blo0, bhi1, blo1;
        mulhilo8(a0, m0, &ahi0, &alo0);
        mulhilo8(a2, m1, &ahi1, &alo1);
        mulhilo8(b0, m0, &bhi0, &blo0);
        mulhilo8(b2, m1, &bhi1, &blo1);
        a0 = _mm256_xor_si256(_mm256_xor_si256(ahi1, a1), key0);
        a2 = _mm256_xor_si256(_mm256_xor_si256(ahi0, a3), key1);
        a1 = alo1;
        a3 = alo0;
        b0 = _mm256_xor_si256(_mm256_xor_si256(bhi1, b1), key0);
        b2 = _mm256_xor_si256(_mm256_xor_si256(bhi0, b3), key1);
        b1 = blo1;
        b3 = blo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256((__m256i *)&words[0][0], a0);
    _mm256_storeu_si256((__m256i *)&words[0][8], b0);
    _mm256_storeu_si256((__m256i *)&words[1][0], a1);
    _mm256_storeu_si256((__m256i *)&words[1][8], b1);
    _mm256_storeu_si256((__m256i *)&words[2][0], a2);
    _mm256_storeu_si256((__m256i *)&words[2][8], b2);
    _mm256_storeu_si256((__m256i *)&words[3][0], a3);
    _mm256_storeu_si256((__m256i *)&words[3][8], b3);
}
#endif

static bool g_force_generic;

void dpt_dropout_force_generic(bool on) { g_force_generic = on; }

static philox_lanes_fn pick_philox(void) {
#ifdef DPT_HAVE_AVX2_PATH
    if (!g_force_generic && __builtin_cpu_supports("avx2"))
        return philox_lanes_avx2;
#endif
    return philox_lanes_generic;
}

/* The mask multipliers of elements [first, first + 4 * LANES) of mask (layer, id): m[k] = scale
 * where kept, else 0 (first a multiple of 4). thr: keep iff (word >> 8) >= thr. */
static void mask_block(const dpt_pass *p, philox_lanes_fn philox_lanes, uint32_t word1,
                       uint64_t first, uint32_t thr, float scale, float m[4 * LANES]) {
    const uint32_t k0 = p->seed, k1 = p->rank ^ (p->stream << 20);
    const uint32_t slo = (uint32_t)p->step, shi = (uint32_t)(p->step >> 32);
    uint32_t words[4][LANES];
    float mul[4][LANES];
    philox_lanes((uint32_t)(first / 4), word1, slo, shi, k0, k1, words);
    for (int w = 0; w < 4; w++)
        for (int l = 0; l < LANES; l++)
            mul[w][l] = (words[w][l] >> 8) >= thr ? scale : 0.0f;
    for (int l = 0; l < LANES; l++) { /* (4, LANES) -> element order */
        m[4 * l + 0] = mul[0][l];
        m[4 * l + 1] = mul[1][l];
        m[4 * l + 2] = mul[2][l];
        m[4 * l + 3] = mul[3][l];
    }
}

/* keep iff (word >> 8) >= thr is the same test as dpt_u32_to_unit(word) >= rate */
static uint32_t rate_threshold(float rate) { return (uint32_t)ceil((double)rate * 16777216.0); }

void dpt_mask_fill(const dpt_pass *p, uint32_t layer_index, uint32_t mask_id, uint64_t first,
                   float rate, float scale, float *out, int64_t n) {
    DPT_ASSERT(first % 4 == 0 && mask_id <= DPT_MAX_MASK_ID);
    const philox_lanes_fn philox_lanes = pick_philox();
    const uint32_t word1 = dpt_mask_word(layer_index, mask_id), thr = rate_threshold(rate);
    float m[4 * LANES];
    for (int64_t base = 0; base < n; base += 4 * LANES) {
        mask_block(p, philox_lanes, word1, first + (uint64_t)base, thr, scale, m);
        int64_t k_n = n - base < 4 * LANES ? n - base : 4 * LANES;
        memcpy(out + base, m, (size_t)k_n * sizeof(float));
    }
}

/* out[k] = keep(k) ? in[k] * scale : 0 over k in [0, total): one Philox block per 4 elements,
 * LANES blocks at a time. in (total), out (total); the same mask for forward (x -> y) and
 * backward (dy -> dx). */
static void apply_mask(const dpt_dropout *d, const dpt_pass *p, const float *restrict in,
                       float *restrict out, int64_t total) {
    const philox_lanes_fn philox_lanes = pick_philox();
    const uint32_t word1 = dpt_mask_word((uint32_t)d->base.index, 0);
    float m[4 * LANES]; /* scale or 0, in element order */
    for (int64_t base = 0; base < total; base += 4 * LANES) {
        mask_block(p, philox_lanes, word1, (uint64_t)base, d->thr, d->scale, m);
        int64_t n = total - base < 4 * LANES ? total - base : 4 * LANES;
        const float *a = in + base;
        float *b = out + base;
        if (n == 4 * LANES)
            for (int k = 0; k < 4 * LANES; k++)
                b[k] = a[k] * m[k];
        else
            for (int64_t k = 0; k < n; k++)
                b[k] = a[k] * m[k];
    }
}

/* x (B, n), y (B, n) */
static void dropout_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_dropout *d = (dpt_dropout *)l;
    int64_t total = B * l->in_size;
    if (total <= 0)
        return;
    if (!(p->training || p->mc_dropout) || d->rate == 0.0) {
        if (y != x)
            memcpy(y, x, (size_t)total * sizeof(float));
        return;
    }
    if (d->ns.has) {
        dpt_mask_apply(p, (uint32_t)l->index, &d->ns, &l->in_shape, d->rate_f, d->scale, 0.0f, 0.0f,
                       d->chan, x, y, B);
        return;
    }
    apply_mask(d, p, x, y, total);
}

/* dy (B, n), dx (B, n) or NULL; the mask is recomputed (an output of 0 does not mean dropped) */
static void dropout_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int64_t B) {
    (void)x;
    (void)y;
    dpt_dropout *d = (dpt_dropout *)l;
    int64_t total = B * l->in_size;
    if (!dx || total <= 0)
        return;
    if (!(p->training || p->mc_dropout) || d->rate == 0.0) {
        if (dx != dy)
            memcpy(dx, dy, (size_t)total * sizeof(float));
        return;
    }
    if (d->ns.has) {
        dpt_mask_apply(p, (uint32_t)l->index, &d->ns, &l->in_shape, d->rate_f, d->scale, 0.0f, 0.0f,
                       d->chan, dy, dx, B);
        return;
    }
    apply_mask(d, p, dy, dx, total);
}

static json_t *dropout_to_json(const dpt_layer *l) {
    const dpt_dropout *d = (const dpt_dropout *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "rate", json_real(d->rate));
    json_object_set_new(c, "noise_shape", d->ns.json ? json_incref(d->ns.json) : json_null());
    json_object_set_new(c, "seed", json_null());
    return c;
}

static void dropout_destroy(dpt_layer *l) {
    dpt_dropout *d = (dpt_dropout *)l;
    free(d->chan);
    d->chan = NULL;
    json_decref(d->ns.json);
    d->ns.json = NULL;
}

static const dpt_layer_ops dropout_ops = {
    .class_name = "Dropout",
    .forward = dropout_forward,
    .backward = dropout_backward,
    .to_json = dropout_to_json,
    .destroy = dropout_destroy,
};

dpt_status dpt_dropout_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                              dpt_layer **out) {
    *out = NULL;
    dpt_dropout *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = dpt_layer_base_init(&d->base, &dropout_ops, config, ctx, in);
    if (st == DPT_OK && !json_object_get(config, "rate"))
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.rate: missing (a number in [0, 1))", ctx->file,
                           ctx->path);
    if (st == DPT_OK)
        st = dpt_json_get_num(config, "rate", ctx, 0.0, 0.0, 1.0, true, &d->rate);
    if (st == DPT_OK)
        st = dpt_noise_shape_parse(config, ctx, in, &d->ns);
    if (st == DPT_OK && dpt_noise_shape_chan_only(&d->ns)) {
        d->chan = calloc((size_t)in->dim[in->rank - 1], sizeof(float));
        if (!d->chan)
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    }
    if (st != DPT_OK) {
        dropout_destroy(&d->base);
        free(d);
        return st;
    }
    d->rate_f = (float)d->rate;
    if (d->rate_f >= 1.0f)
        d->rate_f = nextafterf(1.0f, 0.0f); /* a rate just below 1 */
    d->scale = (float)(1.0 / (1.0 - d->rate));
    d->thr = rate_threshold(d->rate_f);
    *out = &d->base;
    return DPT_OK;
}
