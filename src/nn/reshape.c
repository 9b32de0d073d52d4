/* The Keras Reshape layer: a sample of shape in -> target_shape (row-major, so a copy), with at
 * most one -1 entry inferred from the others, as Keras allows. The typical use is
 * Reshape((28, 28, 1)) in front of a Conv2D fed by (28, 28) images.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
} dpt_reshape;

/* x (B, n), y (B, n) */
static void reshape_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    if (B > 0 && y != x)
        memcpy(y, x, (size_t)(B * l->in_size) * sizeof(float));
}

static void reshape_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                             float *dy, float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    if (dx && B > 0 && dx != dy)
        memcpy(dx, dy, (size_t)(B * l->in_size) * sizeof(float));
}

static json_t *reshape_to_json(const dpt_layer *l) {
    json_t *c = dpt_layer_base_json(l);
    json_t *t = json_array();
    for (int i = 0; i < l->out_shape.rank; i++)
        json_array_append_new(t, json_integer(l->out_shape.dim[i]));
    json_object_set_new(c, "target_shape", t);
    return c;
}

static const dpt_layer_ops reshape_ops = {
    .class_name = "Reshape",
    .forward = reshape_forward,
    .backward = reshape_backward,
    .to_json = reshape_to_json,
};

static dpt_status reshape_parse(dpt_reshape *r, const json_t *config, const dpt_json_ctx *ctx,
                                const dpt_shape *in) {
    dpt_layer *l = &r->base;
    dpt_status st = dpt_layer_base_init(l, &reshape_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    const json_t *t = json_object_get(config, "target_shape");
    if (!json_is_array(t) || json_array_size(t) < 1 || json_array_size(t) > DPT_MAX_RANK)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.target_shape: must be a list of 1 to %d integers", ctx->file,
                             ctx->path, DPT_MAX_RANK);
    dpt_shape s = {.rank = (int)json_array_size(t)};
    int unknown = -1;
    int64_t known = 1;
    for (int i = 0; i < s.rank; i++) {
        const json_t *v = json_array_get(t, (size_t)i);
        if (!json_is_integer(v) || (json_integer_value(v) < 1 && json_integer_value(v) != -1))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.target_shape[%d]: must be a positive integer or -1",
                                 ctx->file, ctx->path, i);
        s.dim[i] = (int64_t)json_integer_value(v);
        if (s.dim[i] == -1) {
            if (unknown >= 0)
                return dpt_error_set(DPT_ERR_CONFIG,
                                     "%s: %s.target_shape[%d]: only one dimension may be -1",
                                     ctx->file, ctx->path, i);
            unknown = i;
        } else if (dpt_mul_i64(known, s.dim[i], "Reshape", &known) != DPT_OK) {
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.target_shape: too large", ctx->file,
                                 ctx->path);
        }
    }
    if (unknown >= 0) {
        if (l->in_size % known != 0)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.target_shape: cannot infer the -1 dimension: %lld values "
                                 "per sample are not a multiple of %lld",
                                 ctx->file, ctx->path, (long long)l->in_size, (long long)known);
        s.dim[unknown] = l->in_size / known;
        known = l->in_size;
    }
    if (known != l->in_size) {
        char a[128], b[128];
        dpt_shape_format(in, true, a, sizeof a);
        dpt_shape_format(&s, true, b, sizeof b);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.target_shape: cannot reshape %s (%lld values per sample) to "
                             "%s (%lld)",
                             ctx->file, ctx->path, a, (long long)l->in_size, b, (long long)known);
    }
    l->out_shape = s;
    l->out_size = known;
    return DPT_OK;
}

dpt_status dpt_reshape_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                              dpt_layer **out) {
    *out = NULL;
    dpt_reshape *r = calloc(1, sizeof *r);
    if (!r)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = reshape_parse(r, config, ctx, in);
    if (st != DPT_OK) {
        free(r);
        return st;
    }
    *out = &r->base;
    return DPT_OK;
}
