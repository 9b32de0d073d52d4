/* Activation functions over row-major (B, n) blocks: forward in place, backward from the OUTPUT
 * y, and the fused bias + activation pass Dense uses after its sgemm. The switch on the kind sits
 * outside the loops (no per-element function pointers). Softmax subtracts the row maximum;
 * sigmoid never evaluates exp of a positive number. The Activation *layer* lives in activation.c.
 */
#include <math.h>
#include <string.h>

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

void dpt_act_bias_forward(dpt_act a, float *y, const float *b, int64_t B, int64_t n) {
    if (b) {
        switch (a) {
        case DPT_ACT_LINEAR:
            for (int64_t i = 0; i < B; i++) {
                float *r = y + i * n; /* (n) */
                for (int64_t j = 0; j < n; j++)
                    r[j] += b[j];
            }
            return;
        case DPT_ACT_RELU:
            for (int64_t i = 0; i < B; i++) {
                float *r = y + i * n;
                for (int64_t j = 0; j < n; j++) {
                    float z = r[j] + b[j];
                    r[j] = z > 0.0f ? z : 0.0f;
                }
            }
            return;
        case DPT_ACT_SIGMOID:
            for (int64_t i = 0; i < B; i++) {
                float *r = y + i * n;
                for (int64_t j = 0; j < n; j++)
                    r[j] = sigmoidf(r[j] + b[j]);
            }
            return;
        case DPT_ACT_TANH:
            for (int64_t i = 0; i < B; i++) {
                float *r = y + i * n;
                for (int64_t j = 0; j < n; j++)
                    r[j] = tanhf(r[j] + b[j]);
            }
            return;
        case DPT_ACT_SOFTMAX:
            for (int64_t i = 0; i < B; i++) {
                float *r = y + i * n;
                for (int64_t j = 0; j < n; j++)
                    r[j] += b[j];
                softmax_row(r, n);
            }
            return;
        }
        return;
    }
    dpt_act_forward(a, y, B, n);
}

void dpt_act_forward(dpt_act a, float *y, int64_t B, int64_t n) {
    int64_t total = B * n;
    switch (a) {
    case DPT_ACT_LINEAR:
        return;
    case DPT_ACT_RELU:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] > 0.0f ? y[k] : 0.0f;
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

void dpt_act_backward(dpt_act a, const float *y, const float *dy, float *dz, int64_t B, int64_t n) {
    int64_t total = B * n;
    switch (a) {
    case DPT_ACT_LINEAR:
        if (dz != dy)
            memmove(dz, dy, (size_t)total * sizeof(float));
        return;
    case DPT_ACT_RELU:
        for (int64_t k = 0; k < total; k++)
            dz[k] = y[k] > 0.0f ? dy[k] : 0.0f;
        return;
    case DPT_ACT_SIGMOID:
        for (int64_t k = 0; k < total; k++)
            dz[k] = dy[k] * y[k] * (1.0f - y[k]);
        return;
    case DPT_ACT_TANH:
        for (int64_t k = 0; k < total; k++)
            dz[k] = dy[k] * (1.0f - y[k] * y[k]);
        return;
    case DPT_ACT_SOFTMAX:
        /* dz_j = y_j * (dy_j - sum_k dy_k y_k) */
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
