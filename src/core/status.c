/* Status codes and the one recorded error message. Local; no MPI. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/status.h"

static char g_msg[2048];

dpt_status dpt_error_set(dpt_status code, const char *fmt, ...) {
    /* through a copy: a caller may pass dpt_error_message() itself to add context */
    char tmp[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(g_msg, tmp, sizeof g_msg);
    return code;
}

const char *dpt_error_message(void) { return g_msg; }

void dpt_error_clear(void) { g_msg[0] = '\0'; }

const char *dpt_status_name(dpt_status s) {
    switch (s) {
    case DPT_OK:
        return "ok";
    case DPT_ERR_INTERNAL:
        return "internal error";
    case DPT_ERR_USAGE:
        return "usage error";
    case DPT_ERR_CONFIG:
        return "config error";
    case DPT_ERR_DATA:
        return "data error";
    case DPT_ERR_CHECKPOINT:
        return "checkpoint error";
    case DPT_ERR_NUMERIC:
        return "numeric error";
    case DPT_ERR_IO:
        return "I/O error";
    case DPT_ERR_NOMEM:
        return "out of memory";
    case DPT_ERR_BUSY:
        return "run directory busy";
    case DPT_PREEMPTED:
        return "preempted (resumable)";
    }
    return "unknown error";
}
