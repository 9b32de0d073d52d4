"""The Keras long-tail corpus (issue 14): Sequential models as Keras users write them (keras.io
examples, the TensorFlow tutorials, common course notebooks), each built in real Keras, given to
dptrain as its to_json() with Keras's weights. A model TRAINS when dptrain accepts it and predicts
what Keras predicts (to 1e-5, both weight files) and a 1-epoch fit from Keras's weights ends with
Keras's weights (to 1e-4, SGD); it is REFUSED when dptrain says no in one line (the line is
printed); WRONG otherwise.
    KERAS_BACKEND=jax DPTRAIN_BIN=build/dptrain python bench/keras_corpus.py WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
import keras
from keras import layers as L

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "interop"))
import parity  # noqa: E402


def seq(inp, *ls):
    return keras.Sequential([keras.Input(inp), *ls])


def models():
    c = []
    c += [("tutorial-dropout-mlp", seq((20,), L.Dense(64, "relu"), L.Dropout(.5), L.Dense(64, "relu"), L.Dropout(.5), L.Dense(1, "sigmoid")), "binary_crossentropy", (20,), 1)]
    c += [("mnist-mlp", seq((28, 28), L.Flatten(), L.Dense(128, "relu"), L.Dropout(.2), L.Dense(10, "softmax")), "sparse_categorical_crossentropy", (28, 28), 10)]
    c += [("tf-quickstart-logits", seq((28, 28), L.Flatten(), L.Dense(128, "relu"), L.Dropout(.2), L.Dense(10)), keras.losses.SparseCategoricalCrossentropy(from_logits=True), (28, 28), 10)]
    c += [("mnist-convnet", seq((28, 28, 1), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(.5), L.Dense(10, "softmax")), "sparse_categorical_crossentropy", (28, 28, 1), 10)]
    c += [("cnn-batchnorm", seq((16, 16, 3), L.Conv2D(16, 3, padding="same", use_bias=False), L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.GlobalAveragePooling2D(), L.Dense(5, "softmax")), "sparse_categorical_crossentropy", (16, 16, 3), 5)]
    c += [("vgg-like", seq((16, 16, 3), L.Conv2D(16, 3, padding="same", activation="relu"), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(), L.Dropout(.25), L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(), L.Dropout(.25), L.Flatten(), L.Dense(64, "relu"), L.Dropout(.5), L.Dense(10, "softmax")), "categorical_crossentropy", (16, 16, 3), 10)]
    c += [("rescaling-cnn", seq((16, 16, 3), L.Rescaling(1 / 255.), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dense(4)), keras.losses.SparseCategoricalCrossentropy(from_logits=True), (16, 16, 3), 4)]
    c += [("separable-cnn", seq((16, 16, 3), L.SeparableConv2D(8, 3, activation="relu"), L.DepthwiseConv2D(3), L.GlobalMaxPooling2D(), L.Dense(3, "softmax")), "sparse_categorical_crossentropy", (16, 16, 3), 3)]
    c += [("pad-crop-upsample", seq((8, 8, 2), L.ZeroPadding2D(1), L.Conv2D(4, 3), L.UpSampling2D(2), L.Cropping2D(2), L.Flatten(), L.Dense(1)), "mse", (8, 8, 2), 1)]
    c += [("conv-autoencoder-transpose", seq((8, 8, 1), L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(), L.Conv2DTranspose(4, 3, strides=2, padding="same"), L.Conv2D(1, 3, padding="same", activation="sigmoid")), "mse", (8, 8, 1), None)]
    c += [("dense-autoencoder", seq((64,), L.Dense(16, "relu"), L.Dense(64, "sigmoid")), "binary_crossentropy", (64,), 64)]
    c += [("imdb-embedding-gap", seq((40,), L.Embedding(100, 8), L.GlobalAveragePooling1D(), L.Dense(16, "relu"), L.Dense(1, "sigmoid")), "binary_crossentropy", "ids40", 1)]
    c += [("imdb-lstm", seq((40,), L.Embedding(100, 8), L.LSTM(16), L.Dense(1, "sigmoid")), "binary_crossentropy", "ids40", 1)]
    c += [("imdb-bilstm", seq((40,), L.Embedding(100, 8), L.Bidirectional(L.LSTM(8, return_sequences=True)), L.Bidirectional(L.LSTM(8)), L.Dense(1, "sigmoid")), "binary_crossentropy", "ids40", 1)]
    c += [("imdb-conv1d", seq((40,), L.Embedding(100, 8), L.Dropout(.2), L.Conv1D(16, 3, activation="relu"), L.GlobalMaxPooling1D(), L.Dense(1, "sigmoid")), "binary_crossentropy", "ids40", 1)]
    c += [("embedding-gru", seq((40,), L.Embedding(100, 8), L.GRU(12, dropout=.2, recurrent_dropout=.2), L.Dense(1, "sigmoid")), "binary_crossentropy", "ids40", 1)]
    c += [("embedding-spatialdropout-lstm", seq((40,), L.Embedding(100, 8), L.SpatialDropout1D(.2), L.LSTM(8, dropout=.2, recurrent_dropout=.2), L.Dense(2, "softmax")), "sparse_categorical_crossentropy", "ids40", 2)]
    c += [("timeseries-lstm", seq((12, 3), L.LSTM(16), L.Dense(1)), "mse", (12, 3), 1)]
    c += [("timeseries-stacked-gru", seq((12, 3), L.GRU(16, return_sequences=True), L.GRU(8), L.Dense(1)), "mae", (12, 3), 1)]
    c += [("simple-rnn", seq((12, 3), L.SimpleRNN(16), L.Dense(1)), "mse", (12, 3), 1)]
    c += [("timeseries-conv1d-fcn", seq((24, 1), L.Conv1D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.Conv1D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.GlobalAveragePooling1D(), L.Dense(2, "softmax")), "sparse_categorical_crossentropy", (24, 1), 2)]
    c += [("conv1d-pool", seq((24, 2), L.Conv1D(8, 5, activation="relu"), L.MaxPooling1D(2), L.Conv1D(8, 3, dilation_rate=2, padding="causal"), L.AveragePooling1D(2), L.Flatten(), L.Dense(1)), "huber", (24, 2), 1)]
    c += [("regression-normalization", None, "mse", (9,), 1)]  # built below (adapt)
    c += [("regression-l2-dropout", seq((9,), L.Dense(32, "elu", kernel_regularizer=keras.regularizers.l2(1e-3)), L.Dropout(.3), L.Dense(1)), "mse", (9,), 1)]
    c += [("maxnorm-dropout", seq((20,), L.Dropout(.2), L.Dense(32, "relu", kernel_constraint=keras.constraints.MaxNorm(3)), L.Dropout(.5), L.Dense(1, "sigmoid")), "binary_crossentropy", (20,), 1)]
    c += [("layernorm-gelu-mlp", seq((20,), L.Dense(32), L.LayerNormalization(), L.Activation("gelu"), L.Dense(3, "softmax")), "categorical_crossentropy", (20,), 3)]
    c += [("leaky-prelu", seq((20,), L.Dense(16), L.LeakyReLU(), L.Dense(16), L.PReLU(), L.Dense(1)), "mse", (20,), 1)]
    c += [("selu-alphadropout", seq((20,), L.Dense(32, "selu", kernel_initializer="lecun_normal"), L.AlphaDropout(.1), L.Dense(1, "sigmoid")), "binary_crossentropy", (20,), 1)]
    c += [("gaussian-noise", seq((20,), L.GaussianNoise(.1), L.Dense(16, "swish"), L.GaussianDropout(.1), L.Dense(1)), "mse", (20,), 1)]
    c += [("batchnorm-mlp", seq((20,), L.Dense(32, use_bias=False), L.BatchNormalization(), L.Activation("relu"), L.Dense(3, "softmax")), "sparse_categorical_crossentropy", (20,), 3)]
    c += [("relu6-softmax-layer", seq((20,), L.Dense(16), L.ReLU(max_value=6), L.Dense(4), L.Softmax()), "categorical_crossentropy", (20,), 4)]
    c += [("reshape-conv1d", seq((48,), L.Reshape((12, 4)), L.Conv1D(8, 3), L.Flatten(), L.Dense(1)), "mse", (48,), 1)]
    c += [("timedistributed-dense", seq((12, 3), L.LSTM(8, return_sequences=True), L.TimeDistributed(L.Dense(1))), "mse", (12, 3), None)]
    c += [("dense-on-sequence", seq((12, 3), L.Dense(8, "tanh"), L.GlobalAveragePooling1D(), L.Dense(1)), "mse", (12, 3), 1)]
    c += [("augmentation-layers", seq((16, 16, 3), L.RandomFlip("horizontal"), L.Conv2D(4, 3), L.Flatten(), L.Dense(2)), "mse", (16, 16, 3), 2)]
    c += [("masking-lstm", seq((12, 3), L.Masking(0.), L.LSTM(8), L.Dense(1)), "mse", (12, 3), 1)]
    c += [("convlstm2d", seq((4, 8, 8, 1), L.ConvLSTM2D(4, 3), L.Flatten(), L.Dense(1)), "mse", (4, 8, 8, 1), 1)]
    c += [("hinge-tanh", seq((20,), L.Dense(16, "tanh"), L.Dense(1, "tanh")), "hinge", (20,), 1)]
    c += [("focal-loss", seq((20,), L.Dense(16, "relu"), L.Dense(1, "sigmoid")), keras.losses.BinaryFocalCrossentropy(), (20,), 1)]
    c += [("kld-softmax", seq((20,), L.Dense(8, "softplus"), L.Dense(4, "softmax")), "kl_divergence", (20,), 4)]
    c += [("conv2d-dilated-gap", seq((16, 16, 2), L.Conv2D(8, 3, dilation_rate=2, activation="mish"), L.GlobalAveragePooling2D(), L.Dense(1)), "mse", (16, 16, 2), 1)]
    c += [("repeatvector-seq2seq", seq((6,), L.RepeatVector(5), L.LSTM(8, return_sequences=True), L.GlobalMaxPooling1D(), L.Dense(1)), "mse", (6,), 1)]
    return c


def without_noise(m):
    """The same model with every dropout/noise rate 0 (the training check: dptrain's masks are not
    Keras's random numbers); Keras's weights copied over."""
    cfg = m.get_config()
    changed = False
    for lay in cfg["layers"]:
        c = lay.get("config", {})
        for k in ("rate", "stddev", "dropout", "recurrent_dropout"):
            if c.get(k):
                c[k] = 0.0
                changed = True
        inner = c.get("layer", {}).get("config", {}) if isinstance(c.get("layer"), dict) else {}
        for k in ("dropout", "recurrent_dropout"):
            if inner.get(k):
                inner[k] = 0.0
                changed = True
    if not changed:
        return m
    m2 = keras.Sequential.from_config(cfg)
    m2.set_weights(m.get_weights())
    return m2


def data(spec, outs, n, rng):
    if spec == "ids40":
        x = rng.integers(0, 100, size=(n, 40)).astype(np.float32)
    else:
        x = rng.uniform(0, 1, size=(n,) + spec).astype(np.float32)
    return x


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    h = parity.Harness(work)
    rng = np.random.default_rng(1)
    res = {"trains": [], "refused": [], "wrong": []}
    for name, m, loss, spec, outs in models():
        keras.utils.set_random_seed(1)
        if name == "regression-normalization":
            norm = L.Normalization()
            norm.adapt(rng.normal(size=(50, 9)).astype(np.float32))
            m = seq((9,), norm, L.Dense(16, "relu"), L.Dense(1))
        x = data(spec, outs, 32, rng)
        try:
            ok = h.check_predict(name, m, x, tol=1e-5)
            if ok and outs is not None:
                y = (rng.integers(0, outs, size=(32,)) if isinstance(loss, str) and "sparse" in loss
                     or (not isinstance(loss, str) and "Sparse" in type(loss).__name__)
                     else rng.uniform(0, 1, size=(32, outs)))
                if isinstance(loss, str) and loss == "categorical_crossentropy" or name in (
                        "relu6-softmax-layer", "kld-softmax"):
                    y = np.eye(outs)[rng.integers(0, outs, 32)]
                if isinstance(loss, str) and loss == "binary_crossentropy":
                    y = (y > 0.5).astype(np.float32)
                ok = h.check_train(name, without_noise(m), x, np.asarray(y, np.float32), loss=loss,
                                   batch_size=8, epochs=1, tol=1e-4,
                                   optimizer={"class_name": "SGD", "config": {"learning_rate": 0.01}})
            res["trains" if ok else "wrong"].append(name)
        except RuntimeError as e:
            msg = [l for l in str(e).splitlines() if "dptrain:" in l]
            res["refused"].append((name, msg[0] if msg else str(e).splitlines()[0]))
        except Exception as e:  # noqa: BLE001 (a Keras-side problem building the case)
            res["wrong"].append(name + " (harness: %s)" % e)
    n = sum(len(v) for v in res.values())
    print("\ncorpus: %d models: %d train, %d refused, %d wrong" % (n, len(res["trains"]), len(res["refused"]), len(res["wrong"])))
    for name, msg in res["refused"]:
        print("  refused %-28s %s" % (name, msg[:150]))
    for name in res["wrong"]:
        print("  WRONG   %s" % name)


if __name__ == "__main__":
    main()
