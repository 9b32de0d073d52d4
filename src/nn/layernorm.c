/* The Keras LayerNormalization layer over the last axis: for each sample and each position of the
 * leading axes, over the n values of the last axis,
 *   y = (x - mean) / sqrt(var + epsilon) * gamma + beta      (var biased, as ops.moments)
 * with gamma (n) if scale, then beta (n) if center, both trainable (Keras weight order).
 * The statistics are per row, so there is no batch dependence and nothing to reduce across ranks;
 * backward recomputes them from x (one pass) instead of keeping them. Sums in double.
 * Refused: other axes (and several axes), rms_scaling: true (deprecated in Keras 3, a different
 * formula), constraints. Also here: the "last axis only" check the normalisation layers share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

dpt_status dpt_json_check_last_axis(const json_t *config, const char *key, const dpt_json_ctx *ctx,
                                    const dpt_shape *in) {
    const json_t *v = json_object_get(config, key);
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    if (json_is_integer(v) && (json_integer_value(v) == -1 || json_integer_value(v) == in->rank))
        return DPT_OK;
    char *s = json_dumps(json_object_get(config, key), JSON_COMPACT | JSON_ENCODE_ANY);
    dpt_status st = dpt_error_set(DPT_ERR_CONFIG,
                                  "%s: %s.%s: only the last axis (-1 or %d) is supported, got %s",
                                  ctx->file, ctx->path, key, in->rank, s ? s : "?");
    free(s);
    return st;
}

typedef struct {
    dpt_layer base; /* first */
    int64_t n;      /* the last dimension: values per row */
    double epsilon;
    bool center, scale;
    dpt_init_spec gamma_init, beta_init;
    dpt_regularizer gamma_reg, beta_reg;
} dpt_ln;

static int64_t ln_n_params(const dpt_layer *l) {
    const dpt_ln *d = (const dpt_ln *)l;
    return (d->scale ? d->n : 0) + (d->center ? d->n : 0);
}

static void ln_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_ln *d = (dpt_ln *)l;
    float *p = l->params;
    if (d->scale) {
        dpt_init_fill(&d->gamma_init, p, d->n, d->n, d->n, rng);
        p += d->n;
    }
    if (d->center)
        dpt_init_fill(&d->beta_init, p, d->n, d->n, d->n, rng);
}

/* mean and 1 / sqrt(var + eps) of one row r (n) */
static void row_stats(const float *r, int64_t n, double eps, double *mean, double *istd) {
    double s = 0;
    for (int64_t j = 0; j < n; j++)
        s += r[j];
    double m = s / (double)n, v = 0;
    for (int64_t j = 0; j < n; j++)
        v += ((double)r[j] - m) * ((double)r[j] - m);
    *mean = m;
    *istd = 1.0 / sqrt(v / (double)n + eps);
}

/* x (B, ..., n), y the same */
static void ln_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_ln *d = (dpt_ln *)l;
    const int64_t n = d->n, rows = B * (l->in_size / n);
    const float *gamma = d->scale ? l->params : NULL;                      /* (n) */
    const float *beta = d->center ? l->params + (d->scale ? n : 0) : NULL; /* (n) */
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * n;
        float *yr = y + i * n;
        double m, is;
        row_stats(xr, n, d->epsilon, &m, &is);
        for (int64_t j = 0; j < n; j++) {
            double v = ((double)xr[j] - m) * is;
            if (gamma)
                v *= gamma[j];
            if (beta)
                v += beta[j];
            yr[j] = (float)v;
        }
    }
}

/* dx = istd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; dgamma += dy * xhat,
 * dbeta += dy */
static void ln_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)p;
    (void)y;
    dpt_ln *d = (dpt_ln *)l;
    const int64_t n = d->n, rows = B * (l->in_size / n);
    const float *gamma = d->scale ? l->params : NULL;
    float *dgamma = d->scale && l->trainable ? l->grads : NULL;
    float *dbeta = d->center && l->trainable ? l->grads + (d->scale ? n : 0) : NULL;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * n, *dyr = dy + i * n;
        double m, is;
        row_stats(xr, n, d->epsilon, &m, &is);
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < n; j++) {
            double xh = ((double)xr[j] - m) * is;
            double g = (double)dyr[j] * (gamma ? gamma[j] : 1.0f);
            sg += g;
            sgx += g * xh;
            if (dgamma)
                dgamma[j] += (float)((double)dyr[j] * xh);
            if (dbeta)
                dbeta[j] += dyr[j];
        }
        if (!dx)
            continue;
        sg /= (double)n;
        sgx /= (double)n;
        float *dxr = dx + i * n;
        for (int64_t j = 0; j < n; j++) {
            double xh = ((double)xr[j] - m) * is;
            double g = (double)dyr[j] * (gamma ? gamma[j] : 1.0f);
            dxr[j] = (float)(is * (g - sg - xh * sgx));
        }
    }
}

static int ln_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_ln *d = (const dpt_ln *)l;
    int k = 0;
    if (d->scale && k < max) {
        names[k] = "gamma";
        shapes[k++] = (dpt_shape){.rank = 1, .dim = {d->n}};
    }
    if (d->center && k < max) {
        names[k] = "beta";
        shapes[k++] = (dpt_shape){.rank = 1, .dim = {d->n}};
    }
    return k;
}

static double ln_regularize(dpt_layer *l, float scale) {
    dpt_ln *d = (dpt_ln *)l;
    bool g = scale != 0.0f && l->trainable;
    double pen = 0;
    int64_t o = 0;
    if (d->scale) {
        pen += dpt_regularizer_apply(&d->gamma_reg, l->params, g ? l->grads : NULL, d->n, scale);
        o = d->n;
    }
    if (d->center)
        pen += dpt_regularizer_apply(&d->beta_reg, l->params + o, g ? l->grads + o : NULL, d->n,
                                     scale);
    return pen;
}

static json_t *ln_to_json(const dpt_layer *l) {
    const dpt_ln *d = (const dpt_ln *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "axis", json_integer(-1));
    json_object_set_new(c, "epsilon", json_real(d->epsilon));
    json_object_set_new(c, "center", json_boolean(d->center));
    json_object_set_new(c, "scale", json_boolean(d->scale));
    json_object_set_new(c, "beta_initializer", dpt_init_to_json(&d->beta_init));
    json_object_set_new(c, "gamma_initializer", dpt_init_to_json(&d->gamma_init));
    json_object_set_new(c, "beta_regularizer", dpt_regularizer_to_json(&d->beta_reg));
    json_object_set_new(c, "gamma_regularizer", dpt_regularizer_to_json(&d->gamma_reg));
    json_object_set_new(c, "beta_constraint", json_null());
    json_object_set_new(c, "gamma_constraint", json_null());
    return c;
}

static const dpt_layer_ops ln_ops = {
    .class_name = "LayerNormalization",
    .n_params = ln_n_params,
    .init_params = ln_init_params,
    .forward = ln_forward,
    .backward = ln_backward,
    .weights = ln_weights,
    .to_json = ln_to_json,
    .regularize = ln_regularize,
};

static dpt_status ln_parse(dpt_ln *d, const json_t *config, const dpt_json_ctx *ctx,
                           const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &ln_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank < 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: LayerNormalization needs an input with an axis", ctx->file,
                             ctx->path);
    bool rms = false;
    dpt_init_spec ones = {.kind = DPT_INIT_ONES};
    if ((st = dpt_json_check_last_axis(config, "axis", ctx, in)) != DPT_OK ||
        (st = dpt_json_get_num(config, "epsilon", ctx, 1e-3, 0.0, HUGE_VAL, false, &d->epsilon)) !=
            DPT_OK ||
        (st = dpt_json_get_bool(config, "center", ctx, true, &d->center)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "scale", ctx, true, &d->scale)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "rms_scaling", ctx, false, &rms)) != DPT_OK ||
        (st = dpt_init_parse(config, "gamma_initializer", ctx, ones, &d->gamma_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "beta_initializer", ctx, dpt_init_zeros(), &d->beta_init)) !=
            DPT_OK ||
        (st = dpt_regularizer_parse(config, "gamma_regularizer", ctx, &d->gamma_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "beta_regularizer", ctx, &d->beta_reg)) != DPT_OK)
        return st;
    if (rms)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.rms_scaling: not supported (must be false; Keras 3 "
                             "deprecates it)",
                             ctx->file, ctx->path);
    static const char *const must_be_null[] = {"beta_constraint", "gamma_constraint",
                                               "activity_regularizer"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        if ((st = dpt_json_require_null(config, must_be_null[i], ctx)) != DPT_OK)
            return st;
    if (!(d->epsilon > 0))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.epsilon: must be > 0, got %g", ctx->file,
                             ctx->path, d->epsilon);
    d->n = in->dim[in->rank - 1];
    l->has_regularizer = d->gamma_reg.kind != DPT_REG_NONE || d->beta_reg.kind != DPT_REG_NONE;
    return DPT_OK;
}

dpt_status dpt_layernorm_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    *out = NULL;
    dpt_ln *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = ln_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
