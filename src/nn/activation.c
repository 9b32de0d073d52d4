/* The Keras Activation layer: y = act(x) elementwise (softmax over each sample), backward from
 * the output y. The activation math itself is in act.c; when this is the model's last layer and
 * the loss absorbs a sigmoid/softmax, the model sets head.folded and the layer passes x through.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    dpt_head head;
} dpt_activation;

/* x (B, n), y (B, n) */
static void activation_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y,
                               int64_t B) {
    (void)p;
    dpt_activation *a = (dpt_activation *)l;
    int64_t total = B * l->in_size;
    if (total <= 0)
        return;
    if (y != x)
        memcpy(y, x, (size_t)total * sizeof(float));
    if (!a->head.folded)
        dpt_act_forward(a->head.act, y, B, l->in_size);
}

/* y (B, n), dy (B, n), dx (B, n) or NULL */
static void activation_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                                float *dy, float *dx, int64_t B) {
    (void)p;
    dpt_activation *a = (dpt_activation *)l;
    if (!dx || B <= 0)
        return;
    /* the input x is the pre-activation z */
    dpt_act_backward_z(a->head.folded ? DPT_ACT_LINEAR : a->head.act, x, y, dy, dx, B, l->in_size);
}

static json_t *activation_to_json(const dpt_layer *l) {
    const dpt_activation *a = (const dpt_activation *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "activation", dpt_act_to_json(a->head.act));
    return c;
}

static dpt_head *activation_head(dpt_layer *l);

static const dpt_layer_ops activation_ops = {
    .class_name = "Activation",
    .head = activation_head,
    .forward = activation_forward,
    .backward = activation_backward,
    .to_json = activation_to_json,
};

static dpt_head *activation_head(dpt_layer *l) {
    return (l && l->ops == &activation_ops) ? &((dpt_activation *)l)->head : NULL;
}

dpt_status dpt_activation_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_layer **out) {
    *out = NULL;
    dpt_activation *a = calloc(1, sizeof *a);
    if (!a)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = dpt_layer_base_init(&a->base, &activation_ops, config, ctx, in);
    if (st == DPT_OK && !json_object_get(config, "activation"))
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.activation: missing", ctx->file, ctx->path);
    if (st == DPT_OK)
        st = dpt_json_get_act(config, "activation", ctx, DPT_ACT_LINEAR, &a->head.act);
    if (st == DPT_OK && (a->head.act == DPT_ACT_SOFTMAX || a->head.act == DPT_ACT_LOG_SOFTMAX) &&
        in->rank != 1) {
        char s[128];
        dpt_shape_format(in, false, s, sizeof s);
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.activation: %s needs a flat input, got shape %s; add "
                           "Flatten",
                           ctx->file, ctx->path, dpt_act_name(a->head.act), s);
    }
    if (st != DPT_OK) {
        free(a);
        return st;
    }
    *out = &a->base;
    return DPT_OK;
}
