/* GRU's cell over a sequence (rnn_core.h has the buffers), Keras's gate order z, r, h and both
 * of its variants:
 *   reset_after (Keras 3 default): m = hin_t·U + b_rec, z = ra(x_z + m_z), r = ra(x_r + m_r),
 *     hh = act(x_h + r m_h)   (S keeps m_h; its gradient goes to dZ2)
 *   reset_after false: z, r as above without b_rec, hh = act(x_h + (r hin_h)·U_h)   (S keeps
 *     r hin_h, the input of U_h's product)
 *   h_t = z h_{t-1} + (1 - z) hh, with the unmasked h_{t-1}.
 * x_* include the input bias (rnn.c's projection). Forward keeps (z, r, hh) in A.
 */
#include <cblas.h>
#include <string.h>

#include "nn/rnn_core.h"

/* hin of gate g (its own copy under per-gate masks) */
static const float *hin_of(const dpt_rnn_core *c, const dpt_rnn_bufs *b, int g) {
    return b->hin + (b->n_rec == 1 ? 0 : (int64_t)g * b->B * c->T * c->U);
}

void dpt_gru_forward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                          const float *bias_rec) {
    int64_t T = c->T, U = c->U, gu = 3 * U, B = b->B;
    const dpt_act ra = c->rec_act, ac = c->act;
    const float *hin_h = hin_of(c, b, 2);
    for (int64_t s = 0; s < T; s++) {
        int64_t t = dpt_rnn_t(c, s), tp = c->go_backwards ? t + 1 : t - 1;
        dpt_rnn_store_hin(c, b, s);
        if (c->reset_after) {
            for (int64_t i = 0; i < B; i++) {
                if (bias_rec)
                    memcpy(b->R + i * gu, bias_rec, sizeof(float) * (size_t)gu);
                else
                    memset(b->R + i * gu, 0, sizeof(float) * (size_t)gu);
            }
            if (s > 0)
                dpt_rnn_rec_forward(c, b, Ur, 0, 3, t, b->R, gu);
        } else if (s > 0) {
            dpt_rnn_rec_forward(c, b, Ur, 0, 2, t, b->A + t * gu, T * gu);
        }
        for (int64_t i = 0; i < B; i++) {
            float *restrict a = b->A + (i * T + t) * gu, *restrict sv = b->S + (i * T + t) * U;
            const float *restrict m = b->R + i * gu, *restrict hh_in = hin_h + (i * T + t) * U;
            if (c->reset_after) {
                for (int64_t k = 0; k < 2 * U; k++)
                    a[k] += m[k];
                memcpy(sv, m + 2 * U, sizeof(float) * (size_t)U);
            }
            dpt_rnn_act_vec(ra, a, 2 * U); /* z, r */
            if (c->reset_after)
                for (int64_t k = 0; k < U; k++)
                    a[2 * U + k] += a[U + k] * sv[k];
            else
                for (int64_t k = 0; k < U; k++)
                    sv[k] = a[U + k] * hh_in[k];
        }
        if (!c->reset_after && s > 0) /* x_h += (r hin_h)·U_h */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)U, (int)U, 1.0f,
                        b->S + t * U, (int)(T * U), Ur + 2 * U, (int)gu, 1.0f,
                        b->A + t * gu + 2 * U, (int)(T * gu));
        for (int64_t i = 0; i < B; i++) {
            float *restrict a = b->A + (i * T + t) * gu, *restrict h = b->H + (i * T + t) * U;
            const float *restrict hp = s > 0 ? b->H + (i * T + tp) * U : NULL;
            dpt_rnn_act_vec(ac, a + 2 * U, U); /* hh */
            if (hp)
                for (int64_t k = 0; k < U; k++)
                    h[k] = a[k] * hp[k] + (1.0f - a[k]) * a[2 * U + k];
            else
                for (int64_t k = 0; k < U; k++)
                    h[k] = (1.0f - a[k]) * a[2 * U + k];
        }
    }
}

/* one sample's d pre-activations at one step; DRA / DAC: the derivatives from the outputs */
#define GRU_STEP_BWD(DRA, DAC, RESET_AFTER)                                                        \
    for (int64_t k = 0; k < U; k++) {                                                              \
        float g = dh[k], z = a[k], r = a[U + k], hh = a[2 * U + k];                                \
        float dah = g * (1.0f - z) * DAC(hh);                                                      \
        dz[k] = g * (hp[k] - hh) * DRA(z);                                                         \
        dz[2 * U + k] = dah;                                                                       \
        if (RESET_AFTER) {                                                                         \
            dz2[k] = dah * r;                                                                      \
            dz[U + k] = dah * sv[k] * DRA(r);                                                      \
        }                                                                                          \
        dd[k] = g * z;                                                                             \
    }
#define D_SIGMOID(y) ((y) * (1.0f - (y)))
#define D_TANH(y) (1.0f - (y) * (y))
#define D_RA(y) dpt_rnn_dact(ra, y)
#define D_AC(y) dpt_rnn_dact(ac, y)

void dpt_gru_backward_loop(const dpt_rnn_core *c, const dpt_rnn_bufs *b, const float *Ur,
                           const float *dh_seq, const float *dh_last) {
    int64_t T = c->T, U = c->U, gu = 3 * U, B = b->B;
    const dpt_act ra = c->rec_act, ac = c->act;
    const float *hin_h = hin_of(c, b, 2);
    const float *mrec_h = b->mrec + (b->n_rec == 1 ? 0 : 2 * B * U);
    float *direct = b->dc;                                          /* dh_{t-1} through z h_{t-1} */
    const bool usual = ra == DPT_ACT_SIGMOID && ac == DPT_ACT_TANH; /* Keras's defaults */
    const float *zero = b->tmp;                                     /* (U) zeros at s = 0 */
    memset(b->dh, 0, sizeof(float) * (size_t)(B * U));
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t t = dpt_rnn_t(c, s), tp = c->go_backwards ? t + 1 : t - 1;
        if (s == 0)
            memset(b->tmp, 0, sizeof(float) * (size_t)U);
        for (int64_t i = 0; i < B; i++) {
            const float *a = b->A + (i * T + t) * gu, *sv = b->S + (i * T + t) * U;
            const float *hp = s > 0 ? b->H + (i * T + tp) * U : NULL;
            const float *ds = dh_seq ? dh_seq + (i * T + t) * U : NULL;
            const float *dl = (dh_last && s == T - 1) ? dh_last + i * U : NULL;
            float *dz = b->dZ + (i * T + t) * gu, *dh = b->dh + i * U, *dd = direct + i * U;
            float *dz2 = b->dZ2 + (i * T + t) * U;
            if (ds)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += ds[k];
            if (dl)
                for (int64_t k = 0; k < U; k++)
                    dh[k] += dl[k];
            if (!hp) /* h_{-1} = 0 */
                hp = zero;
            if (usual && c->reset_after) {
                GRU_STEP_BWD(D_SIGMOID, D_TANH, 1)
            } else if (usual) {
                GRU_STEP_BWD(D_SIGMOID, D_TANH, 0)
            } else {
                GRU_STEP_BWD(D_RA, D_AC, c->reset_after)
            }
        }
        if (!c->reset_after) { /* d(r hin_h) = dZ_h · U_hᵀ (in R) */
            if (s > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)U, (int)U, 1.0f,
                            b->dZ + t * gu + 2 * U, (int)(T * gu), Ur + 2 * U, (int)gu, 0.0f, b->R,
                            (int)U);
            for (int64_t i = 0; i < B; i++) {
                const float *a = b->A + (i * T + t) * gu, *hh_in = hin_h + (i * T + t) * U;
                float *dz = b->dZ + (i * T + t) * gu, *dd = direct + i * U;
                const float *drh = b->R + i * U, *m = mrec_h + i * U;
                for (int64_t k = 0; k < U; k++) {
                    float r = a[U + k];
                    if (s == 0) {
                        dz[U + k] = 0.0f;
                        continue;
                    }
                    dz[U + k] = drh[k] * hh_in[k] * dpt_rnn_dact(ra, r);
                    dd[k] += drh[k] * r * (b->rec_drop ? m[k] : 1.0f);
                }
            }
        }
        memcpy(b->dh, direct, sizeof(float) * (size_t)(B * U));
        if (s > 0) {
            dpt_rnn_rec_backward(c, b, Ur, 0, 2, b->dZ + t * gu, T * gu, U, b->dh);
            if (c->reset_after)
                dpt_rnn_rec_backward(c, b, Ur, 2, 1, b->dZ2 + t * U, T * U, U, b->dh);
        }
    }
}
