/* Unit tests of the layers beyond Dense: Conv2D (against a direct 7-loop convolution, valid/same
 * padding, strides, 1x1, several im2col chunks), pooling (hand-computed windows, "same" average
 * over real elements only), GlobalAveragePooling2D, Reshape, BatchNormalization (batch
 * statistics, the moving-average update, inference, non-trainable parameters, synchronized
 * batch norm across two simulated ranks = one rank with the whole batch, forward and backward),
 * the dropout family (SpatialDropout1D/2D, GaussianDropout, AlphaDropout, GaussianNoise,
 * Dropout's noise_shape: statistics, broadcast, determinism), finite-difference gradient checks
 * of every layer in training and inference modes, and the model-level pieces (Keras default
 * names, trainable counts and segments, B = 0, a whole CNN's gradient). No MPI.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

static const dpt_pass train_pass = {.training = true, .seed = 4321, .rank = 1, .step = 9};
static const dpt_pass infer_pass = {.training = false, .seed = 4321, .rank = 1, .step = 9};

static dpt_shape shp(int r, int64_t a, int64_t b, int64_t c) {
    return (dpt_shape){.rank = r, .dim = {a, b, c}};
}

/* ---- Conv2D --------------------------------------------------------------------------------- */

/* direct convolution, TF padding: x (B, H, W, C), K (KH, KW, C, F), b (F) -> y (B, OH, OW, F) */
static void conv_ref(const float *x, const float *K, const float *bias, float *y, int B, int H,
                     int W, int C, int F, int KH, int KW, int SH, int SW, bool same, int *OHo,
                     int *OWo) {
    int OH = same ? (H + SH - 1) / SH : (H - KH) / SH + 1;
    int OW = same ? (W + SW - 1) / SW : (W - KW) / SW + 1;
    int PT = same ? ((OH - 1) * SH + KH - H > 0 ? ((OH - 1) * SH + KH - H) / 2 : 0) : 0;
    int PL = same ? ((OW - 1) * SW + KW - W > 0 ? ((OW - 1) * SW + KW - W) / 2 : 0) : 0;
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int f = 0; f < F; f++) {
                    double s = bias ? bias[f] : 0;
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int ih = oh * SH - PT + kh, iw = ow * SW - PL + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            for (int c = 0; c < C; c++)
                                s += (double)x[((b * H + ih) * W + iw) * C + c] *
                                     K[((kh * KW + kw) * C + c) * F + f];
                        }
                    y[((b * OH + oh) * OW + ow) * F + f] = (float)s;
                }
    *OHo = OH;
    *OWo = OW;
}

static void conv_case(int B, int H, int W, int C, int F, int KH, int KW, int SH, int SW,
                      bool same) {
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"filters\": %d, \"kernel_size\": [%d, %d], \"strides\": [%d, %d], \"padding\": "
             "\"%s\", \"bias_initializer\": {\"class_name\": \"RandomNormal\", \"config\": "
             "{\"stddev\": 0.5}}}",
             F, KH, KW, SH, SW, same ? "same" : "valid");
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Conv2D", cfg, shp(3, H, W, C), &l));
    gc_bind_params(l, 5);
    int64_t nin = (int64_t)B * H * W * C;
    float *x = malloc(sizeof(float) * (size_t)nin);
    dpt_rng r;
    dpt_rng_init(&r, 1, 2);
    gc_fill_uniform(x, nin, -1, 1, &r);
    float *y = malloc(sizeof(float) * (size_t)(B * l->out_size));
    float *want = malloc(sizeof(float) * (size_t)(B * l->out_size));
    l->ops->forward(l, &train_pass, x, y, B);
    int OH, OW;
    conv_ref(x, l->params, l->params + (int64_t)KH * KW * C * F, want, B, H, W, C, F, KH, KW, SH,
             SW, same, &OH, &OW);
    assert_int_equal(l->out_shape.rank, 3);
    assert_int_equal(l->out_shape.dim[0], OH);
    assert_int_equal(l->out_shape.dim[1], OW);
    assert_int_equal(l->out_shape.dim[2], F);
    for (int64_t k = 0; k < B * l->out_size; k++)
        if (fabsf(y[k] - want[k]) > 1e-4f * (1 + fabsf(want[k])))
            fail_msg("conv %dx%d s%d,%d %s: y[%lld] = %g, reference %g", KH, KW, SH, SW,
                     same ? "same" : "valid", (long long)k, (double)y[k], (double)want[k]);
    /* backward against the direct loops: dx and dK for dz = a fixed pattern (linear act) */
    int64_t nout = B * l->out_size, nk = (int64_t)KH * KW * C * F;
    float *dz = malloc(sizeof(float) * (size_t)nout), *dx = malloc(sizeof(float) * (size_t)nin);
    double *rdx = calloc((size_t)nin, sizeof(double)), *rdk = calloc((size_t)nk, sizeof(double));
    for (int64_t k = 0; k < nout; k++)
        dz[k] = (float)((k * 7919) % 13) / 13.0f - 0.5f;
    int PT = same ? (((OH - 1) * SH + KH - H) > 0 ? ((OH - 1) * SH + KH - H) / 2 : 0) : 0;
    int PL = same ? (((OW - 1) * SW + KW - W) > 0 ? ((OW - 1) * SW + KW - W) / 2 : 0) : 0;
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++) {
                        int ih = oh * SH - PT + kh, iw = ow * SW - PL + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                            continue;
                        for (int c = 0; c < C; c++)
                            for (int f = 0; f < F; f++) {
                                double g = dz[((b * OH + oh) * OW + ow) * F + f];
                                int64_t xi = ((b * H + ih) * W + iw) * C + c;
                                int64_t ki = ((kh * KW + kw) * C + c) * F + f;
                                rdx[xi] += g * l->params[ki];
                                rdk[ki] += g * x[xi];
                            }
                    }
    memset(l->grads, 0, sizeof(float) * (size_t)dpt_layer_n_params(l));
    l->ops->backward(l, &train_pass, x, y, dz, dx, B);
    for (int64_t k = 0; k < nin; k++)
        if (fabs(dx[k] - rdx[k]) > 1e-4 * (1 + fabs(rdx[k])))
            fail_msg("conv backward: dx[%lld] = %g, reference %g", (long long)k, (double)dx[k],
                     rdx[k]);
    for (int64_t k = 0; k < nk; k++)
        if (fabs(l->grads[k] - rdk[k]) > 1e-4 * (1 + fabs(rdk[k])))
            fail_msg("conv backward: dK[%lld] = %g, reference %g", (long long)k,
                     (double)l->grads[k], rdk[k]);
    free(dz);
    free(dx);
    free(rdx);
    free(rdk);
    free(x);
    free(y);
    free(want);
    gc_free_layer(&l);
}

static void test_conv_forward_reference(void **state) {
    (void)state;
    conv_case(2, 7, 6, 3, 4, 3, 3, 1, 1, false);
    conv_case(2, 7, 6, 3, 4, 3, 3, 1, 1, true);
    conv_case(2, 7, 6, 3, 4, 3, 2, 2, 3, true); /* odd padding: the extra row goes after */
    conv_case(2, 8, 8, 2, 3, 4, 4, 2, 2, true);
    conv_case(3, 9, 5, 2, 2, 5, 1, 3, 1, false);
    conv_case(2, 5, 5, 4, 3, 1, 1, 1, 1, false); /* direct (x is its own patch matrix) */
    conv_case(2, 5, 5, 4, 3, 1, 1, 2, 2, true);
    /* several im2col chunks of 469 output rows (62 * 144 floats each), ending inside samples */
    conv_case(9, 64, 64, 16, 2, 3, 3, 1, 1, false);
}

static void conv_gc(const char *cfg, dpt_shape in, const char *what) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Conv2D", cfg, in, &l));
    gc_bind_params(l, 11);
    gc_assert_ok(gc_check_layer(l, &train_pass, 3, 5), what);
    gc_assert_ok(gc_check_layer(l, &infer_pass, 2, 6), what);
    gc_free_layer(&l);
}

static void test_conv_gradients(void **state) {
    (void)state;
    conv_gc("{\"filters\": 3, \"kernel_size\": 3}", shp(3, 5, 6, 2), "conv valid");
    conv_gc("{\"filters\": 3, \"kernel_size\": [3, 2], \"padding\": \"same\", \"strides\": [2, 1]}",
            shp(3, 5, 6, 2), "conv same strided");
    conv_gc("{\"filters\": 2, \"kernel_size\": 2, \"strides\": 2, \"activation\": \"tanh\"}",
            shp(3, 5, 5, 3), "conv tanh, strides skip input");
    conv_gc("{\"filters\": 2, \"kernel_size\": 1, \"use_bias\": false, \"activation\": "
            "\"sigmoid\"}",
            shp(3, 3, 4, 3), "conv 1x1 direct");
    conv_gc("{\"filters\": 4, \"kernel_size\": 3, \"padding\": \"same\", \"activation\": "
            "\"softmax\"}",
            shp(3, 4, 4, 2), "conv softmax over channels");
}

static void test_conv_config(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Conv2D", "{\"filters\": 2, \"kernel_size\": 3}",
                                    (dpt_shape){.rank = 2, .dim = {28, 28}}, &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config: Conv2D needs an input of shape "
                      "(None, height, width, channels), got (None, 28, 28); add Reshape");
    assert_status_msg(gc_make_layer("Conv2D",
                                    "{\"filters\": 2, \"kernel_size\": 3, \"dilation_rate\": 2, "
                                    "\"strides\": 2}",
                                    shp(3, 8, 8, 1), &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.dilation_rate: strides > 1 are "
                      "incompatible with dilation_rate > 1");
    assert_status_msg(gc_make_layer("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"groups\": 2}",
                                    shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.groups: only 1 is supported, got 2");
    assert_status_msg(gc_make_layer("Conv2D",
                                    "{\"filters\": 2, \"kernel_size\": 3, \"data_format\": "
                                    "\"channels_first\"}",
                                    shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\" is supported");
    assert_status_msg(
        gc_make_layer("Conv2D", "{\"filters\": 2, \"kernel_size\": 9}", shp(3, 8, 8, 2), &l),
        DPT_ERR_CONFIG,
        "config: a kernel height of 9 does not fit an input of 8 with padding "
        "\"valid\"");
    assert_status_msg(gc_make_layer("Conv2D", "{\"kernel_size\": 3}", shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.filters: missing");
    assert_status_msg(gc_make_layer("Conv2D", "{\"filters\": 3}", shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.kernel_size: missing");
    assert_status_msg(gc_make_layer("Conv2D", "{\"filters\": 2, \"kernel_size\": [3, 3, 3]}",
                                    shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.kernel_size: must be an integer or a list of 2");
    assert_status_msg(gc_make_layer("Conv2D",
                                    "{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"causal\"}",
                                    shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.padding: must be \"valid\" or \"same\"");
    assert_status_msg(gc_make_layer("Conv2D",
                                    "{\"filters\": 2, \"kernel_size\": 3, "
                                    "\"activity_regularizer\": \"l3\"}",
                                    shp(3, 8, 8, 2), &l),
                      DPT_ERR_CONFIG, "config.activity_regularizer: unknown regularizer \"l3\"");
    assert_null(l);
    /* Keras's "SAME" is accepted in any case; weights are (KH, KW, C, F) then (F) */
    assert_ok(gc_make_layer("Conv2D",
                            "{\"filters\": 5, \"kernel_size\": [3, 2], \"padding\": "
                            "\"SAME\", \"strides\": 2}",
                            shp(3, 7, 8, 3), &l));
    const char *names[4];
    dpt_shape ws[4];
    assert_int_equal(dpt_layer_weights(l, names, ws, 4), 2);
    assert_string_equal(names[0], "kernel");
    assert_true(ws[0].rank == 4 && ws[0].dim[0] == 3 && ws[0].dim[1] == 2 && ws[0].dim[2] == 3 &&
                ws[0].dim[3] == 5);
    assert_true(l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 4);
    assert_int_equal(dpt_layer_n_params(l), 3 * 2 * 3 * 5 + 5);
    gc_free_layer(&l);
}

/* ---- pooling, reshape ------------------------------------------------------------------------ */

static void test_pooling_values(void **state) {
    (void)state;
    /* one channel 3x3: 1..9; pool 2, stride 2, same: windows {1,2,4,5} {3,6} {7,8} {9} */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[4], dy[4] = {1, 1, 1, 1}, dx[9];
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("AveragePooling2D", "{\"padding\": \"same\"}", shp(3, 3, 3, 1), &l));
    l->ops->forward(l, &train_pass, x, y, 1);
    assert_float_equal(y[0], 3.0f, 1e-6f); /* (1+2+4+5)/4 */
    assert_float_equal(y[1], 4.5f, 1e-6f); /* (3+6)/2: the padding is not counted */
    assert_float_equal(y[2], 7.5f, 1e-6f);
    assert_float_equal(y[3], 9.0f, 1e-6f);
    l->ops->backward(l, &train_pass, x, y, dy, dx, 1);
    assert_float_equal(dx[0], 0.25f, 1e-6f);
    assert_float_equal(dx[2], 0.5f, 1e-6f);
    assert_float_equal(dx[8], 1.0f, 1e-6f);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("MaxPooling2D", "{\"padding\": \"same\"}", shp(3, 3, 3, 1), &l));
    float xn[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    l->ops->forward(l, &train_pass, xn, y, 1);
    assert_float_equal(y[0], -1.0f, 0); /* the padding never wins, even over negatives */
    assert_float_equal(y[1], -3.0f, 0);
    assert_float_equal(y[3], -9.0f, 0);
    l->ops->backward(l, &train_pass, xn, y, dy, dx, 1);
    assert_float_equal(dx[0], 1.0f, 0);
    assert_float_equal(dx[1], 0.0f, 0);
    assert_float_equal(dx[8], 1.0f, 0);
    gc_free_layer(&l);
    /* valid drops the last row/column; strides default to pool_size */
    assert_ok(gc_make_layer("MaxPooling2D", "{\"pool_size\": [2, 2]}", shp(3, 5, 5, 3), &l));
    assert_true(l->out_shape.dim[0] == 2 && l->out_shape.dim[1] == 2 && l->out_shape.dim[2] == 3);
    json_t *j = l->ops->to_json(l);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "strides"), 0)), 2);
    json_decref(j);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("MaxPooling2D", "{}", (dpt_shape){.rank = 1, .dim = {8}}, &l),
                      DPT_ERR_CONFIG,
                      "MaxPooling2D needs an input of shape (None, height, width, "
                      "channels), got (None, 8)");
    assert_status_msg(gc_make_layer("AveragePooling2D", "{\"pool_size\": 0}", shp(3, 4, 4, 1), &l),
                      DPT_ERR_CONFIG, "config.pool_size: must be integers in [1,");
}

static void test_pooling_gradients(void **state) {
    (void)state;
    static const struct {
        const char *cls, *cfg;
    } cases[] = {
        {"MaxPooling2D", "{}"},
        {"MaxPooling2D", "{\"pool_size\": 3, \"strides\": 2, \"padding\": \"same\"}"},
        {"MaxPooling2D", "{\"pool_size\": [2, 3], \"strides\": 1}"},
        {"AveragePooling2D", "{}"},
        {"AveragePooling2D", "{\"pool_size\": 3, \"strides\": 2, \"padding\": \"same\"}"},
        {"GlobalAveragePooling2D", "{}"},
        {"GlobalAveragePooling2D", "{\"keepdims\": true}"},
        {"Reshape", "{\"target_shape\": [-1, 2]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(cases[i].cls, cases[i].cfg, shp(3, 5, 6, 2), &l));
        gc_assert_ok(gc_check_layer(l, &train_pass, 2, 3 + i), cases[i].cls);
        gc_assert_ok(gc_check_layer(l, &infer_pass, 2, 4 + i), cases[i].cls);
        gc_free_layer(&l);
    }
}

static void test_reshape(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Reshape", "{\"target_shape\": [28, 28, 1]}",
                            (dpt_shape){.rank = 2, .dim = {28, 28}}, &l));
    assert_true(l->out_shape.rank == 3 && l->out_shape.dim[2] == 1 && l->out_size == 784);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("Reshape", "{\"target_shape\": [-1, 4]}", shp(3, 2, 3, 4), &l));
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 6);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("Reshape", "{\"target_shape\": [5, 5]}",
                                    (dpt_shape){.rank = 1, .dim = {24}}, &l),
                      DPT_ERR_CONFIG,
                      "config.target_shape: cannot reshape (None, 24) (24 values per sample) to "
                      "(None, 5, 5) (25)");
    assert_status_msg(gc_make_layer("Reshape", "{\"target_shape\": [-1, -1]}",
                                    (dpt_shape){.rank = 1, .dim = {24}}, &l),
                      DPT_ERR_CONFIG, "config.target_shape[1]: only one dimension may be -1");
    assert_status_msg(gc_make_layer("Reshape", "{\"target_shape\": [-1, 5]}",
                                    (dpt_shape){.rank = 1, .dim = {24}}, &l),
                      DPT_ERR_CONFIG, "cannot infer the -1 dimension");
    assert_status_msg(gc_make_layer("Reshape", "{}", (dpt_shape){.rank = 1, .dim = {24}}, &l),
                      DPT_ERR_CONFIG, "config.target_shape: must be a list of 1 to 4 integers");
}

/* ---- BatchNormalization ---------------------------------------------------------------------- */

static void test_bn_training_and_moving(void **state) {
    (void)state;
    enum { B = 6, S = 4, C = 3 };
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("BatchNormalization", "{\"momentum\": 0.9, \"epsilon\": 0.001}",
                            shp(3, 2, 2, C), &l));
    gc_bind_params(l, 1);
    assert_int_equal(dpt_layer_n_params(l), 4 * C);
    assert_int_equal(l->ops->n_trainable(l), 2 * C);
    float *P = l->params; /* gamma, beta, moving_mean, moving_variance */
    for (int c = 0; c < C; c++) {
        assert_float_equal(P[c], 1.0f, 0);
        assert_float_equal(P[C + c], 0.0f, 0);
        assert_float_equal(P[2 * C + c], 0.0f, 0);
        assert_float_equal(P[3 * C + c], 1.0f, 0);
        P[c] = 1.5f + (float)c; /* gamma */
        P[C + c] = -0.5f;       /* beta */
    }
    float x[B * S * C], y[B * S * C];
    dpt_rng r;
    dpt_rng_init(&r, 3, 0);
    for (int k = 0; k < B * S * C; k++)
        x[k] = 2.0f * (float)(k % C) + 3.0f * dpt_rng_uniform(&r);
    l->ops->forward(l, &train_pass, x, y, B);
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0, ym = 0, yv = 0;
        for (int k = c; k < B * S * C; k += C)
            m += x[k], ym += y[k];
        m /= B * S, ym /= B * S;
        for (int k = c; k < B * S * C; k += C)
            v += (x[k] - m) * (x[k] - m), yv += (y[k] - ym) * (y[k] - ym);
        v /= B * S, yv /= B * S;
        /* y has mean beta and variance gamma^2 * v / (v + eps) */
        assert_float_equal(ym, -0.5, 1e-5);
        assert_float_equal(yv, (1.5 + c) * (1.5 + c) * v / (v + 1e-3), 1e-4);
        /* Keras: moving = moving * momentum + batch * (1 - momentum), biased batch variance */
        assert_float_equal(P[2 * C + c], 0.0 * 0.9 + m * 0.1, 1e-5);
        assert_float_equal(P[3 * C + c], 1.0 * 0.9 + v * 0.1, 1e-5);
    }
    /* inference uses the moving statistics */
    float yi[B * S * C];
    l->ops->forward(l, &infer_pass, x, yi, B);
    for (int k = 0; k < B * S * C; k++) {
        int c = k % C;
        double want = (1.5 + c) * (x[k] - P[2 * C + c]) / sqrt(P[3 * C + c] + 1e-3) - 0.5;
        assert_float_equal(yi[k], want, 1e-4);
    }
    float m0 = P[2 * C];
    l->ops->forward(l, &infer_pass, x, yi, B);
    assert_float_equal(P[2 * C], m0, 0); /* inference leaves the moving statistics */
    /* a frozen layer runs in inference mode even in training, and updates nothing */
    l->trainable = false;
    l->ops->forward(l, &train_pass, x, y, B);
    assert_memory_equal(y, yi, sizeof y);
    assert_float_equal(P[2 * C], m0, 0);
    gc_free_layer(&l);
}

static void test_bn_gradients(void **state) {
    (void)state;
    static const char *cfgs[] = {
        "{}", "{\"center\": false}", "{\"scale\": false, \"epsilon\": 0.01}",
        "{\"axis\": [3], \"synchronized\": true}", /* no reducer: one process */
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer("BatchNormalization", cfgs[i], shp(3, 2, 3, 2), &l));
        gc_bind_params(l, 2);
        for (int64_t k = 0; k < dpt_layer_n_params(l); k++) /* away from the defaults */
            l->params[k] += 0.25f * (float)(k % 3);
        gc_assert_ok(gc_check_layer(l, &train_pass, 3, 10 + i), cfgs[i]);
        gc_assert_ok(gc_check_layer(l, &infer_pass, 3, 20 + i), cfgs[i]);
        gc_free_layer(&l);
    }
    /* a dense input (B, F) */
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("BatchNormalization", "{\"axis\": -1}",
                            (dpt_shape){.rank = 1, .dim = {5}}, &l));
    gc_bind_params(l, 2);
    gc_assert_ok(gc_check_layer(l, &train_pass, 7, 31), "bn dense");
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("BatchNormalization", "{\"axis\": 1}", shp(3, 2, 3, 2), &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.axis: only the last axis (-1 or 3, "
                      "channels_last) is supported, got 1");
    assert_status_msg(
        gc_make_layer("BatchNormalization", "{\"renorm\": true}", shp(3, 2, 3, 2), &l),
        DPT_ERR_CONFIG, "config.renorm: not supported");
    assert_status_msg(
        gc_make_layer("BatchNormalization", "{\"virtual_batch_size\": 8}", shp(3, 2, 3, 2), &l),
        DPT_ERR_CONFIG, "config.virtual_batch_size: not supported yet");
}

/* Two simulated ranks: two threads, each with its own copy of the layer, summing through a
 * barrier-based reducer. */
typedef struct {
    pthread_barrier_t bar;
    double *slot[2];
    int n;
    int calls;
} fake_world;

typedef struct {
    fake_world *w;
    int rank;
} fake_rank;

static void fake_sum(void *ctx, double *buf, int n) {
    fake_rank *fr = ctx;
    fake_world *w = fr->w;
    w->slot[fr->rank] = buf;
    w->n = n;
    pthread_barrier_wait(&w->bar);
    double tmp[256];
    assert_true(n <= 256);
    for (int i = 0; i < n; i++)
        tmp[i] = w->slot[0][i] + w->slot[1][i];
    pthread_barrier_wait(&w->bar);
    memcpy(buf, tmp, sizeof(double) * (size_t)n);
    if (fr->rank == 0)
        w->calls++;
    pthread_barrier_wait(&w->bar);
}

typedef struct {
    dpt_layer *l;
    const float *x, *dy0;
    float *y, *dx;
    int64_t B;
} rank_job;

static void *run_rank(void *arg) {
    rank_job *j = arg;
    j->l->ops->forward(j->l, &train_pass, j->x, j->y, j->B);
    float dy[64];
    memcpy(dy, j->dy0, sizeof(float) * (size_t)(j->B * j->l->out_size));
    j->l->ops->backward(j->l, &train_pass, j->x, j->y, dy, j->dx, j->B);
    return NULL;
}

static void sync_case(bool synchronized) {
    enum { B = 5, S = 2, C = 3, N = B * S * C };
    const char *cfg =
        synchronized ? "{\"synchronized\": true, \"momentum\": 0.5}" : "{\"momentum\": 0.5}";
    dpt_layer *one = NULL, *r0 = NULL, *r1 = NULL;
    dpt_shape in = {.rank = 2, .dim = {S, C}};
    assert_ok(gc_make_layer("BatchNormalization", cfg, in, &one));
    assert_ok(gc_make_layer("BatchNormalization", cfg, in, &r0));
    assert_ok(gc_make_layer("BatchNormalization", cfg, in, &r1));
    gc_bind_params(one, 1);
    gc_bind_params(r0, 1);
    gc_bind_params(r1, 1);
    for (int c = 0; c < C; c++)
        one->params[c] = r0->params[c] = r1->params[c] = 0.5f + (float)c; /* gamma */
    float x[N], dy[N], y[N], dx[N], y2[N], dx2[N];
    dpt_rng r;
    dpt_rng_init(&r, 8, 1);
    for (int k = 0; k < N; k++) {
        x[k] = (float)(k % C) + 2.0f * dpt_rng_uniform(&r) + (k < 2 * S * C ? 1.0f : 0.0f);
        dy[k] = dpt_rng_uniform(&r) - 0.5f;
    }
    /* one rank, whole batch */
    float dyc[N];
    memcpy(dyc, dy, sizeof dy);
    one->ops->forward(one, &train_pass, x, y, B);
    one->ops->backward(one, &train_pass, x, y, dyc, dx, B);
    /* two ranks: samples 0-1 and 2-4 (uneven) */
    fake_world w = {.calls = 0};
    pthread_barrier_init(&w.bar, NULL, 2);
    fake_rank f0 = {&w, 0}, f1 = {&w, 1};
    r0->reduce = fake_sum;
    r0->reduce_ctx = &f0;
    r1->reduce = fake_sum;
    r1->reduce_ctx = &f1;
    rank_job j0 = {r0, x, dy, y2, dx2, 2},
             j1 = {r1, x + 2 * S * C, dy + 2 * S * C, y2 + 2 * S * C, dx2 + 2 * S * C, 3};
    pthread_t t0, t1;
    pthread_create(&t0, NULL, run_rank, &j0);
    pthread_create(&t1, NULL, run_rank, &j1);
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    pthread_barrier_destroy(&w.bar);
    /* forward reduces once; synchronized backward once more */
    assert_int_equal(w.calls, synchronized ? 2 : 1);
    /* moving statistics: from the global batch on both ranks, equal to one rank's */
    for (int k = 2 * C; k < 4 * C; k++) {
        assert_float_equal(r0->params[k], one->params[k], 1e-6f);
        assert_memory_equal(&r0->params[k], &r1->params[k], sizeof(float));
    }
    /* parameter gradients summed over the ranks = one rank's */
    for (int k = 0; k < 2 * C; k++) {
        float g = r0->grads[k] + r1->grads[k];
        if (synchronized)
            assert_float_equal(g, one->grads[k], 1e-5f);
    }
    bool same_y = true;
    for (int k = 0; k < N; k++) {
        if (synchronized) {
            assert_float_equal(y2[k], y[k], 1e-5f);
            assert_float_equal(dx2[k], dx[k], 1e-5f);
        } else if (fabsf(y2[k] - y[k]) > 1e-3f) {
            same_y = false;
        }
    }
    if (!synchronized)
        assert_false(same_y); /* local statistics differ (the ranks' data differ) */
    gc_free_layer(&one);
    gc_free_layer(&r0);
    gc_free_layer(&r1);
}

static void test_bn_synchronized_two_ranks(void **state) {
    (void)state;
    sync_case(true);
    sync_case(false);
}

/* ---- the dropout family ---------------------------------------------------------------------- */

static void test_spatial_dropout(void **state) {
    (void)state;
    enum { B = 64, H = 5, W = 4, C = 32 };
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("SpatialDropout2D", "{\"rate\": 0.25}", shp(3, H, W, C), &l));
    l->index = 3;
    int64_t n = (int64_t)B * H * W * C;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++)
        x[k] = 1.0f;
    l->ops->forward(l, &train_pass, x, y, B);
    int dropped = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float v0 = y[(int64_t)b * H * W * C + c];
            assert_true(v0 == 0.0f || fabsf(v0 - 1.0f / 0.75f) < 1e-6f);
            for (int s = 1; s < H * W; s++) /* the whole feature map shares it */
                assert_true(y[((int64_t)b * H * W + s) * C + c] == v0);
            dropped += v0 == 0.0f;
            /* the mask is dpt_dropout_keep of (sample * C + channel) */
            assert_true((v0 != 0.0f) ==
                        dpt_dropout_keep(&train_pass, 3, (uint64_t)(b * C + c), 0.25f));
        }
    double frac = (double)dropped / (B * C); /* 2048 draws: 4 sigma = 0.038 */
    assert_true(fabs(frac - 0.25) < 0.04);
    l->ops->forward(l, &infer_pass, x, y, B);
    assert_memory_equal(x, y, sizeof(float) * (size_t)n);
    free(x);
    free(y);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("SpatialDropout1D", "{\"rate\": 0.2}", shp(3, 2, 2, 2), &l),
                      DPT_ERR_CONFIG,
                      "SpatialDropout1D needs an input of rank 3 (batch, steps, channels)");
    assert_ok(gc_make_layer("SpatialDropout1D", "{\"rate\": 0.5}", shp(2, 7, 16, 0), &l));
    float xs[2 * 7 * 16], ys[2 * 7 * 16];
    for (int k = 0; k < 2 * 7 * 16; k++)
        xs[k] = (float)k;
    l->ops->forward(l, &train_pass, xs, ys, 2);
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 16; c++)
            for (int t = 1; t < 7; t++)
                assert_true((ys[(b * 7 + t) * 16 + c] == 0.0f) ==
                            (ys[(b * 7) * 16 + c] == 0.0f || xs[(b * 7) * 16 + c] == 0.0f));
    gc_free_layer(&l);
}

static void moments(const float *v, int64_t n, double *mean, double *var) {
    double m = 0, s = 0;
    for (int64_t k = 0; k < n; k++)
        m += v[k];
    m /= (double)n;
    for (int64_t k = 0; k < n; k++)
        s += (v[k] - m) * (v[k] - m);
    *mean = m;
    *var = s / (double)n;
}

static void test_gaussian_layers(void **state) {
    (void)state;
    enum { N = 200000 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    dpt_layer *l = NULL;
    /* the normals: mean 0, variance 1, and dpt_noise_normal agrees with the block fill */
    dpt_noise_fill_normal(&train_pass, 2, 3, y, N);
    double m, v;
    moments(y, N, &m, &v);
    assert_true(fabs(m) < 0.01 && fabs(v - 1) < 0.02);
    for (int k = 0; k < 50; k++)
        assert_float_equal(dpt_noise_normal(&train_pass, 2, (uint64_t)(3 + k)), y[k], 0);
    double fourth = 0;
    for (int k = 0; k < N; k++)
        fourth += (double)y[k] * y[k] * y[k] * y[k];
    assert_true(fabs(fourth / N - 3.0) < 0.1); /* kurtosis of a normal */
    for (int k = 0; k < N; k++)
        x[k] = 2.0f;
    assert_ok(gc_make_layer("GaussianDropout", "{\"rate\": 0.2}", shp(1, N, 0, 0), &l));
    l->ops->forward(l, &train_pass, x, y, 1);
    moments(y, N, &m, &v); /* 2 * N(1, 0.25) */
    assert_true(fabs(m - 2.0) < 0.01 && fabs(v - 4 * 0.25) < 0.02);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_memory_equal(x, y, sizeof(float) * N);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("GaussianNoise", "{\"stddev\": 0.3}", shp(1, N, 0, 0), &l));
    l->ops->forward(l, &train_pass, x, y, 1);
    moments(y, N, &m, &v);
    assert_true(fabs(m - 2.0) < 0.01 && fabs(v - 0.09) < 0.003);
    dpt_pass other = train_pass;
    other.step++;
    float *y2 = malloc(sizeof(float) * N);
    l->ops->forward(l, &other, x, y2, 1); /* another step, other noise */
    assert_true(memcmp(y, y2, sizeof(float) * 8) != 0);
    free(y2);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_memory_equal(x, y, sizeof(float) * N);
    gc_free_layer(&l);
    /* AlphaDropout keeps a standard normal input's mean 0 and variance 1 */
    assert_ok(gc_make_layer("AlphaDropout", "{\"rate\": 0.3}", shp(1, N, 0, 0), &l));
    dpt_noise_fill_normal(&other, 7, 0, x, N);
    l->ops->forward(l, &train_pass, x, y, 1);
    moments(y, N, &m, &v);
    assert_true(fabs(m) < 0.015 && fabs(v - 1) < 0.03);
    /* dropped units all take the value a * alpha' + b */
    const double alpha_p = -1.6732632423543772 * 1.0507009873554805;
    const double a = pow(0.7 * (1 + 0.3 * alpha_p * alpha_p), -0.5), b = -a * alpha_p * 0.3;
    int dropped = 0;
    for (int k = 0; k < 1000; k++) {
        bool keep = dpt_dropout_keep(&train_pass, 0, (uint64_t)k, 0.3f);
        if (!keep) {
            dropped++;
            assert_float_equal(y[k], a * alpha_p + b, 1e-5);
        } else {
            assert_float_equal(y[k], a * x[k] + b, 1e-5);
        }
    }
    assert_true(dropped > 200 && dropped < 400);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("GaussianDropout", "{\"rate\": 1.0}", shp(1, 4, 0, 0), &l),
                      DPT_ERR_CONFIG, "config.rate: must be in [0, 1)");
    assert_status_msg(gc_make_layer("GaussianNoise", "{}", shp(1, 4, 0, 0), &l), DPT_ERR_CONFIG,
                      "config.stddev: missing");
    free(x);
    free(y);
}

static void test_dropout_noise_shape(void **state) {
    (void)state;
    enum { B = 8, T = 6, C = 40 };
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": [null, 1, null]}",
                            shp(2, T, C, 0), &l));
    l->index = 4;
    float x[B * T * C], y[B * T * C];
    for (int k = 0; k < B * T * C; k++)
        x[k] = 1.0f;
    l->ops->forward(l, &train_pass, x, y, B);
    int dropped = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float v0 = y[b * T * C + c];
            for (int t = 1; t < T; t++)
                assert_true(y[(b * T + t) * C + c] == v0);
            dropped += v0 == 0.0f;
        }
    assert_true(dropped > 100 && dropped < 220); /* 320 draws at 0.5 */
    json_t *j = l->ops->to_json(l);
    assert_true(json_is_null(json_array_get(json_object_get(j, "noise_shape"), 0)));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "noise_shape"), 1)), 1);
    json_decref(j);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 4), "dropout noise_shape");
    gc_free_layer(&l);
    /* one mask for the whole batch, per step (the channels broadcast): the generic path */
    assert_ok(gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": [1, 6, 1]}",
                            shp(2, T, C, 0), &l));
    l->ops->forward(l, &train_pass, x, y, B);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                assert_true(y[(b * T + t) * C + c] == y[t * C]);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": [null, 1]}",
                                    shp(2, T, C, 0), &l),
                      DPT_ERR_CONFIG, "config.noise_shape: must be null or a list of 3 entries");
    assert_status_msg(gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": [4, 1, 1]}",
                                    shp(2, T, C, 0), &l),
                      DPT_ERR_CONFIG, "config.noise_shape[0]: must be null, 1, got");
}

static void test_noise_gradients(void **state) {
    (void)state;
    static const struct {
        const char *cls, *cfg;
        dpt_shape in;
    } cases[] = {
        {"SpatialDropout1D", "{\"rate\": 0.4}", {2, {3, 5}}},
        {"SpatialDropout2D", "{\"rate\": 0.4}", {3, {2, 3, 5}}},
        {"GaussianDropout", "{\"rate\": 0.4}", {2, {3, 5}}},
        {"AlphaDropout", "{\"rate\": 0.4}", {2, {3, 5}}},
        {"AlphaDropout", "{\"rate\": 0.4, \"noise_shape\": [null, 1, null]}", {2, {3, 5}}},
        {"GaussianNoise", "{\"stddev\": 0.4}", {2, {3, 5}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(cases[i].cls, cases[i].cfg, cases[i].in, &l));
        l->index = 5;
        gc_assert_ok(gc_check_layer(l, &train_pass, 3, i), cases[i].cls);
        gc_assert_ok(gc_check_layer(l, &infer_pass, 3, i), cases[i].cls);
        gc_free_layer(&l);
    }
}

/* Monte Carlo dropout passes: the dropout family is on, GaussianNoise and batch norm are not */
static void test_mc_dropout_pass(void **state) {
    (void)state;
    dpt_pass mc = infer_pass;
    mc.mc_dropout = true;
    float x[64], y[64];
    for (int k = 0; k < 64; k++)
        x[k] = 1.0f + (float)k;
    static const struct {
        const char *cls, *cfg;
        bool on;
    } cases[] = {
        {"SpatialDropout1D", "{\"rate\": 0.5}", true},
        {"GaussianDropout", "{\"rate\": 0.5}", true},
        {"AlphaDropout", "{\"rate\": 0.5}", true},
        {"GaussianNoise", "{\"stddev\": 0.5}", false},
        {"BatchNormalization", "{}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(cases[i].cls, cases[i].cfg, shp(2, 4, 8, 0), &l));
        gc_bind_params(l, 1);
        float *p0 = l->params ? malloc(sizeof(float) * (size_t)dpt_layer_n_params(l)) : NULL;
        if (p0)
            memcpy(p0, l->params, sizeof(float) * (size_t)dpt_layer_n_params(l));
        l->ops->forward(l, &mc, x, y, 2);
        bool changed = false;
        for (int k = 0; k < 64; k++)
            changed = changed || fabsf(y[k] - x[k]) > 1e-3f * fabsf(x[k]);
        if (!strcmp(cases[i].cls, "BatchNormalization")) { /* inference: moving stats 0/1 */
            changed = false;
            for (int k = 0; k < 64; k++)
                changed = changed || fabsf(y[k] - x[k] / sqrtf(1.001f)) > 1e-4f * fabsf(x[k]);
            assert_memory_equal(p0, l->params, sizeof(float) * (size_t)dpt_layer_n_params(l));
        }
        if (changed != cases[i].on)
            fail_msg("%s: MC dropout pass %s the input", cases[i].cls,
                     changed ? "changed" : "did not change");
        free(p0);
        gc_free_layer(&l);
    }
}

/* ---- the model ------------------------------------------------------------------------------- */

static dpt_model *make_model(const char *layers_json, dpt_shape in, int64_t max_batch) {
    json_t *layers = gc_parse(layers_json);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(layers, &in, max_batch, 7, &ctx, &m));
    json_decref(layers);
    return m;
}

static const char *CNN =
    "[{\"class_name\": \"Reshape\", \"config\": {\"target_shape\": [8, 8, 1]}},"
    " {\"class_name\": \"Conv2D\", \"config\": {\"filters\": 4, \"kernel_size\": 3}},"
    " {\"class_name\": \"BatchNormalization\", \"config\": {}},"
    " {\"class_name\": \"Activation\", \"config\": {\"activation\": \"relu\"}},"
    " {\"class_name\": \"MaxPooling2D\", \"config\": {}},"
    " {\"class_name\": \"SpatialDropout2D\", \"config\": {\"rate\": 0.25}},"
    " {\"class_name\": \"Conv2D\", \"config\": {\"filters\": 3, \"kernel_size\": 2, "
    "\"padding\": \"same\", \"activation\": \"tanh\"}},"
    " {\"class_name\": \"GlobalAveragePooling2D\", \"config\": {}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": \"softmax\"}}]";

static void count_reduce(void *ctx, double *buf, int n) {
    (void)buf;
    (void)n;
    (*(int *)ctx)++;
}

static void test_model_cnn(void **state) {
    (void)state;
    dpt_model *m = make_model(CNN, (dpt_shape){.rank = 2, .dim = {8, 8}}, 4);
    /* Keras default names */
    assert_string_equal(dpt_model_layer(m, 1)->name, "conv2d");
    assert_string_equal(dpt_model_layer(m, 2)->name, "batch_normalization");
    assert_string_equal(dpt_model_layer(m, 4)->name, "max_pooling2d");
    assert_string_equal(dpt_model_layer(m, 5)->name, "spatial_dropout2d");
    assert_string_equal(dpt_model_layer(m, 6)->name, "conv2d_1");
    assert_string_equal(dpt_model_layer(m, 7)->name, "global_average_pooling2d");
    /* params: conv 3*3*1*4+4 = 40, bn 16 (8 trainable), conv 2*2*4*3+3 = 51, dense 3*3+3 = 12 */
    assert_int_equal(dpt_model_n_params(m), 40 + 16 + 51 + 12);
    assert_int_equal(dpt_model_n_trainable(m), 40 + 8 + 51 + 12);
    const int64_t *seg;
    int ns = dpt_model_trainable_segments(m, &seg);
    assert_int_equal(ns, 2);
    assert_true(seg[0] == 0 && seg[1] == 48 && seg[2] == 56 && seg[3] == 63);
    char buf[4096];
    dpt_model_summary(m, buf, sizeof buf);
    assert_non_null(strstr(buf, "Total params: 119"));
    assert_non_null(strstr(buf, "Trainable params: 111"));
    assert_non_null(strstr(buf, "Non-trainable params: 8"));
    assert_non_null(strstr(buf, "(None, 6, 6, 4)"));
    assert_true(dpt_model_is_collective(m));
    /* B = 0 still reduces (every rank must take part in the step) */
    int calls = 0;
    dpt_model_set_reducer(m, count_reduce, &calls);
    float x[4 * 64], dout[4 * 3];
    dpt_model_forward(m, &train_pass, x, 0);
    dpt_model_zero_grads(m);
    dpt_model_backward(m, &train_pass, dout, 0);
    assert_int_equal(calls, 1);
    dpt_model_forward(m, &infer_pass, x, 0);
    assert_int_equal(calls, 1); /* inference never reduces */
    dpt_model_set_reducer(m, NULL, NULL);

    /* whole-model gradient: f = sum(out * w) over the parameters, training mode (dropout on,
     * batch statistics), at a few coordinates of every layer */
    dpt_rng r;
    dpt_rng_init(&r, 5, 5);
    gc_fill_uniform(x, 4 * 64, 0, 1, &r);
    float w[4 * 3];
    gc_fill_uniform(w, 12, -1, 1, &r);
    float *P = dpt_model_params(m), *G = dpt_model_grads(m);
    int64_t np = dpt_model_n_params(m);
    float *saved = malloc(sizeof(float) * (size_t)np);
    memcpy(saved, P, sizeof(float) * (size_t)np);
    const float *out = dpt_model_forward(m, &train_pass, x, 4);
    memcpy(dout, w, sizeof w);
    (void)out;
    dpt_model_zero_grads(m);
    dpt_model_backward(m, &train_pass, dout, 4);
    gc_result res = {0};
    for (int s = 0; s < ns; s++)
        for (int64_t k = seg[2 * s]; k < seg[2 * s] + seg[2 * s + 1]; k++) {
            double f[3];
            for (int d = -1; d <= 1; d++) {
                memcpy(P, saved, sizeof(float) * (size_t)np);
                P[k] += (float)d * 1e-3f;
                const float *o = dpt_model_forward(m, &train_pass, x, 4);
                double acc = 0;
                for (int i = 0; i < 12; i++)
                    acc += (double)o[i] * w[i];
                f[d + 1] = acc;
            }
            gc_compare(&res, G[k], f[0], f[1], f[2], 1e-3);
        }
    memcpy(P, saved, sizeof(float) * (size_t)np);
    gc_assert_ok(res, "whole CNN");
    for (int64_t k = 48; k < 56; k++) /* moving statistics: no gradient */
        assert_float_equal(G[k], 0.0f, 0);
    free(saved);
    dpt_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_forward_reference),
        cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_conv_config),
        cmocka_unit_test(test_pooling_values),
        cmocka_unit_test(test_pooling_gradients),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_bn_training_and_moving),
        cmocka_unit_test(test_bn_gradients),
        cmocka_unit_test(test_bn_synchronized_two_ranks),
        cmocka_unit_test(test_spatial_dropout),
        cmocka_unit_test(test_gaussian_layers),
        cmocka_unit_test(test_dropout_noise_shape),
        cmocka_unit_test(test_noise_gradients),
        cmocka_unit_test(test_mc_dropout_pass),
        cmocka_unit_test(test_model_cnn),
    };
    return cmocka_run_group_tests_name("layers2", tests, NULL, NULL);
}
