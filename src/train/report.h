/* Private to src/train: what rank 0 tells the user about a run — the per-epoch line (and, on a
 * terminal, a live progress bar), and the run directory's history files. Local; only rank 0
 * creates a report. The training loop calls these and nothing else for output. */
#ifndef DPT_TRAIN_REPORT_H
#define DPT_TRAIN_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/status.h"

typedef struct dpt_report dpt_report;

/* One epoch's numbers. Means are already divided (loss = sum / count). */
typedef struct {
    int64_t epoch; /* 1-based */
    int epochs;
    double loss, accuracy;         /* accuracy NaN when the metric is off */
    double val_loss, val_accuracy; /* NaN when there is no validation */
    double seconds;                /* training time of the epoch (validation excluded) */
    double samples_per_s;
    double learning_rate;
    int ranks;
} dpt_epoch_log;

/* Opens the report: `out` gets the console output (verbose 0 silent, 1 one line per epoch or a
 * progress bar on a terminal, 2 one line per epoch always). With a run_dir, history files are
 * (re)written there, keeping the rows of the first `keep_epochs` epochs of an earlier run (resume).
 * DPT_ERR_IO naming the file if they cannot be written. */
DPT_NODISCARD dpt_status dpt_report_open(const char *run_dir, int verbose, FILE *out,
                                         int64_t keep_epochs, dpt_report **r);
/* A step finished: running means so far in the epoch. Cheap; draws at most ~10 times/s. */
void dpt_report_step(dpt_report *r, int64_t epoch, int epochs, int64_t step, int64_t steps,
                     double loss, double accuracy, double samples, double elapsed);
/* The epoch finished: prints its line, appends the history rows. */
DPT_NODISCARD dpt_status dpt_report_epoch(dpt_report *r, const dpt_epoch_log *e);
/* Free-form line (test results, notes) on the console when verbose > 0. printf-like. */
void dpt_report_note(dpt_report *r, const char *fmt, ...) DPT_PRINTF(2, 3);
void dpt_report_close(dpt_report **r);

#endif
