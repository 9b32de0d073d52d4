/* MPI tests of the gradient exchange (src/comm/gradex.c), at 1, 2 and 3 ranks:
 *  - the parts [lo, hi) of the ranks tile [0, n) in rank order, each starting on a cache line;
 *  - after dpt_gradex_reduce a rank's part holds the sum over the ranks BIT-exactly equal to the
 *    documented pairwise tree (recomputed here from every rank's known inputs), and
 *    dpt_gradex_finish brings the summed step statistics to every rank; with MPI the whole vector
 *    matches;
 *  - finish sums one rank's non-finite verdict into every rank's (and a step after it works);
 *  - a model whose gradient buffer is bound to the slot copies exactly its n_params floats (the
 *    slot's tail and the window's control block behind it untouched: the old spare floats made
 *    the barrier hang when they were not zero) and trains steps through share/gather;
 *  - gather: every rank's part reaches every rank; share: one node copy, updated in place by
 *    parts and seen by all after gather;
 *  - "every rank its own node" (a fake node split) takes the hierarchical path (MPI_Allreduce
 *    between nodes) and gives the same bits as the flat MPI exchange;
 *  - nodes of unequal size: --reduce shm refused with the reason (at 3 ranks), auto is MPI;
 *  - 300 steps in a row with values that change every step (catches a barrier that lets a rank
 *    overwrite its slot while another still reads it: at 3 ranks on 2 cores the ranks are
 *    descheduled at random points).
 * Every check is agreed across ranks (MPI_LAND) so all ranks pass or fail together. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/nn.h"
#include "testutil.h"

enum { N = 1237 }; /* not a multiple of 16, nor of 2 or 3 */

static int g_rank, g_size;
static dpt_comm g_c;   /* every test: a fresh dpt_comm over MPI_COMM_WORLD */
static float g_own[N]; /* the vector when the exchange has no slot (MPI) */

static void who(void) {
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
}

static int setup(void **state) {
    (void)state;
    who();
    return dpt_comm_init(&g_c, MPI_COMM_WORLD) != DPT_OK;
}

static int teardown(void **state) {
    (void)state;
    dpt_comm_deinit(&g_c);
    return 0;
}

static bool all_true(bool mine) {
    int v = mine, all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all != 0;
}

/* rank r's input at element i of step s: varied magnitudes so that the order of the sum matters */
static float input(int r, int64_t i, int s) {
    return (float)((r + 1) * 0.37 + (double)i * 1e-3 * ((i % 7) - 3) + s * 0.011) *
           ((i + r) % 5 == 0 ? 1000.0f : 1.0f);
}

/* the documented tree: sum(r0, r1) = sum(r0, mid) + sum(mid, r1), mid = r0 + (r1 - r0) / 2 */
static float tree(int r0, int r1, int64_t i, int s) {
    if (r1 - r0 == 1)
        return input(r0, i, s);
    int mid = r0 + (r1 - r0) / 2;
    return tree(r0, mid, i, s) + tree(mid, r1, i, s);
}

static void fill(float *g, int s) {
    for (int64_t i = 0; i < N; i++)
        g[i] = input(g_rank, i, s);
}

/* this rank's statistics: small integers (exact sums); no non-finite verdict */
static dpt_step_stats my_stats(void) {
    dpt_step_stats st;
    for (int e = 0; e < DPT_STAT_N; e++)
        st.v[e] = e == DPT_STAT_NONFINITE ? 0.0 : (double)(g_rank + 1 + e);
    return st;
}

/* the statistics summed over every rank: sum over r of (r + 1 + e) */
static bool stats_summed(const dpt_step_stats *st) {
    bool ok = st->v[DPT_STAT_NONFINITE] == 0.0;
    for (int e = 0; e < DPT_STAT_N; e++)
        if (e != DPT_STAT_NONFINITE)
            ok = ok && st->v[e] == (double)(g_size * (g_size + 1) / 2 + g_size * e);
    return ok;
}

/* an exchange over g_c; *buf: where this rank writes its vector */
static dpt_gradex *make(dpt_reduce_mode mode, float **buf) {
    dpt_gradex *gx = NULL;
    assert_int_equal(dpt_gradex_create(&g_c, N, mode, &gx), DPT_OK);
    int64_t len = 0;
    float *slot = dpt_gradex_slot(gx, &len);
    assert_true(slot == NULL || len >= N);
    *buf = slot ? slot : g_own;
    return gx;
}

/* one step on `gx`: reduce, finish; checks the part and the extras (exact: tree order for SHM) */
static bool step_ok(dpt_gradex *gx, float *g, int s, bool exact_tree) {
    fill(g, s);
    dpt_gradex_reduce(gx, g);
    int64_t lo, hi;
    dpt_gradex_range(gx, &lo, &hi);
    bool ok = true;
    for (int64_t i = lo; i < hi && ok; i++) {
        float want = tree(0, g_size, i, s);
        ok = exact_tree ? memcmp(&g[i], &want, sizeof want) == 0
                        : fabsf(g[i] - want) <= 1e-5f * fmaxf(1.0f, fabsf(want));
    }
    dpt_step_stats st = my_stats();
    dpt_gradex_finish(gx, &st);
    return ok && stats_summed(&st);
}

static void test_parts_tile_the_vector(void **state) {
    (void)state;
    float *g;
    dpt_gradex *gx = make(DPT_REDUCE_SHM, &g);
    int64_t lh[2], all[2 * 64];
    dpt_gradex_range(gx, &lh[0], &lh[1]);
    MPI_Allgather(lh, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
    bool ok = all[0] == 0 && all[2 * g_size - 1] == N;
    for (int r = 0; r < g_size; r++) {
        ok = ok && all[2 * r] <= all[2 * r + 1] && all[2 * r] % 16 == 0;
        if (r > 0)
            ok = ok && all[2 * r] == all[2 * r - 1];
    }
    assert_true(all_true(ok));
    assert_true(all_true(dpt_gradex_mode(gx) == DPT_REDUCE_SHM));
    assert_true(all_true(strstr(dpt_gradex_describe(gx), "shared memory") != NULL));
    dpt_gradex_destroy(&gx);
}

static void test_reduce_is_the_tree_sum(void **state) {
    (void)state;
    float *g;
    dpt_gradex *gx = make(DPT_REDUCE_SHM, &g);
    assert_true(all_true(step_ok(gx, g, 0, true)));
    dpt_gradex_destroy(&gx);
    /* MPI: every rank owns everything, equal to the tree to float rounding */
    gx = make(DPT_REDUCE_MPI, &g);
    int64_t lo, hi;
    dpt_gradex_range(gx, &lo, &hi);
    int64_t len = -1;
    assert_true(all_true(lo == 0 && hi == N && dpt_gradex_slot(gx, &len) == NULL && len == 0));
    assert_true(all_true(step_ok(gx, g, 0, g_size <= 2)));
    dpt_gradex_destroy(&gx);
}

static void test_finish_sums_the_verdicts(void **state) {
    (void)state;
    float *g;
    dpt_gradex *gx = make(DPT_REDUCE_SHM, &g);
    for (int s = 0; s < 3; s++) {
        fill(g, s);
        dpt_gradex_reduce(gx, g);
        dpt_step_stats st = my_stats();
        st.v[DPT_STAT_NONFINITE] = s == 1 && g_rank == g_size - 1;
        dpt_gradex_finish(gx, &st);
        assert_true(all_true((st.v[DPT_STAT_NONFINITE] > 0) == (s == 1)));
        assert_true(all_true(st.v[DPT_STAT_LOSS] == (double)(g_size * (g_size + 1) / 2)));
    }
    assert_true(all_true(step_ok(gx, g, 7, true))); /* and a normal step after */
    dpt_gradex_destroy(&gx);
}

static void test_gather_and_share(void **state) {
    (void)state;
    float *g, v[N];
    dpt_gradex *gx = make(DPT_REDUCE_SHM, &g);
    int64_t lo, hi;
    dpt_gradex_range(gx, &lo, &hi);
    for (int round = 0; round < 3; round++) { /* the two gather buffers, then the first again */
        for (int64_t i = 0; i < N; i++)
            v[i] = i >= lo && i < hi ? (float)(i * 3 + round) : -1.0f;
        dpt_gradex_gather(gx, v);
        bool ok = true;
        for (int64_t i = 0; i < N; i++)
            ok = ok && v[i] == (float)(i * 3 + round);
        assert_true(all_true(ok));
    }
    /* share: one copy per node; each rank updates its part in place */
    for (int64_t i = 0; i < N; i++)
        v[i] = (float)i;
    float *sh = dpt_gradex_share(gx, v);
    assert_non_null(sh);
    bool ok = true;
    for (int64_t i = 0; i < N; i++)
        ok = ok && sh[i] == (float)i;
    assert_true(all_true(ok));
    for (int64_t i = lo; i < hi; i++)
        sh[i] += 0.5f;
    dpt_gradex_gather(gx, sh);
    for (int64_t i = 0; i < N; i++)
        ok = ok && sh[i] == (float)i + 0.5f;
    assert_true(all_true(ok));
    MPI_Barrier(MPI_COMM_WORLD); /* nobody frees the window while another still reads it */
    dpt_gradex_destroy(&gx);
}

/* The regression of the old spare-floats contract: binding a model whose gradient buffer holds
 * non-zero values (the old DPT_MODEL_GRAD_SPARE floats past n were copied too, over the window's
 * control block on node rank 0, and the barrier hung) copies exactly n_params floats; the slot's
 * tail stays zero and steps run through share, reduce, finish and gather. */
static void test_bound_model_with_nonzero_gradients(void **state) {
    (void)state;
    const char *layers = "[{\"class_name\": \"Dense\", \"config\": {\"units\": 5}}]";
    json_t *lj = json_loads(layers, 0, NULL);
    dpt_shape in = {.rank = 1, .dim = {3}};
    dpt_json_ctx ctx = {.file = "test"};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(lj, &in, 4, 1, &ctx, &m), DPT_OK);
    json_decref(lj);
    int64_t n = dpt_model_n_params(m); /* 20: not a multiple of 16 */
    dpt_gradex *gx = NULL;
    assert_int_equal(dpt_gradex_create(&g_c, n, DPT_REDUCE_AUTO, &gx), DPT_OK);
    float *g = dpt_model_grads(m);
    for (int64_t i = 0; i < n; i++)
        g[i] = 1.0f;
    int64_t len = 0;
    float *slot = dpt_gradex_slot(gx, &len);
    bool ok = true;
    if (slot) {
        dpt_model_bind_grads(m, slot, len, true);
        ok = dpt_model_grads(m) == slot && slot[0] == 1.0f && slot[n - 1] == 1.0f;
        for (int64_t i = n; i < len; i++)
            ok = ok && slot[i] == 0.0f;
        float *w = dpt_gradex_share(gx, dpt_model_params(m));
        if (w)
            dpt_model_bind_params(m, w, false);
    }
    for (int s = 0; s < 5; s++) {
        g = dpt_model_grads(m);
        for (int64_t i = 0; i < n; i++)
            g[i] = (float)(g_rank + 1);
        dpt_gradex_reduce(gx, g);
        int64_t lo, hi;
        dpt_gradex_range(gx, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            ok = ok && g[i] == (float)(g_size * (g_size + 1) / 2);
        dpt_step_stats st = my_stats();
        dpt_gradex_finish(gx, &st);
        ok = ok && stats_summed(&st);
        float *p = dpt_model_params(m);
        for (int64_t i = lo; i < hi; i++)
            p[i] = (float)s;
        dpt_gradex_gather(gx, p);
        for (int64_t i = 0; i < n; i++)
            ok = ok && p[i] == (float)s;
    }
    assert_true(all_true(ok));
    dpt_model_bind_params(m, NULL, true);
    dpt_model_destroy(&m);
    dpt_gradex_destroy(&gx);
}

/* every rank its own "node": the shared-memory path with MPI_Allreduce between the nodes */
static void test_one_rank_per_node_is_hierarchical(void **state) {
    (void)state;
    MPI_Comm real_node = g_c.node;
    MPI_Comm_split(g_c.comm, g_c.rank, 0, &g_c.node);
    MPI_Comm_rank(g_c.node, &g_c.node_rank);
    MPI_Comm_size(g_c.node, &g_c.node_size);
    float *g, ref[N];
    /* the flat MPI exchange first, as the reference */
    dpt_gradex *gx = make(DPT_REDUCE_MPI, &g);
    fill(g, 3);
    dpt_gradex_reduce(gx, g);
    memcpy(ref, g, sizeof ref);
    dpt_step_stats ref_st = my_stats();
    dpt_gradex_finish(gx, &ref_st);
    dpt_gradex_destroy(&gx);
    gx = make(DPT_REDUCE_SHM, &g);
    if (g_size > 1)
        assert_non_null(strstr(dpt_gradex_describe(gx), "between"));
    fill(g, 3);
    dpt_gradex_reduce(gx, g);
    int64_t lo, hi;
    dpt_gradex_range(gx, &lo, &hi);
    bool ok = lo == 0 && hi == N && memcmp(g, ref, sizeof(float) * N) == 0;
    dpt_step_stats st = my_stats();
    dpt_gradex_finish(gx, &st);
    ok = ok && memcmp(&st, &ref_st, sizeof st) == 0;
    assert_true(all_true(ok));
    /* AUTO with one rank per node is plain MPI */
    dpt_gradex_destroy(&gx);
    gx = make(DPT_REDUCE_AUTO, &g);
    assert_true(all_true(dpt_gradex_mode(gx) == DPT_REDUCE_MPI));
    dpt_gradex_destroy(&gx);
    MPI_Comm_free(&g_c.node);
    g_c.node = real_node;
}

/* nodes of unequal size (a fake split {0, 1}, {2} at 3 ranks): --reduce shm is refused on every
 * rank with the reason, auto takes MPI_Allreduce */
static void test_unequal_nodes(void **state) {
    (void)state;
    if (g_size != 3)
        skip();
    MPI_Comm real_node = g_c.node;
    MPI_Comm_split(g_c.comm, g_c.rank / 2, 0, &g_c.node);
    MPI_Comm_rank(g_c.node, &g_c.node_rank);
    MPI_Comm_size(g_c.node, &g_c.node_size);
    dpt_gradex *gx = NULL;
    dpt_status st = dpt_gradex_create(&g_c, N, DPT_REDUCE_SHM, &gx);
    assert_true(all_true(st == DPT_ERR_CONFIG && gx == NULL &&
                         strstr(dpt_error_message(),
                                "--reduce shm: the nodes have different numbers of ranks (1 to "
                                "2)") != NULL));
    float *g;
    gx = make(DPT_REDUCE_AUTO, &g);
    assert_true(all_true(dpt_gradex_mode(gx) == DPT_REDUCE_MPI));
    assert_true(all_true(step_ok(gx, g, 1, false)));
    dpt_gradex_destroy(&gx);
    MPI_Comm_free(&g_c.node);
    g_c.node = real_node;
}

static void test_many_steps(void **state) {
    (void)state;
    float *g, v[N];
    dpt_gradex *gx = make(DPT_REDUCE_AUTO, &g);
    bool shm = dpt_gradex_mode(gx) == DPT_REDUCE_SHM;
    assert_true(all_true(shm == (g_size > 1)));
    int64_t lo, hi;
    dpt_gradex_range(gx, &lo, &hi);
    bool ok = true;
    for (int s = 0; s < 300 && ok; s++) {
        ok = step_ok(gx, g, s, shm || g_size <= 2);
        for (int64_t i = lo; i < hi; i++)
            v[i] = g[i] * 0.5f; /* "the update" of this rank's part */
        dpt_gradex_gather(gx, v);
        for (int64_t i = 0; i < N && ok; i++) {
            float want = tree(0, g_size, i, s) * 0.5f;
            ok = shm ? v[i] == want : fabsf(v[i] - want) <= 1e-5f * fmaxf(1.0f, fabsf(want));
        }
    }
    assert_true(all_true(ok));
    dpt_gradex_destroy(&gx);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parts_tile_the_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_is_the_tree_sum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_sums_the_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_model_with_nonzero_gradients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_and_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_rank_per_node_is_hierarchical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unequal_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_steps, setup, teardown),
    };
    return dpt_test_mpi_main(argc, argv, tests, sizeof tests / sizeof *tests, "gradex");
}
