/* `dptrain evaluate` and `dptrain predict`: argument parsing only; the work is in src/train. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *weights, *config, *data, *out;
    char file[4096], group[256];
    int64_t mc, seed;
    bool force; /* predict: --out may replace an existing file that is not a prediction file */
} infer_args;

/* Splits "FILE[:GROUP]" — a ':' after the last '/' starts the group. */
static void split_data(const char *spec, char *file, size_t fn, char *group, size_t gn) {
    snprintf(file, fn, "%s", spec);
    group[0] = '\0';
    char *colon = strrchr(file, ':');
    char *slash = strrchr(file, '/');
    if (colon && (!slash || colon > slash)) {
        *colon = '\0';
        snprintf(group, gn, "%s", colon + 1);
    }
}

static dpt_status parse(const char *cmd, int argc, char **argv, bool predict, infer_args *a) {
    memset(a, 0, sizeof *a);
    if (argc < 1 || argv[0][0] == '-')
        return dpt_error_set(DPT_ERR_USAGE, "%s: missing CHECKPOINT (see dptrain help %s)", cmd,
                             cmd);
    a->weights = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (predict && !strcmp(o, "--force")) {
            a->force = true;
            continue;
        }
        bool known = !strcmp(o, "--data") || !strcmp(o, "--config") ||
                     (predict &&
                      (!strcmp(o, "--out") || !strcmp(o, "--mc-samples") || !strcmp(o, "--seed")));
        if (!known)
            return dpt_error_set(DPT_ERR_USAGE, "%s: unknown option \"%s\" (see dptrain help %s)",
                                 cmd, o, cmd);
        if (!v)
            return dpt_error_set(DPT_ERR_USAGE, "%s: %s needs a value", cmd, o);
        if (!*v)
            return dpt_error_set(DPT_ERR_USAGE, "%s: %s: the value is empty", cmd, o);
        i++;
        dpt_status st = DPT_OK;
        if (!strcmp(o, "--data"))
            a->data = v;
        else if (!strcmp(o, "--config"))
            a->config = v;
        else if (!strcmp(o, "--out"))
            a->out = v;
        else if (!strcmp(o, "--mc-samples"))
            st = dpt_cli_parse_i64(o, v, 1, 1000000, &a->mc);
        else if (!strcmp(o, "--seed"))
            st = dpt_cli_parse_i64(o, v, 0, UINT32_MAX, &a->seed);
        if (st != DPT_OK)
            return st;
    }
    if (!a->data)
        return dpt_error_set(DPT_ERR_USAGE, "%s: --data FILE[:GROUP] is required", cmd);
    if (predict && !a->out)
        return dpt_error_set(DPT_ERR_USAGE, "%s: --out PRED.h5 is required", cmd);
    if (!a->weights[0])
        return dpt_error_set(DPT_ERR_USAGE, "%s: CHECKPOINT: the path is empty", cmd);
    split_data(a->data, a->file, sizeof a->file, a->group, sizeof a->group);
    if (!a->file[0])
        return dpt_error_set(DPT_ERR_USAGE, "%s: --data %s: no file before the ':'", cmd, a->data);
    if (a->data[strlen(a->file)] == ':' && !a->group[0])
        return dpt_error_set(DPT_ERR_USAGE,
                             "%s: --data %s: no group after the ':' (FILE:GROUP, or FILE alone "
                             "for /test, else /train)",
                             cmd, a->data);
    return DPT_OK;
}

dpt_status dpt_cli_evaluate(const dpt_comm *c, int argc, char **argv) {
    infer_args a;
    dpt_status st = parse("evaluate", argc, argv, false, &a);
    if (st != DPT_OK)
        return st;
    dpt_inference inf;
    st = dpt_inference_load(c, a.weights, a.config, a.file, a.group, &inf);
    if (st != DPT_OK)
        return st;
    double loss, acc;
    int64_t n;
    double mv[DPT_MAX_METRICS];
    st = dpt_evaluate_metrics(c, &inf, a.file, a.group[0] ? a.group : NULL, &loss, &acc, mv, &n);
    if (st == DPT_OK && c->rank == 0) {
        printf("loss: %.4f", loss);
        if (!isnan(acc))
            printf(" - accuracy: %.4f", acc);
        for (int i = 0; i < inf.cfg.metrics.n; i++)
            if (!isnan(mv[i]))
                printf(" - %s: %.4f", inf.cfg.metrics.m[i].name, mv[i]);
        printf(" (%lld samples)\n", (long long)n);
        fflush(stdout);
    }
    dpt_inference_free(&inf);
    return st;
}

dpt_status dpt_cli_predict(const dpt_comm *c, int argc, char **argv) {
    infer_args a;
    dpt_status st = parse("predict", argc, argv, true, &a);
    if (st != DPT_OK)
        return st;
    /* never replace what this command reads, nor a file predict did not write (unless --force) */
    if (c->rank == 0) {
        const char *inputs[3] = {a.weights, a.file, a.config};
        const char *what[3] = {"the checkpoint", "the dataset", "the config"};
        st = dpt_pred_check_out(a.out, inputs, what, 3, a.force);
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return st;
    dpt_inference inf;
    st = dpt_inference_load(c, a.weights, a.config, a.file, a.group, &inf);
    if (st != DPT_OK)
        return st;
    uint32_t seed = a.seed > 0 ? (uint32_t)a.seed : inf.cfg.seed;
    st = dpt_predict(c, &inf, a.file, a.group[0] ? a.group : NULL, a.out, (int)a.mc, seed);
    if (st == DPT_OK && c->rank == 0) {
        if (a.mc > 0)
            printf("wrote %s: /mean, /std, /entropy over %lld Monte Carlo dropout passes\n", a.out,
                   (long long)a.mc);
        else
            printf("wrote %s: /pred\n", a.out);
        fflush(stdout);
    }
    dpt_inference_free(&inf);
    return st;
}
