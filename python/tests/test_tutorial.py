"""The Keras dropout tutorial with two lines changed trains through dptrain.fit on 2 ranks."""
import os

import h5py
import numpy as np

import dptrain
from helpers import tutorial_data, tutorial_model


def test_tutorial_two_lines(tmp_path):
    X_train, y_train = tutorial_data(1000)
    model = tutorial_model()
    history = dptrain.fit(model, X_train, y_train, epochs=20, batch_size=32,
                          validation_split=0.2, ranks=2, run_dir=str(tmp_path / "run"),
                          verbose=2)
    assert history.epoch == list(range(20))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for k, v in history.history.items():
        assert len(v) == 20 and all(np.isfinite(v)), k
    assert history.params["epochs"] == 20 and history.params["steps"] == 25
    # the trained weights are in the model: equal to final.h5's
    ref = tutorial_model()
    ref.load_weights(os.path.join(history.run_dir, "final.h5"))
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and model.predict equals dptrain predict on the same rows
    rows = X_train[:200]
    ours = dptrain.predict(model, rows)
    theirs = model.predict(rows, verbose=0)
    assert ours.shape == theirs.shape
    diff = float(np.max(np.abs(ours - theirs)))
    print("model.predict vs dptrain predict: max |diff| %.3g" % diff)
    assert diff <= 1e-5
    # the data went where the README says, in dptrain's layout
    with h5py.File(os.path.join(history.run_dir, "data.h5"), "r") as f:
        assert f["train/x"].shape == (1000, 20) and f["train/y"].shape == (1000,)


def test_history_keys_follow_metric_names(tmp_path):
    import keras
    x, y = tutorial_data(200)
    model = tutorial_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy()])
    xv, yv = tutorial_data(64, seed=9)
    h = dptrain.fit(model, x, y, epochs=2, validation_data=(xv, yv), ranks=1,
                    run_dir=str(tmp_path / "r"), verbose=0)
    assert set(h.history) == {"loss", "binary_accuracy", "val_loss", "val_binary_accuracy"}
    kh = tutorial_model()
    kh.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[keras.metrics.BinaryAccuracy()])
    kh = kh.fit(x, y, epochs=1, validation_data=(xv, yv), verbose=0)
    assert set(kh.history) == set(h.history)  # the keys Keras itself uses


def test_evaluate_and_mc_predict(tmp_path):
    x, y = tutorial_data(300)
    model = tutorial_model()
    loss, acc = dptrain.evaluate(model, x, y)
    kl, ka = model.evaluate(x, y, verbose=0)
    assert abs(loss - kl) <= 1e-4 and abs(acc - ka) <= 1e-4
    mean, std = dptrain.predict(model, x[:20], mc_samples=16, seed=3, ranks=2)
    assert mean.shape == (20, 1) and std.shape == (20, 1) and np.all(std > 0)
    mean1, std1 = dptrain.predict(model, x[:20], mc_samples=16, seed=3, ranks=1)
    np.testing.assert_allclose(mean, mean1, atol=1e-6)  # the same whatever the rank count


def test_progress_lines_in_a_log_and_a_bar_in_a_notebook(tmp_path, capsys, monkeypatch):
    import sys
    import types
    x, y = tutorial_data(3000)
    model = tutorial_model()
    dptrain.fit(model, x, y, epochs=2, ranks=2, run_dir=str(tmp_path / "log"))
    out = capsys.readouterr().out
    assert "Epoch 2/2 - " in out and "\r" not in out  # a log: plain lines
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    dptrain.fit(model, x, y, epochs=2, ranks=2, run_dir=str(tmp_path / "nb"))
    out = capsys.readouterr().out
    assert "\r" in out and "Epoch 2/2" in out  # a notebook: the live bar, redrawn with \r


def test_examples_keras_tutorial_script(tmp_path):
    """examples/keras_tutorial.py (README's "From Python") runs as it is."""
    import subprocess
    import sys
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "keras_tutorial.py")],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Epoch 20/20 - " in r.stdout
    assert "history keys: ['accuracy', 'loss', 'val_accuracy', 'val_loss'] epochs: 20" in r.stdout
    src = open(os.path.join(root, "examples", "keras_tutorial.py")).read()
    assert src.count("# changed line") == 2
