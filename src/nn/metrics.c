/* Keras metrics as sums: each metric's state is a few doubles (a Mean's total and count;
 * Precision's tp and fp; Recall's tp and fn; AUC's count of positive and of negative labels per
 * threshold bucket), so states add across batches and ranks, and dpt_metrics_finalize turns the
 * summed state into Keras 3.15's result (keras/src/metrics/). Parsing the config objects is
 * io/config.c's; the cross-rank sum is the trainer's. The metrics see what Keras's metrics see:
 * the model's output, i.e. sigmoid/softmax of the logits when the head is folded into the loss.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/metrics.h"
#include "nn/nn_internal.h"

static const struct {
    const char *name;
    dpt_metric_kind kind;
    int loss; /* DPT_METRIC_LOSS: the dpt_loss_kind, else -1 */
} metric_names[] = {
    {"accuracy", DPT_METRIC_ACCURACY, -1},
    {"acc", DPT_METRIC_ACCURACY, -1},
    {"binary_accuracy", DPT_METRIC_BINARY_ACCURACY, -1},
    {"BinaryAccuracy", DPT_METRIC_BINARY_ACCURACY, -1},
    {"categorical_accuracy", DPT_METRIC_CATEGORICAL_ACCURACY, -1},
    {"CategoricalAccuracy", DPT_METRIC_CATEGORICAL_ACCURACY, -1},
    {"sparse_categorical_accuracy", DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY, -1},
    {"SparseCategoricalAccuracy", DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY, -1},
    {"top_k_categorical_accuracy", DPT_METRIC_TOP_K_CATEGORICAL_ACCURACY, -1},
    {"TopKCategoricalAccuracy", DPT_METRIC_TOP_K_CATEGORICAL_ACCURACY, -1},
    {"sparse_top_k_categorical_accuracy", DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY, -1},
    {"SparseTopKCategoricalAccuracy", DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY, -1},
    {"mae", DPT_METRIC_MAE, -1},
    {"MAE", DPT_METRIC_MAE, -1},
    {"mean_absolute_error", DPT_METRIC_MAE, -1},
    {"MeanAbsoluteError", DPT_METRIC_MAE, -1},
    {"mse", DPT_METRIC_MSE, -1},
    {"MSE", DPT_METRIC_MSE, -1},
    {"mean_squared_error", DPT_METRIC_MSE, -1},
    {"MeanSquaredError", DPT_METRIC_MSE, -1},
    {"root_mean_squared_error", DPT_METRIC_RMSE, -1},
    {"RootMeanSquaredError", DPT_METRIC_RMSE, -1},
    {"auc", DPT_METRIC_AUC, -1},
    {"AUC", DPT_METRIC_AUC, -1},
    {"precision", DPT_METRIC_PRECISION, -1},
    {"Precision", DPT_METRIC_PRECISION, -1},
    {"recall", DPT_METRIC_RECALL, -1},
    {"Recall", DPT_METRIC_RECALL, -1},
    /* loss functions as metrics (Keras's MeanMetricWrapper), under the names keras.metrics knows */
    {"binary_crossentropy", DPT_METRIC_LOSS, DPT_LOSS_BINARY_CROSSENTROPY},
    {"bce", DPT_METRIC_LOSS, DPT_LOSS_BINARY_CROSSENTROPY},
    {"BCE", DPT_METRIC_LOSS, DPT_LOSS_BINARY_CROSSENTROPY},
    {"BinaryCrossentropy", DPT_METRIC_LOSS, DPT_LOSS_BINARY_CROSSENTROPY},
    {"categorical_crossentropy", DPT_METRIC_LOSS, DPT_LOSS_CATEGORICAL_CROSSENTROPY},
    {"CategoricalCrossentropy", DPT_METRIC_LOSS, DPT_LOSS_CATEGORICAL_CROSSENTROPY},
    {"sparse_categorical_crossentropy", DPT_METRIC_LOSS, DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
    {"SparseCategoricalCrossentropy", DPT_METRIC_LOSS, DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
    {"mape", DPT_METRIC_LOSS, DPT_LOSS_MAPE},
    {"MAPE", DPT_METRIC_LOSS, DPT_LOSS_MAPE},
    {"mean_absolute_percentage_error", DPT_METRIC_LOSS, DPT_LOSS_MAPE},
    {"MeanAbsolutePercentageError", DPT_METRIC_LOSS, DPT_LOSS_MAPE},
    {"msle", DPT_METRIC_LOSS, DPT_LOSS_MSLE},
    {"MSLE", DPT_METRIC_LOSS, DPT_LOSS_MSLE},
    {"mean_squared_logarithmic_error", DPT_METRIC_LOSS, DPT_LOSS_MSLE},
    {"MeanSquaredLogarithmicError", DPT_METRIC_LOSS, DPT_LOSS_MSLE},
    {"hinge", DPT_METRIC_LOSS, DPT_LOSS_HINGE},
    {"Hinge", DPT_METRIC_LOSS, DPT_LOSS_HINGE},
    {"squared_hinge", DPT_METRIC_LOSS, DPT_LOSS_SQUARED_HINGE},
    {"SquaredHinge", DPT_METRIC_LOSS, DPT_LOSS_SQUARED_HINGE},
    {"categorical_hinge", DPT_METRIC_LOSS, DPT_LOSS_CATEGORICAL_HINGE},
    {"CategoricalHinge", DPT_METRIC_LOSS, DPT_LOSS_CATEGORICAL_HINGE},
    {"kl_divergence", DPT_METRIC_LOSS, DPT_LOSS_KL_DIVERGENCE},
    {"KLDivergence", DPT_METRIC_LOSS, DPT_LOSS_KL_DIVERGENCE},
    {"poisson", DPT_METRIC_LOSS, DPT_LOSS_POISSON},
    {"Poisson", DPT_METRIC_LOSS, DPT_LOSS_POISSON},
    {"log_cosh_error", DPT_METRIC_LOSS, DPT_LOSS_LOG_COSH},
    {"LogCoshError", DPT_METRIC_LOSS, DPT_LOSS_LOG_COSH},
};

/* Keras's default instance names of the metric classes */
static const char *const default_names[][2] = {
    {"BinaryAccuracy", "binary_accuracy"},
    {"CategoricalAccuracy", "categorical_accuracy"},
    {"SparseCategoricalAccuracy", "sparse_categorical_accuracy"},
    {"TopKCategoricalAccuracy", "top_k_categorical_accuracy"},
    {"SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy"},
    {"MeanAbsoluteError", "mean_absolute_error"},
    {"MeanSquaredError", "mean_squared_error"},
    {"RootMeanSquaredError", "root_mean_squared_error"},
    {"AUC", "auc"},
    {"Precision", "precision"},
    {"Recall", "recall"},
    {"BinaryCrossentropy", "binary_crossentropy"},
    {"CategoricalCrossentropy", "categorical_crossentropy"},
    {"SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"},
    {"MeanAbsolutePercentageError", "mean_absolute_percentage_error"},
    {"MeanSquaredLogarithmicError", "mean_squared_logarithmic_error"},
    {"Hinge", "hinge"},
    {"SquaredHinge", "squared_hinge"},
    {"CategoricalHinge", "categorical_hinge"},
    {"KLDivergence", "kl_divergence"},
    {"Poisson", "poisson"},
    {"LogCoshError", "logcosh"},
};

bool dpt_metric_from_name(const char *name, dpt_metric *out) {
    if (!name || strlen(name) >= DPT_METRIC_NAME_MAX)
        return false;
    for (size_t i = 0; i < sizeof metric_names / sizeof metric_names[0]; i++) {
        if (strcmp(name, metric_names[i].name) != 0)
            continue;
        memset(out, 0, sizeof *out);
        out->kind = metric_names[i].kind;
        snprintf(out->name, sizeof out->name, "%s", name);
        out->threshold = 0.5f;
        out->k = 5;
        out->num_thresholds = 200;
        out->loss = dpt_loss_spec_default(
            metric_names[i].loss >= 0 ? (dpt_loss_kind)metric_names[i].loss : DPT_LOSS_MSE);
        return true;
    }
    return false;
}

const char *dpt_metric_default_name(const char *class_name) {
    for (size_t i = 0; i < sizeof default_names / sizeof default_names[0]; i++)
        if (!strcmp(class_name, default_names[i][0]))
            return default_names[i][1];
    return NULL;
}

static int64_t metric_state_size(const dpt_metric *m) {
    return m->kind == DPT_METRIC_AUC ? 2 * (int64_t)m->num_thresholds : 2;
}

static bool sparse_targets(int64_t K, int64_t T) { return T == 1 && K > 1; }

dpt_status dpt_metrics_prepare(dpt_metrics_spec *s, int64_t K, int64_t T) {
    DPT_ASSERT(s->n >= 0 && s->n <= DPT_MAX_METRICS);
    bool sparse = sparse_targets(K, T);
    int64_t off = 0;
    for (int i = 0; i < s->n; i++) {
        dpt_metric *m = &s->m[i];
        if (m->kind == DPT_METRIC_ACCURACY) /* Keras 3: compile_utils.get_metric */
            m->kind = K == 1   ? DPT_METRIC_BINARY_ACCURACY
                      : sparse ? DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY
                               : DPT_METRIC_CATEGORICAL_ACCURACY;
        bool wants_sparse = m->kind == DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY ||
                            m->kind == DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY ||
                            (m->kind == DPT_METRIC_LOSS &&
                             m->loss.kind == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
        if (wants_sparse && !sparse)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "metric \"%s\" needs one class index per sample (the targets of "
                                 "sparse_categorical_crossentropy) and a model with several "
                                 "outputs; here targets have %lld value%s for %lld output%s",
                                 m->name, (long long)T, T == 1 ? "" : "s", (long long)K,
                                 K == 1 ? "" : "s");
        if (!wants_sparse && T != K)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "metric \"%s\" needs %lld target values per sample (one per "
                                 "output), but the loss's targets are class indices; use "
                                 "sparse_categorical_accuracy or a sparse metric",
                                 m->name, (long long)K);
        s->offset[i] = off;
        off += metric_state_size(m);
    }
    s->offset[s->n] = off;
    return DPT_OK;
}

int64_t dpt_metrics_state_size(const dpt_metrics_spec *s) { return s->offset[s->n]; }

int dpt_metrics_find(const dpt_metrics_spec *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->m[i].name, name))
            return i;
    return -1;
}

static inline float sigmoidf(float z) {
    if (z >= 0.0f)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* first index of the maximum of v (n), as argmax in Keras's backends */
static int64_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* Keras's in_top_k: fewer than k entries strictly greater than v[t] (NaN at t never is) */
static bool in_top_k(const float *v, int64_t n, int64_t t, int k) {
    float x = v[t];
    if (isnan(x))
        return false;
    int64_t greater = 0;
    for (int64_t j = 0; j < n; j++)
        greater += v[j] > x;
    return greater < k;
}

/* p (B, K) = what Keras's metrics see of the output rows out (B, K) */
static void to_predictions(dpt_act head, const float *out, int64_t B, int64_t K, float *p) {
    for (int64_t i = 0; i < B; i++) {
        const float *o = out + i * K;
        float *q = p + i * K;
        if (head == DPT_ACT_SIGMOID) {
            for (int64_t j = 0; j < K; j++)
                q[j] = sigmoidf(o[j]);
        } else { /* softmax */
            float m = o[argmax(o, K)], s = 0.0f;
            for (int64_t j = 0; j < K; j++) {
                q[j] = expf(o[j] - m);
                s += q[j];
            }
            for (int64_t j = 0; j < K; j++)
                q[j] /= s;
        }
    }
}

/* one metric over B rows of predictions p (B, K) against targets y (B, T) */
static void accumulate_one(const dpt_metric *m, const float *p, const float *y, int64_t B,
                           int64_t K, int64_t T, double *st) {
    switch (m->kind) {
    case DPT_METRIC_BINARY_ACCURACY:
        for (int64_t i = 0; i < B; i++) {
            int64_t hits = 0;
            for (int64_t j = 0; j < K; j++)
                hits += y[i * T + j] == (p[i * K + j] > m->threshold ? 1.0f : 0.0f);
            st[0] += (double)hits / (double)K;
        }
        st[1] += (double)B;
        return;
    case DPT_METRIC_CATEGORICAL_ACCURACY:
        for (int64_t i = 0; i < B; i++)
            st[0] += argmax(y + i * T, T) == argmax(p + i * K, K);
        st[1] += (double)B;
        return;
    case DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY:
        for (int64_t i = 0; i < B; i++)
            st[0] += y[i] == (float)argmax(p + i * K, K);
        st[1] += (double)B;
        return;
    case DPT_METRIC_TOP_K_CATEGORICAL_ACCURACY:
        for (int64_t i = 0; i < B; i++)
            st[0] += in_top_k(p + i * K, K, argmax(y + i * T, T), m->k);
        st[1] += (double)B;
        return;
    case DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY:
        for (int64_t i = 0; i < B; i++) {
            float t = y[i]; /* int32 cast of the label; out of range: not in the top k */
            int64_t ti = (int64_t)t;
            st[0] += ti >= 0 && ti < K && in_top_k(p + i * K, K, ti, m->k);
        }
        st[1] += (double)B;
        return;
    case DPT_METRIC_MAE:
    case DPT_METRIC_MSE:
    case DPT_METRIC_RMSE:
        for (int64_t i = 0; i < B; i++) {
            double row = 0.0;
            for (int64_t j = 0; j < K; j++) {
                float e = p[i * K + j] - y[i * T + j];
                row += m->kind == DPT_METRIC_MAE ? fabs((double)e) : (double)e * e;
            }
            st[0] += row / (double)K;
        }
        st[1] += (double)B;
        return;
    case DPT_METRIC_LOSS: {
        dpt_status s =
            dpt_loss_compute_spec(&m->loss, DPT_ACT_LINEAR, p, y, NULL, B, K, NULL, st, NULL);
        DPT_ASSERT(s == DPT_OK); /* the targets were checked by the loss */
        st[1] += (double)B;
        return;
    }
    case DPT_METRIC_PRECISION:
    case DPT_METRIC_RECALL:
        /* Keras: y_true cast to bool, prediction positive when > threshold */
        for (int64_t i = 0; i < B * K; i++) {
            bool lab = y[i] != 0.0f, pos = p[i] > m->threshold;
            if (lab && pos)
                st[0] += 1.0;
            else if (m->kind == DPT_METRIC_PRECISION ? (!lab && pos) : (lab && !pos))
                st[1] += 1.0;
        }
        return;
    case DPT_METRIC_AUC: {
        /* Keras's _update_confusion_matrix_variables_optimized for its evenly spaced
         * thresholds {-eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps}: the prediction, clipped to
         * [0, 1], falls in bucket max(ceil(p (n-1)) - 1, 0) (float32, as Keras), and counts as
         * positive at every threshold index <= its bucket */
        const int nt = m->num_thresholds;
        double *pos = st, *neg = st + nt;
        const float scale = (float)(nt - 1);
        for (int64_t i = 0; i < B * K; i++) {
            float q = p[i];
            if (m->from_logits)
                q = sigmoidf(q);
            q = q < 0.0f ? 0.0f : q > 1.0f ? 1.0f : q;
            float b = ceilf(q * scale) - 1.0f;
            int bi = !(b > 0.0f) ? 0 : b >= (float)(nt - 1) ? nt - 1 : (int)b;
            if (y[i] != 0.0f)
                pos[bi] += 1.0;
            else
                neg[bi] += 1.0;
        }
        return;
    }
    case DPT_METRIC_ACCURACY:
        break;
    }
    DPT_ASSERT(!"metric not prepared");
}

#define CHUNK_FLOATS 4096

void dpt_metrics_accumulate(const dpt_metrics_spec *s, dpt_act head_act, const float *out,
                            const float *target, int64_t B, int64_t K, int64_t T, double *state) {
    if (s->n == 0 || B == 0)
        return;
    if (head_act == DPT_ACT_LINEAR) {
        for (int i = 0; i < s->n; i++)
            accumulate_one(&s->m[i], out, target, B, K, T, state + s->offset[i]);
        return;
    }
    /* probabilities a chunk of rows at a time (a row at a time, on the heap, when K is huge) */
    float stack[CHUNK_FLOATS];
    float *buf = stack;
    int64_t rows = CHUNK_FLOATS / K;
    if (rows < 1) {
        rows = 1;
        buf = malloc((size_t)K * sizeof(float));
        DPT_ASSERT(buf != NULL);
    }
    for (int64_t r = 0; r < B; r += rows) {
        int64_t b = B - r < rows ? B - r : rows;
        to_predictions(head_act, out + r * K, b, K, buf);
        for (int i = 0; i < s->n; i++)
            accumulate_one(&s->m[i], buf, target + r * T, b, K, T, state + s->offset[i]);
    }
    if (buf != stack)
        free(buf);
}

static double no_nan(double a, double b) { return b == 0.0 ? 0.0 : a / b; }

/* Keras's AUC.result / interpolate_pr_auc from the bucket counts */
static double auc_result(const dpt_metric *m, const double *st) {
    const int nt = m->num_thresholds;
    const double *pos = st, *neg = st + nt;
    double *tp = malloc((size_t)nt * 2 * sizeof(double));
    DPT_ASSERT(tp != NULL);
    double *fp = tp + nt;
    double cp = 0.0, cn = 0.0;
    for (int i = nt - 1; i >= 0; i--) { /* reverse cumulative sums */
        cp += pos[i];
        cn += neg[i];
        tp[i] = cp;
        fp[i] = cn;
    }
    const double P = cp, N = cn; /* all positive / negative labels */
    double sum = 0.0;
    for (int i = 0; i < nt - 1; i++) {
        double fn1 = P - tp[i + 1];
        if (m->pr) { /* interpolation (Davis & Goadrich), exactly Keras's formula */
            double dtp = tp[i] - tp[i + 1];
            double p0 = tp[i] + fp[i], p1 = tp[i + 1] + fp[i + 1];
            double dp = p0 - p1;
            double slope = no_nan(dtp, fmax(dp, 0.0));
            double intercept = tp[i + 1] - slope * p1;
            double ratio = (p0 > 0.0 && p1 > 0.0) ? no_nan(p0, fmax(p1, 0.0)) : 1.0;
            sum += no_nan(slope * (dtp + intercept * log(ratio)), fmax(tp[i + 1] + fn1, 0.0));
        } else { /* ROC, trapezoids */
            double fn0 = P - tp[i];
            double r0 = no_nan(tp[i], tp[i] + fn0), r1 = no_nan(tp[i + 1], tp[i + 1] + fn1);
            double x0 = no_nan(fp[i], fp[i] + (N - fp[i]));
            double x1 = no_nan(fp[i + 1], fp[i + 1] + (N - fp[i + 1]));
            sum += (x0 - x1) * ((r0 + r1) / 2.0);
        }
    }
    free(tp);
    return sum;
}

void dpt_metrics_finalize(const dpt_metrics_spec *s, const double *state, double *values) {
    for (int i = 0; i < s->n; i++) {
        const dpt_metric *m = &s->m[i];
        const double *st = state + s->offset[i];
        switch (m->kind) {
        case DPT_METRIC_AUC:
            values[i] = auc_result(m, st);
            break;
        case DPT_METRIC_PRECISION:
        case DPT_METRIC_RECALL:
            values[i] = no_nan(st[0], st[0] + st[1]);
            break;
        case DPT_METRIC_RMSE:
            values[i] = sqrt(no_nan(st[0], st[1]));
            break;
        default:
            values[i] = no_nan(st[0], st[1]);
            break;
        }
    }
}
