/* Unit tests for Keras 3's further optimizers, options and schedules in src/optim: Nadam, Adamax,
 * Adagrad, Adadelta, Lion and Adam's amsgrad against references worked out here in double
 * precision from Keras 3's update_step formulas; weight_decay on them; clipvalue, per-tensor
 * clipnorm, global_clipnorm and gradient_accumulation_steps against Keras's base_optimizer rules;
 * dpt_optim_step_range over parts equal to the whole update (bit for bit); resuming from copied
 * slots and iterations (Nadam's u_product included) bit for bit; checkpoints of every new
 * optimizer's slots bit for bit; the new schedules at chosen steps against values Keras 3.15
 * computed; the config forms (Keras 3's serialized optimizer) and the spec checks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N 6
#define STEPS 5

static const float w0[N] = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f, 0.3f};
/* grads[s]: the gradient of step s+1 (signs and sizes vary, one zero at first) */
static const float grads[STEPS][N] = {
    {0.1f, -0.2f, 0.3f, 0.0f, 1.5f, -0.6f},    {-0.05f, -0.25f, 0.1f, 0.02f, 1.0f, 0.4f},
    {0.2f, 0.05f, -0.4f, -0.01f, 0.5f, 0.3f},  {0.3f, -0.1f, 0.2f, 0.05f, -0.5f, -0.2f},
    {-0.1f, 0.15f, 0.25f, -0.03f, 0.7f, 0.1f},
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

/* Runs `steps` steps of spec from w0 on the gradients g (steps x N). */
static void run(const dpt_optim_spec *spec, const float (*g)[N], int steps, float *w) {
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(spec, N, &o));
    memcpy(w, w0, sizeof w0);
    for (int s = 0; s < steps; s++) {
        dpt_optim_step(o, w, g[s]);
        assert_int_equal(dpt_optim_iterations(o), s + 1);
    }
    dpt_optim_destroy(&o);
    assert_null(o);
}

/* ---- the rules ----------------------------------------------------------------------------- */

static void test_nadam(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_NADAM);
    assert_true(spec.learning_rate == 0.001 && spec.beta_1 == 0.9 && spec.beta_2 == 0.999 &&
                spec.epsilon == 1e-7);
    spec.learning_rate = 0.01;
    float w[N];
    run(&spec, grads, STEPS, w);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7, lr = 0.01;
    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i], m = 0, v = 0, up = 1;
        for (int s = 1; s <= STEPS; s++) {
            double g = grads[s - 1][i];
            double ut = b1 * (1 - 0.5 * pow(0.96, s)), ut1 = b1 * (1 - 0.5 * pow(0.96, s + 1));
            up *= ut;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            double mhat = ut1 * m / (1 - up * ut1) + (1 - ut) * g / (1 - up);
            double vhat = v / (1 - pow(b2, s));
            x -= lr * mhat / (sqrt(vhat) + eps);
        }
        want[i] = x;
    }
    assert_close(w, want, N, 1e-5, "nadam w");
}

static void test_adamax(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAMAX);
    spec.learning_rate = 0.02;
    spec.beta_2 = 0.9; /* so that u decays below |g| sometimes */
    float w[N];
    run(&spec, grads, STEPS, w);
    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i], m = 0, u = 0;
        for (int s = 1; s <= STEPS; s++) {
            double g = grads[s - 1][i];
            m = 0.9 * m + 0.1 * g;
            u = fmax(0.9 * u, fabs(g));
            x -= 0.02 * m / ((1 - pow(0.9, s)) * (u + 1e-7));
        }
        want[i] = x;
    }
    assert_close(w, want, N, 1e-5, "adamax w");
}

static void test_adagrad(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAGRAD);
    assert_true(spec.learning_rate == 0.001 && spec.initial_accumulator_value == 0.1 &&
                spec.epsilon == 1e-7);
    spec.learning_rate = 0.05;
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, N, &o));
    assert_int_equal(dpt_optim_n_slots(o), 1);
    assert_string_equal(dpt_optim_slot_name(o, 0), "accumulator");
    assert_true(dpt_optim_slot(o, 0)[3] == 0.1f); /* starts at initial_accumulator_value */
    dpt_optim_destroy(&o);
    for (int variant = 0; variant < 2; variant++) {
        spec.initial_accumulator_value = variant ? 0.5 : 0.1;
        spec.weight_decay = variant ? 0.1 : 0.0;
        float w[N];
        run(&spec, grads, STEPS, w);
        double want[N];
        for (int i = 0; i < N; i++) {
            double x = w0[i], a = spec.initial_accumulator_value;
            for (int s = 1; s <= STEPS; s++) {
                double g = grads[s - 1][i];
                x -= x * spec.weight_decay * 0.05;
                a += g * g;
                x -= 0.05 * g / sqrt(a + 1e-7);
            }
            want[i] = x;
        }
        assert_close(w, want, N, 1e-5, variant ? "adagrad+wd w" : "adagrad w");
    }
}

static void test_adadelta(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADADELTA);
    assert_true(spec.learning_rate == 0.001 && spec.rho == 0.95 && spec.epsilon == 1e-7);
    spec.learning_rate = 1.0;
    float w[N];
    run(&spec, grads, STEPS, w);
    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i], a = 0, d2 = 0;
        for (int s = 1; s <= STEPS; s++) {
            double g = grads[s - 1][i];
            a = 0.95 * a + 0.05 * g * g;
            double d = -sqrt(d2 + 1e-7) * g / sqrt(a + 1e-7);
            d2 = 0.95 * d2 + 0.05 * d * d;
            x += 1.0 * d;
        }
        want[i] = x;
    }
    assert_close(w, want, N, 1e-5, "adadelta w");
}

static double sgn(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }

static void test_lion(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_LION);
    assert_true(spec.learning_rate == 0.001 && spec.beta_1 == 0.9 && spec.beta_2 == 0.99);
    spec.learning_rate = 0.01;
    spec.weight_decay = 0.5;
    float w[N];
    run(&spec, grads, STEPS, w);
    double want[N];
    for (int i = 0; i < N; i++) {
        double x = w0[i], m = 0;
        for (int s = 1; s <= STEPS; s++) {
            double g = grads[s - 1][i];
            x -= x * 0.5 * 0.01;
            x -= 0.01 * sgn(0.9 * m + 0.1 * g);
            m = 0.99 * m + 0.01 * g;
        }
        want[i] = x;
    }
    assert_close(w, want, N, 1e-5, "lion w");
}

static void test_amsgrad(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        dpt_optim_spec spec = dpt_optim_defaults(k ? DPT_OPT_ADAMW : DPT_OPT_ADAM);
        spec.learning_rate = 0.02;
        spec.beta_2 = 0.8; /* v falls, so vhat = max(vhat, v) matters */
        spec.amsgrad = true;
        dpt_optim *o = NULL;
        assert_ok(dpt_optim_create(&spec, N, &o));
        assert_int_equal(dpt_optim_n_slots(o), 3);
        assert_string_equal(dpt_optim_slot_name(o, 2), "velocity_hat");
        dpt_optim_destroy(&o);
        float w[N];
        run(&spec, grads, STEPS, w);
        double want[N];
        const double b1 = 0.9, b2 = (double)(float)0.8;
        for (int i = 0; i < N; i++) {
            double x = w0[i], m = 0, v = 0, vh = 0;
            for (int s = 1; s <= STEPS; s++) {
                double g = grads[s - 1][i];
                x -= x * spec.weight_decay * 0.02;
                m = b1 * m + (1 - b1) * g;
                v = b2 * v + (1 - b2) * g * g;
                vh = fmax(vh, v);
                x -= 0.02 * sqrt(1 - pow(b2, s)) / (1 - pow(b1, s)) * m / (sqrt(vh) + 1e-7);
            }
            want[i] = x;
        }
        assert_close(w, want, N, 1e-5, k ? "adamw amsgrad w" : "adam amsgrad w");
    }
}

/* ---- gradient processing ------------------------------------------------------------------- */

/* SGD with lr 0.1 and a processed gradient: the reference applies `proc` to each step's g. */
static void check_sgd_processed(const dpt_optim_spec *spec, const int64_t *tens, int n_tens,
                                void (*proc)(const float *g, double *out), const char *what) {
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(spec, N, &o));
    if (tens)
        assert_ok(dpt_optim_set_tensors(o, tens, n_tens));
    assert_true(dpt_optim_needs_whole_vector(o) ==
                (spec->clipnorm > 0 || spec->global_clipnorm > 0));
    float w[N];
    memcpy(w, w0, sizeof w0);
    double want[N];
    for (int i = 0; i < N; i++)
        want[i] = w0[i];
    for (int s = 0; s < STEPS; s++) {
        dpt_optim_step(o, w, grads[s]);
        double pg[N];
        proc(grads[s], pg);
        for (int i = 0; i < N; i++)
            want[i] -= 0.1 * pg[i];
    }
    assert_close(w, want, N, 1e-5, what);
    dpt_optim_destroy(&o);
}

static void proc_clipvalue(const float *g, double *out) {
    for (int i = 0; i < N; i++)
        out[i] = fmin(fmax(g[i], -0.25), 0.25);
}
/* tensors [0, 2), [2, 5), [5, 6) clipped to norm 0.3 each */
static void proc_clipnorm(const float *g, double *out) {
    const int b[4] = {0, 2, 5, 6};
    for (int t = 0; t < 3; t++) {
        double ss = 0;
        for (int i = b[t]; i < b[t + 1]; i++)
            ss += (double)g[i] * g[i];
        double nrm = sqrt(ss);
        for (int i = b[t]; i < b[t + 1]; i++)
            out[i] = g[i] * 0.3 / fmax(nrm, 0.3);
    }
}
static void proc_global(const float *g, double *out) {
    double ss = 0;
    for (int i = 0; i < N; i++)
        ss += (double)g[i] * g[i];
    double sc = 0.5 * fmin(1 / sqrt(ss), 1 / 0.5);
    for (int i = 0; i < N; i++)
        out[i] = g[i] * sc;
}

static void test_clipping(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_SGD);
    spec.learning_rate = 0.1;
    spec.clipvalue = 0.25;
    check_sgd_processed(&spec, NULL, 0, proc_clipvalue, "clipvalue w");
    spec.clipvalue = 0;
    spec.clipnorm = 0.3;
    const int64_t tens[6] = {0, 2, 2, 3, 5, 1};
    check_sgd_processed(&spec, tens, 3, proc_clipnorm, "clipnorm w");
    spec.clipnorm = 0;
    spec.global_clipnorm = 0.5;
    check_sgd_processed(&spec, NULL, 0, proc_global, "global_clipnorm w");
    /* a zero gradient stays zero under clipnorm (Keras: l2norm 0, divided by clipnorm) */
    spec.global_clipnorm = 0;
    spec.clipnorm = 0.3;
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, N, &o));
    float w[N], z[N] = {0};
    memcpy(w, w0, sizeof w0);
    assert_false(dpt_optim_step_range(o, w, z, 0, N, 1.0f));
    assert_memory_equal(w, w0, sizeof w0);
    /* a non-finite gradient: the clipped update is non-finite, and said so */
    z[2] = INFINITY;
    assert_true(dpt_optim_step_range(o, w, z, 0, N, 1.0f));
    dpt_optim_destroy(&o);
}

/* Keras 3: the mean of N steps' gradients is applied at every N-th step; the iteration count
 * advances every step and the schedule reads it; the bias corrections count applied updates. */
static void test_gradient_accumulation(void **state) {
    (void)state;
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    spec.learning_rate = 0.02;
    spec.gradient_accumulation_steps = 2;
    spec.schedule.kind = DPT_LR_INVERSE_TIME;
    spec.schedule.initial_learning_rate = 0.02;
    spec.schedule.decay_steps = 1;
    spec.schedule.decay_rate = 0.5;
    dpt_optim *o = NULL;
    assert_ok(dpt_optim_create(&spec, N, &o));
    assert_int_equal(dpt_optim_n_slots(o), 3);
    assert_string_equal(dpt_optim_slot_name(o, 2), "gradient_accumulator");
    float w[N];
    memcpy(w, w0, sizeof w0);
    double want[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        want[i] = w0[i];
    const double b1 = 0.9, b2 = (double)0.999f;
    for (int s = 0; s < 4; s++) {
        float before[N];
        memcpy(before, w, sizeof w);
        dpt_optim_step(o, w, grads[s]);
        assert_int_equal(dpt_optim_iterations(o), s + 1);
        if (s % 2 == 0) { /* accumulated only: the weights stay, the accumulator holds g */
            assert_memory_equal(w, before, sizeof w);
            assert_memory_equal(dpt_optim_slot(o, 2), grads[s], sizeof w);
            continue;
        }
        const int t = (s + 1) / 2;              /* applied updates */
        const double lr = 0.02 / (1 + 0.5 * s); /* schedule at iterations before this step */
        for (int i = 0; i < N; i++) {
            double g = ((double)grads[s][i] + grads[s - 1][i]) / 2;
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            want[i] -= lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)) * m[i] / (sqrt(v[i]) + 1e-7);
        }
        for (int i = 0; i < N; i++) /* the accumulator is zeroed after an update */
            assert_true(dpt_optim_slot(o, 2)[i] == 0.0f);
    }
    assert_close(w, want, N, 1e-5, "accumulated adam w");
    /* a non-finite gradient on an accumulating step is reported at once */
    float bad[N] = {0, 0, NAN, 0, 0, 0};
    assert_true(dpt_optim_step_range(o, w, bad, 0, N, 1.0f));
    dpt_optim_destroy(&o);
}

/* ---- parts, resume, checkpoints ------------------------------------------------------------ */

static dpt_optim_spec spec_of(int which) {
    static const dpt_optim_kind kinds[] = {DPT_OPT_NADAM,    DPT_OPT_ADAMAX, DPT_OPT_ADAGRAD,
                                           DPT_OPT_ADADELTA, DPT_OPT_LION,   DPT_OPT_ADAM,
                                           DPT_OPT_SGD,      DPT_OPT_NADAM};
    dpt_optim_spec s = dpt_optim_defaults(kinds[which]);
    s.learning_rate = 0.01;
    if (which == 5) {
        s.amsgrad = true;
        s.clipvalue = 0.2;
        s.weight_decay = 0.01;
    }
    if (which == 6) {
        s.momentum = 0.9;
        s.gradient_accumulation_steps = 3;
        s.clipvalue = 0.25;
    }
    if (which == 7)
        s.gradient_accumulation_steps = 2;
    return s;
}
#define N_SPECS 8

static void test_step_range_parts(void **state) {
    (void)state;
    for (int which = 0; which < N_SPECS; which++) {
        dpt_optim_spec spec = spec_of(which);
        dpt_optim *a = NULL, *b = NULL;
        assert_ok(dpt_optim_create(&spec, N, &a));
        assert_ok(dpt_optim_create(&spec, N, &b));
        const int64_t seg[4] = {0, 4, 5, 1}; /* element 4 frozen */
        assert_ok(dpt_optim_set_segments(a, seg, 2));
        assert_ok(dpt_optim_set_segments(b, seg, 2));
        float wa[N], wb[N];
        memcpy(wa, w0, sizeof w0);
        memcpy(wb, w0, sizeof w0);
        for (int s = 0; s < STEPS; s++) {
            float gs[N];
            for (int i = 0; i < N; i++)
                gs[i] = grads[s][i] * 8.0f;
            dpt_optim_step_range(a, wa, gs, 0, N, 0.125f);
            /* three "ranks" [0, 1), [1, 5), [5, 6), each at the same iteration count */
            const int64_t parts[4] = {0, 1, 5, 6}, t0 = dpt_optim_iterations(b);
            for (int p = 0; p < 3; p++) {
                dpt_optim_set_iterations(b, t0);
                dpt_optim_step_range(b, wb, gs, parts[p], parts[p + 1], 0.125f);
            }
            assert_int_equal(dpt_optim_iterations(b), dpt_optim_iterations(a));
        }
        assert_memory_equal(wa, wb, sizeof wa);
        assert_true(wa[4] == w0[4]);
        for (int i = 0; i < dpt_optim_n_slots(a); i++)
            assert_memory_equal(dpt_optim_slot(a, i), dpt_optim_slot(b, i), sizeof(float) * N);
        dpt_optim_destroy(&a);
        dpt_optim_destroy(&b);
    }
}

/* Copying the slots and the iteration count into a fresh optimizer continues bit for bit (what a
 * checkpoint restores; Nadam's u_product is rebuilt from the count). */
static void test_resume_bitwise(void **state) {
    (void)state;
    for (int which = 0; which < N_SPECS; which++) {
        dpt_optim_spec spec = spec_of(which);
        dpt_optim *a = NULL, *b = NULL;
        assert_ok(dpt_optim_create(&spec, N, &a));
        assert_ok(dpt_optim_create(&spec, N, &b));
        float wa[N];
        memcpy(wa, w0, sizeof w0);
        for (int s = 0; s < 3; s++)
            dpt_optim_step(a, wa, grads[s]);
        float wb[N];
        memcpy(wb, wa, sizeof wa);
        for (int i = 0; i < dpt_optim_n_slots(a); i++)
            memcpy(dpt_optim_slot(b, i), dpt_optim_slot(a, i), sizeof(float) * N);
        dpt_optim_set_iterations(b, dpt_optim_iterations(a));
        for (int s = 3; s < STEPS; s++) {
            dpt_optim_step(a, wa, grads[s]);
            dpt_optim_step(b, wb, grads[s]);
        }
        assert_memory_equal(wa, wb, sizeof wa);
        dpt_optim_destroy(&a);
        dpt_optim_destroy(&b);
    }
}

static const char *MLP = "[{\"class_name\":\"Dense\",\"config\":{\"units\":5,\"activation\":"
                         "\"tanh\"}}, {\"class_name\":\"Dense\",\"config\":{\"units\":2}}]";

static dpt_model *make_model(uint32_t seed) {
    json_error_t je;
    json_t *layers = json_loads(MLP, 0, &je);
    assert_non_null(layers);
    dpt_shape s = {.rank = 1, .dim = {4}};
    dpt_json_ctx ctx = {.file = "test.json", .path = "model.config"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(layers, &s, 8, seed, &ctx, &m));
    json_decref(layers);
    return m;
}

static void test_checkpoint_slots(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("optim2-ckpt");
    for (int which = 0; which < N_SPECS; which++) {
        dpt_optim_spec spec = spec_of(which);
        dpt_model *ma = make_model(1), *mb = make_model(2);
        const int64_t n = dpt_model_n_params(ma);
        dpt_optim *a = NULL, *b = NULL;
        assert_ok(dpt_optim_create(&spec, n, &a));
        assert_ok(dpt_optim_create(&spec, n, &b));
        float *g = calloc((size_t)n, sizeof(float));
        for (int s = 0; s < 4; s++) { /* 4: an accumulation is pending for which 6 */
            for (int64_t i = 0; i < n; i++)
                g[i] = sinf((float)(i * 7 + s * 13)) * 0.1f;
            dpt_optim_step(a, dpt_model_params(ma), g);
        }
        dpt_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.epoch = which + 1;
        assert_ok(dpt_ckpt_write(dir, ma, a, &meta, "{}", 1));
        char last[4200];
        snprintf(last, sizeof last, "%s/last.h5", dir);
        assert_ok(dpt_ckpt_read(last, mb, b, NULL));
        assert_int_equal(dpt_optim_n_slots(b), dpt_optim_n_slots(a));
        for (int i = 0; i < dpt_optim_n_slots(a); i++)
            assert_memory_equal(dpt_optim_slot(a, i), dpt_optim_slot(b, i),
                                sizeof(float) * (size_t)n);
        assert_int_equal(dpt_optim_iterations(b), 4);
        /* and both continue identically */
        for (int s = 4; s < 7; s++) {
            for (int64_t i = 0; i < n; i++)
                g[i] = cosf((float)(i * 3 + s * 5)) * 0.1f;
            dpt_optim_step(a, dpt_model_params(ma), g);
            dpt_optim_step(b, dpt_model_params(mb), g);
        }
        assert_memory_equal(dpt_model_params(ma), dpt_model_params(mb), sizeof(float) * (size_t)n);
        /* another optimizer (or option) refuses the checkpoint */
        dpt_optim_spec other = spec_of((which + 1) % N_SPECS);
        dpt_optim *c = NULL;
        assert_ok(dpt_optim_create(&other, n, &c));
        assert_int_equal(dpt_ckpt_read(last, mb, c, NULL), DPT_ERR_CHECKPOINT);
        dpt_optim_destroy(&c);
        if (spec.gradient_accumulation_steps > 0) { /* the same slots, another N */
            other = spec;
            other.gradient_accumulation_steps++;
            assert_ok(dpt_optim_create(&other, n, &c));
            assert_status_msg(dpt_ckpt_read(last, mb, c, NULL), DPT_ERR_CHECKPOINT,
                              "written with gradient_accumulation_steps");
            dpt_optim_destroy(&c);
        }
        free(g);
        dpt_optim_destroy(&a);
        dpt_optim_destroy(&b);
        dpt_model_destroy(&ma);
        dpt_model_destroy(&mb);
    }
}

/* ---- schedules ------------------------------------------------------------------------------ */

static void check_schedule(const dpt_lr_schedule *s, const double *keras, const char *what) {
    static const int64_t steps[12] = {0, 1, 3, 4, 5, 7, 10, 12, 13, 15, 20, 30};
    for (int i = 0; i < 12; i++) {
        double got = dpt_lr_schedule_at(s, steps[i]);
        if (!(fabs(got - keras[i]) <= 2e-6 * fabs(keras[i])))
            fail_msg("%s at step %lld: got %.9g, Keras %.9g", what, (long long)steps[i], got,
                     keras[i]);
    }
}

static void test_schedules_vs_keras(void **state) {
    (void)state;
    /* the values Keras 3.15 (JAX, float32) gives at steps 0 1 3 4 5 7 10 12 13 15 20 30 */
    dpt_lr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = DPT_LR_INVERSE_TIME; /* InverseTimeDecay(0.1, 5, 0.5) */
    s.initial_learning_rate = 0.1;
    s.decay_steps = 5;
    s.decay_rate = 0.5;
    const double inv[] = {0.100000001,  0.0909090936, 0.0769230798, 0.0714285746,
                          0.0666666701, 0.0588235296, 0.0500000007, 0.0454545468,
                          0.0434782617, 0.0399999991, 0.0333333351, 0.0250000004};
    check_schedule(&s, inv, "InverseTimeDecay");
    s.decay_steps = 4; /* InverseTimeDecay(0.1, 4, 0.5, staircase=True) */
    s.staircase = true;
    const double invst[] = {0.100000001,  0.100000001,  0.100000001,  0.0666666701,
                            0.0666666701, 0.0666666701, 0.0500000007, 0.0399999991,
                            0.0399999991, 0.0399999991, 0.0285714287, 0.0222222228};
    check_schedule(&s, invst, "InverseTimeDecay staircase");
    memset(&s, 0, sizeof s);
    s.kind = DPT_LR_POLYNOMIAL; /* PolynomialDecay(0.1, 12, end_learning_rate=0.01, power=2) */
    s.initial_learning_rate = 0.1;
    s.decay_steps = 12;
    s.end_learning_rate = 0.01;
    s.power = 2;
    const double poly[] = {0.100000001,   0.0856250003,  0.0606250018,  0.049999997,
                           0.040625006,   0.0256250016,  0.0125000002,  0.00999999978,
                           0.00999999978, 0.00999999978, 0.00999999978, 0.00999999978};
    check_schedule(&s, poly, "PolynomialDecay");
    s.decay_steps = 5; /* PolynomialDecay(0.1, 5, 0.01, power=0.5, cycle=True) */
    s.power = 0.5;
    s.cycle = true;
    const double polyc[] = {0.100000001,   0.0904984474,  0.0669210032,  0.0502492264,
                            0.00999999978, 0.0592950359,  0.00999999978, 0.0502492264,
                            0.0428633541,  0.00999999978, 0.00999999978, 0.00999999978};
    check_schedule(&s, polyc, "PolynomialDecay cycle");
    memset(&s, 0, sizeof s);
    s.kind = DPT_LR_COSINE_RESTARTS; /* CosineDecayRestarts(0.1, 4, t_mul=2, m_mul=0.8, 0.1) */
    s.initial_learning_rate = 0.1;
    s.decay_steps = 4;
    s.t_mul = 2;
    s.m_mul = 0.8;
    s.alpha = 0.1;
    const double cr[] = {0.100000001,  0.0868198127, 0.0231801961, 0.0820000023,
                         0.0792596638, 0.0597766005, 0.0205441564, 0.0676000044,
                         0.0670466274, 0.0627463311, 0.0387999974, 0.0556372963};
    check_schedule(&s, cr, "CosineDecayRestarts");
    s.decay_steps = 5; /* CosineDecayRestarts(0.1, 5, t_mul=1, m_mul=0.9) */
    s.t_mul = 1;
    s.m_mul = 0.9;
    s.alpha = 0;
    const double cr1[] = {0.100000001,  0.0904508457, 0.0345491432, 0.00954914745,
                          0.0899999961, 0.0589057691, 0.0809999928, 0.0530151688,
                          0.0279848222, 0.0728999898, 0.0656099916, 0.0531440936};
    check_schedule(&s, cr1, "CosineDecayRestarts t_mul=1");
    memset(&s, 0, sizeof s);
    s.kind = DPT_LR_COSINE; /* CosineDecay(0.001, 10, alpha=0.1, warmup_target=0.02, 5) */
    s.initial_learning_rate = 0.001;
    s.decay_steps = 10;
    s.alpha = 0.1;
    s.has_warmup = true;
    s.warmup_target = 0.02;
    s.warmup_steps = 5;
    const double cw[] = {0.00100000005, 0.00479999976, 0.0124000004,  0.0162000004,
                         0.0199999996,  0.0182811525,  0.010999999,   0.00570993312,
                         0.00371884624, 0.00200000009, 0.00200000009, 0.00200000009};
    check_schedule(&s, cw, "CosineDecay warmup");
}

/* ---- the spec checks and the config forms -----------------------------------------------------
 */

static void test_bad_specs(void **state) {
    (void)state;
    dpt_optim *o = NULL;
    dpt_optim_spec s = dpt_optim_defaults(DPT_OPT_ADAM);
    s.clipnorm = 1;
    s.clipvalue = 1;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG, "only one of clipnorm");
    s = dpt_optim_defaults(DPT_OPT_SGD);
    s.gradient_accumulation_steps = 1;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG,
                      "gradient_accumulation_steps must be an integer >= 2");
    s = dpt_optim_defaults(DPT_OPT_LION);
    s.beta_1 = 0;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG, "beta_1 must be in (0, 1]");
    s = dpt_optim_defaults(DPT_OPT_ADADELTA);
    s.rho = 1.5;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG, "rho must be in [0, 1]");
    s = dpt_optim_defaults(DPT_OPT_ADAGRAD);
    s.initial_accumulator_value = -1;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG, "initial_accumulator_value");
    s = dpt_optim_defaults(DPT_OPT_NADAM);
    s.amsgrad = true;
    assert_int_equal(dpt_optim_create(&s, N, &o), DPT_ERR_INTERNAL);
    s = dpt_optim_defaults(DPT_OPT_ADAM);
    s.global_clipnorm = -1;
    assert_status_msg(dpt_optim_create(&s, N, &o), DPT_ERR_CONFIG, "global_clipnorm must be > 0");
    assert_null(o);
    s = dpt_optim_defaults(DPT_OPT_SGD);
    assert_ok(dpt_optim_create(&s, N, &o));
    const int64_t bad[4] = {0, 3, 2, 2};
    assert_int_equal(dpt_optim_set_tensors(o, bad, 2), DPT_ERR_INTERNAL);
    dpt_optim_destroy(&o);
}

#define MODEL                                                                                      \
    "\"model\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"input_dim\": 4}}]"

static void parse_opt(const char *opt, dpt_config *c) {
    char text[4096];
    snprintf(text, sizeof text, "{" MODEL ", \"compile\": {\"loss\": \"mse\", \"optimizer\": %s}}",
             opt);
    assert_ok(dpt_config_parse(text, strlen(text), "o.json", c));
}

static void test_config_forms(void **state) {
    (void)state;
    dpt_config c;
    /* Keras 3's serialize(Nadam(clipnorm=1.0, gradient_accumulation_steps=2)) */
    parse_opt("{\"module\": \"keras.optimizers\", \"class_name\": \"Nadam\", \"config\": "
              "{\"name\": \"nadam\", \"learning_rate\": 0.0010000000474974513, \"weight_decay\": "
              "0.01, \"clipnorm\": 1.0, \"global_clipnorm\": null, \"clipvalue\": null, "
              "\"use_ema\": false, \"ema_momentum\": 0.99, \"ema_overwrite_frequency\": null, "
              "\"loss_scale_factor\": null, \"gradient_accumulation_steps\": 2, \"beta_1\": 0.85, "
              "\"beta_2\": 0.995, \"epsilon\": 1e-07}, \"registered_name\": null}",
              &c);
    assert_int_equal(c.optim.kind, DPT_OPT_NADAM);
    assert_true(c.optim.clipnorm == 1.0 && c.optim.clipvalue == 0 && c.optim.global_clipnorm == 0);
    assert_int_equal(c.optim.gradient_accumulation_steps, 2);
    assert_true(c.optim.beta_1 == 0.85 && c.optim.beta_2 == 0.995 && c.optim.weight_decay == 0.01);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"Adagrad\", \"config\": {\"initial_accumulator_value\": 0.2, "
              "\"epsilon\": 1e-5, \"clipvalue\": 0.5}}",
              &c);
    assert_int_equal(c.optim.kind, DPT_OPT_ADAGRAD);
    assert_true(c.optim.initial_accumulator_value == 0.2 && c.optim.epsilon == 1e-5 &&
                c.optim.clipvalue == 0.5);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"Adadelta\", \"config\": {\"rho\": 0.9}}", &c);
    assert_true(c.optim.kind == DPT_OPT_ADADELTA && c.optim.rho == 0.9 &&
                c.optim.learning_rate == 0.001 && c.optim.epsilon == 1e-7);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"Lion\", \"config\": {\"beta_2\": 0.98, \"global_clipnorm\": 2}}",
              &c);
    assert_true(c.optim.kind == DPT_OPT_LION && c.optim.beta_1 == 0.9 && c.optim.beta_2 == 0.98 &&
                c.optim.global_clipnorm == 2);
    dpt_config_deinit(&c);
    parse_opt("\"adamax\"", &c);
    assert_true(c.optim.kind == DPT_OPT_ADAMAX && c.optim.beta_2 == 0.999);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"Adam\", \"config\": {\"amsgrad\": true}}", &c);
    assert_true(c.optim.kind == DPT_OPT_ADAM && c.optim.amsgrad);
    dpt_config_deinit(&c);
    /* the schedules, as Keras 3 serializes them */
    parse_opt("{\"class_name\": \"SGD\", \"config\": {\"learning_rate\": {\"module\": "
              "\"keras.optimizers.schedules\", \"class_name\": \"CosineDecayRestarts\", "
              "\"config\": {\"initial_learning_rate\": 0.1, \"first_decay_steps\": 10, "
              "\"t_mul\": 2.0, \"m_mul\": 1.0, \"alpha\": 0.0, \"name\": \"SGDRDecay\"}, "
              "\"registered_name\": null}}}",
              &c);
    assert_true(c.optim.schedule.kind == DPT_LR_COSINE_RESTARTS &&
                c.optim.schedule.decay_steps == 10 && c.optim.schedule.t_mul == 2 &&
                c.optim.schedule.m_mul == 1);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"SGD\", \"config\": {\"learning_rate\": {\"class_name\": "
              "\"PolynomialDecay\", \"config\": {\"initial_learning_rate\": 0.1, \"decay_steps\": "
              "10}}}}",
              &c);
    assert_true(c.optim.schedule.kind == DPT_LR_POLYNOMIAL &&
                c.optim.schedule.end_learning_rate == 0.0001 && c.optim.schedule.power == 1 &&
                !c.optim.schedule.cycle);
    dpt_config_deinit(&c);
    parse_opt("{\"class_name\": \"SGD\", \"config\": {\"learning_rate\": {\"class_name\": "
              "\"InverseTimeDecay\", \"config\": {\"initial_learning_rate\": 0.1, \"decay_steps\": "
              "10, \"decay_rate\": 0.5, \"staircase\": true}}}}",
              &c);
    assert_true(c.optim.schedule.kind == DPT_LR_INVERSE_TIME &&
                c.optim.schedule.decay_rate == 0.5 && c.optim.schedule.staircase);
    dpt_config_deinit(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nadam),
        cmocka_unit_test(test_adamax),
        cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_adadelta),
        cmocka_unit_test(test_lion),
        cmocka_unit_test(test_amsgrad),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_gradient_accumulation),
        cmocka_unit_test(test_step_range_parts),
        cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_checkpoint_slots),
        cmocka_unit_test(test_schedules_vs_keras),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_config_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
