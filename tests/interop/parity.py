"""Shared harness for Keras <-> dptrain parity checks through the dptrain CLI.

Import it from a tests/interop/keras_*.py script (each is one ctest, run by tests/interop/run.sh
as `python keras_NAME.py PREDICT_DUMP WORKDIR` with DPTRAIN_BIN set):

    import parity
    h = parity.Harness(sys.argv[2])
    h.check_predict("lstm", model, x)                      # Keras weights -> dptrain predict
    h.check_train("lstm", model, x, y, loss="mse", optimizer={"class_name": "SGD", ...})
    sys.exit(h.report())

check_predict: Keras writes its weights (Keras 3 .weights.h5 and the legacy full-model .h5);
dptrain predicts from each with the model's to_json(); both must equal model.predict to tol.
check_train: from the same initial weights, Keras fit and dptrain fit run the same steps (no
shuffle, one rank, no validation); the trained weights must agree to tol, and Keras must load
dptrain's final.h5 (load_weights) and predict what `dptrain predict final.h5` predicts.
Dropout layers must have rate 0 in training checks (the masks are not Keras's).
"""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import keras

DPTRAIN = os.environ.get("DPTRAIN_BIN", "dptrain")


def _ser(obj):
    if obj is None or isinstance(obj, (str, dict, list)):
        return obj
    return keras.saving.serialize_keras_object(obj)


class Harness:
    def __init__(self, workdir):
        self.work = workdir
        self.failures = []
        self.lines = []

    # ---- plumbing ----------------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.work, name)

    def write_data(self, name, x, y, group="train"):
        p = self.path(name + ".h5")
        with h5py.File(p, "a") as f:
            if group in f:
                del f[group]
            g = f.create_group(group)
            g["x"] = np.asarray(x)
            g["y"] = np.asarray(y)
        return p

    def write_weights(self, data, group, w):
        with h5py.File(data, "a") as f:
            f[group + "/w"] = np.asarray(w, np.float32)

    def write_config(self, name, model, data, loss="mse", optimizer="sgd", metrics=None,
                     batch_size=8, epochs=1, shuffle=False, seed=1, extra_fit=None,
                     extra_compile=None, extra_data=None):
        cfg = {
            "model": json.loads(model.to_json()),
            "compile": {"optimizer": _ser(optimizer), "loss": _ser(loss),
                        "metrics": [_ser(m) for m in (metrics or [])]},
            "fit": {"epochs": epochs, "batch_size": batch_size, "shuffle": shuffle,
                    "seed": seed, "validation_split": 0.0},
            "data": {"path": data},
        }
        cfg["fit"].update(extra_fit or {})
        cfg["compile"].update(extra_compile or {})
        cfg["data"].update(extra_data or {})
        p = self.path(name + ".json")
        with open(p, "w") as f:
            json.dump(cfg, f, indent=1)
        return p

    def run(self, *args, expect=0):
        r = subprocess.run([DPTRAIN, *args], capture_output=True, text=True)
        if expect is not None and r.returncode != expect:
            raise RuntimeError("dptrain %s: exit %d (expected %d)\n%s%s" %
                               (" ".join(args), r.returncode, expect, r.stdout, r.stderr))
        return r

    def predict(self, weights, cfg, data, group, name):
        out = self.path(name + ".pred.h5")
        if os.path.exists(out):
            os.remove(out)
        self.run("predict", weights, "--config", cfg, "--data", data + ":" + group, "--out", out)
        with h5py.File(out, "r") as f:
            return np.asarray(f["pred"])

    def record(self, what, diff, tol):
        ok = bool(np.isfinite(diff) and diff <= tol)
        line = "%-4s %-50s max |diff| %.3g (tol %.0e)" % ("ok" if ok else "FAIL", what, diff, tol)
        print(line, flush=True)
        self.lines.append(line)
        if not ok:
            self.failures.append(what)
        return ok

    # ---- checks ------------------------------------------------------------------------------
    def check_predict(self, name, model, x, tol=1e-5, loss="mse"):
        """Keras's weights (both file formats) predict in dptrain as in Keras."""
        ref = np.asarray(model.predict(x, verbose=0))
        y = np.zeros((x.shape[0],) + tuple(ref.shape[1:]), np.float32)
        data = self.write_data(name, x, y.reshape(len(x), -1), group="test")
        cfg = self.write_config(name, model, data, loss=loss)
        w3 = self.path(name + ".weights.h5")
        model.save_weights(w3)
        got = self.predict(w3, cfg, data, "test", name + "-k3")
        ok = self.record(name + ": predict from .weights.h5",
                         float(np.max(np.abs(got.reshape(ref.shape) - ref))), tol)
        w2 = self.path(name + "-legacy.h5")
        model.save(w2)
        got = self.predict(w2, cfg, data, "test", name + "-k2")
        ok &= self.record(name + ": predict from legacy .h5",
                          float(np.max(np.abs(got.reshape(ref.shape) - ref))), tol)
        return ok

    def check_train(self, name, model, x, y, loss="mse", optimizer=None, batch_size=8,
                    epochs=1, tol=1e-5, keras_optimizer=None, metrics=None, fit_kwargs=None,
                    extra_fit=None, extra_compile=None, sample_weight=None):
        """Same initial weights, same steps: dptrain's trained weights equal Keras's.
        optimizer: dptrain config form (string or dict); keras_optimizer: the Keras object
        (default: deserialized from optimizer)."""
        optimizer = optimizer or {"class_name": "SGD", "config": {"learning_rate": 0.05}}
        w0 = self.path(name + "-init.weights.h5")
        model.save_weights(w0)
        data = self.write_data(name + "-train", x, y)
        if sample_weight is not None:  # the split's `w`, Keras's fit(sample_weight=...)
            self.write_weights(data, "train", sample_weight)
            fit_kwargs = dict(fit_kwargs or {}, sample_weight=sample_weight)
        cfg = self.write_config(name + "-train", model, data, loss=loss, optimizer=optimizer,
                                batch_size=batch_size, epochs=epochs, metrics=metrics,
                                extra_fit=extra_fit, extra_compile=extra_compile)
        run = self.path(name + "-run")
        self.run("fit", cfg, "--init-weights", w0, "--run-dir", run, "--verbose", "0")
        kopt = keras_optimizer or keras.optimizers.deserialize(optimizer if isinstance(
            optimizer, dict) else {"class_name": optimizer, "config": {}})
        model.compile(optimizer=kopt, loss=loss if isinstance(loss, str) else
                      keras.losses.deserialize(loss), metrics=metrics or [])
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0,
                  **(fit_kwargs or {}))
        theirs = model.get_weights()
        m2 = keras.models.clone_model(model)
        m2.load_weights(os.path.join(run, "final.h5"))
        ours = m2.get_weights()
        diff = max(float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))
                   for a, b in zip(theirs, ours)) if theirs else 0.0
        ok = self.record(name + ": trained weights vs Keras (rel)", diff, tol)
        ref = np.asarray(m2.predict(x, verbose=0))
        got = self.predict(os.path.join(run, "final.h5"), cfg, data, "train", name + "-final")
        ok &= self.record(name + ": Keras loads final.h5, predicts as dptrain",
                          float(np.max(np.abs(got.reshape(ref.shape) - ref))), tol)
        return ok

    def check_history(self, name, model, x, y, loss, metrics, xv=None, yv=None, optimizer=None,
                      batch_size=8, epochs=2, tol=2e-5, w=None, wv=None):
        """Same initial weights, same steps: every column of dptrain's history.csv that Keras's
        model.fit history also has (loss, each metric by its Keras name, and their val_ forms
        when xv, yv are given) equals Keras's, epoch by epoch (relative to max(1, |value|); the
        CSV holds 6 decimals). loss and metrics: Keras objects or names (serialized for the
        config)."""
        optimizer = optimizer or {"class_name": "SGD", "config": {"learning_rate": 0.05}}
        w0 = self.path(name + "-init.weights.h5")
        model.save_weights(w0)
        data = self.write_data(name + "-hist", x, y)
        extra = None
        if xv is not None:
            self.write_data(name + "-hist", xv, yv, group="val")
            extra = {"validation": "val"}
        if w is not None:
            self.write_weights(data, "train", w)
        if wv is not None:
            self.write_weights(data, "val", wv)
        cfg = self.write_config(name + "-hist", model, data, loss=loss, optimizer=optimizer,
                                batch_size=batch_size, epochs=epochs, metrics=metrics,
                                extra_data=extra)
        run = self.path(name + "-hrun")
        self.run("fit", cfg, "--init-weights", w0, "--run-dir", run, "--verbose", "0")
        with open(os.path.join(run, "history.csv")) as f:
            rows = [line.rstrip("\n").split(",") for line in f]
        cols = {k: [float(r[i]) if r[i] else float("nan") for r in rows[1:]]
                for i, k in enumerate(rows[0])}
        model.compile(optimizer=keras.optimizers.deserialize(optimizer), loss=loss,
                      metrics=list(metrics))
        val = None if xv is None else (xv, yv) if wv is None else (xv, yv, wv)
        hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0,
                         sample_weight=w, validation_data=val).history
        ok = True
        for key, vals in hist.items():
            if key not in cols:
                ok &= self.record("%s: history column %s" % (name, key), float("nan"), tol)
                continue
            diff = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(vals, cols[key]))
            ok &= self.record("%s: history %s vs Keras" % (name, key), diff, tol)
        return ok

    def check_load_model(self, name, x, tol=1e-5):
        """Keras's load_model opens the final.h5 of check_train's run NAME (the model config is in
        it) and predicts what dptrain predicts from it."""
        run = self.path(name + "-run")
        final = os.path.join(run, "final.h5")
        m = keras.models.load_model(final, compile=False)
        ref = np.asarray(m.predict(x, verbose=0))
        cfg = self.path(name + "-train.json")
        data = self.path(name + "-train.h5")
        got = self.predict(final, cfg, data, "train", name + "-loadmodel")
        return self.record(name + ": keras.models.load_model(final.h5) predicts as dptrain",
                           float(np.max(np.abs(got.reshape(ref.shape) - ref))), tol)

    def report(self):
        print("%d checks, %d failed%s" % (len(self.lines), len(self.failures),
              (": " + ", ".join(self.failures)) if self.failures else ""))
        return 1 if self.failures else 0


def main_guard():
    """argv: PREDICT_DUMP WORKDIR (as tests/interop/run.sh passes them)."""
    if len(sys.argv) < 3:
        print("usage: %s PREDICT_DUMP WORKDIR" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    return Harness(sys.argv[2])
