/* Keras weight initialisers: parsing every serialised form (a name string, {"class_name",
 * "config"}, Keras 3's {"module", "class_name", "config", "registered_name"}) into a small spec,
 * filling a tensor from a dpt_rng, and writing the spec back as Keras 2 JSON. Draws follow
 * Keras's distributions, not its random streams (values differ from Keras's for the same seed).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define KNOWN_INITS                                                                                \
    "GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, "                \
    "VarianceScaling, RandomUniform, RandomNormal, TruncatedNormal, Zeros, Ones, Constant, "       \
    "Orthogonal"

dpt_init_spec dpt_init_glorot_uniform(void) {
    dpt_init_spec s = {.kind = DPT_INIT_VARIANCE_SCALING,
                       .scale = 1.0,
                       .mode = DPT_FAN_AVG,
                       .dist = DPT_DIST_UNIFORM};
    return s;
}

dpt_init_spec dpt_init_zeros(void) {
    dpt_init_spec s = {.kind = DPT_INIT_ZEROS};
    return s;
}

static dpt_init_spec vs(double scale, dpt_fan_mode mode, dpt_init_dist dist) {
    dpt_init_spec s = {
        .kind = DPT_INIT_VARIANCE_SCALING, .scale = scale, .mode = mode, .dist = dist};
    return s;
}

/* "GlorotUniform" / "glorot_uniform" -> "glorotuniform" */
static void normalise(const char *in, char *out, size_t n) {
    size_t k = 0;
    for (; *in && k + 1 < n; in++)
        if (*in != '_')
            out[k++] = (char)tolower((unsigned char)*in);
    out[k] = '\0';
}

static dpt_status get_str_choice(const json_t *cfg, const char *key, const dpt_json_ctx *ctx,
                                 const char *const *choices, int n, int def, int *out) {
    const char *v = NULL;
    dpt_status st = dpt_json_get_str(cfg, key, ctx, NULL, &v);
    if (st != DPT_OK)
        return st;
    if (!v) {
        *out = def;
        return DPT_OK;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return DPT_OK;
        }
    char known[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(known, choices[i], sizeof known - strlen(known) - 1);
        if (i + 1 < n)
            strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: must be one of %s, got \"%s\"", ctx->file,
                         ctx->path, key, known, v);
}

dpt_status dpt_init_parse(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                          dpt_init_spec def, dpt_init_spec *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DPT_OK;
    }
    const char *name = NULL;
    const json_t *cfg = NULL;
    if (json_is_string(v)) {
        name = json_string_value(v);
    } else if (json_is_object(v)) {
        name = json_string_value(json_object_get(v, "class_name"));
        cfg = json_object_get(v, "config");
        if (cfg && !json_is_object(cfg) && !json_is_null(cfg))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s.config: must be an object", ctx->file,
                                 ctx->path, key);
    }
    if (!name)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.%s: must be an initializer name or {\"class_name\", "
                             "\"config\"}",
                             ctx->file, ctx->path, key);
    /* sub-context for the initializer's own keys: <path>.<key>.config */
    dpt_json_ctx sub = {.file = ctx->file};
    if (snprintf(sub.path, sizeof sub.path, "%s.%s.config", ctx->path, key) >= (int)sizeof sub.path)
        sub.path[sizeof sub.path - 1] = '\0'; /* a truncated path still helps in a message */
    if (json_is_null(cfg))
        cfg = NULL; /* the getters treat a NULL object as empty */

    char n[64];
    normalise(name, n, sizeof n);
    dpt_status st = DPT_OK;
    dpt_init_spec s;
    if (!strcmp(n, "glorotuniform")) {
        s = vs(1.0, DPT_FAN_AVG, DPT_DIST_UNIFORM);
    } else if (!strcmp(n, "glorotnormal")) {
        s = vs(1.0, DPT_FAN_AVG, DPT_DIST_TRUNCATED_NORMAL);
    } else if (!strcmp(n, "heuniform")) {
        s = vs(2.0, DPT_FAN_IN, DPT_DIST_UNIFORM);
    } else if (!strcmp(n, "henormal")) {
        s = vs(2.0, DPT_FAN_IN, DPT_DIST_TRUNCATED_NORMAL);
    } else if (!strcmp(n, "lecununiform")) {
        s = vs(1.0, DPT_FAN_IN, DPT_DIST_UNIFORM);
    } else if (!strcmp(n, "lecunnormal")) {
        s = vs(1.0, DPT_FAN_IN, DPT_DIST_TRUNCATED_NORMAL);
    } else if (!strcmp(n, "variancescaling")) {
        static const char *const modes[] = {"fan_in", "fan_out", "fan_avg"};
        /* Keras 2.0-2.2 wrote "normal" for the truncated normal */
        static const char *const dists[] = {"uniform", "truncated_normal", "untruncated_normal",
                                            "normal"};
        int mode = 0, dist = 1;
        s = vs(1.0, DPT_FAN_IN, DPT_DIST_TRUNCATED_NORMAL);
        st = dpt_json_get_num(cfg, "scale", &sub, 1.0, 1e-300, 1e300, false, &s.scale);
        if (st == DPT_OK)
            st = get_str_choice(cfg, "mode", &sub, modes, 3, 0, &mode);
        if (st == DPT_OK)
            st = get_str_choice(cfg, "distribution", &sub, dists, 4, 1, &dist);
        s.mode = (dpt_fan_mode)mode;
        s.dist = dist == 0   ? DPT_DIST_UNIFORM
                 : dist == 2 ? DPT_DIST_NORMAL
                             : DPT_DIST_TRUNCATED_NORMAL;
    } else if (!strcmp(n, "randomuniform") || !strcmp(n, "uniform")) {
        s = (dpt_init_spec){.kind = DPT_INIT_UNIFORM};
        st = dpt_json_get_num(cfg, "minval", &sub, -0.05, -1e30, 1e30, false, &s.a);
        if (st == DPT_OK)
            st = dpt_json_get_num(cfg, "maxval", &sub, 0.05, -1e30, 1e30, false, &s.b);
        if (st == DPT_OK && s.b < s.a)
            st = dpt_error_set(DPT_ERR_CONFIG, "%s: %s.maxval: must be >= minval (%g), got %g",
                               sub.file, sub.path, s.a, s.b);
    } else if (!strcmp(n, "randomnormal") || !strcmp(n, "normal") ||
               !strcmp(n, "truncatednormal")) {
        s = (dpt_init_spec){.kind = n[0] == 't' ? DPT_INIT_TRUNC_NORMAL : DPT_INIT_NORMAL};
        st = dpt_json_get_num(cfg, "mean", &sub, 0.0, -1e30, 1e30, false, &s.a);
        if (st == DPT_OK)
            st = dpt_json_get_num(cfg, "stddev", &sub, 0.05, 0.0, 1e30, false, &s.b);
    } else if (!strcmp(n, "zeros") || !strcmp(n, "zero")) {
        s = dpt_init_zeros();
    } else if (!strcmp(n, "ones") || !strcmp(n, "one")) {
        s = (dpt_init_spec){.kind = DPT_INIT_ONES};
    } else if (!strcmp(n, "orthogonal")) {
        s = (dpt_init_spec){.kind = DPT_INIT_ORTHOGONAL};
        st = dpt_json_get_num(cfg, "gain", &sub, 1.0, -1e30, 1e30, false, &s.a);
    } else if (!strcmp(n, "constant")) {
        s = (dpt_init_spec){.kind = DPT_INIT_CONSTANT};
        st = dpt_json_get_num(cfg, "value", &sub, 0.0, -1e30, 1e30, false, &s.a);
    } else {
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.%s: unknown initializer \"%s\" (known: %s)",
                             ctx->file, ctx->path, key, name, KNOWN_INITS);
    }
    if (st != DPT_OK)
        return st;
    *out = s;
    return DPT_OK;
}

/* standard normal by Box-Muller; u1 in (0, 1] so the log is finite */
static double std_normal(dpt_rng *rng) {
    double u1 = ((double)(dpt_rng_u32(rng) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(dpt_rng_u32(rng) >> 8) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double trunc_normal(dpt_rng *rng) {
    for (;;) {
        double z = std_normal(rng);
        if (fabs(z) <= 2.0)
            return z;
    }
}

/* Keras's Orthogonal for a (rows, cols) matrix w: a normal (max, min) matrix A, A = QR, Q's
 * columns times sign(diag R), transposed when rows < cols, times gain. Modified Gram-Schmidt in
 * double gives the same Q as Householder QR with that sign fix (R's diagonal made positive). */
static void fill_orthogonal(float *w, int64_t rows, int64_t cols, double gain, dpt_rng *rng) {
    int64_t m = rows > cols ? rows : cols, k = rows > cols ? cols : rows; /* A is (m, k) */
    double *q = malloc(sizeof(double) * (size_t)(m * k));                 /* column-major */
    DPT_ASSERT(q != NULL);
    for (int64_t i = 0; i < m * k; i++)
        q[i] = std_normal(rng);
    for (int64_t j = 0; j < k; j++) {
        double *cj = q + j * m;
        for (int64_t i = 0; i < j; i++) {
            const double *ci = q + i * m;
            double d = 0;
            for (int64_t r = 0; r < m; r++)
                d += ci[r] * cj[r];
            for (int64_t r = 0; r < m; r++)
                cj[r] -= d * ci[r];
        }
        double nrm = 0;
        for (int64_t r = 0; r < m; r++)
            nrm += cj[r] * cj[r];
        nrm = sqrt(nrm);
        for (int64_t r = 0; r < m; r++)
            cj[r] = nrm > 0 ? cj[r] / nrm : 0.0;
    }
    for (int64_t r = 0; r < rows; r++) /* w (rows, cols) row-major */
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] = (float)(gain * (rows >= cols ? q[c * m + r] : q[r * m + c]));
    free(q);
}

void dpt_init_fill(const dpt_init_spec *s, float *w, int64_t n, int64_t fan_in, int64_t fan_out,
                   dpt_rng *rng) {
    switch (s->kind) {
    case DPT_INIT_ORTHOGONAL:
        DPT_ASSERT(fan_in * fan_out == n);
        fill_orthogonal(w, fan_in, fan_out, s->a, rng);
        return;
    case DPT_INIT_ZEROS:
    case DPT_INIT_ONES:
    case DPT_INIT_CONSTANT: {
        float v = s->kind == DPT_INIT_ZEROS ? 0.0f : s->kind == DPT_INIT_ONES ? 1.0f : (float)s->a;
        for (int64_t i = 0; i < n; i++)
            w[i] = v;
        return;
    }
    case DPT_INIT_UNIFORM:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(s->a + (s->b - s->a) * dpt_rng_uniform(rng));
        return;
    case DPT_INIT_NORMAL:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(s->a + s->b * std_normal(rng));
        return;
    case DPT_INIT_TRUNC_NORMAL:
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(s->a + s->b * trunc_normal(rng));
        return;
    case DPT_INIT_VARIANCE_SCALING: {
        double fan = s->mode == DPT_FAN_IN    ? (double)fan_in
                     : s->mode == DPT_FAN_OUT ? (double)fan_out
                                              : 0.5 * (double)(fan_in + fan_out);
        double scale = s->scale / (fan > 1.0 ? fan : 1.0);
        if (s->dist == DPT_DIST_UNIFORM) {
            double limit = sqrt(3.0 * scale);
            for (int64_t i = 0; i < n; i++)
                w[i] = (float)(limit * (2.0 * dpt_rng_uniform(rng) - 1.0));
        } else if (s->dist == DPT_DIST_TRUNCATED_NORMAL) {
            /* stddev of a unit normal truncated to [-2, 2] */
            double sd = sqrt(scale) / 0.87962566103423978;
            for (int64_t i = 0; i < n; i++)
                w[i] = (float)(sd * trunc_normal(rng));
        } else {
            double sd = sqrt(scale);
            for (int64_t i = 0; i < n; i++)
                w[i] = (float)(sd * std_normal(rng));
        }
        return;
    }
    }
}

json_t *dpt_init_to_json(const dpt_init_spec *s) {
    switch (s->kind) {
    case DPT_INIT_ZEROS:
        return json_pack("{s:s, s:{}}", "class_name", "Zeros", "config");
    case DPT_INIT_ONES:
        return json_pack("{s:s, s:{}}", "class_name", "Ones", "config");
    case DPT_INIT_CONSTANT:
        return json_pack("{s:s, s:{s:f}}", "class_name", "Constant", "config", "value", s->a);
    case DPT_INIT_ORTHOGONAL:
        return json_pack("{s:s, s:{s:f, s:n}}", "class_name", "Orthogonal", "config", "gain", s->a,
                         "seed");
    case DPT_INIT_UNIFORM:
        return json_pack("{s:s, s:{s:f, s:f, s:n}}", "class_name", "RandomUniform", "config",
                         "minval", s->a, "maxval", s->b, "seed");
    case DPT_INIT_NORMAL:
    case DPT_INIT_TRUNC_NORMAL:
        return json_pack("{s:s, s:{s:f, s:f, s:n}}", "class_name",
                         s->kind == DPT_INIT_NORMAL ? "RandomNormal" : "TruncatedNormal", "config",
                         "mean", s->a, "stddev", s->b, "seed");
    case DPT_INIT_VARIANCE_SCALING: {
        static const char *const modes[] = {"fan_in", "fan_out", "fan_avg"};
        static const char *const dists[] = {"uniform", "truncated_normal", "untruncated_normal"};
        if (s->scale == 1.0 && s->mode == DPT_FAN_AVG && s->dist == DPT_DIST_UNIFORM)
            return json_pack("{s:s, s:{s:n}}", "class_name", "GlorotUniform", "config", "seed");
        return json_pack("{s:s, s:{s:f, s:s, s:s, s:n}}", "class_name", "VarianceScaling", "config",
                         "scale", s->scale, "mode", modes[s->mode], "distribution", dists[s->dist],
                         "seed");
    }
    }
    return json_null();
}
