/* data_format "channels_first" for the 2-D layers (Conv2D, the pooling layers, DepthwiseConv2D,
 * SeparableConv2D, ZeroPadding2D, Cropping2D, UpSampling2D): a transpose at the layer boundary.
 * The model builds the channels_last layer on the transposed sample shape (C, H, W) -> (H, W, C)
 * and wraps it: forward transposes x (B, C, H, W) into (B, H, W, C), runs the inner layer and
 * transposes its output back to (B, F, OH, OW); backward does the same with dy and dx. Keras keeps
 * the kernel layouts of channels_last ((KH, KW, C, F) for Conv2D) whatever the data format, so the
 * parameters, weights, regularizers and constraints are the inner layer's, on the same view.
 * The four (B, ...) NHWC buffers come from the model's arena (ops->workspace), kept from forward to
 * backward, followed by the inner layer's own workspace (Conv2D's z for gelu, ...). Left to the
 * inner layer: everything else. BatchNormalization axis 1 is not here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
    dpt_layer base;    /* first */
    dpt_layer_ops ops; /* the wrapper's ops, named as the inner class (Keras default names) */
    dpt_layer *inner;  /* owned: the channels_last layer */
    int64_t own;       /* floats of the four NHWC buffers for max_batch (cf_workspace), 16-aligned;
                          the inner layer's own workspace (Conv2D's z for gelu, ...) follows */
} dpt_chfirst;

static const char *const wrapped[] = {
    "Conv2D",           "Convolution2D",   "MaxPooling2D",           "MaxPool2D",
    "AveragePooling2D", "AvgPool2D",       "GlobalAveragePooling2D", "GlobalAvgPool2D",
    "DepthwiseConv2D",  "SeparableConv2D", "SeparableConvolution2D", "ZeroPadding2D",
    "Cropping2D",       "UpSampling2D",    "GlobalMaxPooling2D",     "GlobalMaxPool2D",
};

bool dpt_chfirst_wants(const char *class_name, const json_t *config) {
    const json_t *f = json_object_get(config, "data_format");
    if (!json_is_string(f) || strcmp(json_string_value(f), "channels_first") != 0)
        return false;
    for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++)
        if (!strcmp(class_name, wrapped[i]))
            return true;
    return false;
}

/* (B, A, S) -> (B, S, A): per sample, a (A, S) matrix transposed; A = channels, S = pixels */
static void transpose(const float *restrict src, float *restrict dst, int64_t B, int64_t A,
                      int64_t S) {
    for (int64_t b = 0; b < B; b++) {
        const float *s = src + b * A * S;
        float *d = dst + b * A * S;
        for (int64_t a = 0; a < A; a++)
            for (int64_t k = 0; k < S; k++)
                d[k * A + a] = s[a * S + k];
    }
}

static void sync_inner(dpt_chfirst *w) {
    dpt_layer *in = w->inner, *l = &w->base;
    in->params = l->params;
    in->grads = l->grads;
    in->param_offset = l->param_offset;
    in->trainable = l->trainable;
    in->index = l->index;
    in->reduce = l->reduce;
    in->reduce_ctx = l->reduce_ctx;
    in->grads_overwrite = false;
    in->work = in->ops->workspace && l->work ? l->work + w->own : NULL;
}

/* the inner output's (channels, pixels), or 0 channels when it is flat (GlobalAveragePooling2D) */
static void out_geom(const dpt_chfirst *w, int64_t *A, int64_t *S) {
    const dpt_shape *o = &w->inner->out_shape;
    *A = o->rank == 3 ? o->dim[2] : 0;
    *S = o->rank == 3 ? o->dim[0] * o->dim[1] : 0;
}

static int64_t cf_n_params(const dpt_layer *l) {
    const dpt_chfirst *w = (const dpt_chfirst *)l;
    return dpt_layer_n_params(w->inner);
}

static int64_t cf_n_trainable(const dpt_layer *l) {
    const dpt_chfirst *w = (const dpt_chfirst *)l;
    const dpt_layer *in = w->inner;
    return in->ops->n_trainable(in); /* only installed when the inner kind has one */
}

static void cf_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_chfirst *w = (dpt_chfirst *)l;
    sync_inner(w);
    w->inner->ops->init_params(w->inner, rng);
}

/* The model asks once per model (for its max_batch) before carving; the split is kept. */
static int64_t cf_workspace(const dpt_layer *l, int64_t max_batch) {
    dpt_chfirst *w = (dpt_chfirst *)(uintptr_t)l; /* not const: the layer is the model's */
    const dpt_layer *in = w->inner;
    w->own = (2 * max_batch * (l->in_size + l->out_size) + 15) / 16 * 16;
    return w->own + (in->ops->workspace ? in->ops->workspace(in, max_batch) : 0);
}

/* x (B, C, H, W), y (B, F, OH, OW); work: xh (B, H, W, C), yh (B, OH, OW, F), then two more */
static void cf_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_chfirst *w = (dpt_chfirst *)l;
    sync_inner(w);
    const dpt_shape *is = &w->inner->in_shape;
    float *xh = l->work, *yh = xh + B * l->in_size;
    transpose(x, xh, B, is->dim[2], is->dim[0] * is->dim[1]);
    w->inner->activity_loss = 0.0;
    w->inner->ops->forward(w->inner, p, xh, yh, B);
    l->activity_loss = w->inner->activity_loss;
    int64_t A, S;
    out_geom(w, &A, &S);
    if (A > 0) {
        for (int64_t b = 0; b < B; b++) /* (S, A) -> (A, S) */
            transpose(yh + b * A * S, y + b * A * S, 1, S, A);
    } else if (B > 0) {
        memcpy(y, yh, (size_t)(B * l->out_size) * sizeof(float));
    }
}

static void cf_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)x;
    (void)y;
    dpt_chfirst *w = (dpt_chfirst *)l;
    sync_inner(w);
    const dpt_shape *is = &w->inner->in_shape;
    float *xh = l->work, *yh = xh + B * l->in_size, *dyh = yh + B * l->out_size;
    float *dxh = dyh + B * l->out_size;
    int64_t A, S;
    out_geom(w, &A, &S);
    if (A > 0)
        transpose(dy, dyh, B, A, S);
    else if (B > 0)
        memcpy(dyh, dy, (size_t)(B * l->out_size) * sizeof(float));
    w->inner->ops->backward(w->inner, p, xh, yh, dyh, dx ? dxh : NULL, B);
    if (dx)
        for (int64_t b = 0; b < B; b++) /* (H*W, C) -> (C, H*W) */
            transpose(dxh + b * l->in_size, dx + b * l->in_size, 1, is->dim[0] * is->dim[1],
                      is->dim[2]);
}

static int cf_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_chfirst *w = (const dpt_chfirst *)l;
    return dpt_layer_weights(w->inner, names, shapes, max);
}

static json_t *cf_to_json(const dpt_layer *l) {
    const dpt_chfirst *w = (const dpt_chfirst *)l;
    json_t *c = w->inner->ops->to_json(w->inner);
    json_object_set_new(c, "name", json_string(l->name));
    json_object_set_new(c, "trainable", json_boolean(l->trainable));
    json_object_set_new(c, "data_format", json_string("channels_first"));
    return c;
}

static double cf_regularize(dpt_layer *l, float scale) {
    dpt_chfirst *w = (dpt_chfirst *)l;
    sync_inner(w);
    return w->inner->ops->regularize ? w->inner->ops->regularize(w->inner, scale) : 0.0;
}

static void cf_constrain(dpt_layer *l) {
    dpt_chfirst *w = (dpt_chfirst *)l;
    sync_inner(w);
    if (w->inner->ops->constrain)
        w->inner->ops->constrain(w->inner);
}

static void cf_destroy(dpt_layer *l) {
    dpt_chfirst *w = (dpt_chfirst *)l;
    dpt_layer_destroy(&w->inner);
}

dpt_status dpt_chfirst_create(dpt_layer_create_fn create, const json_t *config,
                              const dpt_json_ctx *ctx, const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    if (in->rank != 3) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.data_format: \"channels_first\" needs an input of shape "
                             "(None, channels, height, width), got %s",
                             ctx->file, ctx->path, s);
    }
    json_t *cl = json_deep_copy(config);
    dpt_chfirst *w = calloc(1, sizeof *w);
    if (!cl || !w) {
        json_decref(cl);
        free(w);
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    }
    json_object_set_new(cl, "data_format", json_string("channels_last"));
    dpt_shape nhwc = {.rank = 3, .dim = {in->dim[1], in->dim[2], in->dim[0]}};
    dpt_status st = create(cl, ctx, &nhwc, &w->inner);
    json_decref(cl);
    if (st != DPT_OK) {
        dpt_layer_destroy(&w->inner);
        free(w);
        return st;
    }
    dpt_layer *inner = w->inner, *l = &w->base;
    w->ops = (dpt_layer_ops){
        .class_name = inner->ops->class_name,
        .n_params = inner->ops->n_params ? cf_n_params : NULL,
        .init_params = inner->ops->init_params ? cf_init_params : NULL,
        .forward = cf_forward,
        .backward = cf_backward,
        .weights = inner->ops->weights ? cf_weights : NULL,
        .to_json = cf_to_json,
        .destroy = cf_destroy,
        .n_trainable = inner->ops->n_trainable ? cf_n_trainable : NULL,
        .regularize = inner->ops->regularize ? cf_regularize : NULL,
        .workspace = cf_workspace,
        .constrain = inner->ops->constrain ? cf_constrain : NULL,
    };
    *l = *inner; /* name, trainable, the has_* flags, sizes */
    l->ops = &w->ops;
    l->in_shape = *in;
    const dpt_shape *o = &inner->out_shape;
    l->out_shape =
        o->rank == 3 ? (dpt_shape){.rank = 3, .dim = {o->dim[2], o->dim[0], o->dim[1]}} : *o;
    *out = l;
    return DPT_OK;
}
