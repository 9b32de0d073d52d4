/* The streaming reader (dpt_stream, include/dptrain/data.h): this rank's rows [lo, hi) of a
 * split, epoch after epoch, without holding the shard in memory. The shard is cut into chunks
 * aligned to the file's chunking of x along samples (or ~1 MiB of rows for a contiguous x); each
 * epoch permutes the chunks (dpt_order keyed by seed, epoch, lo), groups consecutive chunks of
 * that order into windows, and permutes the rows inside each window (keyed by seed, epoch, lo,
 * window). One background pthread reads window w + 1 into the second buffer while the caller
 * consumes window w from the first, converting and checking values as shard.c does.
 *
 * Threading rules: the reader thread is the only one calling HDF5 while an epoch streams; it
 * holds a process-wide lock around each chunk's HDF5 calls, so that the caller (and other
 * streams) can borrow HDF5 with dpt_stream_hold_io. It never calls dpt_error_set (the one error
 * message is not thread-safe): it writes its message into the window's slot and the caller's
 * dpt_stream_next turns it into the status. Which rows a rank owns, and how many samples a step
 * takes (dpt_local_count), are in order.c; the batch buffer and the step are the trainer's. No MPI
 * here. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

/* Held around each chunk's HDF5 calls by every stream's reader thread, and by the caller between
 * dpt_stream_hold_io and dpt_stream_release_io: one lock for the process, since HDF5 is not
 * thread-safe and two streams (train and validation, say) must not read at once. */
static pthread_mutex_t g_io_mu = PTHREAD_MUTEX_INITIALIZER;

/* Order tags (dpt_order_init_keyed): the chunk order and the in-window orders. */
#define TAG_CHUNKS 0xC4C45u
#define TAG_WINDOW 0x3D0u

typedef enum { BUF_EMPTY, BUF_FILLING, BUF_READY } buf_state;

typedef struct {
    float *x; /* (cap_rows, xs) */
    float *y; /* (cap_rows, ys) */
    /* under mu: */
    buf_state state;
    int64_t window; /* the window it holds (READY) */
    int64_t rows;   /* rows of that window */
    dpt_status status;
    char msg[1024]; /* the reader thread's message when status != DPT_OK */
} win_buf;

struct dpt_stream {
    /* fixed at open */
    dpt_h5_split h; /* the reader thread's file: touched only by it once streaming starts */
    int64_t lo, hi, rows;
    int64_t xs, ys, y_cols;
    dpt_y_plan plan; /* how y becomes targets (dpt_y_plan_make, as dpt_shard_open) */
    int64_t x_ids;   /* > 0: x values must be token ids in [0, x_ids) (dpt_target_spec) */
    bool x_u8, y_ints;
    float scale;
    uint32_t seed;
    int64_t
        chunk_rows; /* rows per chunk: chunk c is file rows [(c0+c)*cr, (c0+c+1)*cr) in [lo, hi) */
    int64_t c0;     /* lo / chunk_rows */
    int64_t n_chunks;
    int64_t win_chunks; /* W */
    int64_t n_windows;
    int64_t cap_rows; /* rows a window buffer holds: W * chunk_rows, at most the shard */
    int n_bufs;       /* 2, or 1 when the shard is one window */
    win_buf buf[2];
    uint8_t *stage_x; /* (chunk_rows, xs) raw uint8; NULL for other x types */
    void *stage_y;    /* (chunk_rows, y_cols) int64 or double */
    size_t bytes;     /* allocated for samples */

    pthread_mutex_t mu; /* guards gen, quit, epoch, chunk order, next_fill, buf[].state.. */
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started;
    bool quit;
    uint64_t gen; /* bumped by every begin_epoch: the thread drops work of an older generation */
    bool active;  /* an epoch has begun */
    int64_t epoch;
    dpt_order chunks; /* this epoch's chunk order */
    int64_t next_fill;

    /* the consumer (the caller's thread only) */
    int64_t cur_window, cur_pos;
    int64_t order_window; /* the window `in_window` was set up for, -1 none */
    dpt_order in_window;
    dpt_status sticky;
    char sticky_msg[1024];
};

int64_t dpt_stream_rows(const dpt_stream *s) { return s->rows; }
int64_t dpt_stream_x_size(const dpt_stream *s) { return s->xs; }
int64_t dpt_stream_y_size(const dpt_stream *s) { return s->ys; }
int64_t dpt_stream_chunk_rows(const dpt_stream *s) { return s->chunk_rows; }
int64_t dpt_stream_window_chunks(const dpt_stream *s) { return s->win_chunks; }
size_t dpt_stream_buffer_bytes(const dpt_stream *s) { return s->bytes; }

/* ---- geometry ------------------------------------------------------------------------------ */

/* File rows [*r0, *r1) of shard chunk c. */
static void chunk_rows_of(const dpt_stream *s, int64_t c, int64_t *r0, int64_t *r1) {
    int64_t a = (s->c0 + c) * s->chunk_rows, b = a + s->chunk_rows;
    *r0 = a > s->lo ? a : s->lo;
    *r1 = b < s->hi ? b : s->hi;
}

/* Chunk positions [*p0, *p1) of window w in the epoch's chunk order. */
static void window_span(const dpt_stream *s, int64_t w, int64_t *p0, int64_t *p1) {
    *p0 = w * s->win_chunks;
    *p1 = *p0 + s->win_chunks < s->n_chunks ? *p0 + s->win_chunks : s->n_chunks;
}

static int64_t window_rows(const dpt_stream *s, const dpt_order *chunks, int64_t w) {
    int64_t p0, p1, n = 0;
    window_span(s, w, &p0, &p1);
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0, r1;
        chunk_rows_of(s, dpt_order_at(chunks, p), &r0, &r1);
        n += r1 - r0;
    }
    return n;
}

/* ---- the reader thread --------------------------------------------------------------------- */

static void buf_fail(win_buf *b, const char *fmt, ...) DPT_PRINTF(2, 3);
static void buf_fail(win_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    b->status = DPT_ERR_DATA;
}

/* Selects rows [r0, r0 + n) of dataset DS and reads them with MEMTYPE into buf. */
static herr_t read_rows(hid_t ds, hid_t memtype, int64_t r0, int64_t n, void *buf) {
    hid_t fs = H5Dget_space(ds);
    if (fs < 0)
        return -1;
    int r = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    herr_t e = r >= 1 && r <= H5S_MAX_RANK ? 0 : -1;
    if (e >= 0)
        e = H5Sget_simple_extent_dims(fs, dims, NULL) < 0 ? -1 : 0;
    for (int i = 0; e >= 0 && i < r; i++)
        cnt[i] = dims[i];
    start[0] = (hsize_t)r0;
    cnt[0] = (hsize_t)n;
    if (e >= 0)
        e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = e >= 0 ? H5Screate_simple(r, cnt, NULL) : -1;
    if (e >= 0 && ms >= 0)
        e = H5Dread(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    else
        e = -1;
    if (ms >= 0)
        H5Sclose(ms);
    H5Sclose(fs);
    return e;
}

/* Converts and checks the y rows of one chunk (file rows r0..r0+n) from stage_y into dst
 * (n, ys). Returns false (message in b) on a bad value. */
static bool convert_y(const dpt_stream *s, win_buf *b, int64_t r0, int64_t n, float *dst) {
    const int64_t cols = s->y_cols;
    const int64_t *iv = s->stage_y;
    const double *dv = s->stage_y;
    const dpt_h5_split *h = &s->h;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = r0 + i;
        float *d = dst + i * s->ys;
        if (s->plan.mode == DPT_Y_COPY) {
            for (int64_t j = 0; j < cols; j++) {
                double v = s->y_ints ? (double)iv[i * cols + j] : dv[i * cols + j];
                if (!isfinite(v) || !isfinite((float)v)) {
                    buf_fail(b, "%s: %s: row %lld: non-finite value", h->path, h->ypath,
                             (long long)row);
                    return false;
                }
                if (s->plan.check_range && (v < 0 || v >= (double)s->plan.n_range)) {
                    if (v != floor(v))
                        buf_fail(b, "%s: %s: row %lld: label %g is not a class index", h->path,
                                 h->ypath, (long long)row, v);
                    else
                        buf_fail(b, "%s: %s: row %lld: label %lld out of range [0, %lld)", h->path,
                                 h->ypath, (long long)row, (long long)v,
                                 (long long)s->plan.n_range);
                    return false;
                }
                d[j] = (float)v;
            }
            continue;
        }
        double v = s->y_ints ? (double)iv[i] : dv[i];
        if (!isfinite(v)) {
            buf_fail(b, "%s: %s: row %lld: non-finite value", h->path, h->ypath, (long long)row);
            return false;
        }
        if (v < 0 || v >= (double)s->plan.n_range || v != floor(v)) {
            if (v != floor(v))
                buf_fail(b, "%s: %s: row %lld: label %g is not a class index", h->path, h->ypath,
                         (long long)row, v);
            else
                buf_fail(b, "%s: %s: row %lld: label %lld out of range [0, %lld)", h->path,
                         h->ypath, (long long)row, (long long)v, (long long)s->plan.n_range);
            return false;
        }
        if (s->plan.mode == DPT_Y_INDEX) {
            d[0] = (float)v;
        } else {
            memset(d, 0, (size_t)s->ys * sizeof(float)); /* the buffer is reused: clear the row */
            d[(int64_t)v] = 1.0f;
        }
    }
    return true;
}

/* True when no x[i] is NaN or infinite: the exponent bits tested with integer ops, which the
 * compiler vectorises (an isfinite loop with an early exit it does not). */
static bool all_finite(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

/* Reads file rows [r0, r0 + n) into dx (n, xs) and dy (n, ys), checking them. */
static bool read_chunk(dpt_stream *s, win_buf *b, int64_t r0, int64_t n, float *dx, float *dy) {
    const dpt_h5_split *h = &s->h;
    pthread_mutex_lock(&g_io_mu);
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    herr_t ex = s->x_u8 ? read_rows(h->x, H5T_NATIVE_UINT8, r0, n, s->stage_x)
                        : read_rows(h->x, H5T_NATIVE_FLOAT, r0, n, dx);
    herr_t ey = ex < 0 ? -1
                       : read_rows(h->y, s->y_ints ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, r0, n,
                                   s->stage_y);
    dpt_h5_quiet_end(&q);
    pthread_mutex_unlock(&g_io_mu);
    if (ex < 0 || ey < 0) {
        buf_fail(b, "%s: %s: cannot read rows [%lld, %lld) (damaged file?)", h->path,
                 ex < 0 ? h->xpath : h->ypath, (long long)r0, (long long)(r0 + n));
        return false;
    }
    const int64_t m = n * s->xs;
    if (s->x_u8) {
        for (int64_t i = 0; i < m; i++)
            dx[i] = (float)s->stage_x[i] * s->scale;
    } else {
        if (s->scale != 1.0f)
            for (int64_t i = 0; i < m; i++)
                dx[i] *= s->scale;
        if (s->x_ids > 0) {
            /* token ids (the finite check is implied), below */
        } else if (!all_finite(dx, m)) { /* find the first bad row */
            for (int64_t i = 0; i < m; i++) {
                if (!isfinite(dx[i])) {
                    buf_fail(b, "%s: %s: row %lld: non-finite value", h->path, h->xpath,
                             (long long)(r0 + i / s->xs));
                    return false;
                }
            }
        }
    }
    if (s->x_ids > 0) {
        int64_t i = dpt_data_bad_id(dx, m, s->x_ids);
        if (i >= 0) {
            buf_fail(b, DPT_BAD_ID_FMT, h->path, h->xpath, (long long)(r0 + i / s->xs),
                     (double)dx[i], dpt_data_bad_id_why(dx[i]), (long long)s->x_ids);
            return false;
        }
    }
    return convert_y(s, b, r0, n, dy);
}

/* True when the work of generation g is stale (a new epoch began, or the stream is closing). */
static bool stale(dpt_stream *s, uint64_t g) {
    pthread_mutex_lock(&s->mu);
    bool st = s->quit || s->gen != g;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Reads window w of the epoch (chunk order `chunks`) into b. Returns false if abandoned. */
static bool fill_window(dpt_stream *s, win_buf *b, int64_t w, const dpt_order *chunks, uint64_t g) {
    int64_t p0, p1, off = 0;
    window_span(s, w, &p0, &p1);
    b->status = DPT_OK;
    b->msg[0] = '\0';
    for (int64_t p = p0; p < p1; p++) {
        if (stale(s, g))
            return false;
        int64_t r0, r1;
        chunk_rows_of(s, dpt_order_at(chunks, p), &r0, &r1);
        DPT_ASSERT(off + (r1 - r0) <= s->cap_rows);
        if (!read_chunk(s, b, r0, r1 - r0, b->x + off * s->xs, b->y + off * s->ys))
            break; /* the error stays in b: reported when the consumer reaches window w */
        off += r1 - r0;
    }
    b->rows = off;
    return true;
}

static void *reader_main(void *arg) {
    dpt_stream *s = arg;
    /* process-directed signals (preemption: SIGTERM, SIGUSR1, SIGINT) go to the caller's thread,
     * whose handlers and interrupted calls the trainer expects */
    sigset_t block;
    sigemptyset(&block);
    const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGALRM, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaddset(&block, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->quit)
            break;
        int64_t w = s->next_fill;
        win_buf *b = s->active && w < s->n_windows ? &s->buf[w % s->n_bufs] : NULL;
        if (!b || b->state != BUF_EMPTY) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        s->next_fill++;
        b->state = BUF_FILLING;
        uint64_t g = s->gen;
        dpt_order chunks = s->chunks;
        pthread_mutex_unlock(&s->mu);
        bool done = fill_window(s, b, w, &chunks, g);
        pthread_mutex_lock(&s->mu);
        if (done && s->gen == g) {
            b->state = BUF_READY;
            b->window = w;
        } else {
            b->state = BUF_EMPTY;
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the caller's side ---------------------------------------------------------------------- */

void dpt_stream_begin_epoch_at(dpt_stream *s, int64_t epoch, int64_t skip) {
    DPT_ASSERT(epoch >= 0 && skip >= 0 && skip <= s->rows);
    pthread_mutex_lock(&s->mu);
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    /* a window being filled for the old epoch is abandoned at its next chunk */
    while (s->buf[0].state == BUF_FILLING || s->buf[1].state == BUF_FILLING)
        pthread_cond_wait(&s->cv, &s->mu);
    s->buf[0].state = s->buf[1].state = BUF_EMPTY;
    s->epoch = epoch;
    dpt_order_init_keyed(&s->chunks, s->n_chunks, true, s->seed, TAG_CHUNKS, (uint64_t)epoch,
                         (uint64_t)s->lo);
    /* the window holding sample `skip` of the epoch's stream */
    int64_t w = 0;
    while (w < s->n_windows) {
        int64_t n = window_rows(s, &s->chunks, w);
        if (skip < n)
            break;
        skip -= n;
        w++;
    }
    s->next_fill = w;
    s->active = true;
    s->cur_window = w;
    s->cur_pos = skip;
    s->order_window = -1;
    s->sticky = DPT_OK;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void dpt_stream_begin_epoch(dpt_stream *s, int64_t epoch) {
    dpt_stream_begin_epoch_at(s, epoch, 0);
}

dpt_status dpt_stream_next(dpt_stream *s, int64_t count, float *x, float *y) {
    DPT_ASSERT(count >= 0);
    if (s->sticky != DPT_OK)
        return dpt_error_set(s->sticky, "%s", s->sticky_msg);
    if (!s->active)
        return dpt_error_set(DPT_ERR_INTERNAL, "%s: %s: stream read before dpt_stream_begin_epoch",
                             s->h.path, s->h.gpath);
    const size_t xb = (size_t)s->xs * sizeof(float), yb = (size_t)s->ys * sizeof(float);
    int64_t done = 0;
    while (done < count) {
        if (s->cur_window >= s->n_windows)
            return dpt_error_set(DPT_ERR_INTERNAL,
                                 "%s: %s: epoch %lld: asked for %lld samples beyond the %lld of "
                                 "rows [%lld, %lld)",
                                 s->h.path, s->h.gpath, (long long)s->epoch,
                                 (long long)(count - done), (long long)s->rows, (long long)s->lo,
                                 (long long)s->hi);
        win_buf *b = &s->buf[s->cur_window % s->n_bufs];
        pthread_mutex_lock(&s->mu);
        while (!(b->state == BUF_READY && b->window == s->cur_window))
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        /* READY: the thread does not touch b until we mark it EMPTY */
        if (b->status != DPT_OK) {
            s->sticky = b->status;
            snprintf(s->sticky_msg, sizeof s->sticky_msg, "%s", b->msg);
            return dpt_error_set(s->sticky, "%s", s->sticky_msg);
        }
        if (s->order_window != s->cur_window) {
            uint64_t a = (uint64_t)(uint32_t)s->epoch | (uint64_t)s->cur_window << 32;
            dpt_order_init_keyed(&s->in_window, b->rows, true, s->seed, TAG_WINDOW, a,
                                 (uint64_t)s->lo);
            s->order_window = s->cur_window;
        }
        int64_t m = b->rows - s->cur_pos < count - done ? b->rows - s->cur_pos : count - done;
        for (int64_t i = 0; i < m; i++) {
            int64_t r = dpt_order_at(&s->in_window, s->cur_pos + i);
            memcpy(x + (done + i) * s->xs, b->x + r * s->xs, xb);
            memcpy(y + (done + i) * s->ys, b->y + r * s->ys, yb);
        }
        done += m;
        s->cur_pos += m;
        if (s->cur_pos == b->rows) { /* window consumed: hand the buffer back to the thread */
            pthread_mutex_lock(&s->mu);
            b->state = BUF_EMPTY;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            s->cur_window++;
            s->cur_pos = 0;
        }
    }
    return DPT_OK;
}

void dpt_stream_hold_io(dpt_stream *s) {
    (void)s;
    pthread_mutex_lock(&g_io_mu);
}

void dpt_stream_release_io(dpt_stream *s) {
    (void)s;
    pthread_mutex_unlock(&g_io_mu);
}

/* ---- open / destroy ------------------------------------------------------------------------- */

/* Rows of x's HDF5 chunks along samples, or 0 when x is not chunked. */
static int64_t file_chunk_rows(hid_t x) {
    hid_t dcpl = H5Dget_create_plist(x);
    if (dcpl < 0)
        return 0;
    int64_t rows = 0;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t dims[H5S_MAX_RANK];
        int r = H5Pget_chunk(dcpl, H5S_MAX_RANK, dims);
        if (r >= 1)
            rows = (int64_t)dims[0];
    }
    H5Pclose(dcpl);
    return rows;
}

static dpt_status alloc_counted(dpt_stream *s, int64_t bytes, const char *what, void **p) {
    dpt_status st = dpt_alloc((size_t)bytes, what, p);
    if (st == DPT_OK)
        s->bytes += (size_t)bytes;
    return st;
}

/* Chunking, window size and buffers. */
static dpt_status stream_layout(dpt_stream *s, int64_t window_bytes) {
    int64_t cr = file_chunk_rows(s->h.x);
    if (cr < 1) { /* contiguous x: about DPT_DATA_CHUNK_BYTES of float rows */
        cr = (int64_t)DPT_DATA_CHUNK_BYTES / (s->xs * (int64_t)sizeof(float));
        if (cr < 1)
            cr = 1;
    }
    s->chunk_rows = cr;
    s->c0 = s->lo / cr;
    s->n_chunks = s->rows == 0 ? 0 : (s->hi - 1) / cr - s->c0 + 1;
    int64_t row_bytes, chunk_bytes;
    dpt_status st = dpt_mul_i64(s->xs + s->ys, (int64_t)sizeof(float), "stream row", &row_bytes);
    if (st == DPT_OK)
        st = dpt_mul_i64(cr, row_bytes, "stream chunk", &chunk_bytes);
    if (st != DPT_OK)
        return st;
    int64_t W = window_bytes > 0 ? window_bytes / chunk_bytes : 0;
    if (W < 2)
        W = 2; /* double buffering needs something to overlap; a window is at least 2 chunks */
    if (W > s->n_chunks)
        W = s->n_chunks;
    s->win_chunks = W;
    s->n_windows = W > 0 ? (s->n_chunks + W - 1) / W : 0;
    s->n_bufs = s->n_windows > 1 ? 2 : 1;
    if (s->rows == 0)
        return DPT_OK;
    st = dpt_mul_i64(W, cr, "stream window", &s->cap_rows);
    if (st != DPT_OK)
        return st;
    if (s->cap_rows > s->rows)
        s->cap_rows = s->rows;
    int64_t nx, ny, sx = 0, sy;
    st = dpt_mul_i64(s->cap_rows, s->xs * (int64_t)sizeof(float), "stream window x", &nx);
    if (st == DPT_OK)
        st = dpt_mul_i64(s->cap_rows, s->ys * (int64_t)sizeof(float), "stream window y", &ny);
    int64_t stage_rows = cr < s->cap_rows ? cr : s->cap_rows;
    if (st == DPT_OK && s->x_u8)
        st = dpt_mul_i64(stage_rows, s->xs, "stream staging x", &sx);
    if (st == DPT_OK)
        st = dpt_mul_i64(stage_rows, s->y_cols * 8, "stream staging y", &sy);
    for (int i = 0; i < s->n_bufs && st == DPT_OK; i++) {
        st = alloc_counted(s, nx, "stream window x", (void **)&s->buf[i].x);
        if (st == DPT_OK)
            st = alloc_counted(s, ny, "stream window y", (void **)&s->buf[i].y);
    }
    if (st == DPT_OK && s->x_u8)
        st = alloc_counted(s, sx, "stream staging x", (void **)&s->stage_x);
    if (st == DPT_OK)
        st = alloc_counted(s, sy, "stream staging y", &s->stage_y);
    return st;
}

dpt_status dpt_stream_open(const char *path, const char *group, int64_t lo, int64_t hi,
                           const dpt_target_spec *t, const dpt_shape *expect_x,
                           int64_t window_bytes, uint32_t seed, dpt_stream **out) {
    *out = NULL;
    if (!t)
        return dpt_error_set(DPT_ERR_INTERNAL, "%s: stream: targets are required", path);
    /* the metadata checks (shape, targets), with dpt_shard_open's messages: an empty shard */
    dpt_shard *probe = NULL;
    dpt_status st = dpt_shard_open(path, group, lo, lo, t, expect_x, &probe);
    if (st != DPT_OK)
        return st;
    int64_t xs = dpt_shard_x_size(probe), ys = dpt_shard_y_size(probe);
    dpt_shard_destroy(&probe);

    dpt_stream *s = calloc(1, sizeof *s);
    if (!s)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: stream: out of memory", path);
    st = dpt_h5_split_open(path, group, &s->h);
    if (st != DPT_OK) {
        free(s);
        return st;
    }
    if (hi < lo || hi > s->h.info.n)
        st = dpt_error_set(DPT_ERR_INTERNAL, "%s: %s: rows [%lld, %lld) outside [0, %lld)", path,
                           s->h.gpath, (long long)lo, (long long)hi, (long long)s->h.info.n);
    s->lo = lo;
    s->hi = hi;
    s->rows = hi - lo;
    s->xs = xs;
    s->ys = ys;
    s->y_cols = s->h.info.y_cols;
    s->x_u8 = s->h.info.x_uint8;
    s->scale = s->h.info.x_scale;
    s->y_ints = s->h.y_class == H5T_INTEGER;
    s->seed = seed;
    s->order_window = -1;
    if (st == DPT_OK)
        st = dpt_y_plan_make(&s->h, t, &s->plan);
    s->x_ids = t->x_ids;
    if (st == DPT_OK) {
        dpt_h5_quiet q;
        dpt_h5_quiet_begin(&q);
        st = stream_layout(s, window_bytes);
        dpt_h5_quiet_end(&q);
    }
    if (st == DPT_OK) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        if (pthread_create(&s->thread, NULL, reader_main, s) != 0) {
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
            st =
                dpt_error_set(DPT_ERR_INTERNAL, "%s: stream: cannot start the reader thread", path);
        } else {
            s->thread_started = true;
        }
    }
    if (st != DPT_OK) {
        dpt_stream_destroy(&s);
        return st;
    }
    *out = s;
    return DPT_OK;
}

void dpt_stream_destroy(dpt_stream **p) {
    if (!p || !*p)
        return;
    dpt_stream *s = *p;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        s->gen++;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    dpt_h5_split_close(&s->h);
    for (int i = 0; i < 2; i++) {
        dpt_free(s->buf[i].x);
        dpt_free(s->buf[i].y);
    }
    dpt_free(s->stage_x);
    dpt_free(s->stage_y);
    free(s);
    *p = NULL;
}
