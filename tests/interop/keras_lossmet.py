"""Parity of the Keras losses (with from_logits, label_smoothing, Huber's delta, the focal options)
and of the metrics: for each loss, 2 epochs of SGD from the same weights in Keras and in dptrain
(trained weights equal); for the metrics, dptrain's history.csv (train and val_ columns) against
Keras's model.fit history, epoch by epoch."""
import sys

import numpy as np
import keras

import parity

L = keras.losses
M = keras.metrics
h = parity.main_guard()
rng = np.random.default_rng(5)
N, F = 40, 6
x = rng.normal(size=(N, F)).astype(np.float32)
xv = rng.normal(size=(24, F)).astype(np.float32)
yb = (rng.uniform(size=(N, 1)) > 0.5).astype(np.float32)       # binary labels
yb3 = (rng.uniform(size=(N, 3)) > 0.5).astype(np.float32)      # multi-label
cls = rng.integers(0, 3, size=N)
yc = np.eye(3, dtype=np.float32)[cls]                          # one-hot
soft = rng.dirichlet(np.ones(3), size=N).astype(np.float32)    # distributions
yr = rng.normal(size=(N, 2)).astype(np.float32)                # regression targets
ypos = rng.uniform(0.1, 2.0, size=(N, 2)).astype(np.float32)   # positive targets
ypm = 2 * yb3 - 1                                               # -1 / 1 labels


def model(units, act=None, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((F,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(units, activation=act)])


cases = [
    # name, loss (Keras object), output units, final activation, targets
    ("bce-logits", L.BinaryCrossentropy(from_logits=True), 1, None, yb),
    ("bce-smooth", L.BinaryCrossentropy(label_smoothing=0.2), 3, "sigmoid", yb3),
    ("bce-smooth-logits", L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), 3, None,
     yb3),
    ("cce-logits", L.CategoricalCrossentropy(from_logits=True), 3, None, yc),
    ("cce-smooth", L.CategoricalCrossentropy(label_smoothing=0.1), 3, "softmax", yc),
    ("scce-logits", L.SparseCategoricalCrossentropy(from_logits=True), 3, None,
     cls.astype(np.int32)),
    ("mae", "mae", 2, None, yr),
    ("mape", "mape", 2, None, ypos),  # gradients ~100/|y|: a small learning rate below
    ("msle", "msle", 2, "sigmoid", ypos),
    ("huber", L.Huber(), 2, None, 2 * yr),
    ("log_cosh", "log_cosh", 2, None, yr),
    ("kl_divergence", "kl_divergence", 3, "softmax", soft),
    ("poisson", "poisson", 2, "sigmoid", ypos),
    ("hinge01", "hinge", 3, "tanh", yb3),
    ("hinge-pm", "hinge", 3, "tanh", ypm),
    ("squared_hinge", "squared_hinge", 3, None, ypm),
    ("categorical_hinge", "categorical_hinge", 3, None, yc),
    ("focal", L.BinaryFocalCrossentropy(), 3, "sigmoid", yb3),
    ("focal-logits-balanced",
     L.BinaryFocalCrossentropy(from_logits=True, apply_class_balancing=True, alpha=0.4,
                               gamma=1.5), 3, None, yb3),
    ("cosine_similarity", L.CosineSimilarity(), 2, None, yr),
]
for i, (name, loss, units, act, y) in enumerate(cases):
    cfg = loss if isinstance(loss, str) else keras.saving.serialize_keras_object(loss)
    lr = 0.002 if name == "mape" else 0.05
    h.check_train("loss-" + name, model(units, act, seed=i), x, y, loss=cfg, batch_size=8,
                  epochs=2, tol=2e-5,
                  optimizer={"class_name": "SGD", "config": {"learning_rate": lr}})

# fit.class_weight (Keras: each sample's loss times its class's weight, the mean still over the
# batch's samples; classes not listed weigh 1)
h.check_train("class_weight-bce", model(1, "sigmoid", seed=30), x, yb,
              loss="binary_crossentropy", batch_size=8, epochs=2, tol=2e-5,
              extra_fit={"class_weight": {"0": 0.3, "1": 2.5}},
              fit_kwargs={"class_weight": {0: 0.3, 1: 2.5}})
h.check_train("class_weight-scce", model(3, "softmax", seed=31), x, cls.astype(np.int32),
              loss="sparse_categorical_crossentropy", batch_size=8, epochs=2, tol=2e-5,
              extra_fit={"class_weight": {"0": 2.0, "1": 0.5}},
              fit_kwargs={"class_weight": {0: 2.0, 1: 0.5}})
h.check_train("class_weight-onehot", model(3, None, seed=32), x, yc,
              loss={"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}},
              batch_size=8, epochs=2, tol=2e-5,
              extra_fit={"class_weight": {"0": 0.2, "2": 3.0}},
              fit_kwargs={"class_weight": {0: 0.2, 2: 3.0}})

# sample weights: the split's `w` (N), Keras's fit(sample_weight=...)
sw = rng.uniform(0.0, 3.0, size=N).astype(np.float32)
h.check_train("sample_weight-huber", model(2, None, seed=33), x, 2 * yr, loss="huber",
              batch_size=8, epochs=2, tol=2e-5, sample_weight=sw)
h.check_train("sample_weight-scce", model(3, "softmax", seed=34), x, cls.astype(np.int32),
              loss="sparse_categorical_crossentropy", batch_size=8, epochs=2, tol=2e-5,
              sample_weight=sw)

# metrics: history.csv against model.fit's history, training and validation
ybv = (rng.uniform(size=(24, 1)) > 0.5).astype(np.float32)
h.check_history("metrics-binary", model(1, "sigmoid", seed=40), x, yb, "binary_crossentropy",
                ["accuracy", "auc", M.AUC(curve="PR", name="prauc"), M.AUC(num_thresholds=7,
                 name="auc7"), "precision", M.Recall(thresholds=0.4), "mae", "mse",
                 M.RootMeanSquaredError(), M.BinaryAccuracy(threshold=0.6, name="ba6"),
                 "binary_crossentropy"], xv=xv, yv=ybv, tol=2e-5)
clsv = rng.integers(0, 3, size=24)
h.check_history("metrics-sparse", model(3, "softmax", seed=41), x, cls.astype(np.int32),
                "sparse_categorical_crossentropy",
                ["accuracy", M.SparseTopKCategoricalAccuracy(k=2, name="top2")],
                xv=xv, yv=clsv.astype(np.int32), tol=2e-5)
h.check_history("metrics-onehot-logits", model(3, None, seed=42), x, yc,
                L.CategoricalCrossentropy(from_logits=True),
                ["accuracy", M.TopKCategoricalAccuracy(k=2, name="top2"), "auc",
                 "categorical_accuracy", M.Precision(thresholds=0.0, name="p0")],
                xv=xv, yv=np.eye(3, dtype=np.float32)[clsv], tol=2e-5)
# weighted losses (train and validation), unweighted metrics, as Keras's `metrics`
h.check_history("metrics-weighted", model(1, "sigmoid", seed=43), x, yb, "binary_crossentropy",
                ["accuracy", "auc", "mae"], xv=xv, yv=ybv, tol=2e-5, w=sw,
                wv=rng.uniform(0.5, 2.0, size=24).astype(np.float32))
sys.exit(h.report())
