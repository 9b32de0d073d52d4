/* LSTM's cell over a sequence (rnn_core.h has the buffers), Keras's gate order i, f, c, o:
 * z = x_t·K + b + hin_t·U (per gate its own masked hin when Keras runs implementation 1),
 * i = ra(z_i), f = ra(z_f), g = act(z_c), o = ra(z_o), c_t = f c_{t-1} + i g, h_t = o act(c_t).
 * Forward keeps the activated gates (A), c_t (S) and act(c_t) (S2); backward runs the loop in
 * reverse writing d pre-activations (dZ), from which rnn.c takes every weight gradient in one
 * sgemm each. One fused pass per step for all four nonlinearities.
 */
#include <cblas.h>
#include <string.h>

#include "nn/rnn_core.h"

void dpt_lstm_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur) {
    int64_t T = c->T, U = c->U, gu = 4 * U;
    const dpt_act ra = c->rec_act, ac = c->act;
    for (int64_t s = 0; s < T; s++) {
        int64_t t = dpt_rnn_t(c, s), tp = c->go_backwards ? t + 1 : t - 1;
        dpt_rnn_store_hin(c, b, s);
        if (s > 0)
            dpt_rnn_rec_forward(c, b, Ur, 0, 4, t, b->A + t * gu, T * gu);
        for (int64_t i = 0; i < b->B; i++) {
            float *restrict a = b->A + (i * T + t) * gu;
            float *restrict cs = b->S + (i * T + t) * U, *restrict tc = b->S2 + (i * T + t) * U;
            float *restrict h = b->H + (i * T + t) * U;
            const float *restrict cp = s > 0 ? b->S + (i * T + tp) * U : NULL;
            dpt_rnn_act_vec(ra, a, 2 * U); /* i, f */
            dpt_rnn_act_vec(ac, a + 2 * U, U);
            dpt_rnn_act_vec(ra, a + 3 * U, U);
            if (cp)
                for (int64_t k = 0; k < U; k++)
                    cs[k] = a[U + k] * cp[k] + a[k] * a[2 * U + k];
            else
                for (int64_t k = 0; k < U; k++)
                    cs[k] = a[k] * a[2 * U + k];
            memcpy(tc, cs, sizeof(float) * (size_t)U);
            dpt_rnn_act_vec(ac, tc, U);
            for (int64_t k = 0; k < U; k++)
                h[k] = a[3 * U + k] * tc[k];
        }
    }
}

/* one sample's d pre-activations at one step; DRA / DAC: the derivatives from the outputs */
#define LSTM_STEP_BWD(DRA, DAC)                                                                    \
    for (int64_t k = 0; k < U; k++) {                                                              \
        float g = dh[k], ig = a[k], fg = a[U + k], gg = a[2 * U + k], og = a[3 * U + k];           \
        float dcc = dc[k] + g * og * DAC(tc[k]);                                                   \
        dz[k] = dcc * gg * DRA(ig);                                                                \
        dz[U + k] = dcc * cp[k] * DRA(fg);                                                         \
        dz[2 * U + k] = dcc * ig * DAC(gg);                                                        \
        dz[3 * U + k] = g * tc[k] * DRA(og);                                                       \
        dc[k] = dcc * fg;                                                                          \
    }
#define D_SIGMOID(y) ((y) * (1.0f - (y)))
#define D_TANH(y) (1.0f - (y) * (y))
#define D_RA(y) dpt_rnn_dact(ra, y)
#define D_AC(y) dpt_rnn_dact(ac, y)

void dpt_lstm_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                            const float *dh_seq, const float *dh_last) {
    int64_t T = c->T, U = c->U, gu = 4 * U, B = b->B;
    const dpt_act ra = c->rec_act, ac = c->act;
    const bool usual = ra == DPT_ACT_SIGMOID && ac == DPT_ACT_TANH; /* Keras's defaults */
    memset(b->dh, 0, sizeof(float) * (size_t)(B * U));
    memset(b->dc, 0, sizeof(float) * (size_t)(B * U));
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t t = dpt_rnn_t(c, s), tp = c->go_backwards ? t + 1 : t - 1;
        if (s == 0) /* c_{-1} = 0 */
            memset(b->tmp, 0, sizeof(float) * (size_t)U);
        for (int64_t i = 0; i < B; i++) {
            const float *restrict a = b->A + (i * T + t) * gu;
            const float *restrict tc = b->S2 + (i * T + t) * U;
            const float *restrict cp = s > 0 ? b->S + (i * T + tp) * U : b->tmp;
            const float *ds = dh_seq ? dh_seq + (i * T + t) * U : NULL;
            const float *dl = (dh_last && s == T - 1) ? dh_last + i * U : NULL;
            float *restrict dz = b->dZ + (i * T + t) * gu;
            float *restrict dh = b->dh + i * U, *restrict dc = b->dc + i * U;
            if (ds)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += ds[k];
            if (dl)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += dl[k];
            if (usual) {
                LSTM_STEP_BWD(D_SIGMOID, D_TANH)
            } else {
                LSTM_STEP_BWD(D_RA, D_AC)
            }
        }
        if (s > 0) {
            memset(b->dh, 0, sizeof(float) * (size_t)(B * U));
            dpt_rnn_rec_backward(c, b, Ur, 0, 4, b->dZ + t * gu, T * gu, U, b->dh);
        }
    }
}
