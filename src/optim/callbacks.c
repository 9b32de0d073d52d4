/* Keras's EarlyStopping and ReduceLROnPlateau as pure functions of (state, epoch, logs): the
 * trainer owns the loop, the best-weights copy and the optimizer; here only the decisions, with
 * Keras 3's exact rules (keras/src/callbacks/early_stopping.py, reduce_lr_on_plateau.py):
 *
 * EarlyStopping: nothing happens before start_from_epoch or without the monitored value; the
 *   first time a value is seen with restore_best_weights, the current weights are saved as the
 *   best; then wait += 1; an improvement (monitor_op(current - min_delta, best), best None at
 *   first; min_delta negated for "min") records best/best_epoch (saving the weights) and resets
 *   wait only if the baseline is also beaten; otherwise stop once wait >= patience and epoch > 0.
 *   At the end of training (stopped or not) the saved best weights are restored (Keras 3).
 * ReduceLROnPlateau: in cooldown: cooldown_counter -= 1, wait = 0; an improvement
 *   (min: current < best - min_delta; max: current > best + min_delta) resets wait; else, out of
 *   cooldown, wait += 1 and at wait >= patience, if lr > float32(min_lr), lr = max(lr * factor,
 *   min_lr), cooldown starts and wait = 0.
 */
#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

static const char *const monitor_names[DPT_MON_METRIC] = {"loss", "accuracy", "val_loss",
                                                          "val_accuracy"};

bool dpt_monitor_from_name(const char *name, dpt_monitor *out) {
    if (!name)
        return false;
    for (int i = 0; i < DPT_MON_METRIC; i++)
        if (!strcmp(name, monitor_names[i])) {
            *out = (dpt_monitor)i;
            return true;
        }
    if (!strcmp(name, "acc"))
        *out = DPT_MON_ACCURACY;
    else if (!strcmp(name, "val_acc"))
        *out = DPT_MON_VAL_ACCURACY;
    else
        return false;
    return true;
}

const char *dpt_monitor_name(dpt_monitor m) {
    return (m >= 0 && m < DPT_MON_METRIC) ? monitor_names[m] : m < DPT_MON_N ? "a metric" : "?";
}

void dpt_callbacks_begin(dpt_callbacks_state *s, const dpt_callbacks_spec *spec) {
    memset(s, 0, sizeof *s);
    s->spec = *spec;
    s->rl_best = s->spec.reduce_lr.mode > 0 ? -INFINITY : INFINITY;
}

/* EarlyStopping's monitor_op(a - min_delta, b), min_delta signed by the mode */
static bool es_improves(const dpt_early_stopping_spec *e, double current, double ref) {
    double d = fabs(e->min_delta);
    return e->mode > 0 ? current - d > ref : current + d < ref;
}

static void early_stopping(dpt_callbacks_state *s, int epoch, const dpt_epoch_logs *logs,
                           dpt_callback_actions *a) {
    const dpt_early_stopping_spec *e = &s->spec.early_stopping;
    if (!e->enabled || !logs->have[e->monitor] || epoch < e->start_from_epoch)
        return;
    double current = logs->v[e->monitor];
    if (e->restore_best_weights && !s->es_saved) {
        s->es_saved = true; /* the current weights are the best until something beats them */
        s->es_best_epoch = epoch;
        a->save_best = true;
    }
    s->es_wait++;
    if (!s->es_has_best || es_improves(e, current, s->es_best)) {
        s->es_has_best = true;
        s->es_best = current;
        s->es_best_epoch = epoch;
        if (e->restore_best_weights) {
            s->es_saved = true;
            a->save_best = true;
        }
        if (!e->has_baseline || es_improves(e, current, e->baseline))
            s->es_wait = 0;
        return;
    }
    if (s->es_wait >= e->patience && epoch > 0) {
        s->es_stopped_epoch = epoch;
        a->stop = true;
    }
}

static void reduce_lr(dpt_callbacks_state *s, const dpt_epoch_logs *logs, double lr,
                      dpt_callback_actions *a) {
    const dpt_reduce_lr_spec *r = &s->spec.reduce_lr;
    if (!r->enabled || !logs->have[r->monitor])
        return;
    double current = logs->v[r->monitor];
    if (s->rl_cooldown_counter > 0) {
        s->rl_cooldown_counter--;
        s->rl_wait = 0;
    }
    bool better =
        r->mode > 0 ? current > s->rl_best + r->min_delta : current < s->rl_best - r->min_delta;
    if (better) {
        s->rl_best = current;
        s->rl_wait = 0;
    } else if (s->rl_cooldown_counter <= 0) {
        s->rl_wait++;
        if (s->rl_wait >= r->patience) {
            double old = (double)(float)lr; /* Keras reads the float32 variable */
            if (old > (double)(float)r->min_lr) {
                double nl = old * r->factor;
                a->set_lr = true;
                a->new_lr = nl > r->min_lr ? nl : r->min_lr;
                s->rl_cooldown_counter = r->cooldown;
                s->rl_wait = 0;
            }
        }
    }
}

void dpt_callbacks_on_epoch_end(dpt_callbacks_state *s, int epoch, const dpt_epoch_logs *logs,
                                double current_lr, dpt_callback_actions *a) {
    memset(a, 0, sizeof *a);
    /* Keras runs callbacks in list order; the two here touch disjoint state */
    reduce_lr(s, logs, current_lr, a);
    early_stopping(s, epoch, logs, a);
}

bool dpt_callbacks_on_train_end(const dpt_callbacks_state *s) {
    return s->spec.early_stopping.enabled && s->spec.early_stopping.restore_best_weights &&
           s->es_saved;
}
