/* Setting a training run up: the data's metadata and the split, the reading mode, the model with
 * its optimizer and gradient exchange, this rank's shards, the per-step buffers, and rank 0's
 * start-up lines. Collective; every failure is agreed across ranks before anything else. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/train.h"
#include "report.h"
#include "train_internal.h"

/* the reducer BatchNormalization calls (global-batch statistics): an allreduce over the ranks */
static void reduce_sum_f64(void *ctx, double *buf, int n) {
    dpt_comm_allreduce_sum_f64((const dpt_comm *)ctx, buf, n);
}

/* the model's per-layer "gradients ready" hook, for exchanges that start early */
static void grads_ready(void *ctx, int64_t off, int64_t len) {
    dpt_gradex_ready((dpt_gradex *)ctx, off, len);
}

/* The ranks must see the same split (a file replaced or appended while the job starts, stale NFS
 * attributes): its metadata, as integers, compared across ranks before anything depends on it.
 * DPT_ERR_DATA naming the file, the split and what differs. Collective. */
static dpt_status agree_on_data(const dpt_train *t, const char *group, const dpt_data_info *in) {
    int64_t scale_bits = 0;
    memcpy(&scale_bits, &in->x_scale, sizeof in->x_scale);
    double mine[6] = {(double)in->n,
                      (double)dpt_shape_size(&in->x_shape),
                      (double)in->y_cols,
                      (double)(in->x_uint8 + 2 * in->y_integer + 4 * in->has_y + 8 * in->has_w),
                      (double)scale_bits,
                      (double)in->x_shape.rank};
    double lo[6], hi[6];
    for (int i = 0; i < 6; i++)
        lo[i] = -mine[i], hi[i] = mine[i];
    dpt_comm_allreduce_max_f64(t->c, lo, 6);
    dpt_comm_allreduce_max_f64(t->c, hi, 6);
    static const char *const what[6] = {"the number of samples",  "the sample size", "y's columns",
                                        "the dtypes or datasets", "x's scale",       "x's rank"};
    for (int i = 0; i < 6; i++)
        if (-lo[i] != hi[i])
            return dpt_error_set(DPT_ERR_DATA,
                                 "%s: /%s: the ranks see different files (%s: %.17g on some, "
                                 "%.17g on others; replaced while the job started, or a stale "
                                 "network file system?)",
                                 t->cfg->data_path, group, what[i], -lo[i], hi[i]);
    return DPT_OK;
}

/* 1. the data's metadata (every rank reads it itself: cheap, and errors agree) and the split:
 * Keras's validation_split is the LAST fraction of the samples, before any shuffling. */
static dpt_status plan_data(dpt_train *t) {
    const dpt_config *cfg = t->cfg;
    const dpt_comm *c = t->c;
    dpt_status st = DPT_OK;
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
    if (st == DPT_OK)
        st = dpt_comm_agree(c, agree_on_data(t, cfg->train_group, &t->info));
    if (st == DPT_OK && cfg->validation_group[0])
        st = dpt_comm_agree(c, agree_on_data(t, cfg->validation_group, &t->vinfo));
    if (st != DPT_OK)
        return st;
    int64_t n = t->info.n;
    if (cfg->validation_group[0])
        t->n_train = n;
    else
        t->n_train = (int64_t)floor((double)n * (1.0 - cfg->validation_split));
    t->n_val = cfg->validation_group[0] ? t->vinfo.n : n - t->n_train;
    if (t->info.has_w && cfg->n_class_weight > 0) /* Keras refuses both too */
        st = dpt_error_set(DPT_ERR_CONFIG,
                           "%s: fit.class_weight: the training split %s:/%s has sample weights "
                           "(w): give one or the other",
                           cfg->file, cfg->data_path, cfg->train_group);
    else if (t->n_train < c->size)
        st = dpt_error_set(
            DPT_ERR_DATA,
            "%s: /%s: %lld training samples%s for %d ranks: need at least one per rank",
            cfg->data_path, cfg->train_group, (long long)t->n_train,
            cfg->validation_split > 0 ? " after validation_split" : "", c->size);
    return dpt_comm_agree(c, st);
}

/* Reproducible mode: the global order, every training row on every rank, one micro-batch at a
 * time (dpt_train_step_reproducible). */
static dpt_status plan_reproducible(dpt_train *t, int64_t limit) {
    const dpt_config *cfg = t->cfg;
    dpt_status st = DPT_OK;
    if (t->opts.local_order)
        st = dpt_error_set(DPT_ERR_USAGE,
                           "--order local: refused with fit.reproducible: the local order's "
                           "batches depend on the rank count");
    else if (t->streaming)
        st = dpt_error_set(DPT_ERR_DATA,
                           "%s: /%s: with fit.reproducible every rank holds all %lld training "
                           "rows, more than the memory limit (%lld bytes; --memory-limit)",
                           cfg->data_path, cfg->train_group, (long long)t->n_train,
                           (long long)limit);
    else if (t->n_train > UINT32_MAX)
        st = dpt_error_set(DPT_ERR_DATA, "%s: /%s: fit.reproducible supports up to 2^32 samples",
                           cfg->data_path, cfg->train_group);
    t->micro = cfg->micro_batch < cfg->batch_size ? cfg->micro_batch : cfg->batch_size;
    t->max_local = t->micro;
    return st;
}

/* 2. the reading mode: the shard in memory, or streamed when it is larger than the memory limit.
 * Streaming implies the local (balanced) order; in memory the global order is the default.
 * Sets this rank's rows, the order, the largest local batch. */
static dpt_status plan_reading(dpt_train *t, const dpt_shape *in, int64_t limit) {
    const dpt_comm *c = t->c;
    dpt_split_range(t->n_train, c->rank, c->size, &t->lo, &t->hi);
    if (t->repro) { /* every rank holds every training row: micro-batches are any rows */
        t->lo = 0;
        t->hi = t->n_train;
    }
    int64_t B = t->cfg->batch_size, shard_bytes = 0;
    dpt_status st = dpt_mul_i64(t->hi - t->lo, (dpt_shape_size(in) + 16) * (int64_t)sizeof(float),
                                "shard size", &shard_bytes);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    int streaming = shard_bytes > limit;
    dpt_comm_allreduce_max_i32(c, &streaming, 1);
    t->streaming = streaming;
    if (streaming && t->info.has_w)
        return dpt_error_set(DPT_ERR_DATA,
                             "%s: /%s/w: sample weights with a streamed shard (larger than "
                             "--memory-limit) are not supported yet",
                             t->cfg->data_path, t->cfg->train_group);
    t->local_order = t->streaming || t->opts.local_order;
    if (t->repro)
        return plan_reproducible(t, limit);
    int64_t max_local = t->local_order ? (B + c->size - 1) / c->size : B;
    if (max_local > t->hi - t->lo)
        max_local = t->hi - t->lo;
    t->max_local = max_local < 1 ? 1 : max_local;
    return DPT_OK;
}

/* optim (clipnorm): the model's weight tensors as (offset, length) pairs for the optimizer, which
 * clips each Keras variable's gradient separately. Local. */
static dpt_status set_optim_tensors(dpt_model *m, dpt_optim *o) {
    enum { MAXW = 16 };
    int nl = dpt_model_n_layers(m), n = 0;
    int64_t *pairs = malloc(sizeof(int64_t) * 2 * (size_t)(nl * MAXW + 1));
    if (!pairs)
        return dpt_error_set(DPT_ERR_NOMEM, "optimizer: out of memory");
    for (int i = 0; i < nl; i++) {
        const dpt_layer *l = dpt_model_layer(m, i);
        const char *wn[MAXW];
        dpt_shape ws[MAXW];
        int nw = dpt_layer_weights(l, wn, ws, MAXW);
        int64_t off = l->param_offset, np = dpt_layer_n_params(l);
        for (int j = 0; j < nw && j < MAXW; j++) {
            pairs[2 * n] = off;
            pairs[2 * n + 1] = dpt_shape_size(&ws[j]);
            off += pairs[2 * n + 1];
            n++;
        }
        if (nw < 0 || nw > MAXW || off - l->param_offset != np) { /* weights() and the layout */
            free(pairs);
            return dpt_error_set(
                DPT_ERR_INTERNAL, "layer %d (%s): %d weight tensors of %lld floats, %lld params",
                i + 1, l->name, nw, (long long)(off - l->param_offset), (long long)np);
        }
    }
    dpt_status st = dpt_optim_set_tensors(o, pairs, n);
    free(pairs);
    return st;
}

/* The gradient exchange; its slot (if it has one) becomes the model's gradient buffer. */
static dpt_status make_exchange(dpt_train *t) {
    /* every rank must hold the whole summed gradient and update everything (the MPI exchange)
     * in reproducible mode (micro-batch gradients summed exactly, dpt_comm_exact_sum_f32) and for
     * clipnorm / global_clipnorm (norms over whole tensors; build_model checked --reduce) */
    bool whole = t->repro || dpt_optim_needs_whole_vector(t->optim);
    dpt_reduce_mode mode = whole ? DPT_REDUCE_MPI : t->opts.reduce;
    dpt_status st = dpt_gradex_create(t->c, dpt_model_n_params(t->model), mode, &t->gx);
    if (st != DPT_OK)
        return st;
    int64_t len = 0;
    float *slot = dpt_gradex_slot(t->gx, &len);
    if (slot)
        dpt_model_bind_grads(t->model, slot, len, true);
    if (dpt_gradex_wants_ready(t->gx))
        dpt_model_set_grad_ready(t->model, grads_ready, t->gx);
    return DPT_OK;
}

/* The metrics' step, epoch and validation states, in one block, zeroed. */
static dpt_status alloc_metric_states(dpt_train *t) {
    t->n_mstate = dpt_metrics_state_size(&t->ms);
    if (t->n_mstate == 0)
        return DPT_OK;
    dpt_status st =
        dpt_alloc((size_t)(3 * t->n_mstate) * sizeof(double), "metric states", (void **)&t->m_step);
    if (st != DPT_OK)
        return st;
    memset(t->m_step, 0, (size_t)(3 * t->n_mstate) * sizeof(double));
    t->m_epoch = t->m_step + t->n_mstate;
    t->m_val = t->m_epoch + t->n_mstate;
    return DPT_OK;
}

/* 3. the model (same seed everywhere, then rank 0's parameters broadcast anyway), its optimizer,
 * the exchange, the callbacks; --init-weights on rank 0. */
static dpt_status build_model(dpt_train *t, const dpt_shape *in) {
    const dpt_config *cfg = t->cfg;
    const dpt_comm *c = t->c;
    dpt_json_ctx ctx = {.file = cfg->model_file[0] ? cfg->model_file : cfg->file};
    dpt_status st = dpt_model_create(cfg->layers, in, t->max_local, cfg->seed, &ctx, &t->model);
    if (st == DPT_OK)
        st = dpt_model_check_loss(t->model, cfg->loss, cfg->file);
    if (st == DPT_OK) {
        dpt_model_set_fused_loss(t->model, &cfg->loss_spec);
        dpt_model_set_reducer(t->model, reduce_sum_f64, (void *)c);
        st = dpt_train_metrics(cfg, dpt_model_output_size(t->model), &t->ms);
        if (st == DPT_OK && t->repro && t->ms.n > 0)
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "%s: compile.metrics: \"%s\" with fit.reproducible: not supported "
                               "yet (only accuracy; the metrics' sums are not exact there)",
                               cfg->file, t->ms.m[0].name);
        if (st == DPT_OK)
            st = alloc_metric_states(t);
        if (st == DPT_OK)
            st = dpt_optim_create(&cfg->optim, dpt_model_n_params(t->model), &t->optim);
    }
    if (st == DPT_OK && t->repro) { /* batch norm: statistics per micro-batch, applied per step */
        int64_t per_step = (cfg->batch_size + t->micro - 1) / t->micro;
        st = dpt_model_defer_stats(t->model, (int)((per_step + c->size - 1) / c->size), ctx.file);
    }
    if (st == DPT_OK && dpt_optim_needs_whole_vector(t->optim)) { /* optim: see make_exchange */
        if (t->opts.reduce == DPT_REDUCE_SHM)
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "--reduce shm: the optimizer's clipnorm / global_clipnorm needs "
                               "the whole gradient on every rank; use --reduce mpi or auto");
        else
            st = set_optim_tensors(t->model, t->optim);
    }
    /* every rank takes part in the exchange's collectives whatever happened before */
    int ok = st == DPT_OK;
    dpt_comm_allreduce_min_i32(c, &ok, 1);
    if (ok)
        st = make_exchange(t);
    if (st == DPT_OK) { /* frozen layers and moving statistics are never updated */
        const int64_t *seg = NULL;
        int nseg = dpt_model_trainable_segments(t->model, &seg);
        st = dpt_optim_set_segments(t->optim, seg, nseg);
    }
    dpt_callbacks_begin(&t->cb, &cfg->callbacks);
    if (st == DPT_OK && cfg->callbacks.early_stopping.restore_best_weights)
        st = dpt_alloc((size_t)dpt_model_n_params(t->model) * sizeof(float), "best weights",
                       (void **)&t->best);
    if (st == DPT_OK && c->rank == 0 && t->opts.init_weights && t->opts.init_weights[0])
        st = dpt_weights_load_keras(t->opts.init_weights, t->model);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_comm_bcast(c, dpt_model_params(t->model),
                   dpt_model_n_params(t->model) * (int64_t)sizeof(float));
    return DPT_OK;
}

/* 4. this rank's shards: training rows (in memory or streamed), validation rows */
static dpt_status open_shards(dpt_train *t, int64_t limit) {
    const dpt_config *cfg = t->cfg;
    const dpt_comm *c = t->c;
    dpt_target_spec ts = dpt_train_targets(cfg->loss, t->model);
    const dpt_shape *ms = dpt_model_input_shape(t->model);
    dpt_status st;
    if (t->streaming)
        st = dpt_stream_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, limit / 4,
                             cfg->seed, &t->stream);
    else
        st = dpt_shard_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, &t->train);
    if (st != DPT_OK || t->n_val == 0)
        return st;
    int64_t vlo = 0, vhi = t->n_val; /* reproducible mode: every rank all of them */
    if (!t->repro)
        dpt_split_range(t->n_val, c->rank, c->size, &vlo, &vhi);
    if (cfg->validation_group[0])
        return dpt_shard_open(cfg->data_path, cfg->validation_group, vlo, vhi, &ts, ms, &t->val);
    return dpt_shard_open(cfg->data_path, cfg->train_group, t->n_train + vlo, t->n_train + vhi, &ts,
                          ms, &t->val);
}

/* Reproducible mode: one gradient buffer per micro-batch a rank may get in a step, and the exact
 * sums' scratch. */
static dpt_status alloc_micro(dpt_train *t) {
    int64_t n = dpt_model_n_params(t->model), B = t->cfg->batch_size;
    int64_t per_step = (B + t->micro - 1) / t->micro;
    t->n_mgrad = (int)((per_step + t->c->size - 1) / t->c->size);
    dpt_status st = dpt_alloc((size_t)t->n_mgrad * sizeof(float *), "micro-batch gradients",
                              (void **)&t->mgrad);
    for (int i = 0; i < t->n_mgrad && st == DPT_OK; i++)
        st = dpt_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), "micro-batch gradients",
                       (void **)&t->mgrad[i]);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t), "exact sums", (void **)&t->xacc);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)(n / 256 + 2) * sizeof(int), "exact sums", (void **)&t->xexp);
    return st;
}

/* 5. per-step buffers, sized once for the largest local batch */
static dpt_status alloc_buffers(dpt_train *t) {
    int64_t ml = t->max_local;
    int64_t xs = t->stream ? dpt_stream_x_size(t->stream) : dpt_shard_x_size(t->train);
    int64_t ys = t->stream ? dpt_stream_y_size(t->stream) : dpt_shard_y_size(t->train), nb;
    dpt_status st = dpt_mul_i64(ml, xs, "batch buffer", &nb);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)nb * sizeof(float), "batch x", (void **)&t->xb);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)(ml * ys) * sizeof(float), "batch y", (void **)&t->yb);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)(ml * dpt_model_output_size(t->model)) * sizeof(float), "batch dout",
                       (void **)&t->dout);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)ml * sizeof(int64_t), "batch rows", (void **)&t->rows);
    if (st == DPT_OK && (t->cfg->n_class_weight > 0 || t->info.has_w))
        st = dpt_alloc((size_t)ml * sizeof(float), "batch weights", (void **)&t->wb);
    if (st == DPT_OK && t->repro)
        st = alloc_micro(t);
    return st;
}

/* Debian's OpenBLAS 0.3.21 takes some AVX-512/AMX Xeons for a "Prescott" and runs sgemm 4.5x
 * slower: the CLI restarts itself with OPENBLAS_CORETYPE set; when that did not happen (the user
 * chose the kernel, or a library caller), say so with the remedy. Rank 0. */
static void warn_blas_kernel(void) {
    const char *core = dpt_blas_corename(), *better = dpt_blas_better_coretype();
    if (better)
        fprintf(stderr,
                "dptrain: warning: OpenBLAS uses its generic \"%s\" kernel on a CPU with %s: "
                "sgemm runs several times slower; set OPENBLAS_CORETYPE=%s before starting (the "
                "launchers pass it on)\n",
                core, strcmp(better, "SkylakeX") ? "AVX2" : "AVX-512", better);
}

static void print_kernel(FILE *out) {
    const char *core = dpt_blas_corename(), *was = getenv("DPT_OPENBLAS_REEXEC");
    if (was && getenv("OPENBLAS_CORETYPE"))
        fprintf(out,
                "OpenBLAS: %s kernel (OPENBLAS_CORETYPE=%s set by dptrain: it had picked %s)\n",
                core, getenv("OPENBLAS_CORETYPE"), was);
    else
        fprintf(out, "OpenBLAS: %s kernel\n", core ? core : "unknown");
}

/* 6. the start-up lines: the model, the data, the placement, the kernel, the exchange, the
 * reading mode, the run directory. Collective (the placement gathers host names). */
static void print_startup(dpt_train *t) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    FILE *out = t->opts.out;
    bool lead = c->rank == 0;
    t->threads = dpt_train_setup_threads(c);
    if (lead)
        warn_blas_kernel();
    char placement[1536] = "";
    dpt_comm_describe(c, t->threads, placement, sizeof placement);
    if (!lead || t->opts.verbose <= 0)
        return;
    char buf[8192];
    dpt_model_summary(t->model, buf, sizeof buf);
    fputs(buf, out);
    fprintf(out, "data: %s /%s: %lld train, %lld validation samples; about %lld per rank\n",
            cfg->data_path, cfg->train_group, (long long)t->n_train, (long long)t->n_val,
            (long long)(t->n_train / c->size));
    fprintf(out, "%s; global batch %lld\n", placement, (long long)cfg->batch_size);
    print_kernel(out);
    if (t->repro)
        fprintf(out,
                "mode: reproducible (the same bits on any number of ranks): micro-batches of "
                "%lld, exact fixed-point sums, every rank holds all the training rows\n",
                (long long)t->micro);
    else if (c->size > 1)
        fprintf(out, "gradient exchange: %s%s\n", dpt_gradex_describe(t->gx),
                dpt_gradex_parts_differ(t->gx) ? "; each rank updates its part of the weights"
                                               : "");
    if (t->stream)
        fprintf(out,
                "reading: streamed (shard above the memory limit), windows of %lld x %lld rows "
                "read ahead, local order\n",
                (long long)dpt_stream_window_chunks(t->stream),
                (long long)dpt_stream_chunk_rows(t->stream));
    else
        fprintf(out, "reading: shard in memory, %s order\n",
                t->local_order ? "local (balanced)" : "global (N ranks = 1 rank)");
    if (t->opts.run_dir && t->opts.run_dir[0])
        fprintf(out, "run directory: %s\n", t->opts.run_dir);
    fflush(out);
}

dpt_status dpt_train_setup(const dpt_comm *c, const dpt_config *cfg, const dpt_fit_opts *o,
                           dpt_train *t) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->cfg = cfg;
    t->opts = *o;
    if (!t->opts.out)
        t->opts.out = stdout;
    t->repro = o->reproducible || cfg->reproducible;
    dpt_status st = plan_data(t);
    if (st != DPT_OK)
        return st;
    dpt_shape in = cfg->has_input_shape ? cfg->input_shape : t->info.x_shape;
    int64_t limit = o->memory_limit > 0 ? o->memory_limit : dpt_default_memory_limit(c);
    st = plan_reading(t, &in, limit);
    if (st == DPT_OK)
        st = build_model(t, &in);
    /* one job per run directory, from here on (before anything is written; a dry run writes
     * nothing, not even the directory) */
    if (st == DPT_OK && !o->dry_run)
        st = dpt_rundir_lock(c, o->run_dir, &t->lock);
    if (st == DPT_OK && o->resume && o->run_dir && o->run_dir[0])
        st = dpt_train_resume(t);
    if (st == DPT_OK) {
        st = open_shards(t, limit);
        if (st == DPT_OK)
            st = alloc_buffers(t);
        if (st == DPT_OK && o->run_dir && o->run_dir[0] && c->rank == 0 && !o->dry_run)
            st = dpt_mkdir_p(o->run_dir);
        st = dpt_comm_agree(c, st);
    }
    if (st != DPT_OK) {
        dpt_train_teardown(t);
        return st;
    }
    print_startup(t);
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
    dpt_free(t->m_step);
    dpt_free(t->wb);
    t->wb = NULL;
    for (int i = 0; i < t->n_mgrad && t->mgrad; i++)
        dpt_free(t->mgrad[i]);
    dpt_free(t->mgrad);
    dpt_free(t->xacc);
    dpt_free(t->xexp);
    t->mgrad = NULL;
    t->xacc = NULL;
    t->xexp = NULL;
    t->n_mgrad = 0;
    t->best = NULL;
    t->m_step = t->m_epoch = t->m_val = NULL;
    t->xb = t->yb = t->dout = NULL;
    t->rows = NULL;
}
