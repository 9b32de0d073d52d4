"""The launcher command (no ranks started): mpirun by default, srun inside a Slurm allocation,
what launcher= says otherwise; and the signal Ctrl-C becomes."""
import os
import signal
import stat

import pytest

import dptrain
from dptrain import _run


def _fake(tmp_path, name):
    p = tmp_path / name
    p.write_text("#!/bin/sh\nexit 0\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def test_mpirun_by_default(tmp_path, monkeypatch):
    _fake(tmp_path, "mpirun")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for k in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
              "OMPI_MCA_rmaps_base_oversubscribe"):
        monkeypatch.delenv(k, raising=False)
    argv, kind, env = _run.launcher_command(None, 4, None)
    assert argv == [str(tmp_path / "mpirun"), "-np", "4"] and kind == "mpirun"
    assert env.get("OMPI_MCA_rmaps_base_oversubscribe") == "1"  # one machine: oversubscribe
    assert (env.get("OMPI_ALLOW_RUN_AS_ROOT") == "1") == (os.geteuid() == 0)
    argv, kind, env = _run.launcher_command(None, 4, ["n1:2", "n2:2"])
    assert argv[-2:] == ["--host", "n1:2,n2:2"] and "OMPI_MCA_rmaps_base_oversubscribe" not in env
    assert _run.interrupt_signal(kind) == signal.SIGUSR1


def test_srun_inside_slurm(tmp_path, monkeypatch):
    _fake(tmp_path, "mpirun")
    _fake(tmp_path, "srun")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    argv, kind, env = _run.launcher_command(None, 8, "a,b")
    assert argv == [str(tmp_path / "srun"), "--ntasks", "8", "--nodelist", "a,b"]
    assert kind == "srun" and env == {} and _run.interrupt_signal(kind) == signal.SIGTERM
    argv, kind, _ = _run.launcher_command(None, None, None)  # the allocation's task count
    assert argv == [str(tmp_path / "srun")]
    argv, kind, _ = _run.launcher_command("mpirun", 2, None)  # overridable
    assert kind == "mpirun" and argv[1:] == ["-np", "2"]


def test_explicit_forms(tmp_path, monkeypatch):
    m = _fake(tmp_path, "mpiexec")
    argv, kind, _ = _run.launcher_command([m, "--bind-to", "core", "-n", "3"], 2, None)
    assert argv == [m, "--bind-to", "core", "-n", "3"] and kind == "mpirun"  # verbatim
    assert _run.launcher_command("none", 1, None)[:2] == ([], "none")
    with pytest.raises(dptrain.DptrainError, match="one rank"):
        _run.launcher_command("none", 2, None)
    with pytest.raises(dptrain.DptrainError, match="ranks: must be"):
        _run.launcher_command(None, 0, None)
    # no MPI at all: one rank runs the binary alone, more ranks are refused
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert _run.launcher_command(None, 1, None)[:2] == ([], "none")
    with pytest.raises(dptrain.DptrainError, match="mpirun: not found on PATH"):
        _run.launcher_command(None, 2, None)


def test_error_line():
    err = ("dptrain: warning: something\n[rank 1/2] noise\n"
           "dptrain: data error: d.h5: /train/x: no samples (N = 0)\n--------\nmpirun: x\n")
    assert _run.last_error_line(err) == "dptrain: data error: d.h5: /train/x: no samples (N = 0)"
    assert _run.last_error_line("only this\n") == "only this"


def test_versions_agree():
    """The package's version is the C project's (pyproject.toml and CMakeLists.txt agree)."""
    import subprocess
    out = subprocess.run([dptrain.find_binary(), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "dptrain " + dptrain.__version__
