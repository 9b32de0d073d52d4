/* Unit tests of the activations and the activation / normalisation layers: every activation's
 * forward and derivative at sample points against values computed by Keras 3.15 (JAX: the
 * function and jax.grad), finite-difference checks of every kind's backward (from y, or from the
 * pre-activation z), Dense / Conv2D / Activation with each activation (the fused kernel keeps z in
 * the workspace), the layers ReLU, LeakyReLU, PReLU, ELU, Softmax, LayerNormalization, Rescaling,
 * Normalization (forward against Keras's values, gradient checks, config errors), Keras 2's
 * hard_sigmoid by keras_version, a model that mixes them, and AlphaDropout's self-normalising
 * statistics after a selu Dense with lecun_normal weights. No MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/nn_internal.h"
#include "testutil.h"

static dpt_shape shape1(int64_t n) { return (dpt_shape){.rank = 1, .dim = {n}}; }
static dpt_shape shape2(int64_t a, int64_t b) { return (dpt_shape){.rank = 2, .dim = {a, b}}; }

static const dpt_pass train_pass = {.training = true, .seed = 1234, .rank = 1, .step = 77};
static const dpt_pass infer_pass = {.training = false, .seed = 1234, .rank = 1, .step = 77};

/* ---- activations against Keras ------------------------------------------------------------- */

enum { NP = 10 };
static const float points[NP] = {-5, -2.5f, -1.5f, -0.5f, -0.1f, 0.1f, 0.5f, 1.5f, 2.5f, 5};
/* keras.activations.<name>(x) and jax.grad of it at `points` (JAX backend, float32); Keras 2's
 * hard_sigmoid is its closed form clip(0.2 x + 0.5, 0, 1) */
static const struct {
    dpt_act a;
    float y[NP], dy[NP];
} keras_ref[] = {
    {DPT_ACT_GELU,
     {-1.43325792e-06f, -0.0155241648f, -0.100210831f, -0.154268771f, -0.0460172184f, 0.0539827831f,
      0.345731229f, 1.39978921f, 2.48447585f, 4.99999857f},
     {-7.1469467e-06f, -0.0376110896f, -0.127469182f, 0.13250488f, 0.420476913f, 0.579523087f,
      0.86749512f, 1.12746918f, 1.03761113f, 1.00000715f}},
    {DPT_ACT_GELU_TANH,
     {-0.0f, -0.0150842965f, -0.100428432f, -0.154285997f, -0.0460172519f, 0.0539827533f,
      0.345714003f, 1.39957154f, 2.48491573f, 5.0f},
     {0.0f, -0.0379517339f, -0.127710804f, 0.13263011f, 0.420478225f, 0.579521775f, 0.86736995f,
      1.12771082f, 1.03795171f, 1.0f}},
    {DPT_ACT_ELU,
     {-0.993262053f, -0.917914987f, -0.776869833f, -0.393469334f, -0.095162563f, 0.100000001f, 0.5f,
      1.5f, 2.5f, 5.0f},
     {0.00673794746f, 0.0820850134f, 0.223130167f, 0.606530666f, 0.90483743f, 1.0f, 1.0f, 1.0f,
      1.0f, 1.0f}},
    {DPT_ACT_SELU,
     {-1.74625337f, -1.61378574f, -1.36581433f, -0.691758215f, -0.167305246f, 0.105070107f,
      0.525350511f, 1.57605147f, 2.62675261f, 5.25350523f},
     {0.0118459808f, 0.144313604f, 0.392284989f, 1.06634116f, 1.59079409f, 1.05070102f, 1.05070102f,
      1.05070102f, 1.05070102f, 1.05070102f}},
    {DPT_ACT_SOFTPLUS,
     {0.00671534846f, 0.078889735f, 0.201413289f, 0.474076986f, 0.644396663f, 0.744396687f,
      0.974076986f, 1.70141327f, 2.57888985f, 5.0067153f},
     {0.00669285096f, 0.0758581683f, 0.182425529f, 0.377540678f, 0.475020796f, 0.524979174f,
      0.622459352f, 0.817574501f, 0.924141705f, 0.993307173f}},
    {DPT_ACT_SOFTSIGN,
     {-0.833333313f, -0.714285731f, -0.600000024f, -0.333333343f, -0.0909090936f, 0.0909090936f,
      0.333333343f, 0.600000024f, 0.714285731f, 0.833333313f},
     {0.0277777761f, 0.0816326737f, 0.160000011f, 0.444444478f, 0.826446235f, 0.826446235f,
      0.444444478f, 0.160000011f, 0.0816326737f, 0.0277777761f}},
    {DPT_ACT_SWISH,
     {-0.0334642529f, -0.189645439f, -0.273638308f, -0.188770339f, -0.0475020818f, 0.0524979196f,
      0.311229676f, 1.22636163f, 2.31035447f, 4.96653605f},
     {-0.0265474338f, -0.0994011015f, -0.0412941724f, 0.260038823f, 0.450083196f, 0.549916804f,
      0.739961207f, 1.0412941f, 1.09940112f, 1.02654731f}},
    {DPT_ACT_LEAKY_RELU,
     {-1.0f, -0.5f, -0.300000012f, -0.100000001f, -0.0200000014f, 0.100000001f, 0.5f, 1.5f, 2.5f,
      5.0f},
     {0.200000003f, 0.200000003f, 0.200000003f, 0.200000003f, 0.200000003f, 1.0f, 1.0f, 1.0f, 1.0f,
      1.0f}},
    {DPT_ACT_RELU6,
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.100000001f, 0.5f, 1.5f, 2.5f, 5.0f},
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f}},
    {DPT_ACT_HARD_SIGMOID,
     {0.0f, 0.0833333358f, 0.25f, 0.416666687f, 0.483333349f, 0.516666651f, 0.583333373f, 0.75f,
      0.916666687f, 1.0f},
     {0.0f, 0.166666672f, 0.166666672f, 0.166666672f, 0.166666672f, 0.166666672f, 0.166666672f,
      0.166666672f, 0.166666672f, 0.0f}},
    {DPT_ACT_HARD_SILU,
     {-0.0f, -0.208333343f, -0.375f, -0.208333343f, -0.0483333357f, 0.0516666658f, 0.291666687f,
      1.125f, 2.29166675f, 5.0f},
     {0.0f, -0.333333343f, 0.0f, 0.333333343f, 0.466666669f, 0.533333302f, 0.666666687f, 1.0f,
      1.33333337f, 1.0f}},
    {DPT_ACT_EXPONENTIAL,
     {0.006737947f, 0.0820849985f, 0.223130167f, 0.606530666f, 0.90483743f, 1.10517097f,
      1.64872122f, 4.48168898f, 12.1824942f, 148.413162f},
     {0.006737947f, 0.0820849985f, 0.223130167f, 0.606530666f, 0.90483743f, 1.10517097f,
      1.64872122f, 4.48168898f, 12.1824942f, 148.413162f}},
    {DPT_ACT_MISH,
     {-0.0335762352f, -0.196816176f, -0.298099697f, -0.220743775f, -0.0567885749f, 0.0631794184f,
      0.375245243f, 1.40337825f, 2.47139239f, 4.99955225f},
     {-0.0267475005f, -0.109743565f, -0.0640978366f, 0.289510667f, 0.535702825f, 0.663336813f,
      0.886424422f, 1.08848798f, 1.04112935f, 1.00079966f}},
    {DPT_ACT_RELU,
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.100000001f, 0.5f, 1.5f, 2.5f, 5.0f},
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f}},
    {DPT_ACT_SIGMOID,
     {0.00669285096f, 0.0758581758f, 0.182425529f, 0.377540678f, 0.475020796f, 0.524979174f,
      0.622459352f, 0.817574441f, 0.924141824f, 0.993307173f},
     {0.00664805667f, 0.0701037124f, 0.149146467f, 0.23500371f, 0.249376059f, 0.249376044f,
      0.23500371f, 0.149146467f, 0.0701037124f, 0.00664803293f}},
    {DPT_ACT_TANH,
     {-0.999909163f, -0.986614347f, -0.905148208f, -0.462117165f, -0.0996679887f, 0.0996679887f,
      0.462117165f, 0.905148208f, 0.986614347f, 0.999909163f},
     {0.000181674957f, 0.0265921354f, 0.180706739f, 0.786447763f, 0.99006635f, 0.99006629f,
      0.786447704f, 0.180706725f, 0.0265921317f, 0.000181666706f}},
    {DPT_ACT_HARD_SIGMOID_K2,
     {0.0f, 0.0f, 0.199999988f, 0.400000006f, 0.479999989f, 0.519999981f, 0.600000024f,
      0.800000012f, 1.0f, 1.0f},
     {0.0f, 0.0f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.0f, 0.0f}},
};

static void test_act_keras_values(void **state) {
    (void)state;
    bool seen[DPT_ACT_COUNT] = {false};
    for (size_t i = 0; i < sizeof keras_ref / sizeof keras_ref[0]; i++) {
        dpt_act a = keras_ref[i].a;
        seen[a] = true;
        float z[NP], y[NP], ones[NP], dz[NP];
        memcpy(z, points, sizeof z);
        memcpy(y, points, sizeof y);
        dpt_act_forward(a, y, 1, NP);
        for (int k = 0; k < NP; k++)
            ones[k] = 1.0f;
        dpt_act_backward_z(a, z, y, ones, dz, 1, NP);
        for (int k = 0; k < NP; k++) {
            float ry = keras_ref[i].y[k], rd = keras_ref[i].dy[k];
            if (fabsf(y[k] - ry) > 2e-6f + 2e-6f * fabsf(ry))
                fail_msg("%s(%g) = %.9g, Keras %.9g", dpt_act_name(a), points[k], y[k], ry);
            if (fabsf(dz[k] - rd) > 5e-6f + 2e-5f * fabsf(rd)) /* tanh saturates at 1 in XLA */
                fail_msg("%s'(%g) = %.9g, Keras %.9g", dpt_act_name(a), points[k], dz[k], rd);
        }
        /* the fused bias pass gives the same values, and keeps z when the kind needs it */
        float yb[NP], zb[NP], bias[NP];
        for (int k = 0; k < NP; k++) {
            yb[k] = points[k] - 0.25f;
            bias[k] = 0.25f;
            zb[k] = NAN;
        }
        dpt_act_bias_forward_z(a, yb, bias, zb, 1, NP);
        for (int k = 0; k < NP; k++) {
            assert_float_equal(yb[k], y[k], 1e-6f * (1 + fabsf(y[k])));
            if (dpt_act_needs_z(a))
                assert_float_equal(zb[k], points[k], 1e-6f);
        }
    }
    /* every kind except the row-wise ones is in the table */
    for (int a = 0; a < DPT_ACT_COUNT; a++)
        if (!seen[a] && a != DPT_ACT_LINEAR && a != DPT_ACT_SOFTMAX && a != DPT_ACT_LOG_SOFTMAX)
            fail_msg("no Keras reference values for %s", dpt_act_name((dpt_act)a));
    /* log_softmax of one row: Keras's values; exp of it is softmax */
    float r[4] = {1.0f, -2.0f, 0.5f, 3.0f}, s[4];
    memcpy(s, r, sizeof s);
    dpt_act_forward(DPT_ACT_LOG_SOFTMAX, r, 1, 4);
    dpt_act_forward(DPT_ACT_SOFTMAX, s, 1, 4);
    const float ref[4] = {-2.20225358f, -5.20225334f, -2.70225358f, -0.202253491f};
    for (int j = 0; j < 4; j++) {
        assert_float_equal(r[j], ref[j], 1e-6f);
        assert_float_equal(expf(r[j]), s[j], 1e-6f);
    }
    /* stable far out */
    float big[4] = {1000.0f, 999.0f, -1000.0f, 0.0f};
    dpt_act_forward(DPT_ACT_LOG_SOFTMAX, big, 1, 4);
    assert_float_equal(big[0], -0.31326169f, 1e-6f);
    float far[3] = {-100.0f, 100.0f, 1e4f};
    dpt_act_forward(DPT_ACT_SOFTPLUS, far, 1, 3);
    assert_true(far[0] > 0.0f && far[0] < 1e-40f + 4e-44f + 1e-30f);
    assert_float_equal(far[1], 100.0f, 0.0f);
    assert_float_equal(far[2], 1e4f, 0.0f);
}

static void test_act_names_and_forms(void **state) {
    (void)state;
    dpt_act a;
    static const struct {
        const char *name;
        dpt_act act;
    } alias[] = {{"swish", DPT_ACT_SWISH},
                 {"silu", DPT_ACT_SWISH},
                 {"hard_swish", DPT_ACT_HARD_SILU},
                 {"hard_silu", DPT_ACT_HARD_SILU},
                 {"gelu", DPT_ACT_GELU},
                 {"log_softmax", DPT_ACT_LOG_SOFTMAX}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++) {
        assert_true(dpt_act_from_name(alias[i].name, &a));
        assert_int_equal(a, alias[i].act);
    }
    assert_false(dpt_act_from_name("celu", &a));
    assert_string_equal(dpt_act_name(DPT_ACT_GELU_TANH), "gelu");
    assert_string_equal(dpt_act_name(DPT_ACT_HARD_SIGMOID_K2), "hard_sigmoid");
    /* the forms a config may use */
    dpt_json_ctx ctx = {.file = "t.json", .path = "layers[0].config"};
    static const struct {
        const char *json;
        dpt_act act;
    } ok[] = {
        {"{\"activation\": \"selu\"}", DPT_ACT_SELU},
        {"{\"activation\": {\"module\": \"keras.activations\", \"class_name\": \"function\", "
         "\"config\": \"mish\", \"registered_name\": \"function\"}}",
         DPT_ACT_MISH},
        {"{\"activation\": {\"class_name\": \"elu\", \"config\": {}}}", DPT_ACT_ELU},
        {"{\"activation\": {\"class_name\": \"gelu\", \"config\": {\"approximate\": true}}}",
         DPT_ACT_GELU_TANH},
        {"{\"activation\": {\"class_name\": \"gelu\", \"config\": {\"approximate\": false}}}",
         DPT_ACT_GELU},
        {"{\"activation\": \"hard_sigmoid\"}", DPT_ACT_HARD_SIGMOID},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_t *j = gc_parse(ok[i].json);
        assert_ok(dpt_json_get_act(j, "activation", &ctx, DPT_ACT_LINEAR, &a));
        assert_int_equal(a, ok[i].act);
        /* dpt_act_to_json gives a form that parses back to the same kind */
        json_t *back = json_pack("{s:o}", "activation", dpt_act_to_json(a));
        dpt_act b;
        assert_ok(dpt_json_get_act(back, "activation", &ctx, DPT_ACT_LINEAR, &b));
        assert_int_equal(b, a);
        json_decref(back);
        json_decref(j);
    }
    /* Keras 2 models (keras_version 2.x): hard_sigmoid is clip(0.2 z + 0.5) */
    dpt_json_ctx k2 = ctx;
    k2.keras_major = 2;
    json_t *j = gc_parse("{\"activation\": \"hard_sigmoid\"}");
    assert_ok(dpt_json_get_act(j, "activation", &k2, DPT_ACT_LINEAR, &a));
    assert_int_equal(a, DPT_ACT_HARD_SIGMOID_K2);
    json_decref(j);
    assert_ok(dpt_act_require_y(DPT_ACT_ELU, &ctx, "activation"));
    assert_status_msg(dpt_act_require_y(DPT_ACT_MISH, &ctx, "recurrent_activation"), DPT_ERR_CONFIG,
                      "t.json: layers[0].config.recurrent_activation: activation \"mish\" is not "
                      "supported here (its derivative needs the pre-activation)");
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"activation\": \"sparsemax\"}",
         "t.json: layers[0].config.activation: unknown activation \"sparsemax\" (known: linear, "
         "relu, sigmoid, tanh, softmax, gelu, elu, selu"},
        {"{\"activation\": {\"module\": \"keras.layers\", \"class_name\": \"LeakyReLU\", "
         "\"config\": {\"negative_slope\": 0.1}}}",
         "config.activation: a layer object (\"LeakyReLU\") as an activation is not supported"},
        {"{\"activation\": {\"class_name\": \"leaky_relu\", \"config\": {\"negative_slope\": "
         "0.1}}}",
         "config.activation.config.negative_slope: not supported for activation \"leaky_relu\""},
        {"{\"activation\": {\"class_name\": \"gelu\", \"config\": {\"approximate\": 1}}}",
         "config.activation.config.approximate: not supported"},
        {"{\"activation\": {\"class_name\": \"gelu\", \"config\": [1]}}",
         "config.activation.config: must be an object"},
        {"{\"activation\": 3}", "config.activation: must be an activation name, got"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = gc_parse(bad[i].json);
        assert_status_msg(dpt_json_get_act(j, "activation", &ctx, DPT_ACT_LINEAR, &a),
                          DPT_ERR_CONFIG, bad[i].msg);
        json_decref(j);
    }
}

/* every kind's backward against central differences of its forward, away from kinks; the y-only
 * entry point agrees with the z one where the derivative is a function of y */
static void test_act_finite_differences(void **state) {
    (void)state;
    enum { B = 3, N = 5 };
    dpt_rng rng;
    dpt_rng_init(&rng, 8, 0);
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        float z[B * N], y[B * N], w[B * N], dz[B * N], dz2[B * N];
        gc_fill_uniform(z, B * N, -4.0f, 4.0f, &rng);
        gc_fill_uniform(w, B * N, -1.0f, 1.0f, &rng);
        memcpy(y, z, sizeof y);
        dpt_act_forward((dpt_act)a, y, B, N);
        dpt_act_backward_z((dpt_act)a, z, y, w, dz, B, N);
        if (!dpt_act_needs_z((dpt_act)a)) {
            memcpy(dz2, w, sizeof w);
            dpt_act_backward((dpt_act)a, y, dz2, dz2, B, N); /* in place, z not given */
            for (int k = 0; k < B * N; k++)
                assert_float_equal(dz2[k], dz[k], 0.0f);
        }
        gc_result r = {0};
        for (int k = 0; k < B * N; k++) {
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

/* Dense, Conv2D and Activation with every activation: gradient checks through the layers (the
 * workspace keeps z for gelu, swish, hard_silu, mish) */
static void test_layers_each_activation(void **state) {
    (void)state;
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        char act[96], cfg[256];
        json_t *aj = dpt_act_to_json((dpt_act)a);
        char *as = json_dumps(aj, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(act, sizeof act, "%s", as);
        free(as);
        json_decref(aj);
        bool k2 = a == DPT_ACT_HARD_SIGMOID_K2;
        for (int bias = 0; bias < 2; bias++) {
            snprintf(cfg, sizeof cfg, "{\"units\": 4, \"activation\": %s, \"use_bias\": %s}", act,
                     bias ? "true" : "false");
            dpt_layer *l = NULL;
            assert_ok(gc_make_layer("Dense", cfg, shape1(5), &l));
            if (k2)
                ((void)0); /* the string names Keras 3's form; K2 is covered by the model test */
            assert_true((l->work != NULL) == dpt_act_needs_z((dpt_act)a) || k2);
            gc_bind_params(l, 3);
            for (int64_t k = 20; k < dpt_layer_n_params(l); k++)
                l->params[k] = 0.1f * (float)(k - 21); /* biases that matter */
            gc_assert_ok(gc_check_layer(l, &train_pass, 3, (uint64_t)a), act);
            gc_free_layer(&l);
        }
        snprintf(cfg, sizeof cfg,
                 "{\"filters\": 3, \"kernel_size\": 2, \"padding\": \"same\", \"activation\": %s}",
                 act);
        dpt_layer *c = NULL;
        assert_ok(gc_make_layer("Conv2D", cfg, (dpt_shape){3, {3, 4, 2}}, &c));
        gc_bind_params(c, 4);
        gc_assert_ok(gc_check_layer(c, &train_pass, 2, (uint64_t)a), act);
        gc_free_layer(&c);
        snprintf(cfg, sizeof cfg, "{\"activation\": %s}", act);
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer("Activation", cfg, shape1(6), &l));
        gc_assert_ok(gc_check_layer(l, &train_pass, 3, (uint64_t)a), act);
        gc_free_layer(&l);
    }
    dpt_layer *l = NULL;
    assert_status_msg(
        gc_make_layer("Activation", "{\"activation\": \"log_softmax\"}", shape2(3, 4), &l),
        DPT_ERR_CONFIG, "log_softmax needs a flat input, got shape (3, 4)");
}

/* ---- activation layers --------------------------------------------------------------------- */

enum { NX = 8 };
static const float xs[NX] = {-2.0f, -0.5f, 0.0f, 0.3f, 0.7f, 1.2f, 2.0f, 4.0f};

/* forward of one (1, NX) sample against Keras 3.15's layer output */
static void check_forward(const char *cls, const char *cfg, const float ref[NX]) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer(cls, cfg, shape1(NX), &l));
    gc_bind_params(l, 1);
    float y[NX];
    l->ops->forward(l, &infer_pass, xs, y, 1);
    for (int k = 0; k < NX; k++)
        if (fabsf(y[k] - ref[k]) > 1e-6f + 1e-6f * fabsf(ref[k]))
            fail_msg("%s %s: y[%d] = %.9g, Keras %.9g", cls, cfg, k, y[k], ref[k]);
    gc_free_layer(&l);
}

static void test_activation_layers(void **state) {
    (void)state;
    /* values printed by keras.layers.<cls>(...)(xs) */
    const float relu_ref[NX] = {-0.22000001f, -0.07f, -0.020000001f, 0.3f, 0.7f, 1.0f, 1.0f, 1.0f};
    check_forward("ReLU", "{\"max_value\": 1.0, \"negative_slope\": 0.1, \"threshold\": 0.2}",
                  relu_ref);
    const float leaky_ref[NX] = {-0.6f, -0.15f, 0.0f, 0.3f, 0.7f, 1.2f, 2.0f, 4.0f};
    check_forward("LeakyReLU", "{}", leaky_ref);               /* Keras 3 default 0.3 */
    check_forward("LeakyReLU", "{\"alpha\": 0.3}", leaky_ref); /* Keras 2's key */
    check_forward("LeakyReLU", "{\"negative_slope\": 0.3}", leaky_ref);
    const float elu_ref[NX] = {-0.60526532f, -0.27542853f, 0.0f, 0.3f, 0.7f, 1.2f, 2.0f, 4.0f};
    check_forward("ELU", "{\"alpha\": 0.7}", elu_ref);
    float plain[NX];
    for (int k = 0; k < NX; k++)
        plain[k] = xs[k] > 0 ? xs[k] : 0.0f;
    check_forward("ReLU", "{}", plain);
    check_forward("PReLU", "{}", plain); /* alpha zeros */
    for (int k = 0; k < NX; k++)
        plain[k] = xs[k] > 0 ? fminf(xs[k], 6.0f) : 0.0f;
    check_forward("ReLU", "{\"max_value\": 6}", plain);
    for (int k = 0; k < NX; k++)
        plain[k] = xs[k] * 0.5f - 1.0f;
    check_forward("Rescaling", "{\"scale\": 0.5, \"offset\": -1.0}", plain);
    const float ln_ref[NX] = {-1.62770033f, -0.72758955f, -0.42755261f, -0.24753045f,
                              -0.00750092f, 0.29253605f,  0.77259517f,  1.97274292f};
    check_forward("LayerNormalization", "{}", ln_ref);

    /* gradient checks, including shapes with leading axes */
    static const struct {
        const char *cls, *cfg;
        dpt_shape in;
    } g[] = {
        {"ReLU", "{}", {1, {6}}},
        {"ReLU", "{\"max_value\": 1.0, \"negative_slope\": 0.1, \"threshold\": 0.2}", {2, {3, 4}}},
        {"ReLU", "{\"max_value\": 0.8, \"negative_slope\": 0.3}", {1, {6}}},
        {"LeakyReLU", "{\"alpha\": 0.1}", {2, {3, 4}}},
        {"PReLU", "{\"alpha_initializer\": \"glorot_uniform\"}", {2, {3, 4}}},
        {"PReLU",
         "{\"alpha_initializer\": \"glorot_uniform\", \"shared_axes\": [1, 2]}",
         {3, {2, 3, 4}}},
        {"PReLU",
         "{\"alpha_initializer\": \"glorot_uniform\", \"shared_axes\": 2}",
         {3, {2, 3, 4}}},
        {"ELU", "{}", {1, {6}}},
        {"ELU", "{\"alpha\": 0.5}", {2, {3, 4}}},
        {"Softmax", "{}", {1, {6}}},
        {"Softmax", "{\"axis\": 2}", {2, {3, 4}}},
        {"LayerNormalization", "{}", {1, {6}}},
        {"LayerNormalization", "{\"axis\": 2, \"center\": false}", {2, {3, 4}}},
        {"LayerNormalization", "{\"axis\": -1, \"scale\": false, \"epsilon\": 0.1}", {2, {3, 4}}},
        {"LayerNormalization",
         "{\"gamma_initializer\": {\"class_name\": \"RandomNormal\", \"config\": {\"mean\": 1.0, "
         "\"stddev\": 0.3}}, \"beta_initializer\": \"glorot_uniform\"}",
         {2, {3, 4}}},
        {"Rescaling", "{\"scale\": 0.00392156862745098}", {1, {6}}},
        {"Normalization",
         "{\"mean\": [0.5, -1, 2, 0], \"variance\": [4, 0.25, 1, 1e-20]}",
         {2, {3, 4}}},
        {"Normalization", "{}", {2, {3, 4}}},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(g[i].cls, g[i].cfg, g[i].in, &l));
        gc_bind_params(l, 5 + i);
        char what[192];
        snprintf(what, sizeof what, "%s %s", g[i].cls, g[i].cfg);
        gc_assert_ok(gc_check_layer(l, &train_pass, 3, i), what);
        gc_free_layer(&l);
    }
}

static void test_prelu_weights(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("PReLU", "{\"shared_axes\": [1, 2]}", (dpt_shape){3, {4, 5, 3}}, &l));
    const char *names[4];
    dpt_shape shapes[4];
    assert_int_equal(dpt_layer_weights(l, names, shapes, 4), 1);
    assert_string_equal(names[0], "alpha");
    assert_int_equal(shapes[0].rank, 3);
    assert_true(shapes[0].dim[0] == 1 && shapes[0].dim[1] == 1 && shapes[0].dim[2] == 3);
    assert_int_equal(dpt_layer_n_params(l), 3);
    gc_bind_params(l, 1);
    for (int c = 0; c < 3; c++)
        assert_true(l->params[c] == 0.0f); /* alpha_initializer zeros */
    l->params[0] = 0.5f;
    l->params[1] = 0.25f;
    l->params[2] = -1.0f;
    float x[60], y[60];
    for (int k = 0; k < 60; k++)
        x[k] = -1.0f - (float)k;
    l->ops->forward(l, &infer_pass, x, y, 1);
    for (int k = 0; k < 60; k++)
        assert_float_equal(y[k], x[k] * l->params[k % 3], 1e-6f);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("PReLU", "{\"shared_axes\": [0]}", shape2(3, 4), &l),
                      DPT_ERR_CONFIG, "config.shared_axes: each axis must be an integer in [1, 2]");
    assert_status_msg(gc_make_layer("PReLU",
                                    "{\"alpha_constraint\": {\"class_name\": \"NonNeg\", "
                                    "\"config\": {}}}",
                                    shape1(4), &l),
                      DPT_ERR_CONFIG, "config.alpha_constraint: not supported yet");
    /* a regularized alpha adds its penalty */
    assert_ok(gc_make_layer("PReLU",
                            "{\"alpha_initializer\": \"ones\", \"alpha_regularizer\": "
                            "{\"class_name\": \"L2\", \"config\": {\"l2\": 0.5}}}",
                            shape1(4), &l));
    gc_bind_params(l, 1);
    assert_true(l->has_regularizer);
    assert_float_equal(l->ops->regularize(l, 0.0f), 2.0, 1e-6);
    gc_free_layer(&l);
}

static void test_layer_config_errors(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    static const struct {
        const char *cls, *cfg, *msg;
    } bad[] = {
        {"Softmax", "{\"axis\": 1}",
         "t.json: model.config.layers[3].config.axis: only the last axis (-1 or 2) is supported, "
         "got 1"},
        {"LayerNormalization", "{\"axis\": [1, 2]}",
         "config.axis: only the last axis (-1 or 2) is supported, got [1,2]"},
        {"LayerNormalization", "{\"rms_scaling\": true}", "config.rms_scaling: not supported"},
        {"LayerNormalization", "{\"epsilon\": 0}", "config.epsilon: must be > 0"},
        {"LayerNormalization", "{\"gamma_constraint\": {\"class_name\": \"NonNeg\"}}",
         "config.gamma_constraint: not supported yet"},
        {"Normalization", "{\"invert\": true}", "config.invert: not supported (must be false)"},
        {"Normalization", "{\"axis\": null}", "config.axis: null (one mean and variance"},
        {"Normalization", "{\"axis\": [1]}", "config.axis: only the last axis"},
        {"Normalization", "{\"mean\": 1.0}", "config.variance: mean and variance must both be set"},
        {"Normalization", "{\"mean\": [1, 2], \"variance\": [1, 2]}",
         "config.mean: must be a number or a list of 1 or 4 numbers (the last axis), got 2"},
        {"Normalization", "{\"mean\": 0, \"variance\": -1}",
         "config.variance: must be finite and >= 0, got -1"},
        {"Rescaling", "{}", "config.scale: missing (a number)"},
        {"Rescaling", "{\"scale\": [0.5, 0.5, 0.5, 0.5]}",
         "config.scale: only a number is supported (per-channel values are not), got an array"},
        {"ReLU", "{\"max_value\": -1}", "config.max_value: must be in"},
        {"ReLU", "{\"negative_slope\": -0.1}", "config.negative_slope: must be in"},
        {"LeakyReLU", "{\"alpha\": -0.1}", "config.alpha: must be in"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_status_msg(gc_make_layer(bad[i].cls, bad[i].cfg, shape2(3, 4), &l), DPT_ERR_CONFIG,
                          bad[i].msg);
}

/* the configs tf.keras 2.x writes for these layers (dtype strings, Keras 2 key names,
 * LayerNormalization's axis made positive by build) */
static void test_keras2_forms(void **state) {
    (void)state;
    static const struct {
        const char *cls, *cfg;
    } k2[] = {
        {"LeakyReLU", "{\"name\": \"leaky_re_lu\", \"trainable\": true, \"dtype\": \"float32\", "
                      "\"alpha\": 0.30000001192092896}"},
        {"ReLU",
         "{\"name\": \"re_lu\", \"trainable\": true, \"dtype\": \"float32\", \"max_value\": "
         "6.0, \"negative_slope\": 0.0, \"threshold\": 0.0}"},
        {"ELU", "{\"name\": \"elu\", \"trainable\": true, \"dtype\": \"float32\", \"alpha\": 1.0}"},
        {"PReLU",
         "{\"name\": \"p_re_lu\", \"trainable\": true, \"dtype\": \"float32\", "
         "\"alpha_initializer\": {\"class_name\": \"Zeros\", \"config\": {}}, "
         "\"alpha_regularizer\": null, \"alpha_constraint\": null, \"shared_axes\": null}"},
        {"Softmax", "{\"name\": \"softmax\", \"trainable\": true, \"dtype\": \"float32\", "
                    "\"axis\": -1}"},
        {"LayerNormalization",
         "{\"name\": \"layer_normalization\", \"trainable\": true, \"dtype\": \"float32\", "
         "\"axis\": [1], \"epsilon\": 0.001, \"center\": true, \"scale\": true, "
         "\"beta_initializer\": {\"class_name\": \"Zeros\", \"config\": {}}, "
         "\"gamma_initializer\": {\"class_name\": \"Ones\", \"config\": {}}, "
         "\"beta_regularizer\": null, \"gamma_regularizer\": null, \"beta_constraint\": null, "
         "\"gamma_constraint\": null}"},
        {"Normalization", "{\"name\": \"normalization\", \"trainable\": true, \"dtype\": "
                          "\"float32\", \"axis\": [-1], \"mean\": null, \"variance\": null, "
                          "\"invert\": false}"},
        {"Rescaling", "{\"name\": \"rescaling\", \"trainable\": true, \"dtype\": \"float32\", "
                      "\"scale\": 0.00392156862745098, \"offset\": 0.0}"},
    };
    for (size_t i = 0; i < sizeof k2 / sizeof k2[0]; i++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(k2[i].cls, k2[i].cfg, shape1(6), &l));
        assert_string_equal(l->ops->class_name, k2[i].cls);
        gc_free_layer(&l);
    }
}

/* Normalization: config constants (no weights) or Keras's non-trainable mean/variance/count */
static void test_normalization(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Normalization", "{\"mean\": [1, 2], \"variance\": 4}", shape1(2), &l));
    assert_int_equal(dpt_layer_n_params(l), 0);
    float x[4] = {3, 2, -1, 6}, y[4];
    l->ops->forward(l, &infer_pass, x, y, 2);
    assert_float_equal(y[0], 1.0f, 1e-7f);
    assert_float_equal(y[1], 0.0f, 1e-7f);
    assert_float_equal(y[2], -1.0f, 1e-7f);
    assert_float_equal(y[3], 2.0f, 1e-7f);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("Normalization", "{\"axis\": [-1]}", shape2(2, 3), &l));
    const char *names[4];
    dpt_shape shapes[4];
    assert_int_equal(dpt_layer_weights(l, names, shapes, 4), 3);
    assert_string_equal(names[0], "mean");
    assert_string_equal(names[1], "variance");
    assert_string_equal(names[2], "count");
    assert_int_equal(shapes[2].rank, 0);
    assert_int_equal(dpt_layer_n_params(l), 7);
    assert_int_equal(l->ops->n_trainable(l), 0);
    gc_bind_params(l, 1);
    for (int c = 0; c < 3; c++) {
        assert_true(l->params[c] == 0.0f && l->params[3 + c] == 1.0f);
        l->params[c] = (float)c;
        l->params[3 + c] = 0.0f; /* variance 0: Keras divides by epsilon 1e-7 */
    }
    float a[6] = {0, 1, 2, 1, 1, 1}, b[6];
    l->ops->forward(l, &infer_pass, a, b, 1);
    for (int k = 0; k < 6; k++)
        assert_float_equal(b[k], (a[k] - (float)(k % 3)) / 1e-7f, 1e-2f);
    gc_free_layer(&l);
}

/* ---- models ---------------------------------------------------------------------------------- */

static double model_f(dpt_model *m, const dpt_pass *p, const float *x, const float *w, int64_t B) {
    const float *y = dpt_model_forward(m, p, x, B);
    double f = 0;
    for (int64_t k = 0; k < B * dpt_model_output_size(m); k++)
        f += (double)y[k] * w[k];
    return f;
}

/* a model mixing the new kinds: the model carves the Dense workspace; gradients of every
 * parameter against central differences */
static void test_model_mixed(void **state) {
    (void)state;
    enum { B = 4, IN = 6 };
    const char *layers =
        "[{\"class_name\": \"Rescaling\", \"config\": {\"scale\": 0.5}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 7, \"activation\": \"gelu\"}},"
        " {\"class_name\": \"LayerNormalization\", \"config\": {\"axis\": [-1]}},"
        " {\"class_name\": \"PReLU\", \"config\": {\"alpha_initializer\": {\"class_name\": "
        "\"Constant\", \"config\": {\"value\": 0.2}}}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 5, \"activation\": \"mish\"}},"
        " {\"class_name\": \"ELU\", \"config\": {}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 4, \"activation\": \"swish\"}},"
        " {\"class_name\": \"LeakyReLU\", \"config\": {}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 3}},"
        " {\"class_name\": \"Softmax\", \"config\": {}}]";
    json_t *lj = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config"};
    dpt_model *m = NULL;
    dpt_shape in = shape1(IN);
    assert_ok(dpt_model_create(lj, &in, B, 7, &ctx, &m));
    json_decref(lj);
    assert_true(dpt_model_layer(m, 1)->work != NULL); /* gelu keeps z */
    assert_true(dpt_model_layer(m, 8)->work == NULL);
    dpt_rng rng;
    dpt_rng_init(&rng, 3, 0);
    float x[B * IN], w[B * 3], dout[B * 3];
    gc_fill_uniform(x, B * IN, -2.0f, 2.0f, &rng);
    gc_fill_uniform(w, B * 3, -1.0f, 1.0f, &rng);
    float *params = dpt_model_params(m);
    for (int64_t k = 0; k < dpt_model_n_params(m); k++)
        params[k] += 0.1f * (dpt_rng_uniform(&rng) - 0.5f);
    dpt_model_zero_grads(m);
    dpt_model_forward(m, &train_pass, x, B);
    memcpy(dout, w, sizeof w);
    dpt_model_backward(m, &train_pass, dout, B);
    float *grads = dpt_model_grads(m);
    gc_result r = {0};
    const float eps = 1e-3f;
    double f0 = model_f(m, &train_pass, x, w, B);
    for (int64_t k = 0; k < dpt_model_n_params(m); k++) {
        float save = params[k];
        params[k] = save + eps;
        double fp = model_f(m, &train_pass, x, w, B);
        params[k] = save - eps;
        double fm = model_f(m, &train_pass, x, w, B);
        params[k] = save;
        gc_compare(&r, grads[k], fm, f0, fp, eps);
    }
    gc_assert_ok(r, "mixed model");
    dpt_model_destroy(&m);
}

/* keras_version 2.x in the config: Dense's "hard_sigmoid" is Keras 2's clip(0.2 z + 0.5) */
static void test_keras2_hard_sigmoid(void **state) {
    (void)state;
    for (int v = 2; v <= 3; v++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"model\": {\"class_name\": \"Sequential\", %s \"config\": {\"layers\": ["
                 "{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": "
                 "\"hard_sigmoid\", \"kernel_initializer\": \"ones\", \"batch_input_shape\": "
                 "[null, 1]}}]}},"
                 " \"compile\": {\"loss\": \"mse\"}, \"data\": {\"path\": \"x.h5\"}}",
                 v == 2 ? "\"keras_version\": \"2.15.0\", \"backend\": \"tensorflow\"," : "");
        dpt_config c;
        assert_ok(dpt_config_parse(text, strlen(text), "k.json", &c));
        dpt_json_ctx ctx = {.file = "k.json"};
        dpt_model *m = NULL;
        assert_ok(dpt_model_create(c.layers, &c.input_shape, 1, 1, &ctx, &m));
        float x = 1.5f;
        const float *y = dpt_model_forward(m, &infer_pass, &x, 1);
        assert_float_equal(y[0], v == 2 ? 0.8f : 0.75f, 1e-6f);
        dpt_model_destroy(&m);
        dpt_config_deinit(&c);
    }
}

/* AlphaDropout with selu and lecun_normal (the self-normalising recipe): a wide selu Dense with
 * lecun_normal weights keeps a standard normal input at mean 0, variance 1, and AlphaDropout in
 * training keeps those moments (Keras's affine correction a, b). */
static void test_selu_alpha_dropout_stats(void **state) {
    (void)state;
    enum { B = 64, N = 512 };
    const char *layers =
        "[{\"class_name\": \"Dense\", \"config\": {\"units\": 512, \"activation\": \"selu\", "
        "\"kernel_initializer\": {\"class_name\": \"LecunNormal\", \"config\": {\"seed\": null}}}},"
        " {\"class_name\": \"AlphaDropout\", \"config\": {\"rate\": 0.2}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 512, \"activation\": \"selu\", "
        "\"kernel_initializer\": \"lecun_normal\"}}]";
    json_t *lj = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config"};
    dpt_model *m = NULL;
    dpt_shape in = shape1(N);
    assert_ok(dpt_model_create(lj, &in, B, 11, &ctx, &m));
    json_decref(lj);
    float *x = malloc(sizeof(float) * B * N);
    assert_non_null(x);
    dpt_rng rng;
    dpt_rng_init(&rng, 4, 0);
    for (int k = 0; k < B * N; k += 2) { /* Box-Muller */
        double u1 = 1.0 - dpt_rng_uniform(&rng), u2 = dpt_rng_uniform(&rng);
        x[k] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
        x[k + 1] = (float)(sqrt(-2 * log(u1)) * sin(6.283185307179586 * u2));
    }
    for (int pass = 0; pass < 2; pass++) {
        const dpt_pass *p = pass ? &train_pass : &infer_pass;
        dpt_model_forward(m, p, x, B);
        for (int layer = 0; layer < 3; layer++) {
            const float *h = NULL;
            /* each layer's output: forward through a prefix is the model's acts; recompute */
            dpt_layer *l0 = dpt_model_layer(m, 0);
            float *a0 = malloc(sizeof(float) * B * N), *a1 = malloc(sizeof(float) * B * N);
            float *a2 = malloc(sizeof(float) * B * N);
            l0->ops->forward(l0, p, x, a0, B);
            dpt_layer *l1 = dpt_model_layer(m, 1);
            l1->ops->forward(l1, p, a0, a1, B);
            dpt_layer *l2 = dpt_model_layer(m, 2);
            l2->ops->forward(l2, p, a1, a2, B);
            h = layer == 0 ? a0 : layer == 1 ? a1 : a2;
            double s = 0, s2 = 0;
            for (int k = 0; k < B * N; k++) {
                s += h[k];
                s2 += (double)h[k] * h[k];
            }
            double mean = s / (B * N), var = s2 / (B * N) - mean * mean;
            if (fabs(mean) > 0.1 || fabs(var - 1.0) > 0.15)
                fail_msg("%s pass, layer %d: mean %.4f, variance %.4f (want 0, 1)",
                         pass ? "training" : "inference", layer, mean, var);
            free(a0);
            free(a1);
            free(a2);
        }
    }
    free(x);
    dpt_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_keras_values),
        cmocka_unit_test(test_act_names_and_forms),
        cmocka_unit_test(test_act_finite_differences),
        cmocka_unit_test(test_layers_each_activation),
        cmocka_unit_test(test_activation_layers),
        cmocka_unit_test(test_prelu_weights),
        cmocka_unit_test(test_layer_config_errors),
        cmocka_unit_test(test_keras2_forms),
        cmocka_unit_test(test_normalization),
        cmocka_unit_test(test_model_mixed),
        cmocka_unit_test(test_keras2_hard_sigmoid),
        cmocka_unit_test(test_selu_alpha_dropout_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
