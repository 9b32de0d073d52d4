/* Finite-difference gradient checking for single layers, shared by the layer test programs
 * (test_nn.c, test_layers2.c, test_regularizers.c): central differences, kinks skipped when the
 * one-sided differences disagree, tolerance 1e-2 relative + 2e-3 absolute. Header-only: every
 * function is static, so each test program gets its own copy. Only the first n_trainable parameters
 * are checked (moving statistics have no gradient by design).
 */
#ifndef DPT_TEST_GRADCHECK_H
#define DPT_TEST_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "testutil.h"

static json_t *gc_parse(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s (%s)", e.text, text);
    return j;
}

#define GC_MAX_BATCH 64 /* the largest batch a standalone layer's workspace is sized for */

static dpt_status gc_make_layer(const char *cls, const char *cfg_text, dpt_shape in,
                                dpt_layer **out) {
    json_t *cfg = gc_parse(cfg_text);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config.layers[3].config"};
    dpt_layer_create_fn create = dpt_layer_lookup(cls);
    if (!create)
        fail_msg("no layer class %s", cls);
    dpt_status st = create(cfg, &ctx, &in, out);
    json_decref(cfg);
    /* the workspace the model would carve (ops->workspace), for up to GC_MAX_BATCH samples */
    int64_t nw =
        st == DPT_OK && (*out)->ops->workspace ? (*out)->ops->workspace(*out, GC_MAX_BATCH) : 0;
    if (nw > 0)
        (*out)->work = calloc((size_t)nw, sizeof(float));
    return st;
}

/* gives a standalone layer its own parameter and gradient buffers, initialised from seed */
static void gc_bind_params(dpt_layer *l, uint64_t seed) {
    int64_t n = dpt_layer_n_params(l);
    l->params = n ? calloc((size_t)n, sizeof(float)) : NULL;
    l->grads = n ? calloc((size_t)n, sizeof(float)) : NULL;
    if (n) {
        dpt_rng r;
        dpt_rng_init(&r, seed, 0);
        l->ops->init_params(l, &r);
    }
}

static void gc_free_layer(dpt_layer **l) {
    if (!*l)
        return;
    free((*l)->params);
    free((*l)->grads);
    free((*l)->work);
    dpt_layer_destroy(l);
}

static void gc_fill_uniform(float *v, int64_t n, float lo, float hi, dpt_rng *r) {
    for (int64_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * dpt_rng_uniform(r);
}

typedef struct {
    int checked, skipped, bad;
    double worst;
} gc_result;

static void gc_compare(gc_result *r, double analytic, double fm, double f0, double fp, double eps) {
    double num = (fp - fm) / (2 * eps);
    double left = (f0 - fm) / eps, right = (fp - f0) / eps;
    if (fabs(left - right) > 1e-2 * fmax(fabs(left), fabs(right)) + 2e-3) {
        r->skipped++;
        return;
    }
    double err = fabs(analytic - num) / (1e-2 * fmax(fabs(analytic), fabs(num)) + 2e-3);
    r->checked++;
    if (err > r->worst)
        r->worst = err;
    if (err > 1.0) {
        r->bad++;
        if (getenv("DPT_GC_VERBOSE"))
            fprintf(stderr, "gc: analytic %.6g numeric %.6g left %.6g right %.6g\n", analytic, num,
                    left, right);
    }
}

static double gc_layer_f(dpt_layer *l, const dpt_pass *p, const float *x, float *y, const float *w,
                         int64_t B) {
    l->ops->forward(l, p, x, y, B);
    double f = l->has_activity_reg ? l->activity_loss : 0.0; /* its gradient is in backward */
    for (int64_t k = 0; k < B * l->out_size; k++)
        f += (double)y[k] * w[k];
    return f;
}

static int64_t gc_n_trainable(const dpt_layer *l) {
    return l->ops->n_trainable ? l->ops->n_trainable(l) : dpt_layer_n_params(l);
}

/* Gradient check of one layer over its trainable parameters and its input, f = sum(y * w).
 * `corrupt` adds an error to the first analytic gradient (parameter, else input) so that a
 * self-test can see the check fail. */
static gc_result gc_check_layer_corrupt(dpt_layer *l, const dpt_pass *p, int64_t B, uint64_t seed,
                                        bool corrupt) {
    gc_result r = {0};
    dpt_rng rng;
    dpt_rng_init(&rng, seed, 99);
    int64_t nin = B * l->in_size, nout = B * l->out_size, np = dpt_layer_n_params(l);
    int64_t nt = gc_n_trainable(l);
    /* a layer with a workspace (ops->workspace) gets it here when the caller gave none */
    float *own_work = NULL;
    if (l->ops->workspace && !l->work && l->ops->workspace(l, B) > 0)
        l->work = own_work = malloc((size_t)l->ops->workspace(l, B) * sizeof(float));
    float *x = malloc((size_t)nin * sizeof(float));
    float *dx = malloc((size_t)nin * sizeof(float));
    float *y = malloc((size_t)nout * sizeof(float));
    float *w = malloc((size_t)nout * sizeof(float));
    float *dy = malloc((size_t)nout * sizeof(float));
    gc_fill_uniform(x, nin, -1.5f, 1.5f, &rng);
    gc_fill_uniform(w, nout, -1.0f, 1.0f, &rng);
    if (np)
        memset(l->grads, 0, (size_t)np * sizeof(float));
    l->ops->forward(l, p, x, y, B);
    memcpy(dy, w, (size_t)nout * sizeof(float));
    l->ops->backward(l, p, x, y, dy, dx, B);
    if (corrupt) {
        if (nt)
            l->grads[0] += 0.1f + 0.1f * fabsf(l->grads[0]);
        else
            dx[0] += 0.1f + 0.1f * fabsf(dx[0]);
    }
    for (int64_t k = nt; k < np; k++)
        if (l->grads[k] != 0.0f)
            fail_msg("non-trainable parameter %lld got a gradient %g", (long long)k,
                     (double)l->grads[k]);
    /* forward may update state (moving statistics): keep the parameters as they were */
    float *saved = np ? malloc((size_t)np * sizeof(float)) : NULL;
    if (np)
        memcpy(saved, l->params, (size_t)np * sizeof(float));
    const float eps = 1e-3f;
    double f0 = gc_layer_f(l, p, x, y, w, B);
    for (int64_t k = 0; k < nt; k++) {
        float save = saved[k];
        l->params[k] = save + eps;
        double fp = gc_layer_f(l, p, x, y, w, B);
        memcpy(l->params, saved, (size_t)np * sizeof(float));
        l->params[k] = save - eps;
        double fm = gc_layer_f(l, p, x, y, w, B);
        memcpy(l->params, saved, (size_t)np * sizeof(float));
        gc_compare(&r, l->grads[k], fm, f0, fp, eps);
    }
    for (int64_t k = 0; k < nin; k++) {
        float save = x[k];
        x[k] = save + eps;
        double fp = gc_layer_f(l, p, x, y, w, B);
        x[k] = save - eps;
        double fm = gc_layer_f(l, p, x, y, w, B);
        x[k] = save;
        if (np)
            memcpy(l->params, saved, (size_t)np * sizeof(float));
        gc_compare(&r, dx[k], fm, f0, fp, eps);
    }
    free(saved);
    if (own_work) {
        free(own_work);
        l->work = NULL;
    }
    free(x);
    free(dx);
    free(y);
    free(w);
    free(dy);
    return r;
}

static gc_result gc_check_layer(dpt_layer *l, const dpt_pass *p, int64_t B, uint64_t seed) {
    return gc_check_layer_corrupt(l, p, B, seed, false);
}

static void gc_assert_ok(gc_result r, const char *what) {
    if (getenv("DPT_GC_VERBOSE"))
        fprintf(stderr, "gc: %s: %d checked, %d skipped, worst %.3g of tolerance\n", what,
                r.checked, r.skipped, r.worst);
    if (r.bad > 0 || r.checked == 0 || r.skipped > r.checked / 20 + 1)
        fail_msg("%s: gradient check: %d bad, %d checked, %d skipped, worst %.3g", what, r.bad,
                 r.checked, r.skipped, r.worst);
}

#endif
