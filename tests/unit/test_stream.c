/* Unit tests of the local (balanced) order (order.c: dpt_local_count, dpt_local_offset,
 * dpt_order_init_local) and of the streaming reader (stream.c): every sample of the shard exactly
 * once per epoch for shards that the chunk size does not divide (chunked float32, chunked uint8
 * with scale, contiguous x), a new order every epoch, the same stream for the same (seed, epoch)
 * whatever the read pattern and thread timing, resuming mid-epoch, the window clamped to 2
 * chunks, a NaN or a bad label in a later chunk reported with its row by the call that reaches
 * it, buffers bounded by the window, two streams reading at once. Files are built with raw HDF5
 * calls. The MPI side is tests/mpi/test_stream_mpi.c. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "testutil.h"

static char g_dir[4096];

static const char *tpath(const char *name) {
    static char buf[8][4200];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

enum { CLASSES = 10 };
static const dpt_target_spec SPARSE = {DPT_TARGET_INDEX, CLASSES,
                                       "sparse_categorical_crossentropy"};

/* /train: x (n, f) with x[r][c] = r + c / 1000 (float32, or uint8 r % 251 with scale 1/2 when
 * u8), y int32 (n) = r % CLASSES. chunk_rows 0: contiguous. bad_x_row / bad_y_row >= 0 put a
 * NaN feature / label 99 there. */
typedef struct {
    int64_t n, f, chunk_rows, bad_x_row, bad_y_row;
    bool u8;
} file_spec;

static void write_file(const char *path, const file_spec *sp) {
    int64_t n = sp->n, f = sp->f;
    hid_t fl = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fl >= 0);
    hid_t g = H5Gcreate2(fl, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)n, (hsize_t)f}, yd[1] = {(hsize_t)n};
    hid_t sx = H5Screate_simple(2, xd, NULL), sy = H5Screate_simple(1, yd, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (sp->chunk_rows > 0) {
        hsize_t ch[2] = {(hsize_t)sp->chunk_rows, (hsize_t)f};
        assert_true(H5Pset_chunk(dcpl, 2, ch) >= 0);
    }
    hid_t dx = H5Dcreate2(g, "x", sp->u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, sx, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT);
    hid_t dy = H5Dcreate2(g, "y", H5T_STD_I32LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(dx >= 0 && dy >= 0);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    assert_non_null(y);
    for (int64_t r = 0; r < n; r++)
        y[r] = r == sp->bad_y_row ? 99 : (int32_t)(r % CLASSES);
    if (sp->u8) {
        uint8_t *x = malloc((size_t)(n * f));
        assert_non_null(x);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < f; c++)
                x[r * f + c] = (uint8_t)((r + c) % 251);
        assert_true(H5Dwrite(dx, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(dx, "scale", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        double half = 0.5;
        assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &half) >= 0);
        H5Aclose(a);
        H5Sclose(as);
        free(x);
    } else {
        float *x = malloc(sizeof(float) * (size_t)(n * f));
        assert_non_null(x);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < f; c++)
                x[r * f + c] = (float)r + (float)c / 1000.0f;
        if (sp->bad_x_row >= 0)
            x[sp->bad_x_row * f + f - 1] = NAN;
        assert_true(H5Dwrite(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
        free(x);
    }
    assert_true(H5Dwrite(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    free(y);
    H5Pclose(dcpl);
    H5Dclose(dx);
    H5Dclose(dy);
    H5Sclose(sx);
    H5Sclose(sy);
    H5Gclose(g);
    assert_true(H5Fclose(fl) >= 0);
}

/* The file row a streamed sample came from, checked against all its features and its label. */
static int64_t sample_row(const file_spec *sp, const float *x, float y) {
    if (sp->u8) {
        /* x[0] = (r % 251) / 2: the label r % 10 and x[0] pin r down within the test's n */
        int64_t m = (int64_t)lrintf(x[0] * 2.0f);
        for (int64_t r = m; r < sp->n; r += 251) {
            bool ok = (float)(r % CLASSES) == y;
            for (int64_t c = 0; ok && c < sp->f; c++)
                ok = x[c] == (float)((r + c) % 251) * 0.5f;
            if (ok)
                return r;
        }
        return -1;
    }
    int64_t r = (int64_t)x[0];
    for (int64_t c = 0; c < sp->f; c++)
        if (x[c] != (float)r + (float)c / 1000.0f)
            return -1;
    return (float)(r % CLASSES) == y ? r : -1;
}

/* Streams one epoch of rows [lo, hi) in pieces of `piece` samples (0: the local counts of
 * 3 ranks' rank 1 for batch 32) and writes the file rows in stream order into rows_out. */
static void read_epoch(dpt_stream *s, const file_spec *sp, int64_t epoch, int64_t piece,
                       int64_t *rows_out) {
    int64_t rows = dpt_stream_rows(s), f = dpt_stream_x_size(s);
    assert_int_equal(dpt_stream_y_size(s), 1);
    float *x = malloc(sizeof(float) * (size_t)(rows * f + 1));
    float *y = malloc(sizeof(float) * (size_t)(rows + 1));
    assert_non_null(x);
    assert_non_null(y);
    dpt_stream_begin_epoch(s, epoch);
    int64_t got = 0, k = 0;
    while (got < rows) {
        int64_t c = piece;
        if (piece == 0) { /* the counts a rank takes in local mode: 10 or 11 */
            c = dpt_local_count(3 * rows, k * 32, (k + 1) * 32, 1, 3);
            k++;
        }
        if (c > rows - got)
            c = rows - got;
        assert_ok(dpt_stream_next(s, c, x + got * f, y + got));
        got += c;
    }
    for (int64_t i = 0; i < rows; i++) {
        rows_out[i] = sample_row(sp, x + i * f, y[i]);
        if (rows_out[i] < 0)
            fail_msg("sample %lld of epoch %lld: features/label of no row", (long long)i,
                     (long long)epoch);
    }
    free(x);
    free(y);
}

static void assert_each_once(const int64_t *rows, int64_t lo, int64_t hi) {
    int64_t n = hi - lo;
    int *seen = calloc((size_t)n + 1, sizeof(int));
    assert_non_null(seen);
    for (int64_t i = 0; i < n; i++) {
        if (rows[i] < lo || rows[i] >= hi)
            fail_msg("row %lld outside the shard [%lld, %lld)", (long long)rows[i], (long long)lo,
                     (long long)hi);
        seen[rows[i] - lo]++;
    }
    for (int64_t i = 0; i < n; i++)
        if (seen[i] != 1)
            fail_msg("row %lld seen %d times", (long long)(lo + i), seen[i]);
    free(seen);
}

/* ---- the local order ------------------------------------------------------------------------ */

static void test_local_counts(void **state) {
    (void)state;
    const int64_t ns[] = {1, 2, 5, 31, 32, 33, 100, 1001, 4096, 10007};
    const int64_t Bs[] = {1, 2, 3, 7, 32, 100, 128, 20000};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        for (size_t b = 0; b < sizeof Bs / sizeof *Bs; b++) {
            for (int N = 1; N <= 9; N++) {
                int64_t n = ns[a], B = Bs[b], steps = (n + B - 1) / B;
                int64_t per_rank[9] = {0};
                for (int64_t k = 0; k < steps; k++) {
                    int64_t p0 = k * B, p1 = p0 + B < n ? p0 + B : n, sum = 0, mn = INT64_MAX,
                            mx = 0;
                    for (int r = 0; r < N; r++) {
                        int64_t c = dpt_local_count(n, p0, p1, r, N);
                        if (c < 0)
                            fail_msg("negative count");
                        /* the running offset is where this step starts in the rank's order */
                        assert_int_equal(dpt_local_offset(n, p0, r, N), per_rank[r]);
                        per_rank[r] += c;
                        sum += c;
                        mn = c < mn ? c : mn;
                        mx = c > mx ? c : mx;
                    }
                    if (sum != p1 - p0)
                        fail_msg("n %lld B %lld N %d step %lld: counts sum to %lld, batch %lld",
                                 (long long)n, (long long)B, N, (long long)k, (long long)sum,
                                 (long long)(p1 - p0));
                    if (mx - mn > 1)
                        fail_msg("n %lld B %lld N %d step %lld: counts %lld..%lld", (long long)n,
                                 (long long)B, N, (long long)k, (long long)mn, (long long)mx);
                }
                for (int r = 0; r < N; r++) {
                    int64_t lo, hi;
                    dpt_split_range(n, r, N, &lo, &hi);
                    if (per_rank[r] != hi - lo)
                        fail_msg("n %lld B %lld N %d rank %d: %lld samples, shard %lld",
                                 (long long)n, (long long)B, N, r, (long long)per_rank[r],
                                 (long long)(hi - lo));
                }
            }
        }
    }
    /* positions past n add nothing */
    assert_int_equal(dpt_local_count(10, 10, 42, 0, 3), 0);
    assert_int_equal(dpt_local_offset(10, 99, 0, 3), 4);
}

static void test_local_order(void **state) {
    (void)state;
    enum { R = 334 };
    int64_t first[4];
    for (int v = 0; v < 4; v++) {
        /* v: 0 base, 1 other epoch, 2 other shard start, 3 other seed */
        dpt_order o;
        dpt_order_init_local(&o, R, v == 3 ? 8u : 7u, v == 1 ? 1 : 0, v == 2 ? 334 : 0, true);
        int seen[R] = {0};
        for (int64_t p = 0; p < R; p++) {
            int64_t i = dpt_order_at(&o, p);
            assert_true(i >= 0 && i < R);
            seen[i]++;
        }
        for (int i = 0; i < R; i++)
            assert_int_equal(seen[i], 1);
        first[v] = dpt_order_at(&o, 0) * 1000 + dpt_order_at(&o, 1);
    }
    assert_true(first[0] != first[1]);
    assert_true(first[0] != first[2]);
    assert_true(first[0] != first[3]);
    /* not the global order with the same seed and epoch */
    dpt_order g, l;
    dpt_order_init(&g, R, 7u, 0, true);
    dpt_order_init_local(&l, R, 7u, 0, 0, true);
    int64_t same = 0;
    for (int64_t p = 0; p < R; p++)
        same += dpt_order_at(&g, p) == dpt_order_at(&l, p);
    assert_true(same < R / 10);
    /* no shuffle: identity */
    dpt_order_init_local(&l, R, 7u, 3, 5, false);
    for (int64_t p = 0; p < R; p++)
        assert_int_equal(dpt_order_at(&l, p), p);
}

/* ---- the stream ----------------------------------------------------------------------------- */

static const file_spec F_CHUNKED = {
    .n = 1001, .f = 3, .chunk_rows = 64, .bad_x_row = -1, .bad_y_row = -1};
static const file_spec F_U8 = {
    .n = 1001, .f = 5, .chunk_rows = 50, .bad_x_row = -1, .bad_y_row = -1, .u8 = true};
static const file_spec F_CONTIG = {
    .n = 1001, .f = 1024, .chunk_rows = 0, .bad_x_row = -1, .bad_y_row = -1};

static void covers_once(const file_spec *sp, const char *name, int64_t lo, int64_t hi,
                        int64_t window_bytes, int64_t piece, int64_t expect_chunk_rows) {
    const char *p = tpath(name);
    write_file(p, sp);
    dpt_stream *s = NULL;
    dpt_shape in = {1, {sp->f}};
    assert_ok(dpt_stream_open(p, "train", lo, hi, &SPARSE, &in, window_bytes, 5u, &s));
    assert_int_equal(dpt_stream_chunk_rows(s), expect_chunk_rows);
    assert_true(dpt_stream_window_chunks(s) >= 2);
    assert_true((hi - lo) % expect_chunk_rows != 0);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(hi - lo));
    assert_non_null(rows);
    for (int64_t ep = 0; ep < 3; ep++) {
        read_epoch(s, sp, ep, piece, rows);
        assert_each_once(rows, lo, hi);
    }
    free(rows);
    dpt_stream_destroy(&s);
    assert_null(s);
    dpt_stream_destroy(&s); /* NULL-safe */
    remove(p);
}

static void test_stream_covers_chunked(void **state) {
    (void)state;
    /* rows [37, 950): partial chunks at both ends; 3 chunks a window (64 rows x 16 B) */
    covers_once(&F_CHUNKED, "chunked.h5", 37, 950, 3 * 64 * 16, 0, 64);
    covers_once(&F_CHUNKED, "chunked1.h5", 0, 1001, 5 * 64 * 16, 1, 64);
    covers_once(&F_CHUNKED, "chunked_big.h5", 0, 1001, 1 << 30, 100, 64); /* one window */
}

static void test_stream_covers_u8(void **state) {
    (void)state;
    covers_once(&F_U8, "u8.h5", 3, 1000, 4 * 50 * 24, 0, 50);
}

static void test_stream_covers_contiguous(void **state) {
    (void)state;
    /* contiguous x: chunks of ~1 MiB of float rows = 256 rows of 1024 floats */
    covers_once(&F_CONTIG, "contig.h5", 1, 1001, 1, 17, 256);
}

/* Same (seed, epoch): the same stream whatever the pieces asked for, from a second stream
 * object, and after an abandoned epoch; other epochs differ. */
static void test_stream_deterministic(void **state) {
    (void)state;
    const char *p = tpath("det.h5");
    write_file(p, &F_CHUNKED);
    const int64_t lo = 10, hi = 1001, n = hi - lo, wb = 2 * 64 * 16;
    dpt_stream *a = NULL, *b = NULL;
    assert_ok(dpt_stream_open(p, "train", lo, hi, &SPARSE, NULL, wb, 9u, &a));
    assert_ok(dpt_stream_open(p, "train", lo, hi, &SPARSE, NULL, wb, 9u, &b));
    int64_t *r0 = malloc(sizeof(int64_t) * (size_t)n), *r1 = malloc(sizeof(int64_t) * (size_t)n),
            *r2 = malloc(sizeof(int64_t) * (size_t)n);
    assert_true(r0 && r1 && r2);
    read_epoch(a, &F_CHUNKED, 0, 0, r0);
    /* b: abandon epoch 0 half-way, read epoch 1 whole, then epoch 0 one sample at a time */
    float xb[3 * 400], yb[400];
    dpt_stream_begin_epoch(b, 0);
    assert_ok(dpt_stream_next(b, 400, xb, yb));
    read_epoch(b, &F_CHUNKED, 1, 1000, r1);
    struct timespec ms20 = {0, 20000000};
    nanosleep(&ms20, NULL); /* let the reader thread get ahead this time */
    read_epoch(b, &F_CHUNKED, 0, 1, r2);
    assert_memory_equal(r0, r2, sizeof(int64_t) * (size_t)n);
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++)
        same += r0[i] == r1[i];
    assert_true(same < n / 10); /* epoch 1 is another order */
    /* it is shuffled: not the file order, and rows of one chunk do not stay together */
    int64_t adjacent = 0;
    for (int64_t i = 1; i < n; i++)
        adjacent += r0[i] == r0[i - 1] + 1;
    assert_true(adjacent < n / 10);
    /* the other seed gives another stream */
    dpt_stream *c = NULL;
    assert_ok(dpt_stream_open(p, "train", lo, hi, &SPARSE, NULL, wb, 10u, &c));
    read_epoch(c, &F_CHUNKED, 0, 0, r1);
    same = 0;
    for (int64_t i = 0; i < n; i++)
        same += r0[i] == r1[i];
    assert_true(same < n / 10);
    dpt_stream_destroy(&c);

    /* resume mid-epoch: begin_epoch_at(skip) gives the tail of the full stream */
    const int64_t skips[] = {0, 1, 100, 128, 500, n - 1, n};
    for (size_t i = 0; i < sizeof skips / sizeof *skips; i++) {
        int64_t k = skips[i];
        dpt_stream_begin_epoch_at(b, 0, k);
        for (int64_t j = k; j < n; j++) {
            assert_ok(dpt_stream_next(b, 1, xb, yb));
            assert_int_equal(sample_row(&F_CHUNKED, xb, yb[0]), r0[j]);
        }
        assert_status_msg(dpt_stream_next(b, 1, xb, yb), DPT_ERR_INTERNAL, "beyond");
    }
    free(r0);
    free(r1);
    free(r2);
    dpt_stream_destroy(&a);
    dpt_stream_destroy(&b);
    remove(p);
}

/* Two streams at once (train and validation, say): their reader threads take turns in HDF5. */
static void test_two_streams_at_once(void **state) {
    (void)state;
    const char *p = tpath("two.h5");
    write_file(p, &F_CHUNKED);
    dpt_stream *a = NULL, *b = NULL;
    assert_ok(dpt_stream_open(p, "train", 0, 500, &SPARSE, NULL, 1, 1u, &a));
    assert_ok(dpt_stream_open(p, "train", 500, 1001, &SPARSE, NULL, 1, 1u, &b));
    int64_t ra[501], rb[501];
    float x[3], y[1];
    for (int ep = 0; ep < 2; ep++) {
        dpt_stream_begin_epoch(a, ep);
        dpt_stream_begin_epoch(b, ep);
        for (int64_t i = 0; i < 501; i++) {
            if (i < 500) {
                assert_ok(dpt_stream_next(a, 1, x, y));
                ra[i] = sample_row(&F_CHUNKED, x, y[0]);
            }
            assert_ok(dpt_stream_next(b, 1, x, y));
            rb[i] = sample_row(&F_CHUNKED, x, y[0]);
        }
        assert_each_once(ra, 0, 500);
        assert_each_once(rb, 500, 1001);
    }
    dpt_stream_destroy(&a);
    dpt_stream_destroy(&b);
    remove(p);
}

/* A window smaller than a chunk is raised to 2 chunks; the buffers stay bounded by the window. */
static void test_stream_window_and_memory(void **state) {
    (void)state;
    const file_spec sp = {.n = 1001, .f = 64, .chunk_rows = 16, .bad_x_row = -1, .bad_y_row = -1};
    const char *p = tpath("mem.h5");
    write_file(p, &sp);
    const int64_t row_bytes = (64 + 1) * 4, chunk_bytes = 16 * row_bytes;
    const int64_t shard_bytes = 1001 * row_bytes;
    dpt_stream *s = NULL;
    /* window of 1 byte: clamps to 2 chunks */
    assert_ok(dpt_stream_open(p, "train", 0, 1001, &SPARSE, NULL, 1, 1u, &s));
    assert_int_equal(dpt_stream_window_chunks(s), 2);
    size_t bytes = dpt_stream_buffer_bytes(s);
    assert_true(bytes > 0);
    assert_true((int64_t)bytes <= 2 * 2 * chunk_bytes + 16 * 8); /* 2 windows + y staging */
    int64_t *rows = malloc(sizeof(int64_t) * 1001);
    assert_non_null(rows);
    read_epoch(s, &sp, 0, 0, rows);
    assert_each_once(rows, 0, 1001);
    assert_int_equal(dpt_stream_buffer_bytes(s), bytes); /* nothing grows while streaming */
    dpt_stream_destroy(&s);
    /* a 16 KiB window: 3 chunks; the buffers are 2 windows, far below the shard */
    const int64_t wb = 16 << 10;
    assert_ok(dpt_stream_open(p, "train", 0, 1001, &SPARSE, NULL, wb, 1u, &s));
    assert_int_equal(dpt_stream_window_chunks(s), wb / chunk_bytes);
    bytes = dpt_stream_buffer_bytes(s);
    assert_true((int64_t)bytes <= 2 * wb + 16 * 8);
    assert_true((int64_t)bytes < shard_bytes / 5);
    read_epoch(s, &sp, 2, 7, rows);
    assert_each_once(rows, 0, 1001);
    dpt_stream_destroy(&s);
    /* one chunk of a shard: one buffer */
    assert_ok(dpt_stream_open(p, "train", 16, 32, &SPARSE, NULL, wb, 1u, &s));
    assert_int_equal(dpt_stream_window_chunks(s), 1);
    assert_int_equal(dpt_stream_buffer_bytes(s), 16 * row_bytes + 16 * 8);
    read_epoch(s, &sp, 0, 5, rows);
    assert_each_once(rows, 16, 32);
    dpt_stream_destroy(&s);
    /* an empty shard streams nothing */
    assert_ok(dpt_stream_open(p, "train", 500, 500, &SPARSE, NULL, wb, 1u, &s));
    assert_int_equal(dpt_stream_buffer_bytes(s), 0);
    dpt_stream_begin_epoch(s, 0);
    float x[64], y[1];
    assert_ok(dpt_stream_next(s, 0, x, y));
    assert_status_msg(dpt_stream_next(s, 1, x, y), DPT_ERR_INTERNAL, "beyond");
    dpt_stream_destroy(&s);
    free(rows);
    remove(p);
}

/* A NaN (or a bad label) in a chunk that a later window holds: the calls before succeed, the one
 * that reaches its window fails with the row (numbered in the whole split), and so does every
 * later call. The bad row is picked near the end of the clean file's stream of epoch 1. */
static void expect_bad_row(bool in_x, const char *name) {
    const int64_t lo = 100, hi = 1001, n = hi - lo, wb = 2 * 64 * 16; /* 2 chunks a window */
    const char *pc = tpath("clean.h5");
    write_file(pc, &F_CHUNKED);
    dpt_stream *s = NULL;
    assert_ok(dpt_stream_open(pc, "train", lo, hi, &SPARSE, NULL, wb, 3u, &s));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)n);
    assert_non_null(rows);
    read_epoch(s, &F_CHUNKED, 1, 0, rows);
    dpt_stream_destroy(&s);
    remove(pc);
    const int64_t at = n - 50, bad = rows[at];
    file_spec sp = F_CHUNKED;
    char needle[128];
    if (in_x) {
        sp.bad_x_row = bad;
        snprintf(needle, sizeof needle, "/train/x: row %lld: non-finite value", (long long)bad);
    } else {
        sp.bad_y_row = bad;
        snprintf(needle, sizeof needle, "/train/y: row %lld: label 99 out of range [0, 10)",
                 (long long)bad);
    }
    const char *p = tpath(name);
    write_file(p, &sp);
    assert_ok(dpt_stream_open(p, "train", lo, hi, &SPARSE, NULL, wb, 3u, &s));
    dpt_stream_begin_epoch(s, 1);
    float x[3], y[1];
    int64_t i = 0;
    dpt_status st = DPT_OK;
    for (; i < n && st == DPT_OK; i++)
        st = dpt_stream_next(s, 1, x, y);
    assert_status_msg(st, DPT_ERR_DATA, needle);
    assert_true(strstr(dpt_error_message(), p) != NULL);
    /* call i - 1 failed: the first that needed the bad row's window (<= 128 rows), so not past
     * the bad row and not before its window; the earlier windows were served */
    assert_true(i - 1 <= at);
    assert_true(i - 1 >= at - 127);
    dpt_error_clear();
    assert_status_msg(dpt_stream_next(s, 1, x, y), DPT_ERR_DATA, needle); /* sticky */
    /* beginning the epoch again clears the error; it comes back at the same call */
    const int64_t failed_at = i - 1;
    dpt_stream_begin_epoch(s, 1);
    st = DPT_OK;
    for (i = 0; i < n && st == DPT_OK; i++)
        st = dpt_stream_next(s, 1, x, y);
    assert_status_msg(st, DPT_ERR_DATA, needle);
    assert_int_equal(i - 1, failed_at);
    free(rows);
    dpt_stream_destroy(&s);
    remove(p);
}

static void test_stream_nan_in_later_chunk(void **state) {
    (void)state;
    expect_bad_row(true, "nan.h5");
}

static void test_stream_bad_label(void **state) {
    (void)state;
    expect_bad_row(false, "label.h5");
}

/* One-hot targets: the window buffers are reused, so each row must be cleared. */
static void test_stream_onehot(void **state) {
    (void)state;
    const char *p = tpath("onehot.h5");
    write_file(p, &F_CHUNKED);
    const dpt_target_spec cat = {DPT_TARGET_ONEHOT, CLASSES, "categorical_crossentropy"};
    dpt_stream *s = NULL;
    assert_ok(dpt_stream_open(p, "train", 0, 1001, &cat, NULL, 1, 4u, &s));
    assert_int_equal(dpt_stream_y_size(s), CLASSES);
    float x[3], y[CLASSES];
    for (int ep = 0; ep < 2; ep++) {
        dpt_stream_begin_epoch(s, ep);
        for (int i = 0; i < 1001; i++) {
            assert_ok(dpt_stream_next(s, 1, x, y));
            int64_t r = (int64_t)x[0];
            for (int k = 0; k < CLASSES; k++)
                assert_true(y[k] == (k == r % CLASSES ? 1.0f : 0.0f));
        }
    }
    dpt_stream_destroy(&s);
    remove(p);
}

/* Open errors: the messages of dpt_shard_open; the io lock can be taken mid-epoch. */
static void test_stream_open_errors_and_hold(void **state) {
    (void)state;
    const char *p = tpath("err.h5");
    write_file(p, &F_CHUNKED);
    dpt_stream *s = NULL;
    dpt_shape wrong = {1, {4}};
    assert_status_msg(dpt_stream_open(p, "train", 0, 10, &SPARSE, &wrong, 1, 1u, &s), DPT_ERR_DATA,
                      "/train/x: sample shape (3) does not match the model input (4)");
    assert_null(s);
    assert_status_msg(dpt_stream_open(tpath("none.h5"), "train", 0, 10, &SPARSE, NULL, 1, 1u, &s),
                      DPT_ERR_DATA, "no such file");
    assert_status_msg(dpt_stream_open(p, "valid", 0, 10, &SPARSE, NULL, 1, 1u, &s), DPT_ERR_DATA,
                      "/valid: no such group");
    assert_status_msg(dpt_stream_open(p, "train", 0, 1002, &SPARSE, NULL, 1, 1u, &s),
                      DPT_ERR_INTERNAL, "outside [0, 1001)");
    const dpt_target_spec mse3 = {DPT_TARGET_VALUES, 3, "mean_squared_error"};
    assert_status_msg(dpt_stream_open(p, "train", 0, 10, &mse3, NULL, 1, 1u, &s), DPT_ERR_DATA,
                      "needs 3 target values");
    assert_null(s);

    assert_ok(dpt_stream_open(p, "train", 0, 1001, &SPARSE, NULL, 1, 1u, &s));
    float x[3 * 64], y[64];
    assert_status_msg(dpt_stream_next(s, 1, x, y), DPT_ERR_INTERNAL, "before dpt_stream_begin");
    dpt_stream_begin_epoch(s, 0);
    assert_ok(dpt_stream_next(s, 64, x, y));
    dpt_stream_hold_io(s); /* the caller may use HDF5 now */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    dpt_stream_release_io(s);
    int64_t left = 1001 - 64;
    while (left > 0) {
        int64_t c = left < 64 ? left : 64;
        assert_ok(dpt_stream_next(s, c, x, y));
        left -= c;
    }
    dpt_stream_destroy(&s);
    /* destroy while the thread is mid-epoch */
    assert_ok(dpt_stream_open(p, "train", 0, 1001, &SPARSE, NULL, 1, 1u, &s));
    dpt_stream_begin_epoch(s, 0);
    assert_ok(dpt_stream_next(s, 3, x, y));
    dpt_stream_destroy(&s);
    remove(p);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s", dpt_test_tmpdir("stream"));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rmdir(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_counts),
        cmocka_unit_test(test_local_order),
        cmocka_unit_test(test_stream_covers_chunked),
        cmocka_unit_test(test_stream_covers_u8),
        cmocka_unit_test(test_stream_covers_contiguous),
        cmocka_unit_test(test_stream_deterministic),
        cmocka_unit_test(test_two_streams_at_once),
        cmocka_unit_test(test_stream_window_and_memory),
        cmocka_unit_test(test_stream_nan_in_later_chunk),
        cmocka_unit_test(test_stream_bad_label),
        cmocka_unit_test(test_stream_onehot),
        cmocka_unit_test(test_stream_open_errors_and_hold),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
