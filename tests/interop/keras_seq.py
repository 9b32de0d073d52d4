"""Parity of the 1-D / sequence layers with real Keras: Conv1D (valid / same / causal padding,
strides, dilation, a 1-wide kernel, no bias), MaxPooling1D / AveragePooling1D (same padding:
the average excludes the padding), GlobalAverage/MaxPooling1D, GlobalMaxPooling2D (keepdims),
Embedding, Dense on the last axis of (B, T, F), SpatialDropout1D after Conv1D, ZeroPadding1D,
Cropping1D, UpSampling1D, RepeatVector. Predict from
Keras's files for each, then training from the same weights (SGD and Adam) of an Embedding ->
Conv1D -> GlobalMaxPooling1D -> Dense classifier and a Conv1D -> MaxPooling1D -> Flatten -> Dense
regressor."""
import json
import os
import sys

import h5py
import numpy as np
import keras
from keras import layers as L

import parity

h = parity.main_guard()
rng = np.random.default_rng(5)
T, C = 12, 3
x = rng.normal(size=(24, T, C)).astype(np.float32)


def seq(*ls, shape=(T, C)):
    return keras.Sequential([keras.Input(shape)] + list(ls))


keras.utils.set_random_seed(5)
bias = {"bias_initializer": keras.initializers.RandomNormal(stddev=0.3)}
cases = [
    ("conv1d-valid", seq(L.Conv1D(4, 3, activation="relu", **bias))),
    ("conv1d-same-strided", seq(L.Conv1D(5, 4, strides=2, padding="same", **bias))),
    ("conv1d-same-strided3", seq(L.Conv1D(2, 3, strides=3, padding="same", **bias))),
    ("conv1d-causal-dilated", seq(L.Conv1D(4, 3, padding="causal", dilation_rate=2,
                                           activation="tanh", **bias))),
    ("conv1d-causal-strided", seq(L.Conv1D(3, 2, padding="causal", strides=2, **bias))),
    ("conv1d-same-dilated-nobias", seq(L.Conv1D(3, 2, padding="same", dilation_rate=3,
                                                use_bias=False))),
    ("conv1d-valid-dilated", seq(L.Conv1D(3, 3, dilation_rate=4, activation="sigmoid", **bias))),
    ("conv1d-k1", seq(L.Conv1D(6, 1, **bias))),
    ("maxpool1d", seq(L.MaxPooling1D(2))),
    ("maxpool1d-same", seq(L.MaxPool1D(pool_size=3, strides=2, padding="same"))),
    ("avgpool1d-valid", seq(L.AveragePooling1D(pool_size=3, strides=1))),
    ("avgpool1d-same", seq(L.AvgPool1D(pool_size=3, strides=2, padding="same"))),
    ("avgpool1d-same5", seq(L.AveragePooling1D(pool_size=5, strides=5, padding="same"))),
    ("gap1d", seq(L.Conv1D(4, 3, **bias), L.GlobalAveragePooling1D())),
    ("gmp1d-keepdims", seq(L.Conv1D(4, 3, **bias), L.GlobalMaxPooling1D(keepdims=True))),
    ("dense-3d", seq(L.Dense(5, activation="tanh", **bias), L.Flatten(), L.Dense(2))),
    ("dense-3d-out", seq(L.Conv1D(4, 3, padding="causal"), L.Dense(3, activation="relu"))),
    ("conv1d-spatialdropout", seq(L.Conv1D(4, 3, **bias), L.SpatialDropout1D(0.3),
                                  L.GlobalMaxPool1D(), L.Dense(2))),
    ("zeropad-crop-upsample", seq(L.ZeroPadding1D((2, 1)), L.Conv1D(3, 3, **bias),
                                  L.Cropping1D((1, 2)), L.UpSampling1D(3))),
    ("zeropad-int", seq(L.ZeroPadding1D(2), L.Cropping1D(1))),
    ("repeatvector", seq(L.Flatten(), L.Dense(4, **bias), L.RepeatVector(5),
                         L.Conv1D(2, 2, **bias))),
]
for name, m in cases:
    h.check_predict(name, m, x)

x2 = rng.normal(size=(16, 6, 5, 2)).astype(np.float32)
h.check_predict("gmp2d", seq(L.Conv2D(3, 2, **bias), L.GlobalMaxPooling2D(), shape=(6, 5, 2)),
                x2)
h.check_predict("gmp2d-keepdims", seq(L.Conv2D(3, 2, **bias), L.GlobalMaxPool2D(keepdims=True),
                                      shape=(6, 5, 2)), x2)

# Embedding: ids arrive as floats in dptrain's input
V, S = 20, 10
ids = rng.integers(0, V, size=(32, S)).astype(np.float32)
h.check_predict("embedding-gap", seq(L.Embedding(V, 6), L.GlobalAveragePooling1D(), L.Dense(3),
                                     shape=(S,)), ids)
h.check_predict("embedding-flatten", seq(L.Embedding(V, 4), L.Flatten(), L.Dense(2),
                                         shape=(S,)), ids)

# training: the same steps from the same weights
labels = (ids[:, 0] % 3).astype(np.int32)  # learnable from the first token
for opt, tag in ((None, "sgd"),
                 ({"class_name": "Adam", "config": {"learning_rate": 0.01}}, "adam")):
    keras.utils.set_random_seed(7)
    m = seq(L.Embedding(V, 8), L.Conv1D(6, 3, activation="relu", padding="causal"),
            L.GlobalMaxPooling1D(), L.Dense(3, activation="softmax"), shape=(S,))
    h.check_train("emb-conv-gmp-" + tag, m, ids, labels, loss="sparse_categorical_crossentropy",
                  optimizer=opt, batch_size=8, epochs=2)

keras.utils.set_random_seed(10)
m = seq(L.Embedding(V, 8, embeddings_regularizer=keras.regularizers.L2(0.01)),
        L.Conv1D(4, 2, kernel_regularizer=keras.regularizers.L1L2(l1=0.001, l2=0.01),
                 activation="tanh"),
        L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax"), shape=(S,))
h.check_train("emb-conv-regularized-sgd", m, ids, labels,
              loss="sparse_categorical_crossentropy", batch_size=8, epochs=2)

yr = np.tanh(x[:, :, 0].sum(axis=1, keepdims=True) / 3).astype(np.float32)
for opt, tag in ((None, "sgd"),
                 ({"class_name": "Adam", "config": {"learning_rate": 0.01}}, "adam")):
    keras.utils.set_random_seed(8)
    m = seq(L.Conv1D(4, 3, activation="relu", strides=1, dilation_rate=2), L.MaxPooling1D(2),
            L.Flatten(), L.Dense(1))
    h.check_train("conv-maxpool-dense-" + tag, m, x, yr, loss="mse", optimizer=opt, batch_size=8,
                  epochs=2)

keras.utils.set_random_seed(11)
m = seq(L.ZeroPadding1D(1), L.Conv1D(4, 3, activation="tanh"), L.UpSampling1D(2),
        L.Cropping1D((1, 3)), L.GlobalAveragePooling1D(), L.Dense(4), L.RepeatVector(3),
        L.Conv1D(2, 2), L.Flatten(), L.Dense(1))
h.check_train("pad-up-crop-repeat-adam", m, x, yr, loss="mse", batch_size=8, epochs=2,
              optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}})

keras.utils.set_random_seed(9)
m = seq(L.Dense(4, activation="tanh"), L.AveragePooling1D(3, padding="same"),
        L.GlobalAveragePooling1D(), L.Dense(1))
h.check_train("dense3d-avgpool-gap-sgd", m, x, yr, loss="mse", batch_size=8, epochs=2)

# Keras 2 forms: a real tf.keras 2.4.0 file (Functional: Input -> Embedding(5, 3) -> Conv1D(3, 2)
# -> MaxPooling1D(5) -> Flatten -> Dropout -> Dense(2, softmax)); its layer configs as a Keras 2
# Sequential (batch_input_shape on the Embedding, input_length, [k] tuples), its legacy weights,
# against numpy computing the same network from the file's weights.
fx = os.path.join(os.environ.get("DPT_FIXTURES_DIR", ""), "k2.4.0_dl4j_adam_state",
                  "issue_9349.hdf5")
if os.path.exists(fx):
    with h5py.File(fx, "r") as f:
        mc = json.loads(f.attrs["model_config"])
        g = f["model_weights"]
        E = np.asarray(g["embedding/embedding/embeddings:0"])
        K, b = np.asarray(g["conv1d/conv1d/kernel:0"]), np.asarray(g["conv1d/conv1d/bias:0"])
        D, db = np.asarray(g["dense/dense/kernel:0"]), np.asarray(g["dense/dense/bias:0"])
    layers = [{"class_name": l["class_name"], "config": l["config"]}
              for l in mc["config"]["layers"] if l["class_name"] != "InputLayer"]
    k2 = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers},
          "keras_version": "2.4.0", "backend": "tensorflow"}
    ids2 = rng.integers(0, 5, size=(20, 6)).astype(np.int32)
    e = E[ids2]                                                   # (N, 6, 3)
    c = np.maximum(sum(e[:, k:k + 5] @ K[k] for k in range(2)) + b, 0)  # valid k2: (N, 5, 3)
    z = c.max(axis=1) @ D + db                                    # pool 5 -> (N, 1, 3) -> flat
    ref = np.exp(z - z.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    data = h.write_data("k2fixture", ids2, np.zeros((20, 1), np.int32), group="test")
    cfgp = h.path("k2fixture.json")
    with open(cfgp, "w") as f:
        json.dump({"model": k2, "compile": {"optimizer": "adam",
                                            "loss": "sparse_categorical_crossentropy"},
                   "data": {"path": data}}, f)
    got = h.predict(fx, cfgp, data, "test", "k2fixture")
    h.record("keras 2.4.0 Embedding/Conv1D/MaxPooling1D file: predict", float(
        np.max(np.abs(got - ref))), 1e-5)
else:
    print("skip keras 2.4.0 fixture (DPT_FIXTURES_DIR not set)")
sys.exit(h.report())
