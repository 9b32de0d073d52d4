/* Shared helpers for dptrain's cmocka tests. */
#ifndef DPT_TESTUTIL_H
#define DPT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dptrain/dptrain.h"

/* A fresh empty directory under $TMPDIR (or /tmp) for this test; returns its path (static). */
const char *dpt_test_tmpdir(const char *tag);
/* $DPT_SOURCE_DIR (the repository root) or "." */
const char *dpt_test_source_dir(void);
/* The Keras fixtures folder if present, else NULL (tests then skip()). */
const char *dpt_test_fixtures_dir(void);
/* Asserts that a status is `expect` and that the recorded message contains `needle`. */
#define assert_status_msg(st, expect, needle)                                                      \
    do {                                                                                           \
        dpt_status st_ = (st);                                                                     \
        if (st_ != (expect) || !strstr(dpt_error_message(), (needle)))                             \
            fail_msg("expected status %d with \"%s\", got %d: \"%s\"", (int)(expect), (needle),    \
                     (int)st_, dpt_error_message());                                               \
    } while (0)
#define assert_ok(st)                                                                              \
    do {                                                                                           \
        dpt_status st_ = (st);                                                                     \
        if (st_ != DPT_OK)                                                                         \
            fail_msg("status %d: %s", (int)st_, dpt_error_message());                              \
    } while (0)

/* MPI test main: MPI_Init, run the group on every rank, agree on failure (MAX), finalize.
 * Returns non-zero on every rank if any rank failed. */
int dpt_test_mpi_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
                      const char *group_name);

#endif
