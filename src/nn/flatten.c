/* The Keras Flatten layer: (d1, d2, ...) -> (d1*d2*...), a copy in row-major (channels_last)
 * order, so a (28, 28) image feeds a Dense. channels_first on a rank >= 2 input (which Keras
 * transposes first) is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
} dpt_flatten;

/* x (B, n), y (B, n) */
static void flatten_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    int64_t total = B * l->in_size;
    if (total > 0 && y != x)
        memcpy(y, x, (size_t)total * sizeof(float));
}

/* dy (B, n), dx (B, n) or NULL */
static void flatten_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    int64_t total = B * l->in_size;
    if (dx && total > 0 && dx != dy)
        memcpy(dx, dy, (size_t)total * sizeof(float));
}

static json_t *flatten_to_json(const dpt_layer *l) {
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "data_format", json_string("channels_last"));
    return c;
}

static const dpt_layer_ops flatten_ops = {
    .class_name = "Flatten",
    .forward = flatten_forward,
    .backward = flatten_backward,
    .to_json = flatten_to_json,
};

dpt_status dpt_flatten_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                              dpt_layer **out) {
    *out = NULL;
    dpt_flatten *f = calloc(1, sizeof *f);
    if (!f)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    const char *fmt = NULL;
    dpt_status st = dpt_layer_base_init(&f->base, &flatten_ops, config, ctx, in);
    if (st == DPT_OK)
        st = dpt_json_get_str(config, "data_format", ctx, "channels_last", &fmt);
    if (st == DPT_OK && strcmp(fmt, "channels_last") != 0 &&
        !(strcmp(fmt, "channels_first") == 0 && in->rank < 2))
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.data_format: only \"channels_last\" is supported, got \"%s\"",
                           ctx->file, ctx->path, fmt);
    if (st != DPT_OK) {
        free(f);
        return st;
    }
    f->base.out_shape = (dpt_shape){.rank = 1, .dim = {f->base.in_size}};
    f->base.out_size = f->base.in_size;
    *out = &f->base;
    return DPT_OK;
}
