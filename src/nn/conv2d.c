/* The Keras Conv2D layer, channels_last: x (B, H, W, C) -> y (B, OH, OW, F) = act(conv(x, K) + b)
 * with K (KH, KW, C, F) row-major then b (F) in the flat buffer (Keras weight order), a
 * cross-correlation (no kernel flip) with TensorFlow's valid/same padding and strides.
 *
 * Forward is im2col + one sgemm per chunk of output rows: the patch matrix col (rows, KH*KW*C), one
 * row per output pixel in (kh, kw, c) order, times K seen as (KH*KW*C, F), lands directly in
 * NHWC order; then the fused bias + activation pass. Backward: dK += colᵀ·dz (sgemm), db += column
 * sums, dcol = dz·Kᵀ (sgemm) scattered back by col2im. The col buffer is allocated once at
 * create, sized for as many output rows (sample, oh) as fit in DPT_CONV_COL_FLOATS (at least
 * one), so forward/backward never allocate and memory grows neither with the batch nor with the
 * image. A 1x1 kernel with stride 1 needs no col buffer (x is its own patch matrix).
 * dilation_rate (DH, DW) spaces the taps: tap (kh, kw) of output (oh, ow) reads input
 * (oh * SH - PT + kh * DH, ow * SW - PL + kw * DW), the out dims those of an effective kernel
 * (K - 1) * D + 1 (TensorFlow's rule); Keras refuses strides > 1 with dilation > 1, so do we.
 * kernel_constraint / bias_constraint (ops->constrain) and activity_regularizer (the penalty of
 * the layer's output, actreg.c) are supported.
 * channels_first: the model wraps this layer in chfirst.c's transposes. Refused: groups != 1.
 * Also here: the 2-D geometry and 2-tuple parsing that the pooling layers share.
 */
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nn/nn_internal.h"

#define DPT_CONV_COL_FLOATS ((int64_t)1 << 22) /* 16 MiB of patches per chunk */

typedef struct {
    dpt_layer base;                                     /* first */
    int64_t H, W, C, F, KH, KW, SH, SW, OH, OW, PT, PL; /* PT, PL: padding top / left */
    int64_t DH, DW;                                     /* dilation_rate */
    bool same, use_bias;
    dpt_act act;
    dpt_init_spec kernel_init, bias_init;
    dpt_regularizer kernel_reg, bias_reg, act_reg;
    dpt_constraint kernel_con, bias_con;
    bool direct;   /* 1x1 kernel, stride 1: col = x */
    int64_t chunk; /* output rows (sample, oh) per im2col chunk */
    float *col;    /* (chunk * OW, KH * KW * C), owned; NULL when direct */
} dpt_conv2d;

/* ---- shared geometry ----------------------------------------------------------------------- */

dpt_status dpt_json_get_pair(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                             int64_t def0, int64_t def1, int64_t lo, int64_t out[2], bool *given) {
    const json_t *v = json_object_get(obj, key);
    if (given)
        *given = false;
    out[0] = def0;
    out[1] = def1;
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_integer(v)) {
        out[0] = out[1] = (int64_t)json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2 &&
               json_is_integer(json_array_get(v, 0)) && json_is_integer(json_array_get(v, 1))) {
        out[0] = (int64_t)json_integer_value(json_array_get(v, 0));
        out[1] = (int64_t)json_integer_value(json_array_get(v, 1));
    } else {
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be an integer or a list of 2 integers", ctx->file,
                             ctx->path, key);
    }
    if (out[0] < lo || out[1] < lo || out[0] > INT_MAX || out[1] > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be integers in [%lld, %d], got [%lld, %lld]",
                             ctx->file, ctx->path, key, (long long)lo, INT_MAX, (long long)out[0],
                             (long long)out[1]);
    if (given)
        *given = true;
    return DPT_OK;
}

dpt_status dpt_json_get_padding(const json_t *obj, const dpt_json_ctx *ctx, bool *same) {
    const char *p = NULL;
    dpt_status st = dpt_json_get_str(obj, "padding", ctx, "valid", &p);
    if (st != DPT_OK)
        return st;
    if (!strcasecmp(p, "valid"))
        *same = false;
    else if (!strcasecmp(p, "same"))
        *same = true;
    else
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.padding: must be \"valid\" or \"same\", got \"%s\"", ctx->file,
                             ctx->path, p);
    return DPT_OK;
}

dpt_status dpt_json_check_channels_last(const json_t *obj, const dpt_json_ctx *ctx) {
    const char *f = NULL;
    dpt_status st = dpt_json_get_str(obj, "data_format", ctx, "channels_last", &f);
    if (st == DPT_OK && strcmp(f, "channels_last") != 0)
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.data_format: only \"channels_last\" is supported, got \"%s\"",
                           ctx->file, ctx->path, f);
    return st;
}

dpt_status dpt_conv_out_dim(int64_t in, int64_t k, int64_t s, bool same, const dpt_json_ctx *ctx,
                            const char *what, int64_t *out, int64_t *pad_lo) {
    if (same) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + k - in;
        *pad_lo = total > 0 ? total / 2 : 0;
        return DPT_OK;
    }
    if (in < k)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: a %s of %lld does not fit an input of %lld with padding "
                             "\"valid\" (the output would be empty)",
                             ctx->file, ctx->path, what, (long long)k, (long long)in);
    *out = (in - k) / s + 1;
    *pad_lo = 0;
    return DPT_OK;
}

/* ---- im2col / col2im ------------------------------------------------------------------------ */

/* Output rows are the (sample, oh) pairs r = b * OH + oh; a chunk is a range of them, so a chunk
 * may end inside a sample (large images) or span many samples (small ones). */

/* col (nr * OW, KH * KW * C): the patches of output rows [r0, r0 + nr), x (B, H, W, C) */
static void im2col(const dpt_conv2d *d, const float *restrict x, float *restrict col, int64_t r0,
                   int64_t nr) {
    const int64_t C = d->C, KW = d->KW, rowlen = d->KH * d->KW * C;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OH, oh = r % d->OH;
        const float *xb = x + b * d->H * d->W * C;
        for (int64_t ow = 0; ow < d->OW; ow++) {
            float *row = col + ((r - r0) * d->OW + ow) * rowlen;
            int64_t iw0 = ow * d->SW - d->PL;
            for (int64_t kh = 0; kh < d->KH; kh++, row += KW * C) {
                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->H) {
                    memset(row, 0, (size_t)(KW * C) * sizeof(float));
                    continue;
                }
                const float *xr = xb + ih * d->W * C;
                if (d->DW == 1 && iw0 >= 0 && iw0 + KW <= d->W) {
                    memcpy(row, xr + iw0 * C, (size_t)(KW * C) * sizeof(float));
                    continue;
                }
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t iw = iw0 + kw * d->DW;
                    if (iw < 0 || iw >= d->W)
                        memset(row + kw * C, 0, (size_t)C * sizeof(float));
                    else
                        memcpy(row + kw * C, xr + iw * C, (size_t)C * sizeof(float));
                }
            }
        }
    }
}

/* dx (B, H, W, C) += the scatter of col (nr * OW, KH * KW * C), output rows [r0, r0 + nr) */
static void col2im(const dpt_conv2d *d, const float *restrict col, float *restrict dx, int64_t r0,
                   int64_t nr) {
    const int64_t C = d->C, KW = d->KW, rowlen = d->KH * d->KW * C;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OH, oh = r % d->OH;
        float *xb = dx + b * d->H * d->W * C;
        for (int64_t ow = 0; ow < d->OW; ow++) {
            const float *row = col + ((r - r0) * d->OW + ow) * rowlen;
            int64_t iw0 = ow * d->SW - d->PL;
            for (int64_t kh = 0; kh < d->KH; kh++, row += KW * C) {
                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->H)
                    continue;
                if (d->DW != 1) { /* dilated: the taps are not contiguous */
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t iw = iw0 + kw * d->DW;
                        if (iw < 0 || iw >= d->W)
                            continue;
                        float *dst = xb + (ih * d->W + iw) * C;
                        for (int64_t c = 0; c < C; c++)
                            dst[c] += row[kw * C + c];
                    }
                    continue;
                }
                int64_t lo = iw0 < 0 ? -iw0 : 0;
                int64_t hi = iw0 + KW > d->W ? d->W - iw0 : KW;
                float *dst = xb + (ih * d->W + iw0 + lo) * C;
                const float *src = row + lo * C;
                for (int64_t k = 0; k < (hi - lo) * C; k++)
                    dst[k] += src[k];
            }
        }
    }
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int64_t conv_n_params(const dpt_layer *l) {
    const dpt_conv2d *d = (const dpt_conv2d *)l;
    return d->KH * d->KW * d->C * d->F + (d->use_bias ? d->F : 0);
}

static void conv_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_conv2d *d = (dpt_conv2d *)l;
    int64_t rf = d->KH * d->KW, nk = rf * d->C * d->F;
    /* Keras compute_fans for a conv kernel: fan_in = C * receptive field, fan_out = F * rf */
    dpt_init_fill(&d->kernel_init, l->params, nk, d->C * rf, d->F * rf, rng);
    if (d->use_bias)
        dpt_init_fill(&d->bias_init, l->params + nk, d->F, d->F, d->F, rng);
}

/* x (B, H, W, C), y (B, OH, OW, F) */
static void conv_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_conv2d *d = (dpt_conv2d *)l;
    if (B <= 0)
        return;
    const int kkc = (int)(d->KH * d->KW * d->C), F = (int)d->F;
    const int64_t rows = B * d->OH, OW = d->OW;
    const float *K = l->params; /* (KH*KW*C, F) */
    for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
        int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
        const float *col = x + r0 * OW * d->C; /* direct: the input rows themselves */
        if (!d->direct) {
            im2col(d, x, d->col, r0, nr);
            col = d->col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(nr * OW), F, kkc, 1.0f, col,
                    kkc, K, F, 0.0f, y + r0 * OW * F, F);
    }
    dpt_act_bias_forward_z(d->act, y, d->use_bias ? l->params + (int64_t)kkc * F : NULL, l->work,
                           rows * OW, F);
    if (l->has_activity_reg)
        l->activity_loss = dpt_actreg_forward(&d->act_reg, y, rows * OW * F);
}

/* x (B, H, W, C), y (B, OH, OW, F), dy (B, OH, OW, F) overwritten with dz, dx (B, H, W, C) or
 * NULL */
static void conv_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                          float *dy, float *dx, int64_t B) {
    (void)p;
    dpt_conv2d *d = (dpt_conv2d *)l;
    if (B <= 0)
        return;
    const int kkc = (int)(d->KH * d->KW * d->C), F = (int)d->F;
    const int64_t rows = B * d->OH, OW = d->OW;
    if (l->has_activity_reg)
        dpt_actreg_backward(&d->act_reg, y, dy, rows * OW * F);
    dpt_act_backward_z(d->act, l->work, y, dy, dy, rows * OW, F); /* work: z when needed */
    const float *K = l->params;
    if (l->trainable && d->use_bias)
        dpt_add_rows(l->grads + (int64_t)kkc * F, dy, rows * OW, F); /* db (F) */
    if (dx && !d->direct)
        memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float)); /* col2im accumulates */
    for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
        int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
        const int m = (int)(nr * OW);
        const float *dz = dy + r0 * OW * F; /* (m, F) */
        if (l->trainable) {
            const float *col = x + r0 * OW * d->C;
            if (!d->direct) {
                im2col(d, x, d->col, r0, nr);
                col = d->col;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kkc, F, m, 1.0f, col, kkc, dz, F,
                        1.0f, l->grads, F); /* dK (KH*KW*C, F) */
        }
        if (dx) {
            if (d->direct) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kkc, F, 1.0f, dz, F, K, F,
                            0.0f, dx + r0 * OW * d->C, kkc);
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kkc, F, 1.0f, dz, F, K, F,
                            0.0f, d->col, kkc); /* dcol (m, KH*KW*C) */
                col2im(d, d->col, dx, r0, nr);
            }
        }
    }
}

static int conv_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_conv2d *d = (const dpt_conv2d *)l;
    int n = 0;
    if (n < max) {
        names[n] = "kernel";
        shapes[n++] = (dpt_shape){.rank = 4, .dim = {d->KH, d->KW, d->C, d->F}};
    }
    if (d->use_bias && n < max) {
        names[n] = "bias";
        shapes[n++] = (dpt_shape){.rank = 1, .dim = {d->F}};
    }
    return n;
}

static double conv_regularize(dpt_layer *l, float scale) {
    dpt_conv2d *d = (dpt_conv2d *)l;
    int64_t nk = d->KH * d->KW * d->C * d->F;
    bool g = scale != 0.0f && l->trainable;
    double pen = dpt_regularizer_apply(&d->kernel_reg, l->params, g ? l->grads : NULL, nk, scale);
    if (d->use_bias)
        pen += dpt_regularizer_apply(&d->bias_reg, l->params + nk, g ? l->grads + nk : NULL, d->F,
                                     scale);
    return pen;
}

static void conv_constrain(dpt_layer *l) {
    dpt_conv2d *d = (dpt_conv2d *)l;
    dpt_shape ks = {.rank = 4, .dim = {d->KH, d->KW, d->C, d->F}}, bs = {.rank = 1, .dim = {d->F}};
    dpt_constraint_apply(&d->kernel_con, l->params, &ks);
    if (d->use_bias)
        dpt_constraint_apply(&d->bias_con, l->params + dpt_shape_size(&ks), &bs);
}

static json_t *pair_json(int64_t a, int64_t b) {
    return json_pack("[I, I]", (json_int_t)a, (json_int_t)b);
}

static json_t *conv_to_json(const dpt_layer *l) {
    const dpt_conv2d *d = (const dpt_conv2d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "filters", json_integer(d->F));
    json_object_set_new(c, "kernel_size", pair_json(d->KH, d->KW));
    json_object_set_new(c, "strides", pair_json(d->SH, d->SW));
    json_object_set_new(c, "padding", json_string(d->same ? "same" : "valid"));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "dilation_rate", pair_json(d->DH, d->DW));
    json_object_set_new(c, "groups", json_integer(1));
    json_object_set_new(c, "activation", dpt_act_to_json(d->act));
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

static void conv_destroy(dpt_layer *l) {
    dpt_conv2d *d = (dpt_conv2d *)l;
    dpt_free(d->col);
    d->col = NULL;
}

/* (max_batch, OH, OW, F) for the pre-activation when the activation's derivative needs it */
static int64_t conv_workspace(const dpt_layer *l, int64_t max_batch) {
    const dpt_conv2d *d = (const dpt_conv2d *)l;
    return dpt_act_needs_z(d->act) ? max_batch * l->out_size : 0;
}

static const dpt_layer_ops conv_ops = {
    .class_name = "Conv2D",
    .n_params = conv_n_params,
    .init_params = conv_init_params,
    .forward = conv_forward,
    .backward = conv_backward,
    .weights = conv_weights,
    .to_json = conv_to_json,
    .destroy = conv_destroy,
    .regularize = conv_regularize,
    .workspace = conv_workspace,
    .constrain = conv_constrain,
};

static dpt_status conv_parse(dpt_conv2d *d, const json_t *config, const dpt_json_ctx *ctx,
                             const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &conv_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank != 3) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: Conv2D needs an input of shape (None, height, width, "
                             "channels), got %s; add Reshape (e.g. target_shape [28, 28, 1])",
                             ctx->file, ctx->path, s);
    }
    d->H = in->dim[0];
    d->W = in->dim[1];
    d->C = in->dim[2];
    int64_t ks[2], str[2], dil[2], groups = 1;
    if (!json_object_get(config, "filters"))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.filters: missing (an integer >= 1)", ctx->file,
                             ctx->path);
    if (!json_object_get(config, "kernel_size"))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.kernel_size: missing (an integer or a list of 2)", ctx->file,
                             ctx->path);
    if ((st = dpt_json_get_int(config, "filters", ctx, 0, 1, INT_MAX, &d->F)) != DPT_OK ||
        (st = dpt_json_get_pair(config, "kernel_size", ctx, 1, 1, 1, ks, NULL)) != DPT_OK ||
        (st = dpt_json_get_pair(config, "strides", ctx, 1, 1, 1, str, NULL)) != DPT_OK ||
        (st = dpt_json_get_pair(config, "dilation_rate", ctx, 1, 1, 1, dil, NULL)) != DPT_OK ||
        (st = dpt_json_get_int(config, "groups", ctx, 1, 1, INT_MAX, &groups)) != DPT_OK ||
        (st = dpt_json_get_padding(config, ctx, &d->same)) != DPT_OK ||
        (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK ||
        (st = dpt_json_get_act(config, "activation", ctx, DPT_ACT_LINEAR, &d->act)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "use_bias", ctx, true, &d->use_bias)) != DPT_OK ||
        (st = dpt_init_parse(config, "kernel_initializer", ctx, dpt_init_glorot_uniform(),
                             &d->kernel_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "bias_initializer", ctx, dpt_init_zeros(), &d->bias_init)) !=
            DPT_OK ||
        (st = dpt_regularizer_parse(config, "kernel_regularizer", ctx, &d->kernel_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "bias_regularizer", ctx, &d->bias_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "activity_regularizer", ctx, &d->act_reg)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "kernel_constraint", ctx, &d->kernel_con)) != DPT_OK ||
        (st = dpt_constraint_parse(config, "bias_constraint", ctx, &d->bias_con)) != DPT_OK)
        return st;
    if ((dil[0] > 1 || dil[1] > 1) && (str[0] > 1 || str[1] > 1))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.dilation_rate: strides > 1 are incompatible with "
                             "dilation_rate > 1 (as in Keras), got strides [%lld, %lld]",
                             ctx->file, ctx->path, (long long)str[0], (long long)str[1]);
    if (groups != 1)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.groups: only 1 is supported, got %lld",
                             ctx->file, ctx->path, (long long)groups);
    if ((st = dpt_json_require_null(config, "lora_rank", ctx)) != DPT_OK)
        return st;
    l->has_regularizer = d->kernel_reg.kind != DPT_REG_NONE || d->bias_reg.kind != DPT_REG_NONE;
    l->has_activity_reg = d->act_reg.kind != DPT_REG_NONE;
    d->KH = ks[0];
    d->KW = ks[1];
    d->SH = str[0];
    d->SW = str[1];
    d->DH = dil[0];
    d->DW = dil[1];
    dpt_shape kshape = {.rank = 4, .dim = {d->KH, d->KW, d->C, d->F}};
    dpt_shape bshape = {.rank = 1, .dim = {d->F}};
    if ((d->KH - 1) > (INT_MAX - 1) / d->DH || (d->KW - 1) > (INT_MAX - 1) / d->DW)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.dilation_rate: the dilated kernel is too large", ctx->file,
                             ctx->path);
    if ((st = dpt_conv_out_dim(d->H, (d->KH - 1) * d->DH + 1, d->SH, d->same, ctx,
                               d->DH > 1 ? "dilated kernel height" : "kernel height", &d->OH,
                               &d->PT)) != DPT_OK ||
        (st = dpt_conv_out_dim(d->W, (d->KW - 1) * d->DW + 1, d->SW, d->same, ctx,
                               d->DW > 1 ? "dilated kernel width" : "kernel width", &d->OW,
                               &d->PL)) != DPT_OK ||
        (st = dpt_constraint_check(&d->kernel_con, &kshape, "kernel_constraint", ctx)) != DPT_OK ||
        (st = dpt_constraint_check(&d->bias_con, &bshape, "bias_constraint", ctx)) != DPT_OK)
        return st;
    l->has_constraint =
        d->kernel_con.kind != DPT_CON_NONE || (d->use_bias && d->bias_con.kind != DPT_CON_NONE);
    int64_t kkc, nk, rowlen;
    if (dpt_mul_i64(d->KH * d->KW, d->C, "Conv2D", &kkc) != DPT_OK ||
        dpt_mul_i64(kkc, d->F, "Conv2D", &nk) != DPT_OK || kkc > INT_MAX ||
        dpt_mul_i64(d->OW, kkc, "Conv2D", &rowlen) != DPT_OK || d->OW * d->F > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the kernel or the patch matrix is too large",
                             ctx->file, ctx->path);
    /* output rows (sample, oh) per chunk: as many as fit the budget, at least one; a chunk's
     * pixels go to sgemm as an int */
    d->direct = d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1;
    d->chunk = rowlen >= DPT_CONV_COL_FLOATS ? 1 : DPT_CONV_COL_FLOATS / rowlen;
    if (d->chunk > INT_MAX / d->OW)
        d->chunk = INT_MAX / d->OW;
    if (!d->direct) {
        int64_t bytes;
        if ((st = dpt_mul_i64(d->chunk * rowlen, (int64_t)sizeof(float), "Conv2D patches",
                              &bytes)) != DPT_OK ||
            (st = dpt_alloc((size_t)bytes, "Conv2D patch buffer", (void **)&d->col)) != DPT_OK)
            return dpt_error_set(DPT_ERR_NOMEM,
                                 "%s: %s: out of memory for the %lld-byte patch "
                                 "buffer",
                                 ctx->file, ctx->path, (long long)(d->chunk * rowlen * 4));
    }
    l->out_shape = (dpt_shape){.rank = 3, .dim = {d->OH, d->OW, d->F}};
    l->out_size = d->OH * d->OW * d->F;
    return DPT_OK;
}

dpt_status dpt_conv2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                             dpt_layer **out) {
    *out = NULL;
    dpt_conv2d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = conv_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        conv_destroy(&d->base);
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
