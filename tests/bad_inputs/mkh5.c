/* mkh5: writes small HDF5 files, good or deliberately bad, for tests/bad_inputs/run.sh (and edits
 * attributes of existing files, e.g. a checkpoint's format version). A test tool, not part of
 * dptrain: it uses plain serial HDF5 and knows nothing of dptrain's reader, so what it writes is
 * what any h5py user could write.
 *
 *   mkh5 OUT.h5 [--edit] CMD...   (OUT is created unless --edit; then CMDs apply in order)
 *     dset PATH TYPE DIMS FILL    TYPE: f32 f64 i32 i64 u8 str; DIMS: 100x20 (0 allowed: 0x20);
 *                                 FILL: rand | const:V | mod:K (row % K) | nan:ROW | inf:ROW
 *                                       (rand, one row all NaN / +Inf) | big:V (rand * V) |
 *                                       row:ROW:V (rand, one row all V) |
 *                                       modrow:K:ROW:V (mod:K, one row all V)
 *     attr PATH NAME TYPE VALUE   TYPE: f32 f64 i32 i64 str; PATH a group or dataset
 *     setattr PATH NAME VALUE     overwrites an existing numeric attribute (type kept)
 *     group PATH                  an empty group
 * Exit 0, or 1 with a line on stderr. Local, serial HDF5.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

static int fail(const char *what, const char *arg) {
    fprintf(stderr, "mkh5: %s: %s\n", what, arg);
    return 1;
}

static hid_t type_of(const char *t) {
    if (!strcmp(t, "f32"))
        return H5T_NATIVE_FLOAT;
    if (!strcmp(t, "f64"))
        return H5T_NATIVE_DOUBLE;
    if (!strcmp(t, "i32"))
        return H5T_NATIVE_INT32;
    if (!strcmp(t, "i64"))
        return H5T_NATIVE_INT64;
    if (!strcmp(t, "u8"))
        return H5T_NATIVE_UINT8;
    return -1;
}

static int parse_dims(const char *s, hsize_t *dims) {
    int r = 0;
    const char *p = s;
    while (*p && r < 8) {
        char *end;
        dims[r++] = strtoull(p, &end, 10);
        if (end == p)
            return -1;
        p = *end == 'x' ? end + 1 : end;
        if (*end && *end != 'x')
            return -1;
    }
    return r;
}

static int cmd_dset(hid_t f, hid_t lcpl, const char *path, const char *type, const char *dims_s,
                    const char *fill) {
    hsize_t dims[8];
    int rank = parse_dims(dims_s, dims);
    if (rank < 1)
        return fail("bad DIMS", dims_s);
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    size_t row = rank > 1 ? n / (dims[0] ? dims[0] : 1) : 1;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (!strcmp(type, "str")) { /* fixed-length strings: an unsupported dtype for x / y */
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, 4);
        char *buf = calloc(n ? n : 1, 4);
        for (size_t i = 0; i < n; i++)
            memcpy(buf + 4 * i, "abc", 4);
        hid_t d = H5Dcreate2(f, path, st, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        int rc = d < 0 || (n && H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0);
        free(buf);
        H5Dclose(d);
        H5Tclose(st);
        H5Sclose(sp);
        return rc ? fail("cannot write", path) : 0;
    }
    hid_t t = type_of(type);
    if (t < 0)
        return fail("bad TYPE", type);
    double *v = malloc((n ? n : 1) * sizeof *v);
    uint64_t s = 88172645463325252ull;
    double big = 1, konst = 0;
    long long k = 0, bad_row = -1;
    int mode = 0; /* 0 rand, 1 const, 2 mod */
    double bad = 0;
    if (!strncmp(fill, "const:", 6))
        mode = 1, konst = atof(fill + 6);
    else if (!strncmp(fill, "mod:", 4))
        mode = 2, k = atoll(fill + 4);
    else if (!strncmp(fill, "nan:", 4))
        bad_row = atoll(fill + 4), bad = NAN;
    else if (!strncmp(fill, "inf:", 4))
        bad_row = atoll(fill + 4), bad = INFINITY;
    else if (!strncmp(fill, "big:", 4))
        big = atof(fill + 4);
    else if (!strncmp(fill, "modrow:", 7) && strchr(fill + 7, ':') &&
             strchr(strchr(fill + 7, ':') + 1, ':')) { /* modrow:K:R:V: mod:K, row R = V */
        const char *r = strchr(fill + 7, ':') + 1;
        mode = 2, k = atoll(fill + 7), bad_row = atoll(r), bad = atof(strchr(r, ':') + 1);
    } else if (!strncmp(fill, "row:", 4) && strchr(fill + 4, ':'))
        bad_row = atoll(fill + 4), bad = atof(strchr(fill + 4, ':') + 1);
    else if (strcmp(fill, "rand"))
        return fail("bad FILL", fill);
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        long long r = (long long)(i / row);
        if (mode == 1)
            v[i] = konst;
        else if (mode == 2)
            v[i] = (double)(r % (k ? k : 1));
        else
            v[i] = big * (double)(s >> 11) / 9007199254740992.0;
        if (r == bad_row)
            v[i] = bad;
    }
    hid_t d = H5Dcreate2(f, path, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0;
    if (!rc && n) {
        /* convert through the file type in memory: HDF5 clips doubles to the integer range */
        hid_t mt = H5T_NATIVE_DOUBLE;
        rc = H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
    }
    free(v);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return rc ? fail("cannot write", path) : 0;
}

static int cmd_attr(hid_t f, const char *path, const char *name, const char *type,
                    const char *value) {
    hid_t o = H5Oopen(f, path, H5P_DEFAULT);
    if (o < 0)
        return fail("no such object", path);
    hid_t sp = H5Screate(H5S_SCALAR), a, t;
    int rc;
    if (!strcmp(type, "str")) {
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(value) + 1);
        a = H5Acreate2(o, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc = a < 0 || H5Awrite(a, t, value) < 0;
        H5Tclose(t);
    } else {
        t = type_of(type);
        if (t < 0)
            return fail("bad TYPE", type);
        double x = atof(value);
        a = H5Acreate2(o, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc = a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &x) < 0;
    }
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    return rc ? fail("cannot write attribute", name) : 0;
}

static int cmd_setattr(hid_t f, const char *path, const char *name, const char *value) {
    /* delete and recreate with the same type: rewriting in place fails on some files (1.10.8:
     * "can't locate open attribute") */
    hid_t a = H5Aopen_by_name(f, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return fail("no such attribute", name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5Aclose(a);
    double x = atof(value);
    int rc = H5Adelete_by_name(f, path, name, H5P_DEFAULT) < 0;
    if (!rc) {
        a = H5Acreate_by_name(f, path, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &x) < 0;
        if (a >= 0)
            H5Aclose(a);
    }
    H5Tclose(t);
    H5Sclose(sp);
    return rc ? fail("cannot write attribute", name) : 0;
}

/* A file written by dptrain starts with a whole-file checksum stamp ("DPTRAIN-H5SUM 1 <size>
 * <fnv1a64>" in 512 bytes); after an edit, restamp it as a (future) dptrain would have written it,
 * so a case reaches the check behind the file checksum. Files without the stamp are left alone. */
static int restamp(const char *path) {
    FILE *fp = fopen(path, "r+b");
    if (!fp)
        return fail("cannot reopen", path);
    char head[16];
    if (fread(head, 1, 16, fp) != 16 || memcmp(head, "DPTRAIN-H5SUM 1 ", 16)) {
        fclose(fp);
        return 0;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 512, SEEK_SET);
    unsigned long long h = 0xcbf29ce484222325ULL;
    int c;
    while ((c = fgetc(fp)) != EOF) {
        h ^= (unsigned char)c;
        h *= 1099511628211ULL;
    }
    char out[512] = {0};
    snprintf(out, sizeof out, "DPTRAIN-H5SUM 1 %ld %016llx\n", n, h);
    fseek(fp, 0, SEEK_SET);
    int bad = fwrite(out, 1, sizeof out, fp) != sizeof out;
    bad |= fclose(fp) != 0;
    return bad ? fail("cannot restamp", path) : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: mkh5 OUT.h5 [--edit] CMD...\n");
        return 2;
    }
    int i = 2;
    hid_t f;
    if (argc > 2 && !strcmp(argv[2], "--edit")) {
        f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
        i = 3;
    } else {
        f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    }
    if (f < 0)
        return fail("cannot open", argv[1]);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    int rc = 0;
    while (i < argc && !rc) {
        const char *c = argv[i];
        int need = !strcmp(c, "dset")      ? 4
                   : !strcmp(c, "attr")    ? 4
                   : !strcmp(c, "setattr") ? 3
                   : !strcmp(c, "group")   ? 1
                                           : -1;
        if (need < 0 || i + need > argc - 1) {
            rc = fail("bad or incomplete command", c);
            break;
        }
        if (!strcmp(c, "dset"))
            rc = cmd_dset(f, lcpl, argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4]);
        else if (!strcmp(c, "attr"))
            rc = cmd_attr(f, argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4]);
        else if (!strcmp(c, "setattr"))
            rc = cmd_setattr(f, argv[i + 1], argv[i + 2], argv[i + 3]);
        else {
            hid_t g = H5Gcreate2(f, argv[i + 1], lcpl, H5P_DEFAULT, H5P_DEFAULT);
            rc = g < 0 ? fail("cannot create group", argv[i + 1]) : 0;
            if (g >= 0)
                H5Gclose(g);
        }
        i += need + 1;
    }
    H5Pclose(lcpl);
    if (H5Fclose(f) < 0 && !rc)
        rc = fail("cannot close", argv[1]);
    if (!rc && i > 2 && !strcmp(argv[2], "--edit"))
        rc = restamp(argv[1]);
    return rc;
}
