/* Activity regularization: a penalty on a layer's OUTPUT, added to the loss. Keras 3
 * (Layer.__call__) adds activity_regularizer(y) / batch_size for each call; the trainer's loss is
 * a sum over samples divided by the global batch afterwards, so each layer contributes the plain
 * penalty l1 * sum|y| + l2 * sum y^2 of its local output (dpt_layer.activity_loss, read by
 * dpt_model_activity_loss) and adds its derivative l1 * sign(y) + 2 * l2 * y (sign(0) = 0, as
 * TensorFlow and JAX) to dy in backward. Here: those two kernels and the ActivityRegularization
 * layer (identity plus the penalty). Dense and Conv2D call the kernels for their own
 * activity_regularizer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

/* y (n) */
double dpt_actreg_forward(const dpt_regularizer *r, const float *y, int64_t n) {
    return dpt_regularizer_apply(r, y, NULL, n, 0.0f);
}

/* y (n), dy (n) += d(penalty)/dy */
void dpt_actreg_backward(const dpt_regularizer *r, const float *y, float *dy, int64_t n) {
    if (r->kind == DPT_REG_NONE)
        return;
    const float a = (float)r->l1, b = (float)(2.0 * r->l2);
    for (int64_t i = 0; i < n; i++) {
        float v = y[i];
        float sg = v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : 0.0f;
        dy[i] += a * sg + b * v;
    }
}

typedef struct {
    dpt_layer base; /* first */
    dpt_regularizer reg;
} dpt_actreg_layer;

/* x (B, n), y (B, n) = x */
static void ar_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_actreg_layer *a = (dpt_actreg_layer *)l;
    int64_t total = B * l->in_size;
    if (total > 0 && y != x)
        memcpy(y, x, (size_t)total * sizeof(float));
    l->activity_loss = total > 0 ? dpt_actreg_forward(&a->reg, x, total) : 0.0;
}

/* y (B, n), dy (B, n), dx (B, n) = dy + d(penalty)/dy, or NULL */
static void ar_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)p;
    (void)x;
    dpt_actreg_layer *a = (dpt_actreg_layer *)l;
    int64_t total = B * l->in_size;
    if (!dx || total <= 0)
        return;
    dpt_actreg_backward(&a->reg, y, dy, total);
    if (dx != dy)
        memcpy(dx, dy, (size_t)total * sizeof(float));
}

static json_t *ar_to_json(const dpt_layer *l) {
    const dpt_actreg_layer *a = (const dpt_actreg_layer *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "l1", json_real(a->reg.l1));
    json_object_set_new(c, "l2", json_real(a->reg.l2));
    return c;
}

static const dpt_layer_ops ar_ops = {
    .class_name = "ActivityRegularization",
    .forward = ar_forward,
    .backward = ar_backward,
    .to_json = ar_to_json,
};

dpt_status dpt_activity_regularization_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_actreg_layer *a = calloc(1, sizeof *a);
    if (!a)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    a->reg.kind = DPT_REG_L1L2;
    dpt_status st = dpt_layer_base_init(&a->base, &ar_ops, config, ctx, in);
    if (st == DPT_OK)
        st = dpt_json_get_num(config, "l1", ctx, 0.0, 0.0, HUGE_VAL, true, &a->reg.l1);
    if (st == DPT_OK)
        st = dpt_json_get_num(config, "l2", ctx, 0.0, 0.0, HUGE_VAL, true, &a->reg.l2);
    if (st == DPT_OK)
        st = dpt_json_require_null(config, "activity_regularizer", ctx);
    if (st != DPT_OK) {
        free(a);
        return st;
    }
    a->base.has_activity_reg = true;
    *out = &a->base;
    return DPT_OK;
}
