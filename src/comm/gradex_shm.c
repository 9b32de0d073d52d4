/* The shared-memory strategy of the gradient exchange: a reduce-scatter and an allgather through
 * a node-shared MPI-3 window, MPI_Allreduce between nodes. See include/dptrain/comm.h.
 *
 * Window layout (one segment per node rank, page-aligned, "alloc_shared_noncontig"):
 *   every rank:  its slot, `stride` floats (the gradient and nothing else)
 *   node rank 0: also the control block (the barrier's counter and generation, then one cache
 *                line per rank holding its dpt_step_stats), two buffers of n floats used in turn
 *                by gather so that a gather never overwrites a buffer a slower rank may still be
 *                copying from (the barrier of the next gather orders them), and the node's
 *                shared weights (n floats, share).
 * Races, step by step: a rank reads another's slot only between the barriers of reduce and
 * finish, and the owner rewrites its slot (zero_grads, backward) only after finish's barrier; a
 * rank reads the statistics lines after finish's barrier and their owners rewrite them only after
 * the next reduce's barrier. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>

#include "comm/gradex_impl.h"
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

typedef struct {
    MPI_Win win;
    bool have_win;
    int k, me, nodes; /* ranks on the node, node rank, nodes */
    int64_t stride;   /* floats per slot */
    float **slots;    /* (k) every node rank's slot */
    ctl_head *ctl;
    char *stats; /* (k lines): rank r's dpt_step_stats at stats + r * LINE */
    float *wbuf[2];
    int wsel;
    float *shared;               /* (n) the node's one copy of the weights (share) */
    float (*scratch)[SUM_BLOCK]; /* the tree's blocks: the sum, then one per level below the top */
    MPI_Comm cross; /* the ranks with this node rank, one per node; MPI_COMM_NULL on one node */
} shm_state;

_Static_assert(sizeof(dpt_step_stats) <= 64, "one cache line of statistics per rank");

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
static void node_barrier(shm_state *s) {
    ctl_head *h = s->ctl;
    uint32_t gen = atomic_load_explicit(&h->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&h->count, 1, memory_order_acq_rel) == (uint32_t)s->k - 1) {
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

/* Refuses a window Open MPI could not back, with the reason (DPT_ERR_CONFIG). Open MPI backs the
 * window with one file of the node's total size (segments page-aligned, plus slack): under a
 * file-size limit (ulimit -f, set by some batch systems) its ftruncate fails and the ranks would
 * wait on each other forever; and it puts that file in /dev/shm (osc_sm_backing_directory): a
 * tmpfs too small for it (containers often get 64 MiB) would end in SIGBUS when the pages are
 * touched. Checked first, on every rank. Collective. */
static dpt_status check_room(const dpt_comm *c, int64_t total) {
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
    dpt_comm_allreduce_max_i32(c, &why, 1);
    if (why == 1)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "the file-size limit (ulimit -f) is below the %lld bytes of the "
                             "node's shared-memory window",
                             (long long)total);
    if (why == 2)
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s has less room than the %lld MiB of the node's shared-memory "
                             "window (Open MPI's osc_sm_backing_directory)",
                             dir, (long long)(total >> 20) + 16);
    return DPT_OK;
}

/* Points slots, control block, statistics lines and weight buffers into the window. */
static void map_window(const dpt_comm *c, shm_state *s, int64_t n, int64_t ctl_bytes) {
    for (int r = 0; r < s->k; r++) {
        MPI_Aint size = 0;
        int disp = 0;
        void *p = NULL;
        dpt_comm_check(c, MPI_Win_shared_query(s->win, r, &size, &disp, &p),
                       "MPI_Win_shared_query");
        s->slots[r] = p;
    }
    char *head = (char *)(s->slots[0] + s->stride);
    s->ctl = (ctl_head *)head;
    s->stats = head + sizeof(ctl_head);
    s->wbuf[0] = (float *)(head + ctl_bytes);
    s->wbuf[1] = s->wbuf[0] + round_up(n, ALIGN_F);
    s->shared = s->wbuf[1] + round_up(n, ALIGN_F);
}

static dpt_status shm_alloc(dpt_gradex *gx, shm_state *s) {
    const dpt_comm *c = gx->c;
    s->k = c->node_size;
    s->me = c->node_rank;
    s->nodes = c->size / c->node_size;
    s->stride = round_up(gx->n, ALIGN_F);
    s->cross = MPI_COMM_NULL;
    int64_t ctl_bytes = (int64_t)sizeof(ctl_head) + (int64_t)s->k * LINE;
    /* node rank 0's segment also holds the control block and the three weight buffers */
    int64_t head_bytes = ctl_bytes + 3 * round_up(gx->n, ALIGN_F) * 4;
    int64_t bytes = s->stride * 4 + (s->me == 0 ? head_bytes : 0);
    dpt_status st = check_room(c, (int64_t)s->k * (s->stride * 4 + 65536) + head_bytes + (1 << 20));
    if (st != DPT_OK)
        return st;
    MPI_Info info;
    dpt_comm_check(c, MPI_Info_create(&info), "MPI_Info_create");
    dpt_comm_check(c, MPI_Info_set(info, "alloc_shared_noncontig", "true"), "MPI_Info_set");
    void *base = NULL;
    int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, 4, info, c->node, &base, &s->win);
    dpt_comm_check(c, MPI_Info_free(&info), "MPI_Info_free");
    int ok = rc == MPI_SUCCESS, all_ok = ok;
    dpt_comm_allreduce_min_i32(c, &all_ok, 1);
    if (!all_ok) {
        if (ok)
            dpt_comm_check(c, MPI_Win_free(&s->win), "MPI_Win_free");
        return dpt_error_set(DPT_ERR_NOMEM, "MPI_Win_allocate_shared of %lld bytes per rank failed",
                             (long long)bytes);
    }
    s->have_win = true;
    int levels = 1; /* the tree over k ranks is ceil(log2 k) deep; one block more for the sum */
    while ((1 << (levels - 1)) < s->k)
        levels++;
    s->slots = calloc((size_t)s->k, sizeof *s->slots);
    s->scratch = malloc(sizeof *s->scratch * (size_t)(levels + 1));
    if (!s->slots || !s->scratch)
        dpt_comm_abort(c, dpt_error_set(DPT_ERR_NOMEM, "gradient exchange: out of memory"));
    map_window(c, s, gx->n, ctl_bytes);
    memset(s->slots[s->me], 0, (size_t)bytes);
    if (s->me == 0) {
        atomic_init(&s->ctl->count, 0);
        atomic_init(&s->ctl->gen, 0);
    }
    dpt_comm_check(c, MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win), "MPI_Win_lock_all");
    dpt_comm_check(c, MPI_Barrier(c->node), "MPI_Barrier");
    if (s->nodes > 1)
        dpt_comm_check(c, MPI_Comm_split(c->comm, s->me, c->rank, &s->cross), "MPI_Comm_split");
    return DPT_OK;
}

static void shm_destroy(dpt_gradex *gx) {
    shm_state *s = gx->impl;
    if (!s)
        return;
    if (s->have_win) {
        dpt_comm_check(gx->c, MPI_Win_unlock_all(s->win), "MPI_Win_unlock_all");
        dpt_comm_check(gx->c, MPI_Win_free(&s->win), "MPI_Win_free");
    }
    if (s->cross != MPI_COMM_NULL)
        dpt_comm_check(gx->c, MPI_Comm_free(&s->cross), "MPI_Comm_free");
    free(s->slots);
    free(s->scratch);
    free(s);
    gx->impl = NULL;
}

static dpt_status shm_setup(dpt_gradex *gx) {
    shm_state *s = calloc(1, sizeof *s);
    if (!s)
        dpt_comm_abort(gx->c, dpt_error_set(DPT_ERR_NOMEM, "gradient exchange: out of memory"));
    gx->impl = s;
    dpt_status st = shm_alloc(gx, s);
    if (st != DPT_OK) {
        shm_destroy(gx);
        return st;
    }
    gx->lo = part_start(gx->n, s->k, s->me);
    gx->hi = part_start(gx->n, s->k, s->me + 1);
    if (s->nodes > 1)
        snprintf(gx->desc, sizeof gx->desc,
                 "shared memory (%d ranks per node), MPI_Allreduce between %d nodes", s->k,
                 s->nodes);
    else
        snprintf(gx->desc, sizeof gx->desc, "shared memory (%d ranks on the node)", s->k);
    return DPT_OK;
}

static float *shm_slot(dpt_gradex *gx, int64_t *len) {
    shm_state *s = gx->impl;
    *len = s->stride;
    return s->slots[s->me];
}

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

static void shm_reduce(dpt_gradex *gx, float *g) {
    shm_state *s = gx->impl;
    DPT_ASSERT(g == s->slots[s->me]);
    node_barrier(s); /* every slot of the node is written */
    sum_slots(s->slots, s->k, g, gx->lo, gx->hi, s->scratch);
    for (int64_t off = gx->lo; s->nodes > 1 && off < gx->hi; off += 1 << 30) {
        int cnt = (int)(gx->hi - off < (1 << 30) ? gx->hi - off : (1 << 30));
        dpt_comm_check(gx->c,
                       MPI_Allreduce(MPI_IN_PLACE, g + off, cnt, MPI_FLOAT, MPI_SUM, s->cross),
                       "MPI_Allreduce(gradients between nodes)");
    }
}

/* Each rank's statistics go into its own line; after the barrier every rank sums the node's lines
 * in rank order, then (several nodes) MPI sums the node sums among the ranks with the same node
 * rank: every rank gets the same bits. */
static void shm_finish(dpt_gradex *gx, dpt_step_stats *st) {
    shm_state *s = gx->impl;
    memcpy(s->stats + (size_t)s->me * LINE, st, sizeof *st);
    node_barrier(s); /* every part is summed and scanned, every line written */
    dpt_step_stats_sum((const dpt_step_stats *)s->stats, s->k, LINE, st);
    if (s->nodes > 1)
        dpt_comm_check(
            gx->c, MPI_Allreduce(MPI_IN_PLACE, st->v, DPT_STAT_N, MPI_DOUBLE, MPI_SUM, s->cross),
            "MPI_Allreduce(step statistics between nodes)");
}

static void shm_gather(dpt_gradex *gx, float *v) {
    shm_state *s = gx->impl;
    if (v == s->shared) { /* updated in place: only wait for every part */
        node_barrier(s);
        return;
    }
    float *w = s->wbuf[s->wsel];
    s->wsel ^= 1;
    memcpy(w + gx->lo, v + gx->lo, (size_t)(gx->hi - gx->lo) * sizeof(float));
    node_barrier(s); /* every part is in w */
    memcpy(v, w, (size_t)gx->lo * sizeof(float));
    memcpy(v + gx->hi, w + gx->hi, (size_t)(gx->n - gx->hi) * sizeof(float));
}

static float *shm_share(dpt_gradex *gx, const float *v) {
    shm_state *s = gx->impl;
    memcpy(s->shared + gx->lo, v + gx->lo, (size_t)(gx->hi - gx->lo) * sizeof(float));
    node_barrier(s);
    return s->shared;
}

const dpt_gradex_ops dpt_gradex_shm_ops = {
    .name = "shm",
    .setup = shm_setup,
    .destroy = shm_destroy,
    .slot = shm_slot,
    .reduce = shm_reduce,
    .finish = shm_finish,
    .gather = shm_gather,
    .share = shm_share,
    .parts_differ = true,
};
