/* dptrain — layers, losses, metrics and the Sequential model.
 *
 * A model owns ONE flat parameter buffer and ONE flat gradient buffer; each layer holds views into
 * them (layer i's parameters are contiguous, in Keras weight order: Dense = kernel (in, out)
 * row-major, then bias (out)). Activation buffers are sized once for the largest local batch.
 * Nothing here allocates inside forward/backward, does I/O or calls MPI. All functions are local.
 */
#ifndef DPTRAIN_NN_H
#define DPTRAIN_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/core.h"
#include "dptrain/status.h"

typedef enum {
    DPT_ACT_LINEAR = 0,
    DPT_ACT_RELU,
    DPT_ACT_SIGMOID,
    DPT_ACT_TANH,
    DPT_ACT_SOFTMAX,
    DPT_ACT_GELU,            /* Keras's default: exact, 0.5 z (1 + erf(z / sqrt 2)) */
    DPT_ACT_GELU_TANH,       /* gelu(approximate=True): the tanh form */
    DPT_ACT_ELU,             /* alpha 1 */
    DPT_ACT_SELU,            /* Klambauer's alpha and scale */
    DPT_ACT_SOFTPLUS,        /* log(1 + e^z) */
    DPT_ACT_SOFTSIGN,        /* z / (1 + |z|) */
    DPT_ACT_SWISH,           /* silu: z sigmoid(z) */
    DPT_ACT_LEAKY_RELU,      /* the function's negative_slope 0.2 (the LeakyReLU layer's is 0.3) */
    DPT_ACT_RELU6,           /* min(max(z, 0), 6) */
    DPT_ACT_HARD_SIGMOID,    /* Keras 3: relu6(z + 3) / 6 */
    DPT_ACT_HARD_SIGMOID_K2, /* Keras 2: clip(0.2 z + 0.5, 0, 1) (a keras_version 2.x config) */
    DPT_ACT_HARD_SILU,       /* hard_swish: z relu6(z + 3) / 6 */
    DPT_ACT_EXPONENTIAL,     /* e^z */
    DPT_ACT_MISH,            /* z tanh(softplus(z)) */
    DPT_ACT_LOG_SOFTMAX,     /* over each row */
    DPT_ACT_COUNT            /* number of kinds, not one */
} dpt_act;
/* Keras name -> activation; false if unknown. "hard_sigmoid" gives Keras 3's form (the config
 * parser picks DPT_ACT_HARD_SIGMOID_K2 for Keras 2 models); "swish"/"silu", "hard_silu" /
 * "hard_swish" are aliases. */
bool dpt_act_from_name(const char *name, dpt_act *out);
const char *dpt_act_name(dpt_act a);
/* The Keras activation at obj[key]: a name, Keras 3's {"class_name": "function", "config": name}
 * or {"class_name": name, "config": {}} ({"approximate": bool} for gelu); absent or null -> def.
 * hard_sigmoid is Keras 2's form when ctx->keras_major == 2. DPT_ERR_CONFIG naming ctx->path.key
 * for an unknown one, a layer object, or an argument other than gelu's approximate. */
DPT_NODISCARD dpt_status dpt_json_get_act(const json_t *obj, const char *key,
                                          const dpt_json_ctx *ctx, dpt_act def, dpt_act *out);
/* In place over (B, n) row-major: y = act(z). Softmax and log_softmax are over each row. */
void dpt_act_forward(dpt_act a, float *y, int64_t B, int64_t n);
/* True when act'(z) is not a function of the output y (gelu, swish, hard_silu, mish): backward
 * then needs the pre-activation z (dpt_act_backward_z). */
bool dpt_act_needs_z(dpt_act a);
/* For a layer that keeps only y (no workspace for z): DPT_ERR_CONFIG "<ctx>.<key>: activation
 * \"gelu\" is not supported here (its derivative needs the pre-activation)" when
 * dpt_act_needs_z(a), else DPT_OK. */
DPT_NODISCARD dpt_status dpt_act_require_y(dpt_act a, const dpt_json_ctx *ctx, const char *key);
/* dz = dy * act'(.) given the activation OUTPUT y. Only for !dpt_act_needs_z(a) (asserted).
 * dz may alias dy. (B, n). */
void dpt_act_backward(dpt_act a, const float *y, const float *dy, float *dz, int64_t B, int64_t n);
/* The same for every kind: z (B, n) is the pre-activation, read only when dpt_act_needs_z(a)
 * (may be NULL otherwise); y (B, n) the output. dz may alias dy (not z). */
void dpt_act_backward_z(dpt_act a, const float *z, const float *y, const float *dy, float *dz,
                        int64_t B, int64_t n);

/* ---- what a forward/backward pass needs to know ------------------------------------------- */
typedef struct {
    bool training;   /* dropout on, batch statistics, ... */
    uint32_t seed;   /* run seed */
    uint32_t rank;   /* MPI rank: part of the dropout key */
    uint64_t step;   /* global optimizer step (or MC-dropout pass): part of the dropout counter */
    uint32_t stream; /* 0 for training; other values for e.g. MC-dropout passes */
    bool mc_dropout; /* Monte Carlo dropout: the dropout family stays ON while every other layer
                        (batch norm, noise) runs in inference mode */
} dpt_pass;

/* Dropout keep mask and scale, for element `idx` of layer `layer_index`:
 * Philox-4x32-10 with key (seed, rank ^ (stream << 20)), counter (idx / 4, layer_index, step lo,
 * step hi), word idx % 4, unit u = top 24 bits / 2^24; kept iff u >= rate. Pure function; exposed
 * for tests. */
bool dpt_dropout_keep(const dpt_pass *p, uint32_t layer_index, uint64_t idx, float rate);

/* Several independent masks per layer (an RNN's input mask and recurrent mask, one per gate):
 * mask `mask_id` of layer `layer_index` uses counter word 1 = dpt_mask_word(layer, id) =
 * layer | id << 16, so id 0 is the layer's ordinary mask (dpt_dropout_keep) and ids 1..65535 are
 * streams of their own. Layers number fewer than 65536 (dpt_model_create refuses more). */
#define DPT_MAX_LAYERS 65535
#define DPT_MAX_MASK_ID 65535
static inline uint32_t dpt_mask_word(uint32_t layer_index, uint32_t mask_id) {
    return layer_index | (mask_id << 16);
}
bool dpt_mask_keep(const dpt_pass *p, uint32_t layer_index, uint32_t mask_id, uint64_t idx,
                   float rate);
/* out[k] = dpt_mask_keep(p, layer, id, first + k, rate) ? scale : 0 for k in [0, n): the same
 * bits, a vectorised block at a time (first must be a multiple of 4). */
void dpt_mask_fill(const dpt_pass *p, uint32_t layer_index, uint32_t mask_id, uint64_t first,
                   float rate, float scale, float *out, int64_t n);

/* ---- layers --------------------------------------------------------------------------------- */
typedef struct dpt_layer dpt_layer;

/* out (n) = the sum over every rank of rows (nv x n, row-major) of each rank's log, in a way that
 * does not depend on how the rows are spread over the ranks; collective (the trainer's). */
typedef void (*dpt_log_sum_fn)(void *ctx, const double *rows, int nv, int n, double *out);

typedef struct {
    const char *class_name; /* Keras class name, e.g. "Dense" */
    /* Optional (NULL: none, as Dropout, Activation, ...). Number of float parameters. */
    int64_t (*n_params)(const dpt_layer *l);
    /* Optional (NULL: nothing to fill). The layer's parameter view's initial values (Keras
     * initialisers). */
    void (*init_params)(dpt_layer *l, dpt_rng *rng);
    /* y = f(x). x (B, in_size), y (B, out_size). */
    void (*forward)(dpt_layer *l, const dpt_pass *p, const float *x, float *y, int64_t B);
    /* Given x, y (from forward) and dy: ACCUMULATES parameter gradients into the gradient view
     * (the model zeroes them each step) and writes dx (may be NULL for the first layer).
     * dy may be overwritten (used as scratch). */
    void (*backward)(dpt_layer *l, const dpt_pass *p, const float *x, const float *y, float *dy,
                     float *dx, int64_t B);
    /* Optional (NULL: no weights). Keras weight names and shapes, in Keras weight order, for
     * checkpoints: returns the number of weight tensors; fills names[i] ("kernel", "bias") and
     * shapes[i]. */
    int (*weights)(const dpt_layer *l, const char **names, dpt_shape *shapes, int max);
    /* Writes this layer's Keras JSON config (used by checkpoints' model_config). New reference. */
    json_t *(*to_json)(const dpt_layer *l);
    /* Optional (NULL: nothing of its own). Frees the layer's extra storage, not the struct. */
    void (*destroy)(dpt_layer *l);
    /* Optional (NULL: every parameter is trainable). How many of the layer's parameters, counted
     * from the start of its view, the optimizer may update when the layer is trainable; the rest
     * (BatchNormalization's moving statistics) live in the flat buffer, so checkpoints and the
     * broadcast carry them, but get no gradient and no optimizer or weight-decay update. Keras
     * weight order is trainable weights first, so they always form a prefix. */
    int64_t (*n_trainable)(const dpt_layer *l);
    /* Optional (NULL: no regularizer). Returns the layer's regularization penalty at the current
     * parameters (Keras: l1*sum|w| + l2*sum w^2 per regularized tensor, no 1/2 factor); when
     * `scale` != 0 and the layer is trainable, ADDS scale * d(penalty)/d(params) to the layer's
     * gradient view. */
    double (*regularize)(dpt_layer *l, float scale);
    /* true: backward honours dpt_layer.grads_overwrite (writes its whole gradient instead of
     * adding to it), so the model need not zero it first */
    bool overwrite_ok;
    /* Optional (NULL: none). Floats of workspace the layer needs for max_batch samples: the model
     * carves it from its arena once (dpt_layer.work, 64-byte aligned, not zeroed) and keeps it
     * from forward to the matching backward (an RNN's per-step gate values), so neither
     * allocates. */
    int64_t (*workspace)(const dpt_layer *l, int64_t max_batch);
    /* Optional (NULL: none). The activation at the end of the layer that a cross-entropy loss may
     * absorb (Dense, Activation: dpt_head in nn_internal.h): the model folds a last sigmoid or
     * softmax into the loss through it. */
    struct dpt_head *(*head)(struct dpt_layer *l);
    /* Optional (NULL: false). True when a training pass calls the cross-rank reducer (a
     * synchronized or moving-statistics batch norm): every rank must then run every step. */
    bool (*collective)(const struct dpt_layer *l);
    /* Optional (NULL: the layer keeps no statistics). Deferred statistics (reproducible mode):
     * defer(l, max_passes) makes training passes log their statistics instead of reducing and
     * applying them (DPT_ERR_CONFIG naming the layer when it cannot: a synchronized batch norm);
     * finish(l, sum, ctx) sums the passes' logs over every rank with `sum` and applies them once
     * (batch norm: its moving statistics from the global batch). */
    dpt_status (*defer_stats)(struct dpt_layer *l, int max_passes);
    void (*finish_stats)(struct dpt_layer *l, dpt_log_sum_fn sum, void *ctx);
    /* Optional (NULL: any values). A layer whose input is integer ids (Embedding): returns n, the
     * ids must be integers in [0, n). Such a layer must be the model's first (its input has no
     * gradient; dpt_model_create refuses it elsewhere), and the trainer has the data reader
     * check every id (dpt_model_input_ids). */
    int64_t (*input_ids)(const struct dpt_layer *l);
    /* Optional (NULL: no constraint). Applies the layer's weight constraints (kernel_constraint,
     * bias_constraint, ...) to its parameter view in place, as Keras does right after every
     * optimizer update. The model calls it only for trainable layers with has_constraint. */
    void (*constrain)(dpt_layer *l);
    /* Optional (NULL: "vars/<j>"). Where weight j lives in a Keras 3 .weights.h5, relative to
     * the layer's group /layers/<name>: a recurrent layer keeps its variables in its cell
     * ("cell/vars/0"), a Bidirectional in its two layers ("forward_layer/cell/vars/0"). */
    void (*keras3_path)(const struct dpt_layer *l, int j, char *buf, size_t n);
} dpt_layer_ops;

/* Sums buf (n doubles) in place over every rank (an MPI_Allreduce with MPI_SUM, installed by the
 * trainer; nn itself never calls MPI). Collective over the ranks that train together. */
typedef void (*dpt_reduce_fn)(void *ctx, double *buf, int n);

/* The base every layer kind embeds first. */
struct dpt_layer {
    const dpt_layer_ops *ops;
    char name[128];
    int index; /* position in the model, 0-based */
    dpt_shape in_shape, out_shape;
    int64_t in_size, out_size; /* per sample */
    float *params;             /* view into the model's flat buffer (n_params floats) or NULL */
    float *grads;              /* view into the model's flat gradient buffer, or NULL */
    int64_t param_offset;      /* offset of params in the flat buffer */
    bool trainable;
    bool has_regularizer;  /* some weight of the layer carries a regularizer (ops->regularize) */
    bool has_constraint;   /* some weight of the layer carries a constraint (ops->constrain) */
    bool has_activity_reg; /* activity_regularizer: forward sets activity_loss */
    double activity_loss;  /* the activity penalty of the last forward, summed over its samples */
    bool grads_overwrite;  /* set by the model for one backward (ops->overwrite_ok layers only):
                              the gradient view holds stale values, write it instead of adding */
    float *work;           /* ops->workspace floats carved from the model's arena, or NULL */
    dpt_reduce_fn reduce;  /* cross-rank sum (dpt_model_set_reducer), or NULL: one process */
    void *reduce_ctx;
};

/* The optional ops with their defaults. */
static inline int64_t dpt_layer_n_params(const dpt_layer *l) {
    return l->ops->n_params ? l->ops->n_params(l) : 0;
}
static inline int dpt_layer_weights(const dpt_layer *l, const char **names, dpt_shape *shapes,
                                    int max) {
    return l->ops->weights ? l->ops->weights(l, names, shapes, max) : 0;
}

/* Builds a layer from its Keras "config" object. `in` is the incoming sample shape.
 * Unknown keys are ignored; keys we do not implement that change the math (a non-null
 * kernel_regularizer, noise_shape, ...) are refused with DPT_ERR_CONFIG naming ctx->path.key.
 * On success *out is heap-allocated (free with dpt_layer_destroy). */
typedef dpt_status (*dpt_layer_create_fn)(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
/* Registry: class name -> constructor; NULL if unknown. "InputLayer" is handled by the model. */
dpt_layer_create_fn dpt_layer_lookup(const char *class_name);
/* Names of registered classes, NULL-terminated (for messages and generic tests). */
const char *const *dpt_layer_class_names(void);
void dpt_layer_destroy(dpt_layer **l);

/* ---- losses and metrics --------------------------------------------------------------------- */
typedef enum {
    DPT_LOSS_BINARY_CROSSENTROPY = 0,
    DPT_LOSS_CATEGORICAL_CROSSENTROPY,
    DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
    DPT_LOSS_MSE,
    /* the other Keras losses, each exactly as keras/src/losses/losses.py */
    DPT_LOSS_MAE,
    DPT_LOSS_MAPE,
    DPT_LOSS_MSLE,
    DPT_LOSS_HUBER,
    DPT_LOSS_LOG_COSH,
    DPT_LOSS_KL_DIVERGENCE,
    DPT_LOSS_POISSON,
    DPT_LOSS_HINGE,
    DPT_LOSS_SQUARED_HINGE,
    DPT_LOSS_CATEGORICAL_HINGE,
    DPT_LOSS_BINARY_FOCAL_CROSSENTROPY,
    DPT_LOSS_COSINE_SIMILARITY
} dpt_loss_kind;
/* Keras names, aliases ("bce", "kld", "MAE", ...) and class names ("Huber"). */
bool dpt_loss_from_name(const char *name, dpt_loss_kind *out);
const char *dpt_loss_name(dpt_loss_kind k);
/* The supported losses for messages, from the one table: the function names (classes false) or
 * Keras's class names, ", "-separated, into buf. */
void dpt_loss_names(bool classes, char *buf, size_t n); /* the Keras function name, e.g. "huber" */

/* A loss with its Keras options (a loss object's config). */
typedef struct {
    dpt_loss_kind kind;
    bool from_logits;      /* binary/categorical/sparse CE, binary focal: the output is logits */
    float label_smoothing; /* binary CE and focal: y (1 - ls) + ls / 2; categorical: + ls / K */
    float delta;           /* huber: 1.0 */
    float gamma, alpha;    /* binary focal: 2.0, 0.25 */
    bool class_balancing;  /* binary focal apply_class_balancing: false */
} dpt_loss_spec;
/* Keras's defaults for `k`. */
dpt_loss_spec dpt_loss_spec_default(dpt_loss_kind k);
/* What one target row of the loss is (how data builds it from y). */
dpt_target_kind dpt_loss_target_kind(dpt_loss_kind k);

/* Number of target floats per sample the loss expects for a model output of `out_size` units:
 * sparse CE -> 1 (the class index as a float), the others -> out_size. */
int64_t dpt_loss_target_size(dpt_loss_kind k, int64_t out_size);

/* Loss over a batch, as a SUM over samples (means are taken after the global reduction).
 *   out    (B, K): the model output. If `logits_act` is DPT_ACT_SIGMOID or DPT_ACT_SOFTMAX, `out`
 *                  holds the LOGITS of that final activation and the loss is computed from logits
 *                  exactly as Keras does when the loss follows a sigmoid/softmax output;
 *                  with DPT_ACT_LINEAR `out` holds the final values (probabilities for CE, which
 *                  are clipped to [1e-7, 1 - 1e-7] as Keras does).
 *   target (B, T): T = dpt_loss_target_size(k, K).
 *   dout   (B, K): if not NULL, d(sum of losses)/d(out).
 *   loss_sum:  += sum of per-sample losses (double).
 *   correct:   if not NULL, += number of correct predictions for Keras "accuracy" with this loss
 *              (binary: pred > 0.5 vs target > 0.5 per unit, averaged over units; categorical:
 *              argmax; sparse: argmax == index; mse: binary if K == 1 else categorical).
 * Returns DPT_ERR_DATA if a sparse target is not an integer in [0, K). */
DPT_NODISCARD dpt_status dpt_loss_compute(dpt_loss_kind k, dpt_act logits_act, const float *out,
                                          const float *target, int64_t B, int64_t K, float *dout,
                                          double *loss_sum, double *correct);
/* dpt_loss_compute for a loss with its options, any kind, and per-sample weights.
 *   spec->from_logits: `out` holds logits (then logits_act must be DPT_ACT_LINEAR: nothing is
 *                  folded; Keras's from_logits=True). Losses other than the three
 *                  cross-entropies take logits_act DPT_ACT_LINEAR.
 *   weight (B):    NULL or per-sample weights: loss_sum += w_i * loss_i and dout's row i is
 *                  scaled by w_i (Keras's sample_weight; the mean still divides by the number
 *                  of samples, as "sum_over_batch_size" does).
 *   correct:       as dpt_loss_compute; for the kinds added here Keras 3's pick by shape
 *                  (one unit: binary, several: categorical). Unweighted.
 * Losses that Keras averages over the last axis (all but categorical/sparse CE, kl_divergence,
 * categorical_hinge and cosine_similarity, which sum or reduce it) divide by K per sample. */
DPT_NODISCARD dpt_status dpt_loss_compute_spec(const dpt_loss_spec *spec, dpt_act logits_act,
                                               const float *out, const float *target,
                                               const float *weight, int64_t B, int64_t K,
                                               float *dout, double *loss_sum, double *correct);

/* ---- the BLAS underneath (blas_kernel.c) ---------------------------------------------------
 * The OpenBLAS kernel in use ("SkylakeX", "Zen", "Prescott", ...). */
const char *dpt_blas_corename(void);
/* Pure: the OPENBLAS_CORETYPE to set when `core` is one of OpenBLAS's generic kernels (Prescott,
 * Core2, Nehalem, ..., or NULL) on a CPU with AVX-512 (F, BW, VL, DQ: "SkylakeX") or AVX2 + FMA
 * ("Haswell"); NULL when the kernel is fine or nothing better exists. */
const char *dpt_blas_coretype_advice(const char *core, bool avx512, bool avx2);
/* dpt_blas_coretype_advice for this process's kernel and CPU. */
const char *dpt_blas_better_coretype(void);

/* ---- the Sequential model ------------------------------------------------------------------- */
typedef struct dpt_model dpt_model;

/* Builds the model from the Keras model JSON (any accepted form: see io/config) already
 * normalised to a list of layer objects {"class_name", "config"} plus the input shape.
 * `max_batch` sizes the activation buffers (local batch). Parameters are initialised from `seed`
 * (identical on every rank). If the model's loss will be fused with the last activation, call
 * dpt_model_set_fused_head afterwards. */
DPT_NODISCARD dpt_status dpt_model_create(const json_t *layers, const dpt_shape *input,
                                          int64_t max_batch, uint32_t seed, const dpt_json_ctx *ctx,
                                          dpt_model **out);
void dpt_model_destroy(dpt_model **m);

/* If the last layer has a sigmoid/softmax activation and the loss is (binary/categorical/sparse)
 * cross-entropy, the last activation is folded into the loss: forward then returns logits, and
 * dpt_model_head_act() says which activation to apply for predictions. Returns that activation
 * (DPT_ACT_LINEAR if nothing was fused). */
dpt_act dpt_model_set_fused_head(dpt_model *m, dpt_loss_kind loss);
/* The same for a loss with its options: with from_logits nothing is folded (the model's output
 * already is the logits Keras's loss takes), and a final sigmoid/softmax stays in the model. */
dpt_act dpt_model_set_fused_loss(dpt_model *m, const dpt_loss_spec *loss);
dpt_act dpt_model_head_act(const dpt_model *m);

int dpt_model_n_layers(const dpt_model *m);
dpt_layer *dpt_model_layer(const dpt_model *m, int i);
int64_t dpt_model_n_params(const dpt_model *m);
float *dpt_model_params(dpt_model *m); /* (n_params) flat */
float *dpt_model_grads(dpt_model *m);  /* (n_params) flat */
/* Moves the gradient buffer to `buf` (len >= n_params floats, asserted; owned by the caller and
 * outliving the binding; the trainer passes its rank's slot of a node-shared window so that
 * backward writes straight where the other ranks sum from). The current contents are copied when
 * `copy`. NULL returns to the model's own buffer. Local. */
void dpt_model_bind_grads(dpt_model *m, float *buf, int64_t len, bool copy);
/* The per-layer "gradients ready" hook: called in backward right after each layer with
 * parameters has written its gradients [off, off + len) of the flat buffer, in reverse layer
 * order, so that an exchange can start on them while earlier layers still run. NULL: none. */
typedef void (*dpt_grad_ready_fn)(void *ctx, int64_t off, int64_t len);
void dpt_model_set_grad_ready(dpt_model *m, dpt_grad_ready_fn fn, void *ctx);
/* The same for the parameters (n_params floats), copying the current values only if `copy` (the
 * trainer fills node-shared weights itself, each rank its part). The trainer binds them to the
 * node-shared weights while training when nothing but the optimizer writes them (no moving
 * statistics, no frozen layers), so the ranks of a node read one copy. Local. */
void dpt_model_bind_params(dpt_model *m, float *buf, bool copy);
const dpt_shape *dpt_model_input_shape(const dpt_model *m);
int64_t dpt_model_input_size(const dpt_model *m);
int64_t dpt_model_output_size(const dpt_model *m);
int64_t dpt_model_max_batch(const dpt_model *m);

/* Forward over B <= max_batch samples. x (B, input_size). Returns a view of the output
 * (B, output_size), valid until the next forward (logits if the head is fused). */
const float *dpt_model_forward(dpt_model *m, const dpt_pass *p, const float *x, int64_t B);
/* Zeroes the gradient buffer: lazily. The next backward writes the gradients of layers that can
 * (Dense: sgemm with beta 0) and zeroes the others' first; dpt_model_grads zeroes whatever is left
 * when no backward came (a step with no local samples). Saves a pass over the whole buffer. */
void dpt_model_zero_grads(dpt_model *m);
/* Backward after dpt_model_forward with the same arguments: dout (B, output_size) is
 * d(loss)/d(output) and may be overwritten. Accumulates into the gradient buffer. */
void dpt_model_backward(dpt_model *m, const dpt_pass *p, float *dout, int64_t B);

/* Installs the cross-rank sum that BatchNormalization needs in training (batch statistics of
 * synchronized layers, and the global-batch statistics every layer's moving averages are updated
 * with, so the moving statistics stay identical on every rank). fn NULL: a single process (the
 * default). Local; the reducer it installs is collective. */
void dpt_model_set_reducer(dpt_model *m, dpt_reduce_fn fn, void *ctx);
/* True when a training forward (and backward) calls the reducer: then EVERY rank must run
 * dpt_model_forward and dpt_model_backward with training on at every step, in the same order,
 * even with B = 0 local samples (forward/backward accept B = 0). Inference never reduces. */
bool dpt_model_is_collective(const dpt_model *m);
/* Reproducible mode: every layer that keeps statistics (batch norm) logs them over up to
 * max_passes training passes (micro-batches) instead of reducing them inside forward, and
 * dpt_model_finish_stats applies them once per step; forward is then local. DPT_ERR_CONFIG
 * naming the file and the layer when a layer cannot defer (synchronized batch norm). Local. */
DPT_NODISCARD dpt_status dpt_model_defer_stats(dpt_model *m, int max_passes, const char *file);
/* Collective: every deferring layer sums its log over the ranks with `sum` and applies it. */
void dpt_model_finish_stats(dpt_model *m, dpt_log_sum_fn sum, void *ctx);

/* Trainable parameters: those of trainable layers, minus non-trainable weights such as
 * BatchNormalization's moving statistics (Keras's "Trainable params"). */
int64_t dpt_model_n_trainable(const dpt_model *m);
/* The trainable parameters as (offset, length) pairs into the flat buffer, ascending and
 * disjoint: *seg points to n pairs (2n int64), owned by the model. Returns n. Give them to
 * dpt_optim_set_segments so that frozen layers and moving statistics are never updated. */
int dpt_model_trainable_segments(const dpt_model *m, const int64_t **seg);

/* Regularization (kernel_regularizer / bias_regularizer / gamma_regularizer / beta_regularizer):
 * returns the total penalty at the current parameters (Keras adds it once per batch to the mean
 * batch loss) and ADDS scale * d(penalty)/d(w) into the gradient buffer for trainable weights.
 * Call it after the gradient has been reduced and divided by the global batch count, on every
 * rank identically, with scale = 1. 0 (and nothing added) when no layer has a regularizer. */
double dpt_model_regularize(dpt_model *m, float scale);
/* The penalty alone (for evaluation losses, which Keras also reports with the penalty). */
double dpt_model_penalty(dpt_model *m);
bool dpt_model_has_regularizers(const dpt_model *m);

/* Token ids: input_dim when the first layer is an Embedding (every input value must then be an
 * integer in [0, input_dim): give it to the data reader as dpt_target_spec.x_ids), else 0. Local.
 */
int64_t dpt_model_input_ids(const dpt_model *m);
/* DPT_ERR_CONFIG "<file>: compile.loss: ..." when the loss needs one distribution per sample
 * (categorical / sparse categorical cross-entropy) but the output has more than one dimension per
 * sample (e.g. (None, T, units)), which would be one distribution per position. Local. */
DPT_NODISCARD dpt_status dpt_model_check_loss(const dpt_model *m, dpt_loss_kind loss,
                                              const char *file);
/* Weight constraints (kernel_constraint, bias_constraint, depthwise/pointwise_constraint):
 * projects every constrained weight of every trainable layer in place, as Keras does right after
 * each optimizer update. Call it once the updated weights are whole, on every rank identically
 * (each rank its own copy). Local. */
void dpt_model_apply_constraints(dpt_model *m);
bool dpt_model_has_constraints(const dpt_model *m);

/* Activity regularization (activity_regularizer, ActivityRegularization): the penalty of the last
 * dpt_model_forward, SUMMED over its samples (add it to the loss sum before dividing by the
 * global batch: Keras adds penalty / batch_size to the mean loss). Its gradient is already part
 * of dpt_model_backward. 0 when no layer has one. */
double dpt_model_activity_loss(const dpt_model *m);

/* Keras-like summary table into buf (layer, output shape, params; totals). Returns chars written
 * (like snprintf). */
int dpt_model_summary(const dpt_model *m, char *buf, size_t n);

#endif
