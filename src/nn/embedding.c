/* The Keras Embedding layer: integer token ids x (B, d1, ...) -> y (B, d1, ..., E) with
 * y[.., :] = W[id, :], W (V, E) row-major in the flat buffer ("embeddings", Keras's only weight;
 * default initializer RandomUniform(-0.05, 0.05), as Keras's "uniform").
 *
 * Ids travel as float32 in the model's input (exact up to 2^24, hence input_dim <= 2^24). They are
 * validated where they enter: the data reader checks every x value of a split against
 * dpt_model_input_ids (an integer in [0, input_dim), else DPT_ERR_DATA naming file, dataset, row
 * and value), so forward never sees a bad id from the trainer; should one arrive anyway (a library
 * caller), its row is zeros and it gets no gradient — memory stays safe.
 * The gradient is a scatter-add into the rows that occur (sparse in effect, dense in storage: the
 * optimizer sees the whole (V, E) gradient, as Keras's dense-gradient optimizers do). The input
 * has no gradient (Keras casts it to int): dx, if asked for, is zeros. ops->input_ids makes the
 * model accept it only as its first layer, where no dx is asked for.
 * Refused: mask_zero true (no masking here), embeddings_constraint, activity_regularizer, LoRA,
 * quantization. embeddings_regularizer goes through the model like Dense's.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define DPT_EMBED_MAX_IDS ((int64_t)1 << 24) /* float32 holds every integer up to this exactly */

typedef struct {
    dpt_layer base; /* first */
    int64_t V, E;   /* input_dim, output_dim */
    dpt_init_spec init;
    dpt_regularizer reg;
    json_t *input_length; /* Keras 2's key as given (null or an integer), for to_json; owned */
} dpt_embedding;

/* the row of a valid id, else -1 */
static inline int64_t id_row(float v, int64_t V) {
    if (!(v >= 0.0f) || v >= (float)V || v != floorf(v))
        return -1;
    return (int64_t)v;
}

static int64_t emb_n_params(const dpt_layer *l) {
    const dpt_embedding *d = (const dpt_embedding *)l;
    return d->V * d->E;
}

static void emb_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_embedding *d = (dpt_embedding *)l;
    /* Keras compute_fans for a 2-D (V, E) weight: fan_in V, fan_out E */
    dpt_init_fill(&d->init, l->params, d->V * d->E, d->V, d->E, rng);
}

/* x (B, n) ids, y (B, n, E) */
static void emb_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    (void)p;
    const dpt_embedding *d = (const dpt_embedding *)l;
    const int64_t E = d->E, n = B * l->in_size;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = id_row(x[i], d->V);
        if (r >= 0)
            memcpy(y + i * E, l->params + r * E, (size_t)E * sizeof(float));
        else
            memset(y + i * E, 0, (size_t)E * sizeof(float));
    }
}

/* x (B, n) ids, dy (B, n, E); dW (V, E) += scatter of dy; dx (B, n) zeros or NULL */
static void emb_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                         float *dx, int64_t B) {
    (void)p;
    (void)y;
    const dpt_embedding *d = (const dpt_embedding *)l;
    const int64_t E = d->E, n = B * l->in_size;
    if (dx)
        memset(dx, 0, (size_t)n * sizeof(float));
    if (!l->trainable)
        return;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = id_row(x[i], d->V);
        if (r < 0)
            continue;
        float *g = l->grads + r * E;
        const float *s = dy + i * E;
        for (int64_t e = 0; e < E; e++)
            g[e] += s[e];
    }
}

static int emb_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_embedding *d = (const dpt_embedding *)l;
    if (max < 1)
        return 0;
    names[0] = "embeddings";
    shapes[0] = (dpt_shape){.rank = 2, .dim = {d->V, d->E}};
    return 1;
}

static double emb_regularize(dpt_layer *l, float scale) {
    dpt_embedding *d = (dpt_embedding *)l;
    bool g = scale != 0.0f && l->trainable;
    return dpt_regularizer_apply(&d->reg, l->params, g ? l->grads : NULL, d->V * d->E, scale);
}

static json_t *emb_to_json(const dpt_layer *l) {
    const dpt_embedding *d = (const dpt_embedding *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "input_dim", json_integer(d->V));
    json_object_set_new(c, "output_dim", json_integer(d->E));
    json_object_set_new(c, "embeddings_initializer", dpt_init_to_json(&d->init));
    json_object_set_new(c, "embeddings_regularizer", dpt_regularizer_to_json(&d->reg));
    json_object_set_new(c, "activity_regularizer", json_null());
    json_object_set_new(c, "embeddings_constraint", json_null());
    json_object_set_new(c, "mask_zero", json_false());
    if (d->input_length)
        json_object_set(c, "input_length", d->input_length);
    return c;
}

static void emb_destroy(dpt_layer *l) {
    dpt_embedding *d = (dpt_embedding *)l;
    json_decref(d->input_length);
    d->input_length = NULL;
}

static int64_t emb_input_ids(const dpt_layer *l) { return ((const dpt_embedding *)l)->V; }

static const dpt_layer_ops emb_ops = {
    .class_name = "Embedding",
    .n_params = emb_n_params,
    .init_params = emb_init_params,
    .forward = emb_forward,
    .backward = emb_backward,
    .weights = emb_weights,
    .to_json = emb_to_json,
    .destroy = emb_destroy,
    .regularize = emb_regularize,
    .input_ids = emb_input_ids,
};

static dpt_status emb_parse(dpt_embedding *d, const json_t *config, const dpt_json_ctx *ctx,
                            const dpt_shape *in) {
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &emb_ops, config, ctx, in);
    if (st != DPT_OK)
        return st;
    if (in->rank < 1 || in->rank >= DPT_MAX_RANK) {
        char s[128];
        dpt_shape_format(in, true, s, sizeof s);
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: Embedding needs an input of shape (None, steps) (at most %d "
                             "dimensions per sample), got %s",
                             ctx->file, ctx->path, DPT_MAX_RANK - 1, s);
    }
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "output_dim" : "input_dim";
        const json_t *v = json_object_get(config, key);
        if (!v || json_is_null(v))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: missing (an integer >= 1)", ctx->file,
                                 ctx->path, key);
        if (json_is_integer(v) && json_integer_value(v) < 1)
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be a positive integer, got %lld",
                                 ctx->file, ctx->path, key, (long long)json_integer_value(v));
    }
    bool mask_zero = false;
    if ((st = dpt_json_get_int(config, "input_dim", ctx, 0, 1, DPT_EMBED_MAX_IDS, &d->V)) !=
            DPT_OK ||
        (st = dpt_json_get_int(config, "output_dim", ctx, 0, 1, INT_MAX, &d->E)) != DPT_OK ||
        (st = dpt_init_parse(config, "embeddings_initializer", ctx,
                             (dpt_init_spec){.kind = DPT_INIT_UNIFORM, .a = -0.05, .b = 0.05},
                             &d->init)) != DPT_OK ||
        (st = dpt_regularizer_parse(config, "embeddings_regularizer", ctx, &d->reg)) != DPT_OK ||
        (st = dpt_json_get_bool(config, "mask_zero", ctx, false, &mask_zero)) != DPT_OK)
        return st;
    if (mask_zero)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.mask_zero: mask_zero is not supported (no layer here takes a "
                             "mask); set it to false",
                             ctx->file, ctx->path);
    static const char *const must_be_null[] = {"activity_regularizer", "embeddings_constraint",
                                               "lora_rank", "quantization_config"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        if ((st = dpt_json_require_null(config, must_be_null[i], ctx)) != DPT_OK)
            return st;
    /* Keras 2's input_length: when given it must be the number of steps */
    const json_t *il = json_object_get(config, "input_length");
    if (il && !json_is_null(il)) {
        if (!json_is_integer(il) || in->rank != 1 || json_integer_value(il) != in->dim[0])
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.input_length: must be null or the number of steps "
                                 "(%lld)",
                                 ctx->file, ctx->path, (long long)in->dim[0]);
        d->input_length = json_incref((json_t *)il);
    }
    int64_t nw, no;
    if (dpt_mul_i64(d->V, d->E, "Embedding", &nw) != DPT_OK ||
        dpt_mul_i64(l->in_size, d->E, "Embedding output", &no) != DPT_OK)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: the (%lld, %lld) embedding is too large",
                             ctx->file, ctx->path, (long long)d->V, (long long)d->E);
    l->has_regularizer = d->reg.kind != DPT_REG_NONE;
    l->out_shape = *in;
    l->out_shape.dim[in->rank] = d->E;
    l->out_shape.rank = in->rank + 1;
    l->out_size = no;
    return DPT_OK;
}

dpt_status dpt_embedding_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                dpt_layer **out) {
    *out = NULL;
    dpt_embedding *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_status st = emb_parse(d, config, ctx, in);
    if (st != DPT_OK) {
        emb_destroy(&d->base);
        free(d);
        return st;
    }
    *out = &d->base;
    return DPT_OK;
}
