/* Unit tests of the losses and the accuracy metric in src/nn/loss.c: names and aliases, values
 * against hand-computed numbers, Keras's clipping (and its zero gradient), the logits forms,
 * every gradient against finite differences (from logits and from probabilities), accuracy
 * counts, and a sparse label out of range -> DPT_ERR_DATA. No MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* doubles compared in double (cmocka's assert_float_equal takes floats) */
#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%.9g != %.9g (tolerance %g)", a_, b_, (double)(tol));                        \
    } while (0)

static double loss_of(dpt_loss_kind k, dpt_act a, const float *out, const float *t, int64_t B,
                      int64_t K) {
    double s = 0;
    assert_ok(dpt_loss_compute(k, a, out, t, B, K, NULL, &s, NULL));
    return s;
}

static void test_names(void **state) {
    (void)state;
    struct {
        const char *name;
        dpt_loss_kind k;
    } cases[] = {
        {"binary_crossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
        {"BinaryCrossentropy", DPT_LOSS_BINARY_CROSSENTROPY},
        {"categorical_crossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
        {"CategoricalCrossentropy", DPT_LOSS_CATEGORICAL_CROSSENTROPY},
        {"sparse_categorical_crossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
        {"SparseCategoricalCrossentropy", DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
        {"mse", DPT_LOSS_MSE},
        {"mean_squared_error", DPT_LOSS_MSE},
        {"MeanSquaredError", DPT_LOSS_MSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_loss_kind k = (dpt_loss_kind)-1;
        assert_true(dpt_loss_from_name(cases[i].name, &k));
        assert_int_equal(k, cases[i].k);
        dpt_loss_kind back;
        assert_true(dpt_loss_from_name(dpt_loss_name(k), &back));
        assert_int_equal(back, k);
    }
    dpt_loss_kind k;
    assert_false(dpt_loss_from_name("dice", &k));
    assert_false(dpt_loss_from_name(NULL, &k));
    assert_true(dpt_loss_target_size(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, 10) == 1);
    assert_true(dpt_loss_target_size(DPT_LOSS_CATEGORICAL_CROSSENTROPY, 10) == 10);
    assert_true(dpt_loss_target_size(DPT_LOSS_BINARY_CROSSENTROPY, 3) == 3);
    assert_true(dpt_loss_target_size(DPT_LOSS_MSE, 2) == 2);
}

static void test_bce_values(void **state) {
    (void)state;
    const dpt_loss_kind k = DPT_LOSS_BINARY_CROSSENTROPY;
    float p[2] = {0.9f, 0.2f}, t[2] = {1, 0};
    /* two samples of one unit: a sum; one sample of two units: the mean */
    assert_near(loss_of(k, DPT_ACT_LINEAR, p, t, 2, 1), 0.3285041, 1e-6);
    assert_near(loss_of(k, DPT_ACT_LINEAR, p, t, 1, 2), 0.3285041 / 2, 1e-6);
    float z[2] = {2.0f, -1.0f};
    assert_near(loss_of(k, DPT_ACT_SIGMOID, z, t, 2, 1), 0.126928 + 0.313262, 1e-5);
    /* soft targets */
    float ts[1] = {0.25f}, ps[1] = {0.6f};
    assert_near(loss_of(k, DPT_ACT_LINEAR, ps, ts, 1, 1), -(0.25 * log(0.6) + 0.75 * log(0.4)),
                1e-6);
    /* logits are not clipped: a confident wrong logit costs its full size, finitely */
    float zl[2] = {100.0f, -100.0f}, tl[2] = {0, 0};
    double lw = loss_of(k, DPT_ACT_SIGMOID, zl, tl, 2, 1);
    assert_near(lw, 100.0, 1e-4);
    float zt[1] = {-100.0f}, tt[1] = {1};
    assert_near(loss_of(k, DPT_ACT_SIGMOID, zt, tt, 1, 1), 100.0, 1e-4);
}

static void test_bce_clipping(void **state) {
    (void)state;
    const dpt_loss_kind k = DPT_LOSS_BINARY_CROSSENTROPY;
    const double hi = (double)(1.0f - 1e-7f);
    float out[4] = {0.0f, 1.0f, 1.0f, -0.5f}, t[4] = {1, 1, 0, 0}, d[4];
    double s = 0;
    assert_ok(dpt_loss_compute(k, DPT_ACT_LINEAR, out, t, 4, 1, d, &s, NULL));
    double want = -log((double)1e-7f) - log(hi) - log(1.0 - hi) - log(1.0 - (double)1e-7f);
    assert_near(s, want, 1e-4);
    assert_true(isfinite(s));
    assert_near(-log((double)1e-7f), 16.118095, 1e-5); /* the ceiling Keras reports */
    for (int i = 0; i < 4; i++)
        assert_true(d[i] == 0.0f); /* the clip has zero gradient */
    /* same for categorical and sparse from probabilities */
    float q[3] = {0.0f, 0.0f, 1.0f}, oh[3] = {1, 0, 0}, dq[3];
    s = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, q, oh, 1, 3, dq,
                               &s, NULL));
    assert_near(s, -log((double)1e-7f), 1e-4);
    float idx[1] = {0};
    s = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, q, idx, 1,
                               3, dq, &s, NULL));
    /* -log(c0 / (c0 + c1 + c2)) with c = clip(p) */
    double c0 = (double)1e-7f, c2 = (double)(1.0f - 1e-7f);
    assert_near(s, -log(c0 / (2 * c0 + c2)), 1e-4);
}

static void test_cce_values(void **state) {
    (void)state;
    const dpt_loss_kind k = DPT_LOSS_CATEGORICAL_CROSSENTROPY;
    float p[3] = {0.2f, 0.3f, 0.5f}, t[3] = {0, 0, 1};
    assert_near(loss_of(k, DPT_ACT_LINEAR, p, t, 1, 3), 0.693147, 1e-6);
    float un[3] = {0.4f, 0.6f, 1.0f}; /* renormalised first */
    assert_near(loss_of(k, DPT_ACT_LINEAR, un, t, 1, 3), 0.693147, 1e-6);
    float z[3] = {1, 2, 3};
    assert_near(loss_of(k, DPT_ACT_SOFTMAX, z, t, 1, 3), 0.407606, 1e-6);
    float big[3] = {1000, 2000, 3000}; /* stable */
    assert_near(loss_of(k, DPT_ACT_SOFTMAX, big, t, 1, 3), 0.0, 1e-6);
    float soft[3] = {0.5f, 0.5f, 0};
    assert_near(loss_of(k, DPT_ACT_SOFTMAX, z, soft, 1, 3), 0.5 * 2.407606 + 0.5 * 1.407606, 1e-5);
    const dpt_loss_kind s = DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    float idx[2] = {2, 0}, z2[6] = {1, 2, 3, 1, 2, 3}, p2[6] = {0.2f, 0.3f, 0.5f, 0.2f, 0.3f, 0.5f};
    assert_near(loss_of(s, DPT_ACT_SOFTMAX, z2, idx, 2, 3), 0.407606 + 2.407606, 1e-5);
    assert_near(loss_of(s, DPT_ACT_LINEAR, p2, idx, 2, 3), -log(0.5) - log(0.2), 1e-6);
    float one[1] = {0}, single[1] = {0.25f};
    assert_near(loss_of(DPT_LOSS_MSE, DPT_ACT_LINEAR, single, one, 1, 1), 0.0625, 1e-9);
    float mo[4] = {1, 2, 0, 0}, mt[4] = {0, 4, 0, 0};
    assert_near(loss_of(DPT_LOSS_MSE, DPT_ACT_LINEAR, mo, mt, 2, 2), 2.5, 1e-9);
}

static void test_sparse_out_of_range(void **state) {
    (void)state;
    float out[6] = {0.2f, 0.3f, 0.5f, 0.2f, 0.3f, 0.5f}, d[6];
    double s = 0, c = 0;
    float bad[][2] = {{0, 3}, {-1, 0}, {1.5f, 0}, {0, NAN}};
    for (size_t i = 0; i < 4; i++) {
        assert_status_msg(dpt_loss_compute(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                           DPT_ACT_SOFTMAX, out, bad[i], 2, 3, d, &s, &c),
                          DPT_ERR_DATA, "is not a class index in [0, 3)");
        assert_true(s == 0 && c == 0); /* nothing accumulated */
    }
    assert_status_msg(dpt_loss_compute(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR,
                                       out, bad[0], 2, 3, NULL, &s, NULL),
                      DPT_ERR_DATA, "target 3 of sample 1");
}

/* finite differences of the summed loss wrt out, against dout */
static void check_grad(dpt_loss_kind k, dpt_act a, float *out, const float *t, int64_t B, int64_t K,
                       const char *what) {
    float *d = malloc((size_t)(B * K) * sizeof(float));
    double s = 0;
    assert_ok(dpt_loss_compute(k, a, out, t, B, K, d, &s, NULL));
    const float eps = 1e-3f;
    for (int64_t i = 0; i < B * K; i++) {
        float save = out[i];
        out[i] = save + eps;
        double fp = loss_of(k, a, out, t, B, K);
        out[i] = save - eps;
        double fm = loss_of(k, a, out, t, B, K);
        out[i] = save;
        double num = (fp - fm) / (2.0 * eps);
        if (fabs(num - d[i]) > 1e-2 * fmax(fabs(num), fabs(d[i])) + 1e-3)
            fail_msg("%s: element %lld: analytic %g, numeric %g", what, (long long)i, d[i], num);
    }
    free(d);
}

static void test_gradients(void **state) {
    (void)state;
    enum { B = 4, K = 3 };
    dpt_rng r;
    dpt_rng_init(&r, 11, 0);
    float z[B * K], p[B * K], hard[B * K], soft[B * K], idx[B], pn[B * K];
    for (int i = 0; i < B; i++) {
        float sp = 0, ss = 0;
        for (int j = 0; j < K; j++) {
            z[i * K + j] = 4.0f * dpt_rng_uniform(&r) - 2.0f;
            p[i * K + j] = 0.1f + 0.8f * dpt_rng_uniform(&r); /* within (0, 1), away from clips */
            soft[i * K + j] = dpt_rng_uniform(&r);
            ss += soft[i * K + j];
            sp += p[i * K + j];
        }
        idx[i] = (float)dpt_rng_below(&r, K);
        for (int j = 0; j < K; j++) {
            hard[i * K + j] = j == (int)idx[i] ? 1.0f : 0.0f;
            soft[i * K + j] /= ss;
            pn[i * K + j] = p[i * K + j] / sp; /* rows summing to 1, as a softmax gives */
        }
    }
    check_grad(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_SIGMOID, z, hard, B, K, "bce logits");
    check_grad(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_SIGMOID, z, soft, B, K, "bce logits soft");
    check_grad(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, p, hard, B, K, "bce probs");
    check_grad(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, p, soft, B, K, "bce probs soft");
    check_grad(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, z, hard, B, K, "cce logits");
    check_grad(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, z, soft, B, K, "cce soft");
    check_grad(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, pn, hard, B, K, "cce probs");
    check_grad(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, p, soft, B, K,
               "cce unnormalised probs");
    check_grad(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, z, idx, B, K,
               "sparse logits");
    check_grad(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, pn, idx, B, K,
               "sparse probs");
    check_grad(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, p, idx, B, K,
               "sparse unnormalised probs");
    check_grad(DPT_LOSS_MSE, DPT_ACT_LINEAR, z, soft, B, K, "mse");
    check_grad(DPT_LOSS_MSE, DPT_ACT_LINEAR, z, soft, B * K, 1, "mse K=1");
    /* the fused forms: with rows that are a softmax, the probability and logit gradients agree
     * after the chain rule through the activation */
    float sm[B * K], dl[B * K], dp[B * K];
    memcpy(sm, z, sizeof sm);
    dpt_act_forward(DPT_ACT_SOFTMAX, sm, B, K);
    double a = 0, b = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, z, hard, B, K,
                               dl, &a, NULL));
    assert_ok(dpt_loss_compute(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, sm, hard, B, K,
                               dp, &b, NULL));
    assert_near(a, b, 1e-5);
    dpt_act_backward(DPT_ACT_SOFTMAX, sm, dp, dp, B, K);
    for (int i = 0; i < B * K; i++)
        assert_near(dl[i], dp[i], 1e-5f);
}

static void test_accuracy(void **state) {
    (void)state;
    double s = 0, c = 0;
    float p[4] = {0.7f, 0.4f, 0.5f, 0.9f}, t[4] = {1, 0, 1, 0};
    assert_ok(
        dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, p, t, 4, 1, NULL, &s, &c));
    assert_true(c == 2.0); /* 0.5 is not > 0.5 */
    float z[4] = {0.1f, -2.0f, 0.0f, 3.0f};
    c = 0;
    assert_ok(
        dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_SIGMOID, z, t, 4, 1, NULL, &s, &c));
    assert_true(c == 2.0);
    c = 0; /* two units per sample: the mean over units */
    float p2[2] = {0.7f, 0.2f}, t2[2] = {1, 1};
    assert_ok(
        dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, p2, t2, 1, 2, NULL, &s, &c));
    assert_true(c == 0.5);
    /* categorical: argmax; accumulates across calls */
    float q[6] = {0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f}, oh[6] = {0, 1, 0, 0, 0, 1};
    c = 0;
    for (int rep = 0; rep < 2; rep++)
        assert_ok(dpt_loss_compute(DPT_LOSS_CATEGORICAL_CROSSENTROPY, DPT_ACT_LINEAR, q, oh, 2, 3,
                                   NULL, &s, &c));
    assert_true(c == 2.0);
    float idx[2] = {1, 0};
    c = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, q, idx, 2,
                               3, NULL, &s, &c));
    assert_true(c == 2.0);
    /* mse: binary for one unit, argmax for several */
    float m1[3] = {0.6f, 0.4f, 0.8f}, mt1[3] = {1, 1, 0};
    c = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_MSE, DPT_ACT_LINEAR, m1, mt1, 3, 1, NULL, &s, &c));
    assert_true(c == 1.0);
    c = 0;
    assert_ok(dpt_loss_compute(DPT_LOSS_MSE, DPT_ACT_LINEAR, q, oh, 2, 3, NULL, &s, &c));
    assert_true(c == 1.0);
    /* loss_sum accumulates too, and an empty batch adds nothing */
    s = 1.0;
    assert_ok(dpt_loss_compute(DPT_LOSS_MSE, DPT_ACT_LINEAR, q, oh, 0, 3, NULL, &s, &c));
    assert_true(s == 1.0 && c == 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bce_values),
        cmocka_unit_test(test_bce_clipping),
        cmocka_unit_test(test_cce_values),
        cmocka_unit_test(test_sparse_out_of_range),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
