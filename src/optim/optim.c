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
 * Keras 3's Nadam, Adamax, Adagrad, Adadelta, Lion and Adam's amsgrad follow each optimizer's
 * update_step expression by expression in float32; Keras 3's gradient processing (accumulation
 * over gradient_accumulation_steps, clipvalue / clipnorm / global_clipnorm) writes the processed
 * gradient into one extra buffer (allocated only when one of them is on) that the rule then reads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/core.h"
#include "dptrain/optim.h"

#define DPT_OPTIM_MAX_SLOTS 5

struct dpt_optim {
    dpt_optim_spec spec;
    int64_t n;                        /* parameters */
    int64_t t;                        /* optimizer steps taken (Keras `iterations`) */
    int n_slots;                      /* Adam 2, SGD with momentum 1, plain SGD 0, RMSprop 1-3 */
    float *slot[DPT_OPTIM_MAX_SLOTS]; /* each (n); Adam: m, v; SGD: momentum; RMSprop: velocity,
                                         [momentum], [average_gradient] */
    const char *slot_name[DPT_OPTIM_MAX_SLOTS];
    int rms_mom, rms_avg; /* RMSprop: slot index of momentum / average_gradient, -1 */
    int vhat_slot;        /* Adam/AdamW amsgrad: slot of velocity_hat, -1 */
    int acc_slot;         /* gradient_accumulation_steps: slot of the accumulator, -1 */
    int64_t *seg;         /* (n_seg, 2): (offset, length) pairs updated */
    int n_seg;
    int64_t *tens; /* (n_tens, 2): the weight tensors, for per-variable clipnorm */
    int n_tens;
    float *gbuf;     /* (n) the accumulated / clipped gradient, or NULL when neither is on */
    float u_product; /* Nadam: the product of the u_t of the updates applied so far (Keras's
                        _u_product, float32) */
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
    /* Keras 3: Nadam, Adamax (learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7);
     * Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7);
     * Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7); Lion(learning_rate=0.001,
     * beta_1=0.9, beta_2=0.99) */
    s.initial_accumulator_value = 0.1;
    if (kind == DPT_OPT_ADADELTA)
        s.rho = 0.95;
    if (kind == DPT_OPT_LION)
        s.beta_2 = 0.99;
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
    case DPT_LR_INVERSE_TIME: {
        double p = t / s->decay_steps;
        if (s->staircase)
            p = floor(p);
        return s->initial_learning_rate / (1.0 + s->decay_rate * p);
    }
    case DPT_LR_POLYNOMIAL: {
        double st = t, ds = s->decay_steps;
        if (s->cycle)
            ds *= t == 0 ? 1.0 : ceil(t / s->decay_steps);
        else
            st = fmin(st, ds);
        const double p = st / ds;
        return (s->initial_learning_rate - s->end_learning_rate) * pow(1.0 - p, s->power) +
               s->end_learning_rate;
    }
    case DPT_LR_COSINE_RESTARTS: {
        double f = t / s->decay_steps, i;
        if (s->t_mul == 1.0) {
            i = floor(f);
            f -= i;
        } else {
            i = floor(log(1.0 - f * (1.0 - s->t_mul)) / log(s->t_mul));
            const double sum_r = (1.0 - pow(s->t_mul, i)) / (1.0 - s->t_mul);
            f = (f - sum_r) / pow(s->t_mul, i);
        }
        const double cosine = 0.5 * pow(s->m_mul, i) * (1.0 + cos(3.14159265358979323846 * f));
        return s->initial_learning_rate * ((1.0 - s->alpha) * cosine + s->alpha);
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

/* Copies n ascending, disjoint (offset, length) pairs inside [0, o->n) into *dst (replacing it). */
static dpt_status copy_pairs(const dpt_optim *o, const int64_t *seg, int n, const char *what,
                             int64_t **dst, int *n_dst) {
    if (n < 0)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: %d %s", n, what);
    int64_t end = 0;
    for (int i = 0; i < n; i++) {
        if (seg[2 * i] < end || seg[2 * i + 1] < 0 || seg[2 * i] + seg[2 * i + 1] > o->n)
            return dpt_error_set(DPT_ERR_INTERNAL,
                                 "optimizer: %s %d (%lld, %lld) is not inside [%lld, %lld)", what,
                                 i, (long long)seg[2 * i], (long long)seg[2 * i + 1],
                                 (long long)end, (long long)o->n);
        end = seg[2 * i] + seg[2 * i + 1];
    }
    int64_t *c = malloc(sizeof(int64_t) * (size_t)(2 * n + 2));
    if (!c)
        return dpt_error_set(DPT_ERR_NOMEM, "optimizer: out of memory");
    if (n > 0)
        memcpy(c, seg, sizeof(int64_t) * (size_t)(2 * n));
    free(*dst);
    *dst = c;
    *n_dst = n;
    return DPT_OK;
}

dpt_status dpt_optim_set_segments(dpt_optim *o, const int64_t *seg, int n) {
    return copy_pairs(o, seg, n, "segment", &o->seg, &o->n_seg);
}

dpt_status dpt_optim_set_tensors(dpt_optim *o, const int64_t *seg, int n) {
    return copy_pairs(o, seg, n, "weight tensor", &o->tens, &o->n_tens);
}

bool dpt_optim_needs_whole_vector(const dpt_optim *o) {
    return o->spec.clipnorm > 0 || o->spec.global_clipnorm > 0;
}

static dpt_status check_schedule(const dpt_lr_schedule *s) {
    switch (s->kind) {
    case DPT_LR_CONSTANT:
        return DPT_OK;
    case DPT_LR_EXPONENTIAL:
    case DPT_LR_COSINE:
    case DPT_LR_INVERSE_TIME:
    case DPT_LR_POLYNOMIAL:
    case DPT_LR_COSINE_RESTARTS:
        if (!(s->decay_steps > 0) || !isfinite(s->decay_steps))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: learning_rate schedule: decay_steps must be > 0, got "
                                 "%g",
                                 s->decay_steps);
        if (s->kind == DPT_LR_COSINE_RESTARTS && !(s->t_mul > 0))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: learning_rate schedule: t_mul must be > 0, got %g",
                                 s->t_mul);
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

/* Keras 3's gradient processing options (base_optimizer.py): each >= 0, at most one clip. */
static dpt_status check_processing(const dpt_optim_spec *s) {
    const double c[3] = {s->clipvalue, s->clipnorm, s->global_clipnorm};
    static const char *const names[3] = {"clipvalue", "clipnorm", "global_clipnorm"};
    int n_set = 0;
    for (int i = 0; i < 3; i++) {
        if (!isfinite(c[i]) || !(c[i] >= 0))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: %s must be > 0, got %g", names[i],
                                 c[i]);
        n_set += c[i] > 0;
    }
    if (n_set > 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "optimizer: only one of clipnorm, clipvalue and global_clipnorm can "
                             "be set (Keras raises too)");
    if (s->gradient_accumulation_steps < 0 || s->gradient_accumulation_steps == 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "optimizer: gradient_accumulation_steps must be an integer >= 2, got "
                             "%d",
                             s->gradient_accumulation_steps);
    if (s->amsgrad && s->kind != DPT_OPT_ADAM && s->kind != DPT_OPT_ADAMW)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: amsgrad is Adam's and AdamW's");
    return DPT_OK;
}

static dpt_status check_spec(const dpt_optim_spec *s) {
    if ((int)s->kind < (int)DPT_OPT_SGD || (int)s->kind > (int)DPT_OPT_LION)
        return dpt_error_set(DPT_ERR_INTERNAL, "optimizer: unknown kind %d", (int)s->kind);
    dpt_status pst = check_processing(s);
    if (pst != DPT_OK)
        return pst;
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
    if (s->kind == DPT_OPT_ADAGRAD || s->kind == DPT_OPT_ADADELTA) {
        if (s->kind == DPT_OPT_ADADELTA && !(s->rho >= 0 && s->rho <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: rho must be in [0, 1], got %g",
                                 s->rho);
        if (s->kind == DPT_OPT_ADAGRAD &&
            (!isfinite(s->initial_accumulator_value) || !(s->initial_accumulator_value >= 0)))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "optimizer: initial_accumulator_value must be >= 0, got %g",
                                 s->initial_accumulator_value);
        if (!isfinite(s->epsilon) || !(s->epsilon >= 0))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: epsilon must be >= 0, got %g",
                                 s->epsilon);
    } else if (s->kind == DPT_OPT_LION) {
        /* Keras: beta_1 in (0, 1] (0 degenerates to SignSGD) */
        if (!(s->beta_1 > 0 && s->beta_1 <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: beta_1 must be in (0, 1], got %g",
                                 s->beta_1);
        if (!(s->beta_2 >= 0 && s->beta_2 <= 1))
            return dpt_error_set(DPT_ERR_CONFIG, "optimizer: beta_2 must be in [0, 1], got %g",
                                 s->beta_2);
    } else if (s->kind == DPT_OPT_RMSPROP) {
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
    o->rms_mom = o->rms_avg = o->vhat_slot = o->acc_slot = -1;
    o->u_product = 1.0f;
    if (spec->kind == DPT_OPT_ADAM || spec->kind == DPT_OPT_ADAMW) {
        o->n_slots = 2;
        o->slot_name[0] = "m";
        o->slot_name[1] = "v";
        if (spec->amsgrad) {
            o->vhat_slot = o->n_slots;
            o->slot_name[o->n_slots++] = "velocity_hat";
        }
    } else if (spec->kind == DPT_OPT_NADAM || spec->kind == DPT_OPT_ADAMAX) {
        /* Keras's names: Nadam momentum, velocity; Adamax momentum, norm */
        o->n_slots = 2;
        o->slot_name[0] = "momentum";
        o->slot_name[1] = spec->kind == DPT_OPT_NADAM ? "velocity" : "norm";
    } else if (spec->kind == DPT_OPT_ADAGRAD) {
        o->slot_name[o->n_slots++] = "accumulator";
    } else if (spec->kind == DPT_OPT_ADADELTA) {
        o->slot_name[o->n_slots++] = "accumulated_grad";
        o->slot_name[o->n_slots++] = "accumulated_delta_var";
    } else if (spec->kind == DPT_OPT_LION) {
        o->slot_name[o->n_slots++] = "momentum";
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
    if (spec->gradient_accumulation_steps > 1) {
        o->acc_slot = o->n_slots;
        o->slot_name[o->n_slots++] = "gradient_accumulator";
    }
    int64_t n_bytes = 0, all[2] = {0, n_params};
    st = dpt_optim_set_segments(o, all, 1);
    if (st == DPT_OK)
        st = dpt_optim_set_tensors(o, all, 1);
    if (st == DPT_OK)
        st = dpt_mul_i64(n_params, (int64_t)sizeof(float), "optimizer state", &n_bytes);
    for (int i = 0; st == DPT_OK && i < o->n_slots; i++)
        st = dpt_alloc((size_t)n_bytes, "optimizer state", (void **)&o->slot[i]); /* zeroed */
    /* the processed gradient: only when something processes it */
    if (st == DPT_OK && (spec->gradient_accumulation_steps > 1 || spec->clipvalue > 0 ||
                         spec->clipnorm > 0 || spec->global_clipnorm > 0))
        st = dpt_alloc((size_t)n_bytes, "optimizer gradient buffer", (void **)&o->gbuf);
    if (st == DPT_OK && spec->kind == DPT_OPT_ADAGRAD) {
        /* Keras: the accumulator starts at initial_accumulator_value (as float32) */
        const float a0 = (float)spec->initial_accumulator_value;
        for (int64_t i = 0; i < n_params; i++)
            o->slot[0][i] = a0;
    }
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
    dpt_free((*p)->gbuf);
    free((*p)->tens);
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

/* Adam with amsgrad (Keras 3): as adam_update, then vh = max(vh, v) and vh in place of v.
 * w, g, m, v, vh (n) */
static uint32_t adam_amsgrad_update(float *restrict w, const float *restrict g, float *restrict m,
                                    float *restrict v, float *restrict vh, int64_t n, float lr_t,
                                    float one_minus_b1, float one_minus_b2, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        float hi = vh[i];
        hi = (vi > hi || vi != vi) ? vi : hi; /* ops.maximum: NaN propagates */
        vh[i] = hi;
        float wi = w[i] - lr_t * mi / (sqrtf(hi) + eps);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Nadam's per-step scalars (float32, Keras 3's expressions): u_t, u_{t+1}, 1 - P_t*u_{t+1},
 * 1 - P_t, 1 - b2^t. */
typedef struct {
    float one_minus_ut, ut1, one_minus_up1, one_minus_up, one_minus_b2p;
} nadam_scalars;

/* Keras 3 Nadam:  m += (g - m)*(1-b1);  v += (g^2 - v)*(1-b2);
 *   m_hat = u_t1*m/(1 - P_t*u_t1) + (1 - u_t)*g/(1 - P_t);  v_hat = v/(1 - b2^t);
 *   w -= m_hat*lr/(sqrt(v_hat) + eps).   w, g, m, v (n) */
static uint32_t nadam_update(float *restrict w, const float *restrict g, float *restrict m,
                             float *restrict v, int64_t n, float lr, float one_minus_b1,
                             float one_minus_b2, const nadam_scalars *c, float eps, float gs) {
    uint32_t bad = 0;
    const float ut1 = c->ut1, omut = c->one_minus_ut, d1 = c->one_minus_up1, d2 = c->one_minus_up,
                d3 = c->one_minus_b2p;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        float mhat = ut1 * mi / d1 + omut * gi / d2;
        float vhat = vi / d3;
        float wi = w[i] - mhat * lr / (sqrtf(vhat) + eps);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 Adamax:  m += (g - m)*(1-b1);  u = max(b2*u, |g|);  w -= lr*m/((1 - b1^t)*(u + eps)).
 * w, g, m, u (n) */
static uint32_t adamax_update(float *restrict w, const float *restrict g, float *restrict m,
                              float *restrict u, int64_t n, float lr, float one_minus_b1, float b2,
                              float one_minus_b1p, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float bu = b2 * u[i], ag = fabsf(gi);
        float ui = (bu > ag || bu != bu) ? bu : ag; /* ops.maximum: NaN propagates */
        m[i] = mi;
        u[i] = ui;
        float wi = w[i] - lr * mi / (one_minus_b1p * (ui + eps));
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 Adagrad:  a += g^2;  w -= lr*g/sqrt(a + eps).   w, g, a (n) */
static uint32_t adagrad_update(float *restrict w, const float *restrict g, float *restrict a,
                               int64_t n, float lr, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float ai = a[i] + gi * gi;
        a[i] = ai;
        float wi = w[i] - lr * gi / sqrtf(ai + eps);
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 Adadelta:  a = rho*a + (1-rho)*g^2;  d = -(sqrt(D + eps)*g / sqrt(a + eps));
 *   D = rho*D + (1-rho)*d^2;  w += lr*d.   w, g, a, D (n) */
static uint32_t adadelta_update(float *restrict w, const float *restrict g, float *restrict a,
                                float *restrict dv, int64_t n, float lr, float rho,
                                float one_minus_rho, float eps, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float ai = rho * a[i] + one_minus_rho * (gi * gi);
        a[i] = ai;
        float d = -(sqrtf(dv[i] + eps) * gi / sqrtf(ai + eps));
        dv[i] = rho * dv[i] + one_minus_rho * (d * d);
        float wi = w[i] + lr * d;
        w[i] = wi;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 Lion:  w -= lr*sign(m*b1 + g*(1-b1));  m = m*b2 + g*(1-b2).   w, g, m (n) */
static uint32_t lion_update(float *restrict w, const float *restrict g, float *restrict m,
                            int64_t n, float lr, float b1, float one_minus_b1, float b2,
                            float one_minus_b2, float gs) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float c = m[i] * b1 + gi * one_minus_b1;
        float sg = c > 0 ? 1.0f : c < 0 ? -1.0f : c; /* ops.sign: sign(0) = 0, NaN stays */
        float wi = w[i] - lr * sg;
        w[i] = wi;
        m[i] = m[i] * b2 + gi * one_minus_b2;
        bad |= dpt_nonfinite_f32(wi);
    }
    return bad;
}

/* Keras 3 Nadam's _u_product after update `step` (1-based): u_product * beta_1 *
 * (1 - 0.5 * 0.96^step), in float32 and Keras's order. */
static float nadam_u_product_next(float up, float b1, int64_t step) {
    return up * b1 * (1.0f - 0.5f * powf(0.96f, (float)step));
}

/* The part [*s0, *s1) of segment k inside [lo, hi); false when empty. */
static bool seg_part(const dpt_optim *o, int k, int64_t lo, int64_t hi, int64_t *s0, int64_t *s1) {
    const int64_t a = o->seg[2 * k], b = o->seg[2 * k] + o->seg[2 * k + 1];
    *s0 = a > lo ? a : lo;
    *s1 = b < hi ? b : hi;
    return *s1 > *s0;
}

/* Sum of squares of gb over [a, b) intersected with the trainable segments (double). */
static double trainable_sumsq(const dpt_optim *o, const float *gb, int64_t a, int64_t b) {
    double ss = 0;
    int64_t s0, s1;
    for (int k = 0; k < o->n_seg; k++)
        if (seg_part(o, k, a, b, &s0, &s1))
            for (int64_t i = s0; i < s1; i++)
                ss += (double)gb[i] * (double)gb[i];
    return ss;
}

/* Keras 3's _clip_gradients on the processed gradient gb (the whole buffer, trainable parts):
 * clipvalue element-wise, clipnorm per weight tensor, global_clipnorm over everything. */
static void clip_gradient(const dpt_optim *o, float *gb, int64_t lo, int64_t hi) {
    const dpt_optim_spec *s = &o->spec;
    int64_t s0, s1;
    if (s->clipnorm > 0) {
        /* _clip_by_norm: l2norm = sqrt(sum g^2) (0 stays 0); g = g*c / max(l2norm, c) */
        const float c = (float)s->clipnorm;
        for (int j = 0; j < o->n_tens; j++) {
            const int64_t a = o->tens[2 * j], b = a + o->tens[2 * j + 1];
            const float l2sum = (float)trainable_sumsq(o, gb, a, b);
            const float l2norm = l2sum > 0 ? sqrtf(l2sum) : l2sum;
            const float den = (l2norm > c || l2norm != l2norm) ? l2norm : c;
            for (int k = 0; k < o->n_seg; k++)
                if (seg_part(o, k, a, b, &s0, &s1))
                    for (int64_t i = s0; i < s1; i++)
                        gb[i] = gb[i] * c / den;
        }
    } else if (s->global_clipnorm > 0) {
        /* clip_by_global_norm: scale = c * min(1/norm, 1/c) + (norm - norm) (NaN if not finite) */
        const float c = (float)s->global_clipnorm;
        const float norm = sqrtf((float)trainable_sumsq(o, gb, 0, o->n));
        const float inv = 1.0f / norm, ic = 1.0f / c;
        const float scale = c * ((inv < ic || inv != inv) ? inv : ic) + (norm - norm);
        for (int k = 0; k < o->n_seg; k++)
            if (seg_part(o, k, 0, o->n, &s0, &s1))
                for (int64_t i = s0; i < s1; i++)
                    gb[i] = gb[i] * scale;
    } else if (s->clipvalue > 0) {
        const float v = (float)s->clipvalue;
        for (int k = 0; k < o->n_seg; k++)
            if (seg_part(o, k, lo, hi, &s0, &s1))
                for (int64_t i = s0; i < s1; i++) {
                    const float x = gb[i]; /* ops.clip: NaN stays NaN */
                    gb[i] = x > v ? v : x < -v ? -v : x;
                }
    }
}

void dpt_optim_step(dpt_optim *o, float *params, const float *grads) {
    dpt_optim_step_range(o, params, grads, 0, o->n, 1.0f);
}

bool dpt_optim_step_range(dpt_optim *o, float *params, const float *grads, int64_t lo, int64_t hi,
                          float gscale) {
    uint32_t bad = 0;
    DPT_ASSERT(o != NULL && lo >= 0 && lo <= hi && hi <= o->n);
    /* norms over whole tensors: every rank must hold and update the whole vector */
    DPT_ASSERT(!dpt_optim_needs_whole_vector(o) || (lo == 0 && hi == o->n));
    const double lr_d = current_lr(o, o->t); /* Keras: schedule(iterations) before the update */
    o->t++; /* Keras: local_step = iterations + 1, and iterations is incremented by the update */
    const dpt_optim_spec *s = &o->spec;
    const int acc_n = s->gradient_accumulation_steps;
    int64_t s0, s1;
    if (acc_n > 1 && o->t % acc_n != 0) {
        /* Keras 3: not an update step: only acc += g (the weights and the state stay) */
        float *restrict acc = o->slot[o->acc_slot];
        for (int k = 0; k < o->n_seg; k++)
            if (seg_part(o, k, lo, hi, &s0, &s1))
                for (int64_t i = s0; i < s1; i++) {
                    const float a = grads[i] * gscale + acc[i];
                    acc[i] = a;
                    bad |= dpt_nonfinite_f32(a); /* a non-finite sum would make the weights so */
                }
        return bad != 0;
    }
    /* updates applied so far, this one included (Keras: self.iterations + 1) */
    const int64_t applied = acc_n > 1 ? o->t / acc_n : o->t;
    const float *ge = grads;
    float gs = gscale;
    if (o->gbuf) {
        /* the processed gradient: the accumulated mean (g + acc) / N, then the clip */
        float *restrict gb = o->gbuf;
        const int64_t plo = dpt_optim_needs_whole_vector(o) ? 0 : lo;
        const int64_t phi = dpt_optim_needs_whole_vector(o) ? o->n : hi;
        for (int k = 0; k < o->n_seg; k++)
            if (seg_part(o, k, plo, phi, &s0, &s1)) {
                if (acc_n > 1) {
                    float *restrict acc = o->slot[o->acc_slot];
                    const float nf = (float)acc_n;
                    for (int64_t i = s0; i < s1; i++) {
                        gb[i] = (grads[i] * gscale + acc[i]) / nf;
                        acc[i] = 0.0f;
                    }
                } else {
                    for (int64_t i = s0; i < s1; i++)
                        gb[i] = grads[i] * gscale;
                }
            }
        clip_gradient(o, gb, plo, phi);
        ge = gb;
        gs = 1.0f;
    }
    const float lr = (float)lr_d;
    /* Keras keeps its hyper-parameters as float32 values, so 0.999 means 0.99900001287...: at
     * small t, 1 - b2^t is ~t(1-b2) and that rounding shows at the 1e-5 level. We round them the
     * same way, then take lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) in double (more accurate than
     * Keras's float32 pow) and use it in float. */
    const float b1 = (float)s->beta_1, b2 = (float)s->beta_2;
    const double t = (double)applied;
    const double lr_t = (double)lr * sqrt(1.0 - pow((double)b2, t)) / (1.0 - pow((double)b1, t));
    nadam_scalars nc = {0};
    if (s->kind == DPT_OPT_NADAM) {
        /* Keras 3: _u_product *= b1*(1 - 0.5*0.96^t) first, then the per-variable update */
        o->u_product = nadam_u_product_next(o->u_product, b1, applied);
        const float ut = b1 * (1.0f - 0.5f * powf(0.96f, (float)applied));
        nc.ut1 = b1 * (1.0f - 0.5f * powf(0.96f, (float)(applied + 1)));
        nc.one_minus_ut = 1.0f - ut;
        nc.one_minus_up1 = 1.0f - o->u_product * nc.ut1;
        nc.one_minus_up = 1.0f - o->u_product;
        nc.one_minus_b2p = 1.0f - powf(b2, (float)applied);
    }
    for (int k = 0; k < o->n_seg; k++) {
        if (!seg_part(o, k, lo, hi, &s0, &s1))
            continue;
        const int64_t off = s0, n = s1 - s0;
        float *w = params + off;
        const float *g = ge + off;
        if (s->weight_decay > 0)
            weight_decay(w, n, (float)s->weight_decay, lr);
        switch (s->kind) {
        case DPT_OPT_SGD:
            if (!(s->momentum > 0)) /* Keras: no momentum slot when momentum == 0 */
                bad |= sgd_plain(w, g, n, lr, gs);
            else
                bad |= sgd_momentum(w, g, o->slot[0] + off, n, lr, (float)s->momentum, gs,
                                    s->nesterov);
            break;
        case DPT_OPT_ADAM:
        case DPT_OPT_ADAMW:
            if (o->vhat_slot >= 0)
                bad |= adam_amsgrad_update(w, g, o->slot[0] + off, o->slot[1] + off,
                                           o->slot[o->vhat_slot] + off, n, (float)lr_t, 1.0f - b1,
                                           1.0f - b2, (float)s->epsilon, gs);
            else
                bad |= adam_update(w, g, o->slot[0] + off, o->slot[1] + off, n, (float)lr_t,
                                   1.0f - b1, 1.0f - b2, (float)s->epsilon, gs);
            break;
        case DPT_OPT_RMSPROP:
            bad |= rmsprop_update(
                w, g, o->slot[0] + off, o->rms_mom >= 0 ? o->slot[o->rms_mom] + off : NULL,
                o->rms_avg >= 0 ? o->slot[o->rms_avg] + off : NULL, n, lr, (float)s->rho,
                (float)(1.0 - s->rho), (float)s->momentum, (float)s->epsilon, gs);
            break;
        case DPT_OPT_NADAM:
            /* Nadam casts beta_1, beta_2 to float32 before 1 - beta */
            bad |= nadam_update(w, g, o->slot[0] + off, o->slot[1] + off, n, lr, 1.0f - b1,
                                1.0f - b2, &nc, (float)s->epsilon, gs);
            break;
        case DPT_OPT_ADAMAX:
            /* Adamax: 1 - self.beta_1 in Python (double), then float32; beta_1^t in float32 */
            bad |= adamax_update(w, g, o->slot[0] + off, o->slot[1] + off, n, lr,
                                 (float)(1.0 - s->beta_1), b2, 1.0f - powf(b1, (float)applied),
                                 (float)s->epsilon, gs);
            break;
        case DPT_OPT_ADAGRAD:
            bad |= adagrad_update(w, g, o->slot[0] + off, n, lr, (float)s->epsilon, gs);
            break;
        case DPT_OPT_ADADELTA:
            bad |= adadelta_update(w, g, o->slot[0] + off, o->slot[1] + off, n, lr, (float)s->rho,
                                   (float)(1.0 - s->rho), (float)s->epsilon, gs);
            break;
        case DPT_OPT_LION:
            bad |= lion_update(w, g, o->slot[0] + off, n, lr, b1, 1.0f - b1, b2, 1.0f - b2, gs);
            break;
        }
    }
    return bad != 0;
}

int64_t dpt_optim_iterations(const dpt_optim *o) { return o->t; }

void dpt_optim_set_iterations(dpt_optim *o, int64_t t) {
    DPT_ASSERT(t >= 0);
    o->t = t;
    if (o->spec.kind == DPT_OPT_NADAM) {
        /* _u_product is a function of the updates applied: replay it, the same float32 steps */
        const int acc_n = o->spec.gradient_accumulation_steps;
        const int64_t applied = acc_n > 1 ? t / acc_n : t;
        float up = 1.0f;
        for (int64_t k = 1; k <= applied; k++)
            up = nadam_u_product_next(up, (float)o->spec.beta_1, k);
        o->u_product = up;
    }
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
