/* Private to src/cli: helpers shared by the subcommands. */
#ifndef DPT_CLI_H
#define DPT_CLI_H

#include "dptrain/dptrain.h"

/* Integer option value in [lo, hi]; DPT_ERR_USAGE naming the option otherwise. Local. */
DPT_NODISCARD dpt_status dpt_cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi,
                                           int64_t *out);
/* A byte size with an optional K/M/G/T suffix (powers of 1024); DPT_ERR_USAGE otherwise. Local. */
DPT_NODISCARD dpt_status dpt_cli_parse_size(const char *opt, const char *s, int64_t *out);
/* Rank 0 reads the file, every rank receives the bytes (or the same error). Collective. */
DPT_NODISCARD dpt_status dpt_cli_read_bcast(const dpt_comm *c, const char *path, dpt_status what,
                                            char **text, size_t *len);
/* Reads (rank 0), broadcasts and parses a config; agreed. *text_out (if not NULL) gets the bytes
 * (free()). Collective. */
DPT_NODISCARD dpt_status dpt_cli_load_config(const dpt_comm *c, const char *path, dpt_config *cfg,
                                             char **text_out);
/* ---- `dptrain fit`'s options (fit_opts.c): one table for the parser, the overview, the full
 * help and the man page ---------------------------------------------------------------------- */
typedef struct {
    const char *data, *run_dir, *init_weights;
    int64_t epochs, batch, seed; /* -1: the config's */
    int64_t verbose, every, keep, check_replicas, watchdog, memory_limit;
    bool resume, skip_nonfinite, no_allreduce, profile, reproducible, allow_changes;
    bool dry_run;               /* --dry-run: every check of the setup, then stop */
    const char *order, *reduce; /* one of their choices */
} dpt_cli_fit_args;
/* The defaults: dpt_fit_opts_default()'s, and the config's values where an option is absent. */
dpt_cli_fit_args dpt_cli_fit_args_default(void);
/* Parses the options after CONFIG; DPT_ERR_USAGE naming the option. Local. */
DPT_NODISCARD dpt_status dpt_cli_fit_parse(int argc, char **argv, dpt_cli_fit_args *a);
/* The options for the overview (dptrain --help), the full help and the man page (roff). */
void dpt_cli_fit_usage(FILE *f);
void dpt_cli_fit_help(FILE *f);
void dpt_cli_fit_man(FILE *f);

/* `dptrain data ...`: runs on rank 0, agreed. Collective. */
DPT_NODISCARD dpt_status dpt_cli_data(const dpt_comm *c, int argc, char **argv);
/* `dptrain help COMMAND`: prints that command's help; returns the exit code. Local. */
int dpt_cli_help(const char *command);

/* `dptrain evaluate CKPT --data FILE[:GROUP]` and `dptrain predict CKPT --data FILE[:GROUP] --out
 * PRED.h5 [--mc-samples K]` (cmd_predict.c). Collective. */
DPT_NODISCARD dpt_status dpt_cli_evaluate(const dpt_comm *c, int argc, char **argv);
DPT_NODISCARD dpt_status dpt_cli_predict(const dpt_comm *c, int argc, char **argv);
/* `dptrain plot RUN_DIR`: redraws RUN_DIR/history.svg from history.csv (cmd_plot.c). Local. */
DPT_NODISCARD dpt_status dpt_cli_plot(int argc, char **argv);

#endif
