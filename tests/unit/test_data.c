/* Unit tests of the data room (src/data): the writers (synthetic, CSV, Fashion-MNIST from small
 * gzip'd IDX files made here), dpt_data_probe, dpt_shard_open (float, float64, uint8 + scale,
 * targets for each loss), gather, the epoch order and the split of rows over ranks, and every
 * bad-data case with its one-line message and DPT_ERR_DATA. Files are built with raw HDF5 calls
 * so the reader is not only tested against our own writer. The MPI side is tests/mpi/test_shard.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <zlib.h>

#include "testutil.h"

static char g_dir[4096];

static const char *tpath(const char *name) {
    static char buf[8][4200];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* ---- raw HDF5 helpers for building test files ------------------------------------------------ */

static hid_t h5_new(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static hid_t h5_group(hid_t f, const char *name) {
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    return g;
}

/* Dataset NAME (file type ftype) with dims; data (memory type mtype) may be NULL. */
static hid_t h5_ds(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data)
        assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Sclose(sp);
    return d;
}

static void h5_attr_f(hid_t loc, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

/* /train with x float32 (n, f) = r * 100 + c (or given), y int32 (n) = labels. */
static void write_xy(const char *path, const float *x, int64_t n, int64_t f, const int32_t *y,
                     int64_t ny) {
    hid_t fl = h5_new(path), g = h5_group(fl, "train");
    hsize_t xd[2] = {(hsize_t)n, (hsize_t)f}, yd[1] = {(hsize_t)ny};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x));
    H5Dclose(h5_ds(g, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y));
    H5Gclose(g);
    H5Fclose(fl);
}

static void fill_xy(float *x, int64_t n, int64_t f, int32_t *y, int classes) {
    for (int64_t r = 0; r < n; r++) {
        for (int64_t c = 0; c < f; c++)
            x[r * f + c] = (float)(r * 100 + c);
        y[r] = (int32_t)(r % classes);
    }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const dpt_target_spec SPARSE10 = {DPT_TARGET_INDEX, 10, "sparse_categorical_crossentropy"};

/* ---- synthetic data, probe, shard ------------------------------------------------------------ */

static void test_synth_probe_shard(void **state) {
    (void)state;
    const char *p = tpath("synth.h5");
    assert_ok(dpt_data_write_synth(p, 100, 7, 3));
    struct stat sb;
    assert_int_not_equal(stat(tpath("synth.h5.tmp"), &sb), 0); /* renamed away */
    dpt_data_info in;
    assert_ok(dpt_data_probe(p, "train", &in));
    assert_int_equal(in.n, 100);
    assert_int_equal(in.x_shape.rank, 1);
    assert_int_equal(in.x_shape.dim[0], 7);
    assert_false(in.x_uint8);
    assert_true(in.x_scale == 1.0f);
    assert_true(in.y_integer);
    assert_int_equal(in.y_cols, 1);
    assert_int_equal(in.n_classes, 2);
    assert_ok(dpt_data_probe(p, "/train", &in)); /* leading slash accepted */

    dpt_target_spec ts = {DPT_TARGET_INDEX, 2, "sparse_categorical_crossentropy"};
    dpt_shape sh = {1, {7}};
    dpt_shard *all = NULL, *part = NULL;
    assert_ok(dpt_shard_open(p, "train", 0, 100, &ts, &sh, &all));
    assert_ok(dpt_shard_open(p, "train", 10, 40, &ts, &sh, &part));
    assert_int_equal(dpt_shard_rows(part), 30);
    assert_int_equal(dpt_shard_lo(part), 10);
    assert_int_equal(dpt_shard_x_size(part), 7);
    assert_int_equal(dpt_shard_y_size(part), 1);
    const float *xa = dpt_shard_x(all), *ya = dpt_shard_y(all);
    int ones = 0;
    for (int i = 0; i < 700; i++)
        assert_true(xa[i] >= 0.0f && xa[i] < 1.0f);
    for (int i = 0; i < 100; i++) {
        assert_true(ya[i] == 0.0f || ya[i] == 1.0f);
        ones += ya[i] == 1.0f;
    }
    assert_true(ones > 20 && ones < 80);
    assert_memory_equal(dpt_shard_x(part), xa + 10 * 7, 30 * 7 * sizeof(float));
    assert_memory_equal(dpt_shard_y(part), ya + 10, 30 * sizeof(float));

    /* same seed -> same data; other seed -> other data */
    const char *p2 = tpath("synth2.h5"), *p3 = tpath("synth3.h5");
    assert_ok(dpt_data_write_synth(p2, 100, 7, 3));
    assert_ok(dpt_data_write_synth(p3, 100, 7, 4));
    dpt_shard *s2 = NULL, *s3 = NULL;
    assert_ok(dpt_shard_open(p2, "train", 0, 100, &ts, &sh, &s2));
    assert_ok(dpt_shard_open(p3, "train", 0, 100, &ts, &sh, &s3));
    assert_memory_equal(dpt_shard_x(s2), xa, 700 * sizeof(float));
    assert_true(memcmp(dpt_shard_x(s3), xa, 700 * sizeof(float)) != 0);

    /* empty shard */
    dpt_shard *e = NULL;
    assert_ok(dpt_shard_open(p, "train", 50, 50, &ts, &sh, &e));
    assert_int_equal(dpt_shard_rows(e), 0);

    dpt_shard_destroy(&all);
    dpt_shard_destroy(&part);
    dpt_shard_destroy(&s2);
    dpt_shard_destroy(&s3);
    dpt_shard_destroy(&e);
    assert_null(all);
    dpt_shard_destroy(&all); /* NULL-safe */
}

static void test_uint8_scale_and_flatten(void **state) {
    (void)state;
    const char *p = tpath("u8.h5");
    uint8_t x[5 * 2 * 3];
    uint8_t y[5] = {0, 1, 2, 1, 0};
    for (int i = 0; i < 30; i++)
        x[i] = (uint8_t)(i * 8);
    hid_t f = h5_new(p), g = h5_group(f, "train");
    hsize_t xd[3] = {5, 2, 3}, yd[1] = {5};
    hid_t dx = h5_ds(g, "x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, xd, x);
    h5_attr_f(dx, "scale", 0.5);
    H5Dclose(dx);
    H5Dclose(h5_ds(g, "y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, yd, y));
    H5Gclose(g);
    H5Fclose(f);

    dpt_data_info in;
    assert_ok(dpt_data_probe(p, "train", &in));
    assert_true(in.x_uint8);
    assert_true(in.x_scale == 0.5f);
    assert_int_equal(in.x_shape.rank, 2);
    assert_int_equal(in.x_shape.dim[0], 2);
    assert_int_equal(in.x_shape.dim[1], 3);
    assert_true(in.y_integer);

    dpt_target_spec ts = {DPT_TARGET_INDEX, 3, "sparse_categorical_crossentropy"};
    dpt_shape flat = {1, {6}}, img = {2, {2, 3}};
    dpt_shard *s = NULL;
    assert_ok(dpt_shard_open(p, "train", 1, 4, &ts, &flat, &s)); /* (2, 3) into a 6-vector */
    assert_int_equal(dpt_shard_x_size(s), 6);
    for (int i = 0; i < 18; i++)
        assert_float_equal(dpt_shard_x(s)[i], (float)((i + 6) * 8) * 0.5f, 0);
    assert_float_equal(dpt_shard_y(s)[0], 1.0f, 0);
    assert_float_equal(dpt_shard_y(s)[1], 2.0f, 0);
    dpt_shard_destroy(&s);
    assert_ok(dpt_shard_open(p, "train", 0, 5, &ts, &img, &s)); /* exact shape */
    dpt_shard_destroy(&s);
    dpt_shape wrong = {2, {3, 2}};
    assert_status_msg(dpt_shard_open(p, "train", 0, 5, &ts, &wrong, &s), DPT_ERR_DATA,
                      "/train/x: sample shape (2, 3) does not match the model input (3, 2)");
    assert_null(s);
}

static void test_float64_and_int16_x(void **state) {
    (void)state;
    const char *p = tpath("f64.h5");
    double x[4 * 2] = {0.25, -1.5, 2, 3, 4, 5, 6, 1e-3};
    int16_t xi[4] = {-3, 0, 7, 300};
    int64_t y[4] = {1, 0, 1, 1};
    hid_t f = h5_new(p), g = h5_group(f, "train"), g2 = h5_group(f, "ints");
    hsize_t xd[2] = {4, 2}, yd[1] = {4}, xid[1] = {4};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, xd, x));
    H5Dclose(h5_ds(g, "y", H5T_STD_I64BE, H5T_NATIVE_INT64, 1, yd, y));    /* big-endian int64 */
    H5Dclose(h5_ds(g2, "x", H5T_STD_I16LE, H5T_NATIVE_INT16, 1, xid, xi)); /* (N): 1 feature */
    H5Dclose(h5_ds(g2, "y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, yd, y));
    H5Gclose(g);
    H5Gclose(g2);
    H5Fclose(f);
    dpt_target_spec bce = {DPT_TARGET_BINARY, 1, "binary_crossentropy"};
    dpt_shard *s = NULL;
    assert_ok(dpt_shard_open(p, "train", 0, 4, &bce, NULL, &s));
    for (int i = 0; i < 8; i++)
        assert_float_equal(dpt_shard_x(s)[i], (float)x[i], 0);
    for (int i = 0; i < 4; i++)
        assert_float_equal(dpt_shard_y(s)[i], (float)y[i], 0);
    dpt_shard_destroy(&s);
    dpt_data_info in;
    assert_ok(dpt_data_probe(p, "ints", &in));
    assert_int_equal(in.x_shape.rank, 1);
    assert_int_equal(in.x_shape.dim[0], 1);
    assert_false(in.x_uint8);
    assert_ok(dpt_shard_open(p, "ints", 0, 4, &bce, NULL, &s));
    for (int i = 0; i < 4; i++)
        assert_float_equal(dpt_shard_x(s)[i], (float)xi[i], 0);
    dpt_shard_destroy(&s);
}

static void test_targets_per_loss(void **state) {
    (void)state;
    const char *p = tpath("targets.h5");
    float x[6 * 2];
    int32_t y[6];
    fill_xy(x, 6, 2, y, 3); /* labels 0 1 2 0 1 2 */
    write_xy(p, x, 6, 2, y, 6);
    /* a float (N, 3) target group too */
    float yt[6 * 3];
    for (int i = 0; i < 18; i++)
        yt[i] = 0.5f * (float)i;
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT), g = h5_group(f, "reg");
    hsize_t xd[2] = {6, 2}, yd[2] = {6, 3};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x));
    H5Dclose(h5_ds(g, "y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, yd, yt));
    H5Gclose(g);
    H5Fclose(f);

    dpt_shard *s = NULL;
    dpt_target_spec sp = {DPT_TARGET_INDEX, 3, "sparse_categorical_crossentropy"};
    assert_ok(dpt_shard_open(p, "train", 0, 6, &sp, NULL, &s));
    assert_int_equal(dpt_shard_y_size(s), 1);
    for (int i = 0; i < 6; i++)
        assert_float_equal(dpt_shard_y(s)[i], (float)(i % 3), 0);
    dpt_shard_destroy(&s);

    dpt_target_spec cat = {DPT_TARGET_ONEHOT, 3, "categorical_crossentropy"};
    assert_ok(dpt_shard_open(p, "train", 0, 6, &cat, NULL, &s));
    assert_int_equal(dpt_shard_y_size(s), 3);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++)
            assert_float_equal(dpt_shard_y(s)[i * 3 + k], k == i % 3 ? 1.0f : 0.0f, 0);
    dpt_shard_destroy(&s);

    /* categorical with float (N, K) targets: copied */
    assert_ok(dpt_shard_open(p, "reg", 0, 6, &cat, NULL, &s));
    assert_memory_equal(dpt_shard_y(s), yt, sizeof yt);
    dpt_shard_destroy(&s);

    dpt_target_spec mse = {DPT_TARGET_VALUES, 3, "mean_squared_error"};
    assert_ok(dpt_shard_open(p, "reg", 2, 5, &mse, NULL, &s));
    assert_memory_equal(dpt_shard_y(s), yt + 6, 9 * sizeof(float));
    dpt_shard_destroy(&s);

    dpt_target_spec mse1 = {DPT_TARGET_VALUES, 1, "mean_squared_error"};
    assert_ok(dpt_shard_open(p, "train", 0, 6, &mse1, NULL, &s)); /* integer y as values */
    assert_float_equal(dpt_shard_y(s)[5], 2.0f, 0);
    dpt_shard_destroy(&s);

    /* mismatches */
    dpt_target_spec mse2 = {DPT_TARGET_VALUES, 2, "mean_squared_error"};
    assert_status_msg(dpt_shard_open(p, "reg", 0, 6, &mse2, NULL, &s), DPT_ERR_DATA,
                      "/reg/y: mean_squared_error needs 2 target values per sample");
    assert_status_msg(dpt_shard_open(p, "reg", 0, 6, &sp, NULL, &s), DPT_ERR_DATA,
                      "/reg/y: sparse_categorical_crossentropy needs one class index per sample");
    dpt_target_spec bce = {DPT_TARGET_BINARY, 1, "binary_crossentropy"};
    assert_status_msg(dpt_shard_open(p, "train", 0, 6, &bce, NULL, &s), DPT_ERR_DATA,
                      "/train/y: row 2: label 2 out of range [0, 2)");
    assert_ok(dpt_shard_open(p, "train", 0, 2, &bce, NULL, &s)); /* rows 0, 1: labels 0, 1 */
    dpt_shard_destroy(&s);
    /* raw (no spec): y as floats */
    assert_ok(dpt_shard_open(p, "reg", 0, 6, NULL, NULL, &s));
    assert_int_equal(dpt_shard_y_size(s), 3);
    dpt_shard_destroy(&s);
}

static void test_gather(void **state) {
    (void)state;
    const char *p = tpath("gather.h5");
    float x[10 * 3];
    int32_t y[10];
    fill_xy(x, 10, 3, y, 10);
    write_xy(p, x, 10, 3, y, 10);
    dpt_shard *s = NULL;
    assert_ok(dpt_shard_open(p, "train", 4, 9, &SPARSE10, NULL, &s));
    int64_t rows[4] = {3, 0, 4, 3};
    float xb[4 * 3], yb[4];
    dpt_shard_gather(s, rows, 4, xb, yb);
    for (int i = 0; i < 4; i++) {
        int64_t g = 4 + rows[i];
        for (int c = 0; c < 3; c++)
            assert_float_equal(xb[i * 3 + c], (float)(g * 100 + c), 0);
        assert_float_equal(yb[i], (float)g, 0);
    }
    dpt_shard_destroy(&s);
}

/* ---- epoch order and split --------------------------------------------------------------------
 */

static void test_order_bijection(void **state) {
    (void)state;
    const int64_t ns[] = {1, 2, 3, 4, 5, 7, 16, 17, 1000, 1001, 65536, 65537};
    const uint32_t seeds[] = {0, 1, 12345, 0xFFFFFFFFu};
    uint8_t *seen = calloc(65537, 1);
    assert_non_null(seen);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int64_t n = ns[a];
        for (size_t b = 0; b < sizeof seeds / sizeof *seeds; b++) {
            for (int64_t ep = 0; ep < 2; ep++) {
                dpt_order o;
                dpt_order_init(&o, n, seeds[b], ep, true);
                memset(seen, 0, (size_t)n);
                for (int64_t i = 0; i < n; i++) {
                    int64_t v = dpt_order_at(&o, i);
                    assert_true(v >= 0 && v < n);
                    assert_int_equal(seen[v], 0);
                    seen[v] = 1;
                }
            }
        }
        dpt_order id;
        dpt_order_init(&id, n, 7, 3, false);
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(dpt_order_at(&id, i), i);
    }
    free(seen);

    /* same (seed, epoch) -> same order; other epoch or seed -> a different one */
    const int64_t n = 1000;
    dpt_order a, b, c, d;
    dpt_order_init(&a, n, 42, 5, true);
    dpt_order_init(&b, n, 42, 5, true);
    dpt_order_init(&c, n, 42, 6, true);
    dpt_order_init(&d, n, 43, 5, true);
    int same_ab = 0, same_ac = 0, same_ad = 0, fixed = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t va = dpt_order_at(&a, i);
        same_ab += va == dpt_order_at(&b, i);
        same_ac += va == dpt_order_at(&c, i);
        same_ad += va == dpt_order_at(&d, i);
        fixed += va == i;
    }
    assert_int_equal(same_ab, n);
    assert_true(same_ac < 20); /* a random pair of permutations agrees in ~1 place */
    assert_true(same_ad < 20);
    assert_true(fixed < 20);

    /* spread: the first sample of 400 epochs takes many different values */
    uint8_t hit[1000] = {0};
    int distinct = 0;
    for (int64_t ep = 0; ep < 400; ep++) {
        dpt_order o;
        dpt_order_init(&o, n, 1, ep, true);
        int64_t v = dpt_order_at(&o, 0);
        distinct += !hit[v];
        hit[v] = 1;
    }
    assert_true(distinct > 250); /* expected about 330 for uniform draws */

    /* speed: informational (sanitizer builds are slow) */
    dpt_order o;
    dpt_order_init(&o, 1001, 9, 0, true);
    int64_t sink = 0;
    double t0 = dpt_now();
    for (int rep = 0; rep < 1000; rep++)
        for (int64_t i = 0; i < 1001; i++)
            sink += dpt_order_at(&o, i);
    double ns_per = (dpt_now() - t0) / 1001e3 * 1e9;
    printf("dpt_order_at: %.1f ns per call (n = 1001)\n", ns_per);
    assert_int_equal(sink, 1000LL * 1001 * 1000 / 2);
}

static void test_split_range(void **state) {
    (void)state;
    const int64_t ns[] = {0, 1, 2, 5, 31, 32, 1001, 60000};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        for (int size = 1; size <= 7; size++) {
            int64_t next = 0;
            for (int r = 0; r < size; r++) {
                int64_t lo, hi;
                dpt_split_range(ns[a], r, size, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, no gap or overlap */
                int64_t want = ns[a] / size + (r < ns[a] % size ? 1 : 0);
                assert_int_equal(hi - lo, want);
                next = hi;
            }
            assert_int_equal(next, ns[a]);
        }
    }
}

/* ---- bad data -----------------------------------------------------------------------------------
 */

static void test_bad_files(void **state) {
    (void)state;
    dpt_data_info in;
    const char *missing = tpath("nosuch.h5");
    char want[4300];
    snprintf(want, sizeof want, "%s: no such file", missing);
    assert_status_msg(dpt_data_probe(missing, "train", &in), DPT_ERR_DATA, want);

    const char *txt = tpath("text.h5");
    write_text(txt, "this is not HDF5\n");
    snprintf(want, sizeof want, "%s: not an HDF5 file", txt);
    assert_status_msg(dpt_data_probe(txt, "train", &in), DPT_ERR_DATA, want);
    assert_status_msg(dpt_data_probe(g_dir, "train", &in), DPT_ERR_DATA, "is a directory");

    /* a valid file cut in half */
    const char *good = tpath("whole.h5"), *cut = tpath("cut.h5");
    assert_ok(dpt_data_write_synth(good, 2000, 10, 1));
    FILE *fi = fopen(good, "rb"), *fo = fopen(cut, "wb");
    assert_non_null(fi);
    assert_non_null(fo);
    fseek(fi, 0, SEEK_END);
    long size = ftell(fi);
    fseek(fi, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, fi), (size_t)size);
    assert_int_equal(fwrite(buf, 1, (size_t)size / 2, fo), (size_t)size / 2);
    free(buf);
    fclose(fi);
    fclose(fo);
    snprintf(want, sizeof want, "%s: cannot open (damaged or truncated HDF5 file)", cut);
    assert_status_msg(dpt_data_probe(cut, "train", &in), DPT_ERR_DATA, want);

    snprintf(want, sizeof want, "%s: /test: no such group", good);
    assert_status_msg(dpt_data_probe(good, "test", &in), DPT_ERR_DATA, want);
    assert_status_msg(dpt_data_probe(good, "a/b/c", &in), DPT_ERR_DATA, "/a/b/c: no such group");
    dpt_shard *s = NULL;
    assert_status_msg(dpt_shard_open(good, "valid", 0, 1, NULL, NULL, &s), DPT_ERR_DATA,
                      "/valid: no such group");
}

static void test_bad_layout(void **state) {
    (void)state;
    dpt_data_info in;
    float x[10 * 2];
    int32_t y[10];
    fill_xy(x, 10, 2, y, 2);

    const char *p = tpath("noy.h5");
    hid_t f = h5_new(p), g = h5_group(f, "train");
    hsize_t xd[2] = {10, 2};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x));
    H5Gclose(g);
    H5Fclose(f);
    char want[4300];
    snprintf(want, sizeof want, "%s: /train/y: no such dataset", p);
    /* a features-only split probes fine (predict reads it) but cannot give training targets */
    assert_ok(dpt_data_probe(p, "train", &in));
    assert_false(in.has_y);
    dpt_target_spec spec_noy = {DPT_TARGET_VALUES, 2, "mean_squared_error"};
    dpt_shard *noy = NULL;
    assert_status_msg(dpt_shard_open(p, "train", 0, 10, &spec_noy, NULL, &noy), DPT_ERR_DATA, want);
    assert_ok(dpt_shard_open(p, "train", 0, 10, NULL, NULL, &noy));
    assert_int_equal(dpt_shard_y_size(noy), 0);
    dpt_shard_destroy(&noy);

    p = tpath("mismatch.h5");
    write_xy(p, x, 10, 2, y, 9);
    assert_status_msg(dpt_data_probe(p, "train", &in), DPT_ERR_DATA,
                      "/train: x has 10 samples but y has 9");

    p = tpath("empty.h5");
    write_xy(p, NULL, 0, 2, NULL, 0);
    assert_status_msg(dpt_data_probe(p, "train", &in), DPT_ERR_DATA,
                      "/train/x: no samples (N = 0)");

    p = tpath("rank6.h5");
    f = h5_new(p);
    g = h5_group(f, "train");
    hsize_t d6[6] = {2, 1, 1, 1, 1, 2}, yd[1] = {2};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 6, d6, x));
    H5Dclose(h5_ds(g, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y));
    H5Gclose(g);
    H5Fclose(f);
    assert_status_msg(dpt_data_probe(p, "train", &in), DPT_ERR_DATA,
                      "/train/x: expected 1 to 5 dimensions (samples first), got 6");

    p = tpath("strx.h5");
    f = h5_new(p);
    g = h5_group(f, "train");
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 4);
    hsize_t d2[1] = {2};
    H5Dclose(h5_ds(g, "x", st, st, 1, d2, "abcdefgh"));
    H5Dclose(h5_ds(g, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y));
    H5Tclose(st);
    H5Gclose(g);
    H5Fclose(f);
    assert_status_msg(dpt_data_probe(p, "train", &in), DPT_ERR_DATA,
                      "/train/x: unsupported dtype string");
}

static void test_bad_values(void **state) {
    (void)state;
    float x[20 * 3];
    int32_t y[20];
    fill_xy(x, 20, 3, y, 10);
    dpt_shard *s = NULL;

    x[7 * 3 + 1] = NAN;
    const char *p = tpath("nan.h5");
    write_xy(p, x, 20, 3, y, 20);
    char want[4300];
    snprintf(want, sizeof want, "%s: /train/x: row 7: non-finite value", p);
    assert_status_msg(dpt_shard_open(p, "train", 0, 20, &SPARSE10, NULL, &s), DPT_ERR_DATA, want);
    assert_status_msg(dpt_shard_open(p, "train", 5, 9, &SPARSE10, NULL, &s), DPT_ERR_DATA,
                      "row 7: non-finite");                            /* global row numbers */
    assert_ok(dpt_shard_open(p, "train", 8, 20, &SPARSE10, NULL, &s)); /* not in this shard */
    dpt_shard_destroy(&s);
    x[7 * 3 + 1] = 0;

    x[3 * 3 + 2] = -INFINITY;
    p = tpath("inf.h5");
    write_xy(p, x, 20, 3, y, 20);
    assert_status_msg(dpt_shard_open(p, "train", 0, 20, &SPARSE10, NULL, &s), DPT_ERR_DATA,
                      "/train/x: row 3: non-finite value");
    x[3 * 3 + 2] = 0;

    y[17] = 12;
    p = tpath("label.h5");
    write_xy(p, x, 20, 3, y, 20);
    snprintf(want, sizeof want, "%s: /train/y: row 17: label 12 out of range [0, 10)", p);
    assert_status_msg(dpt_shard_open(p, "train", 0, 20, &SPARSE10, NULL, &s), DPT_ERR_DATA, want);
    dpt_target_spec cat = {DPT_TARGET_ONEHOT, 10, "categorical_crossentropy"};
    assert_status_msg(dpt_shard_open(p, "train", 0, 20, &cat, NULL, &s), DPT_ERR_DATA,
                      "row 17: label 12 out of range [0, 10)");
    y[17] = -1;
    write_xy(p, x, 20, 3, y, 20);
    assert_status_msg(dpt_shard_open(p, "train", 0, 20, &SPARSE10, NULL, &s), DPT_ERR_DATA,
                      "row 17: label -1 out of range [0, 10)");
    y[17] = 7;

    /* an image dataset and a model expecting another size */
    p = tpath("img.h5");
    float *img = calloc(4 * 28 * 28, sizeof(float));
    hid_t f = h5_new(p), g = h5_group(f, "train");
    hsize_t xd[3] = {4, 28, 28}, yd[1] = {4};
    H5Dclose(h5_ds(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, xd, img));
    H5Dclose(h5_ds(g, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y));
    H5Gclose(g);
    H5Fclose(f);
    free(img);
    dpt_shape m100 = {1, {100}}, m784 = {1, {784}};
    assert_status_msg(dpt_shard_open(p, "train", 0, 4, &SPARSE10, &m100, &s), DPT_ERR_DATA,
                      "/train/x: sample shape (28, 28) does not match the model input (100)");
    assert_null(s);
    assert_ok(dpt_shard_open(p, "train", 0, 4, &SPARSE10, &m784, &s));
    dpt_shard_destroy(&s);
}

/* ---- CSV ----------------------------------------------------------------------------------------
 */

static void test_csv(void **state) {
    (void)state;
    const char *csv = tpath("good.csv"), *out = tpath("csv.h5");
    write_text(csv, "a, \"b\" ,label,c\r\n1,2,0,3\r\n\r\n4,5.5,1,-6e-1\n7,\"8\",2,9\n");
    assert_ok(dpt_data_write_csv(csv, "label", out));
    dpt_data_info in;
    assert_ok(dpt_data_probe(out, "train", &in));
    assert_int_equal(in.n, 3);
    assert_int_equal(in.x_shape.rank, 1);
    assert_int_equal(in.x_shape.dim[0], 3);
    assert_true(in.y_integer);
    dpt_shard *s = NULL;
    dpt_target_spec sp = {DPT_TARGET_INDEX, 3, "sparse_categorical_crossentropy"};
    assert_ok(dpt_shard_open(out, "train", 0, 3, &sp, NULL, &s));
    const float want_x[9] = {1, 2, 3, 4, 5.5f, -0.6f, 7, 8, 9};
    for (int i = 0; i < 9; i++)
        assert_float_equal(dpt_shard_x(s)[i], want_x[i], 1e-6);
    for (int i = 0; i < 3; i++)
        assert_float_equal(dpt_shard_y(s)[i], (float)i, 0);
    dpt_shard_destroy(&s);

    /* a non-integer label column -> float (N, 1) targets */
    const char *csv2 = tpath("reg.csv");
    write_text(csv2, "price,x1\n1.5,2\n2,3\n");
    assert_ok(dpt_data_write_csv(csv2, "price", out));
    assert_ok(dpt_data_probe(out, "train", &in));
    assert_false(in.y_integer);
    assert_int_equal(in.y_cols, 1);
    dpt_target_spec mse = {DPT_TARGET_VALUES, 1, "mean_squared_error"};
    assert_ok(dpt_shard_open(out, "train", 0, 2, &mse, NULL, &s));
    assert_float_equal(dpt_shard_y(s)[0], 1.5f, 0);
    assert_float_equal(dpt_shard_x(s)[1], 3.0f, 0);
    dpt_shard_destroy(&s);

    const char *bad = tpath("x.csv");
    char want[4300];
    write_text(bad, "a,b,c,d,label\n1,2,3,4,0\n1,2,3,0\n");
    snprintf(want, sizeof want, "%s:3: expected 5 fields, got 4", bad);
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA, want);

    write_text(bad, "age,label\n1,0\n2,1\nabc,0\n");
    snprintf(want, sizeof want, "%s:4: column \"age\": not a number: \"abc\"", bad);
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA, want);

    write_text(bad, "age,label\n1,0\n,1\n");
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA,
                      ":3: column \"age\": not a number: \"\"");

    write_text(bad, "age,label\n1,0\nnan,1\n");
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA,
                      ":3: column \"age\": not a finite float32 number: \"nan\"");

    write_text(bad, "age,label\n1,0\n");
    assert_status_msg(dpt_data_write_csv(bad, "target", out), DPT_ERR_DATA,
                      ":1: no label column \"target\" (columns: \"age\", \"label\")");

    write_text(bad, "age,label\n");
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA, "no data rows");
    write_text(bad, "");
    assert_status_msg(dpt_data_write_csv(bad, "label", out), DPT_ERR_DATA, "empty file");
    assert_status_msg(dpt_data_write_csv(tpath("none.csv"), "label", out), DPT_ERR_DATA,
                      "none.csv: no such file");
    /* the earlier good output is still the last good file (failed runs leave no .tmp) */
    struct stat sb;
    assert_int_not_equal(stat(tpath("csv.h5.tmp"), &sb), 0);
    assert_ok(dpt_data_probe(out, "train", &in));
}

/* ---- Fashion-MNIST from small IDX files ---------------------------------------------------------
 */

static void be32w(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Writes DIR/PREFIX-{images-idx3,labels-idx1}-ubyte.gz with n images of 28 x 28:
 * pixel (i, k) = (i + k) % 256, label i % 10 (or `bad_label` at item 1 when >= 0). */
static void write_idx(const char *dir, const char *prefix, uint32_t n, uint32_t img_magic,
                      uint32_t n_labels, int bad_label, bool truncate_images) {
    char p[4300];
    unsigned char h[16];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    gzFile g = gzopen(p, "wb");
    assert_non_null(g);
    be32w(h, img_magic);
    be32w(h + 4, n);
    be32w(h + 8, 28);
    be32w(h + 12, 28);
    gzwrite(g, h, 16);
    uint32_t write_n = truncate_images ? n / 2 : n;
    for (uint32_t i = 0; i < write_n; i++) {
        unsigned char px[784];
        for (int k = 0; k < 784; k++)
            px[k] = (unsigned char)((i + (uint32_t)k) % 256);
        gzwrite(g, px, 784);
    }
    gzclose(g);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    g = gzopen(p, "wb");
    assert_non_null(g);
    be32w(h, 0x801);
    be32w(h + 4, n_labels);
    gzwrite(g, h, 8);
    for (uint32_t i = 0; i < n_labels; i++) {
        unsigned char l = (unsigned char)(i % 10);
        if (bad_label >= 0 && i == 1)
            l = (unsigned char)bad_label;
        gzwrite(g, &l, 1);
    }
    gzclose(g);
}

static void test_fmnist_small(void **state) {
    (void)state;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/idx", g_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_idx(dir, "train", 12, 0x803, 12, -1, false);
    write_idx(dir, "t10k", 5, 0x803, 5, -1, false);
    const char *out = tpath("fm.h5");
    assert_ok(dpt_data_write_fmnist(dir, out));
    dpt_data_info in;
    assert_ok(dpt_data_probe(out, "train", &in));
    assert_int_equal(in.n, 12);
    assert_true(in.x_uint8);
    assert_int_equal(in.x_shape.rank, 2);
    assert_int_equal(in.x_shape.dim[0], 28);
    assert_int_equal(in.x_shape.dim[1], 28);
    assert_float_equal(in.x_scale, 1.0f / 255.0f, 1e-9);
    assert_int_equal(in.n_classes, 10);
    assert_true(in.y_integer);
    assert_ok(dpt_data_probe(out, "test", &in));
    assert_int_equal(in.n, 5);

    dpt_shard *s = NULL;
    dpt_shape flat = {1, {784}};
    assert_ok(dpt_shard_open(out, "train", 3, 12, &SPARSE10, &flat, &s));
    for (int k = 0; k < 784; k += 97)
        assert_float_equal(dpt_shard_x(s)[784 + k], (float)((4 + k) % 256) / 255.0f, 1e-6);
    assert_float_equal(dpt_shard_y(s)[1], 4.0f, 0);
    dpt_shard_destroy(&s);

    /* inspect prints the layout, attributes and label counts */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_ok(dpt_data_inspect(out, mem));
    fclose(mem);
    assert_non_null(strstr(text, "/train/x  dataset (12, 28, 28) uint8, chunks ("));
    assert_non_null(strstr(text, "/test/y  dataset (5) uint8"));
    assert_non_null(strstr(text, "@scale = 0.00392156"));
    assert_non_null(strstr(text, "@n_classes = 10"));
    assert_non_null(strstr(text, "\"T-shirt/top\", \"Trouser\""));
    assert_non_null(strstr(text, "labels: min 0, max 9; counts: 0:2 1:2 2:1"));
    free(text);
    mem = open_memstream(&text, &len);
    assert_status_msg(dpt_data_inspect(tpath("nosuch.h5"), mem), DPT_ERR_DATA, "no such file");
    fclose(mem);
    free(text);

    /* bad inputs: each names the file */
    write_idx(dir, "t10k", 5, 0x802, 5, -1, false);
    assert_status_msg(dpt_data_write_fmnist(dir, out), DPT_ERR_DATA,
                      "t10k-images-idx3-ubyte.gz: bad magic number 0x00000802");
    write_idx(dir, "t10k", 5, 0x803, 4, -1, false);
    assert_status_msg(dpt_data_write_fmnist(dir, out), DPT_ERR_DATA,
                      "t10k-labels-idx1-ubyte.gz: 4 labels, but");
    write_idx(dir, "t10k", 5, 0x803, 5, 12, false);
    assert_status_msg(dpt_data_write_fmnist(dir, out), DPT_ERR_DATA,
                      "t10k-labels-idx1-ubyte.gz: item 1: label 12 out of range [0, 10)");
    write_idx(dir, "t10k", 6, 0x803, 6, -1, true);
    assert_status_msg(dpt_data_write_fmnist(dir, out), DPT_ERR_DATA,
                      "t10k-images-idx3-ubyte.gz: truncated");
    char p[4300];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    remove(p);
    assert_status_msg(dpt_data_write_fmnist(dir, out), DPT_ERR_DATA,
                      "t10k-labels-idx1-ubyte.gz: no such file");
    /* the good output from before is untouched */
    assert_ok(dpt_data_probe(out, "test", &in));
    assert_int_equal(in.n, 5);
}

/* The real Fashion-MNIST, when installed (skipped if not, or with DPT_TEST_REAL_FMNIST=0): the
 * conversion and a full load take well under a second each in a Debug build. */
static void test_fmnist_real(void **state) {
    (void)state;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat sb;
    const char *want = getenv("DPT_TEST_REAL_FMNIST");
    if (stat(dir, &sb) != 0 || (want && strcmp(want, "0") == 0))
        skip();
    const char *out = tpath("fashion-mnist.h5");
    double t0 = dpt_now();
    assert_ok(dpt_data_write_fmnist(dir, out));
    printf("Fashion-MNIST converted in %.2f s\n", dpt_now() - t0);
    dpt_data_info in;
    assert_ok(dpt_data_probe(out, "train", &in));
    assert_int_equal(in.n, 60000);
    assert_ok(dpt_data_probe(out, "test", &in));
    assert_int_equal(in.n, 10000);
    dpt_shard *s = NULL;
    dpt_shape flat = {1, {784}};
    t0 = dpt_now();
    assert_ok(dpt_shard_open(out, "train", 0, 60000, &SPARSE10, &flat, &s));
    printf("60000 x 784 loaded in %.2f s\n", dpt_now() - t0);
    int64_t counts[10] = {0};
    for (int i = 0; i < 60000; i++)
        counts[(int)dpt_shard_y(s)[i]]++;
    for (int k = 0; k < 10; k++)
        assert_int_equal(counts[k], 6000);
    dpt_shard_destroy(&s);
}

static void test_writer_errors(void **state) {
    (void)state;
    assert_status_msg(dpt_data_write_synth("/nonexistent-dir/x.h5", 10, 2, 0), DPT_ERR_IO,
                      "/nonexistent-dir/x.h5.tmp: cannot create");
    assert_status_msg(dpt_data_write_synth(tpath("z.h5"), 0, 2, 0), DPT_ERR_USAGE,
                      "need at least 1 sample");
}

/* the optional sample weights `w` (N): read for the shard's rows, absent -> NULL, and the bad
 * cases (shape, non-finite) with their messages */
static void test_sample_weights(void **state) {
    (void)state;
    enum { N = 6, F = 2 };
    float x[N * F];
    int32_t y[N];
    fill_xy(x, N, F, y, 2);
    const char *p = tpath("w.h5");
    write_xy(p, x, N, F, y, N);
    dpt_target_spec ts = {DPT_LOSS_BINARY_CROSSENTROPY, 1};
    dpt_shard *s = NULL;
    dpt_data_info in;
    assert_ok(dpt_data_probe(p, "train", &in));
    assert_false(in.has_w);
    assert_ok(dpt_shard_open(p, "train", 0, N, &ts, NULL, &s));
    assert_null(dpt_shard_w(s));
    dpt_shard_destroy(&s);
    const double w[N] = {0.5, 1, 2, 0, 3.25, 1};
    hid_t fl = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t d1[1] = {N};
    H5Dclose(h5_ds(fl, "/train/w", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, w));
    H5Fclose(fl);
    assert_ok(dpt_data_probe(p, "train", &in));
    assert_true(in.has_w);
    assert_ok(dpt_shard_open(p, "train", 2, 5, &ts, NULL, &s));
    const float *sw = dpt_shard_w(s);
    assert_non_null(sw);
    assert_true(sw[0] == 2.0f && sw[1] == 0.0f && sw[2] == 3.25f);
    dpt_shard_destroy(&s);
    /* without targets (predict) the weights are not read */
    assert_ok(dpt_shard_open(p, "train", 0, N, NULL, NULL, &s));
    assert_null(dpt_shard_w(s));
    dpt_shard_destroy(&s);

    write_xy(p, x, N, F, y, N); /* wrong length */
    fl = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t d5[1] = {N - 1};
    H5Dclose(h5_ds(fl, "/train/w", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d5, w));
    H5Fclose(fl);
    assert_status_msg(dpt_shard_open(p, "train", 0, N, &ts, NULL, &s), DPT_ERR_DATA,
                      "/train/w: sample weights must have shape (6), one per sample");
    assert_null(s);
    write_xy(p, x, N, F, y, N); /* a NaN */
    const double wn[N] = {1, 1, 1, NAN, 1, 1};
    fl = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Dclose(h5_ds(fl, "/train/w", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, wn));
    H5Fclose(fl);
    assert_status_msg(dpt_shard_open(p, "train", 0, N, &ts, NULL, &s), DPT_ERR_DATA,
                      "/train/w: row 3: non-finite sample weight");
    assert_ok(dpt_shard_open(p, "train", 4, N, &ts, NULL, &s)); /* rows past the NaN */
    dpt_shard_destroy(&s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s", dpt_test_tmpdir("data"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_probe_shard),
        cmocka_unit_test(test_uint8_scale_and_flatten),
        cmocka_unit_test(test_float64_and_int16_x),
        cmocka_unit_test(test_targets_per_loss),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_order_bijection),
        cmocka_unit_test(test_split_range),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_layout),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_fmnist_small),
        cmocka_unit_test(test_fmnist_real),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_sample_weights),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return failed;
}
