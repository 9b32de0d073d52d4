/* The Keras activation layers with parameters of their own, elementwise over any input shape:
 *   ReLU(max_value, negative_slope, threshold): y = x > t ? min(x, max_value) : slope * (x - t)
 *     (Keras's relu with arguments; its leaky path when max_value is null and t = 0 is the same
 *     function);
 *   LeakyReLU(negative_slope, Keras 2's `alpha`; 0.3 in both): y = x >= 0 ? x : slope * x;
 *   PReLU: y = x > 0 ? x : alpha * x with a trainable weight "alpha" of the input's shape, 1 along
 *     shared_axes (alpha_initializer zeros, alpha_regularizer; constraints refused);
 *   ELU(alpha 1): y = x > 0 ? x : alpha * (e^x - 1);
 *   Softmax(axis -1): over the last axis of each sample (other axes refused).
 * Backward reads the input x (the pre-activation) and, for softmax, the output. None of these
 * is folded into a loss: Keras (JAX) does not fold a Softmax layer either.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef enum { K_RELU = 0, K_LEAKY, K_PRELU, K_ELU, K_SOFTMAX } kind_t;

typedef struct {
    dpt_layer base; /* first */
    kind_t kind;
    double max_value; /* ReLU; HUGE_VAL: none */
    bool has_max;
    double slope;     /* ReLU, LeakyReLU negative_slope */
    double threshold; /* ReLU */
    double alpha;     /* ELU */
    /* PReLU */
    dpt_init_spec alpha_init;
    dpt_regularizer alpha_reg;
    dpt_shape alpha_shape; /* the input's shape with 1 along shared axes */
    int64_t n_alpha;
    int32_t *aidx;  /* (in_size) alpha index of each element of a sample; NULL: identity */
    json_t *shared; /* shared_axes as given (owned) or NULL */
    int64_t n_last; /* Softmax: the last dimension */
} dpt_actl;

static int64_t actl_n_params(const dpt_layer *l) {
    const dpt_actl *a = (const dpt_actl *)l;
    return a->kind == K_PRELU ? a->n_alpha : 0;
}

static void actl_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_actl *a = (dpt_actl *)l;
    if (a->kind != K_PRELU)
        return;
    /* Keras compute_fans of the alpha shape: (n) -> n, n; (a, b) -> a, b; more dimensions ->
     * the last two times the product of the others */
    const dpt_shape *s = &a->alpha_shape;
    int64_t fi = a->n_alpha, fo = a->n_alpha;
    if (s->rank == 2) {
        fi = s->dim[0];
        fo = s->dim[1];
    } else if (s->rank > 2) {
        int64_t rf = a->n_alpha / (s->dim[s->rank - 2] * s->dim[s->rank - 1]);
        fi = s->dim[s->rank - 2] * rf;
        fo = s->dim[s->rank - 1] * rf;
    }
    dpt_init_fill(&a->alpha_init, l->params, a->n_alpha, fi, fo, rng);
}

/* x (B, n), y (B, n) */
static void actl_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_actl *a = (dpt_actl *)l;
    const int64_t n = l->in_size, total = B * n;
    switch (a->kind) {
    case K_RELU: {
        const float t = (float)a->threshold, s = (float)a->slope;
        const float mx = a->has_max ? (float)a->max_value : INFINITY;
        for (int64_t k = 0; k < total; k++)
            y[k] = x[k] > t ? fminf(x[k], mx) : s * (x[k] - t);
        return;
    }
    case K_LEAKY: {
        const float s = (float)a->slope;
        for (int64_t k = 0; k < total; k++)
            y[k] = x[k] >= 0.0f ? x[k] : s * x[k];
        return;
    }
    case K_PRELU: {
        const float *al = l->params; /* (n_alpha) */
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < n; k++) {
                float v = x[b * n + k];
                y[b * n + k] = v > 0.0f ? v : al[a->aidx ? a->aidx[k] : k] * v;
            }
        return;
    }
    case K_ELU: {
        const float al = (float)a->alpha;
        for (int64_t k = 0; k < total; k++)
            y[k] = x[k] > 0.0f ? x[k] : al * expm1f(x[k]);
        return;
    }
    case K_SOFTMAX:
        if (y != x)
            memcpy(y, x, (size_t)total * sizeof(float));
        dpt_act_forward(DPT_ACT_SOFTMAX, y, total / a->n_last, a->n_last);
        return;
    }
}

/* x, y, dy (B, n); dx (B, n) or NULL */
static void actl_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                          float *dy, float *dx, int64_t B) {
    (void)p;
    dpt_actl *a = (dpt_actl *)l;
    const int64_t n = l->in_size, total = B * n;
    if (B <= 0)
        return;
    if (a->kind == K_PRELU && l->trainable) {
        float *da = l->grads; /* (n_alpha): d y / d alpha = min(x, 0) */
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < n; k++) {
                float v = x[b * n + k];
                if (v < 0.0f)
                    da[a->aidx ? a->aidx[k] : k] += dy[b * n + k] * v;
            }
    }
    if (!dx)
        return;
    switch (a->kind) {
    case K_RELU: {
        const float t = (float)a->threshold, s = (float)a->slope;
        const float mx = a->has_max ? (float)a->max_value : INFINITY;
        for (int64_t k = 0; k < total; k++)
            dx[k] = x[k] > t ? (x[k] < mx ? dy[k] : 0.0f) : s * dy[k];
        return;
    }
    case K_LEAKY: {
        const float s = (float)a->slope;
        for (int64_t k = 0; k < total; k++)
            dx[k] = x[k] >= 0.0f ? dy[k] : s * dy[k];
        return;
    }
    case K_PRELU: {
        const float *al = l->params;
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < n; k++) {
                int64_t i = b * n + k;
                dx[i] = x[i] > 0.0f ? dy[i] : al[a->aidx ? a->aidx[k] : k] * dy[i];
            }
        return;
    }
    case K_ELU: { /* below 0: alpha e^x = y + alpha */
        const float al = (float)a->alpha;
        for (int64_t k = 0; k < total; k++)
            dx[k] = x[k] > 0.0f ? dy[k] : dy[k] * (y[k] + al);
        return;
    }
    case K_SOFTMAX:
        dpt_act_backward(DPT_ACT_SOFTMAX, y, dy, dx, total / a->n_last, a->n_last);
        return;
    }
}

static int actl_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_actl *a = (const dpt_actl *)l;
    if (a->kind != K_PRELU || max < 1)
        return 0;
    names[0] = "alpha";
    shapes[0] = a->alpha_shape;
    return 1;
}

static double actl_regularize(dpt_layer *l, float scale) {
    dpt_actl *a = (dpt_actl *)l;
    bool g = scale != 0.0f && l->trainable;
    return dpt_regularizer_apply(&a->alpha_reg, l->params, g ? l->grads : NULL, a->n_alpha, scale);
}

static json_t *actl_to_json(const dpt_layer *l) {
    const dpt_actl *a = (const dpt_actl *)l;
    json_t *c = dpt_layer_base_json(l);
    switch (a->kind) {
    case K_RELU:
        json_object_set_new(c, "max_value", a->has_max ? json_real(a->max_value) : json_null());
        json_object_set_new(c, "negative_slope", json_real(a->slope));
        json_object_set_new(c, "threshold", json_real(a->threshold));
        break;
    case K_LEAKY:
        json_object_set_new(c, "negative_slope", json_real(a->slope));
        break;
    case K_PRELU:
        json_object_set_new(c, "alpha_initializer", dpt_init_to_json(&a->alpha_init));
        json_object_set_new(c, "alpha_regularizer", dpt_regularizer_to_json(&a->alpha_reg));
        json_object_set_new(c, "alpha_constraint", json_null());
        json_object_set_new(c, "shared_axes", a->shared ? json_incref(a->shared) : json_null());
        break;
    case K_ELU:
        json_object_set_new(c, "alpha", json_real(a->alpha));
        break;
    case K_SOFTMAX:
        json_object_set_new(c, "axis", json_integer(-1));
        break;
    }
    return c;
}

static void actl_destroy(dpt_layer *l) {
    dpt_actl *a = (dpt_actl *)l;
    free(a->aidx);
    a->aidx = NULL;
    json_decref(a->shared);
    a->shared = NULL;
}

#define ACTL_OPS(var, cls)                                                                         \
    static const dpt_layer_ops var = {                                                             \
        .class_name = cls,                                                                         \
        .n_params = actl_n_params,                                                                 \
        .init_params = actl_init_params,                                                           \
        .forward = actl_forward,                                                                   \
        .backward = actl_backward,                                                                 \
        .weights = actl_weights,                                                                   \
        .to_json = actl_to_json,                                                                   \
        .destroy = actl_destroy,                                                                   \
        .regularize = actl_regularize,                                                             \
    }
ACTL_OPS(relu_ops, "ReLU");
ACTL_OPS(leaky_ops, "LeakyReLU");
ACTL_OPS(prelu_ops, "PReLU");
ACTL_OPS(elu_ops, "ELU");
ACTL_OPS(softmax_ops, "Softmax");

/* PReLU's shared_axes: null, an integer or a list of integers in [1, rank] (1-based, the batch
 * axis is 0); the alpha shape and each element's alpha index. */
static dpt_status prelu_shared_axes(dpt_actl *a, const json_t *config, const dpt_json_ctx *ctx,
                                    const dpt_shape *in) {
    const json_t *v = json_object_get(config, "shared_axes");
    a->alpha_shape = *in;
    if (v && !json_is_null(v)) {
        json_t *list = json_is_array(v) ? json_incref((json_t *)v) : json_pack("[O]", v);
        a->shared = list;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                json_integer_value(e) > in->rank)
                return dpt_error_set(DPT_ERR_CONFIG,
                                     "%s: %s.shared_axes: each axis must be an integer in [1, %d] "
                                     "(the batch axis is 0)",
                                     ctx->file, ctx->path, in->rank);
            a->alpha_shape.dim[json_integer_value(e) - 1] = 1;
        }
    }
    a->n_alpha = dpt_shape_size(&a->alpha_shape);
    if (a->n_alpha == a->base.in_size)
        return DPT_OK;
    if (a->base.in_size > INT32_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: input too large for PReLU", ctx->file,
                             ctx->path);
    a->aidx = malloc((size_t)a->base.in_size * sizeof *a->aidx);
    if (!a->aidx)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    for (int64_t k = 0; k < a->base.in_size; k++) {
        int64_t rem = k, idx = 0, stride_in = a->base.in_size, stride_a = a->n_alpha;
        for (int d = 0; d < in->rank; d++) {
            stride_in /= in->dim[d];
            stride_a /= a->alpha_shape.dim[d];
            int64_t c = rem / stride_in;
            rem %= stride_in;
            if (a->alpha_shape.dim[d] != 1)
                idx += c * stride_a;
        }
        a->aidx[k] = (int32_t)idx;
    }
    return DPT_OK;
}

static dpt_status actl_parse(dpt_actl *a, const dpt_layer_ops *ops, kind_t kind,
                             const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in) {
    dpt_layer *l = &a->base;
    a->kind = kind;
    dpt_status st = dpt_layer_base_init(l, ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    switch (kind) {
    case K_RELU: {
        const json_t *mv = json_object_get(config, "max_value");
        a->has_max = mv && !json_is_null(mv);
        if (a->has_max)
            st = dpt_json_get_num(config, "max_value", ctx, 0.0, 0.0, HUGE_VAL, false,
                                  &a->max_value);
        if (st == DPT_OK)
            st = dpt_json_get_num(config, "negative_slope", ctx, 0.0, 0.0, HUGE_VAL, false,
                                  &a->slope);
        if (st == DPT_OK)
            st = dpt_json_get_num(config, "threshold", ctx, 0.0, 0.0, HUGE_VAL, false,
                                  &a->threshold);
        return st;
    }
    case K_LEAKY: /* Keras 2 writes alpha, Keras 3 negative_slope (and takes alpha over it) */
        st = dpt_json_get_num(config, "negative_slope", ctx, 0.3, 0.0, HUGE_VAL, false, &a->slope);
        if (st == DPT_OK && json_object_get(config, "alpha") &&
            !json_is_null(json_object_get(config, "alpha")))
            st = dpt_json_get_num(config, "alpha", ctx, 0.3, 0.0, HUGE_VAL, false, &a->slope);
        return st;
    case K_ELU:
        return dpt_json_get_num(config, "alpha", ctx, 1.0, -HUGE_VAL, HUGE_VAL, false, &a->alpha);
    case K_PRELU:
        if ((st = dpt_init_parse(config, "alpha_initializer", ctx, dpt_init_zeros(),
                                 &a->alpha_init)) != DPT_OK ||
            (st = dpt_regularizer_parse(config, "alpha_regularizer", ctx, &a->alpha_reg)) !=
                DPT_OK ||
            (st = dpt_json_require_null(config, "alpha_constraint", ctx)) != DPT_OK)
            return st;
        l->has_regularizer = a->alpha_reg.kind != DPT_REG_NONE;
        return prelu_shared_axes(a, config, ctx, in);
    case K_SOFTMAX: {
        if (in->rank < 1)
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: Softmax needs an input with an axis",
                                 ctx->file, ctx->path);
        const json_t *v = json_object_get(config, "axis");
        if (json_is_array(v) && json_array_size(v) == 1)
            v = json_array_get(v, 0);
        if (v && !json_is_null(v) &&
            !(json_is_integer(v) &&
              (json_integer_value(v) == -1 || json_integer_value(v) == in->rank))) {
            char *s = json_dumps(json_object_get(config, "axis"), JSON_COMPACT | JSON_ENCODE_ANY);
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "%s: %s.axis: only the last axis (-1 or %d) is supported, got %s",
                               ctx->file, ctx->path, in->rank, s ? s : "?");
            free(s);
            return st;
        }
        a->n_last = in->dim[in->rank - 1];
        return DPT_OK;
    }
    }
    return DPT_OK;
}

static dpt_status actl_create(const dpt_layer_ops *ops, kind_t kind, const json_t *config,
                              const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_actl *a = calloc(1, sizeof *a);
    if (!a)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = actl_parse(a, ops, kind, config, ctx, in);
    if (st != DPT_OK) {
        actl_destroy(&a->base);
        free(a);
        return st;
    }
    *out = &a->base;
    return DPT_OK;
}

dpt_status dpt_relu_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                           dpt_layer **out) {
    return actl_create(&relu_ops, K_RELU, config, ctx, in, out);
}
dpt_status dpt_leaky_relu_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_layer **out) {
    return actl_create(&leaky_ops, K_LEAKY, config, ctx, in, out);
}
dpt_status dpt_prelu_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    return actl_create(&prelu_ops, K_PRELU, config, ctx, in, out);
}
dpt_status dpt_elu_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                          dpt_layer **out) {
    return actl_create(&elu_ops, K_ELU, config, ctx, in, out);
}
dpt_status dpt_softmax_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                              dpt_layer **out) {
    return actl_create(&softmax_ops, K_SOFTMAX, config, ctx, in, out);
}
