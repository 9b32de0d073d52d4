/* Losses and the Keras "accuracy" metric, as SUMS over the batch (means are taken after the
 * global reduction, by train/). Values and gradients follow Keras exactly:
 *   - from probabilities, cross-entropies clip to [1e-7, 1 - 1e-7] (categorical renormalises each
 *     row first; sparse takes a log-softmax of the clipped log-probabilities, as Keras's TF backend
 *     does), and the clip has zero gradient outside the range;
 *   - from logits (a sigmoid/softmax head folded into the loss), the stable forms
 *     max(z, 0) - z·y + log1p(exp(-|z|)) and log-softmax, with no clipping;
 *   - binary cross-entropy and MSE average over the K units of a sample.
 * Per-element math is in double where it feeds the loss sum, float for the gradient.
 */
#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"

#define CLIP_LO 1e-7f
#define CLIP_HI (1.0f - 1e-7f)

bool dpt_loss_from_name(const char *name, dpt_loss_kind *out) {
    static const struct {
        const char *name;
        dpt_loss_kind k;
    } names[] = {
        {"binary_crossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
        {"BinaryCrossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
        {"categorical_crossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
        {"CategoricalCrossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
        {"sparse_categorical_crossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
        {"SparseCategoricalCrossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
        {"mse", DPT_LOSS_MSE},
        {"mean_squared_error", DPT_LOSS_MSE},
        {"MeanSquaredError", DPT_LOSS_MSE},
    };
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].k;
            return true;
        }
    return false;
}

const char *dpt_loss_name(dpt_loss_kind k) {
    switch (k) {
    case DPT_LOSS_BINARY_CROSSENTROPY:
        return "binary_crossentropy";
    case DPT_LOSS_CATEGORICAL_CROSSENTROPY:
        return "categorical_crossentropy";
    case DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        return "sparse_categorical_crossentropy";
    case DPT_LOSS_MSE:
        return "mse";
    }
    return "?";
}

dpt_target_kind dpt_loss_target_kind(dpt_loss_kind k) {
    switch (k) {
    case DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        return DPT_TARGET_INDEX;
    case DPT_LOSS_CATEGORICAL_CROSSENTROPY:
        return DPT_TARGET_ONEHOT;
    case DPT_LOSS_BINARY_CROSSENTROPY:
        return DPT_TARGET_BINARY;
    case DPT_LOSS_MSE:
        break;
    }
    return DPT_TARGET_VALUES;
}

int64_t dpt_loss_target_size(dpt_loss_kind k, int64_t out_size) {
    return k == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY ? 1 : out_size;
}

static inline float sigmoidf(float z) {
    if (z >= 0.0f)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* first index of the maximum of v (n), as tf.argmax */
static int64_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* out, target, dout: (B, K) */
static void bce(bool logits, const float *out, const float *target, int64_t B, int64_t K,
                float *dout, double *loss_sum, double *correct) {
    const float invK = 1.0f / (float)K;
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        double row = 0.0;
        int64_t rh = 0;
        for (int64_t j = 0; j < K; j++) {
            float z = o[j], t = y[j];
            if (logits) {
                double zd = z;
                row += (zd > 0.0 ? zd : 0.0) - zd * t + log1p(exp(-fabs(zd)));
                if (dout)
                    dout[i * K + j] = (sigmoidf(z) - t) * invK;
                rh += (z > 0.0f) == (t > 0.5f);
            } else {
                float p = z < CLIP_LO ? CLIP_LO : z > CLIP_HI ? CLIP_HI : z;
                row -= t * log((double)p) + (1.0 - t) * log(1.0 - (double)p);
                if (dout)
                    dout[i * K + j] =
                        (z < CLIP_LO || z > CLIP_HI) ? 0.0f : (p - t) / (p * (1.0f - p)) * invK;
                rh += (z > 0.5f) == (t > 0.5f);
            }
        }
        sum += row / (double)K;
        hits += (double)rh / (double)K;
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* out, target, dout: (B, K) */
static void cce(bool logits, const float *out, const float *target, int64_t B, int64_t K,
                float *dout, double *loss_sum, double *correct) {
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        float *d = dout ? dout + i * K : NULL;
        double row = 0.0;
        if (logits) {
            float m = o[argmax(o, K)];
            double s = 0.0, sy = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float e = expf(o[j] - m);
                s += e;
                sy += y[j];
                if (d)
                    d[j] = e;
            }
            double lse = (double)m + log(s);
            for (int64_t j = 0; j < K; j++)
                row += y[j] * (lse - (double)o[j]);
            if (d) {
                float scale = (float)(sy / s);
                for (int64_t j = 0; j < K; j++)
                    d[j] = d[j] * scale - y[j];
            }
        } else {
            double s = 0.0;
            for (int64_t j = 0; j < K; j++)
                s += o[j];
            float inv = (float)(1.0 / s);
            double gq = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float q = o[j] * inv;
                bool in = q >= CLIP_LO && q <= CLIP_HI;
                float c = q < CLIP_LO ? CLIP_LO : q > CLIP_HI ? CLIP_HI : q;
                row -= y[j] * log((double)c);
                if (d) {
                    d[j] = in ? -y[j] / c : 0.0f; /* d loss / d q_j */
                    gq += (double)d[j] * q;
                }
            }
            if (d)
                for (int64_t j = 0; j < K; j++)
                    d[j] = (d[j] - (float)gq) * inv;
        }
        sum += row;
        hits += argmax(o, K) == argmax(y, K);
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* out, dout: (B, K); target: (B) class indices (validated) */
static void scce(bool logits, const float *out, const float *target, int64_t B, int64_t K,
                 float *dout, double *loss_sum, double *correct) {
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K;
        float *d = dout ? dout + i * K : NULL;
        int64_t t = (int64_t)target[i];
        if (logits) {
            float m = o[argmax(o, K)];
            double s = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float e = expf(o[j] - m);
                s += e;
                if (d)
                    d[j] = e;
            }
            sum += (double)m + log(s) - (double)o[t];
            if (d) {
                float inv = (float)(1.0 / s);
                for (int64_t j = 0; j < K; j++)
                    d[j] *= inv;
                d[t] -= 1.0f;
            }
        } else {
            /* Keras: log-softmax of log(clip(p)), i.e. -log(c_t / sum c) */
            double s = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float c = o[j] < CLIP_LO ? CLIP_LO : o[j] > CLIP_HI ? CLIP_HI : o[j];
                s += c;
            }
            float ct = o[t] < CLIP_LO ? CLIP_LO : o[t] > CLIP_HI ? CLIP_HI : o[t];
            sum += log(s) - log((double)ct);
            if (d) {
                float invs = (float)(1.0 / s);
                for (int64_t j = 0; j < K; j++) {
                    bool in = o[j] >= CLIP_LO && o[j] <= CLIP_HI;
                    d[j] = in ? invs - (j == t ? 1.0f / ct : 0.0f) : 0.0f;
                }
            }
        }
        hits += argmax(o, K) == t;
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* out, target, dout: (B, K) */
static void mse(const float *out, const float *target, int64_t B, int64_t K, float *dout,
                double *loss_sum, double *correct) {
    const float g = 2.0f / (float)K;
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        double row = 0.0;
        for (int64_t j = 0; j < K; j++) {
            float e = o[j] - y[j];
            row += (double)e * e;
            if (dout)
                dout[i * K + j] = g * e;
        }
        sum += row / (double)K;
        if (K == 1)
            hits += (o[0] > 0.5f) == (y[0] > 0.5f);
        else
            hits += argmax(o, K) == argmax(y, K);
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

dpt_status dpt_loss_compute(dpt_loss_kind k, dpt_act logits_act, const float *out,
                            const float *target, int64_t B, int64_t K, float *dout,
                            double *loss_sum, double *correct) {
    DPT_ASSERT(K >= 1 && B >= 0);
    bool logits = logits_act != DPT_ACT_LINEAR;
    switch (k) {
    case DPT_LOSS_BINARY_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR || logits_act == DPT_ACT_SIGMOID);
        bce(logits, out, target, B, K, dout, loss_sum, correct);
        return DPT_OK;
    case DPT_LOSS_CATEGORICAL_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR || logits_act == DPT_ACT_SOFTMAX);
        cce(logits, out, target, B, K, dout, loss_sum, correct);
        return DPT_OK;
    case DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR || logits_act == DPT_ACT_SOFTMAX);
        for (int64_t i = 0; i < B; i++) {
            float t = target[i];
            if (!(t >= 0.0f && t < (float)K && t == floorf(t)))
                return dpt_error_set(DPT_ERR_DATA,
                                     "sparse_categorical_crossentropy: target %g of sample %lld "
                                     "is not a class index in [0, %lld)",
                                     (double)t, (long long)i, (long long)K);
        }
        scce(logits, out, target, B, K, dout, loss_sum, correct);
        return DPT_OK;
    case DPT_LOSS_MSE:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        mse(out, target, B, K, dout, loss_sum, correct);
        return DPT_OK;
    }
    return dpt_error_set(DPT_ERR_INTERNAL, "unknown loss kind %d", (int)k);
}
