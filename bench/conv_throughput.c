/* conv_throughput: Conv2D forward + backward throughput as a fraction of the sgemm peak measured
 * in the same run, with the same OpenBLAS and thread count (bench/conv_throughput.sh builds and
 * runs it; OPENBLAS_NUM_THREADS decides the threads).
 *
 *   conv_throughput [--quick]
 *
 * The peak: the best of a square 2048^3 sgemm and the largest sgemm shape the convolutions below
 * issue (so "fraction of peak" is against what this BLAS reaches at all), measured before and
 * after the convolutions (the summary line uses the best of both). For each convolution
 * (the Fashion-MNIST example's layers and a few ImageNet-like ones, batch B): forward, backward
 * with dK and dX, FLOPs counted as 2 * B * OH * OW * KH * KW * C * F per pass (3 passes: y, dK,
 * dX; bias and activation not counted), best of several repetitions. One line per layer, then
 *   conv_throughput peak_gflops=<..> conv_gflops=<FLOP-weighted> fraction=<..> threads=<n>
 * Everything the layer does beyond sgemm (im2col, col2im, bias, activation) counts against it.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn_internal.h"

int openblas_get_num_threads(void);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randv(int64_t n, unsigned seed) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

/* best GFLOP/s of C(m x n) = A(m x k) B(k x n), row-major */
static double sgemm_gflops(int m, int n, int k, double min_s) {
    float *a = randv((int64_t)m * k, 1), *b = randv((int64_t)k * n, 2),
          *c = randv((int64_t)m * n, 3);
    double best = 0, t_all = now();
    int reps = 0;
    while (reps < 3 || now() - t_all < min_s) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c,
                    n);
        double g = 2.0 * m * n * k / (now() - t0) * 1e-9;
        best = g > best ? g : best;
        reps++;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

typedef struct {
    const char *name;
    int B, H, W, C, F, K, S;
    const char *pad;
} conv_case;

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    double min_s = quick ? 0.3 : 1.5;
    static const conv_case cases[] = {
        {"fmnist conv2d   28x28x1->32 3x3 same", 128, 28, 28, 1, 32, 3, 1, "same"},
        {"fmnist conv2d_1 14x14x32->64 3x3 same", 128, 14, 14, 32, 64, 3, 1, "same"},
        {"fmnist conv2d_2 7x7x64->64 3x3 valid", 128, 7, 7, 64, 64, 3, 1, "valid"},
        {"cifar 32x32x64->64 3x3 same", 32, 32, 32, 64, 64, 3, 1, "same"},
        {"resnet 56x56x64->64 3x3 same", 8, 56, 56, 64, 64, 3, 1, "same"},
        {"resnet 28x28x128->256 3x3 s2 same", 8, 28, 28, 128, 256, 3, 2, "same"},
        {"resnet 56x56x64->256 1x1", 8, 56, 56, 64, 256, 1, 1, "valid"},
    };
    const int nc = (int)(sizeof cases / sizeof cases[0]);
    double peak = sgemm_gflops(2048, 2048, 2048, min_s);
    /* the largest conv-shaped sgemm: resnet 56x56x64 forward, M = 8*56*56, N = 64, K = 576 */
    double conv_shape = sgemm_gflops(8 * 56 * 56, 64, 576, min_s);
    if (conv_shape > peak)
        peak = conv_shape;
    printf("sgemm 2048^3 / conv-shaped (25088x64x576): peak %.1f GFLOP/s\n", peak);
    double flop_total = 0, time_total = 0;
    for (int i = 0; i < nc; i++) {
        const conv_case *cc = &cases[i];
        char cfg[256];
        snprintf(cfg, sizeof cfg,
                 "{\"filters\": %d, \"kernel_size\": %d, \"strides\": %d, \"padding\": \"%s\", "
                 "\"activation\": \"relu\"}",
                 cc->F, cc->K, cc->S, cc->pad);
        json_t *j = json_loads(cfg, 0, NULL);
        dpt_json_ctx ctx = {.file = "bench", .path = "conv"};
        dpt_shape in = {.rank = 3, .dim = {cc->H, cc->W, cc->C}};
        dpt_layer *l = NULL;
        if (dpt_conv2d_create(j, &ctx, &in, &l) != DPT_OK) {
            fprintf(stderr, "%s\n", dpt_error_message());
            return 1;
        }
        json_decref(j);
        int64_t np = l->ops->n_params(l);
        l->params = randv(np, 7);
        l->grads = calloc((size_t)np, sizeof(float));
        l->index = 1;
        float *x = randv(cc->B * l->in_size, 5), *y = randv(cc->B * l->out_size, 6);
        float *dy = randv(cc->B * l->out_size, 8), *dx = randv(cc->B * l->in_size, 9);
        dpt_pass p = {.training = true};
        double flop =
            3.0 * 2.0 * cc->B * (double)(l->out_size / cc->F) * cc->K * cc->K * cc->C * cc->F;
        double best = 1e30, t_all = now();
        int reps = 0;
        while (reps < 3 || now() - t_all < min_s) {
            double t0 = now();
            l->ops->forward(l, &p, x, y, cc->B);
            l->ops->backward(l, &p, x, y, dy, dx, cc->B);
            double t = now() - t0;
            best = t < best ? t : best;
            reps++;
        }
        double g = flop / best * 1e-9;
        printf("%-40s B=%-4d %8.2f ms  %7.1f GFLOP/s  %5.1f %% of peak\n", cc->name, cc->B,
               best * 1e3, g, 100.0 * g / peak);
        flop_total += flop;
        time_total += best;
        free(l->params);
        free(l->grads);
        dpt_layer_destroy(&l);
        free(x);
        free(y);
        free(dy);
        free(dx);
    }
    /* the peak again at the end (a shared machine's load changes): the best of both counts */
    double end2048 = sgemm_gflops(2048, 2048, 2048, min_s);
    double end_conv = sgemm_gflops(8 * 56 * 56, 64, 576, min_s);
    double peak_end = end2048 > end_conv ? end2048 : end_conv;
    if (peak_end > peak) {
        printf("peak at the end: %.1f GFLOP/s (the fractions above used %.1f; rescaled below)\n",
               peak_end, peak);
        peak = peak_end;
    }
    double cg = flop_total / time_total * 1e-9;
    printf("conv_throughput peak_gflops=%.1f conv_gflops=%.1f fraction=%.3f threads=%d\n", peak, cg,
           cg / peak, openblas_get_num_threads());
    return 0;
}
