/* sgemm_peak: the machine's own single-precision GEMM ceiling, measured with the same OpenBLAS
 * that dptrain links. Run it with OPENBLAS_NUM_THREADS=1 (bench/run.sh does) for the 1-thread peak.
 *
 *   cc -O2 -o build-bench/sgemm_peak bench/sgemm_peak.c -lopenblas
 *   sgemm_peak [--quick] [--verbose] [--corename]   (--corename: print OpenBLAS's kernel and exit)
 *
 * Prints one machine-readable line:
 *   sgemm_peak gflops=<best of all shapes> square2048=<..> train=<median of the training shapes>
 *              corename=<OpenBLAS kernel> threads=<n>
 * With --verbose, one line per shape before it. "gflops" is the ceiling that bench/run.sh divides
 * by.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated here for other layouts). */
char *openblas_get_corename(void);
int openblas_get_num_threads(void);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct shape {
    const char *name;
    int m, n, k; /* C(m×n) = op(A)(m×k) · op(B)(k×n) */
    CBLAS_TRANSPOSE ta, tb;
};

/* Row-major, as dptrain stores activations (batch × features) and kernels (in × out), Keras layout.
 * forward:  Y(B×out) = X(B×in) · W(in×out)
 * dW:       dW(in×out) = Xᵀ(in×B) · dY(B×out)
 * dX:       dX(B×in) = dY(B×out) · Wᵀ(out×in)                                                  */
static const struct shape shapes[] = {
    {"square 2048^3", 2048, 2048, 2048, CblasNoTrans, CblasNoTrans},
    {"mlp fwd 128x784x512", 128, 512, 784, CblasNoTrans, CblasNoTrans},
    {"mlp fwd 128x512x512", 128, 512, 512, CblasNoTrans, CblasNoTrans},
    {"mlp dW 784x512 (k=128)", 784, 512, 128, CblasTrans, CblasNoTrans},
    {"mlp dW 512x512 (k=128)", 512, 512, 128, CblasTrans, CblasNoTrans},
    {"mlp dX 128x512 (k=512)", 128, 512, 512, CblasNoTrans, CblasTrans},
    {"mlp fwd 128x512x10", 128, 10, 512, CblasNoTrans, CblasNoTrans},
    {"tut fwd 32x20x64", 32, 64, 20, CblasNoTrans, CblasNoTrans},
    {"tut fwd 32x64x64", 32, 64, 64, CblasNoTrans, CblasNoTrans},
    {"tut dW 64x64 (k=32)", 64, 64, 32, CblasTrans, CblasNoTrans},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static float *randbuf(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        exit(8);
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* GFLOP/s of one shape: best of `reps` timed blocks, each block long enough to be ≥ min_s. */
static double measure(const struct shape *s, double min_s, int reps) {
    const int m = s->m, n = s->n, k = s->k;
    float *a = randbuf((size_t)m * k), *b = randbuf((size_t)k * n), *c = randbuf((size_t)m * n);
    const int lda = s->ta == CblasNoTrans ? k : m;
    const int ldb = s->tb == CblasNoTrans ? n : k;
    const double flop = 2.0 * m * n * k;
    /* warm up and size the block */
    int iters = 1;
    for (;;) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            cblas_sgemm(CblasRowMajor, s->ta, s->tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
        double dt = now() - t0;
        if (dt >= min_s / 4 || iters > (1 << 24)) {
            iters = (int)(iters * (min_s / (dt > 1e-9 ? dt : 1e-9))) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            cblas_sgemm(CblasRowMajor, s->ta, s->tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
        double g = flop * iters / (now() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    int quick = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else if (!strcmp(argv[i], "--corename")) {
            printf("%s\n", openblas_get_corename());
            return 0;
        } else {
            fprintf(stderr, "usage: sgemm_peak [--quick] [--verbose] [--corename]\n");
            return 2;
        }
    }
    const double min_s = quick ? 0.1 : 0.3;
    const int reps = quick ? 3 : 5;
    double g[NSHAPES], train[NSHAPES], best = 0;
    size_t ntrain = 0;
    for (size_t i = 0; i < NSHAPES; i++) {
        g[i] = measure(&shapes[i], min_s, reps);
        if (verbose)
            printf("  %-26s %8.1f GFLOP/s\n", shapes[i].name, g[i]);
        if (g[i] > best)
            best = g[i];
        if (i > 0 && shapes[i].m >= 128)
            train[ntrain++] = g[i]; /* the MLP's shapes */
    }
    qsort(train, ntrain, sizeof *train, cmpd);
    double med = ntrain ? (ntrain % 2 ? train[ntrain / 2]
                                      : 0.5 * (train[ntrain / 2 - 1] + train[ntrain / 2]))
                        : 0;
    printf("sgemm_peak gflops=%.1f square2048=%.1f train=%.1f corename=%s threads=%d\n", best, g[0],
           med, openblas_get_corename(), openblas_get_num_threads());
    return 0;
}
