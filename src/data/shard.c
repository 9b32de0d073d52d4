/* This rank's shard: rows [lo, hi) of a split read with hyperslab selections, in blocks of about
 * DPT_DATA_BLOCK_BYTES (so the extra memory beyond the shard itself is bounded), converted to
 * float32 (uint8 and other integer x scaled by the `scale` attribute), checked (non-finite
 * features, labels out of range, the model's input shape), and turned into the targets the loss
 * wants (class index, one-hot, or copied floats). dpt_shard_gather copies rows for a batch.
 * Which rows a rank owns and the epoch order are in order.c; no MPI here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

struct dpt_shard {
    int64_t lo, rows;
    int64_t xs, ys; /* floats per sample / per target */
    float *x;       /* (rows, xs) */
    float *y;       /* (rows, ys) */
    float *w;       /* (rows) sample weights from `w`, or NULL */
};

int64_t dpt_shard_lo(const dpt_shard *s) { return s->lo; }
int64_t dpt_shard_rows(const dpt_shard *s) { return s->rows; }
int64_t dpt_shard_x_size(const dpt_shard *s) { return s->xs; }
int64_t dpt_shard_y_size(const dpt_shard *s) { return s->ys; }
const float *dpt_shard_x(const dpt_shard *s) { return s->x; }
const float *dpt_shard_y(const dpt_shard *s) { return s->y; }
const float *dpt_shard_w(const dpt_shard *s) { return s->w; }

void dpt_shard_destroy(dpt_shard **s) {
    if (!s || !*s)
        return;
    dpt_free((*s)->x);
    dpt_free((*s)->y);
    dpt_free((*s)->w);
    free(*s);
    *s = NULL;
}

/* rows (count) shard-local indices; x (count, xs), y (count, ys). Hot path: no allocation. */
void dpt_shard_gather(const dpt_shard *s, const int64_t *rows, int64_t count, float *x, float *y) {
    size_t xb = (size_t)s->xs * sizeof(float), yb = (size_t)s->ys * sizeof(float);
    for (int64_t i = 0; i < count; i++) {
        int64_t r = rows[i];
        DPT_ASSERT(r >= 0 && r < s->rows);
        memcpy(x + i * s->xs, s->x + r * s->xs, xb);
        memcpy(y + i * s->ys, s->y + r * s->ys, yb);
    }
}

/* the loss's name for messages, or what the target kind means */
static const char *what_str(const dpt_target_spec *t) {
    if (t->loss_name)
        return t->loss_name;
    switch (t->kind) {
    case DPT_TARGET_INDEX:
        return "a class-index target";
    case DPT_TARGET_ONEHOT:
        return "a one-hot target";
    case DPT_TARGET_BINARY:
        return "a binary target";
    case DPT_TARGET_VALUES:
        break;
    }
    return "the loss";
}

static void shape_str(const dpt_shape *s, char *buf, size_t n) {
    dpt_dims_format(s->dim, s->rank, buf, n);
}

dpt_status dpt_y_plan_make(const dpt_h5_split *h, const dpt_target_spec *t, dpt_y_plan *p) {
    const dpt_data_info *in = &h->info;
    memset(p, 0, sizeof *p);
    p->mode = DPT_Y_COPY;
    p->ys = in->y_cols;
    if (!t)
        return DPT_OK; /* raw: y as floats */
    int64_t K = t->n_outputs;
    if (K < 1)
        return dpt_error_set(DPT_ERR_INTERNAL, "%s: %s: model has %lld outputs", h->path, h->ypath,
                             (long long)K);
    bool labels = in->y_cols == 1; /* one value per sample: a class index for CE */
    char ysh[96];
    snprintf(ysh, sizeof ysh, "(%lld, %lld)", (long long)in->n, (long long)in->y_cols);
    switch (t->kind) {
    case DPT_TARGET_INDEX:
        if (!labels)
            return dpt_error_set(DPT_ERR_DATA,
                                 "%s: %s: %s needs one class index per sample, but y has shape %s",
                                 h->path, h->ypath, what_str(t), ysh);
        p->mode = DPT_Y_INDEX;
        p->ys = 1;
        p->check_range = true;
        p->n_range = K;
        return DPT_OK;
    case DPT_TARGET_ONEHOT:
        if (in->y_integer) {
            p->mode = DPT_Y_ONEHOT;
            p->ys = K;
            p->check_range = true;
            p->n_range = K;
            return DPT_OK;
        }
        break;
    case DPT_TARGET_BINARY:
        if (in->y_integer && K == 1) {
            p->check_range = true;
            p->n_range = 2;
        }
        break;
    case DPT_TARGET_VALUES:
        break;
    }
    if (in->y_cols != K)
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: %s: %s needs %lld target value%s per sample (the model's "
                             "outputs), but y has %lld",
                             h->path, h->ypath, what_str(t), (long long)K, K == 1 ? "" : "s",
                             (long long)in->y_cols);
    p->ys = K;
    return DPT_OK;
}

static dpt_status check_shape(const dpt_h5_split *h, const dpt_shape *expect) {
    if (!expect)
        return DPT_OK;
    const dpt_shape *have = &h->info.x_shape;
    bool same = have->rank == expect->rank;
    for (int i = 0; same && i < have->rank; i++)
        same = have->dim[i] == expect->dim[i];
    if (same)
        return DPT_OK;
    int64_t hs = 1, es = 1;
    for (int i = 0; i < have->rank; i++)
        hs *= have->dim[i];
    for (int i = 0; i < expect->rank; i++)
        es = es * expect->dim[i];
    if (expect->rank == 1 && hs == es)
        return DPT_OK; /* a (28, 28) image into a 784 vector */
    char a[128], b[128];
    shape_str(have, a, sizeof a);
    shape_str(expect, b, sizeof b);
    return dpt_error_set(DPT_ERR_DATA, "%s: %s: sample shape %s does not match the model input %s",
                         h->path, h->xpath, a, b);
}

/* Selects rows [r0, r0 + n) of dataset DS (any rank) and reads them with MEMTYPE into buf. */
static herr_t read_rows(hid_t ds, hid_t memtype, int64_t r0, int64_t n, void *buf) {
    hid_t fs = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    for (int i = 0; i < r; i++)
        cnt[i] = dims[i];
    start[0] = (hsize_t)r0;
    cnt[0] = (hsize_t)n;
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    /* same shape as the file selection: HDF5 then copies whole chunks, not element by element */
    hid_t ms = H5Screate_simple(r, cnt, NULL);
    if (e >= 0)
        e = H5Dread(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return e;
}

static int64_t block_rows(int64_t row_bytes) {
    int64_t b = (int64_t)DPT_DATA_BLOCK_BYTES / (row_bytes > 0 ? row_bytes : 1);
    return b < 1 ? 1 : b;
}

int64_t dpt_data_bad_id(const float *x, int64_t n, int64_t ids) {
    const float top = (float)ids;
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] >= 0.0f && x[i] < top && x[i] == floorf(x[i])))
            return i;
    return -1;
}

const char *dpt_data_bad_id_why(float v) {
    return !isfinite(v)     ? "is not a number"
           : v != floorf(v) ? "is not an integer"
           : v < 0.0f       ? "is negative"
                            : "is not below the Embedding's input_dim";
}

static dpt_status id_error(const char *path, const char *xpath, int64_t row, float v, int64_t ids) {
    return dpt_error_set(DPT_ERR_DATA, DPT_BAD_ID_FMT, path, xpath, (long long)row, (double)v,
                         dpt_data_bad_id_why(v), (long long)ids);
}

dpt_status dpt_shard_check_ids(const dpt_shard *s, const char *path, const char *group,
                               int64_t ids) {
    if (ids <= 0 || s->rows == 0)
        return DPT_OK;
    int64_t i = dpt_data_bad_id(s->x, s->rows * s->xs, ids);
    if (i < 0)
        return DPT_OK;
    char g[1024], xpath[1100];
    dpt_h5_group_path(group, g, sizeof g);
    snprintf(xpath, sizeof xpath, "%s%sx", g, strcmp(g, "/") ? "/" : "");
    return id_error(path, xpath, s->lo + i / s->xs, s->x[i], ids);
}

static dpt_status read_x(const dpt_h5_split *h, dpt_shard *s, int64_t ids) {
    const int64_t xs = s->xs;
    const float scale = h->info.x_scale;
    const bool u8 = h->info.x_uint8;
    int64_t br = block_rows(xs * (int64_t)(u8 ? 1 : sizeof(float)));
    if (br > s->rows)
        br = s->rows;
    uint8_t *tmp = NULL;
    dpt_status st;
    if (u8 && (st = dpt_alloc((size_t)(br * xs), "x read buffer", (void **)&tmp)) != DPT_OK)
        return st;
    st = DPT_OK;
    for (int64_t r0 = 0; r0 < s->rows && st == DPT_OK; r0 += br) {
        int64_t n = s->rows - r0 < br ? s->rows - r0 : br;
        float *dst = s->x + r0 * xs;
        herr_t e = u8 ? read_rows(h->x, H5T_NATIVE_UINT8, s->lo + r0, n, tmp)
                      : read_rows(h->x, H5T_NATIVE_FLOAT, s->lo + r0, n, dst);
        if (e < 0) {
            st = dpt_error_set(DPT_ERR_DATA,
                               "%s: %s: cannot read rows [%lld, %lld) (damaged file?)", h->path,
                               h->xpath, (long long)(s->lo + r0), (long long)(s->lo + r0 + n));
            break;
        }
        int64_t m = n * xs;
        if (u8) {
            for (int64_t i = 0; i < m; i++)
                dst[i] = (float)tmp[i] * scale;
        } else if (scale != 1.0f) {
            for (int64_t i = 0; i < m; i++)
                dst[i] *= scale;
        }
        if (ids > 0) { /* token ids: the check below is implied */
            int64_t i = dpt_data_bad_id(dst, m, ids);
            if (i >= 0)
                st = id_error(h->path, h->xpath, s->lo + r0 + i / xs, dst[i], ids);
        } else if (!u8) {
            for (int64_t i = 0; i < m; i++) {
                if (!isfinite(dst[i])) {
                    st = dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: non-finite value", h->path,
                                       h->xpath, (long long)(s->lo + r0 + i / xs));
                    break;
                }
            }
        }
    }
    dpt_free(tmp);
    return st;
}

static dpt_status label_error(const dpt_h5_split *h, int64_t row, double v, int64_t k) {
    if (v != floor(v))
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: label %g is not a class index",
                             h->path, h->ypath, (long long)row, v);
    return dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: label %lld out of range [0, %lld)",
                         h->path, h->ypath, (long long)row, (long long)v, (long long)k);
}

static dpt_status read_y(const dpt_h5_split *h, const dpt_y_plan *p, dpt_shard *s) {
    const int64_t cols = h->info.y_cols;
    const bool ints = h->y_class == H5T_INTEGER;
    int64_t br = block_rows(cols * 8);
    if (br > s->rows)
        br = s->rows;
    void *tmp = NULL;
    dpt_status st = dpt_alloc((size_t)(br * cols) * 8, "y read buffer", &tmp);
    if (st != DPT_OK)
        return st;
    int64_t *iv = tmp;
    double *dv = tmp;
    for (int64_t r0 = 0; r0 < s->rows && st == DPT_OK; r0 += br) {
        int64_t n = s->rows - r0 < br ? s->rows - r0 : br;
        herr_t e = read_rows(h->y, ints ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, s->lo + r0, n, tmp);
        if (e < 0) {
            st = dpt_error_set(DPT_ERR_DATA,
                               "%s: %s: cannot read rows [%lld, %lld) (damaged file?)", h->path,
                               h->ypath, (long long)(s->lo + r0), (long long)(s->lo + r0 + n));
            break;
        }
        for (int64_t i = 0; i < n && st == DPT_OK; i++) {
            int64_t row = s->lo + r0 + i;
            float *dst = s->y + (r0 + i) * s->ys;
            if (p->mode == DPT_Y_COPY) {
                for (int64_t j = 0; j < cols; j++) {
                    double v = ints ? (double)iv[i * cols + j] : dv[i * cols + j];
                    if (!isfinite(v) || !isfinite((float)v)) {
                        st = dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: non-finite value",
                                           h->path, h->ypath, (long long)row);
                        break;
                    }
                    if (p->check_range && (v < 0 || v >= (double)p->n_range)) {
                        st = label_error(h, row, v, p->n_range);
                        break;
                    }
                    dst[j] = (float)v;
                }
                continue;
            }
            /* one class index per sample */
            double v = ints ? (double)iv[i] : dv[i];
            if (!isfinite(v)) {
                st = dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: non-finite value", h->path,
                                   h->ypath, (long long)row);
                break;
            }
            if (v < 0 || v >= (double)p->n_range || v != floor(v)) {
                st = label_error(h, row, ints ? (double)iv[i] : v, p->n_range);
                break;
            }
            if (p->mode == DPT_Y_INDEX)
                dst[0] = (float)v;
            else
                dst[(int64_t)v] = 1.0f; /* one-hot: the row was zeroed by dpt_alloc */
        }
    }
    dpt_free(tmp);
    return st;
}

/* The split's optional `w`: (N) finite numbers, any float or integer type; rows [lo, hi) into
 * s->w. */
static dpt_status read_w(const dpt_h5_split *h, dpt_shard *s) {
    char wpath[1100];
    snprintf(wpath, sizeof wpath, "%s%sw", h->gpath, strcmp(h->gpath, "/") ? "/" : "");
    hid_t ds = H5Dopen2(h->file, wpath, H5P_DEFAULT);
    if (ds < 0)
        return dpt_error_set(DPT_ERR_DATA, "%s: %s: not a dataset", h->path, wpath);
    int64_t d[H5S_MAX_RANK];
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r >= 1 && r <= H5S_MAX_RANK) {
        hsize_t hd[H5S_MAX_RANK];
        H5Sget_simple_extent_dims(sp, hd, NULL);
        for (int i = 0; i < r; i++)
            d[i] = (int64_t)hd[i];
    }
    H5T_class_t cl = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    dpt_status st = DPT_OK;
    if (cl != H5T_FLOAT && cl != H5T_INTEGER)
        st = dpt_error_set(DPT_ERR_DATA, "%s: %s: sample weights must be numbers", h->path, wpath);
    else if (!(r == 1 || (r == 2 && d[1] == 1)) || d[0] != h->info.n)
        st = dpt_error_set(DPT_ERR_DATA,
                           "%s: %s: sample weights must have shape (%lld), one per sample", h->path,
                           wpath, (long long)h->info.n);
    else
        st = dpt_alloc((size_t)(s->rows > 0 ? s->rows : 1) * sizeof(float), "shard w",
                       (void **)&s->w);
    double *tmp = NULL;
    if (st == DPT_OK && s->rows > 0)
        st = dpt_alloc((size_t)s->rows * sizeof(double), "w read buffer", (void **)&tmp);
    if (st == DPT_OK && s->rows > 0 && read_rows(ds, H5T_NATIVE_DOUBLE, s->lo, s->rows, tmp) < 0)
        st = dpt_error_set(DPT_ERR_DATA, "%s: %s: cannot read rows [%lld, %lld) (damaged file?)",
                           h->path, wpath, (long long)s->lo, (long long)(s->lo + s->rows));
    for (int64_t i = 0; st == DPT_OK && i < s->rows; i++) {
        if (!isfinite(tmp[i]) || !isfinite((float)tmp[i]))
            st = dpt_error_set(DPT_ERR_DATA, "%s: %s: row %lld: non-finite sample weight", h->path,
                               wpath, (long long)(s->lo + i));
        else
            s->w[i] = (float)tmp[i];
    }
    dpt_free(tmp);
    H5Dclose(ds);
    return st;
}

dpt_status dpt_shard_open(const char *path, const char *group, int64_t lo, int64_t hi,
                          const dpt_target_spec *t, const dpt_shape *expect_x, dpt_shard **out) {
    *out = NULL;
    dpt_h5_split h;
    dpt_status st = dpt_h5_split_open(path, group, &h);
    if (st != DPT_OK)
        return st;
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    dpt_shard *s = NULL;
    dpt_y_plan plan;
    if (lo < 0 || hi < lo || hi > h.info.n)
        st = dpt_error_set(DPT_ERR_INTERNAL, "%s: %s: rows [%lld, %lld) outside [0, %lld)", path,
                           h.gpath, (long long)lo, (long long)hi, (long long)h.info.n);
    if (st == DPT_OK)
        st = check_shape(&h, expect_x);
    memset(&plan, 0, sizeof plan);
    if (st == DPT_OK && t && !h.info.has_y)
        st = dpt_error_set(DPT_ERR_DATA, "%s: %s: no such dataset", path, h.ypath);
    if (st == DPT_OK && (t || h.info.has_y))
        st = dpt_y_plan_make(&h, t, &plan); /* t NULL: y raw as floats, or nothing without y */
    if (st == DPT_OK) {
        s = calloc(1, sizeof *s);
        if (!s)
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: shard: out of memory", path);
    }
    if (st == DPT_OK) {
        s->lo = lo;
        s->rows = hi - lo;
        s->xs = 1;
        for (int i = 0; i < h.info.x_shape.rank; i++)
            s->xs *= h.info.x_shape.dim[i];
        s->ys = plan.ys;
        int64_t nx, ny;
        st = dpt_mul_i64(s->rows, s->xs, "shard x", &nx);
        if (st == DPT_OK)
            st = dpt_mul_i64(nx, (int64_t)sizeof(float), "shard x", &nx);
        if (st == DPT_OK)
            st = dpt_mul_i64(s->rows, s->ys, "shard y", &ny);
        if (st == DPT_OK)
            st = dpt_mul_i64(ny, (int64_t)sizeof(float), "shard y", &ny);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)nx, "shard x", (void **)&s->x);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)ny, "shard y", (void **)&s->y);
    }
    if (st == DPT_OK && s->rows > 0)
        st = read_x(&h, s, t ? t->x_ids : 0);
    if (st == DPT_OK && s->rows > 0 && h.info.has_y)
        st = read_y(&h, &plan, s);
    if (st == DPT_OK && h.info.has_w && t) /* the weights matter with targets only (a loss) */
        st = read_w(&h, s);
    dpt_h5_split_close(&h);
    dpt_h5_quiet_end(&q);
    if (st != DPT_OK) {
        dpt_shard_destroy(&s);
        return st;
    }
    *out = s;
    return DPT_OK;
}
