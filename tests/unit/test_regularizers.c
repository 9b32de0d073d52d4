/* Unit tests of the weight regularizers: every Keras form (strings, legacy {"class_name",
 * "config"}, Keras 3 objects), their defaults (L1/L2 0.01, Keras 2's l1_l2 0.01 each, the L1L2
 * class 0 each), errors with JSON paths, the penalty without a 1/2 factor and its gradient
 * (checked by finite differences), the JSON written back, and the model-level sum
 * (dpt_model_regularize / dpt_model_penalty) over Dense, Conv2D and BatchNormalization, frozen
 * layers included in the penalty but not in the gradient. No MPI.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

static dpt_status reg_from(const char *obj_json, dpt_regularizer *r) {
    json_t *o = gc_parse(obj_json);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config.layers[1].config"};
    dpt_status st = dpt_regularizer_parse(o, "kernel_regularizer", &ctx, r);
    json_decref(o);
    return st;
}

static void test_forms(void **state) {
    (void)state;
    dpt_regularizer r;
    assert_ok(reg_from("{}", &r));
    assert_int_equal(r.kind, DPT_REG_NONE);
    assert_ok(reg_from("{\"kernel_regularizer\": null}", &r));
    assert_int_equal(r.kind, DPT_REG_NONE);
    assert_ok(reg_from("{\"kernel_regularizer\": \"l2\"}", &r));
    assert_true(r.kind == DPT_REG_L2 && r.l2 == 0.01 && r.l1 == 0);
    assert_ok(reg_from("{\"kernel_regularizer\": \"l1\"}", &r));
    assert_true(r.kind == DPT_REG_L1 && r.l1 == 0.01 && r.l2 == 0);
    assert_ok(reg_from("{\"kernel_regularizer\": \"l1_l2\"}", &r));
    assert_true(r.kind == DPT_REG_L1L2 && r.l1 == 0.01 && r.l2 == 0.01);
    assert_ok(reg_from("{\"kernel_regularizer\": \"L1L2\"}", &r));
    assert_true(r.kind == DPT_REG_L1L2 && r.l1 == 0 && r.l2 == 0);
    /* Keras 2 legacy form, float32 round trip in the value (dl4j fixture) */
    assert_ok(reg_from("{\"kernel_regularizer\": {\"class_name\": \"L1L2\", \"config\": {\"l1\": "
                       "0.0, \"l2\": 0.009999999776482582}}}",
                       &r));
    assert_true(r.kind == DPT_REG_L1L2 && r.l1 == 0 && r.l2 == 0.009999999776482582);
    /* Keras 3 form */
    assert_ok(reg_from("{\"kernel_regularizer\": {\"module\": \"keras.regularizers\", "
                       "\"class_name\": \"L2\", \"config\": {\"l2\": 0.05}, \"registered_name\": "
                       "null}}",
                       &r));
    assert_true(r.kind == DPT_REG_L2 && r.l2 == 0.05);
    assert_ok(reg_from("{\"kernel_regularizer\": {\"class_name\": \"L1\", \"config\": {}}}", &r));
    assert_true(r.kind == DPT_REG_L1 && r.l1 == 0.01);
    /* written back in the legacy form, read again identically */
    json_t *j =
        dpt_regularizer_to_json(&(dpt_regularizer){.kind = DPT_REG_L1L2, .l1 = 0.5, .l2 = 0.25});
    json_t *wrap = json_pack("{s:o}", "kernel_regularizer", j);
    char *text = json_dumps(wrap, 0);
    assert_ok(reg_from(text, &r));
    assert_true(r.kind == DPT_REG_L1L2 && r.l1 == 0.5 && r.l2 == 0.25);
    free(text);
    json_decref(wrap);
    json_t *n = dpt_regularizer_to_json(&(dpt_regularizer){.kind = DPT_REG_NONE});
    assert_true(json_is_null(n));
    json_decref(n);
}

static void test_errors(void **state) {
    (void)state;
    dpt_regularizer r;
    assert_status_msg(reg_from("{\"kernel_regularizer\": \"l3\"}", &r), DPT_ERR_CONFIG,
                      "t.json: model.config.layers[1].config.kernel_regularizer: unknown "
                      "regularizer \"l3\"");
    assert_status_msg(
        reg_from("{\"kernel_regularizer\": {\"class_name\": \"Orthogonal\", \"config\": {}}}", &r),
        DPT_ERR_CONFIG,
        "t.json: model.config.layers[1].config.kernel_regularizer.class_name: unknown "
        "regularizer \"Orthogonal\"");
    assert_status_msg(
        reg_from("{\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": -1}}}",
                 &r),
        DPT_ERR_CONFIG,
        "t.json: model.config.layers[1].config.kernel_regularizer.config.l2: must be a number "
        ">= 0, got -1");
    assert_status_msg(
        reg_from("{\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l1\": 0.1}}}",
                 &r),
        DPT_ERR_CONFIG, "kernel_regularizer.config.l1: unknown key for L2");
    assert_status_msg(reg_from("{\"kernel_regularizer\": 0.01}", &r), DPT_ERR_CONFIG,
                      "kernel_regularizer: must be null, a name (\"l2\") or a Keras regularizer "
                      "object");
    assert_status_msg(reg_from("{\"kernel_regularizer\": {\"config\": {}}}", &r), DPT_ERR_CONFIG,
                      "kernel_regularizer.class_name: missing or not a string");
    /* activity_regularizer is parsed like the others (test_conv2x.c checks its math) */
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Dense", "{\"units\": 2, \"activity_regularizer\": \"l4\"}",
                                    (dpt_shape){.rank = 1, .dim = {3}}, &l),
                      DPT_ERR_CONFIG, "config.activity_regularizer: unknown regularizer \"l4\"");
}

/* penalty value, no 1/2 factor, and its gradient against finite differences */
static void test_penalty_and_gradient(void **state) {
    (void)state;
    const float w[6] = {0.5f, -1.5f, 0.0f, 2.0f, -0.25f, 1.0f};
    dpt_regularizer l1 = {.kind = DPT_REG_L1, .l1 = 0.1};
    dpt_regularizer l2 = {.kind = DPT_REG_L2, .l2 = 0.2};
    dpt_regularizer both = {.kind = DPT_REG_L1L2, .l1 = 0.1, .l2 = 0.2};
    double s1 = 0.5 + 1.5 + 0 + 2 + 0.25 + 1, s2 = 0.25 + 2.25 + 0 + 4 + 0.0625 + 1;
    assert_float_equal(dpt_regularizer_apply(&l1, w, NULL, 6, 1), 0.1 * s1, 1e-12);
    assert_float_equal(dpt_regularizer_apply(&l2, w, NULL, 6, 1), 0.2 * s2, 1e-12);
    assert_float_equal(dpt_regularizer_apply(&both, w, NULL, 6, 1), 0.1 * s1 + 0.2 * s2, 1e-12);
    float g[6] = {1, 1, 1, 1, 1, 1};
    dpt_regularizer_apply(&both, w, g, 6, 0.5f); /* g += 0.5 (0.1 sign(w) + 0.4 w) */
    for (int i = 0; i < 6; i++) {
        double sg = w[i] > 0 ? 1 : w[i] < 0 ? -1 : 0;
        assert_float_equal(g[i], 1 + 0.5 * (0.1 * sg + 0.4 * w[i]), 1e-6);
        if (w[i] == 0.0f)
            continue; /* L1's kink */
        float wp[6], wm[6];
        memcpy(wp, w, sizeof wp);
        memcpy(wm, w, sizeof wm);
        wp[i] += 1e-3f;
        wm[i] -= 1e-3f;
        double num = (dpt_regularizer_apply(&both, wp, NULL, 6, 1) -
                      dpt_regularizer_apply(&both, wm, NULL, 6, 1)) /
                     (double)(wp[i] - wm[i]);
        assert_float_equal((g[i] - 1) / 0.5, num, 1e-3);
    }
    assert_float_equal(g[2], 1.0f, 0); /* sign(0) = 0 */
}

static dpt_model *make_model(const char *layers_json, dpt_shape in) {
    json_t *layers = gc_parse(layers_json);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(layers, &in, 4, 3, &ctx, &m));
    json_decref(layers);
    return m;
}

static double sumsq(const float *w, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)w[i] * w[i];
    return s;
}
static double sumabs(const float *w, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)w[i]);
    return s;
}

static void test_model_regularize(void **state) {
    (void)state;
    dpt_model *m = make_model(
        "[{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 2, \"kernel_size\": 2, "
        "\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.1}}}},"
        " {\"class_name\": \"BatchNormalization\", \"config\": {\"gamma_regularizer\": \"l1\", "
        "\"beta_initializer\": {\"class_name\": \"Constant\", \"config\": {\"value\": 0.5}}, "
        "\"beta_regularizer\": {\"class_name\": \"L1L2\", \"config\": {\"l1\": 0.2, \"l2\": "
        "0.3}}}},"
        " {\"class_name\": \"Flatten\", \"config\": {}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"bias_initializer\": "
        "\"ones\", \"bias_regularizer\": \"l1\", \"kernel_regularizer\": \"l2\"}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 1}}]",
        (dpt_shape){.rank = 3, .dim = {3, 3, 1}});
    assert_true(dpt_model_has_regularizers(m));
    const dpt_layer *conv = dpt_model_layer(m, 0), *bn = dpt_model_layer(m, 1),
                    *dense = dpt_model_layer(m, 3);
    double want = 0.1 * sumsq(conv->params, 8)   /* conv kernel (2,2,1,2); bias unregularized */
                  + 0.01 * sumabs(bn->params, 2) /* gamma (ones) */
                  + 0.2 * sumabs(bn->params + 2, 2) + 0.3 * sumsq(bn->params + 2, 2) /* beta */
                  + 0.01 * sumsq(dense->params, 8 * 3) + 0.01 * sumabs(dense->params + 24, 3);
    assert_true(want > 0.1);
    assert_float_equal(dpt_model_penalty(m), want, 1e-9);
    dpt_model_zero_grads(m);
    double pen = dpt_model_regularize(m, 1.0f);
    assert_float_equal(pen, want, 1e-9);
    const float *G = dpt_model_grads(m);
    for (int i = 0; i < 8; i++)
        assert_float_equal(G[conv->param_offset + i], 0.2f * conv->params[i], 1e-7);
    assert_float_equal(G[conv->param_offset + 8], 0.0f, 0); /* conv bias */
    assert_float_equal(G[bn->param_offset], 0.01f, 1e-9);   /* gamma = 1 > 0 */
    assert_float_equal(G[bn->param_offset + 2], 0.2f + 0.6f * 0.5f, 1e-6);
    assert_float_equal(G[bn->param_offset + 4], 0.0f, 0); /* moving statistics */
    assert_float_equal(G[dense->param_offset + 24], 0.01f, 1e-9);
    const dpt_layer *last = dpt_model_layer(m, 4);
    for (int i = 0; i < 4; i++)
        assert_float_equal(G[last->param_offset + i], 0.0f, 0);
    /* a frozen layer still counts in the penalty (Keras's model.losses) but gets no gradient */
    dpt_model_layer(m, 3)->trainable = false;
    dpt_model_zero_grads(m);
    assert_float_equal(dpt_model_regularize(m, 1.0f), want, 1e-9);
    assert_float_equal(G[dense->param_offset + 24], 0.0f, 0);
    dpt_model_destroy(&m);
    /* no regularizer: 0 and nothing touched */
    m = make_model("[{\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]",
                   (dpt_shape){.rank = 1, .dim = {3}});
    assert_false(dpt_model_has_regularizers(m));
    dpt_model_zero_grads(m);
    assert_true(dpt_model_regularize(m, 1.0f) == 0.0);
    for (int i = 0; i < 8; i++)
        assert_float_equal(dpt_model_grads(m)[i], 0.0f, 0);
    dpt_model_destroy(&m);
}

/* the config round trip keeps the regularizers (checkpoints store model_config) */
static void test_to_json(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Dense",
                            "{\"units\": 2, \"kernel_regularizer\": \"l1_l2\", "
                            "\"bias_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": "
                            "0.5}}}",
                            (dpt_shape){.rank = 1, .dim = {3}}, &l));
    json_t *j = l->ops->to_json(l);
    json_t *k = json_object_get(j, "kernel_regularizer");
    assert_string_equal(json_string_value(json_object_get(k, "class_name")), "L1L2");
    assert_float_equal(json_real_value(json_object_get(json_object_get(k, "config"), "l1")), 0.01,
                       0);
    json_t *b = json_object_get(j, "bias_regularizer");
    assert_float_equal(json_real_value(json_object_get(json_object_get(b, "config"), "l2")), 0.5,
                       0);
    assert_true(json_is_null(json_object_get(j, "activity_regularizer")));
    json_decref(j);
    gc_free_layer(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_penalty_and_gradient),
        cmocka_unit_test(test_model_regularize),
        cmocka_unit_test(test_to_json),
    };
    return cmocka_run_group_tests_name("regularizers", tests, NULL, NULL);
}
