/* --resume continues the SAME computation: the checkpoint's run and this one must agree on
 * everything that changes the math (issue 18). What is compared:
 *   - the model: the checkpoint's stored config text against this run's, layer by layer and key
 *     by key (layer names aside), naming the first difference;
 *   - the loss and the optimizer kind, the global batch, validation_split, shuffle and the number
 *     of training samples, kept in the trainer state (older checkpoints without them: skipped);
 * The learning rate, the epochs and the data path (of an identical file: same N) may change: they
 * are safe by design. A difference is exit 5 naming the field; --allow-changes resumes anyway with
 * a warning (a changed batch size mid-epoch only where the epoch's position stays whole, so that
 * every sample of the epoch is still used exactly once). Rank 0. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "train_internal.h"

/* the first key of a and b (objects) whose values differ, ignoring "name" and dptrain's own
 * "_path" / "_keras_major"; NULL when they agree */
static const char *first_key_diff(const json_t *a, const json_t *b) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        if (!strcmp(k, "name") || k[0] == '_')
            continue;
        const json_t *w = json_object_get(b, k);
        if (!w ? !json_is_null(v) : !json_equal(v, w))
            return k;
    }
    json_object_foreach((json_t *)b, k, v) {
        if (!strcmp(k, "name") || k[0] == '_')
            continue;
        if (!json_object_get(a, k) && !json_is_null(v))
            return k;
    }
    return NULL;
}

static void show(const json_t *v, char *buf, size_t n) {
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    snprintf(buf, n, "%s", s ? s : "absent");
    free(s);
}

/* "model.config.layers[i].config.KEY: A in the checkpoint, B now" into what; false: the same */
static bool model_diff(const json_t *old, const json_t *now, char *what, size_t n) {
    size_t no = json_array_size(old), nn = json_array_size(now);
    if (no != nn) {
        snprintf(what, n, "model: %zu layers in the checkpoint, %zu now", no, nn);
        return true;
    }
    for (size_t i = 0; i < no; i++) {
        const json_t *a = json_array_get(old, i), *b = json_array_get(now, i);
        const char *ca = json_string_value(json_object_get(a, "class_name"));
        const char *cb = json_string_value(json_object_get(b, "class_name"));
        if (!ca || !cb || strcmp(ca, cb)) {
            snprintf(what, n, "model layer %zu: %s in the checkpoint, %s now", i, ca ? ca : "?",
                     cb ? cb : "?");
            return true;
        }
        const json_t *fa = json_object_get(a, "config"), *fb = json_object_get(b, "config");
        const char *k = first_key_diff(fa, fb);
        if (k) {
            char va[96], vb[96];
            show(json_object_get(fa, k), va, sizeof va);
            show(json_object_get(fb, k), vb, sizeof vb);
            snprintf(what, n, "model layer %zu (%s).%s: %s in the checkpoint, %s now", i, ca, k, va,
                     vb);
            return true;
        }
    }
    return false;
}

void dpt_train_fingerprint(const dpt_train *t, double *ts) {
    ts[TS_N_TRAIN] = (double)t->n_train;
    ts[TS_BATCH] = (double)t->cfg->batch_size;
    ts[TS_VSPLIT] = t->cfg->validation_split;
    ts[TS_KINDS] = 1.0 + (t->cfg->shuffle ? 1.0 : 0.0) + 2.0 * (double)t->cfg->loss +
                   256.0 * (double)t->cfg->optim.kind;
}

/* the scalar fields: the first that differs into what; false when none does */
static bool scalar_diff(const dpt_train *t, const double *ts, char *what, size_t n) {
    double now[DPT_CKPT_TRAINER_STATE] = {0};
    dpt_train_fingerprint(t, now);
    if (ts[TS_KINDS] == 0)
        return false; /* written before the fingerprint existed */
    int ok = (int)ts[TS_KINDS] - 1, nk = (int)now[TS_KINDS] - 1;
    if (ts[TS_N_TRAIN] != now[TS_N_TRAIN])
        snprintf(what, n, "the data: %.0f training samples in the checkpoint, %lld now",
                 ts[TS_N_TRAIN], (long long)t->n_train);
    else if ((ok >> 1 & 127) != (nk >> 1 & 127))
        snprintf(what, n, "compile.loss: another loss than the checkpoint's");
    else if (ok >> 8 != nk >> 8)
        snprintf(what, n, "compile.optimizer: another optimizer than the checkpoint's");
    else if ((ok & 1) != (nk & 1))
        snprintf(what, n, "fit.shuffle: %s in the checkpoint, %s now", ok & 1 ? "true" : "false",
                 nk & 1 ? "true" : "false");
    else if (ts[TS_VSPLIT] != now[TS_VSPLIT])
        snprintf(what, n, "fit.validation_split: %g in the checkpoint, %g now", ts[TS_VSPLIT],
                 now[TS_VSPLIT]);
    else if (ts[TS_BATCH] != now[TS_BATCH])
        snprintf(what, n, "fit.batch_size: %.0f in the checkpoint, %lld now", ts[TS_BATCH],
                 (long long)t->cfg->batch_size);
    else
        return false;
    return true;
}

dpt_status dpt_train_check_same(dpt_train *t, const dpt_ckpt_meta *meta) {
    char what[512] = "";
    bool differs = scalar_diff(t, meta->trainer_state, what, sizeof what);
    char *text = NULL;
    if (!differs && dpt_ckpt_read_config(t->resumed_from, &text) == DPT_OK && text && text[0]) {
        dpt_config old;
        if (dpt_config_parse(text, strlen(text), t->resumed_from, &old) == DPT_OK) {
            differs = model_diff(old.layers, t->cfg->layers, what, sizeof what);
            dpt_config_deinit(&old);
        }
    }
    free(text);
    dpt_error_clear();
    if (!differs)
        return DPT_OK;
    if (!t->opts.allow_changes)
        return dpt_error_set(DPT_ERR_CHECKPOINT,
                             "%s: %s: resuming would compute something else than the run that "
                             "wrote it (--allow-changes resumes anyway)",
                             t->resumed_from, what);
    /* allowed: the epoch's samples still each used once, so its position must stay whole */
    double oldB = meta->trainer_state[TS_BATCH];
    int64_t pos = meta->step_in_epoch * (int64_t)(oldB > 0 ? oldB : (double)t->cfg->batch_size);
    if (meta->step_in_epoch > 0 && pos % t->cfg->batch_size != 0)
        return dpt_error_set(DPT_ERR_CHECKPOINT,
                             "%s: %s; with --allow-changes the epoch's position (%lld samples) "
                             "must be a multiple of the new batch size %lld",
                             t->resumed_from, what, (long long)pos, (long long)t->cfg->batch_size);
    t->start_step_in_epoch = pos / t->cfg->batch_size;
    fprintf(stderr, "dptrain: warning: %s: %s; resuming anyway (--allow-changes)\n",
            t->resumed_from, what);
    return DPT_OK;
}
