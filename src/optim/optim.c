/* Optimizers over the flat parameter buffer: plain SGD, SGD with (Nesterov) momentum, and Adam,
 * with Keras's update rules (Keras 2 OptimizerV2 / Keras 3; see include/dptrain/optim.h).
 *
 * State slots (n_params floats each) are allocated once in dpt_optim_create; dpt_optim_step
 * never allocates. The update loops are plain element-wise loops over restrict pointers so the
 * compiler can vectorise them (the Adam loop's sqrtf needs -fno-math-errno for that with GCC).
 * Leaves to others: reading the spec from the config (src/io/config.c), saving and restoring the
 * slots and the iteration count (src/io/checkpoint.c), scaling the gradient by 1/global_count
 * (src/train). Also here: RMSprop, decoupled weight decay (AdamW and Keras 3's weight_decay on
 * every optimizer), the Keras learning-rate schedules and the trainable segments (frozen layers
 * and moving statistics are never touched). Regularizers live in src/nn (dpt_model_regularize).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/core.h"
#include "dptrain/optim.h"

#define DPT_OPTIM_MAX_SLOTS 3

struct dpt_optim {
    dpt_optim_spec spec;
    int64_t n;                        /* parameters */
    int64_t t;                        /* optimizer steps taken (Keras `iterations`) */
    int n_slots;                      /* Adam 2, SGD with momentum 1, plain SGD 0, RMSprop 1-3 */
    float *slot[DPT_OPTIM_MAX_SLOTS]; /* each (n); Adam: m, v; SGD: momentum; RMSprop: velocity,
                                         [momentum], [average_gradient] */
    const char *slot_name[DPT_OPTIM_MAX_SLOTS];
    int rms_mom, rms_avg; /* RMSprop: slot index of momentum / average_gradient, -1 */
    int64_t *seg;         /* (n_seg, 2): (offset, length) pairs updated */
    int n_seg;
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
    /* RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False);
     * AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-07) */
    s.rho = 0.9;
    s.centered = false;
    s.weight_decay = kind == DPT_OPT_ADAMW ? 0.004 : 0.0;
    if (kind == DPT_OPT_RMSPROP || kind == DPT_OPT_ADAMW)
        s.learning_rate = 0.001;
    s.schedule.kind = DPT_LR_CONSTANT;
    return s;
}

double dpt_lr_schedule_at(const dpt_lr_schedule *s, int64_t step) {
    const double t = (double)step;
    switch (s->kind) {
    case DPT_LR_CONSTANT:
        break;
    case DPT_LR_EXPONENTIAL: {
        double p = t / s->decay_steps;
        if (s->staircase)
            p = floor(p);
        return s->initial_learning_rate * pow(s->decay_rate, p);
    }
    case DPT_LR_COSINE: {
        const double lr0 = s->initial_learning_rate, ds = s->decay_steps;
        double from = lr0, st = t;
        if (s->has_warmup) {
            const double ws = s->warmup_steps;
            st = fmin(st, ds + ws);
            if (st < ws)
                return (s->warmup_target - lr0) * (st / ws) + lr0;
            st -= ws;
            from = s->warmup_target;
        } else {
            st = fmin(st, ds);
        }
        double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * st / ds));
        return from * ((1.0 - s->alpha) * cosine + s->alpha);
    }
    case DPT_LR_PIECEWISE: {
        int i = 0;
        while (i < s->n_boundaries && t > s->boundaries[i])
            i++;
        return s->values[i];
    }
    }
    return NAN;
}

static double current_lr(const dpt_optim *o, int64_t step) {
    return o->spec.schedule.kind == DPT_LR_CONSTANT ? o->spec.learning_rate
                                                    : dpt_lr_schedule_at(&o->spec.schedule, step);
}

double dpt_optim_learning_rate(const dpt_optim *o) { return current_lr(o, o->t); }

dpt_status dpt_optim_set_learning_rate(dpt_optim *o, double lr) {
    if (o->spec.schedule.kind != DPT_LR_CONSTANT)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "optimizer: the learning rate follows a schedule and cannot be set "
                             "(ReduceLROnPlateau needs a constant learning rate)");
    if (!isfinite(lr) || !(lr > 0))
        return dpt_error_set(DPT_ERR_CONFIG, "optimizer: learning_rate must be > 0, got %g", lr);
    o->spec.learning_rate = lr;
    return DPT_OK;
}

dpt_status dpt_optim_set_segments(dpt_optim *o, const int64_t *seg, int n) {
    if (n < 0)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: %d segments", n);
    int64_t end = 0;
    for (int i = 0; i < n; i++) {
        if (seg[2 * i] < end || seg[2 * i + 1] < 0 || seg[2 * i] + seg[2 * i + 1] > o->n)
            return dpt_error_set(DPT_ERR_INTERNAL,
                                 "optimizer: segment %d (%lld, %lld) is not inside [%lld, %lld)", i,
                                 (long long)seg[2 * i], (long long)seg[2 * i + 1], (long long)end,
                                 (long long)o->n);
        end = seg[2 * i] + seg[2 * i + 1];
    }
    int64_t *c = malloc(sizeof(int64_t) * (size_t)(2 * n + 2));
    if (!c)
        return dpt_error_set(DPT_ERR_NOMEM, "optimizer: out of memory");
    if (n > 0)
        memcpy(c, seg, sizeof(int64_t) * (size_t)(2 * n));
    free(o->seg);
    o->seg = c;
    o->n_seg = n;
    return DPT_OK;
}

static dpt_status check_schedule(const dpt_lr_schedule *s) {
    switch (s->kind) {
    case DPT_LR_CONSTANT:
        return DPT_OK;
    case DPT_LR_EXPONENTIAL:
    case DPT_LR_COSINE:
        if (!(s->decay_steps > 0) || !isfinite(s->decay_steps))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: learning_rate schedule: decay_steps must be > 0, got "
                                 "%g",
                                 s->decay_steps);
        if (s->kind == DPT_LR_COSINE && s->has_warmup && !(s->warmup_steps > 0))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: learning_rate schedule: warmup_steps must be > 0 with "
                                 "a warmup_target, got %g",
                                 s->warmup_steps);
        return DPT_OK;
    case DPT_LR_PIECEWISE:
        if (s->n_boundaries < 0 || s->n_boundaries > DPT_LR_MAX_PIECES)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: learning_rate schedule: at most %d boundaries",
                                 DPT_LR_MAX_PIECES);
        return DPT_OK;
    }
    return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: unknown schedule %d", (int)s->kind);
}

static dpt_status check_spec(const dpt_optim_spec *s) {
    if (s->kind != DPT_OPT_SGD && s->kind != DPT_OPT_ADAM && s->kind != DPT_OPT_RMSPROP &&
        s->kind != DPT_OPT_ADAMW)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: unknown kind %d", (int)s->kind);
    if (s->schedule.kind == DPT_LR_CONSTANT &&
        (!isfinite(s->learning_rate) || !(s->learning_rate > 0)))
        return dpt_error_set(DPT_ERR_CONFIG, "optimizer: learning_rate must be > 0, got %g",
                             s->learning_rate);
    dpt_status st = check_schedule(&s->schedule);
    if (st != DPT_OK)
        return st;
    if (!isfinite(s->weight_decay) || !(s->weight_decay >= 0))
        return dpt_error_set(DPT_ERR_CONFIG, "optimizer: weight_decay must be >= 0, got %g",
                             s->weight_decay);
    if (s->kind == DPT_OPT_RMSPROP) {
        if (!(s->rho >= 0 && s->rho <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: rho must be in [0, 1], got %g",
                                 s->rho);
        if (!(s->momentum >= 0 && s->momentum <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: momentum must be in [0, 1], got %g",
                                 s->momentum);
        if (!isfinite(s->epsilon) || !(s->epsilon >= 0))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: epsilon must be >= 0, got %g",
                                 s->epsilon);
    } else if (s->kind == DPT_OPT_SGD) {
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
    if (st != DPT_OK)
        return st;
    if (n_params < 0)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: negative parameter count %lld",
                             (long long)n_params);
    dpt_optim *o = calloc(1, sizeof *o);
    if (!o)
        return dpt_error_set(DPT_ERR_NOMEM, "optimizer: out of memory");
    o->spec = *spec;
    o->n = n_params;
    o->rms_mom = o->rms_avg = -1;
    if (spec->kind == DPT_OPT_ADAM || spec->kind == DPT_OPT_ADAMW) {
        o->n_slots = 2;
        o->slot_name[0] = "m";
        o->slot_name[1] = "v";
    } else if (spec->kind == DPT_OPT_RMSPROP) {
        o->slot_name[o->n_slots++] = "velocity";
        if (spec->momentum > 0) {
            o->rms_mom = o->n_slots;
            o->slot_name[o->n_slots++] = "momentum";
        }
        if (spec->centered) {
            o->rms_avg = o->n_slots;
            o->slot_name[o->n_slots++] = "average_gradient";
        }
    } else if (spec->momentum > 0) {
        o->n_slots = 1;
        o->slot_name[0] = "momentum";
    }
    int64_t n_bytes = 0, all[2] = {0, n_params};
    st = dpt_optim_set_segments(o, all, 1);
    if (st == DPT_OK)
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
    if (!p || !*p)
        return;
    for (int i = 0; i < DPT_OPTIM_MAX_SLOTS; i++)
        dpt_free((*p)->slot[i]);
    free((*p)->seg);
    free(*p);
    *p = NULL;
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* The kernels OR dpt_nonfinite_f32 over the new weights and return it: a non-finite gradient
 * always makes a non-finite weight, so the trainer needs no scan of its own where every rank
 * updates the same weights. */

/* w -= lr * g.  w, g (n) */
static uint32_t sgd_plain(float *restrict w, const float *restrict g, int64_t n, float lr,
                          float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i] - lr * (g[i] * gs);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 2 OptimizerV2 (ResourceApplyKerasMomentum) and Keras 3 SGD:
 *   v = momentum*v - lr*g;  w += v                      (classic)
 *   v = momentum*v - lr*g;  w += momentum*v - lr*g      (nesterov)
 * w, g, v (n) */
static inline __attribute__((always_inline)) uint32_t
sgd_momentum_loop(float *restrict w, const float *restrict g, float *restrict v, int64_t n,
                  float lr, float mom, float gs, const bool nesterov) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float vi = mom * v[i] - lr * gi;
        v[i] = vi;
        float wi = w[i] + (nesterov ? mom * vi - lr * gi : vi);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}
/* one loop in the source, two vectorised copies: `nesterov` is a constant in each */
static uint32_t sgd_momentum(float *restrict w, const float *restrict g, float *restrict v,
                             int64_t n, float lr, float mom, float gs, bool nesterov) {
    return nesterov ? sgd_momentum_loop(w, g, v, n, lr, mom, gs, true)
                    : sgd_momentum_loop(w, g, v, n, lr, mom, gs, false);
}

/* Adam as TensorFlow's ApplyAdam kernel and Keras 3 compute it:
 *   m += (g - m)*(1-b1);  v += (g^2 - v)*(1-b2);  w -= lr_t*m / (sqrt(v) + eps)
 * (m += (g-m)(1-b1) is b1*m + (1-b1)*g written the way Keras writes it.)
 * w, g, m, v (n) */
static uint32_t adam_update(float *restrict w, const float *restrict g, float *restrict m,
                            float *restrict v, int64_t n, float lr_t, float one_minus_b1,
                            float one_minus_b2, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        float wi = w[i] - lr_t * mi / (sqrtf(vi) + eps);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 / AdamW decoupled weight decay: w = w - w * wd * lr (float32, Keras's order). w (n) */
static void weight_decay(float *restrict w, int64_t n, float wd, float lr) {
    for (int64_t i = 0; i < n; i++)
        w[i] -= w[i] * wd * lr;
}

/* RMSprop as Keras 3 (and TensorFlow's ResourceApplyRMSProp / CenteredRMSProp):
 *   v = rho*v + (1-rho)*g^2;  [a = rho*a + (1-rho)*g;  d = v - a^2 + eps]  else d = v + eps;
 *   inc = lr*g/sqrt(d);  [m = momentum*m + inc;  w -= m]  else w -= inc.
 * w, g, v (n); m, a (n) or NULL */
static uint32_t rmsprop_update(float *restrict w, const float *restrict g, float *restrict v,
                               float *restrict m, float *restrict a, int64_t n, float lr, float rho,
                               float one_minus_rho, float mom, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float vi = rho * v[i] + one_minus_rho * (gi * gi);
        v[i] = vi;
        float den = vi + eps;
        if (a) {
            float ai = rho * a[i] + one_minus_rho * gi;
            a[i] = ai;
            den = vi - ai * ai + eps;
        }
        float inc = lr * gi / sqrtf(den);
        if (m) {
            float mi = mom * m[i] + inc;
            m[i] = mi;
            inc = mi;
        }
        float wi = w[i] - inc;
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

void dpt_optim_step(dpt_optim *o, float *params, const float *grads) {
    dpt_optim_step_range(o, params, grads, 0, o->n, 1.0f);
}

bool dpt_optim_step_range(dpt_optim *o, float *params, const float *grads, int64_t lo, int64_t hi,
                          float gscale) {
    uint32_t bad = 0;
    DPT_ASSERT(o != NULL && lo >= 0 && lo <= hi && hi <= o->n);
    const double lr_d = current_lr(o, o->t); /* Keras: schedule(iterations) before the update */
    o->t++; /* Keras: local_step = iterations + 1, and iterations is incremented by the update */
    const dpt_optim_spec *s = &o->spec;
    const float lr = (float)lr_d;
    /* Keras keeps its hyper-parameters as float32 values, so 0.999 means 0.99900001287...: at
     * small t, 1 - b2^t is ~t(1-b2) and that rounding shows at the 1e-5 level. We round them the
     * same way, then take lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) in double (more accurate than
     * Keras's float32 pow) and use it in float. */
    const float b1 = (float)s->beta_1, b2 = (float)s->beta_2;
    const double t = (double)o->t;
    const double lr_t = (double)lr * sqrt(1.0 - pow((double)b2, t)) / (1.0 - pow((double)b1, t));
    for (int k = 0; k < o->n_seg; k++) {
        /* the part of segment k inside [lo, hi) */
        const int64_t s0 = o->seg[2 * k] > lo ? o->seg[2 * k] : lo;
        const int64_t s1 =
            o->seg[2 * k] + o->seg[2 * k + 1] < hi ? o->seg[2 * k] + o->seg[2 * k + 1] : hi;
        if (s1 <= s0)
            continue;
        const int64_t off = s0, n = s1 - s0;
        float *w = params + off;
        const float *g = grads + off;
        if (s->weight_decay > 0)
            weight_decay(w, n, (float)s->weight_decay, lr);
        switch (s->kind) {
        case DPT_OPT_SGD:
            if (o->n_slots == 0)
                bad |= sgd_plain(w, g, n, lr, gscale);
            else
                bad |= sgd_momentum(w, g, o->slot[0] + off, n, lr, (float)s->momentum, gscale,
                                    s->nesterov);
            break;
        case DPT_OPT_ADAM:
        case DPT_OPT_ADAMW:
            bad |= adam_update(w, g, o->slot[0] + off, o->slot[1] + off, n, (float)lr_t, 1.0f - b1,
                               1.0f - b2, (float)s->epsilon, gscale);
            break;
        case DPT_OPT_RMSPROP:
            bad |= rmsprop_update(
                w, g, o->slot[0] + off, o->rms_mom >= 0 ? o->slot[o->rms_mom] + off : NULL,
                o->rms_avg >= 0 ? o->slot[o->rms_avg] + off : NULL, n, lr, (float)s->rho,
                (float)(1.0 - s->rho), (float)s->momentum, (float)s->epsilon, gscale);
            break;
        }
    }
    return bad != 0;
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
