/* Converters that WRITE datasets in the format of datasets/FORMAT.md: synthetic tutorial data,
 * Fashion-MNIST from its gzip'd IDX files, and CSV with a header row. Each writes OUT.tmp with
 * serial HDF5 and renames it into place, so a crash never leaves a half-written OUT. Run them on
 * one rank (the CLI uses rank 0 and agrees the status); nothing here calls MPI. Reading is in
 * shard.c, printing a file in inspect.c. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data_internal.h"

/* ---- synthetic tutorial data ----------------------------------------------------------------- */

dpt_status dpt_data_write_synth(const char *out_path, int64_t n, int64_t features, uint32_t seed) {
    if (n < 1 || features < 1)
        return dpt_error_set(DPT_ERR_USAGE,
                             "%s: need at least 1 sample and 1 feature, got %lld x %lld", out_path,
                             (long long)n, (long long)features);
    int64_t total;
    dpt_status st = dpt_mul_i64(n, features, "synthetic data", &total);
    if (st != DPT_OK)
        return st;
    int64_t br = (int64_t)DPT_DATA_BLOCK_BYTES / (features * (int64_t)sizeof(float));
    if (br < 1)
        br = 1;
    if (br > n)
        br = n;
    int64_t buf_n;
    if ((st = dpt_mul_i64(br, features, "synthetic data block", &buf_n)) != DPT_OK)
        return st;
    float *xb = NULL;
    int32_t *yb = NULL;
    if ((st = dpt_alloc((size_t)buf_n * sizeof(float), "synthetic x block", (void **)&xb)) !=
        DPT_OK)
        return st;
    if ((st = dpt_alloc((size_t)br * sizeof(int32_t), "synthetic y block", (void **)&yb)) !=
        DPT_OK) {
        dpt_free(xb);
        return st;
    }
    char tmp[4200];
    hid_t f;
    if ((st = dpt_h5_create_tmp(out_path, tmp, sizeof tmp, &f)) != DPT_OK) {
        dpt_free(xb);
        dpt_free(yb);
        return st;
    }
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)n, (hsize_t)features}, yd[1] = {(hsize_t)n};
    hid_t x = g < 0 ? -1 : dpt_h5_create_rows(g, "x", H5T_IEEE_F32LE, 2, xd);
    hid_t y = g < 0 ? -1 : dpt_h5_create_rows(g, "y", H5T_STD_I32LE, 1, yd);
    herr_t e = (g < 0 || x < 0 || y < 0) ? -1 : dpt_h5_attr_i64(y, "n_classes", 2);
    dpt_rng rx, ry;
    dpt_rng_init(&rx, seed, 1);
    dpt_rng_init(&ry, seed, 2);
    for (int64_t r0 = 0; r0 < n && e >= 0; r0 += br) {
        int64_t m = n - r0 < br ? n - r0 : br;
        for (int64_t i = 0; i < m * features; i++)
            xb[i] = dpt_rng_uniform(&rx);
        for (int64_t i = 0; i < m; i++)
            yb[i] = (int32_t)(dpt_rng_u32(&ry) >> 31);
        e = dpt_h5_write_rows(x, H5T_NATIVE_FLOAT, (hsize_t)r0, (hsize_t)m, xb);
        if (e >= 0)
            e = dpt_h5_write_rows(y, H5T_NATIVE_INT32, (hsize_t)r0, (hsize_t)m, yb);
    }
    if (x >= 0)
        H5Dclose(x);
    if (y >= 0)
        H5Dclose(y);
    if (g >= 0)
        H5Gclose(g);
    dpt_h5_quiet_end(&q);
    dpt_free(xb);
    dpt_free(yb);
    if (e < 0) {
        dpt_h5_abandon_tmp(f, tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: writing /train failed (disk full?)", tmp);
    }
    return dpt_h5_finish_tmp(f, tmp, out_path);
}

/* ---- Fashion-MNIST ------------------------------------------------------------------------- */

static const char *const FMNIST_CLASSES[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                               "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                               "Bag",         "Ankle boot"};

/* An open IDX file: gzip (or plain: zlib reads both). */
typedef struct {
    gzFile gz;
    char path[4200];
} idx_file;

static dpt_status idx_open(const char *dir, const char *base, idx_file *f) {
    /* prefer NAME.gz, fall back to the uncompressed NAME */
    snprintf(f->path, sizeof f->path, "%s/%s.gz", dir, base);
    FILE *t = fopen(f->path, "rb");
    if (!t) {
        snprintf(f->path, sizeof f->path, "%s/%s", dir, base);
        t = fopen(f->path, "rb");
    }
    if (!t) {
        snprintf(f->path, sizeof f->path, "%s/%s.gz", dir, base);
        return dpt_error_set(DPT_ERR_DATA, "%s: no such file", f->path);
    }
    fclose(t);
    f->gz = gzopen(f->path, "rb");
    if (!f->gz)
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot open: %s", f->path, strerror(errno));
    gzbuffer(f->gz, 1 << 17);
    return DPT_OK;
}

/* Reads exactly n bytes; DPT_ERR_DATA naming the file and `what` if short or corrupt. */
static dpt_status idx_read(idx_file *f, void *buf, size_t n, const char *what) {
    unsigned char *p = buf;
    while (n > 0) {
        unsigned want = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f->gz, p, want);
        if (got < 0) {
            int err;
            const char *m = gzerror(f->gz, &err);
            return dpt_error_set(DPT_ERR_DATA, "%s: damaged gzip data while reading %s: %s",
                                 f->path, what, m ? m : "?");
        }
        if (got == 0)
            return dpt_error_set(DPT_ERR_DATA, "%s: truncated: file ends while reading %s", f->path,
                                 what);
        p += got;
        n -= (size_t)got;
    }
    return DPT_OK;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Converts one images/labels pair into group NAME of file F. */
static dpt_status fmnist_split(hid_t f, const char *dir, const char *prefix, const char *name) {
    char ib[128], lb[128];
    snprintf(ib, sizeof ib, "%s-images-idx3-ubyte", prefix);
    snprintf(lb, sizeof lb, "%s-labels-idx1-ubyte", prefix);
    idx_file fi = {0}, fl = {0};
    uint8_t *img = NULL, *lab = NULL;
    hid_t g = -1, x = -1, y = -1;
    unsigned char h[16];
    dpt_status st = idx_open(dir, ib, &fi);
    if (st == DPT_OK)
        st = idx_open(dir, lb, &fl);
    uint32_t n = 0, rows = 0, cols = 0;
    if (st == DPT_OK)
        st = idx_read(&fi, h, 16, "the header");
    if (st == DPT_OK) {
        if (be32(h) != 0x00000803u)
            st = dpt_error_set(DPT_ERR_DATA,
                               "%s: bad magic number 0x%08x (expected 0x00000803: IDX unsigned "
                               "bytes, 3 dimensions)",
                               fi.path, (unsigned)be32(h));
        n = be32(h + 4);
        rows = be32(h + 8);
        cols = be32(h + 12);
        if (st == DPT_OK &&
            (n < 1 || n > (1u << 30) || rows < 1 || rows > 4096 || cols < 1 || cols > 4096))
            st = dpt_error_set(DPT_ERR_DATA, "%s: implausible header: %u images of %u x %u",
                               fi.path, (unsigned)n, (unsigned)rows, (unsigned)cols);
    }
    if (st == DPT_OK)
        st = idx_read(&fl, h, 8, "the header");
    if (st == DPT_OK) {
        if (be32(h) != 0x00000801u)
            st = dpt_error_set(DPT_ERR_DATA,
                               "%s: bad magic number 0x%08x (expected 0x00000801: IDX unsigned "
                               "bytes, 1 dimension)",
                               fl.path, (unsigned)be32(h));
        else if (be32(h + 4) != n)
            st = dpt_error_set(DPT_ERR_DATA, "%s: %u labels, but %s has %u images", fl.path,
                               (unsigned)be32(h + 4), fi.path, (unsigned)n);
    }
    const uint32_t block = 8192;
    size_t img_bytes = (size_t)rows * cols;
    if (st == DPT_OK)
        st = dpt_alloc(img_bytes * block, "Fashion-MNIST block", (void **)&img);
    if (st == DPT_OK)
        st = dpt_alloc(block, "Fashion-MNIST labels", (void **)&lab);
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    if (st == DPT_OK) {
        hsize_t xd[3] = {n, rows, cols}, yd[1] = {n};
        g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        x = g < 0 ? -1 : dpt_h5_create_rows(g, "x", H5T_STD_U8LE, 3, xd);
        y = g < 0 ? -1 : dpt_h5_create_rows(g, "y", H5T_STD_U8LE, 1, yd);
        if (x < 0 || y < 0 || dpt_h5_attr_f32(x, "scale", 1.0f / 255.0f) < 0 ||
            dpt_h5_attr_i64(y, "n_classes", 10) < 0 ||
            dpt_h5_attr_strings(y, "class_names", FMNIST_CLASSES, 10) < 0)
            st = dpt_error_set(DPT_ERR_IO, "cannot create /%s in the output file", name);
    }
    char what[96];
    for (uint32_t i0 = 0; i0 < n && st == DPT_OK; i0 += block) {
        uint32_t m = n - i0 < block ? n - i0 : block;
        snprintf(what, sizeof what, "images %u..%u of %u", (unsigned)i0, (unsigned)(i0 + m),
                 (unsigned)n);
        st = idx_read(&fi, img, img_bytes * m, what);
        snprintf(what, sizeof what, "labels %u..%u of %u", (unsigned)i0, (unsigned)(i0 + m),
                 (unsigned)n);
        if (st == DPT_OK)
            st = idx_read(&fl, lab, m, what);
        for (uint32_t i = 0; i < m && st == DPT_OK; i++)
            if (lab[i] >= 10)
                st = dpt_error_set(DPT_ERR_DATA, "%s: item %u: label %u out of range [0, 10)",
                                   fl.path, (unsigned)(i0 + i), (unsigned)lab[i]);
        if (st == DPT_OK && (dpt_h5_write_rows(x, H5T_NATIVE_UINT8, i0, m, img) < 0 ||
                             dpt_h5_write_rows(y, H5T_NATIVE_UINT8, i0, m, lab) < 0))
            st = dpt_error_set(DPT_ERR_IO, "writing /%s failed (disk full?)", name);
    }
    if (x >= 0)
        H5Dclose(x);
    if (y >= 0)
        H5Dclose(y);
    if (g >= 0)
        H5Gclose(g);
    dpt_h5_quiet_end(&q);
    dpt_free(img);
    dpt_free(lab);
    if (fi.gz)
        gzclose(fi.gz);
    if (fl.gz)
        gzclose(fl.gz);
    return st;
}

dpt_status dpt_data_write_fmnist(const char *idx_dir, const char *out_path) {
    char tmp[4200];
    hid_t f;
    dpt_status st = dpt_h5_create_tmp(out_path, tmp, sizeof tmp, &f);
    if (st != DPT_OK)
        return st;
    st = fmnist_split(f, idx_dir, "train", "train");
    if (st == DPT_OK)
        st = fmnist_split(f, idx_dir, "t10k", "test");
    if (st != DPT_OK) {
        dpt_h5_abandon_tmp(f, tmp);
        return st;
    }
    return dpt_h5_finish_tmp(f, tmp, out_path);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* Splits LINE in place at commas (double-quoted fields may hold commas; "" is a quote), trimming
 * spaces. Stores up to max field pointers; returns the number of fields. */
static int64_t csv_split(char *line, char **fields, int64_t max) {
    int64_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p, *w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    break;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++; /* ignore anything after the closing quote */
        } else {
            while (*p && *p != ',')
                *w++ = *p++;
            while (w > start && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
        }
        char sep = *p;
        *w = '\0';
        if (n < max)
            fields[n] = start;
        n++;
        if (sep != ',')
            break;
        p++;
    }
    return n;
}

/* Reads one line (any length) into *buf; strips "\r\n". Returns false at end of file. */
static bool csv_getline(FILE *f, char **buf, size_t *cap) {
    ssize_t len = getline(buf, cap, f);
    if (len < 0)
        return false;
    while (len > 0 && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r'))
        (*buf)[--len] = '\0';
    return true;
}

static bool blank(const char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

typedef struct {
    float *x;       /* (n, F) */
    double *y;      /* (n) */
    int64_t n, cap; /* rows stored, rows allocated */
} csv_rows;

static dpt_status csv_grow(csv_rows *r, int64_t F, const char *path) {
    int64_t cap = r->cap ? r->cap * 2 : 1024, nx;
    if (dpt_mul_i64(cap, F, path, &nx) != DPT_OK || nx > ((int64_t)1 << 40))
        return dpt_error_set(DPT_ERR_NOMEM, "%s: too large", path);
    float *x = realloc(r->x, (size_t)nx * sizeof(float));
    if (!x)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    r->x = x;
    double *y = realloc(r->y, (size_t)cap * sizeof(double));
    if (!y)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    r->y = y;
    r->cap = cap;
    return DPT_OK;
}

static bool parse_num(const char *s, double *v) {
    if (!*s)
        return false;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0';
}

static dpt_status csv_write(const char *csv_path, const char *out_path, const csv_rows *r,
                            int64_t F, char **names, bool ints) {
    char tmp[4200];
    hid_t f;
    dpt_status st = dpt_h5_create_tmp(out_path, tmp, sizeof tmp, &f);
    if (st != DPT_OK)
        return st;
    int32_t *yi = NULL;
    float *yf = NULL;
    st = ints ? dpt_alloc((size_t)r->n * sizeof(int32_t), "CSV labels", (void **)&yi)
              : dpt_alloc((size_t)r->n * sizeof(float), "CSV targets", (void **)&yf);
    if (st != DPT_OK) {
        dpt_h5_abandon_tmp(f, tmp);
        return st;
    }
    for (int64_t i = 0; i < r->n; i++) {
        if (ints)
            yi[i] = (int32_t)r->y[i];
        else
            yf[i] = (float)r->y[i];
    }
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    hsize_t xd[2] = {(hsize_t)r->n, (hsize_t)F}, yd[2] = {(hsize_t)r->n, 1};
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t x = g < 0 ? -1 : dpt_h5_create_rows(g, "x", H5T_IEEE_F32LE, 2, xd);
    hid_t y =
        g < 0 ? -1
              : dpt_h5_create_rows(g, "y", ints ? H5T_STD_I32LE : H5T_IEEE_F32LE, ints ? 1 : 2, yd);
    herr_t e = (x < 0 || y < 0) ? -1 : 0;
    if (e >= 0)
        e = dpt_h5_attr_strings(x, "feature_names", (const char *const *)names, (int)F);
    if (e >= 0)
        e = dpt_h5_write_rows(x, H5T_NATIVE_FLOAT, 0, (hsize_t)r->n, r->x);
    if (e >= 0)
        e = dpt_h5_write_rows(y, ints ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, 0, (hsize_t)r->n,
                              ints ? (void *)yi : (void *)yf);
    if (x >= 0)
        H5Dclose(x);
    if (y >= 0)
        H5Dclose(y);
    if (g >= 0)
        H5Gclose(g);
    dpt_h5_quiet_end(&q);
    dpt_free(yi);
    dpt_free(yf);
    if (e < 0) {
        dpt_h5_abandon_tmp(f, tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: writing /train (from %s) failed (disk full?)", tmp,
                             csv_path);
    }
    return dpt_h5_finish_tmp(f, tmp, out_path);
}

dpt_status dpt_data_write_csv(const char *csv_path, const char *label_column,
                              const char *out_path) {
    FILE *in = fopen(csv_path, "r");
    if (!in) {
        if (errno == ENOENT)
            return dpt_error_set(DPT_ERR_DATA, "%s: no such file", csv_path);
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot read: %s", csv_path, strerror(errno));
    }
    char *line = NULL, *header = NULL;
    size_t cap = 0;
    char **fields = NULL, **names = NULL;
    csv_rows rows = {0};
    dpt_status st = DPT_OK;
    int64_t lineno = 0, ncols = 0, label = -1;

    /* header: the first non-blank line */
    bool got = false;
    while ((got = csv_getline(in, &line, &cap))) {
        lineno++;
        if (!blank(line))
            break;
    }
    if (!got)
        st = dpt_error_set(DPT_ERR_DATA, "%s: empty file (expected a header row)", csv_path);
    if (st == DPT_OK) {
        char *h = line;
        if ((unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB &&
            (unsigned char)h[2] == 0xBF)
            h += 3; /* UTF-8 byte order mark */
        header = strdup(h);
        int64_t max_cols = 1; /* commas + 1 bounds the number of fields */
        for (const char *c = h; *c; c++)
            max_cols += *c == ',';
        fields = calloc((size_t)max_cols + 1, sizeof *fields);
        names = calloc((size_t)max_cols + 1, sizeof *names);
        if (!header || !fields || !names)
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", csv_path);
        else
            ncols = csv_split(header, names, max_cols);
    }
    if (st == DPT_OK) {
        for (int64_t j = 0; j < ncols && st == DPT_OK; j++) {
            if (strcmp(names[j], label_column) != 0)
                continue;
            if (label >= 0)
                st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: column \"%s\" appears twice", csv_path,
                                   (long long)lineno, label_column);
            label = j;
        }
        if (st == DPT_OK && label < 0) {
            char list[512];
            size_t k = 0;
            list[0] = '\0';
            for (int64_t j = 0; j < ncols && k + 1 < sizeof list; j++) {
                int w = snprintf(list + k, sizeof list - k, "%s\"%s\"", j ? ", " : "", names[j]);
                k += w > 0 ? (size_t)w : 0;
            }
            st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: no label column \"%s\" (columns: %s)",
                               csv_path, (long long)lineno, label_column, list);
        }
        if (st == DPT_OK && ncols < 2)
            st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: no feature columns besides \"%s\"", csv_path,
                               (long long)lineno, label_column);
    }
    const int64_t F = ncols - 1;
    bool ints = true;
    while (st == DPT_OK && csv_getline(in, &line, &cap)) {
        lineno++;
        if (blank(line))
            continue;
        int64_t nf = csv_split(line, fields, ncols);
        if (nf != ncols) {
            st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: expected %lld fields, got %lld", csv_path,
                               (long long)lineno, (long long)ncols, (long long)nf);
            break;
        }
        if (rows.n == rows.cap && (st = csv_grow(&rows, F, csv_path)) != DPT_OK)
            break;
        float *xr = rows.x + rows.n * F;
        for (int64_t j = 0, k = 0; j < ncols; j++) {
            double v;
            if (!parse_num(fields[j], &v)) {
                st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: column \"%s\": not a number: \"%s\"",
                                   csv_path, (long long)lineno, names[j], fields[j]);
                break;
            }
            if (!isfinite(v) || (j != label && !isfinite((float)v))) {
                st = dpt_error_set(DPT_ERR_DATA,
                                   "%s:%lld: column \"%s\": not a finite float32 number: \"%s\"",
                                   csv_path, (long long)lineno, names[j], fields[j]);
                break;
            }
            if (j == label) {
                rows.y[rows.n] = v;
                if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
                    ints = false;
            } else {
                xr[k++] = (float)v;
            }
        }
        if (st == DPT_OK)
            rows.n++;
    }
    if (st == DPT_OK && ferror(in))
        st = dpt_error_set(DPT_ERR_DATA, "%s: read error: %s", csv_path, strerror(errno));
    if (st == DPT_OK && rows.n == 0)
        st = dpt_error_set(DPT_ERR_DATA, "%s: no data rows after the header", csv_path);
    fclose(in);
    if (st == DPT_OK) {
        /* feature names without the label column, in order */
        char **fn = calloc((size_t)ncols, sizeof *fn);
        if (!fn) {
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", csv_path);
        } else {
            for (int64_t j = 0, k = 0; j < ncols; j++)
                if (j != label)
                    fn[k++] = names[j];
            st = csv_write(csv_path, out_path, &rows, F, fn, ints);
            free(fn);
        }
    }
    free(rows.x);
    free(rows.y);
    free(fields);
    free(names);
    free(header);
    free(line);
    return st;
}

/* ---- the adding problem (long memory, for recurrent models) --------------------------------- */

/* Rows [r0, r0 + m) of one split: x (m, T, 2), y (m, 1). Sample i draws from its own stream
 * (seed, 16 + split, i), so a row does not depend on the block size. */
static void adding_rows(float *x, float *y, int64_t r0, int64_t m, int64_t T, uint32_t seed,
                        uint32_t split) {
    for (int64_t i = 0; i < m; i++) {
        dpt_rng r;
        dpt_rng_init(&r, ((uint64_t)seed << 32) | (uint64_t)(16 + split),
                     (uint32_t)(r0 + i)); /* rows < 2^32 */
        float *xi = x + i * T * 2;
        for (int64_t t = 0; t < T; t++) {
            xi[2 * t] = dpt_rng_uniform(&r);
            xi[2 * t + 1] = 0.0f;
        }
        int64_t h = T / 2;
        int64_t a = (int64_t)(((uint64_t)dpt_rng_u32(&r) * (uint64_t)h) >> 32);
        int64_t b = h + (int64_t)(((uint64_t)dpt_rng_u32(&r) * (uint64_t)(T - h)) >> 32);
        xi[2 * a + 1] = 1.0f;
        xi[2 * b + 1] = 1.0f;
        y[i] = xi[2 * a] + xi[2 * b];
    }
}

dpt_status dpt_data_write_adding(const char *out_path, int64_t n, int64_t steps, uint32_t seed) {
    if (n < 1 || steps < 2 || n > UINT32_MAX)
        return dpt_error_set(DPT_ERR_USAGE,
                             "%s: need 1 to 2^32 - 1 samples and at least 2 steps, got %lld "
                             "samples of %lld steps",
                             out_path, (long long)n, (long long)steps);
    int64_t row, n_test = n / 10 > 0 ? n / 10 : 1;
    dpt_status st = dpt_mul_i64(steps, 2 * (int64_t)sizeof(float), "adding data", &row);
    if (st != DPT_OK)
        return st;
    int64_t br = (int64_t)DPT_DATA_BLOCK_BYTES / row;
    if (br < 1)
        br = 1;
    if (br > n)
        br = n;
    float *xb = NULL, *yb = NULL;
    if ((st = dpt_alloc((size_t)(br * row), "adding x block", (void **)&xb)) != DPT_OK)
        return st;
    if ((st = dpt_alloc((size_t)br * sizeof(float), "adding y block", (void **)&yb)) != DPT_OK) {
        dpt_free(xb);
        return st;
    }
    char tmp[4200];
    hid_t f;
    if ((st = dpt_h5_create_tmp(out_path, tmp, sizeof tmp, &f)) != DPT_OK) {
        dpt_free(xb);
        dpt_free(yb);
        return st;
    }
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    herr_t e = 0;
    const char *const groups[2] = {"train", "test"};
    for (uint32_t s = 0; s < 2 && e >= 0; s++) {
        int64_t ns = s == 0 ? n : n_test;
        hid_t g = H5Gcreate2(f, groups[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t xd[3] = {(hsize_t)ns, (hsize_t)steps, 2}, yd[2] = {(hsize_t)ns, 1};
        hid_t x = g < 0 ? -1 : dpt_h5_create_rows(g, "x", H5T_IEEE_F32LE, 3, xd);
        hid_t y = g < 0 ? -1 : dpt_h5_create_rows(g, "y", H5T_IEEE_F32LE, 2, yd);
        e = (g < 0 || x < 0 || y < 0) ? -1 : 0;
        for (int64_t r0 = 0; r0 < ns && e >= 0; r0 += br) {
            int64_t m = ns - r0 < br ? ns - r0 : br;
            adding_rows(xb, yb, r0, m, steps, seed, s);
            e = dpt_h5_write_rows(x, H5T_NATIVE_FLOAT, (hsize_t)r0, (hsize_t)m, xb);
            if (e >= 0)
                e = dpt_h5_write_rows(y, H5T_NATIVE_FLOAT, (hsize_t)r0, (hsize_t)m, yb);
        }
        if (x >= 0)
            H5Dclose(x);
        if (y >= 0)
            H5Dclose(y);
        if (g >= 0)
            H5Gclose(g);
    }
    dpt_h5_quiet_end(&q);
    dpt_free(xb);
    dpt_free(yb);
    if (e < 0) {
        dpt_h5_abandon_tmp(f, tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: writing the adding problem failed (disk full?)", tmp);
    }
    return dpt_h5_finish_tmp(f, tmp, out_path);
}
