/* The Keras Bidirectional wrapper around SimpleRNN / LSTM / GRU: two recurrent cores over the
 * same input, the second run backwards (go_backwards), merged by concat / sum / mul / ave. As in
 * Keras, with return_sequences the backward layer's output (in the order its steps ran) is
 * flipped back before the merge, so output step t pairs both directions' states at input time t.
 * Weights: the forward layer's (kernel, recurrent_kernel, bias), then the backward layer's; in a
 * legacy .h5 named forward_<name>/<cell>/kernel, in a Keras 3 .weights.h5 at
 * forward_layer/cell/vars/<j> and backward_layer/cell/vars/<j>. Masks: the forward layer uses
 * mask ids 1..8, the backward layer 9..16 (rnn_core.h). merge_mode null (two outputs), a
 * backward_layer of another class or size, and return_state are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/rnn_core.h"

typedef enum { MERGE_CONCAT = 0, MERGE_SUM, MERGE_MUL, MERGE_AVE } merge_mode;
static const char *const merge_names[] = {"concat", "sum", "mul", "ave"};

typedef struct {
    dpt_layer base;    /* first */
    dpt_rnn_core c[2]; /* forward, backward */
    merge_mode merge;
    bool has_backward; /* the config named its own backward_layer */
} dpt_bidir;

static int64_t bd_n_params(const dpt_layer *l) {
    const dpt_bidir *d = (const dpt_bidir *)l;
    return dpt_rnn_core_n_params(&d->c[0]) + dpt_rnn_core_n_params(&d->c[1]);
}

static float *part(const dpt_bidir *d, float *v, int k) {
    return k == 0 ? v : v + dpt_rnn_core_n_params(&d->c[0]);
}

static void bd_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_bidir *d = (dpt_bidir *)l;
    for (int k = 0; k < 2; k++)
        dpt_rnn_core_init(&d->c[k], part(d, l->params, k), rng);
}

static int64_t r16(int64_t n) { return (n + 15) / 16 * 16; }

/* workspace: core 0, core 1, dh 0 (B, T, U0), dh 1 (B, T, U1), dx of core 1 (B, T, F) */
typedef struct {
    float *w[2], *dh[2], *dx1;
} bd_bufs;

static void bd_layout(const dpt_bidir *d, float *work, int64_t B, bd_bufs *o, int64_t *total) {
    int64_t k = 0, T = d->c[0].T;
    for (int i = 0; i < 2; i++) {
        if (o)
            o->w[i] = work + k;
        k += r16(dpt_rnn_core_workspace(&d->c[i], B));
    }
    for (int i = 0; i < 2; i++) {
        if (o)
            o->dh[i] = work + k;
        k += r16(B * T * d->c[i].U);
    }
    if (o)
        o->dx1 = work + k;
    k += r16(B * T * d->c[0].F);
    if (total)
        *total = k;
}

static int64_t bd_workspace(const dpt_layer *l, int64_t B) {
    int64_t n;
    bd_layout((const dpt_bidir *)l, NULL, B, NULL, &n);
    return n;
}

/* input time of output position s for core k (Keras flips the backward layer's sequence) */
static int64_t out_t(const dpt_rnn_core *c, int k, int64_t s) {
    return dpt_rnn_t(c, k == 0 ? s : c->T - 1 - s);
}

/* x (B, T, F) -> y (B, [T,] U0 + U1 or U) */
static void bd_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    dpt_bidir *d = (dpt_bidir *)l;
    if (B <= 0)
        return;
    bd_bufs o;
    bd_layout(d, l->work, B, &o, NULL);
    const float *H[2];
    for (int k = 0; k < 2; k++) {
        dpt_rnn_core_forward(&d->c[k], p, (uint32_t)l->index, part(d, l->params, k), o.w[k], x, B);
        H[k] = dpt_rnn_core_h(&d->c[k], o.w[k], B);
    }
    int64_t T = d->c[0].T, U0 = d->c[0].U, U1 = d->c[1].U;
    int64_t n_out = d->c[0].return_sequences ? T : 1, w = l->out_size / n_out;
    for (int64_t i = 0; i < B; i++)
        for (int64_t s = 0; s < n_out; s++) {
            int64_t t0 = n_out == 1 ? dpt_rnn_core_last_t(&d->c[0]) : out_t(&d->c[0], 0, s);
            int64_t t1 = n_out == 1 ? dpt_rnn_core_last_t(&d->c[1]) : out_t(&d->c[1], 1, s);
            const float *a = H[0] + (i * T + t0) * U0, *b = H[1] + (i * T + t1) * U1;
            float *yo = y + (i * n_out + s) * w;
            for (int64_t k = 0; k < U0; k++) {
                switch (d->merge) {
                case MERGE_CONCAT:
                    yo[k] = a[k];
                    break;
                case MERGE_SUM:
                    yo[k] = a[k] + b[k];
                    break;
                case MERGE_MUL:
                    yo[k] = a[k] * b[k];
                    break;
                case MERGE_AVE:
                    yo[k] = (a[k] + b[k]) / 2.0f;
                    break;
                }
            }
            if (d->merge == MERGE_CONCAT)
                memcpy(yo + U0, b, sizeof(float) * (size_t)U1);
        }
}

static void bd_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                        float *dx, int64_t B) {
    (void)y;
    dpt_bidir *d = (dpt_bidir *)l;
    if (B <= 0)
        return;
    bd_bufs o;
    bd_layout(d, l->work, B, &o, NULL);
    int64_t T = d->c[0].T, U0 = d->c[0].U, U1 = d->c[1].U;
    bool seq = d->c[0].return_sequences;
    int64_t n_out = seq ? T : 1, w = l->out_size / n_out;
    const float *H[2] = {dpt_rnn_core_h(&d->c[0], o.w[0], B), dpt_rnn_core_h(&d->c[1], o.w[1], B)};
    for (int64_t i = 0; i < B; i++)
        for (int64_t s = 0; s < n_out; s++) {
            int64_t t0 = seq ? out_t(&d->c[0], 0, s) : 0, t1 = seq ? out_t(&d->c[1], 1, s) : 0;
            int64_t h0 = seq ? t0 : dpt_rnn_core_last_t(&d->c[0]);
            int64_t h1 = seq ? t1 : dpt_rnn_core_last_t(&d->c[1]);
            const float *g = dy + (i * n_out + s) * w;
            const float *a = H[0] + (i * T + h0) * U0, *b = H[1] + (i * T + h1) * U1;
            /* by input time for sequences, (B, U) for the last state */
            float *d0 = o.dh[0] + (seq ? (i * T + t0) * U0 : i * U0);
            float *d1 = o.dh[1] + (seq ? (i * T + t1) * U1 : i * U1);
            for (int64_t k = 0; k < U0; k++) {
                switch (d->merge) {
                case MERGE_CONCAT:
                    d0[k] = g[k];
                    break;
                case MERGE_SUM:
                    d0[k] = d1[k] = g[k];
                    break;
                case MERGE_MUL:
                    d0[k] = g[k] * b[k];
                    d1[k] = g[k] * a[k];
                    break;
                case MERGE_AVE:
                    d0[k] = d1[k] = g[k] / 2.0f;
                    break;
                }
            }
            if (d->merge == MERGE_CONCAT)
                memcpy(d1, g + U0, sizeof(float) * (size_t)U1);
        }
    for (int k = 0; k < 2; k++)
        dpt_rnn_core_backward(&d->c[k], p, part(d, l->params, k), part(d, l->grads, k),
                              l->trainable, o.w[k], x, seq ? o.dh[k] : NULL, seq ? NULL : o.dh[k],
                              k == 0 ? dx : (dx ? o.dx1 : NULL), B);
    if (dx)
        for (int64_t q = 0; q < B * T * d->c[0].F; q++)
            dx[q] += o.dx1[q];
}

static int bd_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    const dpt_bidir *d = (const dpt_bidir *)l;
    int n = dpt_rnn_core_weights(&d->c[0], names, shapes, max);
    return n + dpt_rnn_core_weights(&d->c[1], names + n, shapes + n, max - n);
}

static void bd_keras3_path(const dpt_layer *l, int j, char *buf, size_t n) {
    const dpt_bidir *d = (const dpt_bidir *)l;
    int nf = d->c[0].use_bias ? 3 : 2;
    if (j < nf)
        snprintf(buf, n, "forward_layer/cell/vars/%d", j);
    else
        snprintf(buf, n, "backward_layer/cell/vars/%d", j - nf);
}

static double bd_regularize(dpt_layer *l, float scale) {
    dpt_bidir *d = (dpt_bidir *)l;
    bool g = scale != 0.0f && l->trainable;
    double pen = 0;
    for (int k = 0; k < 2; k++)
        pen += dpt_rnn_core_regularize(&d->c[k], part(d, l->params, k),
                                       g ? part(d, l->grads, k) : NULL, scale);
    return pen;
}

static void bd_constrain(dpt_layer *l) {
    dpt_bidir *d = (dpt_bidir *)l;
    for (int k = 0; k < 2; k++)
        dpt_rnn_core_constrain(&d->c[k], part(d, l->params, k));
}

static json_t *inner_json(const dpt_rnn_core *c) {
    json_t *cfg = json_pack("{s:s, s:b, s:s}", "name", c->name, "trainable", 1, "dtype", "float32");
    dpt_rnn_core_json(c, cfg);
    return json_pack("{s:s, s:o}", "class_name", dpt_rnn_class_name(c->kind), "config", cfg);
}

static json_t *bd_to_json(const dpt_layer *l) {
    const dpt_bidir *d = (const dpt_bidir *)l;
    json_t *c = dpt_layer_base_json(l);
    json_object_set_new(c, "merge_mode", json_string(merge_names[d->merge]));
    json_object_set_new(c, "layer", inner_json(&d->c[0]));
    json_object_set_new(c, "backward_layer", inner_json(&d->c[1]));
    return c;
}

static void bd_destroy(dpt_layer *l) { (void)l; }

static const dpt_layer_ops bidir_ops = {
    .class_name = "Bidirectional",
    .n_params = bd_n_params,
    .init_params = bd_init_params,
    .forward = bd_forward,
    .backward = bd_backward,
    .weights = bd_weights,
    .to_json = bd_to_json,
    .destroy = bd_destroy,
    .regularize = bd_regularize,
    .workspace = bd_workspace,
    .keras3_path = bd_keras3_path,
    .constrain = bd_constrain,
};

/* Keras's naming.to_snake_case for the three class names */
static const char *default_name(dpt_rnn_kind k) {
    return k == DPT_RNN_LSTM ? "lstm" : k == DPT_RNN_GRU ? "gru" : "simple_rnn";
}

/* Parses {"class_name", "config"} at config[key] into core c named prefix + name (Keras strips a
 * prefix already there). */
static dpt_status parse_inner(const json_t *config, const char *key, const dpt_json_ctx *ctx,
                              const dpt_shape *in, const char *prefix, dpt_rnn_core *c) {
    const json_t *e = json_object_get(config, key);
    dpt_json_ctx sub = *ctx; /* keras_major too: Keras 2 hard_sigmoid */
    if (snprintf(sub.path, sizeof sub.path, "%s.%s", ctx->path, key) >= (int)sizeof sub.path)
        sub.path[sizeof sub.path - 1] = '\0'; /* truncated: still useful in a message */
    if (!json_is_object(e))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: must be a layer object {\"class_name\", \"config\"}",
                             ctx->file, sub.path);
    const char *cls = json_string_value(json_object_get(e, "class_name"));
    dpt_rnn_kind kind;
    if (cls && !strcmp(cls, "LSTM"))
        kind = DPT_RNN_LSTM;
    else if (cls && !strcmp(cls, "GRU"))
        kind = DPT_RNN_GRU;
    else if (cls && !strcmp(cls, "SimpleRNN"))
        kind = DPT_RNN_SIMPLE;
    else
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.class_name: Bidirectional wraps LSTM, GRU or SimpleRNN, got "
                             "%s%s%s",
                             ctx->file, sub.path, cls ? "\"" : "", cls ? cls : "nothing",
                             cls ? "\"" : "");
    const json_t *cfg = json_object_get(e, "config");
    if (snprintf(sub.path, sizeof sub.path, "%s.%s.config", ctx->path, key) >= (int)sizeof sub.path)
        sub.path[sizeof sub.path - 1] = '\0';
    if (!json_is_object(cfg))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: must be an object", ctx->file, sub.path);
    dpt_status st = dpt_rnn_core_parse(c, kind, cfg, &sub, in);
    const char *name = NULL;
    bool trainable = true;
    if (st == DPT_OK)
        st = dpt_json_get_str(cfg, "name", &sub, default_name(kind), &name);
    if (st == DPT_OK)
        st = dpt_json_get_bool(cfg, "trainable", &sub, true, &trainable);
    if (st == DPT_OK && !trainable)
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.trainable: false inside Bidirectional is not supported (set "
                           "it on the Bidirectional layer)",
                           ctx->file, sub.path);
    if (st != DPT_OK)
        return st;
    if (prefix) {
        size_t np = strlen(prefix);
        if (!strncmp(name, prefix, np))
            name += np;
        snprintf(c->name, sizeof c->name, "%s%s", prefix, name);
    } else {
        snprintf(c->name, sizeof c->name, "%s", name);
    }
    if (strchr(c->name, '/'))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.name: must not contain '/'", ctx->file,
                             sub.path);
    static const char *const w[3] = {"kernel", "recurrent_kernel", "bias"};
    for (int i = 0; i < 3; i++)
        snprintf(c->wname[i], sizeof c->wname[i], "%s/%s/%s", c->name, c->cell, w[i]);
    return DPT_OK;
}

dpt_status dpt_bidirectional_create(const json_t *config, const dpt_json_ctx *ctx,
                                    const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_bidir *d = calloc(1, sizeof *d);
    if (!d)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    dpt_layer *l = &d->base;
    dpt_status st = dpt_layer_base_init(l, &bidir_ops, config, ctx, in);
    if (st == DPT_OK)
        st = dpt_rnn_check_input("Bidirectional", ctx, in);
    const json_t *mm = json_object_get(config, "merge_mode");
    if (st == DPT_OK && mm && json_is_null(mm))
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.merge_mode: null (two outputs) is not supported in a "
                           "Sequential model; use concat, sum, mul or ave",
                           ctx->file, ctx->path);
    const char *ms = NULL;
    if (st == DPT_OK)
        st = dpt_json_get_str(config, "merge_mode", ctx, "concat", &ms);
    if (st == DPT_OK) {
        int k = 0;
        while (k < 4 && strcmp(ms, merge_names[k]))
            k++;
        if (k == 4)
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "%s: %s.merge_mode: must be concat, sum, mul or ave, got \"%s\"",
                               ctx->file, ctx->path, ms);
        d->merge = (merge_mode)k;
    }
    if (st == DPT_OK)
        st = parse_inner(config, "layer", ctx, in, "forward_", &d->c[0]);
    const json_t *bl = json_object_get(config, "backward_layer");
    d->has_backward = bl && !json_is_null(bl);
    if (st == DPT_OK && d->has_backward) {
        st = parse_inner(config, "backward_layer", ctx, in, NULL, &d->c[1]);
    } else if (st == DPT_OK) { /* Keras: the same layer with go_backwards true */
        st = parse_inner(config, "layer", ctx, in, "backward_", &d->c[1]);
        d->c[1].go_backwards = true;
        if (st == DPT_OK && d->c[0].go_backwards)
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "%s: %s.layer.config.go_backwards: true leaves both directions "
                               "going backwards (Keras refuses it too)",
                               ctx->file, ctx->path);
    }
    if (st == DPT_OK && d->c[0].go_backwards == d->c[1].go_backwards)
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.backward_layer.config.go_backwards: must differ from the "
                           "forward layer's",
                           ctx->file, ctx->path);
    if (st == DPT_OK && (d->c[0].kind != d->c[1].kind || d->c[0].U != d->c[1].U ||
                         d->c[0].return_sequences != d->c[1].return_sequences))
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.backward_layer: must be the same class with the same units "
                           "and return_sequences as the forward layer",
                           ctx->file, ctx->path);
    if (st != DPT_OK) {
        free(d);
        return st;
    }
    d->c[1].mask_id0 = 9;
    const dpt_rnn_core *c = &d->c[0];
    for (int k = 0; k < 2; k++) {
        if (d->c[k].kernel_reg.kind || d->c[k].rec_reg.kind || d->c[k].bias_reg.kind)
            l->has_regularizer = true;
        if (dpt_rnn_core_has_constraint(&d->c[k]))
            l->has_constraint = true;
    }
    int64_t w = d->merge == MERGE_CONCAT ? 2 * c->U : c->U;
    l->out_shape = c->return_sequences ? (dpt_shape){.rank = 2, .dim = {c->T, w}}
                                       : (dpt_shape){.rank = 1, .dim = {w}};
    l->out_size = dpt_shape_size(&l->out_shape);
    *out = l;
    return DPT_OK;
}
