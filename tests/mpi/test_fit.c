/* MPI tests of the training loop at 1, 2 and 3 ranks (ctest runs this file at each):
 *  - with dropout 0, N ranks end with the weights of 1 rank (relative difference <= 1e-5),
 *    on a sample count that 3 does not divide;
 *  - with dropout 0.5, every rank holds bit-identical weights after 20+ steps, while the ranks'
 *    dropout masks differ;
 *  - a failure on one rank is agreed: every rank gets the status and the failing rank's message.
 * Every assertion is on a value agreed across ranks, so all ranks pass or fail together. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "testutil.h"
#include "train/train_internal.h"

static char g_data[4096];
static char g_wdata[2][4096]; /* g_data's samples with sample weights w = 1, w = 2 */

static const char *CONFIG_FMT =
    "{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
    " {\"class_name\": \"InputLayer\", \"config\": {\"batch_input_shape\": [null, 20]}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 64, \"activation\": \"relu\"}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": %s}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 64, \"activation\": \"relu\"}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": %s}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": \"sigmoid\"}}]}},"
    " \"compile\": {\"optimizer\": \"%s\", \"loss\": \"binary_crossentropy\","
    "               \"metrics\": [\"accuracy\"]},"
    " \"fit\": {\"epochs\": 1, \"batch_size\": 32, \"shuffle\": true, \"seed\": 7},"
    " \"data\": {\"path\": \"%s\"}}";

static void make_config(dpt_config *cfg, const char *rate, const char *opt) {
    char text[8192];
    snprintf(text, sizeof text, CONFIG_FMT, rate, rate, opt, g_data);
    assert_ok(dpt_config_parse(text, strlen(text), "test.json", cfg));
}

/* Trains on `comm` and returns a malloc'd copy of the final parameters (n in *n). */
static float *train_on(MPI_Comm comm, const dpt_config *cfg, int64_t *n, int64_t *steps) {
    dpt_comm c;
    assert_ok(dpt_comm_init(&c, comm));
    dpt_fit_opts o = {.verbose = 0};
    dpt_train t;
    assert_ok(dpt_train_setup(&c, cfg, &o, &t));
    assert_ok(dpt_train_run(&t, NULL));
    *n = dpt_model_n_params(t.model);
    *steps = t.global_step;
    float *p = malloc((size_t)*n * sizeof(float));
    memcpy(p, dpt_model_params(t.model), (size_t)*n * sizeof(float));
    dpt_train_teardown(&t);
    dpt_comm_deinit(&c);
    return p;
}

static void test_n_ranks_equal_one_rank(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *opts[] = {"adam", "sgd"};
    for (int k = 0; k < 2; k++) {
        dpt_config cfg;
        make_config(&cfg, "0.0", opts[k]);
        int64_t n, steps;
        float *pn = train_on(MPI_COMM_WORLD, &cfg, &n, &steps);
        double worst = 0;
        if (rank == 0) {
            int64_t n1, steps1;
            float *p1 = train_on(MPI_COMM_SELF, &cfg, &n1, &steps1);
            assert_int_equal(n1, n);
            assert_int_equal(steps1, steps);
            for (int64_t i = 0; i < n; i++) {
                double d = fabs((double)pn[i] - p1[i]) / (fabs((double)p1[i]) + 1e-3);
                if (d > worst)
                    worst = d;
            }
            free(p1);
        }
        MPI_Bcast(&worst, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0)
            printf("# %s: %d ranks vs 1 rank after %lld steps: max relative difference %.3g\n",
                   opts[k], size, (long long)steps, worst);
        assert_true(steps >= 20);
        assert_true(worst <= 1e-5);
        free(pn);
        dpt_config_deinit(&cfg);
    }
}

/* make_config's config (dropout 0, sgd) on `data`, with `fit_extra` ("" or ", \"key\": ...")
 * added to fit */
static void make_config_on(dpt_config *cfg, const char *data, const char *fit_extra) {
    char text[8192], fit[256];
    snprintf(text, sizeof text, CONFIG_FMT, "0.0", "0.0", "sgd", data);
    snprintf(fit, sizeof fit, "\"seed\": 7%s}", fit_extra);
    char *at = strstr(text, "\"seed\": 7}");
    assert_non_null(at);
    char tail[8192];
    snprintf(tail, sizeof tail, "%s", at + strlen("\"seed\": 7}"));
    snprintf(at, sizeof text - (size_t)(at - text), "%s%s", fit, tail);
    assert_ok(dpt_config_parse(text, strlen(text), "test.json", cfg));
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + 1e-3);
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* Sample weights: w = 1 trains exactly as no weights; w = 2 exactly as class_weight 2 for both
 * classes; both at once, and weights with a streamed shard, are refused. */
static void test_sample_weights(void **state) {
    (void)state;
    dpt_config plain, w1, w2, cw2, both;
    make_config_on(&plain, g_data, "");
    make_config_on(&w1, g_wdata[0], "");
    make_config_on(&w2, g_wdata[1], "");
    make_config_on(&cw2, g_data, ", \"class_weight\": {\"0\": 2, \"1\": 2}");
    make_config_on(&both, g_wdata[1], ", \"class_weight\": {\"0\": 2}");
    int64_t n, s;
    float *a = train_on(MPI_COMM_WORLD, &plain, &n, &s), *b = train_on(MPI_COMM_WORLD, &w1, &n, &s);
    assert_true(max_rel_diff(a, b, n) == 0);
    free(a);
    free(b);
    a = train_on(MPI_COMM_WORLD, &w2, &n, &s);
    b = train_on(MPI_COMM_WORLD, &cw2, &n, &s);
    assert_true(max_rel_diff(a, b, n) == 0);
    free(a);
    free(b);
    dpt_comm c;
    assert_ok(dpt_comm_init(&c, MPI_COMM_WORLD));
    dpt_fit_opts o = {.verbose = 0};
    dpt_train t;
    assert_status_msg(dpt_train_setup(&c, &both, &o, &t), DPT_ERR_CONFIG,
                      "test.json: fit.class_weight: the training split");
    o.memory_limit = 1024; /* every shard streamed */
    assert_status_msg(dpt_train_setup(&c, &w2, &o, &t), DPT_ERR_DATA,
                      "/train/w: sample weights with a streamed shard");
    dpt_comm_deinit(&c);
    dpt_config_deinit(&plain);
    dpt_config_deinit(&w1);
    dpt_config_deinit(&w2);
    dpt_config_deinit(&cw2);
    dpt_config_deinit(&both);
}

static void test_dropout_replicas_bit_identical(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    dpt_config cfg;
    make_config(&cfg, "0.5", "adam");
    int64_t n, steps;
    float *p = train_on(MPI_COMM_WORLD, &cfg, &n, &steps);
    float *p0 = malloc((size_t)n * sizeof(float));
    memcpy(p0, p, (size_t)n * sizeof(float));
    MPI_Bcast(p0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    int differs = memcmp(p0, p, (size_t)n * sizeof(float)) != 0, any = 0;
    MPI_Allreduce(&differs, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    assert_true(steps >= 20);
    assert_int_equal(any, 0);

    /* the masks really differ between ranks: rank r's mask of layer 1, step 3, over 4096 units */
    unsigned char mine[512] = {0}, r0[512];
    dpt_pass pass = {.training = true, .seed = cfg.seed, .rank = (uint32_t)rank, .step = 3};
    for (int i = 0; i < 4096; i++)
        if (dpt_dropout_keep(&pass, 1, (uint64_t)i, 0.5f))
            mine[i / 8] |= (unsigned char)(1 << (i % 8));
    memcpy(r0, mine, sizeof r0);
    MPI_Bcast(r0, sizeof r0, MPI_BYTE, 0, MPI_COMM_WORLD);
    int same = memcmp(r0, mine, sizeof r0) == 0, n_same = 0;
    MPI_Allreduce(&same, &n_same, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    assert_int_equal(n_same, 1); /* only rank 0 itself has rank 0's mask */
    free(p);
    free(p0);
    dpt_config_deinit(&cfg);
}

static void test_agree_spreads_one_ranks_failure(void **state) {
    (void)state;
    dpt_comm c;
    assert_ok(dpt_comm_init(&c, MPI_COMM_WORLD));
    int last = c.size - 1;
    dpt_status mine = DPT_OK;
    dpt_error_clear();
    if (c.rank == last)
        mine = dpt_error_set(DPT_ERR_DATA, "x.h5: /train/x: rank %d failed", last);
    dpt_status st = dpt_comm_agree(&c, mine);
    char expect[64];
    snprintf(expect, sizeof expect, "rank %d failed", last);
    assert_status_msg(st, DPT_ERR_DATA, expect);
    assert_int_equal(dpt_comm_agree(&c, DPT_OK), DPT_OK);
    dpt_comm_deinit(&c);
}

static void test_replica_drift_is_named(void **state) {
    (void)state;
    dpt_comm c;
    assert_ok(dpt_comm_init(&c, MPI_COMM_WORLD));
    float p[64];
    for (int i = 0; i < 64; i++)
        p[i] = (float)i * 0.25f;
    assert_ok(dpt_check_replicas(&c, p, 64, 10));
    if (c.rank == c.size - 1 && c.size > 1)
        p[17] = nextafterf(p[17], 100.0f); /* one ulp */
    dpt_status st = dpt_check_replicas(&c, p, 64, 11);
    if (c.size == 1) {
        assert_int_equal(st, DPT_OK);
    } else {
        char expect[64];
        snprintf(expect, sizeof expect, "rank %d differ", c.size - 1);
        assert_status_msg(st, DPT_ERR_INTERNAL, expect);
        assert_non_null(strstr(dpt_error_message(), "global step 11"));
    }
    dpt_comm_deinit(&c);
}

int main(int argc, char **argv) {
    /* rank 0 writes the dataset (641 samples: 3 does not divide it) before the tests start */
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        snprintf(g_data, sizeof g_data, "%s/tutorial.h5", dpt_test_tmpdir("fit"));
        if (dpt_data_write_synth(g_data, 641, 20, 3) != DPT_OK) {
            fprintf(stderr, "%s\n", dpt_error_message());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int k = 0; k < 2; k++) { /* the same samples with weights k + 1 */
            snprintf(g_wdata[k], sizeof g_wdata[k], "%s/weighted%d.h5", dpt_test_tmpdir("fit"), k);
            if (dpt_data_write_synth(g_wdata[k], 641, 20, 3) != DPT_OK)
                MPI_Abort(MPI_COMM_WORLD, 1);
            static float w[641];
            for (int i = 0; i < 641; i++)
                w[i] = (float)(k + 1);
            hid_t f = H5Fopen(g_wdata[k], H5F_ACC_RDWR, H5P_DEFAULT);
            hsize_t d[1] = {641};
            hid_t sp = H5Screate_simple(1, d, NULL);
            hid_t ds = H5Dcreate2(f, "/train/w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                  H5P_DEFAULT);
            if (f < 0 || ds < 0 ||
                H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) < 0)
                MPI_Abort(MPI_COMM_WORLD, 1);
            H5Dclose(ds);
            H5Sclose(sp);
            H5Fclose(f);
        }
    }
    MPI_Bcast(g_data, sizeof g_data, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(g_wdata, sizeof g_wdata, MPI_CHAR, 0, MPI_COMM_WORLD);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_ranks_equal_one_rank),
        cmocka_unit_test(test_dropout_replicas_bit_identical),
        cmocka_unit_test(test_agree_spreads_one_ranks_failure),
        cmocka_unit_test(test_replica_drift_is_named),
        cmocka_unit_test(test_sample_weights),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL), any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
