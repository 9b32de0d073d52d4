/* dptrain — status codes and the one error message.
 *
 * Every fallible function returns a dpt_status and, on failure, records ONE line of context with
 * dpt_error_set(): "<file>: <where>: <what>". Callers pass the status up unchanged; the command
 * line prints dpt_error_message() and exits with the status value, which IS the documented exit
 * code. Nothing in the library calls exit(). Local (no MPI).
 */
#ifndef DPTRAIN_STATUS_H
#define DPTRAIN_STATUS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DPT_NODISCARD __attribute__((warn_unused_result))
#define DPT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DPT_NODISCARD
#define DPT_PRINTF(a, b)
#endif

/* The values are the process exit codes (README "Exit codes"). */
typedef enum {
    DPT_OK = 0,
    DPT_ERR_INTERNAL = 1,   /* a bug or an MPI failure */
    DPT_ERR_USAGE = 2,      /* bad command line */
    DPT_ERR_CONFIG = 3,     /* bad configuration file (JSON syntax, type, range, unsupported) */
    DPT_ERR_DATA = 4,       /* dataset missing, unreadable, wrong format or shape, bad values */
    DPT_ERR_CHECKPOINT = 5, /* checkpoint / weight file missing, damaged, incompatible */
    DPT_ERR_NUMERIC = 6,    /* non-finite loss or gradient */
    DPT_ERR_IO = 7,         /* output could not be written (run directory, disk full) */
    DPT_ERR_NOMEM = 8,      /* out of memory, or a size too large to allocate */
    DPT_ERR_BUSY = 9,       /* the run directory is owned by another job (its lock file) */
    DPT_PREEMPTED = 75      /* stopped by a signal after a checkpoint: resumable (EX_TEMPFAIL) */
} dpt_status;

/* Records the message for the current failure and returns `code` (so: `return dpt_error_set(...)`).
 * The format should name the file and the field. Overwrites any previous message. */
dpt_status dpt_error_set(dpt_status code, const char *fmt, ...) DPT_PRINTF(2, 3);

/* The last recorded message ("" if none). Valid until the next dpt_error_set(). */
const char *dpt_error_message(void);

/* Clears the recorded message. */
void dpt_error_clear(void);

/* Short category name of a status ("config error", ...). Never NULL. */
const char *dpt_status_name(dpt_status s);

#endif
