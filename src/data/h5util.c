/* HDF5 plumbing of the data room: open a file with one clear error line, check a split's layout
 * (dpt_data_probe's rules live in dpt_h5_split_open), and small writing helpers (chunked datasets,
 * attributes, OUT.tmp + rename). Reading rows and building targets is in shard.c; the converters
 * are in writers.c; printing a file is in inspect.c. No MPI here: every call is local. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_internal.h"

void dpt_h5_quiet_begin(dpt_h5_quiet *q) {
    q->fn = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void dpt_h5_quiet_end(const dpt_h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->fn, q->data); }

/* Finds whether any message on HDF5's error stack mentions `word` (e.g. "lock"). */
typedef struct {
    const char *word;
    bool found;
} stack_search;

static herr_t stack_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    stack_search *s = data;
    if (e->desc && strstr(e->desc, s->word))
        s->found = true;
    return 0;
}

static bool h5_stack_mentions(const char *word) {
    stack_search s = {word, false};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, stack_walk_cb, &s);
    return s.found;
}

dpt_status dpt_h5_open_read(const char *path, hid_t *file) {
    *file = H5I_INVALID_HID;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return dpt_error_set(DPT_ERR_DATA, "%s: no such file", path);
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot access: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return dpt_error_set(DPT_ERR_DATA, "%s: is a directory, not an HDF5 file", path);
    if (!S_ISREG(st.st_mode)) /* a FIFO would block every rank in open() */
        return dpt_error_set(DPT_ERR_DATA, "%s: is %s, not a regular file", path,
                             dpt_file_kind(st.st_mode));
    FILE *f = fopen(path, "rb");
    if (!f)
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return dpt_error_set(DPT_ERR_DATA, "%s: not an HDF5 file", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return dpt_error_set(DPT_ERR_INTERNAL, "%s: H5Pcreate failed", path);
    /* Keep HDF5's file locking, but do not fail on file systems that do not support it. */
    (void)H5Pset_file_locking(fapl, 1, 1);
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (h < 0) {
        if (h5_stack_mentions("lock"))
            return dpt_error_set(DPT_ERR_DATA,
                                 "%s: cannot open: locked by a process writing it (or set "
                                 "HDF5_USE_FILE_LOCKING=FALSE)",
                                 path);
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot open (damaged or truncated HDF5 file)",
                             path);
    }
    *file = h;
    return DPT_OK;
}

void dpt_h5_group_path(const char *group, char *buf, size_t n) {
    while (group && *group == '/')
        group++;
    snprintf(buf, n, "/%s", group ? group : "");
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
}

bool dpt_h5_path_exists(hid_t file, const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return false;
    if (!strcmp(buf, "/"))
        return true;
    /* check each prefix "/a", "/a/b", ... (H5Lexists fails on a missing intermediate group) */
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
            *p = saved;
            if (e <= 0)
                return false;
            if (saved == '\0')
                return true;
        }
    }
}

void dpt_h5_type_name(hid_t type, char *buf, size_t n) {
    H5T_class_t c = H5Tget_class(type);
    size_t sz = H5Tget_size(type);
    switch (c) {
    case H5T_INTEGER:
        snprintf(buf, n, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", sz * 8);
        return;
    case H5T_FLOAT:
        snprintf(buf, n, "float%zu", sz * 8);
        return;
    case H5T_STRING:
        snprintf(buf, n, "string");
        return;
    case H5T_ENUM:
        snprintf(buf, n, "enum (h5py bool?)");
        return;
    case H5T_COMPOUND:
        snprintf(buf, n, "compound");
        return;
    case H5T_ARRAY:
        snprintf(buf, n, "array");
        return;
    case H5T_VLEN:
        snprintf(buf, n, "vlen");
        return;
    case H5T_OPAQUE:
        snprintf(buf, n, "opaque");
        return;
    case H5T_BITFIELD:
        snprintf(buf, n, "bitfield");
        return;
    case H5T_REFERENCE:
        snprintf(buf, n, "reference");
        return;
    default:
        snprintf(buf, n, "unknown type");
        return;
    }
}

void dpt_dims_format(const int64_t *dims, int rank, char *buf, size_t n) {
    size_t k = 0;
    int w = snprintf(buf, n, "(");
    k = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < rank && k < n; i++) {
        w = snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
        k += w > 0 ? (size_t)w : 0;
    }
    if (k < n)
        snprintf(buf + k, n - k, ")");
}

/* Dataset dims into dims (up to max); returns rank or -1. */
static int ds_dims(hid_t ds, int64_t *dims, int max) {
    hid_t sp = H5Dget_space(ds);
    if (sp < 0)
        return -1;
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t d[H5S_MAX_RANK];
    if (r >= 0 && r <= H5S_MAX_RANK)
        H5Sget_simple_extent_dims(sp, d, NULL);
    H5Sclose(sp);
    if (r < 0)
        return -1;
    for (int i = 0; i < r && i < max; i++)
        dims[i] = (int64_t)d[i];
    return r;
}

/* Reads an optional numeric scalar attribute NAME of OBJ (or a 1-element array) as double.
 * Returns 0 absent, 1 read, -1 present but not a number / not one value. */
static int attr_number(hid_t obj, const char *name, double *v) {
    if (H5Aexists(obj, name) <= 0)
        return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    int rc = -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = H5Tget_class(t);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    if ((c == H5T_INTEGER || c == H5T_FLOAT) && npts == 1 && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0)
        rc = 1;
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

void dpt_h5_split_close(dpt_h5_split *s) {
    if (s->x >= 0)
        H5Dclose(s->x);
    if (s->y >= 0)
        H5Dclose(s->y);
    if (s->file >= 0)
        H5Fclose(s->file);
    s->x = s->y = s->file = H5I_INVALID_HID;
}

static dpt_status split_check(dpt_h5_split *s) {
    const char *path = s->path;
    dpt_data_info *info = &s->info;
    char tn[64];

    if (!dpt_h5_path_exists(s->file, s->gpath))
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: no such group", path, s->gpath);
    hid_t g = H5Gopen2(s->file, s->gpath, H5P_DEFAULT);
    if (g < 0)
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: not a group", path, s->gpath);

    const char *names[2] = {"x", "y"};
    const char *paths[2] = {s->xpath, s->ypath};
    hid_t *ids[2] = {&s->x, &s->y};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && H5Lexists(g, names[i], H5P_DEFAULT) <= 0) {
            info->has_y = false; /* features only (predict); dpt_shard_open with targets refuses */
            continue;
        }
        if (H5Lexists(g, names[i], H5P_DEFAULT) <= 0) {
            H5Gclose(g);
            return dpt_error_set(DPT_ERR_DATA, "%s: %s: no such dataset", path, paths[i]);
        }
        *ids[i] = H5Dopen2(g, names[i], H5P_DEFAULT);
        if (*ids[i] < 0) {
            H5Gclose(g);
            return dpt_error_set(DPT_ERR_DATA, "%s: %s: not a dataset", path, paths[i]);
        }
    }

    info->has_w = H5Lexists(g, "w", H5P_DEFAULT) > 0; /* read and checked by dpt_shard_open */
    /* x: (N) or (N, d1, ..., dk) with k <= DPT_MAX_RANK; any float or integer type */
    hid_t t = H5Dget_type(s->x);
    s->x_class = H5Tget_class(t);
    s->x_type_size = H5Tget_size(t);
    s->x_signed = s->x_class == H5T_INTEGER && H5Tget_sign(t) != H5T_SGN_NONE;
    dpt_h5_type_name(t, tn, sizeof tn);
    H5Tclose(t);
    if (s->x_class != H5T_FLOAT && s->x_class != H5T_INTEGER) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: unsupported dtype %s (expected float32, float64 or an "
                             "integer type such as uint8)",
                             path, s->xpath, tn);
    }
    if (s->x_class == H5T_FLOAT && s->x_type_size > 8) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: unsupported dtype %s (float32 or float64)",
                             path, s->xpath, tn);
    }
    int64_t xd[H5S_MAX_RANK];
    int xr = ds_dims(s->x, xd, H5S_MAX_RANK);
    if (xr < 1 || xr > 1 + DPT_MAX_RANK) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: expected 1 to %d dimensions (samples first), got %d", path,
                             s->xpath, 1 + DPT_MAX_RANK, xr);
    }
    info->n = xd[0];
    info->x_shape.rank = xr - 1;
    int64_t xsize = 1;
    for (int i = 1; i < xr; i++) {
        info->x_shape.dim[i - 1] = xd[i];
        if (xd[i] == 0 || xsize > INT64_MAX / xd[i]) {
            char dims[256];
            dpt_dims_format(xd, xr, dims, sizeof dims);
            H5Gclose(g);
            return dpt_error_set(DPT_ERR_DATA, "%s: %s: unusable sample shape in %s", path,
                                 s->xpath, dims);
        }
        xsize *= xd[i];
    }
    if (xr == 1) { /* (N): one scalar feature per sample */
        info->x_shape.rank = 1;
        info->x_shape.dim[0] = 1;
    }
    info->x_uint8 = s->x_class == H5T_INTEGER && s->x_type_size == 1 && !s->x_signed;
    info->x_scale = 1.0f;
    double v;
    int a = attr_number(s->x, "scale", &v);
    if (a < 0 || (a == 1 && !(isfinite(v) && isfinite((float)v) && v != 0.0))) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: attribute scale: must be one finite, non-zero "
                             "number",
                             path, s->xpath);
    }
    if (a == 1)
        info->x_scale = (float)v;

    if (s->y < 0) {
        H5Gclose(g);
        if (info->n < 1)
            return dpt_error_set(DPT_ERR_DATA, "%s: %s: no samples (N = 0)", path, s->xpath);
        return DPT_OK;
    }
    info->has_y = true;
    /* y: integer (N) or (N, 1) -> labels; float (N) or (N, T), or integer (N, T>1) -> targets */
    t = H5Dget_type(s->y);
    s->y_class = H5Tget_class(t);
    dpt_h5_type_name(t, tn, sizeof tn);
    H5Tclose(t);
    if (s->y_class != H5T_FLOAT && s->y_class != H5T_INTEGER) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: unsupported dtype %s (expected integer labels or float "
                             "targets)",
                             path, s->ypath, tn);
    }
    int64_t yd[H5S_MAX_RANK];
    int yr = ds_dims(s->y, yd, H5S_MAX_RANK);
    if (yr < 1 || yr > 2) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: expected shape (N) or (N, T), got %d dimensions", path,
                             s->ypath, yr);
    }
    info->y_cols = yr == 2 ? yd[1] : 1;
    if (info->y_cols < 1) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: shape (%lld, 0) has no targets", path, s->ypath,
                             (long long)yd[0]);
    }
    info->y_integer = s->y_class == H5T_INTEGER && info->y_cols == 1;
    if (yd[0] != info->n) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: x has %lld samples but y has %lld", path,
                             s->gpath, (long long)info->n, (long long)yd[0]);
    }
    if (info->n < 1) {
        H5Gclose(g);
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: no samples (N = 0)", path, s->xpath);
    }
    /* n_classes: on y (what our writers do) or on the group */
    info->n_classes = 0;
    a = attr_number(s->y, "n_classes", &v);
    if (a == 0)
        a = attr_number(g, "n_classes", &v);
    H5Gclose(g);
    if (a < 0 || (a == 1 && !(v >= 1 && v <= 1e9 && v == floor(v))))
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: attribute n_classes: must be an integer >= 1",
                             path, s->ypath);
    if (a == 1)
        info->n_classes = (int64_t)v;
    return DPT_OK;
}

dpt_status dpt_h5_split_open(const char *path, const char *group, dpt_h5_split *s) {
    memset(s, 0, sizeof *s);
    s->file = s->x = s->y = H5I_INVALID_HID;
    snprintf(s->path, sizeof s->path, "%s", path);
    dpt_h5_group_path(group, s->gpath, sizeof s->gpath);
    const char *sep = strcmp(s->gpath, "/") ? "/" : "";
    snprintf(s->xpath, sizeof s->xpath, "%s%sx", s->gpath, sep);
    snprintf(s->ypath, sizeof s->ypath, "%s%sy", s->gpath, sep);
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    dpt_status st = dpt_h5_open_read(path, &s->file);
    if (st == DPT_OK)
        st = split_check(s);
    if (st != DPT_OK)
        dpt_h5_split_close(s);
    dpt_h5_quiet_end(&q);
    return st;
}

dpt_status dpt_data_probe(const char *path, const char *group, dpt_data_info *out) {
    dpt_h5_split s;
    dpt_status st = dpt_h5_split_open(path, group, &s);
    if (st != DPT_OK)
        return st;
    *out = s.info;
    dpt_h5_split_close(&s);
    return DPT_OK;
}

/* ---- writers ------------------------------------------------------------------------------- */

hid_t dpt_h5_create_rows(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims) {
    size_t row_bytes = H5Tget_size(type);
    for (int i = 1; i < rank; i++)
        row_bytes *= (size_t)dims[i];
    if (row_bytes == 0)
        row_bytes = 1;
    hsize_t chunk[H5S_MAX_RANK];
    for (int i = 0; i < rank; i++)
        chunk[i] = dims[i];
    hsize_t rows = (hsize_t)(DPT_DATA_CHUNK_BYTES / row_bytes);
    if (rows < 1)
        rows = 1;
    if (rows > dims[0])
        rows = dims[0];
    if (rows < 1)
        rows = 1;
    chunk[0] = rows;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dims[0] > 0)
        H5Pset_chunk(dcpl, rank, chunk);
    hid_t ds = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

herr_t dpt_h5_write_rows(hid_t ds, hid_t memtype, hsize_t row0, hsize_t count, const void *buf) {
    if (count == 0)
        return 0;
    hid_t fs = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    for (int i = 0; i < r; i++)
        cnt[i] = dims[i];
    start[0] = row0;
    cnt[0] = count;
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    /* same shape as the file selection: HDF5 then copies whole chunks, not element by element */
    hid_t ms = H5Screate_simple(r, cnt, NULL);
    if (e >= 0)
        e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return e;
}

static herr_t attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return e;
}

herr_t dpt_h5_attr_i64(hid_t loc, const char *name, int64_t v) {
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

herr_t dpt_h5_attr_f32(hid_t loc, const char *name, float v) {
    return attr_write(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v);
}

herr_t dpt_h5_attr_strings(hid_t loc, const char *name, const char *const *v, int n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t d = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e;
}

dpt_status dpt_h5_create_tmp(const char *out, char *tmp, size_t n, hid_t *file) {
    *file = H5I_INVALID_HID;
    if (snprintf(tmp, n, "%s.tmp", out) >= (int)n)
        return dpt_error_set(DPT_ERR_IO, "%s: path too long", out);
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    *file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    dpt_h5_quiet_end(&q);
    if (*file < 0) {
        FILE *f = fopen(tmp, "wb"); /* for a useful errno */
        int err = errno;
        if (f) {
            fclose(f);
            remove(tmp);
        }
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create: %s", tmp,
                             f ? "HDF5 refused the file (locked?)" : strerror(err));
    }
    return DPT_OK;
}

void dpt_h5_abandon_tmp(hid_t file, const char *tmp) {
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    if (file >= 0)
        H5Fclose(file);
    dpt_h5_quiet_end(&q);
    remove(tmp);
}

dpt_status dpt_h5_finish_tmp(hid_t file, const char *tmp, const char *out) {
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    herr_t e = H5Fflush(file, H5F_SCOPE_GLOBAL);
    if (H5Fclose(file) < 0)
        e = -1;
    dpt_h5_quiet_end(&q);
    if (e < 0) {
        remove(tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: writing failed (disk full?)", tmp);
    }
    return dpt_file_commit(tmp, out); /* fsync, rename, fsync of the directory */
}
