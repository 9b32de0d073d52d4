/* The Keras BatchNormalization layer over the last axis (channels_last): per channel c,
 *   training:  y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta   (batch statistics)
 *   inference: y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta
 * Parameters in Keras weight order: gamma (C) if scale, beta (C) if center — trainable — then
 * moving_mean (C), moving_variance (C): NOT trainable (n_trainable stops before them; they get no
 * gradient, and the model leaves them out of its trainable segments) but in the flat buffer, so
 * checkpoints, Keras weight files and the start-up broadcast carry them.
 *
 * Decisions (see also include/dptrain/nn.h):
 * - Moving statistics: moving = moving * momentum + batch * (1 - momentum), computed in float32
 *   like Keras. The batch variance is the BIASED one (divide by the count), as Keras 3 computes it
 *   (ops.moments); TensorFlow's fused kernel, which tf.keras 2 used for 4-D inputs, Bessel-corrects
 *   the variance it feeds the moving average (n / (n - 1)). The difference is a factor
 *   1 + 1/(n - 1) on moving_variance only (1.0003 for a batch of 128 images of 26x26 pixels).
 * - Moving statistics are always updated from the GLOBAL batch: the per-channel (count, sum,
 *   sum of squares) go through the model's reducer (one allreduce of 2C + 1 doubles per layer per
 *   training step), so every rank applies the same update and the replicas stay bit-identical,
 *   whatever the rank count. Without a reducer (one process) it is the local batch.
 * - synchronized: false (Keras's default): each rank normalises with its OWN local batch
 *   statistics (per-replica batch norm, as Keras under a distribution strategy) and the gradient
 *   is that of the local normalisation. synchronized: true: every rank normalises with the
 *   global-batch statistics, and backward makes a second reduction (per-channel sums of dy and
 *   dy * xhat) so that the gradient is exactly that of the global-batch statistic.
 * - trainable: false runs in inference mode even in training (Keras 2.x TF2 behaviour, Keras 3).
 * Sums are accumulated in double; E[x^2] - E[x]^2 is clamped at 0.
 * gamma_constraint / beta_constraint: projected after each update (ops->constrain, constraint.c).
 * Refused: other axes (channels_first), renorm, virtual_batch_size, adjustment.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    int64_t C, S;   /* channels; values per channel per sample (in_size / C) */
    double momentum, epsilon;
    bool center, scale, synchronized;
    dpt_init_spec gamma_init, beta_init, mm_init, mv_init;
    dpt_regularizer gamma_reg, beta_reg;
    dpt_constraint gamma_con, beta_con;
    int64_t off_gamma, off_beta, off_mm, off_mv; /* offsets in the layer's view (-1: absent) */
    double *buf;                                 /* (4C + 2) scratch: reductions */
    double *mean; /* (C) statistics the last training forward normalised with */
    double *istd; /* (C) 1 / sqrt(var + eps) */
    double count; /* elements per channel those statistics were taken over */
    float *a, *b; /* (C) inference: y = x * a + b */
    double *log;  /* deferred statistics: (max_log, 2C + 1) local sums of the passes, or NULL */
    int max_log, n_log;
} dpt_bn;

static const dpt_layer_ops bn_ops;

static bool bn_training(const dpt_layer *l, const dpt_pass *p) {
    return p->training && l->trainable;
}

static bool bn_collective(const dpt_layer *l) {
    return l && l->ops == &bn_ops && l->trainable && !((const dpt_bn *)l)->log;
}

static int64_t bn_n_params(const dpt_layer *l) {
    const dpt_bn *d = (const dpt_bn *)l;
    return ((d->scale ? 1 : 0) + (d->center ? 1 : 0) + 2) * d->C;
}

static int64_t bn_n_trainable(const dpt_layer *l) {
    const dpt_bn *d = (const dpt_bn *)l;
    return ((d->scale ? 1 : 0) + (d->center ? 1 : 0)) * d->C;
}

static void bn_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_bn *d = (dpt_bn *)l;
    int64_t C = d->C;
    if (d->scale)
        dpt_init_fill(&d->gamma_init, l->params + d->off_gamma, C, C, C, rng);
    if (d->center)
        dpt_init_fill(&d->beta_init, l->params + d->off_beta, C, C, C, rng);
    dpt_init_fill(&d->mm_init, l->params + d->off_mm, C, C, C, rng);
    dpt_init_fill(&d->mv_init, l->params + d->off_mv, C, C, C, rng);
}

/* Inference coefficients exactly as Keras's batch_normalization op: inv = rsqrt(var + eps) * gamma,
 * res = beta - mean * inv, y = x * inv + res. */
static void bn_inference_coeffs(dpt_bn *d) {
    const float *P = d->base.params;
    const float eps = (float)d->epsilon;
    for (int64_t c = 0; c < d->C; c++) {
        float inv = 1.0f / sqrtf(P[d->off_mv + c] + eps);
        if (d->scale)
            inv *= P[d->off_gamma + c];
        float res = -P[d->off_mm + c] * inv;
        if (d->center)
            res += P[d->off_beta + c];
        d->a[c] = inv;
        d->b[c] = res;
    }
}

/* moving = moving * momentum + batch * (1 - momentum), in float32, from the global batch's sums
 * g = [count, sum (C), sumsq (C)]; nothing when the count is 0 */
static void bn_update_moving(dpt_layer *l, const double *g) {
    dpt_bn *d = (dpt_bn *)l;
    if (!(g[0] > 0))
        return;
    float *mm = l->params + d->off_mm, *mv = l->params + d->off_mv;
    const float mom = (float)d->momentum, om = (float)(1.0 - d->momentum);
    for (int64_t c = 0; c < d->C; c++) {
        double m = g[1 + c] / g[0], v = g[1 + d->C + c] / g[0] - m * m;
        mm[c] = mm[c] * mom + (float)m * om;
        mv[c] = mv[c] * mom + (float)(v > 0 ? v : 0.0) * om;
    }
}

static dpt_status bn_defer_stats(dpt_layer *l, int max_passes) {
    dpt_bn *d = (dpt_bn *)l;
    if (d->synchronized)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "BatchNormalization synchronized: true is not supported with "
                             "fit.reproducible (it normalises each micro-batch: use false)");
    free(d->log);
    d->log =
        calloc((size_t)(max_passes > 0 ? max_passes : 1), (size_t)(2 * d->C + 1) * sizeof(double));
    if (!d->log)
        return dpt_error_set(DPT_ERR_NOMEM, "out of memory");
    d->max_log = max_passes;
    d->n_log = 0;
    return DPT_OK;
}

/* the passes' logged sums over every rank, then one moving update from the global batch */
static void bn_finish_stats(dpt_layer *l, dpt_log_sum_fn sum, void *ctx) {
    dpt_bn *d = (dpt_bn *)l;
    if (!d->log)
        return;
    int n = (int)(2 * d->C + 1);
    sum(ctx, d->log, d->n_log, n, d->buf);
    d->n_log = 0;
    if (l->trainable)
        bn_update_moving(l, d->buf);
}

/* x (B, ..., C), y (B, ..., C): rows of C values */
static void bn_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_bn *d = (dpt_bn *)l;
    const int64_t C = d->C, rows = B * d->S;
    if (!bn_training(l, p)) {
        bn_inference_coeffs(d);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < C; c++)
                y[r * C + c] = x[r * C + c] * d->a[c] + d->b[c];
        return;
    }
    /* buf = [count, sum (C), sumsq (C)] local, then global; local copy after it */
    double *g = d->buf, *loc = d->buf + 2 * C + 1;
    memset(g, 0, (size_t)(2 * C + 1) * sizeof(double));
    g[0] = (double)rows;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
            double v = x[r * C + c];
            g[1 + c] += v;
            g[1 + C + c] += v * v;
        }
    memcpy(loc, g, (size_t)(2 * C + 1) * sizeof(double));
    if (d->log) { /* deferred (reproducible mode): logged, applied by bn_finish_stats */
        DPT_ASSERT(d->n_log < d->max_log);
        memcpy(d->log + (size_t)d->n_log++ * (size_t)(2 * C + 1), loc,
               (size_t)(2 * C + 1) * sizeof(double));
        g[0] = 0; /* no moving update here */
    } else if (l->reduce) {
        l->reduce(l->reduce_ctx, g, (int)(2 * C + 1));
    }
    /* the statistics this rank normalises with */
    const double *use = d->synchronized ? g : loc;
    d->count = use[0];
    for (int64_t c = 0; c < C; c++) {
        double n = use[0] > 0 ? use[0] : 1.0;
        double m = use[1 + c] / n, v = use[1 + C + c] / n - m * m;
        d->mean[c] = m;
        d->istd[c] = 1.0 / sqrt((v > 0 ? v : 0.0) + d->epsilon);
    }
    const float *P = l->params;
    for (int64_t c = 0; c < C; c++) {
        double a = d->istd[c] * (d->scale ? P[d->off_gamma + c] : 1.0f);
        d->a[c] = (float)a;
        d->b[c] = (float)((d->center ? P[d->off_beta + c] : 0.0f) - d->mean[c] * a);
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = x[r * C + c] * d->a[c] + d->b[c];
    bn_update_moving(l, g); /* from the global batch (identical on every rank) */
}

/* x, y, dy (B, ..., C); dx (B, ..., C) or NULL */
static void bn_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)y;
    dpt_bn *d = (dpt_bn *)l;
    const int64_t C = d->C, rows = B * d->S;
    float *G = l->grads;
    if (!bn_training(l, p)) {
        bn_inference_coeffs(d);
        if (l->trainable) {
            const float *P = l->params;
            for (int64_t c = 0; c < C; c++) {
                double sdy = 0, sdyx = 0;
                double istd = 1.0 / sqrt((double)P[d->off_mv + c] + (double)(float)d->epsilon);
                for (int64_t r = 0; r < rows; r++) {
                    double g = dy[r * C + c];
                    sdy += g;
                    sdyx += g * ((double)x[r * C + c] - P[d->off_mm + c]) * istd;
                }
                if (d->scale)
                    G[d->off_gamma + c] += (float)sdyx;
                if (d->center)
                    G[d->off_beta + c] += (float)sdy;
            }
        }
        if (dx)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < C; c++)
                    dx[r * C + c] = dy[r * C + c] * d->a[c];
        return;
    }
    /* per channel: sum dy, sum dy * xhat (local); dx = gamma * istd * (dy - mean(dy) -
     * xhat * mean(dy * xhat)), the means over the elements the statistics came from */
    double *s = d->buf; /* (2C) */
    memset(s, 0, (size_t)(2 * C) * sizeof(double));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
            double g = dy[r * C + c];
            double xh = ((double)x[r * C + c] - d->mean[c]) * d->istd[c];
            s[c] += g;
            s[C + c] += g * xh;
        }
    for (int64_t c = 0; c < C; c++) {
        if (d->scale)
            G[d->off_gamma + c] += (float)s[C + c];
        if (d->center)
            G[d->off_beta + c] += (float)s[c];
    }
    if (!dx)
        return;
    if (d->synchronized && l->reduce)
        l->reduce(l->reduce_ctx, s,
                  (int)(2 * C)); /* global sums: the global statistic's gradient */
    const double n = d->count > 0 ? d->count : 1.0;
    const float *P = l->params;
    for (int64_t c = 0; c < C; c++) {
        d->buf[2 * C + c] = s[c] / n;     /* mean of dy */
        d->buf[3 * C + c] = s[C + c] / n; /* mean of dy * xhat */
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
            double gam = d->scale ? P[d->off_gamma + c] : 1.0;
            double xh = ((double)x[r * C + c] - d->mean[c]) * d->istd[c];
            dx[r * C + c] =
                (float)(gam * d->istd[c] *
                        ((double)dy[r * C + c] - d->buf[2 * C + c] - xh * d->buf[3 * C + c]));
        }
}

static int bn_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_bn *d = (const dpt_bn *)l;
    int n = 0;
    const char *all[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    bool on[4] = {d->scale, d->center, true, true};
    for (int i = 0; i < 4; i++)
        if (on[i] && n < max) {
            names[n] = all[i];
            shapes[n++] = (dpt_shape){.rank = 1, .dim = {d->C}};
        }
    return n;
}

static double bn_regularize(dpt_layer *l, float scale) {
    dpt_bn *d = (dpt_bn *)l;
    bool g = scale != 0.0f && l->trainable;
    double pen = 0;
    if (d->scale)
        pen += dpt_regularizer_apply(&d->gamma_reg, l->params + d->off_gamma,
                                     g ? l->grads + d->off_gamma : NULL, d->C, scale);
    if (d->center)
        pen += dpt_regularizer_apply(&d->beta_reg, l->params + d->off_beta,
                                     g ? l->grads + d->off_beta : NULL, d->C, scale);
    return pen;
}

static void bn_constrain(dpt_layer *l) {
    dpt_bn *d = (dpt_bn *)l;
    dpt_shape s = {.rank = 1, .dim = {d->C}};
    if (d->scale)
        dpt_constraint_apply(&d->gamma_con, l->params + d->off_gamma, &s);
    if (d->center)
        dpt_constraint_apply(&d->beta_con, l->params + d->off_beta, &s);
}

static json_t *bn_to_json(const dpt_layer *l) {
    const dpt_bn *d = (const dpt_bn *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "axis", json_integer(-1));
    json_object_set_new(c, "momentum", json_real(d->momentum));
    json_object_set_new(c, "epsilon", json_real(d->epsilon));
    json_object_set_new(c, "center", json_boolean(d->center));
    json_object_set_new(c, "scale", json_boolean(d->scale));
    json_object_set_new(c, "beta_initializer", dpt_init_to_json(&d->beta_init));
    json_object_set_new(c, "gamma_initializer", dpt_init_to_json(&d->gamma_init));
    json_object_set_new(c, "moving_mean_initializer", dpt_init_to_json(&d->mm_init));
    json_object_set_new(c, "moving_variance_initializer", dpt_init_to_json(&d->mv_init));
    json_object_set_new(c, "beta_regularizer", dpt_regularizer_to_json(&d->beta_reg));
    json_object_set_new(c, "gamma_regularizer", dpt_regularizer_to_json(&d->gamma_reg));
    json_object_set_new(c, "beta_constraint", dpt_constraint_to_json(&d->beta_con));
    json_object_set_new(c, "gamma_constraint", dpt_constraint_to_json(&d->gamma_con));
    if (d->synchronized) /* Keras >= 2.12 / 3 key; left out when false so older Keras loads it */
        json_object_set_new(c, "synchronized", json_true());
    return c;
}

static void bn_destroy(dpt_layer *l) {
    dpt_bn *d = (dpt_bn *)l;
    free(d->buf);
    free(d->log);
    d->log = NULL;
    free(d->mean);
    free(d->istd);
    free(d->a);
    free(d->b);
    d->buf = d->mean = d->istd = NULL;
    d->a = d->b = NULL;
}

static const dpt_layer_ops bn_ops = {
    .class_name = "BatchNormalization",
    .collective = bn_collective,
    .defer_stats = bn_defer_stats,
    .finish_stats = bn_finish_stats,
    .n_params = bn_n_params,
    .init_params = bn_init_params,
    .forward = bn_forward,
    .backward = bn_backward,
    .weights = bn_weights,
    .to_json = bn_to_json,
    .destroy = bn_destroy,
    .n_trainable = bn_n_trainable,
    .regularize = bn_regularize,
    .constrain = bn_constrain,
};

/* axis: -1, the last index counting the batch dimension (in.rank), or a 1-element list of one */
static dpt_status bn_axis(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in) {
    const json_t *v = json_object_get(config, "axis");
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    if (json_is_integer(v)) {
        json_int_t a = json_integer_value(v);
        if (a == -1 || a == in->rank)
            return DPT_OK;
    }
    char *s = json_dumps(json_object_get(config, "axis"), JSON_COMPACT | JSON_ENCODE_ANY);
    dpt_status st = dpt_error_set(DPT_ERR_CONFIG,
                                  "%s: %s.axis: only the last axis (-1 or %d, channels_last) is "
                                  "supported, got %s",
                                  ctx->file, ctx->path, in->rank, s ? s : "?");
    free(s);
    return st;
}

static dpt_status bn_parse(dpt_bn *d, const json_t *config, const dpt_json_ctx *ctx,
                           const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &bn_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank < 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: BatchNormalization needs an input with a "
                             "channel axis",
                             ctx->file, ctx->path);
    bool renorm = false;
    dpt_init_spec ones = {.kind = DPT_INIT_ONES};
    if ((st = bn_axis(config, ctx, in)) != DPT_OK ||
        (st = dpt_json_get_num(config, "momentum", ctx, 0.99, 0.0, 1.0, false, &d->momentum)) !=
            DPT_OK ||
        (st = dpt_json_get_num(config, "epsilon", ctx, 1e-3, 0.0, HUGE_VAL, false, &d->epsilon)) !=
            DPT_OK ||
        (st = dpt_json_get_bool(config, "center", ctx, true, &d->center)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "scale", ctx, true, &d->scale)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "synchronized", ctx, false, &d->synchronized)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "renorm", ctx, false, &renorm)) != DPT_OK ||
        (st = dpt_init_parse(config, "gamma_initializer", ctx, ones, &d->gamma_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "beta_initializer", ctx, dpt_init_zeros(), &d->beta_init)) !=
            DPT_OK ||
        (st = dpt_init_parse(config, "moving_mean_initializer", ctx, dpt_init_zeros(),
                             &d->mm_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "moving_variance_initializer", ctx, ones, &d->mv_init)) !=
            DPT_OK ||
        (st = dpt_regularizer_parse(config, "gamma_regularizer", ctx, &d->gamma_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "beta_regularizer", ctx, &d->beta_reg)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "gamma_constraint", ctx, &d->gamma_con)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "beta_constraint", ctx, &d->beta_con)) != DPT_OK)
        return st;
    if (renorm)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.renorm: not supported (must be false)",
                             ctx->file, ctx->path);
    static const char *const must_be_null[] = {"virtual_batch_size", "adjustment",
                                               "activity_regularizer"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        if ((st = dpt_json_require_null(config, must_be_null[i], ctx)) != DPT_OK)
            return st;
    if (!(d->epsilon > 0))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.epsilon: must be > 0, got %g", ctx->file,
                             ctx->path, d->epsilon);
    l->has_regularizer = d->gamma_reg.kind != DPT_REG_NONE || d->beta_reg.kind != DPT_REG_NONE;
    d->C = in->dim[in->rank - 1];
    dpt_shape cs = {.rank = 1, .dim = {d->C}};
    if ((st = dpt_constraint_check(&d->gamma_con, &cs, "gamma_constraint", ctx)) != DPT_OK ||
        (st = dpt_constraint_check(&d->beta_con, &cs, "beta_constraint", ctx)) != DPT_OK)
        return st;
    l->has_constraint = (d->scale && d->gamma_con.kind != DPT_CON_NONE) ||
                        (d->center && d->beta_con.kind != DPT_CON_NONE);
    d->S = l->in_size / d->C;
    int64_t o = 0;
    d->off_gamma = d->scale ? (o += d->C) - d->C : -1;
    d->off_beta = d->center ? (o += d->C) - d->C : -1;
    d->off_mm = o;
    d->off_mv = o + d->C;
    d->buf = calloc((size_t)(4 * d->C + 2), sizeof(double));
    d->mean = calloc((size_t)d->C, sizeof(double));
    d->istd = calloc((size_t)d->C, sizeof(double));
    d->a = calloc((size_t)d->C, sizeof(float));
    d->b = calloc((size_t)d->C, sizeof(float));
    if (!d->buf || !d->mean || !d->istd || !d->a || !d->b)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    return DPT_OK;
}

dpt_status dpt_batchnorm_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    *out = NULL;
    dpt_bn *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = bn_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        bn_destroy(&d->base);
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
