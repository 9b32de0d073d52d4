/* The recurrent layers' shared plumbing (see rnn_core.h): Keras RNN config keys, weights and
 * their initialisers, the workspace layout, the masks, the input projection of all time steps
 * (one sgemm), the weight and input gradients after backward's time loop (one sgemm each), and
 * the layer kinds SimpleRNN / LSTM / GRU themselves (one core each). The per-step cell math
 * lives in simple_rnn.c, lstm.c and gru.c; Bidirectional in bidirectional.c.
 * Refused by name: stateful, return_state, time_major, activity_regularizer, and
 * activations other than linear / relu / sigmoid / tanh / hard_sigmoid (Keras 3's and 2's). unroll,
 * use_cudnn, seed and zero_output_for_mask do not change the math here (no masking layer exists)
 * and are accepted.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/rnn_core.h"

const char *dpt_rnn_class_name(dpt_rnn_kind kind) {
    return kind == DPT_RNN_LSTM ? "LSTM" : kind == DPT_RNN_GRU ? "GRU" : "SimpleRNN";
}

static dpt_init_spec orthogonal(void) {
    return (dpt_init_spec){.kind = DPT_INIT_ORTHOGONAL, .a = 1.0};
}

dpt_status dpt_rnn_check_input(const char *cls, const dpt_json_ctx *ctx, const dpt_shape *in) {
    if (in->rank == 2 && in->dim[0] >= 1 && in->dim[1] >= 1)
        return DPT_OK;
    char s[128];
    dpt_shape_format(in, false, s, sizeof s);
    if (in->rank == 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s: %s needs a sequence (timesteps, features) per sample, got "
                             "shape %s (a flat sample: Reshape it to (timesteps, features); after "
                             "another recurrent layer, give that one return_sequences: true)",
                             ctx->file, ctx->path, cls, s);
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: %s: %s needs a sequence (timesteps, features) per sample, got "
                         "shape %s",
                         ctx->file, ctx->path, cls, s);
}

static dpt_status get_act(const json_t *config, const char *key, const dpt_json_ctx *ctx,
                          dpt_act def, dpt_act *out) {
    dpt_status st = dpt_json_get_act(config, key, ctx, def, out);
    if (st != DPT_OK)
        return st;
    switch (*out) {
    case DPT_ACT_LINEAR:
    case DPT_ACT_RELU:
    case DPT_ACT_SIGMOID:
    case DPT_ACT_TANH:
    case DPT_ACT_HARD_SIGMOID:
    case DPT_ACT_HARD_SIGMOID_K2:
        return DPT_OK;
    default:
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: %s is not supported in a recurrent cell (use linear, "
                             "relu, sigmoid, tanh or hard_sigmoid)",
                             ctx->file, ctx->path, key, dpt_act_name(*out));
    }
}

/* a boolean key that must be false */
static dpt_status require_false(const json_t *config, const char *key, const dpt_json_ctx *ctx,
                                const char *why) {
    bool v = false;
    dpt_status st = dpt_json_get_bool(config, key, ctx, false, &v);
    if (st == DPT_OK && v)
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: true is not supported (%s)", ctx->file,
                           ctx->path, key, why);
    return st;
}

dpt_status dpt_rnn_core_parse(dpt_rnn_core *c, dpt_rnn_kind kind, const json_t *config,
                              const dpt_json_ctx *ctx, const dpt_shape *in) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    const char *cls = dpt_rnn_class_name(kind);
    dpt_status st = dpt_rnn_check_input(cls, ctx, in);
    if (st != DPT_OK)
        return st;
    c->T = in->dim[0];
    c->F = in->dim[1];
    c->G = kind == DPT_RNN_LSTM ? 4 : kind == DPT_RNN_GRU ? 3 : 1;
    if (!json_object_get(config, "units"))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.units: missing (an integer >= 1)", ctx->file,
                             ctx->path);
    int64_t impl = 2;
    st = dpt_json_get_int(config, "units", ctx, 0, 1, 1 << 20, &c->U);
    if (st == DPT_OK)
        st = get_act(config, "activation", ctx, DPT_ACT_TANH, &c->act);
    if (st == DPT_OK)
        st = get_act(config, "recurrent_activation", ctx, DPT_ACT_SIGMOID, &c->rec_act);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "use_bias", ctx, true, &c->use_bias);
    if (st == DPT_OK)
        st = dpt_init_parse(config, "kernel_initializer", ctx, dpt_init_glorot_uniform(),
                            &c->kernel_init);
    if (st == DPT_OK)
        st = dpt_init_parse(config, "recurrent_initializer", ctx, orthogonal(), &c->rec_init);
    if (st == DPT_OK)
        st = dpt_init_parse(config, "bias_initializer", ctx, dpt_init_zeros(), &c->bias_init);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "kernel_regularizer", ctx, &c->kernel_reg);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "recurrent_regularizer", ctx, &c->rec_reg);
    if (st == DPT_OK)
        st = dpt_regularizer_parse(config, "bias_regularizer", ctx, &c->bias_reg);
    if (st == DPT_OK)
        st = dpt_json_get_num(config, "dropout", ctx, 0.0, 0.0, 1.0, true, &c->dropout);
    if (st == DPT_OK)
        st = dpt_json_get_num(config, "recurrent_dropout", ctx, 0.0, 0.0, 1.0, true,
                              &c->rec_dropout);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "return_sequences", ctx, false, &c->return_sequences);
    if (st == DPT_OK)
        st = dpt_json_get_bool(config, "go_backwards", ctx, false, &c->go_backwards);
    if (st == DPT_OK && kind == DPT_RNN_LSTM)
        st = dpt_json_get_bool(config, "unit_forget_bias", ctx, true, &c->unit_forget_bias);
    if (st == DPT_OK && kind == DPT_RNN_GRU)
        st = dpt_json_get_bool(config, "reset_after", ctx, true, &c->reset_after);
    if (st == DPT_OK && kind != DPT_RNN_SIMPLE)
        st = dpt_json_get_int(config, "implementation", ctx, 2, 1, 2, &impl);
    if (st == DPT_OK)
        st = require_false(config, "stateful", ctx, "state carried between batches");
    if (st == DPT_OK)
        st = require_false(config, "return_state", ctx, "a Sequential layer has one output");
    if (st == DPT_OK)
        st = require_false(config, "time_major", ctx, "inputs are (batch, timesteps, features)");
    if (st == DPT_OK)
        st = dpt_json_require_null(config, "activity_regularizer", ctx);
    if (st == DPT_OK)
        st = dpt_constraint_parse(config, "kernel_constraint", ctx, &c->kernel_con);
    if (st == DPT_OK)
        st = dpt_constraint_parse(config, "recurrent_constraint", ctx, &c->rec_con);
    if (st == DPT_OK)
        st = dpt_constraint_parse(config, "bias_constraint", ctx, &c->bias_con);
    bool b;
    static const char *const bools_ok[] = {"unroll", "zero_output_for_mask"};
    for (size_t i = 0; st == DPT_OK && i < sizeof bools_ok / sizeof bools_ok[0]; i++)
        st = dpt_json_get_bool(config, bools_ok[i], ctx, false, &b);
    if (st != DPT_OK)
        return st;
    int64_t gu;
    if (dpt_mul_i64(c->G, c->U, "units", &gu) != DPT_OK || gu > INT_MAX / 2 ||
        c->F * gu > INT_MAX || c->U * gu > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.units: %lld units are too many for %lld "
                             "input features",
                             ctx->file, ctx->path, (long long)c->U, (long long)c->F);
    if (c->T * c->F > INT_MAX || c->T * gu > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: a sequence of %lld steps is too long",
                             ctx->file, ctx->path, (long long)c->T);
    {
        const char *wn[3];
        dpt_shape ws[3];
        int nw = dpt_rnn_core_weights(c, wn, ws, 3); /* shapes only: names are set below */
        if ((st = dpt_constraint_check(&c->kernel_con, &ws[0], "kernel_constraint", ctx)) ||
            (st = dpt_constraint_check(&c->rec_con, &ws[1], "recurrent_constraint", ctx)) ||
            (nw == 3 && (st = dpt_constraint_check(&c->bias_con, &ws[2], "bias_constraint", ctx))))
            return st;
    }
    c->implementation = (int)impl;
    /* Keras 3: recurrent_dropout != 0 forces implementation 1, which draws one mask per gate */
    c->n_masks = (kind != DPT_RNN_SIMPLE && (impl == 1 || c->rec_dropout != 0.0)) ? (int)c->G : 1;
    c->dropout_f = (float)c->dropout;
    c->rec_dropout_f = (float)c->rec_dropout;
    c->mask_id0 = 1;
    snprintf(c->cell, sizeof c->cell, "%s",
             kind == DPT_RNN_LSTM  ? "lstm_cell"
             : kind == DPT_RNN_GRU ? "gru_cell"
                                   : "simple_rnn_cell");
    static const char *const w[3] = {"kernel", "recurrent_kernel", "bias"};
    for (int i = 0; i < 3; i++)
        snprintf(c->wname[i], sizeof c->wname[i], "%s/%s", c->cell, w[i]);
    return DPT_OK;
}

void dpt_rnn_core_json(const dpt_rnn_core *c, json_t *cfg) {
    json_object_set_new(cfg, "return_sequences", json_boolean(c->return_sequences));
    json_object_set_new(cfg, "return_state", json_false());
    json_object_set_new(cfg, "go_backwards", json_boolean(c->go_backwards));
    json_object_set_new(cfg, "stateful", json_false());
    json_object_set_new(cfg, "unroll", json_false());
    json_object_set_new(cfg, "units", json_integer(c->U));
    json_object_set_new(cfg, "activation", dpt_act_to_json(c->act));
    if (c->kind != DPT_RNN_SIMPLE)
        json_object_set_new(cfg, "recurrent_activation", dpt_act_to_json(c->rec_act));
    json_object_set_new(cfg, "use_bias", json_boolean(c->use_bias));
    json_object_set_new(cfg, "kernel_initializer", dpt_init_to_json(&c->kernel_init));
    json_object_set_new(cfg, "recurrent_initializer", dpt_init_to_json(&c->rec_init));
    json_object_set_new(cfg, "bias_initializer", dpt_init_to_json(&c->bias_init));
    if (c->kind == DPT_RNN_LSTM)
        json_object_set_new(cfg, "unit_forget_bias", json_boolean(c->unit_forget_bias));
    json_object_set_new(cfg, "kernel_regularizer", dpt_regularizer_to_json(&c->kernel_reg));
    json_object_set_new(cfg, "recurrent_regularizer", dpt_regularizer_to_json(&c->rec_reg));
    json_object_set_new(cfg, "bias_regularizer", dpt_regularizer_to_json(&c->bias_reg));
    json_object_set_new(cfg, "activity_regularizer", json_null());
    json_object_set_new(cfg, "kernel_constraint", dpt_constraint_to_json(&c->kernel_con));
    json_object_set_new(cfg, "recurrent_constraint", dpt_constraint_to_json(&c->rec_con));
    json_object_set_new(cfg, "bias_constraint", dpt_constraint_to_json(&c->bias_con));
    json_object_set_new(cfg, "dropout", json_real(c->dropout));
    json_object_set_new(cfg, "recurrent_dropout", json_real(c->rec_dropout));
    if (c->kind != DPT_RNN_SIMPLE)
        json_object_set_new(cfg, "implementation", json_integer(c->implementation));
    if (c->kind == DPT_RNN_GRU)
        json_object_set_new(cfg, "reset_after", json_boolean(c->reset_after));
}

static int64_t n_bias(const dpt_rnn_core *c) {
    if (!c->use_bias)
        return 0;
    return (c->kind == DPT_RNN_GRU && c->reset_after ? 2 : 1) * c->G * c->U;
}

int64_t dpt_rnn_core_n_params(const dpt_rnn_core *c) {
    int64_t gu = c->G * c->U;
    return c->F * gu + c->U * gu + n_bias(c);
}

void dpt_rnn_core_init(const dpt_rnn_core *c, float *params, dpt_rng *rng) {
    int64_t gu = c->G * c->U, U = c->U;
    float *K = params, *Ur = K + c->F * gu, *b = Ur + U * gu;
    dpt_init_fill(&c->kernel_init, K, c->F * gu, c->F, gu, rng); /* (F, GU) */
    dpt_init_fill(&c->rec_init, Ur, U * gu, U, gu, rng);         /* (U, GU) */
    if (!c->use_bias)
        return;
    if (c->kind == DPT_RNN_LSTM && c->unit_forget_bias) { /* Keras: [init(U), ones(U), init(2U)] */
        dpt_init_fill(&c->bias_init, b, U, U, U, rng);
        for (int64_t k = 0; k < U; k++)
            b[U + k] = 1.0f;
        dpt_init_fill(&c->bias_init, b + 2 * U, 2 * U, 2 * U, 2 * U, rng);
    } else if (c->kind == DPT_RNN_GRU && c->reset_after) { /* (2, GU): fans of a 2-D tensor */
        dpt_init_fill(&c->bias_init, b, 2 * gu, 2, gu, rng);
    } else {
        dpt_init_fill(&c->bias_init, b, gu, gu, gu, rng);
    }
}

int dpt_rnn_core_weights(const dpt_rnn_core *c, const char **names, dpt_shape *shapes, int max) {
    int64_t gu = c->G * c->U;
    dpt_shape s[3] = {{.rank = 2, .dim = {c->F, gu}}, {.rank = 2, .dim = {c->U, gu}}, {0}};
    s[2] = (c->kind == DPT_RNN_GRU && c->reset_after) ? (dpt_shape){.rank = 2, .dim = {2, gu}}
                                                      : (dpt_shape){.rank = 1, .dim = {gu}};
    int n = c->use_bias ? 3 : 2;
    for (int i = 0; i < n && i < max; i++) {
        names[i] = c->wname[i];
        shapes[i] = s[i];
    }
    return n < max ? n : max;
}

bool dpt_rnn_core_has_constraint(const dpt_rnn_core *c) {
    return c->kernel_con.kind != DPT_CON_NONE || c->rec_con.kind != DPT_CON_NONE ||
           (c->use_bias && c->bias_con.kind != DPT_CON_NONE);
}

void dpt_rnn_core_constrain(const dpt_rnn_core *c, float *params) {
    const char *wn[3];
    dpt_shape ws[3];
    int n = dpt_rnn_core_weights(c, wn, ws, 3);
    const dpt_constraint *con[3] = {&c->kernel_con, &c->rec_con, &c->bias_con};
    for (int i = 0; i < n; i++) {
        dpt_constraint_apply(con[i], params, &ws[i]);
        params += dpt_shape_size(&ws[i]);
    }
}

double dpt_rnn_core_regularize(const dpt_rnn_core *c, const float *params, float *grads,
                               float scale) {
    int64_t gu = c->G * c->U, nk = c->F * gu, nr = c->U * gu;
    double pen = dpt_regularizer_apply(&c->kernel_reg, params, grads, nk, scale);
    pen += dpt_regularizer_apply(&c->rec_reg, params + nk, grads ? grads + nk : NULL, nr, scale);
    if (c->use_bias)
        pen += dpt_regularizer_apply(&c->bias_reg, params + nk + nr, grads ? grads + nk + nr : NULL,
                                     n_bias(c), scale);
    return pen;
}

/* ---- activations ---------------------------------------------------------------------------- */

/* e^x, x clamped to [-88, 88]: n = round(x log2 e) (by adding and subtracting 1.5 * 2^23),
 * r = x - n ln 2 (two parts), Cephes's degree-6 polynomial, times 2^n built from its bits. */
static inline __attribute__((always_inline)) float fast_exp(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -88.0f ? -88.0f : x;
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    int32_t n = (int32_t)fn;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } u = {.i = (n + 127) * (1 << 23)};
    return y * u.f;
}

static inline __attribute__((always_inline)) float sigmoid1(float z) {
    return 1.0f / (1.0f + fast_exp(-z));
}
static inline __attribute__((always_inline)) float tanh1(float z) {
    return 1.0f - 2.0f / (fast_exp(2.0f * z) + 1.0f);
}

/* GCC vectorises these loops only without trapping math (the clamps' comparisons; results are
 * the same, only FP exception flags could differ); on x86-64 an AVX2 + FMA copy is picked at run
 * time, as Dropout's Philox does. */
#if defined(__GNUC__) && !defined(__clang__)
#define DPT_VEC_OPT __attribute__((optimize("no-trapping-math")))
#else
#define DPT_VEC_OPT
#endif

#define ACT_VEC_BODY                                                                               \
    int64_t j = 0;                                                                                 \
    switch (a) {                                                                                   \
    case DPT_ACT_RELU:                                                                             \
        for (; j < n; j++)                                                                         \
            v[j] = v[j] > 0.0f ? v[j] : 0.0f;                                                      \
        return;                                                                                    \
    case DPT_ACT_SIGMOID:                                                                          \
        for (; j < n; j++)                                                                         \
            v[j] = sigmoid1(v[j]);                                                                 \
        return;                                                                                    \
    case DPT_ACT_TANH:                                                                             \
        for (; j < n; j++)                                                                         \
            v[j] = tanh1(v[j]);                                                                    \
        return;                                                                                    \
    case DPT_ACT_HARD_SIGMOID: /* Keras 3: relu6(z + 3) / 6 */                                     \
        for (; j < n; j++) {                                                                       \
            float z = v[j] + 3.0f;                                                                 \
            z = z < 0.0f ? 0.0f : z;                                                               \
            v[j] = (z > 6.0f ? 6.0f : z) / 6.0f;                                                   \
        }                                                                                          \
        return;                                                                                    \
    case DPT_ACT_HARD_SIGMOID_K2: /* Keras 2: clip(0.2 z + 0.5, 0, 1) */                           \
        for (; j < n; j++) {                                                                       \
            float z = 0.2f * v[j] + 0.5f;                                                          \
            z = z < 0.0f ? 0.0f : z;                                                               \
            v[j] = z > 1.0f ? 1.0f : z;                                                            \
        }                                                                                          \
        return;                                                                                    \
    default:                                                                                       \
        return;                                                                                    \
    }

DPT_VEC_OPT static void act_vec_generic(dpt_act a, float *restrict v, int64_t n){ACT_VEC_BODY}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DPT_HAVE_AVX2_ACT 1
DPT_VEC_OPT
    __attribute__((target("avx2,fma"))) static void act_vec_avx2(dpt_act a, float *restrict v,
                                                                 int64_t n) {
    ACT_VEC_BODY
}
#endif

void dpt_rnn_act_vec(dpt_act a, float *restrict v, int64_t n) {
#ifdef DPT_HAVE_AVX2_ACT
    static int avx2 = -1;
    if (avx2 < 0)
        avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2) {
        act_vec_avx2(a, v, n);
        return;
    }
#endif
    act_vec_generic(a, v, n);
}

/* ---- workspace ------------------------------------------------------------------------------ */
typedef struct {
    int64_t min, mrec, xm, A, hin, H, S, S2, dZ, dZ2, dh, dc, tmp, R, total;
} layout;

static int64_t n_in_copies(const dpt_rnn_core *c) { return c->dropout > 0 ? c->n_masks : 1; }
static int64_t n_rec_copies(const dpt_rnn_core *c) { return c->rec_dropout > 0 ? c->n_masks : 1; }

static int64_t r16(int64_t n) { return (n + 15) / 16 * 16; }

static void make_layout(const dpt_rnn_core *c, int64_t B, layout *o) {
    int64_t T = c->T, F = c->F, U = c->U, gu = c->G * c->U, k = 0;
    int64_t ni = n_in_copies(c), nr = n_rec_copies(c);
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        o->field = k;                                                                              \
        k += r16(n);                                                                               \
    } while (0)
    TAKE(min, c->dropout > 0 ? ni * B * F : 0);
    TAKE(mrec, c->rec_dropout > 0 ? nr * B * U : 0);
    TAKE(xm, c->dropout > 0 ? ni * B * T * F : 0);
    TAKE(A, B * T * gu);
    TAKE(hin, nr * B * T * U);
    TAKE(H, B * T * U);
    TAKE(S, c->kind == DPT_RNN_SIMPLE ? 0 : B * T * U);
    TAKE(S2, c->kind == DPT_RNN_LSTM ? B * T * U : 0);
    TAKE(dZ, B * T * gu);
    TAKE(dZ2, c->kind == DPT_RNN_GRU ? B * T * U : 0);
    TAKE(dh, B * U);
    TAKE(dc, B * U);
    TAKE(tmp, B * U);
    TAKE(R, B * gu);
#undef TAKE
    o->total = k;
}

int64_t dpt_rnn_core_workspace(const dpt_rnn_core *c, int64_t B) {
    layout o;
    make_layout(c, B, &o);
    return o.total;
}

static void make_bufs(const dpt_rnn_core *c, const dpt_pass *p, float *work, int64_t B,
                      dpt_rnn_bufs *b) {
    layout o;
    make_layout(c, B, &o);
    bool on = dpt_dropout_on(p);
    b->B = B;
    b->in_drop = on && c->dropout > 0;
    b->rec_drop = on && c->rec_dropout > 0;
    b->n_in = b->in_drop ? (int)n_in_copies(c) : 1;
    b->n_rec = b->rec_drop ? (int)n_rec_copies(c) : 1;
    b->min = work + o.min;
    b->mrec = work + o.mrec;
    b->xm = work + o.xm;
    b->A = work + o.A;
    b->hin = work + o.hin;
    b->H = work + o.H;
    b->S = work + o.S;
    b->S2 = work + o.S2;
    b->dZ = work + o.dZ;
    b->dZ2 = work + o.dZ2;
    b->dh = work + o.dh;
    b->dc = work + o.dc;
    b->tmp = work + o.tmp;
    b->R = work + o.R;
}

const float *dpt_rnn_core_h(const dpt_rnn_core *c, float *work, int64_t B) {
    layout o;
    make_layout(c, B, &o);
    return work + o.H;
}

/* ---- recurrent products shared by the cells ------------------------------------------------ */
void dpt_rnn_store_hin(const dpt_rnn_core *c, const dpt_rnn_bufs *b, int64_t s) {
    int64_t T = c->T, U = c->U, t = dpt_rnn_t(c, s), tp = c->go_backwards ? t + 1 : t - 1;
    for (int k = 0; k < b->n_rec; k++) {
        float *hin = b->hin + (int64_t)k * b->B * T * U;
        const float *m = b->mrec + (int64_t)k * b->B * U;
        for (int64_t i = 0; i < b->B; i++) {
            float *dst = hin + (i * T + t) * U;
            if (s == 0) {
                memset(dst, 0, sizeof(float) * (size_t)U);
                continue;
            }
            const float *h = b->H + (i * T + tp) * U;
            if (b->rec_drop)
                for (int64_t j = 0; j < U; j++)
                    dst[j] = h[j] * m[i * U + j];
            else
                memcpy(dst, h, sizeof(float) * (size_t)U);
        }
    }
}

void dpt_rnn_rec_forward(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur, int g0,
                         int ng, int64_t t, float *dst, int64_t ldd) {
    int64_t T = c->T, U = c->U, gu = c->G * U;
    if (b->n_rec == 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b->B, (int)(ng * U), (int)U,
                    1.0f, b->hin + t * U, (int)(T * U), Ur + g0 * U, (int)gu, 1.0f, dst, (int)ldd);
        return;
    }
    for (int g = g0; g < g0 + ng; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b->B, (int)U, (int)U, 1.0f,
                    b->hin + (int64_t)g * b->B * T * U + t * U, (int)(T * U), Ur + g * U, (int)gu,
                    1.0f, dst + (g - g0) * U, (int)ldd);
}

void dpt_rnn_rec_backward(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur, int g0,
                          int ng, const float *D, int64_t ldD, int64_t gstride, float *dst) {
    int64_t U = c->U, gu = c->G * U, B = b->B;
    if (b->n_rec == 1) {
        if (gstride == U)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)U, (int)(ng * U),
                        1.0f, D, (int)ldD, Ur + g0 * U, (int)gu, 0.0f, b->tmp, (int)U);
        else
            for (int g = g0; g < g0 + ng; g++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)U, (int)U, 1.0f,
                            D + (g - g0) * gstride, (int)ldD, Ur + g * U, (int)gu,
                            g == g0 ? 0.0f : 1.0f, b->tmp, (int)U);
        const float *m = b->mrec;
        for (int64_t k = 0; k < B * U; k++)
            dst[k] += b->rec_drop ? b->tmp[k] * m[k] : b->tmp[k];
        return;
    }
    for (int g = g0; g < g0 + ng; g++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)U, (int)U, 1.0f,
                    D + (g - g0) * gstride, (int)ldD, Ur + g * U, (int)gu, 0.0f, b->tmp, (int)U);
        const float *m = b->mrec + (int64_t)g * B * U;
        for (int64_t k = 0; k < B * U; k++)
            dst[k] += b->tmp[k] * m[k];
    }
}

/* ---- forward / backward over the sequence -------------------------------------------------- */
void dpt_rnn_core_forward(const dpt_rnn_core *c, const dpt_pass *p, uint32_t layer_index,
                          const float *params, float *work, const float *x, int64_t B) {
    if (B <= 0)
        return;
    DPT_ASSERT(B * c->T <= INT_MAX);
    dpt_rnn_bufs b;
    make_bufs(c, p, work, B, &b);
    int64_t T = c->T, F = c->F, U = c->U, gu = c->G * U, BT = B * T;
    const float *K = params, *Ur = K + F * gu, *bias = c->use_bias ? Ur + U * gu : NULL;
    if (b.in_drop) {
        float scale = (float)(1.0 / (1.0 - c->dropout));
        for (int k = 0; k < b.n_in; k++) {
            float *m = (float *)b.min + (int64_t)k * B * F;
            float *xm = b.xm + (int64_t)k * BT * F;
            dpt_mask_fill(p, layer_index, c->mask_id0 + (uint32_t)k, 0, c->dropout_f, scale, m,
                          B * F);
            for (int64_t i = 0; i < B; i++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = 0; j < F; j++)
                        xm[(i * T + t) * F + j] = x[(i * T + t) * F + j] * m[i * F + j];
        }
    }
    if (b.rec_drop) {
        float scale = (float)(1.0 / (1.0 - c->rec_dropout));
        for (int k = 0; k < b.n_rec; k++)
            dpt_mask_fill(p, layer_index, c->mask_id0 + 4 + (uint32_t)k, 0, c->rec_dropout_f, scale,
                          (float *)b.mrec + (int64_t)k * B * U, B * U);
    }
    /* the input projection of every step: (B*T, F) · (F, GU) */
    if (b.n_in == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, (int)gu, (int)F, 1.0f,
                    b.in_drop ? b.xm : x, (int)F, K, (int)gu, 0.0f, b.A, (int)gu);
    else
        for (int g = 0; g < b.n_in; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, (int)U, (int)F, 1.0f,
                        b.xm + (int64_t)g * BT * F, (int)F, K + g * U, (int)gu, 0.0f, b.A + g * U,
                        (int)gu);
    if (bias)
        for (int64_t r = 0; r < BT; r++)
            for (int64_t j = 0; j < gu; j++)
                b.A[r * gu + j] += bias[j];
    switch (c->kind) {
    case DPT_RNN_SIMPLE:
        dpt_simple_rnn_forward_loop(c, &b, Ur);
        break;
    case DPT_RNN_LSTM:
        dpt_lstm_forward_loop(c, &b, Ur);
        break;
    case DPT_RNN_GRU:
        dpt_gru_forward_loop(c, &b, Ur, bias && c->reset_after ? bias + gu : NULL);
        break;
    }
}

/* acc (n) += column sums of rows (R, n) with row stride ld */
static void col_sums(float *acc, const float *rows, int64_t R, int64_t n, int64_t ld) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++)
            acc[j] += rows[r * ld + j];
}

void dpt_rnn_core_backward(const dpt_rnn_core *c, const dpt_pass *p, const float *params,
                           float *grads, bool trainable, float *work, const float *x,
                           const float *dh, const float *dh_last, float *dx, int64_t B) {
    if (B <= 0)
        return;
    dpt_rnn_bufs b;
    make_bufs(c, p, work, B, &b);
    int64_t T = c->T, F = c->F, U = c->U, gu = c->G * U, BT = B * T;
    const float *K = params, *Ur = K + F * gu;
    switch (c->kind) {
    case DPT_RNN_SIMPLE:
        dpt_simple_rnn_backward_loop(c, &b, Ur, dh, dh_last);
        break;
    case DPT_RNN_LSTM:
        dpt_lstm_backward_loop(c, &b, Ur, dh, dh_last);
        break;
    case DPT_RNN_GRU:
        dpt_gru_backward_loop(c, &b, Ur, dh, dh_last);
        break;
    }
    if (trainable) {
        float *dK = grads, *dU = dK + F * gu, *db = dU + U * gu;
        if (b.n_in == 1)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)F, (int)gu, (int)BT, 1.0f,
                        b.in_drop ? b.xm : x, (int)F, b.dZ, (int)gu, 1.0f, dK, (int)gu);
        else
            for (int g = 0; g < b.n_in; g++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)F, (int)U, (int)BT, 1.0f,
                            b.xm + (int64_t)g * BT * F, (int)F, b.dZ + g * U, (int)gu, 1.0f,
                            dK + g * U, (int)gu);
        bool gru = c->kind == DPT_RNN_GRU;
        if (b.n_rec == 1 && !gru) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)U, (int)gu, (int)BT, 1.0f,
                        b.hin, (int)U, b.dZ, (int)gu, 1.0f, dU, (int)gu);
        } else {
            for (int g = 0; g < c->G; g++) {
                const float *src = b.hin + (b.n_rec == 1 ? 0 : (int64_t)g * BT * U);
                const float *D = b.dZ + g * U;
                int64_t ldD = gu;
                if (gru && g == 2) {
                    if (c->reset_after) { /* the recurrent h-part's own gradient */
                        D = b.dZ2;
                        ldD = U;
                    } else { /* its input is r * hin_h */
                        src = b.S;
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)U, (int)U, (int)BT, 1.0f,
                            src, (int)U, D, (int)ldD, 1.0f, dU + g * U, (int)gu);
            }
        }
        if (c->use_bias) {
            col_sums(db, b.dZ, BT, gu, gu);
            if (gru && c->reset_after) { /* recurrent bias: z, r as the input side; h its own */
                col_sums(db + gu, b.dZ, BT, 2 * U, gu);
                col_sums(db + gu + 2 * U, b.dZ2, BT, U, U);
            }
        }
    }
    if (!dx)
        return;
    if (b.n_in == 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BT, (int)F, (int)gu, 1.0f, b.dZ,
                    (int)gu, K, (int)gu, 0.0f, dx, (int)F);
        if (b.in_drop)
            for (int64_t i = 0; i < B; i++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = 0; j < F; j++)
                        dx[(i * T + t) * F + j] *= b.min[i * F + j];
        return;
    }
    memset(dx, 0, sizeof(float) * (size_t)(BT * F));
    for (int g = 0; g < b.n_in; g++) {
        float *tmp = b.xm + (int64_t)g * BT * F; /* no longer needed: dK is done */
        const float *m = b.min + (int64_t)g * B * F;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BT, (int)F, (int)U, 1.0f,
                    b.dZ + g * U, (int)gu, K + g * U, (int)gu, 0.0f, tmp, (int)F);
        for (int64_t i = 0; i < B; i++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t j = 0; j < F; j++)
                    dx[(i * T + t) * F + j] += tmp[(i * T + t) * F + j] * m[i * F + j];
    }
}

/* ---- the layers SimpleRNN, LSTM, GRU --------------------------------------------------------- */
typedef struct {
    dpt_layer base; /* first */
    dpt_rnn_core core;
} dpt_rnn_layer;

/* The layer's workspace for B samples: (B, T, U) for the output gradient by input time
 * (return_sequences), then the core's. */
static int64_t seq_floats(const dpt_rnn_core *c, int64_t B) {
    return c->return_sequences ? r16(B * c->T * c->U) : 0;
}

static int64_t rnn_n_params(const dpt_layer *l) {
    return dpt_rnn_core_n_params(&((const dpt_rnn_layer *)l)->core);
}

static void rnn_init_params(dpt_layer *l, dpt_rng *rng) {
    dpt_rnn_core_init(&((dpt_rnn_layer *)l)->core, l->params, rng);
}

static int64_t rnn_workspace(const dpt_layer *l, int64_t B) {
    const dpt_rnn_core *c = &((const dpt_rnn_layer *)l)->core;
    return seq_floats(c, B) + dpt_rnn_core_workspace(c, B);
}

/* x (B, T, F), y (B, T, U) in processing order or (B, U) */
static void rnn_forward(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B) {
    const dpt_rnn_core *c = &((dpt_rnn_layer *)l)->core;
    if (B <= 0)
        return;
    float *work = l->work + seq_floats(c, B);
    dpt_rnn_core_forward(c, p, (uint32_t)l->index, l->params, work, x, B);
    const float *H = dpt_rnn_core_h(c, work, B);
    int64_t T = c->T, U = c->U;
    for (int64_t i = 0; i < B; i++) {
        if (!c->return_sequences) {
            memcpy(y + i * U, H + (i * T + dpt_rnn_core_last_t(c)) * U, sizeof(float) * (size_t)U);
            continue;
        }
        for (int64_t s = 0; s < T; s++) /* Keras returns the steps in the order they ran */
            memcpy(y + (i * T + s) * U, H + (i * T + dpt_rnn_t(c, s)) * U,
                   sizeof(float) * (size_t)U);
    }
}

static void rnn_backward(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                         float *dx, int64_t B) {
    (void)y;
    dpt_rnn_layer *r = (dpt_rnn_layer *)l;
    const dpt_rnn_core *c = &r->core;
    if (B <= 0)
        return;
    int64_t T = c->T, U = c->U;
    float *work = l->work + seq_floats(c, B);
    if (!c->return_sequences) {
        dpt_rnn_core_backward(c, p, l->params, l->grads, l->trainable, work, x, NULL, dy, dx, B);
        return;
    }
    const float *dh = dy;
    if (c->go_backwards) {
        float *buf = l->work;
        for (int64_t i = 0; i < B; i++)
            for (int64_t s = 0; s < T; s++)
                memcpy(buf + (i * T + dpt_rnn_t(c, s)) * U, dy + (i * T + s) * U,
                       sizeof(float) * (size_t)U);
        dh = buf;
    }
    dpt_rnn_core_backward(c, p, l->params, l->grads, l->trainable, work, x, dh, NULL, dx, B);
}

static int rnn_weights(const dpt_layer *l, const char **names, dpt_shape *shapes, int max) {
    return dpt_rnn_core_weights(&((const dpt_rnn_layer *)l)->core, names, shapes, max);
}

/* Keras 3 .weights.h5 keeps an RNN's variables in its cell: /layers/lstm/cell/vars/0..2 */
static void rnn_keras3_path(const dpt_layer *l, int j, char *buf, size_t n) {
    (void)l;
    snprintf(buf, n, "cell/vars/%d", j);
}

static double rnn_regularize(dpt_layer *l, float scale) {
    bool g = scale != 0.0f && l->trainable;
    return dpt_rnn_core_regularize(&((dpt_rnn_layer *)l)->core, l->params, g ? l->grads : NULL,
                                   scale);
}

static void rnn_constrain(dpt_layer *l) {
    dpt_rnn_core_constrain(&((dpt_rnn_layer *)l)->core, l->params);
}

static json_t *rnn_to_json(const dpt_layer *l) {
    json_t *c = dpt_layer_base_json(l);
    dpt_rnn_core_json(&((const dpt_rnn_layer *)l)->core, c);
    return c;
}

static void rnn_destroy(dpt_layer *l) { (void)l; }

#define RNN_OPS(var, cls)                                                                          \
    static const dpt_layer_ops var = {                                                             \
        .class_name = cls,                                                                         \
        .n_params = rnn_n_params,                                                                  \
        .init_params = rnn_init_params,                                                            \
        .forward = rnn_forward,                                                                    \
        .backward = rnn_backward,                                                                  \
        .weights = rnn_weights,                                                                    \
        .to_json = rnn_to_json,                                                                    \
        .destroy = rnn_destroy,                                                                    \
        .regularize = rnn_regularize,                                                              \
        .workspace = rnn_workspace,                                                                \
        .keras3_path = rnn_keras3_path,                                                            \
        .constrain = rnn_constrain,                                                                \
    }
RNN_OPS(simple_rnn_ops, "SimpleRNN");
RNN_OPS(lstm_ops, "LSTM");
RNN_OPS(gru_ops, "GRU");

static dpt_status rnn_create(dpt_rnn_kind kind, const json_t *config, const dpt_json_ctx *ctx,
                             const dpt_shape *in, dpt_layer **out) {
    *out = NULL;
    dpt_rnn_layer *r = calloc(1, sizeof *r);
    if (!r)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: %s: out of memory", ctx->file, ctx->path);
    const dpt_layer_ops *ops = kind == DPT_RNN_LSTM  ? &lstm_ops
                               : kind == DPT_RNN_GRU ? &gru_ops
                                                     : &simple_rnn_ops;
    dpt_layer *l = &r->base;
    dpt_status st = dpt_layer_base_init(l, ops, config, ctx, in);
    if (st == DPT_OK)
        st = dpt_rnn_core_parse(&r->core, kind, config, ctx, in);
    if (st != DPT_OK) {
        free(r);
        return st;
    }
    const dpt_rnn_core *c = &r->core;
    l->has_regularizer = c->kernel_reg.kind != DPT_REG_NONE || c->rec_reg.kind != DPT_REG_NONE ||
                         c->bias_reg.kind != DPT_REG_NONE;
    l->has_constraint = dpt_rnn_core_has_constraint(c);
    l->out_shape = c->return_sequences ? (dpt_shape){.rank = 2, .dim = {c->T, c->U}}
                                       : (dpt_shape){.rank = 1, .dim = {c->U}};
    l->out_size = dpt_shape_size(&l->out_shape);
    *out = l;
    return DPT_OK;
}

dpt_status dpt_simple_rnn_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                                 dpt_layer **out) {
    return rnn_create(DPT_RNN_SIMPLE, config, ctx, in, out);
}

dpt_status dpt_lstm_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                           dpt_layer **out) {
    return rnn_create(DPT_RNN_LSTM, config, ctx, in, out);
}

dpt_status dpt_gru_create(const json_t *config, const dpt_json_ctx *ctx, const dpt_shape *in,
                          dpt_layer **out) {
    return rnn_create(DPT_RNN_GRU, config, ctx, in, out);
}
