/* Typed getters over jansson objects, with messages that name the file and the JSON path:
 * "<file>: <path>.<key>: must be ..., got ...". Missing keys give the default. Local. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dptrain/core.h"

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

void dpt_json_where(char *buf, size_t n, const dpt_json_ctx *ctx, const char *key) {
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
    dpt_json_where(w, sizeof w, ctx, key);
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
    dpt_json_where(w, sizeof w, ctx, key);
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
    dpt_json_where(w, sizeof w, ctx, key);
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
    dpt_json_where(w, sizeof w, ctx, key);
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
    dpt_json_where(w, sizeof w, ctx, key);
    return dpt_error_set(DPT_ERR_CONFIG, "%s: not supported yet (must be null)", w);
}
