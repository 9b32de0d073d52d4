/* Losses and the Keras "accuracy" metric, as SUMS over the batch (means are taken after the
 * global reduction, by train/). Values and gradients follow Keras exactly:
 *   - from probabilities, cross-entropies clip to [1e-7, 1 - 1e-7] (categorical renormalises each
 *     row first; sparse takes a log-softmax of the clipped log-probabilities, as Keras's TF backend
 *     does), and the clip has zero gradient outside the range;
 *   - from logits (a sigmoid/softmax head folded into the loss), the stable forms
 *     max(z, 0) - z·y + log1p(exp(-|z|)) and log-softmax, with no clipping;
 *   - binary cross-entropy and MSE average over the K units of a sample.
 * Per-element math is in double where it feeds the loss sum, float for the gradient.
 * dpt_loss_compute_spec adds Keras's options (from_logits, label_smoothing, Huber's delta, the
 * focal parameters), per-sample weights, and the other Keras losses (mae, mape, msle, huber,
 * log_cosh, kl_divergence, poisson, hinge, squared_hinge, categorical_hinge,
 * binary_focal_crossentropy, cosine_similarity), each as Keras's losses.py computes it.
 */
#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"

#define CLIP_LO 1e-7f
#define CLIP_HI (1.0f - 1e-7f)

static const struct {
    const char *name;
    dpt_loss_kind k;
} loss_names[] = {
    /* the canonical name of each kind first (dpt_loss_name), then Keras's aliases and class
     * names (keras.losses.get accepts both), then Keras 2's legacy spellings */
    {"binary_crossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
    {"categorical_crossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
    {"sparse_categorical_crossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
    {"mse", DPT_LOSS_MSE},
    {"mae", DPT_LOSS_MAE},
    {"mape", DPT_LOSS_MAPE},
    {"msle", DPT_LOSS_MSLE},
    {"huber", DPT_LOSS_HUBER},
    {"log_cosh", DPT_LOSS_LOG_COSH},
    {"kl_divergence", DPT_LOSS_KL_DIVERGENCE},
    {"poisson", DPT_LOSS_POISSON},
    {"hinge", DPT_LOSS_HINGE},
    {"squared_hinge", DPT_LOSS_SQUARED_HINGE},
    {"categorical_hinge", DPT_LOSS_CATEGORICAL_HINGE},
    {"binary_focal_crossentropy", DPT_LOSS_BINARY_FOCAL_CROSSENTROPY},
    {"cosine_similarity", DPT_LOSS_COSINE_SIMILARITY},
    {"bce", DPT_LOSS_BINARY_CROSSENTROPY},
    {"BCE", DPT_LOSS_BINARY_CROSSENTROPY},
    {"BinaryCrossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
    {"CategoricalCrossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
    {"SparseCategoricalCrossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
    {"MSE", DPT_LOSS_MSE},
    {"mean_squared_error", DPT_LOSS_MSE},
    {"MeanSquaredError", DPT_LOSS_MSE},
    {"MAE", DPT_LOSS_MAE},
    {"mean_absolute_error", DPT_LOSS_MAE},
    {"MeanAbsoluteError", DPT_LOSS_MAE},
    {"MAPE", DPT_LOSS_MAPE},
    {"mean_absolute_percentage_error", DPT_LOSS_MAPE},
    {"MeanAbsolutePercentageError", DPT_LOSS_MAPE},
    {"MSLE", DPT_LOSS_MSLE},
    {"mean_squared_logarithmic_error", DPT_LOSS_MSLE},
    {"MeanSquaredLogarithmicError", DPT_LOSS_MSLE},
    {"Huber", DPT_LOSS_HUBER},
    {"huber_loss", DPT_LOSS_HUBER},
    {"LogCosh", DPT_LOSS_LOG_COSH},
    {"logcosh", DPT_LOSS_LOG_COSH},
    {"KLDivergence", DPT_LOSS_KL_DIVERGENCE},
    {"kld", DPT_LOSS_KL_DIVERGENCE},
    {"KLD", DPT_LOSS_KL_DIVERGENCE},
    {"kullback_leibler_divergence", DPT_LOSS_KL_DIVERGENCE},
    {"Poisson", DPT_LOSS_POISSON},
    {"Hinge", DPT_LOSS_HINGE},
    {"SquaredHinge", DPT_LOSS_SQUARED_HINGE},
    {"CategoricalHinge", DPT_LOSS_CATEGORICAL_HINGE},
    {"BinaryFocalCrossentropy", DPT_LOSS_BINARY_FOCAL_CROSSENTROPY},
    {"CosineSimilarity", DPT_LOSS_COSINE_SIMILARITY},
};

bool dpt_loss_from_name(const char *name, dpt_loss_kind *out) {
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof loss_names / sizeof loss_names[0]; i++)
        if (strcmp(name, loss_names[i].name) == 0) {
            *out = loss_names[i].k;
            return true;
        }
    return false;
}

/* a Keras class name of the table: upper case first, some lower case (not an acronym alias) */
static bool is_class_name(const char *s) {
    if (!(s[0] >= 'A' && s[0] <= 'Z'))
        return false;
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            return true;
    return false;
}

void dpt_loss_names(bool classes, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof loss_names / sizeof loss_names[0]; i++) {
        const char *s = loss_names[i].name;
        bool first = true; /* the first entry of its kind: the canonical function name */
        for (size_t j = 0; j < i && first; j++)
            first = loss_names[j].k != loss_names[i].k;
        if (classes ? !is_class_name(s) : !first)
            continue;
        int w = snprintf(buf + k, k < n ? n - k : 0, "%s%s", k ? ", " : "", s);
        k += w > 0 ? (size_t)w : 0;
        if (k >= n)
            break;
    }
}

const char *dpt_loss_name(dpt_loss_kind k) {
    for (size_t i = 0; i < sizeof loss_names / sizeof loss_names[0]; i++)
        if (loss_names[i].k == k)
            return loss_names[i].name;
    return "?";
}

dpt_loss_spec dpt_loss_spec_default(dpt_loss_kind k) {
    dpt_loss_spec s = {.kind = k, .delta = 1.0f, .gamma = 2.0f, .alpha = 0.25f};
    return s;
}

dpt_target_kind dpt_loss_target_kind(dpt_loss_kind k) {
    switch (k) {
    case DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        return DPT_TARGET_INDEX;
    case DPT_LOSS_CATEGORICAL_CROSSENTROPY:
        return DPT_TARGET_ONEHOT;
    case DPT_LOSS_BINARY_CROSSENTROPY:
        return DPT_TARGET_BINARY;
    default: /* mse and every other loss: the K values */
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

/* Per-sample weight: 1 without weights. */
static inline float wt(const float *w, int64_t i) { return w ? w[i] : 1.0f; }

static inline float clipf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Keras's smoothed binary target y (1 - ls) + ls / 2 (ls = 0: y exactly). */
static inline float smooth_bin(float y, float ls) {
    return ls != 0.0f ? y * (1.0f - ls) + 0.5f * ls : y;
}

/* out, target, dout: (B, K); w (B) or NULL */
static void bce(bool logits, float ls, const float *out, const float *target, const float *w,
                int64_t B, int64_t K, float *dout, double *loss_sum, double *correct) {
    const float invK = 1.0f / (float)K;
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        const float wi = wt(w, i), gs = invK * wi;
        double row = 0.0;
        int64_t rh = 0;
        for (int64_t j = 0; j < K; j++) {
            float z = o[j], t = smooth_bin(y[j], ls);
            if (logits) {
                double zd = z;
                row += (zd > 0.0 ? zd : 0.0) - zd * t + log1p(exp(-fabs(zd)));
                if (dout)
                    dout[i * K + j] = (sigmoidf(z) - t) * gs;
                rh += (z > 0.0f) == (y[j] > 0.5f);
            } else {
                float p = z < CLIP_LO ? CLIP_LO : z > CLIP_HI ? CLIP_HI : z;
                row -= t * log((double)p) + (1.0 - t) * log(1.0 - (double)p);
                if (dout)
                    dout[i * K + j] =
                        (z < CLIP_LO || z > CLIP_HI) ? 0.0f : (p - t) / (p * (1.0f - p)) * gs;
                rh += (z > 0.5f) == (y[j] > 0.5f);
            }
        }
        sum += row / (double)K * wi;
        hits += (double)rh / (double)K;
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* out, target, dout: (B, K); w (B) or NULL */
static void cce(bool logits, float ls, const float *out, const float *target, const float *w,
                int64_t B, int64_t K, float *dout, double *loss_sum, double *correct) {
    double sum = 0.0, hits = 0.0;
    const float lsK = ls / (float)K;
#define CCE_T(j) (ls != 0.0f ? y[j] * (1.0f - ls) + lsK : y[j])
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        float *d = dout ? dout + i * K : NULL;
        const float wi = wt(w, i);
        double row = 0.0;
        if (logits) {
            float m = o[argmax(o, K)];
            double s = 0.0, sy = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float e = expf(o[j] - m);
                s += e;
                sy += CCE_T(j);
                if (d)
                    d[j] = e;
            }
            double lse = (double)m + log(s);
            for (int64_t j = 0; j < K; j++)
                row += CCE_T(j) * (lse - (double)o[j]);
            if (d) {
                float scale = (float)(sy / s);
                for (int64_t j = 0; j < K; j++)
                    d[j] = (d[j] * scale - CCE_T(j)) * wi;
            }
        } else {
            double s = 0.0;
            for (int64_t j = 0; j < K; j++)
                s += o[j];
            float inv = (float)(1.0 / s);
            double gq = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float q = o[j] * inv, t = CCE_T(j);
                bool in = q >= CLIP_LO && q <= CLIP_HI;
                float c = q < CLIP_LO ? CLIP_LO : q > CLIP_HI ? CLIP_HI : q;
                row -= t * log((double)c);
                if (d) {
                    d[j] = in ? -t / c : 0.0f; /* d loss / d q_j */
                    gq += (double)d[j] * q;
                }
            }
            if (d)
                for (int64_t j = 0; j < K; j++)
                    d[j] = (d[j] - (float)gq) * inv * wi;
        }
        sum += row * wi;
        hits += argmax(o, K) == argmax(y, K);
    }
#undef CCE_T
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* out, dout: (B, K); target: (B) class indices (validated); w (B) or NULL */
static void scce(bool logits, const float *out, const float *target, const float *w, int64_t B,
                 int64_t K, float *dout, double *loss_sum, double *correct) {
    double sum = 0.0, hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K;
        float *d = dout ? dout + i * K : NULL;
        int64_t t = (int64_t)target[i];
        const float wi = wt(w, i);
        if (logits) {
            float m = o[argmax(o, K)];
            double s = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float e = expf(o[j] - m);
                s += e;
                if (d)
                    d[j] = e;
            }
            sum += ((double)m + log(s) - (double)o[t]) * wi;
            if (d) {
                float inv = (float)(1.0 / s);
                for (int64_t j = 0; j < K; j++)
                    d[j] *= inv;
                d[t] -= 1.0f;
                if (w)
                    for (int64_t j = 0; j < K; j++)
                        d[j] *= wi;
            }
        } else {
            /* Keras: log-softmax of log(clip(p)), i.e. -log(c_t / sum c) */
            double s = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float c = o[j] < CLIP_LO ? CLIP_LO : o[j] > CLIP_HI ? CLIP_HI : o[j];
                s += c;
            }
            float ct = o[t] < CLIP_LO ? CLIP_LO : o[t] > CLIP_HI ? CLIP_HI : o[t];
            sum += (log(s) - log((double)ct)) * wi;
            if (d) {
                float invs = (float)(1.0 / s);
                for (int64_t j = 0; j < K; j++) {
                    bool in = o[j] >= CLIP_LO && o[j] <= CLIP_HI;
                    d[j] = in ? (invs - (j == t ? 1.0f / ct : 0.0f)) * wi : 0.0f;
                }
            }
        }
        hits += argmax(o, K) == t;
    }
    *loss_sum += sum;
    if (correct)
        *correct += hits;
}

/* Keras "accuracy" of the losses without a class structure of their own, by the shapes as Keras
 * 3 picks it: one unit -> binary_accuracy (y == (out > 0.5), so a -1 label never matches),
 * several -> categorical (argmax). out, target: (B, K) */
static double shape_hits(const float *out, const float *target, int64_t B, int64_t K) {
    double hits = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        if (K == 1)
            hits += y[0] == (o[0] > 0.5f ? 1.0f : 0.0f);
        else
            hits += argmax(o, K) == argmax(y, K);
    }
    return hits;
}

/* The element-wise losses that Keras averages over the last axis: value and d value / d z of
 * one element z (prediction) against y (target). */
typedef struct {
    dpt_loss_kind k;
    float delta; /* huber */
} elem_ctx;

static inline double elem_loss(const elem_ctx *c, float z, float y, float *dz) {
    const float eps = 1e-7f;
    switch (c->k) {
    case DPT_LOSS_MSE: {
        float e = z - y;
        *dz = 2.0f * e;
        return (double)e * e;
    }
    case DPT_LOSS_MAE: {
        float e = z - y;
        *dz = e > 0.0f ? 1.0f : e < 0.0f ? -1.0f : 0.0f;
        return fabs((double)e);
    }
    case DPT_LOSS_MAPE: {
        /* 100 |(y - z) / max(|y|, eps)| */
        float m = fmaxf(fabsf(y), eps), e = z - y;
        *dz = (e > 0.0f ? 100.0f : e < 0.0f ? -100.0f : 0.0f) / m;
        return 100.0 * fabs((double)(y - z) / (double)m);
    }
    case DPT_LOSS_MSLE: {
        /* (log(max(z, eps) + 1) - log(max(y, eps) + 1))^2 */
        float zm = fmaxf(z, eps);
        double a = log((double)zm + 1.0) - log((double)fmaxf(y, eps) + 1.0);
        *dz = z > eps ? (float)(2.0 * a / ((double)z + 1.0)) : 0.0f;
        return a * a;
    }
    case DPT_LOSS_HUBER: {
        float e = z - y, ae = fabsf(e), dl = c->delta;
        if (ae <= dl) {
            *dz = e;
            return 0.5 * (double)e * e;
        }
        *dz = e > 0.0f ? dl : -dl;
        return (double)dl * ae - 0.5 * (double)dl * dl;
    }
    case DPT_LOSS_LOG_COSH: {
        /* x + softplus(-2x) - log 2, derivative tanh(x) */
        double x = (double)z - (double)y, u = -2.0 * x;
        *dz = (float)tanh(x);
        return x + (u > 0.0 ? u : 0.0) + log1p(exp(-fabs(u))) - log(2.0);
    }
    case DPT_LOSS_POISSON: {
        /* z - y log(z + eps) */
        *dz = 1.0f - y / (z + eps);
        return (double)z - (double)y * log((double)z + eps);
    }
    case DPT_LOSS_HINGE: { /* y already in {-1, 1} form */
        float m = 1.0f - y * z;
        *dz = m > 0.0f ? -y : 0.0f;
        return m > 0.0f ? m : 0.0;
    }
    case DPT_LOSS_SQUARED_HINGE: {
        float m = 1.0f - y * z;
        if (m <= 0.0f) {
            *dz = 0.0f;
            return 0.0;
        }
        *dz = -2.0f * y * m;
        return (double)m * m;
    }
    default:
        DPT_ASSERT(!"not an element-wise loss");
        return 0.0;
    }
}

/* mean over the K units of elem_loss. out, target, dout: (B, K); w (B) or NULL. hinge_convert:
 * the targets are 0/1 and become -1/1 (Keras's convert_binary_labels_to_hinge). */
static void elementwise(const elem_ctx *c, bool hinge_convert, const float *out,
                        const float *target, const float *w, int64_t B, int64_t K, float *dout,
                        double *loss_sum) {
    const float invK = 1.0f / (float)K;
    double sum = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        const float wi = wt(w, i), gs = invK * wi;
        double row = 0.0;
        for (int64_t j = 0; j < K; j++) {
            float t = hinge_convert ? 2.0f * y[j] - 1.0f : y[j], dz;
            row += elem_loss(c, o[j], t, &dz);
            if (dout)
                dout[i * K + j] = dz * gs;
        }
        sum += row / (double)K * wi;
    }
    *loss_sum += sum;
}

/* sum over K of clip(y, eps, 1) log(clip(y) / clip(z, eps, 1)). out, target, dout: (B, K) */
static void kld(const float *out, const float *target, const float *w, int64_t B, int64_t K,
                float *dout, double *loss_sum) {
    const float eps = 1e-7f;
    double sum = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        const float wi = wt(w, i);
        double row = 0.0;
        for (int64_t j = 0; j < K; j++) {
            float yt = clipf(y[j], eps, 1.0f), pt = clipf(o[j], eps, 1.0f);
            row += (double)yt * log((double)yt / (double)pt);
            if (dout)
                dout[i * K + j] = (o[j] >= eps && o[j] <= 1.0f) ? -yt / pt * wi : 0.0f;
        }
        sum += row * wi;
    }
    *loss_sum += sum;
}

/* max(max_j (1 - y_j) z_j - sum_j y_j z_j + 1, 0). out, target, dout: (B, K) */
static void cat_hinge(const float *out, const float *target, const float *w, int64_t B, int64_t K,
                      float *dout, double *loss_sum) {
    double sum = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        const float wi = wt(w, i);
        double pos = 0.0;
        int64_t jn = 0;
        float neg = (1.0f - y[0]) * o[0];
        for (int64_t j = 0; j < K; j++) {
            pos += (double)y[j] * o[j];
            float v = (1.0f - y[j]) * o[j];
            if (v > neg) {
                neg = v;
                jn = j;
            }
        }
        double l = (double)neg - pos + 1.0;
        sum += (l > 0.0 ? l : 0.0) * wi;
        if (dout)
            for (int64_t j = 0; j < K; j++)
                dout[i * K + j] = l > 0.0 ? (-y[j] + (j == jn ? 1.0f - y[j] : 0.0f)) * wi : 0.0f;
    }
    *loss_sum += sum;
}

/* Keras's binary_focal_crossentropy: mean over K of [w_c] (1 - p_t)^gamma bce(clip(p)), p the
 * output (or its sigmoid, from logits), p_t = y p + (1 - y)(1 - p). out, target, dout: (B, K) */
static void focal(const dpt_loss_spec *s, bool logits, const float *out, const float *target,
                  const float *w, int64_t B, int64_t K, float *dout, double *loss_sum) {
    const double g = s->gamma, a = s->alpha;
    const float invK = 1.0f / (float)K;
    double sum = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *yy = target + i * K;
        const float wi = wt(w, i);
        double row = 0.0;
        for (int64_t j = 0; j < K; j++) {
            double y = smooth_bin(yy[j], s->label_smoothing);
            float pf = logits ? sigmoidf(o[j]) : o[j];
            double p = pf;
            bool in = pf >= CLIP_LO && pf <= CLIP_HI;
            double c = clipf(pf, CLIP_LO, CLIP_HI);
            double b = -(y * log(c) + (1.0 - y) * log(1.0 - c));
            double pt = y * p + (1.0 - y) * (1.0 - p), q = 1.0 - pt;
            double f = pow(q, g);
            double cw = s->class_balancing ? y * a + (1.0 - y) * (1.0 - a) : 1.0;
            row += cw * f * b;
            if (dout) {
                double db = in ? (c - y) / (c * (1.0 - c)) : 0.0;
                double df = g == 0.0 ? 0.0 : -g * pow(q, g - 1.0) * (2.0 * y - 1.0);
                double dp = cw * (df * b + f * db);
                if (logits)
                    dp *= p * (1.0 - p);
                dout[i * K + j] = (float)dp * invK * wi;
            }
        }
        sum += row / (double)K * wi;
    }
    *loss_sum += sum;
}

/* -sum_j yhat_j zhat_j, xhat = x * min(1 / |x|, 1 / eps) (Keras's normalize). (B, K) */
static void cosine(const float *out, const float *target, const float *w, int64_t B, int64_t K,
                   float *dout, double *loss_sum) {
    const double ieps = 1e7;
    double sum = 0.0;
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K, *y = target + i * K;
        const float wi = wt(w, i);
        double sz = 0.0, sy = 0.0, zy = 0.0;
        for (int64_t j = 0; j < K; j++) {
            sz += (double)o[j] * o[j];
            sy += (double)y[j] * y[j];
            zy += (double)o[j] * y[j];
        }
        double iz = sz > 0.0 ? 1.0 / sqrt(sz) : ieps, iy = sy > 0.0 ? 1.0 / sqrt(sy) : ieps;
        bool capped = iz >= ieps;
        iz = fmin(iz, ieps);
        iy = fmin(iy, ieps);
        double cs = zy * iz * iy;
        sum += -cs * wi;
        if (dout)
            for (int64_t j = 0; j < K; j++) {
                double yh = y[j] * iy, zh = o[j] * iz;
                double g = capped ? -yh * iz : -(yh - zh * cs) * iz;
                dout[i * K + j] = (float)(g * wi);
            }
    }
    *loss_sum += sum;
}

static bool all_binary(const float *t, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (t[i] != 0.0f && t[i] != 1.0f)
            return false;
    return true;
}

dpt_status dpt_loss_compute_spec(const dpt_loss_spec *s, dpt_act logits_act, const float *out,
                                 const float *target, const float *weight, int64_t B, int64_t K,
                                 float *dout, double *loss_sum, double *correct) {
    DPT_ASSERT(K >= 1 && B >= 0);
    DPT_ASSERT(!s->from_logits || logits_act == DPT_ACT_LINEAR);
    bool logits = s->from_logits || logits_act != DPT_ACT_LINEAR;
    elem_ctx ec = {.k = s->kind, .delta = s->delta};
    switch (s->kind) {
    case DPT_LOSS_BINARY_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR || logits_act == DPT_ACT_SIGMOID);
        bce(logits, s->label_smoothing, out, target, weight, B, K, dout, loss_sum, correct);
        return DPT_OK;
    case DPT_LOSS_CATEGORICAL_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR || logits_act == DPT_ACT_SOFTMAX);
        cce(logits, s->label_smoothing, out, target, weight, B, K, dout, loss_sum, correct);
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
        scce(logits, out, target, weight, B, K, dout, loss_sum, correct);
        return DPT_OK;
    case DPT_LOSS_BINARY_FOCAL_CROSSENTROPY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        focal(s, s->from_logits, out, target, weight, B, K, dout, loss_sum);
        break;
    case DPT_LOSS_KL_DIVERGENCE:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        kld(out, target, weight, B, K, dout, loss_sum);
        break;
    case DPT_LOSS_CATEGORICAL_HINGE:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        cat_hinge(out, target, weight, B, K, dout, loss_sum);
        break;
    case DPT_LOSS_COSINE_SIMILARITY:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        cosine(out, target, weight, B, K, dout, loss_sum);
        break;
    case DPT_LOSS_HINGE:
    case DPT_LOSS_SQUARED_HINGE:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        /* Keras converts 0/1 labels to -1/1 when every label of the batch is 0 or 1 */
        elementwise(&ec, all_binary(target, B * K), out, target, weight, B, K, dout, loss_sum);
        break;
    case DPT_LOSS_MSE:
    case DPT_LOSS_MAE:
    case DPT_LOSS_MAPE:
    case DPT_LOSS_MSLE:
    case DPT_LOSS_HUBER:
    case DPT_LOSS_LOG_COSH:
    case DPT_LOSS_POISSON:
        DPT_ASSERT(logits_act == DPT_ACT_LINEAR);
        elementwise(&ec, false, out, target, weight, B, K, dout, loss_sum);
        break;
    default:
        return dpt_error_set(DPT_ERR_INTERNAL, "unknown loss kind %d", (int)s->kind);
    }
    if (correct)
        *correct += shape_hits(out, target, B, K);
    return DPT_OK;
}

dpt_status dpt_loss_compute(dpt_loss_kind k, dpt_act logits_act, const float *out,
                            const float *target, int64_t B, int64_t K, float *dout,
                            double *loss_sum, double *correct) {
    dpt_loss_spec s = dpt_loss_spec_default(k);
    return dpt_loss_compute_spec(&s, logits_act, out, target, NULL, B, K, dout, loss_sum, correct);
}
