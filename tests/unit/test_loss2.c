/* Unit tests of the Keras losses with their options (dpt_loss_compute_spec) and of the metrics
 * module (include/dptrain/metrics.h): every loss against the value real Keras 3.15 gives at the
 * same points, weighted and unweighted; every gradient against finite differences; every metric
 * against Keras's value or a hand count; metric states summed over split batches ("ranks")
 * equal the whole batch's; the fused head; Keras's pick of "accuracy"; the refusals. No MPI.
 *
 * The reference numbers were printed by this Python (Keras 3.15, JAX backend), the data being
 * the arrays below:
 *   for name, loss, y, pred in cases:  # e.g. ("huber d2", keras.losses.Huber(delta=2.0), yr, z)
 *       print(name, float(loss(y, pred)), float(loss(y, pred, sample_weight=w)))
 *   for name, m in metrics:            # e.g. ("auc_pr7", keras.metrics.AUC(7, curve="PR"))
 *       m.update_state(y, pred); print(name, float(m.result()))
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/metrics.h"
#include "testutil.h"

#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s: %.9g != %.9g (tolerance %g)", #a, a_, b_, (double)(tol));                \
    } while (0)

enum { B = 3, K = 4 };
/* binary / hinge labels, probabilities, logits (also regression predictions), targets */
static const float yb[B * K] = {0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0};
static const float pb[B * K] = {0.2f, 0.7f, 0.9f,  0.4f,  0.6f,  0.1f,
                                0.3f, 0.8f, 0.55f, 0.95f, 0.05f, 0.5f};
static const float z[B * K] = {-1.5f, 0.7f, 2.0f, -0.3f, 0.4f,  -2.2f,
                               -0.8f, 1.1f, 0.1f, 3.0f,  -2.5f, 0.0f};
static const float yr[B * K] = {0.5f,  -1.0f, 2.0f,  0.0f, 1.5f, 0.2f,
                                -0.7f, 3.0f,  -2.0f, 0.1f, 0.4f, 1.0f};
static const float ypos[B * K] = {0.5f, 1.0f, 2.0f, 0.1f, 1.5f, 0.2f,
                                  0.7f, 3.0f, 2.0f, 0.1f, 0.4f, 1.0f};
static const float ppos[B * K] = {0.7f, 1.4f, 1.0f, 0.3f, 1.0f, 0.5f,
                                  0.2f, 2.0f, 2.5f, 0.3f, 0.9f, 0.6f};
static const float yc[B * K] = {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
static const float ys[B] = {2, 0, 3};
static const float w[B] = {0.5f, 2.0f, 1.25f};
static float pc[B * K], pcr[B * K], ypm[B * K]; /* pb normalised per row; its rows reversed; 2y-1 */

static void init_data(void) {
    for (int i = 0; i < B; i++) {
        float s = 0;
        for (int j = 0; j < K; j++)
            s += pb[i * K + j];
        for (int j = 0; j < K; j++)
            pc[i * K + j] = pb[i * K + j] / s;
    }
    for (int i = 0; i < B; i++)
        memcpy(pcr + i * K, pc + (B - 1 - i) * K, K * sizeof(float));
    for (int i = 0; i < B * K; i++)
        ypm[i] = 2 * yb[i] - 1;
}

typedef struct {
    const char *name;
    double keras, keras_weighted;
} ref;
static const ref refs[] = {
    {"bce probs", 0.315465003, 0.394331247},
    {"bce logits", 0.335619837, 0.418940544},
    {"bce ls probs", 0.446815878, 0.5585199},
    {"bce ls logits", 0.457286507, 0.571023881},
    {"cce probs", 1.13447237, 1.46928918},
    {"cce logits", 1.55419004, 2.16323638},
    {"cce ls logits", 1.63418996, 2.23823643},
    {"cce ls probs", 1.18721354, 1.5329088},
    {"scce logits", 1.55419004, 2.16323638},
    {"mse", 3.3166666, 4.37145805},
    {"mae", 1.5333333, 2.01041675},
    {"mape", 516.746033, 690.992004},
    {"msle", 0.0616334192, 0.0809448063},
    {"huber", 1.12916672, 1.48395836},
    {"huber d2", 1.58375013, 2.08749986},
    {"log_cosh", 1.01210403, 1.33087552},
    {"kld", 0.449858159, 0.445455313},
    {"poisson", 0.782403469, 0.948225021},
    {"hinge01", 0.308333308, 0.372916669},
    {"hingepm", 0.308333308, 0.372916669},
    {"sqhinge", 0.232500002, 0.279374987},
    {"cathinge", 1.89999998, 2.79999995},
    {"focal probs", 0.0451858006, 0.0564822517},
    {"focal logits", 0.0508168526, 0.0625190139},
    {"focal bal ls", 0.0406127311, 0.0487818718},
    {"cosine", -0.257344484, -0.327098519},
};

static double keras_ref(const char *name, bool weighted) {
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        if (!strcmp(refs[i].name, name))
            return weighted ? refs[i].keras_weighted : refs[i].keras;
    fail_msg("no reference for %s", name);
    return 0;
}

typedef struct {
    const char *name;
    dpt_loss_spec s;
    const float *y, *pred;
} lcase;

static dpt_loss_spec spec(dpt_loss_kind k, bool logits, float ls) {
    dpt_loss_spec s = dpt_loss_spec_default(k);
    s.from_logits = logits;
    s.label_smoothing = ls;
    return s;
}

static int n_cases;
static lcase cases[32];
static void add(const char *name, dpt_loss_spec s, const float *y, const float *pred) {
    cases[n_cases++] = (lcase){name, s, y, pred};
}

static void init_cases(void) {
    n_cases = 0;
    add("bce probs", spec(DPT_LOSS_BINARY_CROSSENTROPY, false, 0), yb, pb);
    add("bce logits", spec(DPT_LOSS_BINARY_CROSSENTROPY, true, 0), yb, z);
    add("bce ls probs", spec(DPT_LOSS_BINARY_CROSSENTROPY, false, 0.2f), yb, pb);
    add("bce ls logits", spec(DPT_LOSS_BINARY_CROSSENTROPY, true, 0.2f), yb, z);
    add("cce probs", spec(DPT_LOSS_CATEGORICAL_CROSSENTROPY, false, 0), yc, pc);
    add("cce logits", spec(DPT_LOSS_CATEGORICAL_CROSSENTROPY, true, 0), yc, z);
    add("cce ls logits", spec(DPT_LOSS_CATEGORICAL_CROSSENTROPY, true, 0.1f), yc, z);
    add("cce ls probs", spec(DPT_LOSS_CATEGORICAL_CROSSENTROPY, false, 0.1f), yc, pc);
    add("scce logits", spec(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, true, 0), ys, z);
    add("mse", spec(DPT_LOSS_MSE, false, 0), yr, z);
    add("mae", spec(DPT_LOSS_MAE, false, 0), yr, z);
    add("mape", spec(DPT_LOSS_MAPE, false, 0), ypos, z);
    add("msle", spec(DPT_LOSS_MSLE, false, 0), ypos, ppos);
    add("huber", spec(DPT_LOSS_HUBER, false, 0), yr, z);
    dpt_loss_spec h2 = spec(DPT_LOSS_HUBER, false, 0);
    h2.delta = 2.0f;
    add("huber d2", h2, yr, z);
    add("log_cosh", spec(DPT_LOSS_LOG_COSH, false, 0), yr, z);
    add("kld", spec(DPT_LOSS_KL_DIVERGENCE, false, 0), pcr, pc);
    add("poisson", spec(DPT_LOSS_POISSON, false, 0), ypos, ppos);
    add("hinge01", spec(DPT_LOSS_HINGE, false, 0), yb, z);
    add("hingepm", spec(DPT_LOSS_HINGE, false, 0), ypm, z);
    add("sqhinge", spec(DPT_LOSS_SQUARED_HINGE, false, 0), yb, z);
    add("cathinge", spec(DPT_LOSS_CATEGORICAL_HINGE, false, 0), yc, z);
    add("focal probs", spec(DPT_LOSS_BINARY_FOCAL_CROSSENTROPY, false, 0), yb, pb);
    add("focal logits", spec(DPT_LOSS_BINARY_FOCAL_CROSSENTROPY, true, 0), yb, z);
    dpt_loss_spec fb = spec(DPT_LOSS_BINARY_FOCAL_CROSSENTROPY, false, 0.1f);
    fb.class_balancing = true;
    fb.alpha = 0.3f;
    fb.gamma = 1.5f;
    add("focal bal ls", fb, yb, pb);
    add("cosine", spec(DPT_LOSS_COSINE_SIMILARITY, false, 0), yr, z);
}

static double loss_sum(const lcase *c, const float *pred, const float *wt) {
    double s = 0;
    assert_ok(dpt_loss_compute_spec(&c->s, DPT_ACT_LINEAR, pred, c->y, wt, B, K, NULL, &s, NULL));
    return s;
}

/* value / B (Keras's sum_over_batch_size, weighted or not) against Keras's */
static void test_values_vs_keras(void **state) {
    (void)state;
    for (int i = 0; i < n_cases; i++) {
        const lcase *c = &cases[i];
        for (int weighted = 0; weighted < 2; weighted++) {
            double v = loss_sum(c, c->pred, weighted ? w : NULL) / B;
            double k = keras_ref(c->name, weighted);
            if (!(fabs(v - k) <= 2e-6 * fmax(1.0, fabs(k))))
                fail_msg("%s%s: dptrain %.9g, Keras %.9g", c->name, weighted ? " weighted" : "", v,
                         k);
        }
    }
}

/* a few values by hand, independently of Keras */
static void test_closed_forms(void **state) {
    (void)state;
    const float o[2] = {0.5f, 3.0f}, t[2] = {1.0f, 1.0f};
    dpt_loss_spec s = dpt_loss_spec_default(DPT_LOSS_HUBER);
    double v = 0;
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, o, t, NULL, 1, 2, NULL, &v, NULL));
    assert_near(v, (0.5 * 0.25 + (2.0 - 0.5)) / 2, 1e-7); /* 0.5 e^2 ; |e| - 1/2 */
    s = dpt_loss_spec_default(DPT_LOSS_LOG_COSH);
    v = 0;
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, o, t, NULL, 1, 2, NULL, &v, NULL));
    assert_near(v, (log(cosh(0.5)) + log(cosh(2.0))) / 2, 1e-7);
    s = dpt_loss_spec_default(DPT_LOSS_POISSON);
    v = 0;
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, o, t, NULL, 1, 2, NULL, &v, NULL));
    assert_near(v, (0.5 - log(0.5 + 1e-7) + 3.0 - log(3.0 + 1e-7)) / 2, 1e-6);
    /* categorical hinge: pos = 0.5, neg = max((1-y) z) = 3 -> 3.5; here y = (1, 0) */
    const float th[2] = {1.0f, 0.0f};
    s = dpt_loss_spec_default(DPT_LOSS_CATEGORICAL_HINGE);
    v = 0;
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, o, th, NULL, 1, 2, NULL, &v, NULL));
    assert_near(v, 3.5, 1e-7);
    /* cosine similarity of parallel vectors is -1, of orthogonal ones 0 */
    const float a[4] = {1, 2, 0, 3}, b2[4] = {2, 4, 3, 0};
    s = dpt_loss_spec_default(DPT_LOSS_COSINE_SIMILARITY);
    v = 0;
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, a, b2, NULL, 2, 2, NULL, &v, NULL));
    assert_near(v, -1.0 + 0.0, 1e-6);
    /* label smoothing 1: every binary target 1/2 */
    dpt_loss_spec sb = spec(DPT_LOSS_BINARY_CROSSENTROPY, false, 1.0f);
    const float p1[1] = {0.25f}, t1[1] = {1.0f};
    v = 0;
    assert_ok(dpt_loss_compute_spec(&sb, DPT_ACT_LINEAR, p1, t1, NULL, 1, 1, NULL, &v, NULL));
    assert_near(v, -0.5 * log(0.25) - 0.5 * log(0.75), 1e-6);
    /* "accuracy" of the other losses: Keras 3's binary_accuracy for one unit, y == (out > 0.5),
     * so a -1 hinge label never matches; argmax for several */
    const float ho[4] = {0.9f, -0.7f, 0.2f, 0.6f}, hy[4] = {1, -1, 1, 0};
    double hs = 0, hc = 0;
    s = dpt_loss_spec_default(DPT_LOSS_HINGE);
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, ho, hy, NULL, 4, 1, NULL, &hs, &hc));
    assert_true(hc == 1.0); /* row 0 only */
    hc = 0;
    s = dpt_loss_spec_default(DPT_LOSS_MAE);
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, z, yc, NULL, B, K, NULL, &hs, &hc));
    assert_true(hc == 1.0); /* argmax: row 0 (2 == 2); row 1: 3 vs 0; row 2: 1 vs 3 */
    /* focal with gamma 0 and no balancing is binary cross-entropy */
    dpt_loss_spec f0 = spec(DPT_LOSS_BINARY_FOCAL_CROSSENTROPY, false, 0);
    f0.gamma = 0;
    double vf = 0, vb = 0;
    assert_ok(dpt_loss_compute_spec(&f0, DPT_ACT_LINEAR, pb, yb, NULL, B, K, NULL, &vf, NULL));
    assert_ok(dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_LINEAR, pb, yb, B, K, NULL,
                               &vb, NULL));
    assert_near(vf, vb, 1e-6);
}

/* from_logits = true equals the folded sigmoid/softmax head on the same logits */
static void test_from_logits_is_the_fold(void **state) {
    (void)state;
    double a = 0, b = 0;
    dpt_loss_spec s = spec(DPT_LOSS_BINARY_CROSSENTROPY, true, 0);
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, z, yb, NULL, B, K, NULL, &a, NULL));
    assert_ok(dpt_loss_compute(DPT_LOSS_BINARY_CROSSENTROPY, DPT_ACT_SIGMOID, z, yb, B, K, NULL, &b,
                               NULL));
    assert_true(a == b);
    a = b = 0;
    s = spec(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, true, 0);
    assert_ok(dpt_loss_compute_spec(&s, DPT_ACT_LINEAR, z, ys, NULL, B, K, NULL, &a, NULL));
    assert_ok(dpt_loss_compute(DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, DPT_ACT_SOFTMAX, z, ys, B,
                               K, NULL, &b, NULL));
    assert_true(a == b);
}

/* central differences of the weighted loss sum against dout, for every case */
static void test_gradients(void **state) {
    (void)state;
    for (int c = 0; c < n_cases; c++) {
        const lcase *lc = &cases[c];
        float pred[B * K], d[B * K];
        memcpy(pred, lc->pred, sizeof pred);
        double s = 0;
        assert_ok(dpt_loss_compute_spec(&lc->s, DPT_ACT_LINEAR, pred, lc->y, w, B, K, d, &s, NULL));
        const float eps = 1e-3f;
        for (int i = 0; i < B * K; i++) {
            float save = pred[i];
            pred[i] = save + eps;
            double fp = loss_sum(lc, pred, w);
            pred[i] = save - eps;
            double fm = loss_sum(lc, pred, w);
            pred[i] = save;
            double num = (fp - fm) / (2.0 * (double)eps);
            if (fabs(num - d[i]) > 1e-2 * fmax(fabs(num), fabs(d[i])) + 1e-3)
                fail_msg("%s: element %d: analytic %g, numeric %g", lc->name, i, d[i], num);
        }
    }
}

/* ---- metrics -------------------------------------------------------------------------------- */

enum { NB = 12, NC = 5, KC = 4 };
static const float myb[NB] = {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1};
static const float mpb[NB] = {0.9f, 0.1f, 0.5f, 0.7f, 0.5f, 0.0f,
                              1.0f, 0.3f, 0.2f, 0.8f, 0.6f, 0.65f};
static const float myc[NC * KC] = {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0};
static const float mpc[NC * KC] = {0.1f,  0.2f,  0.6f, 0.1f, 0.3f, 0.4f, 0.2f, 0.1f, 0.25f, 0.25f,
                                   0.25f, 0.25f, 0.5f, 0.1f, 0.3f, 0.1f, 0.1f, 0.4f, 0.35f, 0.15f};
static const float mys[NC] = {2, 0, 3, 1, 2};

static const struct {
    const char *name;
    double keras;
} mrefs[] = {
    {"auc", 0.763888896},        {"auc_pr", 0.785262227},     {"auc7", 0.777777791},
    {"auc3", 0.666666627},       {"auc_pr7", 0.800786495},    {"precision", 0.666666687},
    {"recall", 0.666666687},     {"precision03", 0.625},      {"binacc", 0.666666687},
    {"binacc07", 0.583333313},   {"auc_logits", 0.763888836}, {"catacc", 0.200000003},
    {"top2", 0.800000012},       {"top1", 0.400000006},       {"sparse_top2", 0.800000012},
    {"sparse_acc", 0.200000003}, {"auc_multi", 0.673333347},  {"prec_multi", 1},
    {"mae", 0.340000004},        {"mse", 0.172250003},        {"rmse", 0.415030122},
    {"cce", 1.29069996},         {"kld", 1.29069579},
};

static double mref(const char *name) {
    for (size_t i = 0; i < sizeof mrefs / sizeof mrefs[0]; i++)
        if (!strcmp(mrefs[i].name, name))
            return mrefs[i].keras;
    fail_msg("no metric reference %s", name);
    return 0;
}

static dpt_metric metric(const char *keras_name, const char *label) {
    dpt_metric m;
    assert_true(dpt_metric_from_name(keras_name, &m));
    snprintf(m.name, sizeof m.name, "%s", label);
    return m;
}

/* value of spec s over rows [0, n) accumulated in `parts` pieces (the "ranks"), summed */
static void run_metrics(dpt_metrics_spec *s, dpt_act head, const float *out, const float *y,
                        int64_t n, int64_t k, int64_t t, int parts, double *values) {
    assert_ok(dpt_metrics_prepare(s, k, t));
    int64_t ns = dpt_metrics_state_size(s);
    double *total = calloc((size_t)ns, sizeof(double)), *part = calloc((size_t)ns, sizeof(double));
    for (int r = 0; r < parts; r++) {
        int64_t lo = n * r / parts, hi = n * (r + 1) / parts;
        memset(part, 0, (size_t)ns * sizeof(double));
        dpt_metrics_accumulate(s, head, out + lo * k, y + lo * t, hi - lo, k, t, part);
        for (int64_t i = 0; i < ns; i++)
            total[i] += part[i];
    }
    dpt_metrics_finalize(s, total, values);
    free(total);
    free(part);
}

static void test_binary_metrics_vs_keras(void **state) {
    (void)state;
    dpt_metrics_spec s = {0};
    s.m[s.n++] = metric("auc", "auc");
    s.m[s.n++] = metric("auc", "auc_pr");
    s.m[s.n - 1].pr = true;
    s.m[s.n++] = metric("auc", "auc7");
    s.m[s.n - 1].num_thresholds = 7;
    s.m[s.n++] = metric("auc", "auc3");
    s.m[s.n - 1].num_thresholds = 3;
    s.m[s.n++] = metric("auc", "auc_pr7");
    s.m[s.n - 1].num_thresholds = 7;
    s.m[s.n - 1].pr = true;
    s.m[s.n++] = metric("precision", "precision");
    s.m[s.n++] = metric("recall", "recall");
    s.m[s.n++] = metric("precision", "precision03");
    s.m[s.n - 1].threshold = 0.3f;
    s.m[s.n++] = metric("accuracy", "binacc"); /* one unit: Keras picks binary_accuracy */
    s.m[s.n++] = metric("binary_accuracy", "binacc07");
    s.m[s.n - 1].threshold = 0.7f;
    s.m[s.n++] = metric("auc", "auc_logits");
    s.m[s.n - 1].from_logits = true;
    double v1[DPT_MAX_METRICS], v3[DPT_MAX_METRICS];
    run_metrics(&s, DPT_ACT_LINEAR, mpb, myb, NB, 1, 1, 1, v1);
    assert_int_equal(s.m[8].kind, DPT_METRIC_BINARY_ACCURACY);
    for (int i = 0; i < s.n; i++)
        if (!(fabs(v1[i] - mref(s.m[i].name)) <= 1e-6))
            fail_msg("%s: dptrain %.9g, Keras %.9g", s.m[i].name, v1[i], mref(s.m[i].name));
    /* three "ranks" of 4 rows: counts add exactly */
    run_metrics(&s, DPT_ACT_LINEAR, mpb, myb, NB, 1, 1, 3, v3);
    for (int i = 0; i < s.n; i++)
        assert_near(v3[i], v1[i], 1e-15);
    /* and two uneven ones */
    run_metrics(&s, DPT_ACT_LINEAR, mpb, myb, 5, 1, 1, 2, v3);
    run_metrics(&s, DPT_ACT_LINEAR, mpb, myb, 5, 1, 1, 1, v1);
    for (int i = 0; i < s.n; i++)
        assert_near(v3[i], v1[i], 1e-15);
}

static void test_categorical_metrics_vs_keras(void **state) {
    (void)state;
    dpt_metrics_spec s = {0};
    s.m[s.n++] = metric("accuracy", "catacc"); /* one-hot targets: categorical_accuracy */
    s.m[s.n++] = metric("top_k_categorical_accuracy", "top2");
    s.m[s.n - 1].k = 2;
    s.m[s.n++] = metric("TopKCategoricalAccuracy", "top1");
    s.m[s.n - 1].k = 1;
    s.m[s.n++] = metric("auc", "auc_multi"); /* multi_label false: every unit a sample */
    s.m[s.n++] = metric("precision", "prec_multi");
    s.m[s.n++] = metric("mae", "mae");
    s.m[s.n++] = metric("mse", "mse");
    s.m[s.n++] = metric("root_mean_squared_error", "rmse");
    s.m[s.n++] = metric("categorical_crossentropy", "cce");
    s.m[s.n++] = metric("kl_divergence", "kld");
    double v[DPT_MAX_METRICS], v2[DPT_MAX_METRICS];
    run_metrics(&s, DPT_ACT_LINEAR, mpc, myc, NC, KC, KC, 1, v);
    assert_int_equal(s.m[0].kind, DPT_METRIC_CATEGORICAL_ACCURACY);
    for (int i = 0; i < s.n; i++)
        if (!(fabs(v[i] - mref(s.m[i].name)) <= 2e-6 * fmax(1, fabs(v[i]))))
            fail_msg("%s: dptrain %.9g, Keras %.9g", s.m[i].name, v[i], mref(s.m[i].name));
    run_metrics(&s, DPT_ACT_LINEAR, mpc, myc, NC, KC, KC, 2, v2);
    for (int i = 0; i < s.n; i++)
        assert_near(v2[i], v[i], 1e-12);

    dpt_metrics_spec sp = {0};
    sp.m[sp.n++] = metric("acc", "sparse_acc"); /* class indices: sparse_categorical_accuracy */
    sp.m[sp.n++] = metric("sparse_top_k_categorical_accuracy", "sparse_top2");
    sp.m[sp.n - 1].k = 2;
    run_metrics(&sp, DPT_ACT_LINEAR, mpc, mys, NC, KC, 1, 3, v);
    assert_int_equal(sp.m[0].kind, DPT_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    assert_near(v[0], mref("sparse_acc"), 1e-7);
    assert_near(v[1], mref("sparse_top2"), 1e-7);
}

/* with the head folded into the loss the metrics see sigmoid/softmax of the logits */
static void test_fused_head(void **state) {
    (void)state;
    float p[B * K];
    memcpy(p, z, sizeof p);
    dpt_act_forward(DPT_ACT_SOFTMAX, p, B, K);
    dpt_metrics_spec s = {0};
    s.m[s.n++] = metric("categorical_accuracy", "a");
    s.m[s.n++] = metric("auc", "b");
    s.m[s.n++] = metric("mse", "c");
    s.m[s.n++] = metric("categorical_crossentropy", "d");
    double a[DPT_MAX_METRICS], b[DPT_MAX_METRICS];
    run_metrics(&s, DPT_ACT_SOFTMAX, z, yc, B, K, K, 1, a);
    run_metrics(&s, DPT_ACT_LINEAR, p, yc, B, K, K, 1, b);
    for (int i = 0; i < s.n; i++)
        assert_near(a[i], b[i], 1e-6);
    memcpy(p, z, sizeof p);
    dpt_act_forward(DPT_ACT_SIGMOID, p, B, K);
    dpt_metrics_spec s2 = {0};
    s2.m[s2.n++] = metric("binary_accuracy", "a");
    s2.m[s2.n++] = metric("precision", "b");
    s2.m[s2.n++] = metric("recall", "c");
    s2.m[s2.n++] = metric("AUC", "d");
    run_metrics(&s2, DPT_ACT_SIGMOID, z, yb, B, K, K, 1, a);
    run_metrics(&s2, DPT_ACT_LINEAR, p, yb, B, K, K, 1, b);
    for (int i = 0; i < s2.n; i++)
        assert_near(a[i], b[i], 1e-6);
    /* binary accuracy by hand: sigmoid(z) > 0.5 against the labels, per unit */
    int hits = 0;
    for (int i = 0; i < B * K; i++)
        hits += (p[i] > 0.5f) == (yb[i] == 1.0f);
    assert_near(a[0], hits / (double)(B * K), 1e-12);
}

static void test_names_and_refusals(void **state) {
    (void)state;
    dpt_metric m;
    assert_true(dpt_metric_from_name("AUC", &m) && m.kind == DPT_METRIC_AUC &&
                m.num_thresholds == 200 && !m.pr);
    assert_string_equal(m.name, "AUC"); /* Keras logs a string metric under the string */
    assert_string_equal(dpt_metric_default_name("AUC"), "auc");
    assert_string_equal(dpt_metric_default_name("RootMeanSquaredError"), "root_mean_squared_error");
    assert_null(dpt_metric_default_name("F1Score"));
    assert_false(dpt_metric_from_name("f1_score", &m));
    assert_false(dpt_metric_from_name(NULL, &m));
    dpt_metrics_spec s = {0};
    s.m[s.n++] = metric("sparse_categorical_accuracy", "sca");
    assert_status_msg(dpt_metrics_prepare(&s, 4, 4), DPT_ERR_CONFIG,
                      "metric \"sca\" needs one class index per sample");
    dpt_metrics_spec s2 = {0};
    s2.m[s2.n++] = metric("auc", "auc");
    assert_status_msg(dpt_metrics_prepare(&s2, 4, 1), DPT_ERR_CONFIG,
                      "metric \"auc\" needs 4 target values per sample");
    dpt_metrics_spec s3 = {0};
    s3.m[s3.n++] = metric("accuracy", "accuracy");
    s3.m[s3.n++] = metric("mae", "mae");
    assert_ok(dpt_metrics_prepare(&s3, 3, 3));
    assert_int_equal(s3.m[0].kind, DPT_METRIC_CATEGORICAL_ACCURACY); /* Keras 3: by shape */
    assert_int_equal(dpt_metrics_state_size(&s3), 4);
    assert_int_equal(dpt_metrics_find(&s3, "mae"), 1);
    assert_int_equal(dpt_metrics_find(&s3, "auc"), -1);
    /* empty: nothing to do, no values */
    dpt_metrics_spec e = {0};
    assert_ok(dpt_metrics_prepare(&e, 3, 3));
    assert_int_equal(dpt_metrics_state_size(&e), 0);
    dpt_metrics_accumulate(&e, DPT_ACT_LINEAR, mpc, myc, NC, KC, KC, NULL);
    /* a mean over no samples is 0 (Keras's divide_no_nan) */
    double st[4] = {0}, v[2];
    dpt_metrics_finalize(&s3, st, v);
    assert_true(v[0] == 0 && v[1] == 0);
}

int main(void) {
    init_data();
    init_cases();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_vs_keras),
        cmocka_unit_test(test_closed_forms),
        cmocka_unit_test(test_from_logits_is_the_fold),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_binary_metrics_vs_keras),
        cmocka_unit_test(test_categorical_metrics_vs_keras),
        cmocka_unit_test(test_fused_head),
        cmocka_unit_test(test_names_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
