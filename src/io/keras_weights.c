/* Keras-compatible weight files in HDF5: dpt_weights_save_keras / dpt_weights_load_keras, and the
 * HDF5 helpers checkpoint.c shares with them (src/io/ckpt_h5.h).
 *
 * Writes Keras 2's legacy layout (the "Minimal C-writer recipe" in shared/notes/keras-formats.md:
 * fixed-length ASCII layer_names / weight_names, vlen backend / keras_version, empty SIMPLE (0,)
 * float64 weight_names for weightless layers, <layer>/<layer>/kernel:0 float32). Reads Keras 2
 * legacy (root or /model_weights), Keras 3 legacy .h5 and Keras 3 .weights.h5, matching by
 * position as Keras's load_weights does. Local, serial HDF5, one rank.
 * Left to others: the layers' weight names and shapes (src/nn, via ops->weights()), checkpoints'
 * /dptrain group (checkpoint.c), deciding which rank writes (src/train).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "io/ckpt_h5.h"

#define MAX_W 8 /* weight tensors per layer (BatchNormalization has 4) */

/* ---- small things ------------------------------------------------------------------------- */

void dpt_ckpt_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
    if (*id >= 0)
        fn(*id);
    *id = H5I_INVALID_HID;
}

/* "(64, 32)" / "(64,)" as Python prints shapes. */
static void fmt_dims(char *buf, size_t n, int rank, const int64_t *dims) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (k < n)
        snprintf(buf + k, n - k, rank == 1 ? ",)" : ")");
}

static bool dims_equal(int ra, const int64_t *a, int rb, const int64_t *b) {
    if (ra != rb)
        return false;
    for (int i = 0; i < ra; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* ---- whole-file checksum in the user block ------------------------------------------------
 * Bytes [0, DPT_H5SUM_BYTES) of a file we write: "DPTRAIN-H5SUM 1 <size> <fnv1a64 hex>\n" then
 * zeros; the hash covers bytes [DPT_H5SUM_BYTES, size). Checked BEFORE HDF5 opens the file: a
 * damaged file must be refused by us, not handed to HDF5, whose reader can crash on it. */
#define H5SUM_MAGIC "DPTRAIN-H5SUM 1 "

/* head (DPT_H5SUM_BYTES) = the stamp for an HDF5 image img (n bytes) written right after it */
static void h5sum_stamp(unsigned char *head, const unsigned char *img, size_t n) {
    memset(head, 0, DPT_H5SUM_BYTES);
    snprintf((char *)head, DPT_H5SUM_BYTES, H5SUM_MAGIC "%zu %016llx\n", n + DPT_H5SUM_BYTES,
             (unsigned long long)dpt_fnv1a64(DPT_FNV1A64_INIT, img, n));
}

/* DPT_OK when the file has no stamp (a Keras file) or its stamp matches. */
static dpt_status h5sum_check(const char *path, bool require) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: cannot open: %s", path, strerror(errno));
    char head[DPT_H5SUM_BYTES + 1] = {0};
    size_t got = fread(head, 1, DPT_H5SUM_BYTES, fp);
    if (got < strlen(H5SUM_MAGIC) || memcmp(head, H5SUM_MAGIC, strlen(H5SUM_MAGIC)) != 0) {
        fclose(fp);
        if (require && got >= 8 && !memcmp(head, "\x89HDF\r\n\x1a\n", 8))
            return dpt_error_set(DPT_ERR_CHECKPOINT,
                                 "%s: not a dptrain checkpoint (no file checksum; a Keras weights "
                                 "file goes to --init-weights or predict --config)",
                                 path);
        return DPT_OK; /* a Keras file, or not HDF5 at all (said later) */
    }
    unsigned long long size = 0, want = 0;
    if (sscanf(head + strlen(H5SUM_MAGIC), "%llu %llx", &size, &want) != 2 ||
        size < DPT_H5SUM_BYTES || size > ((unsigned long long)1 << 40)) {
        fclose(fp);
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: damaged file (unreadable checksum header)",
                             path);
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || (unsigned long long)sb.st_size != size) {
        fclose(fp);
        return dpt_error_set(
            DPT_ERR_CHECKPOINT,
            "%s: damaged file (%lld bytes, written as %llu: truncated or overwritten)", path,
            (long long)sb.st_size, size);
    }
    if (fseek(fp, DPT_H5SUM_BYTES, SEEK_SET) != 0) {
        fclose(fp);
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: cannot read: %s", path, strerror(errno));
    }
    uint64_t h = DPT_FNV1A64_INIT;
    unsigned char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, fp)) > 0)
        h = dpt_fnv1a64(h, buf, r);
    bool bad = ferror(fp) != 0;
    fclose(fp);
    if (bad || h != want)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: damaged file (file checksum mismatch)", path);
    return DPT_OK;
}

dpt_status dpt_ckpt_h5_open(const char *path, bool require_stamp, hid_t *out) {
    dpt_ckpt_h5_quiet();
    *out = H5I_INVALID_HID;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: is %s, not a regular file", path,
                             dpt_file_kind(sb.st_mode));
    dpt_status cs = h5sum_check(path, require_stamp);
    if (cs != DPT_OK)
        return cs;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT,
                             "%s: damaged HDF5 file (truncated or corrupted; cannot open it)",
                             path);
    *out = f;
    return DPT_OK;
}

/* ---- string attributes -------------------------------------------------------------------- */

void dpt_ckpt_h5_free_strs(char **s, int n) {
    if (!s)
        return;
    for (int i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

/* Appends the strings of attribute `name` to (*v, *n). */
static dpt_status read_strs_one(hid_t obj, const char *name, const char *file, const char *wp,
                                char ***v, int *n) {
    dpt_status st = DPT_OK;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, s = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    char *raw = NULL;
    char **vl = NULL;
    a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s@%s: cannot open the attribute", file, wp,
                           name);
        goto out;
    }
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    hssize_t np = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (t < 0 || np < 0 || np > 1000000) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s@%s: unreadable attribute", file, wp, name);
        goto out;
    }
    if (np == 0)
        goto out; /* Keras's empty list: float64 (0,) */
    if (H5Tget_class(t) != H5T_STRING) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s@%s: expected strings", file, wp, name);
        goto out;
    }
    char **nv = realloc(*v, sizeof(char *) * (size_t)(*n + np));
    if (!nv) {
        st = dpt_error_set(DPT_ERR_NOMEM, "%s: %s@%s: out of memory", file, wp, name);
        goto out;
    }
    *v = nv;
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(t));
    if (H5Tis_variable_str(t) > 0) {
        H5Tset_size(mt, H5T_VARIABLE);
        vl = calloc((size_t)np, sizeof(char *));
        if (!vl || H5Aread(a, mt, vl) < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s@%s: cannot read", file, wp, name);
            goto out;
        }
        for (hssize_t i = 0; i < np; i++)
            (*v)[(*n)++] = strdup(vl[i] ? vl[i] : "");
        H5Dvlen_reclaim(mt, s, H5P_DEFAULT, vl);
    } else {
        size_t sz = H5Tget_size(t);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5Tget_strpad(t));
        raw = calloc((size_t)np, sz + 1);
        if (!raw || H5Aread(a, mt, raw) < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s@%s: cannot read", file, wp, name);
            goto out;
        }
        for (hssize_t i = 0; i < np; i++) {
            const char *p = raw + (size_t)i * sz;
            size_t len = strnlen(p, sz);
            while (len > 0 && p[len - 1] == ' ')
                len--; /* SPACEPAD */
            (*v)[(*n)++] = strndup(p, len);
        }
    }
    for (int i = 0; i < *n; i++)
        if (!(*v)[i]) {
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: %s@%s: out of memory", file, wp, name);
            break;
        }
out:
    free(raw);
    free(vl);
    close_id(&mt, H5Tclose);
    close_id(&s, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    return st;
}

dpt_status dpt_ckpt_h5_read_strs(hid_t obj, const char *name, const char *file,
                                 const char *what_path, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    dpt_status st = DPT_OK;
    htri_t ex = H5Aexists(obj, name);
    if (ex > 0) {
        st = read_strs_one(obj, name, file, what_path, out, n);
    } else {
        /* Keras splits attributes over 64512 bytes into name0, name1, ... */
        char nm[256];
        int k = 0;
        for (;; k++) {
            snprintf(nm, sizeof nm, "%s%d", name, k);
            if (H5Aexists(obj, nm) <= 0)
                break;
            st = read_strs_one(obj, nm, file, what_path, out, n);
            if (st != DPT_OK)
                break;
        }
        if (st == DPT_OK && k == 0)
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s: attribute %s is missing", file,
                               what_path, name);
    }
    if (st != DPT_OK) {
        dpt_ckpt_h5_free_strs(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

dpt_status dpt_ckpt_h5_write_strs(hid_t obj, const char *name, const char *file,
                                  const char *const *s, int n) {
    dpt_status st = DPT_OK;
    hid_t t = H5I_INVALID_HID, sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    char *buf = NULL;
    hsize_t dims[1] = {(hsize_t)n};
    sp = H5Screate_simple(1, dims, NULL);
    if (n == 0) {
        double dummy = 0;
        a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &dummy) < 0)
            goto fail;
        goto out;
    }
    size_t w = 1;
    for (int i = 0; i < n; i++)
        if (strlen(s[i]) > w)
            w = strlen(s[i]);
    buf = calloc((size_t)n, w);
    if (!buf)
        goto fail;
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * w, s[i], strlen(s[i]));
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, w);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_ASCII);
    a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, buf) < 0)
        goto fail;
    goto out;
fail:
    st = dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", file, name);
out:
    free(buf);
    close_id(&a, H5Aclose);
    close_id(&t, H5Tclose);
    close_id(&sp, H5Sclose);
    return st;
}

dpt_status dpt_ckpt_h5_write_str(hid_t obj, const char *name, const char *file, const char *s) {
    dpt_status st = DPT_OK;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_ASCII);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &s) < 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot write attribute %s", file, name);
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

dpt_status dpt_ckpt_h5_write_weights(hid_t f, const char *path, const dpt_model *m) {
    dpt_status st = DPT_OK;
    int nl = dpt_model_n_layers(m);
    const char **lnames = calloc((size_t)(nl > 0 ? nl : 1), sizeof(char *));
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t g = H5I_INVALID_HID, sp = H5I_INVALID_HID, d = H5I_INVALID_HID;
    if (!lnames || lcpl < 0) {
        st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    H5Pset_create_intermediate_group(lcpl, 1);
    for (int i = 0; i < nl; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        lnames[i] = l->name;
        if (!l->name[0] || strchr(l->name, '/') || !strcmp(l->name, "top_level_model_weights")) {
            st = dpt_error_set(DPT_ERR_IO, "%s: layer %d: name \"%s\" cannot be an HDF5 group",
                               path, i + 1, l->name);
            goto out;
        }
    }
    if ((st = dpt_ckpt_h5_write_strs(f, "layer_names", path, lnames, nl)) != DPT_OK)
        goto out;
    if ((st = dpt_ckpt_h5_write_str(f, "backend", path, DPT_KERAS_BACKEND)) != DPT_OK)
        goto out;
    if ((st = dpt_ckpt_h5_write_str(f, "keras_version", path, DPT_KERAS_VERSION)) != DPT_OK)
        goto out;
    for (int i = 0; i < nl; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        const char *wn[MAX_W];
        dpt_shape ws[MAX_W];
        int nw = dpt_layer_weights(l, wn, ws, MAX_W);
        int64_t np = dpt_layer_n_params(l);
        if (nw < 0 || nw > MAX_W) {
            st = dpt_error_set(DPT_ERR_INTERNAL, "%s: layer %d (%s): %d weight tensors", path,
                               i + 1, l->name, nw);
            goto out;
        }
        char full[MAX_W][300];
        const char *fp[MAX_W];
        for (int j = 0; j < nw; j++) {
            snprintf(full[j], sizeof full[j], "%s/%s:0", l->name, wn[j]);
            fp[j] = full[j];
        }
        g = H5Gcreate2(f, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot create group /%s (duplicate layer name?)",
                               path, l->name);
            goto out;
        }
        if ((st = dpt_ckpt_h5_write_strs(g, "weight_names", path, fp, nw)) != DPT_OK)
            goto out;
        int64_t off = 0;
        for (int j = 0; j < nw; j++) {
            hsize_t dims[DPT_MAX_RANK];
            for (int k = 0; k < ws[j].rank; k++)
                dims[k] = (hsize_t)ws[j].dim[k];
            sp = ws[j].rank > 0 ? H5Screate_simple(ws[j].rank, dims, NULL) : H5Screate(H5S_SCALAR);
            d = H5Dcreate2(g, fp[j], H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            int64_t sz = dpt_shape_size(&ws[j]);
            if (off + sz > np) {
                st = dpt_error_set(DPT_ERR_INTERNAL,
                                   "%s: layer %d (%s): weights larger than its %lld parameters",
                                   path, i + 1, l->name, (long long)np);
                goto out;
            }
            if (d < 0 || (sz > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                             l->params + off) < 0)) {
                st = dpt_error_set(DPT_ERR_IO, "%s: cannot write /%s/%s (disk full?)", path,
                                   l->name, fp[j]);
                goto out;
            }
            off += sz;
            close_id(&d, H5Dclose);
            close_id(&sp, H5Sclose);
        }
        if (off != np) {
            st = dpt_error_set(DPT_ERR_INTERNAL,
                               "%s: layer %d (%s): weights cover %lld of %lld parameters", path,
                               i + 1, l->name, (long long)off, (long long)np);
            goto out;
        }
        close_id(&g, H5Gclose);
    }
    /* Keras >= 2.7 and Keras 3 write (and read, when present) the model's own weights here. */
    g = H5Gcreate2(f, "top_level_model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot create group /top_level_model_weights", path);
        goto out;
    }
    st = dpt_ckpt_h5_write_strs(g, "weight_names", path, NULL, 0);
out:
    close_id(&d, H5Dclose);
    close_id(&sp, H5Sclose);
    close_id(&g, H5Gclose);
    close_id(&lcpl, H5Pclose);
    free(lnames);
    return st;
}

/* Writes all of buf to fd (partial writes and EINTR handled). 0 or errno. */
static int write_all(int fd, const unsigned char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The file is built in memory (HDF5 core driver, no backing store) and written with plain POSIX
 * calls: every disk error (ENOSPC, EFBIG, EIO) comes back as an errno we report, and HDF5 never
 * holds a half-written file (a failed H5Fclose on disk leaves HDF5 in a state that crashes at
 * exit). The price: one copy of the file in memory while writing. */
dpt_status dpt_ckpt_h5_write_atomic(const char *path, dpt_ckpt_h5_fill_fn fill, void *ctx) {
    dpt_ckpt_h5_quiet();
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dpt_error_set(DPT_ERR_IO, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666); /* a stale .tmp is truncated */
    if (fd < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    dpt_status st = DPT_OK;
    unsigned char *img = NULL;
    ssize_t n_img = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, (size_t)1 << 20, 0);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* close everything, even on error paths */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        st = dpt_error_set(DPT_ERR_IO, "%s: HDF5 could not create the file in memory", path);
        goto out;
    }
    st = fill(f, path, ctx);
    if (st == DPT_OK && H5Fflush(f, H5F_SCOPE_LOCAL) < 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: HDF5 could not finish the file", path);
    if (st == DPT_OK)
        n_img = H5Fget_file_image(f, NULL, 0);
    if (st == DPT_OK && (n_img <= 0 || !(img = malloc((size_t)n_img)) ||
                         H5Fget_file_image(f, img, (size_t)n_img) != n_img))
        st = dpt_error_set(n_img > 0 && !img ? DPT_ERR_NOMEM : DPT_ERR_IO,
                           "%s: cannot get the file image (%lld bytes)", path, (long long)n_img);
    H5Fclose(f);
    if (st != DPT_OK)
        goto out;
    /* DPT_H5SUM_BYTES in front of the HDF5 image carry our whole-file checksum; HDF5, h5py and
     * Keras skip them (they look for the superblock at 0, 512, 1024, ...: a user block) */
    unsigned char head[DPT_H5SUM_BYTES];
    h5sum_stamp(head, img, (size_t)n_img);
    int e = write_all(fd, head, sizeof head);
    if (!e)
        e = write_all(fd, img, (size_t)n_img);
    if (e) {
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(e));
        goto out;
    }
    e = close(fd) != 0 ? errno : 0;
    fd = -1;
    if (e) {
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot close %s: %s", path, tmp, strerror(e));
        goto out;
    }
    free(img);
    return dpt_file_commit(tmp, path); /* fsync, rename, fsync of the directory */
out:
    if (fd >= 0)
        close(fd);
    free(img);
    unlink(tmp);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* One layer of the file: where its weights are. */
typedef struct {
    char *name; /* group name in the file */
    hid_t grp;  /* open group the weight paths are relative to */
    char **w;   /* weight dataset paths relative to grp */
    int nw;
} flayer;

static void flayers_free(flayer *fl, int n) {
    if (!fl)
        return;
    for (int i = 0; i < n; i++) {
        free(fl[i].name);
        if (fl[i].grp >= 0)
            H5Gclose(fl[i].grp);
        dpt_ckpt_h5_free_strs(fl[i].w, fl[i].nw);
    }
    free(fl);
}

/* Keras 2 / Keras 3 legacy: layer_names at `root` (where = "" or "/model_weights"). */
static dpt_status list_legacy(hid_t root, const char *path, const char *where, flayer **out,
                              int *n_out) {
    char **names = NULL;
    int n = 0;
    char wp[300];
    snprintf(wp, sizeof wp, "%s/", where);
    dpt_status st = dpt_ckpt_h5_read_strs(root, "layer_names", path, wp, &names, &n);
    if (st != DPT_OK)
        return st;
    flayer *fl = calloc((size_t)(n > 0 ? n : 1), sizeof *fl);
    if (!fl) {
        dpt_ckpt_h5_free_strs(names, n);
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n; i++)
        fl[i].grp = H5I_INVALID_HID;
    for (int i = 0; i < n && st == DPT_OK; i++) {
        fl[i].name = names[i];
        names[i] = NULL;
        snprintf(wp, sizeof wp, "%s/%s", where, fl[i].name);
        if (H5Lexists(root, fl[i].name, H5P_DEFAULT) <= 0 ||
            (fl[i].grp = H5Gopen2(root, fl[i].name, H5P_DEFAULT)) < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s: group listed in layer_names is missing",
                               path, wp);
            break;
        }
        st = dpt_ckpt_h5_read_strs(fl[i].grp, "weight_names", path, wp, &fl[i].w, &fl[i].nw);
    }
    dpt_ckpt_h5_free_strs(names, n);
    if (st != DPT_OK) {
        flayers_free(fl, n);
        return st;
    }
    *out = fl;
    *n_out = n;
    return DPT_OK;
}

/* Keras's naming.to_snake_case: "MaxPooling2D" -> "max_pooling2d", "Dense" -> "dense". */
static void snake_case(const char *in, char *out, size_t n) {
    char a[256];
    size_t k = 0, len = strlen(in);
    /* re.sub("(.)([A-Z][a-z]+)", r"\1_\2") */
    for (size_t i = 0; i < len && k + 2 < sizeof a; i++) {
        char c = in[i];
        if (i > 0 && c >= 'A' && c <= 'Z' && in[i + 1] >= 'a' && in[i + 1] <= 'z' &&
            a[k - 1] != '_')
            a[k++] = '_';
        a[k++] = c;
    }
    a[k] = '\0';
    /* re.sub("([a-z])([A-Z])", r"\1_\2").lower() */
    size_t o = 0;
    for (size_t i = 0; i < k && o + 2 < n; i++) {
        char c = a[i];
        if (i > 0 && c >= 'A' && c <= 'Z' && a[i - 1] >= 'a' && a[i - 1] <= 'z')
            out[o++] = '_';
        out[o++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
    out[o] = '\0';
}

/* Keras 3 .weights.h5: /layers/<snake_case(class)>[_k]/vars/0..n-1, one entry per model layer
 * (so here the list is aligned with the model's layers, weightless ones included); a layer with
 * ops->keras3_path keeps its weights deeper (an RNN: /layers/lstm/cell/vars/0..2). */
static dpt_status list_k3(hid_t f, const char *path, const dpt_model *m, flayer **out, int *n_out) {
    int nl = dpt_model_n_layers(m);
    dpt_status st = DPT_OK;
    hid_t lg = H5Gopen2(f, "layers", H5P_DEFAULT);
    H5G_info_t gi;
    if (lg < 0 || H5Gget_info(lg, &gi) < 0) {
        if (lg >= 0)
            H5Gclose(lg);
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /layers: cannot open the group", path);
    }
    if ((int64_t)gi.nlinks != nl) {
        H5Gclose(lg);
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /layers holds %lld layers, the model has %d",
                             path, (long long)gi.nlinks, nl);
    }
    flayer *fl = calloc((size_t)(nl > 0 ? nl : 1), sizeof *fl);
    char(*used)[128] = calloc((size_t)(nl > 0 ? nl : 1), sizeof *used);
    int *cnt = calloc((size_t)(nl > 0 ? nl : 1), sizeof *cnt);
    int n_used = 0;
    if (!fl || !used || !cnt) {
        st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
        nl = 0;
    }
    for (int i = 0; i < nl; i++)
        fl[i].grp = H5I_INVALID_HID;
    for (int i = 0; i < nl && st == DPT_OK; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        char base[128], name[160];
        snake_case(l->ops->class_name, base, sizeof base);
        int u = 0;
        while (u < n_used && strcmp(used[u], base))
            u++;
        if (u == n_used) {
            snprintf(used[n_used++], sizeof used[0], "%s", base);
            snprintf(name, sizeof name, "%s", base);
        } else {
            snprintf(name, sizeof name, "%s_%d", base, ++cnt[u]);
        }
        fl[i].name = strdup(name);
        if (!fl[i].name) {
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        if (H5Lexists(lg, name, H5P_DEFAULT) <= 0 ||
            (fl[i].grp = H5Gopen2(lg, name, H5P_DEFAULT)) < 0) {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: /layers/%s is missing (the model's layer %d, %s %s)", path,
                               name, i + 1, l->ops->class_name, l->name);
            break;
        }
        int nv = 0;
        if (l->ops->keras3_path) { /* weights in sub-objects (an RNN's cell) */
            const char *wn[MAX_W];
            dpt_shape ws[MAX_W];
            nv = l->ops->weights(l, wn, ws, MAX_W);
            fl[i].w = calloc((size_t)(nv > 0 ? nv : 1), sizeof(char *));
            if (!fl[i].w) {
                st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            for (int j = 0; j < nv && st == DPT_OK; j++) {
                char vp[256];
                l->ops->keras3_path(l, j, vp, sizeof vp);
                if (!(fl[i].w[fl[i].nw++] = strdup(vp)))
                    st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
            }
            continue;
        }
        if (H5Lexists(fl[i].grp, "vars", H5P_DEFAULT) > 0) {
            hid_t vg = H5Gopen2(fl[i].grp, "vars", H5P_DEFAULT);
            if (vg < 0 || H5Gget_info(vg, &gi) < 0) {
                if (vg >= 0)
                    H5Gclose(vg);
                st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: /layers/%s/vars: unreadable", path,
                                   name);
                break;
            }
            H5Gclose(vg);
            nv = (int)gi.nlinks;
        }
        fl[i].w = calloc((size_t)(nv > 0 ? nv : 1), sizeof(char *));
        if (!fl[i].w) {
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        for (int j = 0; j < nv; j++) {
            char vp[32];
            snprintf(vp, sizeof vp, "vars/%d", j);
            fl[i].w[fl[i].nw++] = strdup(vp);
        }
    }
    free(used);
    free(cnt);
    H5Gclose(lg);
    if (st != DPT_OK) {
        flayers_free(fl, nl);
        return st;
    }
    *out = fl;
    *n_out = nl;
    return DPT_OK;
}

/* Opens dataset `wpath` in file layer fl, checks it is numeric, returns its dims. */
static dpt_status open_weight(const flayer *fl, int j, const char *path, const char *where,
                              hid_t *d_out, int *rank, int64_t *dims) {
    hid_t d = H5I_INVALID_HID, s = H5I_INVALID_HID, t = H5I_INVALID_HID;
    dpt_status st = DPT_OK;
    if (H5Lexists(fl->grp, fl->w[j], H5P_DEFAULT) <= 0 ||
        (d = H5Dopen2(fl->grp, fl->w[j], H5P_DEFAULT)) < 0) {
        /* H5Lexists fails on a missing intermediate group; both mean "missing" */
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: weight dataset is missing", path,
                             where, fl->name, fl->w[j]);
    }
    t = H5Dget_type(d);
    s = H5Dget_space(d);
    int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (t < 0 || r < 0 || r > DPT_MAX_RANK) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: unreadable dataset", path, where,
                           fl->name, fl->w[j]);
    } else if (H5Tget_class(t) != H5T_FLOAT && H5Tget_class(t) != H5T_INTEGER) {
        /* integers: Normalization's "count" (int32 in Keras 3, int64 in Keras 2) */
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: not a numeric dataset", path, where,
                           fl->name, fl->w[j]);
    } else if (H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) != 1 && H5Tget_size(t) != 2 &&
               H5Tget_size(t) != 4 && H5Tget_size(t) != 8) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: %zu-byte integers (damaged file?)",
                           path, where, fl->name, fl->w[j], H5Tget_size(t));
    } else if (H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) != 2 && H5Tget_size(t) != 4 &&
               H5Tget_size(t) != 8) {
        /* a damaged type: HDF5 would size its conversion buffer by it (gigabytes) */
        st = dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: %zu-byte floats (damaged file?)",
                           path, where, fl->name, fl->w[j], H5Tget_size(t));
    } else {
        hsize_t hd[DPT_MAX_RANK];
        H5Sget_simple_extent_dims(s, hd, NULL);
        for (int k = 0; k < r; k++)
            dims[k] = (int64_t)hd[k];
        *rank = r;
    }
    close_id(&t, H5Tclose);
    close_id(&s, H5Sclose);
    if (st != DPT_OK)
        close_id(&d, H5Dclose);
    *d_out = d;
    return st;
}

static dpt_status read_weight(hid_t d, float *dst, const char *path, const char *where,
                              const flayer *fl, int j) {
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT, "%s: %s/%s/%s: cannot read (damaged file)", path,
                             where, fl->name, fl->w[j]);
    return DPT_OK;
}

/* Reads file layer fl's weights into model layer l's slice of flat, shapes checked. */
static dpt_status load_pair(const dpt_layer *l, const flayer *fl, const char *path,
                            const char *where, float *flat) {
    const char *wn[MAX_W];
    dpt_shape ws[MAX_W];
    int nw = dpt_layer_weights(l, wn, ws, MAX_W);
    char lbl[300];
    if (strcmp(l->name, fl->name))
        snprintf(lbl, sizeof lbl, "layer %d (%s; in the file: %s)", l->index + 1, l->name,
                 fl->name);
    else
        snprintf(lbl, sizeof lbl, "layer %d (%s)", l->index + 1, l->name);
    if (nw != fl->nw)
        return dpt_error_set(DPT_ERR_CHECKPOINT,
                             "%s: %s: the file has %d weight tensors, the model's %s layer has %d",
                             path, lbl, fl->nw, l->ops->class_name, nw);
    int64_t off = l->param_offset;
    for (int j = 0; j < nw; j++) {
        hid_t d;
        int r = 0;
        int64_t dims[DPT_MAX_RANK];
        dpt_status st = open_weight(fl, j, path, where, &d, &r, dims);
        if (st != DPT_OK)
            return st;
        if (!dims_equal(r, dims, ws[j].rank, ws[j].dim)) {
            char a[128], b[128];
            fmt_dims(a, sizeof a, r, dims);
            fmt_dims(b, sizeof b, ws[j].rank, ws[j].dim);
            H5Dclose(d);
            return dpt_error_set(DPT_ERR_CHECKPOINT,
                                 "%s: %s: %s shape %s does not match the model's %s", path, lbl,
                                 wn[j], a, b);
        }
        st = read_weight(d, flat + off, path, where, fl, j);
        H5Dclose(d);
        if (st != DPT_OK)
            return st;
        off += dpt_shape_size(&ws[j]);
    }
    return DPT_OK;
}

/* m == NULL: every weight of the file, in file order, concatenated. */
static dpt_status load_file_order(const flayer *fl, int n, const char *path, const char *where,
                                  float **out, int64_t *n_out) {
    float *buf = NULL;
    int64_t len = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < fl[i].nw; j++) {
            hid_t d;
            int r = 0;
            int64_t dims[DPT_MAX_RANK], sz = 1;
            dpt_status st = open_weight(&fl[i], j, path, where, &d, &r, dims);
            if (st != DPT_OK) {
                free(buf);
                return st;
            }
            for (int k = 0; k < r; k++)
                sz *= dims[k];
            float *nb = realloc(buf, sizeof(float) * (size_t)(len + sz + 1));
            if (!nb) {
                H5Dclose(d);
                free(buf);
                return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            st = sz > 0 ? read_weight(d, buf + len, path, where, &fl[i], j) : DPT_OK;
            H5Dclose(d);
            if (st != DPT_OK) {
                free(buf);
                return st;
            }
            len += sz;
        }
    }
    *out = buf;
    *n_out = len;
    return DPT_OK;
}

dpt_status dpt_ckpt_h5_read_weights(hid_t f, const char *path, const dpt_model *m, float *flat,
                                    float **flat_alloc, int64_t *n_alloc) {
    dpt_ckpt_h5_quiet();
    dpt_status st = DPT_OK;
    flayer *fl = NULL;
    int nf = 0;
    hid_t mw = H5I_INVALID_HID;
    const char *where = "";
    bool k3 = false;
    if (H5Aexists(f, "layer_names") > 0 || H5Aexists(f, "layer_names0") > 0) {
        st = list_legacy(f, path, "", &fl, &nf);
    } else if (H5Lexists(f, "model_weights", H5P_DEFAULT) > 0 &&
               (mw = H5Gopen2(f, "model_weights", H5P_DEFAULT)) >= 0) {
        where = "/model_weights";
        st = list_legacy(mw, path, where, &fl, &nf);
    } else if (m && H5Lexists(f, "layers", H5P_DEFAULT) > 0) {
        where = "/layers";
        k3 = true;
        st = list_k3(f, path, m, &fl, &nf);
    } else {
        st = dpt_error_set(DPT_ERR_CHECKPOINT,
                           "%s: no Keras weights found (no layer_names attribute, no "
                           "/model_weights, no /layers)",
                           path);
    }
    if (st != DPT_OK)
        goto out;
    if (!m) {
        st = load_file_order(fl, nf, path, where, flat_alloc, n_alloc);
        goto out;
    }
    int nl = dpt_model_n_layers(m);
    if (k3) { /* aligned with the model's layers */
        for (int i = 0; i < nl && st == DPT_OK; i++)
            st = load_pair(dpt_model_layer(m, i), &fl[i], path, where, flat);
        goto out;
    }
    /* by position, as Keras: model layers with weights <-> file layers with weight_names */
    int nm = 0, nfw = 0;
    for (int i = 0; i < nl; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        const char *wn[MAX_W];
        dpt_shape ws[MAX_W];
        if (dpt_layer_weights(l, wn, ws, MAX_W) > 0)
            nm++;
    }
    for (int i = 0; i < nf; i++)
        if (fl[i].nw > 0)
            nfw++;
    if (nm != nfw) {
        st = dpt_error_set(DPT_ERR_CHECKPOINT,
                           "%s: the file has weights for %d layers, the model has %d layers "
                           "with weights",
                           path, nfw, nm);
        goto out;
    }
    int k = 0;
    for (int i = 0; i < nl && st == DPT_OK; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        const char *wn[MAX_W];
        dpt_shape ws[MAX_W];
        if (dpt_layer_weights(l, wn, ws, MAX_W) == 0)
            continue;
        while (fl[k].nw == 0)
            k++;
        st = load_pair(l, &fl[k], path, where, flat);
        k++;
    }
out:
    flayers_free(fl, nf);
    close_id(&mw, H5Gclose);
    return st;
}

/* ---- public ------------------------------------------------------------------------------- */

static dpt_status fill_weights(hid_t f, const char *path, void *ctx) {
    return dpt_ckpt_h5_write_weights(f, path, (const dpt_model *)ctx);
}

dpt_status dpt_weights_save_keras(const char *path, const dpt_model *m) {
    DPT_ASSERT(path && m);
    return dpt_ckpt_h5_write_atomic(path, fill_weights, (void *)(uintptr_t)m);
}

typedef struct {
    const dpt_model *m;
    const char *model_config;
} model_file;

/* Keras's legacy full-model layout: backend, keras_version and model_config at the root, the
 * weights under /model_weights (Keras's load_weights looks there too) */
static dpt_status fill_model(hid_t f, const char *path, void *ctx) {
    const model_file *mf = ctx;
    dpt_status st = dpt_ckpt_h5_write_str(f, "backend", path, DPT_KERAS_BACKEND);
    if (st == DPT_OK)
        st = dpt_ckpt_h5_write_str(f, "keras_version", path, DPT_KERAS_VERSION);
    if (st == DPT_OK)
        st = dpt_ckpt_h5_write_str(f, "model_config", path, mf->model_config);
    if (st != DPT_OK)
        return st;
    hid_t g = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create group /model_weights", path);
    st = dpt_ckpt_h5_write_weights(g, path, mf->m);
    H5Gclose(g);
    return st;
}

dpt_status dpt_weights_save_keras_model(const char *path, const dpt_model *m,
                                        const char *model_config) {
    DPT_ASSERT(path && m);
    if (!model_config || !model_config[0])
        return dpt_weights_save_keras(path, m);
    model_file mf = {m, model_config};
    return dpt_ckpt_h5_write_atomic(path, fill_model, &mf);
}

dpt_status dpt_weights_load_keras(const char *path, dpt_model *m) {
    DPT_ASSERT(path && m);
    hid_t f;
    dpt_status st = dpt_ckpt_h5_open(path, false, &f);
    if (st != DPT_OK)
        return st;
    int64_t n = dpt_model_n_params(m);
    float *scratch = NULL;
    st = dpt_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "weights being loaded",
                   (void **)&scratch);
    if (st == DPT_OK)
        st = dpt_ckpt_h5_read_weights(f, path, m, scratch, NULL, NULL);
    H5Fclose(f);
    if (st == DPT_OK && n > 0)
        memcpy(dpt_model_params(m), scratch, sizeof(float) * (size_t)n);
    dpt_free(scratch);
    return st;
}
