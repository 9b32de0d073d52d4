/* Keras weight regularizers L1, L2 and L1L2: parsing every Keras form (strings, legacy
 * {"class_name", "config"}, Keras 3 objects with module/registered_name), writing the legacy form
 * back, and the penalty with its gradient. Keras's penalty has no 1/2 factor: L2 is l2 * sum w^2,
 * whose gradient is 2 * l2 * w. Which tensors carry a regularizer is each layer's business; the
 * model sums the penalties (dpt_model_regularize) and the trainer adds them to the loss.
 * activity_regularizer (a penalty on a layer's OUTPUT) is parsed here too and applied by actreg.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn_internal.h"

static dpt_status reg_value(const json_t *cfg, const char *key, const dpt_json_ctx *ctx, double def,
                            double *out) {
    dpt_status st = dpt_json_get_num(cfg, key, ctx, def, -HUGE_VAL, HUGE_VAL, false, out);
    if (st != DPT_OK)
        return st;
    if (!isfinite(*out) || *out < 0)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be a number >= 0, got %g", ctx->file,
                             ctx->path, key, *out);
    return DPT_OK;
}

dpt_status dpt_regularizer_parse(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                                 dpt_regularizer *out) {
    *out = (dpt_regularizer){.kind = DPT_REG_NONE};
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return DPT_OK;
    if (json_is_string(v)) {
        const char *n = json_string_value(v);
        if (!strcmp(n, "l1") || !strcmp(n, "L1"))
            *out = (dpt_regularizer){.kind = DPT_REG_L1, .l1 = 0.01};
        else if (!strcmp(n, "l2") || !strcmp(n, "L2"))
            *out = (dpt_regularizer){.kind = DPT_REG_L2, .l2 = 0.01};
        else if (!strcmp(n, "l1_l2")) /* Keras 2's function l1_l2(l1=0.01, l2=0.01) */
            *out = (dpt_regularizer){.kind = DPT_REG_L1L2, .l1 = 0.01, .l2 = 0.01};
        else if (!strcmp(n, "l1l2") || !strcmp(n, "L1L2")) /* the class: defaults 0, 0 */
            *out = (dpt_regularizer){.kind = DPT_REG_L1L2};
        else
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.%s: unknown regularizer \"%s\" (supported: l1, l2, l1_l2, "
                                 "L1, L2, L1L2)",
                                 ctx->file, ctx->path, key, n);
        return DPT_OK;
    }
    if (!json_is_object(v))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be null, a name (\"l2\") or a Keras regularizer "
                             "object",
                             ctx->file, ctx->path, key);
    dpt_json_ctx sub = {.file = ctx->file};
    if (snprintf(sub.path, sizeof sub.path, "%s.%s", ctx->path, key) >= (int)sizeof sub.path)
        sub.path[sizeof sub.path - 1] = '\0';
    const char *cls = json_string_value(json_object_get(v, "class_name"));
    if (!cls)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.class_name: missing or not a string",
                             ctx->file, sub.path);
    const json_t *cfg = json_object_get(v, "config");
    if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.config: must be an object", ctx->file,
                             sub.path);
    json_t *empty = NULL;
    if (!cfg || json_is_null(cfg))
        cfg = empty = json_object();
    dpt_json_ctx cctx = {.file = ctx->file};
    if (snprintf(cctx.path, sizeof cctx.path, "%s.config", sub.path) >= (int)sizeof cctx.path)
        cctx.path[sizeof cctx.path - 1] = '\0';
    dpt_status st = DPT_OK;
    if (!strcmp(cls, "L1") || !strcmp(cls, "l1")) {
        out->kind = DPT_REG_L1;
        st = reg_value(cfg, "l1", &cctx, 0.01, &out->l1);
    } else if (!strcmp(cls, "L2") || !strcmp(cls, "l2")) {
        out->kind = DPT_REG_L2;
        st = reg_value(cfg, "l2", &cctx, 0.01, &out->l2);
    } else if (!strcmp(cls, "L1L2") || !strcmp(cls, "l1_l2")) {
        double def = strcmp(cls, "l1_l2") ? 0.0 : 0.01;
        out->kind = DPT_REG_L1L2;
        st = reg_value(cfg, "l1", &cctx, def, &out->l1);
        if (st == DPT_OK)
            st = reg_value(cfg, "l2", &cctx, def, &out->l2);
    } else {
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: %s.class_name: unknown regularizer \"%s\" (supported: L1, L2, "
                           "L1L2)",
                           ctx->file, sub.path, cls);
    }
    /* keys besides the values: refuse what we do not know (a typo must not pass) */
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)cfg, k, val) {
        (void)val;
        if (st != DPT_OK)
            break;
        bool known = !strcmp(k, "l1") || !strcmp(k, "l2");
        if (known && ((out->kind == DPT_REG_L1 && !strcmp(k, "l2")) ||
                      (out->kind == DPT_REG_L2 && !strcmp(k, "l1"))))
            known = false;
        if (!known)
            st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: unknown key for %s", ctx->file,
                               cctx.path, k, cls);
    }
    json_decref(empty);
    if (st != DPT_OK)
        *out = (dpt_regularizer){.kind = DPT_REG_NONE};
    return st;
}

json_t *dpt_regularizer_to_json(const dpt_regularizer *r) {
    switch (r->kind) {
    case DPT_REG_L1:
        return json_pack("{s:s, s:{s:f}}", "class_name", "L1", "config", "l1", r->l1);
    case DPT_REG_L2:
        return json_pack("{s:s, s:{s:f}}", "class_name", "L2", "config", "l2", r->l2);
    case DPT_REG_L1L2:
        return json_pack("{s:s, s:{s:f, s:f}}", "class_name", "L1L2", "config", "l1", r->l1, "l2",
                         r->l2);
    case DPT_REG_NONE:
        break;
    }
    return json_null();
}

/* w (n), g (n) or NULL */
double dpt_regularizer_apply(const dpt_regularizer *r, const float *w, float *g, int64_t n,
                             float scale) {
    if (r->kind == DPT_REG_NONE || n <= 0)
        return 0.0;
    double s1 = 0, s2 = 0;
    const float a = (float)r->l1 * scale, b = (float)(2.0 * r->l2) * scale;
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i];
        s1 += fabs((double)wi);
        s2 += (double)wi * wi;
        if (g) {
            float sg = wi > 0.0f ? 1.0f : wi < 0.0f ? -1.0f : 0.0f;
            g[i] += a * sg + b * wi;
        }
    }
    return r->l1 * s1 + r->l2 * s2;
}
