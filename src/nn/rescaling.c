/* Two Keras preprocessing layers that are plain affine maps, kept in the model:
 *   Rescaling(scale, offset): y = x * scale + offset (numbers; per-channel arrays refused);
 *   Normalization(axis -1, mean, variance, invert false): y = (x - mean) / max(sqrt(var), 1e-7)
 *     per channel of the last axis. With mean and variance in the config (a number or a list of
 *     1 or C numbers) they are constants and the layer has no weights, as in Keras. Without them
 *     (an adapted layer) they are Keras's non-trainable weights "mean" (C), "variance" (C) and
 *     "count" () — initialised 0, 1, 0 and loaded from a Keras weight file; the count is kept as a
 *     float and unused. dptrain does not adapt: train from a file whose statistics are set.
 * Neither has trainable parameters; backward is dx = dy * (the slope).
 * Refused: invert: true, axes other than the last (and axis null: one statistic for all).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    bool norm;      /* Normalization (else Rescaling) */
    double scale, offset;
    int64_t C;                    /* Normalization: the last dimension */
    bool has_weights;             /* Normalization: mean/variance/count are weights */
    float *mean, *var;            /* (C) config constants when !has_weights, owned */
    json_t *mean_json, *var_json; /* as given (owned) or NULL */
} dpt_affine;

static int64_t af_n_params(const dpt_layer *l) {
    const dpt_affine *a = (const dpt_affine *)l;
    return a->has_weights ? 2 * a->C + 1 : 0;
}

static int64_t af_n_trainable(const dpt_layer *l) {
    (void)l;
    return 0;
}

static void af_init_params(dpt_layer *l, dpt_rng *rng) {
    (void)rng;
    dpt_affine *a = (dpt_affine *)l;
    if (!a->has_weights)
        return;
    for (int64_t c = 0; c < a->C; c++) {
        l->params[c] = 0.0f;
        l->params[a->C + c] = 1.0f;
    }
    l->params[2 * a->C] = 0.0f;
}

static const float *af_mean(const dpt_layer *l) {
    const dpt_affine *a = (const dpt_affine *)l;
    return a->has_weights ? l->params : a->mean;
}
static const float *af_var(const dpt_layer *l) {
    const dpt_affine *a = (const dpt_affine *)l;
    return a->has_weights ? l->params + a->C : a->var;
}

/* 1 / max(sqrt(var), epsilon), Keras's divisor (backend epsilon 1e-7) */
static inline float inv_std(float v) { return 1.0f / fmaxf(sqrtf(v), 1e-7f); }

/* x (B, ..., C), y the same */
static void af_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_affine *a = (dpt_affine *)l;
    const int64_t total = B * l->in_size;
    if (!a->norm) {
        const float s = (float)a->scale, o = (float)a->offset;
        for (int64_t k = 0; k < total; k++)
            y[k] = x[k] * s + o;
        return;
    }
    const float *m = af_mean(l), *v = af_var(l);
    const int64_t C = a->C;
    for (int64_t r = 0; r < total / C; r++)
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (x[r * C + c] - m[c]) / fmaxf(sqrtf(v[c]), 1e-7f);
}

static void af_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    dpt_affine *a = (dpt_affine *)l;
    if (!dx)
        return;
    const int64_t total = B * l->in_size;
    if (!a->norm) {
        const float s = (float)a->scale;
        for (int64_t k = 0; k < total; k++)
            dx[k] = dy[k] * s;
        return;
    }
    const float *v = af_var(l);
    const int64_t C = a->C;
    for (int64_t r = 0; r < total / C; r++)
        for (int64_t c = 0; c < C; c++)
            dx[r * C + c] = dy[r * C + c] * inv_std(v[c]);
}

static int af_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_affine *a = (const dpt_affine *)l;
    if (!a->has_weights || max < 3)
        return 0;
    names[0] = "mean";
    shapes[0] = (dpt_shape){.rank = 1, .dim = {a->C}};
    names[1] = "variance";
    shapes[1] = (dpt_shape){.rank = 1, .dim = {a->C}};
    names[2] = "count";
    shapes[2] = (dpt_shape){.rank = 0};
    return 3;
}

static json_t *af_to_json(const dpt_layer *l) {
    const dpt_affine *a = (const dpt_affine *)l;
    json_t *c = dpt_layer_base_json(l);
    if (!a->norm) {
        json_object_set_new(c, "scale", json_real(a->scale));
        json_object_set_new(c, "offset", json_real(a->offset));
        return c;
    }
    json_object_set_new(c, "axis", json_pack("[i]", -1));
    json_object_set_new(c, "invert", json_false());
    json_object_set_new(c, "mean", a->mean_json ? json_incref(a->mean_json) : json_null());
    json_object_set_new(c, "variance", a->var_json ? json_incref(a->var_json) : json_null());
    return c;
}

static void af_destroy(dpt_layer *l) {
    dpt_affine *a = (dpt_affine *)l;
    free(a->mean);
    free(a->var);
    json_decref(a->mean_json);
    json_decref(a->var_json);
    a->mean = a->var = NULL;
    a->mean_json = a->var_json = NULL;
}

static const dpt_layer_ops rescaling_ops = {
    .class_name = "Rescaling",
    .n_params = af_n_params,
    .init_params = af_init_params,
    .forward = af_forward,
    .backward = af_backward,
    .weights = af_weights,
    .to_json = af_to_json,
    .destroy = af_destroy,
    .n_trainable = af_n_trainable,
};

static const dpt_layer_ops normalization_ops = {
    .class_name = "Normalization",
    .n_params = af_n_params,
    .init_params = af_init_params,
    .forward = af_forward,
    .backward = af_backward,
    .weights = af_weights,
    .to_json = af_to_json,
    .destroy = af_destroy,
    .n_trainable = af_n_trainable,
};

/* a number, or a list of 1 or C numbers, at config[key] -> out (C) broadcast */
static dpt_status stat_values(const json_t *v, const char *key, const dpt_json_ctx *ctx, int64_t C,
                              bool variance, float *out) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n != 1 && (int64_t)n != C)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be a number or a list of 1 or %lld numbers (the "
                             "last axis), got %zu",
                             ctx->file, ctx->path, key, (long long)C, n);
    for (int64_t c = 0; c < C; c++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, n == 1 ? 0 : (size_t)c) : v;
        if (!json_is_number(e))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.%s: must be a number or a list of numbers, got %s",
                                 ctx->file, ctx->path, key, dpt_json_type_name(e));
        double d = json_number_value(e);
        if (!isfinite(d) || (variance && d < 0))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be finite%s, got %g", ctx->file,
                                 ctx->path, key, variance ? " and >= 0" : "", d);
        out[c] = (float)d;
    }
    return DPT_OK;
}

static dpt_status norm_parse(dpt_affine *a, const json_t *config, const dpt_json_ctx *ctx,
                             const dpt_shape *in) {
    if (in->rank < 1)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: Normalization needs an input with an axis",
                             ctx->file, ctx->path);
    const json_t *ax = json_object_get(config, "axis");
    if (ax && json_is_null(ax))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.axis: null (one mean and variance for every value) is not "
                             "supported; only the last axis (-1)",
                             ctx->file, ctx->path);
    bool invert = false;
    dpt_status st = dpt_json_check_last_axis(config, "axis", ctx, in);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "invert", ctx, false, &invert);
    if (st != DPT_OK)
        return st;
    if (invert)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.invert: not supported (must be false)",
                             ctx->file, ctx->path);
    a->C = in->dim[in->rank - 1];
    const json_t *m = json_object_get(config, "mean"), *v = json_object_get(config, "variance");
    bool hm = m && !json_is_null(m), hv = v && !json_is_null(v);
    if (hm != hv)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: mean and variance must both be set",
                             ctx->file, ctx->path, hm ? "variance" : "mean");
    a->has_weights = !hm;
    if (!hm)
        return DPT_OK;
    a->mean = malloc((size_t)a->C * sizeof(float));
    a->var = malloc((size_t)a->C * sizeof(float));
    if (!a->mean || !a->var)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    if ((st = stat_values(m, "mean", ctx, a->C, false, a->mean)) != DPT_OK ||
        (st = stat_values(v, "variance", ctx, a->C, true, a->var)) != DPT_OK)
        return st;
    a->mean_json = json_incref((json_t *)m);
    a->var_json = json_incref((json_t *)v);
    return DPT_OK;
}

/* Rescaling's scale / offset: a JSON number (Keras serialises an array as a __numpy__ object) */
static dpt_status scalar_arg(const json_t *config, const char *key, const dpt_json_ctx *ctx,
                             double def, bool required, double *out) {
    const json_t *v = json_object_get(config, key);
    if ((!v || json_is_null(v)) && required)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: missing (a number)", ctx->file, ctx->path,
                             key);
    if (v && !json_is_null(v) && !json_is_number(v))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: only a number is supported (per-channel values are "
                             "not), got %s",
                             ctx->file, ctx->path, key, dpt_json_type_name(v));
    return dpt_json_get_num(config, key, ctx, def, -HUGE_VAL, HUGE_VAL, false, out);
}

static dpt_status af_create(bool norm, const json_t *config, const dpt_json_ctx *ctx,
                            const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_affine *a = calloc(1, sizeof *a);
    if (!a)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    a->norm = norm;
    dpt_status st =
        dpt_layer_base_init(&a->base, norm ? &normalization_ops : &rescaling_ops, config, ctx, in);
    if (st == DPT_OK && norm)
        st = norm_parse(a, config, ctx, in);
    if (st == DPT_OK && !norm)
        st = scalar_arg(config, "scale", ctx, 1.0, true, &a->scale);
    if (st == DPT_OK && !norm)
        st = scalar_arg(config, "offset", ctx, 0.0, false, &a->offset);
    if (st != DPT_OK) {
        af_destroy(&a->base);
        free(a);
        return st;
    }
    *out = &a->base;
    return DPT_OK;
}

dpt_status dpt_rescaling_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    return af_create(false, config, ctx, in, out);
}

dpt_status dpt_normalization_create(const json_t *config, const dpt_json_ctx *ctx,
                                    const dpt_shape *in, dpt_layer **out) {
    return af_create(true, config, ctx, in, out);
}
