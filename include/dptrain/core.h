/* dptrain — small core services: checked allocation, always-on assertions, logging rank prefix,
 * shape arithmetic that cannot overflow, and the Philox-4x32-10 counter-based generator.
 * Knows nothing of MPI or HDF5 (the abort hook is installed by the comm room).
 */
#ifndef DPTRAIN_CORE_H
#define DPTRAIN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/status.h"

/* ---- assertions that stay on in release builds -------------------------------------------- */

/* Called by DPT_ASSERT after printing; the comm room installs one that calls MPI_Abort.
 * Default: abort(). */
typedef void (*dpt_abort_fn)(int code);
void dpt_set_abort_hook(dpt_abort_fn fn);
/* Sets the "[rank r/N]" prefix that assertion and log lines carry. Local. */
void dpt_set_log_rank(int rank, int size);
void dpt_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));
#define DPT_ASSERT(c) ((c) ? (void)0 : dpt_assert_fail(#c, __FILE__, __LINE__))

/* ---- allocation --------------------------------------------------------------------------- */

/* Zeroed, 64-byte aligned allocation. Returns DPT_ERR_NOMEM with a message naming `what` when it
 * fails or when n_bytes is absurd (> 2^46). Free with dpt_free. */
DPT_NODISCARD dpt_status dpt_alloc(size_t n_bytes, const char *what, void **out);
void dpt_free(void *p);

/* out = a * b, failing (DPT_ERR_NOMEM, message naming `what`) on int64 overflow or negatives. */
DPT_NODISCARD dpt_status dpt_mul_i64(int64_t a, int64_t b, const char *what, int64_t *out);

/* ---- Philox-4x32-10 ----------------------------------------------------------------------- */

typedef struct {
    uint32_t v[4];
} dpt_u32x4;

/* One Philox-4x32-10 block: 4 random 32-bit words from (counter, key). Pure function. */
dpt_u32x4 dpt_philox4x32_10(dpt_u32x4 counter, uint32_t key0, uint32_t key1);

/* 1 if x is NaN or infinite (an all-ones exponent): a bit test, so loops OR-ing it vectorise. */
static inline uint32_t dpt_nonfinite_f32(float x) {
    union {
        float f;
        uint32_t u;
    } b = {.f = x};
    return (b.u & 0x7f800000u) == 0x7f800000u;
}

/* Uniform float in [0, 1) from a 32-bit word (top 24 bits). */
static inline float dpt_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* A small sequential stream on top of Philox for initialisers and shuffles:
 * key = (seed lo, seed hi ^ stream), counter increments. Same seed + stream -> same numbers. */
typedef struct {
    uint32_t key0, key1;
    uint64_t ctr;
    dpt_u32x4 buf;
    int pos;
} dpt_rng;
void dpt_rng_init(dpt_rng *r, uint64_t seed, uint32_t stream);
uint32_t dpt_rng_u32(dpt_rng *r);
float dpt_rng_uniform(dpt_rng *r);                  /* [0, 1) */
uint64_t dpt_rng_below(dpt_rng *r, uint64_t bound); /* [0, bound), unbiased; bound > 0 */

/* ---- checksums ---------------------------------------------------------------------------- */

/* FNV-1a 64 over bytes, continuing from `h` (start with DPT_FNV1A64_INIT). Pure. Used for the
 * checkpoint checksums and the cross-rank replica check. */
#define DPT_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t dpt_fnv1a64(uint64_t h, const void *data, size_t n_bytes);

/* ---- time --------------------------------------------------------------------------------- */
double dpt_now(void); /* monotonic seconds */

/* What a file of st_mode `mode` is, for messages: "a directory", "a FIFO (named pipe)", "a
 * character device", "a block device", "a socket", "a regular file", ... Local. */
const char *dpt_file_kind(unsigned int mode);
/* ---- durable files ---------------------------------------------------------------------- */

/* Makes the finished file `tmp` (closed by the caller) the file `path`, durably: fsync of tmp,
 * rename onto path, fsync of the directory (file systems that cannot fsync a directory are
 * accepted). Every output dptrain writes goes through it. On failure tmp is removed and
 * DPT_ERR_IO names the step and the reason. Local. */
DPT_NODISCARD dpt_status dpt_file_commit(const char *tmp, const char *path);

/* ---- shapes and targets: the vocabulary nn and data share --------------------------------- */

#define DPT_MAX_RANK 4 /* dimensions of one sample's shape */

/* One sample's shape (the batch dimension is not included). */
typedef struct {
    int rank;
    int64_t dim[DPT_MAX_RANK];
} dpt_shape;
int64_t dpt_shape_size(const dpt_shape *s); /* product of dims; -1 on overflow or a negative dim */

/* What one target row is, as a loss wants it (nn says which, dpt_loss_target_kind; data builds it
 * from y, dpt_shard_open). K is the model's number of outputs. */
typedef enum {
    DPT_TARGET_VALUES = 0, /* y's K values per sample copied as floats (float or integer y) */
    DPT_TARGET_BINARY,     /* as VALUES; integer labels with K == 1 must be 0 or 1 */
    DPT_TARGET_ONEHOT, /* integer labels in [0, K) become one-hot K floats; float (N, K) copied */
    DPT_TARGET_INDEX   /* one integer class index in [0, K) per sample, as 1 float */
} dpt_target_kind;

/* ---- JSON (jansson) getters with path-naming messages ------------------------------------- */

typedef struct json_t json_t; /* jansson's; only its header's users see inside */

/* Where a config value came from, for error messages: "<file>: <path>: <what>". */
typedef struct {
    const char *file; /* e.g. "examples/tutorial.json" */
    char path[256];   /* e.g. "model.config.layers[2].config" */
    int keras_major;  /* the model's keras_version major (2, 3); 0 unknown: Keras 3 rules */
} dpt_json_ctx;

/* "<file>: <path>.<key>" (or "<file>: <key>" when path is empty) into buf. */
void dpt_json_where(char *buf, size_t n, const dpt_json_ctx *ctx, const char *key);
/* "an object", "an array", "a string", ... ("nothing" for NULL): for messages. */
const char *dpt_json_type_name(const json_t *v);

/* Typed getters with messages "<file>: <path>.<key>: <what>". Missing key -> default (returns OK).
 * Present but wrong type or out of range -> DPT_ERR_CONFIG. */
DPT_NODISCARD dpt_status dpt_json_get_int(const json_t *obj, const char *key,
                                          const dpt_json_ctx *ctx, int64_t def, int64_t lo,
                                          int64_t hi, int64_t *out);
DPT_NODISCARD dpt_status dpt_json_get_num(const json_t *obj, const char *key,
                                          const dpt_json_ctx *ctx, double def, double lo, double hi,
                                          bool hi_open, double *out);
DPT_NODISCARD dpt_status dpt_json_get_bool(const json_t *obj, const char *key,
                                           const dpt_json_ctx *ctx, bool def, bool *out);
/* String value; *out points into obj (valid while obj lives); def may be NULL. */
DPT_NODISCARD dpt_status dpt_json_get_str(const json_t *obj, const char *key,
                                          const dpt_json_ctx *ctx, const char *def,
                                          const char **out);
/* Refuses `key` when present and not JSON null (an option that changes the math we do not
 * implement): "<file>: <path>.<key>: not supported yet (must be null)". */
DPT_NODISCARD dpt_status dpt_json_require_null(const json_t *obj, const char *key,
                                               const dpt_json_ctx *ctx);

#endif
