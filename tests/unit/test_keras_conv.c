/* Keras conformance of the convolutional layers, on real Keras-written files in
 * ../shared/fixtures/keras (skipped when the folder is absent):
 *  - k2.4.0_conv_json/model.json (tf.keras 2.4.0 to_json: InputLayer (500, 500, 1), 3 x [Conv2D 64
 *    3x3 valid + Activation relu + MaxPooling2D 2], Flatten, Dense 1, Activation sigmoid): output
 *    shapes and parameter counts equal Keras's, worked out by hand below, and the summary totals.
 *  - k2.1.3_dl4j_conv_bn/cnn_batch_norm.h5 (Keras 2.1.3 model.save: Conv2D + BatchNormalization +
 *    relu + Conv2D + Flatten + Dense): the model is built from the file's own model_config
 *    attribute, the weights are read by dpt_weights_load_keras, and an inference forward pass of
 *    input.npy reproduces predictions.npy to 1e-5 (the .npy headers are parsed here).
 * No MPI.
 */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A config wrapping a Keras model (JSON text) with a loss, parsed; the model built for max_batch.
 */
static void build(const char *model_json, const char *file, int64_t max_batch, dpt_config *c,
                  dpt_model **m) {
    size_t n = strlen(model_json) + 256;
    char *text = malloc(n);
    snprintf(text, n, "{\"model\": %s, \"compile\": {\"loss\": \"mse\"}}", model_json);
    assert_ok(dpt_config_parse(text, strlen(text), file, c));
    free(text);
    assert_true(c->has_input_shape);
    dpt_json_ctx ctx = {.file = file, .path = "model.config"};
    assert_ok(dpt_model_create(c->layers, &c->input_shape, max_batch, 1, &ctx, m));
}

static void test_k240_conv_json_counts(void **state) {
    (void)state;
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    char path[4200];
    snprintf(path, sizeof path, "%s/k2.4.0_conv_json/model.json", fx);
    char *text = NULL;
    size_t len = 0;
    assert_ok(dpt_read_file(path, DPT_ERR_CONFIG, &text, &len));
    dpt_config c;
    dpt_model *m = NULL;
    build(text, path, 1, &c, &m);
    free(text);
    /* Keras, by hand (valid 3x3 convs: -2; 2x2 pools: floor(/2)):
     *   conv2d_15   (498, 498, 64)  3*3*1*64 + 64  =     640
     *   max_pool    (249, 249, 64)
     *   conv2d_16   (247, 247, 64)  3*3*64*64 + 64 =  36,928
     *   max_pool    (123, 123, 64)
     *   conv2d_17   (121, 121, 64)                    36,928
     *   max_pool    (60, 60, 64)
     *   flatten     (230400,)
     *   dense_5     (1,)            230400 + 1     = 230,401
     *   total 640 + 2 * 36,928 + 230,401 = 304,897, all trainable */
    static const struct {
        const char *name;
        int rank;
        int64_t d[3], params;
    } want[] = {
        {"conv2d_15", 3, {498, 498, 64}, 640},
        {"activation_20", 3, {498, 498, 64}, 0},
        {"max_pooling2d_15", 3, {249, 249, 64}, 0},
        {"conv2d_16", 3, {247, 247, 64}, 36928},
        {"activation_21", 3, {247, 247, 64}, 0},
        {"max_pooling2d_16", 3, {123, 123, 64}, 0},
        {"conv2d_17", 3, {121, 121, 64}, 36928},
        {"activation_22", 3, {121, 121, 64}, 0},
        {"max_pooling2d_17", 3, {60, 60, 64}, 0},
        {"flatten_5", 1, {230400}, 0},
        {"dense_5", 1, {1}, 230401},
        {"activation_23", 1, {1}, 0},
    };
    assert_int_equal(dpt_model_n_layers(m), 12);
    for (int i = 0; i < 12; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        assert_string_equal(l->name, want[i].name);
        assert_int_equal(l->out_shape.rank, want[i].rank);
        for (int k = 0; k < want[i].rank; k++)
            assert_int_equal(l->out_shape.dim[k], want[i].d[k]);
        assert_int_equal(dpt_layer_n_params(l), want[i].params);
    }
    assert_int_equal(dpt_model_n_params(m), 304897);
    assert_int_equal(dpt_model_n_trainable(m), 304897);
    char buf[8192];
    dpt_model_summary(m, buf, sizeof buf);
    assert_non_null(strstr(buf, "Total params: 304,897"));
    assert_non_null(strstr(buf, "Non-trainable params: 0"));
    assert_non_null(strstr(buf, "(None, 498, 498, 64)"));
    dpt_model_destroy(&m);
    dpt_config_deinit(&c);
}

/* ---- .npy ------------------------------------------------------------------------------------ */

/* Reads a little-endian C-order .npy of '<f4' or '<f8' into doubles; shape into dims. */
static double *read_npy(const char *path, int *rank, int64_t dims[4]) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: cannot open", path);
    unsigned char pre[10];
    assert_int_equal(fread(pre, 1, 10, f), 10);
    assert_memory_equal(pre, "\x93NUMPY", 6);
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    assert_int_equal(pre[6], 1); /* version 1.0: 2-byte header length */
    char *h = calloc(hlen + 1, 1);
    assert_int_equal(fread(h, 1, hlen, f), hlen);
    int wordsize = strstr(h, "'<f8'") ? 8 : strstr(h, "'<f4'") ? 4 : 0;
    if (!wordsize || !strstr(h, "'fortran_order': False"))
        fail_msg("%s: unsupported header %s", path, h);
    const char *s = strstr(h, "'shape': (");
    assert_non_null(s);
    s += strlen("'shape': (");
    *rank = 0;
    int64_t total = 1;
    while (*s && *s != ')') {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s)
            break;
        assert_true(*rank < 4);
        dims[(*rank)++] = v;
        total *= v;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    free(h);
    double *out = malloc(sizeof(double) * (size_t)total);
    for (int64_t i = 0; i < total; i++) {
        if (wordsize == 8) {
            assert_int_equal(fread(&out[i], 8, 1, f), 1);
        } else {
            float v;
            assert_int_equal(fread(&v, 4, 1, f), 1);
            out[i] = v;
        }
    }
    fclose(f);
    return out;
}

static char *read_model_config(const char *h5) {
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "model_config", H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    char *out = NULL;
    if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        char *v = NULL;
        assert_true(H5Aread(a, mt, &v) >= 0);
        out = strdup(v);
        H5free_memory(v);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        out = calloc(n + 1, 1);
        assert_true(H5Aread(a, t, out) >= 0);
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
    return out;
}

static void test_k213_conv_bn_predictions(void **state) {
    (void)state;
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    char h5[4200], xin[4200], yout[4200];
    snprintf(h5, sizeof h5, "%s/k2.1.3_dl4j_conv_bn/cnn_batch_norm.h5", fx);
    snprintf(xin, sizeof xin, "%s/k2.1.3_dl4j_conv_bn/input.npy", fx);
    snprintf(yout, sizeof yout, "%s/k2.1.3_dl4j_conv_bn/predictions.npy", fx);
    char *mc = read_model_config(h5);
    dpt_config c;
    dpt_model *m = NULL;
    build(mc, h5, 5, &c, &m);
    free(mc);
    /* Keras: conv2d_1 (8, 8, 1) 3*3*3*1 + 1 = 28; batch_normalization_1 4 (2 trainable);
     * conv2d_2 (6, 6, 1) 3*3*1*1 + 1 = 10; flatten 36; dense_1 36 + 1 = 37: 79, 77 trainable */
    assert_int_equal(dpt_model_n_params(m), 79);
    assert_int_equal(dpt_model_n_trainable(m), 77);
    assert_string_equal(dpt_model_layer(m, 1)->name, "batch_normalization_1");
    assert_ok(dpt_weights_load_keras(h5, m));
    int rx = 0, ry = 0;
    int64_t dx[4], dy[4];
    double *x = read_npy(xin, &rx, dx);
    double *y = read_npy(yout, &ry, dy);
    assert_int_equal(rx, 4);
    assert_true(dx[0] == 5 && dx[1] == 10 && dx[2] == 10 && dx[3] == 3);
    assert_true(ry == 2 && dy[0] == 5 && dy[1] == 1);
    float xf[5 * 300];
    for (int i = 0; i < 5 * 300; i++)
        xf[i] = (float)x[i];
    dpt_pass p = {.training = false};
    const float *out = dpt_model_forward(m, &p, xf, 5);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double d = fabs((double)out[i] - y[i]);
        worst = d > worst ? d : worst;
        if (d > 1e-5)
            fail_msg("prediction %d: %.8f, Keras %.8f", i, (double)out[i], y[i]);
    }
    if (getenv("DPT_VERBOSE"))
        fprintf(stderr, "conv_bn: worst |diff| %.3g\n", worst);
    /* the Keras asserts in the generator script: the same numbers */
    assert_float_equal(y[0], -0.0520611, 1e-6);
    assert_float_equal(y[4], 0.15537278, 1e-6);
    free(x);
    free(y);
    dpt_model_destroy(&m);
    dpt_config_deinit(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k240_conv_json_counts),
        cmocka_unit_test(test_k213_conv_bn_predictions),
    };
    return cmocka_run_group_tests_name("keras_conv", tests, NULL, NULL);
}
