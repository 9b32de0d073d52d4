/* dptrain — optimizers over the flat parameter buffer, with Keras's exact update rules.
 *
 * State (momentum / Adam moments) lives in flat buffers of n_params floats allocated at create;
 * dpt_optim_step never allocates. All functions are local. The same bytes in give the same bytes
 * out on every rank, so replicas stay bit-identical.
 */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "dptrain/status.h"

typedef enum { DPT_OPT_SGD = 0, DPT_OPT_ADAM, DPT_OPT_RMSPROP, DPT_OPT_ADAMW } dpt_optim_kind;

/* Keras learning-rate schedules, functions of the optimizer's iteration count `step` (the number
 * of updates already applied: 0 for the first update), as Keras evaluates them:
 *   ExponentialDecay:  lr0 * rate^(step / decay_steps)   (floor of the exponent if staircase)
 *   CosineDecay:       without warmup: s = min(step, decay_steps),
 *                      lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha);
 *                      with warmup_target: s = min(step, decay_steps + warmup_steps); for
 *                      s < warmup_steps a linear ramp lr0 -> warmup_target, then the cosine from
 *                      warmup_target over s - warmup_steps
 *   PiecewiseConstantDecay: values[0] while step <= boundaries[0], values[i] while
 *                      boundaries[i-1] < step <= boundaries[i], values[n] after. */
typedef enum {
    DPT_LR_CONSTANT = 0,
    DPT_LR_EXPONENTIAL,
    DPT_LR_COSINE,
    DPT_LR_PIECEWISE
} dpt_lr_kind;
#define DPT_LR_MAX_PIECES 32
typedef struct {
    dpt_lr_kind kind;
    double initial_learning_rate;
    double decay_steps;   /* exponential, cosine: > 0 */
    double decay_rate;    /* exponential */
    bool staircase;       /* exponential */
    double alpha;         /* cosine: floor as a fraction of lr0 (0) */
    bool has_warmup;      /* cosine: warmup_target given */
    double warmup_target; /* cosine */
    double warmup_steps;  /* cosine (0) */
    int n_boundaries;     /* piecewise: boundaries (n), values (n + 1) */
    double boundaries[DPT_LR_MAX_PIECES];
    double values[DPT_LR_MAX_PIECES + 1];
} dpt_lr_schedule;
/* The schedule's learning rate at `step` (DPT_LR_CONSTANT: NaN, use the spec's). Pure. */
double dpt_lr_schedule_at(const dpt_lr_schedule *s, int64_t step);

typedef struct {
    dpt_optim_kind kind;
    double learning_rate; /* SGD 0.01, Adam 0.001, RMSprop 0.001, AdamW 0.001; ignored (the
                             schedule's value) when schedule.kind != DPT_LR_CONSTANT */
    double momentum;      /* SGD, RMSprop: 0 */
    bool nesterov;        /* SGD: false */
    double beta_1;        /* Adam 0.9 */
    double beta_2;        /* Adam 0.999 */
    double epsilon;       /* Adam, RMSprop 1e-7 */
    double rho;           /* RMSprop 0.9 */
    bool centered;        /* RMSprop: false */
    double weight_decay;  /* decoupled, every kind (Keras 3): w -= w * weight_decay * lr before
                             the update; AdamW 0.004, the others 0 (Keras: None) */
    dpt_lr_schedule schedule;
} dpt_optim_spec;

/* Keras defaults for `kind`. */
dpt_optim_spec dpt_optim_defaults(dpt_optim_kind kind);

typedef struct dpt_optim dpt_optim;

DPT_NODISCARD dpt_status dpt_optim_create(const dpt_optim_spec *spec, int64_t n_params,
                                          dpt_optim **out);
void dpt_optim_destroy(dpt_optim **o);

/* One update: params (n) -= f(grads (n)); increments the iteration count first (t = 1 on the
 * first call), as Keras does. lr is the schedule's value at t - 1 (Keras's `iterations` before
 * the update) or the constant learning rate.
 *   weight decay (every kind, if > 0; Keras 3 / AdamW, decoupled, BEFORE the update):
 *             w -= w*wd*lr
 *   SGD:      v = momentum*v - lr*g;  w += nesterov ? momentum*v - lr*g : v   (v only if
 * momentum>0) Adam, AdamW: m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2; lr_t =
 * lr*sqrt(1-b2^t)/(1-b1^t);  w -= lr_t*m/(sqrt(v)+eps)   (eps OUTSIDE the bias correction, Keras's
 * convention, unlike PyTorch) RMSprop:  v = rho*v + (1-rho)*g^2;  centered: a = rho*a + (1-rho)*g,
 * d = v - a^2 + eps, else d = v + eps;  inc = lr*g/sqrt(d);  momentum > 0: m = momentum*m + inc, w
 * -= m; else w -= inc   (eps INSIDE the square root, as Keras and TensorFlow's kernel) Only the
 * trainable segments (dpt_optim_set_segments; default: everything) are touched. */
void dpt_optim_step(dpt_optim *o, float *params, const float *grads);
/* The same update restricted to [lo, hi) of the flat buffer (and the trainable segments), with
 * the gradient read as grads[i] * gscale (the trainer's 1/batch, folded into the update instead of
 * a pass of its own; x * 1.0f == x, and x * s here is the same float product as a separate
 * scaling pass, so the bytes are those of dpt_optim_step on pre-scaled gradients). The state
 * outside [lo, hi) is left alone; the iteration count advances as in dpt_optim_step. Used when
 * each rank updates only its own part of the weights (then an allgather of the weights).
 * Returns true when an updated weight is NaN or infinite (a non-finite gradient always makes one):
 * the check the trainer needs, in the same pass. */
bool dpt_optim_step_range(dpt_optim *o, float *params, const float *grads, int64_t lo, int64_t hi,
                          float gscale);

/* Restricts every update (weight decay included) to the given (offset, length) pairs, copied:
 * pass dpt_model_trainable_segments so that frozen layers and BatchNormalization's moving
 * statistics are never changed. n = 0 means nothing is trainable. DPT_ERR_INTERNAL if a segment
 * leaves [0, n_params) or the pairs are not ascending and disjoint. Local. */
DPT_NODISCARD dpt_status dpt_optim_set_segments(dpt_optim *o, const int64_t *seg, int n);

/* The learning rate the next step will use (the schedule at the current iteration count). */
double dpt_optim_learning_rate(const dpt_optim *o);
/* Sets the (constant) learning rate, as Keras's `optimizer.learning_rate = x` (used by
 * ReduceLROnPlateau; checkpoints store it in the spec). DPT_ERR_CONFIG when the optimizer has a
 * schedule (Keras raises a TypeError there too) or lr is not > 0. Local. */
DPT_NODISCARD dpt_status dpt_optim_set_learning_rate(dpt_optim *o, double lr);

/* For checkpoints: the iteration count, and the state slots (Adam: 2 slots m, v; SGD with
 * momentum: 1 slot; plain SGD: 0), each n_params floats. Setting the iteration restores it. */
int64_t dpt_optim_iterations(const dpt_optim *o);
void dpt_optim_set_iterations(dpt_optim *o, int64_t t);
int dpt_optim_n_slots(const dpt_optim *o);
float *dpt_optim_slot(dpt_optim *o, int i); /* (n_params) */
/* Adam/AdamW "m", "v"; SGD "momentum"; RMSprop "velocity" [, "momentum"][, "average_gradient"] */
const char *dpt_optim_slot_name(const dpt_optim *o, int i);
const dpt_optim_spec *dpt_optim_get_spec(const dpt_optim *o);

/* ---- callbacks: EarlyStopping and ReduceLROnPlateau as pure functions -------------------------
 * Keras 3 semantics (keras/src/callbacks/early_stopping.py, reduce_lr_on_plateau.py). The trainer
 * calls dpt_callbacks_on_epoch_end after each epoch's logs are known, on every rank with the same
 * (reduced) values, and acts on the result; dpt_callbacks_on_train_end says whether to restore the
 * saved best weights. The state is a plain struct (checkpoint it field by field to resume). */
typedef enum {
    DPT_MON_LOSS = 0,
    DPT_MON_ACCURACY,
    DPT_MON_VAL_LOSS,
    DPT_MON_VAL_ACCURACY,
    /* the other compile.metrics, in config order without "accuracy" (dptrain/metrics.h): metric
     * i is DPT_MON_METRIC + 2i, its val_ form DPT_MON_METRIC + 2i + 1 (the config maps their
     * names; dpt_monitor_from_name knows the four above only) */
    DPT_MON_METRIC,
    DPT_MON_N = DPT_MON_METRIC + 2 * 16
} dpt_monitor;
/* "loss", "accuracy"/"acc", "val_loss", "val_accuracy"/"val_acc" -> monitor; false if unknown. */
bool dpt_monitor_from_name(const char *name, dpt_monitor *out);
const char *dpt_monitor_name(dpt_monitor m);

typedef struct {
    double v[DPT_MON_N];
    bool have[DPT_MON_N]; /* false: not computed this epoch (no validation data, no metric) */
} dpt_epoch_logs;

typedef struct {
    bool enabled;
    dpt_monitor monitor; /* val_loss */
    double min_delta;    /* 0; its absolute value is used */
    int patience;        /* 0 */
    int mode;            /* +1 max, -1 min (auto: max for accuracies, min for losses) */
    bool has_baseline;   /* baseline: null */
    double baseline;
    bool restore_best_weights; /* false */
    int start_from_epoch;      /* 0 */
} dpt_early_stopping_spec;

typedef struct {
    bool enabled;
    dpt_monitor monitor; /* val_loss */
    double factor;       /* 0.1, must be < 1 */
    int patience;        /* 10 */
    int mode;            /* +1 max, -1 min */
    double min_delta;    /* 1e-4 */
    int cooldown;        /* 0 */
    double min_lr;       /* 0 */
} dpt_reduce_lr_spec;

typedef struct {
    dpt_early_stopping_spec early_stopping;
    dpt_reduce_lr_spec reduce_lr;
} dpt_callbacks_spec;

typedef struct {
    dpt_callbacks_spec spec;
    /* EarlyStopping */
    int es_wait;
    bool es_has_best; /* Keras: best is None until the first value */
    double es_best;
    int es_best_epoch;
    bool es_saved; /* best weights were saved at least once */
    int es_stopped_epoch;
    /* ReduceLROnPlateau */
    int rl_wait, rl_cooldown_counter;
    double rl_best;
} dpt_callbacks_state;

typedef struct {
    bool stop;      /* EarlyStopping: end training after this epoch */
    bool save_best; /* EarlyStopping with restore_best_weights: copy the current parameters
                       (the whole flat buffer, moving statistics included) as the best ones */
    bool set_lr;    /* ReduceLROnPlateau: dpt_optim_set_learning_rate(o, new_lr) */
    double new_lr;
} dpt_callback_actions;

/* Keras's on_train_begin. Local, pure. */
void dpt_callbacks_begin(dpt_callbacks_state *s, const dpt_callbacks_spec *spec);
/* Keras's on_epoch_end for epoch (0-based) with its logs; current_lr is the optimizer's learning
 * rate now (dpt_optim_learning_rate). Fills *a. Local, pure. */
void dpt_callbacks_on_epoch_end(dpt_callbacks_state *s, int epoch, const dpt_epoch_logs *logs,
                                double current_lr, dpt_callback_actions *a);
/* Keras 3's on_train_end: true when the saved best weights must be restored (restore_best_weights
 * and some were saved), whether or not training stopped early. */
bool dpt_callbacks_on_train_end(const dpt_callbacks_state *s);

#endif
