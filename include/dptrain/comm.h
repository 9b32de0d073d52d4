/* dptrain — the MPI world: rank and size, node-local placement, gradient allreduce, error
 * agreement and reductions. Knows nothing of layers. Each function says whether it is collective.
 */
#ifndef DPTRAIN_COMM_H
#define DPTRAIN_COMM_H

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

/* Local: prints "[rank r/N] dptrain: <message>" to stderr and MPI_Aborts the job with `code`. */
void dpt_comm_abort(const dpt_comm *c, dpt_status code) __attribute__((noreturn));

#endif
