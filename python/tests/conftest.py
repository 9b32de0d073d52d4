"""pytest setup: real Keras (skipped when not importable), the dptrain binary from the build
(DPTRAIN_BINARY, else DPTRAIN_BIN as tests/interop/run.sh sets it, else DPT_BUILD_DIR/dptrain),
and the package from this source tree when it is not installed."""
import os
import sys

import pytest

if not os.environ.get("KERAS_BACKEND"):
    try:
        import jax  # noqa: F401
        os.environ["KERAS_BACKEND"] = "jax"
    except ImportError:
        pass

_src = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
if _src not in sys.path:
    sys.path.insert(0, _src)

if not os.environ.get("DPTRAIN_BINARY"):
    for cand in (os.environ.get("DPTRAIN_BIN"),
                 os.path.join(os.environ.get("DPT_BUILD_DIR", ""), "dptrain")):
        if cand and os.path.isfile(cand):
            os.environ["DPTRAIN_BINARY"] = os.path.abspath(cand)
            break
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMPI_MCA_pml", "ob1")

keras = pytest.importorskip("keras")
