/* dptrain — the HDF5 dataset format (datasets/FORMAT.md), this rank's shard, the epoch order,
 * and the converters that write datasets (synthetic tutorial data, Fashion-MNIST, CSV).
 *
 * A split is an HDF5 group holding `x` (N, d1, ...) float32 or uint8 (optional attribute `scale`,
 * applied on read) and `y` (N) integer labels or (N, T) float targets. Each rank reads only its
 * rows with hyperslab selections; no function here calls MPI collectives.
 */
#ifndef DPTRAIN_DATA_H
#define DPTRAIN_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/nn.h"
#include "dptrain/status.h"

/* What a split holds (metadata only). */
typedef struct {
    int64_t n;            /* samples */
    dpt_shape x_shape;    /* one sample's shape */
    bool x_uint8;         /* stored as uint8 (scaled on read) */
    float x_scale;        /* multiply stored values by this (attribute `scale`, default 1) */
    bool y_integer;       /* y holds integer class labels, shape (N) or (N, 1) */
    int64_t y_cols;       /* 1 for labels; T for float targets (N, T) */
    int64_t n_classes;    /* attribute `n_classes` if present, else 0 */
    bool has_y;           /* the split has `y`; a features-only split (for predict) has not */
} dpt_data_info;

/* Reads the metadata of FILE's GROUP ("train", "test", ...). DPT_ERR_DATA with a message naming
 * the file and the dataset path on any problem (missing file, not HDF5, missing group or dataset,
 * unsupported dtype or rank, x and y lengths differ, empty split). Local. */
DPT_NODISCARD dpt_status dpt_data_probe(const char *path, const char *group, dpt_data_info *out);

/* How targets are built from `y` for a loss and model output size K:
 *   sparse CE: y must be integer labels in [0, K) -> 1 float (the index).
 *   categorical CE: integer labels in [0, K) -> one-hot K floats; or float (N, K).
 *   binary CE / mse: integer or float, (N) or (N, K) -> K floats. */
typedef struct {
    dpt_loss_kind loss;
    int64_t n_outputs; /* K */
} dpt_target_spec;

typedef struct dpt_shard dpt_shard;

/* `t` NULL: features only (y is not read and may be absent; y_size is 0).
 * Loads rows [lo, hi) of the split into memory as float32 features and targets (hyperslab read),
 * checking them: a NaN/Inf feature or a label out of range is DPT_ERR_DATA naming the file, the
 * dataset path and the row. `expect_x` (may be NULL) is the model's input shape; a mismatch is
 * DPT_ERR_DATA. hi == lo gives an empty shard. Local. */
DPT_NODISCARD dpt_status dpt_shard_open(const char *path, const char *group, int64_t lo, int64_t hi,
                                        const dpt_target_spec *t, const dpt_shape *expect_x,
                                        dpt_shard **out);
void dpt_shard_destroy(dpt_shard **s);
int64_t dpt_shard_lo(const dpt_shard *s);
int64_t dpt_shard_rows(const dpt_shard *s);
int64_t dpt_shard_x_size(const dpt_shard *s); /* floats per sample */
int64_t dpt_shard_y_size(const dpt_shard *s); /* floats per target */
/* Copies the given shard-local rows into x (count, x_size) and y (count, y_size). */
void dpt_shard_gather(const dpt_shard *s, const int64_t *rows, int64_t count, float *x, float *y);
const float *dpt_shard_x(const dpt_shard *s); /* (rows, x_size) */
const float *dpt_shard_y(const dpt_shard *s); /* (rows, y_size) */

/* Balanced contiguous split of n items over `size` parts: part r is [lo, hi). */
void dpt_split_range(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);

/* ---- the epoch order: a seeded bijection of [0, n), O(1) memory ----------------------------- */
typedef struct {
    int64_t n;
    bool shuffle;
    uint64_t mask;   /* 2^k - 1 >= n - 1 */
    int half_bits;
    uint32_t key[4];
} dpt_order;
/* Order of epoch `epoch` (0-based) for `seed`: identical on every rank. shuffle=false -> identity. */
void dpt_order_init(dpt_order *o, int64_t n, uint32_t seed, int64_t epoch, bool shuffle);
int64_t dpt_order_at(const dpt_order *o, int64_t pos); /* sample at position pos in [0, n) */

/* ---- writers (serial HDF5; run them on one rank) --------------------------------------------- */
/* Tutorial data: x (n, features) uniform [0, 1) float32, y (n) int32 random 0/1, group "train". */
DPT_NODISCARD dpt_status dpt_data_write_synth(const char *out_path, int64_t n, int64_t features,
                                              uint32_t seed);
/* Fashion-MNIST: the four IDX files in idx_dir ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz,
 * gzip or plain) -> groups "train" and "test": x uint8 (N, 28, 28) with attribute scale = 1/255,
 * y uint8 (N) with attributes n_classes = 10 and class_names. Bad magic numbers, counts that
 * disagree, truncated files: DPT_ERR_DATA naming the file. Writes OUT.tmp, then renames. Local. */
DPT_NODISCARD dpt_status dpt_data_write_fmnist(const char *idx_dir, const char *out_path);
/* CSV with a header row, all fields numeric: column `label_column` becomes y (int32 (N) if every
 * value is an integer, else float32 (N, 1)), the others x float32 (N, F), group "train".
 * Errors name the line: "x.csv:17: expected 5 fields, got 4". Local. */
DPT_NODISCARD dpt_status dpt_data_write_csv(const char *csv_path, const char *label_column,
                                            const char *out_path);
/* Prints the file's groups, datasets (shape, dtype, chunks), attributes, and label counts of
 * integer `y` datasets to `out`. DPT_ERR_DATA if the file cannot be read. Local. */
DPT_NODISCARD dpt_status dpt_data_inspect(const char *path, FILE *out);

#endif
