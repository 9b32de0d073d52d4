/* dptrain — Keras metrics (compile.metrics), exact over a whole epoch across ranks.
 *
 * A metric's state is a vector of doubles holding SUMS and COUNTS only (a Mean's total and count,
 * Precision's true and false positives, AUC's per-bucket positive and negative counts), never a
 * mean: the states of ranks (or of batches) add element-wise to the state of their union, so the
 * trainer sums them across ranks (one MPI_Allreduce of dpt_metrics_state_size doubles) and then
 * finalizes. The values are Keras 3.15's (keras/src/metrics/): accuracy with Keras's pick by
 * shapes, binary/categorical/sparse-categorical accuracy, top-k, mae/mse/rmse, the loss functions
 * as metrics (MeanMetricWrapper), AUC (ROC and PR, interpolation, Keras's bucketing of evenly
 * spaced thresholds), Precision and Recall. Metrics are unweighted (Keras's `metrics`, not
 * `weighted_metrics`). Pure and local: no MPI here.
 */
#ifndef DPTRAIN_METRICS_H
#define DPTRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dptrain/nn.h"
#include "dptrain/status.h"

typedef enum {
    DPT_METRIC_ACCURACY = 0, /* "accuracy" / "acc": resolved by dpt_metrics_prepare */
    DPT_METRIC_BINARY_ACCURACY,
    DPT_METRIC_CATEGORICAL_ACCURACY,
    DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY,
    DPT_METRIC_TOP_K_CATEGORICAL_ACCURACY,
    DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY,
    DPT_METRIC_MAE,
    DPT_METRIC_MSE,
    DPT_METRIC_RMSE,
    DPT_METRIC_LOSS, /* a Keras loss function as a metric: the mean of its per-sample values */
    DPT_METRIC_AUC,
    DPT_METRIC_PRECISION,
    DPT_METRIC_RECALL
} dpt_metric_kind;

#define DPT_METRIC_NAME_MAX 64
#define DPT_MAX_METRICS 16

typedef struct {
    dpt_metric_kind kind;
    char name[DPT_METRIC_NAME_MAX]; /* the key Keras logs it under ("accuracy", "auc", a
                                       configured name); "val_" is prefixed by the reporter */
    float threshold;                /* binary_accuracy, Precision, Recall: 0.5 */
    int k;                          /* top-k: 5 */
    int num_thresholds;             /* AUC: 200 */
    bool pr;                        /* AUC curve "PR" (false: "ROC") */
    bool from_logits;               /* AUC: sigmoid of the output first */
    dpt_loss_spec loss;             /* DPT_METRIC_LOSS: which loss */
} dpt_metric;

typedef struct {
    int n;
    dpt_metric m[DPT_MAX_METRICS];
    /* set by dpt_metrics_prepare: the layout of the state vector */
    int64_t offset[DPT_MAX_METRICS + 1];
} dpt_metrics_spec;

/* The metric Keras's string identifier `name` means ("accuracy", "mae", "AUC", "precision",
 * "binary_crossentropy", ... as keras.metrics.get and compile accept them) with Keras's
 * defaults, logged under `name` itself as Keras does. Also accepts the class names of metric
 * objects ("AUC", "BinaryAccuracy"); dpt_metric_default_name gives the name such an object logs
 * under when its config has none. false if unknown. Local. */
bool dpt_metric_from_name(const char *name, dpt_metric *out);
/* Keras's default `name` of a metric class's instances ("auc", "binary_accuracy", ...). */
const char *dpt_metric_default_name(const char *class_name);
/* The supported names, for messages. */
#define DPT_METRIC_NAMES                                                                           \
    "accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, "               \
    "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mae, mse, "                    \
    "root_mean_squared_error, auc, precision, recall, and the loss functions "                     \
    "binary_crossentropy, "                                                                        \
    "categorical_crossentropy, sparse_categorical_crossentropy, mape, msle, hinge, "               \
    "squared_hinge, "                                                                              \
    "categorical_hinge, kl_divergence, poisson, log_cosh_error"

/* Resolves "accuracy" as Keras 3 does from the shapes (one output unit: binary; one target value
 * per sample with several units, i.e. sparse labels: sparse categorical; otherwise categorical),
 * checks that each metric fits the targets (`T` target floats per sample for `K` outputs:
 * dpt_loss_target_size), and lays out the state vector. DPT_ERR_CONFIG naming the metric when a
 * metric cannot apply (sparse_categorical_accuracy with one-hot targets, top-k with fewer
 * than ... ). Local. */
DPT_NODISCARD dpt_status dpt_metrics_prepare(dpt_metrics_spec *s, int64_t K, int64_t T);

/* Number of doubles in the state vector (after dpt_metrics_prepare). */
int64_t dpt_metrics_state_size(const dpt_metrics_spec *s);

/* ADDS a batch's contribution to `state` (state_size doubles; zero it at the epoch's start).
 *   head_act: the model's folded head (dpt_model_head_act): when not DPT_ACT_LINEAR, `out` holds
 *             logits and the metrics see sigmoid/softmax of them, as Keras's metrics see the
 *             model's output.
 *   out (B, K), target (B, T). Local. */
void dpt_metrics_accumulate(const dpt_metrics_spec *s, dpt_act head_act, const float *out,
                            const float *target, int64_t B, int64_t K, int64_t T, double *state);

/* values[i] = metric i's result from a (summed) state. A mean over no samples is 0, as Keras's
 * divide_no_nan. Local. */
void dpt_metrics_finalize(const dpt_metrics_spec *s, const double *state, double *values);

/* Index of the metric logged as `name` (without "val_"), or -1. */
int dpt_metrics_find(const dpt_metrics_spec *s, const char *name);

#endif
