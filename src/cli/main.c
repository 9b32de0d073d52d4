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

#include <mpi.h>

#include "dptrain/dptrain.h"
#include "cli.h"

static const char *USAGE =
    "usage: dptrain COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  fit CONFIG [options]       train the model of CONFIG across the MPI ranks\n"
    "      --data FILE.h5         dataset (overrides data.path)\n"
    "      --epochs N             overrides fit.epochs\n"
    "      --batch-size B         GLOBAL batch size, overrides fit.batch_size\n"
    "      --seed S               overrides fit.seed\n"
    "      --run-dir DIR          write history.csv/.jsonl/.svg, checkpoints (last.h5,\n"
    "                             ckpt-*.h5) and final.h5 (Keras weights) into DIR\n"
    "      --resume               continue exactly from the newest valid checkpoint in DIR\n"
    "                             (starts from the beginning when DIR has none)\n"
    "      --checkpoint-every N|epoch  steps between checkpoints (default: config, else epoch)\n"
    "      --keep K               ckpt-*.h5 files kept besides last.h5 (default 3)\n"
    "      --skip-nonfinite       skip a batch with a NaN/Inf loss or gradient (default: stop,\n"
    "                             exit 6, keeping the last good checkpoint)\n"
    "      --check-replicas N     compare a parameter checksum across ranks every N steps\n"
    "                             (default 100; 0 = off)\n"
    "      --watchdog SECONDS     end the job when no step finished for SECONDS (default off)\n"
    "      SIGTERM / SIGUSR1 / SIGINT: checkpoint at the next step, exit 75 (resumable)\n"
    "      --verbose 0|1|2        0 silent; 1 progress bar on a terminal, one line per epoch\n"
    "                             in a log (default); 2 one line per epoch always\n"
    "      --memory-limit SIZE    bytes of its shard a rank may hold (K/M/G suffix); a larger\n"
    "                             shard is streamed (default: 1/4 of memory / ranks per node)\n"
    "      --order global|local   global (default): one order of all samples, N ranks compute\n"
    "                             what 1 rank would; local: each rank shuffles its own shard,\n"
    "                             balanced steps (streaming always uses local)\n"
    "      --init-weights FILE.h5 start from Keras weights (legacy .h5, Keras 3 .weights.h5) or a\n"
    "                             checkpoint, matched by position as Keras does, shapes checked\n"
    "      --reduce auto|shm|mpi  gradient exchange: shared memory within a node, or "
    "MPI_Allreduce\n"
    "      --no-allreduce         benchmark only: skip the gradient exchange\n"
    "      --profile              per epoch: time per step in data, compute, exchange, update\n"
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
    const char *data = NULL, *run_dir = NULL, *init_weights = NULL;
    int64_t epochs = -1, batch = -1, seed = -1, verbose = 1, every = -1, keep = -1;
    int64_t check_replicas = 100, watchdog = 0;
    int64_t memory_limit = 0;
    bool no_allreduce = false, resume = false, skip_nonfinite = false, local_order = false;
    bool profile = false;
    dpt_reduce_mode reduce = DPT_REDUCE_AUTO;
    dpt_status st = DPT_OK;
    for (int i = 1; i < argc && st == DPT_OK; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-allreduce")) {
            no_allreduce = true;
            continue;
        }
        if (!strcmp(a, "--resume")) {
            resume = true;
            continue;
        }
        if (!strcmp(a, "--profile")) {
            profile = true;
            continue;
        }
        if (!strcmp(a, "--skip-nonfinite")) {
            skip_nonfinite = true;
            continue;
        }
        bool takes = !strcmp(a, "--data") || !strcmp(a, "--epochs") || !strcmp(a, "--batch-size") ||
                     !strcmp(a, "--seed") || !strcmp(a, "--run-dir") || !strcmp(a, "--verbose") ||
                     !strcmp(a, "--checkpoint-every") || !strcmp(a, "--keep") ||
                     !strcmp(a, "--check-replicas") || !strcmp(a, "--watchdog") ||
                     !strcmp(a, "--init-weights") || !strcmp(a, "--memory-limit") ||
                     !strcmp(a, "--order") || !strcmp(a, "--reduce");
        if (!takes) {
            st = dpt_error_set(DPT_ERR_USAGE, "fit: unknown option \"%s\" (see dptrain --help)", a);
            break;
        }
        if (!v) {
            st = dpt_error_set(DPT_ERR_USAGE, "fit: %s needs a value", a);
            break;
        }
        if (!*v) { /* --run-dir '' would train and save nothing; --data '' read nothing */
            st = dpt_error_set(DPT_ERR_USAGE, "fit: %s: the value is empty", a);
            break;
        }
        i++;
        if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--run-dir"))
            run_dir = v;
        else if (!strcmp(a, "--init-weights"))
            init_weights = v;
        else if (!strcmp(a, "--memory-limit"))
            st = dpt_cli_parse_size(a, v, &memory_limit);
        else if (!strcmp(a, "--order")) {
            if (!strcmp(v, "local"))
                local_order = true;
            else if (strcmp(v, "global"))
                st = dpt_error_set(DPT_ERR_USAGE,
                                   "fit: --order: must be global or local, got \"%s\"", v);
        } else if (!strcmp(a, "--reduce")) {
            if (!strcmp(v, "auto") || !strcmp(v, "shm") || !strcmp(v, "mpi"))
                reduce = v[0] == 'a'   ? DPT_REDUCE_AUTO
                         : v[0] == 's' ? DPT_REDUCE_SHM
                                       : DPT_REDUCE_MPI;
            else
                st = dpt_error_set(DPT_ERR_USAGE,
                                   "fit: --reduce: must be auto, shm or mpi, got \"%s\"", v);
        } else if (!strcmp(a, "--epochs"))
            st = dpt_cli_parse_i64(a, v, 1, INT_MAX, &epochs);
        else if (!strcmp(a, "--batch-size"))
            st = dpt_cli_parse_i64(a, v, 1, INT_MAX, &batch);
        else if (!strcmp(a, "--seed"))
            st = dpt_cli_parse_i64(a, v, 0, UINT32_MAX, &seed);
        else if (!strcmp(a, "--verbose"))
            st = dpt_cli_parse_i64(a, v, 0, 2, &verbose);
        else if (!strcmp(a, "--keep"))
            st = dpt_cli_parse_i64(a, v, 0, 1000000, &keep);
        else if (!strcmp(a, "--check-replicas"))
            st = dpt_cli_parse_i64(a, v, 0, INT64_MAX, &check_replicas);
        else if (!strcmp(a, "--watchdog"))
            st = dpt_cli_parse_i64(a, v, 0, 86400 * 365, &watchdog);
        else if (!strcmp(a, "--checkpoint-every")) {
            if (!strcmp(v, "epoch"))
                every = 0;
            else
                st = dpt_cli_parse_i64(a, v, 1, INT64_MAX, &every);
        }
    }
    if (st == DPT_OK && (resume || every >= 0 || keep >= 0) && !run_dir)
        st = dpt_error_set(DPT_ERR_USAGE, "fit: --resume, --checkpoint-every and --keep need "
                                          "--run-dir DIR");
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
    if (data)
        snprintf(cfg.data_path, sizeof cfg.data_path, "%s", data);
    if (epochs > 0)
        cfg.epochs = (int)epochs;
    if (batch > 0)
        cfg.batch_size = batch;
    if (seed >= 0)
        cfg.seed = (uint32_t)seed;
    dpt_fit_opts o = {.run_dir = run_dir,
                      .config_text = text,
                      .verbose = (int)verbose,
                      .no_allreduce = no_allreduce,
                      .reduce = reduce,
                      .out = stdout,
                      .resume = resume,
                      .checkpoint_every = every,
                      .keep = (int)keep,
                      .handle_signals = true,
                      .skip_nonfinite = skip_nonfinite,
                      .check_replicas = check_replicas,
                      .watchdog_s = (double)watchdog,
                      .memory_limit = memory_limit,
                      .local_order = local_order,
                      .profile = profile,
                      .init_weights = init_weights};
    dpt_fit_result res;
    st = dpt_fit(c, &cfg, &o, &res);
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
    MPI_Init(&argc, &argv);
    dpt_comm c;
    dpt_status st = dpt_comm_init(&c, MPI_COMM_WORLD);
    if (st != DPT_OK) {
        fprintf(stderr, "dptrain: %s\n", dpt_error_message());
        MPI_Abort(MPI_COMM_WORLD, st);
    }
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
    dpt_comm_deinit(&c);
    MPI_Finalize();
    return (int)st;
}
