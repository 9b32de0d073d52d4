"""Parity of the layers dptrain had before the harness: Dense/Dropout/Activation stacks, predict
from Keras's files, and 2 epochs of SGD and Adam training from the same weights."""
import sys

import numpy as np
import keras

import parity

h = parity.main_guard()
rng = np.random.default_rng(3)
x = rng.normal(size=(48, 12)).astype(np.float32)
y = (rng.uniform(size=(48, 1)) > 0.5).astype(np.float32)
keras.utils.set_random_seed(3)
m = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="tanh"),
                      keras.layers.Dropout(0.0), keras.layers.Dense(1, activation="sigmoid")])
h.check_predict("dense", m, x)
h.check_train("dense-sgd", m, x, y, loss="binary_crossentropy", batch_size=8, epochs=2)
keras.utils.set_random_seed(4)
m = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                      keras.layers.Dense(1, activation="sigmoid")])
h.check_train("dense-adam", m, x, y, loss="binary_crossentropy", batch_size=8, epochs=2,
              optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}})
h.check_load_model("dense-adam", x)
h.check_load_model("dense-sgd", x)
sys.exit(h.report())
