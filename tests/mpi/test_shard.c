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

#include "testutil.h"

enum { N = 1001, F = 2, B = 32, EPOCHS = 3, CLASSES = 10 };
#define SEED 11u

static char g_dir[4096], g_good[4200], g_bad[4200];
static int g_rank, g_size;

/* x[i] = (i, i + 0.5), y[i] = i % 10; in the "bad" file x[bad_row][1] = NaN. */
static int write_file(const char *path, int64_t bad_row) {
    float *x = malloc(sizeof(float) * N * F);
    int32_t *y = malloc(sizeof(int32_t) * N);
    if (!x || !y)
        return -1;
    for (int i = 0; i < N; i++) {
        x[i * F] = (float)i;
        x[i * F + 1] = (float)i + 0.5f;
        y[i] = i % CLASSES;
    }
    if (bad_row >= 0)
        x[bad_row * F + 1] = NAN;
    int rc = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {N, F}, yd[1] = {N};
    hid_t sx = H5Screate_simple(2, xd, NULL), sy = H5Screate_simple(1, yd, NULL);
    hid_t dx = H5Dcreate2(g, "x", H5T_IEEE_F32LE, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dy = H5Dcreate2(g, "y", H5T_STD_I32LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Dwrite(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        rc = -1;
    if (H5Dwrite(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0)
        rc = -1;
    H5Dclose(dx);
    H5Dclose(dy);
    H5Sclose(sx);
    H5Sclose(sy);
    H5Gclose(g);
    if (H5Fclose(f) < 0)
        rc = -1;
    free(x);
    free(y);
    return rc;
}

/* Rank 0 writes the files; every rank learns the paths and whether it worked. */
static void ensure_files(void) {
    static int done = 0, ok = 0;
    if (!done) {
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        if (g_rank == 0) {
            snprintf(g_dir, sizeof g_dir, "%s", dpt_test_tmpdir("shard"));
            snprintf(g_good, sizeof g_good, "%s/good.h5", g_dir);
            snprintf(g_bad, sizeof g_bad, "%s/bad.h5", g_dir);
            ok = write_file(g_good, -1) == 0 && write_file(g_bad, N - 2) == 0;
        }
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(g_dir, sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
        MPI_Bcast(g_good, sizeof g_good, MPI_CHAR, 0, MPI_COMM_WORLD);
        MPI_Bcast(g_bad, sizeof g_bad, MPI_CHAR, 0, MPI_COMM_WORLD);
        done = 1;
    }
    assert_true(ok); /* agreed (broadcast) */
}

/* The worst status over all ranks (DPT_OK only if every rank is OK). */
static int agree(dpt_status st) {
    int local = (int)st, worst = 0;
    MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

static int64_t sum_i64(int64_t v) {
    int64_t s = 0;
    MPI_Allreduce(&v, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

static uint64_t mix40(int64_t i) { /* a per-sample value for membership checksums (< 2^40) */
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z ^= z >> 29;
    z *= 0xBF58476D1CE4E5B9ull;
    return (z ^ (z >> 32)) & ((1ull << 40) - 1);
}

static const dpt_target_spec SPARSE = {DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, CLASSES};

static void test_shard_holds_its_rows(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *s = NULL;
    dpt_shape in = {1, {F}};
    dpt_status st = dpt_shard_open(g_good, "train", lo, hi, &SPARSE, &in, &s);
    int worst = agree(st);
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
    int64_t total_wrong = sum_i64(wrong), total_rows = sum_i64(rows);
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
    dpt_status st = dpt_shard_open(g_good, "train", lo, hi, &SPARSE, NULL, &s);
    assert_int_equal(agree(st), DPT_OK);

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
    assert_int_equal(sum_i64(outside), 0);
    assert_int_equal(sum_i64(wrong_row), 0);
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
    int64_t differ = sum_i64(h != h0);
    assert_int_equal(differ, 0);
}

/* A NaN in row N-2 (the last rank's shard): only that rank fails; the agreed status is DATA. */
static void test_bad_row_fails_its_rank_only(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *s = NULL;
    dpt_status st = dpt_shard_open(g_bad, "train", lo, hi, &SPARSE, NULL, &s);
    bool mine = N - 2 >= lo && N - 2 < hi;
    int64_t as_expected = mine
                              ? (st == DPT_ERR_DATA &&
                                 strstr(dpt_error_message(), "/train/x: row 999: non-finite value"))
                              : st == DPT_OK;
    int worst = agree(st);
    dpt_shard_destroy(&s);
    assert_int_equal(sum_i64(as_expected), g_size);
    assert_int_equal(worst, DPT_ERR_DATA);
}

static void test_cleanup(void **state) {
    (void)state;
    ensure_files();
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) {
        remove(g_good);
        remove(g_bad);
        rmdir(g_dir);
    }
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
