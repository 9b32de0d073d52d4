"""What dptrain refuses raises DptrainError with dptrain's message before any rank starts."""
import os

import numpy as np
import pytest
import keras

import dptrain
from helpers import spy_launcher, tutorial_data, tutorial_model


@keras.saving.register_keras_serializable(package="dpt_test")
class Frobnicate(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


@keras.saving.register_keras_serializable(package="dpt_test")
class FrobOptimizer(keras.optimizers.SGD):
    pass


def test_unsupported_layer(tmp_path):
    x, y = tutorial_data(100)
    model = keras.Sequential([keras.Input((20,)), Frobnicate(), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    launcher, called = spy_launcher(tmp_path)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(model, x, y, ranks=2, launcher=launcher, run_dir=str(tmp_path / "r"))
    assert e.value.exit_code == 3
    assert str(e.value).startswith("dptrain: config error:") and "Frobnicate" in str(e.value)
    assert "\n" not in str(e.value)
    assert not called.exists()


def test_dataset_shape_mismatch(tmp_path):
    x, y = tutorial_data(100, features=7)
    model = tutorial_model(features=20)
    launcher, called = spy_launcher(tmp_path)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(model, x, y, ranks=2, launcher=launcher, run_dir=str(tmp_path / "r"))
    assert e.value.exit_code == 4
    assert "sample shape (7) does not match the model input (20)" in str(e.value)
    assert not called.exists()


def test_x_y_lengths(tmp_path):
    x, y = tutorial_data(100)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(tutorial_model(), x, y[:90], ranks=2, run_dir=str(tmp_path / "r"))
    assert e.value.exit_code == 4 and "100 samples but y has 90" in str(e.value)


def test_missing_launcher(tmp_path, monkeypatch):
    x, y = tutorial_data(100)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(tutorial_model(), x, y, ranks=2, launcher="/nonexistent/mpirun",
                    run_dir=str(tmp_path / "r"))
    assert "/nonexistent/mpirun: not found" in str(e.value) and e.value.exit_code == 2
    # no MPI on PATH at all: the default launcher is missing too
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(tutorial_model(), x, y, ranks=2, run_dir=str(tmp_path / "r2"))
    assert "mpirun: not found on PATH" in str(e.value)
    assert not os.path.exists(tmp_path / "r2" / "history.csv")


def test_unsupported_option_and_uncompiled(tmp_path):
    x, y = tutorial_data(100)
    model = tutorial_model()
    model.compile(optimizer=FrobOptimizer(0.01), loss="binary_crossentropy")
    launcher, called = spy_launcher(tmp_path)
    with pytest.raises(dptrain.DptrainError) as e:
        dptrain.fit(model, x, y, launcher=launcher, run_dir=str(tmp_path / "r"))
    assert e.value.exit_code == 3 and "FrobOptimizer" in str(e.value)
    assert str(e.value).startswith("dptrain: config error:")
    with pytest.raises(dptrain.DptrainError, match="class_weight"):
        dptrain.fit(tutorial_model(), x, y, class_weight={0: 1.0, 1: 2.0})
    raw = keras.Sequential([keras.Input((20,)), keras.layers.Dense(1)])
    with pytest.raises(dptrain.DptrainError, match="not compiled"):
        dptrain.fit(raw, x, y)
    assert not called.exists()


def test_callbacks(tmp_path):
    x, y = tutorial_data(400)
    model = tutorial_model()
    h = dptrain.fit(model, x, y, epochs=30, validation_split=0.25, ranks=1, verbose=0,
                    run_dir=str(tmp_path / "es"),
                    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
                               keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1)])
    assert 1 <= len(h.epoch) < 30  # random labels: val_loss stops improving early
    import json
    with open(os.path.join(str(tmp_path / "es"), "config.json")) as f:
        cbs = json.load(f)["fit"]["callbacks"]
    assert [c["class_name"] for c in cbs] == ["EarlyStopping", "ReduceLROnPlateau"]
    with pytest.raises(dptrain.DptrainError, match="LambdaCallback is not supported"):
        dptrain.fit(model, x, y, callbacks=[keras.callbacks.LambdaCallback()],
                    run_dir=str(tmp_path / "never"))
    assert not os.path.exists(tmp_path / "never")  # refused before anything is written
