/* The streaming reader alone, driven as the trainer drives it (bench/stream_memory.sh --driver):
 * each rank streams its shard of FILE's /train with dpt_stream, taking dpt_local_count samples
 * per global batch into a batch buffer, for EPOCHS epochs, and prints its rows/s, the stream's
 * buffer bytes and its peak RSS. No model, no allreduce: what the reader costs in memory and
 * time. Not a test (tests/unit/test_stream.c and tests/mpi/test_stream_mpi.c are).
 *
 *   mpirun -np 2 stream_read FILE MEMORY_LIMIT_BYTES [BATCH=256] [EPOCHS=1]
 *
 * The window is MEMORY_LIMIT / 4 (two windows = half the limit), the policy suggested to the
 * trainer. Labels are read as binary cross-entropy targets (the synthetic data's 0/1). */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "dptrain/dptrain.h"

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 3) {
        if (rank == 0)
            fprintf(stderr, "usage: stream_read FILE MEMORY_LIMIT_BYTES [BATCH] [EPOCHS]\n");
        MPI_Finalize();
        return 2;
    }
    const char *path = argv[1];
    int64_t limit = atoll(argv[2]);
    int64_t B = argc > 3 ? atoll(argv[3]) : 256;
    int64_t epochs = argc > 4 ? atoll(argv[4]) : 1;
    dpt_data_info info;
    dpt_status st = dpt_data_probe(path, "train", &info);
    if (st != DPT_OK) {
        fprintf(stderr, "[rank %d] %s\n", rank, dpt_error_message());
        MPI_Abort(MPI_COMM_WORLD, st);
    }
    int64_t n = info.n, lo, hi;
    dpt_split_range(n, rank, size, &lo, &hi);
    const dpt_target_spec t = {DPT_LOSS_BINARY_CROSSENTROPY, 1};
    dpt_stream *s = NULL;
    st = dpt_stream_open(path, "train", lo, hi, &t, NULL, limit / 4, 42u, &s);
    if (st != DPT_OK) {
        fprintf(stderr, "[rank %d] %s\n", rank, dpt_error_message());
        MPI_Abort(MPI_COMM_WORLD, st);
    }
    int64_t xs = dpt_stream_x_size(s), ys = dpt_stream_y_size(s);
    int64_t max_local = (B + size - 1) / size;
    float *xb = malloc(sizeof(float) * (size_t)(max_local * xs));
    float *yb = malloc(sizeof(float) * (size_t)(max_local * ys));
    if (!xb || !yb)
        MPI_Abort(MPI_COMM_WORLD, DPT_ERR_NOMEM);
    double sum = 0, t0 = MPI_Wtime();
    int64_t steps = (n + B - 1) / B, got = 0;
    for (int64_t ep = 0; ep < epochs; ep++) {
        dpt_stream_begin_epoch(s, ep);
        for (int64_t k = 0; k < steps; k++) {
            int64_t p0 = k * B, p1 = p0 + B < n ? p0 + B : n;
            int64_t c = dpt_local_count(n, p0, p1, rank, size);
            st = dpt_stream_next(s, c, xb, yb);
            if (st != DPT_OK) {
                fprintf(stderr, "[rank %d] %s\n", rank, dpt_error_message());
                MPI_Abort(MPI_COMM_WORLD, st); /* mid-step, as the trainer does */
            }
            for (int64_t i = 0; i < c; i++) /* touch the batch like a forward pass would */
                sum += xb[i * xs] + yb[i * ys];
            got += c;
        }
    }
    double secs = MPI_Wtime() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rank %d: %lld rows of %lld floats in %.2f s (%.0f rows/s, %.0f MiB/s); stream buffers "
           "%.1f MiB (chunk %lld rows, %lld chunks a window); batch %.2f MiB; peak RSS %.1f MiB; "
           "checksum %.6g\n",
           rank, (long long)got, (long long)xs, secs, (double)got / secs,
           (double)got * (double)xs * 4.0 / secs / 1048576.0,
           (double)dpt_stream_buffer_bytes(s) / 1048576.0, (long long)dpt_stream_chunk_rows(s),
           (long long)dpt_stream_window_chunks(s),
           (double)(max_local * (xs + ys)) * 4.0 / 1048576.0, (double)ru.ru_maxrss / 1024.0, sum);
    fflush(stdout);
    dpt_stream_destroy(&s);
    free(xb);
    free(yb);
    MPI_Finalize();
    return 0;
}
