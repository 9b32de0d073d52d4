/* The rest of the Keras dropout family and GaussianNoise, every random number from the same
 * counter-based Philox-4x32-10 stream as Dropout (dpt_dropout_keep: key (seed, rank ^ stream<<20),
 * counter (index / 4, layer index, step lo, step hi)), so masks are pure functions that backward
 * recomputes and a resume needs no RNG state:
 *   SpatialDropout1D / 2D: one keep/drop per (sample, channel), broadcast over steps / pixels,
 *     kept values scaled by 1 / (1 - rate); mask index = sample * C + channel.
 *   GaussianDropout(rate): y = x * (1 + sqrt(rate / (1 - rate)) * N(0, 1)).
 *   AlphaDropout(rate, noise_shape): Keras's formula, dropped units set to alpha' = -alpha*scale
 *     of SELU and an affine correction a, b that keeps mean and variance.
 *   GaussianNoise(stddev): y = x + stddev * N(0, 1), training only.
 * Normals are Box-Muller on two 32-bit Philox words (dpt_noise_normal). Also here: Dropout's
 * noise_shape (parse, mask index). All are the identity outside training.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

/* ---- normals -------------------------------------------------------------------------------- */

static void normals4(const dpt_pass *p, uint32_t layer, uint64_t q, float out[4]) {
    dpt_u32x4 c = {{(uint32_t)q, layer, (uint32_t)p->step, (uint32_t)(p->step >> 32)}};
    dpt_u32x4 r = dpt_philox4x32_10(c, p->seed, p->rank ^ (p->stream << 20));
    for (int j = 0; j < 2; j++) {
        double u1 = ((double)r.v[2 * j] + 1.0) * (1.0 / 4294967296.0); /* (0, 1] */
        double u2 = (double)r.v[2 * j + 1] * (1.0 / 4294967296.0);     /* [0, 1) */
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[2 * j] = (float)(rad * cos(th));
        out[2 * j + 1] = (float)(rad * sin(th));
    }
}

float dpt_noise_normal(const dpt_pass *p, uint32_t layer_index, uint64_t idx) {
    float z[4];
    normals4(p, layer_index, idx / 4, z);
    return z[idx % 4];
}

void dpt_noise_fill_normal(const dpt_pass *p, uint32_t layer_index, uint64_t first, float *out,
                           int64_t n) {
    int64_t k = 0;
    float z[4];
    while (k < n) {
        uint64_t idx = first + (uint64_t)k;
        normals4(p, layer_index, idx / 4, z);
        for (uint64_t j = idx % 4; j < 4 && k < n; j++)
            out[k++] = z[j];
    }
}

/* ---- noise_shape ---------------------------------------------------------------------------- */

dpt_status dpt_noise_shape_parse(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_noise_shape *out) {
    memset(out, 0, sizeof *out);
    out->rank = in->rank;
    const json_t *v = json_object_get(config, "noise_shape");
    if (!v || json_is_null(v))
        return DPT_OK;
    if (!json_is_array(v) || json_array_size(v) != (size_t)in->rank + 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.noise_shape: must be null or a list of %d entries (the batch "
                             "dimension first), each null, 1 or the input's size",
                             ctx->file, ctx->path, in->rank + 1);
    for (int i = 0; i <= in->rank; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        if (json_is_null(e))
            continue;
        json_int_t n = json_is_integer(e) ? json_integer_value(e) : -1;
        bool ok = n == 1 || (i > 0 && n == in->dim[i - 1]);
        if (!ok)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.noise_shape[%d]: must be null, 1%s, got %s", ctx->file,
                                 ctx->path, i, i > 0 ? " or the input's size" : "",
                                 json_is_integer(e) ? "another integer" : "a non-integer");
        if (n == 1 && i == 0)
            out->batch_bcast = true;
        else if (n == 1 && in->dim[i - 1] != 1)
            out->bcast[i - 1] = true;
    }
    out->has = out->batch_bcast;
    for (int i = 0; i < in->rank; i++)
        out->has = out->has || out->bcast[i];
    out->json = json_deep_copy(v);
    return DPT_OK;
}

int64_t dpt_noise_shape_index(const dpt_noise_shape *ns, const dpt_shape *in, int64_t b,
                              int64_t k) {
    int64_t idx = 0, mstride = 1;
    for (int i = ns->rank - 1; i >= 0; i--) {
        int64_t c = k % in->dim[i];
        k /= in->dim[i];
        if (!ns->bcast[i]) {
            idx += c * mstride;
            mstride *= in->dim[i];
        }
    }
    return (ns->batch_bcast ? 0 : b) * mstride + idx;
}

bool dpt_noise_shape_chan_only(const dpt_noise_shape *ns) {
    if (!ns->has || ns->rank < 1 || ns->bcast[ns->rank - 1])
        return false;
    for (int i = 0; i < ns->rank - 1; i++)
        if (!ns->bcast[i])
            return false;
    return true;
}

void dpt_mask_apply(const dpt_pass *p, uint32_t layer_index, const dpt_noise_shape *ns,
                    const dpt_shape *in_shape, float rate, float keep_mul, float keep_add,
                    float drop_add, float *chan, const float *in, float *out, int64_t B) {
    const int64_t n = dpt_shape_size(in_shape);
    const bool chan_only = dpt_noise_shape_chan_only(ns);
    const int64_t C = in_shape->rank > 0 ? in_shape->dim[in_shape->rank - 1] : 1;
    for (int64_t b = 0; b < B; b++) {
        const float *x = in + b * n;
        float *y = out + b * n;
        if (chan_only) {
            if (b == 0 || !ns->batch_bcast)
                for (int64_t c = 0; c < C; c++) {
                    uint64_t mi = (uint64_t)((ns->batch_bcast ? 0 : b) * C + c);
                    chan[c] = dpt_dropout_keep(p, layer_index, mi, rate) ? 1.0f : 0.0f;
                }
            for (int64_t k = 0; k < n; k++)
                y[k] = chan[k % C] != 0.0f ? x[k] * keep_mul + keep_add : drop_add;
        } else {
            for (int64_t k = 0; k < n; k++) {
                uint64_t mi = ns->has ? (uint64_t)dpt_noise_shape_index(ns, in_shape, b, k)
                                      : (uint64_t)(b * n + k);
                y[k] = dpt_dropout_keep(p, layer_index, mi, rate) ? x[k] * keep_mul + keep_add
                                                                  : drop_add;
            }
        }
    }
}

/* ---- the layers ----------------------------------------------------------------------------- */

typedef enum { K_SPATIAL1D, K_SPATIAL2D, K_GAUSS_DROPOUT, K_ALPHA_DROPOUT, K_GAUSS_NOISE } kind_t;

typedef struct {
    dpt_layer base; /* first */
    kind_t kind;
    double rate;         /* dropout rates; GaussianNoise: stddev */
    float rate_f, scale; /* keep test, 1 / (1 - rate) */
    float stddev;        /* GaussianDropout: sqrt(rate / (1 - rate)); GaussianNoise: stddev */
    float a, b, alpha_p; /* AlphaDropout */
    dpt_noise_shape ns;  /* AlphaDropout; spatial: broadcast over all but the channels */
    float *chan;         /* (C) per-sample channel mask scratch (channel-only masks) */
} dpt_noise;

static bool noise_active(const dpt_noise *d, const dpt_pass *p) {
    if (d->kind == K_GAUSS_NOISE)
        return p->training && d->rate > 0;
    return dpt_dropout_on(p) && d->rate > 0;
}

/* out = f(in) where the multiplier of element k is mul(k) (and AlphaDropout adds a shift).
 * backward: shift 0, the same multipliers. in, out (B, n) */
static void apply(dpt_noise *d, const dpt_pass *p, const float *in, float *out, int64_t B,
                  bool fwd) {
    dpt_layer *l = &d->base;
    const int64_t n = l->in_size;
    const uint32_t li = (uint32_t)l->index;
    if (d->kind == K_GAUSS_NOISE) { /* additive: forward adds, backward passes dy through */
        if (!fwd) {
            if (out != in)
                memcpy(out, in, (size_t)(B * n) * sizeof(float));
            return;
        }
        for (int64_t base = 0; base < B * n; base += 4) {
            float z[4];
            normals4(p, li, (uint64_t)base / 4, z);
            for (int64_t j = 0; j < 4 && base + j < B * n; j++)
                out[base + j] = in[base + j] + d->stddev * z[j];
        }
        return;
    }
    if (d->kind == K_GAUSS_DROPOUT) {
        for (int64_t base = 0; base < B * n; base += 4) {
            float z[4];
            normals4(p, li, (uint64_t)base / 4, z);
            for (int64_t j = 0; j < 4 && base + j < B * n; j++)
                out[base + j] = in[base + j] * (1.0f + d->stddev * z[j]);
        }
        return;
    }
    /* keep masks: spatial and alpha */
    const bool alpha = d->kind == K_ALPHA_DROPOUT;
    dpt_mask_apply(p, li, &d->ns, &l->in_shape, d->rate_f, alpha ? d->a : d->scale,
                   alpha && fwd ? d->b : 0.0f, alpha && fwd ? d->a * d->alpha_p + d->b : 0.0f,
                   d->chan, in, out, B);
}

/* x (B, n), y (B, n) */
static void noise_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_noise *d = (dpt_noise *)l;
    if (B <= 0)
        return;
    if (!noise_active(d, p)) {
        if (y != x)
            memcpy(y, x, (size_t)(B * l->in_size) * sizeof(float));
        return;
    }
    apply(d, p, x, y, B, true);
}

/* dy (B, n), dx (B, n) or NULL */
static void noise_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y,
                           float *dy, float *dx, int64_t B) {
    (void)x;
    (void)y;
    dpt_noise *d = (dpt_noise *)l;
    if (!dx || B <= 0)
        return;
    if (!noise_active(d, p)) {
        if (dx != dy)
            memcpy(dx, dy, (size_t)(B * l->in_size) * sizeof(float));
        return;
    }
    apply(d, p, dy, dx, B, false);
}

static json_t *noise_to_json(const dpt_layer *l) {
    const dpt_noise *d = (const dpt_noise *)l;
    json_t *c = dpt_layer_base_json(l);
    if (d->kind == K_GAUSS_NOISE)
        json_object_set_new(c, "stddev", json_real(d->rate));
    else
        json_object_set_new(c, "rate", json_real(d->rate));
    if (d->kind == K_ALPHA_DROPOUT)
        json_object_set_new(c, "noise_shape", d->ns.json ? json_incref(d->ns.json) : json_null());
    if (d->kind == K_SPATIAL2D)
        json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "seed", json_null());
    return c;
}

static void noise_destroy(dpt_layer *l) {
    dpt_noise *d = (dpt_noise *)l;
    free(d->chan);
    d->chan = NULL;
    json_decref(d->ns.json);
    d->ns.json = NULL;
}

#define NOISE_OPS(var, cls)                                                                        \
    static const dpt_layer_ops var = {                                                             \
        .class_name = cls,                                                                         \
        .forward = noise_forward,                                                                  \
        .backward = noise_backward,                                                                \
        .to_json = noise_to_json,                                                                  \
        .destroy = noise_destroy,                                                                  \
    }
NOISE_OPS(spatial1d_ops, "SpatialDropout1D");
NOISE_OPS(spatial2d_ops, "SpatialDropout2D");
NOISE_OPS(gauss_dropout_ops, "GaussianDropout");
NOISE_OPS(alpha_dropout_ops, "AlphaDropout");
NOISE_OPS(gauss_noise_ops, "GaussianNoise");

static dpt_status noise_parse(dpt_noise *d, const dpt_layer_ops *ops, kind_t kind,
                              const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in) {
    dpt_layer *l = &d->base;
    d->kind = kind;
    dpt_status st = dpt_layer_base_init(l, ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    const char *key = kind == K_GAUSS_NOISE ? "stddev" : "rate";
    if (!json_object_get(config, key))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: missing (%s)", ctx->file, ctx->path, key,
                             kind == K_GAUSS_NOISE ? "a number >= 0" : "a number in [0, 1)");
    if (kind == K_GAUSS_NOISE)
        st = dpt_json_get_num(config, key, ctx, 0.0, 0.0, HUGE_VAL, false, &d->rate);
    else
        st = dpt_json_get_num(config, key, ctx, 0.0, 0.0, 1.0, true, &d->rate);
    if (st != DPT_OK)
        return st;
    if (kind == K_SPATIAL1D || kind == K_SPATIAL2D) {
        int want = kind == K_SPATIAL1D ? 2 : 3;
        if (in->rank != want) {
            char s[128];
            dpt_shape_format(in, true, s, sizeof s);
            return dpt_error_set(
                DPT_ERR_CONFIG, "%s: %s: %s needs an input of rank %d (%s), got %s", ctx->file,
                ctx->path, ops->class_name, want + 1,
                want == 2 ? "batch, steps, channels" : "batch, height, width, channels", s);
        }
        if (kind == K_SPATIAL2D && (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK)
            return st;
        if ((st = dpt_json_require_null(config, "noise_shape", ctx)) != DPT_OK)
            return st;
        d->ns = (dpt_noise_shape){.has = true, .rank = in->rank};
        for (int i = 0; i < in->rank - 1; i++)
            d->ns.bcast[i] = true;
    } else if (kind == K_ALPHA_DROPOUT) {
        if ((st = dpt_noise_shape_parse(config, ctx, in, &d->ns)) != DPT_OK)
            return st;
    }
    if (dpt_noise_shape_chan_only(&d->ns)) {
        d->chan = calloc((size_t)in->dim[in->rank - 1], sizeof(float));
        if (!d->chan)
            return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    }
    d->rate_f = (float)d->rate;
    if (kind != K_GAUSS_NOISE && d->rate_f >= 1.0f)
        d->rate_f = nextafterf(1.0f, 0.0f);
    d->scale = kind == K_GAUSS_NOISE ? 1.0f : (float)(1.0 / (1.0 - d->rate));
    d->stddev = kind == K_GAUSS_NOISE ? (float)d->rate : (float)sqrt(d->rate / (1.0 - d->rate));
    if (kind == K_ALPHA_DROPOUT) {
        const double alpha = 1.6732632423543772848170429916717;
        const double selu_scale = 1.0507009873554804934193349852946;
        double ap = -alpha * selu_scale, r = d->rate;
        double a = pow((1 - r) * (1 + r * ap * ap), -0.5);
        d->alpha_p = (float)ap;
        d->a = (float)a;
        d->b = (float)(-a * ap * r);
    }
    return DPT_OK;
}

static dpt_status noise_create(const dpt_layer_ops *ops, kind_t kind, const json_t *config,
                               const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_noise *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = noise_parse(d, ops, kind, config, ctx, in);
    if (st != DPT_OK) {
        noise_destroy(&d->base);
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_spatial_dropout1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                        const dpt_shape *in, dpt_layer **out) {
    return noise_create(&spatial1d_ops, K_SPATIAL1D, config, ctx, in, out);
}
dpt_status dpt_spatial_dropout2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                        const dpt_shape *in, dpt_layer **out) {
    return noise_create(&spatial2d_ops, K_SPATIAL2D, config, ctx, in, out);
}
dpt_status dpt_gaussian_dropout_create(const json_t *config, const dpt_json_ctx *ctx,
                                       const dpt_shape *in, dpt_layer **out) {
    return noise_create(&gauss_dropout_ops, K_GAUSS_DROPOUT, config, ctx, in, out);
}
dpt_status dpt_alpha_dropout_create(const json_t *config, const dpt_json_ctx *ctx,
                                    const dpt_shape *in, dpt_layer **out) {
    return noise_create(&alpha_dropout_ops, K_ALPHA_DROPOUT, config, ctx, in, out);
}
dpt_status dpt_gaussian_noise_create(const json_t *config, const dpt_json_ctx *ctx,
                                     const dpt_shape *in, dpt_layer **out) {
    return noise_create(&gauss_noise_ops, K_GAUSS_NOISE, config, ctx, in, out);
}
