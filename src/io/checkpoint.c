/* Checkpoints: dpt_ckpt_write / dpt_ckpt_read / dpt_ckpt_read_config / dpt_ckpt_find_latest.
 *
 * A checkpoint is a Keras 2 legacy weights file (written by io/keras_weights.c's helpers, so
 * Keras's load_weights() reads it as it is) plus a /dptrain group:
 *   attrs   format_version (int32), epoch, step_in_epoch, global_step, n_params (int64),
 *           seed (uint32), world_size (int32), epoch_sums (float64 (3,)), checksum (uint64),
 *           checksum_algorithm (str)
 *   config  scalar vlen string dataset: the run's config text
 *   metric_state  float64 (n) dataset, only when the trainer has metrics: their running state
 *   optimizer/  attrs kind ("sgd", "adam", ..., "lion", "none"), learning_rate, momentum,
 *               beta_1, beta_2, epsilon (float64), nesterov (int32), iterations (int64),
 *               gradient_accumulation_steps (int32, 0 = none; absent in older files: 0),
 *               slot_names (str array);
 *               one float32 (n_params) dataset per slot, named by dpt_optim_slot_name
 * checksum = FNV-1a 64 over the float32 bytes of every layer's parameters (layer order), then every
 * optimizer slot (slot order), computed from the in-memory buffers when writing and from what was
 * read when reading. Files are written to NAME.tmp, fsynced, renamed, the directory fsynced.
 * Local: ONE rank calls these (the caller agrees the status across ranks).
 * Left to others: when to checkpoint and which rank writes (src/train), the optimizer's state
 * (src/optim), building the model from the stored config (src/io/config.c + src/nn).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "io/ckpt_h5.h"

#define CKPT_PATH_MAX 4096
#define CKPT_CHECKSUM_ALGO                                                                         \
    "fnv1a64: float32 bytes of each layer's parameters in layer order, then each optimizer slot"

static const char *optim_kind_name(dpt_optim_kind k) {
    switch (k) {
    case DPT_OPT_SGD:
        return "sgd";
    case DPT_OPT_ADAM:
        return "adam";
    case DPT_OPT_RMSPROP:
        return "rmsprop";
    case DPT_OPT_ADAMW:
        return "adamw";
    case DPT_OPT_NADAM:
        return "nadam";
    case DPT_OPT_ADAMAX:
        return "adamax";
    case DPT_OPT_ADAGRAD:
        return "adagrad";
    case DPT_OPT_ADADELTA:
        return "adadelta";
    case DPT_OPT_LION:
        return "lion";
    }
    return "unknown";
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    const dpt_model *m;
    const dpt_optim *o;
    const dpt_ckpt_meta *meta;
    const char *config;
} ckpt_ctx;

static dpt_status attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v,
                             const char *path) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, mtype, v) : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    if (e < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", path, name);
    return DPT_OK;
}
static dpt_status attr_i64(hid_t obj, const char *name, int64_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}
static dpt_status attr_i32(hid_t obj, const char *name, int32_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v, path);
}
static dpt_status attr_f64(hid_t obj, const char *name, double v, const char *path) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}

static dpt_status attr_f64_array(hid_t obj, const char *name, const double *v, int n,
                                 const char *path) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, v) : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    if (e < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", path, name);
    return DPT_OK;
}

/* The checksum of a model's parameters (layer order) and an optimizer's slots. */
static uint64_t checksum_model(const dpt_model *m, const float *flat, uint64_t h) {
    for (int i = 0; i < dpt_model_n_layers(m); i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        int64_t np = dpt_layer_n_params(l);
        if (np > 0) {
            const float *p = flat ? flat + l->param_offset : l->params;
            h = dpt_fnv1a64(h, p, sizeof(float) * (size_t)np);
        }
    }
    return h;
}

static dpt_status write_vlen_dataset(hid_t g, const char *name, const char *text,
                                     const char *path) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d >= 0 ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) : -1;
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    if (e < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write /dptrain/%s", path, name);
    return DPT_OK;
}

static dpt_status write_metric_state(hid_t g, const dpt_ckpt_meta *meta, const char *path) {
    if (meta->n_metric_state <= 0 || !meta->metric_state)
        return DPT_OK;
    hsize_t dims[1] = {(hsize_t)meta->n_metric_state};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = sp >= 0 ? H5Dcreate2(g, "metric_state", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                   H5P_DEFAULT)
                      : H5I_INVALID_HID;
    herr_t e =
        d >= 0 ? H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, meta->metric_state)
               : -1;
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    if (e < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write /dptrain/metric_state (disk full?)",
                             path);
    return DPT_OK;
}

static dpt_status fill_ckpt(hid_t f, const char *path, void *vctx) {
    const ckpt_ctx *c = vctx;
    /* dpt_optim_slot takes a non-const optimizer; we only read the slots */
    dpt_optim *o = (dpt_optim *)(uintptr_t)c->o;
    dpt_status st = dpt_ckpt_h5_write_weights(f, path, c->m);
    if (st != DPT_OK)
        return st;
    hid_t g = H5Gcreate2(f, "dptrain", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t og = H5I_INVALID_HID;
    if (g < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create /dptrain", path);
    int64_t n = dpt_model_n_params(c->m);
    uint32_t seed = c->meta->seed;
    if ((st = attr_i32(g, "format_version", DPT_CKPT_FORMAT_VERSION, path)) ||
        (st = attr_i64(g, "epoch", c->meta->epoch, path)) ||
        (st = attr_i64(g, "step_in_epoch", c->meta->step_in_epoch, path)) ||
        (st = attr_i64(g, "global_step", c->meta->global_step, path)) ||
        (st = attr_i64(g, "n_params", n, path)) ||
        (st = attr_write(g, "seed", H5T_STD_U32LE, H5T_NATIVE_UINT32, &seed, path)) ||
        (st = attr_i32(g, "world_size", c->meta->world_size, path)) ||
        (st = attr_f64_array(g, "epoch_sums", c->meta->epoch_sums, 3, path)) ||
        (st = attr_f64_array(g, "trainer_state", c->meta->trainer_state, DPT_CKPT_TRAINER_STATE,
                             path)) ||
        (st = write_vlen_dataset(g, "config", c->config ? c->config : "", path)) ||
        (st = write_metric_state(g, c->meta, path)))
        goto out;
    og = H5Gcreate2(g, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (og < 0) {
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot create /dptrain/optimizer", path);
        goto out;
    }
    uint64_t h = checksum_model(c->m, NULL, DPT_FNV1A64_INIT);
    int ns = o ? dpt_optim_n_slots(o) : 0;
    const char *snames[16];
    if (ns > 16) {
        st = dpt_error_set(DPT_ERR_INTERNAL, "%s: %d optimizer slots", path, ns);
        goto out;
    }
    for (int i = 0; i < ns; i++)
        snames[i] = dpt_optim_slot_name(o, i);
    if (o) {
        const dpt_optim_spec *sp = dpt_optim_get_spec(o);
        if ((st = dpt_ckpt_h5_write_str(og, "kind", path, optim_kind_name(sp->kind))) ||
            (st = attr_f64(og, "learning_rate", sp->learning_rate, path)) ||
            (st = attr_f64(og, "momentum", sp->momentum, path)) ||
            (st = attr_i32(og, "nesterov", sp->nesterov ? 1 : 0, path)) ||
            (st = attr_f64(og, "beta_1", sp->beta_1, path)) ||
            (st = attr_f64(og, "beta_2", sp->beta_2, path)) ||
            (st = attr_f64(og, "epsilon", sp->epsilon, path)) ||
            (st = attr_i64(og, "iterations", dpt_optim_iterations(o), path)) ||
            (st = attr_i32(og, "gradient_accumulation_steps", sp->gradient_accumulation_steps,
                           path)))
            goto out;
    } else if ((st = dpt_ckpt_h5_write_str(og, "kind", path, "none"))) {
        goto out;
    }
    if ((st = dpt_ckpt_h5_write_strs(og, "slot_names", path, snames, ns)))
        goto out;
    for (int i = 0; i < ns; i++) {
        const float *slot = dpt_optim_slot(o, i);
        hsize_t dims[1] = {(hsize_t)n};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t d =
            H5Dcreate2(og, snames[i], H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        herr_t e = d >= 0 && n > 0
                       ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, slot)
                       : (d >= 0 ? 0 : -1);
        if (d >= 0)
            H5Dclose(d);
        H5Sclose(sp);
        if (e < 0) {
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot write /dptrain/optimizer/%s (disk full?)",
                               path, snames[i]);
            goto out;
        }
        h = dpt_fnv1a64(h, slot, sizeof(float) * (size_t)n);
    }
    if ((st = attr_write(g, "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, &h, path)) ||
        (st = dpt_ckpt_h5_write_str(g, "checksum_algorithm", path, CKPT_CHECKSUM_ALGO)))
        goto out;
out:
    if (og >= 0)
        H5Gclose(og);
    H5Gclose(g);
    return st;
}

/* The epoch number in a checkpoint's name: the 1-based epoch in which the last step was taken
 * (so a mid-epoch and an end-of-epoch checkpoint of the same epoch share it). */
static int64_t name_epoch(const dpt_ckpt_meta *meta) {
    return meta->step_in_epoch > 0 ? meta->epoch + 1 : meta->epoch;
}

/* Is `name` "ckpt-<digits>-<digits>.h5"? Parses the numbers. */
static bool parse_ckpt_name(const char *name, int64_t *ep, int64_t *step) {
    if (strncmp(name, "ckpt-", 5))
        return false;
    const char *p = name + 5;
    char *e;
    if (*p < '0' || *p > '9')
        return false;
    long long a = strtoll(p, &e, 10);
    if (*e != '-' || e[1] < '0' || e[1] > '9')
        return false;
    long long b = strtoll(e + 1, &e, 10);
    if (strcmp(e, ".h5"))
        return false;
    *ep = a;
    *step = b;
    return true;
}

typedef struct {
    char name[256];
    int64_t ep, step;
} ckpt_entry;

static int entry_cmp_desc(const void *pa, const void *pb) {
    const ckpt_entry *a = pa, *b = pb;
    if (a->step != b->step)
        return a->step < b->step ? 1 : -1;
    if (a->ep != b->ep)
        return a->ep < b->ep ? 1 : -1;
    return strcmp(b->name, a->name);
}

/* ckpt-* files of dir, newest first. */
static dpt_status list_ckpts(const char *dir, ckpt_entry **out, int *n_out, dpt_status code) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return dpt_error_set(code, "%s: cannot list the directory: %s", dir, strerror(errno));
    ckpt_entry *v = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t ep, step;
        if (strlen(de->d_name) >= sizeof v->name || !parse_ckpt_name(de->d_name, &ep, &step))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            ckpt_entry *nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) {
                free(v);
                closedir(d);
                return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", dir);
            }
            v = nv;
        }
        snprintf(v[n].name, sizeof v[n].name, "%s", de->d_name);
        v[n].ep = ep;
        v[n].step = step;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, entry_cmp_desc);
    *out = v;
    *n_out = n;
    return DPT_OK;
}

dpt_status dpt_ckpt_write(const char *dir, const dpt_model *m, const dpt_optim *o,
                          const dpt_ckpt_meta *meta, const char *config_text, int keep) {
    DPT_ASSERT(dir && m && meta);
    dpt_ckpt_h5_quiet();
    if (keep < 0)
        keep = 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create the directory: %s", dir,
                             strerror(errno));
    ckpt_ctx c = {.m = m, .o = o, .meta = meta, .config = config_text};
    char path[CKPT_PATH_MAX];
    dpt_status st;
    if (keep > 0) {
        if (snprintf(path, sizeof path, "%s/ckpt-%06" PRId64 "-%09" PRId64 ".h5", dir,
                     name_epoch(meta), meta->global_step) >= (int)sizeof path)
            return dpt_error_set(DPT_ERR_IO, "%s: path too long", dir);
        st = dpt_ckpt_h5_write_atomic(path, fill_ckpt, &c);
        if (st != DPT_OK)
            return st;
    }
    /* an independent copy (not a hard link): a damaged last.h5 leaves the ckpt-* intact */
    if (snprintf(path, sizeof path, "%s/last.h5", dir) >= (int)sizeof path)
        return dpt_error_set(DPT_ERR_IO, "%s: path too long", dir);
    st = dpt_ckpt_h5_write_atomic(path, fill_ckpt, &c);
    if (st != DPT_OK)
        return st;
    /* keep the newest `keep` ckpt-* files of this run. Files of a later step than this one are
     * not this run's (an earlier run in the same directory, started again without --resume):
     * neither counted nor removed, so this run's own are not pruned in their place */
    ckpt_entry *v;
    int n;
    if (list_ckpts(dir, &v, &n, DPT_ERR_IO) != DPT_OK) {
        fprintf(stderr, "dptrain: warning: %s\n", dpt_error_message());
        return DPT_OK;
    }
    int later = 0;
    while (later < n && v[later].step > meta->global_step)
        later++;
    for (int i = later + keep; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        if (unlink(path) != 0 && errno != ENOENT)
            fprintf(stderr, "dptrain: warning: %s: cannot remove an old checkpoint: %s\n", path,
                    strerror(errno));
    }
    free(v);
    return DPT_OK;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct {
    float *params; /* model mode: n_params floats in the model's flat order; else file order */
    int64_t n_params;
    char kind[32];
    int64_t iterations;
    int32_t accumulation_steps; /* gradient_accumulation_steps, 0 when absent (older files) */
    char **slot_names;
    int n_slots;
    float **slots; /* n_slots x (n_params) */
    dpt_ckpt_meta meta;
} ckpt_data;

static void ckpt_data_free(ckpt_data *d) {
    free(d->params);
    for (int i = 0; i < d->n_slots; i++)
        free(d->slots ? d->slots[i] : NULL);
    free(d->slots);
    dpt_ckpt_h5_free_strs(d->slot_names, d->n_slots);
    memset(d, 0, sizeof *d);
}

static dpt_status attr_read(hid_t obj, const char *name, hid_t mtype, void *v, const char *path,
                            const char *where) {
    if (H5Aexists(obj, name) <= 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s: missing", path, where, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t s = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hssize_t np = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    herr_t e = np == 1 ? H5Aread(a, mtype, v) : -1;
    if (s >= 0)
        H5Sclose(s);
    if (a >= 0)
        H5Aclose(a);
    if (e < 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s: unreadable (expected one number)",
                             path, where, name);
    return DPT_OK;
}

/* Reads and verifies everything of a checkpoint into d (nothing of the caller's is touched).
 * m may be NULL (then weights are read in file order). */
static dpt_status ckpt_load(const char *path, const dpt_model *m, ckpt_data *d) {
    memset(d, 0, sizeof *d);
    hid_t f, g = H5I_INVALID_HID, og = H5I_INVALID_HID;
    dpt_status st = dpt_ckpt_h5_open(path, true, &f);
    if (st != DPT_OK)
        return st;
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) <= 0 ||
        (g = H5Gopen2(f, "dptrain", H5P_DEFAULT)) < 0) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT,
                           "%s: not a dptrain checkpoint (no /dptrain group; a Keras weights file "
                           "can be loaded as weights only)",
                           path);
        goto out;
    }
    int32_t ver = 0;
    if ((st = attr_read(g, "format_version", H5T_NATIVE_INT32, &ver, path, "/dptrain")))
        goto out;
    if (ver > DPT_CKPT_FORMAT_VERSION || ver < 1) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT,
                           ver > DPT_CKPT_FORMAT_VERSION
                               ? "%s: /dptrain/format_version: %d is newer than this dptrain "
                                 "supports (%d)"
                               : "%s: /dptrain/format_version: %d is not valid (this dptrain "
                                 "writes %d)",
                           path, (int)ver, DPT_CKPT_FORMAT_VERSION);
        goto out;
    }
    int64_t n_file = 0;
    int32_t ws = 0;
    uint32_t seed = 0;
    uint64_t sum_file = 0;
    if ((st = attr_read(g, "epoch", H5T_NATIVE_INT64, &d->meta.epoch, path, "/dptrain")) ||
        (st = attr_read(g, "step_in_epoch", H5T_NATIVE_INT64, &d->meta.step_in_epoch, path,
                        "/dptrain")) ||
        (st = attr_read(g, "global_step", H5T_NATIVE_INT64, &d->meta.global_step, path,
                        "/dptrain")) ||
        (st = attr_read(g, "seed", H5T_NATIVE_UINT32, &seed, path, "/dptrain")) ||
        (st = attr_read(g, "world_size", H5T_NATIVE_INT32, &ws, path, "/dptrain")) ||
        (st = attr_read(g, "n_params", H5T_NATIVE_INT64, &n_file, path, "/dptrain")) ||
        (st = attr_read(g, "checksum", H5T_NATIVE_UINT64, &sum_file, path, "/dptrain")))
        goto out;
    d->meta.seed = seed;
    d->meta.world_size = ws;
    if (H5Aexists(g, "epoch_sums") > 0) {
        hid_t a = H5Aopen(g, "epoch_sums", H5P_DEFAULT);
        hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
        herr_t e = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 3
                       ? H5Aread(a, H5T_NATIVE_DOUBLE, d->meta.epoch_sums)
                       : -1;
        if (sp >= 0)
            H5Sclose(sp);
        if (a >= 0)
            H5Aclose(a);
        if (e < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/epoch_sums: expected 3 numbers",
                               path);
            goto out;
        }
    }
    if (H5Aexists(g, "trainer_state") > 0) {
        hid_t a = H5Aopen(g, "trainer_state", H5P_DEFAULT);
        hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
        herr_t e = sp >= 0 && H5Sget_simple_extent_npoints(sp) == DPT_CKPT_TRAINER_STATE
                       ? H5Aread(a, H5T_NATIVE_DOUBLE, d->meta.trainer_state)
                       : -1;
        if (sp >= 0)
            H5Sclose(sp);
        if (a >= 0)
            H5Aclose(a);
        if (e < 0) {
            st =
                dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/trainer_state: expected %d numbers",
                              path, DPT_CKPT_TRAINER_STATE);
            goto out;
        }
    }
    /* weights */
    if (m) {
        d->n_params = dpt_model_n_params(m);
        /* read_weights names the first layer that differs; the count is checked after */
        d->params = calloc((size_t)(d->n_params > 0 ? d->n_params : 1), sizeof(float));
        if (!d->params) {
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        if ((st = dpt_ckpt_h5_read_weights(f, path, m, d->params, NULL, NULL)))
            goto out;
        if (n_file != d->n_params) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: the checkpoint has %lld parameters, the model %lld", path,
                               (long long)n_file, (long long)d->n_params);
            goto out;
        }
    } else {
        if ((st = dpt_ckpt_h5_read_weights(f, path, NULL, NULL, &d->params, &d->n_params)))
            goto out;
        if (n_file != d->n_params) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /dptrain/n_params is %lld but the weights hold %lld", path,
                               (long long)n_file, (long long)d->n_params);
            goto out;
        }
    }
    /* optimizer */
    if (H5Lexists(g, "optimizer", H5P_DEFAULT) <= 0 ||
        (og = H5Gopen2(g, "optimizer", H5P_DEFAULT)) < 0) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/optimizer is missing", path);
        goto out;
    }
    char **kind = NULL;
    int nk = 0;
    if ((st = dpt_ckpt_h5_read_strs(og, "kind", path, "/dptrain/optimizer", &kind, &nk)))
        goto out;
    snprintf(d->kind, sizeof d->kind, "%s", nk == 1 ? kind[0] : "?");
    dpt_ckpt_h5_free_strs(kind, nk);
    if (H5Aexists(og, "iterations") > 0 &&
        (st = attr_read(og, "iterations", H5T_NATIVE_INT64, &d->iterations, path,
                        "/dptrain/optimizer")))
        goto out;
    if (H5Aexists(og, "gradient_accumulation_steps") > 0 &&
        (st = attr_read(og, "gradient_accumulation_steps", H5T_NATIVE_INT32, &d->accumulation_steps,
                        path, "/dptrain/optimizer")))
        goto out;
    if ((st = dpt_ckpt_h5_read_strs(og, "slot_names", path, "/dptrain/optimizer", &d->slot_names,
                                    &d->n_slots)))
        goto out;
    d->slots = calloc((size_t)(d->n_slots > 0 ? d->n_slots : 1), sizeof(float *));
    if (!d->slots) {
        st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < d->n_slots; i++) {
        const char *sn = d->slot_names[i];
        hid_t ds = H5I_INVALID_HID, sp = H5I_INVALID_HID;
        hsize_t dims[2] = {0, 0};
        if (H5Lexists(og, sn, H5P_DEFAULT) <= 0 || (ds = H5Dopen2(og, sn, H5P_DEFAULT)) < 0) {
            st =
                dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/optimizer/%s is missing", path, sn);
            goto out;
        }
        sp = H5Dget_space(ds);
        int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (r == 1)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        if (sp >= 0)
            H5Sclose(sp);
        if (r != 1 || (int64_t)dims[0] != d->n_params) {
            H5Dclose(ds);
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /dptrain/optimizer/%s: expected (%lld,) floats", path, sn,
                               (long long)d->n_params);
            goto out;
        }
        d->slots[i] = calloc((size_t)(d->n_params > 0 ? d->n_params : 1), sizeof(float));
        herr_t e = !d->slots[i] ? -2
                   : d->n_params > 0
                       ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->slots[i])
                       : 0;
        H5Dclose(ds);
        if (e < 0) {
            st = e == -2 ? dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path)
                         : dpt_error_set(DPT_ERR_CHECKPOINT,
                                         "%s: /dptrain/optimizer/%s: cannot read (damaged file)",
                                         path, sn);
            goto out;
        }
    }
    /* checksum */
    uint64_t h = m ? checksum_model(m, d->params, DPT_FNV1A64_INIT)
                   : dpt_fnv1a64(DPT_FNV1A64_INIT, d->params, sizeof(float) * (size_t)d->n_params);
    for (int i = 0; i < d->n_slots; i++)
        h = dpt_fnv1a64(h, d->slots[i], sizeof(float) * (size_t)d->n_params);
    if (h != sum_file) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: weights checksum mismatch (damaged checkpoint)",
                           path);
        goto out;
    }
out:
    if (og >= 0)
        H5Gclose(og);
    if (g >= 0)
        H5Gclose(g);
    H5Fclose(f);
    if (st != DPT_OK)
        ckpt_data_free(d);
    return st;
}

dpt_status dpt_ckpt_read(const char *path, dpt_model *m, dpt_optim *o, dpt_ckpt_meta *meta) {
    DPT_ASSERT(path && m);
    ckpt_data d;
    dpt_status st = ckpt_load(path, m, &d);
    if (st != DPT_OK)
        return st;
    if (o) {
        const char *want = optim_kind_name(dpt_optim_get_spec(o)->kind);
        int ns = dpt_optim_n_slots(o);
        if (strcmp(d.kind, want)) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /dptrain/optimizer/kind: the checkpoint was written with "
                               "\"%s\", the run uses \"%s\"",
                               path, d.kind, want);
            goto out;
        }
        if (ns != d.n_slots) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /dptrain/optimizer: %d state slots, the optimizer has %d", path,
                               d.n_slots, ns);
            goto out;
        }
        for (int i = 0; i < ns; i++)
            if (strcmp(d.slot_names[i], dpt_optim_slot_name(o, i))) {
                st = dpt_error_set(DPT_ERR_CHECKPOINT,
                                   "%s: /dptrain/optimizer: slot %d is \"%s\", the optimizer's "
                                   "is \"%s\" (momentum on in one, off in the other?)",
                                   path, i, d.slot_names[i], dpt_optim_slot_name(o, i));
                goto out;
            }
        /* the iteration count means steps, the accumulator a part of N: the same N only */
        if (d.accumulation_steps != dpt_optim_get_spec(o)->gradient_accumulation_steps) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /dptrain/optimizer: written with gradient_accumulation_steps "
                               "%d, the run uses %d",
                               path, (int)d.accumulation_steps,
                               dpt_optim_get_spec(o)->gradient_accumulation_steps);
            goto out;
        }
        for (int i = 0; i < ns; i++)
            if (d.n_params > 0)
                memcpy(dpt_optim_slot(o, i), d.slots[i], sizeof(float) * (size_t)d.n_params);
        dpt_optim_set_iterations(o, d.iterations);
    }
    if (d.n_params > 0)
        memcpy(dpt_model_params(m), d.params, sizeof(float) * (size_t)d.n_params);
    if (meta) {
        *meta = d.meta;
        meta->metric_state = NULL;
        meta->n_metric_state = 0;
    }
out:
    ckpt_data_free(&d);
    return st;
}

dpt_status dpt_ckpt_read_metric_state(const char *path, double *state, int64_t n) {
    DPT_ASSERT(path && (state || n == 0));
    if (n <= 0)
        return DPT_OK;
    memset(state, 0, (size_t)n * sizeof *state);
    hid_t f;
    dpt_status st = dpt_ckpt_h5_open(path, true, &f);
    if (st != DPT_OK)
        return st;
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) > 0 &&
        H5Lexists(f, "dptrain/metric_state", H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, "dptrain/metric_state", H5P_DEFAULT);
        hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
        bool fits = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
                    H5Sget_simple_extent_npoints(sp) == (hssize_t)n;
        if (fits && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, state) < 0) {
            memset(state, 0, (size_t)n * sizeof *state);
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/metric_state: cannot read", path);
        }
        if (sp >= 0)
            H5Sclose(sp);
        if (d >= 0)
            H5Dclose(d);
    }
    H5Fclose(f);
    return st;
}

dpt_status dpt_ckpt_read_config(const char *path, char **config_text) {
    DPT_ASSERT(path && config_text);
    *config_text = NULL;
    hid_t f;
    dpt_status st = dpt_ckpt_h5_open(path, true, &f);
    if (st != DPT_OK)
        return st;
    hid_t d = H5I_INVALID_HID, t = H5I_INVALID_HID, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) <= 0 ||
        H5Lexists(f, "dptrain/config", H5P_DEFAULT) <= 0 ||
        (d = H5Dopen2(f, "dptrain/config", H5P_DEFAULT)) < 0) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT,
                           "%s: /dptrain/config is missing (not a dptrain checkpoint)", path);
        goto out;
    }
    t = H5Dget_type(d);
    sp = H5Dget_space(d);
    if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/config: expected one string", path);
        goto out;
    }
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(t));
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/config: cannot read", path);
            goto out;
        }
        *config_text = strdup(s ? s : "");
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, &s);
    } else {
        size_t sz = H5Tget_size(t);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5Tget_strpad(t));
        char *s = calloc(1, sz + 1);
        if (s && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0) {
            free(s);
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /dptrain/config: cannot read", path);
            goto out;
        }
        *config_text = s;
    }
    if (!*config_text)
        st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
out:
    if (mt >= 0)
        H5Tclose(mt);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    return st;
}

/* The global step a checkpoint says it holds (/dptrain attribute global_step; the file checksum
 * checked, the weights' not); -1 when it cannot be read. */
static int64_t claimed_step(const char *path) {
    int64_t step = -1;
    hid_t f;
    if (dpt_ckpt_h5_open(path, true, &f) != DPT_OK) { /* damaged: HDF5 must not see it */
        dpt_error_clear();
        return -1;
    }
    if (H5Aexists_by_name(f, "dptrain", "global_step", H5P_DEFAULT) > 0) {
        hid_t a = H5Aopen_by_name(f, "dptrain", "global_step", H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &step) < 0)
            step = -1;
        if (a >= 0)
            H5Aclose(a);
    }
    H5Fclose(f);
    return step;
}

dpt_status dpt_ckpt_find_latest(const char *dir, const dpt_model *m, char *out, size_t out_len) {
    DPT_ASSERT(dir && out && out_len > 0);
    dpt_ckpt_h5_quiet();
    out[0] = '\0';
    ckpt_entry *v = NULL;
    int n = 0;
    dpt_status st = list_ckpts(dir, &v, &n, DPT_ERR_CHECKPOINT);
    if (st != DPT_OK)
        return st;
    /* candidates, newest first. last.h5 is replaced after each ckpt-*, so it is normally the
     * newest; but when replacing it failed (a full disk) a ckpt-* holds a later step: those come
     * first. A ckpt-* older (mtime) than last.h5 with a higher step belongs to an earlier run in
     * the same directory (started again without --resume) and comes after it. */
    char last[CKPT_PATH_MAX];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    struct stat sb;
    bool have_last = stat(last, &sb) == 0;
    int64_t last_step = have_last ? claimed_step(last) : -1;
    int n_cand = n + (have_last ? 1 : 0);
    if (n_cand == 0) {
        free(v);
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: no checkpoint (no last.h5, no ckpt-*.h5)",
                             dir);
    }
    char(*cand)[CKPT_PATH_MAX] = calloc((size_t)n_cand, sizeof *cand);
    char(*why)[1024] = calloc((size_t)n_cand, sizeof *why);
    if (!cand || !why) {
        free(v);
        free(cand);
        free(why);
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", dir);
    }
    int k = 0, n_newer = 0;
    for (int pass = 0; pass < 2; pass++) /* pass 0: the ckpt-* newer than last.h5 */
        for (int i = 0; i < n; i++) {
            char p[CKPT_PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", dir, v[i].name);
            struct stat cs;
            bool newer = have_last && v[i].step > last_step && stat(p, &cs) == 0 &&
                         (cs.st_mtim.tv_sec > sb.st_mtim.tv_sec ||
                          (cs.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
                           cs.st_mtim.tv_nsec >= sb.st_mtim.tv_nsec));
            if (have_last && newer != (pass == 0))
                continue;
            if (!have_last && pass == 1)
                continue;
            snprintf(cand[k++], CKPT_PATH_MAX, "%s", p);
            n_newer += have_last && newer;
        }
    if (have_last) { /* after the newer ones */
        memmove(cand + n_newer + 1, cand + n_newer, (size_t)(k - n_newer) * sizeof *cand);
        snprintf(cand[n_newer], CKPT_PATH_MAX, "%s", last);
        k++;
    }
    DPT_ASSERT(k == n_cand);
    int found = -1;
    for (int i = 0; i < n_cand && found < 0; i++) {
        ckpt_data d;
        if (ckpt_load(cand[i], m, &d) == DPT_OK) {
            ckpt_data_free(&d);
            found = i;
        } else {
            snprintf(why[i], sizeof why[i], "%s", dpt_error_message());
        }
    }
    if (found >= 0) {
        for (int i = 0; i < found; i++)
            fprintf(stderr, "dptrain: warning: %s; using %s\n", why[i], cand[found]);
        if (have_last && found < n_newer)
            fprintf(stderr,
                    "dptrain: warning: %s is newer than %s (which holds step %lld: replacing it "
                    "failed?); using it\n",
                    cand[found], last, (long long)last_step);
        if (strlen(cand[found]) >= out_len)
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: path too long", cand[found]);
        else
            snprintf(out, out_len, "%s", cand[found]);
    } else {
        /* one line: every candidate and why it failed (the first reason in full) */
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: no usable checkpoint among %d (newest: %s)",
                           dir, n_cand, why[0]);
    }
    free(v);
    free(cand);
    free(why);
    return st;
}
