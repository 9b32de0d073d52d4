/* The options of `dptrain fit`, in ONE table: the parser, the overview (dptrain --help), the
 * full help (dptrain help fit) and the man page's OPTIONS of fit (dptrain help --man fit, kept in
 * docs/dptrain.1 and checked by tests/cli/test_manpage.sh) are all made from it. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef enum { O_FLAG, O_INT, O_SIZE, O_STR, O_CHOICE, O_EVERY } opt_kind;

typedef struct {
    const char *name;    /* "--epochs" */
    const char *arg;     /* "N"; NULL for a flag */
    opt_kind kind;       /* how the value is read */
    size_t off;          /* where it goes in dpt_cli_fit_args */
    int64_t lo, hi;      /* O_INT: the range */
    const char *choices; /* O_CHOICE: "global|local" */
    const char *brief;   /* one line for the overview */
    const char *help;    /* the full text (help and man page); lines of at most 72 columns */
} opt_spec;

#define F(m) offsetof(dpt_cli_fit_args, m)
static const opt_spec OPTS[] = {
    {"--data", "FILE.h5", O_STR, F(data), 0, 0, NULL, "dataset (overrides data.path)",
     "the HDF5 dataset (overrides data.path)"},
    {"--epochs", "N", O_INT, F(epochs), 1, INT_MAX, NULL, "overrides fit.epochs",
     "number of epochs (overrides fit.epochs; default 1)"},
    {"--batch-size", "B", O_INT, F(batch), 1, INT_MAX, NULL,
     "GLOBAL batch size, overrides fit.batch_size",
     "GLOBAL batch size, split across the ranks (overrides\nfit.batch_size; default 32)"},
    {"--seed", "S", O_INT, F(seed), 0, UINT32_MAX, NULL, "overrides fit.seed",
     "weights, sample order and dropout masks derive from S\n(0 .. 4294967295; overrides "
     "fit.seed; default 0)"},
    {"--run-dir", "DIR", O_STR, F(run_dir), 0, 0, NULL,
     "write history.csv/.jsonl/.svg, checkpoints (last.h5,\nckpt-*.h5) and final.h5 (Keras "
     "weights) into DIR",
     "write the run's files into DIR (created if missing):\n"
     "  history.csv    one row per epoch: epoch,loss,accuracy,val_loss,\n"
     "                 val_accuracy,seconds,samples_per_s,\n"
     "                 learning_rate,ranks (empty = not computed)\n"
     "  history.jsonl  the same, one JSON object per epoch (null =\n"
     "                 not computed)\n"
     "  history.svg    learning curves (loss and accuracy, train and\n"
     "                 validation), redrawn after every epoch\n"
     "  last.h5, ckpt-*.h5  checkpoints (weights, optimizer, position)\n"
     "  final.h5       Keras legacy weights: model.load_weights() reads\n"
     "                 them\n"
     "  dptrain.lock   while the run lasts: one job per DIR (another\n"
     "                 job exits 9)"},
    {"--resume", NULL, O_FLAG, F(resume), 0, 0, NULL,
     "continue exactly from the newest valid checkpoint in DIR\n(starts from the beginning when "
     "DIR has none)",
     "continue exactly from the newest valid checkpoint in DIR (starts\nfrom the beginning when "
     "DIR has none); the history files keep\nthe epochs already done. Needs --run-dir"},
    {"--allow-changes", NULL, O_FLAG, F(allow_changes), 0, 0, NULL,
     "with --resume: continue although the model, loss, batch or data changed",
     "with --resume: continue although the checkpoint's run differs from\nthis one in what "
     "changes the math (a layer's options, the loss, the\noptimizer, the batch size, the data's "
     "size), with a warning naming\nit; without it such a resume is refused (exit 5). The "
     "learning\nrate, the epochs and the data path may change freely"},
    {"--checkpoint-every", "N|epoch", O_EVERY, F(every), 1, INT64_MAX, NULL,
     "steps between checkpoints (default: config, else epoch)",
     "steps between checkpoints, or only at the end of each epoch\n(default: checkpoint.every "
     "of the config, else epoch). Needs\n--run-dir"},
    {"--keep", "K", O_INT, F(keep), 0, 1000000, NULL,
     "ckpt-*.h5 files kept besides last.h5 (default 3)",
     "ckpt-*.h5 files kept besides last.h5 (default: checkpoint.keep\nof the config, else 3). "
     "Needs --run-dir"},
    {"--skip-nonfinite", NULL, O_FLAG, F(skip_nonfinite), 0, 0, NULL,
     "skip a batch with a NaN/Inf loss or gradient (default: stop,\nexit 6, keeping the last "
     "good checkpoint)",
     "skip a batch whose loss or gradient is NaN or infinite, with a\nwarning (default: stop "
     "with exit 6, keeping the last good\ncheckpoint, as Keras's TerminateOnNaN)"},
    {"--check-replicas", "N", O_INT, F(check_replicas), 0, INT64_MAX, NULL,
     "compare a parameter checksum across ranks every N steps\n(default 100; 0 = off)",
     "compare a checksum of the parameters across ranks every N\nsteps; a replica that drifted "
     "ends the job with exit 1 naming\nthe ranks (default 100; 0 = off)"},
    {"--watchdog", "SECONDS", O_INT, F(watchdog), 0, 86400 * 365, NULL,
     "end the job when no step finished for SECONDS (default off)",
     "end the whole job (exit 1) when no training step finished for\nSECONDS, e.g. a rank hung "
     "in MPI (default 0 = off)"},
    {"--verbose", "0|1|2", O_INT, F(verbose), 0, 2, NULL,
     "0 silent; 1 progress bar on a terminal, one line per epoch\nin a log (default); 2 one line "
     "per epoch always",
     "console output of rank 0 (default 1):\n"
     "  0  silent (errors still go to stderr)\n"
     "  1  a live progress bar on a terminal (step, time, samples/s,\n"
     "     ETA, running loss and accuracy, ~10 redraws per second),\n"
     "     replaced by the epoch line when the epoch ends; one line\n"
     "     per epoch when the output is a file or a pipe (Slurm .out\n"
     "     files get no carriage returns and no colour codes)\n"
     "  2  one line per epoch always (Keras's verbose=2)\n"
     "The epoch line: Epoch 3/20 - 0.12s - loss: 0.6931 - accuracy:\n"
     "0.5012 - val_loss: 0.6934 - val_accuracy: 0.4950"},
    {"--memory-limit", "SIZE", O_SIZE, F(memory_limit), 0, 0, NULL,
     "bytes of its shard a rank may hold (K/M/G suffix); a larger\nshard is streamed (default: "
     "1/4 of memory / ranks per node)",
     "bytes of its training shard a rank may hold in memory (suffix\nK, M, G, T = powers of "
     "1024); a larger shard is streamed from\nthe file in chunks instead (default: a quarter of "
     "the node's\nmemory divided by the ranks on the node)"},
    {"--order", "global|local", O_CHOICE, F(order), 0, 0, "global|local",
     "global (default): one order of all samples, N ranks compute\nwhat 1 rank would; local: "
     "each rank shuffles its own shard,\nbalanced steps (streaming always uses local)",
     "global (default): one shuffled order of all samples, so N ranks\ncompute the update 1 rank "
     "would; local: each rank shuffles its\nown shard, every step balanced across ranks (faster "
     "when ranks\nwait on each other; a streamed shard always uses local)"},
    {"--init-weights", "FILE.h5", O_STR, F(init_weights), 0, 0, NULL,
     "start from Keras weights (legacy .h5, Keras 3 .weights.h5) or a\ncheckpoint, matched by "
     "position as Keras does, shapes checked",
     "start from these weights instead of the initialisers: Keras\nlegacy .h5, Keras 3 "
     ".weights.h5 or a dptrain checkpoint, matched\nlayer by layer by position as Keras does, "
     "shapes checked"},
    {"--reduce", "auto|shm|mpi", O_CHOICE, F(reduce), 0, 0, "auto|shm|mpi",
     "gradient exchange: shared memory within a node, or MPI_Allreduce",
     "how the gradients are summed. shm: the ranks of a node write\ntheir gradients into one "
     "shared-memory window, each sums and\nupdates its own 1/k of the weights, and the parts "
     "are shared\nback through memory; between nodes MPI_Allreduce sums the parts\n(needs the "
     "same number of ranks on every node). mpi: one\nMPI_Allreduce of the whole gradient, every "
     "rank updates all the\nweights. auto (default): shm when ranks share a node, else mpi.\n"
     "Results agree to float rounding; the startup lines say which"},
    {"--reproducible", NULL, O_FLAG, F(reproducible), 0, 0, NULL,
     "the same bits on any number of ranks (fit.reproducible)",
     "train so that 1, 2, 3 or 64 ranks give the same bits (also\nfit.reproducible in the config): "
     "dropout keyed by the sample's\nposition in the global batch, gradients of fixed "
     "micro-batches "
     "of\nfit.micro_batch samples (default 32) summed exactly in fixed\npoint, every rank holding "
     "all training rows. Needs the same\nbinary, OpenBLAS kernel and threads per rank; recorded "
     "in\n"
     "checkpoints"},
    {"--no-allreduce", NULL, O_FLAG, F(no_allreduce), 0, 0, NULL,
     "benchmark only: skip the gradient exchange",
     "benchmark only: skip the gradient exchange (each rank updates\nits own part of the "
     "weights; the replicas then diverge and the\nnumbers mean nothing)"},
    {"--profile", NULL, O_FLAG, F(profile), 0, 0, NULL,
     "per epoch: time per step in data, compute, exchange, update",
     "after each epoch rank 0 prints the time per step spent in data,\ncompute, exchange (with "
     "the wait for the slowest rank) and\nupdate, and the slowest rank's compute and exchange"},
    {"--dry-run", NULL, O_FLAG, F(dry_run), 0, 0, NULL,
     "check config, data and model (and the checkpoint with\n--resume) as a run would, then exit",
     "check everything a run checks before its first step (config,\nthe data's shapes and values "
     "against the model, the checkpoint\nto resume with --resume), print one line and exit 0 "
     "without\ntraining anything (the Python package runs it at one rank\nbefore it starts the "
     "ranks)"},
};
#undef F
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static const opt_spec *find(const char *name) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (!strcmp(OPTS[i].name, name))
            return &OPTS[i];
    return NULL;
}

/* "a|b|c" contains v as a whole alternative */
static bool one_of(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

/* "a|b|c" -> "a, b or c" */
static void say_choices(const char *choices, char *buf, size_t n) {
    size_t k = 0;
    const char *last = strrchr(choices, '|');
    for (const char *p = choices; *p && k + 5 < n; p++) {
        if (*p != '|') {
            buf[k++] = *p;
            continue;
        }
        const char *sep = p == last ? " or " : ", ";
        for (; *sep && k + 1 < n; sep++)
            buf[k++] = *sep;
    }
    buf[k] = '\0';
}

static dpt_status set_value(const opt_spec *o, const char *v, dpt_cli_fit_args *a) {
    char *base = (char *)a + o->off;
    switch (o->kind) {
    case O_FLAG:
        *(bool *)base = true;
        return DPT_OK;
    case O_INT:
        return dpt_cli_parse_i64(o->name, v, o->lo, o->hi, (int64_t *)base);
    case O_SIZE:
        return dpt_cli_parse_size(o->name, v, (int64_t *)base);
    case O_EVERY:
        if (!strcmp(v, "epoch")) {
            *(int64_t *)base = 0;
            return DPT_OK;
        }
        return dpt_cli_parse_i64(o->name, v, o->lo, o->hi, (int64_t *)base);
    case O_CHOICE:
        if (!one_of(o->choices, v)) {
            char alts[96];
            say_choices(o->choices, alts, sizeof alts);
            return dpt_error_set(DPT_ERR_USAGE, "fit: %s: must be %s, got \"%s\"", o->name, alts,
                                 v);
        }
        *(const char **)base = v;
        return DPT_OK;
    case O_STR:
        *(const char **)base = v;
        return DPT_OK;
    }
    return DPT_ERR_INTERNAL;
}

dpt_cli_fit_args dpt_cli_fit_args_default(void) {
    dpt_fit_opts d = dpt_fit_opts_default();
    dpt_cli_fit_args a = {.epochs = -1,
                          .batch = -1,
                          .seed = -1,
                          .verbose = d.verbose,
                          .every = d.checkpoint_every,
                          .keep = d.keep,
                          .check_replicas = d.check_replicas,
                          .order = "global",
                          .reduce = "auto"};
    return a;
}

dpt_status dpt_cli_fit_parse(int argc, char **argv, dpt_cli_fit_args *a) {
    for (int i = 0; i < argc; i++) {
        const opt_spec *o = find(argv[i]);
        if (!o)
            return dpt_error_set(DPT_ERR_USAGE, "fit: unknown option \"%s\" (see dptrain --help)",
                                 argv[i]);
        const char *v = NULL;
        if (o->kind != O_FLAG) {
            if (i + 1 >= argc)
                return dpt_error_set(DPT_ERR_USAGE, "fit: %s needs a value", o->name);
            v = argv[++i];
            if (!*v) /* --run-dir '' would train and save nothing, --data '' read nothing */
                return dpt_error_set(DPT_ERR_USAGE, "fit: %s: the value is empty", o->name);
        }
        dpt_status st = set_value(o, v, a);
        if (st != DPT_OK)
            return st;
    }
    if ((a->resume || a->every >= 0 || a->keep >= 0) && !a->run_dir)
        return dpt_error_set(DPT_ERR_USAGE, "fit: --resume, --checkpoint-every and --keep need "
                                            "--run-dir DIR");
    return DPT_OK;
}

/* "--name ARG" */
static void name_arg(const opt_spec *o, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

/* text's lines, the first after `first` (padded to `col`), the others indented by `col` */
static void print_block(FILE *f, const char *first, int col, const char *text) {
    int w = fprintf(f, "%s", first);
    if (w > col - 1) {
        fputc('\n', f);
        w = 0;
    }
    fprintf(f, "%*s", col - w, "");
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
}

void dpt_cli_fit_usage(FILE *f) {
    for (size_t i = 0; i < N_OPTS; i++) {
        char first[64], pad[80];
        name_arg(&OPTS[i], first, sizeof first);
        snprintf(pad, sizeof pad, "      %s", first);
        print_block(f, pad, 29, OPTS[i].brief);
    }
}

void dpt_cli_fit_help(FILE *f) {
    for (size_t i = 0; i < N_OPTS; i++) {
        char first[64], pad[80];
        name_arg(&OPTS[i], first, sizeof first);
        snprintf(pad, sizeof pad, "  %s", first);
        print_block(f, pad, 26, OPTS[i].help);
    }
}

/* roff: '-' as \-, backslashes doubled, a line starting with '.' or '\'' escaped. Line breaks
 * become spaces, except before an indented line (a list), which roff keeps with .br. */
static void roff(FILE *f, const char *s) {
    bool bol = true;
    for (; *s; s++) {
        if (*s == '\n') {
            fputs(s[1] == ' ' ? "\n.br\n" : "\n", f);
            bol = true;
            continue;
        }
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        if (*s == '-')
            fputs("\\-", f);
        else if (*s == '\\')
            fputs("\\\\", f);
        else
            fputc(*s, f);
        bol = false;
    }
}

void dpt_cli_fit_man(FILE *f) {
    for (size_t i = 0; i < N_OPTS; i++) {
        fputs(".TP\n", f);
        fputs(OPTS[i].arg ? ".BI " : ".B ", f);
        roff(f, OPTS[i].name);
        if (OPTS[i].arg) {
            fputs(" \" ", f);
            roff(f, OPTS[i].arg);
            fputc('"', f);
        }
        fputc('\n', f);
        roff(f, OPTS[i].help);
        fputc('\n', f);
    }
}
