/* Private to src/comm: the gradient exchange as a strategy. dpt_gradex (gradex.c) holds what every
 * strategy shares and dispatches through an ops table; each strategy is one file:
 *   gradex_shm.c  a node-shared MPI-3 window: reduce-scatter and allgather through memory,
 *                 MPI_Allreduce between nodes; each rank updates its part of the weights
 *   gradex_mpi.c  one MPI_Allreduce of the whole gradient; every rank updates everything
 * A new strategy (bucketed overlap, a device, a reproducible reduction) is one more file with its
 * ops and a line in gradex.c's choice. */
#ifndef DPT_COMM_GRADEX_IMPL_H
#define DPT_COMM_GRADEX_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "dptrain/comm.h"

typedef struct {
    const char *name; /* "shm", "mpi" */
    /* Sets the strategy up (collective); DPT_OK or a status with the reason (the caller falls
     * back or refuses). Fills gx->lo, gx->hi, gx->desc. */
    dpt_status (*setup)(dpt_gradex *gx);
    void (*destroy)(dpt_gradex *gx); /* collective; frees gx->impl */
    /* Optional: this rank's gradient slot (the model backward writes into it) and its length in
     * floats (>= n); NULL: the caller's own buffer is used. */
    float *(*slot)(dpt_gradex *gx, int64_t *len);
    /* Collective: afterwards g[lo, hi) holds the sum over every rank. */
    void (*reduce)(dpt_gradex *gx, float *g);
    /* Collective: s (this rank's statistics) becomes the sum over every rank, in a fixed order. */
    void (*finish)(dpt_gradex *gx, dpt_step_stats *s);
    /* Optional (NULL: every rank already has everything): every rank's part of v reaches all. */
    void (*gather)(dpt_gradex *gx, float *v);
    /* Optional (NULL: the ranks cannot share one copy of the weights). */
    float *(*share)(dpt_gradex *gx, const float *v);
    /* Optional (NULL: nothing to start early): the gradients [off, off + len) are final for this
     * step (the model's per-layer "gradients ready" hook, in reverse layer order). */
    void (*ready)(dpt_gradex *gx, int64_t off, int64_t len);
    bool parts_differ; /* each rank owns a different [lo, hi) after reduce */
} dpt_gradex_ops;

struct dpt_gradex {
    const dpt_gradex_ops *ops;
    const dpt_comm *c;
    dpt_reduce_mode mode;
    int64_t n;
    int64_t lo, hi; /* this rank's part */
    void *impl;     /* the strategy's own state */
    char desc[512];
};

extern const dpt_gradex_ops dpt_gradex_shm_ops;
extern const dpt_gradex_ops dpt_gradex_mpi_ops;

/* Sums the k statistics s[0..k) in rank order into *out (every rank the same bits). */
void dpt_step_stats_sum(const dpt_step_stats *s, int k, size_t stride, dpt_step_stats *out);

#endif
