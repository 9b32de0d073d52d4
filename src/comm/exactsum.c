/* Exact, order-independent sums across ranks, for the reproducible mode (DESIGN.md): the result
 * is the same bits however the summands are distributed over the ranks and in whatever order
 * they are added.
 *
 * Per block of BLOCK elements, every summand is rounded once to a fixed-point grid 2^-S that
 * depends only on the largest exponent in the block over every summand of every rank (agreed by
 * an MPI_MAX) and on the total number of summands: S = 62 - ceil(log2(total)) - (e_max + 1), so
 * each rounded value is below 2^62 / total and the int64 sums can never overflow, and the integer
 * additions (local, then MPI_SUM) are exact. The sum is rounded once back to float / double. A
 * summand is rounded to about 2^-(61 - log2 total) of the block's largest magnitude: finer than a
 * float sum's own rounding. A NaN or infinity in a block makes the block's sums NaN. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/core.h"

#define BLOCK 256
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
static int grid_of(int e, int total) { return 62 - ceil_log2(total) - e; }

void dpt_comm_exact_sum_f32(const dpt_comm *c, const float *const *vecs, int nv, int64_t n,
                            int total, float *out, int64_t *acc, int *exps) {
    int64_t nb = (n + BLOCK - 1) / BLOCK;
    DPT_ASSERT(nb <= INT32_MAX && total >= 1);
    for (int64_t b = 0; b < nb; b++) { /* 1. the largest exponent of each block, agreed */
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        float m = 0.0f;
        uint32_t bad = 0;
        for (int v = 0; v < nv; v++)
            for (int64_t i = lo; i < hi; i++) {
                m = fmaxf(m, fabsf(vecs[v][i]));
                bad |= dpt_nonfinite_f32(vecs[v][i]);
            }
        exps[b] = bad ? NONFINITE_EXP : exp_of(m);
    }
    dpt_comm_allreduce_max_i32(c, exps, (int)nb);
    for (int64_t b = 0; b < nb; b++) { /* 2. rounded to the block's grid, summed exactly */
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        memset(acc + lo, 0, (size_t)(hi - lo) * sizeof *acc);
        if (exps[b] == NONFINITE_EXP || exps[b] == INT32_MIN / 2)
            continue;
        double scale = ldexp(1.0, grid_of(exps[b], total));
        for (int v = 0; v < nv; v++)
            for (int64_t i = lo; i < hi; i++)
                acc[i] += llrint((double)vecs[v][i] * scale);
    }
    dpt_comm_allreduce_sum_i64(c, acc, n); /* 3. exact: integers */
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        if (exps[b] == NONFINITE_EXP) {
            for (int64_t i = lo; i < hi; i++)
                out[i] = NAN;
            continue;
        }
        int s = exps[b] == INT32_MIN / 2 ? 0 : grid_of(exps[b], total);
        for (int64_t i = lo; i < hi; i++)
            out[i] = (float)ldexp((double)acc[i], -s);
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
        double scale = ldexp(1.0, grid_of(exps[i], total));
        for (int v = 0; v < nv; v++)
            acc[i] += llrint(vals[(int64_t)v * n + i] * scale);
    }
    dpt_comm_allreduce_sum_i64(c, acc, n);
    for (int i = 0; i < n; i++)
        out[i] = exps[i] == NONFINITE_EXP   ? NAN
                 : exps[i] == INT32_MIN / 2 ? 0.0
                                            : ldexp((double)acc[i], -grid_of(exps[i], total));
    if (exps != small_e) {
        free(exps);
        free(acc);
    }
}
