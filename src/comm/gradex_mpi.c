/* The MPI_Allreduce strategy of the gradient exchange: one allreduce of the whole gradient, one of
 * the step's statistics; every rank owns and updates everything. */
#include <stdio.h>

#include "comm/gradex_impl.h"

static dpt_status mpi_setup(dpt_gradex *gx) {
    gx->lo = 0;
    gx->hi = gx->n;
    snprintf(gx->desc, sizeof gx->desc, "%s",
             gx->c->size > 1 ? "MPI_Allreduce" : "none (one rank)");
    return DPT_OK;
}

static void mpi_destroy(dpt_gradex *gx) { (void)gx; }

static void mpi_reduce(dpt_gradex *gx, float *g) {
    if (gx->c->size > 1)
        dpt_comm_allreduce_sum_f32(gx->c, g, gx->n);
}

static void mpi_finish(dpt_gradex *gx, dpt_step_stats *s) {
    if (gx->c->size > 1)
        dpt_comm_allreduce_sum_f64(gx->c, s->v, DPT_STAT_N);
}

const dpt_gradex_ops dpt_gradex_mpi_ops = {
    .name = "mpi",
    .setup = mpi_setup,
    .destroy = mpi_destroy,
    .reduce = mpi_reduce,
    .finish = mpi_finish,
    .parts_differ = false,
};
