/* The MPI world: rank/size, node-local placement, reductions, error agreement.
 * Knows nothing of layers or files. Failures inside the step abort the job (MPI_Abort): a rank
 * that returns while the others wait in a collective would hang them forever. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/core.h"

static MPI_Comm g_abort_comm = MPI_COMM_WORLD;

static void abort_hook(int code) { MPI_Abort(g_abort_comm, code); }

dpt_status dpt_comm_init(dpt_comm *c, MPI_Comm parent) {
    memset(c, 0, sizeof *c);
    if (MPI_Comm_dup(parent, &c->comm) != MPI_SUCCESS)
        return dpt_error_set(DPT_ERR_INTERNAL, "MPI_Comm_dup failed");
    if (MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Comm_rank(c->comm, &c->rank) != MPI_SUCCESS ||
        MPI_Comm_size(c->comm, &c->size) != MPI_SUCCESS)
        return dpt_error_set(DPT_ERR_INTERNAL, "MPI_Comm_set_errhandler / rank / size failed");
    if (MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->node) !=
        MPI_SUCCESS)
        return dpt_error_set(DPT_ERR_INTERNAL, "MPI_Comm_split_type failed");
    if (MPI_Comm_rank(c->node, &c->node_rank) != MPI_SUCCESS ||
        MPI_Comm_size(c->node, &c->node_size) != MPI_SUCCESS)
        return dpt_error_set(DPT_ERR_INTERNAL, "MPI_Comm_rank / size of the node failed");
    g_abort_comm = c->comm;
    dpt_set_abort_hook(abort_hook);
    dpt_set_log_rank(c->rank, c->size);
    return DPT_OK;
}

void dpt_comm_deinit(dpt_comm *c) {
    /* failures here are not worth a message: the communicators are being given up */
    if (c->node != MPI_COMM_NULL && c->node)
        (void)MPI_Comm_free(&c->node);
    if (c->comm != MPI_COMM_NULL && c->comm)
        (void)MPI_Comm_free(&c->comm);
    g_abort_comm = MPI_COMM_WORLD;
}

void dpt_comm_world_start(int *argc, char ***argv, dpt_comm *c) {
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "dptrain: MPI_Init failed\n");
        exit(DPT_ERR_INTERNAL);
    }
    if (dpt_comm_init(c, MPI_COMM_WORLD) != DPT_OK) {
        fprintf(stderr, "dptrain: %s\n", dpt_error_message());
        MPI_Abort(MPI_COMM_WORLD, DPT_ERR_INTERNAL);
    }
}

void dpt_comm_world_end(dpt_comm *c) {
    dpt_comm_deinit(c);
    (void)MPI_Finalize(); /* the job's result is already decided */
}

void dpt_comm_abort(const dpt_comm *c, dpt_status code) {
    fprintf(stderr, "[rank %d/%d] dptrain: %s\n", c->rank, c->size, dpt_error_message());
    fflush(stderr);
    MPI_Abort(c->comm, (int)code);
    abort(); /* not reached */
}

void dpt_comm_check(const dpt_comm *c, int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, s, &len);
        dpt_error_set(DPT_ERR_INTERNAL, "%s failed: %s", what, s);
        dpt_comm_abort(c, DPT_ERR_INTERNAL);
    }
}

dpt_status dpt_comm_agree(const dpt_comm *c, dpt_status local) {
    int mine = (int)local, worst = 0;
    dpt_comm_check(c, MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, c->comm), "MPI_Allreduce");
    if (worst == 0)
        return DPT_OK;
    /* the lowest failing rank tells everyone its message */
    int cand = local != DPT_OK ? c->rank : c->size, first = 0;
    dpt_comm_check(c, MPI_Allreduce(&cand, &first, 1, MPI_INT, MPI_MIN, c->comm), "MPI_Allreduce");
    char msg[2048];
    int code = 0;
    if (c->rank == first) {
        snprintf(msg, sizeof msg, "%s", dpt_error_message());
        code = mine;
    }
    dpt_comm_check(c, MPI_Bcast(msg, sizeof msg, MPI_CHAR, first, c->comm), "MPI_Bcast");
    dpt_comm_check(c, MPI_Bcast(&code, 1, MPI_INT, first, c->comm), "MPI_Bcast");
    msg[sizeof msg - 1] = '\0';
    return dpt_error_set((dpt_status)code, "%s", msg);
}

static void allreduce_op(const dpt_comm *c, void *buf, int n, MPI_Datatype t, MPI_Op op) {
    dpt_comm_check(c, MPI_Allreduce(MPI_IN_PLACE, buf, n, t, op, c->comm), "MPI_Allreduce");
}

#define CHUNK (1 << 30)

void dpt_comm_allreduce_sum_f32(const dpt_comm *c, float *buf, int64_t n) {
    for (int64_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        dpt_comm_check(c, MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, c->comm),
                       "MPI_Allreduce(gradients)");
    }
}

void dpt_comm_allreduce_sum_i64(const dpt_comm *c, int64_t *buf, int64_t n) {
    for (int64_t off = 0; off < n && c->size > 1; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        allreduce_op(c, buf + off, cnt, MPI_INT64_T, MPI_SUM);
    }
}

void dpt_comm_allreduce_sum_f64(const dpt_comm *c, double *buf, int n) {
    allreduce_op(c, buf, n, MPI_DOUBLE, MPI_SUM);
}

void dpt_comm_allreduce_max_i32(const dpt_comm *c, int *buf, int n) {
    allreduce_op(c, buf, n, MPI_INT, MPI_MAX);
}
void dpt_comm_allreduce_min_i32(const dpt_comm *c, int *buf, int n) {
    allreduce_op(c, buf, n, MPI_INT, MPI_MIN);
}
void dpt_comm_allreduce_max_f64(const dpt_comm *c, double *buf, int n) {
    allreduce_op(c, buf, n, MPI_DOUBLE, MPI_MAX);
}

void dpt_comm_allgather_u64(const dpt_comm *c, uint64_t mine, uint64_t *all) {
    dpt_comm_check(c, MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, c->comm),
                   "MPI_Allgather");
}

void dpt_comm_gatherv_f32(const dpt_comm *c, const float *mine, int n_mine, float *all,
                          const int *counts, const int *displs) {
    dpt_comm_check(c,
                   MPI_Gatherv(mine, n_mine, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, c->comm),
                   "MPI_Gatherv");
}

void dpt_comm_reduce_sum_f64(const dpt_comm *c, const double *in, double *out, int n) {
    dpt_comm_check(c, MPI_Reduce(in, out, n, MPI_DOUBLE, MPI_SUM, 0, c->comm), "MPI_Reduce");
}

void dpt_comm_bcast(const dpt_comm *c, void *buf, int64_t n_bytes) {
    char *p = buf;
    for (int64_t off = 0; off < n_bytes; off += CHUNK) {
        int cnt = (int)(n_bytes - off < CHUNK ? n_bytes - off : CHUNK);
        dpt_comm_check(c, MPI_Bcast(p + off, cnt, MPI_BYTE, 0, c->comm), "MPI_Bcast");
    }
}

dpt_status dpt_comm_bcast_text(const dpt_comm *c, dpt_status st0, char **text, size_t *len) {
    int64_t n = c->rank == 0 && st0 == DPT_OK ? (int64_t)*len : -1;
    dpt_status st = dpt_comm_agree(c, c->rank == 0 ? st0 : DPT_OK);
    if (st != DPT_OK) {
        free(*text);
        *text = NULL;
        return st;
    }
    dpt_comm_bcast(c, &n, sizeof n);
    if (c->rank != 0) {
        *text = malloc((size_t)n + 1);
        if (!*text)
            dpt_comm_abort(
                c, dpt_error_set(DPT_ERR_NOMEM, "out of memory (%lld bytes)", (long long)n));
        (*text)[n] = '\0';
    }
    dpt_comm_bcast(c, *text, n);
    *len = (size_t)n;
    return DPT_OK;
}

int dpt_comm_describe(const dpt_comm *c, int threads, char *buf, size_t n) {
    char name[MPI_MAX_PROCESSOR_NAME] = {0};
    int len = 0;
    dpt_comm_check(c, MPI_Get_processor_name(name, &len), "MPI_Get_processor_name");
    char *all = NULL;
    if (c->rank == 0)
        all = calloc((size_t)c->size, MPI_MAX_PROCESSOR_NAME);
    int th = threads, *ths = NULL;
    if (c->rank == 0)
        ths = calloc((size_t)c->size, sizeof(int));
    dpt_comm_check(c,
                   MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME,
                              MPI_CHAR, 0, c->comm),
                   "MPI_Gather(host names)");
    dpt_comm_check(c, MPI_Gather(&th, 1, MPI_INT, ths, 1, MPI_INT, 0, c->comm),
                   "MPI_Gather(threads)");
    int w = 0;
    if (c->rank == 0 && all && ths) {
        /* hosts in order of first appearance, with their rank counts */
        int hosts = 0, min_t = ths[0], max_t = ths[0];
        char list[1024] = "";
        size_t used = 0;
        for (int r = 0; r < c->size; r++) {
            if (ths[r] < min_t)
                min_t = ths[r];
            if (ths[r] > max_t)
                max_t = ths[r];
            const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
            bool seen = false;
            for (int q = 0; q < r && !seen; q++)
                seen = !strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME);
            if (seen)
                continue;
            int cnt = 0;
            for (int q = r; q < c->size; q++)
                cnt += !strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME);
            hosts++;
            if (used < sizeof list - 64)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s: %d",
                                         hosts > 1 ? ", " : "", h, cnt);
        }
        if (min_t == max_t)
            w = snprintf(buf, n,
                         "placement: %d rank%s on %d host%s (%s), %d OpenBLAS thread%s per rank",
                         c->size, c->size > 1 ? "s" : "", hosts, hosts > 1 ? "s" : "", list, min_t,
                         min_t > 1 ? "s" : "");
        else
            w = snprintf(
                buf, n, "placement: %d rank%s on %d host%s (%s), %d-%d OpenBLAS threads per rank",
                c->size, c->size > 1 ? "s" : "", hosts, hosts > 1 ? "s" : "", list, min_t, max_t);
    }
    free(all);
    free(ths);
    return w;
}
