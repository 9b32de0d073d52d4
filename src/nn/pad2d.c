/* The Keras ZeroPadding2D and Cropping2D layers, channels_last: x (B, H, W, C) ->
 * y (B, OH, OW, C) with y[oh, ow] = x[oh - top, ow - left] (zero outside x). ZeroPadding2D:
 * OH = H + top + bottom; Cropping2D is the same map with negative offsets, OH = H - top - bottom.
 * Both take Keras's three forms of the 2-D amount: an integer n (n on every side), a pair
 * (sym_height, sym_width), or ((top, bottom), (left, right)), each inner entry an integer or a
 * pair. No parameters. channels_first: the model wraps them in chfirst.c's transposes.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    int64_t H, W, C, OH, OW;
    int64_t amount[2][2]; /* ((top, bottom), (left, right)) as configured, >= 0 */
    int64_t PT, PL;       /* y[oh, ow] = x[oh - PT, ow - PL]: padding > 0, cropping < 0 */
} dpt_pad2d;

/* obj[key] in Keras's forms -> out ((top, bottom), (left, right)). */
static dpt_status parse_amount(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                               int64_t def, int64_t out[2][2]) {
    const json_t *v = json_object_get(obj, key);
    out[0][0] = out[0][1] = out[1][0] = out[1][1] = def;
    if (!v || json_is_null(v))
        return DPT_OK;
    bool ok = true;
    if (json_is_integer(v)) {
        out[0][0] = out[0][1] = out[1][0] = out[1][1] = (int64_t)json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2) {
        for (int i = 0; i < 2 && ok; i++) {
            const json_t *e = json_array_get(v, (size_t)i);
            if (json_is_integer(e)) {
                out[i][0] = out[i][1] = (int64_t)json_integer_value(e);
            } else if (json_is_array(e) && json_array_size(e) == 2 &&
                       json_is_integer(json_array_get(e, 0)) &&
                       json_is_integer(json_array_get(e, 1))) {
                out[i][0] = (int64_t)json_integer_value(json_array_get(e, 0));
                out[i][1] = (int64_t)json_integer_value(json_array_get(e, 1));
            } else {
                ok = false;
            }
        }
    } else {
        ok = false;
    }
    if (!ok)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be an integer, a list of 2 integers or "
                             "[[top, bottom], [left, right]]",
                             ctx->file, ctx->path, key);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (out[i][j] < 0 || out[i][j] > INT_MAX)
                return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be integers >= 0, got %lld",
                                     ctx->file, ctx->path, key, (long long)out[i][j]);
    return DPT_OK;
}

/* x (B, H, W, C), y (B, OH, OW, C) */
static void pad_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_pad2d *d = (const dpt_pad2d *)l;
    const int64_t C = d->C;
    /* the output columns that come from x: ow in [c0, c1) */
    const int64_t c0 = d->PL > 0 ? d->PL : 0, c1 = d->PL + d->W < d->OW ? d->PL + d->W : d->OW;
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < d->OH; oh++) {
            float *yr = y + ((b * d->OH + oh) * d->OW) * C;
            int64_t ih = oh - d->PT;
            if (ih < 0 || ih >= d->H) {
                memset(yr, 0, (size_t)(d->OW * C) * sizeof(float));
                continue;
            }
            const float *xr = x + ((b * d->H + ih) * d->W + (c0 - d->PL)) * C;
            memset(yr, 0, (size_t)(c0 * C) * sizeof(float));
            memcpy(yr + c0 * C, xr, (size_t)((c1 - c0) * C) * sizeof(float));
            memset(yr + c1 * C, 0, (size_t)((d->OW - c1) * C) * sizeof(float));
        }
}

/* dy (B, OH, OW, C), dx (B, H, W, C) or NULL: the window of dy (zero where cropped away) */
static void pad_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                         float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    if (!dx)
        return;
    const dpt_pad2d *d = (const dpt_pad2d *)l;
    const int64_t C = d->C;
    /* the input columns that reach y: iw in [c0, c1) */
    const int64_t c0 = d->PL < 0 ? -d->PL : 0, c1 = d->OW - d->PL < d->W ? d->OW - d->PL : d->W;
    for (int64_t b = 0; b < B; b++)
        for (int64_t ih = 0; ih < d->H; ih++) {
            float *xr = dx + ((b * d->H + ih) * d->W) * C;
            int64_t oh = ih + d->PT;
            if (oh < 0 || oh >= d->OH) {
                memset(xr, 0, (size_t)(d->W * C) * sizeof(float));
                continue;
            }
            const float *yr = dy + ((b * d->OH + oh) * d->OW + (c0 + d->PL)) * C;
            memset(xr, 0, (size_t)(c0 * C) * sizeof(float));
            memcpy(xr + c0 * C, yr, (size_t)((c1 - c0) * C) * sizeof(float));
            memset(xr + c1 * C, 0, (size_t)((d->W - c1) * C) * sizeof(float));
        }
}

static json_t *amount_json(const dpt_pad2d *d) {
    return json_pack("[[I, I], [I, I]]", (json_int_t)d->amount[0][0], (json_int_t)d->amount[0][1],
                     (json_int_t)d->amount[1][0], (json_int_t)d->amount[1][1]);
}

static json_t *zp_to_json(const dpt_layer *l) {
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "padding", amount_json((const dpt_pad2d *)l));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    return c;
}

static json_t *crop_to_json(const dpt_layer *l) {
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "cropping", amount_json((const dpt_pad2d *)l));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    return c;
}

static const dpt_layer_ops zp_ops = {
    .class_name = "ZeroPadding2D",
    .forward = pad_forward,
    .backward = pad_backward,
    .to_json = zp_to_json,
};

static const dpt_layer_ops crop_ops = {
    .class_name = "Cropping2D",
    .forward = pad_forward,
    .backward = pad_backward,
    .to_json = crop_to_json,
};

static dpt_status pad_parse(dpt_pad2d *d, bool crop, const json_t *config, const dpt_json_ctx *ctx,
                            const dpt_shape *in) {
    dpt_layer *l = &d->base;
    const char *cls = crop ? "Cropping2D" : "ZeroPadding2D";
    dpt_status st = dpt_layer_base_init(l, crop ? &crop_ops : &zp_ops, config, ctx, in);
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
    if ((st = parse_amount(config, crop ? "cropping" : "padding", ctx, crop ? 0 : 1, d->amount)) !=
            DPT_OK ||
        (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK)
        return st;
    d->H = in->dim[0];
    d->W = in->dim[1];
    d->C = in->dim[2];
    int64_t sh = d->amount[0][0] + d->amount[0][1], sw = d->amount[1][0] + d->amount[1][1];
    if (crop) {
        d->OH = d->H - sh;
        d->OW = d->W - sw;
        d->PT = -d->amount[0][0];
        d->PL = -d->amount[1][0];
        if (d->OH < 1 || d->OW < 1)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.cropping: crops (%lld, %lld) leave nothing of an input "
                                 "of (%lld, %lld)",
                                 ctx->file, ctx->path, (long long)sh, (long long)sw,
                                 (long long)d->H, (long long)d->W);
    } else {
        d->OH = d->H + sh;
        d->OW = d->W + sw;
        d->PT = d->amount[0][0];
        d->PL = d->amount[1][0];
    }
    l->out_shape = (dpt_shape){.rank = 3, .dim = {d->OH, d->OW, d->C}};
    l->out_size = dpt_shape_size(&l->out_shape);
    if (l->out_size < 0 || d->OH > INT_MAX || d->OW > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the output is too large", ctx->file,
                             ctx->path);
    return DPT_OK;
}

static dpt_status pad_create(bool crop, const json_t *config, const dpt_json_ctx *ctx,
                             const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_pad2d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = pad_parse(d, crop, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}

dpt_status dpt_zero_padding2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                     const dpt_shape *in, dpt_layer **out) {
    return pad_create(false, config, ctx, in, out);
}

dpt_status dpt_cropping2d_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_layer **out) {
    return pad_create(true, config, ctx, in, out);
}
