/* SimpleRNN's cell over a sequence (rnn_core.h has the buffers): h_t = act(x_t·K + b +
 * hin_t·U), hin_t = h_{t-1} times its recurrent mask. The input projection and the weight
 * gradients are done by rnn.c; here only the time loops.
 */
#include <cblas.h>
#include <string.h>

#include "nn/rnn_core.h"

void dpt_simple_rnn_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur) {
    int64_t T = c->T, U = c->U;
    for (int64_t s = 0; s < T; s++) {
        int64_t t = dpt_rnn_t(c, s);
        dpt_rnn_store_hin(c, b, s);
        if (s > 0)
            dpt_rnn_rec_forward(c, b, Ur, 0, 1, t, b->A + t * U, T * U);
        for (int64_t i = 0; i < b->B; i++) {
            float *a = b->A + (i * T + t) * U;
            dpt_rnn_act_vec(c->act, a, U);
            memcpy(b->H + (i * T + t) * U, a, sizeof(float) * (size_t)U);
        }
    }
}

void dpt_simple_rnn_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                                  const float *dh_seq, const float *dh_last) {
    int64_t T = c->T, U = c->U, B = b->B;
    memset(b->dh, 0, sizeof(float) * (size_t)(B * U));
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t t = dpt_rnn_t(c, s);
        for (int64_t i = 0; i < B; i++) {
            float *dh = b->dh + i * U, *dz = b->dZ + (i * T + t) * U;
            const float *h = b->H + (i * T + t) * U;
            if (dh_seq)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += dh_seq[(i * T + t) * U + k];
            if (dh_last && s == T - 1)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += dh_last[i * U + k];
            for (int64_t k = 0; k < U; k++)
                dz[k] = dh[k] * dpt_rnn_dact(c->act, h[k]);
        }
        if (s > 0) {
            memset(b->dh, 0, sizeof(float) * (size_t)(B * U));
            dpt_rnn_rec_backward(c, b, Ur, 0, 1, b->dZ + t * U, T * U, U, b->dh);
        }
    }
}
