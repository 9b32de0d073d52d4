/* Unit tests of the recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional): finite-difference
 * gradient checks through 20+ time steps with dropout and recurrent_dropout on (the masks are a
 * pure function of the pass, so they stay fixed between the perturbed passes), return_sequences
 * on and off, go_backwards, GRU's two reset_after variants, Keras 3's single and per-gate
 * masks, every Bidirectional merge mode; the variational masks themselves (constant over the
 * time steps of a sample, different between samples, steps and ranks, keep rate, off at
 * inference and on in Monte Carlo passes); the Orthogonal initializer and LSTM's
 * unit_forget_bias; weight names and shapes; per-sample results independent of the batch size
 * (the workspace layout); and the refusals (inputs that are no sequence, stateful, return_state,
 * constraints, ...). No MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

static const dpt_pass train_pass = {.training = true, .seed = 4321, .rank = 1, .step = 9};
static const dpt_pass infer_pass = {.training = false, .seed = 4321, .rank = 1, .step = 9};

static dpt_shape seq_shape(int64_t T, int64_t F) { return (dpt_shape){.rank = 2, .dim = {T, F}}; }

static void check(const char *cls, const char *cfg, int64_t T, int64_t F, int64_t B,
                  const dpt_pass *p) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer(cls, cfg, seq_shape(T, F), &l));
    gc_bind_params(l, 3);
    /* random biases too (Keras initialises them to zeros) */
    dpt_rng r;
    dpt_rng_init(&r, 17, 1);
    gc_fill_uniform(l->params, l->ops->n_params(l), -0.6f, 0.6f, &r);
    char what[512];
    snprintf(what, sizeof what, "%s %s", cls, cfg);
    gc_assert_ok(gc_check_layer(l, p, B, 5), what);
    gc_free_layer(&l);
}

/* ---- gradient checks ------------------------------------------------------------------------ */

static void test_gradcheck_simple_rnn(void **state) {
    (void)state;
    check(
        "SimpleRNN",
        "{\"units\": 4, \"dropout\": 0.2, \"recurrent_dropout\": 0.3, \"return_sequences\": true}",
        20, 3, 3, &train_pass);
    check("SimpleRNN",
          "{\"units\": 3, \"dropout\": 0.3, \"recurrent_dropout\": 0.3, \"go_backwards\": true}",
          21, 2, 3, &train_pass);
    check("SimpleRNN", "{\"units\": 3, \"activation\": \"relu\", \"use_bias\": false}", 20, 2, 2,
          &train_pass);
    check("SimpleRNN", "{\"units\": 3, \"dropout\": 0.5, \"return_sequences\": true}", 20, 2, 2,
          &infer_pass);
}

static void test_gradcheck_lstm(void **state) {
    (void)state;
    /* recurrent_dropout: implementation 1, one mask per gate */
    check("LSTM", "{\"units\": 3, \"dropout\": 0.2, \"recurrent_dropout\": 0.3}", 20, 3, 3,
          &train_pass);
    check(
        "LSTM",
        "{\"units\": 3, \"dropout\": 0.2, \"recurrent_dropout\": 0.3, \"return_sequences\": true, "
        "\"go_backwards\": true}",
        20, 2, 2, &train_pass);
    /* dropout only: implementation 2, one input mask for all gates */
    check("LSTM", "{\"units\": 3, \"dropout\": 0.25, \"return_sequences\": true}", 20, 3, 2,
          &train_pass);
    /* implementation 1 asked for: per-gate input masks, no recurrent dropout */
    check("LSTM", "{\"units\": 2, \"dropout\": 0.25, \"implementation\": 1}", 20, 3, 2,
          &train_pass);
    check("LSTM",
          "{\"units\": 3, \"use_bias\": false, \"activation\": \"relu\", "
          "\"recurrent_activation\": \"tanh\"}",
          20, 2, 2, &train_pass);
    check("LSTM", "{\"units\": 3, \"recurrent_activation\": \"hard_sigmoid\"}", 20, 2, 2,
          &train_pass);
    /* Keras 2's hard_sigmoid, clip(0.2 z + 0.5, 0, 1), for a keras_version 2.x config */
    json_t *cfg = gc_parse("{\"units\": 3, \"recurrent_activation\": \"hard_sigmoid\", "
                           "\"dropout\": 0.2, \"recurrent_dropout\": 0.2}");
    dpt_json_ctx ctx = {
        .file = "k2.json", .path = "model.config.layers[0].config", .keras_major = 2};
    dpt_shape in = seq_shape(20, 2);
    dpt_layer *l = NULL;
    assert_ok(dpt_lstm_create(cfg, &ctx, &in, &l));
    json_decref(cfg);
    gc_bind_params(l, 3);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 5), "LSTM hard_sigmoid (Keras 2)");
    gc_free_layer(&l);
    check("LSTM", "{\"units\": 3, \"dropout\": 0.3, \"recurrent_dropout\": 0.3}", 20, 2, 2,
          &infer_pass);
}

static void test_gradcheck_gru(void **state) {
    (void)state;
    check(
        "GRU",
        "{\"units\": 3, \"dropout\": 0.2, \"recurrent_dropout\": 0.2, \"return_sequences\": true}",
        20, 3, 3, &train_pass);
    check("GRU", "{\"units\": 3, \"dropout\": 0.2, \"go_backwards\": true}", 20, 3, 2, &train_pass);
    check("GRU",
          "{\"units\": 3, \"reset_after\": false, \"dropout\": 0.2, \"recurrent_dropout\": 0.2, "
          "\"go_backwards\": true}",
          20, 3, 3, &train_pass);
    check("GRU", "{\"units\": 3, \"reset_after\": false, \"return_sequences\": true}", 20, 2, 2,
          &train_pass);
    check("GRU", "{\"units\": 3, \"reset_after\": false, \"dropout\": 0.3}", 20, 2, 2, &train_pass);
    check("GRU", "{\"units\": 3, \"use_bias\": false, \"recurrent_dropout\": 0.4}", 20, 2, 2,
          &train_pass);
}

static void test_gradcheck_bidirectional(void **state) {
    (void)state;
    static const char *const modes[] = {"concat", "sum", "mul", "ave"};
    static const char *const inner[] = {
        "{\"class_name\": \"LSTM\", \"config\": {\"units\": 2, \"dropout\": 0.2, "
        "\"recurrent_dropout\": 0.2, \"return_sequences\": %s}}",
        "{\"class_name\": \"GRU\", \"config\": {\"units\": 2, \"dropout\": 0.2, "
        "\"recurrent_dropout\": 0.2, \"reset_after\": false, \"return_sequences\": %s}}",
        "{\"class_name\": \"SimpleRNN\", \"config\": {\"units\": 2, \"dropout\": 0.2, "
        "\"recurrent_dropout\": 0.2, \"return_sequences\": %s}}",
        "{\"class_name\": \"GRU\", \"config\": {\"units\": 2, \"return_sequences\": %s}}",
    };
    for (int m = 0; m < 4; m++)
        for (int seq = 0; seq < 2; seq++) {
            char in[512], cfg[1024];
            snprintf(in, sizeof in, inner[(m + seq) % 4], seq ? "true" : "false");
            snprintf(cfg, sizeof cfg, "{\"merge_mode\": \"%s\", \"layer\": %s}", modes[m], in);
            check("Bidirectional", cfg, 20, 2, 2, &train_pass);
        }
}

/* ---- masks ---------------------------------------------------------------------------------- */

/* A linear SimpleRNN with h_t = 1 + m ⊙ h_{t-1} (kernel 0, recurrent kernel I, bias 1) under
 * recurrent dropout: per unit either all ones (dropped) or 1, 1 + s, 1 + s + s², ... (kept, s =
 * 1 / (1 - rate), 1 at inference) — a mask that changed between steps would mix the two. Returns
 * the kept pattern of (B, U) in keep (1 kept, 0 dropped). */
static void rec_mask_pattern(const dpt_pass *p, int B, int U, int T, float rate, int layer_index,
                             char *keep) {
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"units\": %d, \"activation\": \"linear\", \"recurrent_dropout\": %g, "
             "\"return_sequences\": true}",
             U, (double)rate);
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("SimpleRNN", cfg, seq_shape(T, 1), &l));
    assert_true(B <= GC_MAX_BATCH); /* gc_make_layer gave it its workspace */
    l->params = calloc((size_t)l->ops->n_params(l), sizeof(float));
    l->index = layer_index;
    float *Ur = l->params + U, *b = Ur + U * U;
    for (int k = 0; k < U; k++) {
        Ur[k * U + k] = 1.0f;
        b[k] = 1.0f;
    }
    float *x = calloc((size_t)(B * T), sizeof(float)), *y = calloc((size_t)(B * T * U), 4);
    l->ops->forward(l, p, x, y, B);
    float s = dpt_dropout_on(p) ? 1.0f / (1.0f - rate) : 1.0f;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < U; k++) {
            float want_kept = 1.0f;
            bool kept = y[(i * T + 1) * U + k] > 1.5f;
            keep[i * U + k] = kept;
            for (int t = 0; t < T; t++) {
                float got = y[(i * T + t) * U + k];
                float want = kept ? want_kept : 1.0f;
                if (fabsf(got - want) > 1e-4f * want)
                    fail_msg("sample %d unit %d step %d: %g, want %g (mask not constant)", i, k, t,
                             (double)got, (double)want);
                want_kept = 1.0f + s * want_kept;
            }
        }
    free(x);
    free(y);
    free(l->params);
    free(l->work);
    l->params = l->work = NULL;
    dpt_layer_destroy(&l);
}

static double frac_differ(const char *a, const char *b, int n) {
    int d = 0;
    for (int i = 0; i < n; i++)
        d += a[i] != b[i];
    return (double)d / n;
}

static void test_recurrent_mask(void **state) {
    (void)state;
    enum { B = 64, U = 64, T = 6 };
    char *k0 = malloc(B * U), *k1 = malloc(B * U), *k2 = malloc(B * U), *k3 = malloc(B * U);
    const float rate = 0.3f;
    rec_mask_pattern(&train_pass, B, U, T, rate, 2, k0);
    int kept = 0;
    for (int i = 0; i < B * U; i++)
        kept += k0[i];
    double frac = (double)kept / (B * U);
    if (fabs(frac - (1.0 - rate)) > 0.03)
        fail_msg("keep rate %.4f, want %.2f", frac, 1.0 - rate);
    /* different between samples: sample 0's mask vs sample 1's */
    assert_true(frac_differ(k0, k0 + U, U) > 0.15);
    /* different between steps, ranks, layers; the same for the same pass */
    dpt_pass p = train_pass;
    p.step++;
    rec_mask_pattern(&p, B, U, T, rate, 2, k1);
    assert_true(frac_differ(k0, k1, B * U) > 0.3);
    p = train_pass;
    p.rank++;
    rec_mask_pattern(&p, B, U, T, rate, 2, k2);
    assert_true(frac_differ(k0, k2, B * U) > 0.3);
    rec_mask_pattern(&train_pass, B, U, T, rate, 3, k3);
    assert_true(frac_differ(k0, k3, B * U) > 0.3);
    rec_mask_pattern(&train_pass, B, U, T, rate, 2, k1);
    assert_true(frac_differ(k0, k1, B * U) == 0.0);
    /* Monte Carlo passes keep dropout on */
    p = infer_pass;
    p.mc_dropout = true;
    rec_mask_pattern(&p, B, U, T, rate, 2, k1);
    kept = 0;
    for (int i = 0; i < B * U; i++)
        kept += k1[i];
    assert_true(kept < B * U * 0.8);
    /* inference: everything kept */
    rec_mask_pattern(&infer_pass, B, U, T, rate, 2, k1);
    for (int i = 0; i < B * U; i++)
        assert_true(k1[i]);
    free(k0);
    free(k1);
    free(k2);
    free(k3);
}

/* input dropout: kernel I, recurrent 0, x = 1: h_t = m_in, constant over t per (sample, unit) */
static void test_input_mask(void **state) {
    (void)state;
    enum { B = 32, U = 16, T = 7 };
    const float rate = 0.4f, s = 1.0f / (1.0f - rate);
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("SimpleRNN",
                            "{\"units\": 16, \"activation\": \"linear\", \"dropout\": 0.4, "
                            "\"return_sequences\": true}",
                            seq_shape(T, U), &l));
    gc_bind_params(l, 1);
    memset(l->params, 0, sizeof(float) * (size_t)l->ops->n_params(l));
    for (int k = 0; k < U; k++)
        l->params[k * U + k] = 1.0f;
    float *x = malloc(sizeof(float) * B * T * U), *y = malloc(sizeof(float) * B * T * U);
    for (int i = 0; i < B * T * U; i++)
        x[i] = 1.0f;
    l->ops->forward(l, &train_pass, x, y, B);
    int kept = 0, differ = 0;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < U; k++) {
            float v = y[(i * T) * U + k];
            assert_true(v == 0.0f || fabsf(v - s) < 1e-6f);
            kept += v != 0.0f;
            if (i > 0)
                differ += (v != 0.0f) != (y[k] != 0.0f);
            for (int t = 1; t < T; t++)
                assert_true(y[(i * T + t) * U + k] == v);
        }
    assert_true(fabs((double)kept / (B * U) - 0.6) < 0.06);
    assert_true(differ > 0);
    gc_free_layer(&l);
    free(x);
    free(y);
}

/* ---- initialisers, weights, shapes ---------------------------------------------------------- */

static void test_orthogonal(void **state) {
    (void)state;
    const int shapes[3][2] = {{4, 12}, {12, 4}, {6, 6}};
    for (int c = 0; c < 3; c++) {
        int R = shapes[c][0], C = shapes[c][1];
        json_t *o = gc_parse("{\"k\": {\"class_name\": \"Orthogonal\", \"config\": {\"gain\": 2.0, "
                             "\"seed\": null}}}");
        dpt_init_spec s;
        dpt_json_ctx ctx = {.file = "t.json", .path = "x"};
        assert_ok(dpt_init_parse(o, "k", &ctx, dpt_init_zeros(), &s));
        json_decref(o);
        float *w = malloc(sizeof(float) * (size_t)(R * C));
        dpt_rng r;
        dpt_rng_init(&r, 5, 0);
        dpt_init_fill(&s, w, R * C, R, C, &r);
        /* the short side's vectors are orthonormal times the gain */
        int n = R < C ? R : C, len = R < C ? C : R;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double d = 0;
                for (int k = 0; k < len; k++)
                    d += R < C ? (double)w[a * C + k] * w[b * C + k]
                               : (double)w[k * C + a] * w[k * C + b];
                assert_true(fabs(d - (a == b ? 4.0 : 0.0)) < 1e-4);
            }
        json_t *j = dpt_init_to_json(&s);
        assert_string_equal(json_string_value(json_object_get(j, "class_name")), "Orthogonal");
        json_decref(j);
        free(w);
    }
}

static void test_weights_and_init(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    const char *names[8];
    dpt_shape sh[8];
    assert_ok(gc_make_layer("LSTM", "{\"units\": 5}", seq_shape(7, 3), &l));
    gc_bind_params(l, 2);
    assert_int_equal(l->ops->weights(l, names, sh, 8), 3);
    assert_string_equal(names[0], "lstm_cell/kernel");
    assert_string_equal(names[1], "lstm_cell/recurrent_kernel");
    assert_true(sh[0].dim[0] == 3 && sh[0].dim[1] == 20 && sh[1].dim[0] == 5 &&
                sh[1].dim[1] == 20 && sh[2].rank == 1 && sh[2].dim[0] == 20);
    const float *bias = l->params + 3 * 20 + 5 * 20; /* unit_forget_bias: (0, 1, 0, 0) */
    for (int k = 0; k < 20; k++)
        assert_true(bias[k] == (k >= 5 && k < 10 ? 1.0f : 0.0f));
    char p[64];
    l->ops->keras3_path(l, 2, p, sizeof p);
    assert_string_equal(p, "cell/vars/2");
    assert_true(l->out_shape.rank == 1 && l->out_shape.dim[0] == 5);
    gc_free_layer(&l);

    assert_ok(
        gc_make_layer("GRU", "{\"units\": 4, \"return_sequences\": true}", seq_shape(7, 3), &l));
    assert_int_equal(l->ops->weights(l, names, sh, 8), 3);
    assert_true(sh[2].rank == 2 && sh[2].dim[0] == 2 && sh[2].dim[1] == 12);
    assert_true(l->out_shape.rank == 2 && l->out_shape.dim[0] == 7 && l->out_shape.dim[1] == 4);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("GRU", "{\"units\": 4, \"reset_after\": false}", seq_shape(7, 3), &l));
    l->ops->weights(l, names, sh, 8);
    assert_true(sh[2].rank == 1 && sh[2].dim[0] == 12);
    gc_free_layer(&l);

    /* Keras 2 form: the inner layer named "lstm" becomes forward_lstm / backward_lstm */
    assert_ok(gc_make_layer("Bidirectional",
                            "{\"name\": \"bidirectional\", \"merge_mode\": \"concat\", \"layer\": "
                            "{\"class_name\": \"LSTM\", \"config\": {\"name\": \"lstm\", "
                            "\"units\": 3, \"implementation\": 2, \"time_major\": false, "
                            "\"recurrent_initializer\": {\"class_name\": \"Orthogonal\", "
                            "\"config\": {\"gain\": 1.0, \"seed\": null}}}}}",
                            seq_shape(7, 2), &l));
    assert_int_equal(l->ops->weights(l, names, sh, 8), 6);
    assert_string_equal(names[0], "forward_lstm/lstm_cell/kernel");
    assert_string_equal(names[5], "backward_lstm/lstm_cell/bias");
    l->ops->keras3_path(l, 4, p, sizeof p);
    assert_string_equal(p, "backward_layer/cell/vars/1");
    assert_true(l->out_shape.rank == 1 && l->out_shape.dim[0] == 6);
    gc_free_layer(&l);
}

/* per-sample results do not depend on how many samples share the batch (workspace layout) */
static void test_batch_independent(void **state) {
    (void)state;
    static const char *const cfgs[][2] = {
        {"LSTM", "{\"units\": 4, \"return_sequences\": true, \"go_backwards\": true}"},
        {"GRU", "{\"units\": 4, \"reset_after\": false}"},
        {"Bidirectional", "{\"layer\": {\"class_name\": \"SimpleRNN\", \"config\": {\"units\": "
                          "3, \"return_sequences\": true}}}"},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        dpt_layer *l = NULL;
        assert_ok(gc_make_layer(cfgs[c][0], cfgs[c][1], seq_shape(9, 3), &l));
        gc_bind_params(l, 4);
        enum { B = 5 };
        float x[B * 27], y5[B * 9 * 6], y1[9 * 6];
        dpt_rng r;
        dpt_rng_init(&r, 1, 1);
        gc_fill_uniform(x, B * 27, -1, 1, &r);
        l->ops->forward(l, &infer_pass, x, y5, B);
        for (int i = 0; i < B; i++) {
            l->ops->forward(l, &infer_pass, x + i * 27, y1, 1);
            for (int64_t k = 0; k < l->out_size; k++)
                assert_float_equal(y1[k], y5[i * l->out_size + k], 1e-6f);
        }
        gc_free_layer(&l);
    }
}

/* kernel / recurrent / bias regularizers: Keras's penalty (no 1/2) and its gradient */
static void test_regularizers(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("GRU",
                            "{\"units\": 2, \"kernel_regularizer\": {\"class_name\": \"L2\", "
                            "\"config\": {\"l2\": 0.5}}, \"recurrent_regularizer\": \"l1\", "
                            "\"bias_regularizer\": {\"class_name\": \"L1L2\", \"config\": "
                            "{\"l1\": 0.1, \"l2\": 0.2}}}",
                            seq_shape(4, 3), &l));
    assert_true(l->has_regularizer);
    gc_bind_params(l, 1);
    int64_t nk = 3 * 6, nr = 2 * 6, nb = 2 * 6, n = l->ops->n_params(l);
    assert_true(n == nk + nr + nb);
    for (int64_t k = 0; k < n; k++)
        l->params[k] = 0.1f * (float)(k % 7) - 0.3f;
    memset(l->grads, 0, sizeof(float) * (size_t)n);
    double want = 0;
    for (int64_t k = 0; k < n; k++) {
        double w = l->params[k];
        want += k < nk ? 0.5 * w * w : k < nk + nr ? 0.01 * fabs(w) : 0.1 * fabs(w) + 0.2 * w * w;
    }
    assert_true(fabs(l->ops->regularize(l, 1.0f) - want) < 1e-5);
    assert_float_equal(l->grads[1], 0.5f * 2 * l->params[1], 1e-6f);
    assert_float_equal(l->grads[nk + 1], l->params[nk + 1] > 0 ? 0.01f : -0.01f, 1e-6f);
    int64_t j = nk + nr + 2;
    assert_float_equal(l->grads[j], (l->params[j] > 0 ? 0.1f : -0.1f) + 0.4f * l->params[j], 1e-6f);
    gc_free_layer(&l);
}

/* kernel / recurrent / bias constraints, applied by ops->constrain after an update */
static void test_constraints(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("LSTM",
                            "{\"units\": 3, \"kernel_constraint\": {\"class_name\": \"MaxNorm\", "
                            "\"config\": {\"max_value\": 0.5, \"axis\": 0}}, "
                            "\"recurrent_constraint\": \"unit_norm\", \"bias_constraint\": "
                            "\"non_neg\"}",
                            seq_shape(4, 5), &l));
    assert_true(l->has_constraint && l->ops->constrain);
    gc_bind_params(l, 1);
    int64_t n = l->ops->n_params(l), nk = 5 * 12, nr = 3 * 12;
    for (int64_t k = 0; k < n; k++)
        l->params[k] = (float)(k % 5) - 2.0f;
    l->ops->constrain(l);
    for (int j = 0; j < 12; j++) { /* kernel columns: norm <= 0.5; recurrent columns: 1 */
        double a = 0, b = 0;
        for (int i = 0; i < 5; i++)
            a += (double)l->params[i * 12 + j] * l->params[i * 12 + j];
        for (int i = 0; i < 3; i++)
            b += (double)l->params[nk + i * 12 + j] * l->params[nk + i * 12 + j];
        assert_true(sqrt(a) <= 0.5 + 1e-5);
        assert_true(fabs(sqrt(b) - 1.0) < 1e-5);
    }
    for (int64_t k = nk + nr; k < n; k++)
        assert_true(l->params[k] >= 0.0f);
    json_t *j = l->ops->to_json(l);
    assert_true(json_is_object(json_object_get(j, "kernel_constraint")));
    json_decref(j);
    gc_free_layer(&l);
}

/* ---- refusals ------------------------------------------------------------------------------- */

static void refused(const char *cls, const char *cfg, dpt_shape in, const char *needle) {
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer(cls, cfg, in, &l), DPT_ERR_CONFIG, needle);
    assert_null(l);
}

static void test_refusals(void **state) {
    (void)state;
    dpt_shape s = seq_shape(5, 3);
    refused("LSTM", "{\"units\": 3}", (dpt_shape){.rank = 1, .dim = {784}},
            "t.json: model.config.layers[3].config: LSTM needs a sequence (timesteps, features) "
            "per sample, got shape (784,)");
    refused("GRU", "{\"units\": 3}", (dpt_shape){.rank = 3, .dim = {2, 3, 4}},
            "config: GRU needs a sequence");
    refused("Bidirectional", "{\"layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 2}}}",
            (dpt_shape){.rank = 1, .dim = {4}}, "Bidirectional needs a sequence");
    refused("LSTM", "{}", s, "config.units: missing");
    refused("LSTM", "{\"units\": 3, \"stateful\": true}", s, "config.stateful: true is not");
    refused("GRU", "{\"units\": 3, \"return_state\": true}", s, "config.return_state: true");
    refused("LSTM", "{\"units\": 3, \"time_major\": true}", s, "config.time_major: true");
    refused("SimpleRNN", "{\"units\": 3, \"recurrent_constraint\": {\"class_name\": \"Foo\"}}", s,
            "config.recurrent_constraint");
    refused("LSTM", "{\"units\": 3, \"activity_regularizer\": \"l2\"}", s,
            "config.activity_regularizer: not supported");
    refused("LSTM", "{\"units\": 3, \"recurrent_activation\": \"gelu\"}", s,
            "config.recurrent_activation: gelu is not supported in a recurrent cell");
    refused("GRU", "{\"units\": 3, \"activation\": \"softmax\"}", s, "softmax is not supported");
    refused("LSTM", "{\"units\": 3, \"dropout\": 1.0}", s, "config.dropout");
    refused("LSTM", "{\"units\": 3, \"implementation\": 3}", s, "config.implementation");
    refused("Bidirectional",
            "{\"merge_mode\": null, \"layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": "
            "2}}}",
            s, "config.merge_mode: null");
    refused("Bidirectional",
            "{\"merge_mode\": \"max\", \"layer\": {\"class_name\": \"LSTM\", \"config\": "
            "{\"units\": 2}}}",
            s, "must be concat, sum, mul or ave");
    refused("Bidirectional", "{\"layer\": {\"class_name\": \"Dense\", \"config\": {\"units\": 2}}}",
            s, "config.layer.class_name: Bidirectional wraps LSTM, GRU or SimpleRNN");
    refused("Bidirectional",
            "{\"layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 2, \"stateful\": "
            "true}}}",
            s, "config.layer.config.stateful");
    refused("Bidirectional",
            "{\"layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 2}}, "
            "\"backward_layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 3, "
            "\"go_backwards\": true}}}",
            s, "config.backward_layer: must be the same class");
    refused("Bidirectional",
            "{\"layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 2}}, "
            "\"backward_layer\": {\"class_name\": \"LSTM\", \"config\": {\"units\": 2}}}",
            s, "go_backwards: must differ");
    /* accepted: options that do not change the math here */
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("LSTM",
                            "{\"units\": 3, \"unroll\": true, \"use_cudnn\": \"auto\", \"seed\": "
                            "5, \"zero_output_for_mask\": false}",
                            s, &l));
    gc_free_layer(&l);
}

/* a recurrent layer after one that returns no sequence: the model names the layer */
static void test_model_errors(void **state) {
    (void)state;
    json_t *layers = gc_parse("[{\"class_name\": \"LSTM\", \"config\": {\"units\": 4}}, "
                              "{\"class_name\": \"GRU\", \"config\": {\"units\": 3}}]");
    dpt_shape in = seq_shape(6, 2);
    dpt_json_ctx ctx = {.file = "m.json", .path = "model.config"};
    dpt_model *m = NULL;
    assert_status_msg(
        dpt_model_create(layers, &in, 8, 1, &ctx, &m), DPT_ERR_CONFIG,
        "m.json: model.config.layers[1].config: GRU needs a sequence (timesteps, "
        "features) per sample, got shape (4,) (a flat sample: Reshape it to (timesteps, "
        "features); after another recurrent layer, give that one "
        "return_sequences: true)");
    json_decref(layers);
    /* stacked, through a Reshape, into the model's arena: forward at two batch sizes */
    layers = gc_parse("[{\"class_name\": \"Reshape\", \"config\": {\"target_shape\": [6, 2]}}, "
                      "{\"class_name\": \"LSTM\", \"config\": {\"units\": 4, \"return_sequences\": "
                      "true, \"dropout\": 0.2}}, {\"class_name\": \"GRU\", \"config\": "
                      "{\"units\": 3}}, {\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]");
    in = (dpt_shape){.rank = 1, .dim = {12}};
    assert_ok(dpt_model_create(layers, &in, 8, 1, &ctx, &m));
    float x[8 * 12];
    dpt_rng r;
    dpt_rng_init(&r, 2, 2);
    gc_fill_uniform(x, 8 * 12, -1, 1, &r);
    float y8[16];
    memcpy(y8, dpt_model_forward(m, &infer_pass, x, 8), sizeof y8);
    const float *y3 = dpt_model_forward(m, &infer_pass, x, 3);
    for (int k = 0; k < 6; k++)
        assert_float_equal(y3[k], y8[k], 1e-6f);
    float dout[16] = {1, 0, 0, 1, 1, 1};
    dpt_model_zero_grads(m);
    dpt_model_forward(m, &train_pass, x, 3);
    dpt_model_backward(m, &train_pass, dout, 3);
    double gsum = 0;
    const float *g = dpt_model_grads(m);
    for (int64_t k = 0; k < dpt_model_n_params(m); k++)
        gsum += fabs(g[k]);
    assert_true(gsum > 0 && isfinite(gsum));
    dpt_model_destroy(&m);
    json_decref(layers);
}

/* Keras 2 forms: tf.keras 2.x (batch_input_shape on the first layer, implementation, time_major,
 * legacy nested objects) and multi-backend Keras 2.x (a bare layer list, VarianceScaling) */
static void test_keras2_json(void **state) {
    (void)state;
    static const char *const texts[] = {
        "{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"sequential\", "
        "\"layers\": [{\"class_name\": \"LSTM\", \"config\": {\"name\": \"lstm\", \"trainable\": "
        "true, \"batch_input_shape\": [null, 28, 28], \"dtype\": \"float32\", "
        "\"return_sequences\": false, \"return_state\": false, \"go_backwards\": false, "
        "\"stateful\": false, \"unroll\": false, \"time_major\": false, \"units\": 32, "
        "\"activation\": \"tanh\", \"recurrent_activation\": \"sigmoid\", \"use_bias\": true, "
        "\"kernel_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": "
        "null}}, \"recurrent_initializer\": {\"class_name\": \"Orthogonal\", \"config\": "
        "{\"gain\": 1.0, \"seed\": null}}, \"bias_initializer\": {\"class_name\": \"Zeros\", "
        "\"config\": {}}, \"unit_forget_bias\": true, \"kernel_regularizer\": null, "
        "\"recurrent_regularizer\": null, \"bias_regularizer\": null, \"activity_regularizer\": "
        "null, \"kernel_constraint\": null, \"recurrent_constraint\": null, \"bias_constraint\": "
        "null, \"dropout\": 0.2, \"recurrent_dropout\": 0.2, \"implementation\": 2}}, "
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"dense\", \"units\": 10, "
        "\"activation\": \"softmax\"}}]}, \"keras_version\": \"2.4.0\", \"backend\": "
        "\"tensorflow\"}, \"compile\": {\"loss\": \"sparse_categorical_crossentropy\"}}",
        "{\"model\": {\"class_name\": \"Sequential\", \"config\": [{\"class_name\": "
        "\"Bidirectional\", \"config\": {\"name\": \"bidirectional_1\", \"trainable\": true, "
        "\"batch_input_shape\": [null, 28, 28], \"dtype\": \"float32\", \"layer\": "
        "{\"class_name\": \"GRU\", \"config\": {\"name\": \"gru_1\", \"units\": 16, "
        "\"reset_after\": false, \"implementation\": 1, \"kernel_initializer\": "
        "{\"class_name\": \"VarianceScaling\", \"config\": {\"scale\": 1.0, \"mode\": "
        "\"fan_avg\", \"distribution\": \"uniform\", \"seed\": null}}}}, \"merge_mode\": "
        "\"concat\"}}, {\"class_name\": \"Dense\", \"config\": {\"units\": 10}}], "
        "\"keras_version\": \"2.1.6\", \"backend\": \"tensorflow\"}, \"compile\": {\"loss\": "
        "\"mse\"}}",
    };
    static const int64_t params[] = {4 * 32 * (28 + 32 + 1) + 330,
                                     2 * 3 * 16 * (28 + 16 + 1) + 330};
    for (int k = 0; k < 2; k++) {
        dpt_config c;
        assert_ok(dpt_config_parse(texts[k], strlen(texts[k]), "k2.json", &c));
        assert_true(c.has_input_shape && c.input_shape.rank == 2 && c.input_shape.dim[0] == 28);
        dpt_json_ctx ctx = {.file = "k2.json", .path = "model.config"};
        dpt_model *m = NULL;
        assert_ok(dpt_model_create(c.layers, &c.input_shape, 4, 1, &ctx, &m));
        assert_int_equal(dpt_model_n_params(m), params[k]);
        dpt_model_destroy(&m);
        dpt_config_deinit(&c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_simple_rnn), cmocka_unit_test(test_gradcheck_lstm),
        cmocka_unit_test(test_gradcheck_gru),        cmocka_unit_test(test_gradcheck_bidirectional),
        cmocka_unit_test(test_recurrent_mask),       cmocka_unit_test(test_input_mask),
        cmocka_unit_test(test_orthogonal),           cmocka_unit_test(test_weights_and_init),
        cmocka_unit_test(test_batch_independent),    cmocka_unit_test(test_regularizers),
        cmocka_unit_test(test_constraints),          cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_model_errors),         cmocka_unit_test(test_keras2_json),
    };
    return cmocka_run_group_tests_name("rnn", tests, NULL, NULL);
}
