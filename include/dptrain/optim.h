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

typedef enum {
    DPT_OPT_SGD = 0,
    DPT_OPT_ADAM,
    DPT_OPT_RMSPROP,
    DPT_OPT_ADAMW,
    DPT_OPT_NADAM,
    DPT_OPT_ADAMAX,
    DPT_OPT_ADAGRAD,
    DPT_OPT_ADADELTA,
    DPT_OPT_LION
} dpt_optim_kind;

/* Keras learning-rate schedules, functions of the optimizer's iteration count `step` (the number
 * of updates already applied: 0 for the first update), as Keras evaluates them:
 *   ExponentialDecay:  lr0 * rate^(step / decay_steps)   (floor of the exponent if staircase)
 *   CosineDecay:       without warmup: s = min(step, decay_steps),
 *                      lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha);
 *                      with warmup_target: s = min(step, decay_steps + warmup_steps); for
 *                      s < warmup_steps a linear ramp lr0 -> warmup_target, then the cosine from
 *                      warmup_target over s - warmup_steps
 *   PiecewiseConstantDecay: values[0] while step <= boundaries[0], values[i] while
 *                      boundaries[i-1] < step <= boundaries[i], values[n] after.
 *   InverseTimeDecay:  lr0 / (1 + decay_rate * p), p = step / decay_steps (floor if staircase)
 *   PolynomialDecay:   without cycle: s = min(step, decay_steps), D = decay_steps; with cycle:
 *                      s = step, D = decay_steps * (step == 0 ? 1 : ceil(step / decay_steps));
 *                      (lr0 - end_learning_rate) * (1 - s / D)^power + end_learning_rate
 *   CosineDecayRestarts: f = step / first_decay_steps (decay_steps here); t_mul == 1: i =
 *                      floor(f), f -= i; else i = floor(log(1 - f*(1 - t_mul)) / log(t_mul)),
 *                      f = (f - (1 - t_mul^i)/(1 - t_mul)) / t_mul^i; then
 *                      lr0 * ((1 - alpha) * 0.5 * m_mul^i * (1 + cos(pi * f)) + alpha) */
typedef enum {
    DPT_LR_CONSTANT = 0,
    DPT_LR_EXPONENTIAL,
    DPT_LR_COSINE,
    DPT_LR_PIECEWISE,
    DPT_LR_INVERSE_TIME,
    DPT_LR_POLYNOMIAL,
    DPT_LR_COSINE_RESTARTS
} dpt_lr_kind;
#define DPT_LR_MAX_PIECES 32
typedef struct {
    dpt_lr_kind kind;
    double initial_learning_rate;
    double decay_steps;       /* exponential, cosine, inverse time, polynomial: > 0; cosine
                                 restarts: first_decay_steps */
    double decay_rate;        /* exponential, inverse time */
    bool staircase;           /* exponential, inverse time */
    double alpha;             /* cosine, cosine restarts: floor as a fraction of lr0 (0) */
    double end_learning_rate; /* polynomial (0.0001) */
    double power;             /* polynomial (1) */
    bool cycle;               /* polynomial (false) */
    double t_mul, m_mul;      /* cosine restarts (2, 1) */
    bool has_warmup;          /* cosine: warmup_target given */
    double warmup_target;     /* cosine */
    double warmup_steps;      /* cosine (0) */
    int n_boundaries;         /* piecewise: boundaries (n), values (n + 1) */
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
    bool amsgrad;         /* Adam, AdamW: false */
    double initial_accumulator_value; /* Adagrad: 0.1 */
    /* Keras 3's gradient processing before the update (base_optimizer.py), 0 = none (Keras:
     * None); at most one of the three clips:
     *   clipvalue:       g = clip(g, -clipvalue, clipvalue) element-wise
     *   clipnorm:        each weight tensor (dpt_optim_set_tensors) separately:
     *                    g = g * clipnorm / max(||g||, clipnorm)
     *   global_clipnorm: one norm over every trainable gradient:
     *                    g = g * clipnorm * min(1 / ||g||, 1 / clipnorm) */
    double clipvalue, clipnorm, global_clipnorm;
    /* Keras 3: > 1 (Keras: >= 2; 0 = None): steps 1..N-1 of every N only add their gradient to an
     * accumulator; step N applies the mean (g + acc) / N (clipped, then weight decay, then the
     * rule) and zeroes the accumulator. The iteration count advances every step (Keras's
     * `_iterations`, which the schedule reads); bias corrections use the applied updates. */
    int gradient_accumulation_steps;
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
 * trainable segments (dpt_optim_set_segments; default: everything) are touched.
 *   Adam/AdamW amsgrad: vhat = max(vhat, v) and vhat in place of v.
 *   Nadam (Keras 3): u_t = b1*(1 - 0.5*0.96^t), u_t1 = b1*(1 - 0.5*0.96^(t+1)), the product
 *             P_t = P_{t-1}*b1*(1 - 0.5*0.96^t) (P_0 = 1, a scalar recomputed from the iteration
 *             count by dpt_optim_set_iterations); m, v as Adam; m_hat = u_t1*m/(1 - P_t*u_t1) +
 *             (1 - u_t)*g/(1 - P_t); v_hat = v/(1 - b2^t); w -= m_hat*lr/(sqrt(v_hat) + eps)
 *   Adamax:   m += (g - m)*(1-b1);  u = max(b2*u, |g|);  w -= lr*m/((1 - b1^t)*(u + eps))
 *   Adagrad:  a += g^2 (a starts at initial_accumulator_value);  w -= lr*g/sqrt(a + eps)
 *   Adadelta: a = rho*a + (1-rho)*g^2;  d = -sqrt(D + eps)*g/sqrt(a + eps);
 *             D = rho*D + (1-rho)*d^2;  w += lr*d
 *   Lion:     w -= lr*sign(b1*m + (1-b1)*g);  m = b2*m + (1-b2)*g
 * t is the number of updates applied (with gradient_accumulation_steps N: iterations / N).
 * Gradient accumulation and clipping (see the spec) come first, in Keras's order. */
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

/* True when the update needs the whole (summed, scaled) gradient on every rank: clipnorm and
 * global_clipnorm take norms over whole weight tensors. Then the trainer must call
 * dpt_optim_step_range with [lo, hi) = [0, n_params) on every rank (the MPI exchange, where every
 * rank updates everything); the norms are computed inside the step, the same on every rank. */
bool dpt_optim_needs_whole_vector(const dpt_optim *o);

/* The weight tensors (Keras's variables) as (offset, length) pairs, copied, ascending and
 * disjoint: per-variable clipnorm clips each one separately (default: one tensor spanning the
 * whole buffer). Only their trainable parts (the segments) take part. DPT_ERR_INTERNAL if the
 * pairs are out of range or not ascending. Local. */
DPT_NODISCARD dpt_status dpt_optim_set_tensors(dpt_optim *o, const int64_t *seg, int n);

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

/* For checkpoints: the iteration count (Keras's `_iterations`: every step, accumulating ones
 * included), and the state slots (Adam: 2 slots m, v; SGD with momentum: 1 slot; plain SGD: 0;
 * then "velocity_hat" with amsgrad, "gradient_accumulator" with gradient_accumulation_steps),
 * each n_params floats. Setting the iteration restores it (and Nadam's u_product from it). */
int64_t dpt_optim_iterations(const dpt_optim *o);
void dpt_optim_set_iterations(dpt_optim *o, int64_t t);
int dpt_optim_n_slots(const dpt_optim *o);
float *dpt_optim_slot(dpt_optim *o, int i); /* (n_params) */
/* Adam/AdamW "m", "v" [, "velocity_hat"]; SGD "momentum"; RMSprop "velocity" [, "momentum"]
 * [, "average_gradient"]; Nadam "momentum", "velocity"; Adamax "momentum", "norm"; Adagrad
 * "accumulator"; Adadelta "accumulated_grad", "accumulated_delta_var"; Lion "momentum"; then
 * [, "gradient_accumulator"] */
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
