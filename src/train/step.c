/* One optimizer step on global batch k of the epoch's order (DESIGN.md, "One training step"):
 *   step_rows      which rows of this rank's shard are in the batch
 *   step_compute   read them, forward, loss, backward into the gradient buffer
 *   step_exchange  sum the gradients and the step's statistics over the ranks, scan for NaN/Inf
 *   step_apply     regularization, the optimizer's update of this rank's part, gather
 * Collective: every rank runs every stage in the same order. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_internal.h"

/* The rows of global batch [p0, p1) this rank trains on, into t->rows; returns their count. */
static int64_t step_rows(dpt_train *t, const dpt_order *ord, int64_t p0, int64_t p1) {
    const dpt_comm *c = t->c;
    int64_t cnt = 0;
    if (!t->local_order) { /* global order: the members of the batch that this rank owns */
        for (int64_t pos = p0; pos < p1; pos++) {
            int64_t idx = dpt_order_at(ord, pos);
            if (idx >= t->lo && idx < t->hi)
                t->rows[cnt++] = idx - t->lo;
        }
        return cnt;
    }
    /* local order: this rank's next share of the batch, balanced within one sample */
    cnt = dpt_local_count(t->n_train, p0, p1, c->rank, c->size);
    DPT_ASSERT(cnt <= t->max_local);
    if (!t->stream) {
        int64_t off = dpt_local_offset(t->n_train, p0, c->rank, c->size);
        for (int64_t i = 0; i < cnt; i++)
            t->rows[i] = dpt_order_at(ord, off + i);
    }
    return cnt;
}

/* Keras's class_weight_to_sample_weights: each row's class (the label rounded half to even, or
 * the argmax of a one-hot / multi-unit target y (cnt, T)) gives its weight; classes the config
 * does not list weigh 1. w: (cnt) */
static void class_weights(const dpt_config *cfg, const float *y, int64_t cnt, int64_t T, float *w) {
    for (int64_t i = 0; i < cnt; i++) {
        const float *r = y + i * T;
        int64_t k = 0;
        if (T == 1) {
            double v = nearbyint((double)r[0]);
            k = v >= 0 && v < (double)cfg->n_class_weight ? (int64_t)v : -1;
        } else {
            for (int64_t j = 1; j < T; j++)
                if (r[j] > r[k])
                    k = j;
        }
        w[i] = k >= 0 && k < cfg->n_class_weight ? (float)cfg->class_weight[k] : 1.0f;
    }
}

/* Forward over the cnt rows in t->xb, the loss (with the split's sample weights or
 * fit.class_weight, plus the activity penalty) ADDED into *loss and *correct, this rank's share
 * of the metrics, and backward into the model's gradient buffer. A bad label ends the job. */
static void forward_backward(dpt_train *t, const dpt_pass *p, int64_t cnt, double *loss,
                             double *correct) {
    dpt_model *m = t->model;
    const float *out = dpt_model_forward(m, p, t->xb, cnt);
    int64_t K = dpt_model_output_size(m), T = dpt_loss_target_size(t->cfg->loss, K);
    const float *sw = t->train ? dpt_shard_w(t->train) : NULL;
    if (sw) /* the split's sample weights `w` */
        for (int64_t i = 0; i < cnt; i++)
            t->wb[i] = sw[t->rows[i]];
    else if (t->wb) /* fit.class_weight */
        class_weights(t->cfg, t->yb, cnt, T, t->wb);
    dpt_status st = dpt_loss_compute_spec(&t->cfg->loss_spec, dpt_model_head_act(m), out, t->yb,
                                          t->wb, cnt, K, t->dout, loss, correct);
    *loss += dpt_model_activity_loss(m); /* activity_regularizer: a sum */
    if (st != DPT_OK)
        dpt_comm_abort(t->c, st); /* a bad label found mid-step: end the job */
    if (t->n_mstate > 0) /* this rank's share of the step's metrics (summed at the epoch's end) */
        dpt_metrics_accumulate(&t->ms, dpt_model_head_act(m), out, t->yb, cnt, K, T, t->m_step);
    dpt_model_backward(m, p, t->dout, cnt);
}

/* Reads the cnt rows, runs forward, the loss and backward (the gradient lands in the model's
 * buffer, the exchange's slot with SHM); loss and correct into s. A collective model (batch
 * norm) runs even with no local rows. */
static void step_compute(dpt_train *t, int64_t cnt, dpt_step_stats *s) {
    const dpt_comm *c = t->c;
    dpt_model *m = t->model;
    dpt_model_zero_grads(m);
    if (cnt == 0 && !dpt_model_is_collective(m))
        return;
    double t0 = dpt_now();
    if (cnt > 0 && t->stream) {
        dpt_status st = dpt_stream_next(t->stream, cnt, t->xb, t->yb);
        if (st != DPT_OK)
            dpt_comm_abort(c, st); /* a bad value found mid-epoch: end the job */
    } else if (cnt > 0) {
        dpt_shard_gather(t->train, t->rows, cnt, t->xb, t->yb);
    }
    double t1 = dpt_now();
    t->prof[PROF_DATA] += t1 - t0;
    dpt_pass p = {.training = true,
                  .seed = t->cfg->seed,
                  .rank = (uint32_t)c->rank,
                  .step = (uint64_t)t->global_step};
    forward_backward(t, &p, cnt, &s->v[DPT_STAT_LOSS], &s->v[DPT_STAT_CORRECT]);
    t->prof[PROF_COMPUTE] += dpt_now() - t1;
}

/* 1 if any of g (n) is NaN or infinite */
static uint32_t nonfinite_any(const float *g, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= dpt_nonfinite_f32(g[i]);
    return bad;
}

/* Sums the gradients and the statistics over the ranks. This rank's part [lo, hi) of the summed
 * gradient must be finite. Where every rank updates the same weights from the same sums (no
 * parts) and a non-finite batch stops the run, the optimizer's own pass says so afterwards (a
 * non-finite gradient makes a non-finite weight; the run ends with exit 6 and those weights are
 * never saved): no scan. Otherwise (parts differ between ranks, or the batch must be skipped
 * before it is applied) a read-only scan first, its verdict summed with the statistics.
 * Returns whether the scan ran. */
static bool step_exchange(dpt_train *t, dpt_step_stats *s, int64_t lo, int64_t hi) {
    float *g = dpt_model_grads(t->model);
    bool exchange = !t->opts.no_allreduce;
    double t0 = dpt_now();
    if (exchange)
        dpt_gradex_reduce(t->gx, g);
    bool prescan = t->opts.skip_nonfinite || !exchange || dpt_gradex_parts_differ(t->gx);
    s->v[DPT_STAT_NONFINITE] = prescan ? (double)nonfinite_any(g + lo, hi - lo) : 0.0;
    if (exchange)
        dpt_gradex_finish(t->gx, s);
    else /* benchmark: only the statistics (and the scan's verdict) are summed */
        dpt_comm_allreduce_sum_f64(t->c, s->v, DPT_STAT_N);
    t->prof[PROF_REDUCE] += dpt_now() - t0;
    return prescan;
}

/* exit 6 for a non-finite loss or gradient at step k of this epoch */
static dpt_status stop_nonfinite(const dpt_train *t, int64_t k, const char *what) {
    return dpt_error_set(DPT_ERR_NUMERIC,
                         "epoch %lld, step %lld: the %s is not finite; stopping (the last good "
                         "checkpoint is kept; --skip-nonfinite skips such batches)",
                         (long long)t->epoch + 1, (long long)k + 1, what);
}

/* --skip-nonfinite: the batch is not applied and does not count in the metrics */
static void skip_batch(dpt_train *t, int64_t k, const char *what, dpt_step_stats *s) {
    t->skipped++;
    if (t->c->rank == 0)
        fprintf(stderr,
                "dptrain: warning: epoch %lld, step %lld: the %s is not finite; batch skipped\n",
                (long long)t->epoch + 1, (long long)k + 1, what);
    s->v[DPT_STAT_LOSS] = s->v[DPT_STAT_CORRECT] = s->v[DPT_STAT_COUNT] = 0;
    if (t->n_mstate > 0)
        memset(t->m_step, 0, (size_t)t->n_mstate * sizeof *t->m_step);
}

/* Regularization (identical on every rank, after the division: Keras's mean loss + penalty; it
 * adds to the whole buffer, of which only [lo, hi) is used), the update of this rank's part with
 * the 1/batch scale folded in, and the gather of every part. */
static dpt_status step_apply(dpt_train *t, int64_t k, int64_t n_batch, bool prescan,
                             dpt_step_stats *s, int64_t lo, int64_t hi) {
    dpt_model *m = t->model;
    float *g = dpt_model_grads(m);
    float scale = 1.0f / (float)n_batch; /* the mean over the samples of this global batch */
    if (dpt_model_has_regularizers(m)) {
        for (int64_t i = lo; i < hi; i++)
            g[i] *= scale;
        scale = 1.0f;
        s->v[DPT_STAT_LOSS] += dpt_model_regularize(m, 1.0f) * (double)n_batch;
    }
    bool lbad = !isfinite(s->v[DPT_STAT_LOSS]);
    if (lbad || s->v[DPT_STAT_NONFINITE] > 0) {
        const char *what = lbad ? "loss" : "gradient";
        if (!t->opts.skip_nonfinite)
            return stop_nonfinite(t, k, what);
        skip_batch(t, k, what, s);
        return DPT_OK;
    }
    double t0 = dpt_now();
    bool wbad = dpt_optim_step_range(t->optim, dpt_model_params(m), g, lo, hi, scale);
    double t1 = dpt_now();
    t->prof[PROF_UPDATE] += t1 - t0;
    if (wbad && !prescan) /* the same verdict on every rank: they updated the same weights */
        return stop_nonfinite(t, k, "gradient");
    if (!t->opts.no_allreduce) /* every rank's updated part reaches every rank */
        dpt_gradex_gather(t->gx, dpt_model_params(m));
    /* weight constraints (kernel_constraint, ...): Keras applies them right after each update;
     * here once the gather made the weights whole, identically on every rank, each on its own
     * copy (a model with constraints never trains on the node-shared copy: share_weights) */
    if (dpt_model_has_constraints(m))
        dpt_model_apply_constraints(m);
    t->prof[PROF_REDUCE] += dpt_now() - t1;
    t->prof[PROF_STEPS] += 1;
    return DPT_OK;
}

dpt_status dpt_train_step(dpt_train *t, const dpt_order *ord, int64_t k, dpt_step_stats *s) {
    int64_t B = t->cfg->batch_size, p0 = k * B;
    int64_t p1 = p0 + B < t->n_train ? p0 + B : t->n_train;
    int64_t cnt = step_rows(t, ord, p0, p1);
    memset(s, 0, sizeof *s);
    if (t->n_mstate > 0)
        memset(t->m_step, 0, (size_t)t->n_mstate * sizeof *t->m_step);
    s->v[DPT_STAT_COUNT] = (double)cnt;
    s->v[DPT_STAT_SIGNAL] = dpt_signals_pending() ? 1.0 : 0.0;
    step_compute(t, cnt, s);
    int64_t lo, hi;
    dpt_gradex_range(t->gx, &lo, &hi); /* the part of the weights this rank updates */
    bool prescan = step_exchange(t, s, lo, hi);
    dpt_status st = step_apply(t, k, p1 - p0, prescan, s, lo, hi);
    t->global_step++;
    return st;
}

/* ---- reproducible mode ---------------------------------------------------------------------
 * Global batch k in micro-batches of t->micro positions of the global order; micro-batch j on
 * rank j mod N (every rank holds every row). Each micro-batch's gradient is computed alone, with
 * the same shapes whichever rank computes it, into a buffer of its own; its dropout masks are
 * keyed by (step, j, row in the micro-batch) — the sample's position in the global batch — by
 * passing j where the default mode passes the rank. The gradients and the statistics are then
 * summed exactly (dpt_comm_exact_sum_f32 / _f64), and every rank updates every weight. */

/* micro-batch j of batch [p0, p1): forward, loss, backward into t->mgrad[slot]; row (loss,
 * correct, count) */
static void micro_compute(dpt_train *t, const dpt_order *ord, int64_t q0, int64_t q1, int64_t j,
                          int slot, double row[3]) {
    dpt_model *m = t->model;
    int64_t cnt = q1 - q0;
    for (int64_t i = 0; i < cnt; i++)
        t->rows[i] = dpt_order_at(ord, q0 + i); /* lo = 0: every row is local */
    double t0 = dpt_now();
    dpt_shard_gather(t->train, t->rows, cnt, t->xb, t->yb);
    double t1 = dpt_now();
    t->prof[PROF_DATA] += t1 - t0;
    dpt_model_bind_grads(m, t->mgrad[slot], dpt_model_n_params(m), false);
    dpt_model_zero_grads(m);
    dpt_pass p = {.training = true,
                  .seed = t->cfg->seed,
                  .rank = (uint32_t)j,
                  .step = (uint64_t)t->global_step};
    row[0] = row[1] = 0;
    row[2] = (double)cnt;
    forward_backward(t, &p, cnt, &row[0], &row[1]);
    (void)dpt_model_grads(m); /* finishes the lazy zeroing */
    t->prof[PROF_COMPUTE] += dpt_now() - t1;
}

/* the deferred statistics of the step's micro-batches (batch norm), summed exactly */
typedef struct {
    const dpt_comm *c;
    int total; /* micro-batches in the step */
} log_sum_ctx;

static void exact_log_sum(void *ctx, const double *rows, int nv, int n, double *out) {
    const log_sum_ctx *x = ctx;
    dpt_comm_exact_sum_f64(x->c, rows, nv, n, x->total, out);
}

dpt_status dpt_train_step_reproducible(dpt_train *t, const dpt_order *ord, int64_t k,
                                       dpt_step_stats *s) {
    const dpt_comm *c = t->c;
    int64_t B = t->cfg->batch_size, p0 = k * B;
    int64_t p1 = p0 + B < t->n_train ? p0 + B : t->n_train, mb = t->micro;
    int64_t n_micro = (p1 - p0 + mb - 1) / mb;
    double tab[3 * 64], *rows = tab;
    int mine = 0;
    if (t->n_mgrad > 64 &&
        dpt_alloc((size_t)t->n_mgrad * 3 * sizeof(double), "statistics", (void **)&rows) != DPT_OK)
        dpt_comm_abort(c, DPT_ERR_NOMEM);
    for (int64_t j = c->rank; j < n_micro; j += c->size, mine++) {
        int64_t q0 = p0 + j * mb, q1 = q0 + mb < p1 ? q0 + mb : p1;
        micro_compute(t, ord, q0, q1, j, mine, rows + 3 * mine);
    }
    dpt_model *m = t->model;
    dpt_model_bind_grads(m, NULL, 0, false);
    double t0 = dpt_now();
    log_sum_ctx lc = {c, (int)n_micro};
    dpt_model_finish_stats(m, exact_log_sum, &lc);
    memset(s, 0, sizeof *s);
    double sums[3];
    dpt_comm_exact_sum_f64(c, rows, mine, 3, (int)n_micro, sums);
    if (rows != tab)
        dpt_free(rows);
    s->v[DPT_STAT_LOSS] = sums[0];
    s->v[DPT_STAT_CORRECT] = sums[1];
    s->v[DPT_STAT_COUNT] = sums[2];
    int signal = dpt_signals_pending() ? 1 : 0;
    dpt_comm_allreduce_max_i32(c, &signal, 1);
    s->v[DPT_STAT_SIGNAL] = signal;
    int64_t n = dpt_model_n_params(m);
    dpt_comm_exact_sum_f32(c, (const float *const *)t->mgrad, mine, n, (int)n_micro,
                           dpt_model_grads(m), t->xacc, t->xexp);
    bool prescan = t->opts.skip_nonfinite; /* every rank has the same sums: one verdict */
    s->v[DPT_STAT_NONFINITE] = prescan ? (double)nonfinite_any(dpt_model_grads(m), n) : 0.0;
    t->prof[PROF_REDUCE] += dpt_now() - t0;
    dpt_status st = step_apply(t, k, p1 - p0, prescan, s, 0, n);
    t->global_step++;
    return st;
}
