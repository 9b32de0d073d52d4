/* The Keras Dropout layer, inverted: in training each unit is kept with probability 1 - rate and
 * scaled by 1/(1 - rate); at inference (or rate 0) it is the identity. The mask is a pure function
 * of (seed, rank, stream, step, layer, element) through Philox-4x32-10 (dpt_dropout_keep), one
 * block per 4 elements, so backward recomputes it instead of storing it. The Keras `seed` key is
 * ignored (the run seed is used); noise_shape is refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    double rate;    /* as configured, [0, 1) */
    float rate_f;   /* compared with the uniform draw */
    float scale;    /* 1 / (1 - rate) */
    uint32_t thr;   /* keep iff (word >> 8) >= thr, the same test as unit(word) >= rate_f */
} dpt_dropout;

bool dpt_dropout_keep(const dpt_pass *p, uint32_t layer_index, uint64_t idx, float rate) {
    dpt_u32x4 c = {
        {(uint32_t)(idx / 4), layer_index, (uint32_t)p->step, (uint32_t)(p->step >> 32)}};
    dpt_u32x4 r = dpt_philox4x32_10(c, p->seed, p->rank ^ (p->stream << 20));
    return dpt_u32_to_unit(r.v[idx % 4]) >= rate;
}

/* out[k] = keep(k) ? in[k] * scale : 0 over k in [0, total): one Philox block per 4 elements.
 * in (total), out (total); the same mask for forward (x -> y) and backward (dy -> dx). */
static void apply_mask(const dpt_dropout *d, const dpt_pass *p, const float *in, float *out,
                       int64_t total) {
    const uint32_t k0 = p->seed, k1 = p->rank ^ (p->stream << 20);
    const uint32_t layer = (uint32_t)d->base.index;
    const uint32_t slo = (uint32_t)p->step, shi = (uint32_t)(p->step >> 32);
    const uint32_t thr = d->thr;
    const float scale = d->scale;
    int64_t full = total / 4;
    for (int64_t q = 0; q < full; q++) {
        dpt_u32x4 r = dpt_philox4x32_10((dpt_u32x4){{(uint32_t)q, layer, slo, shi}}, k0, k1);
        const float *a = in + 4 * q;
        float *b = out + 4 * q;
        for (int w = 0; w < 4; w++)
            b[w] = (r.v[w] >> 8) >= thr ? a[w] * scale : 0.0f;
    }
    if (full * 4 < total) {
        dpt_u32x4 r = dpt_philox4x32_10((dpt_u32x4){{(uint32_t)full, layer, slo, shi}}, k0, k1);
        for (int64_t k = full * 4; k < total; k++)
            out[k] = (r.v[k - full * 4] >> 8) >= thr ? in[k] * scale : 0.0f;
    }
}

static int64_t dropout_n_params(const dpt_layer *l) {
    (void)l;
    return 0;
}

static void dropout_init_params(dpt_layer *l, dpt_rng *rng) {
    (void)l;
    (void)rng;
}

/* x (B, n), y (B, n) */
static void dropout_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_dropout *d = (dpt_dropout *)l;
    int64_t total = B * l->in_size;
    if (total <= 0)
        return;
    if (!p->training || d->rate == 0.0) {
        if (y != x)
            memcpy(y, x, (size_t)total * sizeof(float));
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
    if (!p->training || d->rate == 0.0) {
        if (dx != dy)
            memcpy(dx, dy, (size_t)total * sizeof(float));
        return;
    }
    apply_mask(d, p, dy, dx, total);
}

static int dropout_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    (void)l;
    (void)names;
    (void)shapes;
    (void)max;
    return 0;
}

static json_t *dropout_to_json(const dpt_layer *l) {
    const dpt_dropout *d = (const dpt_dropout *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "rate", json_real(d->rate));
    json_object_set_new(c, "noise_shape", json_null());
    json_object_set_new(c, "seed", json_null());
    return c;
}

static void dropout_destroy(dpt_layer *l) { (void)l; }

static const dpt_layer_ops dropout_ops = {
    .class_name = "Dropout",
    .n_params = dropout_n_params,
    .init_params = dropout_init_params,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .weights = dropout_weights,
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
        st = dpt_json_require_null(config, "noise_shape", ctx);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->rate_f = (float)d->rate;
    if (d->rate_f >= 1.0f)
        d->rate_f = nextafterf(1.0f, 0.0f); /* a rate just below 1 */
    d->scale = (float)(1.0 / (1.0 - d->rate));
    d->thr = (uint32_t)ceil((double)d->rate_f * 16777216.0);
    *out = &d->base;
    return DPT_OK;
}
