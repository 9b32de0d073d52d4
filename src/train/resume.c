/* Checkpoints of a training run: written by rank 0 (every rank's part of the optimizer state
 * gathered first), and on --resume the newest valid one read by rank 0 and broadcast, with the
 * trainer's own state (learning rate, callback counters). Collective. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "train_internal.h"

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
    ts[TS_REPRO] = t->repro ? 1.0 + (double)t->micro : 0.0;
    dpt_train_fingerprint(t, ts);
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
    double repro = t->repro ? 1.0 + (double)t->micro : 0.0;
    if (ts[TS_REPRO] != repro)
        return dpt_error_set(DPT_ERR_CHECKPOINT,
                             "%s: written %s, but this run is %s: the resumed steps would not "
                             "continue the same computation",
                             t->resumed_from,
                             ts[TS_REPRO] > 0 ? "in reproducible mode" : "in the default mode",
                             t->repro ? "in reproducible mode (or with another micro_batch)"
                                      : "in the default mode");
    if (t->cfg->callbacks.reduce_lr.enabled)
        return dpt_optim_set_learning_rate(t->optim, ts[TS_LR]);
    return DPT_OK;
}

/* Rank 0 finds and reads the newest valid checkpoint; every rank receives its state. Collective. */
dpt_status dpt_train_resume(dpt_train *t) {
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
        if (st == DPT_OK) /* rank 0 holds the epoch's summed metric state so far */
            st = dpt_ckpt_read_metric_state(t->resumed_from, t->m_epoch, t->n_mstate);
        if (st == DPT_OK && meta.seed != t->cfg->seed)
            st = dpt_error_set(
                DPT_ERR_CHECKPOINT,
                "%s: written with seed %u, but this run's seed is %u: an exact resume "
                "needs the same seed",
                t->resumed_from, meta.seed, t->cfg->seed);
        if (st == DPT_OK) /* the same computation: model, loss, optimizer, batch, data */
            st = dpt_train_check_same(t, &meta);
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
    if (c->rank == 0 && t->start_step_in_epoch > 0) /* --allow-changes with another batch */
        meta.step_in_epoch = t->start_step_in_epoch;
    dpt_comm_bcast(c, &meta.step_in_epoch, sizeof meta.step_in_epoch);
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
dpt_status dpt_train_checkpoint(dpt_train *t, int64_t epoch, int64_t step_in_epoch,
                                const double sums[3]) {
    dpt_status st = DPT_OK;
    dpt_watchdog_hold(); /* the write is progress, for rank 0 and for the ranks waiting on it */
    /* each rank keeps only its part of the optimizer's state current: gather it first */
    for (int i = 0; i < dpt_optim_n_slots(t->optim); i++)
        dpt_gradex_gather(t->gx, dpt_optim_slot(t->optim, i));
    /* inside an epoch every rank holds its own metric sums: their total goes in (m_val is free
     * until the epoch's end) */
    bool mstate = step_in_epoch > 0 && t->n_mstate > 0;
    if (mstate) {
        memcpy(t->m_val, t->m_epoch, (size_t)t->n_mstate * sizeof *t->m_val);
        dpt_comm_allreduce_sum_f64(t->c, t->m_val, (int)t->n_mstate);
    }
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
        if (mstate) {
            meta.metric_state = t->m_val;
            meta.n_metric_state = t->n_mstate;
        }
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
