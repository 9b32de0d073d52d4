/* Unit tests for src/optim: SGD (plain, momentum, Nesterov) and Adam against reference values
 * worked out here, independently, in double precision from Keras's published update rules;
 * accessors for slots and iterations; resuming Adam's bias correction with set_iterations;
 * RMSprop (plain, momentum, centered), decoupled weight decay (AdamW, SGD), the learning-rate
 * schedules and when the optimizer evaluates them, trainable segments, and the EarlyStopping /
 * ReduceLROnPlateau decisions against Keras 3's rules.
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

/* ---- RMSprop, weight decay, schedules, segments, callbacks --------------------------------- */

/* Keras 3 RMSprop in double (hyper-parameters as given):
 *   v = rho v + (1-rho) g^2;  centered: a = rho a + (1-rho) g, d = v - a^2 + eps; else d = v + eps
 *   inc = lr g / sqrt(d);  momentum: m = mom m + inc, w -= m; else w -= inc */
static void rmsprop_reference(double lr, double rho, double mom, double eps, bool centered,
                              double *w) {
    for (int i = 0; i < N; i++) {
        double x = w0[i], v = 0, a = 0, m = 0;
        for (int s = 0; s < STEPS; s++) {
            double g = grads[s][i];
            v = rho * v + (1 - rho) * g * g;
            double d = v + eps;
            if (centered) {
                a = rho * a + (1 - rho) * g;
                d = v - a * a + eps;
            }
            double inc = lr * g / sqrt(d);
            if (mom > 0) {
                m = mom * m + inc;
                x -= m;
            } else {
                x -= inc;
            }
        }
        w[i] = x;
    }
}

static void test_rmsprop(void **state) {
    (void)state;
    dpt_optim_spec d = dpt_optim_defaults(DPT_OPT_RMSPROP);
    assert_true(d.learning_rate == 0.001 && d.rho == 0.9 && d.momentum == 0 && d.epsilon == 1e-7 &&
                !d.centered && d.weight_decay == 0);
    static const struct {
        double mom;
        bool centered;
        int slots;
    } cases[] = {{0, false, 1}, {0.5, false, 2}, {0, true, 2}, {0.5, true, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dpt_optim_spec spec = d;
        spec.learning_rate = 0.01;
        spec.momentum = cases[c].mom;
        spec.centered = cases[c].centered;
        spec.epsilon = 1e-3; /* large enough to matter, inside the square root */
        float w[N];
        dpt_optim *o = NULL;
        run_steps(&spec, w, &o);
        assert_int_equal(dpt_optim_n_slots(o), cases[c].slots);
        assert_string_equal(dpt_optim_slot_name(o, 0), "velocity");
        if (cases[c].centered)
            assert_string_equal(dpt_optim_slot_name(o, cases[c].slots - 1), "average_gradient");
        double want[N];
        rmsprop_reference(0.01, 0.9, cases[c].mom, 1e-3, cases[c].centered, want);
        assert_close(w, want, N, 1e-5, "rmsprop w");
        dpt_optim_destroy(&o);
    }
}

/* Keras 3: w -= w * wd * lr BEFORE the update, with the step's learning rate */
static void test_weight_decay(void **state) {
    (void)state;
    dpt_optim_spec a = dpt_optim_defaults(DPT_OPT_ADAMW);
    assert_true(a.weight_decay == 0.004 && a.learning_rate == 0.001 && a.beta_1 == 0.9);
    a.learning_rate = 0.01;
    a.weight_decay = 0.1;
    float w[N];
    dpt_optim *o = NULL;
    run_steps(&a, w, &o);
    /* reference: Adam in double with the decay applied first */
    const double lr = (float)0.01, b1 = (float)0.9, b2 = (float)0.999, eps = (float)1e-7;
    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i], m = 0, v = 0;
        for (int s = 0; s < STEPS; s++) {
            double t = s + 1, g = grads[s][i];
            x -= x * 0.1 * lr;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            x -= lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)) * m / (sqrt(v) + eps);
        }
        want[i] = x;
    }
    assert_close(w, want, N, 1e-5, "adamw w");
    dpt_optim_destroy(&o);
    /* SGD with weight_decay (Keras 3 accepts it on every optimizer) */
    dpt_optim_spec sg = dpt_optim_defaults(DPT_OPT_SGD);
    sg.learning_rate = 0.1;
    sg.weight_decay = 0.5;
    run_steps(&sg, w, NULL);
    for (int i = 0; i < N; i++) {
        double x = w0[i];
        for (int s = 0; s < STEPS; s++)
            x = x - x * 0.5 * 0.1 - 0.1 * grads[s][i];
        want[i] = x;
    }
    assert_close(w, want, N, 1e-6, "sgd wd w");
}

static void test_schedules(void **state) {
    (void)state;
    dpt_lr_schedule e = {.kind = DPT_LR_EXPONENTIAL,
                         .initial_learning_rate = 0.1,
                         .decay_steps = 10,
                         .decay_rate = 0.5};
    assert_float_equal(dpt_lr_schedule_at(&e, 0), 0.1, 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&e, 5), 0.1 * pow(0.5, 0.5), 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&e, 20), 0.025, 1e-15);
    e.staircase = true;
    assert_float_equal(dpt_lr_schedule_at(&e, 19), 0.05, 1e-15);
    dpt_lr_schedule c = {
        .kind = DPT_LR_COSINE, .initial_learning_rate = 0.1, .decay_steps = 100, .alpha = 0.1};
    assert_float_equal(dpt_lr_schedule_at(&c, 0), 0.1, 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&c, 50), 0.1 * (0.9 * 0.5 + 0.1), 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&c, 100), 0.01, 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&c, 1000), 0.01, 1e-15); /* clamped at decay_steps */
    c.has_warmup = true;
    c.warmup_target = 0.5;
    c.warmup_steps = 10;
    c.alpha = 0;
    assert_float_equal(dpt_lr_schedule_at(&c, 0), 0.1, 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&c, 5), 0.3, 1e-15); /* linear ramp 0.1 -> 0.5 */
    assert_float_equal(dpt_lr_schedule_at(&c, 10), 0.5, 1e-15);
    assert_float_equal(dpt_lr_schedule_at(&c, 60), 0.25, 1e-15); /* cosine from 0.5 */
    assert_float_equal(dpt_lr_schedule_at(&c, 500), 0.0, 1e-15);
    dpt_lr_schedule p = {.kind = DPT_LR_PIECEWISE,
                         .n_boundaries = 2,
                         .boundaries = {10, 20},
                         .values = {1, 0.5, 0.1}};
    assert_true(dpt_lr_schedule_at(&p, 0) == 1 && dpt_lr_schedule_at(&p, 10) == 1 &&
                dpt_lr_schedule_at(&p, 11) == 0.5 && dpt_lr_schedule_at(&p, 20) == 0.5 &&
                dpt_lr_schedule_at(&p, 21) == 0.1);
    /* the optimizer evaluates the schedule at its iteration count BEFORE the update (Keras):
     * SGD with piecewise values: step 1 uses step 0's rate */
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_SGD);
    spec.schedule = (dpt_lr_schedule){
        .kind = DPT_LR_PIECEWISE, .n_boundaries = 1, .boundaries = {0}, .values = {0.1, 0.01}};
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, N, &o));
    assert_float_equal(dpt_optim_learning_rate(o), 0.1, 1e-15);
    float w[N];
    memcpy(w, w0, sizeof w);
    dpt_optim_step(o, w, grads[0]); /* iterations 0 -> lr 0.1 */
    assert_float_equal(w[0], w0[0] - 0.1f * grads[0][0], 1e-7);
    assert_float_equal(dpt_optim_learning_rate(o), 0.01, 1e-15);
    float w1 = w[0];
    dpt_optim_step(o, w, grads[1]); /* iterations 1 -> lr 0.01 */
    assert_float_equal(w[0], w1 - 0.01f * grads[1][0], 1e-7);
    assert_status_msg(dpt_optim_set_learning_rate(o, 0.5), DPT_ERR_CONFIG,
                      "optimizer: the learning rate follows a schedule and cannot be set");
    dpt_optim_destroy(&o);
    spec = dpt_optim_defaults(DPT_OPT_ADAM);
    assert_ok(dpt_optim_create(&spec, N, &o));
    assert_ok(dpt_optim_set_learning_rate(o, 0.25));
    assert_true(dpt_optim_learning_rate(o) == 0.25 && dpt_optim_get_spec(o)->learning_rate == 0.25);
    assert_status_msg(dpt_optim_set_learning_rate(o, 0), DPT_ERR_CONFIG, "must be > 0");
    dpt_optim_destroy(&o);
}

/* Parameters outside the trainable segments never change, even under weight decay; and Adam /
 * RMSprop / momentum with an always-zero gradient leave a parameter bit-identical too. */
static void test_segments(void **state) {
    (void)state;
    const dpt_optim_kind kinds[] = {DPT_OPT_SGD, DPT_OPT_ADAM, DPT_OPT_RMSPROP, DPT_OPT_ADAMW};
    for (size_t k = 0; k < 4; k++) {
        dpt_optim_spec spec = dpt_optim_defaults(kinds[k]);
        spec.momentum = kinds[k] == DPT_OPT_ADAM ? 0 : 0.9;
        dpt_optim *o = NULL;
        assert_ok(dpt_optim_create(&spec, N, &o));
        const int64_t seg[4] = {0, 2, 3, 1}; /* 0, 1 and 3 trainable; 2 and 4 not */
        assert_ok(dpt_optim_set_segments(o, seg, 2));
        float w[N];
        memcpy(w, w0, sizeof w);
        for (int s = 0; s < STEPS; s++)
            dpt_optim_step(o, w, grads[s]);
        assert_memory_equal(&w[2], &w0[2], sizeof(float));
        assert_memory_equal(&w[4], &w0[4], sizeof(float));
        assert_true(w[0] != w0[0] && w[1] != w0[1]);
        dpt_optim_destroy(&o);
        if (kinds[k] == DPT_OPT_ADAMW)
            continue;
        /* zero gradient everywhere, no segments: nothing moves (m and v stay 0) */
        float zero[N] = {0};
        assert_ok(dpt_optim_create(&spec, N, &o));
        memcpy(w, w0, sizeof w);
        for (int s = 0; s < 5; s++)
            dpt_optim_step(o, w, zero);
        assert_memory_equal(w, w0, sizeof w);
        dpt_optim_destroy(&o);
    }
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_SGD);
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, N, &o));
    const int64_t bad[4] = {0, 3, 2, 1}; /* overlapping */
    assert_status_msg(dpt_optim_set_segments(o, bad, 2), DPT_ERR_INTERNAL, "segment 1");
    const int64_t out[2] = {4, 2};
    assert_status_msg(dpt_optim_set_segments(o, out, 1), DPT_ERR_INTERNAL, "segment 0");
    dpt_optim_destroy(&o);
}

static dpt_epoch_logs logs1(dpt_monitor m, double v) {
    dpt_epoch_logs l;
    memset(&l, 0, sizeof l);
    l.v[m] = v;
    l.have[m] = true;
    return l;
}

/* EarlyStopping as Keras 3: wait counts epochs since the best, stop at wait >= patience (not at
 * epoch 0), min_delta, baseline, start_from_epoch, restore at the end */
static void test_early_stopping(void **state) {
    (void)state;
    dpt_callbacks_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.early_stopping = (dpt_early_stopping_spec){.enabled = true,
                                                    .monitor = DPT_MON_VAL_LOSS,
                                                    .mode = -1,
                                                    .patience = 2,
                                                    .restore_best_weights = true};
    dpt_callbacks_state s;
    dpt_callbacks_begin(&s, &spec);
    dpt_callback_actions a;
    const double vals[] = {1.0, 0.8, 0.9, 0.85, 0.7};
    bool stop_at[] = {false, false, false, true, false};
    bool save_at[] = {true, true, false, false, false};
    for (int e = 0; e < 4; e++) {
        dpt_epoch_logs l = logs1(DPT_MON_VAL_LOSS, vals[e]);
        dpt_callbacks_on_epoch_end(&s, e, &l, 0.001, &a);
        if (a.stop != stop_at[e] || a.save_best != save_at[e])
            fail_msg("epoch %d: stop %d save %d", e, a.stop, a.save_best);
        assert_false(a.set_lr);
    }
    assert_int_equal(s.es_best_epoch, 1);
    assert_true(dpt_callbacks_on_train_end(&s));
    /* patience 0: stops at the first epoch without improvement, never at epoch 0 */
    spec.early_stopping.patience = 0;
    spec.early_stopping.restore_best_weights = false;
    dpt_callbacks_begin(&s, &spec);
    dpt_epoch_logs l = logs1(DPT_MON_VAL_LOSS, 1.0);
    dpt_callbacks_on_epoch_end(&s, 0, &l, 0.001, &a);
    assert_false(a.stop || a.save_best);
    l = logs1(DPT_MON_VAL_LOSS, 1.0); /* equal is not better */
    dpt_callbacks_on_epoch_end(&s, 1, &l, 0.001, &a);
    assert_true(a.stop);
    assert_false(dpt_callbacks_on_train_end(&s));
    /* min_delta: an improvement must beat best by more than it; max mode for accuracy */
    spec.early_stopping = (dpt_early_stopping_spec){
        .enabled = true, .monitor = DPT_MON_ACCURACY, .mode = 1, .patience = 1, .min_delta = 0.05};
    dpt_callbacks_begin(&s, &spec);
    l = logs1(DPT_MON_ACCURACY, 0.5);
    dpt_callbacks_on_epoch_end(&s, 0, &l, 0.001, &a);
    l = logs1(DPT_MON_ACCURACY, 0.54); /* +0.04 < min_delta */
    dpt_callbacks_on_epoch_end(&s, 1, &l, 0.001, &a);
    assert_true(a.stop);
    /* a missing value and epochs before start_from_epoch are ignored */
    spec.early_stopping.start_from_epoch = 2;
    dpt_callbacks_begin(&s, &spec);
    for (int e = 0; e < 2; e++) {
        l = logs1(DPT_MON_ACCURACY, 0.1);
        dpt_callbacks_on_epoch_end(&s, e, &l, 0.001, &a);
        assert_false(a.stop);
    }
    l = logs1(DPT_MON_LOSS, 0.1);
    dpt_callbacks_on_epoch_end(&s, 5, &l, 0.001, &a);
    assert_false(a.stop);
    assert_false(s.es_has_best);
    /* baseline: improving on best but not on the baseline does not reset wait */
    spec.early_stopping = (dpt_early_stopping_spec){.enabled = true,
                                                    .monitor = DPT_MON_LOSS,
                                                    .mode = -1,
                                                    .patience = 2,
                                                    .has_baseline = true,
                                                    .baseline = 0.5};
    dpt_callbacks_begin(&s, &spec);
    const double bl[] = {0.9, 0.8, 0.7};
    for (int e = 0; e < 3; e++) {
        l = logs1(DPT_MON_LOSS, bl[e]);
        dpt_callbacks_on_epoch_end(&s, e, &l, 0.001, &a);
    }
    assert_int_equal(s.es_wait, 3);
    assert_false(a.stop); /* improvements return before the patience test */
    l = logs1(DPT_MON_LOSS, 0.75);
    dpt_callbacks_on_epoch_end(&s, 3, &l, 0.001, &a);
    assert_true(a.stop);
}

/* ReduceLROnPlateau as Keras 3: patience, factor, min_lr floor, cooldown */
static void test_reduce_lr(void **state) {
    (void)state;
    dpt_callbacks_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.reduce_lr = (dpt_reduce_lr_spec){.enabled = true,
                                          .monitor = DPT_MON_LOSS,
                                          .mode = -1,
                                          .factor = 0.5,
                                          .patience = 2,
                                          .min_delta = 1e-4,
                                          .cooldown = 1,
                                          .min_lr = 0.3};
    dpt_callbacks_state s;
    dpt_callbacks_begin(&s, &spec);
    dpt_callback_actions a;
    double lr = 1.0;
    const double v[] = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
    /* epoch 0: best; 1: wait 1; 2: wait 2 -> lr 0.5, cooldown 1, wait 0; 3: cooldown ends
     * (counter 0, wait 0), then out of cooldown wait 1; 4: wait 2 -> max(0.25, min_lr 0.3);
     * later: lr is not above float32(min_lr): no more changes */
    const double lr_after[] = {1.0, 1.0, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3};
    for (int e = 0; e < 8; e++) {
        dpt_epoch_logs l = logs1(DPT_MON_LOSS, v[e]);
        dpt_callbacks_on_epoch_end(&s, e, &l, lr, &a);
        assert_false(a.stop);
        if (a.set_lr)
            lr = a.new_lr;
        if (fabs(lr - lr_after[e]) > 1e-12)
            fail_msg("epoch %d: lr %g, want %g", e, lr, lr_after[e]);
    }
    /* an improvement larger than min_delta resets the wait */
    dpt_callbacks_begin(&s, &spec);
    lr = 1.0;
    const double w[] = {1.0, 0.99, 0.98, 0.97};
    for (int e = 0; e < 4; e++) {
        dpt_epoch_logs l = logs1(DPT_MON_LOSS, w[e]);
        dpt_callbacks_on_epoch_end(&s, e, &l, lr, &a);
        assert_false(a.set_lr);
    }
    dpt_monitor m;
    assert_true(dpt_monitor_from_name("val_acc", &m) && m == DPT_MON_VAL_ACCURACY);
    assert_false(dpt_monitor_from_name("auc", &m));
    assert_string_equal(dpt_monitor_name(DPT_MON_VAL_LOSS), "val_loss");
}

/* step_range: the same bytes as step on pre-scaled gradients, nothing outside [lo, hi) touched,
 * and the verdict on non-finite results, for every optimizer kind */
static void test_step_range(void **state) {
    (void)state;
    const dpt_optim_kind kinds[] = {DPT_OPT_SGD, DPT_OPT_ADAM, DPT_OPT_RMSPROP, DPT_OPT_ADAMW};
    for (size_t q = 0; q < sizeof kinds / sizeof *kinds; q++) {
        for (int momentum = 0; momentum < 2; momentum++) {
            dpt_optim_spec spec = dpt_optim_defaults(kinds[q]);
            spec.momentum = momentum ? 0.9 : 0.0;
            dpt_optim *a = NULL, *b = NULL;
            assert_ok(dpt_optim_create(&spec, N, &a));
            assert_ok(dpt_optim_create(&spec, N, &b));
            float wa[N], wb[N], g2[N], scaled[N];
            memcpy(wa, w0, sizeof wa);
            memcpy(wb, w0, sizeof wb);
            for (int i = 0; i < N; i++) {
                g2[i] = grads[0][i] * 4.0f;
                scaled[i] = g2[i] * 0.25f;
            }
            dpt_optim_step(a, wa, scaled);
            /* two halves with the scale folded in */
            assert_false(dpt_optim_step_range(b, wb, g2, 0, N / 2, 0.25f));
            for (int i = N / 2; i < N; i++)
                assert_true(wb[i] == w0[i]); /* not yet */
            /* (each call is one iteration: the other half is what another rank does) */
            dpt_optim_set_iterations(b, 0);
            dpt_optim_step_range(b, wb, g2, N / 2, N, 0.25f);
            assert_memory_equal(wa, wb, sizeof wa);
            /* a NaN or an infinity in the gradient is reported */
            g2[1] = NAN;
            assert_true(dpt_optim_step_range(b, wb, g2, 0, N, 1.0f));
            memcpy(wb, w0, sizeof wb);
            g2[1] = 1.0f;
            g2[N - 1] = INFINITY;
            assert_true(dpt_optim_step_range(b, wb, g2, N - 1, N, 1.0f));
            dpt_optim_destroy(&a);
            dpt_optim_destroy(&b);
        }
    }
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
        cmocka_unit_test(test_rmsprop),
        cmocka_unit_test(test_weight_decay),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_reduce_lr),
        cmocka_unit_test(test_step_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
