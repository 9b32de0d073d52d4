/* Unit tests of src/nn layers and the Sequential model: activations, finite-difference gradient
 * checks (every registered layer kind, Dense with each activation, Dropout with a fixed mask, the
 * whole tutorial network with dropout on) including a self-test that the check can fail, Dropout's
 * statistics and key/counter behaviour, initialisers, config errors with their JSON paths, the
 * model's shapes, parameter count, summary and fused head. Losses are in test_loss.c. No MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/nn_internal.h" /* dpt_dropout_force_generic */
#include "testutil.h"

static dpt_shape shape1(int64_t n) { return (dpt_shape){.rank = 1, .dim = {n}}; }

static const dpt_pass train_pass = {.training = true, .seed = 1234, .rank = 1, .step = 77};

/* ---- activations ------------------------------------------------------------------------------
 */

static void test_act_names(void **state) {
    (void)state;
    for (int a = DPT_ACT_LINEAR; a < DPT_ACT_COUNT; a++) {
        if (a == DPT_ACT_GELU_TANH || a == DPT_ACT_HARD_SIGMOID_K2)
            continue; /* named "gelu" / "hard_sigmoid" too */
        dpt_act back;
        assert_true(dpt_act_from_name(dpt_act_name((dpt_act)a), &back));
        assert_int_equal(back, a);
    }
    dpt_act x;
    assert_false(dpt_act_from_name("sparsemax", &x));
    assert_false(dpt_act_from_name(NULL, &x));
}

static void test_act_stable(void **state) {
    (void)state;
    float v[6] = {-1000.0f, -100.0f, -20.0f, 20.0f, 100.0f, 1000.0f};
    dpt_act_forward(DPT_ACT_SIGMOID, v, 1, 6);
    for (int i = 0; i < 6; i++)
        assert_true(isfinite(v[i]) && v[i] >= 0.0f && v[i] <= 1.0f);
    assert_true(v[0] == 0.0f && v[5] == 1.0f);
    assert_true(v[2] > 0.0f && v[2] < 1e-8f); /* exp(-20) is representable: not flushed to 0 */
    float s[2][3] = {{1000.0f, 1001.0f, 1002.0f}, {-1000.0f, -1000.0f, -1000.0f}};
    dpt_act_forward(DPT_ACT_SOFTMAX, &s[0][0], 2, 3);
    for (int i = 0; i < 2; i++) {
        float sum = 0;
        for (int j = 0; j < 3; j++) {
            assert_true(isfinite(s[i][j]));
            sum += s[i][j];
        }
        assert_float_equal(sum, 1.0f, 1e-6f);
    }
    assert_float_equal(s[0][2], 0.66524096f, 1e-6f);
    assert_float_equal(s[1][0], 1.0f / 3.0f, 1e-6f);
    float r[4] = {-1.0f, 0.0f, 2.0f, -0.5f};
    dpt_act_forward(DPT_ACT_RELU, r, 2, 2);
    assert_true(r[0] == 0.0f && r[1] == 0.0f && r[2] == 2.0f && r[3] == 0.0f);
    float t[2] = {0.5f, -30.0f};
    dpt_act_forward(DPT_ACT_TANH, t, 1, 2);
    assert_float_equal(t[0], tanhf(0.5f), 1e-7f);
    assert_true(t[1] == -1.0f);
}

/* backward from the output y, checked against finite differences of the forward */
static void test_act_backward(void **state) {
    (void)state;
    enum { B = 3, N = 4 };
    dpt_rng rng;
    dpt_rng_init(&rng, 5, 0);
    for (int a = DPT_ACT_LINEAR; a <= DPT_ACT_SOFTMAX; a++) {
        float z[B * N], y[B * N], w[B * N], dz[B * N];
        gc_fill_uniform(z, B * N, -2.0f, 2.0f, &rng);
        gc_fill_uniform(w, B * N, -1.0f, 1.0f, &rng);
        memcpy(y, z, sizeof y);
        dpt_act_forward((dpt_act)a, y, B, N);
        dpt_act_backward((dpt_act)a, y, w, dz, B, N);
        /* dz may alias dy */
        float inplace[B * N];
        memcpy(inplace, w, sizeof w);
        dpt_act_backward((dpt_act)a, y, inplace, inplace, B, N);
        gc_result r = {0};
        for (int k = 0; k < B * N; k++) {
            assert_float_equal(inplace[k], dz[k], 0.0f);
            double f[3];
            for (int s = -1; s <= 1; s++) {
                float t[B * N];
                memcpy(t, z, sizeof t);
                t[k] += (float)s * 1e-3f;
                dpt_act_forward((dpt_act)a, t, B, N);
                f[s + 1] = 0;
                for (int q = 0; q < B * N; q++)
                    f[s + 1] += (double)t[q] * w[q];
            }
            gc_compare(&r, dz[k], f[0], f[1], f[2], 1e-3);
        }
        gc_assert_ok(r, dpt_act_name((dpt_act)a));
    }
}

/* ---- gradient checks
 * ----------------------------------------------------------------------------- */

/* the checker must be able to fail */
static void test_grad_check_self_test(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dense", "{\"units\": 3, \"activation\": \"tanh\"}", shape1(4), &l));
    gc_bind_params(l, 1);
    gc_result good = gc_check_layer(l, &train_pass, 3, 11);
    gc_assert_ok(good, "Dense tanh");
    gc_result broken = gc_check_layer_corrupt(l, &train_pass, 3, 11, true);
    assert_true(broken.bad >= 1);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("Activation", "{\"activation\": \"sigmoid\"}", shape1(4), &l));
    broken = gc_check_layer_corrupt(l, &train_pass, 3, 11, true); /* no params: corrupts dx */
    assert_true(broken.bad >= 1);
    gc_free_layer(&l);
}

static void test_grad_dense_each_activation(void **state) {
    (void)state;
    const char *acts[] = {"linear", "relu", "sigmoid", "tanh", "softmax"};
    for (int bias = 0; bias < 2; bias++)
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
            char cfg[256];
            snprintf(cfg, sizeof cfg, "{\"units\": 5, \"activation\": \"%s\", \"use_bias\": %s}",
                     acts[a], bias ? "true" : "false");
            dpt_layer *l = NULL;
            assert_ok(gc_make_layer("Dense", cfg, shape1(6), &l));
            gc_bind_params(l, 3);
            /* non-zero biases so the bias enters the check */
            if (bias)
                for (int j = 0; j < 5; j++)
                    l->params[30 + j] = 0.1f * (float)(j - 2);
            assert_int_equal(dpt_layer_n_params(l), 30 + (bias ? 5 : 0));
            gc_result r = gc_check_layer(l, &train_pass, 4, 100 + a);
            gc_assert_ok(r, cfg);
            gc_free_layer(&l);
        }
}

static void test_grad_dense_accumulates(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dense", "{\"units\": 2}", shape1(3), &l));
    gc_bind_params(l, 3);
    float x[2 * 3] = {1, 2, 3, -1, 0.5f, 2}, y[2 * 2], dy[2 * 2];
    l->ops->forward(l, &train_pass, x, y, 2);
    memset(l->grads, 0, 8 * sizeof(float));
    for (int i = 0; i < 4; i++)
        dy[i] = 1.0f;
    l->ops->backward(l, &train_pass, x, y, dy, NULL, 2); /* dx NULL: first layer */
    float once[8];
    memcpy(once, l->grads, sizeof once);
    for (int i = 0; i < 4; i++)
        dy[i] = 1.0f;
    l->ops->backward(l, &train_pass, x, y, dy, NULL, 2);
    for (int k = 0; k < 8; k++)
        assert_float_equal(l->grads[k], 2 * once[k], 1e-6f);
    assert_float_equal(once[6], 2.0f, 0);     /* db = column sums */
    assert_float_equal(once[0], 0.0f, 1e-6f); /* dK[0][0] = x[0][0] + x[1][0] = 0 */
    assert_float_equal(once[2], 2.5f, 1e-6f); /* dK[1][0] = 2 + 0.5 */
    gc_free_layer(&l);
}

/* a config (and input shape, default (6,)) for every registered class: adding a layer kind
 * without one fails here. The image and sequence layers are covered in depth by test_layers2.c. */
static const char *sample_config(const char *cls, dpt_shape *in) {
    static const struct {
        const char *cls, *cfg;
        dpt_shape in;
    } more[] = {
        {"Reshape", "{\"target_shape\": [3, 2]}", {1, {6}}},
        {"Conv2D",
         "{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"same\", \"strides\": 2}",
         {3, {5, 4, 2}}},
        {"Convolution2D", "{\"filters\": 2, \"kernel_size\": [2, 3]}", {3, {4, 4, 2}}},
        {"MaxPooling2D", "{\"pool_size\": 2, \"padding\": \"same\"}", {3, {5, 4, 2}}},
        {"MaxPool2D", "{}", {3, {4, 4, 2}}},
        {"AveragePooling2D", "{\"pool_size\": [2, 3], \"strides\": 1}", {3, {4, 5, 2}}},
        {"AvgPool2D", "{\"padding\": \"same\"}", {3, {5, 5, 1}}},
        {"GlobalAveragePooling2D", "{}", {3, {3, 4, 2}}},
        {"GlobalAvgPool2D", "{\"keepdims\": true}", {3, {3, 4, 2}}},
        {"BatchNormalization", "{\"momentum\": 0.9}", {2, {3, 4}}},
        {"SpatialDropout1D", "{\"rate\": 0.4}", {2, {3, 4}}},
        {"SpatialDropout2D", "{\"rate\": 0.4}", {3, {2, 3, 4}}},
        {"GaussianDropout", "{\"rate\": 0.3}", {1, {6}}},
        {"AlphaDropout", "{\"rate\": 0.3}", {1, {6}}},
        {"GaussianNoise", "{\"stddev\": 0.5}", {1, {6}}},
        {"ReLU", "{\"max_value\": 1.0, \"negative_slope\": 0.1, \"threshold\": 0.2}", {2, {3, 4}}},
        {"LeakyReLU", "{\"negative_slope\": 0.2}", {1, {6}}},
        {"PReLU",
         "{\"alpha_initializer\": {\"class_name\": \"Constant\", \"config\": "
         "{\"value\": 0.25}}, \"shared_axes\": [1]}",
         {2, {3, 4}}},
        {"ELU", "{\"alpha\": 0.7}", {1, {6}}},
        {"Softmax", "{\"axis\": -1}", {2, {3, 4}}},
        {"LayerNormalization", "{\"axis\": [-1], \"epsilon\": 0.01}", {2, {3, 4}}},
        {"Rescaling", "{\"scale\": 0.5, \"offset\": -1.0}", {1, {6}}},
        {"Normalization", "{\"axis\": -1}", {2, {3, 4}}},
        {"Conv1D",
         "{\"filters\": 3, \"kernel_size\": 3, \"padding\": \"causal\", \"dilation_rate\": 2}",
         {2, {7, 2}}},
        {"Convolution1D", "{\"filters\": 2, \"kernel_size\": [2], \"strides\": 2}", {2, {6, 3}}},
        {"MaxPooling1D", "{\"pool_size\": 3, \"strides\": 2, \"padding\": \"same\"}", {2, {6, 2}}},
        {"MaxPool1D", "{}", {2, {5, 2}}},
        {"AveragePooling1D", "{\"pool_size\": [2], \"padding\": \"same\"}", {2, {5, 3}}},
        {"AvgPool1D", "{\"strides\": 1}", {2, {4, 2}}},
        {"GlobalAveragePooling1D", "{}", {2, {4, 3}}},
        {"GlobalAvgPool1D", "{\"keepdims\": true}", {2, {4, 3}}},
        {"GlobalMaxPooling1D", "{}", {2, {4, 3}}},
        {"GlobalMaxPool1D", "{\"keepdims\": true}", {2, {4, 3}}},
        {"GlobalMaxPooling2D", "{}", {3, {3, 2, 2}}},
        {"GlobalMaxPool2D", "{\"keepdims\": true}", {3, {2, 3, 2}}},
        {"Embedding", "{\"input_dim\": 7, \"output_dim\": 3}", {1, {5}}},
        {"ZeroPadding1D", "{\"padding\": [2, 1]}", {2, {3, 2}}},
        {"Cropping1D", "{\"cropping\": [1, 2]}", {2, {5, 2}}},
        {"UpSampling1D", "{\"size\": 3}", {2, {3, 2}}},
        {"RepeatVector", "{\"n\": 3}", {1, {4}}},
        {"ZeroPadding2D", "{\"padding\": [[1, 0], [2, 1]]}", {3, {3, 2, 2}}},
        {"Cropping2D", "{\"cropping\": [1, [0, 2]]}", {3, {4, 5, 2}}},
        {"UpSampling2D", "{\"size\": [2, 3]}", {3, {2, 2, 2}}},
        {"DepthwiseConv2D",
         "{\"kernel_size\": 3, \"padding\": \"same\", \"depth_multiplier\": 2, "
         "\"activation\": \"tanh\", \"depthwise_constraint\": \"max_norm\"}",
         {3, {4, 5, 2}}},
        {"SeparableConv2D",
         "{\"filters\": 3, \"kernel_size\": [2, 3], \"dilation_rate\": [2, 1], "
         "\"depth_multiplier\": 2}",
         {3, {5, 4, 2}}},
        {"SeparableConvolution2D",
         "{\"filters\": 2, \"kernel_size\": 2, \"strides\": 2}",
         {3, {4, 4, 3}}},
        {"ActivityRegularization", "{\"l1\": 0.01, \"l2\": 0.02}", {1, {6}}},
        {"SimpleRNN",
         "{\"units\": 3, \"dropout\": 0.2, \"recurrent_dropout\": 0.3, "
         "\"return_sequences\": true}",
         {2, {4, 3}}},
        {"LSTM", "{\"units\": 3, \"dropout\": 0.2, \"recurrent_dropout\": 0.3}", {2, {4, 3}}},
        {"GRU",
         "{\"units\": 3, \"go_backwards\": true, \"return_sequences\": true, "
         "\"dropout\": 0.25}",
         {2, {4, 3}}},
        {"Bidirectional",
         "{\"merge_mode\": \"mul\", \"layer\": {\"class_name\": \"LSTM\", "
         "\"config\": {\"units\": 2, \"return_sequences\": true}}}",
         {2, {4, 3}}},
    };
    *in = shape1(6);
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        if (!strcmp(cls, more[i].cls)) {
            *in = more[i].in;
            return more[i].cfg;
        }
    if (!strcmp(cls, "Dense"))
        return "{\"units\": 5, \"activation\": \"tanh\"}";
    if (!strcmp(cls, "Dropout"))
        return "{\"rate\": 0.3}";
    if (!strcmp(cls, "Activation"))
        return "{\"activation\": \"sigmoid\"}";
    if (!strcmp(cls, "Flatten"))
        return "{}";
    return NULL;
}

static void test_registry_generic(void **state) {
    (void)state;
    int n = 0;
    for (const char *const *c = dpt_layer_class_names(); *c; c++, n++) {
        dpt_shape in;
        const char *cfg = sample_config(*c, &in);
        if (!cfg)
            fail_msg("no sample config for registered layer %s", *c);
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(*c, cfg, in, &l));
        assert_true(strcmp(l->ops->class_name, *c) == 0 || strstr(*c, "2D") || strstr(*c, "1D") ||
                    strstr(*c, "Convolution"));
        assert_true(l->in_size == dpt_shape_size(&in));
        assert_true(l->out_size == dpt_shape_size(&l->out_shape));
        l->index = 2;
        gc_bind_params(l, 9);
        /* weights() describe exactly n_params floats */
        const char *names[8];
        dpt_shape shapes[8];
        int nw = dpt_layer_weights(l, names, shapes, 8);
        int64_t sum = 0;
        for (int i = 0; i < nw; i++)
            sum += dpt_shape_size(&shapes[i]);
        assert_true(sum == dpt_layer_n_params(l));
        /* gradient check in training mode (Dropout: a fixed mask) */
        gc_assert_ok(gc_check_layer(l, &train_pass, 4, 7), *c);
        /* to_json round trip */
        json_t *j = l->ops->to_json(l);
        assert_non_null(j);
        char *text = json_dumps(j, JSON_SORT_KEYS);
        dpt_layer *l2 = NULL;
        assert_ok(gc_make_layer(*c, text, in, &l2));
        json_t *j2 = l2->ops->to_json(l2);
        assert_true(json_equal(j, j2));
        assert_true(dpt_layer_n_params(l2) == dpt_layer_n_params(l));
        assert_true(l2->out_size == l->out_size);
        free(text);
        json_decref(j);
        json_decref(j2);
        gc_free_layer(&l2);
        gc_free_layer(&l);
    }
    assert_true(n >= 3);
    assert_null(dpt_layer_lookup("Conv3D"));
    assert_null(dpt_layer_lookup(NULL));
}

/* ---- Dropout -----------------------------------------------------------------------------------
 */

static void dropout_fraction(double rate) {
    enum { N = 1000000 };
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"rate\": %g}", rate);
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dropout", cfg, shape1(N / 4), &l));
    l->index = 1;
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    dpt_rng rng;
    dpt_rng_init(&rng, 3, 0);
    gc_fill_uniform(x, N, 0.5f, 2.0f, &rng); /* never 0: a 0 in y means dropped */
    l->ops->forward(l, &train_pass, x, y, 4);
    float scale = (float)(1.0 / (1.0 - rate));
    int64_t zeros = 0;
    for (int64_t k = 0; k < N; k++) {
        if (y[k] == 0.0f) {
            zeros++;
            continue;
        }
        if (y[k] != x[k] * scale)
            fail_msg("kept unit %lld: %g != %g * %g", (long long)k, y[k], x[k], scale);
        assert_true(fabsf(y[k] - x[k] / (float)(1.0 - rate)) <= 1e-6f * y[k]);
    }
    double sigma = sqrt(rate * (1 - rate) / N);
    double frac = (double)zeros / N;
    if (fabs(frac - rate) > 3 * sigma)
        fail_msg("rate %g: zeroed fraction %.5f, more than 3 sigma (%.5f) away", rate, frac, sigma);
    /* the fast path agrees with the reference function, element by element */
    for (int64_t k = 0; k < 20000; k++)
        assert_int_equal(y[k] != 0.0f, dpt_dropout_keep(&train_pass, 1, (uint64_t)k, (float)rate));
    free(x);
    free(y);
    gc_free_layer(&l);
}

static void test_dropout_fraction(void **state) {
    (void)state;
    dropout_fraction(0.5);
    dropout_fraction(0.2);
    /* the portable Philox path (where the SIMD one was used above) gives the same masks */
    dpt_dropout_force_generic(true);
    dropout_fraction(0.2);
    dpt_dropout_force_generic(false);
}

/* masks of n elements for a pass/layer: count positions that differ */
static int64_t mask_diff(const dpt_pass *a, uint32_t la, const dpt_pass *b, uint32_t lb,
                         int64_t n) {
    int64_t d = 0;
    for (int64_t k = 0; k < n; k++)
        d += dpt_dropout_keep(a, la, (uint64_t)k, 0.5f) !=
             dpt_dropout_keep(b, lb, (uint64_t)k, 0.5f);
    return d;
}

static void test_dropout_keys(void **state) {
    (void)state;
    enum { N = 4000 };
    dpt_pass p = train_pass;
    assert_int_equal(mask_diff(&p, 1, &p, 1, N), 0); /* same key and counter: same mask */
    dpt_pass q = p;
    q.rank = 2;
    assert_true(mask_diff(&p, 1, &q, 1, N) > N / 3); /* about half differ */
    q = p;
    q.step = p.step + 1;
    assert_true(mask_diff(&p, 1, &q, 1, N) > N / 3);
    q = p;
    q.step = p.step + ((uint64_t)1 << 32); /* the high word of the step counts */
    assert_true(mask_diff(&p, 1, &q, 1, N) > N / 3);
    q = p;
    q.stream = 1;
    assert_true(mask_diff(&p, 1, &q, 1, N) > N / 3);
    q = p;
    q.seed = p.seed + 1;
    assert_true(mask_diff(&p, 1, &q, 1, N) > N / 3);
    assert_true(mask_diff(&p, 1, &p, 3, N) > N / 3); /* another layer */
    /* rate 0 keeps all, the counter layout: word idx % 4 of block idx / 4 */
    for (int k = 0; k < 64; k++)
        assert_true(dpt_dropout_keep(&p, 1, (uint64_t)k, 0.0f));
    dpt_u32x4 c = {{5, 1, (uint32_t)p.step, 0}};
    dpt_u32x4 r = dpt_philox4x32_10(c, p.seed, p.rank ^ (p.stream << 20));
    for (int w = 0; w < 4; w++)
        assert_int_equal(dpt_dropout_keep(&p, 1, 20 + (uint64_t)w, 0.5f),
                         dpt_u32_to_unit(r.v[w]) >= 0.5f);
}

static void test_dropout_modes(void **state) {
    (void)state;
    enum { B = 3, N = 7 }; /* 21 elements: a partial Philox block at the end */
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": null, \"seed\": 5}",
                            shape1(N), &l));
    l->index = 4;
    float x[B * N], y[B * N], y2[B * N], dy[B * N], dx[B * N];
    for (int k = 0; k < B * N; k++)
        x[k] = (float)(k % 5) - 1.0f; /* includes zeros */
    /* inference: identity */
    dpt_pass inf = train_pass;
    inf.training = false;
    l->ops->forward(l, &inf, x, y, B);
    assert_memory_equal(x, y, sizeof x);
    /* training: deterministic, and backward recomputes the mask even where x == 0 */
    l->ops->forward(l, &train_pass, x, y, B);
    l->ops->forward(l, &train_pass, x, y2, B);
    assert_memory_equal(y, y2, sizeof y);
    for (int k = 0; k < B * N; k++)
        dy[k] = 1.0f + (float)k;
    l->ops->backward(l, &train_pass, x, y, dy, dx, B);
    int kept_zero_x = 0;
    for (int k = 0; k < B * N; k++) {
        bool keep = dpt_dropout_keep(&train_pass, 4, (uint64_t)k, 0.5f);
        assert_true(y[k] == (keep ? x[k] * 2.0f : 0.0f));
        assert_true(dx[k] == (keep ? (1.0f + (float)k) * 2.0f : 0.0f));
        kept_zero_x += keep && x[k] == 0.0f;
    }
    assert_true(kept_zero_x > 0); /* the case a y-based backward gets wrong is exercised */
    gc_free_layer(&l);
    /* rate 0: identity even in training */
    assert_ok(gc_make_layer("Dropout", "{\"rate\": 0}", shape1(N), &l));
    l->ops->forward(l, &train_pass, x, y, B);
    assert_memory_equal(x, y, sizeof x);
    gc_free_layer(&l);
}

static void test_dropout_config_errors(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Dropout", "{\"rate\": 1.5}", shape1(4), &l), DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.rate: must be in [0, 1), got 1.5");
    assert_status_msg(gc_make_layer("Dropout", "{\"rate\": 1}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.rate: must be in [0, 1), got 1");
    assert_status_msg(gc_make_layer("Dropout", "{\"rate\": -0.1}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.rate: must be in");
    assert_status_msg(gc_make_layer("Dropout", "{}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.rate: missing");
    assert_status_msg(
        gc_make_layer("Dropout", "{\"rate\": 0.5, \"noise_shape\": [null, 2]}", shape1(4), &l),
        DPT_ERR_CONFIG, "t.json: model.config.layers[3].config.noise_shape[1]: must be null, 1");
    assert_null(l);
}

/* ---- Dense config and initialisers ------------------------------------------------------------
 */

static void test_dense_config_errors(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    dpt_shape img = {.rank = 2, .dim = {28, 28}};
    /* on a (28, 28) input Dense acts on the last axis, as Keras's: (28, 10), a (28, 10) kernel */
    assert_ok(gc_make_layer("Dense", "{\"units\": 10}", img, &l));
    assert_int_equal(l->out_shape.rank, 2);
    assert_int_equal(l->out_shape.dim[0], 28);
    assert_int_equal(l->out_shape.dim[1], 10);
    assert_int_equal(l->ops->n_params(l), 28 * 10 + 10);
    dpt_layer_destroy(&l);
    dpt_shape none = {.rank = 0};
    assert_status_msg(gc_make_layer("Dense", "{\"units\": 10}", none, &l), DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config: input size 0 is out of range");
    assert_status_msg(gc_make_layer("Dense", "{\"units\": 0}", shape1(4), &l), DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.units: must be in [1,");
    assert_status_msg(gc_make_layer("Dense", "{\"units\": \"ten\"}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.units: must be an integer, got a string");
    assert_status_msg(gc_make_layer("Dense", "{}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.units: missing");
    assert_status_msg(
        gc_make_layer("Dense", "{\"units\": 3, \"activation\": \"celu\"}", shape1(4), &l),
        DPT_ERR_CONFIG, "config.activation: unknown activation \"celu\"");
    assert_status_msg(gc_make_layer("Dense", "{\"units\": 3, \"use_bias\": 1}", shape1(4), &l),
                      DPT_ERR_CONFIG, "config.use_bias: must be true or false");
    /* constraints: an unknown class is refused naming the key (test_conv2x.c has the rest) */
    const char *cons[] = {"kernel_constraint", "bias_constraint"};
    for (size_t i = 0; i < 2; i++) {
        char cfg[256], want[256];
        snprintf(cfg, sizeof cfg,
                 "{\"units\": 3, \"%s\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.01}}}",
                 cons[i]);
        snprintf(want, sizeof want,
                 "t.json: model.config.layers[3].config.%s: unknown constraint \"L2\"", cons[i]);
        assert_status_msg(gc_make_layer("Dense", cfg, shape1(4), &l), DPT_ERR_CONFIG, want);
    }
    assert_status_msg(gc_make_layer("Dense", "{\"units\": 3, \"lora_rank\": 4}", shape1(4), &l),
                      DPT_ERR_CONFIG, "config.lora_rank: not supported yet");
    assert_status_msg(gc_make_layer("Dense",
                                    "{\"units\": 3, \"kernel_initializer\": {\"class_name\": "
                                    "\"Identity\", \"config\": {\"gain\": 1.0}}}",
                                    shape1(4), &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.kernel_initializer: unknown "
                      "initializer \"Identity\"");
    assert_status_msg(
        gc_make_layer("Dense", "{\"units\": 3, \"bias_initializer\": 5}", shape1(4), &l),
        DPT_ERR_CONFIG, "config.bias_initializer: must be an initializer");
    assert_status_msg(gc_make_layer("Dense",
                                    "{\"units\": 3, \"kernel_initializer\": {\"class_name\": "
                                    "\"VarianceScaling\", \"config\": {\"mode\": \"fan_max\"}}}",
                                    shape1(4), &l),
                      DPT_ERR_CONFIG, "config.kernel_initializer.config.mode: must be one of");
    assert_status_msg(
        gc_make_layer("Dense", "{\"units\": 3, \"dtype\": \"float16\"}", shape1(4), &l),
        DPT_ERR_CONFIG, "config.dtype: only float32 is supported");
    assert_null(l);
    /* accepted forms of dtype */
    assert_ok(gc_make_layer("Dense",
                            "{\"units\": 3, \"dtype\": {\"module\": \"keras\", \"class_name\": "
                            "\"DTypePolicy\", \"config\": {\"name\": \"float32\"}}}",
                            shape1(4), &l));
    gc_free_layer(&l);
}

/* mean and variance of a Dense kernel (in, out) initialised from cfg */
static void kernel_stats(const char *cfg, int64_t in, double *lo, double *hi, double *mean,
                         double *var) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dense", cfg, shape1(in), &l));
    gc_bind_params(l, 21);
    int64_t units = l->out_size, n = in * units;
    *lo = 1e30, *hi = -1e30;
    double s = 0, s2 = 0;
    for (int64_t k = 0; k < n; k++) {
        double v = l->params[k];
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)n;
    *var = s2 / (double)n - *mean * *mean;
    for (int64_t j = 0; j < units; j++)
        assert_true(l->params[n + j] == 0.0f); /* zero bias */
    gc_free_layer(&l);
}

static void test_initializers(void **state) {
    (void)state;
    /* every spelling of glorot uniform: U(-l, l), l = sqrt(6 / (in + out)) */
    const char *glorot[] = {
        "{\"units\": 100}",
        "{\"units\": 100, \"kernel_initializer\": \"glorot_uniform\"}",
        "{\"units\": 100, \"kernel_initializer\": \"GlorotUniform\"}",
        "{\"units\": 100, \"kernel_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": "
        "{\"seed\": null}}}",
        "{\"units\": 100, \"kernel_initializer\": {\"module\": \"keras.initializers\", "
        "\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}, \"registered_name\": "
        "null}}",
        "{\"units\": 100, \"kernel_initializer\": {\"class_name\": \"VarianceScaling\", "
        "\"config\": "
        "{\"scale\": 1.0, \"mode\": \"fan_avg\", \"distribution\": \"uniform\", \"seed\": null}}}",
    };
    double l = sqrt(6.0 / (200 + 100)), lo, hi, mean, var;
    for (size_t i = 0; i < sizeof glorot / sizeof glorot[0]; i++) {
        kernel_stats(glorot[i], 200, &lo, &hi, &mean, &var);
        assert_true(lo >= -l && hi <= l);
        assert_true(lo < -0.99 * l && hi > 0.99 * l);
        assert_true(fabs(mean) < 0.01 * l);
        assert_true(fabs(var / (l * l / 3) - 1) < 0.02);
    }
    kernel_stats("{\"units\": 10, \"kernel_initializer\": \"zeros\"}", 20, &lo, &hi, &mean, &var);
    assert_true(lo == 0 && hi == 0);
    kernel_stats("{\"units\": 50, \"kernel_initializer\": {\"class_name\": \"RandomUniform\", "
                 "\"config\": {\"minval\": -0.05, \"seed\": null, \"maxval\": 0.05}}}",
                 200, &lo, &hi, &mean, &var);
    assert_true(lo >= -0.05 && hi <= 0.05 && lo < -0.049 && hi > 0.049);
    kernel_stats("{\"units\": 100, \"kernel_initializer\": {\"class_name\": \"RandomNormal\", "
                 "\"config\": {\"mean\": 1.0, \"stddev\": 0.5}}}",
                 200, &lo, &hi, &mean, &var);
    assert_true(fabs(mean - 1.0) < 0.01 && fabs(sqrt(var) - 0.5) < 0.01);
    kernel_stats("{\"units\": 100, \"kernel_initializer\": \"he_normal\"}", 200, &lo, &hi, &mean,
                 &var);
    double sd = sqrt(2.0 / 200);
    assert_true(fabs(sqrt(var) / sd - 1) < 0.03);
    assert_true(lo >= -2 * sd / 0.87962566103423978 && hi <= 2 * sd / 0.87962566103423978);
    /* bias_initializer */
    dpt_layer *d = NULL;
    assert_ok(gc_make_layer("Dense",
                            "{\"units\": 4, \"bias_initializer\": {\"class_name\": \"Constant\", "
                            "\"config\": {\"value\": 0.25}}}",
                            shape1(3), &d));
    gc_bind_params(d, 1);
    for (int j = 0; j < 4; j++)
        assert_true(d->params[12 + j] == 0.25f);
    gc_free_layer(&d);
}

static void test_activation_and_flatten_layers(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Activation", "{}", shape1(4), &l), DPT_ERR_CONFIG,
                      "config.activation: missing");
    assert_status_msg(gc_make_layer("Activation", "{\"activation\": \"celu\"}", shape1(4), &l),
                      DPT_ERR_CONFIG, "unknown activation \"celu\"");
    dpt_shape img = {.rank = 3, .dim = {4, 5, 2}};
    assert_ok(gc_make_layer("Flatten", "{\"data_format\": \"channels_last\"}", img, &l));
    assert_true(l->out_size == 40 && l->out_shape.rank == 1 && l->out_shape.dim[0] == 40);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("Flatten", "{\"data_format\": \"channels_first\"}", img, &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\"");
    assert_ok(gc_make_layer("Activation", "{\"activation\": \"relu\"}", img, &l));
    assert_true(l->out_size == 40 && l->out_shape.rank == 3);
    gc_free_layer(&l);
}

static void test_shape_size(void **state) {
    (void)state;
    dpt_shape s = {.rank = 3, .dim = {4, 5, 6}};
    assert_true(dpt_shape_size(&s) == 120);
    dpt_shape e = {.rank = 0};
    assert_true(dpt_shape_size(&e) == 1);
    dpt_shape big = {.rank = 3, .dim = {(int64_t)1 << 30, (int64_t)1 << 30, (int64_t)1 << 30}};
    assert_true(dpt_shape_size(&big) < 0);
}

/* ---- the model ---------------------------------------------------------------------------------
 */

static const char *tutorial_layers =
    "[{\"class_name\": \"Dense\", \"config\": {\"units\": 64, \"activation\": \"relu\"}, "
    "\"_path\": \"model.config.layers[1]\"},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.5}, \"_path\": "
    "\"model.config.layers[2]\"},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 64, \"activation\": \"relu\"}, "
    "\"_path\": \"model.config.layers[3]\"},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.5}, \"_path\": "
    "\"model.config.layers[4]\"},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": \"sigmoid\"}, "
    "\"_path\": \"model.config.layers[5]\"}]";

static dpt_status make_model(const char *layers, dpt_shape in, int64_t max_batch, uint32_t seed,
                             dpt_model **m) {
    json_t *j = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_status st = dpt_model_create(j, &in, max_batch, seed, &ctx, m);
    json_decref(j);
    return st;
}

static void test_model_tutorial(void **state) {
    (void)state;
    dpt_model *m = NULL;
    assert_ok(make_model(tutorial_layers, shape1(20), 32, 7, &m));
    assert_int_equal(dpt_model_n_layers(m), 5);
    assert_true(dpt_model_n_params(m) == 5569);
    assert_true(dpt_model_input_size(m) == 20 && dpt_model_output_size(m) == 1);
    assert_true(dpt_model_max_batch(m) == 32);
    assert_true(dpt_model_input_shape(m)->rank == 1 && dpt_model_input_shape(m)->dim[0] == 20);
    const char *names[] = {"dense", "dropout", "dense_1", "dropout_1", "dense_2"};
    int64_t offsets[] = {0, 1344, 1344, 5504, 5504};
    int64_t ins[] = {20, 64, 64, 64, 64};
    for (int i = 0; i < 5; i++) {
        dpt_layer *l = dpt_model_layer(m, i);
        assert_string_equal(l->name, names[i]);
        assert_int_equal(l->index, i);
        assert_true(l->in_size == ins[i]);
        if (dpt_layer_n_params(l)) {
            assert_true(l->param_offset == offsets[i]);
            assert_ptr_equal(l->params, dpt_model_params(m) + offsets[i]);
            assert_ptr_equal(l->grads, dpt_model_grads(m) + offsets[i]);
        }
    }
    char buf[4096];
    int n = dpt_model_summary(m, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n == strlen(buf));
    assert_non_null(strstr(buf, "Total params: 5,569"));
    assert_non_null(strstr(buf, "Trainable params: 5,569"));
    assert_non_null(strstr(buf, "Non-trainable params: 0"));
    assert_non_null(strstr(buf, "dense_2 (Dense)"));
    assert_non_null(strstr(buf, "(None, 64)"));
    assert_non_null(strstr(buf, "Output Shape"));
    /* truncation reports the full length, like snprintf */
    char small[16];
    assert_int_equal(dpt_model_summary(m, small, sizeof small), n);
    assert_int_equal(strlen(small), 15);
    /* parameters: the same for the same seed, different for another */
    dpt_model *m2 = NULL, *m3 = NULL;
    assert_ok(make_model(tutorial_layers, shape1(20), 4, 7, &m2));
    assert_ok(make_model(tutorial_layers, shape1(20), 4, 8, &m3));
    assert_memory_equal(dpt_model_params(m), dpt_model_params(m2), 5569 * sizeof(float));
    assert_memory_not_equal(dpt_model_params(m), dpt_model_params(m3), 1344 * sizeof(float));
    /* biases start at zero, kernels within the glorot limit */
    const float *p = dpt_model_params(m);
    for (int j = 0; j < 64; j++)
        assert_true(p[1280 + j] == 0.0f);
    float lim = sqrtf(6.0f / 84.0f);
    for (int k = 0; k < 1280; k++)
        assert_true(fabsf(p[k]) <= lim);
    dpt_model_destroy(&m);
    dpt_model_destroy(&m2);
    dpt_model_destroy(&m3);
    assert_null(m);
    dpt_model_destroy(&m); /* NULL-safe */
}

static double model_f(dpt_model *m, const dpt_pass *p, const float *x, const float *w, int64_t B) {
    const float *out = dpt_model_forward(m, p, x, B);
    double f = 0;
    for (int64_t k = 0; k < B * dpt_model_output_size(m); k++)
        f += (double)out[k] * w[k];
    return f;
}

static void test_model_grad_check(void **state) {
    (void)state;
    enum { B = 5 };
    dpt_model *m = NULL;
    assert_ok(make_model(tutorial_layers, shape1(20), B, 3, &m));
    dpt_rng rng;
    dpt_rng_init(&rng, 17, 0);
    float x[B * 20], w[B], dout[B];
    gc_fill_uniform(x, B * 20, 0.0f, 1.0f, &rng);
    gc_fill_uniform(w, B, -1.0f, 1.0f, &rng);
    float *params = dpt_model_params(m), *grads = dpt_model_grads(m);
    /* non-zero biases so every parameter matters */
    for (int64_t k = 0; k < dpt_model_n_params(m); k++)
        params[k] += 0.05f * (dpt_rng_uniform(&rng) - 0.5f);
    dpt_pass p = {.training = true, .seed = 99, .rank = 0, .step = 5};
    dpt_model_zero_grads(m);
    dpt_model_forward(m, &p, x, B);
    memcpy(dout, w, sizeof w);
    dpt_model_backward(m, &p, dout, B);
    gc_result r = {0};
    const float eps = 1e-3f;
    double f0 = model_f(m, &p, x, w, B);
    int zero_grads = 0;
    for (int64_t k = 0; k < dpt_model_n_params(m); k++) {
        float save = params[k];
        params[k] = save + eps;
        double fp = model_f(m, &p, x, w, B);
        params[k] = save - eps;
        double fm = model_f(m, &p, x, w, B);
        params[k] = save;
        gc_compare(&r, grads[k], fm, f0, fp, eps);
        zero_grads += grads[k] == 0.0f;
    }
    gc_assert_ok(r, "tutorial model");
    /* dropout is on: many hidden units are dropped, so many gradients are exactly 0 */
    assert_true(zero_grads > 100 && zero_grads < dpt_model_n_params(m));
    /* zero_grads clears (lazily: dpt_model_grads settles it), backward accumulates */
    dpt_model_zero_grads(m);
    grads = dpt_model_grads(m);
    for (int64_t k = 0; k < dpt_model_n_params(m); k++)
        assert_true(grads[k] == 0.0f);
    /* an empty batch does nothing */
    dpt_model_forward(m, &p, x, 0);
    dpt_model_backward(m, &p, dout, 0);
    /* the lazy zeroing: a backward after zero_grads WRITES (Dense, beta 0) over stale values and
     * gives the same bytes as one on zeroed memory; without zero_grads it accumulates */
    int64_t np = dpt_model_n_params(m);
    float *g1 = malloc(sizeof(float) * (size_t)np);
    assert_non_null(g1);
    dpt_model_forward(m, &p, x, B);
    memcpy(dout, w, sizeof w);
    dpt_model_backward(m, &p, dout, B); /* onto zeros (settled above) */
    memcpy(g1, dpt_model_grads(m), sizeof(float) * (size_t)np);
    dpt_model_forward(m, &p, x, B);
    memcpy(dout, w, sizeof w);
    dpt_model_backward(m, &p, dout, B); /* accumulates: 2 g1 */
    grads = dpt_model_grads(m);
    for (int64_t k = 0; k < np; k++) /* (sgemm's beta 1 adds in its own order: rounding) */
        assert_float_equal(grads[k], 2.0f * g1[k], 1e-6f * (1.0f + fabsf(2.0f * g1[k])));
    dpt_model_zero_grads(m);
    dpt_model_forward(m, &p, x, B);
    memcpy(dout, w, sizeof w);
    dpt_model_backward(m, &p, dout, B); /* over the stale 2 g1 */
    assert_memory_equal(dpt_model_grads(m), g1, sizeof(float) * (size_t)np);
    dpt_model_zero_grads(m); /* and a backward with no samples leaves zeros */
    dpt_model_forward(m, &p, x, 0);
    dpt_model_backward(m, &p, dout, 0);
    grads = dpt_model_grads(m);
    for (int64_t k = 0; k < np; k++)
        assert_true(grads[k] == 0.0f);
    free(g1);
    dpt_model_destroy(&m);
}

static void test_model_first_layer_without_params(void **state) {
    (void)state;
    dpt_model *m = NULL;
    const char *layers = "[{\"class_name\": \"Flatten\", \"config\": {}},"
                         " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},"
                         " {\"class_name\": \"Dense\", \"config\": {\"units\": 10, \"activation\": "
                         "\"softmax\"}}]";
    dpt_shape img = {.rank = 2, .dim = {28, 28}};
    assert_ok(make_model(layers, img, 8, 1, &m));
    assert_true(dpt_model_n_params(m) == 7850);
    assert_true(dpt_model_input_size(m) == 784 && dpt_model_output_size(m) == 10);
    float *x = calloc(8 * 784, sizeof(float));
    for (int k = 0; k < 8 * 784; k++)
        x[k] = (float)(k % 13) / 13.0f;
    dpt_pass p = {.training = true, .seed = 1};
    const float *out = dpt_model_forward(m, &p, x, 8);
    for (int i = 0; i < 8; i++) {
        float s = 0;
        for (int j = 0; j < 10; j++)
            s += out[i * 10 + j];
        assert_float_equal(s, 1.0f, 1e-5f);
    }
    float dout[80];
    for (int k = 0; k < 80; k++)
        dout[k] = 0.1f;
    dpt_model_zero_grads(m);
    dpt_model_backward(m, &p, dout, 8);
    char buf[2048];
    dpt_model_summary(m, buf, sizeof buf);
    assert_non_null(strstr(buf, "flatten (Flatten)"));
    assert_non_null(strstr(buf, "(None, 784)"));
    assert_non_null(strstr(buf, "7,850"));
    free(x);
    dpt_model_destroy(&m);
}

static void test_model_errors(void **state) {
    (void)state;
    dpt_model *m = NULL;
    assert_status_msg(
        make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 4}, "
                   "\"_path\": \"model.config.layers[1]\"}, {\"class_name\": "
                   "\"Conv3D\", \"config\": {}, \"_path\": \"model.config.layers[2]\"}]",
                   shape1(3), 4, 0, &m),
        DPT_ERR_CONFIG,
        "x.json: model.config.layers[2].class_name: unknown layer \"Conv3D\" "
        "(known: Dense, Dropout, Activation");
    assert_null(m);
    dpt_shape img = {.rank = 2, .dim = {28, 28}};
    assert_status_msg(make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 4}}, "
                                 "{\"class_name\": \"Embedding\", \"config\": {\"input_dim\": 4, "
                                 "\"output_dim\": 2}, \"_path\": \"model.config.layers[1]\"}]",
                                 img, 4, 0, &m),
                      DPT_ERR_CONFIG,
                      "x.json: model.config.layers[1]: Embedding must be the first layer");
    /* without _path the entry is named by its index */
    assert_status_msg(make_model("[{\"class_name\": \"Dropout\", \"config\": {\"rate\": 2}}]",
                                 shape1(3), 4, 0, &m),
                      DPT_ERR_CONFIG, "x.json: layers[0].config.rate: must be in [0, 1)");
    assert_status_msg(make_model("[{\"config\": {}}]", shape1(3), 4, 0, &m), DPT_ERR_CONFIG,
                      "layers[0].class_name: missing");
    assert_status_msg(make_model("[]", shape1(3), 4, 0, &m), DPT_ERR_CONFIG, "no layers");
    assert_status_msg(make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 4, "
                                 "\"name\": \"d\"}}, {\"class_name\": \"Dense\", \"config\": "
                                 "{\"units\": 4, \"name\": \"d\"}}]",
                                 shape1(3), 4, 0, &m),
                      DPT_ERR_CONFIG, "layers[1].config.name: duplicate layer name \"d\"");
    /* absurd sizes are refused before allocating */
    assert_status_msg(
        make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 1073741824}}]",
                   shape1(1 << 20), 1, 0, &m),
        DPT_ERR_NOMEM, "layers[0]: this layer needs");
    assert_status_msg(make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 4}}]",
                                 shape1(3), 0, 0, &m),
                      DPT_ERR_USAGE, "batch size");
    assert_null(m);
    /* explicit names are kept and defaults skip them */
    assert_ok(make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 4}},"
                         " {\"class_name\": \"Dense\", \"config\": {\"units\": 4, \"name\": "
                         "\"dense\"}}]",
                         shape1(3), 4, 0, &m));
    assert_string_equal(dpt_model_layer(m, 0)->name, "dense_1");
    assert_string_equal(dpt_model_layer(m, 1)->name, "dense");
    dpt_model_destroy(&m);
}

static void test_model_fused_head(void **state) {
    (void)state;
    enum { B = 6 };
    dpt_model *m = NULL;
    assert_ok(make_model(tutorial_layers, shape1(20), B, 5, &m));
    float x[B * 20], probs[B];
    dpt_rng rng;
    dpt_rng_init(&rng, 1, 0);
    gc_fill_uniform(x, B * 20, -1.0f, 1.0f, &rng);
    dpt_pass p = {.training = false};
    assert_int_equal(dpt_model_head_act(m), DPT_ACT_LINEAR);
    memcpy(probs, dpt_model_forward(m, &p, x, B), sizeof probs);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_MSE), DPT_ACT_LINEAR);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_CATEGORICAL_CROSSENTROPY),
                     DPT_ACT_LINEAR);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_BINARY_CROSSENTROPY), DPT_ACT_SIGMOID);
    assert_int_equal(dpt_model_head_act(m), DPT_ACT_SIGMOID);
    float logits[B];
    memcpy(logits, dpt_model_forward(m, &p, x, B), sizeof logits);
    for (int i = 0; i < B; i++) {
        float s = logits[i];
        dpt_act_forward(DPT_ACT_SIGMOID, &s, 1, 1);
        assert_float_equal(s, probs[i], 1e-6f);
    }
    /* the fused loss gradient equals the unfused one (no clipping in play) */
    float t[B] = {0, 1, 1, 0, 1, 0}, dout[B];
    double l1 = 0, l2 = 0;
    p.training = true;
    p.seed = 3;
    dpt_model_zero_grads(m);
    const float *out = dpt_model_forward(m, &p, x, B);
    assert_ok(dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_SIGMOID, out, t, B, 1, dout,
                               &l1, NULL));
    dpt_model_backward(m, &p, dout, B);
    int64_t np = dpt_model_n_params(m);
    float *g1 = malloc((size_t)np * sizeof(float));
    memcpy(g1, dpt_model_grads(m), (size_t)np * sizeof(float));
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_MSE), DPT_ACT_LINEAR); /* unfuses */
    dpt_model_zero_grads(m);
    out = dpt_model_forward(m, &p, x, B);
    assert_ok(dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, out, t, B, 1, dout,
                               &l2, NULL));
    dpt_model_backward(m, &p, dout, B);
    assert_float_equal(l1, l2, 1e-5 * fabs(l1));
    const float *g2 = dpt_model_grads(m);
    for (int64_t k = 0; k < np; k++)
        assert_float_equal(g1[k], g2[k], 1e-4f + 1e-3f * fabsf(g1[k]));
    free(g1);
    dpt_model_destroy(&m);

    /* a softmax Activation layer after a linear Dense (Keras 2.3 style) fuses with CE */
    const char *soft = "[{\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": "
                       "\"linear\"}}, {\"class_name\": \"Activation\", \"config\": "
                       "{\"activation\": \"softmax\"}}]";
    assert_ok(make_model(soft, shape1(4), 2, 1, &m));
    float xs[8] = {1, 2, 3, 4, -1, 0.5f, 0, 2}, pr[6];
    p.training = false;
    memcpy(pr, dpt_model_forward(m, &p, xs, 2), sizeof pr);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_BINARY_CROSSENTROPY), DPT_ACT_LINEAR);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY),
                     DPT_ACT_SOFTMAX);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_CATEGORICAL_CROSSENTROPY),
                     DPT_ACT_SOFTMAX);
    float lg[6];
    memcpy(lg, dpt_model_forward(m, &p, xs, 2), sizeof lg);
    dpt_act_forward(DPT_ACT_SOFTMAX, lg, 2, 3);
    for (int k = 0; k < 6; k++)
        assert_float_equal(lg[k], pr[k], 1e-6f);
    dpt_model_destroy(&m);
}

/* the OpenBLAS kernel advice: only generic kernels on capable CPUs get a better coretype */
static void test_blas_coretype_advice(void **state) {
    (void)state;
    assert_string_equal(dpt_blas_coretype_advice("Prescott", true, true), "SkylakeX");
    assert_string_equal(dpt_blas_coretype_advice("Prescott", false, true), "Haswell");
    assert_string_equal(dpt_blas_coretype_advice("Nehalem", false, true), "Haswell");
    assert_string_equal(dpt_blas_coretype_advice(NULL, true, false), "SkylakeX");
    assert_null(dpt_blas_coretype_advice("Prescott", false, false)); /* nothing better exists */
    assert_null(dpt_blas_coretype_advice("SkylakeX", true, true));
    assert_null(dpt_blas_coretype_advice("Zen", false, true));
    assert_null(dpt_blas_coretype_advice("Haswell", true, true)); /* a real choice: left alone */
    assert_non_null(dpt_blas_corename());
    /* this machine: advice only when its own kernel is generic */
    const char *better = dpt_blas_better_coretype();
    assert_true(better == NULL || dpt_blas_coretype_advice(dpt_blas_corename(), true, true));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_names),
        cmocka_unit_test(test_act_stable),
        cmocka_unit_test(test_act_backward),
        cmocka_unit_test(test_grad_check_self_test),
        cmocka_unit_test(test_grad_dense_each_activation),
        cmocka_unit_test(test_grad_dense_accumulates),
        cmocka_unit_test(test_registry_generic),
        cmocka_unit_test(test_dropout_fraction),
        cmocka_unit_test(test_dropout_keys),
        cmocka_unit_test(test_dropout_modes),
        cmocka_unit_test(test_dropout_config_errors),
        cmocka_unit_test(test_dense_config_errors),
        cmocka_unit_test(test_initializers),
        cmocka_unit_test(test_activation_and_flatten_layers),
        cmocka_unit_test(test_shape_size),
        cmocka_unit_test(test_model_tutorial),
        cmocka_unit_test(test_model_grad_check),
        cmocka_unit_test(test_model_first_layer_without_params),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_model_fused_head),
        cmocka_unit_test(test_blas_coretype_advice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
