/* Keras layers that move whole time steps, channels_last: each output step t copies input step
 * src(t) (all C channels) or is zeros (src -1):
 *   ZeroPadding1D  (padding p or [l, r]):  (T, C) -> (l + T + r, C), src = t - l inside
 *   Cropping1D     (cropping c or [l, r]): (T, C) -> (T - l - r, C), src = t + l
 *   UpSampling1D   (size s):               (T, C) -> (s T, C),       src = t / s
 *   RepeatVector   (n):                    (C)    -> (n, C),         src = 0
 * Forward gathers rows, backward scatters dy back (adds: UpSampling1D and RepeatVector read a
 * step several times). No parameters; the steps' source map is computed on the fly.
 * Refused: data_format channels_first (ZeroPadding1D), cropping that leaves no step.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef enum { K_PAD = 0, K_CROP, K_UP, K_REPEAT } step_kind;

typedef struct {
    dpt_layer base; /* first */
    step_kind kind;
    int64_t T, C, OT; /* input steps, channels, output steps */
    int64_t a, b;     /* pad / crop: (left, right); up: size; repeat: n */
} dpt_steps;

/* the input step that output step t copies, or -1 for zeros */
static inline int64_t src_step(const dpt_steps *d, int64_t t) {
    switch (d->kind) {
    case K_PAD:
        return t >= d->a && t < d->a + d->T ? t - d->a : -1;
    case K_CROP:
        return t + d->a;
    case K_UP:
        return t / d->a;
    case K_REPEAT:
        return 0;
    }
    return -1;
}

/* x (B, T, C), y (B, OT, C) */
static void steps_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_steps *d = (const dpt_steps *)l;
    const size_t row = (size_t)d->C * sizeof(float);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < d->OT; t++) {
            int64_t s = src_step(d, t);
            float *o = y + (b * d->OT + t) * d->C;
            if (s < 0)
                memset(o, 0, row);
            else
                memcpy(o, x + (b * d->T + s) * d->C, row);
        }
}

/* dy (B, OT, C), dx (B, T, C) or NULL */
static void steps_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    const dpt_steps *d = (const dpt_steps *)l;
    if (!dx || B <= 0)
        return;
    memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < d->OT; t++) {
            int64_t s = src_step(d, t);
            if (s < 0)
                continue;
            const float *g = dy + (b * d->OT + t) * d->C;
            float *o = dx + (b * d->T + s) * d->C;
            for (int64_t c = 0; c < d->C; c++)
                o[c] += g[c];
        }
}

static json_t *steps_to_json(const dpt_layer *l) {
    const dpt_steps *d = (const dpt_steps *)l;
    json_t *c = dpt_layer_base_json(l);
    switch (d->kind) {
    case K_PAD:
        json_object_set_new(c, "padding", json_pack("[I, I]", (json_int_t)d->a, (json_int_t)d->b));
        json_object_set_new(c, "data_format", json_string("channels_last"));
        break;
    case K_CROP:
        json_object_set_new(c, "cropping", json_pack("[I, I]", (json_int_t)d->a, (json_int_t)d->b));
        break;
    case K_UP:
        json_object_set_new(c, "size", json_integer(d->a));
        break;
    case K_REPEAT:
        json_object_set_new(c, "n", json_integer(d->a));
        break;
    }
    return c;
}

#define STEPS_OPS(var, cls)                                                                        \
    static const dpt_layer_ops var = {                                                             \
        .class_name = cls,                                                                         \
        .forward = steps_forward,                                                                  \
        .backward = steps_backward,                                                                \
        .to_json = steps_to_json,                                                                  \
    }
STEPS_OPS(pad_ops, "ZeroPadding1D");
STEPS_OPS(crop_ops, "Cropping1D");
STEPS_OPS(up_ops, "UpSampling1D");
STEPS_OPS(repeat_ops, "RepeatVector");

static dpt_status steps_parse(dpt_steps *d, const json_t *config, const dpt_json_ctx *ctx,
                              const dpt_shape *in) {
    static const dpt_layer_ops *const ops[] = {&pad_ops, &crop_ops, &up_ops, &repeat_ops};
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, ops[d->kind], config, ctx, in);
    if (st != DPT_OK)
        return st;
    int want = d->kind == K_REPEAT ? 1 : 2;
    if (in->rank != want) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: %s needs an input of shape %s, got %s",
                             ctx->file, ctx->path, ops[d->kind]->class_name,
                             want == 1 ? "(None, features)" : "(None, steps, channels)", s);
    }
    d->T = want == 1 ? 1 : in->dim[0];
    d->C = in->dim[want - 1];
    int64_t pair[2];
    switch (d->kind) {
    case K_PAD:
    case K_CROP: {
        const char *key = d->kind == K_PAD ? "padding" : "cropping";
        int64_t def = 1; /* Keras: padding=1, cropping=(1, 1) */
        if ((st = dpt_json_get_pair(config, key, ctx, def, def, 0, pair, NULL)) != DPT_OK)
            return st;
        if (d->kind == K_PAD && (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK)
            return st;
        d->a = pair[0];
        d->b = pair[1];
        if (d->kind == K_CROP && d->a + d->b >= d->T)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.cropping: [%lld, %lld] leaves no step of %lld", ctx->file,
                                 ctx->path, (long long)d->a, (long long)d->b, (long long)d->T);
        d->OT = d->kind == K_PAD ? d->T + d->a + d->b : d->T - d->a - d->b;
        break;
    }
    case K_UP:
    case K_REPEAT: {
        const char *key = d->kind == K_UP ? "size" : "n";
        if (d->kind == K_REPEAT && !json_object_get(config, "n"))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.n: missing (an integer >= 1)", ctx->file,
                                 ctx->path);
        if ((st = dpt_json_get_int(config, key, ctx, 2, 1, INT_MAX, &d->a)) != DPT_OK)
            return st;
        d->OT = d->kind == K_UP ? d->T * d->a : d->a;
        break;
    }
    }
    if (dpt_mul_i64(d->OT, d->C, "output", &l->out_size) != DPT_OK)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the output is too large", ctx->file,
                             ctx->path);
    l->out_shape = (dpt_shape){.rank = 2, .dim = {d->OT, d->C}};
    return DPT_OK;
}

static dpt_status steps_create(step_kind kind, const json_t *config, const dpt_json_ctx *ctx,
                               const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_steps *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    d->kind = kind;
    dpt_status st = steps_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_zeropad1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return steps_create(K_PAD, config, ctx, in, out);
}
dpt_status dpt_crop1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                             dpt_layer **out) {
    return steps_create(K_CROP, config, ctx, in, out);
}
dpt_status dpt_upsample1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_layer **out) {
    return steps_create(K_UP, config, ctx, in, out);
}
dpt_status dpt_repeat_vector_create(const json_t *config, const dpt_json_ctx *ctx,
                                    const dpt_shape *in, dpt_layer **out) {
    return steps_create(K_REPEAT, config, ctx, in, out);
}
