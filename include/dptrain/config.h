/* dptrain — the run configuration: a JSON file whose `model` is a Keras Sequential to_json()
 * (Keras 2 or 3 forms) or a path to one, plus `compile`, `fit`, `data` and `checkpoint` sections.
 *
 * Parsing is pure (no MPI): the command line reads the file on rank 0, broadcasts the bytes, and
 * every rank parses the same text and fails the same way. Every error names the file and the JSON
 * path: "examples/x.json: model.config.layers[2].config.rate: must be in [0, 1), got 1.5".
 */
#ifndef DPTRAIN_CONFIG_H
#define DPTRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dptrain/metrics.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/status.h"

#define DPT_PATH_MAX 4096

typedef struct {
    char file[DPT_PATH_MAX]; /* the config file's path, for messages */
    /* model */
    json_t *layers;        /* normalised: array of {"class_name": s, "config": o, "_path": s}
                              without the InputLayer; "_path" is the JSON path of the entry in
                              the file, e.g. "model.config.layers[2]" (or "config.layers[2]"
                              inside model_file when `model` was a path: messages about
                              layers then name model_file). Each "config" is shared with
                              model_json: read only. Owned. */
    json_t *model_json;    /* the model object as given (the parsed file when `model` was a
                              path), owned, for checkpoints */
    dpt_shape input_shape; /* from InputLayer batch_input_shape/batch_shape, or the first
                              layer's batch_input_shape / input_shape / input_dim, or the
                              build_config.input_shape / build_input_shape Keras writes */
    bool has_input_shape;  /* false: taken from the dataset */
    char model_file[DPT_PATH_MAX]; /* when `model` was a path: that file (messages name it) */
    /* compile */
    dpt_optim_spec optim;
    dpt_loss_kind loss;       /* = loss_spec.kind */
    dpt_loss_spec loss_spec;  /* the loss with its Keras options (from_logits, ...) */
    bool metric_accuracy;     /* compile.metrics holds "accuracy" / "acc" */
    dpt_metrics_spec metrics; /* compile.metrics, in order (dpt_metrics_prepare before use) */
    /* fit */
    int epochs;              /* Keras default 1 */
    int64_t batch_size;      /* GLOBAL batch; Keras default 32 */
    double validation_split; /* [0, 1), default 0 */
    bool shuffle;            /* default true */
    bool reproducible;    /* fit.reproducible: the same bits on any number of ranks (DESIGN.md) */
    int64_t micro_batch;  /* fit.micro_batch: samples per micro-batch in that mode (default 32) */
    uint32_t seed;        /* default 0 */
    double *class_weight; /* fit.class_weight: (n_class_weight) weights by class index,
                             1 for the classes it does not list; NULL: none. Owned. */
    int64_t n_class_weight;
    dpt_callbacks_spec callbacks; /* fit.callbacks: EarlyStopping, ReduceLROnPlateau (Keras
                                     {"class_name", "config"} objects; at most one of each) */
    /* data */
    char data_path[DPT_PATH_MAX]; /* HDF5 file; relative paths are relative to the current dir */
    char train_group[256];        /* default "train" */
    char validation_group[256];   /* "" = none (use validation_split) */
    char test_group[256];         /* "" = none */
    /* checkpoint */
    int64_t checkpoint_every; /* steps; 0 = at the end of each epoch only */
    int keep;                 /* checkpoints kept besides last.h5; default 3 */
} dpt_config;

/* Parses config text. `file` is used in messages (and to resolve a relative `model` path and
 * relative data paths: relative to the current directory, like every path on the command line).
 * On failure returns DPT_ERR_CONFIG (JSON syntax errors give line and column) and *out is
 * untouched. On success *out owns its json references: call dpt_config_deinit. Local. */
DPT_NODISCARD dpt_status dpt_config_parse(const char *text, size_t len, const char *file,
                                          dpt_config *out);
void dpt_config_deinit(dpt_config *c);

/* Reads a whole file into a NUL-terminated heap buffer (free with free()). DPT_ERR_CONFIG naming
 * the file if it cannot be read; `what` is the category to report (DPT_ERR_CONFIG, ...). Local. */
DPT_NODISCARD dpt_status dpt_read_file(const char *path, dpt_status what, char **text, size_t *len);

#endif
