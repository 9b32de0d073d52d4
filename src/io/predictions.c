/* The prediction file of `dptrain predict`: float32 datasets of shape (N, K) (or (N)) written block
 * by block in input order by ONE rank, to PATH.tmp then renamed. Local.
 *   /pred (N, K)                 plain predictions (dropout off)
 *   /mean, /std (N, K), /entropy (N)   Monte Carlo dropout (attrs mc_samples, seed)
 *   root attribute dptrain_predictions (int32 1): marks the file as ours, so that a later
 *   `predict --out` may replace it and nothing else (dpt_pred_check_out).                      */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "dptrain/core.h"
#include "dptrain/io.h"

#define MAX_SETS 4
#define DPT_PRED_MARK "dptrain_predictions"

struct dpt_pred_file {
    char path[4096], tmp[4112];
    hid_t f;
    int n_sets;
    hid_t d[MAX_SETS];
    int64_t cols[MAX_SETS];
};

dpt_status dpt_pred_create(const char *path, int64_t n, int n_sets, const char *const *names,
                           const int64_t *cols, dpt_pred_file **out) {
    *out = NULL;
    if (n_sets > MAX_SETS)
        return dpt_error_set(DPT_ERR_INTERNAL, "too many prediction sets");
    dpt_pred_file *p = calloc(1, sizeof *p);
    if (!p)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(p->path, sizeof p->path, "%s", path);
    snprintf(p->tmp, sizeof p->tmp, "%s.tmp", path);
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    p->f = H5Fcreate(p->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    dpt_status st = DPT_OK;
    if (p->f < 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot create: %s", p->tmp, strerror(errno));
    if (st == DPT_OK) {
        int32_t one = 1;
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(p->f, DPT_PRED_MARK, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, H5T_NATIVE_INT32, &one) < 0)
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", p->tmp, DPT_PRED_MARK);
        if (a >= 0)
            H5Aclose(a);
        H5Sclose(sp);
    }
    for (int i = 0; i < n_sets && st == DPT_OK; i++) {
        hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols[i]};
        hid_t sp = H5Screate_simple(cols[i] > 0 ? 2 : 1, dims, NULL);
        p->d[i] =
            H5Dcreate2(p->f, names[i], H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Sclose(sp);
        p->cols[i] = cols[i];
        p->n_sets = i + 1;
        if (p->d[i] < 0)
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot create /%s", p->tmp, names[i]);
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    if (st != DPT_OK) {
        dpt_pred_abandon(&p);
        return st;
    }
    *out = p;
    return DPT_OK;
}

dpt_status dpt_pred_write(dpt_pred_file *p, int set, int64_t row0, int64_t rows, const float *v) {
    if (rows == 0)
        return DPT_OK;
    int64_t k = p->cols[set] > 0 ? p->cols[set] : 1;
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)rows, (hsize_t)k};
    int rank = p->cols[set] > 0 ? 2 : 1;
    hid_t fs = H5Dget_space(p->d[set]);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Dwrite(p->d[set], H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: write failed (disk full?)", p->tmp);
    return DPT_OK;
}

dpt_status dpt_pred_attr_i64(dpt_pred_file *p, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(p->f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, H5T_NATIVE_INT64, &v) : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", p->tmp, name)
                 : DPT_OK;
}

dpt_status dpt_pred_close(dpt_pred_file **pp) {
    dpt_pred_file *p = *pp;
    if (!p)
        return DPT_OK;
    herr_t e = 0;
    for (int i = 0; i < p->n_sets; i++)
        e |= H5Dclose(p->d[i]) < 0;
    e |= H5Fclose(p->f) < 0;
    p->f = -1;
    p->n_sets = 0;
    dpt_status st = DPT_OK;
    if (e)
        st = dpt_error_set(DPT_ERR_IO, "%s: write failed (disk full?)", p->tmp);
    if (st == DPT_OK)
        st = dpt_file_commit(p->tmp, p->path); /* fsync, rename, fsync of the directory */
    else
        unlink(p->tmp);
    free(p);
    *pp = NULL;
    return st;
}

void dpt_pred_abandon(dpt_pred_file **pp) {
    dpt_pred_file *p = *pp;
    if (!p)
        return;
    for (int i = 0; i < p->n_sets; i++)
        H5Dclose(p->d[i]);
    if (p->f >= 0)
        H5Fclose(p->f);
    unlink(p->tmp);
    free(p);
    *pp = NULL;
}

/* 1 when path is an HDF5 file carrying our mark, 0 otherwise (not HDF5, damaged, unmarked). */
static int is_prediction_file(const char *path) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int ours = 0;
    if (H5Fis_hdf5(path) > 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            ours = H5Aexists(f, DPT_PRED_MARK) > 0;
            H5Fclose(f);
        }
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return ours;
}

dpt_status dpt_pred_check_out(const char *out, const char *const *inputs, const char *const *what,
                              int n_inputs, bool force) {
    char tmp[4112];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    const char *targets[2] = {out, tmp};
    struct stat so;
    for (int t = 0; t < 2; t++) {
        if (stat(targets[t], &so) != 0)
            continue; /* nothing there (yet): nothing to lose */
        for (int i = 0; i < n_inputs; i++) {
            struct stat si;
            if (inputs[i] && inputs[i][0] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
                si.st_ino == so.st_ino)
                return dpt_error_set(DPT_ERR_USAGE,
                                     "predict: --out %s: is %s (%s), which this command reads; "
                                     "choose another output file",
                                     out, what[i], inputs[i]);
        }
    }
    if (stat(out, &so) != 0)
        return DPT_OK;
    if (S_ISDIR(so.st_mode))
        return dpt_error_set(DPT_ERR_USAGE, "predict: --out %s: is a directory", out);
    if (!S_ISREG(so.st_mode))
        return dpt_error_set(DPT_ERR_USAGE, "predict: --out %s: not a regular file", out);
    if (!force && !is_prediction_file(out))
        return dpt_error_set(DPT_ERR_USAGE,
                             "predict: --out %s: the file exists and was not written by dptrain "
                             "predict (a dataset, a checkpoint, weights?); choose another name, or "
                             "pass --force to replace it",
                             out);
    return DPT_OK;
}
