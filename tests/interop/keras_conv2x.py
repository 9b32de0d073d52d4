"""Parity of the second batch of 2-D layers and the weight-side extras against real Keras:
ZeroPadding2D, Cropping2D, UpSampling2D, DepthwiseConv2D, SeparableConv2D, dilated Conv2D,
ActivityRegularization / activity_regularizer (predict from Keras's files), and training from the
same weights: a small CNN with MaxNorm kernel constraints (the dropout + max-norm recipe, rate 0
here because the masks are not Keras's), a SeparableConv2D net with UnitNorm / NonNeg /
MinMaxNorm, a padding/upsampling/cropping net, and a net with activity regularizers, each with
SGD and Adam."""
import json
import os
import sys

import numpy as np
import keras
from keras import layers as L
from keras import constraints as C
from keras import regularizers as R

import parity

h = parity.main_guard()
rng = np.random.default_rng(5)


def img(n, hh, ww, c):
    return rng.normal(size=(n, hh, ww, c)).astype(np.float32)


def seq(shape, *ls):
    return keras.Sequential([keras.Input(shape)] + list(ls))


def check_predict(name, model, x):
    """h.check_predict, plus: Keras's outputs are not trivially constant (a check that can fail)"""
    spread = float(np.std(np.asarray(model.predict(x, verbose=0))))
    if spread < 1e-3:
        h.record(name + ": Keras's outputs vary (std %.2g)" % spread, float("inf"), 0)
    h.check_predict(name, model, x)


SGD = {"class_name": "SGD", "config": {"learning_rate": 0.05}}
ADAM = {"class_name": "Adam", "config": {"learning_rate": 0.01}}

# ---- predict ---------------------------------------------------------------------------------
x = img(10, 6, 5, 2)
keras.utils.set_random_seed(1)
m = seq((6, 5, 2), L.ZeroPadding2D(((1, 2), (0, 1))), L.Conv2D(3, 3, activation="relu"),
        L.UpSampling2D((2, 1)), L.Cropping2D(((1, 0), (2, 1))), L.ZeroPadding2D(1),
        L.Cropping2D(((2, 2), 1)), L.UpSampling2D(2), L.Flatten(), L.Dense(2))
check_predict("pad-crop-up", m, x)

x = img(10, 7, 7, 3)
keras.utils.set_random_seed(2)
m = seq((7, 7, 3), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2,
                                     activation="relu", bias_initializer="glorot_uniform"),
        L.DepthwiseConv2D((2, 3), dilation_rate=(2, 1)), L.Flatten(), L.Dense(2))
check_predict("depthwise", m, x)

keras.utils.set_random_seed(3)
m = seq((7, 7, 3), L.SeparableConv2D(4, 3, depth_multiplier=2, dilation_rate=2, padding="same",
                                     activation="tanh", bias_initializer="glorot_uniform"),
        L.SeparableConv2D(2, (2, 3), strides=(2, 1), use_bias=False), L.Flatten(), L.Dense(2))
check_predict("separable", m, x)

keras.utils.set_random_seed(4)
m = seq((7, 7, 3), L.Conv2D(4, 3, dilation_rate=(2, 3), padding="same", activation="relu"),
        L.Conv2D(2, (2, 2), dilation_rate=2), L.Flatten(), L.Dense(2))
check_predict("conv-dilated", m, x)

CF = {"data_format": "channels_first"}
x = img(10, 2, 7, 6)  # (channels, height, width)
keras.utils.set_random_seed(5)
m = seq((2, 7, 6), L.Conv2D(4, 3, padding="same", activation="relu", **CF),
        L.MaxPooling2D((2, 1), **CF), L.ZeroPadding2D(((1, 0), (0, 1)), **CF),
        L.DepthwiseConv2D(2, depth_multiplier=2, **CF),
        L.SeparableConv2D(3, 2, padding="same", **CF), L.UpSampling2D((1, 2), **CF),
        L.Cropping2D(((0, 1), (1, 0)), **CF), L.AveragePooling2D(2, strides=1, **CF),
        L.Conv2D(2, (1, 2), dilation_rate=(1, 2), **CF), L.Flatten(), L.Dense(2))
check_predict("channels-first", m, x)

# ---- training --------------------------------------------------------------------------------
xt = img(32, 8, 8, 1)
yt = keras.utils.to_categorical(rng.integers(0, 3, size=32), 3).astype(np.float32)


def maxnorm_cnn(seed):
    keras.utils.set_random_seed(seed)
    return seq((8, 8, 1),
               L.Conv2D(6, 3, activation="relu",
                        kernel_constraint=C.MaxNorm(0.6, axis=[0, 1, 2])),
               L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.0),
               L.Dense(8, activation="relu", kernel_constraint=C.MaxNorm(0.4),
                       bias_constraint=C.MaxNorm(0.05)),
               L.Dropout(0.0), L.Dense(3, activation="softmax", kernel_constraint=C.MaxNorm(1.0)))


for name, opt in (("sgd", SGD), ("adam", ADAM)):
    h.check_train("maxnorm-cnn-" + name, maxnorm_cnn(10), xt, yt,
                  loss="categorical_crossentropy", optimizer=opt, batch_size=8, epochs=2)


def bn_net(seed):
    keras.utils.set_random_seed(seed)
    return seq((8, 8, 1), L.Conv2D(4, 3, use_bias=False),
               L.BatchNormalization(gamma_constraint=C.MaxNorm(1.5),
                                    beta_constraint=C.NonNeg()),
               L.Activation("relu"), L.Flatten(), L.Dense(3, activation="softmax"))


h.check_train("bn-constraints-sgd", bn_net(14), xt, yt, loss="categorical_crossentropy",
              optimizer=SGD, batch_size=8, epochs=2)


def separable_net(seed):
    keras.utils.set_random_seed(seed)
    return seq((8, 8, 1),
               L.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", activation="relu",
                                 depthwise_constraint=C.UnitNorm(axis=[0, 1]),
                                 pointwise_constraint=C.NonNeg(),
                                 bias_constraint=C.MinMaxNorm(0.0, 0.1, rate=0.5)),
               L.DepthwiseConv2D(2, strides=2, depth_multiplier=2,
                                 depthwise_constraint=C.MinMaxNorm(0.2, 0.5, rate=0.7, axis=3)),
               L.Flatten(), L.Dense(3, activation="softmax"))


for name, opt in (("sgd", SGD), ("adam", ADAM)):
    h.check_train("separable-" + name, separable_net(11), xt, yt,
                  loss="categorical_crossentropy", optimizer=opt, batch_size=8, epochs=2)


def resize_net(seed):
    keras.utils.set_random_seed(seed)
    return seq((8, 8, 1), L.ZeroPadding2D(((1, 0), (2, 1))), L.Conv2D(3, 3, activation="relu"),
               L.UpSampling2D((1, 2)), L.Cropping2D(((0, 1), (3, 2))),
               L.Conv2D(2, 2, strides=2, dilation_rate=1), L.Flatten(),
               L.Dense(3, activation="softmax"))


for name, opt in (("sgd", SGD), ("adam", ADAM)):
    h.check_train("pad-up-crop-" + name, resize_net(12), xt, yt,
                  loss="categorical_crossentropy", optimizer=opt, batch_size=8, epochs=2)


def cf_net(seed):
    keras.utils.set_random_seed(seed)
    return seq((1, 8, 8), L.Conv2D(4, 3, activation="relu", kernel_constraint=C.MaxNorm(0.5),
                                   **CF),
               L.MaxPooling2D(2, **CF), L.SeparableConv2D(3, 2, **CF),
               L.GlobalAveragePooling2D(**CF), L.Dense(3, activation="softmax"))


xcf = np.transpose(xt, (0, 3, 1, 2)).copy()
for name, opt in (("sgd", SGD), ("adam", ADAM)):
    h.check_train("channels-first-" + name, cf_net(15), xcf, yt,
                  loss="categorical_crossentropy", optimizer=opt, batch_size=8, epochs=2)


def actreg_net(seed):
    keras.utils.set_random_seed(seed)
    return seq((8, 8, 1),
               L.Conv2D(3, 3, dilation_rate=2, activation="tanh",
                        activity_regularizer=R.L2(0.01)),
               L.Flatten(), L.ActivityRegularization(l1=0.01, l2=0.002),
               L.Dense(4, activation="relu", activity_regularizer=R.L1L2(0.01, 0.01)),
               L.Dense(3, activation="softmax", activity_regularizer=R.L1(0.05)))


def check_loss(name, model, opt):
    """dptrain's epoch losses (history.jsonl) equal Keras's history, penalties included."""
    model.compile(optimizer=keras.optimizers.deserialize(opt), loss="categorical_crossentropy")
    hist = model.fit(xt, yt, batch_size=8, epochs=2, shuffle=False, verbose=0,
                     validation_split=0.25).history
    with open(os.path.join(h.path(name + "-run"), "history.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for key in ("loss", "val_loss"):
        ours = [r[key] for r in rows]
        h.record(name + ": epoch %s vs Keras (with the penalties)" % key,
                 max(abs(a - b) for a, b in zip(hist[key], ours)) if len(ours) == len(hist[key])
                 else float("inf"), 1e-5)


for name, opt in (("sgd", SGD), ("adam", ADAM)):
    h.check_train("actreg-" + name, actreg_net(13), xt, yt, loss="categorical_crossentropy",
                  optimizer=opt, batch_size=8, epochs=2, extra_fit={"validation_split": 0.25},
                  fit_kwargs={"validation_split": 0.25})
    check_loss("actreg-" + name, actreg_net(13), opt)
sys.exit(h.report())
