/* Typed getters over jansson objects, with messages that name the file and the JSON path:
 * "<file>: <path>.<key>: must be ..., got ...". Missing keys give the default. Local. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/config.h"

const char *dpt_json_type_name(const json_t *v) {
    if (!v)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* "<file>: <path>.<key>" (or "<file>: <key>" when path is empty) */
static void where(char *buf, size_t n, const dpt_json_ctx *ctx, const char *key) {
    if (ctx->path[0])
        snprintf(buf, n, "%s: %s.%s", ctx->file, ctx->path, key);
    else
        snprintf(buf, n, "%s: %s", ctx->file, key);
}

dpt_status dpt_json_get_int(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                            int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    where(w, sizeof w, ctx, key);
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9.0e15) {
        x = (int64_t)json_real_value(v);
    } else {
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be an integer, got %s", w,
                             dpt_json_type_name(v));
    }
    if (x < lo || x > hi)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be in [%lld, %lld], got %lld", w,
                             (long long)lo, (long long)hi, (long long)x);
    *out = x;
    return DPT_OK;
}

dpt_status dpt_json_get_num(const json_t *obj, const char *key, const dpt_json_ctx *ctx, double def,
                            double lo, double hi, bool hi_open, double *out) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    where(w, sizeof w, ctx, key);
    if (!json_is_number(v))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be a number, got %s", w,
                             dpt_json_type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || (hi_open ? x >= hi : x > hi))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be in [%g, %g%c, got %g", w, lo, hi,
                             hi_open ? ')' : ']', x);
    *out = x;
    return DPT_OK;
}

dpt_status dpt_json_get_bool(const json_t *obj, const char *key, const dpt_json_ctx *ctx, bool def,
                             bool *out) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    where(w, sizeof w, ctx, key);
    if (!json_is_boolean(v))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be true or false, got %s", w,
                             dpt_json_type_name(v));
    *out = json_is_true(v);
    return DPT_OK;
}

dpt_status dpt_json_get_str(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                            const char *def, const char **out) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    where(w, sizeof w, ctx, key);
    if (!json_is_string(v))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be a string, got %s", w,
                             dpt_json_type_name(v));
    *out = json_string_value(v);
    return DPT_OK;
}

dpt_status dpt_json_require_null(const json_t *obj, const char *key, const dpt_json_ctx *ctx) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return DPT_OK;
    where(w, sizeof w, ctx, key);
    return dpt_error_set(DPT_ERR_CONFIG, "%s: not supported yet (must be null)", w);
}

/* "linear, relu, ..." : every name dpt_act_from_name knows for one kind */
static void act_known(char *buf, size_t n) {
    buf[0] = '\0';
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        if (a == DPT_ACT_GELU_TANH || a == DPT_ACT_HARD_SIGMOID_K2)
            continue;
        if (buf[0])
            strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, dpt_act_name((dpt_act)a), n - strlen(buf) - 1);
    }
}

dpt_status dpt_json_get_act(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                            dpt_act def, dpt_act *out) {
    char w[512];
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    where(w, sizeof w, ctx, key);
    const char *name = NULL;
    const json_t *args = NULL; /* {"class_name": "gelu", "config": {"approximate": true}} */
    if (json_is_string(v)) {
        name = json_string_value(v);
    } else if (json_is_object(v) && json_is_string(json_object_get(v, "class_name"))) {
        /* Keras 3 may serialise a built-in activation as {"module": "keras.activations",
         * "class_name": "function", "config": "relu"}; accept that and {"class_name": "relu"}
         * with an empty config, or gelu's {"approximate": bool}. */
        const json_t *cfg = json_object_get(v, "config");
        const char *cls = json_string_value(json_object_get(v, "class_name"));
        if (json_is_string(cfg)) {
            name = json_string_value(cfg);
        } else {
            name = cls;
            args = json_is_object(cfg) ? cfg : NULL;
            if (cfg && !json_is_null(cfg) && !args)
                return dpt_error_set(DPT_ERR_CONFIG, "%s.config: must be an object, got %s", w,
                                     dpt_json_type_name(cfg));
        }
        if (cls[0] >= 'A' && cls[0] <= 'Z' && strcmp(cls, "function") != 0)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: a layer object (\"%s\") as an activation is not supported; "
                                 "use a linear activation and a %s layer after it",
                                 w, cls, cls);
    } else {
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be an activation name, got %s", w,
                             dpt_json_type_name(v));
    }
    if (!dpt_act_from_name(name, out)) {
        char known[512];
        act_known(known, sizeof known);
        return dpt_error_set(DPT_ERR_CONFIG, "%s: unknown activation \"%s\" (known: %s)", w, name,
                             known);
    }
    if (*out == DPT_ACT_HARD_SIGMOID && ctx->keras_major == 2)
        *out = DPT_ACT_HARD_SIGMOID_K2; /* Keras 2: clip(0.2 z + 0.5), Keras 3: relu6(z + 3) / 6 */
    const char *k;
    const json_t *a;
    json_object_foreach((json_t *)args, k, a) {
        if (*out == DPT_ACT_GELU && !strcmp(k, "approximate") && json_is_boolean(a)) {
            if (json_is_true(a))
                *out = DPT_ACT_GELU_TANH;
            continue;
        }
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s.config.%s: not supported for activation \"%s\" (only gelu's "
                             "approximate: true/false)",
                             w, k, name);
    }
    return DPT_OK;
}
