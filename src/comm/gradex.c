/* The gradient exchange of one training step: a reduce-scatter and an allgather through a
 * node-shared MPI-3 window (SHM), MPI_Allreduce between nodes, or one MPI_Allreduce of everything
 * (MPI). See include/dptrain/comm.h for the protocol.
 *
 * Window layout (one segment per node rank, page-aligned, "alloc_shared_noncontig"):
 *   every rank:  its slot, `stride` floats (the gradient, then the extras)
 *   node rank 0: also the control block (the barrier's counter and generation, one flag per rank,
 *                each on its own cache line), two buffers of n floats used in turn by
 *                dpt_gradex_gather so that a gather never overwrites a buffer a slower rank may
 *                still be copying from (the barrier of the next gather orders them), and the
 *                node's shared weights (n floats, dpt_gradex_share).
 * Races, step by step: a rank reads another's slot only between the barriers of reduce and
 * finish, and the owner rewrites its slot (zero_grads, backward) only after gather's barrier. */
#include <sched.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/core.h"

#define LINE 64            /* bytes in a cache line */
#define ALIGN_F (LINE / 4) /* floats in a cache line: parts start on a line */
#define SPINS 2000         /* busy polls before the barrier starts yielding the core */
#define SUM_BLOCK 1024     /* floats summed per block (4 KiB per tree level, in L1) */

typedef struct {
    _Atomic uint32_t count;
    char pad0[LINE - sizeof(uint32_t)];
    _Atomic uint32_t gen;
    char pad1[LINE - sizeof(uint32_t)];
} ctl_head;

struct dpt_gradex {
    const dpt_comm *c;
    dpt_reduce_mode mode;
    int64_t n;
    int extra;
    int64_t lo, hi; /* this rank's part */
    /* SHM */
    MPI_Win win;
    bool have_win;
    int k, me, nodes; /* ranks on the node, node rank, nodes */
    int64_t stride;   /* floats per slot */
    float **slots;    /* (k) every node rank's slot */
    ctl_head *ctl;
    int32_t *flags; /* (k * ALIGN_F): flag r at flags[r * ALIGN_F] */
    float *wbuf[2];
    int wsel;
    float *shared;               /* (n) the node's one copy of the weights (dpt_gradex_share) */
    float (*scratch)[SUM_BLOCK]; /* the tree's blocks: the sum, then one per level below the top */
    MPI_Comm cross; /* the ranks with this node rank, one per node; MPI_COMM_NULL on one node */
    char desc[512];
};

static int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

/* part i of k over [0, n), boundaries on cache lines */
static int64_t part_start(int64_t n, int k, int i) {
    int64_t blocks = (n + ALIGN_F - 1) / ALIGN_F, b = blocks * i / k;
    return b * ALIGN_F < n ? b * ALIGN_F : n;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A counter barrier among the node's ranks, in the window. The last to arrive resets the counter
 * and advances the generation (release); the others wait for it (acquire), so every store made
 * before the barrier by any rank is visible after it. */
static void node_barrier(dpt_gradex *gx) {
    ctl_head *h = gx->ctl;
    uint32_t gen = atomic_load_explicit(&h->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&h->count, 1, memory_order_acq_rel) == (uint32_t)gx->k - 1) {
        atomic_store_explicit(&h->count, 0, memory_order_relaxed);
        atomic_store_explicit(&h->gen, gen + 1, memory_order_release);
        return;
    }
    for (unsigned i = 0; atomic_load_explicit(&h->gen, memory_order_acquire) == gen; i++) {
        if (i < SPINS)
            cpu_relax();
        else
            sched_yield(); /* more ranks than cores: let the one we wait for run */
    }
}

static dpt_status setup_shm(dpt_gradex *gx) {
    const dpt_comm *c = gx->c;
    gx->k = c->node_size;
    gx->me = c->node_rank;
    gx->nodes = c->size / c->node_size;
    gx->stride = round_up(gx->n + gx->extra, ALIGN_F);
    int64_t ctl_bytes = (int64_t)sizeof(ctl_head) + (int64_t)gx->k * LINE;
    /* node rank 0's segment also holds the control block and the three weight buffers */
    int64_t head_bytes = ctl_bytes + 3 * round_up(gx->n, ALIGN_F) * 4;
    int64_t bytes = gx->stride * 4 + (gx->me == 0 ? head_bytes : 0);
    /* Open MPI backs the window with one file of the node's total size (segments page-aligned,
     * plus slack): under a file-size limit (ulimit -f, set by some batch systems) its ftruncate
     * fails and the ranks would wait on each other forever. Check first, on every rank. */
    int64_t total = (int64_t)gx->k * (gx->stride * 4 + 65536) + head_bytes + (1 << 20);
    /* ... and puts that file in /dev/shm (osc_sm_backing_directory): a tmpfs too small for it
     * (containers often get 64 MiB) would end in SIGBUS when the pages are touched */
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    if (!dir || !*dir)
        dir = "/dev/shm";
    struct rlimit rl;
    struct statvfs vs;
    int why = 0; /* 1: ulimit -f, 2: no room in dir */
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (int64_t)rl.rlim_cur < total)
        why = 1;
    else if (statvfs(dir, &vs) == 0 &&
             (int64_t)vs.f_bavail * (int64_t)vs.f_frsize < total + (16 << 20))
        why = 2;
    int worst = 0;
    MPI_Allreduce(&why, &worst, 1, MPI_INT, MPI_MAX, c->comm);
    if (worst == 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "the file-size limit (ulimit -f) is below the %lld bytes of the "
                             "node's shared-memory window",
                             (long long)total);
    if (worst == 2)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s has less room than the %lld MiB of the node's shared-memory "
                             "window (Open MPI's osc_sm_backing_directory)",
                             dir, (long long)(total >> 20) + 16);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, 4, info, c->node, &base, &gx->win);
    MPI_Info_free(&info);
    int ok = rc == MPI_SUCCESS, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c->comm);
    if (!all_ok) {
        if (ok)
            MPI_Win_free(&gx->win);
        return dpt_error_set(DPT_ERR_NOMEM, "MPI_Win_allocate_shared of %lld bytes per rank failed",
                             (long long)bytes);
    }
    gx->have_win = true;
    int levels = 1; /* the tree over k ranks is ceil(log2 k) deep; one block more for the sum */
    while ((1 << (levels - 1)) < gx->k)
        levels++;
    gx->slots = calloc((size_t)gx->k, sizeof *gx->slots);
    gx->scratch = malloc(sizeof *gx->scratch * (size_t)(levels + 1));
    if (!gx->slots || !gx->scratch)
        dpt_comm_abort(c, dpt_error_set(DPT_ERR_NOMEM, "gradient exchange: out of memory"));
    for (int r = 0; r < gx->k; r++) {
        MPI_Aint size = 0;
        int disp = 0;
        void *p = NULL;
        dpt_comm_check(c, MPI_Win_shared_query(gx->win, r, &size, &disp, &p),
                       "MPI_Win_shared_query");
        gx->slots[r] = p;
    }
    char *head = (char *)(gx->slots[0] + gx->stride);
    gx->ctl = (ctl_head *)head;
    gx->flags = (int32_t *)(head + sizeof(ctl_head));
    gx->wbuf[0] = (float *)(head + ctl_bytes);
    gx->wbuf[1] = gx->wbuf[0] + round_up(gx->n, ALIGN_F);
    gx->shared = gx->wbuf[1] + round_up(gx->n, ALIGN_F);
    memset(gx->slots[gx->me], 0, (size_t)bytes);
    if (gx->me == 0) {
        atomic_init(&gx->ctl->count, 0);
        atomic_init(&gx->ctl->gen, 0);
    }
    dpt_comm_check(c, MPI_Win_lock_all(MPI_MODE_NOCHECK, gx->win), "MPI_Win_lock_all");
    dpt_comm_check(c, MPI_Barrier(c->node), "MPI_Barrier");
    gx->cross = MPI_COMM_NULL;
    if (gx->nodes > 1)
        dpt_comm_check(c, MPI_Comm_split(c->comm, gx->me, c->rank, &gx->cross), "MPI_Comm_split");
    gx->lo = part_start(gx->n, gx->k, gx->me);
    gx->hi = part_start(gx->n, gx->k, gx->me + 1);
    if (gx->nodes > 1)
        snprintf(gx->desc, sizeof gx->desc,
                 "shared memory (%d ranks per node), MPI_Allreduce between %d nodes", gx->k,
                 gx->nodes);
    else
        snprintf(gx->desc, sizeof gx->desc, "shared memory (%d ranks on the node)", gx->k);
    return DPT_OK;
}

dpt_status dpt_gradex_create(const dpt_comm *c, int64_t n, int extra, dpt_reduce_mode mode,
                             dpt_gradex **out) {
    *out = NULL;
    DPT_ASSERT(n >= 0 && extra >= 0);
    dpt_gradex *gx = calloc(1, sizeof *gx);
    int ok = gx != NULL, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c->comm);
    if (!all_ok) {
        free(gx);
        return dpt_error_set(DPT_ERR_NOMEM, "gradient exchange: out of memory");
    }
    gx->c = c;
    gx->n = n;
    gx->extra = extra;
    gx->cross = MPI_COMM_NULL;
    /* the same number of ranks on every node? */
    int mm[2] = {c->node_size, -c->node_size}, ext[2];
    MPI_Allreduce(mm, ext, 2, MPI_INT, MPI_MIN, c->comm);
    bool even = ext[0] == -ext[1];
    dpt_status st = DPT_OK;
    if (mode == DPT_REDUCE_SHM && !even)
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "--reduce shm: the nodes have different numbers of ranks (%d to %d); "
                           "use --reduce mpi or auto",
                           ext[0], -ext[1]);
    else if (mode == DPT_REDUCE_SHM || (mode == DPT_REDUCE_AUTO && even && c->node_size > 1)) {
        st = setup_shm(gx);
        if (st == DPT_OK)
            gx->mode = DPT_REDUCE_SHM;
        else if (mode == DPT_REDUCE_AUTO) { /* fall back to MPI_Allreduce, saying why */
            snprintf(gx->desc, sizeof gx->desc, "MPI_Allreduce (no shared memory: %s)",
                     dpt_error_message());
            st = DPT_OK;
        } else {
            char why[400];
            snprintf(why, sizeof why, "%s", dpt_error_message());
            st = dpt_error_set(st, "--reduce shm: %s; use --reduce mpi or auto", why);
        }
    }
    if (st != DPT_OK) {
        dpt_gradex_destroy(&gx);
        return st;
    }
    if (gx->mode != DPT_REDUCE_SHM) {
        gx->mode = DPT_REDUCE_MPI;
        gx->lo = 0;
        gx->hi = n;
        if (!gx->desc[0])
            snprintf(gx->desc, sizeof gx->desc, "%s",
                     c->size > 1 ? "MPI_Allreduce" : "none (one rank)");
    }
    *out = gx;
    return DPT_OK;
}

void dpt_gradex_destroy(dpt_gradex **pgx) {
    dpt_gradex *gx = *pgx;
    if (!gx)
        return;
    if (gx->have_win) {
        MPI_Win_unlock_all(gx->win);
        MPI_Win_free(&gx->win);
    }
    if (gx->cross != MPI_COMM_NULL)
        MPI_Comm_free(&gx->cross);
    free(gx->slots);
    free(gx->scratch);
    free(gx);
    *pgx = NULL;
}

float *dpt_gradex_slot(dpt_gradex *gx) {
    return gx->mode == DPT_REDUCE_SHM ? gx->slots[gx->me] : NULL;
}

dpt_reduce_mode dpt_gradex_mode(const dpt_gradex *gx) { return gx->mode; }

void dpt_gradex_range(const dpt_gradex *gx, int64_t *lo, int64_t *hi) {
    *lo = gx->lo;
    *hi = gx->hi;
}

const char *dpt_gradex_describe(const dpt_gradex *gx) { return gx->desc; }

/* out (m) = the sum of slots [r0, r1) at offset b, as a fixed pairwise tree over the ranks:
 * sum(r0, r1) = sum(r0, mid) + sum(mid, r1), mid = r0 + (r1 - r0) / 2. The tree depends only on
 * the rank count, so whoever sums a part gets the same bits; and with 2^a ranks per node on 2^b
 * nodes the per-node sums are exactly its subtrees, so 4 ranks on one node and 2 x 2 on two nodes
 * (MPI adding the two node sums) give the same bits (tests/cli/test_netns.sh). tmp: one block per
 * tree level below this one. */
static void tree_sum(float *const *slots, int r0, int r1, int64_t b, int64_t m, float *restrict out,
                     float (*tmp)[SUM_BLOCK]) {
    if (r1 - r0 == 1) {
        memcpy(out, slots[r0] + b, (size_t)m * sizeof(float));
        return;
    }
    if (r1 - r0 == 2) {
        const float *restrict x = slots[r0] + b, *restrict y = slots[r0 + 1] + b;
        for (int64_t i = 0; i < m; i++)
            out[i] = x[i] + y[i];
        return;
    }
    int mid = r0 + (r1 - r0) / 2;
    tree_sum(slots, r0, mid, b, m, out, tmp + 1);
    float *restrict right = tmp[0];
    tree_sum(slots, mid, r1, b, m, right, tmp + 1);
    for (int64_t i = 0; i < m; i++)
        out[i] += right[i];
}

/* dst[lo, hi) = the tree sum of the k slots; dst may be one of the slots (blocks are summed into
 * scratch first, and no other rank reads this range of it) */
static void sum_slots(float *const *slots, int k, float *dst, int64_t lo, int64_t hi,
                      float (*scratch)[SUM_BLOCK]) {
    for (int64_t b = lo; b < hi; b += SUM_BLOCK) {
        int64_t m = hi - b < SUM_BLOCK ? hi - b : SUM_BLOCK;
        tree_sum(slots, 0, k, b, m, scratch[0], scratch + 1);
        memcpy(dst + b, scratch[0], (size_t)m * sizeof(float));
    }
}

void dpt_gradex_reduce(dpt_gradex *gx, float *g) {
    const dpt_comm *c = gx->c;
    if (gx->mode == DPT_REDUCE_MPI) {
        if (c->size > 1)
            dpt_comm_allreduce_sum_f32(c, g, gx->n + gx->extra);
        return;
    }
    DPT_ASSERT(g == gx->slots[gx->me]);
    node_barrier(gx); /* every slot of the node is written */
    /* the last part also sums the extras, which follow it */
    int64_t hi = gx->me == gx->k - 1 ? gx->n + gx->extra : gx->hi;
    sum_slots(gx->slots, gx->k, g, gx->lo, hi, gx->scratch);
    for (int64_t off = gx->lo; gx->nodes > 1 && off < hi; off += 1 << 30) {
        int cnt = (int)(hi - off < (1 << 30) ? hi - off : (1 << 30));
        dpt_comm_check(c, MPI_Allreduce(MPI_IN_PLACE, g + off, cnt, MPI_FLOAT, MPI_SUM, gx->cross),
                       "MPI_Allreduce(gradients between nodes)");
    }
}

int dpt_gradex_finish(dpt_gradex *gx, float *g, int flag) {
    if (gx->mode == DPT_REDUCE_MPI)
        return flag;
    gx->flags[gx->me * ALIGN_F] = flag;
    node_barrier(gx); /* every part is summed and scanned */
    int any = 0;
    for (int r = 0; r < gx->k; r++)
        any |= gx->flags[r * ALIGN_F];
    const float *owner = gx->slots[gx->k - 1];
    if (owner != g)
        memcpy(g + gx->n, owner + gx->n, (size_t)gx->extra * sizeof(float));
    if (any)
        node_barrier(gx); /* no gather follows (the batch is skipped): the owner must not
                             rewrite its slot before everyone has its extras */
    return any;
}

void dpt_gradex_gather(dpt_gradex *gx, float *v) {
    if (gx->mode == DPT_REDUCE_MPI)
        return;
    if (v == gx->shared) { /* updated in place: only wait for every part */
        node_barrier(gx);
        return;
    }
    float *w = gx->wbuf[gx->wsel];
    gx->wsel ^= 1;
    memcpy(w + gx->lo, v + gx->lo, (size_t)(gx->hi - gx->lo) * sizeof(float));
    node_barrier(gx); /* every part is in w */
    memcpy(v, w, (size_t)gx->lo * sizeof(float));
    memcpy(v + gx->hi, w + gx->hi, (size_t)(gx->n - gx->hi) * sizeof(float));
}

float *dpt_gradex_share(dpt_gradex *gx, const float *v) {
    if (gx->mode == DPT_REDUCE_MPI)
        return NULL;
    memcpy(gx->shared + gx->lo, v + gx->lo, (size_t)(gx->hi - gx->lo) * sizeof(float));
    node_barrier(gx);
    return gx->shared;
}
