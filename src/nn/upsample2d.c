/* The Keras UpSampling2D layer, channels_last, interpolation "nearest" (Keras: ops.repeat along
 * height then width): x (B, H, W, C) -> y (B, H*SH, W*SW, C), y[oh, ow] = x[oh / SH, ow / SW].
 * Backward sums each SH x SW block of dy. No parameters. Refused by name: the other
 * interpolations ("bilinear", "bicubic", ... go through ops.image.resize, whose exact kernels
 * live nowhere here); channels_first: the model wraps it in chfirst.c's transposes.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base; /* first */
    int64_t H, W, C, SH, SW;
} dpt_upsample2d;

/* x (B, H, W, C), y (B, H*SH, W*SW, C) */
static void up_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_upsample2d *d = (const dpt_upsample2d *)l;
    const int64_t C = d->C, OW = d->W * d->SW;
    for (int64_t r = 0; r < B * d->H; r++) { /* (sample, input row) */
        const float *xr = x + r * d->W * C;
        float *yr = y + r * d->SH * OW * C;
        for (int64_t iw = 0; iw < d->W; iw++)
            for (int64_t s = 0; s < d->SW; s++)
                memcpy(yr + (iw * d->SW + s) * C, xr + iw * C, (size_t)C * sizeof(float));
        for (int64_t s = 1; s < d->SH; s++)
            memcpy(yr + s * OW * C, yr, (size_t)(OW * C) * sizeof(float));
    }
}

/* dy (B, H*SH, W*SW, C), dx (B, H, W, C) or NULL */
static void up_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)p;
    (void)x;
    (void)y;
    if (!dx)
        return;
    const dpt_upsample2d *d = (const dpt_upsample2d *)l;
    const int64_t C = d->C, OW = d->W * d->SW;
    for (int64_t r = 0; r < B * d->H; r++) {
        float *xr = dx + r * d->W * C;
        const float *yr = dy + r * d->SH * OW * C;
        memset(xr, 0, (size_t)(d->W * C) * sizeof(float));
        for (int64_t s = 0; s < d->SH; s++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float *dst = xr + (ow / d->SW) * C;
                const float *src = yr + (s * OW + ow) * C;
                for (int64_t c = 0; c < C; c++)
                    dst[c] += src[c];
            }
    }
}

static json_t *up_to_json(const dpt_layer *l) {
    const dpt_upsample2d *d = (const dpt_upsample2d *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "size", json_pack("[I, I]", (json_int_t)d->SH, (json_int_t)d->SW));
    json_object_set_new(c, "data_format", json_string("channels_last"));
    json_object_set_new(c, "interpolation", json_string("nearest"));
    return c;
}

static const dpt_layer_ops up_ops = {
    .class_name = "UpSampling2D",
    .forward = up_forward,
    .backward = up_backward,
    .to_json = up_to_json,
};

static dpt_status up_parse(dpt_upsample2d *d, const json_t *config, const dpt_json_ctx *ctx,
                           const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &up_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank != 3) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: UpSampling2D needs an input of shape (None, height, width, "
                             "channels), got %s",
                             ctx->file, ctx->path, s);
    }
    int64_t size[2];
    const char *interp = NULL;
    if ((st = dpt_json_get_pair(config, "size", ctx, 2, 2, 1, size, NULL)) != DPT_OK ||
        (st = dpt_json_check_channels_last(config, ctx)) != DPT_OK ||
        (st = dpt_json_get_str(config, "interpolation", ctx, "nearest", &interp)) != DPT_OK)
        return st;
    if (strcasecmp(interp, "nearest") != 0)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.interpolation: only \"nearest\" is supported, got \"%s\"",
                             ctx->file, ctx->path, interp);
    d->H = in->dim[0];
    d->W = in->dim[1];
    d->C = in->dim[2];
    d->SH = size[0];
    d->SW = size[1];
    l->out_shape = (dpt_shape){.rank = 3, .dim = {d->H * d->SH, d->W * d->SW, d->C}};
    if (d->H > INT_MAX / d->SH || d->W > INT_MAX / d->SW ||
        (l->out_size = dpt_shape_size(&l->out_shape)) < 0)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.size: the output is too large", ctx->file,
                             ctx->path);
    return DPT_OK;
}

dpt_status dpt_upsampling2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                   const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_upsample2d *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = up_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
