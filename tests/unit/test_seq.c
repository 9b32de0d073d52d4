/* Unit tests of the sequence layers and what they need around them: Conv1D against a direct
 * convolution (valid / same / causal padding, strides, dilation, a 1-wide kernel, no bias) and its
 * finite-difference gradients; MaxPooling1D / AveragePooling1D (hand-computed windows, "same"
 * average over the real elements only); GlobalAverage/MaxPooling1D and GlobalMaxPooling2D
 * (keepdims shapes); ZeroPadding1D, Cropping1D, UpSampling1D, RepeatVector; Embedding (lookup, the
 * gradient w.r.t. its weights with integer ids, config refusals); Dense on the last axis of (B, T,
 * F); a Conv1D -> SpatialDropout1D -> pooling -> Dense model's gradient; the data reader's token-id
 * check (negative, non-integer, >= input_dim, NaN) and the adding-problem writer. No MPI.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "gradcheck.h"

static const dpt_pass train_pass = {.training = true, .seed = 99, .rank = 0, .step = 3};
static const dpt_pass infer_pass = {.training = false, .seed = 99, .rank = 0, .step = 3};

static dpt_shape shp(int r, int64_t a, int64_t b, int64_t c) {
    return (dpt_shape){.rank = r, .dim = {a, b, c}};
}

static float *randv(int64_t n, float lo, float hi, uint64_t seed) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    dpt_rng r;
    dpt_rng_init(&r, seed, 5);
    gc_fill_uniform(v, n, lo, hi, &r);
    return v;
}

/* ---- Conv1D --------------------------------------------------------------------------------- */

/* direct convolution: x (B, T, C), K (KS, C, F), b (F) or NULL -> y (B, OT, F); pad 0 valid,
 * 1 same, 2 causal (TensorFlow's rules, dilation D) */
static int conv1d_ref(const float *x, const float *K, const float *bias, float *y, int B, int T,
                      int C, int F, int KS, int S, int D, int pad) {
    int keff = (KS - 1) * D + 1, OT, PL;
    if (pad == 0) {
        OT = (T - keff) / S + 1;
        PL = 0;
    } else if (pad == 1) {
        OT = (T + S - 1) / S;
        int tot = (OT - 1) * S + keff - T;
        PL = tot > 0 ? tot / 2 : 0;
    } else {
        PL = (KS - 1) * D;
        OT = (T + PL - keff) / S + 1;
    }
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OT; o++)
            for (int f = 0; f < F; f++) {
                double s = bias ? bias[f] : 0;
                for (int k = 0; k < KS; k++) {
                    int t = o * S - PL + k * D;
                    if (t < 0 || t >= T)
                        continue;
                    for (int c = 0; c < C; c++)
                        s += (double)x[(b * T + t) * C + c] * K[(k * C + c) * F + f];
                }
                y[(b * OT + o) * F + f] = (float)s;
            }
    return OT;
}

static void conv1d_case_gc(int B, int T, int C, int F, int KS, int S, int D, int pad, bool bias,
                           bool gc) {
    static const char *const pads[] = {"valid", "same", "causal"};
    char cfg[320];
    snprintf(cfg, sizeof cfg,
             "{\"filters\": %d, \"kernel_size\": [%d], \"strides\": %d, \"dilation_rate\": [%d], "
             "\"padding\": \"%s\", \"use_bias\": %s, \"bias_initializer\": {\"class_name\": "
             "\"RandomNormal\", \"config\": {\"stddev\": 0.5}}}",
             F, KS, S, D, pads[pad], bias ? "true" : "false");
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Conv1D", cfg, shp(2, T, C, 0), &l));
    gc_bind_params(l, 5);
    float *work = l->ops->workspace(l, B) > 0
                      ? malloc(sizeof(float) * (size_t)l->ops->workspace(l, B))
                      : NULL;
    l->work = work;
    float *x = randv((int64_t)B * T * C, -1, 1, 11);
    float *y = malloc(sizeof(float) * (size_t)(B * l->out_size));
    float *want = malloc(sizeof(float) * (size_t)(B * l->out_size));
    l->ops->forward(l, &infer_pass, x, y, B);
    int OT = conv1d_ref(x, l->params, bias ? l->params + (int64_t)KS * C * F : NULL, want, B, T, C,
                        F, KS, S, D, pad);
    assert_int_equal(l->out_shape.rank, 2);
    assert_int_equal(l->out_shape.dim[0], OT);
    assert_int_equal(l->out_shape.dim[1], F);
    for (int64_t i = 0; i < B * l->out_size; i++)
        if (fabsf(y[i] - want[i]) > 1e-5f)
            fail_msg("%s: y[%lld] = %g, want %g", cfg, (long long)i, (double)y[i], (double)want[i]);
    char what[400];
    snprintf(what, sizeof what, "Conv1D %s", cfg);
    if (gc)
        gc_assert_ok(gc_check_layer(l, &train_pass, B, 3), what);
    free(x);
    free(y);
    free(want);
    free(work);
    l->work = NULL;
    gc_free_layer(&l);
}

static void conv1d_case(int B, int T, int C, int F, int KS, int S, int D, int pad, bool bias) {
    conv1d_case_gc(B, T, C, F, KS, S, D, pad, bias, true);
}

static void test_conv1d(void **state) {
    (void)state;
    /*          B  T  C  F KS  S  D pad bias */
    conv1d_case(3, 9, 2, 3, 3, 1, 1, 0, true);  /* valid */
    conv1d_case(2, 9, 2, 3, 3, 1, 1, 1, true);  /* same, odd kernel */
    conv1d_case(2, 8, 3, 2, 4, 1, 1, 1, true);  /* same, even kernel: the extra pad after */
    conv1d_case(2, 9, 2, 3, 3, 1, 1, 2, true);  /* causal */
    conv1d_case(2, 12, 2, 2, 3, 1, 2, 0, true); /* dilated valid */
    conv1d_case(2, 11, 2, 2, 3, 1, 3, 1, true); /* dilated same */
    conv1d_case(2, 10, 2, 3, 2, 1, 4, 2, true); /* dilated causal (a WaveNet block) */
    conv1d_case(2, 11, 3, 2, 3, 2, 1, 0, true); /* strided valid */
    conv1d_case(2, 11, 3, 2, 4, 3, 1, 1, true); /* strided same */
    conv1d_case(2, 10, 2, 2, 3, 2, 1, 2, true); /* strided causal */
    conv1d_case(3, 5, 4, 3, 1, 1, 1, 0, true);  /* 1-wide: no patch buffer */
    conv1d_case(2, 5, 4, 3, 1, 2, 1, 0, false); /* 1-wide strided, no bias */
    conv1d_case(2, 3, 1, 1, 3, 1, 1, 0, true);  /* kernel = input */
}

static void test_conv1d_activation_and_json(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Conv1D",
                            "{\"filters\": 4, \"kernel_size\": 3, \"activation\": \"tanh\", "
                            "\"padding\": \"CAUSAL\", \"dilation_rate\": 2}",
                            shp(2, 7, 3, 0), &l));
    gc_bind_params(l, 1);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 4), "Conv1D tanh causal");
    json_t *j = l->ops->to_json(l);
    assert_string_equal(json_string_value(json_object_get(j, "padding")), "causal");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "dilation_rate"), 0)), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "kernel_size"), 0)), 3);
    const char *names[4];
    dpt_shape sh[4];
    assert_int_equal(l->ops->weights(l, names, sh, 4), 2);
    assert_string_equal(names[0], "kernel");
    assert_true(sh[0].rank == 3 && sh[0].dim[0] == 3 && sh[0].dim[1] == 3 && sh[0].dim[2] == 4);
    json_decref(j);
    gc_free_layer(&l);
    /* several im2col chunks: the budget is 2^22 floats, 2^22 / (64 * 1024) = 64 rows per chunk,
     * 2 * 100 rows here; the workspace holds one chunk */
    conv1d_case_gc(2, 100, 1024, 1, 64, 1, 1, 1, true, false);
    assert_ok(gc_make_layer("Conv1D",
                            "{\"filters\": 1, \"kernel_size\": 64, \"padding\": "
                            "\"same\"}",
                            shp(2, 100, 1024, 0), &l));
    assert_true(l->ops->workspace(l, 2) == 64 * 64 * 1024);
    assert_true(l->ops->workspace(l, 1) == 64 * 64 * 1024);
    gc_free_layer(&l);
    assert_ok(
        gc_make_layer("Conv1D", "{\"filters\": 1, \"kernel_size\": 1}", shp(2, 100, 4, 0), &l));
    assert_true(l->ops->workspace(l, 2) == 0); /* 1-wide: x is its own patch matrix */
    gc_free_layer(&l);
}

static void test_conv1d_errors(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    dpt_shape in = shp(2, 8, 2, 0);
    assert_status_msg(
        gc_make_layer("Conv1D", "{\"filters\": 4, \"kernel_size\": 3, \"groups\": 2}", in, &l),
        DPT_ERR_CONFIG, "t.json: model.config.layers[3].config.groups: only 1");
    assert_status_msg(gc_make_layer("Conv1D",
                                    "{\"filters\": 4, \"kernel_size\": 3, \"data_format\": "
                                    "\"channels_first\"}",
                                    in, &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\"");
    assert_status_msg(gc_make_layer("Conv1D",
                                    "{\"filters\": 4, \"kernel_size\": 3, \"strides\": 2, "
                                    "\"dilation_rate\": 2}",
                                    in, &l),
                      DPT_ERR_CONFIG, "config.strides: strides > 1 together with dilation_rate");
    assert_status_msg(
        gc_make_layer("Conv1D", "{\"filters\": 4, \"kernel_size\": 3, \"padding\": \"full\"}", in,
                      &l),
        DPT_ERR_CONFIG, "config.padding: must be \"valid\", \"same\" or \"causal\", got \"full\"");
    assert_status_msg(gc_make_layer("Conv1D", "{\"filters\": 4, \"kernel_size\": [3, 3]}", in, &l),
                      DPT_ERR_CONFIG, "config.kernel_size: must be an integer or a list of 1");
    assert_status_msg(gc_make_layer("Conv1D", "{\"filters\": 4, \"kernel_size\": 9}", in, &l),
                      DPT_ERR_CONFIG, "a kernel size of 9 does not fit an input of 8");
    assert_status_msg(gc_make_layer("Conv1D",
                                    "{\"filters\": 4, \"kernel_size\": 3, \"dilation_rate\": 4}",
                                    in, &l),
                      DPT_ERR_CONFIG, "a dilated kernel span of 9 does not fit");
    assert_status_msg(gc_make_layer("Conv1D", "{\"kernel_size\": 3}", in, &l), DPT_ERR_CONFIG,
                      "config.filters: missing");
    assert_status_msg(
        gc_make_layer("Conv1D", "{\"filters\": 2, \"kernel_size\": 3}", shp(3, 4, 4, 1), &l),
        DPT_ERR_CONFIG, "Conv1D needs an input of shape (None, steps, channels)");
    assert_status_msg(gc_make_layer("Conv1D",
                                    "{\"filters\": 2, \"kernel_size\": 3, \"kernel_constraint\": "
                                    "{\"class_name\": \"MaxNorm\"}}",
                                    in, &l),
                      DPT_ERR_CONFIG, "config.kernel_constraint: not supported");
    assert_null(l);
    /* causal never runs out of input */
    assert_ok(gc_make_layer("Conv1D",
                            "{\"filters\": 1, \"kernel_size\": 9, \"padding\": "
                            "\"causal\"}",
                            in, &l));
    assert_int_equal(l->out_shape.dim[0], 8);
    gc_free_layer(&l);
}

/* ---- pooling -------------------------------------------------------------------------------- */

static void test_pool1d_values(void **state) {
    (void)state;
    /* x (1, 5, 1) = 1..5; pool 2, stride 2, same: windows [0,2) [2,4) [4,5) (+1 pad after) */
    float x[5] = {1, 2, 3, 4, 5}, y[3];
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("AveragePooling1D", "{\"pool_size\": [2], \"padding\": \"same\"}",
                            shp(2, 5, 1, 0), &l));
    assert_int_equal(l->out_shape.dim[0], 3);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_true(y[0] == 1.5f && y[1] == 3.5f && y[2] == 5.0f); /* the pad is not counted */
    gc_free_layer(&l);
    assert_ok(gc_make_layer("MaxPool1D",
                            "{\"pool_size\": 3, \"strides\": 1, \"padding\": "
                            "\"same\"}",
                            shp(2, 5, 1, 0), &l));
    float xm[5] = {-1, -5, -2, -4, -3}, ym[5];
    l->ops->forward(l, &infer_pass, xm, ym, 1);
    /* windows [-1,2) [0,3) [1,4) [2,5) [3,6): the padding never wins over negative values */
    float want[5] = {-1, -1, -2, -2, -3};
    for (int i = 0; i < 5; i++)
        assert_true(ym[i] == want[i]);
    gc_free_layer(&l);
    /* valid, stride 2, pool 3 over 7 steps: (7 - 3) / 2 + 1 = 3 */
    assert_ok(
        gc_make_layer("AvgPool1D", "{\"pool_size\": 3, \"strides\": 2}", shp(2, 7, 2, 0), &l));
    assert_int_equal(l->out_shape.dim[0], 3);
    json_t *j = l->ops->to_json(l);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "strides"), 0)), 2);
    json_decref(j);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("MaxPooling1D", "{\"pool_size\": 6}", shp(2, 5, 1, 0), &l),
                      DPT_ERR_CONFIG, "a pool size of 6 does not fit an input of 5");
    assert_status_msg(gc_make_layer("MaxPooling1D", "{}", shp(1, 5, 0, 0), &l), DPT_ERR_CONFIG,
                      "MaxPooling1D needs an input of shape (None, steps, channels)");
    assert_status_msg(
        gc_make_layer("AveragePooling1D", "{\"padding\": \"causal\"}", shp(2, 5, 1, 0), &l),
        DPT_ERR_CONFIG, "config.padding: must be \"valid\" or \"same\"");
}

static void pool_gc(const char *cls, const char *cfg, dpt_shape in) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer(cls, cfg, in, &l));
    char what[256];
    snprintf(what, sizeof what, "%s %s", cls, cfg);
    gc_assert_ok(gc_check_layer(l, &train_pass, 3, 8), what);
    gc_free_layer(&l);
}

static void test_pool_gradients(void **state) {
    (void)state;
    pool_gc("MaxPooling1D", "{\"pool_size\": 2}", shp(2, 7, 3, 0));
    pool_gc("MaxPooling1D", "{\"pool_size\": 3, \"strides\": 2, \"padding\": \"same\"}",
            shp(2, 8, 2, 0));
    pool_gc("AveragePooling1D", "{\"pool_size\": 3, \"strides\": 1}", shp(2, 6, 2, 0));
    pool_gc("AveragePooling1D", "{\"pool_size\": 4, \"strides\": 3, \"padding\": \"same\"}",
            shp(2, 7, 2, 0));
    pool_gc("GlobalAveragePooling1D", "{}", shp(2, 5, 3, 0));
    pool_gc("GlobalMaxPooling1D", "{\"keepdims\": true}", shp(2, 5, 3, 0));
    pool_gc("GlobalMaxPooling2D", "{}", shp(3, 3, 4, 2));
    pool_gc("GlobalMaxPool2D", "{\"keepdims\": true}", shp(3, 2, 2, 3));
}

static void test_global_pools(void **state) {
    (void)state;
    /* x (1, 3, 2): steps (1, -1) (4, 2) (-2, 0) */
    float x[6] = {1, -1, 4, 2, -2, 0}, y[2];
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("GlobalMaxPooling1D", "{}", shp(2, 3, 2, 0), &l));
    assert_true(l->out_shape.rank == 1 && l->out_shape.dim[0] == 2);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_true(y[0] == 4 && y[1] == 2);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("GlobalAvgPool1D", "{\"keepdims\": true}", shp(2, 3, 2, 0), &l));
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 1 && l->out_shape.dim[1] == 2);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_true(fabsf(y[0] - 1.0f) < 1e-6f && fabsf(y[1] - 1.0f / 3) < 1e-6f);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("GlobalMaxPooling2D", "{\"keepdims\": true}", shp(3, 3, 1, 2), &l));
    assert_true(l->out_shape.rank == 3 && l->out_shape.dim[0] == 1 && l->out_shape.dim[1] == 1 &&
                l->out_shape.dim[2] == 2);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_true(y[0] == 4 && y[1] == 2);
    json_t *j = l->ops->to_json(l);
    assert_true(json_is_true(json_object_get(j, "keepdims")));
    json_decref(j);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("GlobalMaxPooling2D", "{}", shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "GlobalMaxPooling2D needs an input of shape (None, height");
    assert_status_msg(
        gc_make_layer("GlobalAveragePooling1D", "{\"keepdims\": 1}", shp(2, 3, 2, 0), &l),
        DPT_ERR_CONFIG, "config.keepdims: must be");
}

/* ---- layers that move time steps ----------------------------------------------------------- */

static void steps_case(const char *cls, const char *cfg, dpt_shape in, const float *x, int64_t ot,
                       const float *want) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer(cls, cfg, in, &l));
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == ot);
    float y[64];
    l->ops->forward(l, &infer_pass, x, y, 1);
    for (int64_t i = 0; i < l->out_size; i++)
        if (y[i] != want[i])
            fail_msg("%s %s: y[%lld] = %g, want %g", cls, cfg, (long long)i, (double)y[i],
                     (double)want[i]);
    char what[128];
    snprintf(what, sizeof what, "%s %s", cls, cfg);
    gc_assert_ok(gc_check_layer(l, &train_pass, 3, 2), what);
    gc_free_layer(&l);
}

static void test_step_layers(void **state) {
    (void)state;
    /* x (3 steps, 2 channels) */
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const float pad[12] = {0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0};
    steps_case("ZeroPadding1D", "{\"padding\": [2, 1]}", shp(2, 3, 2, 0), x, 6, pad);
    const float pad1[10] = {0, 0, 1, 2, 3, 4, 5, 6, 0, 0};
    steps_case("ZeroPadding1D", "{}", shp(2, 3, 2, 0), x, 5, pad1); /* Keras's default 1 */
    const float crop[2] = {3, 4};
    steps_case("Cropping1D", "{}", shp(2, 3, 2, 0), x, 1, crop); /* default (1, 1) */
    const float crop2[4] = {1, 2, 3, 4};
    steps_case("Cropping1D", "{\"cropping\": [0, 1]}", shp(2, 3, 2, 0), x, 2, crop2);
    const float up[12] = {1, 2, 1, 2, 3, 4, 3, 4, 5, 6, 5, 6};
    steps_case("UpSampling1D", "{}", shp(2, 3, 2, 0), x, 6, up); /* default size 2 */
    const float rep[9] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    steps_case("RepeatVector", "{\"n\": 3}", shp(1, 3, 0, 0), x, 3, rep);
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Cropping1D", "{\"cropping\": [2, 1]}", shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "config.cropping: [2, 1] leaves no step of 3");
    assert_status_msg(gc_make_layer("ZeroPadding1D", "{\"data_format\": \"channels_first\"}",
                                    shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\"");
    assert_status_msg(gc_make_layer("RepeatVector", "{}", shp(1, 3, 0, 0), &l), DPT_ERR_CONFIG,
                      "config.n: missing");
    assert_status_msg(gc_make_layer("RepeatVector", "{\"n\": 2}", shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "RepeatVector needs an input of shape (None, features)");
    assert_status_msg(gc_make_layer("UpSampling1D", "{\"size\": 0}", shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "config.size: must be in [1,");
    assert_status_msg(gc_make_layer("ZeroPadding1D", "{\"padding\": -1}", shp(2, 3, 2, 0), &l),
                      DPT_ERR_CONFIG, "config.padding: must be integers in [0,");
    assert_null(l);
}

/* ---- Embedding ------------------------------------------------------------------------------ */

static void test_embedding_forward(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(
        gc_make_layer("Embedding", "{\"input_dim\": 5, \"output_dim\": 3}", shp(1, 4, 0, 0), &l));
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 3);
    assert_true(l->ops->n_params(l) == 15);
    gc_bind_params(l, 2);
    for (int i = 0; i < 15; i++) /* Keras's "uniform": U(-0.05, 0.05) */
        assert_true(l->params[i] >= -0.05f && l->params[i] <= 0.05f && l->params[i] != 0.0f);
    float x[8] = {0, 4, 2, 2, 1, 3, 0, 4}, y[24];
    l->ops->forward(l, &infer_pass, x, y, 2);
    for (int i = 0; i < 8; i++)
        for (int e = 0; e < 3; e++)
            assert_true(y[i * 3 + e] == l->params[(int)x[i] * 3 + e]);
    /* a bad id reaching forward (the data reader refuses them): zeros, no gradient */
    float bad[4] = {-1, 2.5f, 5, NAN}, yb[12], dy[12], dx[4];
    l->ops->forward(l, &infer_pass, bad, yb, 1);
    for (int i = 0; i < 12; i++)
        assert_true(yb[i] == 0.0f);
    memset(l->grads, 0, 15 * sizeof(float));
    for (int i = 0; i < 12; i++)
        dy[i] = 1.0f;
    l->ops->backward(l, &train_pass, bad, yb, dy, dx, 1);
    for (int i = 0; i < 15; i++)
        assert_true(l->grads[i] == 0.0f);
    for (int i = 0; i < 4; i++)
        assert_true(dx[i] == 0.0f);
    const char *names[2];
    dpt_shape sh[2];
    assert_int_equal(l->ops->weights(l, names, sh, 2), 1);
    assert_string_equal(names[0], "embeddings");
    assert_true(sh[0].dim[0] == 5 && sh[0].dim[1] == 3);
    assert_true(l->ops->input_ids && l->ops->input_ids(l) == 5);
    gc_free_layer(&l);
}

/* f = sum(y * w) over integer ids: d f / d W by central differences == the scatter-add */
static void test_embedding_gradient(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Embedding",
                            "{\"input_dim\": 6, \"output_dim\": 4, \"embeddings_initializer\": "
                            "{\"class_name\": \"RandomNormal\", \"config\": {\"stddev\": 1}}}",
                            shp(2, 3, 2, 0), &l));
    assert_true(l->out_shape.rank == 3 && l->out_shape.dim[2] == 4);
    gc_bind_params(l, 4);
    const int B = 3, n = B * 6, np = 24;
    float x[18];
    dpt_rng r;
    dpt_rng_init(&r, 7, 1);
    for (int i = 0; i < n; i++)
        x[i] = (float)(dpt_rng_u32(&r) % 5); /* id 5 never occurs: its rows get 0 */
    x[0] = x[1] = 3;                         /* a repeated id: contributions add */
    float *w = randv(n * 4, -1, 1, 3), *y = malloc(sizeof(float) * n * 4),
          *dy = malloc(sizeof(float) * n * 4);
    memset(l->grads, 0, np * sizeof(float));
    l->ops->forward(l, &train_pass, x, y, B);
    memcpy(dy, w, sizeof(float) * n * 4);
    l->ops->backward(l, &train_pass, x, y, dy, NULL, B);
    gc_result res = {0};
    double f0 = gc_layer_f(l, &train_pass, x, y, w, B);
    for (int k = 0; k < np; k++) {
        float s = l->params[k];
        l->params[k] = s + 1e-3f;
        double fp = gc_layer_f(l, &train_pass, x, y, w, B);
        l->params[k] = s - 1e-3f;
        double fm = gc_layer_f(l, &train_pass, x, y, w, B);
        l->params[k] = s;
        gc_compare(&res, l->grads[k], fm, f0, fp, 1e-3);
    }
    gc_assert_ok(res, "Embedding weights");
    for (int k = 20; k < 24; k++) /* row 5 */
        assert_true(l->grads[k] == 0.0f);
    /* frozen: no gradient at all */
    l->trainable = false;
    memset(l->grads, 0, np * sizeof(float));
    memcpy(dy, w, sizeof(float) * n * 4);
    l->ops->backward(l, &train_pass, x, y, dy, NULL, B);
    for (int k = 0; k < np; k++)
        assert_true(l->grads[k] == 0.0f);
    free(w);
    free(y);
    free(dy);
    gc_free_layer(&l);
}

static void test_embedding_errors(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    dpt_shape in = shp(1, 4, 0, 0);
    assert_status_msg(gc_make_layer("Embedding", "{\"input_dim\": 0, \"output_dim\": 3}", in, &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.input_dim: must be a positive "
                      "integer, got 0");
    assert_status_msg(gc_make_layer("Embedding", "{\"output_dim\": 3}", in, &l), DPT_ERR_CONFIG,
                      "config.input_dim: missing");
    assert_status_msg(gc_make_layer("Embedding", "{\"input_dim\": 3}", in, &l), DPT_ERR_CONFIG,
                      "config.output_dim: missing");
    assert_status_msg(gc_make_layer("Embedding",
                                    "{\"input_dim\": 10, \"output_dim\": 3, \"mask_zero\": true}",
                                    in, &l),
                      DPT_ERR_CONFIG, "config.mask_zero: mask_zero is not supported");
    assert_status_msg(
        gc_make_layer("Embedding", "{\"input_dim\": 16777217, \"output_dim\": 1}", in, &l),
        DPT_ERR_CONFIG, "config.input_dim: must be in [1, 16777216]");
    assert_status_msg(
        gc_make_layer("Embedding", "{\"input_dim\": 10, \"output_dim\": 3, \"input_length\": 5}",
                      in, &l),
        DPT_ERR_CONFIG, "config.input_length: must be null or the number of steps (4)");
    assert_status_msg(gc_make_layer("Embedding",
                                    "{\"input_dim\": 10, \"output_dim\": 3, "
                                    "\"embeddings_constraint\": {\"class_name\": \"NonNeg\"}}",
                                    in, &l),
                      DPT_ERR_CONFIG, "config.embeddings_constraint: not supported");
    assert_null(l);
    /* Keras 2's input_length equal to the steps, and the regularizer */
    assert_ok(gc_make_layer("Embedding",
                            "{\"input_dim\": 10, \"output_dim\": 3, \"input_length\": 4, "
                            "\"embeddings_regularizer\": {\"class_name\": \"L2\", \"config\": "
                            "{\"l2\": 0.5}}}",
                            in, &l));
    assert_true(l->has_regularizer);
    gc_bind_params(l, 1);
    double pen = l->ops->regularize(l, 0.0f), want = 0;
    for (int i = 0; i < 30; i++)
        want += 0.5 * l->params[i] * l->params[i];
    assert_true(fabs(pen - want) < 1e-6);
    json_t *j = l->ops->to_json(l);
    assert_int_equal(json_integer_value(json_object_get(j, "input_length")), 4);
    assert_true(json_is_false(json_object_get(j, "mask_zero")));
    json_decref(j);
    gc_free_layer(&l);
}

/* ---- Dense on (B, T, F) --------------------------------------------------------------------- */

static void test_dense_3d(void **state) {
    (void)state;
    dpt_layer *l = NULL, *flat = NULL;
    assert_ok(
        gc_make_layer("Dense", "{\"units\": 3, \"activation\": \"tanh\"}", shp(2, 4, 5, 0), &l));
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 3);
    assert_true(l->out_size == 12 && l->ops->n_params(l) == 18);
    gc_bind_params(l, 3);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 5), "Dense (4, 5) -> (4, 3)");
    /* the same as a flat Dense applied to each of the B * T rows */
    assert_ok(
        gc_make_layer("Dense", "{\"units\": 3, \"activation\": \"tanh\"}", shp(1, 5, 0, 0), &flat));
    gc_bind_params(flat, 3);
    memcpy(flat->params, l->params, 18 * sizeof(float));
    float *x = randv(40, -1, 1, 4), y[24], y2[24];
    l->ops->forward(l, &infer_pass, x, y, 2);
    flat->ops->forward(flat, &infer_pass, x, y2, 8);
    for (int i = 0; i < 24; i++)
        assert_true(y[i] == y2[i]);
    free(x);
    gc_free_layer(&flat);
    gc_free_layer(&l);
    /* softmax over each position's units, not over the whole sample */
    assert_ok(
        gc_make_layer("Dense", "{\"units\": 3, \"activation\": \"softmax\"}", shp(2, 4, 5, 0), &l));
    gc_bind_params(l, 6);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 5), "Dense (4, 5) -> (4, 3) softmax");
    float xs[20], ys[12];
    for (int i = 0; i < 20; i++)
        xs[i] = (float)i / 10;
    l->ops->forward(l, &infer_pass, xs, ys, 1);
    for (int t = 0; t < 4; t++)
        assert_true(fabsf(ys[3 * t] + ys[3 * t + 1] + ys[3 * t + 2] - 1.0f) < 1e-6f);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("Dense", "{\"units\": 2}", shp(3, 2, 3, 4), &l));
    assert_true(l->out_shape.rank == 3 && l->out_shape.dim[2] == 2 && l->out_size == 12);
    gc_free_layer(&l);
}

/* ---- models --------------------------------------------------------------------------------- */

static dpt_status make_model(const char *layers, dpt_shape in, int64_t max_batch, dpt_model **m) {
    json_t *j = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_status st = dpt_model_create(j, &in, max_batch, 7, &ctx, m);
    json_decref(j);
    return st;
}

/* sum(out * w) of a model forward */
static double model_f(dpt_model *m, const dpt_pass *p, const float *x, const float *w, int B) {
    const float *o = dpt_model_forward(m, p, x, B);
    double f = 0;
    for (int64_t i = 0; i < B * dpt_model_output_size(m); i++)
        f += (double)o[i] * w[i];
    return f;
}

/* every parameter's gradient of a whole model by central differences */
static void model_gc(dpt_model *m, const dpt_pass *p, const float *x, int B, const char *what) {
    int64_t K = dpt_model_output_size(m), np = dpt_model_n_params(m);
    float *w = randv(B * K, -1, 1, 21), *dout = malloc(sizeof(float) * (size_t)(B * K));
    dpt_model_zero_grads(m);
    dpt_model_forward(m, p, x, B);
    memcpy(dout, w, sizeof(float) * (size_t)(B * K));
    dpt_model_backward(m, p, dout, B);
    float *g = malloc(sizeof(float) * (size_t)np);
    memcpy(g, dpt_model_grads(m), sizeof(float) * (size_t)np);
    float *prm = dpt_model_params(m);
    gc_result r = {0};
    double f0 = model_f(m, p, x, w, B);
    for (int64_t k = 0; k < np; k++) {
        float s = prm[k];
        prm[k] = s + 1e-3f;
        double fp = model_f(m, p, x, w, B);
        prm[k] = s - 1e-3f;
        double fm = model_f(m, p, x, w, B);
        prm[k] = s;
        gc_compare(&r, g[k], fm, f0, fp, 1e-3);
    }
    gc_assert_ok(r, what);
    free(w);
    free(dout);
    free(g);
}

static void test_model_conv1d_spatial_dropout(void **state) {
    (void)state;
    dpt_model *m = NULL;
    assert_ok(
        make_model("[{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 4, \"kernel_size\": 3, "
                   "\"activation\": \"tanh\", \"padding\": \"causal\"}},"
                   " {\"class_name\": \"SpatialDropout1D\", \"config\": {\"rate\": 0.5}},"
                   " {\"class_name\": \"MaxPooling1D\", \"config\": {\"pool_size\": 2}},"
                   " {\"class_name\": \"Conv1D\", \"config\": {\"filters\": 3, \"kernel_size\": 2, "
                   "\"dilation_rate\": 2, \"padding\": \"same\"}},"
                   " {\"class_name\": \"GlobalAveragePooling1D\", \"config\": {}},"
                   " {\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]",
                   shp(2, 8, 3, 0), 4, &m));
    assert_string_equal(dpt_model_layer(m, 0)->name, "conv1d");
    assert_string_equal(dpt_model_layer(m, 1)->name, "spatial_dropout1d");
    assert_string_equal(dpt_model_layer(m, 2)->name, "max_pooling1d");
    assert_string_equal(dpt_model_layer(m, 3)->name, "conv1d_1");
    assert_string_equal(dpt_model_layer(m, 4)->name, "global_average_pooling1d");
    float *x = randv(3 * 24, -1, 1, 8);
    model_gc(m, &train_pass, x, 3, "Conv1D -> SpatialDropout1D -> ... model (training)");
    model_gc(m, &infer_pass, x, 3, "Conv1D -> SpatialDropout1D -> ... model (inference)");
    /* SpatialDropout1D after Conv1D: one keep/drop per (sample, channel), over all 8 steps */
    dpt_layer *c = NULL, *sd = NULL;
    assert_ok(gc_make_layer("Conv1D",
                            "{\"filters\": 16, \"kernel_size\": 3, \"padding\": "
                            "\"same\", \"bias_initializer\": \"ones\"}",
                            shp(2, 8, 3, 0), &c));
    assert_ok(gc_make_layer("SpatialDropout1D", "{\"rate\": 0.5}", c->out_shape, &sd));
    gc_bind_params(c, 2);
    c->work = malloc(sizeof(float) * (size_t)c->ops->workspace(c, 3));
    sd->index = 1;
    float y[3 * 8 * 16], z[3 * 8 * 16];
    c->ops->forward(c, &train_pass, x, y, 3);
    sd->ops->forward(sd, &train_pass, y, z, 3);
    int dropped = 0;
    for (int b = 0; b < 3; b++)
        for (int f = 0; f < 16; f++) {
            bool d0 = z[(b * 8) * 16 + f] == 0.0f;
            dropped += d0;
            for (int t = 0; t < 8; t++) {
                float v = z[(b * 8 + t) * 16 + f], u = y[(b * 8 + t) * 16 + f];
                assert_true(d0 ? v == 0.0f : fabsf(v - 2.0f * u) < 1e-6f);
            }
        }
    assert_true(dropped > 5 && dropped < 43); /* about half of 48 */
    free(c->work);
    c->work = NULL;
    gc_free_layer(&c);
    gc_free_layer(&sd);
    free(x);
    dpt_model_destroy(&m);
}

static void test_model_embedding(void **state) {
    (void)state;
    dpt_model *m = NULL;
    const char *layers =
        "[{\"class_name\": \"Embedding\", \"config\": {\"input_dim\": 9, \"output_dim\": 4}},"
        " {\"class_name\": \"Conv1D\", \"config\": {\"filters\": 3, \"kernel_size\": 2, "
        "\"activation\": \"relu\"}},"
        " {\"class_name\": \"GlobalMaxPooling1D\", \"config\": {}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": \"softmax\"}}]";
    assert_ok(make_model(layers, shp(1, 6, 0, 0), 4, &m));
    assert_true(dpt_model_input_ids(m) == 9);
    assert_ok(dpt_model_check_loss(m, DPT_LOSS_CATEGORICAL_CROSSENTROPY, "x.json"));
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)((i * 5) % 9);
    model_gc(m, &train_pass, x, 4, "Embedding -> Conv1D -> GlobalMaxPooling1D -> Dense");
    dpt_model_destroy(&m);
    /* a per-step output with a per-sample loss is refused; not an Embedding first: no ids */
    assert_ok(make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": "
                         "\"softmax\"}}]",
                         shp(2, 5, 2, 0), 4, &m));
    assert_true(dpt_model_input_ids(m) == 0);
    assert_status_msg(dpt_model_check_loss(m, DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, "x.json"),
                      DPT_ERR_CONFIG,
                      "x.json: compile.loss: sparse_categorical_crossentropy over an output of "
                      "shape (None, 5, 3)");
    assert_ok(dpt_model_check_loss(m, DPT_LOSS_MSE, "x.json"));
    dpt_model_destroy(&m);
    assert_status_msg(
        make_model("[{\"class_name\": \"Reshape\", \"config\": {\"target_shape\": [6]}},"
                   " {\"class_name\": \"Embedding\", \"config\": {\"input_dim\": 9, "
                   "\"output_dim\": 4}}]",
                   shp(1, 6, 0, 0), 4, &m),
        DPT_ERR_CONFIG, "x.json: layers[1]: Embedding must be the first layer");
}

/* ---- data: token ids, the adding problem ----------------------------------------------------- */

/* /train/x (n, 3) float32 = v, /train/y (n) int32 zeros */
static void write_ids(const char *path, const float *v, int n) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)n, 3}, yd[1] = {(hsize_t)n};
    hid_t xs = H5Screate_simple(2, xd, NULL), ys = H5Screate_simple(1, yd, NULL);
    hid_t x = H5Dcreate2(g, "x", H5T_IEEE_F32LE, xs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t y = H5Dcreate2(g, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int32_t zeros[16] = {0};
    assert_true(H5Dwrite(x, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    assert_true(H5Dwrite(y, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0);
    H5Dclose(x);
    H5Dclose(y);
    H5Sclose(xs);
    H5Sclose(ys);
    H5Gclose(g);
    H5Fclose(f);
}

static void ids_case(const char *dir, float bad, int at, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/ids.h5", dir);
    float v[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1};
    if (at >= 0)
        v[at] = bad;
    write_ids(path, v, 4);
    dpt_target_spec t = {.kind = DPT_TARGET_INDEX, .n_outputs = 2, .x_ids = 10};
    dpt_shape in = shp(1, 3, 0, 0);
    dpt_shard *s = NULL;
    if (!needle) {
        assert_ok(dpt_shard_open(path, "train", 0, 4, &t, &in, &s));
        dpt_shard_destroy(&s);
        assert_ok(dpt_shard_open(path, "train", 0, 4, NULL, &in, &s));
        assert_ok(dpt_shard_check_ids(s, path, "train", 10));
        dpt_shard_destroy(&s);
        return;
    }
    assert_status_msg(dpt_shard_open(path, "train", 0, 4, &t, &in, &s), DPT_ERR_DATA, needle);
    assert_null(s);
    /* rows [2, 4) only: the row is still numbered in the whole split */
    if (at >= 6) {
        assert_status_msg(dpt_shard_open(path, "train", 2, 4, &t, &in, &s), DPT_ERR_DATA, needle);
    }
    /* predict's path: no targets, then the check */
    dpt_status rc = dpt_shard_open(path, "train", 0, 4, NULL, &in, &s);
    if (rc == DPT_OK) /* a NaN is refused by the open itself */
        rc = dpt_shard_check_ids(s, path, "train", 10);
    assert_status_msg(rc, DPT_ERR_DATA, needle);
    dpt_shard_destroy(&s);
    /* streamed the same */
    dpt_stream *st = NULL;
    assert_ok(dpt_stream_open(path, "train", 0, 4, &t, &in, 1, 1, &st));
    dpt_stream_begin_epoch(st, 0);
    float xb[12], yb[4];
    assert_status_msg(dpt_stream_next(st, 4, xb, yb), DPT_ERR_DATA, needle);
    dpt_stream_destroy(&st);
}

static void test_token_id_check(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("seq_ids");
    char sub[600];
    ids_case(dir, 0, -1, NULL);
    snprintf(sub, sizeof sub,
             "/ids.h5: /train/x: row 2: token id -3 is negative (the model's "
             "first layer is an Embedding: ids must be integers in [0, 10))");
    ids_case(dir, -3, 7, sub);
    ids_case(dir, 2.5f, 4, "/ids.h5: /train/x: row 1: token id 2.5 is not an integer");
    ids_case(dir, 10, 11,
             "/ids.h5: /train/x: row 3: token id 10 is not below the Embedding's "
             "input_dim");
    ids_case(dir, NAN, 0, "/ids.h5: /train/x: row 0: "); /* token id nan / non-finite value */
    char path[600];
    snprintf(path, sizeof path, "%s/ids.h5", dir);
    dpt_target_spec t = {.kind = DPT_TARGET_VALUES, .n_outputs = 1, .x_ids = 10};
    dpt_shape in = shp(1, 3, 0, 0);
    dpt_shard *s = NULL;
    assert_status_msg(dpt_shard_open(path, "train", 0, 4, &t, &in, &s), DPT_ERR_DATA,
                      "/ids.h5: /train/x: row 0: token id nan is not a number");
}

static void test_adding_writer(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("seq_adding");
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    assert_ok(dpt_data_write_adding(a, 50, 9, 3));
    dpt_data_info info;
    assert_ok(dpt_data_probe(a, "train", &info));
    assert_true(info.n == 50 && info.x_shape.rank == 2 && info.x_shape.dim[0] == 9 &&
                info.x_shape.dim[1] == 2 && info.y_cols == 1 && !info.y_integer);
    assert_ok(dpt_data_probe(a, "test", &info));
    assert_true(info.n == 5);
    dpt_shard *s = NULL;
    dpt_target_spec t = {.kind = DPT_TARGET_VALUES, .n_outputs = 1};
    dpt_shape in = shp(2, 9, 2, 0);
    assert_ok(dpt_shard_open(a, "train", 0, 50, &t, &in, &s));
    const float *x = dpt_shard_x(s), *y = dpt_shard_y(s);
    double mean = 0;
    for (int i = 0; i < 50; i++) {
        const float *xi = x + i * 18;
        int marks = 0, first = -1, second = -1;
        double sum = 0;
        for (int k = 0; k < 9; k++) {
            assert_true(xi[2 * k] >= 0.0f && xi[2 * k] < 1.0f);
            assert_true(xi[2 * k + 1] == 0.0f || xi[2 * k + 1] == 1.0f);
            if (xi[2 * k + 1] == 1.0f) {
                marks++;
                sum += xi[2 * k];
                if (first < 0)
                    first = k;
                else
                    second = k;
            }
        }
        assert_int_equal(marks, 2);
        assert_true(first < 4 && second >= 4); /* one in each half (9 / 2 = 4) */
        assert_true(fabs(y[i] - sum) < 1e-6);
        mean += y[i] / 50.0;
    }
    assert_true(mean > 0.7 && mean < 1.3);
    dpt_shard_destroy(&s);
    /* a sample depends on (seed, split, row) only; another seed differs */
    assert_ok(dpt_data_write_adding(b, 20, 9, 3));
    dpt_shard *s2 = NULL;
    assert_ok(dpt_shard_open(a, "train", 0, 20, &t, &in, &s));
    assert_ok(dpt_shard_open(b, "train", 0, 20, &t, &in, &s2));
    assert_memory_equal(dpt_shard_x(s), dpt_shard_x(s2), 20 * 18 * sizeof(float));
    dpt_shard_destroy(&s2);
    assert_ok(dpt_data_write_adding(b, 20, 9, 4));
    assert_ok(dpt_shard_open(b, "train", 0, 20, &t, &in, &s2));
    assert_true(memcmp(dpt_shard_x(s), dpt_shard_x(s2), 20 * 18 * sizeof(float)) != 0);
    dpt_shard_destroy(&s2);
    dpt_shard_destroy(&s);
    assert_status_msg(dpt_data_write_adding(b, 10, 1, 0), DPT_ERR_USAGE,
                      "need 1 to 2^32 - 1 samples and at least 2 steps");
    assert_status_msg(dpt_data_write_adding(b, 0, 5, 0), DPT_ERR_USAGE, "got 0 samples");
}

/* ---- config: the Keras 2 forms of an Embedding first layer ---------------------------------- */

static void parse_input(const char *model, dpt_shape *in, bool *has) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model\": %s, \"compile\": {\"optimizer\": \"sgd\", \"loss\": \"mse\"}, "
             "\"data\": {\"path\": \"d.h5\"}}",
             model);
    dpt_config c;
    assert_ok(dpt_config_parse(text, strlen(text), "k2.json", &c));
    *in = c.input_shape;
    *has = c.has_input_shape;
    dpt_config_deinit(&c);
}

static void test_keras2_embedding_shape(void **state) {
    (void)state;
    dpt_shape in;
    bool has;
    /* Keras 2.0-2.2: a bare list; batch_input_shape gives the steps, input_dim is the vocabulary */
    parse_input("{\"class_name\": \"Sequential\", \"config\": [{\"class_name\": \"Embedding\", "
                "\"config\": {\"batch_input_shape\": [null, 10], \"input_dim\": 1000, "
                "\"output_dim\": 8, \"input_length\": 10}}]}",
                &in, &has);
    assert_true(has && in.rank == 1 && in.dim[0] == 10);
    /* only input_length */
    parse_input("{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": "
                "\"Embedding\", \"config\": {\"input_dim\": 1000, \"output_dim\": 8, "
                "\"input_length\": 12}}]}}",
                &in, &has);
    assert_true(has && in.rank == 1 && in.dim[0] == 12);
    /* neither: the shape comes from the data (not from input_dim, which is the vocabulary) */
    parse_input("{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": "
                "\"Embedding\", \"config\": {\"input_dim\": 1000, \"output_dim\": 8, "
                "\"input_length\": null}}]}}",
                &in, &has);
    assert_false(has);
    /* a Dense first layer's input_dim still is its input size */
    parse_input("{\"class_name\": \"Sequential\", \"config\": [{\"class_name\": \"Dense\", "
                "\"config\": {\"input_dim\": 7, \"units\": 2}}]}",
                &in, &has);
    assert_true(has && in.rank == 1 && in.dim[0] == 7);
}

/* examples/conv1d.json, written by Keras 3.15's model.to_json(), builds Keras's model */
static void test_example_conv1d(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/conv1d.json", dpt_test_source_dir());
    char *text = NULL;
    size_t len = 0;
    assert_ok(dpt_read_file(path, DPT_ERR_CONFIG, &text, &len));
    dpt_config c;
    assert_ok(dpt_config_parse(text, len, path, &c));
    free(text);
    assert_true(c.has_input_shape && c.input_shape.rank == 2 && c.input_shape.dim[0] == 28 &&
                c.input_shape.dim[1] == 28);
    dpt_model *m = NULL;
    dpt_json_ctx ctx = {.file = path};
    assert_ok(dpt_model_create(c.layers, &c.input_shape, 8, 1, &ctx, &m));
    assert_true(dpt_model_n_params(m) == 18442); /* Keras's summary: 5,440 + 12,352 + 650 */
    assert_int_equal(dpt_model_n_layers(m), 6);
    const dpt_layer *l = dpt_model_layer(m, 1);
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 14 && l->out_shape.dim[1] == 64);
    assert_ok(dpt_model_check_loss(m, c.loss, path));
    dpt_model_destroy(&m);
    dpt_config_deinit(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_conv1d_activation_and_json),
        cmocka_unit_test(test_conv1d_errors),
        cmocka_unit_test(test_pool1d_values),
        cmocka_unit_test(test_pool_gradients),
        cmocka_unit_test(test_global_pools),
        cmocka_unit_test(test_step_layers),
        cmocka_unit_test(test_embedding_forward),
        cmocka_unit_test(test_embedding_gradient),
        cmocka_unit_test(test_embedding_errors),
        cmocka_unit_test(test_dense_3d),
        cmocka_unit_test(test_model_conv1d_spatial_dropout),
        cmocka_unit_test(test_model_embedding),
        cmocka_unit_test(test_token_id_check),
        cmocka_unit_test(test_adding_writer),
        cmocka_unit_test(test_keras2_embedding_shape),
        cmocka_unit_test(test_example_conv1d),
    };
    return cmocka_run_group_tests_name("seq", tests, NULL, NULL);
}
