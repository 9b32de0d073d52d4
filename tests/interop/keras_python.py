"""The Python package's tests (python/tests, pytest, real Keras) as one interop ctest: the
package from this source tree (not installed) with the already-built binary (DPTRAIN_BIN, as
tests/interop/run.sh sets it, passed on as DPTRAIN_BINARY). Exit 77 (skipped) when pytest is
missing; run.sh already skips when Keras is. The slow `pip install` check is
tests/interop/python_install.sh (its own ctest)."""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
try:
    import pytest  # noqa: F401
except ImportError:
    print("skipped: pytest is not importable by %s (pip install pytest)" % sys.executable)
    sys.exit(77)
env = dict(os.environ)
if env.get("DPTRAIN_BIN"):
    env["DPTRAIN_BINARY"] = env["DPTRAIN_BIN"]
env["PYTHONPATH"] = os.path.join(root, "python") + os.pathsep + env.get("PYTHONPATH", "")
work = sys.argv[2] if len(sys.argv) > 2 else None
args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
        "-W", "ignore::DeprecationWarning", os.path.join(root, "python", "tests")]
if work:
    args += ["--basetemp", os.path.join(work, "pytest")]
rc = subprocess.call(args, env=env, cwd=work or root)
sys.exit(77 if rc == 5 else rc)  # 5: no tests collected
