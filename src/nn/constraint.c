/* Keras weight constraints (kernel_constraint, bias_constraint, depthwise_constraint, ...):
 * projections Keras applies to a weight right after every optimizer update, with Keras's exact
 * formulas (keras/src/constraints/constraints.py, epsilon 1e-7):
 *   MaxNorm(max_value=2, axis=0):   w * clip(n, 0, max) / (eps + n)
 *   UnitNorm(axis=0):               w / (eps + n)
 *   MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0):
 *                                   w * (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)
 *   NonNeg:                         max(w, 0)
 * where n = sqrt(sum of w^2 over `axis` (an integer or a list of them, negative counting from
 * the end), keepdims). This file parses them and applies them to one tensor; which tensors carry
 * one is each layer's business (ops->constrain), and the model applies them all
 * (dpt_model_apply_constraints) when the trainer says so.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn_internal.h"

#define DPT_CON_EPS 1e-7f /* keras.backend.epsilon() */

static dpt_status con_num(const json_t *cfg, const char *key, const dpt_json_ctx *ctx, double def,
                          double *out) {
    dpt_status st = dpt_json_get_num(cfg, key, ctx, def, -HUGE_VAL, HUGE_VAL, false, out);
    if (st == DPT_OK && (!isfinite(*out) || *out < 0))
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be a number >= 0, got %g", ctx->file,
                           ctx->path, key, *out);
    return st;
}

static dpt_status con_axis(const json_t *cfg, const dpt_json_ctx *ctx, dpt_constraint *c) {
    const json_t *v = json_object_get(cfg, "axis");
    c->n_axis = 1;
    c->axis[0] = 0;
    c->axis_list = false;
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_integer(v)) {
        c->axis[0] = (int)json_integer_value(v);
        if (json_integer_value(v) < -DPT_MAX_RANK || json_integer_value(v) >= DPT_MAX_RANK)
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.axis: %lld is out of range", ctx->file,
                                 ctx->path, (long long)json_integer_value(v));
        return DPT_OK;
    }
    if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= DPT_MAX_RANK) {
        c->axis_list = true;
        c->n_axis = (int)json_array_size(v);
        for (int i = 0; i < c->n_axis; i++) {
            const json_t *a = json_array_get(v, (size_t)i);
            if (!json_is_integer(a) || json_integer_value(a) < -DPT_MAX_RANK ||
                json_integer_value(a) >= DPT_MAX_RANK)
                return dpt_error_set(DPT_ERR_CONFIG,
                                     "%s: %s.axis[%d]: must be an integer in "
                                     "[%d, %d]",
                                     ctx->file, ctx->path, i, -DPT_MAX_RANK, DPT_MAX_RANK - 1);
            c->axis[i] = (int)json_integer_value(a);
        }
        return DPT_OK;
    }
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: %s.axis: must be an integer or a list of 1 to %d integers", ctx->file,
                         ctx->path, DPT_MAX_RANK);
}

/* Keras 3 snake-case names and Keras 2's lower-case aliases, -> kind */
static bool con_kind(const char *n, dpt_con_kind *k) {
    static const struct {
        const char *name;
        dpt_con_kind kind;
    } names[] = {
        {"MaxNorm", DPT_CON_MAX_NORM},          {"max_norm", DPT_CON_MAX_NORM},
        {"maxnorm", DPT_CON_MAX_NORM},          {"NonNeg", DPT_CON_NON_NEG},
        {"non_neg", DPT_CON_NON_NEG},           {"nonneg", DPT_CON_NON_NEG},
        {"UnitNorm", DPT_CON_UNIT_NORM},        {"unit_norm", DPT_CON_UNIT_NORM},
        {"unitnorm", DPT_CON_UNIT_NORM},        {"MinMaxNorm", DPT_CON_MIN_MAX_NORM},
        {"min_max_norm", DPT_CON_MIN_MAX_NORM},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(n, names[i].name)) {
            *k = names[i].kind;
            return true;
        }
    return false;
}

static void con_defaults(dpt_constraint *c) {
    c->n_axis = 1;
    c->axis[0] = 0;
    c->axis_list = false;
    c->rate = 1.0;
    c->min_value = 0.0;
    c->max_value = c->kind == DPT_CON_MAX_NORM ? 2.0 : 1.0;
}

dpt_status dpt_constraint_parse(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                                dpt_constraint *out) {
    *out = (dpt_constraint){.kind = DPT_CON_NONE};
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return DPT_OK;
    const char *cls = NULL;
    const json_t *cfg = NULL;
    if (json_is_string(v)) {
        cls = json_string_value(v);
    } else if (json_is_object(v)) {
        cls = json_string_value(json_object_get(v, "class_name"));
        cfg = json_object_get(v, "config");
        if (!cls)
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s.class_name: missing or not a string",
                                 ctx->file, ctx->path, key);
        if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s.config: must be an object", ctx->file,
                                 ctx->path, key);
    } else {
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be null, a name (\"max_norm\") or a Keras constraint "
                             "object",
                             ctx->file, ctx->path, key);
    }
    if (!con_kind(cls, &out->kind))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: unknown constraint \"%s\" (supported: MaxNorm, NonNeg, "
                             "UnitNorm, MinMaxNorm)",
                             ctx->file, ctx->path, key, cls);
    con_defaults(out);
    if (!cfg || json_is_null(cfg))
        return DPT_OK;
    dpt_json_ctx cctx = {.file = ctx->file};
    if (snprintf(cctx.path, sizeof cctx.path, "%s.%s.config", ctx->path, key) >=
        (int)sizeof cctx.path)
        cctx.path[sizeof cctx.path - 1] = '\0';
    dpt_status st = DPT_OK;
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)cfg, k, val) {
        (void)val;
        bool norm = out->kind != DPT_CON_NON_NEG;
        bool known =
            (norm && !strcmp(k, "axis")) ||
            (out->kind != DPT_CON_NON_NEG && out->kind != DPT_CON_UNIT_NORM &&
             !strcmp(k, "max_value")) ||
            (out->kind == DPT_CON_MIN_MAX_NORM && (!strcmp(k, "min_value") || !strcmp(k, "rate")));
        if (!known) {
            st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: unknown key for %s", ctx->file,
                               cctx.path, k, cls);
            break;
        }
    }
    if (st == DPT_OK && out->kind != DPT_CON_NON_NEG)
        st = con_axis(cfg, &cctx, out);
    if (st == DPT_OK && (out->kind == DPT_CON_MAX_NORM || out->kind == DPT_CON_MIN_MAX_NORM))
        st = con_num(cfg, "max_value", &cctx, out->max_value, &out->max_value);
    if (st == DPT_OK && out->kind == DPT_CON_MIN_MAX_NORM)
        st = con_num(cfg, "min_value", &cctx, 0.0, &out->min_value);
    if (st == DPT_OK && out->kind == DPT_CON_MIN_MAX_NORM)
        st = con_num(cfg, "rate", &cctx, 1.0, &out->rate);
    if (st == DPT_OK && out->kind == DPT_CON_MIN_MAX_NORM && out->min_value > out->max_value)
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.min_value: %g is above max_value %g", ctx->file,
                           cctx.path, out->min_value, out->max_value);
    if (st != DPT_OK)
        *out = (dpt_constraint){.kind = DPT_CON_NONE};
    return st;
}

dpt_status dpt_constraint_check(dpt_constraint *c, const dpt_shape *s, const char *key,
                                const dpt_json_ctx *ctx) {
    if (c->kind == DPT_CON_NONE || c->kind == DPT_CON_NON_NEG)
        return DPT_OK;
    unsigned seen = 0;
    for (int i = 0; i < c->n_axis; i++) {
        int a = c->axis[i] < 0 ? c->axis[i] + s->rank : c->axis[i];
        if (a < 0 || a >= s->rank || (seen >> a & 1u))
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.%s.config.axis: %d is out of range or repeated for a "
                                 "weight of rank %d",
                                 ctx->file, ctx->path, key, c->axis[i], s->rank);
        seen |= 1u << a;
    }
    c->reduce_mask = seen;
    return DPT_OK;
}

json_t *dpt_constraint_to_json(const dpt_constraint *c) {
    static const char *const names[] = {NULL, "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm"};
    if (c->kind == DPT_CON_NONE)
        return json_null();
    json_t *cfg = json_object();
    if (c->kind != DPT_CON_NON_NEG) {
        json_t *ax;
        if (c->axis_list) {
            ax = json_array();
            for (int i = 0; i < c->n_axis; i++)
                json_array_append_new(ax, json_integer(c->axis[i]));
        } else {
            ax = json_integer(c->axis[0]);
        }
        json_object_set_new(cfg, "axis", ax);
    }
    if (c->kind == DPT_CON_MAX_NORM || c->kind == DPT_CON_MIN_MAX_NORM)
        json_object_set_new(cfg, "max_value", json_real(c->max_value));
    if (c->kind == DPT_CON_MIN_MAX_NORM) {
        json_object_set_new(cfg, "min_value", json_real(c->min_value));
        json_object_set_new(cfg, "rate", json_real(c->rate));
    }
    return json_pack("{s:s, s:o}", "class_name", names[c->kind], "config", cfg);
}

/* The factor desired / (eps + n) that scales every element of a group of norm n, in float as
 * Keras computes it. */
static float con_factor(const dpt_constraint *c, float n) {
    float desired;
    switch (c->kind) {
    case DPT_CON_MAX_NORM:
        desired = fminf(fmaxf(n, 0.0f), (float)c->max_value);
        break;
    case DPT_CON_UNIT_NORM:
        desired = 1.0f;
        break;
    case DPT_CON_MIN_MAX_NORM:
        desired = (float)c->rate * fminf(fmaxf(n, (float)c->min_value), (float)c->max_value) +
                  (float)(1.0 - c->rate) * n;
        break;
    default:
        return 1.0f;
    }
    return desired / (DPT_CON_EPS + n);
}

/* w (R, K) row-major, the norms over R for each of the K columns: a block of columns at a time
 * (one pass down the rows accumulates, one scales), so the reads stay contiguous. */
static void con_columns(const dpt_constraint *c, float *w, int64_t R, int64_t K) {
    enum { BLK = 256 };
    double ss[BLK];
    float f[BLK];
    for (int64_t j0 = 0; j0 < K; j0 += BLK) {
        int64_t nb = K - j0 < BLK ? K - j0 : BLK;
        memset(ss, 0, sizeof ss);
        for (int64_t i = 0; i < R; i++) {
            const float *row = w + i * K + j0;
            for (int64_t j = 0; j < nb; j++)
                ss[j] += (double)row[j] * row[j];
        }
        for (int64_t j = 0; j < nb; j++)
            f[j] = con_factor(c, sqrtf((float)ss[j]));
        for (int64_t i = 0; i < R; i++) {
            float *row = w + i * K + j0;
            for (int64_t j = 0; j < nb; j++)
                row[j] *= f[j];
        }
    }
}

void dpt_constraint_apply(const dpt_constraint *c, float *w, const dpt_shape *s) {
    if (c->kind == DPT_CON_NONE)
        return;
    int64_t n = dpt_shape_size(s);
    if (c->kind == DPT_CON_NON_NEG) {
        for (int64_t i = 0; i < n; i++)
            w[i] = w[i] > 0.0f ? w[i] : 0.0f;
        return;
    }
    /* the usual case: the reduced axes lead (axis 0 of a Dense kernel, [0, 1, 2] of a conv
     * kernel, a whole bias), and the kept ones form contiguous columns */
    int lead = 0;
    while (lead < s->rank && (c->reduce_mask >> lead & 1u))
        lead++;
    if (c->reduce_mask == (1u << lead) - 1u) {
        int64_t R = 1;
        for (int a = 0; a < lead; a++)
            R *= s->dim[a];
        con_columns(c, w, R, R > 0 ? n / R : 0);
        return;
    }
    /* row-major strides; kept axes index the groups, reduced axes the elements of a group */
    int64_t stride[DPT_MAX_RANK], kd[DPT_MAX_RANK], ks[DPT_MAX_RANK], rd[DPT_MAX_RANK],
        rs[DPT_MAX_RANK];
    int nk = 0, nr = 0;
    int64_t groups = 1, gsize = 1, acc = 1;
    for (int a = s->rank - 1; a >= 0; a--) {
        stride[a] = acc;
        acc *= s->dim[a];
    }
    for (int a = 0; a < s->rank; a++) {
        if (c->reduce_mask >> a & 1u) {
            rd[nr] = s->dim[a];
            rs[nr++] = stride[a];
            gsize *= s->dim[a];
        } else {
            kd[nk] = s->dim[a];
            ks[nk++] = stride[a];
            groups *= s->dim[a];
        }
    }
    for (int64_t g = 0; g < groups; g++) {
        int64_t base = 0, rem = g;
        for (int i = nk - 1; i >= 0; i--) {
            base += (rem % kd[i]) * ks[i];
            rem /= kd[i];
        }
        double ss = 0;
        for (int64_t j = 0; j < gsize; j++) {
            int64_t off = base, r = j;
            for (int i = nr - 1; i >= 0; i--) {
                off += (r % rd[i]) * rs[i];
                r /= rd[i];
            }
            ss += (double)w[off] * w[off];
        }
        float f = con_factor(c, sqrtf((float)ss));
        for (int64_t j = 0; j < gsize; j++) {
            int64_t off = base, r = j;
            for (int i = nr - 1; i >= 0; i--) {
                off += (r % rd[i]) * rs[i];
                r /= rd[i];
            }
            w[off] *= f;
        }
    }
}
