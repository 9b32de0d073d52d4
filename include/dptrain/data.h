/* dptrain — the HDF5 dataset format (datasets/FORMAT.md), this rank's shard, the epoch order,
 * and the converters that write datasets (synthetic tutorial data, the adding problem,
 * Fashion-MNIST, CSV).
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

#include "dptrain/core.h"
#include "dptrain/status.h"

/* What a split holds (metadata only). */
typedef struct {
    int64_t n;         /* samples */
    dpt_shape x_shape; /* one sample's shape */
    bool x_uint8;      /* stored as uint8 (scaled on read) */
    float x_scale;     /* multiply stored values by this (attribute `scale`, default 1) */
    bool y_integer;    /* y holds integer class labels, shape (N) or (N, 1) */
    int64_t y_cols;    /* 1 for labels; T for float targets (N, T) */
    int64_t n_classes; /* attribute `n_classes` if present, else 0 */
    bool has_y;        /* the split has `y`; a features-only split (for predict) has not */
    bool has_w;        /* the split has per-sample loss weights `w` (N) (Keras's sample_weight) */
} dpt_data_info;

/* Reads the metadata of FILE's GROUP ("train", "test", ...). DPT_ERR_DATA with a message naming
 * the file and the dataset path on any problem (missing file, not HDF5, missing group or dataset,
 * unsupported dtype or rank, x and y lengths differ, empty split). Local. */
DPT_NODISCARD dpt_status dpt_data_probe(const char *path, const char *group, dpt_data_info *out);

/* How targets are built from `y` for a model with K outputs (dpt_target_kind, core.h):
 *   INDEX: y must be integer labels in [0, K) -> 1 float (the index).
 *   ONEHOT: integer labels in [0, K) -> one-hot K floats; or float (N, K) copied.
 *   VALUES / BINARY: integer or float, (N) or (N, K) -> K floats (BINARY: integer labels 0/1).
 * loss_name (may be NULL) names the loss in messages ("binary_crossentropy needs ..."). */
typedef struct {
    dpt_target_kind kind;
    int64_t n_outputs; /* K */
    const char *loss_name;
    /* > 0: every x value must be a token id, an integer in [0, x_ids) (the model starts with an
     * Embedding: dpt_model_input_ids); a bad one is DPT_ERR_DATA naming file, dataset, row and
     * value. 0: any finite value. */
    int64_t x_ids;
} dpt_target_spec;

typedef struct dpt_shard dpt_shard;

/* `t` NULL: y raw as floats (y_size = its columns), or no targets (y_size 0) when the split has
 * no y — a features-only split, as `predict` accepts.
 * Loads rows [lo, hi) of the split into memory as float32 features and targets (hyperslab read),
 * checking them: a NaN/Inf feature or a label out of range is DPT_ERR_DATA naming the file, the
 * dataset path and the row. `expect_x` (may be NULL) is the model's input shape; a mismatch is
 * DPT_ERR_DATA. hi == lo gives an empty shard. Local. */
DPT_NODISCARD dpt_status dpt_shard_open(const char *path, const char *group, int64_t lo, int64_t hi,
                                        const dpt_target_spec *t, const dpt_shape *expect_x,
                                        dpt_shard **out);
void dpt_shard_destroy(dpt_shard **s);
/* The x_ids check of dpt_target_spec for a shard opened without targets (`t` NULL): every x value
 * an integer in [0, ids), else DPT_ERR_DATA "<path>: /<group>/x: row R: token id V ...", the row
 * numbered in the whole split. ids <= 0: nothing to check. Local. */
DPT_NODISCARD dpt_status dpt_shard_check_ids(const dpt_shard *s, const char *path,
                                             const char *group, int64_t ids);
int64_t dpt_shard_lo(const dpt_shard *s);
int64_t dpt_shard_rows(const dpt_shard *s);
int64_t dpt_shard_x_size(const dpt_shard *s); /* floats per sample */
int64_t dpt_shard_y_size(const dpt_shard *s); /* floats per target */
/* Copies the given shard-local rows into x (count, x_size) and y (count, y_size). */
void dpt_shard_gather(const dpt_shard *s, const int64_t *rows, int64_t count, float *x, float *y);
const float *dpt_shard_x(const dpt_shard *s); /* (rows, x_size) */
const float *dpt_shard_y(const dpt_shard *s); /* (rows, y_size) */
/* The shard's sample weights (rows), from the split's optional `w` (N) dataset; NULL without. */
const float *dpt_shard_w(const dpt_shard *s);

/* Balanced contiguous split of n items over `size` parts: part r is [lo, hi). */
void dpt_split_range(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);

/* ---- the epoch order: a seeded bijection of [0, n), O(1) memory ----------------------------- */
typedef struct {
    int64_t n;
    bool shuffle;
    uint64_t mask; /* 2^k - 1 >= n - 1 */
    int half_bits;
    uint32_t key[4];
} dpt_order;
/* Order of epoch `epoch` (0-based) for `seed`: identical on every rank. shuffle=false -> identity.
 */
void dpt_order_init(dpt_order *o, int64_t n, uint32_t seed, int64_t epoch, bool shuffle);
int64_t dpt_order_at(const dpt_order *o, int64_t pos); /* sample at position pos in [0, n) */

/* ---- the "local" (balanced) order ----------------------------------------------------------
 * Each rank permutes ITS OWN shard [lo, hi) = dpt_split_range(n, rank, size) every epoch, and
 * global batch k (positions [p_k, p_{k+1}), p_k = min(k*B, n)) takes from rank r exactly
 * dpt_local_count(n, p_k, p_{k+1}, r, size) samples: the next ones of r's own permutation,
 * starting at local position dpt_local_offset(n, p_k, r, size). Counts are balanced within 1
 * sample, sum to the batch size over the ranks and to the shard size over an epoch. The batch's
 * members then depend on the rank count (unlike dpt_order's global batches). All local. */

/* F_r(p): how many of the first p positions (p clamped to [0, n]) are rank r's, i.e. the size
 * of part r of dpt_split_range(p, r, size). Monotone in p; F_r(n) = r's shard size. Local. */
int64_t dpt_local_offset(int64_t n, int64_t p, int rank, int size);
/* Samples rank r contributes to positions [p0, p1) (p0 <= p1): F_r(p1) - F_r(p0). Local. */
int64_t dpt_local_count(int64_t n, int64_t p0, int64_t p1, int rank, int size);
/* The epoch order of one rank's shard: a bijection of [0, rows) keyed by (seed, epoch, lo), where
 * lo is the shard's first row (so ranks differ); identity if !shuffle. Local. */
void dpt_order_init_local(dpt_order *o, int64_t rows, uint32_t seed, int64_t epoch, int64_t lo,
                          bool shuffle);
/* A bijection of [0, n) keyed by (seed, tag, a, b): for orders other than the global one. `tag`
 * names the use (not 0x5EED, the global order's); a and b are any two 64-bit values. Local. */
void dpt_order_init_keyed(dpt_order *o, int64_t n, bool shuffle, uint32_t seed, uint32_t tag,
                          uint64_t a, uint64_t b);
#define DPT_ORDER_TAG_LOCAL 0x10CA1u /* dpt_order_init_local */

/* ---- the streaming reader: shards larger than memory --------------------------------------
 * dpt_stream reads this rank's rows [lo, hi) of a split epoch after epoch without holding them:
 * the shard is cut into chunks (the file's HDF5 chunks along samples when x is chunked, else
 * about 1 MiB of rows; the two ends may be partial), the chunk order is reshuffled every epoch,
 * consecutive groups of chunks form WINDOWS of about window_bytes (at least 2 chunks), and the
 * samples of a window are shuffled within it. A background thread reads window w + 1 while the
 * caller consumes window w (double buffering: the stream holds at most 2 windows plus one chunk
 * of raw staging; dpt_stream_buffer_bytes says how much). Every sample of the shard comes exactly
 * once per epoch; the stream is a pure function of (seed, epoch, lo, hi, file chunking, window),
 * whatever the thread timing. Values are checked as dpt_shard_open checks them (non-finite
 * features, labels out of range, rows numbered in the whole split), by the reader thread; a bad
 * row is reported by the dpt_stream_next call that reaches its window.
 *
 * Threads and HDF5: our HDF5 is not thread-safe. Between dpt_stream_begin_epoch and the end of
 * the epoch the reader thread calls HDF5 (on a file handle of its own, opened by dpt_stream_open);
 * the caller must then make NO HDF5 call (checkpoints, other files) unless it holds
 * dpt_stream_hold_io. Open every other file before the first dpt_stream_begin_epoch. The reader
 * thread calls no MPI. All functions are local and must be called from one thread. */
typedef struct dpt_stream dpt_stream;

/* Opens the stream (metadata checks as dpt_shard_open: DPT_ERR_DATA naming file and dataset;
 * bad lo/hi: DPT_ERR_INTERNAL), allocates its buffers and starts the reader thread, which waits
 * for dpt_stream_begin_epoch. `t` is required (targets as dpt_shard_open builds them).
 * window_bytes: the size of ONE window of converted float32 samples (x and targets); it is
 * raised to 2 chunks if smaller and lowered to the shard if larger. Local. */
DPT_NODISCARD dpt_status dpt_stream_open(const char *path, const char *group, int64_t lo,
                                         int64_t hi, const dpt_target_spec *t,
                                         const dpt_shape *expect_x, int64_t window_bytes,
                                         uint32_t seed, dpt_stream **out);
/* Stops and joins the reader thread (it finishes at most the chunk it is reading), closes the
 * file, frees everything; NULL-safe, sets *s = NULL. Must not be called while holding the io
 * lock. Local. */
void dpt_stream_destroy(dpt_stream **s);
/* Starts epoch `epoch` (0-based) from its first sample: abandons whatever the previous epoch
 * had not consumed and sets the reader thread on windows 0 and 1. Local. */
void dpt_stream_begin_epoch(dpt_stream *s, int64_t epoch);
/* The same, but the first `skip` samples of the epoch's stream are passed over (not read): for
 * a resume in the middle of an epoch, skip = dpt_local_offset(n, first_step * B, rank, size).
 * 0 <= skip <= rows. Local. */
void dpt_stream_begin_epoch_at(dpt_stream *s, int64_t epoch, int64_t skip);
/* Copies the next `count` samples of the epoch's stream into x (count, x_size) and
 * y (count, y_size), waiting for the reader thread when it is behind. DPT_ERR_DATA (message with
 * file, dataset and row) for a bad value in a window it reaches, or an unreadable chunk; then
 * every later call fails the same way (the trainer must abort: it is mid-step). Asking for more
 * than the epoch has left is DPT_ERR_INTERNAL. Local. */
DPT_NODISCARD dpt_status dpt_stream_next(dpt_stream *s, int64_t count, float *x, float *y);
/* Blocks until the reader threads (of every open stream: the lock is process-wide) are between
 * HDF5 calls and keeps them out of HDF5 until dpt_stream_release_io: wrap every HDF5 call the
 * caller makes while an epoch streams (e.g. writing a checkpoint) in hold/release. Several
 * streams may be open and stream at once (they take turns in HDF5). Local. */
void dpt_stream_hold_io(dpt_stream *s);
void dpt_stream_release_io(dpt_stream *s);
int64_t dpt_stream_rows(const dpt_stream *s);          /* hi - lo */
int64_t dpt_stream_x_size(const dpt_stream *s);        /* floats per sample */
int64_t dpt_stream_y_size(const dpt_stream *s);        /* floats per target */
int64_t dpt_stream_chunk_rows(const dpt_stream *s);    /* rows per (whole) chunk */
int64_t dpt_stream_window_chunks(const dpt_stream *s); /* chunks per window (>= 2 unless fewer) */
/* Bytes the stream allocated for samples: its window buffers and raw staging (not the caller's
 * batch, not HDF5's own chunk cache). <= 2 windows + 1 chunk of staging. */
size_t dpt_stream_buffer_bytes(const dpt_stream *s);

/* ---- writers (serial HDF5; run them on one rank) --------------------------------------------- */
/* Tutorial data: x (n, features) uniform [0, 1) float32, y (n) int32 random 0/1, group "train". */
DPT_NODISCARD dpt_status dpt_data_write_synth(const char *out_path, int64_t n, int64_t features,
                                              uint32_t seed);
/* The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015), a long-memory test for
 * recurrent models: groups "train" (n samples) and "test" (max(n / 10, 1)), x float32 (N, steps,
 * 2): channel 0 uniform in [0, 1), channel 1 zero but for two 1s, one in the first half of the
 * steps and one in the second; y float32 (N, 1) = the sum of the two marked values (mean 1;
 * predicting 1 always gives an MSE of about 0.167). Sample i of a split depends only on (seed,
 * split, i). n in [1, 2^32), steps >= 2, else DPT_ERR_USAGE. Writes OUT.tmp, then renames.
 * Local. */
DPT_NODISCARD dpt_status dpt_data_write_adding(const char *out_path, int64_t n, int64_t steps,
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
