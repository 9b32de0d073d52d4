/* Inference across ranks: load a model (a checkpoint carries its config; a Keras weights file
 * needs --config), evaluate it on a split (sharded by rows, sums reduced), or predict (sharded by
 * rows, gathered to rank 0, written in input order) — with Monte Carlo dropout: K forward passes
 * with dropout ON, the passes spread across ranks, mean / std / predictive entropy per sample.
 * MC masks are keyed by the PASS (stream = pass + 1) and the row, not by the rank, so the result
 * for a seed does not depend on the rank count. Collective. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/io.h"
#include "dptrain/train.h"
#include "train_internal.h"

#define INFER_BATCH 1024  /* rows per forward call */
#define INFER_BLOCK 16384 /* rows gathered and written at a time */

static dpt_status pick_group(const char *data, const char *group, char *out, size_t n) {
    if (group && *group) {
        snprintf(out, n, "%s", group);
        return DPT_OK;
    }
    dpt_data_info info;
    dpt_status st = dpt_data_probe(data, "test", &info);
    snprintf(out, n, "%s", st == DPT_OK ? "test" : "train");
    dpt_error_clear();
    return DPT_OK;
}

dpt_status dpt_inference_load(const dpt_comm *c, const char *weights, const char *config_path,
                              const char *data, const char *group, dpt_inference *inf) {
    memset(inf, 0, sizeof *inf);
    char *text = NULL;
    size_t len = 0;
    dpt_status st = DPT_OK;
    bool is_ckpt = false;
    /* rank 0 reads the config text (from --config, else from the checkpoint) and broadcasts it */
    if (c->rank == 0) {
        char *ck = NULL;
        is_ckpt = dpt_ckpt_read_config(weights, &ck) == DPT_OK;
        if (config_path && *config_path) {
            free(ck);
            st = dpt_read_file(config_path, DPT_ERR_CONFIG, &text, &len);
        } else if (is_ckpt) {
            text = ck;
            len = strlen(ck);
        } else {
            st = dpt_error_set(DPT_ERR_CHECKPOINT,
                               "%s: not a dptrain checkpoint (no /dptrain/config); for a Keras "
                               "weights file pass --config CONFIG with the model",
                               weights);
        }
    }
    st = dpt_comm_bcast_text(c, st, &text, &len);
    if (st != DPT_OK)
        return st;
    int ck = is_ckpt;
    dpt_comm_bcast(c, &ck, sizeof ck);
    const char *name = config_path && *config_path ? config_path : weights;
    st = dpt_config_parse(text, len, name, &inf->cfg);
    inf->config_text = text;
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        free(text);
        inf->config_text = NULL;
        return st;
    }
    inf->has_cfg = true;
    dpt_shape in = inf->cfg.input_shape;
    if (!inf->cfg.has_input_shape) {
        dpt_data_info di;
        char g[256];
        st = data ? pick_group(data, group, g, sizeof g) : DPT_OK;
        if (st == DPT_OK && data)
            st = dpt_data_probe(data, g, &di);
        if (st == DPT_OK && !data)
            st = dpt_error_set(DPT_ERR_CONFIG, "%s: model: no input shape", name);
        if (st == DPT_OK)
            in = di.x_shape;
    }
    dpt_json_ctx ctx = {.file = inf->cfg.model_file[0] ? inf->cfg.model_file : name};
    if (st == DPT_OK)
        st = dpt_model_create(inf->cfg.layers, &in, INFER_BATCH, inf->cfg.seed, &ctx, &inf->model);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        dpt_inference_free(inf);
        return st;
    }
    /* rank 0 loads the weights (a checkpoint is verified: format, shapes, checksum) */
    if (c->rank == 0)
        st = ck ? dpt_ckpt_read(weights, inf->model, NULL, NULL)
                : dpt_weights_load_keras(weights, inf->model);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) {
        dpt_inference_free(inf);
        return st;
    }
    dpt_comm_bcast(c, dpt_model_params(inf->model),
                   dpt_model_n_params(inf->model) * (int64_t)sizeof(float));
    return DPT_OK;
}

void dpt_inference_free(dpt_inference *inf) {
    dpt_model_destroy(&inf->model);
    if (inf->has_cfg)
        dpt_config_deinit(&inf->cfg);
    inf->has_cfg = false;
    free(inf->config_text);
    inf->config_text = NULL;
}

dpt_status dpt_evaluate(const dpt_comm *c, dpt_inference *inf, const char *data, const char *group,
                        double *loss, double *accuracy, int64_t *n) {
    return dpt_evaluate_metrics(c, inf, data, group, loss, accuracy, NULL, n);
}

dpt_status dpt_evaluate_metrics(const dpt_comm *c, dpt_inference *inf, const char *data,
                                const char *group, double *loss, double *accuracy, double *metrics,
                                int64_t *n) {
    char g[256];
    dpt_status st = pick_group(data, group, g, sizeof g);
    dpt_data_info info;
    st = dpt_data_probe(data, g, &info);
    if (st == DPT_OK)
        st = dpt_model_check_loss(inf->model, inf->cfg.loss, inf->cfg.file);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    int64_t lo, hi;
    dpt_split_range(info.n, c->rank, c->size, &lo, &hi);
    dpt_model_set_fused_loss(inf->model, &inf->cfg.loss_spec);
    dpt_target_spec ts = dpt_train_targets(inf->cfg.loss, inf->model);
    dpt_shard *s = NULL;
    dpt_metrics_spec ms;
    double *mstate = NULL;
    st = dpt_train_metrics(&inf->cfg, dpt_model_output_size(inf->model), &ms);
    int64_t ns = st == DPT_OK ? dpt_metrics_state_size(&ms) : 0;
    if (st == DPT_OK && ns > 0)
        st = dpt_alloc((size_t)ns * sizeof(double), "metric state", (void **)&mstate);
    if (st == DPT_OK)
        st = dpt_shard_open(data, g, lo, hi, &ts, dpt_model_input_shape(inf->model), &s);
    st = dpt_comm_agree(c, st);
    double sums[3] = {0, 0, 0};
    if (st == DPT_OK)
        st =
            dpt_eval_shard(c, inf->model, &inf->cfg.loss_spec, &ms, s, inf->cfg.seed, sums, mstate);
    dpt_shard_destroy(&s);
    if (st == DPT_OK && metrics) { /* in compile.metrics order; NaN for "accuracy" */
        double v[DPT_MAX_METRICS];
        dpt_metrics_finalize(&ms, mstate, v);
        for (int i = 0, j = 0; i < inf->cfg.metrics.n; i++)
            metrics[i] = inf->cfg.metrics.m[i].kind == DPT_METRIC_ACCURACY ? NAN : v[j++];
    }
    dpt_free(mstate);
    dpt_model_set_fused_head(inf->model, DPT_LOSS_MSE); /* back to probabilities */
    if (st != DPT_OK)
        return st;
    *loss = sums[0] / sums[2];
    *accuracy = inf->cfg.metric_accuracy ? sums[1] / sums[2] : NAN;
    *n = (int64_t)sums[2];
    return DPT_OK;
}

/* Forward over `rows` rows of x in INFER_BATCH pieces into out (rows, K). */
static void forward_rows(dpt_model *m, const dpt_pass *p0, const float *x, int64_t rows,
                         int64_t row0, float *out) {
    int64_t xs = dpt_model_input_size(m), K = dpt_model_output_size(m);
    for (int64_t r = 0; r < rows; r += INFER_BATCH) {
        int64_t b = rows - r < INFER_BATCH ? rows - r : INFER_BATCH;
        dpt_pass p = *p0;
        p.step = (uint64_t)(row0 + r); /* MC masks: a function of (pass, row block) */
        const float *y = dpt_model_forward(m, &p, x + r * xs, b);
        memcpy(out + r * K, y, (size_t)(b * K) * sizeof(float));
    }
}

dpt_status dpt_predict(const dpt_comm *c, dpt_inference *inf, const char *data, const char *group,
                       const char *out_path, int mc_samples, uint32_t seed) {
    char g[256];
    dpt_status st = pick_group(data, group, g, sizeof g);
    dpt_data_info info;
    st = dpt_data_probe(data, g, &info);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_model *m = inf->model;
    int64_t N = info.n, K = dpt_model_output_size(m);
    bool mc = mc_samples > 0;
    /* buffers: MC: every rank runs its passes over the whole block; else its part of the block */
    int64_t cap = INFER_BLOCK;
    float *out = NULL, *all = NULL;
    double *acc = NULL, *red = NULL;
    int *counts = NULL, *displs = NULL;
    dpt_pred_file *pf = NULL;
    st = dpt_alloc((size_t)(cap * K) * sizeof(float), "predict buffer", (void **)&out);
    if (st == DPT_OK && mc)
        st = dpt_alloc((size_t)(2 * cap * K) * sizeof(double), "predict sums", (void **)&acc);
    if (st == DPT_OK && c->rank == 0) {
        st = dpt_alloc((size_t)(cap * K) * sizeof(float) * (mc ? 3 : 1), "predict block",
                       (void **)&all);
        if (st == DPT_OK && mc)
            st = dpt_alloc((size_t)(2 * cap * K) * sizeof(double), "predict sums", (void **)&red);
        counts = calloc((size_t)c->size, sizeof *counts);
        displs = calloc((size_t)c->size, sizeof *displs);
        if (st == DPT_OK && (!counts || !displs))
            st = dpt_error_set(DPT_ERR_NOMEM, "predict: out of memory");
        if (st == DPT_OK) {
            if (mc) {
                const char *names[3] = {"mean", "std", "entropy"};
                int64_t cols[3] = {K, K, 0};
                st = dpt_pred_create(out_path, N, 3, names, cols, &pf);
                if (st == DPT_OK)
                    st = dpt_pred_attr_i64(pf, "mc_samples", mc_samples);
                if (st == DPT_OK)
                    st = dpt_pred_attr_i64(pf, "seed", seed);
            } else {
                const char *names[1] = {"pred"};
                int64_t cols[1] = {K};
                st = dpt_pred_create(out_path, N, 1, names, cols, &pf);
            }
        }
    }
    st = dpt_comm_agree(c, st);
    dpt_act head = dpt_model_head_act(m);
    (void)head;
    for (int64_t b0 = 0; b0 < N && st == DPT_OK; b0 += cap) {
        int64_t bn = N - b0 < cap ? N - b0 : cap;
        int64_t lo = 0, hi = bn;
        if (!mc)
            dpt_split_range(bn, c->rank, c->size, &lo, &hi);
        dpt_shard *s = NULL;
        st = dpt_shard_open(data, g, b0 + lo, b0 + hi, NULL, dpt_model_input_shape(m), &s);
        if (st == DPT_OK)
            st = dpt_shard_check_ids(s, data, g, dpt_model_input_ids(m));
        st = dpt_comm_agree(c, st);
        if (st != DPT_OK) {
            dpt_shard_destroy(&s);
            break;
        }
        if (!mc) {
            dpt_pass p = {.training = false, .seed = seed};
            forward_rows(m, &p, dpt_shard_x(s), hi - lo, b0 + lo, out);
            int mine = (int)((hi - lo) * K);
            if (c->rank == 0)
                for (int r = 0; r < c->size; r++) {
                    int64_t l, h;
                    dpt_split_range(bn, r, c->size, &l, &h);
                    counts[r] = (int)((h - l) * K);
                    displs[r] = (int)(l * K);
                }
            dpt_comm_gatherv_f32(c, out, mine, all, counts, displs);
            if (c->rank == 0)
                st = dpt_pred_write(pf, 0, b0, bn, all);
        } else {
            memset(acc, 0, (size_t)(2 * bn * K) * sizeof(double));
            for (int j = c->rank; j < mc_samples; j += c->size) {
                dpt_pass p = {
                    .training = false, .mc_dropout = true, .seed = seed, .stream = (uint32_t)j + 1};
                forward_rows(m, &p, dpt_shard_x(s), bn, b0, out);
                for (int64_t i = 0; i < bn * K; i++) {
                    acc[i] += out[i];
                    acc[bn * K + i] += (double)out[i] * out[i];
                }
            }
            dpt_comm_reduce_sum_f64(c, acc, red, (int)(2 * bn * K));
            if (c->rank == 0) {
                float *mean = all, *sd = all + cap * K, *ent = all + 2 * cap * K;
                for (int64_t r = 0; r < bn; r++) {
                    double h = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double mu = red[r * K + k] / mc_samples;
                        double var = red[bn * K + r * K + k] / mc_samples - mu * mu;
                        mean[r * K + k] = (float)mu;
                        sd[r * K + k] = (float)sqrt(var > 0 ? var : 0);
                        if (K == 1) { /* binary: entropy of Bernoulli(mu) */
                            if (mu > 0 && mu < 1)
                                h = -(mu * log(mu) + (1 - mu) * log(1 - mu));
                        } else if (mu > 0) {
                            h -= mu * log(mu);
                        }
                    }
                    ent[r] = (float)h;
                }
                st = dpt_pred_write(pf, 0, b0, bn, mean);
                if (st == DPT_OK)
                    st = dpt_pred_write(pf, 1, b0, bn, sd);
                if (st == DPT_OK)
                    st = dpt_pred_write(pf, 2, b0, bn, ent);
            }
        }
        dpt_shard_destroy(&s);
        st = dpt_comm_agree(c, st);
    }
    if (c->rank == 0) {
        if (st == DPT_OK)
            st = dpt_pred_close(&pf);
        else
            dpt_pred_abandon(&pf);
    }
    st = dpt_comm_agree(c, st);
    dpt_free(out);
    dpt_free(acc);
    dpt_free(all);
    dpt_free(red);
    free(counts);
    free(displs);
    return st;
}
