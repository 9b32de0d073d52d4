/* The trainer's entry point (dpt_fit) and the small pieces every part of it uses: the run
 * directory, the default memory limit, OpenBLAS threads, evaluation of a shard. The training
 * itself is in four files, one job each:
 *   setup.c   data, model, exchange, shards and buffers; the start-up lines   dpt_train_setup
 *   step.c    one optimizer step: rows, forward/backward, exchange, update   dpt_train_step
 *   epoch.c   the epoch loop, the end of an epoch, the end of the run         dpt_train_run
 *   resume.c  checkpoints written and resumed                                 dpt_train_checkpoint
 * Collective throughout; errors before the loop are agreed across ranks (dpt_comm_agree), errors
 * inside the step are either identical on every rank (they come from reduced values) or abort. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "dptrain/train.h"
#include "train_internal.h"

dpt_fit_opts dpt_fit_opts_default(void) {
    dpt_fit_opts o = {.verbose = 1,
                      .checkpoint_every = -1,
                      .keep = -1,
                      .check_replicas = 100,
                      .reduce = DPT_REDUCE_AUTO,
                      .out = stdout};
    return o;
}

dpt_status dpt_fit(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                   dpt_fit_result *res) {
    dpt_train tr;
    dpt_status st = dpt_train_setup(c, cfg, o, &tr);
    if (st != DPT_OK)
        return st;
    if (o->dry_run) { /* everything a run refuses before its first step was checked */
        *res = (dpt_fit_result){.loss = NAN, .accuracy = NAN, .val_loss = NAN, .val_accuracy = NAN};
        dpt_train_teardown(&tr);
        return DPT_OK;
    }
    st = dpt_train_run(&tr, res);
    dpt_rundir_unlock(&tr.lock, st); /* with DPT_PREEMPTED: the note for launch/ scripts */
    dpt_train_teardown(&tr);
    return st;
}

/* ---- run directory ------------------------------------------------------------------------- */

dpt_status dpt_mkdir_p(const char *path) {
    char tmp[DPT_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return dpt_error_set(DPT_ERR_IO, "%s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return dpt_error_set(DPT_ERR_IO, "%s: cannot create directory: %s", tmp,
                                 strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return dpt_error_set(DPT_ERR_IO, "%s: not a directory", tmp);
    if (access(tmp, W_OK) != 0)
        return dpt_error_set(DPT_ERR_IO, "%s: directory not writable: %s", tmp, strerror(errno));
    return DPT_OK;
}

/* ---- memory ------------------------------------------------------------------------------- */

int64_t dpt_default_memory_limit(const dpt_comm *c) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t total = pages > 0 && page > 0 ? (int64_t)pages * page : ((int64_t)4 << 30);
    return total / 4 / (c->node_size > 0 ? c->node_size : 1);
}

/* ---- threads ------------------------------------------------------------------------------- */

int dpt_train_setup_threads(const dpt_comm *c) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env && *env)
        return openblas_get_num_threads();
    cpu_set_t set;
    int allowed = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        allowed = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    int threads;
    if (allowed < online)
        threads = allowed; /* the launcher bound this rank to a set of cores: use them */
    else
        threads = (int)(online / (c->node_size > 0 ? c->node_size : 1));
    if (threads < 1)
        threads = 1;
    openblas_set_num_threads(threads);
    return threads;
}

dpt_target_spec dpt_train_targets(dpt_loss_kind loss, const dpt_model *m) {
    dpt_target_spec ts = {.kind = dpt_loss_target_kind(loss),
                          .n_outputs = dpt_model_output_size(m),
                          .loss_name = dpt_loss_name(loss),
                          .x_ids = dpt_model_input_ids(m)};
    return ts;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

dpt_status dpt_train_metrics(const dpt_config *cfg, int64_t K, dpt_metrics_spec *ms) {
    memset(ms, 0, sizeof *ms);
    for (int i = 0; i < cfg->metrics.n; i++)
        if (cfg->metrics.m[i].kind != DPT_METRIC_ACCURACY)
            ms->m[ms->n++] = cfg->metrics.m[i];
    dpt_status st = dpt_metrics_prepare(ms, K, dpt_loss_target_size(cfg->loss, K));
    if (st != DPT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dpt_error_message());
        dpt_error_clear();
        return dpt_error_set(DPT_ERR_CONFIG, "%s: compile.metrics: %s (loss %s)", cfg->file, msg,
                             dpt_loss_name(cfg->loss));
    }
    return DPT_OK;
}

dpt_status dpt_eval_shard(const dpt_comm *c, dpt_model *m, const dpt_loss_spec *loss,
                          const dpt_metrics_spec *ms, const dpt_shard *s, uint32_t seed,
                          double sums[3], double *mstate) {
    double local[3] = {0, 0, 0};
    int64_t ns = ms ? dpt_metrics_state_size(ms) : 0;
    if (ns > 0)
        memset(mstate, 0, (size_t)ns * sizeof *mstate);
    dpt_status st = DPT_OK;
    if (s) {
        int64_t rows = dpt_shard_rows(s), mb = dpt_model_max_batch(m);
        int64_t xs = dpt_shard_x_size(s), ys = dpt_shard_y_size(s), K = dpt_model_output_size(m);
        const float *x = dpt_shard_x(s), *y = dpt_shard_y(s), *w = dpt_shard_w(s);
        dpt_pass p = {.training = false, .seed = seed, .rank = (uint32_t)c->rank};
        for (int64_t r = 0; r < rows && st == DPT_OK; r += mb) {
            int64_t b = rows - r < mb ? rows - r : mb;
            const float *out = dpt_model_forward(m, &p, x + r * xs, b);
            /* Keras weighs evaluation losses by the split's sample weights too (not metrics) */
            st = dpt_loss_compute_spec(loss, dpt_model_head_act(m), out, y + r * ys,
                                       w ? w + r : NULL, b, K, NULL, &local[0], &local[1]);
            if (st == DPT_OK && ns > 0)
                dpt_metrics_accumulate(ms, dpt_model_head_act(m), out, y + r * ys, b, K, ys,
                                       mstate);
            local[0] += dpt_model_activity_loss(m); /* activity_regularizer, as Keras reports */
            local[2] += (double)b;
            dpt_watchdog_kick(-1); /* a validation / test batch is progress too */
        }
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_comm_allreduce_sum_f64(c, local, 3);
    if (ns > 0)
        dpt_comm_allreduce_sum_f64(c, mstate, (int)ns);
    /* Keras reports evaluation losses with the regularization penalty too */
    local[0] += dpt_model_penalty(m) * local[2];
    memcpy(sums, local, sizeof local);
    return DPT_OK;
}

/* Reproducible mode: the shard (every row of the split, on every rank) in fixed chunks of
 * `chunk` rows, chunk j on rank j mod N, the chunks' sums added exactly: the same bits for any
 * rank count. Collective. */
dpt_status dpt_eval_shard_exact(const dpt_comm *c, dpt_model *m, const dpt_loss_spec *loss,
                                const dpt_shard *s, int64_t chunk, double sums[3]) {
    int64_t rows = s ? dpt_shard_rows(s) : 0, n_chunks = (rows + chunk - 1) / chunk;
    int mine = (int)((n_chunks - c->rank + c->size - 1) / c->size), k = 0;
    double *tab = NULL;
    dpt_status st =
        dpt_alloc((size_t)(mine > 0 ? mine : 1) * 3 * sizeof(double), "evaluation", (void **)&tab);
    dpt_pass p = {.training = false};
    for (int64_t j = c->rank; st == DPT_OK && j < n_chunks; j += c->size, k++) {
        int64_t r0 = j * chunk, b = rows - r0 < chunk ? rows - r0 : chunk;
        const float *out = dpt_model_forward(m, &p, dpt_shard_x(s) + r0 * dpt_shard_x_size(s), b);
        double *row = tab + 3 * k;
        row[0] = row[1] = 0;
        row[2] = (double)b;
        dpt_watchdog_kick(-1);           /* an evaluation chunk is progress too */
        const float *w = dpt_shard_w(s); /* the split's sample weights, as Keras */
        st = dpt_loss_compute_spec(loss, dpt_model_head_act(m), out,
                                   dpt_shard_y(s) + r0 * dpt_shard_y_size(s), w ? w + r0 : NULL, b,
                                   dpt_model_output_size(m), NULL, &row[0], &row[1]);
        row[0] += dpt_model_activity_loss(m); /* activity_regularizer, as Keras reports */
    }
    st = dpt_comm_agree(c, st);
    if (st == DPT_OK) {
        dpt_comm_exact_sum_f64(c, tab, mine, 3, (int)(n_chunks > 0 ? n_chunks : 1), sums);
        sums[0] += dpt_model_penalty(m) * sums[2];
    }
    dpt_free(tab);
    return st;
}
