/* `dptrain plot RUN_DIR [--out FILE.svg]`: redraws the learning curves of a run directory from
 * its history.csv (dpt_plot_history: the reader and the SVG writer live in src/train/report.c,
 * which also writes the plot during fit). Local: rank 0 runs it, main agrees the status.
 * Errors: a missing RUN_DIR or history.csv, or a malformed row, is a data error (exit 4) naming
 * the file (and the line); an SVG that cannot be written is an I/O error (exit 7). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

dpt_status dpt_cli_plot(int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-')
        return dpt_error_set(DPT_ERR_USAGE, "plot: missing RUN_DIR (usage: dptrain plot RUN_DIR "
                                            "[--out FILE.svg])");
    const char *dir = argv[0], *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") != 0)
            return dpt_error_set(DPT_ERR_USAGE,
                                 "plot: unknown argument \"%s\" (see dptrain help "
                                 "plot)",
                                 argv[i]);
        if (i + 1 >= argc)
            return dpt_error_set(DPT_ERR_USAGE, "plot: --out needs a value");
        out = argv[++i];
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return dpt_error_set(DPT_ERR_DATA, "%s: no such run directory: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return dpt_error_set(DPT_ERR_DATA, "%s: not a directory", dir);
    char csv[DPT_PATH_MAX], svg[DPT_PATH_MAX];
    snprintf(csv, sizeof csv, "%s/history.csv", dir);
    if (out)
        snprintf(svg, sizeof svg, "%s", out);
    else
        snprintf(svg, sizeof svg, "%s/history.svg", dir);
    int64_t n = 0;
    dpt_status st = dpt_plot_history(csv, svg, dir, &n);
    if (st == DPT_OK) {
        printf("wrote %s: %lld epoch%s\n", svg, (long long)n, n == 1 ? "" : "s");
        fflush(stdout);
    }
    return st;
}
