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

/* 2. the reading mode: the shard in memory, or streamed when it is larger than the memory limit.
 * Streaming implies the local (balanced) order; in memory the global order is the default.
 * Sets this rank's rows, the order, the largest local batch. */
static dpt_status plan_reading(dpt_train *t, const dpt_shape *in, int64_t limit) {
    const dpt_comm *c = t->c;
    dpt_split_range(t->n_train, c->rank, c->size, &t->lo, &t->hi);
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
    int64_t max_local = t->local_order ? (B + c->size - 1) / c->size : B;
    if (max_local > t->hi - t->lo)
        max_local = t->hi - t->lo;
    t->max_local = max_local < 1 ? 1 : max_local;
    return DPT_OK;
}

/* The gradient exchange; its slot (if it has one) becomes the model's gradient buffer. */
static dpt_status make_exchange(dpt_train *t) {
    dpt_status st = dpt_gradex_create(t->c, dpt_model_n_params(t->model), t->opts.reduce, &t->gx);
    if (st != DPT_OK)
        return st;
    int64_t len = 0;
    float *slot = dpt_gradex_slot(t->gx, &len);
    if (slot)
        dpt_model_bind_grads(t->model, slot, len);
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
    if (st == DPT_OK) {
        dpt_model_set_fused_loss(t->model, &cfg->loss_spec);
        dpt_model_set_reducer(t->model, reduce_sum_f64, (void *)c);
        st = dpt_train_metrics(cfg, dpt_model_output_size(t->model), &t->ms);
        if (st == DPT_OK)
            st = alloc_metric_states(t);
        if (st == DPT_OK)
            st = dpt_optim_create(&cfg->optim, dpt_model_n_params(t->model), &t->optim);
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
    dpt_target_spec ts = {.loss = cfg->loss, .n_outputs = dpt_model_output_size(t->model)};
    const dpt_shape *ms = dpt_model_input_shape(t->model);
    dpt_status st;
    if (t->streaming)
        st = dpt_stream_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, limit / 4,
                             cfg->seed, &t->stream);
    else
        st = dpt_shard_open(cfg->data_path, cfg->train_group, t->lo, t->hi, &ts, ms, &t->train);
    if (st != DPT_OK || t->n_val == 0)
        return st;
    int64_t vlo, vhi;
    dpt_split_range(t->n_val, c->rank, c->size, &vlo, &vhi);
    if (cfg->validation_group[0])
        return dpt_shard_open(cfg->data_path, cfg->validation_group, vlo, vhi, &ts, ms, &t->val);
    return dpt_shard_open(cfg->data_path, cfg->train_group, t->n_train + vlo, t->n_train + vhi, &ts,
                          ms, &t->val);
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
    if (c->size > 1)
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
    dpt_status st = plan_data(t);
    if (st != DPT_OK)
        return st;
    dpt_shape in = cfg->has_input_shape ? cfg->input_shape : t->info.x_shape;
    int64_t limit = o->memory_limit > 0 ? o->memory_limit : dpt_default_memory_limit(c);
    st = plan_reading(t, &in, limit);
    if (st == DPT_OK)
        st = build_model(t, &in);
    if (st == DPT_OK && o->resume && o->run_dir && o->run_dir[0])
        st = dpt_train_resume(t);
    if (st == DPT_OK) {
        st = open_shards(t, limit);
        if (st == DPT_OK)
            st = alloc_buffers(t);
        if (st == DPT_OK && o->run_dir && o->run_dir[0] && c->rank == 0)
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
    t->best = NULL;
    t->m_step = t->m_epoch = t->m_val = NULL;
    t->xb = t->yb = t->dout = NULL;
    t->rows = NULL;
}
