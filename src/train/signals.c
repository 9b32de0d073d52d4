/* Preemption signals: SIGTERM, SIGUSR1 (what Slurm's --signal sends) and SIGINT only set a flag;
 * the training loop folds it into the per-step reduction, so all ranks stop at the same step
 * boundary, rank 0 checkpoints, and every rank exits with DPT_PREEMPTED. Local. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include "train_internal.h"

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) { g_signal = sig; }

void dpt_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int dpt_signals_pending(void) { return (int)g_signal; }

void dpt_signals_clear(void) { g_signal = 0; }
