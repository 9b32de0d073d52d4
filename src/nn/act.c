/* Activation functions over row-major (B, n) blocks: forward in place, backward from the OUTPUT
 * y where the derivative is a function of y (relu, sigmoid, tanh, softmax, elu, selu, softplus,
 * softsign, leaky_relu, relu6, hard_sigmoid, exponential, log_softmax), else from the
 * pre-activation z (gelu, swish, hard_silu, mish: dpt_act_needs_z), and the fused bias +
 * activation pass Dense and Conv2D use after their sgemm (it can keep z for backward). The switch
 * on the kind sits outside the loops (no per-element function pointers); relu, sigmoid, tanh and
 * softmax keep their own vectorisable kernels. Softmax subtracts the row maximum; sigmoid never
 * evaluates exp of a positive number. The Activation *layer* lives in activation.c.
 */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "nn/nn_internal.h"

static const struct {
    const char *name;
    dpt_act act;
} act_names[] = {{"linear", DPT_ACT_LINEAR},
                 {"relu", DPT_ACT_RELU},
                 {"sigmoid", DPT_ACT_SIGMOID},
                 {"tanh", DPT_ACT_TANH},
                 {"softmax", DPT_ACT_SOFTMAX},
                 {"gelu", DPT_ACT_GELU},
                 {"elu", DPT_ACT_ELU},
                 {"selu", DPT_ACT_SELU},
                 {"softplus", DPT_ACT_SOFTPLUS},
                 {"softsign", DPT_ACT_SOFTSIGN},
                 {"swish", DPT_ACT_SWISH},
                 {"silu", DPT_ACT_SWISH},
                 {"leaky_relu", DPT_ACT_LEAKY_RELU},
                 {"relu6", DPT_ACT_RELU6},
                 {"hard_sigmoid", DPT_ACT_HARD_SIGMOID},
                 {"hard_silu", DPT_ACT_HARD_SILU},
                 {"hard_swish", DPT_ACT_HARD_SILU},
                 {"exponential", DPT_ACT_EXPONENTIAL},
                 {"mish", DPT_ACT_MISH},
                 {"log_softmax", DPT_ACT_LOG_SOFTMAX}};

bool dpt_act_from_name(const char *name, dpt_act *out) {
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
        if (strcmp(name, act_names[i].name) == 0) {
            *out = act_names[i].act;
            return true;
        }
    return false;
}

const char *dpt_act_name(dpt_act a) {
    switch (a) {
    case DPT_ACT_GELU_TANH:
        return "gelu"; /* dpt_act_to_json adds approximate */
    case DPT_ACT_HARD_SIGMOID_K2:
        return "hard_sigmoid";
    default:
        for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
            if (act_names[i].act == a)
                return act_names[i].name;
    }
    return "?";
}

json_t *dpt_act_to_json(dpt_act a) {
    if (a == DPT_ACT_GELU_TANH)
        return json_pack("{s:s, s:{s:b}}", "class_name", "gelu", "config", "approximate", 1);
    return json_string(dpt_act_name(a));
}

dpt_status dpt_act_require_y(dpt_act a, const dpt_json_ctx *ctx, const char *key) {
    if (!dpt_act_needs_z(a))
        return DPT_OK;
    char w[512];
    dpt_json_where(w, sizeof w, ctx, key);
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: activation \"%s\" is not supported here (its derivative needs the "
                         "pre-activation)",
                         w, dpt_act_name(a));
}

bool dpt_act_needs_z(dpt_act a) {
    return a == DPT_ACT_GELU || a == DPT_ACT_GELU_TANH || a == DPT_ACT_SWISH ||
           a == DPT_ACT_HARD_SILU || a == DPT_ACT_MISH;
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

/* ---- the other kinds: plain loops (they cost an exp or erf per element anyway) ------------ */
#define SELU_ALPHA 1.6732632423543772848170429916717f
#define SELU_SCALE 1.0507009873554804934193349852946f
#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_K 0.044715f

/* jax.nn.softplus: logaddexp(z, 0) */
static inline float softplusf(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }
static inline float relu6f(float z) { return fminf(fmaxf(z, 0.0f), 6.0f); }

/* y (total) = act(y) in place for the elementwise kinds outside the fast four */
static void act_elem(dpt_act a, float *y, int64_t total) {
    switch (a) {
    case DPT_ACT_GELU:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] * (erff(y[k] * 0.70710678118654752f) + 1.0f) * 0.5f;
        return;
    case DPT_ACT_GELU_TANH:
        for (int64_t k = 0; k < total; k++) {
            float z = y[k];
            y[k] = z * 0.5f * (1.0f + tanhf(GELU_C * (z + GELU_K * z * z * z)));
        }
        return;
    case DPT_ACT_ELU:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] > 0.0f ? y[k] : expm1f(y[k]);
        return;
    case DPT_ACT_SELU:
        for (int64_t k = 0; k < total; k++)
            y[k] = SELU_SCALE * (y[k] > 0.0f ? y[k] : SELU_ALPHA * expm1f(y[k]));
        return;
    case DPT_ACT_SOFTPLUS:
        for (int64_t k = 0; k < total; k++)
            y[k] = softplusf(y[k]);
        return;
    case DPT_ACT_SOFTSIGN:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] / (fabsf(y[k]) + 1.0f);
        return;
    case DPT_ACT_SWISH:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] * sigmoidf(y[k]);
        return;
    case DPT_ACT_LEAKY_RELU:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] >= 0.0f ? y[k] : 0.2f * y[k];
        return;
    case DPT_ACT_RELU6:
        for (int64_t k = 0; k < total; k++)
            y[k] = relu6f(y[k]);
        return;
    case DPT_ACT_HARD_SIGMOID:
        for (int64_t k = 0; k < total; k++)
            y[k] = relu6f(y[k] + 3.0f) / 6.0f;
        return;
    case DPT_ACT_HARD_SIGMOID_K2:
        for (int64_t k = 0; k < total; k++)
            y[k] = fminf(fmaxf(0.2f * y[k] + 0.5f, 0.0f), 1.0f);
        return;
    case DPT_ACT_HARD_SILU:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] * (relu6f(y[k] + 3.0f) / 6.0f);
        return;
    case DPT_ACT_EXPONENTIAL:
        for (int64_t k = 0; k < total; k++)
            y[k] = expf(y[k]);
        return;
    case DPT_ACT_MISH:
        for (int64_t k = 0; k < total; k++)
            y[k] = y[k] * tanhf(softplusf(y[k]));
        return;
    default:
        DPT_ASSERT(!"act_elem: not an elementwise kind");
    }
}

/* One row of log_softmax in place: y (n) = z - max - log(sum exp(z - max)). */
static void log_softmax_row(float *y, int64_t n) {
    float m = y[0];
    for (int64_t j = 1; j < n; j++)
        m = y[j] > m ? y[j] : m;
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++)
        s += expf(y[j] - m);
    float ls = logf(s);
    for (int64_t j = 0; j < n; j++)
        y[j] = (y[j] - m) - ls;
}

/* the row kinds (softmax, log_softmax) over (B, n), or the elementwise ones over all of it */
static void act_other(dpt_act a, float *y, int64_t B, int64_t n) {
    if (a == DPT_ACT_LOG_SOFTMAX) {
        if (n > 0)
            for (int64_t i = 0; i < B; i++)
                log_softmax_row(y + i * n, n);
        return;
    }
    act_elem(a, y, B * n);
}

void dpt_act_bias_forward_z(dpt_act a, float *y, const float *b, float *z, int64_t B, int64_t n) {
    if (!z || !dpt_act_needs_z(a)) {
        dpt_act_bias_forward(a, y, b, B, n);
        return;
    }
    for (int64_t i = 0; i < B; i++) {
        float *r = y + i * n; /* (n) */
        if (b)
            row_bias(r, b, n);
        memcpy(z + i * n, r, (size_t)n * sizeof(float));
        act_elem(a, r, n);
    }
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
        default:
            row_bias(r, b, n);
            act_other(a, r, 1, n);
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
    default:
        act_other(a, y, B, n);
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

/* dz (total) = dy * act'(.) for the kinds outside the fast four; z (total) read only when
 * dpt_act_needs_z(a). dz may alias dy. */
static void act_other_bwd(dpt_act a, const float *z, const float *y, const float *dy, float *dz,
                          int64_t B, int64_t n) {
    int64_t total = B * n;
    switch (a) {
    case DPT_ACT_GELU: /* Phi(z) + z phi(z) */
        for (int64_t k = 0; k < total; k++) {
            float x = z[k];
            float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
            float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
            dz[k] = dy[k] * (cdf + x * pdf);
        }
        return;
    case DPT_ACT_GELU_TANH:
        for (int64_t k = 0; k < total; k++) {
            float x = z[k], t = tanhf(GELU_C * (x + GELU_K * x * x * x));
            float d = 0.5f * (1.0f + t) +
                      0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_K * x * x);
            dz[k] = dy[k] * d;
        }
        return;
    case DPT_ACT_SWISH:
        for (int64_t k = 0; k < total; k++) {
            float s = sigmoidf(z[k]);
            dz[k] = dy[k] * s * (1.0f + z[k] * (1.0f - s));
        }
        return;
    case DPT_ACT_HARD_SILU:
        for (int64_t k = 0; k < total; k++) {
            float x = z[k];
            dz[k] = x < -3.0f ? 0.0f : x > 3.0f ? dy[k] : dy[k] * (2.0f * x + 3.0f) / 6.0f;
        }
        return;
    case DPT_ACT_MISH:
        for (int64_t k = 0; k < total; k++) {
            float x = z[k], t = tanhf(softplusf(x));
            dz[k] = dy[k] * (t + x * (1.0f - t * t) * sigmoidf(x));
        }
        return;
    case DPT_ACT_ELU: /* z > 0 iff y > 0; below, d = e^z = y + 1 */
        for (int64_t k = 0; k < total; k++)
            dz[k] = y[k] > 0.0f ? dy[k] : dy[k] * (y[k] + 1.0f);
        return;
    case DPT_ACT_SELU:
        for (int64_t k = 0; k < total; k++)
            dz[k] = dy[k] * (y[k] > 0.0f ? SELU_SCALE : y[k] + SELU_SCALE * SELU_ALPHA);
        return;
    case DPT_ACT_SOFTPLUS: /* sigmoid(z) = 1 - e^-y */
        for (int64_t k = 0; k < total; k++)
            dz[k] = -dy[k] * expm1f(-y[k]);
        return;
    case DPT_ACT_SOFTSIGN: /* 1 / (1 + |z|)^2 = (1 - |y|)^2 */
        for (int64_t k = 0; k < total; k++) {
            float u = 1.0f - fabsf(y[k]);
            dz[k] = dy[k] * u * u;
        }
        return;
    case DPT_ACT_LEAKY_RELU: /* y >= 0 iff z >= 0 (jax: where(z >= 0, ...)) */
        for (int64_t k = 0; k < total; k++)
            dz[k] = y[k] >= 0.0f ? dy[k] : 0.2f * dy[k];
        return;
    case DPT_ACT_RELU6:
        for (int64_t k = 0; k < total; k++)
            dz[k] = (y[k] > 0.0f && y[k] < 6.0f) ? dy[k] : 0.0f;
        return;
    case DPT_ACT_HARD_SIGMOID:
    case DPT_ACT_HARD_SIGMOID_K2: {
        const float s = a == DPT_ACT_HARD_SIGMOID ? 1.0f / 6.0f : 0.2f;
        for (int64_t k = 0; k < total; k++)
            dz[k] = (y[k] > 0.0f && y[k] < 1.0f) ? s * dy[k] : 0.0f;
        return;
    }
    case DPT_ACT_EXPONENTIAL:
        for (int64_t k = 0; k < total; k++)
            dz[k] = dy[k] * y[k];
        return;
    case DPT_ACT_LOG_SOFTMAX: /* dz_j = dy_j - softmax_j * sum_k dy_k, softmax = e^y */
        for (int64_t i = 0; i < B; i++) {
            const float *yr = y + i * n, *dyr = dy + i * n; /* (n) */
            float *dzr = dz + i * n;
            float s = 0.0f;
            for (int64_t j = 0; j < n; j++)
                s += dyr[j];
            for (int64_t j = 0; j < n; j++)
                dzr[j] = dyr[j] - expf(yr[j]) * s;
        }
        return;
    default:
        DPT_ASSERT(!"act_other_bwd: a fast kind");
    }
}

void dpt_act_backward(dpt_act a, const float *y, const float *dy, float *dz, int64_t B, int64_t n) {
    DPT_ASSERT(!dpt_act_needs_z(a));
    dpt_act_backward_z(a, NULL, y, dy, dz, B, n);
}

void dpt_act_backward_z(dpt_act a, const float *z, const float *y, const float *dy, float *dz,
                        int64_t B, int64_t n) {
    DPT_ASSERT(z || !dpt_act_needs_z(a));
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
    default:
        act_other_bwd(a, z, y, dy, dz, B, n);
        return;
    }
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
    dpt_json_where(w, sizeof w, ctx, key);
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
