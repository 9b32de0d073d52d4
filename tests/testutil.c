/* Shared helpers for dptrain's cmocka tests. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* Temporary directories are removed when the test program exits (DPT_KEEP_TMP=1 keeps them). */
static char g_dirs[64][4096];
static int g_n_dirs;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_dirs(void) {
    const char *keep = getenv("DPT_KEEP_TMP");
    if (keep && *keep == '1')
        return;
    for (int i = 0; i < g_n_dirs; i++)
        nftw(g_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *dpt_test_tmpdir(const char *tag) {
    static char path[4096];
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(path, sizeof path, "%s/dpt-test-%s-XXXXXX", base, tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    if (g_n_dirs < 64) {
        if (g_n_dirs == 0)
            atexit(rm_dirs);
        snprintf(g_dirs[g_n_dirs++], sizeof g_dirs[0], "%s", path);
    }
    return path;
}

const char *dpt_test_source_dir(void) {
    const char *s = getenv("DPT_SOURCE_DIR");
    return (s && *s) ? s : ".";
}

const char *dpt_test_fixtures_dir(void) {
    const char *s = getenv("DPT_FIXTURES_DIR");
    struct stat st;
    if (s && *s && stat(s, &st) == 0 && S_ISDIR(st.st_mode))
        return s;
    return NULL;
}

int dpt_test_mpi_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
                      const char *group_name) {
    (void)argc;
    (void)argv;
    MPI_Init(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int failed = _cmocka_run_group_tests(group_name, tests, n, NULL, NULL);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
