/* `dptrain data inspect FILE`: prints every group and dataset of an HDF5 file (shape, dtype,
 * chunking), their attributes, and for integer `y` datasets the count of each label, so a user can
 * see at a glance whether a file fits datasets/FORMAT.md. Read-only, serial, local (no MPI).
 * Validation proper is dpt_data_probe / dpt_shard_open (h5util.c, shard.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

#define INSPECT_MAX_DEPTH 32
#define INSPECT_MAX_LABEL 100000 /* count labels one by one up to this value */

static void indent(FILE *out, int depth) {
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

/* Prints an attribute's value: numbers (up to 16), strings (fixed or variable length). */
static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *data) {
    (void)ai;
    FILE *out = ((FILE **)data)[0];
    int depth = (int)(intptr_t)((FILE **)data)[1];
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return 0;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int rank = H5Sget_simple_extent_ndims(sp);
    H5T_class_t c = H5Tget_class(t);
    indent(out, depth);
    fprintf(out, "@%s = ", name);
    if ((c == H5T_INTEGER || c == H5T_FLOAT) && n >= 1) {
        int show = n > 16 ? 16 : (int)n;
        double *v = malloc((size_t)n * sizeof(double));
        if (v && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0) {
            if (rank > 0)
                fputc('[', out);
            for (int i = 0; i < show; i++)
                fprintf(out, "%s%.9g", i ? ", " : "", v[i]);
            if (show < n)
                fprintf(out, ", ... (%lld values)", (long long)n);
            if (rank > 0)
                fputc(']', out);
        } else {
            fputs("<unreadable>", out);
        }
        free(v);
    } else if (c == H5T_STRING && n >= 1 && n <= 4096) {
        int show = (int)n;
        if (rank > 0)
            fputc('[', out);
        if (H5Tis_variable_str(t) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            char **s = calloc((size_t)n, sizeof *s);
            if (s && H5Aread(a, mt, s) >= 0) {
                for (int i = 0; i < show; i++)
                    fprintf(out, "%s\"%s\"", i ? ", " : "", s[i] ? s[i] : "");
                H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, s);
            } else {
                fputs("<unreadable>", out);
            }
            free(s);
            H5Tclose(mt);
        } else {
            size_t len = H5Tget_size(t);
            char *buf = calloc((size_t)n, len + 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, len + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (buf && H5Aread(a, mt, buf) >= 0) {
                for (int i = 0; i < show; i++)
                    fprintf(out, "%s\"%s\"", i ? ", " : "", buf + (size_t)i * (len + 1));
            } else {
                fputs("<unreadable>", out);
            }
            free(buf);
            H5Tclose(mt);
        }
        if (rank > 0)
            fputc(']', out);
    } else {
        char tn[64];
        dpt_h5_type_name(t, tn, sizeof tn);
        fprintf(out, "<%s, %lld values>", tn, (long long)n);
    }
    fputc('\n', out);
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    return 0;
}

static void print_attrs(FILE *out, hid_t obj, int depth) {
    void *data[2] = {out, (void *)(intptr_t)depth};
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, data);
}

/* Label counts of an integer (N) or (N, 1) dataset, read in blocks. */
static void print_label_counts(FILE *out, hid_t ds, int64_t n, int depth) {
    int64_t br = (int64_t)DPT_DATA_BLOCK_BYTES / 8;
    if (br > n)
        br = n;
    int64_t *buf = malloc((size_t)br * sizeof *buf);
    int64_t *counts = calloc(INSPECT_MAX_LABEL, sizeof *counts);
    if (!buf || !counts) {
        free(buf);
        free(counts);
        return;
    }
    int64_t lo = INT64_MAX, hi = INT64_MIN, outside = 0;
    hid_t fs = H5Dget_space(ds);
    bool ok = true;
    for (int64_t r0 = 0; r0 < n && ok; r0 += br) {
        int64_t m = n - r0 < br ? n - r0 : br;
        hsize_t start[2] = {(hsize_t)r0, 0}, cnt[2] = {(hsize_t)m, 1}, mn = (hsize_t)m;
        hid_t ms = H5Screate_simple(1, &mn, NULL);
        ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
             H5Dread(ds, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, buf) >= 0;
        H5Sclose(ms);
        for (int64_t i = 0; ok && i < m; i++) {
            int64_t v = buf[i];
            if (v < lo)
                lo = v;
            if (v > hi)
                hi = v;
            if (v >= 0 && v < INSPECT_MAX_LABEL)
                counts[v]++;
            else
                outside++;
        }
    }
    H5Sclose(fs);
    indent(out, depth);
    if (!ok) {
        fputs("labels: <unreadable>\n", out);
    } else {
        fprintf(out, "labels: min %lld, max %lld", (long long)lo, (long long)hi);
        if (outside == 0) {
            fputs("; counts:", out);
            int shown = 0;
            for (int64_t v = 0; v <= hi; v++) {
                if (!counts[v])
                    continue;
                if (shown++ == 64) {
                    fputs(" ...", out);
                    break;
                }
                fprintf(out, " %lld:%lld", (long long)v, (long long)counts[v]);
            }
        }
        fputc('\n', out);
    }
    free(buf);
    free(counts);
}

static void print_dataset(FILE *out, hid_t ds, const char *name, const char *full, int depth) {
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    char tn[64], shape[256], chunk[256] = "";
    dpt_h5_type_name(t, tn, sizeof tn);
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t d[H5S_MAX_RANK];
    int64_t di[H5S_MAX_RANK];
    if (r > 0)
        H5Sget_simple_extent_dims(sp, d, NULL);
    for (int i = 0; i < r; i++)
        di[i] = (int64_t)d[i];
    dpt_dims_format(di, r < 0 ? 0 : r, shape, sizeof shape);
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t c[H5S_MAX_RANK];
        int cr = H5Pget_chunk(dcpl, H5S_MAX_RANK, c);
        int64_t ci[H5S_MAX_RANK];
        for (int i = 0; i < cr; i++)
            ci[i] = (int64_t)c[i];
        char cs[200];
        dpt_dims_format(ci, cr < 0 ? 0 : cr, cs, sizeof cs);
        int nf = H5Pget_nfilters(dcpl);
        snprintf(chunk, sizeof chunk, ", chunks %s%s", cs, nf > 0 ? ", compressed/filtered" : "");
    }
    indent(out, depth);
    fprintf(out, "%s  dataset %s %s%s\n", full, shape, tn, chunk);
    print_attrs(out, ds, depth + 1);
    if (!strcmp(name, "y") && H5Tget_class(t) == H5T_INTEGER && r >= 1 && r <= 2 &&
        (r == 1 || d[1] == 1) && d[0] > 0)
        print_label_counts(out, ds, (int64_t)d[0], depth + 1);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(sp);
}

static void print_group(FILE *out, hid_t g, const char *full, int depth) {
    indent(out, depth);
    fprintf(out, "%s  group\n", full);
    print_attrs(out, g, depth + 1);
    if (depth >= INSPECT_MAX_DEPTH)
        return;
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0)
        return;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[512], child[4096];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name)
            continue;
        snprintf(child, sizeof child, "%s%s%s", full, strcmp(full, "/") ? "/" : "", name);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0) {
            indent(out, depth + 1);
            fprintf(out, "%s  <dangling or external link>\n", child);
            continue;
        }
        H5I_type_t ty = H5Iget_type(o);
        if (ty == H5I_GROUP)
            print_group(out, o, child, depth + 1);
        else if (ty == H5I_DATASET)
            print_dataset(out, o, name, child, depth + 1);
        else {
            indent(out, depth + 1);
            fprintf(out, "%s  named datatype\n", child);
        }
        H5Oclose(o);
    }
}

dpt_status dpt_data_inspect(const char *path, FILE *out) {
    dpt_h5_quiet q;
    dpt_h5_quiet_begin(&q);
    hid_t f;
    dpt_status st = dpt_h5_open_read(path, &f);
    if (st == DPT_OK) {
        fprintf(out, "%s\n", path);
        hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
        if (root >= 0) {
            print_group(out, root, "/", 0);
            H5Gclose(root);
        }
        H5Fclose(f);
    }
    dpt_h5_quiet_end(&q);
    return st;
}
