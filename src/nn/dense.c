/* The Keras Dense layer: y = act(x·K + b), K (in, out) row-major then b (out) in the flat
 * parameter buffer (Keras weight order). On an input of more than one dimension (B, ..., in) it
 * acts on the last axis, as Keras does: the (B * positions, in) rows go through ONE sgemm and the
 * output is (B, ..., out). Forward is one sgemm plus one fused bias + activation pass; backward
 * is the activation derivative from y (or from the pre-activation, kept in the layer's
 * workspace, for gelu / swish / hard_silu / mish), dK += xᵀ·dz, db += column sums of dz and
 * dx = dz·Kᵀ. kernel_regularizer / bias_regularizer add their penalty through the model
 * (dpt_model_regularize); kernel_constraint / bias_constraint project the weights after each update
 * (ops->constrain); activity_regularizer adds the penalty of the output y (actreg.c), and such a
 * layer keeps its activation (no fused head: the penalty is on the probabilities). LoRA is
 * refused; the model decides whether the final activation is folded into the loss.
 */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first: a dpt_dense * is a dpt_layer * */
    int64_t units;
    int64_t fin, rows; /* input features (the last axis) and positions per sample (1: flat) */
    bool use_bias;
    dpt_head head; /* activation, and whether the loss absorbed it */
    dpt_init_spec kernel_init, bias_init;
    dpt_regularizer kernel_reg, bias_reg, act_reg;
    dpt_constraint kernel_con, bias_con;
} dpt_dense;

static int64_t dense_n_params(const dpt_layer *l) {
    const dpt_dense *d = (const dpt_dense *)l;
    return d->fin * d->units + (d->use_bias ? d->units : 0);
}

static void dense_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_dense *d = (dpt_dense *)l;
    int64_t in = d->fin, out = d->units;
    dpt_init_fill(&d->kernel_init, l->params, in * out, in, out, rng); /* (in, out) */
    if (d->use_bias)
        dpt_init_fill(&d->bias_init, l->params + in * out, out, out, out, rng);
}

/* x (B, in), y (B, out); B counts rows (samples times positions) */
static void dense_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_dense *d = (dpt_dense *)l;
    int in = (int)d->fin, out = (int)d->units;
    if (B <= 0)
        return;
    B *= d->rows;
    /* sgemm's rows are an int (more is at least 8 GiB of output per batch) */
    DPT_ASSERT(B <= INT_MAX);
    const float *K = l->params;                                          /* (in, out) */
    const float *b = d->use_bias ? l->params + (int64_t)in * out : NULL; /* (out) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, out, in, 1.0f, x, in, K, out,
                0.0f, y, out);
    /* gelu, swish, ...: the pre-activation z stays in the workspace for backward */
    dpt_act_bias_forward_z(d->head.folded ? DPT_ACT_LINEAR : d->head.act, y, b, l->work, B, out);
    if (l->has_activity_reg)
        l->activity_loss = dpt_actreg_forward(&d->act_reg, y, B * out);
}

/* x (B, in), y (B, out), dy (B, out) overwritten with dz, dx (B, in) or NULL; B counts rows */
static void dense_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int64_t B) {
    (void)p;
    dpt_dense *d = (dpt_dense *)l;
    int in = (int)d->fin, out = (int)d->units;
    if (B <= 0)
        return;
    B *= d->rows;
    /* sgemm's rows are an int (more is at least 8 GiB of output per batch) */
    DPT_ASSERT(B <= INT_MAX);
    if (l->has_activity_reg)
        dpt_actreg_backward(&d->act_reg, y, dy, B * out);
    if (!d->head.folded)
        dpt_act_backward_z(d->head.act, l->work, y, dy, dy, B, out);
    const float *dz = dy; /* (B, out) */
    if (l->trainable) {
        float *dK = l->grads;            /* (in, out) */
        bool fresh = l->grads_overwrite; /* stale values: write, do not add (dense_ops) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, (int)B, 1.0f, x, in, dz, out,
                    fresh ? 0.0f : 1.0f, dK, out);
        if (d->use_bias) {
            float *db = l->grads + (int64_t)in * out; /* (out) */
            if (fresh)
                memset(db, 0, sizeof(float) * (size_t)out);
            dpt_add_rows(db, dz, B, out);
        }
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, in, out, 1.0f, dz, out,
                    l->params, out, 0.0f, dx, in);
}

static int dense_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_dense *d = (const dpt_dense *)l;
    int n = 0;
    if (n < max) {
        names[n] = "kernel";
        shapes[n] = (dpt_shape){.rank = 2, .dim = {d->fin, d->units}};
        n++;
    }
    if (d->use_bias && n < max) {
        names[n] = "bias";
        shapes[n] = (dpt_shape){.rank = 1, .dim = {d->units}};
        n++;
    }
    return n;
}

static double dense_regularize(dpt_layer *l, float scale) {
    dpt_dense *d = (dpt_dense *)l;
    int64_t nk = d->fin * d->units;
    bool g = scale != 0.0f && l->trainable;
    double pen = dpt_regularizer_apply(&d->kernel_reg, l->params, g ? l->grads : NULL, nk, scale);
    if (d->use_bias)
        pen += dpt_regularizer_apply(&d->bias_reg, l->params + nk, g ? l->grads + nk : NULL,
                                     d->units, scale);
    return pen;
}

static void dense_constrain(dpt_layer *l) {
    dpt_dense *d = (dpt_dense *)l;
    dpt_shape ks = {.rank = 2, .dim = {d->fin, d->units}}, bs = {.rank = 1, .dim = {d->units}};
    dpt_constraint_apply(&d->kernel_con, l->params, &ks);
    if (d->use_bias)
        dpt_constraint_apply(&d->bias_con, l->params + d->fin * d->units, &bs);
}

static json_t *dense_to_json(const dpt_layer *l) {
    const dpt_dense *d = (const dpt_dense *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "units", json_integer(d->units));
    json_object_set_new(c, "activation", dpt_act_to_json(d->head.act));
    json_object_set_new(c, "use_bias", json_boolean(d->use_bias));
    json_object_set_new(c, "kernel_initializer", dpt_init_to_json(&d->kernel_init));
    json_object_set_new(c, "bias_initializer", dpt_init_to_json(&d->bias_init));
    json_object_set_new(c, "kernel_regularizer", dpt_regularizer_to_json(&d->kernel_reg));
    json_object_set_new(c, "bias_regularizer", dpt_regularizer_to_json(&d->bias_reg));
    json_object_set_new(c, "activity_regularizer", dpt_regularizer_to_json(&d->act_reg));
    json_object_set_new(c, "kernel_constraint", dpt_constraint_to_json(&d->kernel_con));
    json_object_set_new(c, "bias_constraint", dpt_constraint_to_json(&d->bias_con));
    return c;
}

static dpt_head *dense_head(dpt_layer *l);

/* (max_batch, units) for the pre-activation when the activation's derivative needs it */
static int64_t dense_workspace(const dpt_layer *l, int64_t max_batch) {
    const dpt_dense *d = (const dpt_dense *)l;
    return dpt_act_needs_z(d->head.act) ? max_batch * l->out_size : 0;
}

static const dpt_layer_ops dense_ops = {
    .class_name = "Dense",
    .head = dense_head,
    .n_params = dense_n_params,
    .init_params = dense_init_params,
    .forward = dense_forward,
    .backward = dense_backward,
    .weights = dense_weights,
    .to_json = dense_to_json,
    .regularize = dense_regularize,
    .overwrite_ok = true,
    .workspace = dense_workspace,
    .constrain = dense_constrain,
};

static dpt_head *dense_head(dpt_layer *l) {
    /* an activity regularizer needs the activation's output: no folding */
    return (l && l->ops == &dense_ops && !l->has_activity_reg) ? &((dpt_dense *)l)->head : NULL;
}

static dpt_status dense_parse(dpt_dense *d, const json_t *config, const dpt_json_ctx *ctx,
                              const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &dense_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    d->fin = in->rank >= 1 ? in->dim[in->rank - 1] : 0;
    if (d->fin < 1 || d->fin > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: input size %lld is out of range [1, %d]",
                             ctx->file, ctx->path, (long long)d->fin, INT_MAX);
    d->rows = l->in_size / d->fin;
    if (d->rows > INT_MAX / 64)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: %lld positions per sample are too many",
                             ctx->file, ctx->path, (long long)d->rows);
    if (!json_object_get(config, "units"))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.units: missing (an integer >= 1)", ctx->file,
                             ctx->path);
    st = dpt_json_get_int(config, "units", ctx, 0, 1, INT_MAX, &d->units);
    if (st == DPT_OK)
        st = dpt_json_get_act(config, "activation", ctx, DPT_ACT_LINEAR, &d->head.act);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "use_bias", ctx, true, &d->use_bias);
    if (st == DPT_OK)
        st = dpt_init_parse(config, "kernel_initializer", ctx, dpt_init_glorot_uniform(),
                            &d->kernel_init);
    if (st == DPT_OK)
        st = dpt_init_parse(config, "bias_initializer", ctx, dpt_init_zeros(), &d->bias_init);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "kernel_regularizer", ctx, &d->kernel_reg);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "bias_regularizer", ctx, &d->bias_reg);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "activity_regularizer", ctx, &d->act_reg);
    if (st == DPT_OK)
        st = dpt_constraint_parse(config, "kernel_constraint", ctx, &d->kernel_con);
    if (st == DPT_OK)
        st = dpt_constraint_parse(config, "bias_constraint", ctx, &d->bias_con);
    if (st == DPT_OK)
        st = dpt_json_require_null(config, "lora_rank", ctx);
    if (st != DPT_OK)
        return st;
    dpt_shape kshape = {.rank = 2, .dim = {d->fin, d->units}};
    dpt_shape bshape = {.rank = 1, .dim = {d->units}};
    if ((st = dpt_constraint_check(&d->kernel_con, &kshape, "kernel_constraint", ctx)) != DPT_OK ||
        (st = dpt_constraint_check(&d->bias_con, &bshape, "bias_constraint", ctx)) != DPT_OK)
        return st;
    l->has_constraint =
        d->kernel_con.kind != DPT_CON_NONE || (d->use_bias && d->bias_con.kind != DPT_CON_NONE);
    l->has_activity_reg = d->act_reg.kind != DPT_REG_NONE;
    int64_t nk;
    st = dpt_mul_i64(d->fin, d->units, "Dense kernel", &nk);
    if (st == DPT_OK)
        st = dpt_mul_i64(d->rows, d->units, "Dense output", &l->out_size);
    if (st != DPT_OK)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.units: a (%lld, %lld) kernel is too large",
                             ctx->file, ctx->path, (long long)d->fin, (long long)d->units);
    d->head.folded = false;
    l->has_regularizer = d->kernel_reg.kind != DPT_REG_NONE || d->bias_reg.kind != DPT_REG_NONE;
    l->out_shape = *in; /* (..., units) */
    l->out_shape.dim[in->rank - 1] = d->units;
    return DPT_OK;
}

dpt_status dpt_dense_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                            dpt_layer **out) {
    *out = NULL;
    dpt_dense *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = dense_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
