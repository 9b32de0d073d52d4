/* dptrain — the MPI world: rank and size, node-local placement, gradient allreduce, error
 * agreement and reductions. Knows nothing of layers. Each function says whether it is collective.
 */
#ifndef DPTRAIN_COMM_H
#define DPTRAIN_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "dptrain/status.h"

typedef struct {
    MPI_Comm comm; /* duplicated from the caller's communicator; owned */
    int rank, size;
    MPI_Comm node; /* ranks on this node (MPI_COMM_TYPE_SHARED); owned */
    int node_rank, node_size;
} dpt_comm;

/* The process's MPI life, for programs (the CLI): MPI_Init, then dpt_comm_init on
 * MPI_COMM_WORLD; on failure prints the reason and ends the job. dpt_comm_world_end:
 * dpt_comm_deinit, MPI_Finalize. Library callers bring their own MPI and use dpt_comm_init. */
void dpt_comm_world_start(int *argc, char ***argv, dpt_comm *c);
void dpt_comm_world_end(dpt_comm *c);

/* Collective over `parent`. Duplicates it, installs the MPI_Abort assertion hook and the log rank.
 */
DPT_NODISCARD dpt_status dpt_comm_init(dpt_comm *c, MPI_Comm parent);
void dpt_comm_deinit(dpt_comm *c); /* collective */

/* Collective. All ranks learn the worst status; the message of the lowest failing rank is copied
 * to every rank (so rank 0 can print it). Returns DPT_OK only if every rank passed DPT_OK. */
DPT_NODISCARD dpt_status dpt_comm_agree(const dpt_comm *c, dpt_status local);

/* Collective: in-place sum of n floats across ranks (chunked so n may exceed INT_MAX).
 * On MPI failure it aborts the job (it is called inside the step). */
void dpt_comm_allreduce_sum_f32(const dpt_comm *c, float *buf, int64_t n);
/* Collective: in-place sum of n doubles. Aborts on MPI failure. */
void dpt_comm_allreduce_sum_f64(const dpt_comm *c, double *buf, int n);
/* Collective: in-place element-wise max / min of n ints or doubles. Abort on MPI failure. */
void dpt_comm_allreduce_max_i32(const dpt_comm *c, int *buf, int n);
void dpt_comm_allreduce_min_i32(const dpt_comm *c, int *buf, int n);
void dpt_comm_allreduce_max_f64(const dpt_comm *c, double *buf, int n);
/* Collective: all[r] = rank r's `mine` on every rank (all: size entries). Aborts on failure. */
void dpt_comm_allgather_u64(const dpt_comm *c, uint64_t mine, uint64_t *all);
/* Collective: rank 0 gets every rank's n_mine floats at all + displs[r] (counts, displs, all
 * only read on rank 0). Aborts on failure. */
void dpt_comm_gatherv_f32(const dpt_comm *c, const float *mine, int n_mine, float *all,
                          const int *counts, const int *displs);
/* Collective: out (rank 0 only) = the sum over ranks of in (n doubles). Aborts on failure. */
void dpt_comm_reduce_sum_f64(const dpt_comm *c, const double *in, double *out, int n);
/* Collective: in-place exact sum of n int64 across ranks (chunked). Aborts on MPI failure. */
void dpt_comm_allreduce_sum_i64(const dpt_comm *c, int64_t *buf, int64_t n);

/* ---- exact sums (exactsum.c): the same bits however the summands are spread over the ranks --
 * Collective. out[i] = sum over every rank of sum over v < nv of vecs[v][i], i in [0, n), exact
 * in fixed point per block of 256 elements (the grid agreed from the largest exponent of the
 * block over all summands), rounded once to float; `total` is the number of vectors over all
 * ranks (the same on every rank). A NaN / Inf in a block makes it NaN. Scratch: acc (n int64),
 * exps (ceil(n / 256) ints). Local vectors nv may be 0. */
void dpt_comm_exact_sum_f32(const dpt_comm *c, const float *const *vecs, int nv, int64_t n,
                            int total, float *out, int64_t *acc, int *exps);
/* Collective. The same for nv rows of n doubles (vals row-major, nv x n), one grid per column:
 * out (n) on every rank. */
void dpt_comm_exact_sum_f64(const dpt_comm *c, const double *vals, int nv, int n, int total,
                            double *out);

/* Collective: broadcast n bytes from rank 0 (chunked). Aborts on MPI failure. */
void dpt_comm_bcast(const dpt_comm *c, void *buf, int64_t n_bytes);

/* Collective: rank 0's text (*text, *len, read by rank 0 with status `st0`; other ranks pass
 * NULL / DPT_OK) reaches every rank, or every rank gets rank 0's error. On success every rank owns
 * a NUL-terminated heap copy in *text (free()); on failure *text is NULL. */
DPT_NODISCARD dpt_status dpt_comm_bcast_text(const dpt_comm *c, dpt_status st0, char **text,
                                             size_t *len);

/* Collective: gathers host names and thread counts; rank 0 gets one line in buf ("placement: 4
 * ranks on 2 hosts (a: 2, b: 2), 1 OpenBLAS thread per rank"). Returns chars written (0 elsewhere).
 */
int dpt_comm_describe(const dpt_comm *c, int threads, char *buf, size_t n);

/* ---- the statistics of one training step ------------------------------------------------
 * One named layout, a buffer of its own (never floats riding inside the gradient): every rank
 * fills its own, dpt_gradex_finish sums them over the ranks in a fixed order. */
typedef enum {
    DPT_STAT_LOSS = 0,  /* sum of the per-sample losses */
    DPT_STAT_CORRECT,   /* correct predictions (Keras "accuracy") */
    DPT_STAT_COUNT,     /* samples */
    DPT_STAT_SIGNAL,    /* ranks that saw a preemption signal */
    DPT_STAT_NONFINITE, /* ranks whose part of the summed gradient is not finite */
    DPT_STAT_N
} dpt_stat;
typedef struct {
    double v[DPT_STAT_N];
} dpt_step_stats;

/* ---- the gradient exchange of a training step (gradex*.c) -----------------------------------
 * Sums a vector of n floats (the gradient) across ranks, as one of two strategies:
 *   SHM: ranks on one node write their gradient into their slot of an MPI-3 shared window (the
 *        model's gradient buffer IS that slot: no copy); each rank then sums its own 1/k of the
 *        vector over the k slots (a reduce-scatter through memory), in a fixed pairwise tree, so
 *        every bit is the same whoever owns the part; across nodes (equal ranks per node) the
 *        parts are summed with MPI_Allreduce among the ranks with the same node rank. Each rank
 *        updates only its part of the weights (dpt_optim_step_range) and dpt_gradex_gather
 *        shares the parts through the window (an allgather through memory). Synchronization is a
 *        counter barrier in the window (spins briefly, then yields the core).
 *   MPI: one MPI_Allreduce of the whole vector; every rank owns everything and updates all of it.
 * AUTO picks SHM when more than one rank shares a node and every node has as many ranks, else
 * MPI. The trainer asks capabilities, never the mode: dpt_gradex_parts_differ (the ranks own
 * different parts: scan your part, agree on the verdict) and dpt_gradex_can_share (one copy of
 * the weights per node). A step is: dpt_gradex_reduce, the trainer's scan of its part,
 * dpt_gradex_finish (sums the step's statistics, the scan's verdict among them), the update of
 * the part, dpt_gradex_gather. All are collective over the dpt_comm given at create, in that
 * order on every rank. */
typedef enum { DPT_REDUCE_AUTO = 0, DPT_REDUCE_SHM, DPT_REDUCE_MPI } dpt_reduce_mode;
typedef struct dpt_gradex dpt_gradex;

/* Collective. n: the vector's length. */
DPT_NODISCARD dpt_status dpt_gradex_create(const dpt_comm *c, int64_t n, dpt_reduce_mode mode,
                                           dpt_gradex **out);
void dpt_gradex_destroy(dpt_gradex **gx); /* collective; NULL allowed */
/* This rank's slot, where the gradient must be written (dpt_model_bind_grads with *len, >= n,
 * 64-byte aligned, zeroed), or NULL when the strategy sums the caller's own buffer (*len 0). */
float *dpt_gradex_slot(dpt_gradex *gx, int64_t *len);
/* The strategy in use (SHM or MPI; for descriptions and tests: the trainer asks capabilities). */
dpt_reduce_mode dpt_gradex_mode(const dpt_gradex *gx);
/* true: after reduce each rank owns a different part [lo, hi) (scan it, update only it). */
bool dpt_gradex_parts_differ(const dpt_gradex *gx);
/* true: dpt_gradex_share gives the node one copy of the weights. */
bool dpt_gradex_can_share(const dpt_gradex *gx);
/* true: the strategy starts work early from dpt_gradex_ready (the model's per-layer hook). */
bool dpt_gradex_wants_ready(const dpt_gradex *gx);
/* [lo, hi): the part of the vector this rank owns after dpt_gradex_reduce ([0, n) with MPI). */
void dpt_gradex_range(const dpt_gradex *gx, int64_t *lo, int64_t *hi);
/* One line: "shared memory, 4 ranks per node x 2 nodes (MPI between nodes)" or "MPI_Allreduce". */
const char *dpt_gradex_describe(const dpt_gradex *gx);
/* Local: the gradients [off, off + len) of this step are final (called in reverse layer order
 * from the model's backward); strategies that overlap start on them. No-op otherwise. */
void dpt_gradex_ready(dpt_gradex *gx, int64_t off, int64_t len);
/* Collective. g: this rank's vector (its slot when there is one). Afterwards g[lo, hi) holds the
 * sum over all ranks (MPI: all of g). */
void dpt_gradex_reduce(dpt_gradex *gx, float *g);
/* Collective. s: this rank's statistics in, the sum over every rank out (the same bits on every
 * rank). */
void dpt_gradex_finish(dpt_gradex *gx, dpt_step_stats *s);
/* Collective. Every rank's part [lo, hi) of v (n floats) reaches every rank (MPI: nothing to do).
 * Used for the weights after the sharded update, and for the optimizer's state slots before a
 * checkpoint. */
void dpt_gradex_gather(dpt_gradex *gx, float *v);
/* Collective. SHM: copies v (n floats, the same on every rank) into the node's one shared copy of
 * the weights, each rank its part, and returns it: bound as the model's parameters, every rank
 * reads it, each updates its part in place, and dpt_gradex_gather(shared) is then only a wait.
 * The caller must not write outside its part while it is bound. NULL when it cannot share. */
float *dpt_gradex_share(dpt_gradex *gx, const float *v);

/* Local: if rc (an MPI return code) is not MPI_SUCCESS, "<what> failed: <MPI's message>" ends the
 * job as dpt_comm_abort with DPT_ERR_INTERNAL (for calls inside the step: a rank that returned
 * while the others wait in a collective would hang them). */
void dpt_comm_check(const dpt_comm *c, int rc, const char *what);

/* Local: prints "[rank r/N] dptrain: <message>" to stderr and MPI_Aborts the job with `code`. */
void dpt_comm_abort(const dpt_comm *c, dpt_status code) __attribute__((noreturn));

#endif
