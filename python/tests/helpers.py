import os
import stat

import numpy as np
import keras


def tutorial_data(n=1000, features=20, seed=0):
    """Like `dptrain data synth`: uniform [0, 1) features, random 0/1 labels."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, features)).astype(np.float32)
    y = rng.integers(0, 2, size=n).astype(np.int32)
    return x, y


def tutorial_model(features=20, seed=1):
    """The Keras dropout tutorial's network."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def spy_launcher(tmp_path):
    """A launcher that only records it was called (the ranks must not start)."""
    mark = tmp_path / "launcher-called"
    p = tmp_path / "fake-mpirun"
    p.write_text("#!/bin/sh\ntouch '%s'\nexit 0\n" % mark)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return [str(p)], mark
