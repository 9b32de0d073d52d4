/* libFuzzer target: the dataset reader on arbitrary bytes. The bytes are written to a file,
 * dpt_data_probe reads the "train" split's metadata; when that succeeds and one sample is small
 * (<= 2^16 values), dpt_shard_open loads up to 64 rows with a target spec derived from y.
 * Must return DPT_OK or DPT_ERR_DATA (DPT_ERR_NOMEM for an allocation failure), never crash;
 * messages name the file. HDF5 itself is not instrumented: a crash inside libhdf5 is reported by
 * the fuzzer like any other (see docs/RELIABILITY.md for what that means for us).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/core.h"
#include "dptrain/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void check(dpt_status st, dpt_status allowed) {
    if (st == DPT_OK)
        return;
    if (st != allowed && st != DPT_ERR_NOMEM) {
        fprintf(stderr, "unexpected status %d: %s\n", (int)st, dpt_error_message());
        abort();
    }
    if (!strstr(dpt_error_message(), g_path)) {
        fprintf(stderr, "message does not name the file: %s\n", dpt_error_message());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0])
        snprintf(g_path, sizeof g_path, "/tmp/dpt-fuzz-data-%d.h5", (int)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f)
        return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    dpt_data_info info;
    dpt_error_clear();
    dpt_status st = dpt_data_probe(g_path, "train", &info);
    check(st, DPT_ERR_DATA);
    if (st != DPT_OK)
        return 0;
    int64_t xs = 1;
    for (int i = 0; i < info.x_shape.rank; i++) {
        if (info.x_shape.dim[i] <= 0 || xs > (1 << 16))
            return 0;
        xs *= info.x_shape.dim[i];
    }
    if (xs > (1 << 16) || info.y_cols > (1 << 16))
        return 0;
    int64_t hi = info.n < 64 ? info.n : 64;
    /* a target spec the labels can satisfy or fail against: mse for float targets, sparse CE
     * with 3 classes for labels (so out-of-range labels are exercised) */
    dpt_target_spec t = {.kind = info.y_integer ? DPT_TARGET_INDEX : DPT_TARGET_VALUES,
                         .n_outputs = info.y_integer ? 3 : info.y_cols};
    dpt_shard *s = NULL;
    st = dpt_shard_open(g_path, "train", 0, hi, &t, NULL, &s);
    check(st, DPT_ERR_DATA);
    if (st == DPT_OK) {
        /* touch every loaded value: uninitialised or out-of-bounds rows would show */
        const float *x = dpt_shard_x(s), *y = dpt_shard_y(s);
        volatile float sum = 0;
        int64_t rows = dpt_shard_rows(s);
        for (int64_t i = 0; i < rows * dpt_shard_x_size(s); i++)
            sum += x[i];
        for (int64_t i = 0; i < rows * dpt_shard_y_size(s); i++)
            sum += y[i];
        (void)sum;
    }
    dpt_shard_destroy(&s);
    return 0;
}
