/* Unit tests for src/optim: SGD (plain, momentum, Nesterov) and Adam against reference values
 * worked out here, independently, in double precision from Keras's published update rules;
 * accessors for slots and iterations; resuming Adam's bias correction with set_iterations.
 * Gradient scaling and checkpointing of the state are tested by their own modules.
 */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define N 5
#define STEPS 3

static const float w0[N] = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f};
/* grads[s] is the gradient of step s+1 (different signs and sizes, one zero). */
static const float grads[STEPS][N] = {
    {0.1f, -0.2f, 0.3f, 0.0f, 1.5f},
    {-0.05f, -0.25f, 0.1f, 0.02f, 1.0f},
    {0.2f, 0.05f, -0.4f, -0.01f, 0.5f},
};

static void assert_close(const float *got, const double *want, int n, double rtol,
                         const char *what) {
    for (int i = 0; i < n; i++) {
        double tol = rtol * fmax(fabs(want[i]), 1e-3);
        if (!(fabs((double)got[i] - want[i]) <= tol))
            fail_msg("%s[%d]: got %.9g, want %.9g (tolerance %.3g)", what, i, (double)got[i],
                     want[i], tol);
    }
}

/* Runs STEPS steps of `spec` from w0 and returns the final weights in w. */
static void run_steps(const dpt_optim_spec *spec, float *w, dpt_optim **keep) {
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(spec, N, &o));
    memcpy(w, w0, sizeof w0);
    for (int s = 0; s < STEPS; s++) {
        dpt_optim_step(o, w, grads[s]);
        assert_int_equal(dpt_optim_iterations(o), s + 1);
    }
    if (keep)
        *keep = o;
    else
        dpt_optim_destroy(&o);
}

static void test_defaults(void **state) {
    (void)state;
    dpt_optim_spec a = dpt_optim_defaults(DPT_OPT_ADAM);
    assert_int_equal(a.kind, DPT_OPT_ADAM);
    assert_true(a.learning_rate == 0.001 && a.beta_1 == 0.9 && a.beta_2 == 0.999 &&
                a.epsilon == 1e-7);
    dpt_optim_spec s = dpt_optim_defaults(DPT_OPT_SGD);
    assert_int_equal(s.kind, DPT_OPT_SGD);
    assert_true(s.learning_rate == 0.01 && s.momentum == 0.0 && !s.nesterov);
}

static void test_sgd_plain(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_SGD);
    spec.learning_rate = 0.1;
    float w[N];
    dpt_optim *o = NULL;
    run_steps(&spec, w, &o);
    assert_int_equal(dpt_optim_n_slots(o), 0);
    dpt_optim_destroy(&o);
    assert_null(o);

    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i];
        for (int s = 0; s < STEPS; s++)
            x = x - 0.1 * grads[s][i];
        want[i] = x;
    }
    assert_close(w, want, N, 1e-6, "sgd w");
}

/* Keras 2 OptimizerV2 / Keras 3 SGD with momentum: v <- mu v - lr g; w <- w + v, or with
 * Nesterov w <- w + mu v - lr g (v already updated). */
static void sgd_reference(double lr, double mu, bool nesterov, double *w, double *v) {
    for (int i = 0; i < N; i++) {
        w[i] = w0[i];
        v[i] = 0.0;
        for (int s = 0; s < STEPS; s++) {
            double g = grads[s][i];
            v[i] = mu * v[i] - lr * g;
            w[i] = nesterov ? w[i] + mu * v[i] - lr * g : w[i] + v[i];
        }
    }
}

static void check_sgd_momentum(bool nesterov) {
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_SGD);
    spec.learning_rate = 0.1;
    spec.momentum = 0.9;
    spec.nesterov = nesterov;
    float w[N];
    dpt_optim *o = NULL;
    run_steps(&spec, w, &o);
    assert_int_equal(dpt_optim_n_slots(o), 1);
    assert_string_equal(dpt_optim_slot_name(o, 0), "momentum");
    double want_w[N], want_v[N];
    sgd_reference(0.1, 0.9, nesterov, want_w, want_v);
    assert_close(w, want_w, N, 1e-6, nesterov ? "nesterov w" : "momentum w");
    assert_close(dpt_optim_slot(o, 0), want_v, N, 1e-6, "momentum slot");
    /* Nesterov and classic momentum must differ here, or this test proves nothing. */
    double other_w[N], other_v[N];
    sgd_reference(0.1, 0.9, !nesterov, other_w, other_v);
    assert_true(fabs(other_w[0] - want_w[0]) > 1e-3);
    dpt_optim_destroy(&o);
}

static void test_sgd_momentum(void **state) {
    (void)state;
    check_sgd_momentum(false);
}

static void test_sgd_nesterov(void **state) {
    (void)state;
    check_sgd_momentum(true);
}

/* Keras Adam, written out in double from the documented rule, with the hyper-parameters first
 * rounded to float32 because Keras holds them as float32 (0.999 is 0.99900001287...):
 *   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
 *   lr_t = lr sqrt(1-b2^t) / (1-b1^t);  w <- w - lr_t m / (sqrt(v) + eps)
 * pytorch_style = true puts eps inside the bias correction instead (m_hat / (sqrt(v_hat)+eps)),
 * only to show that the test can tell the two apart. */
static void adam_reference(double lr_in, double b1_in, double b2_in, double eps_in, int steps,
                           bool pytorch_style, double *w, double *m, double *v) {
    const double lr = (float)lr_in, b1 = (float)b1_in, b2 = (float)b2_in, eps = (float)eps_in;
    for (int i = 0; i < N; i++) {
        w[i] = w0[i];
        m[i] = v[i] = 0.0;
        for (int s = 0; s < steps; s++) {
            double t = s + 1, g = grads[s][i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            if (pytorch_style) {
                double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
                w[i] -= lr * mh / (sqrt(vh) + eps);
            } else {
                double lr_t = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
                w[i] -= lr_t * m[i] / (sqrt(v[i]) + eps);
            }
        }
    }
}

static void test_adam(void **state) {
    (void)state;
    /* A large epsilon makes its placement visible at these gradient sizes. */
    const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 0.05;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    spec.learning_rate = lr;
    spec.beta_1 = b1;
    spec.beta_2 = b2;
    spec.epsilon = eps;
    float w[N];
    dpt_optim *o = NULL;
    run_steps(&spec, w, &o);
    assert_int_equal(dpt_optim_n_slots(o), 2);
    assert_string_equal(dpt_optim_slot_name(o, 0), "m");
    assert_string_equal(dpt_optim_slot_name(o, 1), "v");
    assert_true(dpt_optim_get_spec(o)->epsilon == eps);

    double want_w[N], want_m[N], want_v[N];
    adam_reference(lr, b1, b2, eps, STEPS, false, want_w, want_m, want_v);
    assert_close(w, want_w, N, 1e-6, "adam w");
    assert_close(dpt_optim_slot(o, 0), want_m, N, 1e-6, "adam m");
    assert_close(dpt_optim_slot(o, 1), want_v, N, 1e-6, "adam v");

    double pt_w[N], pt_m[N], pt_v[N];
    adam_reference(lr, b1, b2, eps, STEPS, true, pt_w, pt_m, pt_v);
    assert_true(fabs(pt_w[0] - want_w[0]) > 1e-4 * fabs(want_w[0]));
    dpt_optim_destroy(&o);
}

static void test_adam_keras_defaults(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    float w[N];
    run_steps(&spec, w, NULL);
    double want_w[N], m[N], v[N];
    adam_reference(0.001, 0.9, 0.999, 1e-7, STEPS, false, want_w, m, v);
    assert_close(w, want_w, N, 1e-6, "adam (defaults) w");
}

/* Restoring (params, m, v, iterations = 2) and taking step 3 must give what 3 straight steps give,
 * bit for bit: the bias correction continues from t = 3. */
static void test_adam_set_iterations(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    spec.learning_rate = 0.01;
    float straight[N];
    run_steps(&spec, straight, NULL);

    dpt_optim *a = NULL, *b = NULL, *c = NULL;
    assert_ok(dpt_optim_create(&spec, N, &a));
    float w[N];
    memcpy(w, w0, sizeof w);
    dpt_optim_step(a, w, grads[0]);
    dpt_optim_step(a, w, grads[1]);

    assert_ok(dpt_optim_create(&spec, N, &b)); /* the "resumed" optimizer */
    assert_ok(dpt_optim_create(&spec, N, &c)); /* resumed but without the iteration count */
    for (int k = 0; k < 2; k++) {
        memcpy(dpt_optim_slot(b, k), dpt_optim_slot(a, k), sizeof(float) * N);
        memcpy(dpt_optim_slot(c, k), dpt_optim_slot(a, k), sizeof(float) * N);
    }
    assert_int_equal(dpt_optim_iterations(b), 0);
    dpt_optim_set_iterations(b, dpt_optim_iterations(a));
    assert_int_equal(dpt_optim_iterations(b), 2);

    float wb[N], wc[N];
    memcpy(wb, w, sizeof w);
    memcpy(wc, w, sizeof w);
    dpt_optim_step(b, wb, grads[2]);
    dpt_optim_step(c, wc, grads[2]);
    assert_int_equal(dpt_optim_iterations(b), 3);
    assert_memory_equal(wb, straight, sizeof straight);
    assert_true(fabsf(wc[0] - straight[0]) > 1e-5f); /* t = 1 instead of 3 is visibly wrong */
    dpt_optim_destroy(&a);
    dpt_optim_destroy(&b);
    dpt_optim_destroy(&c);
}

static void test_zero_params_and_bad_spec(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, 0, &o));
    dpt_optim_step(o, NULL, NULL);
    assert_int_equal(dpt_optim_iterations(o), 1);
    dpt_optim_destroy(&o);
    dpt_optim_destroy(&o); /* NULL-safe */

    spec.learning_rate = 0.0;
    assert_status_msg(dpt_optim_create(&spec, 4, &o), DPT_ERR_CONFIG, "learning_rate");
    assert_null(o);
    spec = dpt_optim_defaults(DPT_OPT_ADAM);
    spec.beta_2 = 1.0;
    assert_status_msg(dpt_optim_create(&spec, 4, &o), DPT_ERR_CONFIG, "beta_2");
    spec = dpt_optim_defaults(DPT_OPT_ADAM);
    spec.beta_1 = 0.99999999; /* < 1 in double, but 1.0f as Keras's float32 */
    assert_status_msg(dpt_optim_create(&spec, 4, &o), DPT_ERR_CONFIG, "beta_1");
    spec = dpt_optim_defaults(DPT_OPT_SGD);
    spec.momentum = -0.5;
    assert_status_msg(dpt_optim_create(&spec, 4, &o), DPT_ERR_CONFIG, "momentum");
    assert_null(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_keras_defaults),
        cmocka_unit_test(test_adam_set_iterations),
        cmocka_unit_test(test_zero_params_and_bad_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
