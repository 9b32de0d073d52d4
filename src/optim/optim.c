/* Optimizers over the flat parameter buffer: plain SGD, SGD with (Nesterov) momentum, and Adam,
 * with Keras's update rules (Keras 2 OptimizerV2 / Keras 3; see include/dptrain/optim.h).
 *
 * State slots (n_params floats each) are allocated once in dpt_optim_create; dpt_optim_step
 * never allocates. The update loops are plain element-wise loops over restrict pointers so the
 * compiler can vectorise them (the Adam loop's sqrtf needs -fno-math-errno for that with GCC).
 * Leaves to others: reading the spec from the config (src/io/config.c), saving and restoring the
 * slots and the iteration count (src/io/checkpoint.c), scaling the gradient by 1/global_count
 * (src/train). RMSprop, schedules and regularizers are not implemented yet.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/core.h"
#include "dptrain/optim.h"

#define DPT_OPTIM_MAX_SLOTS 2

struct dpt_optim {
    dpt_optim_spec spec;
    int64_t n;                        /* parameters */
    int64_t t;                        /* optimizer steps taken (Keras `iterations`) */
    int n_slots;                      /* Adam 2, SGD with momentum 1, plain SGD 0 */
    float *slot[DPT_OPTIM_MAX_SLOTS]; /* each (n); Adam: m, v; SGD: momentum */
    const char *slot_name[DPT_OPTIM_MAX_SLOTS];
};

dpt_optim_spec dpt_optim_defaults(dpt_optim_kind kind) {
    dpt_optim_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    /* Keras defaults: SGD(learning_rate=0.01, momentum=0.0, nesterov=False);
     * Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7). The Adam fields are
     * filled for SGD too (unused) so a spec is always fully defined. */
    s.learning_rate = kind == DPT_OPT_SGD ? 0.01 : 0.001;
    s.momentum = 0.0;
    s.nesterov = false;
    s.beta_1 = 0.9;
    s.beta_2 = 0.999;
    s.epsilon = 1e-7;
    return s;
}

static dpt_status check_spec(const dpt_optim_spec *s) {
    if (s->kind != DPT_OPT_SGD && s->kind != DPT_OPT_ADAM)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: unknown kind %d", (int)s->kind);
    if (!isfinite(s->learning_rate) || !(s->learning_rate > 0))
        return dpt_error_set(DPT_ERR_CONFIG, "optimizer: learning_rate must be > 0, got %g",
                             s->learning_rate);
    if (s->kind == DPT_OPT_SGD) {
        if (!(s->momentum >= 0 && s->momentum <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: momentum must be in [0, 1], got %g",
                                 s->momentum);
    } else {
        /* the betas are used as float32 (see dpt_optim_step): they must stay < 1 there too */
        if (!(s->beta_1 >= 0 && (float)s->beta_1 < 1.0f))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: beta_1 must be in [0, 1), got %g",
                                 s->beta_1);
        if (!(s->beta_2 >= 0 && (float)s->beta_2 < 1.0f))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: beta_2 must be in [0, 1), got %g",
                                 s->beta_2);
        if (!isfinite(s->epsilon) || !(s->epsilon >= 0))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: epsilon must be >= 0, got %g",
                                 s->epsilon);
    }
    return DPT_OK;
}

dpt_status dpt_optim_create(const dpt_optim_spec *spec, int64_t n_params, dpt_optim **out) {
    *out = NULL;
    dpt_status st = check_spec(spec);
    if (st != DPT_OK) return st;
    if (n_params < 0)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: negative parameter count %lld",
                             (long long)n_params);
    dpt_optim *o = calloc(1, sizeof *o);
    if (!o) return dpt_error_set(DPT_ERR_NOMEM, "optimizer: out of memory");
    o->spec = *spec;
    o->n = n_params;
    if (spec->kind == DPT_OPT_ADAM) {
        o->n_slots = 2;
        o->slot_name[0] = "m";
        o->slot_name[1] = "v";
    } else if (spec->momentum > 0) {
        o->n_slots = 1;
        o->slot_name[0] = "momentum";
    }
    int64_t n_bytes = 0;
    st = dpt_mul_i64(n_params, (int64_t)sizeof(float), "optimizer state", &n_bytes);
    for (int i = 0; st == DPT_OK && i < o->n_slots; i++)
        st = dpt_alloc((size_t)n_bytes, "optimizer state", (void **)&o->slot[i]); /* zeroed */
    if (st != DPT_OK) {
        dpt_optim_destroy(&o);
        return st;
    }
    *out = o;
    return DPT_OK;
}

void dpt_optim_destroy(dpt_optim **p) {
    if (!p || !*p) return;
    for (int i = 0; i < DPT_OPTIM_MAX_SLOTS; i++)
        dpt_free((*p)->slot[i]);
    free(*p);
    *p = NULL;
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* w -= lr * g.  w, g (n) */
static void sgd_plain(float *restrict w, const float *restrict g, int64_t n, float lr) {
    for (int64_t i = 0; i < n; i++)
        w[i] -= lr * g[i];
}

/* Keras 2 OptimizerV2 (ResourceApplyKerasMomentum) and Keras 3 SGD:
 *   v = momentum*v - lr*g;  w += v                      (classic)
 *   v = momentum*v - lr*g;  w += momentum*v - lr*g      (nesterov)
 * w, g, v (n) */
static void sgd_momentum(float *restrict w, const float *restrict g, float *restrict v, int64_t n,
                         float lr, float mom) {
    for (int64_t i = 0; i < n; i++) {
        float vi = mom * v[i] - lr * g[i];
        v[i] = vi;
        w[i] += vi;
    }
}
static void sgd_nesterov(float *restrict w, const float *restrict g, float *restrict v, int64_t n,
                         float lr, float mom) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = mom * v[i] - lr * gi;
        v[i] = vi;
        w[i] += mom * vi - lr * gi;
    }
}

/* Adam as TensorFlow's ApplyAdam kernel and Keras 3 compute it:
 *   m += (g - m)*(1-b1);  v += (g^2 - v)*(1-b2);  w -= lr_t*m / (sqrt(v) + eps)
 * (m += (g-m)(1-b1) is b1*m + (1-b1)*g written the way Keras writes it.)
 * w, g, m, v (n) */
static void adam_update(float *restrict w, const float *restrict g, float *restrict m,
                        float *restrict v, int64_t n, float lr_t, float one_minus_b1,
                        float one_minus_b2, float eps) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr_t * mi / (sqrtf(vi) + eps);
    }
}

void dpt_optim_step(dpt_optim *o, float *params, const float *grads) {
    DPT_ASSERT(o != NULL);
    o->t++; /* Keras: local_step = iterations + 1, and iterations is incremented by the update */
    const dpt_optim_spec *s = &o->spec;
    if (s->kind == DPT_OPT_SGD) {
        const float lr = (float)s->learning_rate;
        if (o->n_slots == 0)
            sgd_plain(params, grads, o->n, lr);
        else if (s->nesterov)
            sgd_nesterov(params, grads, o->slot[0], o->n, lr, (float)s->momentum);
        else
            sgd_momentum(params, grads, o->slot[0], o->n, lr, (float)s->momentum);
        return;
    }
    /* Keras keeps its hyper-parameters as float32 values, so 0.999 means 0.99900001287...: at
     * small t, 1 - b2^t is ~t(1-b2) and that rounding shows at the 1e-5 level. We round them the
     * same way, then take lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) in double (more accurate than
     * Keras's float32 pow) and use it in float. */
    const float lr_f = (float)s->learning_rate, b1 = (float)s->beta_1, b2 = (float)s->beta_2;
    const double t = (double)o->t;
    const double lr_t = (double)lr_f * sqrt(1.0 - pow((double)b2, t)) / (1.0 - pow((double)b1, t));
    adam_update(params, grads, o->slot[0], o->slot[1], o->n, (float)lr_t, 1.0f - b1, 1.0f - b2,
                (float)s->epsilon);
}

int64_t dpt_optim_iterations(const dpt_optim *o) { return o->t; }

void dpt_optim_set_iterations(dpt_optim *o, int64_t t) {
    DPT_ASSERT(t >= 0);
    o->t = t;
}

int dpt_optim_n_slots(const dpt_optim *o) { return o->n_slots; }

float *dpt_optim_slot(dpt_optim *o, int i) {
    DPT_ASSERT(i >= 0 && i < o->n_slots);
    return o->slot[i];
}

const char *dpt_optim_slot_name(const dpt_optim *o, int i) {
    DPT_ASSERT(i >= 0 && i < o->n_slots);
    return o->slot_name[i];
}

const dpt_optim_spec *dpt_optim_get_spec(const dpt_optim *o) { return &o->spec; }
