/* Keras pooling layers, channels_last: MaxPooling2D and AveragePooling2D (pool_size, strides
 * defaulting to pool_size, valid/same padding as TensorFlow computes it) and
 * GlobalAveragePooling2D (keepdims). With "same" padding, max ignores the padding and average
 * divides by the number of real (non-padding) elements in the window, as TensorFlow's AvgPool.
 * Max pooling's backward recomputes the window's arg-max from x (the first maximum in (kh, kw)
 * scan order gets the gradient) instead of storing indices, so nothing is allocated per batch.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    bool is_max;
    int64_t H, W, C, KH, KW, SH, SW, OH, OW, PT, PL;
    bool same;
} dpt_pool2d;

/* window of output (oh, ow) clipped to the input: [h0, h1) x [w0, w1) */
static void window(const dpt_pool2d *d, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                   int64_t *w0, int64_t *w1) {
    int64_t hs = oh * d->SH - d->PT, ws = ow * d->SW - d->PL;
    *h0 = hs < 0 ? 0 : hs;
    *h1 = hs + d->KH > d->H ? d->H : hs + d->KH;
    *w0 = ws < 0 ? 0 : ws;
    *w1 = ws + d->KW > d->W ? d->W : ws + d->KW;
}

/* x (B, H, W, C), y (B, OH, OW, C) */
static void pool_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_pool2d *d = (const dpt_pool2d *)l;
    const int64_t C = d->C;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * l->in_size;
        float *yb = y + b * l->out_size;
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                int64_t h0, h1, w0, w1;
                window(d, oh, ow, &h0, &h1, &w0, &w1);
                float *o = yb + (oh * d->OW + ow) * C;
                if (d->is_max) {
                    for (int64_t c = 0; c < C; c++)
                        o[c] = -FLT_MAX;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            const float *v = xb + (h * d->W + w) * C;
                            for (int64_t c = 0; c < C; c++)
                                o[c] = v[c] > o[c] ? v[c] : o[c];
                        }
                } else {
                    memset(o, 0, (size_t)C * sizeof(float));
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            const float *v = xb + (h * d->W + w) * C;
                            for (int64_t c = 0; c < C; c++)
                                o[c] += v[c];
                        }
                    const float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
                    for (int64_t c = 0; c < C; c++)
                        o[c] *= inv;
                }
            }
    }
}

/* dy (B, OH, OW, C), dx (B, H, W, C) or NULL */
static void pool_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                          float *dy, float *dx, int64_t B) {
    (void)p;
    (void)y;
    const dpt_pool2d *d = (const dpt_pool2d *)l;
    const int64_t C = d->C;
    if (!dx || B <= 0)
        return;
    memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * l->in_size;
        float *dxb = dx + b * l->in_size;
        const float *dyb = dy + b * l->out_size;
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                int64_t h0, h1, w0, w1;
                window(d, oh, ow, &h0, &h1, &w0, &w1);
                const float *g = dyb + (oh * d->OW + ow) * C;
                if (d->is_max) {
                    for (int64_t c = 0; c < C; c++) {
                        float best = -FLT_MAX;
                        int64_t at = h0 * d->W + w0;
                        for (int64_t h = h0; h < h1; h++)
                            for (int64_t w = w0; w < w1; w++) {
                                float v = xb[(h * d->W + w) * C + c];
                                if (v > best) {
                                    best = v;
                                    at = h * d->W + w;
                                }
                            }
                        dxb[at * C + c] += g[c];
                    }
                } else {
                    const float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            float *v = dxb + (h * d->W + w) * C;
                            for (int64_t c = 0; c < C; c++)
                                v[c] += g[c] * inv;
                        }
                }
            }
    }
}

static json_t *pool_to_json(const dpt_layer *l) {
    const dpt_pool2d *d = (const dpt_pool2d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "pool_size", json_pack("[I, I]", (json_int_t)d->KH, (json_int_t)d->KW));
    json_object_set_new(c, "padding", json_string(d->same ? "same" : "valid"));
    json_object_set_new(c, "strides", json_pack("[I, I]", (json_int_t)d->SH, (json_int_t)d->SW));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    return c;
}

static const dpt_layer_ops maxpool_ops = {
    .class_name = "MaxPooling2D",
    .forward = pool_forward,
    .backward = pool_backward,
    .to_json = pool_to_json,
};
static const dpt_layer_ops avgpool_ops = {
    .class_name = "AveragePooling2D",
    .forward = pool_forward,
    .backward = pool_backward,
    .to_json = pool_to_json,
};

static dpt_status need_image(const dpt_shape *in, const dpt_json_ctx *ctx, const char *cls) {
    if (in->rank == 3)
        return DPT_OK;
    char s[128];
    dpt_shape_format(in, true, s, sizeof s);
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: %s: %s needs an input of shape (None, height, width, channels), got "
                         "%s",
                         ctx->file, ctx->path, cls, s);
}

static dpt_status pool_create(const dpt_layer_ops *ops, const json_t *config,
                              const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_pool2d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    d->is_max = ops == &maxpool_ops;
    int64_t ps[2], st2[2];
    bool given = false;
    dpt_status st = dpt_layer_base_init(&d->base, ops, config, ctx, in);
    if (st == DPT_OK)
        st = need_image(in, ctx, ops->class_name);
    if (st == DPT_OK)
        st = dpt_json_get_pair(config, "pool_size", ctx, 2, 2, 1, ps, NULL);
    if (st == DPT_OK)
        st = dpt_json_get_pair(config, "strides", ctx, ps[0], ps[1], 1, st2, &given);
    if (st == DPT_OK)
        st = dpt_json_get_padding(config, ctx, &d->same);
    if (st == DPT_OK)
        st = dpt_json_check_channels_last(config, ctx);
    if (st == DPT_OK) {
        d->H = in->dim[0];
        d->W = in->dim[1];
        d->C = in->dim[2];
        d->KH = ps[0];
        d->KW = ps[1];
        d->SH = st2[0];
        d->SW = st2[1];
        st = dpt_conv_out_dim(d->H, d->KH, d->SH, d->same, ctx, "pool height", &d->OH, &d->PT);
    }
    if (st == DPT_OK)
        st = dpt_conv_out_dim(d->W, d->KW, d->SW, d->same, ctx, "pool width", &d->OW, &d->PL);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->base.out_shape = (dpt_shape){.rank = 3, .dim = {d->OH, d->OW, d->C}};
    d->base.out_size = d->OH * d->OW * d->C;
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_maxpool2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return pool_create(&maxpool_ops, config, ctx, in, out);
}

dpt_status dpt_avgpool2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return pool_create(&avgpool_ops, config, ctx, in, out);
}

/* ---- GlobalAveragePooling2D ----------------------------------------------------------------- */

typedef struct {
    dpt_layer base; /* first */
    int64_t S, C;   /* S = H * W */
    bool keepdims;
} dpt_gap2d;

/* x (B, H, W, C), y (B, C) */
static void gap_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_gap2d *d = (const dpt_gap2d *)l;
    const float inv = 1.0f / (float)d->S;
    for (int64_t b = 0; b < B; b++) {
        float *o = y + b * d->C;
        memset(o, 0, (size_t)d->C * sizeof(float));
        const float *xb = x + b * l->in_size;
        for (int64_t s = 0; s < d->S; s++)
            for (int64_t c = 0; c < d->C; c++)
                o[c] += xb[s * d->C + c];
        for (int64_t c = 0; c < d->C; c++)
            o[c] *= inv;
    }
}

/* dy (B, C), dx (B, H, W, C) or NULL */
static void gap_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                         float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    const dpt_gap2d *d = (const dpt_gap2d *)l;
    if (!dx)
        return;
    const float inv = 1.0f / (float)d->S;
    for (int64_t b = 0; b < B; b++) {
        const float *g = dy + b * d->C;
        float *o = dx + b * l->in_size;
        for (int64_t s = 0; s < d->S; s++)
            for (int64_t c = 0; c < d->C; c++)
                o[s * d->C + c] = g[c] * inv;
    }
}

static json_t *gap_to_json(const dpt_layer *l) {
    const dpt_gap2d *d = (const dpt_gap2d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "keepdims", json_boolean(d->keepdims));
    return c;
}

static const dpt_layer_ops gap_ops = {
    .class_name = "GlobalAveragePooling2D",
    .forward = gap_forward,
    .backward = gap_backward,
    .to_json = gap_to_json,
};

dpt_status dpt_gap2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    *out = NULL;
    dpt_gap2d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = dpt_layer_base_init(&d->base, &gap_ops, config, ctx, in);
    if (st == DPT_OK)
        st = need_image(in, ctx, "GlobalAveragePooling2D");
    if (st == DPT_OK)
        st = dpt_json_check_channels_last(config, ctx);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "keepdims", ctx, false, &d->keepdims);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->S = in->dim[0] * in->dim[1];
    d->C = in->dim[2];
    d->base.out_shape = d->keepdims ? (dpt_shape){.rank = 3, .dim = {1, 1, d->C}}
                                    : (dpt_shape){.rank = 1, .dim = {d->C}};
    d->base.out_size = d->C;
    *out = &d->base;
    return DPT_OK;
}
