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

#include "dptrain/config.h"
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
typedef struct {
    dpt_act act; /* as configured */
    bool folded; /* true: forward stops before `act` (returns logits), backward starts after it */
} dpt_head;
/* The head of l if its kind has one (Dense, Activation), else NULL. */
dpt_head *dpt_dense_head(dpt_layer *l);
dpt_head *dpt_activation_head(dpt_layer *l);

/* ---- activations: the fused kernel Dense uses ------------------------------------------------ */
/* y = act(y + b) over (B, n) row-major; b (n) may be NULL (no bias). One pass over y. */
void dpt_act_bias_forward(dpt_act a, float *y, const float *b, int64_t B, int64_t n);
/* acc (n) += sum over the B rows of rows (B, n): the bias gradient. acc must not alias rows. */
void dpt_add_rows(float *restrict acc, const float *restrict rows, int64_t B, int64_t n);

/* Tests only: true makes Dropout use its portable Philox path even where AVX2 is available. */
void dpt_dropout_force_generic(bool on);

/* ---- Keras initialisers --------------------------------------------------------------------- */
typedef enum {
    DPT_INIT_ZEROS = 0,
    DPT_INIT_ONES,
    DPT_INIT_CONSTANT,
    DPT_INIT_UNIFORM,         /* a = minval, b = maxval */
    DPT_INIT_NORMAL,          /* a = mean, b = stddev */
    DPT_INIT_TRUNC_NORMAL,    /* a = mean, b = stddev, redrawn beyond 2 stddev */
    DPT_INIT_VARIANCE_SCALING /* scale, mode, distribution */
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
 * bias (n) -> n, n). */
void dpt_init_fill(const dpt_init_spec *s, float *w, int64_t n, int64_t fan_in, int64_t fan_out,
                   dpt_rng *rng);
/* {"class_name": ..., "config": {...}} (Keras 2 legacy form). New reference. */
json_t *dpt_init_to_json(const dpt_init_spec *s);

#endif
