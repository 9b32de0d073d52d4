"""Where the dptrain C binary is, and the error type every failure becomes.

Looked up in this order (the first that exists wins):
  1. $DPTRAIN_BINARY                      an explicit path (tests, a cluster module, a debug build)
  2. dptrain/_bin/dptrain                 what `pip install ./python` built and installed
  3. <repo>/build/dptrain                 a source checkout used without installing
                                          (PYTHONPATH=python), after `cmake --build build`
  4. `dptrain` on PATH                    only an ELF executable, never this package's own
                                          console script (which would call itself)
"""
import os
import shutil

_HERE = os.path.dirname(os.path.abspath(__file__))


class DptrainError(RuntimeError):
    """dptrain refused or failed. str(e) is dptrain's one line; .exit_code its exit status
    (README: 3 config, 4 data, 5 checkpoint, 75 preempted ...); .run_dir the run directory when a
    run had started (pass it back with resume=True to continue)."""

    def __init__(self, message, exit_code=1, run_dir=None, output=""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.run_dir = run_dir
        self.output = output


class DptrainInterrupted(DptrainError, KeyboardInterrupt):
    """Ctrl-C during fit: dptrain wrote a checkpoint and stopped (exit 75). Caught by both
    `except DptrainError` and `except KeyboardInterrupt`."""


def _is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def candidates():
    """The places looked at, in order (for error messages)."""
    out = []
    env = os.environ.get("DPTRAIN_BINARY")
    if env:
        out.append(("DPTRAIN_BINARY", env))
    out.append(("installed", os.path.join(_HERE, "_bin", "dptrain")))
    out.append(("source tree", os.path.normpath(os.path.join(_HERE, "..", "..", "build", "dptrain"))))
    w = shutil.which("dptrain")
    if w:
        out.append(("PATH", w))
    return out


def find_binary():
    """The path of the dptrain executable; DptrainError when there is none."""
    env = os.environ.get("DPTRAIN_BINARY")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return os.path.abspath(env)
        raise DptrainError("DPTRAIN_BINARY=%s: not an executable file" % env, 2)
    for kind, p in candidates():
        if os.path.isfile(p) and os.access(p, os.X_OK) and _is_elf(p):
            return os.path.abspath(p)
    raise DptrainError(
        "no dptrain binary: not installed with the package (%s), no build/dptrain in the source "
        "tree, none on PATH; pip install ./python from a clone, or set DPTRAIN_BINARY=/path/to/dptrain"
        % os.path.join(_HERE, "_bin", "dptrain"), 2)
