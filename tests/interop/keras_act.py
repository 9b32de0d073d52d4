"""Parity of the activations and the activation / normalisation layers with real Keras: predict
from Keras's files for a Dense with each activation string, Conv2D and Activation with the
z-keeping ones, each new layer (ReLU, LeakyReLU, PReLU, ELU, Softmax, LayerNormalization,
Rescaling, Normalization with config values and adapted); then SGD and Adam training from the same
weights for nets with gelu / elu / selu / swish / leaky_relu, LayerNormalization and PReLU.
(Keras 2's hard_sigmoid, chosen by a keras_version 2.x config, is checked in test_act.c: no
Keras 2 here.)"""
import sys

import numpy as np
import keras

import parity

h = parity.main_guard()
rng = np.random.default_rng(5)
x = rng.normal(size=(40, 6)).astype(np.float32) * 2.0
L = keras.layers

# (the aliases silu and hard_swish map to the same kinds: test_act.c)
ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "selu", "softplus",
        "softsign", "swish", "leaky_relu", "relu6", "hard_sigmoid", "hard_silu", "exponential",
        "mish", "log_softmax"]
for i, a in enumerate(ACTS):
    keras.utils.set_random_seed(10 + i)
    m = keras.Sequential([keras.Input((6,)),
                          L.Dense(5, activation=a, bias_initializer="glorot_uniform")])
    # exponential grows fast: keep its outputs near 1 so an absolute tolerance is meaningful
    h.check_predict("dense-" + a, m, x * 0.25 if a == "exponential" else x)


def with_random_weights(m, scale=0.5):
    """Non-default values for every weight (gamma, beta, alpha, ...) so each one matters."""
    for layer in m.layers:
        ws = layer.get_weights()
        if ws and layer.__class__.__name__ != "Normalization":
            layer.set_weights([w + scale * rng.normal(size=w.shape).astype(w.dtype)
                               for w in ws])
    return m


keras.utils.set_random_seed(40)
img = rng.normal(size=(12, 5, 5, 2)).astype(np.float32)
for a in ["gelu", "hard_silu"]:
    m = keras.Sequential([keras.Input((5, 5, 2)),
                          L.Conv2D(3, 3, padding="same", activation=a,
                                   bias_initializer="glorot_uniform"),
                          L.Flatten(), L.Activation(a)])
    h.check_predict("conv2d-" + a, m, img)

seq = rng.normal(size=(16, 3, 4)).astype(np.float32)
LAYERS = [
    ("relu-args", [L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2)], x),
    ("relu6-layer", [L.ReLU(max_value=6.0)], x * 4),
    ("leakyrelu", [L.LeakyReLU()], x),
    ("leakyrelu-0.05", [L.LeakyReLU(negative_slope=0.05)], x),
    ("prelu", [L.Dense(5), L.PReLU()], x),
    ("prelu-shared", [L.PReLU(shared_axes=[1])], seq),
    ("elu", [L.ELU(alpha=0.7)], x),
    ("softmax", [L.Softmax()], x),
    ("softmax-seq", [L.Softmax(axis=-1)], seq),
    ("layernorm", [L.Dense(5), L.LayerNormalization()], x),
    ("layernorm-seq", [L.LayerNormalization(epsilon=1e-2, center=False)], seq),
    ("layernorm-noscale", [L.LayerNormalization(scale=False)], seq),
    ("rescaling", [L.Rescaling(1 / 255.0, offset=-0.5)], x * 100),
    ("normalization-config", [L.Normalization(mean=[0.5, -1, 0, 2, 0.1, 0],
                                              variance=[4, 0.5, 1, 2, 1, 9])], x),
    ("activation-mish-gelu", [L.Activation("mish"), L.Dense(4), L.Activation("gelu")], x),
]
for i, (name, layers, data) in enumerate(LAYERS):
    keras.utils.set_random_seed(50 + i)
    m = with_random_weights(keras.Sequential([keras.Input(data.shape[1:])] + layers))
    h.check_predict(name, m, data)

# an adapted Normalization: its mean / variance / count (int32) come from Keras's weight files
norm = L.Normalization()
norm.adapt(x)
keras.utils.set_random_seed(70)
m = keras.Sequential([keras.Input((6,)), norm, L.Dense(3, activation="selu")])
h.check_predict("normalization-adapted", m, x)

# ---- training parity ---------------------------------------------------------------------------
y = rng.normal(size=(40, 2)).astype(np.float32)
SGD = {"class_name": "SGD", "config": {"learning_rate": 0.05}}
ADAM = {"class_name": "Adam", "config": {"learning_rate": 0.01}}
NETS = [
    ("train-gelu-ln", lambda: [L.Dense(8, activation="gelu"), L.LayerNormalization(),
                               L.Dense(2)], SGD),
    ("train-elu-prelu", lambda: [L.Dense(8, activation="elu"), L.PReLU(),
                                 L.Dense(2, activation="tanh")], ADAM),
    ("train-selu", lambda: [L.Dense(8, activation="selu", kernel_initializer="lecun_normal"),
                            L.AlphaDropout(0.0), L.Dense(2)], SGD),
    ("train-swish-leaky", lambda: [L.Dense(8, activation="swish"), L.LeakyReLU(),
                                   L.LayerNormalization(), L.Dense(2, activation="mish")], ADAM),
    ("train-leaky-relu-fn", lambda: [L.Dense(8, activation="leaky_relu"), L.ELU(),
                                     L.Dense(6, activation="softplus"), L.Dense(2)], SGD),
    ("train-prelu-ln-adam", lambda: [L.Dense(8), L.PReLU(), L.LayerNormalization(),
                                     L.Dense(2, activation="hard_silu")], ADAM),
    ("train-rescale-norm", lambda: [L.Rescaling(0.5, offset=0.1), norm_copy(),
                                    L.Dense(8, activation="gelu"), L.Dense(2)], ADAM),
]


def norm_copy():
    n = L.Normalization()
    n.adapt(x)
    return n


for i, (name, make, opt) in enumerate(NETS):
    keras.utils.set_random_seed(80 + i)
    m = with_random_weights(keras.Sequential([keras.Input((6,))] + make()), scale=0.1)
    h.check_train(name, m, x, y, loss="mse", optimizer=opt, batch_size=8, epochs=2, tol=1e-5)

# softmax output with categorical cross-entropy through a Softmax LAYER (not folded, as in Keras)
keras.utils.set_random_seed(99)
yc = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=40)]
m = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="gelu"), L.Dense(3),
                      L.Softmax()])
h.check_train("train-softmax-layer-cce", m, x, yc, loss="categorical_crossentropy",
              optimizer=SGD, batch_size=8, epochs=2, tol=1e-5)
sys.exit(h.report())
