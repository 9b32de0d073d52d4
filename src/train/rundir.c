/* The run directory's owner: one job at a time holds DIR/dptrain.lock (host, pid, boot id,
 * process start time, Slurm job id, since when), taken by rank 0 before anything in DIR is read or
 * written, and removed when the run ends. A second job on the same directory stops at once with
 * DPT_ERR_BUSY naming the holder. A lock left by a process that is gone (same host: the pid is
 * dead, or another process or boot now has it; any host: the same Slurm job id with a lower
 * SLURM_RESTART_COUNT, i.e. this job's earlier run before a requeue) is taken over with a
 * warning.
 *
 * The lock file appears atomically with its content: written to a private name, then link()ed
 * to dptrain.lock, which fails with EEXIST when another job holds it (also on NFS); where link()
 * is not supported, O_CREAT | O_EXCL. The take-over of a stale lock is serialized among the
 * processes of one host by flock() on the directory (best effort: without flock two jobs that
 * both found the same dead holder in the same millisecond could both proceed).
 *
 * Also the `preempted` note that launch/ scripts read: when a run ends with DPT_PREEMPTED, rank 0
 * writes DIR/preempted holding $DPT_LAUNCH_ID and the message, so a script whose mpirun itself
 * got the signal (and exits 1) can still tell the job was preempted after a checkpoint.
 * Leaves to others: what the directory holds (checkpoints, history). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train_internal.h"

#define LOCK_NAME "dptrain.lock"
#define NOTE_NAME "preempted"

typedef struct {
    char host[256];
    long pid;
    char boot_id[64];
    unsigned long long start; /* the process's start time, clock ticks after boot */
    char job[64];             /* SLURM_JOB_ID, or "" */
    long restart;             /* SLURM_RESTART_COUNT (0 when unset): runs of a requeued job */
    char since[64];           /* UTC, ISO 8601 */
} holder;

struct dpt_run_lock {
    char dir[DPT_PATH_MAX];
    char path[DPT_PATH_MAX + 32];
    holder me;
};

/* ---- who we are ------------------------------------------------------------------------------ */

static void read_line(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(buf, (int)n, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

/* Start time (field 22 of /proc/PID/stat) of a process, 0 when unknown. */
static unsigned long long proc_start(long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    read_line(path, buf, sizeof buf);
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return 0;
    /* after ") ": field 3 (state) is the first; field 22 is 19 further */
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

/* The state letter (field 3 of /proc/PID/stat: R, S, D, Z, ...) of a process, '?' when unknown. */
static char proc_state(long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    read_line(path, buf, sizeof buf);
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

static void holder_self(holder *h) {
    memset(h, 0, sizeof *h);
    if (gethostname(h->host, sizeof h->host - 1) != 0)
        snprintf(h->host, sizeof h->host, "?");
    h->pid = (long)getpid();
    read_line("/proc/sys/kernel/random/boot_id", h->boot_id, sizeof h->boot_id);
    h->start = proc_start(h->pid);
    const char *job = getenv("SLURM_JOB_ID");
    snprintf(h->job, sizeof h->job, "%s", job ? job : "");
    const char *rc = getenv("SLURM_RESTART_COUNT");
    h->restart = rc ? strtol(rc, NULL, 10) : 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(h->since, sizeof h->since, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int holder_format(const holder *h, char *buf, size_t n) {
    return snprintf(buf, n,
                    "host=%s\npid=%ld\nboot_id=%s\nstart=%llu\njob=%s\nrestart=%ld\nsince=%s\n",
                    h->host, h->pid, h->boot_id, h->start, h->job, h->restart, h->since);
}

/* 1 read, 0 missing (ENOENT), -1 unreadable or not a lock file */
static int holder_read(const char *path, holder *h) {
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char line[512];
    int fields = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (!strcmp(k, "host"))
            snprintf(h->host, sizeof h->host, "%s", v), fields++;
        else if (!strcmp(k, "pid"))
            h->pid = strtol(v, NULL, 10), fields++;
        else if (!strcmp(k, "boot_id"))
            snprintf(h->boot_id, sizeof h->boot_id, "%s", v);
        else if (!strcmp(k, "start"))
            h->start = strtoull(v, NULL, 10);
        else if (!strcmp(k, "job"))
            snprintf(h->job, sizeof h->job, "%s", v);
        else if (!strcmp(k, "restart"))
            h->restart = strtol(v, NULL, 10);
        else if (!strcmp(k, "since"))
            snprintf(h->since, sizeof h->since, "%s", v);
    }
    fclose(f);
    return fields == 2 && h->pid > 0 ? 1 : -1;
}

static bool holder_same(const holder *a, const holder *b) {
    return !strcmp(a->host, b->host) && a->pid == b->pid && a->start == b->start;
}

/* Why the holder is certainly gone ("" when it may be alive). */
static void holder_gone(const holder *h, const holder *me, char *why, size_t n) {
    why[0] = '\0';
    /* a requeued job (same id, a later run): its earlier run has ended, on whichever node. Two
     * steps of one run (same id, same restart count) are told apart by their pids below. */
    if (h->job[0] && !strcmp(h->job, me->job) && h->restart < me->restart) {
        snprintf(why, n, "it was this Slurm job's (%s) earlier run %ld", h->job, h->restart + 1);
        return;
    }
    if (strcmp(h->host, me->host))
        return; /* another host: nothing to ask */
    if (h->boot_id[0] && me->boot_id[0] && strcmp(h->boot_id, me->boot_id)) {
        snprintf(why, n, "the host has rebooted since");
        return;
    }
    if (kill((pid_t)h->pid, 0) != 0 && errno == ESRCH) {
        snprintf(why, n, "process %ld is gone", h->pid);
        return;
    }
    char state = proc_state(h->pid);
    if (state == 'Z' || state == 'X') { /* ended, not yet reaped (e.g. reparented to a PID 1 that
                                           does not reap, as in some containers) */
        snprintf(why, n, "process %ld has ended", h->pid);
        return;
    }
    unsigned long long start = proc_start(h->pid);
    if (h->start && start && start != h->start)
        snprintf(why, n, "process %ld is gone (its pid belongs to another process now)", h->pid);
}

/* ---- taking and releasing -------------------------------------------------------------------- */

static dpt_status write_all(int fd, const char *buf, size_t n, const char *path) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return DPT_OK;
}

/* Creates the lock file atomically with its content. 1 taken, 0 it exists, <0 error (set). */
static int try_create(dpt_run_lock *l, const char *content) {
    char tmp[DPT_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld", l->dir, LOCK_NAME, l->me.pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        dpt_error_set(DPT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    dpt_status st = write_all(fd, content, strlen(content), tmp);
    if (st == DPT_OK && fsync(fd) != 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    close(fd);
    if (st != DPT_OK) {
        unlink(tmp);
        return -1;
    }
    int got = link(tmp, l->path);
    int err = errno;
    unlink(tmp);
    if (got == 0)
        return 1;
    if (err == EEXIST)
        return 0;
    if (err != EPERM && err != EOPNOTSUPP && err != ENOSYS && err != EXDEV) {
        dpt_error_set(DPT_ERR_IO, "%s: cannot create: %s", l->path, strerror(err));
        return -1;
    }
    /* no hard links here: exclusive creation, then the content */
    fd = open(l->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        dpt_error_set(DPT_ERR_IO, "%s: cannot create: %s", l->path, strerror(errno));
        return -1;
    }
    st = write_all(fd, content, strlen(content), l->path);
    if (st == DPT_OK && fsync(fd) != 0)
        st = dpt_error_set(DPT_ERR_IO, "%s: cannot write: %s", l->path, strerror(errno));
    close(fd);
    if (st != DPT_OK) {
        unlink(l->path);
        return -1;
    }
    return 1;
}

static dpt_status busy(const dpt_run_lock *l, const holder *h, int known) {
    if (known <= 0)
        return dpt_error_set(DPT_ERR_BUSY,
                             "%s: run directory in use: %s exists but cannot be read as a lock "
                             "file; remove it if no job uses the directory",
                             l->dir, l->path);
    char job[96] = "";
    if (h->job[0])
        snprintf(job, sizeof job, ", Slurm job %s", h->job);
    return dpt_error_set(DPT_ERR_BUSY,
                         "%s: run directory in use by another job (host %s, pid %ld%s, since %s; "
                         "lock file %s): wait for it to end, use another --run-dir, or remove "
                         "the lock file if that job is gone",
                         l->dir, h->host, h->pid, job, h->since[0] ? h->since : "?", l->path);
}

/* Rank 0's part. */
static dpt_status lock_local(const char *dir, dpt_run_lock **out) {
    dpt_status st = dpt_mkdir_p(dir);
    if (st != DPT_OK)
        return st;
    dpt_run_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", dir);
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    snprintf(l->path, sizeof l->path, "%s/%s", dir, LOCK_NAME);
    holder_self(&l->me);
    char content[1024];
    holder_format(&l->me, content, sizeof content);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    bool guarded = false;
    st = DPT_ERR_BUSY;
    dpt_error_set(st, "%s: cannot take the lock %s: it keeps changing hands", dir, l->path);
    for (int attempt = 0; attempt < 4; attempt++) {
        int got = try_create(l, content);
        if (got < 0) {
            st = DPT_ERR_IO; /* message set */
            break;
        }
        if (got == 1) {
            st = DPT_OK;
            break;
        }
        holder h;
        int known = holder_read(l->path, &h);
        if (known == 0)
            continue; /* released meanwhile: try again */
        char why[256] = "";
        if (known > 0)
            holder_gone(&h, &l->me, why, sizeof why);
        if (!why[0]) {
            st = busy(l, &h, known);
            break;
        }
        /* a dead holder: take over, one process of this host at a time */
        if (!guarded && dfd >= 0 && flock(dfd, LOCK_EX) == 0)
            guarded = true;
        holder again;
        if (holder_read(l->path, &again) <= 0 || !holder_same(&h, &again))
            continue; /* someone else took it over meanwhile: look again */
        fprintf(stderr,
                "dptrain: warning: %s: taking over the lock of a job that is gone (host %s, "
                "pid %ld, since %s): %s\n",
                l->path, h.host, h.pid, h.since[0] ? h.since : "?", why);
        if (unlink(l->path) != 0 && errno != ENOENT) {
            st = dpt_error_set(DPT_ERR_IO, "%s: cannot remove a stale lock: %s", l->path,
                               strerror(errno));
            break;
        }
    }
    if (guarded)
        flock(dfd, LOCK_UN);
    if (dfd >= 0)
        close(dfd);
    if (st != DPT_OK) {
        free(l);
        return st;
    }
    /* a note from an earlier run is not this run's */
    char note[DPT_PATH_MAX + 32];
    snprintf(note, sizeof note, "%s/%s", dir, NOTE_NAME);
    unlink(note);
    *out = l;
    return DPT_OK;
}

dpt_status dpt_rundir_lock(const dpt_comm *c, const char *dir, dpt_run_lock **lock) {
    *lock = NULL;
    if (!dir || !dir[0])
        return DPT_OK;
    dpt_status st = c->rank == 0 ? lock_local(dir, lock) : DPT_OK;
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        dpt_rundir_unlock(lock, DPT_OK);
    return st;
}

static void write_note(const dpt_run_lock *l) {
    char note[DPT_PATH_MAX + 32], tmp[DPT_PATH_MAX + 48], buf[4096];
    snprintf(note, sizeof note, "%s/%s", l->dir, NOTE_NAME);
    snprintf(tmp, sizeof tmp, "%s.tmp", note);
    const char *id = getenv("DPT_LAUNCH_ID");
    int n = snprintf(buf, sizeof buf, "launch=%s\n%s\n", id ? id : "", dpt_error_message());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    bool ok =
        write_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, tmp) == DPT_OK &&
        fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, note) != 0)
        unlink(tmp);
}

void dpt_rundir_unlock(dpt_run_lock **lock, dpt_status st) {
    dpt_run_lock *l = *lock;
    if (!l)
        return;
    if (st == DPT_PREEMPTED) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", dpt_error_message());
        write_note(l);
        dpt_error_set(st, "%s", msg); /* the message the command line prints */
    }
    holder h;
    if (holder_read(l->path, &h) > 0 && holder_same(&h, &l->me))
        unlink(l->path);
    free(l);
    *lock = NULL;
}
