/* The fixture of the MPI data tests (test_shard.c, test_stream_mpi.c). Header-only: every
 * function is static, each test program gets its own copy.
 *   rows_write: an HDF5 file of n rows in /train: x (n, 2) float32 with x[i] = (i, i + 0.5),
 *               y (n) int32 = i % classes; x chunked by `chunk` rows (0: contiguous); when
 *               bad_row >= 0, x[bad_row][1] = NaN.
 *   rows_files: rank 0 writes good.h5 and bad.h5 (bad row n - 2) in a fresh directory, every rank
 *               learns the paths and its rank / size; asserts (agreed) that the files exist.
 *   rows_cleanup: rank 0 removes them after a barrier.
 *   rows_agree / rows_sum_i64: the worst status / the sum over all ranks. */
#ifndef DPT_TEST_ROWS_FIXTURE_H
#define DPT_TEST_ROWS_FIXTURE_H

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <hdf5.h>

#include "testutil.h"

typedef struct {
    char dir[4096], good[4200], bad[4200];
    int rank, size;
} rows_fixture;

static int rows_write(const char *path, int n, int classes, int chunk, int64_t bad_row) {
    float *x = malloc(sizeof(float) * (size_t)n * 2);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    if (!x || !y) {
        free(x);
        free(y);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        x[i * 2] = (float)i;
        x[i * 2 + 1] = (float)i + 0.5f;
        y[i] = i % classes;
    }
    if (bad_row >= 0)
        x[bad_row * 2 + 1] = NAN;
    int rc = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)n, 2}, yd[1] = {(hsize_t)n}, ch[2] = {(hsize_t)chunk, 2};
    hid_t sx = H5Screate_simple(2, xd, NULL), sy = H5Screate_simple(1, yd, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk > 0)
        H5Pset_chunk(dcpl, 2, ch);
    hid_t dx = H5Dcreate2(g, "x", H5T_IEEE_F32LE, sx, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t dy = H5Dcreate2(g, "y", H5T_STD_I32LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Dwrite(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        rc = -1;
    if (H5Dwrite(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0)
        rc = -1;
    H5Pclose(dcpl);
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

static void rows_files(rows_fixture *fx, const char *name, int n, int classes, int chunk) {
    static int done = 0, ok = 0;
    if (!done) {
        MPI_Comm_rank(MPI_COMM_WORLD, &fx->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &fx->size);
        if (fx->rank == 0) {
            snprintf(fx->dir, sizeof fx->dir, "%s", dpt_test_tmpdir(name));
            snprintf(fx->good, sizeof fx->good, "%s/good.h5", fx->dir);
            snprintf(fx->bad, sizeof fx->bad, "%s/bad.h5", fx->dir);
            ok = rows_write(fx->good, n, classes, chunk, -1) == 0 &&
                 rows_write(fx->bad, n, classes, chunk, n - 2) == 0;
        }
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(fx->dir, sizeof fx->dir, MPI_CHAR, 0, MPI_COMM_WORLD);
        MPI_Bcast(fx->good, sizeof fx->good, MPI_CHAR, 0, MPI_COMM_WORLD);
        MPI_Bcast(fx->bad, sizeof fx->bad, MPI_CHAR, 0, MPI_COMM_WORLD);
        done = 1;
    }
    assert_true(ok); /* agreed (broadcast) */
}

/* the end of the test program: rank 0 removes the files once every rank is done with them */
static void rows_cleanup(const rows_fixture *fx) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (fx->rank == 0) {
        remove(fx->good);
        remove(fx->bad);
        rmdir(fx->dir);
    }
}

static int rows_agree(dpt_status st) {
    int local = (int)st, worst = 0;
    MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

static int64_t rows_sum_i64(int64_t v) {
    int64_t s = 0;
    MPI_Allreduce(&v, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

#endif
