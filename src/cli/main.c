/* The `dptrain` command: argument parsing, reading the config on rank 0 and broadcasting it, and
 * dispatch to the library (fit, summary, data ...). Holds no training logic. Every failure ends
 * with ONE line on rank 0 and the status as exit code on every rank (README "Exit codes"). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/dptrain.h"
#include "cli.h"

/* before the fit options */
static const char *USAGE =
    "usage: dptrain COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  fit CONFIG [options]       train the model of CONFIG across the MPI ranks\n";
/* after the fit options (fit_opts.c) */
static const char *USAGE_REST =
    "      SIGTERM / SIGUSR1 / SIGINT: checkpoint at the next step, exit 75 (resumable)\n"
    "  evaluate CKPT --data FILE[:GROUP] [--config CONFIG]\n"
    "                             loss and accuracy of a checkpoint (or Keras weights + CONFIG)\n"
    "  predict CKPT --data FILE[:GROUP] --out PRED.h5 [--mc-samples K] [--seed S] [--config C]\n"
    "          [--force]          (--out is never an input; an existing file only when predict\n"
    "                             wrote it, else --force)\n"
    "                             predictions in input order; with K, Monte Carlo dropout: mean,\n"
    "                             std and predictive entropy over K passes spread across ranks\n"
    "  plot RUN_DIR [--out FILE.svg]  redraw the learning curves from RUN_DIR/history.csv\n"
    "  summary CONFIG             print the model: layers, output shapes, parameters\n"
    "  data synth --out FILE.h5 [--samples N] [--features F] [--seed S]\n"
    "                             write the tutorial's synthetic data (uniform features, 0/1 "
    "labels)\n"
    "  data adding --out FILE.h5 [--samples N] [--steps T] [--seed S]\n"
    "                             write the adding problem (long memory: x (N, T, 2), y the sum\n"
    "                             of the two marked values)\n"
    "  data fashion-mnist --out FILE.h5 [--from DIR]\n"
    "                             convert the Fashion-MNIST IDX files (default DIR\n"
    "                             /usr/share/datasets/fashion-mnist)\n"
    "  data csv FILE.csv --label COLUMN --out FILE.h5\n"
    "                             convert a CSV file with a header row\n"
    "  data inspect FILE.h5       print groups, shapes, dtypes and label counts\n"
    "  help, --help, -h           this text\n"
    "  --version                  print the version\n"
    "\n"
    "exit codes: 0 success, 1 internal error, 2 usage, 3 config, 4 data, 5 checkpoint,\n"
    "            6 numeric (non-finite loss), 7 output I/O, 8 out of memory,\n"
    "            9 run directory busy (another job), 75 preempted after a checkpoint (resumable)\n";

/* ---- small argument helpers ---------------------------------------------------------------- */

dpt_status dpt_cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno)
        return dpt_error_set(DPT_ERR_USAGE, "%s: expected an integer, got \"%s\"", opt, s ? s : "");
    if (v < lo || v > hi)
        return dpt_error_set(DPT_ERR_USAGE, "%s: must be in [%lld, %lld], got %lld", opt,
                             (long long)lo, (long long)hi, v);
    *out = v;
    return DPT_OK;
}

dpt_status dpt_cli_parse_size(const char *opt, const char *s, int64_t *out) {
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    int64_t mult = 1;
    if (end && *end) {
        switch (*end) {
        case 'k':
        case 'K':
            mult = (int64_t)1 << 10;
            break;
        case 'm':
        case 'M':
            mult = (int64_t)1 << 20;
            break;
        case 'g':
        case 'G':
            mult = (int64_t)1 << 30;
            break;
        case 't':
        case 'T':
            mult = (int64_t)1 << 40;
            break;
        default:
            mult = 0;
        }
        if (mult && end[1] && strcmp(end + 1, "B") && strcmp(end + 1, "iB"))
            mult = 0;
    }
    if (!s || !*s || errno || mult == 0 || !(v >= 1) || v * (double)mult > 9.0e18)
        return dpt_error_set(DPT_ERR_USAGE, "%s: expected a size such as 512M or 4G, got \"%s\"",
                             opt, s ? s : "");
    *out = (int64_t)(v * (double)mult);
    return DPT_OK;
}

/* Reads the file on rank 0 and broadcasts it; every rank gets the same bytes or the same error. */
dpt_status dpt_cli_read_bcast(const dpt_comm *c, const char *path, dpt_status what, char **text,
                              size_t *len) {
    dpt_status st = DPT_OK;
    *text = NULL;
    if (c->rank == 0)
        st = dpt_read_file(path, what, text, len);
    return dpt_comm_bcast_text(c, st, text, len);
}

dpt_status dpt_cli_load_config(const dpt_comm *c, const char *path, dpt_config *cfg,
                               char **text_out) {
    char *text = NULL;
    size_t len = 0;
    dpt_status st = dpt_cli_read_bcast(c, path, DPT_ERR_CONFIG, &text, &len);
    if (st != DPT_OK)
        return st;
    st = dpt_config_parse(text, len, path, cfg); /* same bytes: same result on every rank */
    if (st == DPT_OK && text_out)
        *text_out = text;
    else
        free(text);
    return dpt_comm_agree(c, st);
}

/* ---- fit ----------------------------------------------------------------------------------- */

static dpt_status cmd_fit(const dpt_comm *c, int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-')
        return dpt_error_set(DPT_ERR_USAGE, "fit: missing CONFIG (usage: dptrain fit CONFIG "
                                            "[--data FILE] [--epochs N] ...)");
    const char *cfg_path = argv[0];
    if (!cfg_path[0])
        return dpt_error_set(DPT_ERR_USAGE, "fit: CONFIG: the path is empty");
    dpt_cli_fit_args a = dpt_cli_fit_args_default();
    dpt_status st = dpt_cli_fit_parse(argc - 1, argv + 1, &a);
    if (st != DPT_OK)
        return st;

    dpt_config cfg;
    char *text = NULL;
    st = dpt_cli_load_config(c, cfg_path, &cfg, &text);
    if (st != DPT_OK)
        return st;
    if (cfg.model_file[0]) {
        /* the model came from another file: store a self-contained config in checkpoints */
        json_t *root = json_loads(text, 0, NULL);
        char *dumped = NULL;
        if (root && !json_object_set(root, "model", cfg.model_json))
            dumped = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (dumped) {
            free(text);
            text = dumped;
        }
    }
    if (a.data)
        snprintf(cfg.data_path, sizeof cfg.data_path, "%s", a.data);
    if (a.epochs > 0)
        cfg.epochs = (int)a.epochs;
    if (a.batch > 0)
        cfg.batch_size = a.batch;
    if (a.seed >= 0)
        cfg.seed = (uint32_t)a.seed;
    dpt_fit_opts o = dpt_fit_opts_default();
    o.run_dir = a.run_dir;
    o.config_text = text;
    o.verbose = (int)a.verbose;
    o.no_allreduce = a.no_allreduce;
    o.reduce = !strcmp(a.reduce, "shm")   ? DPT_REDUCE_SHM
               : !strcmp(a.reduce, "mpi") ? DPT_REDUCE_MPI
                                          : DPT_REDUCE_AUTO;
    o.resume = a.resume;
    o.checkpoint_every = a.every;
    o.keep = (int)a.keep;
    o.handle_signals = true;
    o.skip_nonfinite = a.skip_nonfinite;
    o.check_replicas = a.check_replicas;
    o.watchdog_s = (double)a.watchdog;
    o.memory_limit = a.memory_limit;
    o.local_order = !strcmp(a.order, "local");
    o.profile = a.profile;
    o.init_weights = a.init_weights;
    o.reproducible = a.reproducible;
    o.allow_changes = a.allow_changes;
    o.dry_run = a.dry_run;
    dpt_fit_result res;
    st = dpt_fit(c, &cfg, &o, &res);
    if (st == DPT_OK && a.dry_run && c->rank == 0)
        printf("dry run: %s accepted (config, data, model%s); nothing trained\n", cfg_path,
               a.resume ? ", checkpoint" : "");
    dpt_config_deinit(&cfg);
    free(text);
    return st;
}

static dpt_status cmd_summary(const dpt_comm *c, int argc, char **argv) {
    if (argc < 1)
        return dpt_error_set(DPT_ERR_USAGE, "summary: missing CONFIG");
    dpt_config cfg;
    dpt_status st = dpt_cli_load_config(c, argv[0], &cfg, NULL);
    if (st != DPT_OK)
        return st;
    if (!cfg.has_input_shape) {
        dpt_data_info info;
        if (!cfg.data_path[0])
            st = dpt_error_set(DPT_ERR_CONFIG,
                               "%s: model: no input shape, and no data.path to "
                               "take it from",
                               cfg.file);
        else
            st = dpt_data_probe(cfg.data_path, cfg.train_group, &info);
        if (st == DPT_OK)
            cfg.input_shape = info.x_shape;
    }
    dpt_model *m = NULL;
    dpt_json_ctx ctx = {.file = cfg.model_file[0] ? cfg.model_file : cfg.file};
    if (st == DPT_OK)
        st = dpt_model_create(cfg.layers, &cfg.input_shape, 1, cfg.seed, &ctx, &m);
    if (st == DPT_OK && c->rank == 0) {
        char buf[16384];
        dpt_model_summary(m, buf, sizeof buf);
        fputs(buf, stdout);
    }
    dpt_model_destroy(&m);
    dpt_config_deinit(&cfg);
    return dpt_comm_agree(c, st);
}

int main(int argc, char **argv) {
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        if (argc >= 3)
            return dpt_cli_help(argv[2]);
        fputs(USAGE, stdout);
        dpt_cli_fit_usage(stdout);
        fputs(USAGE_REST, stdout);
        return 0;
    }
    /* `dptrain COMMAND ... --help` is `dptrain help COMMAND` */
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return dpt_cli_help(argv[1]);
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("dptrain %s\n", DPTRAIN_VERSION);
        return 0;
    }
    /* past a file-size limit (ulimit -f) a write must fail with EFBIG and be reported, not kill
     * the rank with SIGXFSZ */
    signal(SIGXFSZ, SIG_IGN);
    /* OpenBLAS on a generic kernel although the CPU has AVX2 / AVX-512 (Debian's 0.3.21 on recent
     * Xeons: sgemm 4.5x slower): it picks the kernel when it loads, from OPENBLAS_CORETYPE, so set
     * that and start again, before MPI_Init. Never over the user's own choice, never twice. */
    const char *better = getenv("OPENBLAS_CORETYPE") ? NULL : dpt_blas_better_coretype();
    if (better && !getenv("DPT_OPENBLAS_REEXEC")) {
        setenv("DPT_OPENBLAS_REEXEC", dpt_blas_corename(), 1);
        setenv("OPENBLAS_CORETYPE", better, 1);
        execv("/proc/self/exe", argv);
        unsetenv("OPENBLAS_CORETYPE"); /* no exec: carry on; fit warns with the remedy */
    }
    dpt_comm c;
    dpt_comm_world_start(&argc, &argv, &c);
    dpt_status st = DPT_OK;
    if (argc < 2) {
        st = dpt_error_set(DPT_ERR_USAGE, "missing COMMAND (see dptrain --help)");
    } else if (!strcmp(argv[1], "fit")) {
        st = cmd_fit(&c, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "summary")) {
        st = cmd_summary(&c, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "evaluate")) {
        st = dpt_cli_evaluate(&c, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "predict")) {
        st = dpt_cli_predict(&c, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "plot")) {
        st = c.rank == 0 ? dpt_cli_plot(argc - 2, argv + 2) : DPT_OK;
        st = dpt_comm_agree(&c, st);
    } else if (!strcmp(argv[1], "data")) {
        st = dpt_cli_data(&c, argc - 2, argv + 2);
    } else {
        st = dpt_error_set(DPT_ERR_USAGE, "unknown command \"%s\" (see dptrain --help)", argv[1]);
    }
    if (st != DPT_OK && c.rank == 0) {
        fprintf(stderr, "dptrain: %s: %s\n", dpt_status_name(st), dpt_error_message());
        fflush(stderr);
    }
    dpt_comm_world_end(&c);
    return (int)st;
}
