/* The gradient exchange of one training step: picks a strategy (gradex_shm.c, gradex_mpi.c) and
 * dispatches to it. See include/dptrain/comm.h for the protocol, gradex_impl.h for the ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/gradex_impl.h"
#include "dptrain/core.h"

void dpt_step_stats_sum(const dpt_step_stats *s, int k, size_t stride, dpt_step_stats *out) {
    dpt_step_stats sum = {{0}};
    for (int r = 0; r < k; r++) {
        const dpt_step_stats *x = (const dpt_step_stats *)((const char *)s + (size_t)r * stride);
        for (int i = 0; i < DPT_STAT_N; i++)
            sum.v[i] += x->v[i];
    }
    *out = sum;
}

/* The same number of ranks on every node? (collective) */
static bool nodes_even(const dpt_comm *c, int *lo, int *hi) {
    int mm[2] = {c->node_size, -c->node_size};
    dpt_comm_allreduce_min_i32(c, mm, 2);
    *lo = mm[0];
    *hi = -mm[1];
    return *lo == *hi;
}

static dpt_status setup(dpt_gradex *gx, const dpt_gradex_ops *ops) {
    gx->ops = ops;
    gx->mode = ops == &dpt_gradex_shm_ops ? DPT_REDUCE_SHM : DPT_REDUCE_MPI;
    gx->desc[0] = '\0';
    return ops->setup(gx);
}

/* AUTO: shared memory when more than one rank shares a node and every node has as many ranks;
 * MPI otherwise, or when the window cannot be made (the reason goes into the description). */
static dpt_status choose(dpt_gradex *gx, dpt_reduce_mode mode) {
    int lo = 0, hi = 0;
    bool even = nodes_even(gx->c, &lo, &hi);
    if (mode == DPT_REDUCE_SHM && !even)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "--reduce shm: the nodes have different numbers of ranks (%d to %d); "
                             "use --reduce mpi or auto",
                             lo, hi);
    if (mode == DPT_REDUCE_MPI || !even || (mode == DPT_REDUCE_AUTO && gx->c->node_size < 2))
        return setup(gx, &dpt_gradex_mpi_ops);
    dpt_status st = setup(gx, &dpt_gradex_shm_ops);
    if (st == DPT_OK)
        return DPT_OK;
    char why[400];
    snprintf(why, sizeof why, "%s", dpt_error_message());
    if (mode == DPT_REDUCE_SHM)
        return dpt_error_set(st, "--reduce shm: %s; use --reduce mpi or auto", why);
    st = setup(gx, &dpt_gradex_mpi_ops); /* fall back, saying why */
    if (st == DPT_OK)
        snprintf(gx->desc, sizeof gx->desc, "MPI_Allreduce (no shared memory: %s)", why);
    return st;
}

dpt_status dpt_gradex_create(const dpt_comm *c, int64_t n, dpt_reduce_mode mode, dpt_gradex **out) {
    *out = NULL;
    DPT_ASSERT(n >= 0);
    dpt_gradex *gx = calloc(1, sizeof *gx);
    int ok = gx != NULL;
    dpt_comm_allreduce_min_i32(c, &ok, 1);
    if (!ok) {
        free(gx);
        return dpt_error_set(DPT_ERR_NOMEM, "gradient exchange: out of memory");
    }
    gx->c = c;
    gx->n = n;
    dpt_status st = choose(gx, mode);
    if (st != DPT_OK) {
        free(gx);
        return st;
    }
    *out = gx;
    return DPT_OK;
}

void dpt_gradex_destroy(dpt_gradex **pgx) {
    dpt_gradex *gx = *pgx;
    if (!gx)
        return;
    gx->ops->destroy(gx);
    free(gx);
    *pgx = NULL;
}

float *dpt_gradex_slot(dpt_gradex *gx, int64_t *len) {
    *len = 0;
    return gx->ops->slot ? gx->ops->slot(gx, len) : NULL;
}

dpt_reduce_mode dpt_gradex_mode(const dpt_gradex *gx) { return gx->mode; }
bool dpt_gradex_parts_differ(const dpt_gradex *gx) { return gx->ops->parts_differ; }
bool dpt_gradex_can_share(const dpt_gradex *gx) { return gx->ops->share != NULL; }
bool dpt_gradex_wants_ready(const dpt_gradex *gx) { return gx->ops->ready != NULL; }

void dpt_gradex_range(const dpt_gradex *gx, int64_t *lo, int64_t *hi) {
    *lo = gx->lo;
    *hi = gx->hi;
}

const char *dpt_gradex_describe(const dpt_gradex *gx) { return gx->desc; }

void dpt_gradex_reduce(dpt_gradex *gx, float *g) { gx->ops->reduce(gx, g); }

void dpt_gradex_finish(dpt_gradex *gx, dpt_step_stats *s) { gx->ops->finish(gx, s); }

void dpt_gradex_gather(dpt_gradex *gx, float *v) {
    if (gx->ops->gather)
        gx->ops->gather(gx, v);
}

float *dpt_gradex_share(dpt_gradex *gx, const float *v) {
    return gx->ops->share ? gx->ops->share(gx, v) : NULL;
}

void dpt_gradex_ready(dpt_gradex *gx, int64_t off, int64_t len) {
    if (gx->ops->ready)
        gx->ops->ready(gx, off, len);
}
