"""The cases of keras_optim.py, keras_optim_options.py and keras_optim_schedules.py (three ctests,
so that each stays well inside its timeout): training parity of Keras 3's optimizers, options
and learning-rate schedules: the same small Dense net trained 3 epochs by Keras and by dptrain
from the same weights, the optimizer passed as keras.optimizers.serialize(opt) writes it (Keras
3's {"module", "class_name", "config", "registered_name"} form), so that form is what dptrain
parses.

One check per optimizer (Nadam, Adamax, Adagrad, Adadelta, Lion), per option (amsgrad,
weight_decay, clipvalue, clipnorm, global_clipnorm, gradient_accumulation_steps, some together)
and per schedule (InverseTimeDecay, PolynomialDecay with and without cycle, CosineDecayRestarts,
CosineDecay with warmup). 52 samples in batches of 8: 7 steps an epoch, the last one partial."""
import copy
import sys

import numpy as np
import keras

import parity

O = keras.optimizers
S = keras.optimizers.schedules

CASES = {
    "optimizers": [
        ("nadam", O.Nadam(learning_rate=0.01)),
        ("adamax", O.Adamax(learning_rate=0.02)),
        ("adagrad", O.Adagrad(learning_rate=0.05)),
        ("adagrad-init",
         O.Adagrad(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=1e-5)),
        ("adadelta", O.Adadelta(learning_rate=1.0)),
        ("adadelta-defaults", O.Adadelta()),
        ("lion", O.Lion(learning_rate=0.002)),
        ("lion-betas", O.Lion(learning_rate=0.002, beta_1=0.8, beta_2=0.95)),
        ("adam-amsgrad", O.Adam(learning_rate=0.02, beta_2=0.9, amsgrad=True)),
        ("adamw-amsgrad",
         O.AdamW(learning_rate=0.02, beta_2=0.9, amsgrad=True, weight_decay=0.05)),
        ("sgd-wd", O.SGD(learning_rate=0.05, momentum=0.9, weight_decay=0.1)),
        ("nadam-wd", O.Nadam(learning_rate=0.01, weight_decay=0.05)),
        ("adagrad-wd", O.Adagrad(learning_rate=0.05, weight_decay=0.1)),
        ("lion-wd", O.Lion(learning_rate=0.002, weight_decay=0.5)),
        ("rmsprop-wd", O.RMSprop(learning_rate=0.005, weight_decay=0.1)),
    ],
    "options": [
        ("sgd-clipvalue", O.SGD(learning_rate=0.1, clipvalue=0.05)),
        ("adam-clipvalue", O.Adam(learning_rate=0.01, clipvalue=0.02)),
        ("sgd-clipnorm", O.SGD(learning_rate=0.1, clipnorm=0.1)),
        ("adam-clipnorm", O.Adam(learning_rate=0.01, clipnorm=0.05)),
        ("sgd-global-clipnorm", O.SGD(learning_rate=0.1, global_clipnorm=0.2)),
        ("adamax-global-clipnorm", O.Adamax(learning_rate=0.02, global_clipnorm=0.1)),
        ("sgd-accum", O.SGD(learning_rate=0.1, momentum=0.5, gradient_accumulation_steps=3)),
        ("adam-accum", O.Adam(learning_rate=0.01, gradient_accumulation_steps=2)),
        ("nadam-accum", O.Nadam(learning_rate=0.01, gradient_accumulation_steps=3)),
        ("adam-amsgrad-accum-clipnorm-wd",
         O.Adam(learning_rate=0.01, amsgrad=True, gradient_accumulation_steps=2, clipnorm=0.05,
                weight_decay=0.05)),
        ("adam-clipnorm-bn-frozen", O.Adam(learning_rate=0.01, clipnorm=0.05), "bn-frozen"),
        ("sgd-global-clipnorm-bn-frozen", O.SGD(learning_rate=0.1, global_clipnorm=0.1),
         "bn-frozen"),
        ("adagrad-accum-global-clipnorm",
         O.Adagrad(learning_rate=0.05, gradient_accumulation_steps=4, global_clipnorm=0.1)),
    ],
    "schedules": [
        ("sgd-inverse-time", O.SGD(learning_rate=S.InverseTimeDecay(0.1, 5, 0.5))),
        ("sgd-inverse-time-staircase",
         O.SGD(learning_rate=S.InverseTimeDecay(0.1, 4, 0.5, staircase=True))),
        ("sgd-polynomial",
         O.SGD(learning_rate=S.PolynomialDecay(0.1, 12, end_learning_rate=0.01, power=2.0))),
        ("sgd-polynomial-cycle",
         O.SGD(learning_rate=S.PolynomialDecay(0.1, 5, end_learning_rate=0.01, power=0.5,
                                               cycle=True))),
        ("sgd-cosine-restarts",
         O.SGD(learning_rate=S.CosineDecayRestarts(0.1, 4, t_mul=2.0, m_mul=0.8, alpha=0.1))),
        ("sgd-cosine-restarts-tmul1",
         O.SGD(learning_rate=S.CosineDecayRestarts(0.1, 5, t_mul=1.0, m_mul=0.9))),
        ("adam-cosine-warmup",
         O.Adam(learning_rate=S.CosineDecay(0.001, 10, alpha=0.1, warmup_target=0.02,
                                             warmup_steps=5))),
        ("adam-polynomial-accum",
         O.Adam(learning_rate=S.PolynomialDecay(0.02, 15, end_learning_rate=0.001),
                gradient_accumulation_steps=2)),
    ],
}


def run(group):
    """Runs CASES[group] (or only the case names given after PREDICT_DUMP WORKDIR)."""
    h = parity.main_guard()
    rng = np.random.default_rng(11)
    x = rng.normal(size=(52, 10)).astype(np.float32)
    y = (rng.normal(size=(52, 2)) + x[:, :2] * 0.5).astype(np.float32)
    only = set(sys.argv[3:])
    for i, (name, opt, *kind) in enumerate(CASES[group]):
        if only and name not in only:
            continue
        keras.utils.set_random_seed(100 + i)
        if kind == ["bn-frozen"]:  # moving statistics and a frozen layer: not clipped, not updated
            frozen = keras.layers.Dense(6, activation="tanh", trainable=False)
            m = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.BatchNormalization(), frozen,
                                  keras.layers.Dense(2)])
        else:
            m = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(2)])
        ser = keras.optimizers.serialize(opt)
        # deserialize edits its input: give it a copy
        h.check_train("optim-" + name, m, x, y, loss="mse", optimizer=ser, batch_size=8,
                      epochs=3, tol=1e-5,
                      keras_optimizer=keras.optimizers.deserialize(copy.deepcopy(ser)))
    return h.report()
