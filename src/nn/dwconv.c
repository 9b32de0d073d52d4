/* The Keras DepthwiseConv2D and SeparableConv2D layers, channels_last.
 *
 * DepthwiseConv2D: x (B, H, W, C) -> y (B, OH, OW, C*M) = act(dw(x, K) + b), K (KH, KW, C, M)
 * row-major then b (C*M) in the flat buffer; output channel c*M + m is channel c of x
 * cross-correlated with K[:, :, c, m] (TensorFlow's order). Strides, dilation_rate and
 * valid/same padding as Conv2D (TensorFlow's rule on the effective kernel (K - 1) * D + 1).
 * The kernel view K[kh, kw] is a (C*M) row, so the inner loop runs along output channels.
 *
 * SeparableConv2D: the same depthwise step (no bias) into t (B, OH, OW, C*M), then a pointwise
 * 1x1 convolution t·P + b with P (1, 1, C*M, F) and b (F), then act: weights depthwise_kernel,
 * pointwise_kernel, bias. Forward and backward go by chunks of output rows (sample, oh) through
 * two buffers allocated at create (t and dt, DPT_DW_CHUNK_FLOATS each), so nothing grows with the
 * batch; backward recomputes the chunk's t instead of keeping it.
 *
 * Both: depthwise/pointwise/bias regularizers and constraints, activity_regularizer.
 * channels_first: the model wraps these in chfirst.c's transposes. Keras 2 names the
 * DepthwiseConv2D kernel "depthwise_kernel" (written so here), Keras 3 "kernel"; both read it by
 * position.
 */
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define DPT_DW_CHUNK_FLOATS ((int64_t)1 << 20) /* 4 MiB of t per chunk (SeparableConv2D) */

typedef struct {
    dpt_layer base; /* first */
    bool separable;
    int64_t H, W, C, M, CM, F, KH, KW, SH, SW, DH, DW, OH, OW, PT, PL;
    bool same, use_bias;
    dpt_act act;
    dpt_init_spec dw_init, pw_init, bias_init;
    dpt_regularizer dw_reg, pw_reg, bias_reg, act_reg;
    dpt_constraint dw_con, pw_con, bias_con;
    int64_t chunk; /* output rows per chunk (separable) */
    float *t, *dt; /* (chunk * OW, CM) each, owned (separable only) */
} dpt_dwconv;

static int64_t dw_nk(const dpt_dwconv *d) { return d->KH * d->KW * d->CM; }
static int64_t pw_nk(const dpt_dwconv *d) { return d->separable ? d->CM * d->F : 0; }
static int64_t out_ch(const dpt_dwconv *d) { return d->separable ? d->F : d->CM; }

/* t (nr * OW, CM) = depthwise(x) for output rows [r0, r0 + nr); x (B, H, W, C), K (KH*KW, CM) */
static void dw_rows(const dpt_dwconv *d, const float *restrict x, const float *restrict K,
                    float *restrict t, int64_t r0, int64_t nr) {
    const int64_t C = d->C, M = d->M, CM = d->CM;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OH, oh = r % d->OH;
        for (int64_t ow = 0; ow < d->OW; ow++) {
            float *o = t + ((r - r0) * d->OW + ow) * CM;
            memset(o, 0, (size_t)CM * sizeof(float));
            for (int64_t kh = 0; kh < d->KH; kh++) {
                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->H)
                    continue;
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                    if (iw < 0 || iw >= d->W)
                        continue;
                    const float *xp = x + ((b * d->H + ih) * d->W + iw) * C;
                    const float *kp = K + (kh * d->KW + kw) * CM;
                    if (M == 1) {
                        for (int64_t c = 0; c < C; c++)
                            o[c] += xp[c] * kp[c];
                    } else {
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t m = 0; m < M; m++)
                                o[c * M + m] += xp[c] * kp[c * M + m];
                    }
                }
            }
        }
    }
}

/* Given dt (nr * OW, CM) for output rows [r0, r0 + nr): dK (KH*KW, CM) += (if not NULL),
 * dx (B, H, W, C) += (if not NULL). */
static void dw_rows_backward(const dpt_dwconv *d, const float *restrict x, const float *restrict K,
                             const float *restrict dt, float *restrict dK, float *restrict dx,
                             int64_t r0, int64_t nr) {
    const int64_t C = d->C, M = d->M, CM = d->CM;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OH, oh = r % d->OH;
        for (int64_t ow = 0; ow < d->OW; ow++) {
            const float *g = dt + ((r - r0) * d->OW + ow) * CM;
            for (int64_t kh = 0; kh < d->KH; kh++) {
                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->H)
                    continue;
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                    if (iw < 0 || iw >= d->W)
                        continue;
                    int64_t xo = ((b * d->H + ih) * d->W + iw) * C, ko = (kh * d->KW + kw) * CM;
                    const float *xp = x + xo, *kp = K + ko;
                    if (dK) {
                        float *gk = dK + ko;
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t m = 0; m < M; m++)
                                gk[c * M + m] += xp[c] * g[c * M + m];
                    }
                    if (dx) {
                        float *gx = dx + xo;
                        for (int64_t c = 0; c < C; c++) {
                            float s = 0.0f;
                            for (int64_t m = 0; m < M; m++)
                                s += kp[c * M + m] * g[c * M + m];
                            gx[c] += s;
                        }
                    }
                }
            }
        }
    }
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int64_t dwc_n_params(const dpt_layer *l) {
    const dpt_dwconv *d = (const dpt_dwconv *)l;
    return dw_nk(d) + pw_nk(d) + (d->use_bias ? out_ch(d) : 0);
}

static void dwc_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_dwconv *d = (dpt_dwconv *)l;
    int64_t rf = d->KH * d->KW;
    /* Keras compute_fans: (KH, KW, C, M) -> fan_in C * rf, fan_out M * rf; (1, 1, CM, F) -> CM,
     * F */
    dpt_init_fill(&d->dw_init, l->params, dw_nk(d), d->C * rf, d->M * rf, rng);
    if (d->separable)
        dpt_init_fill(&d->pw_init, l->params + dw_nk(d), pw_nk(d), d->CM, d->F, rng);
    if (d->use_bias)
        dpt_init_fill(&d->bias_init, l->params + dw_nk(d) + pw_nk(d), out_ch(d), out_ch(d),
                      out_ch(d), rng);
}

/* x (B, H, W, C), y (B, OH, OW, out_ch) */
static void dwc_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_dwconv *d = (dpt_dwconv *)l;
    if (B <= 0)
        return;
    const int64_t rows = B * d->OH, OW = d->OW, n = out_ch(d);
    const float *K = l->params, *P = l->params + dw_nk(d);
    if (!d->separable) {
        dw_rows(d, x, K, y, 0, rows);
    } else {
        for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
            int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
            dw_rows(d, x, K, d->t, r0, nr);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(nr * OW), (int)d->F,
                        (int)d->CM, 1.0f, d->t, (int)d->CM, P, (int)d->F, 0.0f, y + r0 * OW * d->F,
                        (int)d->F);
        }
    }
    dpt_act_bias_forward(d->act, y, d->use_bias ? l->params + dw_nk(d) + pw_nk(d) : NULL, rows * OW,
                         n);
    if (l->has_activity_reg)
        l->activity_loss = dpt_actreg_forward(&d->act_reg, y, rows * OW * n);
}

/* x (B, H, W, C), y and dy (B, OH, OW, out_ch) (dy overwritten), dx (B, H, W, C) or NULL */
static void dwc_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                         float *dx, int64_t B) {
    (void)p;
    dpt_dwconv *d = (dpt_dwconv *)l;
    if (B <= 0)
        return;
    const int64_t rows = B * d->OH, OW = d->OW, n = out_ch(d);
    if (l->has_activity_reg)
        dpt_actreg_backward(&d->act_reg, y, dy, rows * OW * n);
    dpt_act_backward(d->act, y, dy, dy, rows * OW, n);
    const float *K = l->params, *P = l->params + dw_nk(d);
    float *dK = l->trainable ? l->grads : NULL;
    if (l->trainable && d->use_bias)
        dpt_add_rows(l->grads + dw_nk(d) + pw_nk(d), dy, rows * OW, n); /* db */
    if (dx)
        memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float));
    if (!dK && !dx)
        return;
    if (!d->separable) {
        dw_rows_backward(d, x, K, dy, dK, dx, 0, rows);
        return;
    }
    const int CM = (int)d->CM, F = (int)d->F;
    for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
        int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
        const int m = (int)(nr * OW);
        const float *dz = dy + r0 * OW * F; /* (m, F) */
        if (l->trainable) {
            dw_rows(d, x, K, d->t, r0, nr);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CM, F, m, 1.0f, d->t, CM, dz, F,
                        1.0f, l->grads + dw_nk(d), F); /* dP (CM, F) */
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, CM, F, 1.0f, dz, F, P, F, 0.0f,
                    d->dt, CM); /* dt (m, CM) */
        dw_rows_backward(d, x, K, d->dt, dK, dx, r0, nr);
    }
}

static int dwc_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_dwconv *d = (const dpt_dwconv *)l;
    int n = 0;
    if (n < max) {
        names[n] = "depthwise_kernel";
        shapes[n++] = (dpt_shape){.rank = 4, .dim = {d->KH, d->KW, d->C, d->M}};
    }
    if (d->separable && n < max) {
        names[n] = "pointwise_kernel";
        shapes[n++] = (dpt_shape){.rank = 4, .dim = {1, 1, d->CM, d->F}};
    }
    if (d->use_bias && n < max) {
        names[n] = "bias";
        shapes[n++] = (dpt_shape){.rank = 1, .dim = {out_ch(d)}};
    }
    return n;
}

static double dwc_regularize(dpt_layer *l, float scale) {
    dpt_dwconv *d = (dpt_dwconv *)l;
    bool g = scale != 0.0f && l->trainable;
    int64_t o1 = dw_nk(d), o2 = o1 + pw_nk(d);
    double pen = dpt_regularizer_apply(&d->dw_reg, l->params, g ? l->grads : NULL, o1, scale);
    if (d->separable)
        pen += dpt_regularizer_apply(&d->pw_reg, l->params + o1, g ? l->grads + o1 : NULL, pw_nk(d),
                                     scale);
    if (d->use_bias)
        pen += dpt_regularizer_apply(&d->bias_reg, l->params + o2, g ? l->grads + o2 : NULL,
                                     out_ch(d), scale);
    return pen;
}

static void dwc_constrain(dpt_layer *l) {
    dpt_dwconv *d = (dpt_dwconv *)l;
    const char *names[3];
    dpt_shape shapes[3];
    int nw = dwc_weights(l, names, shapes, 3);
    const dpt_constraint *cons[3] = {&d->dw_con, d->separable ? &d->pw_con : &d->bias_con,
                                     &d->bias_con};
    float *w = l->params;
    for (int i = 0; i < nw; i++) {
        dpt_constraint_apply(cons[i], w, &shapes[i]);
        w += dpt_shape_size(&shapes[i]);
    }
}

static json_t *pair_json(int64_t a, int64_t b) {
    return json_pack("[I, I]", (json_int_t)a, (json_int_t)b);
}

static json_t *dwc_to_json(const dpt_layer *l) {
    const dpt_dwconv *d = (const dpt_dwconv *)l;
    json_t *c = dpt_layer_base_json(l);
    if (d->separable)
        json_object_set_new(c, "filters", json_integer(d->F));
    json_object_set_new(c, "kernel_size", pair_json(d->KH, d->KW));
    json_object_set_new(c, "strides", pair_json(d->SH, d->SW));
    json_object_set_new(c, "padding", json_string(d->same ? "same" : "valid"));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "dilation_rate", pair_json(d->DH, d->DW));
    json_object_set_new(c, "depth_multiplier", json_integer(d->M));
    json_object_set_new(c, "activation", json_string(dpt_act_name(d->act)));
    json_object_set_new(c, "use_bias", json_boolean(d->use_bias));
    json_object_set_new(c, "depthwise_initializer", dpt_init_to_json(&d->dw_init));
    json_object_set_new(c, "bias_initializer", dpt_init_to_json(&d->bias_init));
    json_object_set_new(c, "depthwise_regularizer", dpt_regularizer_to_json(&d->dw_reg));
    json_object_set_new(c, "bias_regularizer", dpt_regularizer_to_json(&d->bias_reg));
    json_object_set_new(c, "activity_regularizer", dpt_regularizer_to_json(&d->act_reg));
    json_object_set_new(c, "depthwise_constraint", dpt_constraint_to_json(&d->dw_con));
    json_object_set_new(c, "bias_constraint", dpt_constraint_to_json(&d->bias_con));
    if (d->separable) {
        json_object_set_new(c, "pointwise_initializer", dpt_init_to_json(&d->pw_init));
        json_object_set_new(c, "pointwise_regularizer", dpt_regularizer_to_json(&d->pw_reg));
        json_object_set_new(c, "pointwise_constraint", dpt_constraint_to_json(&d->pw_con));
    }
    return c;
}

static void dwc_destroy(dpt_layer *l) {
    dpt_dwconv *d = (dpt_dwconv *)l;
    dpt_free(d->t);
    dpt_free(d->dt);
    d->t = d->dt = NULL;
}

static const dpt_layer_ops depthwise_ops = {
    .class_name = "DepthwiseConv2D",
    .n_params = dwc_n_params,
    .init_params = dwc_init_params,
    .forward = dwc_forward,
    .backward = dwc_backward,
    .weights = dwc_weights,
    .to_json = dwc_to_json,
    .destroy = dwc_destroy,
    .regularize = dwc_regularize,
    .constrain = dwc_constrain,
};

static const dpt_layer_ops separable_ops = {
    .class_name = "SeparableConv2D",
    .n_params = dwc_n_params,
    .init_params = dwc_init_params,
    .forward = dwc_forward,
    .backward = dwc_backward,
    .weights = dwc_weights,
    .to_json = dwc_to_json,
    .destroy = dwc_destroy,
    .regularize = dwc_regularize,
    .constrain = dwc_constrain,
};

static dpt_status dwc_parse(dpt_dwconv *d, const json_t *config, const dpt_json_ctx *ctx,
                            const dpt_shape *in) {
    dpt_layer *l = &d->base;
    const char *cls = d->separable ? "SeparableConv2D" : "DepthwiseConv2D";
    dpt_status st =
        dpt_layer_base_init(l, d->separable ? &separable_ops : &depthwise_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank != 3) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: %s needs an input of shape (None, height, width, channels), "
                             "got %s",
                             ctx->file, ctx->path, cls, s);
    }
    d->H = in->dim[0];
    d->W = in->dim[1];
    d->C = in->dim[2];
    if (!json_object_get(config, "kernel_size"))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.kernel_size: missing (an integer or a list of 2)", ctx->file,
                             ctx->path);
    if (d->separable && !json_object_get(config, "filters"))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.filters: missing (an integer >= 1)", ctx->file,
                             ctx->path);
    int64_t ks[2], str[2], dil[2];
    if ((d->separable &&
         (st = dpt_json_get_int(config, "filters", ctx, 0, 1, INT_MAX, &d->F)) != DPT_OK) ||
        (st = dpt_json_get_pair(config, "kernel_size", ctx, 1, 1, 1, ks, NULL)) != DPT_OK ||
        (st = dpt_json_get_pair(config, "strides", ctx, 1, 1, 1, str, NULL)) != DPT_OK ||
        (st = dpt_json_get_pair(config, "dilation_rate", ctx, 1, 1, 1, dil, NULL)) != DPT_OK ||
        (st = dpt_json_get_int(config, "depth_multiplier", ctx, 1, 1, INT_MAX, &d->M)) != DPT_OK ||
        (st = dpt_json_get_padding(config, ctx, &d->same)) != DPT_OK ||
        (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK ||
        (st = dpt_json_get_act(config, "activation", ctx, DPT_ACT_LINEAR, &d->act)) != DPT_OK ||
        (st = dpt_act_require_y(d->act, ctx, "activation")) != DPT_OK ||
        (st = dpt_json_get_bool(config, "use_bias", ctx, true, &d->use_bias)) != DPT_OK ||
        (st = dpt_init_parse(config, "depthwise_initializer", ctx, dpt_init_glorot_uniform(),
                             &d->dw_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "bias_initializer", ctx, dpt_init_zeros(), &d->bias_init)) !=
            DPT_OK ||
        (st = dpt_regularizer_parse(config, "depthwise_regularizer", ctx, &d->dw_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "bias_regularizer", ctx, &d->bias_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "activity_regularizer", ctx, &d->act_reg)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "depthwise_constraint", ctx, &d->dw_con)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "bias_constraint", ctx, &d->bias_con)) != DPT_OK)
        return st;
    if (d->separable &&
        ((st = dpt_init_parse(config, "pointwise_initializer", ctx, dpt_init_glorot_uniform(),
                              &d->pw_init)) != DPT_OK ||
         (st = dpt_regularizer_parse(config, "pointwise_regularizer", ctx, &d->pw_reg)) != DPT_OK ||
         (st = dpt_constraint_parse(config, "pointwise_constraint", ctx, &d->pw_con)) != DPT_OK))
        return st;
    d->KH = ks[0];
    d->KW = ks[1];
    d->SH = str[0];
    d->SW = str[1];
    d->DH = dil[0];
    d->DW = dil[1];
    if (dpt_mul_i64(d->C, d->M, cls, &d->CM) != DPT_OK || d->CM > INT_MAX ||
        (d->KH - 1) > (INT_MAX - 1) / d->DH || (d->KW - 1) > (INT_MAX - 1) / d->DW ||
        d->KH * d->KW > INT_MAX / d->CM || (d->separable && d->CM > INT_MAX / d->F))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the kernel is too large", ctx->file,
                             ctx->path);
    if ((st = dpt_conv_out_dim(d->H, (d->KH - 1) * d->DH + 1, d->SH, d->same, ctx,
                               d->DH > 1 ? "dilated kernel height" : "kernel height", &d->OH,
                               &d->PT)) != DPT_OK ||
        (st = dpt_conv_out_dim(d->W, (d->KW - 1) * d->DW + 1, d->SW, d->same, ctx,
                               d->DW > 1 ? "dilated kernel width" : "kernel width", &d->OW,
                               &d->PL)) != DPT_OK)
        return st;
    int64_t n = out_ch(d);
    dpt_shape dws = {.rank = 4, .dim = {d->KH, d->KW, d->C, d->M}};
    dpt_shape pws = {.rank = 4, .dim = {1, 1, d->CM, d->F}};
    dpt_shape bs = {.rank = 1, .dim = {n}};
    if ((st = dpt_constraint_check(&d->dw_con, &dws, "depthwise_constraint", ctx)) != DPT_OK ||
        (st = dpt_constraint_check(&d->bias_con, &bs, "bias_constraint", ctx)) != DPT_OK ||
        (d->separable &&
         (st = dpt_constraint_check(&d->pw_con, &pws, "pointwise_constraint", ctx)) != DPT_OK))
        return st;
    l->has_regularizer = d->dw_reg.kind != DPT_REG_NONE || d->bias_reg.kind != DPT_REG_NONE ||
                         (d->separable && d->pw_reg.kind != DPT_REG_NONE);
    l->has_constraint = d->dw_con.kind != DPT_CON_NONE ||
                        (d->use_bias && d->bias_con.kind != DPT_CON_NONE) ||
                        (d->separable && d->pw_con.kind != DPT_CON_NONE);
    l->has_activity_reg = d->act_reg.kind != DPT_REG_NONE;
    l->out_shape = (dpt_shape){.rank = 3, .dim = {d->OH, d->OW, n}};
    l->out_size = dpt_shape_size(&l->out_shape);
    if (l->out_size < 0 || d->OW * d->CM > INT_MAX || d->OW * n > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the output is too large", ctx->file,
                             ctx->path);
    if (d->separable) {
        int64_t rowlen = d->OW * d->CM, bytes;
        d->chunk = rowlen >= DPT_DW_CHUNK_FLOATS ? 1 : DPT_DW_CHUNK_FLOATS / rowlen;
        if (d->chunk > INT_MAX / d->OW)
            d->chunk = INT_MAX / d->OW;
        if ((st = dpt_mul_i64(d->chunk * rowlen, (int64_t)sizeof(float), cls, &bytes)) != DPT_OK ||
            (st = dpt_alloc((size_t)bytes, "SeparableConv2D buffer", (void **)&d->t)) != DPT_OK ||
            (st = dpt_alloc((size_t)bytes, "SeparableConv2D buffer", (void **)&d->dt)) != DPT_OK)
            return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory for the %lld-byte buffers",
                                 ctx->file, ctx->path, (long long)(2 * d->chunk * rowlen * 4));
    }
    return DPT_OK;
}

static dpt_status dwc_create(bool separable, const json_t *config, const dpt_json_ctx *ctx,
                             const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_dwconv *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    d->separable = separable;
    dpt_status st = dwc_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        dwc_destroy(&d->base);
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_depthwise_conv2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                       const dpt_shape *in, dpt_layer **out) {
    return dwc_create(false, config, ctx, in, out);
}

dpt_status dpt_separable_conv2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                       const dpt_shape *in, dpt_layer **out) {
    return dwc_create(true, config, ctx, in, out);
}
