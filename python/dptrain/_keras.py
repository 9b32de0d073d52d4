"""From a compiled Keras model to dptrain's config (README: config format), and numpy arrays to
dptrain's HDF5 dataset layout (datasets/FORMAT.md). No training here; nothing is refused here
that the C side would refuse itself: the C parser is the one judge of what is supported (its
message reaches the user as DptrainError), this module only translates.
"""
import json
import os
import sys

import numpy as np

from ._binary import DptrainError

# compile() keys that change nothing in the math: not passed on
_COMPILE_NOOP = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")

# accuracy metrics that equal dptrain's "accuracy" for one loss (Keras's own resolution of
# "accuracy": binary for binary cross-entropy, categorical / sparse categorical for those)
_ACCURACY_FOR_LOSS = {
    "binary_accuracy": ("binary_crossentropy", "BinaryCrossentropy"),
    "categorical_accuracy": ("categorical_crossentropy", "CategoricalCrossentropy"),
    "sparse_categorical_accuracy": ("sparse_categorical_crossentropy",
                                    "SparseCategoricalCrossentropy"),
}
_ACCURACY_CLASSES = {"BinaryAccuracy": "binary_accuracy",
                     "CategoricalAccuracy": "categorical_accuracy",
                     "SparseCategoricalAccuracy": "sparse_categorical_accuracy"}


def keras_of(model):
    """The Keras module the model belongs to (keras 3, tf_keras, or tf.keras of Keras 2)."""
    mod = type(model).__module__.split(".")[0]
    if mod == "tf_keras":
        import tf_keras
        return tf_keras
    if mod == "tensorflow":
        from tensorflow import keras
        return keras
    import keras
    return keras


def keras_major(k):
    try:
        return int(str(k.__version__).split(".")[0])
    except (AttributeError, ValueError):
        return 3


def _ser(k, obj):
    if obj is None or isinstance(obj, (str, int, float, bool, dict, list)):
        return obj
    saving = getattr(k, "saving", None)
    if saving is not None and hasattr(saving, "serialize_keras_object"):
        return saving.serialize_keras_object(obj)
    return k.utils.serialize_keras_object(obj)


def _loss_name(loss):
    """'binary_crossentropy' / 'BinaryCrossentropy' from a string or a serialized loss."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        if loss.get("class_name") == "function" and isinstance(loss.get("config"), str):
            return loss["config"]
        return loss.get("class_name", "")
    return ""


def compile_config(model):
    """The model's compile() arguments as dptrain's "compile" section, and the history key of each
    metric (Keras names them as given: "accuracy", "acc", "binary_accuracy" ...)."""
    k = keras_of(model)
    if hasattr(model, "compiled") and not model.compiled:
        raise DptrainError("model is not compiled: call model.compile(optimizer=..., loss=..., "
                           "metrics=...) before dptrain.fit", 3)
    cc = None
    if hasattr(model, "get_compile_config"):
        try:
            cc = model.get_compile_config()
        except Exception:  # Keras 2 without a compile config
            cc = None
    if cc is None:
        if getattr(model, "optimizer", None) is None:
            raise DptrainError("model is not compiled: call model.compile(optimizer=..., "
                               "loss=..., metrics=...) before dptrain.fit", 3)
        metrics = []
        cm = getattr(model, "compiled_metrics", None)
        if cm is not None:
            metrics = list(getattr(cm, "_user_metrics", None) or [])
        cc = {"optimizer": k.optimizers.serialize(model.optimizer), "loss": model.loss,
              "metrics": metrics}
    comp = {}
    for key, v in cc.items():
        if key in _COMPILE_NOOP:
            continue
        comp[key] = v
    comp["optimizer"] = _ser(k, comp.get("optimizer"))
    comp["loss"] = _ser(k, comp.get("loss"))
    if isinstance(comp["loss"], (list, dict)) and not (isinstance(comp["loss"], dict) and
                                                      "class_name" in comp["loss"]):
        raise DptrainError("compile: loss: one loss for a single-output model is supported, got "
                           "%s" % type(cc.get("loss")).__name__, 3)
    metrics = comp.get("metrics") or []
    if isinstance(metrics, dict):
        raise DptrainError("compile: metrics: a dict (per output) is not supported; give a list", 3)
    loss = _loss_name(comp["loss"])
    out, names = [], []
    for m in metrics:
        m = _ser(k, m)
        name = m if isinstance(m, str) else None
        if isinstance(m, dict):
            cls = m.get("class_name", "")
            cfg = m.get("config") or {}
            if cls in _ACCURACY_CLASSES and float(cfg.get("threshold", 0.5)) == 0.5:
                name, m = cfg.get("name", _ACCURACY_CLASSES[cls]), _ACCURACY_CLASSES[cls]
            elif cls == "function" and isinstance(cfg, str):
                name, m = cfg, cfg
        if isinstance(m, str) and m in _ACCURACY_FOR_LOSS and loss in _ACCURACY_FOR_LOSS[m]:
            m = "accuracy"  # the same numbers under Keras's name for them
        out.append(m)
        names.append(name or str(m))
    comp["metrics"] = out
    return comp, names


def model_json(model):
    return json.loads(model.to_json())


def validation_sizes(n, validation_split):
    n_train = int(np.floor(n * (1.0 - validation_split)))
    return n_train, n - n_train


def _as_array(a, what):
    if a is None:
        return None
    if isinstance(a, (dict, list, tuple)) and not isinstance(a, np.ndarray):
        if isinstance(a, dict):
            raise DptrainError("%s: a dict of inputs (multi-input models) is not supported" % what, 2)
    try:
        arr = np.asarray(a)
    except Exception as e:
        raise DptrainError("%s: not an array (%s): numpy arrays, lists or tensors are supported, "
                           "not generators or tf.data datasets" % (what, type(a).__name__), 2) from e
    if arr.dtype == object:
        raise DptrainError("%s: not a numeric array (%s)" % (what, type(a).__name__), 2)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int8)
    elif np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.float32:
        arr = arr.astype(np.float32)  # dptrain reads float32 anyway
    if arr.ndim == 0:
        raise DptrainError("%s: a scalar, expected one row per sample" % what, 2)
    return arr


def _write_group(f, name, x, y):
    g = f.create_group(name)
    row = max(1, int(x[0].nbytes)) if len(x) else 1
    rows = max(1, min(len(x), (1 << 20) // row))
    g.create_dataset("x", data=x, chunks=(rows,) + x.shape[1:] if len(x) else None)
    if y is not None:
        g.create_dataset("y", data=y)


def write_dataset(path, groups):
    """groups: [(name, x, y)]; written to path.tmp then renamed (a file is whole or absent)."""
    import h5py
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name, x, y in groups:
            _write_group(f, name, x, y)
    os.replace(tmp, path)


def arrays(x, y, what="x"):
    x = _as_array(x, what)
    y = _as_array(y, "y") if y is not None else None
    if y is not None and len(x) != len(y):
        # the C side says it too, but only after the file is written: say it with the sizes now
        raise DptrainError("%s has %d samples but y has %d" % (what, len(x), len(y)), 4)
    return x, y


def save_weights(model, path_stem):
    """The model's current weights in a file dptrain reads (--init-weights, evaluate, predict)."""
    k = keras_of(model)
    if keras_major(k) >= 3:
        p = path_stem + ".weights.h5"
        model.save_weights(p)
    else:
        p = path_stem + ".h5"
        model.save_weights(p, save_format="h5")
    return p


def is_built(model):
    return bool(getattr(model, "built", False)) and len(model.weights) > 0


def stdout_is_terminal():
    try:
        return sys.stdout.isatty() and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False
