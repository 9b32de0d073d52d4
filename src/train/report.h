/* Private to src/train (and src/cli/cmd_plot.c): what rank 0 tells the user about a run — the
 * per-epoch line (and, on a terminal, a live progress bar), and the run directory's history files
 * history.csv, history.jsonl and the learning-curve plot history.svg. Local; only rank 0 creates
 * a report. The training loop calls the dpt_report_* functions and nothing else for output;
 * `dptrain plot` uses the dpt_history_* reader and writer. */
#ifndef DPT_TRAIN_REPORT_H
#define DPT_TRAIN_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/status.h"

typedef struct dpt_report dpt_report;

#define DPT_REPORT_MAX_METRICS 16
#define DPT_REPORT_METRIC_NAME 64

/* One epoch's numbers. Means are already divided (loss = sum / count). Also one row of
 * history.csv as read back (epochs = 0, missing values NaN, ranks 0 when unknown). */
typedef struct {
    int64_t epoch; /* 1-based */
    int epochs;
    double loss, accuracy;         /* accuracy NaN when the metric is off */
    double val_loss, val_accuracy; /* NaN when there is no validation */
    double seconds;                /* training time of the epoch (validation excluded) */
    double samples_per_s;
    double learning_rate;
    int ranks;
    /* the other compile.metrics (the report's metric names, in order): Keras's values; NaN
     * when not computed (val_metric without validation) */
    int n_metrics;
    double metric[DPT_REPORT_MAX_METRICS], val_metric[DPT_REPORT_MAX_METRICS];
} dpt_epoch_log;

/* Opens the report: `out` gets the console output (verbose 0 silent, 1 one line per epoch or a
 * progress bar on a terminal, 2 one line per epoch always). With a run_dir, history.csv,
 * history.jsonl and history.svg are (re)written there, keeping the rows of the first
 * `keep_epochs` epochs of an earlier run's history.csv (resume). DPT_ERR_IO naming the file if
 * they cannot be written. Local (rank 0).
 *
 * "A terminal" means isatty(out) and, when Open MPI started the process (it gives ranks a
 * pseudo-terminal even when mpirun's own output goes to a file), that mpirun's output is a
 * terminal too. The environment variable DPTRAIN_PROGRESS=0 turns the bar off, =1 forces it. */
DPT_NODISCARD dpt_status dpt_report_open(const char *run_dir, int verbose, FILE *out,
                                         int64_t keep_epochs, dpt_report **r);
/* The same with the names of the other metrics (n <= DPT_REPORT_MAX_METRICS, as Keras logs them:
 * "auc", "precision", a configured name): each gets a column NAME and val_NAME after the fixed
 * ones in history.csv and keys in history.jsonl, and " - NAME: v" in the epoch line (after
 * accuracy, as Keras orders its logs, and " - val_NAME: v" after val_accuracy). */
DPT_NODISCARD dpt_status dpt_report_open_metrics(const char *run_dir, int verbose, FILE *out,
                                                 int64_t keep_epochs, int n_metrics,
                                                 const char *const *names, dpt_report **r);
/* A step finished: running means so far in the epoch (accuracy NaN when the metric is off),
 * `samples` trained so far in the epoch, `elapsed` seconds since the epoch started. Cheap; draws
 * the bar at most ~10 times/s, and only on a terminal with verbose 1. */
void dpt_report_step(dpt_report *r, int64_t epoch, int epochs, int64_t step, int64_t steps,
                     double loss, double accuracy, double samples, double elapsed);
/* The epoch finished: prints its line (replacing the bar), appends the history rows and redraws
 * history.svg. DPT_ERR_IO naming the file when a history file cannot be written. */
DPT_NODISCARD dpt_status dpt_report_epoch(dpt_report *r, const dpt_epoch_log *e);
/* Free-form line (test results, notes) on the console when verbose > 0. printf-like. */
void dpt_report_note(dpt_report *r, const char *fmt, ...) DPT_PRINTF(2, 3);
/* NULL-safe; sets *r = NULL. */
void dpt_report_close(dpt_report **r);

/* ---- the history files, for `dptrain plot` ------------------------------------------------- */

/* Reads a history.csv (header row naming the columns; `epoch` and `loss` required, other known
 * columns optional, unknown ones ignored; empty field = missing). *rows (malloc'd, caller frees
 * with free()) gets *n rows in file order. DPT_ERR_DATA "<path>: cannot read: ..." when missing,
 * "<path>:<line>: ..." for a malformed line, "<path>: no epochs" when it has no rows. Local. */
DPT_NODISCARD dpt_status dpt_history_read_csv(const char *path, dpt_epoch_log **rows, int64_t *n);

/* Writes the learning curves of rows[0..n) (loss and accuracy, train and validation, two panels)
 * as a self-contained SVG to path (via path.tmp and a rename). title (may be NULL) goes on top.
 * DPT_ERR_IO naming the path on failure. Local. */
DPT_NODISCARD dpt_status dpt_history_write_svg(const char *path, const dpt_epoch_log *rows,
                                               int64_t n, const char *title);

#endif
