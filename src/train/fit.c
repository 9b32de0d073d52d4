/* The training loop: one global order per epoch, each rank trains on the members of each global
 * batch that lie in its shard, one allreduce of the gradient per step, the same optimizer update
 * on every rank. Rank 0 prints one line per epoch and writes the run directory's history.
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

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/train.h"
#include "train_internal.h"

/* ---- run directory ------------------------------------------------------------------------- */

dpt_status dpt_mkdir_p(const char *path) {
    char tmp[DPT_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return dpt_error_set(DPT_ERR_IO, "%s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
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

/* ---- threads ------------------------------------------------------------------------------- */

int dpt_train_setup_threads(const dpt_comm *c) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env && *env) return openblas_get_num_threads();
    cpu_set_t set;
    int allowed = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) allowed = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    int threads;
    if (allowed < online)
        threads = allowed; /* the launcher bound this rank to a set of cores: use them */
    else
        threads = (int)(online / (c->node_size > 0 ? c->node_size : 1));
    if (threads < 1) threads = 1;
    openblas_set_num_threads(threads);
    return threads;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Sums of loss, correct, count over a shard, agreed across ranks. Collective. */
dpt_status dpt_eval_shard(const dpt_comm *c, dpt_model *m, dpt_loss_kind loss, const dpt_shard *s,
                          uint32_t seed, double sums[3]) {
    double local[3] = {0, 0, 0};
    dpt_status st = DPT_OK;
    if (s) {
        int64_t rows = dpt_shard_rows(s), mb = dpt_model_max_batch(m);
        int64_t xs = dpt_shard_x_size(s), ys = dpt_shard_y_size(s);
        const float *x = dpt_shard_x(s), *y = dpt_shard_y(s);
        dpt_pass p = {.training = false, .seed = seed, .rank = (uint32_t)c->rank};
        for (int64_t r = 0; r < rows && st == DPT_OK; r += mb) {
            int64_t b = rows - r < mb ? rows - r : mb;
            const float *out = dpt_model_forward(m, &p, x + r * xs, b);
            st = dpt_loss_compute(loss, dpt_model_head_act(m), out, y + r * ys, b,
                                  dpt_model_output_size(m), NULL, &local[0], &local[1]);
            local[2] += (double)b;
        }
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) return st;
    dpt_comm_allreduce_sum_f64(c, local, 3);
    memcpy(sums, local, sizeof local);
    return DPT_OK;
}

/* ---- fit ----------------------------------------------------------------------------------- */

static void print_epoch(FILE *f, int e, int epochs, double secs, const double tr[3],
                        const double va[3], bool acc) {
    fprintf(f, "Epoch %d/%d - %.2fs - loss: %.4f", e, epochs, secs, tr[0] / tr[2]);
    if (acc) fprintf(f, " - accuracy: %.4f", tr[1] / tr[2]);
    if (va[2] > 0) {
        fprintf(f, " - val_loss: %.4f", va[0] / va[2]);
        if (acc) fprintf(f, " - val_accuracy: %.4f", va[1] / va[2]);
    }
    fputc('\n', f);
    fflush(f);
}

dpt_status dpt_fit(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                   dpt_fit_result *res) {
    dpt_train tr;
    dpt_status st = dpt_train_setup(c, cfg, o, &tr);
    if (st != DPT_OK) return st;
    st = dpt_train_run(&tr, res);
    dpt_train_teardown(&tr);
    return st;
}

dpt_status dpt_train_setup(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                           dpt_train *t) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->cfg = cfg;
    t->opts = *o;
    if (!t->opts.out) t->opts.out = stdout;
    FILE *out = t->opts.out;
    bool lead = c->rank == 0;
    dpt_status st = DPT_OK;

    /* 1. the data: metadata (every rank reads it itself: cheap, and errors agree) */
    if (!cfg->data_path[0])
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: data.path: required (or pass --data FILE)",
                           cfg->file);
    if (st == DPT_OK) st = dpt_data_probe(cfg->data_path, cfg->train_group, &t->info);
    if (st == DPT_OK && cfg->validation_group[0])
        st = dpt_data_probe(cfg->data_path, cfg->validation_group, &t->vinfo);
    if (st == DPT_OK && cfg->test_group[0])
        st = dpt_data_probe(cfg->data_path, cfg->test_group, &t->tinfo);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) return st;

    /* Keras validation_split: the LAST fraction of the samples, before any shuffling. */
    int64_t n = t->info.n;
    if (cfg->validation_group[0]) {
        t->n_train = n;
    } else {
        t->n_train = (int64_t)floor((double)n * (1.0 - cfg->validation_split));
    }
    t->n_val = cfg->validation_group[0] ? t->vinfo.n : n - t->n_train;
    if (t->n_train < c->size)
        st = dpt_error_set(DPT_ERR_DATA,
                           "%s: /%s: %lld training samples%s for %d ranks: need at least one per rank",
                           cfg->data_path, cfg->train_group, (long long)t->n_train,
                           cfg->validation_split > 0 ? " after validation_split" : "", c->size);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) return st;

    /* 2. the model: same seed everywhere, then rank 0's parameters broadcast anyway */
    dpt_shape in = cfg->has_input_shape ? cfg->input_shape : t->info.x_shape;
    dpt_split_range(t->n_train, c->rank, c->size, &t->lo, &t->hi);
    int64_t B = cfg->batch_size;
    int64_t max_local = t->hi - t->lo < B ? t->hi - t->lo : B;
    if (max_local < 1) max_local = 1;
    dpt_json_ctx ctx = {.file = cfg->model_file[0] ? cfg->model_file : cfg->file};
    st = dpt_model_create(cfg->layers, &in, max_local, cfg->seed, &ctx, &t->model);
    if (st == DPT_OK) {
        dpt_model_set_fused_head(t->model, cfg->loss);
        st = dpt_optim_create(&cfg->optim, dpt_model_n_params(t->model), &t->optim);
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) return st;
    dpt_comm_bcast(c, dpt_model_params(t->model),
                   dpt_model_n_params(t->model) * (int64_t)sizeof(float));

    /* 3. this rank's shards */
    dpt_target_spec ts = {.loss = cfg->loss, .n_outputs = dpt_model_output_size(t->model)};
    const dpt_shape *ms = dpt_model_input_shape(t->model);
    st = dpt_shard_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, &t->train);
    if (st == DPT_OK && t->n_val > 0) {
        int64_t vlo, vhi;
        dpt_split_range(t->n_val, c->rank, c->size, &vlo, &vhi);
        if (cfg->validation_group[0])
            st = dpt_shard_open(cfg->data_path, cfg->validation_group, vlo, vhi, &ts, ms, &t->val);
        else
            st = dpt_shard_open(cfg->data_path, cfg->train_group, t->n_train + vlo,
                                t->n_train + vhi, &ts, ms, &t->val);
    }
    /* 4. per-step buffers, sized once */
    if (st == DPT_OK) {
        int64_t xs = dpt_shard_x_size(t->train), ys = dpt_shard_y_size(t->train), nb;
        st = dpt_mul_i64(max_local, xs, "batch buffer", &nb);
        if (st == DPT_OK) st = dpt_alloc((size_t)nb * sizeof(float), "batch x", (void **)&t->xb);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)(max_local * ys) * sizeof(float), "batch y", (void **)&t->yb);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)(max_local * dpt_model_output_size(t->model)) * sizeof(float),
                           "batch dout", (void **)&t->dout);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)max_local * sizeof(int64_t), "batch rows", (void **)&t->rows);
    }
    if (st == DPT_OK && o->run_dir && o->run_dir[0] && lead) st = dpt_mkdir_p(o->run_dir);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        dpt_train_teardown(t);
        return st;
    }

    t->threads = dpt_train_setup_threads(c);
    if (lead && t->opts.verbose > 0) {
        char buf[8192];
        dpt_model_summary(t->model, buf, sizeof buf);
        fputs(buf, out);
        fprintf(out, "data: %s /%s: %lld train, %lld validation samples; about %lld per rank\n",
                cfg->data_path, cfg->train_group, (long long)t->n_train, (long long)t->n_val,
                (long long)(t->n_train / c->size));
        fprintf(out, "ranks: %d (%d on this node), OpenBLAS threads per rank: %d, global batch: %lld\n",
                c->size, c->node_size, t->threads, (long long)B);
        if (o->run_dir && o->run_dir[0]) fprintf(out, "run directory: %s\n", o->run_dir);
        fflush(out);
    }
    return DPT_OK;
}

void dpt_train_teardown(dpt_train *t) {
    dpt_shard_destroy(&t->train);
    dpt_shard_destroy(&t->val);
    dpt_optim_destroy(&t->optim);
    dpt_model_destroy(&t->model);
    dpt_free(t->xb);
    dpt_free(t->yb);
    dpt_free(t->dout);
    dpt_free(t->rows);
    t->xb = t->yb = t->dout = NULL;
    t->rows = NULL;
}

/* One optimizer step on global batch k of the epoch's order. Collective. Returns the reduced
 * batch sums (loss, correct, count) in sums. */
static dpt_status train_step(dpt_train *t, const dpt_order *ord, int64_t k, double sums[3]) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    int64_t B = cfg->batch_size, p0 = k * B;
    int64_t p1 = p0 + B < t->n_train ? p0 + B : t->n_train;
    int64_t cnt = 0;
    for (int64_t pos = p0; pos < p1; pos++) {
        int64_t idx = dpt_order_at(ord, pos);
        if (idx >= t->lo && idx < t->hi) t->rows[cnt++] = idx - t->lo;
    }
    dpt_model *m = t->model;
    dpt_model_zero_grads(m);
    double local[3] = {0, 0, (double)cnt};
    dpt_status st = DPT_OK;
    if (cnt > 0) {
        dpt_shard_gather(t->train, t->rows, cnt, t->xb, t->yb);
        dpt_pass p = {.training = true, .seed = cfg->seed, .rank = (uint32_t)c->rank,
                      .step = (uint64_t)t->global_step};
        const float *out = dpt_model_forward(m, &p, t->xb, cnt);
        st = dpt_loss_compute(cfg->loss, dpt_model_head_act(m), out, t->yb, cnt,
                              dpt_model_output_size(m), t->dout, &local[0], &local[1]);
        if (st != DPT_OK) dpt_comm_abort(c, st); /* a bad label found mid-step: end the job */
        dpt_model_backward(m, &p, t->dout, cnt);
    }
    float *g = dpt_model_grads(m);
    int64_t np = dpt_model_n_params(m);
    if (!t->opts.no_allreduce) dpt_comm_allreduce_sum_f32(c, g, np);
    dpt_comm_allreduce_sum_f64(c, local, 3);
    memcpy(sums, local, sizeof local);
    if (!isfinite(local[0]))
        return dpt_error_set(DPT_ERR_NUMERIC,
                             "epoch %lld, step %lld: loss is not finite (%g); stopping",
                             (long long)t->epoch + 1, (long long)k + 1, local[0]);
    /* mean over the samples actually in this global batch (same number on every rank) */
    float scale = 1.0f / (float)(p1 - p0);
    for (int64_t i = 0; i < np; i++) g[i] *= scale;
    dpt_optim_step(t->optim, dpt_model_params(m), g);
    t->global_step++;
    return DPT_OK;
}

static dpt_status history_open(dpt_train *t) {
    if (t->c->rank != 0 || !t->opts.run_dir || !t->opts.run_dir[0]) return DPT_OK;
    char path[DPT_PATH_MAX];
    snprintf(path, sizeof path, "%s/history.csv", t->opts.run_dir);
    t->history = fopen(path, "w");
    if (!t->history)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(t->history, "epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s\n");
    fflush(t->history);
    return DPT_OK;
}

dpt_status dpt_train_run(dpt_train *t, dpt_fit_result *res) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    bool lead = c->rank == 0;
    dpt_status st = dpt_comm_agree(c, history_open(t));
    if (st != DPT_OK) return st;
    int64_t B = cfg->batch_size, steps = (t->n_train + B - 1) / B;
    double t_start = dpt_now();
    double tr[3] = {0}, va[3] = {0};
    for (t->epoch = 0; t->epoch < cfg->epochs; t->epoch++) {
        double t0 = dpt_now();
        dpt_order ord;
        dpt_order_init(&ord, t->n_train, cfg->seed, t->epoch, cfg->shuffle);
        tr[0] = tr[1] = tr[2] = 0;
        for (int64_t k = 0; k < steps; k++) {
            double s[3];
            st = train_step(t, &ord, k, s);
            if (st != DPT_OK) goto done;
            tr[0] += s[0];
            tr[1] += s[1];
            tr[2] += s[2];
        }
        double secs = dpt_now() - t0;
        va[0] = va[1] = va[2] = 0;
        if (t->n_val > 0) {
            st = dpt_eval_shard(c, t->model, cfg->loss, t->val, cfg->seed, va);
            if (st != DPT_OK) goto done;
        }
        if (lead && t->opts.verbose > 0)
            print_epoch(t->opts.out, (int)t->epoch + 1, cfg->epochs, secs, tr, va,
                        cfg->metric_accuracy);
        if (t->history) {
            fprintf(t->history, "%lld,%.6f,%.6f,", (long long)t->epoch + 1, tr[0] / tr[2],
                    tr[1] / tr[2]);
            if (va[2] > 0)
                fprintf(t->history, "%.6f,%.6f,", va[0] / va[2], va[1] / va[2]);
            else
                fprintf(t->history, ",,");
            fprintf(t->history, "%.4f,%.1f\n", secs, tr[2] / secs);
            fflush(t->history);
        }
    }
    if (res) {
        res->epochs_run = (int)t->epoch;
        res->loss = tr[2] > 0 ? tr[0] / tr[2] : NAN;
        res->accuracy = tr[2] > 0 ? tr[1] / tr[2] : NAN;
        res->val_loss = va[2] > 0 ? va[0] / va[2] : NAN;
        res->val_accuracy = va[2] > 0 ? va[1] / va[2] : NAN;
        res->seconds = dpt_now() - t_start;
        res->samples_per_s = (double)t->n_train * (double)cfg->epochs / res->seconds;
    }
    /* the test split, evaluated once at the end */
    if (cfg->test_group[0]) {
        dpt_target_spec ts = {.loss = cfg->loss, .n_outputs = dpt_model_output_size(t->model)};
        int64_t lo, hi;
        dpt_split_range(t->tinfo.n, c->rank, c->size, &lo, &hi);
        dpt_shard *test = NULL;
        st = dpt_shard_open(cfg->data_path, cfg->test_group, lo, hi, &ts,
                            dpt_model_input_shape(t->model), &test);
        st = dpt_comm_agree(c, st);
        double te[3];
        if (st == DPT_OK) st = dpt_eval_shard(c, t->model, cfg->loss, test, cfg->seed, te);
        dpt_shard_destroy(&test);
        if (st != DPT_OK) goto done;
        if (lead && t->opts.verbose > 0) {
            fprintf(t->opts.out, "test: loss: %.4f", te[0] / te[2]);
            if (cfg->metric_accuracy) fprintf(t->opts.out, " - accuracy: %.4f", te[1] / te[2]);
            fprintf(t->opts.out, " (%lld samples)\n", (long long)te[2]);
        }
    }
    /* final weights, Keras-readable */
    if (t->opts.run_dir && t->opts.run_dir[0]) {
        dpt_status ws = DPT_OK;
        if (lead) {
            char path[DPT_PATH_MAX];
            snprintf(path, sizeof path, "%s/final.h5", t->opts.run_dir);
            ws = dpt_weights_save_keras(path, t->model);
        }
        st = dpt_comm_agree(c, ws);
    }
done:
    if (t->history) fclose(t->history);
    t->history = NULL;
    return st;
}
