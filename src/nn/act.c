/* Activation functions over row-major (B, n) blocks: forward in place, backward from the OUTPUT
 * y, and the fused bias + activation pass Dense uses after its sgemm. The switch on the kind sits
 * outside the loops (no per-element function pointers). Softmax subtracts the row maximum;
 * sigmoid never evaluates exp of a positive number. The Activation *layer* lives in activation.c.
 */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "nn/nn_internal.h"

bool dpt_act_from_name(const char *name, dpt_act *out) {
    static const struct {
        const char *name;
        dpt_act act;
    } names[] = {{"linear", DPT_ACT_LINEAR},
                 {"relu", DPT_ACT_RELU},
                 {"sigmoid", DPT_ACT_SIGMOID},
                 {"tanh", DPT_ACT_TANH},
                 {"softmax", DPT_ACT_SOFTMAX}};
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].act;
            return true;
        }
    return false;
}

const char *dpt_act_name(dpt_act a) {
    switch (a) {
    case DPT_ACT_LINEAR:
        return "linear";
    case DPT_ACT_RELU:
        return "relu";
    case DPT_ACT_SIGMOID:
        return "sigmoid";
    case DPT_ACT_TANH:
        return "tanh";
    case DPT_ACT_SOFTMAX:
        return "softmax";
    }
    return "?";
}

static inline float sigmoidf(float z) {
    if (z >= 0.0f)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* One row of softmax in place: y (n). */
static void softmax_row(float *y, int64_t n) {
    float m = y[0];
    for (int64_t j = 1; j < n; j++)
        m = y[j] > m ? y[j] : m;
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        y[j] = expf(y[j] - m);
        s += y[j];
    }
    float inv = 1.0f / s;
    for (int64_t j = 0; j < n; j++)
        y[j] *= inv;
}

/* The hot elementwise kernels take restrict pointers so the compiler vectorises them at -O2.
 * r (n) one row of y, b (n) the bias. */
/* Loops run in blocks of VB with a constant trip count: GCC's -O2 cost model vectorises those,
 * not loops of unknown length. */
#define VB 16

static void row_bias(float *restrict r, const float *restrict b, int64_t n) {
    int64_t j = 0;
    for (; j + VB <= n; j += VB)
        for (int q = 0; q < VB; q++)
            r[j + q] += b[j + q];
    for (; j < n; j++)
        r[j] += b[j];
}

void dpt_add_rows(float *restrict acc, const float *restrict rows, int64_t B, int64_t n) {
    for (int64_t i = 0; i < B; i++) {
        const float *r = rows + i * n; /* (n) */
        int64_t j = 0;
        for (; j + VB <= n; j += VB)
            for (int q = 0; q < VB; q++)
                acc[j + q] += r[j + q];
        for (; j < n; j++)
            acc[j] += r[j];
    }
}

static inline float relu1(float z) { return z > 0.0f ? z : 0.0f; }

static void row_bias_relu(float *restrict r, const float *restrict b, int64_t n) {
    int64_t j = 0;
    for (; j + VB <= n; j += VB)
        for (int q = 0; q < VB; q++)
            r[j + q] = relu1(r[j + q] + b[j + q]);
    for (; j < n; j++)
        r[j] = relu1(r[j] + b[j]);
}

void dpt_act_bias_forward(dpt_act a, float *y, const float *b, int64_t B, int64_t n) {
    if (!b) {
        dpt_act_forward(a, y, B, n);
        return;
    }
    for (int64_t i = 0; i < B; i++) {
        float *r = y + i * n; /* (n) */
        switch (a) {
        case DPT_ACT_LINEAR:
            row_bias(r, b, n);
            break;
        case DPT_ACT_RELU:
            row_bias_relu(r, b, n);
            break;
        case DPT_ACT_SIGMOID:
            for (int64_t j = 0; j < n; j++)
                r[j] = sigmoidf(r[j] + b[j]);
            break;
        case DPT_ACT_TANH:
            for (int64_t j = 0; j < n; j++)
                r[j] = tanhf(r[j] + b[j]);
            break;
        case DPT_ACT_SOFTMAX:
            row_bias(r, b, n);
            softmax_row(r, n);
            break;
        }
    }
}

static void relu_inplace(float *restrict y, int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            y[k + q] = relu1(y[k + q]);
    for (; k < total; k++)
        y[k] = relu1(y[k]);
}

void dpt_act_forward(dpt_act a, float *y, int64_t B, int64_t n) {
    int64_t total = B * n;
    switch (a) {
    case DPT_ACT_LINEAR:
        return;
    case DPT_ACT_RELU:
        relu_inplace(y, total);
        return;
    case DPT_ACT_SIGMOID:
        for (int64_t k = 0; k < total; k++)
            y[k] = sigmoidf(y[k]);
        return;
    case DPT_ACT_TANH:
        for (int64_t k = 0; k < total; k++)
            y[k] = tanhf(y[k]);
        return;
    case DPT_ACT_SOFTMAX:
        if (n > 0)
            for (int64_t i = 0; i < B; i++)
                softmax_row(y + i * n, n);
        return;
    }
}

/* y (total) the activation output, dy (total), dz (total); the _inplace forms have dz == dy. */
static void relu_bwd(const float *restrict y, const float *restrict dy, float *restrict dz,
                     int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            dz[k + q] = y[k + q] > 0.0f ? dy[k + q] : 0.0f;
    for (; k < total; k++)
        dz[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}
static void relu_bwd_inplace(const float *restrict y, float *restrict d, int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            d[k + q] = y[k + q] > 0.0f ? d[k + q] : 0.0f;
    for (; k < total; k++)
        d[k] = y[k] > 0.0f ? d[k] : 0.0f;
}
static void sigmoid_bwd(const float *restrict y, const float *restrict dy, float *restrict dz,
                        int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            dz[k + q] = dy[k + q] * y[k + q] * (1.0f - y[k + q]);
    for (; k < total; k++)
        dz[k] = dy[k] * y[k] * (1.0f - y[k]);
}
static void sigmoid_bwd_inplace(const float *restrict y, float *restrict d, int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            d[k + q] = d[k + q] * y[k + q] * (1.0f - y[k + q]);
    for (; k < total; k++)
        d[k] = d[k] * y[k] * (1.0f - y[k]);
}
static void tanh_bwd(const float *restrict y, const float *restrict dy, float *restrict dz,
                     int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            dz[k + q] = dy[k + q] * (1.0f - y[k + q] * y[k + q]);
    for (; k < total; k++)
        dz[k] = dy[k] * (1.0f - y[k] * y[k]);
}
static void tanh_bwd_inplace(const float *restrict y, float *restrict d, int64_t total) {
    int64_t k = 0;
    for (; k + VB <= total; k += VB)
        for (int q = 0; q < VB; q++)
            d[k + q] = d[k + q] * (1.0f - y[k + q] * y[k + q]);
    for (; k < total; k++)
        d[k] = d[k] * (1.0f - y[k] * y[k]);
}

void dpt_act_backward(dpt_act a, const float *y, const float *dy, float *dz, int64_t B, int64_t n) {
    int64_t total = B * n;
    bool inplace = dz == dy;
    switch (a) {
    case DPT_ACT_LINEAR:
        if (!inplace)
            memmove(dz, dy, (size_t)total * sizeof(float));
        return;
    case DPT_ACT_RELU:
        if (inplace)
            relu_bwd_inplace(y, dz, total);
        else
            relu_bwd(y, dy, dz, total);
        return;
    case DPT_ACT_SIGMOID:
        if (inplace)
            sigmoid_bwd_inplace(y, dz, total);
        else
            sigmoid_bwd(y, dy, dz, total);
        return;
    case DPT_ACT_TANH:
        if (inplace)
            tanh_bwd_inplace(y, dz, total);
        else
            tanh_bwd(y, dy, dz, total);
        return;
    case DPT_ACT_SOFTMAX:
        /* dz_j = y_j * (dy_j - sum_k dy_k y_k); row by row, so dz may alias dy */
        for (int64_t i = 0; i < B; i++) {
            const float *yr = y + i * n, *dyr = dy + i * n; /* (n) */
            float *dzr = dz + i * n;
            float s = 0.0f;
            for (int64_t j = 0; j < n; j++)
                s += dyr[j] * yr[j];
            for (int64_t j = 0; j < n; j++)
                dzr[j] = yr[j] * (dyr[j] - s);
        }
        return;
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
    dpt_json_where(w, sizeof w, ctx, key);
    const char *name = NULL;
    if (json_is_string(v)) {
        name = json_string_value(v);
    } else if (json_is_object(v) && json_is_string(json_object_get(v, "class_name"))) {
        /* Keras 3 may serialise a built-in activation as {"module": "keras.activations",
         * "class_name": "function", "config": "relu"}; accept that and {"class_name": "relu"}. */
        const json_t *cfg = json_object_get(v, "config");
        name = json_is_string(cfg) ? json_string_value(cfg)
                                   : json_string_value(json_object_get(v, "class_name"));
    } else {
        return dpt_error_set(DPT_ERR_CONFIG, "%s: must be an activation name, got %s", w,
                             dpt_json_type_name(v));
    }
    if (!dpt_act_from_name(name, out))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: unknown activation \"%s\" (known: linear, relu, sigmoid, tanh, "
                             "softmax)",
                             w, name);
    return DPT_OK;
}
