/* Core services: checked allocation, assertions, overflow-checked arithmetic, monotonic time.
 * durable file commits. The MPI_Abort behaviour of assertions is injected by src/comm
 * (dpt_set_abort_hook). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dptrain/core.h"

static dpt_abort_fn g_abort;
static int g_rank = 0, g_size = 1;

void dpt_set_abort_hook(dpt_abort_fn fn) { g_abort = fn; }

void dpt_set_log_rank(int rank, int size) {
    g_rank = rank;
    g_size = size;
}

void dpt_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "[rank %d/%d] %s:%d: internal error: assertion failed: %s\n", g_rank, g_size,
            file, line, cond);
    fflush(stderr);
    if (g_abort)
        g_abort(DPT_ERR_INTERNAL);
    abort();
}

#define DPT_ALLOC_LIMIT ((size_t)1 << 46) /* 64 TiB: anything larger is a bug or absurd input */

dpt_status dpt_alloc(size_t n_bytes, const char *what, void **out) {
    *out = NULL;
    if (n_bytes > DPT_ALLOC_LIMIT)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: size %zu bytes is too large", what, n_bytes);
    size_t rounded = (n_bytes + 63) / 64 * 64;
    if (rounded == 0)
        rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory (%zu bytes)", what, n_bytes);
    memset(p, 0, rounded);
    *out = p;
    return DPT_OK;
}

void dpt_free(void *p) { free(p); }

dpt_status dpt_mul_i64(int64_t a, int64_t b, const char *what, int64_t *out) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        return dpt_error_set(DPT_ERR_NOMEM, "%s: size %lld x %lld overflows", what, (long long)a,
                             (long long)b);
    *out = r;
    return DPT_OK;
}

uint64_t dpt_fnv1a64(uint64_t h, const void *data, size_t n_bytes) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n_bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

double dpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *dpt_file_kind(unsigned int mode) {
    mode_t m = (mode_t)mode;
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISLNK(m))
        return "a symbolic link";
    return "not a regular file";
}

int64_t dpt_shape_size(const dpt_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] < 0 || (s->dim[i] > 0 && n > INT64_MAX / s->dim[i]))
            return -1;
        n *= s->dim[i];
    }
    return n;
}

/* fsync the directory holding path (a rename into it is durable only then) */
static dpt_status fsync_dir(const char *path) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot open directory %s to fsync it: %s", path, dir,
                             strerror(errno));
    dpt_status st = DPT_OK;
    /* some file systems cannot fsync a directory (EINVAL): the rename is done anyway */
    if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot fsync directory %s: %s", path, dir,
                           strerror(errno));
    close(dfd);
    return st;
}

dpt_status dpt_file_commit(const char *tmp, const char *path) {
    int fd = open(tmp, O_RDONLY);
    int e = fd < 0 ? errno : (fsync(fd) != 0 && errno != EINVAL ? errno : 0);
    if (fd >= 0)
        close(fd);
    if (e) {
        unlink(tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: cannot fsync %s: %s", path, tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: cannot rename %s onto it: %s", path, tmp,
                             strerror(e));
    }
    return fsync_dir(path);
}
