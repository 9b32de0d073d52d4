"""Starting dptrain: the launcher command (mpirun, srun, or none), streaming rank 0's output, and
turning Ctrl-C into a checkpoint. Knows nothing about Keras.

Ctrl-C: the launcher runs in its own session, so the terminal's SIGINT reaches only Python; Python
then sends the launcher the signal that makes every rank checkpoint and exit 75: SIGUSR1 to
mpirun / mpiexec (Open MPI forwards it to the ranks; measured: SIGTERM to mpirun also reaches the
ranks, which checkpoint, but mpirun then exits 1 instead of 75), SIGTERM to srun (forwarded to
the tasks, srun exits with their 75) and to the binary run without a launcher. A second Ctrl-C
kills the whole job at once.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading

from ._binary import DptrainError, DptrainInterrupted

PREEMPTED = 75


def _which(prog):
    if os.sep in prog:
        return prog if os.path.isfile(prog) and os.access(prog, os.X_OK) else None
    return shutil.which(prog)


def launcher_command(launcher, ranks, hosts):
    """(argv prefix, kind, env additions) for `ranks` ranks. launcher: None (srun inside a Slurm
    allocation, else mpirun; with ranks == 1 and no mpirun, the binary alone), "mpirun",
    "mpiexec", "srun" or a path to one of them, "none" (the binary alone, one rank), or a list
    used verbatim as the prefix (the rank count is then the list's business)."""
    env = {}
    if isinstance(launcher, (list, tuple)):
        if not launcher:
            raise DptrainError("launcher: an empty list", 2)
        prog = _which(str(launcher[0]))
        if not prog:
            raise DptrainError("launcher: %s: not found on PATH" % launcher[0], 2)
        kind = "srun" if os.path.basename(prog) == "srun" else "mpirun"
        return [prog] + [str(a) for a in launcher[1:]], kind, _mpi_env(kind, hosts)
    if ranks is not None and (not isinstance(ranks, int) or ranks < 1):
        raise DptrainError("ranks: must be a whole number >= 1, got %r" % (ranks,), 2)
    if launcher == "none":
        if ranks not in (None, 1):
            raise DptrainError("launcher=\"none\" runs one rank, got ranks=%d" % ranks, 2)
        return [], "none", env
    explicit = launcher is not None
    if launcher is None:
        in_slurm = bool(os.environ.get("SLURM_JOB_ID")) and shutil.which("srun")
        launcher = "srun" if in_slurm else "mpirun"
    prog = _which(launcher)
    if not prog and not explicit and launcher == "mpirun":
        prog = _which("mpiexec")
    if not prog:
        if not explicit and (ranks or 1) == 1:
            return [], "none", env  # one rank needs no launcher
        raise DptrainError(
            "launcher: %s: not found on PATH (install MPI: launch/install-deps.sh, load your "
            "cluster's MPI module, or pass launcher=\"/path/to/mpirun\")" % launcher, 2)
    kind = "srun" if os.path.basename(prog) == "srun" else "mpirun"
    argv = [prog]
    if kind == "srun":
        if ranks is not None:
            argv += ["--ntasks", str(ranks)]
        if hosts:
            argv += ["--nodelist", hosts if isinstance(hosts, str) else ",".join(hosts)]
    else:
        argv += ["-np", str(ranks or 1)]
        if hosts:
            argv += ["--host", hosts if isinstance(hosts, str) else ",".join(hosts)]
    return argv, kind, _mpi_env(kind, hosts)


def _mpi_env(kind, hosts):
    env = {}
    if kind != "mpirun":
        return env
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without these
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    if not hosts:  # on this machine: as many ranks as asked, even past the core count
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return {k: v for k, v in env.items() if k not in os.environ}


def interrupt_signal(kind):
    return signal.SIGUSR1 if kind == "mpirun" else signal.SIGTERM


def last_error_line(err_text):
    """dptrain's one line (the last 'dptrain: ' line of stderr), else the last line there."""
    lines = [ln.rstrip() for ln in err_text.splitlines() if ln.strip()]
    mine = [ln for ln in lines if ln.startswith("dptrain: ") and "warning:" not in ln]
    if mine:
        return mine[-1]
    return lines[-1] if lines else ""


def _pump(src, sink, keep):
    for line in iter(src.readline, ""):
        keep.append(line)
        if sink is not None:
            try:
                sink.write(line)
                sink.flush()
            except (ValueError, OSError):
                pass
    src.close()


def _pump_raw(src, sink, keep):
    """As _pump, but chunk by chunk: a progress bar's carriage returns reach the sink as they
    come (a notebook's output area redraws the line, as it does for tqdm)."""
    import codecs
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    fd = src.fileno()
    while True:
        b = os.read(fd, 4096)
        text = dec.decode(b, final=not b)
        if text:
            keep.append(text)
            if sink is not None:
                try:
                    sink.write(text)
                    sink.flush()
                except (ValueError, OSError):
                    pass
        if not b:
            break
    src.close()


class Result:
    def __init__(self, rc, out, err, interrupted):
        self.rc, self.out, self.err, self.interrupted = rc, out, err, interrupted

    @property
    def output(self):
        return self.out + self.err


def run(argv, env_add=None, *, echo=False, terminal=False, bar=False, kind="none"):
    """Runs argv to the end. echo: copy stdout and stderr to sys.stdout / sys.stderr as they come
    (terminal: leave stdout on the terminal itself, so dptrain draws its bar; bar: have dptrain
    draw it into the pipe anyway and pass it on unbuffered, for a notebook). Ctrl-C asks the job
    to checkpoint and stop (see the module comment). Returns a Result."""
    env = dict(os.environ)
    env.update(env_add or {})
    for f in (sys.stdout, sys.stderr):  # what Python printed comes before what dptrain prints
        try:
            f.flush()
        except (AttributeError, ValueError, OSError):
            pass
    if echo and not terminal:
        env.setdefault("DPTRAIN_PROGRESS", "1" if bar else "0")
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                         stdout=None if terminal else subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, bufsize=1, start_new_session=True)
    out, err, threads = [], [], []
    if p.stdout is not None:
        threads.append(threading.Thread(target=_pump_raw if bar else _pump, daemon=True,
                                        args=(p.stdout, sys.stdout if echo else None, out)))
    threads.append(threading.Thread(target=_pump, daemon=True,
                                    args=(p.stderr, sys.stderr if echo else None, err)))
    for t in threads:
        t.start()
    interrupted = False
    try:
        rc = p.wait()
    except KeyboardInterrupt:
        interrupted = True
        try:
            p.send_signal(interrupt_signal(kind))
            print("\ndptrain: interrupted: the ranks write a checkpoint and stop (Ctrl-C again "
                  "kills them at once)", file=sys.stderr, flush=True)
            rc = p.wait()
        except KeyboardInterrupt:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            for t in threads:
                t.join(timeout=5)
            raise DptrainInterrupted("dptrain: killed by a second Ctrl-C (no new checkpoint)",
                                     -signal.SIGKILL, output="".join(out + err))
    for t in threads:
        t.join(timeout=30)
    return Result(rc, "".join(out), "".join(err), interrupted)


def check(res, what):
    """DptrainError from a failed Result (one line of dptrain's), else nothing. A run that Ctrl-C
    stopped (or that ended while Python was interrupted) raises KeyboardInterrupt: nothing that
    follows it (the ranks after a dry run) may start."""
    if res.interrupted:
        raise KeyboardInterrupt("%s interrupted" % what)
    if res.rc == 0:
        return
    line = last_error_line(res.err) or "%s: exit %d" % (what, res.rc)
    raise DptrainError(line, res.rc, output=res.output)
