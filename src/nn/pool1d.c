/* Keras 1-D pooling and the global max poolings, channels_last:
 *   MaxPooling1D / AveragePooling1D: x (B, T, C) -> (B, OT, C); pool_size, strides (default
 *     pool_size), padding valid/same as TensorFlow computes it (dpt_conv_out_dim). With "same",
 *     max ignores the padding and average divides by the real (non-padding) elements of the
 *     window, as TensorFlow's AvgPool does.
 *   GlobalAveragePooling1D / GlobalMaxPooling1D: (B, T, C) -> (B, C), or (B, 1, C) with keepdims.
 *   GlobalMaxPooling2D: (B, H, W, C) -> (B, C), or (B, 1, 1, C) with keepdims.
 * Max backward recomputes the arg-max from x (the first maximum in scan order gets the gradient),
 * so nothing is stored. GlobalAveragePooling1D's mask support (Keras's `mask` argument) does not
 * arise: nothing here produces masks (Embedding's mask_zero is refused).
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

static dpt_status need_rank(const dpt_shape *in, int rank, const dpt_json_ctx *ctx,
                            const char *cls) {
    if (in->rank == rank)
        return DPT_OK;
    char s[128];
    dpt_shape_format(in, true, s, sizeof s);
    return dpt_error_set(
        DPT_ERR_CONFIG, "%s: %s: %s needs an input of shape %s, got %s", ctx->file, ctx->path, cls,
        rank == 2 ? "(None, steps, channels)" : "(None, height, width, channels)", s);
}

/* ---- MaxPooling1D / AveragePooling1D -------------------------------------------------------- */

typedef struct {
    dpt_layer base; /* first */
    bool is_max, same;
    int64_t T, C, K, S, OT, PL;
} dpt_pool1d;

/* window of output ot clipped to the input: [t0, t1) */
static void window(const dpt_pool1d *d, int64_t ot, int64_t *t0, int64_t *t1) {
    int64_t ts = ot * d->S - d->PL;
    *t0 = ts < 0 ? 0 : ts;
    *t1 = ts + d->K > d->T ? d->T : ts + d->K;
}

/* x (B, T, C), y (B, OT, C) */
static void pool1d_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_pool1d *d = (const dpt_pool1d *)l;
    const int64_t C = d->C;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * l->in_size;
        for (int64_t ot = 0; ot < d->OT; ot++) {
            int64_t t0, t1;
            window(d, ot, &t0, &t1);
            float *o = y + b * l->out_size + ot * C;
            memcpy(o, xb + t0 * C, (size_t)C * sizeof(float));
            for (int64_t t = t0 + 1; t < t1; t++) {
                const float *v = xb + t * C;
                if (d->is_max)
                    for (int64_t c = 0; c < C; c++)
                        o[c] = v[c] > o[c] ? v[c] : o[c];
                else
                    for (int64_t c = 0; c < C; c++)
                        o[c] += v[c];
            }
            if (!d->is_max) {
                const float inv = 1.0f / (float)(t1 - t0);
                for (int64_t c = 0; c < C; c++)
                    o[c] *= inv;
            }
        }
    }
}

/* dy (B, OT, C), dx (B, T, C) or NULL */
static void pool1d_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                            float *dy, float *dx, int64_t B) {
    (void)p;
    (void)y;
    const dpt_pool1d *d = (const dpt_pool1d *)l;
    const int64_t C = d->C;
    if (!dx || B <= 0)
        return;
    memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * l->in_size;
        float *dxb = dx + b * l->in_size;
        for (int64_t ot = 0; ot < d->OT; ot++) {
            int64_t t0, t1;
            window(d, ot, &t0, &t1);
            const float *g = dy + b * l->out_size + ot * C;
            if (d->is_max) {
                for (int64_t c = 0; c < C; c++) {
                    int64_t at = t0;
                    for (int64_t t = t0 + 1; t < t1; t++)
                        if (xb[t * C + c] > xb[at * C + c])
                            at = t;
                    dxb[at * C + c] += g[c];
                }
            } else {
                const float inv = 1.0f / (float)(t1 - t0);
                for (int64_t t = t0; t < t1; t++)
                    for (int64_t c = 0; c < C; c++)
                        dxb[t * C + c] += g[c] * inv;
            }
        }
    }
}

static json_t *pool1d_to_json(const dpt_layer *l) {
    const dpt_pool1d *d = (const dpt_pool1d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "pool_size", json_pack("[I]", (json_int_t)d->K));
    json_object_set_new(c, "padding", json_string(d->same ? "same" : "valid"));
    json_object_set_new(c, "strides", json_pack("[I]", (json_int_t)d->S));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    return c;
}

#define POOL_OPS(var, cls, fwd, bwd, tojson)                                                       \
    static const dpt_layer_ops var = {                                                             \
        .class_name = cls,                                                                         \
        .forward = fwd,                                                                            \
        .backward = bwd,                                                                           \
        .to_json = tojson,                                                                         \
    }
POOL_OPS(maxpool1d_ops, "MaxPooling1D", pool1d_forward, pool1d_backward, pool1d_to_json);
POOL_OPS(avgpool1d_ops, "AveragePooling1D", pool1d_forward, pool1d_backward, pool1d_to_json);

static dpt_status pool1d_create(const dpt_layer_ops *ops, const json_t *config,
                                const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_pool1d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    d->is_max = ops == &maxpool1d_ops;
    dpt_status st = dpt_layer_base_init(&d->base, ops, config, ctx, in);
    if (st == DPT_OK)
        st = need_rank(in, 2, ctx, ops->class_name);
    if (st == DPT_OK)
        st = dpt_json_get_tuple1(config, "pool_size", ctx, 2, 1, &d->K, NULL);
    if (st == DPT_OK)
        st = dpt_json_get_tuple1(config, "strides", ctx, d->K, 1, &d->S, NULL);
    if (st == DPT_OK)
        st = dpt_json_get_padding(config, ctx, &d->same);
    if (st == DPT_OK)
        st = dpt_json_check_channels_last(config, ctx);
    if (st == DPT_OK) {
        d->T = in->dim[0];
        d->C = in->dim[1];
        st = dpt_conv_out_dim(d->T, d->K, d->S, d->same, ctx, "pool size", &d->OT, &d->PL);
    }
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->base.out_shape = (dpt_shape){.rank = 2, .dim = {d->OT, d->C}};
    d->base.out_size = d->OT * d->C;
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_maxpool1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return pool1d_create(&maxpool1d_ops, config, ctx, in, out);
}

dpt_status dpt_avgpool1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return pool1d_create(&avgpool1d_ops, config, ctx, in, out);
}

/* ---- global poolings over every position but the channel ------------------------------------ */

typedef struct {
    dpt_layer base; /* first */
    bool is_max, keepdims;
    int rank;     /* input rank: 2 (1-D) or 3 (2-D) */
    int64_t S, C; /* positions (T, or H * W) and channels */
} dpt_gpool;

/* x (B, S, C), y (B, C) */
static void gpool_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_gpool *d = (const dpt_gpool *)l;
    const int64_t C = d->C;
    for (int64_t b = 0; b < B; b++) {
        float *o = y + b * C;
        const float *xb = x + b * l->in_size;
        memcpy(o, xb, (size_t)C * sizeof(float));
        for (int64_t s = 1; s < d->S; s++) {
            const float *v = xb + s * C;
            if (d->is_max)
                for (int64_t c = 0; c < C; c++)
                    o[c] = v[c] > o[c] ? v[c] : o[c];
            else
                for (int64_t c = 0; c < C; c++)
                    o[c] += v[c];
        }
        if (!d->is_max) {
            const float inv = 1.0f / (float)d->S;
            for (int64_t c = 0; c < C; c++)
                o[c] *= inv;
        }
    }
}

/* x (B, S, C), dy (B, C), dx (B, S, C) or NULL */
static void gpool_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int64_t B) {
    (void)p;
    (void)y;
    const dpt_gpool *d = (const dpt_gpool *)l;
    const int64_t C = d->C;
    if (!dx || B <= 0)
        return;
    if (d->is_max)
        memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float));
    const float inv = 1.0f / (float)d->S;
    for (int64_t b = 0; b < B; b++) {
        const float *g = dy + b * C;
        const float *xb = x + b * l->in_size;
        float *o = dx + b * l->in_size;
        if (d->is_max) {
            for (int64_t c = 0; c < C; c++) {
                int64_t at = 0;
                for (int64_t s = 1; s < d->S; s++)
                    if (xb[s * C + c] > xb[at * C + c])
                        at = s;
                o[at * C + c] = g[c];
            }
        } else {
            for (int64_t s = 0; s < d->S; s++)
                for (int64_t c = 0; c < C; c++)
                    o[s * C + c] = g[c] * inv;
        }
    }
}

static json_t *gpool_to_json(const dpt_layer *l) {
    const dpt_gpool *d = (const dpt_gpool *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "keepdims", json_boolean(d->keepdims));
    return c;
}

POOL_OPS(gap1d_ops, "GlobalAveragePooling1D", gpool_forward, gpool_backward, gpool_to_json);
POOL_OPS(gmp1d_ops, "GlobalMaxPooling1D", gpool_forward, gpool_backward, gpool_to_json);
POOL_OPS(gmp2d_ops, "GlobalMaxPooling2D", gpool_forward, gpool_backward, gpool_to_json);

static dpt_status gpool_create(const dpt_layer_ops *ops, int rank, const json_t *config,
                               const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_gpool *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    d->is_max = ops != &gap1d_ops;
    d->rank = rank;
    dpt_status st = dpt_layer_base_init(&d->base, ops, config, ctx, in);
    if (st == DPT_OK)
        st = need_rank(in, rank, ctx, ops->class_name);
    if (st == DPT_OK)
        st = dpt_json_check_channels_last(config, ctx);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "keepdims", ctx, false, &d->keepdims);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->S = rank == 2 ? in->dim[0] : in->dim[0] * in->dim[1];
    d->C = in->dim[rank - 1];
    if (!d->keepdims)
        d->base.out_shape = (dpt_shape){.rank = 1, .dim = {d->C}};
    else if (rank == 2)
        d->base.out_shape = (dpt_shape){.rank = 2, .dim = {1, d->C}};
    else
        d->base.out_shape = (dpt_shape){.rank = 3, .dim = {1, 1, d->C}};
    d->base.out_size = d->C;
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_gap1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    return gpool_create(&gap1d_ops, 2, config, ctx, in, out);
}

dpt_status dpt_gmp1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    return gpool_create(&gmp1d_ops, 2, config, ctx, in, out);
}

dpt_status dpt_gmp2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    return gpool_create(&gmp2d_ops, 3, config, ctx, in, out);
}
