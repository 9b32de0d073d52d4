/* Private to the recurrent layers (rnn.c, simple_rnn.c, lstm.c, gru.c, bidirectional.c): one
 * recurrent "core" — a Keras RNN layer's cell run over a whole (B, T, F) sequence — that the
 * plain layers (SimpleRNN, LSTM, GRU) hold one of and Bidirectional two of.
 *
 * Layout of everything over a sequence: row-major (B, T, ·), row b * T + t indexed by INPUT
 * time t, whatever the direction (go_backwards only changes the order the steps run in); the
 * layer reorders its output. The input projection of all steps is one sgemm before the loop, the
 * recurrent product one sgemm per step, dK / dU / dx one sgemm each after backward's loop.
 *
 * Masks (Keras 3's DropoutRNNCell): one input mask (B, F) and one recurrent mask (B, U) per
 * sample, drawn once per pass and used at every time step. Keras 3 draws ONE mask of each for
 * all gates unless the cell runs implementation 1 — which it forces whenever recurrent_dropout
 * > 0 (or the config asks for implementation 1): then one mask per gate (LSTM 4, GRU 3), as
 * Keras 2 did. Mask ids (dpt_mask_fill): input mask of gate g = mask_id0 + g, recurrent mask of
 * gate g = mask_id0 + 4 + g (g = 0 when one mask serves all gates); mask_id0 = 1 for a plain
 * layer and Bidirectional's forward layer, 9 for its backward layer. Element index b * F + k
 * (input) or b * U + k (recurrent) of the rank-local batch.
 */
#ifndef DPT_RNN_CORE_H
#define DPT_RNN_CORE_H

#include <math.h>

#include "nn/nn_internal.h"

typedef enum { DPT_RNN_SIMPLE = 0, DPT_RNN_LSTM, DPT_RNN_GRU } dpt_rnn_kind;

typedef struct {
    dpt_rnn_kind kind;
    int64_t T, F, U, G; /* time steps, input features, units, gates (1, 4, 3) */
    dpt_act act, rec_act;
    bool use_bias, reset_after, return_sequences, go_backwards, unit_forget_bias;
    int implementation; /* 1 or 2 as configured (LSTM / GRU) */
    double dropout, rec_dropout;
    float dropout_f, rec_dropout_f;
    int n_masks; /* masks per input / per recurrent state: 1, or G (implementation 1) */
    uint32_t mask_id0;
    dpt_init_spec kernel_init, rec_init, bias_init;
    dpt_regularizer kernel_reg, rec_reg, bias_reg;
    dpt_constraint kernel_con, rec_con, bias_con; /* applied after each update (constrain) */
    char name[128];     /* the Keras layer's name (a Bidirectional's inner layer: forward_lstm) */
    char cell[32];      /* lstm_cell, gru_cell, simple_rnn_cell */
    char wname[3][300]; /* weight names for legacy .h5: <cell>/kernel or <name>/<cell>/kernel */
} dpt_rnn_core;

/* Parses the keys every Keras RNN layer of `kind` has into c (defaults as Keras 3); the input
 * shape in must be (T, F). ctx names the layer's config. Refuses what changes the math and is
 * not implemented (stateful, return_state, time_major, activity_regularizer, ...). */
DPT_NODISCARD dpt_status dpt_rnn_core_parse(dpt_rnn_core *c, dpt_rnn_kind kind,
                                            const json_t *config, const dpt_json_ctx *ctx,
                                            const dpt_shape *in);
/* Input-shape check shared with Bidirectional: a (timesteps, features) sample. */
DPT_NODISCARD dpt_status dpt_rnn_check_input(const char *cls, const dpt_json_ctx *ctx,
                                             const dpt_shape *in);
/* Writes the core's keys into the layer config object cfg (to_json). */
void dpt_rnn_core_json(const dpt_rnn_core *c, json_t *cfg);
/* Keras class name of kind ("SimpleRNN", "LSTM", "GRU"). */
const char *dpt_rnn_class_name(dpt_rnn_kind kind);

int64_t dpt_rnn_core_n_params(const dpt_rnn_core *c);
void dpt_rnn_core_init(const dpt_rnn_core *c, float *params, dpt_rng *rng);
/* kernel (F, GU), recurrent_kernel (U, GU), bias (GU) or GRU reset_after (2, GU). Returns 3 or
 * 2 (no bias); names are c->wname. */
int dpt_rnn_core_weights(const dpt_rnn_core *c, const char **names, dpt_shape *shapes, int max);
double dpt_rnn_core_regularize(const dpt_rnn_core *c, const float *params, float *grads,
                               float scale);
/* true when some weight has a constraint; dpt_rnn_core_constrain projects the weights (params:
 * the core's view), as Keras does after every optimizer update */
bool dpt_rnn_core_has_constraint(const dpt_rnn_core *c);
void dpt_rnn_core_constrain(const dpt_rnn_core *c, float *params);
/* Workspace floats for B samples. */
int64_t dpt_rnn_core_workspace(const dpt_rnn_core *c, int64_t B);

/* Runs the sequence x (B, T, F): afterwards dpt_rnn_core_h(c, work, B) is h (B, T, U) by input
 * time, and everything backward needs is in work. */
void dpt_rnn_core_forward(const dpt_rnn_core *c, const dpt_pass *p, uint32_t layer_index,
                          const float *params, float *work, const float *x, int64_t B);
const float *dpt_rnn_core_h(const dpt_rnn_core *c, float *work, int64_t B);
/* Index of the input time processed last (the layer's output when it returns no sequence). */
static inline int64_t dpt_rnn_core_last_t(const dpt_rnn_core *c) {
    return c->go_backwards ? 0 : c->T - 1;
}
/* Backward after forward with the same x and work. dh (B, T, U) by input time: d(loss)/dh_t of
 * every step (NULL: none), plus dh_last (B, U): of the last step processed (NULL: none). dh may
 * be overwritten. ACCUMULATES into grads when `trainable`; writes dx (B, T, F) if not NULL. */
void dpt_rnn_core_backward(const dpt_rnn_core *c, const dpt_pass *p, const float *params,
                           float *grads, bool trainable, float *work, const float *x,
                           const float *dh, const float *dh_last, float *dx, int64_t B);

/* ---- cell kernels (simple_rnn.c, lstm.c, gru.c): the time loops over the buffers ---------- */
typedef struct {
    int64_t B;
    bool in_drop, rec_drop; /* masks in use in this pass */
    int n_in, n_rec;        /* input / recurrent copies (1 or G) */
    const float *min;       /* (n_in, B, F) input masks */
    const float *mrec;      /* (n_rec, B, U) recurrent masks */
    float *xm;              /* (n_in, B, T, F) masked inputs (in_drop) */
    float *A;               /* (B, T, GU) projections, then activated gates */
    float *hin;             /* (n_rec, B, T, U) masked h_{t-1} per step (0 at the first) */
    float *H;               /* (B, T, U) h_t */
    float *S;               /* (B, T, U) LSTM c_t; GRU reset_after: recurrent h-part; GRU
                               reset_before: r * hin_h */
    float *S2;              /* (B, T, U) LSTM act(c_t) */
    float *dZ;              /* (B, T, GU) d pre-activation of the input side */
    float *dZ2;             /* (B, T, U) GRU reset_after: d of the recurrent h-part */
    float *dh, *dc, *tmp;   /* (B, U) each */
    float *R;               /* (B, GU) per-step scratch */
} dpt_rnn_bufs;

/* time index of processing step s */
static inline int64_t dpt_rnn_t(const dpt_rnn_core *c, int64_t s) {
    return c->go_backwards ? c->T - 1 - s : s;
}
/* hin (copy k) at step s = h of the previous step, times its mask; zeros at s = 0. */
void dpt_rnn_store_hin(const dpt_rnn_core *c, const dpt_rnn_bufs *b, int64_t s);
/* dst (B, ncols, ld ldd) += sum over gates g in [g0, g0 + ng) of hin_g(t) (B, U) · U[:, g]
 * (the recurrent product of step t into the gate columns). */
void dpt_rnn_rec_forward(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur, int g0,
                         int ng, int64_t t, float *dst, int64_t ldd);
/* dst (B, U) += sum over gates g in [g0, g0 + ng) of (D_g (B, U), row stride ldD, gate g at
 * D + (g - g0) * gstride) · U[:, g]ᵀ, each times its recurrent mask. */
void dpt_rnn_rec_backward(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur, int g0,
                          int ng, const float *D, int64_t ldD, int64_t gstride, float *dst);

void dpt_simple_rnn_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur);
void dpt_simple_rnn_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                                  const float *dh_seq, const float *dh_last);
void dpt_lstm_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur);
void dpt_lstm_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                            const float *dh_seq, const float *dh_last);
/* bias_rec: GRU reset_after's recurrent bias (3U) or NULL */
void dpt_gru_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                          const float *bias_rec);
void dpt_gru_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                           const float *dh_seq, const float *dh_last);

/* In place over v (n): v = a(v) for linear / relu / sigmoid / tanh / hard_sigmoid, with an exp of
 * ~1 ulp (Cephes's polynomial; range-reduced, clamped to +-88) in loops the compiler vectorises:
 * the cells' nonlinearities cost more than their sgemms with libm's expf / tanhf. */
void dpt_rnn_act_vec(dpt_act a, float *v, int64_t n);

/* derivative of the activation from its output y (linear, relu, sigmoid, tanh, hard_sigmoid) */
static inline float dpt_rnn_dact(dpt_act a, float y) {
    switch (a) {
    case DPT_ACT_RELU:
        return y > 0.0f ? 1.0f : 0.0f;
    case DPT_ACT_SIGMOID:
        return y * (1.0f - y);
    case DPT_ACT_TANH:
        return 1.0f - y * y;
    case DPT_ACT_HARD_SIGMOID: /* flat where clipped */
        return y > 0.0f && y < 1.0f ? 1.0f / 6.0f : 0.0f;
    case DPT_ACT_HARD_SIGMOID_K2:
        return y > 0.0f && y < 1.0f ? 0.2f : 0.0f;
    default:
        return 1.0f;
    }
}

#endif
