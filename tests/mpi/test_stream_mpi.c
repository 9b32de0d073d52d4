/* MPI tests of the local (balanced) order and the streaming reader (ctest runs this at 1, 2 and 3
 * ranks). n = 1001 (neither 2, 3 nor the batch size 32 divides it), 3 epochs, two modes:
 *  - in memory: each rank's shard (dpt_shard_open) walked in its own local order
 *    (dpt_order_init_local), taking dpt_local_count samples per global batch from offset
 *    dpt_local_offset;
 *  - streaming: dpt_stream_next with the same counts, windows of a few chunks, chunk size 64;
 * in both, every sample is used exactly once per epoch (use counts allreduced), every global
 * batch has B members (the last n % B), ranks' counts differ by at most 1, each rank gets only
 * rows of its own shard, and the epochs differ. Then a bad row in one rank's shard is reported
 * by that rank's stream only. Every assertion is on a value agreed across ranks. */
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

enum { N = 1001, F = 2, B = 32, EPOCHS = 3, CLASSES = 10, CHUNK = 64 };
enum { NB = (N + B - 1) / B };
#define SEED 21u

static int g_rank, g_size;

static rows_fixture g_fx; /* the files, this rank and the rank count */

static void ensure_files(void) {
    rows_files(&g_fx, "stream-mpi", N, CLASSES, CHUNK);
    g_rank = g_fx.rank;
    g_size = g_fx.size;
}

static const dpt_target_spec SPARSE = {DPT_TARGET_INDEX, CLASSES,
                                       "sparse_categorical_crossentropy"};

typedef enum { MODE_MEMORY, MODE_STREAM } mode;

/* Runs EPOCHS epochs of the local order in the given mode and checks the agreed counts. */
static void run_epochs(mode md) {
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_shard *sh = NULL;
    dpt_stream *st = NULL;
    dpt_status s0 = md == MODE_MEMORY
                        ? dpt_shard_open(g_fx.good, "train", lo, hi, &SPARSE, NULL, &sh)
                        : dpt_stream_open(g_fx.good, "train", lo, hi, &SPARSE, NULL,
                                          3 * CHUNK * (F + 1) * 4, SEED, &st);
    if (s0 != DPT_OK)
        fprintf(stderr, "[rank %d] %s\n", g_rank, dpt_error_message());
    assert_int_equal(rows_agree(s0), DPT_OK);

    static int uses[N];
    int count[NB], count_all[NB], cmin[NB], cmax[NB];
    int64_t rows[B];
    float xb[B * F], yb[B];
    int64_t outside = 0, wrong = 0, errors = 0, fp_differ = 0, same_as_prev = 0;
    uint64_t fp_prev = 0;
    for (int ep = 0; ep < EPOCHS; ep++) {
        memset(uses, 0, sizeof uses);
        dpt_order o;
        if (md == MODE_MEMORY)
            dpt_order_init_local(&o, hi - lo, SEED, ep, lo, true);
        else
            dpt_stream_begin_epoch(st, ep);
        uint64_t fp = 1469598103934665603ull; /* this rank's sequence of rows */
        for (int k = 0; k < NB; k++) {
            int64_t p0 = (int64_t)k * B, p1 = p0 + B < N ? p0 + B : N;
            int64_t cnt = dpt_local_count(N, p0, p1, g_rank, g_size);
            int64_t off = dpt_local_offset(N, p0, g_rank, g_size);
            if (md == MODE_MEMORY) {
                for (int64_t i = 0; i < cnt; i++)
                    rows[i] = dpt_order_at(&o, off + i);
                dpt_shard_gather(sh, rows, cnt, xb, yb);
            } else if (dpt_stream_next(st, cnt, xb, yb) != DPT_OK) {
                fprintf(stderr, "[rank %d] %s\n", g_rank, dpt_error_message());
                errors++;
                cnt = 0;
            }
            for (int64_t i = 0; i < cnt; i++) {
                int64_t idx = (int64_t)xb[i * F];
                if (idx < lo || idx >= hi) {
                    outside++;
                    continue;
                }
                wrong += xb[i * F + 1] != (float)idx + 0.5f || yb[i] != (float)(idx % CLASSES);
                uses[idx]++;
                fp = (fp ^ (uint64_t)idx) * 1099511628211ull;
            }
            count[k] = (int)cnt;
        }
        MPI_Allreduce(MPI_IN_PLACE, uses, N, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(count, count_all, NB, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(count, cmin, NB, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(count, cmax, NB, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        for (int i = 0; i < N; i++)
            if (uses[i] != 1)
                fail_msg("mode %d epoch %d: sample %d used %d times", md, ep, i, uses[i]);
        for (int k = 0; k < NB; k++) {
            int want = k < NB - 1 ? B : N % B;
            if (count_all[k] != want)
                fail_msg("mode %d epoch %d batch %d: %d members, want %d", md, ep, k, count_all[k],
                         want);
            if (cmax[k] - cmin[k] > 1)
                fail_msg("mode %d epoch %d batch %d: rank counts %d..%d", md, ep, k, cmin[k],
                         cmax[k]);
        }
        if (ep > 0)
            same_as_prev += fp == fp_prev;
        fp_prev = fp;
        /* streaming the same epoch again, in other piece sizes, gives the same sequence */
        if (md == MODE_STREAM) {
            dpt_stream_begin_epoch(st, ep);
            uint64_t again = 1469598103934665603ull;
            for (int64_t left = hi - lo; left > 0 && errors == 0;) {
                int64_t c = left < B ? left : B;
                if (dpt_stream_next(st, c, xb, yb) != DPT_OK) {
                    errors++;
                    break;
                }
                for (int64_t i = 0; i < c; i++)
                    again = (again ^ (uint64_t)(int64_t)xb[i * F]) * 1099511628211ull;
                left -= c;
            }
            fp_differ += again != fp;
        }
    }
    dpt_shard_destroy(&sh);
    dpt_stream_destroy(&st);
    assert_int_equal(N % B, 9);
    assert_int_equal(rows_sum_i64(errors), 0);
    assert_int_equal(rows_sum_i64(outside), 0);
    assert_int_equal(rows_sum_i64(wrong), 0);
    assert_int_equal(rows_sum_i64(fp_differ), 0);
    /* every rank's sequence changes from epoch to epoch */
    assert_int_equal(rows_sum_i64(same_as_prev), 0);
}

static void test_local_order_in_memory(void **state) {
    (void)state;
    run_epochs(MODE_MEMORY);
}

static void test_local_order_streaming(void **state) {
    (void)state;
    run_epochs(MODE_STREAM);
}

/* A NaN in row N-2 (the last rank's shard): only that rank's stream fails, with the row. */
static void test_stream_bad_row_its_rank_only(void **state) {
    (void)state;
    ensure_files();
    int64_t lo, hi;
    dpt_split_range(N, g_rank, g_size, &lo, &hi);
    dpt_stream *s = NULL;
    dpt_status st = dpt_stream_open(g_fx.bad, "train", lo, hi, &SPARSE, NULL, 1, SEED, &s);
    assert_int_equal(rows_agree(st),
                     DPT_OK); /* metadata is fine: values are checked while streaming */
    dpt_stream_begin_epoch(s, 0);
    float *x = malloc(sizeof(float) * (size_t)(hi - lo) * F);
    float *y = malloc(sizeof(float) * (size_t)(hi - lo));
    assert_true(x && y);
    st = dpt_stream_next(s, hi - lo, x, y);
    bool mine = N - 2 >= lo && N - 2 < hi;
    int64_t as_expected = mine
                              ? (st == DPT_ERR_DATA &&
                                 strstr(dpt_error_message(), "/train/x: row 999: non-finite value"))
                              : st == DPT_OK;
    int worst = rows_agree(st);
    dpt_stream_destroy(&s);
    free(x);
    free(y);
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
        cmocka_unit_test(test_local_order_in_memory),
        cmocka_unit_test(test_local_order_streaming),
        cmocka_unit_test(test_stream_bad_row_its_rank_only),
        cmocka_unit_test(test_cleanup),
    };
    return dpt_test_mpi_main(argc, argv, tests, sizeof tests / sizeof *tests, "stream_mpi");
}
