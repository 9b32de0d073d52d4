/* Private to src/nn: the layer constructors behind the registry, the pieces every layer kind
 * shares (base config keys, Keras initialisers, the fused bias + activation kernel) and the hook
 * the model uses to fold a final sigmoid/softmax into the loss. Nothing outside src/nn includes
 * this header; the public contract is include/dptrain/nn.h.
 */
#ifndef DPT_NN_INTERNAL_H
#define DPT_NN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dptrain/core.h"
#include "dptrain/nn.h"
#include "dptrain/status.h"

/* ---- constructors (one file each), all of type dpt_layer_create_fn ------------------------- */
DPT_NODISCARD dpt_status dpt_dense_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_dropout_create(const json_t *config, const dpt_json_ctx *ctx,
                                            const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_activation_create(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_flatten_create(const json_t *config, const dpt_json_ctx *ctx,
                                            const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_reshape_create(const json_t *config, const dpt_json_ctx *ctx,
                                            const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_conv2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                           const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_maxpool2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_avgpool2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gap2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_batchnorm_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_spatial_dropout1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                      const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_spatial_dropout2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                      const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gaussian_dropout_create(const json_t *config, const dpt_json_ctx *ctx,
                                                     const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_alpha_dropout_create(const json_t *config, const dpt_json_ctx *ctx,
                                                  const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gaussian_noise_create(const json_t *config, const dpt_json_ctx *ctx,
                                                   const dpt_shape *in, dpt_layer **out);
/* act_layers.c: ReLU, LeakyReLU, PReLU, ELU, Softmax; layernorm.c; rescaling.c: Rescaling and
 * Normalization */
DPT_NODISCARD dpt_status dpt_relu_create(const json_t *config, const dpt_json_ctx *ctx,
                                         const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_leaky_relu_create(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_prelu_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_elu_create(const json_t *config, const dpt_json_ctx *ctx,
                                        const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_softmax_create(const json_t *config, const dpt_json_ctx *ctx,
                                            const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_layernorm_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_rescaling_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_normalization_create(const json_t *config, const dpt_json_ctx *ctx,
                                                  const dpt_shape *in, dpt_layer **out);
/* config[key] names the last axis: absent, null, -1, in->rank, or a 1-element list of one of
 * these; else DPT_ERR_CONFIG naming ctx->path.key (layernorm.c). */
DPT_NODISCARD dpt_status dpt_json_check_last_axis(const json_t *config, const char *key,
                                                  const dpt_json_ctx *ctx, const dpt_shape *in);
DPT_NODISCARD dpt_status dpt_zero_padding2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                   const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_cropping2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_upsampling2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                 const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_depthwise_conv2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                     const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_separable_conv2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                                     const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_activity_regularization_create(const json_t *config,
                                                            const dpt_json_ctx *ctx,
                                                            const dpt_shape *in, dpt_layer **out);

/* data_format "channels_first" (chfirst.c): true when config asks for it on a 2-D layer kind that
 * the wrapper serves; dpt_chfirst_create then builds that kind (`create`) channels_last on the
 * transposed shape and wraps it with transposes at the boundary (in (C, H, W)). */
bool dpt_chfirst_wants(const char *class_name, const json_t *config);
DPT_NODISCARD dpt_status dpt_chfirst_create(dpt_layer_create_fn create, const json_t *config,
                                            const dpt_json_ctx *ctx, const dpt_shape *in,
                                            dpt_layer **out);
DPT_NODISCARD dpt_status dpt_simple_rnn_create(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_lstm_create(const json_t *config, const dpt_json_ctx *ctx,
                                         const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gru_create(const json_t *config, const dpt_json_ctx *ctx,
                                        const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_bidirectional_create(const json_t *config, const dpt_json_ctx *ctx,
                                                  const dpt_shape *in, dpt_layer **out);

/* ---- sequence layers (conv1d.c, pool1d.c, embedding.c) ------------------------------------ */
DPT_NODISCARD dpt_status dpt_conv1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                           const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_maxpool1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_avgpool1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gap1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gmp1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_gmp2d_create(const json_t *config, const dpt_json_ctx *ctx,
                                          const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_embedding_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
/* seq_shape.c: layers that move whole time steps */
DPT_NODISCARD dpt_status dpt_zeropad1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                              const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_crop1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                           const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_upsample1d_create(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_layer **out);
DPT_NODISCARD dpt_status dpt_repeat_vector_create(const json_t *config, const dpt_json_ctx *ctx,
                                                  const dpt_shape *in, dpt_layer **out);
/* obj[key] as Keras writes a 1-tuple: an integer n or a list of 1 integer, in [lo, INT_MAX].
 * Absent or null -> def and *given false (given may be NULL). */
DPT_NODISCARD dpt_status dpt_json_get_tuple1(const json_t *obj, const char *key,
                                             const dpt_json_ctx *ctx, int64_t def, int64_t lo,
                                             int64_t *out, bool *given);

/* ---- masks and noise for the dropout family (all from dpt_dropout_keep's Philox stream) ------ */
/* Whether the dropout family (Dropout, SpatialDropout, GaussianDropout, AlphaDropout) is on:
 * in training, and in Monte Carlo dropout passes (GaussianNoise and batch norm are not). */
static inline bool dpt_dropout_on(const dpt_pass *p) { return p->training || p->mc_dropout; }

/* Dropout's noise_shape: the mask has shape noise (batch first), each dim either the input's or
 * 1 (broadcast). Parsed from a Keras list ([null, 1, 64]); *has false when absent or null, or
 * when no dimension broadcasts (then it is the plain element-wise mask). */
typedef struct {
    bool has;
    bool batch_bcast;         /* noise_shape[0] == 1: one mask for every sample */
    int rank;                 /* sample rank */
    bool bcast[DPT_MAX_RANK]; /* per sample dimension: broadcast (1) */
    json_t *json;             /* the list as given (owned), for to_json */
} dpt_noise_shape;
DPT_NODISCARD dpt_status dpt_noise_shape_parse(const json_t *config, const dpt_json_ctx *ctx,
                                               const dpt_shape *in, dpt_noise_shape *out);
/* Mask index of element k of sample b (k in [0, prod(in dims))): the position of its mask entry in
 * the row-major (B, noise dims) mask. */
int64_t dpt_noise_shape_index(const dpt_noise_shape *ns, const dpt_shape *in, int64_t b, int64_t k);

/* True when the mask varies only along the last (channel) axis within a sample. */
bool dpt_noise_shape_chan_only(const dpt_noise_shape *ns);
/* The dropout family's masked map over in, out (B, prod(in_shape)) (may alias): element k of
 * sample b is kept iff dpt_dropout_keep(p, layer_index, mask index, rate) — mask index b * n + k,
 * or dpt_noise_shape_index when ns->has — and becomes in * keep_mul + keep_add, else drop_add.
 * chan: (last dim) scratch, needed when dpt_noise_shape_chan_only(ns). */
void dpt_mask_apply(const dpt_pass *p, uint32_t layer_index, const dpt_noise_shape *ns,
                    const dpt_shape *in_shape, float rate, float keep_mul, float keep_add,
                    float drop_add, float *chan, const float *in, float *out, int64_t B);

/* Standard normal number for element idx of layer layer_index: Box-Muller on the Philox block
 * (idx / 4, layer_index, step lo, step hi) with dpt_dropout_keep's key; words (0, 1) give
 * elements 4q, 4q+1 (cos, sin), words (2, 3) give 4q+2, 4q+3. Pure function. */
float dpt_noise_normal(const dpt_pass *p, uint32_t layer_index, uint64_t idx);
/* out[k] = normal(first + k) for k in [0, n): the same numbers, a block at a time. */
void dpt_noise_fill_normal(const dpt_pass *p, uint32_t layer_index, uint64_t first, float *out,
                           int64_t n);

/* ---- 2-D geometry shared by Conv2D and the pooling layers (conv2d.c) ------------------------- */
/* obj[key] as Keras writes a 2-tuple: an integer n (-> (n, n)) or a list of 2 integers >= lo.
 * Absent or null -> (def0, def1) and *given false (given may be NULL). */
DPT_NODISCARD dpt_status dpt_json_get_pair(const json_t *obj, const char *key,
                                           const dpt_json_ctx *ctx, int64_t def0, int64_t def1,
                                           int64_t lo, int64_t out[2], bool *given);
/* padding "valid" / "same" (any case, as Keras lowercases it) -> *same. */
DPT_NODISCARD dpt_status dpt_json_get_padding(const json_t *obj, const dpt_json_ctx *ctx,
                                              bool *same);
/* data_format: absent, null or "channels_last"; anything else is refused. */
DPT_NODISCARD dpt_status dpt_json_check_channels_last(const json_t *obj, const dpt_json_ctx *ctx);
/* One spatial dimension as TensorFlow computes it: valid -> out = (in - k) / s + 1, pad 0
 * (DPT_ERR_CONFIG when in < k); same -> out = ceil(in / s), total padding
 * max((out - 1) s + k - in, 0) of which pad_lo = total / 2 before (the extra one after). */
DPT_NODISCARD dpt_status dpt_conv_out_dim(int64_t in, int64_t k, int64_t s, bool same,
                                          const dpt_json_ctx *ctx, const char *what, int64_t *out,
                                          int64_t *pad_lo);

/* ---- regularizers (regularizer.c) ----------------------------------------------------------- */
typedef enum { DPT_REG_NONE = 0, DPT_REG_L1, DPT_REG_L2, DPT_REG_L1L2 } dpt_reg_kind;
typedef struct {
    dpt_reg_kind kind;
    double l1, l2; /* penalty = l1 * sum|w| + l2 * sum w^2 (Keras: no 1/2 factor) */
} dpt_regularizer;
/* Parses obj[key]: absent/null -> none; "l1", "l2", "l1_l2" (Keras 2's function: 0.01 each),
 * {"class_name": "L1" | "L2" | "L1L2", "config": {...}} with or without Keras 3's module and
 * registered_name. DPT_ERR_CONFIG naming ctx->path.key for unknown names, keys or bad values. */
DPT_NODISCARD dpt_status dpt_regularizer_parse(const json_t *obj, const char *key,
                                               const dpt_json_ctx *ctx, dpt_regularizer *out);
/* Keras 2 legacy form {"class_name", "config"}, or JSON null when none. New reference. */
json_t *dpt_regularizer_to_json(const dpt_regularizer *r);
/* Penalty of w (n); if g is not NULL, g (n) += scale * d(penalty)/dw (L1: l1 * sign(w), sign(0) =
 * 0 as TensorFlow's). */
double dpt_regularizer_apply(const dpt_regularizer *r, const float *w, float *g, int64_t n,
                             float scale);

/* ---- weight constraints (constraint.c) --------------------------------------------------------
 */
typedef enum {
    DPT_CON_NONE = 0,
    DPT_CON_MAX_NORM,
    DPT_CON_NON_NEG,
    DPT_CON_UNIT_NORM,
    DPT_CON_MIN_MAX_NORM
} dpt_con_kind;
typedef struct {
    dpt_con_kind kind;
    double min_value, max_value, rate; /* MaxNorm: max_value; MinMaxNorm: all three */
    int n_axis;                        /* the norm's axes as given (negative: from the end) */
    int axis[DPT_MAX_RANK];
    bool axis_list;       /* given as a list (to_json writes it back the same way) */
    unsigned reduce_mask; /* bit a: axis a is summed over (dpt_constraint_check) */
} dpt_constraint;
/* Parses obj[key]: absent/null -> none; a name ("max_norm", "MaxNorm", Keras 2's "maxnorm", ...)
 * or {"class_name", "config"} with or without Keras 3's module / registered_name.
 * DPT_ERR_CONFIG naming ctx->path.key for unknown classes, keys or bad values. */
DPT_NODISCARD dpt_status dpt_constraint_parse(const json_t *obj, const char *key,
                                              const dpt_json_ctx *ctx, dpt_constraint *out);
/* Resolves c's axes for a weight of shape s (DPT_ERR_CONFIG naming ctx->path.key when an axis is
 * out of range or repeated). Call once the layer knows the weight's shape. */
DPT_NODISCARD dpt_status dpt_constraint_check(dpt_constraint *c, const dpt_shape *s,
                                              const char *key, const dpt_json_ctx *ctx);
/* Keras 2 legacy form {"class_name", "config"}, or JSON null when none. New reference. */
json_t *dpt_constraint_to_json(const dpt_constraint *c);
/* w (shape s, row-major) = c(w) in place, Keras's formula (see constraint.c). Allocates nothing. */
void dpt_constraint_apply(const dpt_constraint *c, float *w, const dpt_shape *s);

/* ---- activity regularization (actreg.c) ------------------------------------------------------ */
/* Keras 3 adds activity_regularizer(y) / batch_size to the loss (Layer.__call__). The trainer's
 * loss is a sum over samples divided by the global batch, so a layer adds the plain penalty of its
 * local output y (B, n) to dpt_layer.activity_loss (forward, training or not) and, in backward,
 * its gradient l1 * sign(y) + 2 * l2 * y into dy. */
double dpt_actreg_forward(const dpt_regularizer *r, const float *y, int64_t n);
void dpt_actreg_backward(const dpt_regularizer *r, const float *y, float *dy, int64_t n);

/* ---- the base every kind fills in the same way ---------------------------------------------- */

/* Reads the keys every Keras layer has (name, trainable, dtype: float32 only) into l, sets ops,
 * in_shape/in_size and out_shape = in_shape (the kind overwrites it). Name "" when absent (the
 * model assigns Keras-style defaults). DPT_ERR_CONFIG naming ctx->path.key on a bad value. */
DPT_NODISCARD dpt_status dpt_layer_base_init(dpt_layer *l, const dpt_layer_ops *ops,
                                             const json_t *config, const dpt_json_ctx *ctx,
                                             const dpt_shape *in);
/* {"name", "trainable", "dtype": "float32"}: the start of every kind's to_json. New reference. */
json_t *dpt_layer_base_json(const dpt_layer *l);
/* "(None, 28, 28)" for a sample shape, into buf. */
void dpt_shape_format(const dpt_shape *s, bool with_batch, char *buf, size_t n);

/* A layer that ends in an activation the loss may absorb (Dense, Activation). */
typedef struct dpt_head {
    dpt_act act; /* as configured */
    bool folded; /* true: forward stops before `act` (returns logits), backward starts after it */
} dpt_head;

/* ---- activations: the fused kernel Dense uses ------------------------------------------------ */
/* y = act(y + b) over (B, n) row-major; b (n) may be NULL (no bias). One pass over y. */
void dpt_act_bias_forward(dpt_act a, float *y, const float *b, int64_t B, int64_t n);
/* The same, and when dpt_act_needs_z(a) and z is not NULL also z (B, n) = y + b, the
 * pre-activation dpt_act_backward_z needs (a layer keeps it in its workspace). */
void dpt_act_bias_forward_z(dpt_act a, float *y, const float *b, float *z, int64_t B, int64_t n);
/* The activation as Keras serialises it in a layer config: its name, or gelu's tanh form as
 * {"class_name": "gelu", "config": {"approximate": true}}. New reference. */
json_t *dpt_act_to_json(dpt_act a);
/* acc (n) += sum over the B rows of rows (B, n): the bias gradient. acc must not alias rows. */
void dpt_add_rows(float *restrict acc, const float *restrict rows, int64_t B, int64_t n);

/* Tests only: true makes Dropout use its portable Philox path even where AVX2 is available. */
void dpt_dropout_force_generic(bool on);

/* ---- Keras initialisers --------------------------------------------------------------------- */
typedef enum {
    DPT_INIT_ZEROS = 0,
    DPT_INIT_ONES,
    DPT_INIT_CONSTANT,
    DPT_INIT_UNIFORM,          /* a = minval, b = maxval */
    DPT_INIT_NORMAL,           /* a = mean, b = stddev */
    DPT_INIT_TRUNC_NORMAL,     /* a = mean, b = stddev, redrawn beyond 2 stddev */
    DPT_INIT_VARIANCE_SCALING, /* scale, mode, distribution */
    DPT_INIT_ORTHOGONAL        /* a = gain: Keras's Orthogonal (QR of a normal matrix) */
} dpt_init_kind;

typedef enum { DPT_FAN_IN = 0, DPT_FAN_OUT, DPT_FAN_AVG } dpt_fan_mode;
typedef enum { DPT_DIST_UNIFORM = 0, DPT_DIST_TRUNCATED_NORMAL, DPT_DIST_NORMAL } dpt_init_dist;

typedef struct {
    dpt_init_kind kind;
    double a, b;  /* see dpt_init_kind; constant: a = value */
    double scale; /* variance scaling */
    dpt_fan_mode mode;
    dpt_init_dist dist;
} dpt_init_spec;

dpt_init_spec dpt_init_glorot_uniform(void);
dpt_init_spec dpt_init_zeros(void);
/* Parses the initializer at obj[key] (string, {"class_name", "config"} or Keras 3's
 * {"module", "class_name", "config", "registered_name"}); absent or null -> def.
 * DPT_ERR_CONFIG naming ctx->path.key (or .key.config.<field>) for unknown names and bad values. */
DPT_NODISCARD dpt_status dpt_init_parse(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                                        dpt_init_spec def, dpt_init_spec *out);
/* Fills w (n) for a tensor with the given fans (Keras compute_fans: kernel (in, out) -> in, out;
 * bias (n) -> n, n). Orthogonal reads (fan_in, fan_out) as the matrix's (rows, cols). */
void dpt_init_fill(const dpt_init_spec *s, float *w, int64_t n, int64_t fan_in, int64_t fan_out,
                   dpt_rng *rng);
/* {"class_name": ..., "config": {...}} (Keras 2 legacy form). New reference. */
json_t *dpt_init_to_json(const dpt_init_spec *s);

#endif
