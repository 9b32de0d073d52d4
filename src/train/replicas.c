/* Replica drift detection: every K steps each rank hashes its parameters (FNV-1a over the bytes)
 * and the ranks compare; any difference means the replicas diverged (a bug, a bit flip, a rank
 * that missed an update) and training stops naming the ranks. Collective. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

dpt_status dpt_check_replicas(const dpt_comm *c, const float *params, int64_t n, int64_t step) {
    uint64_t mine = dpt_fnv1a64(DPT_FNV1A64_INIT, params, (size_t)n * sizeof(float));
    uint64_t *all = malloc((size_t)c->size * sizeof *all);
    if (!all)
        dpt_comm_abort(c, dpt_error_set(DPT_ERR_NOMEM, "replica check: out of memory"));
    dpt_comm_allgather_u64(c, mine, all);
    char bad[512] = "";
    size_t used = 0;
    int n_bad = 0;
    for (int r = 1; r < c->size; r++) {
        if (all[r] == all[0])
            continue;
        n_bad++;
        if (used < sizeof bad - 16)
            used +=
                (size_t)snprintf(bad + used, sizeof bad - used, "%s%d", n_bad > 1 ? ", " : "", r);
    }
    free(all);
    if (n_bad == 0)
        return DPT_OK;
    return dpt_error_set(DPT_ERR_INTERNAL,
                         "replica drift at global step %lld: the parameters of rank%s %s differ "
                         "from rank 0's",
                         (long long)step, n_bad > 1 ? "s" : "", bad);
}
