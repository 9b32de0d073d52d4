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
#include <dirent.h>

#include <cblas.h>

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/train.h"
#include "report.h"
#include "train_internal.h"

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
            dpt_watchdog_kick(-1); /* a validation / test batch is progress too */
        }
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_comm_allreduce_sum_f64(c, local, 3);
    /* Keras reports evaluation losses with the regularization penalty too */
    local[0] += dpt_model_penalty(m) * local[2];
    memcpy(sums, local, sizeof local);
    return DPT_OK;
}

/* the reducer BatchNormalization calls (global-batch statistics): an allreduce over the ranks */
static void reduce_sum_f64(void *ctx, double *buf, int n) {
    dpt_comm_allreduce_sum_f64((const dpt_comm *)ctx, buf, n);
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static bool has_checkpoint_files(const char *dir) {
    char path[DPT_PATH_MAX];
    snprintf(path, sizeof path, "%s/last.h5", dir);
    if (access(path, F_OK) == 0)
        return true;
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, "ckpt-", 5))
            any = true;
    closedir(d);
    return any;
}

/* The trainer's own state in a checkpoint: learning rate (ReduceLROnPlateau may have changed it)
 * and the callbacks' counters. The best weights of restore_best_weights are not kept: after a
 * resume the best is tracked again from there. */
enum {
    TS_PRESENT,
    TS_LR,
    TS_ES_WAIT,
    TS_ES_HAS_BEST,
    TS_ES_BEST,
    TS_ES_BEST_EPOCH,
    TS_ES_STOPPED_EPOCH,
    TS_RL_WAIT,
    TS_RL_COOLDOWN,
    TS_RL_BEST,
    TS_STOPPED
};

static void pack_state(const dpt_train *t, double *ts) {
    ts[TS_PRESENT] = 1;
    ts[TS_LR] = dpt_optim_learning_rate(t->optim);
    ts[TS_ES_WAIT] = t->cb.es_wait;
    ts[TS_ES_HAS_BEST] = t->cb.es_has_best;
    ts[TS_ES_BEST] = t->cb.es_best;
    ts[TS_ES_BEST_EPOCH] = t->cb.es_best_epoch;
    ts[TS_ES_STOPPED_EPOCH] = t->cb.es_stopped_epoch;
    ts[TS_RL_WAIT] = t->cb.rl_wait;
    ts[TS_RL_COOLDOWN] = t->cb.rl_cooldown_counter;
    ts[TS_RL_BEST] = t->cb.rl_best;
    ts[TS_STOPPED] = t->stopped_early;
}

static dpt_status unpack_state(dpt_train *t, const double *ts) {
    if (ts[TS_PRESENT] != 1)
        return DPT_OK;
    t->cb.es_wait = (int)ts[TS_ES_WAIT];
    t->cb.es_has_best = ts[TS_ES_HAS_BEST] != 0;
    t->cb.es_best = ts[TS_ES_BEST];
    t->cb.es_best_epoch = (int)ts[TS_ES_BEST_EPOCH];
    t->cb.es_stopped_epoch = (int)ts[TS_ES_STOPPED_EPOCH];
    t->cb.rl_wait = (int)ts[TS_RL_WAIT];
    t->cb.rl_cooldown_counter = (int)ts[TS_RL_COOLDOWN];
    t->cb.rl_best = ts[TS_RL_BEST];
    t->stopped_early = ts[TS_STOPPED] != 0;
    if (t->cfg->callbacks.reduce_lr.enabled)
        return dpt_optim_set_learning_rate(t->optim, ts[TS_LR]);
    return DPT_OK;
}

/* Rank 0 finds and reads the newest valid checkpoint; every rank receives its state. Collective. */
static dpt_status resume_from_checkpoint(dpt_train *t) {
    const dpt_comm *c = t->c;
    dpt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    int found = 0;
    dpt_status st = DPT_OK;
    if (c->rank == 0 && has_checkpoint_files(t->opts.run_dir)) {
        st = dpt_ckpt_find_latest(t->opts.run_dir, t->model, t->resumed_from,
                                  sizeof t->resumed_from);
        if (st == DPT_OK)
            st = dpt_ckpt_read(t->resumed_from, t->model, t->optim, &meta);
        if (st == DPT_OK && meta.seed != t->cfg->seed)
            st = dpt_error_set(
                DPT_ERR_CHECKPOINT,
                "%s: written with seed %u, but this run's seed is %u: an exact resume "
                "needs the same seed",
                t->resumed_from, meta.seed, t->cfg->seed);
        if (st == DPT_OK && meta.epoch > t->cfg->epochs)
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: already %lld epochs done, more than this run's %d",
                               t->resumed_from, (long long)meta.epoch, t->cfg->epochs);
        found = st == DPT_OK;
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_comm_bcast(c, &found, sizeof found);
    if (!found) {
        if (c->rank == 0 && t->opts.verbose > 0)
            fprintf(t->opts.out, "resume: no checkpoint in %s: starting from the beginning\n",
                    t->opts.run_dir);
        return DPT_OK;
    }
    dpt_comm_bcast(c, &meta, sizeof meta);
    dpt_comm_bcast(c, t->resumed_from, sizeof t->resumed_from);
    int64_t np = dpt_model_n_params(t->model);
    dpt_comm_bcast(c, dpt_model_params(t->model), np * (int64_t)sizeof(float));
    for (int i = 0; i < dpt_optim_n_slots(t->optim); i++)
        dpt_comm_bcast(c, dpt_optim_slot(t->optim, i), np * (int64_t)sizeof(float));
    int64_t it = dpt_optim_iterations(t->optim);
    dpt_comm_bcast(c, &it, sizeof it);
    dpt_optim_set_iterations(t->optim, it);
    t->epoch = meta.epoch;
    t->global_step = meta.global_step;
    t->start_step_in_epoch = meta.step_in_epoch;
    memcpy(t->resume_sums, meta.epoch_sums, sizeof t->resume_sums);
    dpt_status ust = unpack_state(t, meta.trainer_state); /* same bytes on every rank */
    if (ust != DPT_OK)
        return ust;
    if (c->rank == 0 && t->opts.verbose > 0) {
        fprintf(t->opts.out, "resume: %s: epoch %lld, step %lld of the epoch (global step %lld)\n",
                t->resumed_from, (long long)meta.epoch + 1, (long long)meta.step_in_epoch,
                (long long)meta.global_step);
        if (meta.world_size != c->size)
            fprintf(t->opts.out,
                    "resume: the checkpoint was written by %d ranks, this run has %d: the batches "
                    "are the same, the dropout masks (drawn per rank) are not\n",
                    meta.world_size, c->size);
    }
    return DPT_OK;
}

/* Rank 0 writes a checkpoint of the current state; agreed. Collective. */
static dpt_status write_checkpoint(dpt_train *t, int64_t epoch, int64_t step_in_epoch,
                                   const double sums[3]) {
    dpt_status st = DPT_OK;
    dpt_watchdog_hold(); /* the write is progress, for rank 0 and for the ranks waiting on it */
    /* each rank keeps only its part of the optimizer's state current: gather it first */
    for (int i = 0; i < dpt_optim_n_slots(t->optim); i++)
        dpt_gradex_gather(t->gx, dpt_optim_slot(t->optim, i));
    if (t->c->rank == 0) {
        if (t->stream)
            dpt_stream_hold_io(t->stream); /* HDF5 is not thread-safe: keep the reader out */
        dpt_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.epoch = epoch;
        meta.step_in_epoch = step_in_epoch;
        meta.global_step = t->global_step;
        meta.seed = t->cfg->seed;
        meta.world_size = t->c->size;
        memcpy(meta.epoch_sums, sums, sizeof meta.epoch_sums);
        pack_state(t, meta.trainer_state);
        int keep = t->opts.keep >= 0 ? t->opts.keep : t->cfg->keep;
        st = dpt_ckpt_write(t->opts.run_dir, t->model, t->optim, &meta,
                            t->opts.config_text ? t->opts.config_text : "", keep);
        if (t->stream)
            dpt_stream_release_io(t->stream);
    }
    st = dpt_comm_agree(t->c, st);
    dpt_watchdog_release(t->global_step);
    return st;
}

/* ---- fit ----------------------------------------------------------------------------------- */

dpt_status dpt_fit(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                   dpt_fit_result *res) {
    dpt_train tr;
    dpt_status st = dpt_train_setup(c, cfg, o, &tr);
    if (st != DPT_OK)
        return st;
    st = dpt_train_run(&tr, res);
    dpt_rundir_unlock(&tr.lock, st); /* with DPT_PREEMPTED: the note for launch/ scripts */
    dpt_train_teardown(&tr);
    return st;
}

dpt_status dpt_train_setup(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                           dpt_train *t) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->cfg = cfg;
    t->opts = *o;
    if (!t->opts.out)
        t->opts.out = stdout;
    FILE *out = t->opts.out;
    bool lead = c->rank == 0;
    dpt_status st = DPT_OK;

    /* 1. the data: metadata (every rank reads it itself: cheap, and errors agree) */
    if (!cfg->data_path[0])
        st = dpt_error_set(DPT_ERR_CONFIG, "%s: data.path: required (or pass --data FILE)",
                           cfg->file);
    if (st == DPT_OK)
        st = dpt_data_probe(cfg->data_path, cfg->train_group, &t->info);
    if (st == DPT_OK && cfg->validation_group[0])
        st = dpt_data_probe(cfg->data_path, cfg->validation_group, &t->vinfo);
    if (st == DPT_OK && cfg->test_group[0])
        st = dpt_data_probe(cfg->data_path, cfg->test_group, &t->tinfo);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;

    /* Keras validation_split: the LAST fraction of the samples, before any shuffling. */
    int64_t n = t->info.n;
    if (cfg->validation_group[0]) {
        t->n_train = n;
    } else {
        t->n_train = (int64_t)floor((double)n * (1.0 - cfg->validation_split));
    }
    t->n_val = cfg->validation_group[0] ? t->vinfo.n : n - t->n_train;
    if (t->n_train < c->size)
        st = dpt_error_set(
            DPT_ERR_DATA,
            "%s: /%s: %lld training samples%s for %d ranks: need at least one per rank",
            cfg->data_path, cfg->train_group, (long long)t->n_train,
            cfg->validation_split > 0 ? " after validation_split" : "", c->size);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;

    /* 2. the model: same seed everywhere, then rank 0's parameters broadcast anyway */
    dpt_shape in = cfg->has_input_shape ? cfg->input_shape : t->info.x_shape;
    dpt_split_range(t->n_train, c->rank, c->size, &t->lo, &t->hi);
    int64_t B = cfg->batch_size;
    /* Reading mode: the shard in memory, or streamed when it is larger than the memory limit.
     * Streaming implies the local (balanced) order; in memory the global order is the default. */
    int64_t x_floats = dpt_shape_size(&in), shard_bytes;
    int64_t limit = o->memory_limit > 0 ? o->memory_limit : dpt_default_memory_limit(c);
    st = dpt_mul_i64(t->hi - t->lo, (x_floats + 16) * (int64_t)sizeof(float), "shard size",
                     &shard_bytes);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    int any_stream = shard_bytes > limit, streaming = 0;
    MPI_Allreduce(&any_stream, &streaming, 1, MPI_INT, MPI_MAX, c->comm);
    t->streaming = streaming;
    t->local_order = t->streaming || o->local_order;
    int64_t max_local = t->local_order ? (B + c->size - 1) / c->size : B;
    if (max_local > t->hi - t->lo)
        max_local = t->hi - t->lo;
    if (max_local < 1)
        max_local = 1;
    t->max_local = max_local;
    dpt_json_ctx ctx = {.file = cfg->model_file[0] ? cfg->model_file : cfg->file};
    st = dpt_model_create(cfg->layers, &in, max_local, cfg->seed, &ctx, &t->model);
    if (st == DPT_OK) {
        dpt_model_set_fused_head(t->model, cfg->loss);
        dpt_model_set_reducer(t->model, reduce_sum_f64, (void *)c);
        st = dpt_optim_create(&cfg->optim, dpt_model_n_params(t->model), &t->optim);
    }
    if (st == DPT_OK) /* the gradient plus the 4 per-step counts of train_step */
        st = dpt_gradex_create(c, dpt_model_n_params(t->model), 4, o->reduce, &t->gx);
    if (st == DPT_OK && dpt_gradex_slot(t->gx))
        dpt_model_bind_grads(t->model, dpt_gradex_slot(t->gx));
    if (st == DPT_OK) { /* frozen layers and moving statistics are never updated */
        const int64_t *seg = NULL;
        int nseg = dpt_model_trainable_segments(t->model, &seg);
        st = dpt_optim_set_segments(t->optim, seg, nseg);
    }
    dpt_callbacks_begin(&t->cb, &cfg->callbacks);
    if (st == DPT_OK && cfg->callbacks.early_stopping.restore_best_weights)
        st = dpt_alloc((size_t)dpt_model_n_params(t->model) * sizeof(float), "best weights",
                       (void **)&t->best);
    if (st == DPT_OK && c->rank == 0 && o->init_weights && o->init_weights[0])
        st = dpt_weights_load_keras(o->init_weights, t->model);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        dpt_train_teardown(t);
        return st;
    }
    dpt_comm_bcast(c, dpt_model_params(t->model),
                   dpt_model_n_params(t->model) * (int64_t)sizeof(float));
    st = dpt_rundir_lock(c, o->run_dir, &t->lock); /* one job per run directory, from here on */
    if (st == DPT_OK && o->resume && o->run_dir && o->run_dir[0])
        st = resume_from_checkpoint(t);
    if (st != DPT_OK) {
        dpt_train_teardown(t);
        return st;
    }

    /* 3. this rank's shards */
    dpt_target_spec ts = {.loss = cfg->loss, .n_outputs = dpt_model_output_size(t->model)};
    const dpt_shape *ms = dpt_model_input_shape(t->model);
    if (t->streaming)
        st = dpt_stream_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, limit / 4,
                             cfg->seed, &t->stream);
    else
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
        int64_t xs = t->stream ? dpt_stream_x_size(t->stream) : dpt_shard_x_size(t->train);
        int64_t ys = t->stream ? dpt_stream_y_size(t->stream) : dpt_shard_y_size(t->train), nb;
        st = dpt_mul_i64(max_local, xs, "batch buffer", &nb);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)nb * sizeof(float), "batch x", (void **)&t->xb);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)(max_local * ys) * sizeof(float), "batch y", (void **)&t->yb);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)(max_local * dpt_model_output_size(t->model)) * sizeof(float),
                           "batch dout", (void **)&t->dout);
        if (st == DPT_OK)
            st = dpt_alloc((size_t)max_local * sizeof(int64_t), "batch rows", (void **)&t->rows);
    }
    if (st == DPT_OK && o->run_dir && o->run_dir[0] && lead)
        st = dpt_mkdir_p(o->run_dir);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        dpt_train_teardown(t);
        return st;
    }

    t->threads = dpt_train_setup_threads(c);
    /* Debian's OpenBLAS 0.3.21 takes some AVX-512/AMX Xeons for a "Prescott" and runs sgemm
     * 4.5x slower: the CLI restarts itself with OPENBLAS_CORETYPE set; when that did not happen
     * (the user chose the kernel, or a library caller), say so with the remedy */
    const char *core = dpt_blas_corename(), *better = dpt_blas_better_coretype();
    if (lead && better)
        fprintf(stderr,
                "dptrain: warning: OpenBLAS uses its generic \"%s\" kernel on a CPU with %s: "
                "sgemm runs several times slower; set OPENBLAS_CORETYPE=%s before starting (the "
                "launchers pass it on)\n",
                core, strcmp(better, "SkylakeX") ? "AVX2" : "AVX-512", better);
    char placement[1536] = "";
    dpt_comm_describe(c, t->threads, placement, sizeof placement);
    if (lead && t->opts.verbose > 0) {
        char buf[8192];
        dpt_model_summary(t->model, buf, sizeof buf);
        fputs(buf, out);
        fprintf(out, "data: %s /%s: %lld train, %lld validation samples; about %lld per rank\n",
                cfg->data_path, cfg->train_group, (long long)t->n_train, (long long)t->n_val,
                (long long)(t->n_train / c->size));
        fprintf(out, "%s; global batch %lld\n", placement, (long long)B);
        const char *was = getenv("DPT_OPENBLAS_REEXEC");
        if (was && getenv("OPENBLAS_CORETYPE"))
            fprintf(out,
                    "OpenBLAS: %s kernel (OPENBLAS_CORETYPE=%s set by dptrain: it had picked %s)\n",
                    core, getenv("OPENBLAS_CORETYPE"), was);
        else
            fprintf(out, "OpenBLAS: %s kernel\n", core ? core : "unknown");
        if (c->size > 1)
            fprintf(out, "gradient exchange: %s%s\n", dpt_gradex_describe(t->gx),
                    dpt_gradex_mode(t->gx) == DPT_REDUCE_SHM
                        ? "; each rank updates its part of the weights"
                        : "");
        if (t->stream)
            fprintf(out,
                    "reading: streamed (shard above the memory limit), windows of %lld x %lld "
                    "rows read ahead, local order\n",
                    (long long)dpt_stream_window_chunks(t->stream),
                    (long long)dpt_stream_chunk_rows(t->stream));
        else
            fprintf(out, "reading: shard in memory, %s order\n",
                    t->local_order ? "local (balanced)" : "global (N ranks = 1 rank)");
        if (o->run_dir && o->run_dir[0])
            fprintf(out, "run directory: %s\n", o->run_dir);
        fflush(out);
    }
    return DPT_OK;
}

void dpt_train_teardown(dpt_train *t) {
    dpt_rundir_unlock(&t->lock, DPT_OK);
    dpt_shard_destroy(&t->train);
    dpt_stream_destroy(&t->stream);
    dpt_shard_destroy(&t->val);
    dpt_optim_destroy(&t->optim);
    dpt_model_destroy(&t->model); /* before the exchange: its gradients may live in the window */
    dpt_gradex_destroy(&t->gx);
    dpt_free(t->xb);
    dpt_free(t->yb);
    dpt_free(t->dout);
    dpt_free(t->rows);
    dpt_free(t->best);
    t->best = NULL;
    t->xb = t->yb = t->dout = NULL;
    t->rows = NULL;
}

/* 1 if any of g (n) is NaN or infinite */
static uint32_t nonfinite_any(const float *g, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= dpt_nonfinite_f32(g[i]);
    return bad;
}

/* exit 6 for a non-finite loss or gradient at step k of this epoch */
static dpt_status stop_nonfinite(const dpt_train *t, int64_t k, const char *what) {
    return dpt_error_set(DPT_ERR_NUMERIC,
                         "epoch %lld, step %lld: the %s is not finite; stopping (the last good "
                         "checkpoint is kept; --skip-nonfinite skips such batches)",
                         (long long)t->epoch + 1, (long long)k + 1, what);
}

/* One optimizer step on global batch k of the epoch's order. Collective. Returns the reduced
 * batch sums (loss, correct, count) in sums. */
static dpt_status train_step(dpt_train *t, const dpt_order *ord, int64_t k, double sums[4]) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    int64_t B = cfg->batch_size, p0 = k * B;
    int64_t p1 = p0 + B < t->n_train ? p0 + B : t->n_train;
    int64_t cnt = 0;
    if (!t->local_order) {
        /* global order: the members of global batch k that this rank owns */
        for (int64_t pos = p0; pos < p1; pos++) {
            int64_t idx = dpt_order_at(ord, pos);
            if (idx >= t->lo && idx < t->hi)
                t->rows[cnt++] = idx - t->lo;
        }
    } else {
        /* local order: this rank's next share of the batch, balanced within one sample */
        cnt = dpt_local_count(t->n_train, p0, p1, c->rank, c->size);
        DPT_ASSERT(cnt <= t->max_local);
        if (!t->stream) {
            int64_t off = dpt_local_offset(t->n_train, p0, c->rank, c->size);
            for (int64_t i = 0; i < cnt; i++)
                t->rows[i] = dpt_order_at(ord, off + i);
        }
    }
    dpt_model *m = t->model;
    dpt_model_zero_grads(m);
    double t0 = dpt_now();
    /* (loss sum, correct, count, preemption signal seen): they ride with the gradients */
    double local[4] = {0, 0, (double)cnt, dpt_signals_pending() ? 1.0 : 0.0};
    dpt_status st = DPT_OK;
    if (cnt > 0 || dpt_model_is_collective(m)) { /* batch norm: every rank takes part */
        if (cnt == 0) {
            /* nothing to read: forward/backward on 0 samples still join the reductions */
        } else if (t->stream) {
            st = dpt_stream_next(t->stream, cnt, t->xb, t->yb);
            if (st != DPT_OK)
                dpt_comm_abort(c, st); /* a bad value found mid-epoch: end the job */
        } else {
            dpt_shard_gather(t->train, t->rows, cnt, t->xb, t->yb);
        }
        double td = dpt_now();
        t->prof[PROF_DATA] += td - t0;
        t0 = td;
        dpt_pass p = {.training = true,
                      .seed = cfg->seed,
                      .rank = (uint32_t)c->rank,
                      .step = (uint64_t)t->global_step};
        const float *out = dpt_model_forward(m, &p, t->xb, cnt);
        st = dpt_loss_compute(cfg->loss, dpt_model_head_act(m), out, t->yb, cnt,
                              dpt_model_output_size(m), t->dout, &local[0], &local[1]);
        if (st != DPT_OK)
            dpt_comm_abort(c, st); /* a bad label found mid-step: end the job */
        dpt_model_backward(m, &p, t->dout, cnt);
    }
    float *g = dpt_model_grads(m);
    int64_t np = dpt_model_n_params(m), lo, hi;
    dpt_gradex_range(t->gx, &lo, &hi); /* the part of the weights this rank updates */
    double t1 = dpt_now();
    /* ONE exchange per step: the gradients plus (loss sum, correct, count, signal) in the spare
     * floats after them (float sums of at most one batch: exact counts, loss to 1e-7) */
    for (int i = 0; i < 4; i++)
        g[np + i] = (float)local[i];
    bool exchange = !t->opts.no_allreduce;
    if (exchange)
        dpt_gradex_reduce(t->gx, g);
    /* this rank's part of the summed gradient must be finite. Where every rank updates the same
     * weights from the same sums (MPI exchange, one rank) and a non-finite batch stops the run,
     * the optimizer's own pass says so afterwards (a non-finite gradient makes a non-finite
     * weight; the run ends with exit 6 and those weights are never saved): no scan. Otherwise
     * (parts differ between ranks, or the batch must be skipped before it is applied) a
     * read-only scan first. The 1/batch scaling is folded into the optimizer's pass. */
    bool prescan = t->opts.skip_nonfinite || !exchange || dpt_gradex_mode(t->gx) == DPT_REDUCE_SHM;
    uint32_t bad = prescan ? nonfinite_any(g + lo, hi - lo) : 0;
    if (exchange) {
        bad = (uint32_t)dpt_gradex_finish(t->gx, g, (int)bad);
    } else { /* benchmark: only the counts (and the scan's verdict) are summed */
        g[np + 4] = (float)bad;
        dpt_comm_allreduce_sum_f32(c, g + np, 5);
        bad = g[np + 4] > 0;
    }
    for (int i = 0; i < 4; i++)
        local[i] = (double)g[np + i];
    memcpy(sums, local, sizeof local);
    double t2 = dpt_now();
    t->prof[PROF_COMPUTE] += t1 - t0;
    t->prof[PROF_REDUCE] += t2 - t1;
    /* mean over the samples actually in this global batch (same number on every rank) */
    float scale = 1.0f / (float)(p1 - p0);
    /* regularization: identical on every rank, after the division (Keras: mean loss + penalty);
     * it adds to the whole buffer, of which only [lo, hi) is used */
    if (dpt_model_has_regularizers(m)) {
        for (int64_t i = lo; i < hi; i++)
            g[i] *= scale;
        scale = 1.0f;
        sums[0] += dpt_model_regularize(m, 1.0f) * (double)(p1 - p0);
    }
    if (!isfinite(local[0]) || bad) {
        const char *what = !isfinite(local[0]) ? "loss" : "gradient";
        if (!t->opts.skip_nonfinite)
            return stop_nonfinite(t, k, what);
        t->skipped++;
        if (c->rank == 0)
            fprintf(stderr,
                    "dptrain: warning: epoch %lld, step %lld: the %s is not finite; batch "
                    "skipped\n",
                    (long long)t->epoch + 1, (long long)k + 1, what);
        sums[0] = sums[1] = sums[2] = 0; /* the skipped batch does not count in the metrics */
        t->global_step++;
        return DPT_OK;
    }
    double t3 = dpt_now();
    bool wbad = dpt_optim_step_range(t->optim, dpt_model_params(m), g, lo, hi, scale);
    double t4 = dpt_now();
    t->prof[PROF_UPDATE] += t4 - t3;
    if (wbad && !prescan) /* the same verdict on every rank: they updated the same weights */
        return stop_nonfinite(t, k, "gradient");
    if (exchange) /* every rank's updated part reaches every rank */
        dpt_gradex_gather(t->gx, dpt_model_params(m));
    t->prof[PROF_REDUCE] += dpt_now() - t4;
    t->prof[PROF_STEPS] += 1;
    t->global_step++;
    return DPT_OK;
}

/* --profile: this epoch's time per step in data, compute, reduction (the allreduce, including the
 * wait for the slowest rank) and update, as rank 0 sees it and as the slowest rank does. */
static void report_profile(dpt_train *t) {
    double mine[PROF_N], worst[PROF_N];
    memcpy(mine, t->prof, sizeof mine);
    MPI_Allreduce(mine, worst, PROF_N, MPI_DOUBLE, MPI_MAX, t->c->comm);
    double n = mine[PROF_STEPS] > 0 ? mine[PROF_STEPS] : 1;
    if (t->c->rank == 0)
        dpt_report_note(t->report,
                        "profile: per step %.1f us data, %.1f us compute, %.1f us exchange+wait, "
                        "%.1f us update (slowest rank: %.1f compute, %.1f exchange+wait)\n",
                        1e6 * mine[PROF_DATA] / n, 1e6 * mine[PROF_COMPUTE] / n,
                        1e6 * mine[PROF_REDUCE] / n, 1e6 * mine[PROF_UPDATE] / n,
                        1e6 * worst[PROF_COMPUTE] / n, 1e6 * worst[PROF_REDUCE] / n);
    memset(t->prof, 0, sizeof t->prof);
}

/* EarlyStopping / ReduceLROnPlateau after an epoch: the same reduced logs on every rank, so every
 * rank takes the same decisions. Collective only in the sense that all ranks call it. */
static dpt_status run_callbacks(dpt_train *t, const double tr[3], const double va[3]) {
    const dpt_callbacks_spec *sp = &t->cfg->callbacks;
    if (!sp->early_stopping.enabled && !sp->reduce_lr.enabled)
        return DPT_OK;
    dpt_epoch_logs logs = {{0}, {false}};
    logs.v[DPT_MON_LOSS] = tr[0] / tr[2];
    logs.have[DPT_MON_LOSS] = tr[2] > 0;
    logs.v[DPT_MON_ACCURACY] = tr[1] / tr[2];
    logs.have[DPT_MON_ACCURACY] = tr[2] > 0 && t->cfg->metric_accuracy;
    logs.v[DPT_MON_VAL_LOSS] = va[0] / va[2];
    logs.have[DPT_MON_VAL_LOSS] = va[2] > 0;
    logs.v[DPT_MON_VAL_ACCURACY] = va[1] / va[2];
    logs.have[DPT_MON_VAL_ACCURACY] = va[2] > 0 && t->cfg->metric_accuracy;
    dpt_callback_actions a;
    dpt_callbacks_on_epoch_end(&t->cb, (int)t->epoch, &logs, dpt_optim_learning_rate(t->optim), &a);
    if (a.save_best && t->best)
        memcpy(t->best, dpt_model_params(t->model),
               (size_t)dpt_model_n_params(t->model) * sizeof(float));
    if (a.set_lr) {
        dpt_status st = dpt_optim_set_learning_rate(t->optim, a.new_lr);
        if (st != DPT_OK)
            return st;
        if (t->c->rank == 0)
            dpt_report_note(t->report, "ReduceLROnPlateau: learning rate reduced to %g\n",
                            a.new_lr);
    }
    if (a.stop)
        t->stopped_early = true;
    return DPT_OK;
}

dpt_status dpt_train_run(dpt_train *t, dpt_fit_result *res) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    bool lead = c->rank == 0;
    dpt_status st = DPT_OK;
    if (lead)
        st = dpt_report_open(t->opts.run_dir, t->opts.verbose, t->opts.out, t->epoch, &t->report);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    /* The ranks of a node read ONE copy of the weights while training (each updates its part in
     * place) when nothing but the optimizer writes them: no moving statistics, no frozen layers.
     * It halves the memory traffic of the exchange and keeps one copy in the shared cache. */
    if (!t->opts.no_allreduce && dpt_gradex_mode(t->gx) == DPT_REDUCE_SHM &&
        dpt_model_n_trainable(t->model) == dpt_model_n_params(t->model))
        dpt_model_bind_params(t->model, dpt_gradex_share(t->gx, dpt_model_params(t->model)), false);
    if (t->opts.handle_signals)
        dpt_signals_install();
    dpt_watchdog_start(t->opts.watchdog_s, c->rank, c->size);
    int64_t B = cfg->batch_size, steps = (t->n_train + B - 1) / B;
    double t_start = dpt_now();
    double tr[3] = {0}, va[3] = {0};
    bool ckpt = t->opts.run_dir && t->opts.run_dir[0];
    int64_t every =
        t->opts.checkpoint_every >= 0 ? t->opts.checkpoint_every : cfg->checkpoint_every;
    int64_t first = t->start_step_in_epoch;
    for (; t->epoch < cfg->epochs && !t->stopped_early; t->epoch++, first = 0) {
        double t0 = dpt_now();
        dpt_order ord;
        if (t->stream)
            dpt_stream_begin_epoch_at(t->stream, t->epoch,
                                      dpt_local_offset(t->n_train, first * B, c->rank, c->size));
        else if (t->local_order)
            dpt_order_init_local(&ord, t->hi - t->lo, cfg->seed, t->epoch, t->lo, cfg->shuffle);
        else
            dpt_order_init(&ord, t->n_train, cfg->seed, t->epoch, cfg->shuffle);
        if (first > 0)
            memcpy(tr, t->resume_sums, sizeof tr);
        else
            tr[0] = tr[1] = tr[2] = 0;
        for (int64_t k = first; k < steps; k++) {
            double s[4];
            st = train_step(t, &ord, k, s);
            if (st != DPT_OK)
                goto done;
            tr[0] += s[0];
            tr[1] += s[1];
            tr[2] += s[2];
            if (lead)
                dpt_report_step(t->report, t->epoch + 1, cfg->epochs, k + 1, steps, tr[0] / tr[2],
                                cfg->metric_accuracy ? tr[1] / tr[2] : NAN, tr[2], dpt_now() - t0);
            if (s[3] > 0) { /* some rank got SIGTERM / SIGUSR1 / SIGINT: all stop here */
                if (!ckpt) {
                    st =
                        dpt_error_set(DPT_PREEMPTED,
                                      "stopped by a signal at epoch %lld, step %lld; no --run-dir, "
                                      "so nothing was saved",
                                      (long long)t->epoch + 1, (long long)k + 1);
                    goto done;
                }
                st = write_checkpoint(t, t->epoch, k + 1, tr);
                if (st == DPT_OK)
                    st = dpt_error_set(DPT_PREEMPTED,
                                       "stopped by a signal at epoch %lld, step %lld: checkpoint "
                                       "written to %s/last.h5; continue with --resume",
                                       (long long)t->epoch + 1, (long long)k + 1, t->opts.run_dir);
                goto done;
            }
            dpt_watchdog_kick(t->global_step);
            /* without the reduction (a benchmark) the replicas differ by design */
            if (t->opts.check_replicas > 0 && !t->opts.no_allreduce &&
                t->global_step % t->opts.check_replicas == 0) {
                st = dpt_check_replicas(c, dpt_model_params(t->model), dpt_model_n_params(t->model),
                                        t->global_step);
                if (st != DPT_OK)
                    goto done;
            }
            if (ckpt && every > 0 && t->global_step % every == 0 && k + 1 < steps) {
                st = write_checkpoint(t, t->epoch, k + 1, tr);
                if (st != DPT_OK)
                    goto done;
            }
        }
        double secs = dpt_now() - t0;
        va[0] = va[1] = va[2] = 0;
        if (t->n_val > 0) {
            st = dpt_eval_shard(c, t->model, cfg->loss, t->val, cfg->seed, va);
            if (st != DPT_OK)
                goto done;
        }
        dpt_watchdog_kick(t->global_step);
        if (lead) {
            dpt_epoch_log log = {.epoch = t->epoch + 1,
                                 .epochs = cfg->epochs,
                                 .loss = tr[0] / tr[2],
                                 .accuracy = cfg->metric_accuracy ? tr[1] / tr[2] : NAN,
                                 .val_loss = va[2] > 0 ? va[0] / va[2] : NAN,
                                 .val_accuracy =
                                     va[2] > 0 && cfg->metric_accuracy ? va[1] / va[2] : NAN,
                                 .seconds = secs,
                                 .samples_per_s = tr[2] / secs,
                                 .learning_rate = dpt_optim_learning_rate(t->optim),
                                 .ranks = c->size};
            st = dpt_report_epoch(t->report, &log);
        }
        st = dpt_comm_agree(c, st);
        if (st != DPT_OK)
            goto done;
        if (t->opts.profile)
            report_profile(t);
        st = run_callbacks(t, tr, va);
        if (st != DPT_OK)
            goto done;
        if (ckpt) {
            double zero[3] = {0, 0, 0};
            st = write_checkpoint(t, t->epoch + 1, 0, zero);
            if (st != DPT_OK)
                goto done;
        }
        if (t->stopped_early) {
            if (lead)
                dpt_report_note(t->report,
                                "EarlyStopping: stopped after epoch %lld (best epoch "
                                "%d)\n",
                                (long long)t->epoch + 1, t->cb.es_best_epoch + 1);
            t->epoch++;
            break;
        }
    }
    dpt_model_bind_params(t->model, NULL, true); /* each rank its own copy again */
    if (t->best && dpt_callbacks_on_train_end(&t->cb)) {
        memcpy(dpt_model_params(t->model), t->best,
               (size_t)dpt_model_n_params(t->model) * sizeof(float));
        if (lead)
            dpt_report_note(t->report, "EarlyStopping: restored the weights of epoch %d\n",
                            t->cb.es_best_epoch + 1);
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
    dpt_stream_destroy(&t->stream); /* the epochs are over: no reader thread from here on */
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
        if (st == DPT_OK)
            st = dpt_eval_shard(c, t->model, cfg->loss, test, cfg->seed, te);
        dpt_shard_destroy(&test);
        if (st != DPT_OK)
            goto done;
        if (lead) {
            if (cfg->metric_accuracy)
                dpt_report_note(t->report, "test: loss: %.4f - accuracy: %.4f (%lld samples)\n",
                                te[0] / te[2], te[1] / te[2], (long long)te[2]);
            else
                dpt_report_note(t->report, "test: loss: %.4f (%lld samples)\n", te[0] / te[2],
                                (long long)te[2]);
        }
    }
    /* final weights, Keras-readable */
    if (t->opts.run_dir && t->opts.run_dir[0]) {
        dpt_status ws = DPT_OK;
        dpt_watchdog_hold(); /* writing is progress, as for a checkpoint */
        if (lead) {
            char path[DPT_PATH_MAX];
            snprintf(path, sizeof path, "%s/final.h5", t->opts.run_dir);
            ws = dpt_weights_save_keras(path, t->model);
        }
        st = dpt_comm_agree(c, ws);
        dpt_watchdog_release(t->global_step);
    }
done:
    dpt_model_bind_params(t->model, NULL, true); /* no rank writes the shared copy any more */
    dpt_watchdog_stop();
    dpt_report_close(&t->report);
    return st;
}
