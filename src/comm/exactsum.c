/* Exact, order-independent sums across ranks, for the reproducible mode (DESIGN.md): the result
 * is the same bits however the summands are distributed over the ranks and in whatever order
 * they are added.
 *
 * Per block of BLOCK elements, every summand is rounded once to a fixed-point grid 2^-S that
 * depends only on the largest exponent in the block over every summand of every rank (agreed by
 * an MPI_MAX) and on the total number of summands: S = BITS - ceil(log2(total)) - e_max, so each
 * rounded value is below 2^BITS / total and neither the int64 sums nor the rounding trick below
 * can overflow, and the integer additions (local, then MPI_SUM) are exact. The sum is rounded once
 * back to float / double. A summand is rounded to about 2^-(BITS - 1 - log2 total) of the block's
 * largest magnitude (2^-46 for 8 summands): finer than a float sum's own rounding. A NaN or
 * infinity in a block makes the block's sums NaN.
 * Floats are rounded to the grid with the 1.5 * 2^52 trick (exact for |v| < 2^51, round to
 * nearest even, as the FPU adds), which vectorises, where llrint does not. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/core.h"

#define BLOCK 256
#define BITS 50              /* floats: |rounded| < 2^50 (the trick needs < 2^51) */
#define BITS64 62            /* doubles (llrint): |rounded| < 2^62 */
#define NONFINITE_EXP 100000 /* a block holding NaN / Inf */

static int ceil_log2(int64_t v) {
    int k = 0;
    while (((int64_t)1 << k) < v)
        k++;
    return k;
}

/* the binary exponent e of |x| < 2^e (frexp's), NONFINITE_EXP for NaN / Inf, INT32_MIN / 2 for 0 */
static int exp_of(double x) {
    if (!isfinite(x))
        return NONFINITE_EXP;
    if (x == 0.0)
        return INT32_MIN / 2;
    int e;
    (void)frexp(x, &e);
    return e;
}

/* The grid exponent S of a block whose largest exponent is e, for `total` summands. */
static int grid_of(int bits, int e, int total) { return bits - ceil_log2(total) - e; }

/* round(v) for |v| < 2^51 by the 1.5 * 2^52 trick: the addition rounds to nearest even */
static inline int64_t round_small(double v) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double d = v + magic;
    int64_t a, b;
    memcpy(&a, &d, sizeof a);
    memcpy(&b, &magic, sizeof b);
    return a - b;
}

/* The three passes of dpt_comm_exact_sum_f32 over one block [lo, hi), each compiled twice (AVX2
 * and the baseline, chosen at load time: integer and exact floating-point work, the same bits
 * either way). */
#if defined(__x86_64__) && defined(__GNUC__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* the largest exponent of the block over the nv vectors, NONFINITE_EXP for a NaN / Inf */
CLONES static int block_exponent(const float *const *vecs, int nv, int64_t lo, int64_t hi) {
    uint32_t bits = 0, bad = 0; /* |x| as bits: the largest one is the largest |x| */
    for (int v = 0; v < nv; v++) {
        const float *restrict x = vecs[v];
        for (int64_t i = lo; i < hi; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            u &= 0x7fffffffu;
            bits = u > bits ? u : bits;
            bad |= u >= 0x7f800000u;
        }
    }
    float m;
    memcpy(&m, &bits, sizeof m);
    return bad ? NONFINITE_EXP : exp_of(m);
}

/* acc[lo, hi) = the sum over the vectors of each value rounded to the grid 2^-S (scale 2^S) */
CLONES static void block_round_sum(const float *const *vecs, int nv, int64_t lo, int64_t hi,
                                   double scale, int64_t *restrict acc) {
    memset(acc + lo, 0, (size_t)(hi - lo) * sizeof *acc);
    for (int v = 0; v < nv; v++) {
        const float *restrict x = vecs[v];
        for (int64_t i = lo; i < hi; i++)
            acc[i] += round_small((double)x[i] * scale);
    }
}

/* out[lo, hi) = acc * inv (inv a power of two: exact), rounded once to float */
CLONES static void block_unscale(const int64_t *restrict acc, int64_t lo, int64_t hi, double inv,
                                 float *restrict out) {
    for (int64_t i = lo; i < hi; i++)
        out[i] = (float)((double)acc[i] * inv);
}

void dpt_comm_exact_sum_f32(const dpt_comm *c, const float *const *vecs, int nv, int64_t n,
                            int total, float *out, int64_t *acc, int *exps) {
    int64_t nb = (n + BLOCK - 1) / BLOCK;
    DPT_ASSERT(nb <= INT32_MAX && total >= 1);
    for (int64_t b = 0; b < nb; b++) /* 1. the largest exponent of each block, agreed */
        exps[b] =
            block_exponent(vecs, nv, b * BLOCK, b * BLOCK + BLOCK < n ? b * BLOCK + BLOCK : n);
    dpt_comm_allreduce_max_i32(c, exps, (int)nb);
    for (int64_t b = 0; b < nb; b++) { /* 2. rounded to the block's grid, summed exactly */
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        bool none = exps[b] == NONFINITE_EXP || exps[b] == INT32_MIN / 2;
        block_round_sum(vecs, none ? 0 : nv, lo, hi,
                        none ? 1.0 : ldexp(1.0, grid_of(BITS, exps[b], total)), acc);
    }
    dpt_comm_allreduce_sum_i64(c, acc, n); /* 3. exact: integers */
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        if (exps[b] == NONFINITE_EXP) {
            for (int64_t i = lo; i < hi; i++)
                out[i] = NAN;
            continue;
        }
        int s = exps[b] == INT32_MIN / 2 ? 0 : grid_of(BITS, exps[b], total);
        block_unscale(acc, lo, hi, ldexp(1.0, -s), out);
    }
}

void dpt_comm_exact_sum_f64(const dpt_comm *c, const double *vals, int nv, int n, int total,
                            double *out) {
    DPT_ASSERT(n >= 0 && total >= 1);
    int small_e[64], *exps = small_e;
    int64_t small_a[64], *acc = small_a;
    if (n > 64) {
        exps = malloc((size_t)n * sizeof *exps);
        acc = malloc((size_t)n * sizeof *acc);
        if (!exps || !acc)
            dpt_comm_abort(c, dpt_error_set(DPT_ERR_NOMEM, "exact sums: out of memory"));
    }
    for (int i = 0; i < n; i++) { /* one grid per value (they are few and unrelated) */
        int e = INT32_MIN / 2;
        for (int v = 0; v < nv; v++) {
            int ev = exp_of(vals[(int64_t)v * n + i]);
            e = ev > e ? ev : e;
        }
        exps[i] = e;
    }
    dpt_comm_allreduce_max_i32(c, exps, n);
    for (int i = 0; i < n; i++) {
        acc[i] = 0;
        if (exps[i] == NONFINITE_EXP || exps[i] == INT32_MIN / 2)
            continue;
        double scale = ldexp(1.0, grid_of(BITS64, exps[i], total));
        for (int v = 0; v < nv; v++)
            acc[i] += llrint(vals[(int64_t)v * n + i] * scale);
    }
    dpt_comm_allreduce_sum_i64(c, acc, n);
    for (int i = 0; i < n; i++)
        out[i] = exps[i] == NONFINITE_EXP ? NAN
                 : exps[i] == INT32_MIN / 2
                     ? 0.0
                     : ldexp((double)acc[i], -grid_of(BITS64, exps[i], total));
    if (exps != small_e) {
        free(exps);
        free(acc);
    }
}
