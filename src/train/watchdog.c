/* The watchdog: a thread that ends the job when no training step finished for `seconds`.
 * A rank that is stopped (SIGSTOP) or stuck leaves the others waiting inside a collective forever;
 * their watchdogs notice, print one line naming the step and exit without finalizing, which makes
 * mpirun / srun end every rank of the job. Local (one thread per rank).
 * Progress is a finished step, and also each batch of a validation / test pass (kicked there),
 * and a checkpoint write: every rank holds the watchdog (dpt_watchdog_hold) from before the write
 * until the ranks have agreed on it, since all but rank 0 only wait for it then. A rank stuck
 * inside a checkpoint write is therefore not detected; one stuck anywhere else still is. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "train_internal.h"

static pthread_t g_thread;
static atomic_int g_running;
static _Atomic double g_last;
static _Atomic long long g_step;
static atomic_int g_held; /* > 0: a phase that counts as progress throughout (a checkpoint) */
static double g_limit;
static int g_rank, g_size;

static void *watch(void *arg) {
    (void)arg;
    while (atomic_load(&g_running)) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double idle = dpt_now() - atomic_load(&g_last);
        if (atomic_load(&g_running) && !atomic_load(&g_held) && idle > g_limit) {
            fprintf(stderr,
                    "[rank %d/%d] dptrain: internal error: watchdog: no progress for %.0f s after "
                    "global step %lld (a rank is stopped, stuck or dead); ending the job\n",
                    g_rank, g_size, idle, (long long)atomic_load(&g_step));
            fflush(stderr);
            _exit(DPT_ERR_INTERNAL);
        }
    }
    return NULL;
}

void dpt_watchdog_start(double seconds, int rank, int size) {
    if (seconds <= 0 || atomic_load(&g_running))
        return;
    g_limit = seconds;
    g_rank = rank;
    g_size = size;
    atomic_store(&g_last, dpt_now());
    atomic_store(&g_running, 1);
    if (pthread_create(&g_thread, NULL, watch, NULL) != 0)
        atomic_store(&g_running, 0);
}

void dpt_watchdog_kick(int64_t step) {
    atomic_store(&g_last, dpt_now());
    if (step >= 0) /* < 0: progress that is not a step (an evaluation batch) */
        atomic_store(&g_step, (long long)step);
}

void dpt_watchdog_stop(void) {
    if (!atomic_load(&g_running))
        return;
    atomic_store(&g_running, 0);
    pthread_join(g_thread, NULL);
}

void dpt_watchdog_hold(void) { atomic_fetch_add(&g_held, 1); }

void dpt_watchdog_release(int64_t step) {
    dpt_watchdog_kick(step); /* the phase's time does not count as idle */
    if (atomic_load(&g_held) > 0)
        atomic_fetch_sub(&g_held, 1);
}
