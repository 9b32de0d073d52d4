/* dptrain — weights and checkpoints in HDF5.
 *
 * Weights use Keras 2's legacy HDF5 layout (root attributes layer_names, backend, keras_version;
 * one group per layer with weight_names; <layer>/<layer>/kernel:0 (in, out), bias:0), so Keras's
 * model.load_weights() reads our files and we read Keras's. A checkpoint is such a file plus a
 * `dptrain` group: optimizer state, progress, seed, world size, config text, format version and a
 * checksum of the weights. Written by ONE rank (serial HDF5): to NAME.tmp, fsynced, renamed, the
 * directory fsynced: a reader never sees a torn file. Functions are local unless said otherwise.
 */
#ifndef DPTRAIN_CHECKPOINT_H
#define DPTRAIN_CHECKPOINT_H

#include <stdint.h>

#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/status.h"

#define DPT_CKPT_FORMAT_VERSION 1
#define DPT_CKPT_TRAINER_STATE 16

/* Writes the model's weights in Keras 2 legacy layout to `path` (atomically). */
DPT_NODISCARD dpt_status dpt_weights_save_keras(const char *path, const dpt_model *m);
/* The same weights as a Keras legacy full-model file: model_config (the model's Keras JSON, as
 * to_json() wrote it) at the root and the weights under /model_weights, so that Keras's
 * load_model(path) builds the model and load_weights(path) still reads them. model_config NULL
 * or "": dpt_weights_save_keras. */
DPT_NODISCARD dpt_status dpt_weights_save_keras_model(const char *path, const dpt_model *m,
                                                      const char *model_config);

/* Loads weights into the model, by position as Keras does (layers with weights, in order), shapes
 * checked. Accepts Keras 2 legacy files (root or /model_weights), Keras 3 legacy .h5 and Keras 3
 * `.weights.h5`. DPT_ERR_CHECKPOINT naming the file and the layer on any mismatch. */
DPT_NODISCARD dpt_status dpt_weights_load_keras(const char *path, dpt_model *m);

/* Progress saved with a checkpoint. */
typedef struct {
    int64_t epoch;         /* epochs completed before this position (0-based epoch being run) */
    int64_t step_in_epoch; /* optimizer steps done inside `epoch` */
    int64_t global_step;   /* optimizer steps done in total */
    uint32_t seed;
    int world_size;
    double trainer_state[DPT_CKPT_TRAINER_STATE]; /* opaque to io: the trainer's own state
                              (current learning rate, callback counters); zeros when absent */
    double epoch_sums[3]; /* the running epoch's (loss sum, correct, count) at step_in_epoch, so a
                             resumed epoch reports the same numbers as an uninterrupted one */
    /* The running epoch's metric state (dptrain/metrics.h), summed over the ranks, at
     * step_in_epoch, for the same reason: written as /dptrain/metric_state (float64, n) when
     * n_metric_state > 0; dpt_ckpt_read sets them to 0 / NULL (dpt_ckpt_read_metric_state
     * reads the state). */
    int64_t n_metric_state;
    const double *metric_state;
} dpt_ckpt_meta;

/* Writes DIR/ckpt-EEEEEE-SSSSSSSSS.h5 (zero-padded so that name order = time order; E = the
 * 1-based epoch in which the last step was taken: meta->epoch + 1 if meta->step_in_epoch > 0,
 * else meta->epoch; S = meta->global_step) and then replaces DIR/last.h5 (an independent copy),
 * each atomically (NAME.tmp, fsync, rename, fsync DIR); keeps the newest `keep` ckpt-* files
 * (keep = 0: only last.h5) among those up to this step (ckpt-* of a later step, left by an earlier
 * run in the directory, are kept and not counted). Creates DIR if it is missing (one level).
 * `config_text` is stored; o may be NULL (no optimizer state). DPT_ERR_IO naming the path on any
 * failure (unwritable directory, disk full); the .tmp is removed and the previous last.h5 stays
 * intact. */
DPT_NODISCARD dpt_status dpt_ckpt_write(const char *dir, const dpt_model *m, const dpt_optim *o,
                                        const dpt_ckpt_meta *meta, const char *config_text,
                                        int keep);

/* Reads a checkpoint's /dptrain/metric_state into state (n doubles) when it holds n of them;
 * otherwise (none stored, another size: the metrics changed) state is zeroed. DPT_ERR_CHECKPOINT
 * when it cannot be read. Local. */
DPT_NODISCARD dpt_status dpt_ckpt_read_metric_state(const char *path, double *state, int64_t n);

/* Reads the stored config text of a checkpoint (heap string; free()). */
DPT_NODISCARD dpt_status dpt_ckpt_read_config(const char *path, char **config_text);

/* Verifies (format version, checksum) and loads weights, optimizer state (o may be NULL) and meta
 * (may be NULL). DPT_ERR_CHECKPOINT naming the file and what is wrong. */
DPT_NODISCARD dpt_status dpt_ckpt_read(const char *path, dpt_model *m, dpt_optim *o,
                                       dpt_ckpt_meta *meta);

/* Finds the newest checkpoint in `dir` that verifies: the ckpt-* holding a later step than
 * last.h5 and written after it (replacing last.h5 failed, a full disk), newest first, then
 * last.h5, then the other ckpt-* newest first (a ckpt-* older than last.h5 is an earlier run's);
 * verifying = format version, checksum and (if m is not NULL) the architecture, read into scratch
 * memory: m is not modified. Damaged ones are skipped with a line on stderr
 * "dptrain: warning: DIR/last.h5: <why>; using DIR/ckpt-....h5". Writes its path to out
 * (DPT_PATH_MAX). DPT_ERR_CHECKPOINT if none. */
DPT_NODISCARD dpt_status dpt_ckpt_find_latest(const char *dir, const dpt_model *m, char *out,
                                              size_t out_len);

#endif
