/* The Keras Conv1D layer, channels_last: x (B, T, C) -> y (B, OT, F) = act(conv(x, K) + b) with
 * K (KS, C, F) row-major then b (F) in the flat buffer (Keras weight order), a cross-correlation
 * (no kernel flip) with strides, dilation and padding "valid", "same" (TensorFlow's: the extra
 * pad after) or "causal" ((KS - 1) * dilation zeros before, none after, then valid).
 *
 * Same scheme as conv2d.c: im2col + one sgemm per chunk of output positions (a chunk holds as
 * many (sample, ot) rows as fit DPT_CONV1D_COL_FLOATS, so a usual batch is ONE sgemm), patch rows
 * in (k, c) order so that K seen as (KS*C, F) multiplies them straight into (B, OT, F); then the
 * fused bias + activation pass. Backward: dK += colᵀ·dz, db += column sums, dcol = dz·Kᵀ scattered
 * back by col2im. The patch buffer is the layer's workspace (ops->workspace: carved from the
 * model's arena, sized for min(max_batch * OT, chunk) rows), so it grows with the batch only up to
 * the chunk budget; a kernel of 1 with stride 1 needs none (x is its own). Geometry and
 * tuple parsing are shared with the 2-D layers (dpt_conv_out_dim, dpt_json_get_tuple1 here).
 * Refused: groups != 1, channels_first, strides > 1 with dilation > 1 (Keras refuses it too),
 * constraints, activity_regularizer, LoRA.
 */
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nn/nn_internal.h"

#define DPT_CONV1D_COL_FLOATS ((int64_t)1 << 22) /* 16 MiB of patches per chunk */

typedef enum { PAD_VALID = 0, PAD_SAME, PAD_CAUSAL } pad_kind;

typedef struct {
    dpt_layer base;                    /* first */
    int64_t T, C, F, KS, S, D, OT, PL; /* PL: zeros before the first step */
    pad_kind pad;
    bool use_bias;
    dpt_act act;
    dpt_init_spec kernel_init, bias_init;
    dpt_regularizer kernel_reg, bias_reg;
    bool direct;       /* KS 1, stride 1, no padding: col = x */
    int64_t chunk;     /* output rows (sample, ot) per im2col chunk */
    int64_t max_batch; /* the model's, recorded when it asks for the workspace */
} dpt_conv1d;

dpt_status dpt_json_get_tuple1(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                               int64_t def, int64_t lo, int64_t *out, bool *given) {
    const json_t *v = json_object_get(obj, key);
    if (given)
        *given = false;
    *out = def;
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    if (!json_is_integer(v))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be an integer or a list of 1 integer",
                             ctx->file, ctx->path, key);
    json_int_t n = json_integer_value(v);
    if (n < lo || n > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be an integer in [%lld, %d], got %lld", ctx->file,
                             ctx->path, key, (long long)lo, INT_MAX, (long long)n);
    *out = (int64_t)n;
    if (given)
        *given = true;
    return DPT_OK;
}

/* col (nr, KS * C): the patches of output rows [r0, r0 + nr), x (B, T, C) */
static void im2col(const dpt_conv1d *d, const float *restrict x, float *restrict col, int64_t r0,
                   int64_t nr) {
    const int64_t C = d->C, KS = d->KS, rowlen = KS * C;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OT, ot = r % d->OT;
        const float *xb = x + b * d->T * C;
        float *row = col + (r - r0) * rowlen;
        const int64_t t0 = ot * d->S - d->PL;
        if (d->D == 1 && t0 >= 0 && t0 + KS <= d->T) {
            memcpy(row, xb + t0 * C, (size_t)rowlen * sizeof(float));
            continue;
        }
        for (int64_t k = 0; k < KS; k++) {
            int64_t t = t0 + k * d->D;
            if (t < 0 || t >= d->T)
                memset(row + k * C, 0, (size_t)C * sizeof(float));
            else
                memcpy(row + k * C, xb + t * C, (size_t)C * sizeof(float));
        }
    }
}

/* dx (B, T, C) += the scatter of col (nr, KS * C), output rows [r0, r0 + nr) */
static void col2im(const dpt_conv1d *d, const float *restrict col, float *restrict dx, int64_t r0,
                   int64_t nr) {
    const int64_t C = d->C, KS = d->KS, rowlen = KS * C;
    for (int64_t r = r0; r < r0 + nr; r++) {
        const int64_t b = r / d->OT, ot = r % d->OT;
        float *xb = dx + b * d->T * C;
        const float *row = col + (r - r0) * rowlen;
        const int64_t t0 = ot * d->S - d->PL;
        for (int64_t k = 0; k < KS; k++) {
            int64_t t = t0 + k * d->D;
            if (t < 0 || t >= d->T)
                continue;
            float *dst = xb + t * C;
            const float *src = row + k * C;
            for (int64_t c = 0; c < C; c++)
                dst[c] += src[c];
        }
    }
}

static int64_t conv1d_n_params(const dpt_layer *l) {
    const dpt_conv1d *d = (const dpt_conv1d *)l;
    return d->KS * d->C * d->F + (d->use_bias ? d->F : 0);
}

static void conv1d_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_conv1d *d = (dpt_conv1d *)l;
    int64_t nk = d->KS * d->C * d->F;
    /* Keras compute_fans for a (KS, C, F) kernel: receptive field KS */
    dpt_init_fill(&d->kernel_init, l->params, nk, d->C * d->KS, d->F * d->KS, rng);
    if (d->use_bias)
        dpt_init_fill(&d->bias_init, l->params + nk, d->F, d->F, d->F, rng);
}

/* floats of patch buffer for max_batch samples */
/* floats of the patch buffer, rounded to a cache line (the pre-activation follows it) */
static int64_t patch_floats(const dpt_conv1d *d, int64_t max_batch) {
    if (d->direct)
        return 0;
    int64_t rows = max_batch * d->OT;
    return ((rows < d->chunk ? rows : d->chunk) * d->KS * d->C + 15) / 16 * 16;
}

/* the patch buffer, then (gelu, swish, ...) the pre-activation (max_batch, OT, F) */
static int64_t conv1d_workspace(const dpt_layer *l, int64_t max_batch) {
    dpt_conv1d *d = (dpt_conv1d *)l; /* the model asks once, before any pass: remember it */
    d->max_batch = max_batch;
    return patch_floats(d, max_batch) + (dpt_act_needs_z(d->act) ? max_batch * l->out_size : 0);
}

/* where the pre-activation lives, or NULL when the activation's derivative needs only y */
static float *z_buffer(const dpt_layer *l) {
    const dpt_conv1d *d = (const dpt_conv1d *)l;
    return dpt_act_needs_z(d->act) ? l->work + patch_floats(d, d->max_batch) : NULL;
}

/* x (B, T, C), y (B, OT, F) */
static void conv1d_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    dpt_conv1d *d = (dpt_conv1d *)l;
    if (B <= 0)
        return;
    const int kc = (int)(d->KS * d->C), F = (int)d->F;
    const int64_t rows = B * d->OT;
    const float *K = l->params; /* (KS*C, F) */
    for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
        int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
        const float *col = x + r0 * d->C; /* direct: the input rows themselves */
        if (!d->direct) {
            im2col(d, x, l->work, r0, nr);
            col = l->work;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, F, kc, 1.0f, col, kc, K, F,
                    0.0f, y + r0 * F, F);
    }
    dpt_act_bias_forward_z(d->act, y, d->use_bias ? l->params + (int64_t)kc * F : NULL, z_buffer(l),
                           rows, F);
}

/* x (B, T, C), y (B, OT, F), dy (B, OT, F) overwritten with dz, dx (B, T, C) or NULL */
static void conv1d_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                            float *dy, float *dx, int64_t B) {
    (void)p;
    dpt_conv1d *d = (dpt_conv1d *)l;
    if (B <= 0)
        return;
    const int kc = (int)(d->KS * d->C), F = (int)d->F;
    const int64_t rows = B * d->OT;
    dpt_act_backward_z(d->act, z_buffer(l), y, dy, dy, rows, F);
    const float *K = l->params;
    if (l->trainable && d->use_bias)
        dpt_add_rows(l->grads + (int64_t)kc * F, dy, rows, F); /* db (F) */
    if (dx && !d->direct)
        memset(dx, 0, (size_t)(B * l->in_size) * sizeof(float)); /* col2im accumulates */
    for (int64_t r0 = 0; r0 < rows; r0 += d->chunk) {
        int64_t nr = rows - r0 < d->chunk ? rows - r0 : d->chunk;
        const int m = (int)nr;
        const float *dz = dy + r0 * F; /* (m, F) */
        if (l->trainable) {
            const float *col = x + r0 * d->C;
            if (!d->direct) {
                im2col(d, x, l->work, r0, nr);
                col = l->work;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, F, m, 1.0f, col, kc, dz, F,
                        1.0f, l->grads, F); /* dK (KS*C, F) */
        }
        if (dx) {
            float *dcol = d->direct ? dx + r0 * d->C : l->work; /* (m, KS*C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kc, F, 1.0f, dz, F, K, F, 0.0f,
                        dcol, kc);
            if (!d->direct)
                col2im(d, l->work, dx, r0, nr);
        }
    }
}

static int conv1d_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_conv1d *d = (const dpt_conv1d *)l;
    int n = 0;
    if (n < max) {
        names[n] = "kernel";
        shapes[n++] = (dpt_shape){.rank = 3, .dim = {d->KS, d->C, d->F}};
    }
    if (d->use_bias && n < max) {
        names[n] = "bias";
        shapes[n++] = (dpt_shape){.rank = 1, .dim = {d->F}};
    }
    return n;
}

static double conv1d_regularize(dpt_layer *l, float scale) {
    dpt_conv1d *d = (dpt_conv1d *)l;
    int64_t nk = d->KS * d->C * d->F;
    bool g = scale != 0.0f && l->trainable;
    double pen = dpt_regularizer_apply(&d->kernel_reg, l->params, g ? l->grads : NULL, nk, scale);
    if (d->use_bias)
        pen += dpt_regularizer_apply(&d->bias_reg, l->params + nk, g ? l->grads + nk : NULL, d->F,
                                     scale);
    return pen;
}

static const char *const pad_names[] = {"valid", "same", "causal"};

static json_t *conv1d_to_json(const dpt_layer *l) {
    const dpt_conv1d *d = (const dpt_conv1d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "filters", json_integer(d->F));
    json_object_set_new(c, "kernel_size", json_pack("[I]", (json_int_t)d->KS));
    json_object_set_new(c, "strides", json_pack("[I]", (json_int_t)d->S));
    json_object_set_new(c, "padding", json_string(pad_names[d->pad]));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "dilation_rate", json_pack("[I]", (json_int_t)d->D));
    json_object_set_new(c, "groups", json_integer(1));
    json_object_set_new(c, "activation", dpt_act_to_json(d->act));
    json_object_set_new(c, "use_bias", json_boolean(d->use_bias));
    json_object_set_new(c, "kernel_initializer", dpt_init_to_json(&d->kernel_init));
    json_object_set_new(c, "bias_initializer", dpt_init_to_json(&d->bias_init));
    json_object_set_new(c, "kernel_regularizer", dpt_regularizer_to_json(&d->kernel_reg));
    json_object_set_new(c, "bias_regularizer", dpt_regularizer_to_json(&d->bias_reg));
    json_object_set_new(c, "activity_regularizer", json_null());
    json_object_set_new(c, "kernel_constraint", json_null());
    json_object_set_new(c, "bias_constraint", json_null());
    return c;
}

static const dpt_layer_ops conv1d_ops = {
    .class_name = "Conv1D",
    .n_params = conv1d_n_params,
    .init_params = conv1d_init_params,
    .forward = conv1d_forward,
    .backward = conv1d_backward,
    .weights = conv1d_weights,
    .to_json = conv1d_to_json,
    .regularize = conv1d_regularize,
    .workspace = conv1d_workspace,
};

static dpt_status get_pad(const json_t *config, const dpt_json_ctx *ctx, pad_kind *out) {
    const char *p = NULL;
    dpt_status st = dpt_json_get_str(config, "padding", ctx, "valid", &p);
    if (st != DPT_OK)
        return st;
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(p, pad_names[i])) {
            *out = (pad_kind)i;
            return DPT_OK;
        }
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: %s.padding: must be \"valid\", \"same\" or \"causal\", got \"%s\"",
                         ctx->file, ctx->path, p);
}

static dpt_status conv1d_parse(dpt_conv1d *d, const json_t *config, const dpt_json_ctx *ctx,
                               const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &conv1d_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank != 2) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: Conv1D needs an input of shape (None, steps, channels), got "
                             "%s; add Reshape (e.g. target_shape [784, 1])",
                             ctx->file, ctx->path, s);
    }
    d->T = in->dim[0];
    d->C = in->dim[1];
    int64_t groups = 1;
    if (!json_object_get(config, "filters"))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.filters: missing (an integer >= 1)", ctx->file,
                             ctx->path);
    if (!json_object_get(config, "kernel_size"))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.kernel_size: missing (an integer or a list of 1)", ctx->file,
                             ctx->path);
    if ((st = dpt_json_get_int(config, "filters", ctx, 0, 1, INT_MAX, &d->F)) != DPT_OK ||
        (st = dpt_json_get_tuple1(config, "kernel_size", ctx, 1, 1, &d->KS, NULL)) != DPT_OK ||
        (st = dpt_json_get_tuple1(config, "strides", ctx, 1, 1, &d->S, NULL)) != DPT_OK ||
        (st = dpt_json_get_tuple1(config, "dilation_rate", ctx, 1, 1, &d->D, NULL)) != DPT_OK ||
        (st = dpt_json_get_int(config, "groups", ctx, 1, 1, INT_MAX, &groups)) != DPT_OK ||
        (st = get_pad(config, ctx, &d->pad)) != DPT_OK ||
        (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK ||
        (st = dpt_json_get_act(config, "activation", ctx, DPT_ACT_LINEAR, &d->act)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "use_bias", ctx, true, &d->use_bias)) != DPT_OK ||
        (st = dpt_init_parse(config, "kernel_initializer", ctx, dpt_init_glorot_uniform(),
                             &d->kernel_init)) != DPT_OK ||
        (st = dpt_init_parse(config, "bias_initializer", ctx, dpt_init_zeros(), &d->bias_init)) !=
            DPT_OK ||
        (st = dpt_regularizer_parse(config, "kernel_regularizer", ctx, &d->kernel_reg)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "bias_regularizer", ctx, &d->bias_reg)) != DPT_OK)
        return st;
    if (groups != 1)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.groups: only 1 is supported, got %lld",
                             ctx->file, ctx->path, (long long)groups);
    if (d->S > 1 && d->D > 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.strides: strides > 1 together with dilation_rate > 1 is not "
                             "supported (Keras refuses it too), got strides %lld, dilation_rate "
                             "%lld",
                             ctx->file, ctx->path, (long long)d->S, (long long)d->D);
    static const char *const must_be_null[] = {"activity_regularizer", "kernel_constraint",
                                               "bias_constraint", "lora_rank"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        if ((st = dpt_json_require_null(config, must_be_null[i], ctx)) != DPT_OK)
            return st;
    l->has_regularizer = d->kernel_reg.kind != DPT_REG_NONE || d->bias_reg.kind != DPT_REG_NONE;
    if (d->KS > (INT_MAX - 1) / d->D)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.kernel_size: too large with this dilation",
                             ctx->file, ctx->path);
    const int64_t keff = (d->KS - 1) * d->D + 1; /* the dilated kernel's span */
    if (d->pad == PAD_CAUSAL) {
        d->PL = (d->KS - 1) * d->D;
        d->OT = (d->T + d->PL - keff) / d->S + 1;
    } else if ((st = dpt_conv_out_dim(d->T, keff, d->S, d->pad == PAD_SAME, ctx,
                                      d->D > 1 ? "dilated kernel span" : "kernel size", &d->OT,
                                      &d->PL)) != DPT_OK) {
        return st;
    }
    int64_t kc, nk;
    if (dpt_mul_i64(d->KS, d->C, "Conv1D", &kc) != DPT_OK ||
        dpt_mul_i64(kc, d->F, "Conv1D", &nk) != DPT_OK || kc > INT_MAX || nk > INT64_MAX / 2)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the kernel or the patch matrix is too large",
                             ctx->file, ctx->path);
    d->direct = d->KS == 1 && d->S == 1 && d->PL == 0;
    d->chunk = kc >= DPT_CONV1D_COL_FLOATS ? 1 : DPT_CONV1D_COL_FLOATS / kc;
    if (d->chunk > INT_MAX)
        d->chunk = INT_MAX;
    l->out_shape = (dpt_shape){.rank = 2, .dim = {d->OT, d->F}};
    l->out_size = d->OT * d->F;
    return DPT_OK;
}

dpt_status dpt_conv1d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                             dpt_layer **out) {
    *out = NULL;
    dpt_conv1d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = conv1d_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
