/* Rank 0's output: the Keras-like epoch line and history.csv. (Progress bar, history.jsonl and
 * the SVG learning curve build on this file.) Local. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/config.h"
#include "report.h"

struct dpt_report {
    int verbose;
    FILE *out;
    FILE *csv;
};

/* Keeps the header and the rows of epochs <= keep of an existing file; returns a heap string. */
static char *kept_rows(const char *path, int64_t keep, size_t *len) {
    char *kept = NULL;
    *len = 0;
    FILE *old = keep > 0 ? fopen(path, "r") : NULL;
    if (!old) return NULL;
    FILE *mem = open_memstream(&kept, len);
    char line[4096];
    bool header = true;
    while (mem && fgets(line, sizeof line, old)) {
        if (!header && atoll(line) > keep) break;
        if (!header) fputs(line, mem);
        header = false;
    }
    if (mem) fclose(mem);
    fclose(old);
    return kept;
}

dpt_status dpt_report_open(const char *run_dir, int verbose, FILE *out, int64_t keep_epochs,
                           dpt_report **r) {
    *r = calloc(1, sizeof **r);
    if (!*r) return dpt_error_set(DPT_ERR_NOMEM, "report: out of memory");
    (*r)->verbose = verbose;
    (*r)->out = out ? out : stdout;
    if (!run_dir || !run_dir[0]) return DPT_OK;
    char path[DPT_PATH_MAX];
    snprintf(path, sizeof path, "%s/history.csv", run_dir);
    size_t len;
    char *kept = kept_rows(path, keep_epochs, &len);
    (*r)->csv = fopen(path, "w");
    if (!(*r)->csv) {
        free(kept);
        dpt_status st = dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        dpt_report_close(r);
        return st;
    }
    fprintf((*r)->csv, "epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s\n");
    if (kept) fwrite(kept, 1, len, (*r)->csv);
    free(kept);
    fflush((*r)->csv);
    return DPT_OK;
}

void dpt_report_step(dpt_report *r, int64_t epoch, int epochs, int64_t step, int64_t steps,
                     double loss, double accuracy, double samples, double elapsed) {
    (void)r, (void)epoch, (void)epochs, (void)step, (void)steps, (void)loss, (void)accuracy;
    (void)samples, (void)elapsed;
}

dpt_status dpt_report_epoch(dpt_report *r, const dpt_epoch_log *e) {
    if (r->verbose > 0) {
        FILE *f = r->out;
        fprintf(f, "Epoch %lld/%d - %.2fs - loss: %.4f", (long long)e->epoch, e->epochs, e->seconds,
                e->loss);
        if (!isnan(e->accuracy)) fprintf(f, " - accuracy: %.4f", e->accuracy);
        if (!isnan(e->val_loss)) fprintf(f, " - val_loss: %.4f", e->val_loss);
        if (!isnan(e->val_accuracy)) fprintf(f, " - val_accuracy: %.4f", e->val_accuracy);
        fputc('\n', f);
        fflush(f);
    }
    if (r->csv) {
        fprintf(r->csv, "%lld,%.6f,", (long long)e->epoch, e->loss);
        if (!isnan(e->accuracy)) fprintf(r->csv, "%.6f", e->accuracy);
        fputc(',', r->csv);
        if (!isnan(e->val_loss)) fprintf(r->csv, "%.6f", e->val_loss);
        fputc(',', r->csv);
        if (!isnan(e->val_accuracy)) fprintf(r->csv, "%.6f", e->val_accuracy);
        fprintf(r->csv, ",%.4f,%.1f\n", e->seconds, e->samples_per_s);
        if (fflush(r->csv) != 0 || ferror(r->csv))
            return dpt_error_set(DPT_ERR_IO, "history.csv: write failed: %s", strerror(errno));
    }
    return DPT_OK;
}

void dpt_report_note(dpt_report *r, const char *fmt, ...) {
    if (!r || r->verbose <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fflush(r->out);
}

void dpt_report_close(dpt_report **r) {
    if (!*r) return;
    if ((*r)->csv) fclose((*r)->csv);
    free(*r);
    *r = NULL;
}
