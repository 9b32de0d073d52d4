/* dptrain — the training loop: fit, evaluate, predict over a dpt_comm. Collective: every rank of
 * the communicator calls these with the same configuration. Rank 0 prints progress and writes the
 * run directory's files. Uses nn, optim, data, comm and io; holds no command-line parsing.
 */
#ifndef DPTRAIN_TRAIN_H
#define DPTRAIN_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/status.h"

/* Options that come from the command line rather than the config file. */
typedef struct {
    const char *run_dir;      /* NULL or "": no run directory (no history / checkpoints) */
    const char *config_text;  /* the config bytes, stored in checkpoints */
    int verbose;              /* 0 silent; 1 a progress bar on a terminal, else one line per epoch;
                                 2 one line per epoch always */
    bool no_allreduce;        /* benchmark only: skip the gradient exchange (each rank still
                                 updates its own part of the weights, nothing is shared) */
    dpt_reduce_mode reduce;   /* the gradient exchange: AUTO (shared memory within a node when
                                 possible), SHM or MPI (see dptrain/comm.h) */
    bool profile;             /* rank 0 prints per-step time in data, compute, allreduce, update */
    bool resume;              /* continue from the newest valid checkpoint in run_dir, if any */
    bool allow_changes;       /* resume although the model, loss, batch or data differ (warned) */
    int64_t checkpoint_every; /* steps between checkpoints; 0 = each epoch end; -1 = config's
                                 (dpt_fit_opts_default() gives the config's values) */
    int keep;                 /* ckpt-* files kept besides last.h5; -1 = config's */
    bool handle_signals;      /* install SIGTERM/SIGUSR1/SIGINT handlers (the CLI does) */
    bool skip_nonfinite;      /* skip a batch whose loss or gradient is not finite, instead of
                                 stopping (Keras TerminateOnNaN is the default: stop) */
    int64_t check_replicas;   /* compare a parameter checksum across ranks every N steps (0 off) */
    double watchdog_s;        /* end the job when no step finished for this long (0 = off) */
    const char *init_weights; /* Keras weights file (or checkpoint) to start from; NULL = init */
    int64_t memory_limit;     /* bytes a rank may hold of its shard; above it the shard is streamed
                                 (0 = a quarter of the node's memory / ranks on the node) */
    bool local_order;         /* each rank shuffles its own shard (balanced steps) instead of one
                                 global order (N ranks == 1 rank); streaming implies it */
    bool reproducible;        /* the same bits on any number of ranks (or fit.reproducible) */
    FILE *out;                /* where rank 0 prints progress (stdout) */
    bool dry_run;             /* set up only (config, data metadata and shapes against the
                                 model, the training rows' values, a checkpoint to resume) and
                                 return before the first step: nothing trained or written */
} dpt_fit_opts;

/* The defaults the command line uses (verbose 1, the config's checkpointing, a replica check every
 * 100 steps, the AUTO exchange, output to stdout, no signal handlers): a library user starts
 * from these and changes what it needs. */
dpt_fit_opts dpt_fit_opts_default(void);

/* Result of fit: final metrics (agreed on every rank). */
typedef struct {
    int epochs_run;
    double loss, accuracy, val_loss, val_accuracy; /* last epoch; NaN if not computed */
    double seconds;
    double samples_per_s;
} dpt_fit_result;

/* Trains the model described by `cfg` on cfg->data_path. Collective. */
DPT_NODISCARD dpt_status dpt_fit(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                                 dpt_fit_result *res);

/* ---- inference ---------------------------------------------------------------------------- */
typedef struct {
    dpt_config cfg; /* the model's config (from the checkpoint or --config) */
    bool has_cfg;
    char *config_text; /* owned */
    dpt_model *model;  /* owned; forward returns probabilities */
} dpt_inference;

/* Builds the model and loads its weights. `weights` is a dptrain checkpoint (its stored config is
 * used unless config_path is given; format and checksum verified) or a Keras weights file (then
 * config_path is required). data/group (may be NULL) give the input shape when the config has
 * none. Collective. */
DPT_NODISCARD dpt_status dpt_inference_load(const dpt_comm *c, const char *weights,
                                            const char *config_path, const char *data,
                                            const char *group, dpt_inference *inf);
void dpt_inference_free(dpt_inference *inf);

/* Loss and accuracy (NaN without the metric) over FILE's group (NULL: "test" if present, else
 * "train"), dropout off, rows sharded across ranks. Collective. */
DPT_NODISCARD dpt_status dpt_evaluate(const dpt_comm *c, dpt_inference *inf, const char *data,
                                      const char *group, double *loss, double *accuracy,
                                      int64_t *n);
/* dpt_evaluate with the other compile.metrics too: metrics (inf->cfg.metrics.n, may be NULL)
 * gets each metric's value in config order (NaN at the "accuracy" entries, which *accuracy has).
 * Collective. */
DPT_NODISCARD dpt_status dpt_evaluate_metrics(const dpt_comm *c, dpt_inference *inf,
                                              const char *data, const char *group, double *loss,
                                              double *accuracy, double *metrics, int64_t *n);

/* Writes predictions of FILE's group in input order to out_path (rank 0 writes): /pred (N, K)
 * with dropout off; with mc_samples K > 0, Monte Carlo dropout: /mean, /std (N, K) and /entropy
 * (N) over K passes with dropout on, spread across ranks, reproducible for `seed` whatever the
 * rank count. `y` is not needed. Collective. */
DPT_NODISCARD dpt_status dpt_predict(const dpt_comm *c, dpt_inference *inf, const char *data,
                                     const char *group, const char *out_path, int mc_samples,
                                     uint32_t seed);

/* Redraws the learning curves of a history.csv (as fit writes it) into an SVG file at svg, with
 * `title` (may be NULL) on top; *n_epochs gets the number of rows. DPT_ERR_DATA naming the CSV
 * (and the line) when it cannot be read, DPT_ERR_IO naming the SVG when it cannot be written.
 * Local. */
DPT_NODISCARD dpt_status dpt_plot_history(const char *csv, const char *svg, const char *title,
                                          int64_t *n_epochs);

#endif
