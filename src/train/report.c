/* Rank 0's output: the Keras-like epoch line, a live progress bar on a terminal, and the run
 * directory's history.csv, history.jsonl and history.svg (learning curves drawn as SVG text, no
 * plotting library). Also the history.csv reader that `dptrain plot` uses. Local.
 * Leaves to others: what the numbers are (fit.c computes them), and everything collective. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <jansson.h>

#include "dptrain/config.h"
#include "dptrain/train.h"
#include "report.h"

#define BAR_MAX 30        /* characters between the brackets, at most */
#define BAR_MIN 10        /* ... and at least */
#define DRAW_INTERVAL 0.1 /* seconds between redraws: ~10 per second */

static const char CSV_HEADER[] =
    "epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_s,learning_rate,ranks\n";

struct dpt_report {
    int verbose;
    FILE *out;
    /* the progress bar */
    bool bar;          /* draw it (verbose 1 and a terminal) */
    char tty_dev[256]; /* the terminal to ask for the width when `out` is Open MPI's pty */
    int width;         /* terminal columns */
    int64_t bar_epoch; /* epoch the bar is drawing; 0 before its first step */
    int64_t k0;        /* steps of the epoch done before the first step seen (resume) */
    double s0, e0;     /* samples and elapsed at that point */
    double last_draw;  /* elapsed at the last redraw; < 0 none yet this epoch */
    int drawn;         /* characters of the bar now on screen (0: none) */
    /* the run directory: history files open for appending (-1: none); each row is one write()
     * then fsync(), so a crash leaves at most the last row cut, which a resume repairs */
    int csv_fd, jsonl_fd;
    char csv_path[DPT_PATH_MAX], jsonl_path[DPT_PATH_MAX], svg_path[DPT_PATH_MAX];
    char title[DPT_PATH_MAX];
    dpt_epoch_log *rows; /* every epoch in history.csv, for the plot */
    int64_t n_rows, cap_rows;
    /* the other metrics: their names (columns NAME and val_NAME) */
    int n_metrics;
    char metric_names[DPT_REPORT_MAX_METRICS][DPT_REPORT_METRIC_NAME];
};

/* ---- terminal detection -------------------------------------------------------------------- */

static bool is_tty_path(const char *p) {
    return !strncmp(p, "/dev/pts/", 9) || !strncmp(p, "/dev/tty", 8) || !strcmp(p, "/dev/console");
}

/* Whether to draw a bar on `out`; *dev gets the terminal device to ask for the width when it is
 * not `out` itself. Open MPI connects every rank's stdout to a pseudo-terminal even when mpirun
 * writes to a file (a Slurm .out), so under Open MPI the launcher's own descriptor decides. */
static bool want_bar(FILE *out, char *dev, size_t n) {
    dev[0] = '\0';
    const char *force = getenv("DPTRAIN_PROGRESS");
    if (force && !strcmp(force, "0"))
        return false;
    if (force && !strcmp(force, "1"))
        return true;
    int fd = fileno(out);
    if (fd < 0 || !isatty(fd))
        return false;
    const char *term = getenv("TERM");
    if (term && !strcmp(term, "dumb"))
        return false;
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK"))
        return true;
    /* the launcher: the nearest ancestor called mpirun / mpiexec / orterun / prterun (a wrapper
     * such as /usr/bin/time may sit between it and us); on a remote node (orted) no bar */
    long pid = (long)getppid(), launcher = -1;
    for (int depth = 0; depth < 8 && pid > 1 && launcher < 0; depth++) {
        char statp[64], buf[512];
        snprintf(statp, sizeof statp, "/proc/%ld/stat", pid);
        FILE *sf = fopen(statp, "r");
        if (!sf)
            break;
        size_t got = fread(buf, 1, sizeof buf - 1, sf);
        fclose(sf);
        buf[got] = '\0';
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        if (!lp || !rp || rp < lp)
            break;
        *rp = '\0';
        const char *comm = lp + 1;
        if (!strcmp(comm, "orted") || !strcmp(comm, "prted"))
            return false;
        if (!strcmp(comm, "mpirun") || !strcmp(comm, "mpiexec") || !strcmp(comm, "orterun") ||
            !strcmp(comm, "prterun"))
            launcher = pid;
        else
            pid = strtol(rp + 4, NULL, 10); /* after ") S ": the parent's pid */
    }
    if (launcher < 0)
        return false; /* cannot tell: a log file is the safer guess */
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/%d", launcher, fd);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k <= 0)
        return false; /* cannot tell: a log file is the safer guess */
    target[k] = '\0';
    if (!is_tty_path(target))
        return false;
    snprintf(dev, n, "%s", target);
    return true;
}

/* Columns of the terminal: asked of `out`, else of `dev`, else $COLUMNS, else 80. */
static int term_width(FILE *out, const char *dev) {
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    int fd = fileno(out);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    if (dev[0]) {
        int t = open(dev, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (t >= 0) {
            int got = ioctl(t, TIOCGWINSZ, &ws);
            close(t);
            if (got == 0 && ws.ws_col > 0)
                return ws.ws_col;
        }
    }
    const char *cols = getenv("COLUMNS");
    long c = cols ? strtol(cols, NULL, 10) : 0;
    return c >= 20 && c <= 1000 ? (int)c : 80;
}

/* ---- formatting helpers -------------------------------------------------------------------- */

/* "2.1s", "1m05s", "2h03m" */
static void fmt_duration(char *b, size_t n, double s) {
    if (!(s >= 0))
        s = 0;
    if (s < 10)
        snprintf(b, n, "%.1fs", s);
    else if (s < 60)
        snprintf(b, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* "950", "9.5k", "45k", "1.2M" */
static void fmt_rate(char *b, size_t n, double r) {
    if (r < 1e3)
        snprintf(b, n, "%.0f", r);
    else if (r < 1e4)
        snprintf(b, n, "%.1fk", r / 1e3);
    else if (r < 1e6)
        snprintf(b, n, "%.0fk", r / 1e3);
    else
        snprintf(b, n, "%.1fM", r / 1e6);
}

/* "%.<prec>f" of v, or "" when v is NaN or infinite (a missing CSV field). */
static const char *num_or_empty(char *b, size_t n, int prec, double v) {
    if (!isfinite(v))
        return "";
    snprintf(b, n, "%.*f", prec, v);
    return b;
}

/* the same for JSON: "null" when missing */
static const char *num_or_null(char *b, size_t n, const char *fmt, double v) {
    if (!isfinite(v))
        return "null";
    snprintf(b, n, fmt, v);
    return b;
}

/* Removes the bar from the screen (before a line that must not mix with it). */
static void clear_bar(dpt_report *r) {
    if (r->drawn <= 0)
        return;
    fprintf(r->out, "\r%*s\r", r->drawn, "");
    r->drawn = 0;
}

/* ---- history rows -------------------------------------------------------------------------- */

static dpt_status push_row(dpt_report *r, const dpt_epoch_log *e) {
    if (r->n_rows == r->cap_rows) {
        int64_t cap = r->cap_rows ? 2 * r->cap_rows : 64;
        dpt_epoch_log *p = realloc(r->rows, (size_t)cap * sizeof *p);
        if (!p)
            return dpt_error_set(DPT_ERR_NOMEM, "report: out of memory for %lld epochs",
                                 (long long)cap);
        r->rows = p;
        r->cap_rows = cap;
    }
    r->rows[r->n_rows++] = *e;
    return DPT_OK;
}

static void write_csv_row(FILE *f, const dpt_epoch_log *e) {
    char b[5][64];
    fprintf(f, "%lld,%s,%s,%s,%s,", (long long)e->epoch, num_or_empty(b[0], 64, 6, e->loss),
            num_or_empty(b[1], 64, 6, e->accuracy), num_or_empty(b[2], 64, 6, e->val_loss),
            num_or_empty(b[3], 64, 6, e->val_accuracy));
    fprintf(f, "%s,", num_or_empty(b[0], 64, 4, e->seconds));
    fprintf(f, "%s,", num_or_empty(b[1], 64, 1, e->samples_per_s));
    if (isfinite(e->learning_rate))
        fprintf(f, "%.6g", e->learning_rate);
    fputc(',', f);
    if (e->ranks > 0)
        fprintf(f, "%d", e->ranks);
    for (int i = 0; i < e->n_metrics; i++)
        fprintf(f, ",%s,%s", num_or_empty(b[0], 64, 6, e->metric[i]),
                num_or_empty(b[1], 64, 6, e->val_metric[i]));
    fputc('\n', f);
}

static void write_jsonl_row(FILE *f, const dpt_epoch_log *e, const dpt_report *r) {
    char b[8][64];
    fprintf(f,
            "{\"epoch\": %lld, \"loss\": %s, \"accuracy\": %s, \"val_loss\": %s, "
            "\"val_accuracy\": %s, \"learning_rate\": %s, \"seconds\": %s, \"samples_per_s\": %s, ",
            (long long)e->epoch, num_or_null(b[0], 64, "%.6f", e->loss),
            num_or_null(b[1], 64, "%.6f", e->accuracy), num_or_null(b[2], 64, "%.6f", e->val_loss),
            num_or_null(b[3], 64, "%.6f", e->val_accuracy),
            num_or_null(b[4], 64, "%.6g", e->learning_rate),
            num_or_null(b[5], 64, "%.4f", e->seconds),
            num_or_null(b[6], 64, "%.1f", e->samples_per_s));
    for (int i = 0; i < e->n_metrics && i < r->n_metrics; i++) /* names: [A-Za-z0-9_.-] only */
        fprintf(f, "\"%s\": %s, \"val_%s\": %s, ", r->metric_names[i],
                num_or_null(b[0], 64, "%.6f", e->metric[i]), r->metric_names[i],
                num_or_null(b[1], 64, "%.6f", e->val_metric[i]));
    fputs("\"ranks\": ", f);
    if (e->ranks > 0)
        fprintf(f, "%d}\n", e->ranks);
    else
        fputs("null}\n", f);
}

/* ---- open / step / epoch / note / close ---------------------------------------------------- */

/* One row's text, or the whole file's (header, rows): malloc'd, NULL when out of memory. */
static char *history_text(const dpt_report *r, bool csv, const dpt_epoch_log *rows, int64_t n) {
    char *p = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&p, &len);
    if (!m)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (csv)
            write_csv_row(m, &rows[i]);
        else
            write_jsonl_row(m, &rows[i], r);
    }
    if (fclose(m) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static dpt_status write_fd_all(int fd, const char *path, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dpt_error_set(DPT_ERR_IO, "%s: write failed: %s", path,
                                 w < 0 ? strerror(errno) : "no space");
        buf += w;
        n -= (size_t)w;
    }
    return DPT_OK;
}

/* Appends one row (one write, then fsync: on disk before the epoch counts as reported). */
static dpt_status append_row(const dpt_report *r, int fd, const char *path, bool csv,
                             const dpt_epoch_log *e) {
    char *text = history_text(r, csv, e, 1);
    if (!text)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    dpt_status st = write_fd_all(fd, path, text, strlen(text));
    free(text);
    if (st == DPT_OK && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        st = dpt_error_set(DPT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return st;
}

/* Replaces path with header + rows atomically (path.tmp, fsync, rename), then opens it for
 * appending; *fd gets the descriptor. */
static dpt_status rewrite_history(const dpt_report *r, const char *path, bool csv,
                                  const dpt_epoch_log *rows, int64_t n, int *fd) {
    char tmp[DPT_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *body = history_text(r, csv, rows, n);
    if (!body)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    int t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dpt_status st = DPT_OK;
    if (t < 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (st == DPT_OK && csv) { /* the fixed columns, then the metrics' */
        char head[sizeof CSV_HEADER + DPT_REPORT_MAX_METRICS * (2 * DPT_REPORT_METRIC_NAME + 8)];
        size_t k =
            (size_t)snprintf(head, sizeof head, "%.*s", (int)sizeof CSV_HEADER - 2, CSV_HEADER);
        for (int i = 0; i < r->n_metrics && k < sizeof head; i++)
            k += (size_t)snprintf(head + k, sizeof head - k, ",%s,val_%s", r->metric_names[i],
                                  r->metric_names[i]);
        if (k < sizeof head - 1)
            head[k++] = '\n';
        st = write_fd_all(t, tmp, head, k);
    }
    if (st == DPT_OK)
        st = write_fd_all(t, tmp, body, strlen(body));
    free(body);
    if (t >= 0 && close(t) != 0 && st == DPT_OK)
        st = dpt_error_set(DPT_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (st == DPT_OK)
        st = dpt_file_commit(tmp, path); /* fsync, rename, fsync of the directory */
    if (st != DPT_OK) {
        unlink(tmp);
        return st;
    }
    *fd = open(path, O_WRONLY | O_APPEND);
    if (*fd < 0)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return DPT_OK;
}

static double json_num(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The rows of a history.jsonl; lines that are not a complete JSON object with an integer epoch
 * (a row cut by a crash) are skipped and counted in *bad. A missing file gives 0 rows. */
static dpt_status read_jsonl(const char *path, const dpt_report *rp, dpt_epoch_log **rows,
                             int64_t *n, int64_t *bad) {
    *rows = NULL;
    *n = *bad = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return DPT_OK;
    char *line = NULL;
    size_t cap = 0;
    int64_t room = 0;
    dpt_status st = DPT_OK;
    while (st == DPT_OK && getline(&line, &cap, f) >= 0) {
        if (line[0] == '\n' || !line[0])
            continue;
        json_t *o = strchr(line, '\n') ? json_loads(line, JSON_DECODE_ANY, NULL) : NULL;
        const json_t *ep = o ? json_object_get(o, "epoch") : NULL;
        if (!json_is_object(o) || !json_is_integer(ep) || json_integer_value(ep) < 1) {
            json_decref(o);
            (*bad)++;
            continue;
        }
        if (*n == room) {
            room = room ? 2 * room : 64;
            dpt_epoch_log *p = realloc(*rows, (size_t)room * sizeof *p);
            if (!p) {
                json_decref(o);
                st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            *rows = p;
        }
        dpt_epoch_log *e = &(*rows)[(*n)++];
        memset(e, 0, sizeof *e);
        e->epoch = (int64_t)json_integer_value(ep);
        e->loss = json_num(o, "loss");
        e->accuracy = json_num(o, "accuracy");
        e->val_loss = json_num(o, "val_loss");
        e->val_accuracy = json_num(o, "val_accuracy");
        e->learning_rate = json_num(o, "learning_rate");
        e->seconds = json_num(o, "seconds");
        e->samples_per_s = json_num(o, "samples_per_s");
        double r = json_num(o, "ranks");
        e->ranks = r >= 1 && r < 1e9 ? (int)r : 0;
        e->n_metrics = rp ? rp->n_metrics : 0;
        for (int m = 0; m < e->n_metrics; m++) {
            char key[DPT_REPORT_METRIC_NAME + 8];
            e->metric[m] = json_num(o, rp->metric_names[m]);
            snprintf(key, sizeof key, "val_%s", rp->metric_names[m]);
            e->val_metric[m] = json_num(o, key);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (st != DPT_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return st;
}

static dpt_status read_csv(const char *path, const dpt_report *r, bool lenient,
                           dpt_epoch_log **rows, int64_t *n, int64_t *bad);

typedef struct {
    dpt_epoch_log row;
    int source; /* 0 history.csv, 1 history.jsonl */
    int64_t index;
} tagged_row;

static int tagged_cmp(const void *pa, const void *pb) {
    const tagged_row *a = pa, *b = pb;
    if (a->row.epoch != b->row.epoch)
        return a->row.epoch < b->row.epoch ? -1 : 1;
    if (a->source != b->source)
        return a->source - b->source;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* The rows of epochs 1..keep from an earlier run (resume), each from whichever of history.csv and
 * history.jsonl holds it intact (history.csv first): a row cut by a crash, in one file or the
 * other, loses nothing that the other copy has. Says on stderr what was repaired or is missing;
 * training goes on either way. */
static dpt_status keep_rows(dpt_report *r, int64_t keep) {
    if (keep <= 0)
        return DPT_OK;
    dpt_epoch_log *c = NULL, *j = NULL;
    int64_t nc = 0, nj = 0, bad_c = 0, bad_j = 0;
    dpt_status st = DPT_OK;
    if (access(r->csv_path, F_OK) == 0 &&
        read_csv(r->csv_path, r, true, &c, &nc, &bad_c) != DPT_OK) {
        fprintf(stderr, "dptrain: warning: %s; taking the rows from %s\n", dpt_error_message(),
                r->jsonl_path);
        dpt_error_clear();
    }
    st = read_jsonl(r->jsonl_path, r, &j, &nj, &bad_j);
    tagged_row *all = st == DPT_OK ? malloc((size_t)(nc + nj + 1) * sizeof *all) : NULL;
    if (st == DPT_OK && !all)
        st = dpt_error_set(DPT_ERR_NOMEM, "report: out of memory for %lld rows",
                           (long long)(nc + nj));
    int64_t na = 0;
    for (int64_t i = 0; st == DPT_OK && i < nc; i++)
        if (c[i].epoch <= keep)
            all[na++] = (tagged_row){c[i], 0, i};
    for (int64_t i = 0; st == DPT_OK && i < nj; i++)
        if (j[i].epoch <= keep)
            all[na++] = (tagged_row){j[i], 1, i};
    if (st == DPT_OK && na > 1)
        qsort(all, (size_t)na, sizeof *all, tagged_cmp);
    int64_t from_jsonl = 0;
    for (int64_t i = 0; st == DPT_OK && i < na; i++) {
        if (i > 0 && all[i].row.epoch == all[i - 1].row.epoch)
            continue; /* the first copy of each epoch: csv's when it has one */
        from_jsonl += all[i].source == 1;
        st = push_row(r, &all[i].row);
    }
    if (st == DPT_OK && (bad_c > 0 || bad_j > 0))
        fprintf(stderr,
                "dptrain: warning: %s: %lld, %s: %lld damaged or cut row(s) (a crash while "
                "writing?); kept the intact copy of each epoch%s\n",
                r->csv_path, (long long)bad_c, r->jsonl_path, (long long)bad_j,
                from_jsonl > 0 ? " (some from history.jsonl)" : "");
    if (st == DPT_OK && r->n_rows < keep)
        fprintf(stderr,
                "dptrain: warning: %s: %lld of the %lld epochs done have no intact history row "
                "(in neither history.csv nor history.jsonl)\n",
                r->csv_path, (long long)(keep - r->n_rows), (long long)keep);
    free(all);
    free(c);
    free(j);
    return st;
}

dpt_status dpt_report_open(const char *run_dir, int verbose, FILE *out, int64_t keep_epochs,
                           dpt_report **r) {
    return dpt_report_open_metrics(run_dir, verbose, out, keep_epochs, 0, NULL, r);
}

dpt_status dpt_report_open_metrics(const char *run_dir, int verbose, FILE *out, int64_t keep_epochs,
                                   int n_metrics, const char *const *names, dpt_report **r) {
    *r = calloc(1, sizeof **r);
    if (!*r)
        return dpt_error_set(DPT_ERR_NOMEM, "report: out of memory");
    dpt_report *p = *r;
    p->n_metrics = n_metrics < DPT_REPORT_MAX_METRICS ? n_metrics : DPT_REPORT_MAX_METRICS;
    for (int i = 0; i < p->n_metrics; i++)
        snprintf(p->metric_names[i], sizeof p->metric_names[i], "%s", names[i]);
    p->verbose = verbose;
    p->out = out ? out : stdout;
    p->bar = verbose == 1 && want_bar(p->out, p->tty_dev, sizeof p->tty_dev);
    p->width = 80;
    p->csv_fd = p->jsonl_fd = -1;
    if (!run_dir || !run_dir[0])
        return DPT_OK;

    snprintf(p->csv_path, sizeof p->csv_path, "%s/history.csv", run_dir);
    snprintf(p->jsonl_path, sizeof p->jsonl_path, "%s/history.jsonl", run_dir);
    snprintf(p->svg_path, sizeof p->svg_path, "%s/history.svg", run_dir);
    snprintf(p->title, sizeof p->title, "%s", run_dir);
    dpt_status st = keep_rows(p, keep_epochs);
    /* each file replaced whole (never truncated in place), then appended to */
    if (st == DPT_OK)
        st = rewrite_history(p, p->csv_path, true, p->rows, p->n_rows, &p->csv_fd);
    if (st == DPT_OK)
        st = rewrite_history(p, p->jsonl_path, false, p->rows, p->n_rows, &p->jsonl_fd);
    if (st == DPT_OK) {
        if (p->n_rows > 0)
            st = dpt_history_write_svg(p->svg_path, p->rows, p->n_rows, p->title);
        else if (unlink(p->svg_path) != 0 && errno != ENOENT) /* an earlier run's plot */
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot remove: %s", p->svg_path, strerror(errno));
    }
    if (st != DPT_OK)
        dpt_report_close(r);
    return st;
}

void dpt_report_step(dpt_report *r, int64_t epoch, int epochs, int64_t step, int64_t steps,
                     double loss, double accuracy, double samples, double elapsed) {
    if (!r || !r->bar || steps <= 0)
        return;
    if (epoch != r->bar_epoch) { /* the epoch's first step (maybe mid-epoch after a resume) */
        r->bar_epoch = epoch;
        bool fresh = step <= 1;
        r->k0 = fresh ? 0 : step;
        r->s0 = fresh ? 0 : samples;
        r->e0 = fresh ? 0 : elapsed;
        r->last_draw = -1;
        r->width = term_width(r->out, r->tty_dev);
    }
    if (step < steps && r->last_draw >= 0 && elapsed - r->last_draw < DRAW_INTERVAL)
        return;
    r->last_draw = elapsed;

    /* the fields right of the bar; on a narrow terminal samples/s, then the elapsed time, go */
    char f_count[64], f_time[40], f_rate[48], f_eta[40], f_loss[80], t[32];
    int digits = snprintf(NULL, 0, "%lld", (long long)steps);
    snprintf(f_count, sizeof f_count, " %*lld/%lld", digits, (long long)step, (long long)steps);
    fmt_duration(t, sizeof t, elapsed);
    snprintf(f_time, sizeof f_time, " - %s", t);
    f_rate[0] = f_eta[0] = '\0';
    double dt = elapsed - r->e0;
    int64_t dk = step - r->k0;
    if (dt > 0 && dk > 0) {
        fmt_rate(t, sizeof t, (samples - r->s0) / dt);
        snprintf(f_rate, sizeof f_rate, " - %s samples/s", t);
        if (step < steps) {
            fmt_duration(t, sizeof t, dt / (double)dk * (double)(steps - step));
            snprintf(f_eta, sizeof f_eta, " - ETA %s", t);
        }
    }
    int n = snprintf(f_loss, sizeof f_loss, " - loss: %.4f", loss);
    if (!isnan(accuracy))
        snprintf(f_loss + n, sizeof f_loss - (size_t)n, " - accuracy: %.4f", accuracy);

    char left[64];
    snprintf(left, sizeof left, "Epoch %lld/%d  ", (long long)epoch, epochs);
    int fixed = (int)(strlen(left) + strlen(f_count) + strlen(f_eta) + strlen(f_loss)) + 2;
    int avail = r->width - 1 - fixed;
    if (avail - (int)(strlen(f_time) + strlen(f_rate)) < BAR_MIN)
        f_rate[0] = '\0';
    if (avail - (int)strlen(f_time) < BAR_MIN)
        f_time[0] = '\0';
    char right[512];
    snprintf(right, sizeof right, "%s%s%s%s%s", f_count, f_time, f_rate, f_eta, f_loss);
    int room = r->width - 1 - (int)strlen(left) - (int)strlen(right) - 2;
    int bw = room < BAR_MIN ? BAR_MIN : room > BAR_MAX ? BAR_MAX : room;
    int done = (int)((double)bw * (double)step / (double)steps);
    if (done > bw)
        done = bw;
    char bar[BAR_MAX + 3];
    bar[0] = '[';
    int head = step >= steps ? -1 : done > 0 ? done - 1 : 0; /* where '>' goes; none when full */
    for (int i = 0; i < bw; i++)
        bar[1 + i] = i == head ? '>' : i < done ? '=' : '.';
    bar[bw + 1] = ']';
    bar[bw + 2] = '\0';

    char line[512];
    int len = snprintf(line, sizeof line, "%s%s%s", left, bar, right);
    if (len > (int)sizeof line - 1)
        len = (int)sizeof line - 1;
    if (len > r->width - 1)
        len = r->width - 1; /* a line that wraps cannot be redrawn with \r */
    line[len] = '\0';
    fprintf(r->out, "\r%s%*s", line, r->drawn > len ? r->drawn - len : 0, "");
    fflush(r->out);
    r->drawn = len > r->drawn ? len : r->drawn;
}

dpt_status dpt_report_epoch(dpt_report *r, const dpt_epoch_log *e) {
    if (r->verbose > 0) {
        char line[2048];
        int n = snprintf(line, sizeof line, "Epoch %lld/%d - %.2fs - loss: %.4f",
                         (long long)e->epoch, e->epochs, e->seconds, e->loss);
        if (!isnan(e->accuracy))
            n += snprintf(line + n, sizeof line - (size_t)n, " - accuracy: %.4f", e->accuracy);
        for (int i = 0; i < e->n_metrics && i < r->n_metrics && n < (int)sizeof line; i++)
            n += snprintf(line + n, sizeof line - (size_t)n, " - %s: %.4f", r->metric_names[i],
                          e->metric[i]);
        if (!isnan(e->val_loss) && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " - val_loss: %.4f", e->val_loss);
        if (!isnan(e->val_accuracy) && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " - val_accuracy: %.4f",
                          e->val_accuracy);
        for (int i = 0; i < e->n_metrics && i < r->n_metrics && n < (int)sizeof line; i++)
            if (!isnan(e->val_metric[i]))
                n += snprintf(line + n, sizeof line - (size_t)n, " - val_%s: %.4f",
                              r->metric_names[i], e->val_metric[i]);
        if (r->drawn > 0) { /* replace the bar: same screen line, blanks over what is left */
            int len = (int)strlen(line);
            fprintf(r->out, "\r%s%*s\n", line, r->drawn > len ? r->drawn - len : 0, "");
            r->drawn = 0;
        } else {
            fprintf(r->out, "%s\n", line);
        }
        r->bar_epoch = 0;
        fflush(r->out);
    }
    if (r->csv_fd < 0)
        return DPT_OK;
    dpt_status st = push_row(r, e);
    if (st != DPT_OK)
        return st;
    st = append_row(r, r->csv_fd, r->csv_path, true, e);
    if (st != DPT_OK)
        return st;
    st = append_row(r, r->jsonl_fd, r->jsonl_path, false, e);
    if (st != DPT_OK)
        return st;
    return dpt_history_write_svg(r->svg_path, r->rows, r->n_rows, r->title);
}

void dpt_report_note(dpt_report *r, const char *fmt, ...) {
    if (!r || r->verbose <= 0)
        return;
    clear_bar(r);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fflush(r->out);
}

void dpt_report_close(dpt_report **r) {
    if (!r || !*r)
        return;
    if ((*r)->drawn > 0) { /* stopped mid-epoch (error, signal): keep the bar, end its line */
        fputc('\n', (*r)->out);
        fflush((*r)->out);
    }
    if ((*r)->csv_fd >= 0)
        close((*r)->csv_fd);
    if ((*r)->jsonl_fd >= 0)
        close((*r)->jsonl_fd);
    free((*r)->rows);
    free(*r);
    *r = NULL;
}

/* ---- history.csv reader ---------------------------------------------------------------------- */

enum {
    COL_EPOCH,
    COL_LOSS,
    COL_ACC,
    COL_VLOSS,
    COL_VACC,
    COL_SECS,
    COL_RATE,
    COL_LR,
    COL_RANKS,
    N_COLS
};
static const char *const COL_NAMES[N_COLS] = {"epoch",         "loss",          "accuracy",
                                              "val_loss",      "val_accuracy",  "seconds",
                                              "samples_per_s", "learning_rate", "ranks"};

/* Splits line in place at commas; returns the number of fields (at most max). */
static int split_csv(char *line, char **f, int max) {
    int n = 0;
    for (char *p = line;;) {
        if (n < max)
            f[n] = p;
        n++;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static dpt_status parse_field(const char *path, long long ln, const char *name, const char *s,
                              double *v) {
    *v = NAN;
    if (!*s)
        return DPT_OK;
    char *end = NULL;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end)
        return dpt_error_set(DPT_ERR_DATA, "%s:%lld: column %s: not a number: \"%.40s\"", path, ln,
                             name, s);
    *v = x;
    return DPT_OK;
}

dpt_status dpt_history_read_csv(const char *path, dpt_epoch_log **rows, int64_t *n) {
    int64_t bad = 0;
    return read_csv(path, NULL, false, rows, n, &bad);
}

/* lenient: a malformed row (cut by a crash) is skipped and counted in *bad instead of failing;
 * a file with a header and no rows is then not an error either */
static dpt_status read_csv(const char *path, const dpt_report *r, bool lenient,
                           dpt_epoch_log **rows, int64_t *n, int64_t *bad) {
    int nm = r ? r->n_metrics : 0, mcol[2 * DPT_REPORT_MAX_METRICS];
    *rows = NULL;
    *n = 0;
    *bad = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return dpt_error_set(DPT_ERR_DATA, "%s: cannot read: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long long ln = 0;
    int col[N_COLS], n_fields = 0;
    enum { MAXF = 64 };
    char *fld[MAXF];
    dpt_epoch_log *out = NULL;
    int64_t count = 0, room = 0;
    dpt_status st = DPT_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (st != DPT_OK) {
            if (!lenient || ln == 1 || st == DPT_ERR_NOMEM)
                break;
            (*bad)++; /* the row just read was malformed: skip it */
            dpt_error_clear();
            st = DPT_OK;
        }
        ln++;
        bool whole = len > 0 && line[len - 1] == '\n'; /* a last row without one was cut */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lenient && !whole && len > 0 && ln > 1) {
            (*bad)++;
            continue;
        }
        if (ln == 1) { /* the header names the columns */
            n_fields = split_csv(line, fld, MAXF);
            for (int c = 0; c < N_COLS; c++)
                col[c] = -1;
            for (int i = 0; i < n_fields && i < MAXF; i++)
                for (int c = 0; c < N_COLS; c++)
                    if (!strcmp(fld[i], COL_NAMES[c]))
                        col[c] = i;
            for (int m = 0; m < 2 * nm; m++) { /* NAME and val_NAME of each metric */
                mcol[m] = -1;
                for (int i = 0; i < n_fields && i < MAXF; i++)
                    if (!strncmp(fld[i], "val_", m % 2 ? 4 : 0) &&
                        !strcmp(fld[i] + (m % 2 ? 4 : 0), r->metric_names[m / 2]))
                        mcol[m] = i;
            }
            if (n_fields > MAXF || col[COL_EPOCH] < 0 || col[COL_LOSS] < 0)
                st = dpt_error_set(
                    DPT_ERR_DATA, "%s:1: not a history header (expected \"epoch,loss,...\")", path);
            continue;
        }
        if (len == 0)
            continue; /* a blank line */
        int k = split_csv(line, fld, MAXF);
        if (k != n_fields) {
            st = dpt_error_set(DPT_ERR_DATA, "%s:%lld: expected %d fields, got %d", path, ln,
                               n_fields, k);
            continue;
        }
        double v[N_COLS];
        for (int c = 0; c < N_COLS && st == DPT_OK; c++)
            st = col[c] < 0 ? (v[c] = NAN, DPT_OK)
                            : parse_field(path, ln, COL_NAMES[c], fld[col[c]], &v[c]);
        if (st != DPT_OK)
            continue;
        if (!(v[COL_EPOCH] >= 1 && v[COL_EPOCH] <= 1e15 && v[COL_EPOCH] == floor(v[COL_EPOCH]))) {
            st = dpt_error_set(DPT_ERR_DATA,
                               "%s:%lld: column epoch: expected an integer >= 1, "
                               "got \"%.40s\"",
                               path, ln, fld[col[COL_EPOCH]]);
            continue;
        }
        if (count == room) {
            room = room ? 2 * room : 64;
            dpt_epoch_log *p = realloc(out, (size_t)room * sizeof *p);
            if (!p) {
                st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            out = p;
        }
        dpt_epoch_log *e = &out[count++];
        memset(e, 0, sizeof *e);
        e->epoch = (int64_t)v[COL_EPOCH];
        e->loss = v[COL_LOSS];
        e->accuracy = v[COL_ACC];
        e->val_loss = v[COL_VLOSS];
        e->val_accuracy = v[COL_VACC];
        e->seconds = v[COL_SECS];
        e->samples_per_s = v[COL_RATE];
        e->learning_rate = v[COL_LR];
        e->ranks = isfinite(v[COL_RANKS]) && v[COL_RANKS] >= 1 && v[COL_RANKS] < 1e9
                       ? (int)v[COL_RANKS]
                       : 0;
        e->n_metrics = nm; /* an earlier run without a column: NaN, empty */
        for (int m = 0; m < 2 * nm && st == DPT_OK; m++) {
            double *dst = m % 2 ? &e->val_metric[m / 2] : &e->metric[m / 2];
            st = mcol[m] < 0 ? (*dst = NAN, DPT_OK)
                             : parse_field(path, ln, r->metric_names[m / 2], fld[mcol[m]], dst);
        }
        if (st != DPT_OK)
            count--; /* a malformed metric field: the row is not kept */
    }
    if (st != DPT_OK && lenient && ln > 1) { /* the last row was malformed */
        (*bad)++;
        dpt_error_clear();
        st = DPT_OK;
    }
    if (st == DPT_OK && ferror(f))
        st = dpt_error_set(DPT_ERR_DATA, "%s: read failed: %s", path, strerror(errno));
    if (st == DPT_OK && ln == 0 && !lenient)
        st = dpt_error_set(DPT_ERR_DATA, "%s: empty file", path);
    if (st == DPT_OK && count == 0 && !lenient)
        st = dpt_error_set(DPT_ERR_DATA, "%s: no epochs", path);
    free(line);
    fclose(f);
    if (st != DPT_OK) {
        free(out);
        return st;
    }
    *rows = out;
    *n = count;
    return DPT_OK;
}

/* ---- history.svg ------------------------------------------------------------------------------
 */

#define SVG_W 960
#define SVG_H 400
#define PANEL_W 480
#define PLOT_L 78  /* plot area inside a panel: left margin */
#define PLOT_R 24  /* right margin */
#define PLOT_T 56  /* top */
#define PLOT_B 336 /* bottom */
#define MAX_POINTS 1000
static const char *const TRAIN_COLOR = "#1f77b4", *const VAL_COLOR = "#d62728";

/* 1, 2 or 5 times a power of ten, near range / target */
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static int decimals_for(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 8 ? 8 : d;
}

static void xml_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, f);
        }
    }
}

typedef struct {
    double x0, x1, y0, y1;     /* data ranges */
    double px0, px1, py0, py1; /* pixel box: left, right, top, bottom */
} axes;

static double ax_x(const axes *a, double x) {
    return a->px0 + (x - a->x0) / (a->x1 - a->x0) * (a->px1 - a->px0);
}
static double ax_y(const axes *a, double y) {
    return a->py1 - (y - a->y0) / (a->y1 - a->y0) * (a->py1 - a->py0);
}

/* value of series s (0 loss, 1 val_loss, 2 accuracy, 3 val_accuracy) of a row */
static double series_value(const dpt_epoch_log *e, int s) {
    return s == 0 ? e->loss : s == 1 ? e->val_loss : s == 2 ? e->accuracy : e->val_accuracy;
}

/* One series as a polyline broken at missing values, plus point markers when there are few. */
static void draw_series(FILE *f, const axes *a, const dpt_epoch_log *rows, int64_t n, int s,
                        const char *color, bool dashed) {
    int64_t stride = n > MAX_POINTS ? (n + MAX_POINTS - 1) / MAX_POINTS : 1;
    bool pen = false, any = false;
    for (int64_t i = 0; i < n; i++) {
        if (i % stride != 0 && i != n - 1)
            continue;
        double v = series_value(&rows[i], s);
        if (!isfinite(v)) {
            pen = false;
            continue;
        }
        if (!any)
            fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", color,
                    dashed ? " stroke-dasharray=\"7 4\"" : "");
        fprintf(f, "%s%.1f %.1f ", pen ? "L" : "M", ax_x(a, (double)rows[i].epoch), ax_y(a, v));
        pen = any = true;
    }
    if (any)
        fputs("\"/>\n", f);
    if (n > 60)
        return;
    for (int64_t i = 0; i < n; i++) {
        double v = series_value(&rows[i], s);
        if (isfinite(v))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    ax_x(a, (double)rows[i].epoch), ax_y(a, v), color);
    }
}

/* One panel: frame, grid, ticks, labels, the train and validation series, a legend. */
static void draw_panel(FILE *f, int panel, const char *what, const dpt_epoch_log *rows, int64_t n,
                       int s_train, int s_val, bool legend_top) {
    axes a = {.px0 = panel * PANEL_W + PLOT_L,
              .px1 = (panel + 1) * PANEL_W - PLOT_R,
              .py0 = PLOT_T,
              .py1 = PLOT_B};
    double lo = INFINITY, hi = -INFINITY, emin = INFINITY, emax = -INFINITY;
    bool has_val = false;
    for (int64_t i = 0; i < n; i++) {
        emin = fmin(emin, (double)rows[i].epoch);
        emax = fmax(emax, (double)rows[i].epoch);
        for (int s = 0; s < 2; s++) {
            double v = series_value(&rows[i], s ? s_val : s_train);
            if (!isfinite(v))
                continue;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            if (s)
                has_val = true;
        }
    }
    double cx = (a.px0 + a.px1) / 2, cy = (a.py0 + a.py1) / 2;
    fprintf(f,
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"15\" "
            "font-weight=\"bold\">%s</text>\n",
            cx, PLOT_T - 12, what);
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fcfcfc\" "
            "stroke=\"#888\"/>\n",
            a.px0, a.py0, a.px1 - a.px0, a.py1 - a.py0);
    if (!(lo <= hi)) {
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666\">no %s "
                "recorded</text>\n",
                cx, cy, what);
        return;
    }
    /* y: a nice range around the data */
    if (hi - lo < 1e-12) {
        double pad = fabs(lo) > 1e-12 ? fabs(lo) * 0.05 : 0.05;
        lo -= pad;
        hi += pad;
    }
    double ys = nice_step(hi - lo, 5);
    a.y0 = floor(lo / ys) * ys;
    a.y1 = ceil(hi / ys) * ys;
    if (a.y1 - a.y0 < ys)
        a.y1 = a.y0 + ys;
    /* x: epochs, integer ticks */
    double xs = emax > emin ? nice_step(emax - emin, 8) : 1;
    if (xs < 1)
        xs = 1;
    double xpad = emax > emin ? 0.03 * (emax - emin) : 1;
    a.x0 = emin - xpad;
    a.x1 = emax + xpad;
    int yd = decimals_for(ys);
    for (double y = a.y0; y <= a.y1 + ys * 1e-6; y += ys) {
        double py = ax_y(&a, y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n",
                a.px0, py, a.px1, py);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
                a.px0 - 5, py, a.px0, py);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", a.px0 - 8,
                py + 4, yd, fabs(y) < ys * 1e-6 ? 0.0 : y);
    }
    /* the first epoch, then the multiples of xs that do not crowd it, up to the last epoch */
    for (double x = emin; x <= emax + 1e-9;
         x = x == emin ? ceil((emin + 0.4 * xs) / xs) * xs : x + xs) {
        double px = ax_x(&a, x);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", px,
                a.py1, px, a.py1 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", px,
                a.py1 + 19, x);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n", cx, a.py1 + 40);
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">%s"
            "</text>\n",
            a.px0 - 58, cy, what);
    draw_series(f, &a, rows, n, s_train, TRAIN_COLOR, false);
    if (has_val)
        draw_series(f, &a, rows, n, s_val, VAL_COLOR, true);
    /* legend: in the right-hand corner (top or bottom) that the curves' last third leaves free */
    int items = has_val ? 2 : 1;
    double lw = 118, lh = 10 + 20.0 * items, upper = 0, lower = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ax_x(&a, (double)rows[i].epoch) < a.px1 - lw - 16)
            continue;
        for (int s = 0; s < 2; s++) {
            double v = series_value(&rows[i], s ? s_val : s_train);
            if (!isfinite(v))
                continue;
            double py = ax_y(&a, v);
            upper += py < a.py0 + lh + 16;
            lower += py > a.py1 - lh - 16;
        }
    }
    bool top = upper < lower || (upper == lower && legend_top);
    double lx = a.px1 - lw - 8, ly = top ? a.py0 + 8 : a.py1 - lh - 8;
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
            "fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
            lx, ly, lw, lh);
    for (int i = 0; i < items; i++) {
        double yy = ly + 15 + 20.0 * i;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"%s/>\n",
                lx + 8, yy, lx + 38, yy, i ? VAL_COLOR : TRAIN_COLOR,
                i ? " stroke-dasharray=\"7 4\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx + 46, yy + 4,
                i ? "validation" : "train");
    }
}

dpt_status dpt_history_write_svg(const char *path, const dpt_epoch_log *rows, int64_t n,
                                 const char *title) {
    char tmp[DPT_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
            "font-size=\"12\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fputs("<title>", f);
    xml_escape(f, title && title[0] ? title : "dptrain history");
    fputs("</title>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" fill=\"#333\">",
            SVG_W / 2);
    if (title && title[0]) {
        xml_escape(f, title);
        fputs(" — ", f);
    }
    fprintf(f, "%lld epoch%s", (long long)n, n == 1 ? "" : "s");
    if (n > 0 && rows[n - 1].ranks > 0)
        fprintf(f, ", %d ranks", rows[n - 1].ranks);
    fputs("</text>\n", f);
    draw_panel(f, 0, "loss", rows, n, 0, 1, true);
    draw_panel(f, 1, "accuracy", rows, n, 2, 3, false);
    fputs("</svg>\n", f);
    bool bad = ferror(f) != 0;
    int saved = errno;
    if (fclose(f) != 0 && !bad) {
        bad = true;
        saved = errno;
    }
    if (bad) {
        unlink(tmp);
        return dpt_error_set(DPT_ERR_IO, "%s: write failed: %s", tmp, strerror(saved));
    }
    return dpt_file_commit(tmp, path); /* fsync, rename, fsync of the directory */
}

dpt_status dpt_plot_history(const char *csv, const char *svg, const char *title,
                            int64_t *n_epochs) {
    dpt_epoch_log *rows = NULL;
    *n_epochs = 0;
    dpt_status st = dpt_history_read_csv(csv, &rows, n_epochs);
    if (st != DPT_OK)
        return st;
    st = dpt_history_write_svg(svg, rows, *n_epochs, title);
    free(rows);
    return st;
}
