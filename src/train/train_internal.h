/* Private to src/train: the trainer's state, shared by fit, resume and the tests. */
#ifndef DPT_TRAIN_INTERNAL_H
#define DPT_TRAIN_INTERNAL_H

#include <stdio.h>

#include "dptrain/checkpoint.h"
#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/data.h"
#include "dptrain/metrics.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/train.h"

enum { PROF_DATA, PROF_COMPUTE, PROF_REDUCE, PROF_UPDATE, PROF_STEPS, PROF_N };

typedef struct {
    const dpt_comm *c;
    const dpt_config *cfg;
    dpt_fit_opts opts;
    dpt_data_info info, vinfo, tinfo;
    int64_t n_train, n_val;
    int64_t lo, hi; /* this rank's training rows */
    dpt_model *model;
    dpt_optim *optim;
    dpt_gradex *gx; /* the gradient exchange; with SHM the model's gradients live in its slot */
    dpt_shard *train, *val; /* train is NULL when streaming */
    dpt_stream *stream;     /* this rank's training rows, streamed (shard above the memory limit) */
    bool streaming;         /* some rank streams: then every rank uses the local order */
    bool local_order;       /* each rank shuffles its own shard; balanced per-step counts */
    int64_t max_local;      /* most samples this rank gets in one step (one micro-batch) */
    bool repro;             /* reproducible mode: the same bits on any number of ranks */
    int64_t micro;          /* its micro-batch size */
    float **mgrad;          /* (max micro-batches a rank gets) gradient buffers, n_params each */
    int n_mgrad;
    int64_t *xacc;          /* exact sums' scratch: (n_params) int64 */
    int *xexp;              /* and (n_params / 256 + 1) block exponents */
    dpt_callbacks_state cb; /* EarlyStopping / ReduceLROnPlateau */
    double prof[PROF_N];    /* --profile: seconds in data, compute, reduce, update; steps */
    float *best;            /* (n_params) best weights for restore_best_weights, or NULL */
    bool stopped_early;     /* EarlyStopping ended the run (kept in checkpoints) */
    float *xb, *yb, *dout;  /* (max_local, x_size), (max_local, y_size), (max_local, out) */
    int64_t *rows;          /* (max_local) shard-local rows of the current step */
    int64_t epoch, global_step;
    int64_t skipped; /* batches skipped for non-finite values */
    int threads;
    struct dpt_report *report;   /* rank 0 only */
    int64_t start_step_in_epoch; /* > 0 when resuming inside an epoch */
    double resume_sums[3];       /* the resumed epoch's (loss, correct, count) so far */
    char resumed_from[4096];     /* checkpoint path when resumed, else "" */
    /* compile.metrics besides "accuracy" (which the loss's correct count gives), prepared for
     * the model's outputs; their states: this step's, this epoch's (this rank's sums until the
     * epoch ends; then summed over the ranks), the validation's. (n_mstate) each */
    dpt_metrics_spec ms;
    int64_t n_mstate;
    double *m_step, *m_epoch, *m_val;
    float *wb; /* (max_local) the step's sample weights (fit.class_weight), or NULL */
    struct dpt_run_lock *lock; /* rank 0 with a run directory: its lock (rundir.c) */
} dpt_train;

DPT_NODISCARD dpt_status dpt_train_setup(const dpt_comm *c, const dpt_config *cfg,
                                         const dpt_fit_opts *o, dpt_train *t);
DPT_NODISCARD dpt_status dpt_train_run(dpt_train *t, dpt_fit_result *res);
/* One optimizer step on global batch k of the epoch's order (step.c); s: the step's statistics
 * summed over the ranks. Collective. */
DPT_NODISCARD dpt_status dpt_train_step(dpt_train *t, const dpt_order *ord, int64_t k,
                                        dpt_step_stats *s);
/* The same in reproducible mode: micro-batches, exact sums (step.c). Collective. */
DPT_NODISCARD dpt_status dpt_train_step_reproducible(dpt_train *t, const dpt_order *ord, int64_t k,
                                                     dpt_step_stats *s);
/* resume.c: rank 0 reads the newest valid checkpoint of the run directory, every rank receives
 * its state (nothing when there is none); rank 0 writes one. Collective. */
DPT_NODISCARD dpt_status dpt_train_resume(dpt_train *t);
/* The trainer state's slots in a checkpoint (resume.c, sameness.c). */
enum {
    TS_PRESENT = 0,
    TS_LR,
    TS_ES_WAIT,
    TS_ES_HAS_BEST,
    TS_ES_BEST,
    TS_ES_BEST_EPOCH,
    TS_ES_STOPPED_EPOCH,
    TS_RL_WAIT,
    TS_RL_COOLDOWN,
    TS_RL_BEST,
    TS_STOPPED,
    TS_REPRO,   /* 1 + micro-batch size in reproducible mode, else 0 (older files: 0) */
    TS_N_TRAIN, /* the fingerprint (sameness.c): training samples, */
    TS_BATCH,   /* the global batch, */
    TS_VSPLIT,  /* validation_split, */
    TS_KINDS,   /* 1 + shuffle + 2 loss kind + 256 optimizer kind (0: an older checkpoint) */
};
/* sameness.c: this run's fingerprint into ts; whether the checkpoint's run (meta, the stored
 * config) is this one: DPT_ERR_CHECKPOINT naming the first difference, unless --allow-changes.
 * Rank 0. */
void dpt_train_fingerprint(const dpt_train *t, double *ts);
DPT_NODISCARD dpt_status dpt_train_check_same(dpt_train *t, const dpt_ckpt_meta *meta);
DPT_NODISCARD dpt_status dpt_train_checkpoint(dpt_train *t, int64_t epoch, int64_t step_in_epoch,
                                              const double sums[3]);
void dpt_train_teardown(dpt_train *t);
/* Sums of (loss, correct, count) over a shard and the metrics' state (ms's state size, may be
 * NULL when ms has none), summed over the ranks. Collective. */
DPT_NODISCARD dpt_status dpt_eval_shard(const dpt_comm *c, dpt_model *m, const dpt_loss_spec *loss,
                                        const dpt_metrics_spec *ms, const dpt_shard *s,
                                        uint32_t seed, double sums[3], double *mstate);
/* ms = cfg's metrics but "accuracy" / "acc", prepared for a model of K outputs (the error names
 * the config file). Local. */
DPT_NODISCARD dpt_status dpt_train_metrics(const dpt_config *cfg, int64_t K, dpt_metrics_spec *ms);
/* The same, reproducible mode: fixed chunks, summed exactly (no metrics there). Collective. */
DPT_NODISCARD dpt_status dpt_eval_shard_exact(const dpt_comm *c, dpt_model *m,
                                              const dpt_loss_spec *loss, const dpt_shard *s,
                                              int64_t chunk, double sums[3]);
int dpt_train_setup_threads(const dpt_comm *c);
/* The targets the data room builds for the loss and the model's outputs. */
dpt_target_spec dpt_train_targets(dpt_loss_kind loss, const dpt_model *m);
/* A quarter of the node's memory divided by the ranks on the node. Local. */
int64_t dpt_default_memory_limit(const dpt_comm *c);
DPT_NODISCARD dpt_status dpt_mkdir_p(const char *path);

/* The run directory's lock (rundir.c). Collective: rank 0 creates dir (mkdir -p) and takes
 * dir/dptrain.lock (a stale lock of a process that is gone is taken over with a warning), agreed
 * across ranks; *lock gets it on rank 0, NULL elsewhere and when dir is NULL or "" (no-op).
 * DPT_ERR_BUSY naming the holder (host, pid, Slurm job) when another job owns dir; DPT_ERR_IO when
 * dir cannot be created or written. */
typedef struct dpt_run_lock dpt_run_lock;
DPT_NODISCARD dpt_status dpt_rundir_lock(const dpt_comm *c, const char *dir, dpt_run_lock **lock);
/* Releases the lock (removes the file if it is still ours); NULL-safe, sets *lock = NULL. When st
 * is DPT_PREEMPTED, first writes dir/preempted ("launch=$DPT_LAUNCH_ID" and the message) for the
 * launch/ scripts. Local. */
void dpt_rundir_unlock(dpt_run_lock **lock, dpt_status st);

/* Preemption signals (signals.c): handlers only set a flag. Local. */
void dpt_signals_install(void);
int dpt_signals_pending(void); /* the last signal received, or 0 */
void dpt_signals_clear(void);

/* Watchdog (watchdog.c): ends the job when no step finished for `seconds` (0 = off). Local. */
void dpt_watchdog_start(double seconds, int rank, int size);
void dpt_watchdog_kick(int64_t step); /* step < 0: progress, the step unchanged */
/* From hold to release (nestable) the watchdog does not fire: a phase that is progress although
 * no step finishes (a checkpoint write, which the other ranks wait for); release also kicks. */
void dpt_watchdog_hold(void);
void dpt_watchdog_release(int64_t step);
void dpt_watchdog_stop(void);

/* Collective: compares a checksum of the parameters across ranks; DPT_ERR_INTERNAL naming the
 * ranks whose replica differs from rank 0's. */
DPT_NODISCARD dpt_status dpt_check_replicas(const dpt_comm *c, const float *params, int64_t n,
                                            int64_t step);

#endif
