/* MPI tests of how ranks share the training rows (ctest runs this at 1, 2 and 3 ranks):
 *  - each rank owns [lo, hi) = dpt_split_range(n, rank, size) and dpt_shard_open reads exactly
 *    those rows (values checked against the global row number stored in the file);
 *  - walking the global batches of dpt_order for 3 epochs, each rank taking its owned members,
 *    every sample is used exactly once per epoch, every global batch has B members (the last
 *    n % B), each rank touches only rows of its shard, and the membership of global batch k does
 *    not depend on the rank count (compared with what the order alone says);
 *  - a bad value in one rank's rows fails that rank only; the agreed status reaches all ranks.
 * n = 1001: neither 2, 3 nor the batch size 32 divides it. Every assertion is on a value agreed
 * across ranks (allreduced or broadcast first), so all ranks pass or fail together. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "rows_fixture.h"
#include "testutil.h"

enum { N = 1001, F = 2, B = 32, EPOCHS = 3, CLASSES = 10 };
#define SEED 11u

static int g_rank, g_size;

static rows_fixture g_fx; /* the files, this rank and the rank count */

static void ensure_files(void) {
    rows_files(&g_fx, "shard", N, CLASSES, 0);
    g_rank = g_fx.rank;
    g_size = g_fx.size;
}

static uint64_t mix40(int64_t i) { /* a per-sample value for membership checksums (< 2^40) */
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z ^= z >> 29;
    z *= 0xBF58476D1CE4E5B9ull;
    return (z ^ (z >> 32)) & ((1ull << 40) - 1);
}

static const dpt_target_spec SPARSE = {DPT_TARGET_INDEX, CLASSES,
                                       "sparse_categorical_crossentropy"};

static void test_shard_holds_its_rows(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *s = NULL;
    dpt_shape in = {1, {F}};
    dpt_status st = dpt_shard_open(g_fx.good, "train", lo, hi, &SPARSE, &in, &s);
    int worst = rows_agree(st);
    if (st != DPT_OK)
        fprintf(stderr, "[rank %d] %s\n", g_rank, dpt_error_message());
    assert_int_equal(worst, DPT_OK);

    int64_t wrong = 0, rows = dpt_shard_rows(s);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = dpt_shard_x(s) + r * F;
        wrong += x[0] != (float)(lo + r) || x[1] != (float)(lo + r) + 0.5f;
        wrong += dpt_shard_y(s)[r] != (float)((lo + r) % CLASSES);
    }
    wrong += dpt_shard_lo(s) != lo;
    int64_t total_wrong = rows_sum_i64(wrong), total_rows = rows_sum_i64(rows);
    int64_t mn = 0, mx = 0;
    MPI_Allreduce(&rows, &mn, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&rows, &mx, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    dpt_shard_destroy(&s);
    assert_int_equal(total_wrong, 0);
    assert_int_equal(total_rows, N);
    assert_true(mx - mn <= 1); /* balanced */
}

static void test_global_batches(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *s = NULL;
    dpt_status st = dpt_shard_open(g_fx.good, "train", lo, hi, &SPARSE, NULL, &s);
    assert_int_equal(rows_agree(st), DPT_OK);

    enum { NB = (N + B - 1) / B };
    int uses[N], batch_of[N], batch_of_all[N], count[NB], count_all[NB];
    uint64_t sum[NB], sum_all[NB], expect[NB], expect0[NB];
    int64_t rows[B];
    float xb[B * F], yb[B];
    int64_t outside = 0, wrong_row = 0, batch_mismatch = 0, sum_mismatch = 0;
    uint64_t first_batch_sum[EPOCHS];

    for (int ep = 0; ep < EPOCHS; ep++) {
        dpt_order o;
        dpt_order_init(&o, N, SEED, ep, true);
        for (int i = 0; i < N; i++) {
            uses[i] = 0;
            batch_of[i] = -1;
        }
        for (int k = 0; k < NB; k++) {
            int64_t p0 = (int64_t)k * B, p1 = p0 + B < N ? p0 + B : N;
            int64_t cnt = 0;
            uint64_t cs = 0, ex = 0;
            for (int64_t pos = p0; pos < p1; pos++) {
                int64_t idx = dpt_order_at(&o, pos);
                ex += mix40(idx); /* from the order alone: independent of the ranks */
                if (idx >= lo && idx < hi) {
                    rows[cnt++] = idx - lo;
                    uses[idx]++;
                    batch_of[idx] = k;
                    cs += mix40(idx);
                }
            }
            dpt_shard_gather(s, rows, cnt, xb, yb);
            for (int64_t i = 0; i < cnt; i++) {
                int64_t idx = lo + rows[i];
                outside += rows[i] < 0 || rows[i] >= hi - lo;
                wrong_row += xb[i * F] != (float)idx || yb[i] != (float)(idx % CLASSES);
            }
            count[k] = (int)cnt;
            sum[k] = cs;
            expect[k] = ex;
        }
        MPI_Allreduce(MPI_IN_PLACE, uses, N, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(batch_of, batch_of_all, N, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(count, count_all, NB, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(sum, sum_all, NB, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        memcpy(expect0, expect, sizeof expect);
        MPI_Bcast(expect0, NB, MPI_UINT64_T, 0, MPI_COMM_WORLD); /* rank 0's view of the order */

        /* agreed values: every rank asserts the same things */
        for (int i = 0; i < N; i++) {
            if (uses[i] != 1)
                fail_msg("epoch %d: sample %d used %d times", ep, i, uses[i]);
        }
        for (int k = 0; k < NB; k++) {
            int want = k < NB - 1 ? B : N % B;
            if (count_all[k] != want)
                fail_msg("epoch %d batch %d: %d members, want %d", ep, k, count_all[k], want);
            sum_mismatch += sum_all[k] != expect0[k];
        }
        /* exact membership: batch of sample idx is (its position in the order) / B */
        for (int64_t pos = 0; pos < N; pos++)
            batch_mismatch += batch_of_all[dpt_order_at(&o, pos)] != (int)(pos / B);
        first_batch_sum[ep] = expect0[0];
    }
    dpt_shard_destroy(&s);
    assert_int_equal(N % B, 9);
    assert_int_equal(sum_mismatch, 0);
    assert_int_equal(batch_mismatch, 0);
    assert_int_equal(rows_sum_i64(outside), 0);
    assert_int_equal(rows_sum_i64(wrong_row), 0);
    /* the epochs shuffle differently */
    assert_true(first_batch_sum[0] != first_batch_sum[1]);
    assert_true(first_batch_sum[1] != first_batch_sum[2]);
}

static void test_same_order_on_every_rank(void **state) {
    (void)state;
    ensure_files();
    uint64_t h = 1469598103934665603ull, h0;
    for (int ep = 0; ep < EPOCHS; ep++) {
        dpt_order o;
        dpt_order_init(&o, N, SEED, ep, true);
        for (int64_t p = 0; p < N; p++)
            h = (h ^ (uint64_t)dpt_order_at(&o, p)) * 1099511628211ull;
    }
    h0 = h;
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int64_t differ = rows_sum_i64(h != h0);
    assert_int_equal(differ, 0);
}

/* A NaN in row N-2 (the last rank's shard): only that rank fails; the agreed status is DATA. */
static void test_bad_row_fails_its_rank_only(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *s = NULL;
    dpt_status st = dpt_shard_open(g_fx.bad, "train", lo, hi, &SPARSE, NULL, &s);
    bool mine = N - 2 >= lo && N - 2 < hi;
    int64_t as_expected = mine
                              ? (st == DPT_ERR_DATA &&
                                 strstr(dpt_error_message(), "/train/x: row 999: non-finite value"))
                              : st == DPT_OK;
    int worst = rows_agree(st);
    dpt_shard_destroy(&s);
    assert_int_equal(rows_sum_i64(as_expected), g_size);
    assert_int_equal(worst, DPT_ERR_DATA);
}

static void test_cleanup(void **state) {
    (void)state;
    ensure_files();
    rows_cleanup(&g_fx);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_holds_its_rows),
        cmocka_unit_test(test_global_batches),
        cmocka_unit_test(test_same_order_on_every_rank),
        cmocka_unit_test(test_bad_row_fails_its_rank_only),
        cmocka_unit_test(test_cleanup),
    };
    return dpt_test_mpi_main(argc, argv, tests, sizeof tests / sizeof *tests, "shard");
}
