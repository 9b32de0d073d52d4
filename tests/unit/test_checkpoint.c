/* Unit tests for src/io/checkpoint.c and src/io/keras_weights.c: Keras-layout weight files (our
 * own round trip and the layout details Keras needs), checkpoints (bit-exact restore, retention,
 * damage detection and fallback, version and architecture refusal, write failures), and real
 * Keras-written fixtures (Keras 2.0.5, 2.3.1, 3.8.0 legacy .h5, Keras 3 .weights.h5) checked
 * against the predictions recorded with them.
 * Not here: the trainer's use of checkpoints under mpirun (tests/cli/test_resume.sh), loading into
 * real Keras (tests/interop/run.sh).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "testutil.h"

static const char *MLP =
    "[{\"class_name\":\"Dense\",\"config\":{\"units\":64,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dropout\",\"config\":{\"rate\":0.5}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":32,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":1,\"activation\":\"sigmoid\"}}]";

static dpt_model *make_model(const char *layers_json, int64_t in, uint32_t seed) {
    json_error_t je;
    json_t *layers = json_loads(layers_json, 0, &je);
    if (!layers)
        fail_msg("bad test JSON: %s", je.text);
    dpt_shape s = {.rank = 1, .dim = {in}};
    dpt_json_ctx ctx = {.file = "test.json", .path = "model.config"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(layers, &s, 8, seed, &ctx, &m));
    json_decref(layers);
    return m;
}

static dpt_optim *make_adam(const dpt_model *m) {
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, dpt_model_n_params(m), &o));
    return o;
}

/* A few Adam steps with made-up gradients so that params, m, v and iterations are non-trivial. */
static void train_a_bit(dpt_model *m, dpt_optim *o, int steps) {
    int64_t n = dpt_model_n_params(m);
    float *g = calloc((size_t)n, sizeof(float));
    for (int s = 0; s < steps; s++) {
        for (int64_t i = 0; i < n; i++)
            g[i] = sinf((float)(i * 7 + s * 13)) * 0.1f;
        dpt_optim_step(o, dpt_model_params(m), g);
    }
    free(g);
}

static dpt_ckpt_meta meta_at(int64_t epoch, int64_t sie, int64_t gs) {
    dpt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.epoch = epoch;
    meta.step_in_epoch = sie;
    meta.global_step = gs;
    meta.seed = 4000000001u;
    meta.world_size = 3;
    meta.epoch_sums[0] = 12.5;
    meta.epoch_sums[1] = 301;
    meta.epoch_sums[2] = 640;
    return meta;
}

static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

static int count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t a = strlen(e->d_name), b = strlen(suffix);
        if (a >= b && !strcmp(e->d_name + a - b, suffix))
            n++;
    }
    closedir(d);
    return n;
}

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Runs find_latest with stderr captured into buf. */
static dpt_status find_latest_capture(const char *dir, const dpt_model *m, char *out, char *buf,
                                      size_t n) {
    char tmpl[] = "/tmp/dpt-stderr-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    dpt_status st = dpt_ckpt_find_latest(dir, m, out, 4096);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t r = read(fd, buf, n - 1);
    buf[r > 0 ? r : 0] = '\0';
    close(fd);
    unlink(tmpl);
    return st;
}

/* Byte offset of a contiguous dataset's data in the file. */
static haddr_t data_offset(const char *file, const char *dset) {
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    assert_true(d >= 0);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    assert_true(off != HADDR_UNDEF);
    return off;
}

static void flip_byte(const char *file, long off) {
    int fd = open(file, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Rewrites the whole-file checksum our writer stamps in the first 512 bytes, as if dptrain had
 * written the file as it is now: lets a test reach the checks behind the file checksum. */
static void restamp(const char *file) {
    FILE *fp = fopen(file, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    unsigned char *b = malloc((size_t)n);
    rewind(fp);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    assert_memory_equal(b, "DPTRAIN-H5SUM 1 ", 16);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long i = 512; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    char head[512] = {0};
    snprintf(head, sizeof head, "DPTRAIN-H5SUM 1 %ld %016llx\n", n, (unsigned long long)h);
    rewind(fp);
    assert_int_equal(fwrite(head, 1, sizeof head, fp), sizeof head);
    fclose(fp);
    free(b);
}

/* ---- Keras weights layout ------------------------------------------------------------------- */

static void test_weights_roundtrip_and_layout(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-w");
    char path[4200];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    dpt_model *a = make_model(MLP, 20, 1), *b = make_model(MLP, 20, 2);
    int64_t n = dpt_model_n_params(a);
    assert_int_equal(n, 20 * 64 + 64 + 64 * 32 + 32 + 32 + 1);
    assert_true(memcmp(dpt_model_params(a), dpt_model_params(b), sizeof(float) * (size_t)n));
    assert_ok(dpt_weights_save_keras(path, a));
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));
    assert_ok(dpt_weights_load_keras(path, b));
    assert_memory_equal(dpt_model_params(a), dpt_model_params(b), sizeof(float) * (size_t)n);

    /* the layout Keras needs (keras-formats.md, "Minimal C-writer recipe") */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t at = H5Aopen(f, "layer_names", H5P_DEFAULT);
    hid_t t = H5Aget_type(at), sp = H5Aget_space(at);
    assert_int_equal(H5Tget_class(t), H5T_STRING);
    assert_true(H5Tis_variable_str(t) == 0); /* fixed-length, like Keras 2 */
    assert_int_equal(H5Sget_simple_extent_npoints(sp), 4);
    size_t w = H5Tget_size(t);
    char *names = calloc(4, w);
    assert_true(H5Aread(at, t, names) >= 0);
    assert_string_equal(names, "dense");
    assert_true(!strncmp(names + w, "dropout", w));
    assert_true(!strncmp(names + 3 * w, "dense_2", w));
    free(names);
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(at);
    /* weightless layer: an empty SIMPLE (0,) float64 array, not H5S_NULL */
    hid_t g = H5Gopen2(f, "dropout", H5P_DEFAULT);
    at = H5Aopen(g, "weight_names", H5P_DEFAULT);
    t = H5Aget_type(at);
    sp = H5Aget_space(at);
    assert_int_equal(H5Tget_class(t), H5T_FLOAT);
    assert_int_equal(H5Sget_simple_extent_type(sp), H5S_SIMPLE);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), 0);
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(at);
    H5Gclose(g);
    /* kernel (in, out) float32 at dense_1/dense_1/kernel:0 */
    hid_t d = H5Dopen2(f, "dense_1/dense_1/kernel:0", H5P_DEFAULT);
    assert_true(d >= 0);
    sp = H5Dget_space(d);
    hsize_t dims[2];
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 2);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    assert_int_equal(dims[0], 64);
    assert_int_equal(dims[1], 32);
    t = H5Dget_type(d);
    assert_true(H5Tequal(t, H5T_IEEE_F32LE) > 0);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    assert_true(H5Lexists(f, "dense_2/dense_2/bias:0", H5P_DEFAULT) > 0);
    assert_true(H5Aexists(f, "keras_version") > 0 && H5Aexists(f, "backend") > 0);
    H5Fclose(f);
    dpt_model_destroy(&a);
    dpt_model_destroy(&b);
}

static void test_weights_other_architecture(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-arch");
    char path[4200];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    dpt_model *a = make_model(MLP, 20, 1);
    assert_ok(dpt_weights_save_keras(path, a));
    dpt_model *c = make_model("[{\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":1}}]",
                              20, 3);
    float first = dpt_model_params(c)[0];
    assert_status_msg(
        dpt_weights_load_keras(path, c), DPT_ERR_CHECKPOINT,
        "layer 2 (dense_1): kernel shape (64, 32) does not match the model's (64, 64)");
    assert_non_null(strstr(dpt_error_message(), path));
    assert_true(dpt_model_params(c)[0] == first); /* untouched */
    dpt_model *two = make_model("[{\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                                " {\"class_name\":\"Dense\",\"config\":{\"units\":1}}]",
                                20, 3);
    assert_status_msg(dpt_weights_load_keras(path, two), DPT_ERR_CHECKPOINT,
                      "the file has weights for 3 layers, the model has 2 layers with weights");
    dpt_model *wide = make_model(MLP, 21, 3);
    assert_status_msg(dpt_weights_load_keras(path, wide), DPT_ERR_CHECKPOINT,
                      "layer 1 (dense): kernel shape (20, 64) does not match the model's (21, 64)");
    dpt_model_destroy(&a);
    dpt_model_destroy(&c);
    dpt_model_destroy(&two);
    dpt_model_destroy(&wide);
}

static void test_not_hdf5_and_missing(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-nothdf5");
    char path[4200];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    FILE *fp = fopen(path, "w");
    fputs("this is not HDF5\n", fp);
    fclose(fp);
    dpt_model *m = make_model(MLP, 20, 1);
    assert_status_msg(dpt_weights_load_keras(path, m), DPT_ERR_CHECKPOINT, "not an HDF5 file");
    assert_non_null(strstr(dpt_error_message(), path));
    assert_status_msg(dpt_ckpt_read(path, m, NULL, NULL), DPT_ERR_CHECKPOINT, "not an HDF5 file");
    snprintf(path, sizeof path, "%s/missing.h5", dir);
    assert_status_msg(dpt_weights_load_keras(path, m), DPT_ERR_CHECKPOINT,
                      "No such file or directory");
    /* a Keras weights file is not a checkpoint */
    snprintf(path, sizeof path, "%s/keras.h5", dir);
    assert_ok(dpt_weights_save_keras(path, m));
    assert_status_msg(dpt_ckpt_read(path, m, NULL, NULL), DPT_ERR_CHECKPOINT,
                      "not a dptrain checkpoint");
    /* an empty directory has no checkpoint */
    char out[4096];
    const char *empty = dpt_test_tmpdir("ckpt-empty");
    assert_status_msg(dpt_ckpt_find_latest(empty, m, out, sizeof out), DPT_ERR_CHECKPOINT,
                      "no checkpoint");
    dpt_model_destroy(&m);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

static void test_ckpt_roundtrip(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-rt");
    dpt_model *a = make_model(MLP, 20, 1);
    dpt_optim *oa = make_adam(a);
    train_a_bit(a, oa, 5);
    dpt_ckpt_meta meta = meta_at(1, 50, 150);
    const char *cfg =
        "{\"model\": \"x\", \"fit\": {\"epochs\": 3}, \"note\": \"\xc3\xa9t\xc3\xa9\"}";
    assert_ok(dpt_ckpt_write(dir, a, oa, &meta, cfg, 3));
    char p[4200], last[4200];
    snprintf(p, sizeof p, "%s/ckpt-000002-000000150.h5", dir);
    snprintf(last, sizeof last, "%s/last.h5", dir);
    assert_true(file_exists(p));
    assert_true(file_exists(last));
    assert_int_equal(count_suffix(dir, ".tmp"), 0);

    dpt_model *b = make_model(MLP, 20, 2);
    dpt_optim *ob = make_adam(b);
    dpt_ckpt_meta got;
    memset(&got, 0xff, sizeof got);
    assert_ok(dpt_ckpt_read(last, b, ob, &got));
    int64_t n = dpt_model_n_params(a);
    assert_memory_equal(dpt_model_params(a), dpt_model_params(b), sizeof(float) * (size_t)n);
    assert_int_equal(dpt_optim_n_slots(ob), 2);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(dpt_optim_slot(oa, i), dpt_optim_slot(ob, i),
                            sizeof(float) * (size_t)n);
    assert_int_equal(dpt_optim_iterations(ob), 5);
    assert_int_equal(got.epoch, 1);
    assert_int_equal(got.step_in_epoch, 50);
    assert_int_equal(got.global_step, 150);
    assert_int_equal(got.seed, 4000000001u);
    assert_int_equal(got.world_size, 3);
    assert_memory_equal(got.epoch_sums, meta.epoch_sums, sizeof got.epoch_sums);
    /* the checkpoint is also a Keras weights file */
    dpt_model *c = make_model(MLP, 20, 3);
    assert_ok(dpt_weights_load_keras(p, c));
    assert_memory_equal(dpt_model_params(a), dpt_model_params(c), sizeof(float) * (size_t)n);
    /* the same next step from both: the restore is exact */
    train_a_bit(a, oa, 1);
    train_a_bit(b, ob, 1);
    assert_memory_equal(dpt_model_params(a), dpt_model_params(b), sizeof(float) * (size_t)n);

    char *text = NULL;
    assert_ok(dpt_ckpt_read_config(p, &text));
    assert_string_equal(text, cfg);
    free(text);

    /* an optimizer of another kind is refused, by name */
    dpt_optim_spec sgd = dpt_optim_defaults(DPT_OPT_SGD);
    sgd.momentum = 0.9;
    dpt_optim *os = NULL;
    assert_ok(dpt_optim_create(&sgd, n, &os));
    assert_status_msg(dpt_ckpt_read(p, b, os, NULL), DPT_ERR_CHECKPOINT,
                      "written with \"adam\", the run uses \"sgd\"");
    /* find_latest picks last.h5 */
    char out[4096], err[4096];
    assert_ok(find_latest_capture(dir, a, out, err, sizeof err));
    assert_string_equal(out, last);
    assert_string_equal(err, "");
    dpt_optim_destroy(&os);
    dpt_optim_destroy(&oa);
    dpt_optim_destroy(&ob);
    dpt_model_destroy(&a);
    dpt_model_destroy(&b);
    dpt_model_destroy(&c);
}

static void test_ckpt_keep(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-keep");
    dpt_model *m = make_model(MLP, 20, 1);
    dpt_optim *o = make_adam(m);
    for (int s = 1; s <= 4; s++) {
        dpt_ckpt_meta meta = meta_at(s - 1, 10, s * 10);
        assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 2));
    }
    assert_int_equal(count_prefix(dir, "ckpt-"), 2);
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt-000004-000000040.h5", dir);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt-000003-000000030.h5", dir);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/last.h5", dir);
    assert_true(file_exists(p));
    assert_int_equal(count_suffix(dir, ".tmp"), 0);
    /* end of epoch 4: (epoch 4, step 0) is named after epoch 4 too */
    dpt_ckpt_meta meta = meta_at(4, 0, 50);
    assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 2));
    snprintf(p, sizeof p, "%s/ckpt-000004-000000050.h5", dir);
    assert_true(file_exists(p));
    /* keep = 0: only last.h5 */
    meta = meta_at(5, 3, 53);
    assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 0));
    assert_int_equal(count_prefix(dir, "ckpt-"), 0);
    dpt_ckpt_meta got;
    snprintf(p, sizeof p, "%s/last.h5", dir);
    assert_ok(dpt_ckpt_read(p, m, o, &got));
    assert_int_equal(got.global_step, 53);
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
}

/* A directory used again without --resume: the earlier run's ckpt-* of later steps are neither
 * counted nor removed; this run keeps its own newest `keep`. */
static void test_keep_ignores_earlier_run(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-keep-earlier");
    dpt_model *m = make_model(MLP, 20, 1);
    dpt_optim *o = make_adam(m);
    dpt_ckpt_meta meta = meta_at(9, 0, 1000);
    assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 2)); /* the earlier run */
    for (int s = 1; s <= 4; s++) {
        meta = meta_at(s - 1, 10, s * 10);
        assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 2));
    }
    assert_int_equal(count_prefix(dir, "ckpt-"), 3);
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt-000009-000001000.h5", dir);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt-000004-000000040.h5", dir);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt-000003-000000030.h5", dir);
    assert_true(file_exists(p));
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
}

/* Two checkpoints (steps 10, 20); returns the model. */
static dpt_model *two_checkpoints(const char *dir, dpt_optim **o) {
    dpt_model *m = make_model(MLP, 20, 1);
    *o = make_adam(m);
    train_a_bit(m, *o, 2);
    dpt_ckpt_meta meta = meta_at(0, 10, 10);
    assert_ok(dpt_ckpt_write(dir, m, *o, &meta, "{}", 3));
    train_a_bit(m, *o, 2);
    meta = meta_at(0, 20, 20);
    assert_ok(dpt_ckpt_write(dir, m, *o, &meta, "{}", 3));
    return m;
}

static void test_truncated_last_falls_back(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-trunc");
    dpt_optim *o;
    dpt_model *m = two_checkpoints(dir, &o);
    char last[4200], want[4200], out[4096], err[4096];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    snprintf(want, sizeof want, "%s/ckpt-000001-000000020.h5", dir);
    struct stat sb;
    assert_int_equal(stat(last, &sb), 0);
    assert_int_equal(truncate(last, sb.st_size / 2), 0);
    dpt_model *b = make_model(MLP, 20, 9);
    float before = dpt_model_params(b)[0];
    assert_status_msg(dpt_ckpt_read(last, b, NULL, NULL), DPT_ERR_CHECKPOINT, last);
    assert_true(dpt_model_params(b)[0] == before);
    assert_ok(find_latest_capture(dir, b, out, err, sizeof err));
    assert_string_equal(out, want);
    char expect[9000];
    snprintf(expect, sizeof expect, "dptrain: warning: %s: ", last);
    assert_non_null(strstr(err, expect));
    snprintf(expect, sizeof expect, "; using %s\n", want);
    assert_non_null(strstr(err, expect));
    assert_true(dpt_model_params(b)[0] == before); /* find_latest does not load */
    assert_ok(dpt_ckpt_read(out, b, NULL, NULL));
    assert_memory_equal(dpt_model_params(b), dpt_model_params(m),
                        sizeof(float) * (size_t)dpt_model_n_params(m));
    /* without a model, the checksum is still verified */
    assert_ok(find_latest_capture(dir, NULL, out, err, sizeof err));
    assert_string_equal(out, want);
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
    dpt_model_destroy(&b);
}

/* Copies file a onto b and gives b the modification time `age` seconds in the past. */
static void copy_aged(const char *a, const char *b, int age) {
    FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, k, out), k);
    fclose(in);
    fclose(out);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec t[2] = {{now.tv_sec - age, 0}, {now.tv_sec - age, 0}};
    assert_int_equal(utimensat(AT_FDCWD, b, t, 0), 0);
}

/* Replacing last.h5 failed after ckpt-20 was written (a full disk): last.h5 still holds step 10
 * and is older than ckpt-20, which is the newest valid checkpoint. A ckpt-* with more steps than
 * last.h5 but older than it is an earlier run's: last.h5 wins. */
static void test_newer_ckpt_than_last(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-newer");
    dpt_optim *o;
    dpt_model *m = two_checkpoints(dir, &o);
    char last[4200], c10[4200], c20[4200], out[4096], err[4096];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    snprintf(c10, sizeof c10, "%s/ckpt-000001-000000010.h5", dir);
    snprintf(c20, sizeof c20, "%s/ckpt-000001-000000020.h5", dir);
    copy_aged(c10, last, 60);
    assert_ok(find_latest_capture(dir, m, out, err, sizeof err));
    assert_string_equal(out, c20);
    char expect[9000];
    snprintf(expect, sizeof expect, "dptrain: warning: %s is newer than %s (which holds step 10",
             c20, last);
    assert_non_null(strstr(err, expect));
    /* now ckpt-20 is the older file: an earlier run's, last.h5 (step 10) is taken */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec t[2] = {{now.tv_sec - 120, 0}, {now.tv_sec - 120, 0}};
    assert_int_equal(utimensat(AT_FDCWD, c20, t, 0), 0);
    assert_ok(find_latest_capture(dir, m, out, err, sizeof err));
    assert_string_equal(out, last);
    assert_string_equal(err, "");
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
}

static void test_flipped_byte_caught(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-flip");
    dpt_optim *o;
    dpt_model *m = two_checkpoints(dir, &o);
    char last[4200], want[4200], out[4096], err[4096];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    snprintf(want, sizeof want, "%s/ckpt-000001-000000020.h5", dir);
    haddr_t off = data_offset(last, "/dense_1/dense_1/kernel:0");
    flip_byte(last, (long)off + 4 * 100 + 2);
    dpt_model *b = make_model(MLP, 20, 9);
    float before = dpt_model_params(b)[0];
    /* the whole-file checksum catches it before HDF5 reads anything */
    assert_status_msg(dpt_ckpt_read(last, b, NULL, NULL), DPT_ERR_CHECKPOINT,
                      "last.h5: damaged file (file checksum mismatch)");
    assert_ok(find_latest_capture(dir, b, out, err, sizeof err));
    assert_string_equal(out, want);
    assert_non_null(strstr(err, "file checksum mismatch); using"));
    /* behind it, the checksum of the weights catches it too */
    restamp(last);
    assert_status_msg(dpt_ckpt_read(last, b, NULL, NULL), DPT_ERR_CHECKPOINT,
                      "last.h5: weights checksum mismatch (damaged checkpoint)");
    assert_true(dpt_model_params(b)[0] == before);
    assert_ok(find_latest_capture(dir, b, out, err, sizeof err));
    assert_string_equal(out, want);
    assert_non_null(strstr(err, "weights checksum mismatch (damaged checkpoint); using"));
    assert_ok(find_latest_capture(dir, NULL, out, err, sizeof err));
    assert_string_equal(out, want);
    /* a flip inside an optimizer slot is caught too */
    off = data_offset(want, "/dptrain/optimizer/v");
    flip_byte(want, (long)off + 7);
    restamp(want);
    assert_status_msg(dpt_ckpt_read(want, b, NULL, NULL), DPT_ERR_CHECKPOINT,
                      "weights checksum mismatch");
    /* both damaged: the older ckpt-* is used, with two warnings */
    assert_ok(find_latest_capture(dir, b, out, err, sizeof err));
    snprintf(want, sizeof want, "%s/ckpt-000001-000000010.h5", dir);
    assert_string_equal(out, want);
    assert_non_null(strstr(strstr(err, "warning") + 1, "warning"));
    /* all damaged: an error */
    flip_byte(want, (long)data_offset(want, "/dense/dense/bias:0"));
    assert_status_msg(find_latest_capture(dir, b, out, err, sizeof err), DPT_ERR_CHECKPOINT,
                      "no usable checkpoint");
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
    dpt_model_destroy(&b);
}

static void test_newer_format_refused(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-ver");
    dpt_model *m = make_model(MLP, 20, 1);
    dpt_ckpt_meta meta = meta_at(0, 1, 1);
    assert_ok(dpt_ckpt_write(dir, m, NULL, &meta, "{}", 1));
    char last[4200];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    hid_t f = H5Fopen(last, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, "dptrain", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "format_version", H5P_DEFAULT);
    int v = DPT_CKPT_FORMAT_VERSION + 1;
    assert_true(H5Awrite(a, H5T_NATIVE_INT, &v) >= 0);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(f);
    restamp(last); /* as a future dptrain would have written it */
    char expect[256];
    snprintf(expect, sizeof expect,
             "last.h5: /dptrain/format_version: %d is newer than this dptrain supports (%d)", v,
             DPT_CKPT_FORMAT_VERSION);
    assert_status_msg(dpt_ckpt_read(last, m, NULL, NULL), DPT_ERR_CHECKPOINT, expect);
    /* the optimizer-less checkpoint cannot restore an optimizer */
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt-000001-000000001.h5", dir);
    dpt_optim *o = make_adam(m);
    assert_status_msg(dpt_ckpt_read(p, m, o, NULL), DPT_ERR_CHECKPOINT, "\"none\"");
    assert_ok(dpt_ckpt_read(p, m, NULL, NULL));
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
}

static void test_ckpt_other_architecture(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-arch2");
    dpt_model *m = make_model(MLP, 20, 1);
    dpt_ckpt_meta meta = meta_at(0, 1, 1);
    assert_ok(dpt_ckpt_write(dir, m, NULL, &meta, "{}", 1));
    char last[4200], out[4096], err[4096];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    dpt_model *c = make_model("[{\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":1}}]",
                              20, 3);
    assert_status_msg(
        dpt_ckpt_read(last, c, NULL, NULL), DPT_ERR_CHECKPOINT,
        "layer 2 (dense_1): kernel shape (64, 32) does not match the model's (64, 64)");
    assert_status_msg(find_latest_capture(dir, c, out, err, sizeof err), DPT_ERR_CHECKPOINT,
                      "layer 2 (dense_1)");
    dpt_model_destroy(&m);
    dpt_model_destroy(&c);
}

static void test_unwritable_dir(void **state) {
    (void)state;
    /* tests run as root, so chmod cannot make a directory unwritable: use a path under a FILE */
    const char *dir = dpt_test_tmpdir("ckpt-unwr");
    char file[4200], sub[4300], w[4400];
    snprintf(file, sizeof file, "%s/file", dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    snprintf(sub, sizeof sub, "%s/sub", file);
    dpt_model *m = make_model(MLP, 20, 1);
    dpt_ckpt_meta meta = meta_at(0, 1, 1);
    assert_status_msg(dpt_ckpt_write(sub, m, NULL, &meta, "{}", 2), DPT_ERR_IO, sub);
    snprintf(w, sizeof w, "%s/w.h5", file);
    assert_status_msg(dpt_weights_save_keras(w, m), DPT_ERR_IO, w);
    assert_non_null(strstr(dpt_error_message(), "Not a directory"));
    snprintf(w, sizeof w, "%s/nodir/w.h5", dir);
    assert_status_msg(dpt_weights_save_keras(w, m), DPT_ERR_IO, "No such file or directory");
    dpt_model_destroy(&m);
}

/* "Disk full": a file-size limit makes write(2) fail with EFBIG part-way through the file. */
static void test_disk_full(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("ckpt-full");
    const char *big = "[{\"class_name\":\"Dense\",\"config\":{\"units\":256}},"
                      " {\"class_name\":\"Dense\",\"config\":{\"units\":256}},"
                      " {\"class_name\":\"Dense\",\"config\":{\"units\":1}}]";
    dpt_model *m = make_model(big, 20, 1);
    dpt_optim *o = make_adam(m);
    dpt_ckpt_meta meta = meta_at(0, 1, 1);
    assert_ok(dpt_ckpt_write(dir, m, o, &meta, "{}", 0)); /* a good last.h5 first */
    train_a_bit(m, o, 1);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 100 * 1024; /* the checkpoint is ~1.1 MB */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    meta = meta_at(0, 2, 2);
    dpt_status st = dpt_ckpt_write(dir, m, o, &meta, "{}", 0);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    assert_status_msg(st, DPT_ERR_IO, "last.h5");
    assert_int_equal(count_suffix(dir, ".tmp"), 0);
    dpt_ckpt_meta got;
    char last[4200];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    assert_ok(dpt_ckpt_read(last, m, o, &got)); /* the previous one, intact */
    assert_int_equal(got.global_step, 1);
    dpt_optim_destroy(&o);
    dpt_model_destroy(&m);
}

/* ---- Keras-written fixtures ----------------------------------------------------------------- */

static const char *CHURN =
    "[{\"class_name\":\"Dense\",\"config\":{\"units\":64,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":32,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":1,\"activation\":\"sigmoid\"}}]";

static void check_churn(const char *sub, const char *file) {
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    char path[4200], ej[4200];
    snprintf(path, sizeof path, "%s/%s/%s", fx, sub, file);
    snprintf(ej, sizeof ej, "%s/%s/expected.json", fx, sub);
    json_error_t je;
    json_t *e = json_load_file(ej, 0, &je);
    if (!e)
        fail_msg("%s: %s", ej, je.text);
    json_t *in = json_array_get(json_object_get(e, "input"), 0);
    assert_int_equal(json_array_size(in), 12);
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)json_number_value(json_array_get(in, (size_t)i));
    double want = json_number_value(
        json_array_get(json_array_get(json_object_get(e, "expected_output"), 0), 0));
    dpt_model *m = make_model(CHURN, 12, 1);
    assert_ok(dpt_weights_load_keras(path, m));
    dpt_pass p = {.training = false};
    const float *y = dpt_model_forward(m, &p, x, 1);
    if (fabs((double)y[0] - want) > 1e-5)
        fail_msg("%s: predicted %.8f, Keras %.8f", file, (double)y[0], want);
    /* another architecture is refused, with the layer named */
    dpt_model *c = make_model("[{\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":64}},"
                              " {\"class_name\":\"Dense\",\"config\":{\"units\":1}}]",
                              12, 1);
    assert_status_msg(
        dpt_weights_load_keras(path, c), DPT_ERR_CHECKPOINT,
        "layer 2 (dense_1): kernel shape (64, 32) does not match the model's (64, 64)");
    json_decref(e);
    dpt_model_destroy(&m);
    dpt_model_destroy(&c);
}

static void test_fixture_keras3_legacy_h5(void **state) {
    (void)state;
    check_churn("k3.8.0_churn_legacy_h5", "model.h5");
}

static void test_fixture_keras3_weights_h5(void **state) {
    (void)state;
    check_churn("k3_churn_weights_h5", "model.weights.h5");
}

static float *read_f32(const char *file, const char *dset, int64_t n) {
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), n);
    float *v = malloc(sizeof(float) * (size_t)n);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

static void test_fixture_keras231_dense_softmax(void **state) {
    (void)state;
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    char w[4200], io[4200];
    snprintf(w, sizeof w, "%s/k2.3.1_dl4j_dense_softmax/weights.h5", fx);
    snprintf(io, sizeof io, "%s/k2.3.1_dl4j_dense_softmax/inputs_and_outputs.h5", fx);
    /* config.json: input 4 -> Dense(3, linear) -> Activation(softmax) */
    dpt_model *m =
        make_model("[{\"class_name\":\"Dense\",\"config\":{\"units\":3}},"
                   " {\"class_name\":\"Activation\",\"config\":{\"activation\":\"softmax\"}}]",
                   4, 1);
    assert_ok(dpt_weights_load_keras(w, m));
    float *x = read_f32(io, "/inputs/dense_1_input", 12);
    float *want = read_f32(io, "/predictions/activation_1", 9);
    dpt_pass p = {.training = false};
    const float *y = dpt_model_forward(m, &p, x, 3);
    for (int i = 0; i < 9; i++)
        if (fabsf(y[i] - want[i]) > 1e-5f)
            fail_msg("prediction %d: %.8f, Keras %.8f", i, (double)y[i], (double)want[i]);
    free(x);
    free(want);
    dpt_model_destroy(&m);
}

static void test_fixture_keras205_dropout(void **state) {
    (void)state;
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    char w[4200];
    snprintf(w, sizeof w, "%s/k2.0.5_ccfraud_dense_dropout/model.h5", fx);
    /* model.json: 30 -> Dense 16 relu -> 18 relu -> Dropout .25 -> 20 relu -> 24 relu -> 1 sigmoid
     */
    dpt_model *m = make_model(
        "[{\"class_name\":\"Dense\",\"config\":{\"units\":16,\"activation\":\"relu\"}},"
        " {\"class_name\":\"Dense\",\"config\":{\"units\":18,\"activation\":\"relu\"}},"
        " {\"class_name\":\"Dropout\",\"config\":{\"rate\":0.25}},"
        " {\"class_name\":\"Dense\",\"config\":{\"units\":20,\"activation\":\"relu\"}},"
        " {\"class_name\":\"Dense\",\"config\":{\"units\":24,\"activation\":\"relu\"}},"
        " {\"class_name\":\"Dense\",\"config\":{\"units\":1,\"activation\":\"sigmoid\"}}]",
        30, 1);
    assert_ok(dpt_weights_load_keras(w, m));
    /* h5dump -d /dense_5/dense_5/bias:0 and kernel:0 (24, 1) rows 0..2 */
    const dpt_layer *l = dpt_model_layer(m, 5);
    float *k = read_f32(w, "/dense_5/dense_5/kernel:0", 24);
    float *b = read_f32(w, "/dense_5/dense_5/bias:0", 1);
    assert_memory_equal(l->params, k, sizeof(float) * 24);
    assert_memory_equal(l->params + 24, b, sizeof(float));
    /* and every layer equals the file's */
    const int units[] = {16, 18, 0, 20, 24, 1}, ins[] = {30, 16, 0, 18, 20, 24};
    const char *names[] = {"dense_1", "dense_2", "", "dense_3", "dense_4", "dense_5"};
    for (int i = 0; i < 6; i++) {
        if (!units[i])
            continue;
        char ds[128];
        snprintf(ds, sizeof ds, "/%s/%s/kernel:0", names[i], names[i]);
        float *kk = read_f32(w, ds, ins[i] * units[i]);
        assert_memory_equal(dpt_model_layer(m, i)->params, kk,
                            sizeof(float) * (size_t)(ins[i] * units[i]));
        free(kk);
    }
    free(k);
    free(b);
    dpt_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_roundtrip_and_layout),
        cmocka_unit_test(test_weights_other_architecture),
        cmocka_unit_test(test_not_hdf5_and_missing),
        cmocka_unit_test(test_ckpt_roundtrip),
        cmocka_unit_test(test_ckpt_keep),
        cmocka_unit_test(test_keep_ignores_earlier_run),
        cmocka_unit_test(test_truncated_last_falls_back),
        cmocka_unit_test(test_newer_ckpt_than_last),
        cmocka_unit_test(test_flipped_byte_caught),
        cmocka_unit_test(test_newer_format_refused),
        cmocka_unit_test(test_ckpt_other_architecture),
        cmocka_unit_test(test_unwritable_dir),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_fixture_keras3_legacy_h5),
        cmocka_unit_test(test_fixture_keras3_weights_h5),
        cmocka_unit_test(test_fixture_keras231_dense_softmax),
        cmocka_unit_test(test_fixture_keras205_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
