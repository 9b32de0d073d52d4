/* The epoch loop of a training run (dpt_train_run): each epoch's order, its steps with the
 * per-step duties (progress, preemption, watchdog, replica check, checkpoints), the end of an
 * epoch (validation, the report, --profile, callbacks, the epoch's checkpoint) and the end of the
 * run (best weights, the test split, final.h5). Collective. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dptrain/checkpoint.h"
#include "dptrain/train.h"
#include "report.h"
#include "train_internal.h"

/* --profile: this epoch's time per step in data, compute, reduction (the exchange, including the
 * wait for the slowest rank) and update, as rank 0 sees it and as the slowest rank does. */
static void report_profile(dpt_train *t) {
    double worst[PROF_N];
    memcpy(worst, t->prof, sizeof worst);
    dpt_comm_allreduce_max_f64(t->c, worst, PROF_N);
    const double *mine = t->prof;
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

_Static_assert(DPT_MON_N >= DPT_MON_METRIC + 2 * DPT_MAX_METRICS, "a monitor for every metric");

/* EarlyStopping / ReduceLROnPlateau after an epoch: the same reduced logs on every rank, so every
 * rank takes the same decisions. */
static dpt_status run_callbacks(dpt_train *t, const double tr[3], const double va[3],
                                const double *mv, const double *mvv) {
    const dpt_callbacks_spec *sp = &t->cfg->callbacks;
    if (!sp->early_stopping.enabled && !sp->reduce_lr.enabled)
        return DPT_OK;
    bool acc = t->cfg->metric_accuracy;
    dpt_epoch_logs logs = {{0}, {false}};
    logs.v[DPT_MON_LOSS] = tr[0] / tr[2];
    logs.have[DPT_MON_LOSS] = tr[2] > 0;
    logs.v[DPT_MON_ACCURACY] = tr[1] / tr[2];
    logs.have[DPT_MON_ACCURACY] = tr[2] > 0 && acc;
    logs.v[DPT_MON_VAL_LOSS] = va[0] / va[2];
    logs.have[DPT_MON_VAL_LOSS] = va[2] > 0;
    logs.v[DPT_MON_VAL_ACCURACY] = va[1] / va[2];
    logs.have[DPT_MON_VAL_ACCURACY] = va[2] > 0 && acc;
    for (int i = 0; i < t->ms.n && DPT_MON_METRIC + 2 * i + 1 < DPT_MON_N; i++) {
        logs.v[DPT_MON_METRIC + 2 * i] = mv[i];
        logs.have[DPT_MON_METRIC + 2 * i] = tr[2] > 0;
        logs.v[DPT_MON_METRIC + 2 * i + 1] = mvv ? mvv[i] : NAN;
        logs.have[DPT_MON_METRIC + 2 * i + 1] = mvv && va[2] > 0;
    }
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

/* The epoch's order: the global one, this rank's local one, or the stream positioned at the
 * first step. */
static void begin_epoch(dpt_train *t, dpt_order *ord, int64_t first) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    if (t->stream)
        dpt_stream_begin_epoch_at(
            t->stream, t->epoch,
            dpt_local_offset(t->n_train, first * cfg->batch_size, c->rank, c->size));
    else if (t->local_order)
        dpt_order_init_local(ord, t->hi - t->lo, cfg->seed, t->epoch, t->lo, cfg->shuffle);
    else
        dpt_order_init(ord, t->n_train, cfg->seed, t->epoch, cfg->shuffle);
}

static bool has_run_dir(const dpt_train *t) { return t->opts.run_dir && t->opts.run_dir[0]; }

/* Some rank got SIGTERM / SIGUSR1 / SIGINT: every rank stops after step k, with a checkpoint
 * when there is a run directory. Returns DPT_PREEMPTED (or the checkpoint's error). */
static dpt_status preempt(dpt_train *t, int64_t k, const double tr[3]) {
    if (!has_run_dir(t))
        return dpt_error_set(DPT_PREEMPTED,
                             "stopped by a signal at epoch %lld, step %lld; no --run-dir, so "
                             "nothing was saved",
                             (long long)t->epoch + 1, (long long)k + 1);
    dpt_status st = dpt_train_checkpoint(t, t->epoch, k + 1, tr);
    if (st != DPT_OK)
        return st;
    return dpt_error_set(DPT_PREEMPTED,
                         "stopped by a signal at epoch %lld, step %lld: checkpoint written to "
                         "%s/last.h5; continue with --resume",
                         (long long)t->epoch + 1, (long long)k + 1, t->opts.run_dir);
}

/* After step k of `steps`: the replica check and the mid-epoch checkpoint when they are due. */
static dpt_status after_step(dpt_train *t, int64_t k, int64_t steps, int64_t every,
                             const double tr[3]) {
    dpt_watchdog_kick(t->global_step);
    /* without the reduction (a benchmark) the replicas differ by design */
    int64_t cr = t->opts.check_replicas;
    if (cr > 0 && !t->opts.no_allreduce && t->global_step % cr == 0) {
        dpt_status st = dpt_check_replicas(t->c, dpt_model_params(t->model),
                                           dpt_model_n_params(t->model), t->global_step);
        if (st != DPT_OK)
            return st;
    }
    if (has_run_dir(t) && every > 0 && t->global_step % every == 0 && k + 1 < steps)
        return dpt_train_checkpoint(t, t->epoch, k + 1, tr);
    return DPT_OK;
}

/* The steps [first, steps) of the current epoch; tr: the epoch's running (loss, correct, count).
 */
static dpt_status run_steps(dpt_train *t, int64_t first, int64_t steps, double t0, double tr[3]) {
    const dpt_config *cfg = t->cfg;
    int64_t every =
        t->opts.checkpoint_every >= 0 ? t->opts.checkpoint_every : cfg->checkpoint_every;
    dpt_order ord;
    begin_epoch(t, &ord, first);
    for (int64_t k = first; k < steps; k++) {
        dpt_step_stats s;
        dpt_status st =
            t->repro ? dpt_train_step_reproducible(t, &ord, k, &s) : dpt_train_step(t, &ord, k, &s);
        if (st != DPT_OK)
            return st;
        tr[0] += s.v[DPT_STAT_LOSS];
        tr[1] += s.v[DPT_STAT_CORRECT];
        tr[2] += s.v[DPT_STAT_COUNT];
        for (int64_t i = 0; i < t->n_mstate; i++) /* this rank's metric sums of the epoch */
            t->m_epoch[i] += t->m_step[i];
        if (t->c->rank == 0)
            dpt_report_step(t->report, t->epoch + 1, cfg->epochs, k + 1, steps, tr[0] / tr[2],
                            cfg->metric_accuracy ? tr[1] / tr[2] : NAN, tr[2], dpt_now() - t0);
        if (s.v[DPT_STAT_SIGNAL] > 0)
            return preempt(t, k, tr);
        st = after_step(t, k, steps, every, tr);
        if (st != DPT_OK)
            return st;
    }
    return DPT_OK;
}

/* rank 0's line and history rows for the epoch; agreed. mv, mvv: the metrics' values, training
 * and validation (NULL: no validation) */
static dpt_status report_epoch(dpt_train *t, const double tr[3], const double va[3], double secs,
                               const double *mv, const double *mvv) {
    dpt_status st = DPT_OK;
    bool acc = t->cfg->metric_accuracy;
    if (t->c->rank == 0) {
        dpt_epoch_log log = {.epoch = t->epoch + 1,
                             .epochs = t->cfg->epochs,
                             .loss = tr[0] / tr[2],
                             .accuracy = acc ? tr[1] / tr[2] : NAN,
                             .val_loss = va[2] > 0 ? va[0] / va[2] : NAN,
                             .val_accuracy = va[2] > 0 && acc ? va[1] / va[2] : NAN,
                             .seconds = secs,
                             .samples_per_s = tr[2] / secs,
                             .learning_rate = dpt_optim_learning_rate(t->optim),
                             .ranks = t->c->size,
                             .n_metrics = t->ms.n};
        for (int i = 0; i < t->ms.n; i++) {
            log.metric[i] = mv[i];
            log.val_metric[i] = mvv ? mvv[i] : NAN;
        }
        st = dpt_report_epoch(t->report, &log);
    }
    return dpt_comm_agree(t->c, st);
}

/* The end of an epoch: validation, the report, --profile, callbacks, the epoch's checkpoint. */
static dpt_status end_epoch(dpt_train *t, const double tr[3], double va[3], double secs) {
    va[0] = va[1] = va[2] = 0;
    dpt_status st = DPT_OK;
    /* the epoch's metrics: every rank's sums summed (one reduction per epoch), then Keras's
     * result */
    double mv[DPT_MAX_METRICS], mvv[DPT_MAX_METRICS];
    if (t->n_mstate > 0) {
        dpt_comm_allreduce_sum_f64(t->c, t->m_epoch, (int)t->n_mstate);
        dpt_metrics_finalize(&t->ms, t->m_epoch, mv);
    }
    if (t->n_val > 0 && t->repro)
        st = dpt_eval_shard_exact(t->c, t->model, &t->cfg->loss_spec, t->val, t->micro, va);
    else if (t->n_val > 0) {
        st = dpt_eval_shard(t->c, t->model, &t->cfg->loss_spec, &t->ms, t->val, t->cfg->seed, va,
                            t->m_val);
        if (st == DPT_OK && t->n_mstate > 0)
            dpt_metrics_finalize(&t->ms, t->m_val, mvv);
    }
    dpt_watchdog_kick(t->global_step);
    if (st == DPT_OK)
        st = report_epoch(t, tr, va, secs, mv, t->n_val > 0 ? mvv : NULL);
    if (st == DPT_OK && t->opts.profile)
        report_profile(t);
    if (st == DPT_OK)
        st = run_callbacks(t, tr, va, mv, t->n_val > 0 ? mvv : NULL);
    if (st == DPT_OK && has_run_dir(t)) {
        double zero[3] = {0, 0, 0};
        st = dpt_train_checkpoint(t, t->epoch + 1, 0, zero);
    }
    return st;
}

/* The test split, evaluated once at the end; rank 0 prints it. */
static dpt_status evaluate_test(dpt_train *t) {
    const dpt_comm *c = t->c;
    const dpt_config *cfg = t->cfg;
    dpt_target_spec ts = dpt_train_targets(cfg->loss, t->model);
    int64_t lo = 0, hi = t->tinfo.n;
    if (!t->repro)
        dpt_split_range(t->tinfo.n, c->rank, c->size, &lo, &hi);
    dpt_shard *test = NULL;
    dpt_status st = dpt_shard_open(cfg->data_path, cfg->test_group, lo, hi, &ts,
                                   dpt_model_input_shape(t->model), &test);
    st = dpt_comm_agree(c, st);
    double te[3], mv[DPT_MAX_METRICS];
    if (st == DPT_OK && t->repro)
        st = dpt_eval_shard_exact(c, t->model, &cfg->loss_spec, test, t->micro, te);
    else if (st == DPT_OK)
        st = dpt_eval_shard(c, t->model, &cfg->loss_spec, &t->ms, test, cfg->seed, te, t->m_val);
    dpt_shard_destroy(&test);
    if (st != DPT_OK || c->rank != 0)
        return st;
    char line[2048];
    int n = snprintf(line, sizeof line, "test: loss: %.4f", te[0] / te[2]);
    if (cfg->metric_accuracy)
        n += snprintf(line + n, sizeof line - (size_t)n, " - accuracy: %.4f", te[1] / te[2]);
    if (t->n_mstate > 0)
        dpt_metrics_finalize(&t->ms, t->m_val, mv);
    for (int i = 0; i < t->ms.n && n < (int)sizeof line; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, " - %s: %.4f", t->ms.m[i].name, mv[i]);
    dpt_report_note(t->report, "%s (%lld samples)\n", line, (long long)te[2]);
    return DPT_OK;
}

/* final weights, Keras-readable; agreed */
static dpt_status save_final(dpt_train *t) {
    dpt_status ws = DPT_OK;
    dpt_watchdog_hold(); /* writing is progress, as for a checkpoint */
    if (t->c->rank == 0) {
        char path[DPT_PATH_MAX];
        snprintf(path, sizeof path, "%s/final.h5", t->opts.run_dir);
        /* with the model's Keras JSON: keras.models.load_model("final.h5") opens it */
        char *mc = t->cfg->model_json ? json_dumps(t->cfg->model_json, JSON_COMPACT) : NULL;
        ws = dpt_weights_save_keras_model(path, t->model, mc);
        free(mc);
    }
    ws = dpt_comm_agree(t->c, ws);
    dpt_watchdog_release(t->global_step);
    return ws;
}

static void fill_result(const dpt_train *t, const double tr[3], const double va[3], double t_start,
                        dpt_fit_result *res) {
    res->epochs_run = (int)t->epoch;
    res->loss = tr[2] > 0 ? tr[0] / tr[2] : NAN;
    res->accuracy = tr[2] > 0 ? tr[1] / tr[2] : NAN;
    res->val_loss = va[2] > 0 ? va[0] / va[2] : NAN;
    res->val_accuracy = va[2] > 0 ? va[1] / va[2] : NAN;
    res->seconds = dpt_now() - t_start;
    res->samples_per_s = (double)t->n_train * (double)t->cfg->epochs / res->seconds;
}

/* The end of the run: the best weights (EarlyStopping), the result, the test split, final.h5. */
static dpt_status finish_run(dpt_train *t, const double tr[3], const double va[3], double t_start,
                             dpt_fit_result *res) {
    dpt_model_bind_params(t->model, NULL, true); /* each rank its own copy again */
    if (t->best && dpt_callbacks_on_train_end(&t->cb)) {
        memcpy(dpt_model_params(t->model), t->best,
               (size_t)dpt_model_n_params(t->model) * sizeof(float));
        if (t->c->rank == 0)
            dpt_report_note(t->report, "EarlyStopping: restored the weights of epoch %d\n",
                            t->cb.es_best_epoch + 1);
    }
    if (res)
        fill_result(t, tr, va, t_start, res);
    dpt_stream_destroy(&t->stream); /* the epochs are over: no reader thread from here on */
    dpt_status st = DPT_OK;
    if (t->cfg->test_group[0])
        st = evaluate_test(t);
    if (st == DPT_OK && has_run_dir(t))
        st = save_final(t);
    return st;
}

/* The ranks of a node read ONE copy of the weights while training (each updates its part in
 * place) when nothing but the optimizer writes them: no moving statistics, no frozen layers.
 * It halves the memory traffic of the exchange and keeps one copy in the shared cache. */
static void share_weights(dpt_train *t) {
    if (!t->opts.no_allreduce && dpt_gradex_can_share(t->gx) &&
        dpt_model_n_trainable(t->model) == dpt_model_n_params(t->model) &&
        !dpt_model_has_constraints(t->model)) /* constraints rewrite whole tensors */
        dpt_model_bind_params(t->model, dpt_gradex_share(t->gx, dpt_model_params(t->model)), false);
}

/* The epochs, from where setup (or a resume) left off. */
static dpt_status run_epochs(dpt_train *t, double tr[3], double va[3]) {
    const dpt_config *cfg = t->cfg;
    int64_t B = cfg->batch_size, steps = (t->n_train + B - 1) / B;
    for (int64_t first = t->start_step_in_epoch; t->epoch < cfg->epochs && !t->stopped_early;
         t->epoch++, first = 0) {
        double t0 = dpt_now();
        if (first > 0)
            memcpy(tr, t->resume_sums, 3 * sizeof *tr);
        else
            tr[0] = tr[1] = tr[2] = 0;
        if (t->n_mstate > 0 && first == 0) /* a resumed epoch: what resume.c restored */
            memset(t->m_epoch, 0, (size_t)t->n_mstate * sizeof *t->m_epoch);
        dpt_status st = run_steps(t, first, steps, t0, tr);
        if (st == DPT_OK)
            st = end_epoch(t, tr, va, dpt_now() - t0);
        if (st != DPT_OK)
            return st;
        if (t->stopped_early) {
            if (t->c->rank == 0)
                dpt_report_note(t->report,
                                "EarlyStopping: stopped after epoch %lld (best epoch %d)\n",
                                (long long)t->epoch + 1, t->cb.es_best_epoch + 1);
            t->epoch++;
            break;
        }
    }
    return DPT_OK;
}

dpt_status dpt_train_run(dpt_train *t, dpt_fit_result *res) {
    const dpt_comm *c = t->c;
    dpt_status st = DPT_OK;
    if (c->rank == 0) {
        const char *names[DPT_MAX_METRICS];
        for (int i = 0; i < t->ms.n; i++)
            names[i] = t->ms.m[i].name;
        st = dpt_report_open_metrics(t->opts.run_dir, t->opts.verbose, t->opts.out, t->epoch,
                                     t->ms.n, names, &t->report);
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    share_weights(t);
    if (t->opts.handle_signals)
        dpt_signals_install();
    dpt_watchdog_start(t->opts.watchdog_s, c->rank, c->size);
    double t_start = dpt_now(), tr[3] = {0}, va[3] = {0};
    st = run_epochs(t, tr, va);
    if (st == DPT_OK)
        st = finish_run(t, tr, va, t_start, res);
    dpt_model_bind_params(t->model, NULL, true); /* no rank writes the shared copy any more */
    dpt_watchdog_stop();
    dpt_report_close(&t->report);
    return st;
}
