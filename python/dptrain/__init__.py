"""dptrain from Python: train a compiled Keras model with the dptrain C trainer across MPI ranks.

    import dptrain
    history = dptrain.fit(model, X_train, y_train, epochs=20, batch_size=32,
                          validation_split=0.2, ranks=2)      # instead of model.fit(...)

fit() writes the model's to_json(), its compile() arguments and the arrays into a run directory
(config.json, data.h5), has the C binary check them at one rank (`dptrain fit --dry-run`: what it
refuses raises DptrainError before any rank starts), starts the ranks (mpirun, or srun inside a
Slurm allocation), shows rank 0's progress, loads final.h5 into the model and returns a Keras
History. evaluate() and predict() run `dptrain evaluate` / `dptrain predict` on the model's
current weights. The training itself is all C: nothing here computes a gradient.
"""
import json
import os
import sys
import tempfile
import time

from ._binary import DptrainError, DptrainInterrupted, find_binary
from . import _keras, _run

__version__ = "0.1.0"
__all__ = ["fit", "evaluate", "predict", "DptrainError", "DptrainInterrupted", "History",
           "find_binary", "__version__"]

# fit(**fit_options): dptrain fit's own options (README: The command)
_FIT_FLAGS = {"checkpoint_every": "--checkpoint-every", "keep": "--keep",
              "check_replicas": "--check-replicas", "watchdog": "--watchdog",
              "memory_limit": "--memory-limit", "order": "--order", "reduce": "--reduce",
              "init_weights": "--init-weights"}
_FIT_SWITCHES = {"skip_nonfinite": "--skip-nonfinite", "profile": "--profile"}
# Keras fit() arguments dptrain has no equivalent for: refused by name, never ignored
_KERAS_REFUSED = ("sample_weight", "class_weight", "initial_epoch", "steps_per_epoch",
                  "validation_steps", "validation_batch_size", "validation_freq")


class History:
    """What Keras's model.fit returns: .history {key: [per-epoch values]}, .epoch [0, 1, ...],
    .params, .model; plus .run_dir. A real keras.callbacks.History is returned when Keras is
    importable; this class stands in otherwise."""

    def __init__(self):
        self.history, self.epoch, self.params, self.model = {}, [], {}, None


def _history(model, run_dir, metric_names, epochs, steps, verbose):
    rows = []
    path = os.path.join(run_dir, "history.jsonl")
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    try:
        h = _keras.keras_of(model).callbacks.History()
        h.set_model(model)
    except Exception:
        h = History()
        h.model = model
    h.history = {}
    keys = [("loss", "loss"), ("val_loss", "val_loss")]
    if metric_names:  # dptrain computes one metric, accuracy, under the name compile() gave it
        keys += [(metric_names[0], "accuracy"), ("val_" + metric_names[0], "val_accuracy")]
    order = [metric_names[0]] if metric_names else []
    order += ["loss"] + (["val_" + metric_names[0]] if metric_names else []) + ["val_loss"]
    for key in order:
        col = dict(keys)[key]
        vals = [r.get(col) for r in rows]
        if vals and all(v is not None for v in vals):
            h.history[key] = [float(v) for v in vals]
    h.epoch = [int(r["epoch"]) - 1 for r in rows]
    h.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
    h.run_dir = run_dir
    return h


def _new_run_dir():
    base = os.path.join(os.getcwd(), "dptrain_runs")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base)


def _in_notebook():
    return "ipykernel" in sys.modules and not _keras.stdout_is_terminal()


def _verbose_mode(verbose):
    """(dptrain --verbose, echo output, leave stdout on the terminal, live bar into the pipe)"""
    if verbose in ("auto", None):
        verbose = 1
    if verbose not in (0, 1, 2):
        raise DptrainError("verbose: must be 0, 1, 2 or \"auto\", got %r" % (verbose,), 2)
    if verbose == 0:
        return 0, False, False, False
    terminal = verbose == 1 and _keras.stdout_is_terminal()
    return verbose, True, terminal, verbose == 1 and _in_notebook()


def fit(model, x=None, y=None, *, epochs=1, batch_size=None, validation_split=0.0,
        validation_data=None, shuffle=True, seed=None, ranks=None, launcher=None, hosts=None,
        run_dir=None, resume=False, data=None, verbose="auto", callbacks=None, **fit_options):
    """Trains `model` (compiled Keras) with dptrain on `ranks` MPI ranks; on success the trained
    weights are loaded into `model` and a History is returned (.history with Keras's keys:
    loss, accuracy (the metric's name), val_loss, val_accuracy; .epoch).

    x, y: numpy arrays (written to RUN_DIR/data.h5), or data=PATH: a dptrain HDF5 dataset used as
    it is (groups "train", and "validation" or validation_data="GROUP"). batch_size is the GLOBAL
    batch (default 32, as Keras). seed (default 0) fixes the order and the dropout masks.
    Training starts from the model's current weights when it is built, as model.fit does.
    ranks: default 1, or the Slurm allocation's tasks under srun. launcher: None (srun in a
    Slurm allocation, else mpirun), "mpirun", "mpiexec", "srun", a path, "none", or a list used
    as the command prefix. hosts: "a,b" or ["a:4", "b:4"] (mpirun --host / srun --nodelist).
    run_dir: where the run's files go (default ./dptrain_runs/<time>-XXXX); resume=True continues
    the newest checkpoint there (run_dir defaults to this model's last run). fit_options: dptrain
    fit's own options: checkpoint_every, keep, check_replicas, watchdog, memory_limit, order,
    reduce, init_weights, skip_nonfinite, profile.

    Raises DptrainError (message: dptrain's one line; .exit_code; .run_dir) for anything dptrain
    refuses (before any rank starts) or a failed run; DptrainInterrupted (also a
    KeyboardInterrupt) after Ctrl-C, once the ranks wrote a checkpoint.
    """
    for k in _KERAS_REFUSED:
        if fit_options.get(k) is not None:
            raise DptrainError("fit: %s: not supported by dptrain" % k, 3)
        fit_options.pop(k, None)
    unknown = sorted(set(fit_options) - set(_FIT_FLAGS) - set(_FIT_SWITCHES))
    if unknown:
        raise DptrainError("fit: unknown option%s %s (dptrain's: %s)" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown),
            ", ".join(sorted(list(_FIT_FLAGS) + list(_FIT_SWITCHES)))), 2)
    if (x is None) == (data is None):
        raise DptrainError("fit: give x and y (arrays), or data=PATH (a dptrain HDF5 dataset)", 2)
    if x is not None and y is None:
        raise DptrainError("fit: y is required with x (targets per sample)", 2)
    comp, metric_names = _keras.compile_config(model)
    cbs = [_callback(model, c) for c in (callbacks or [])]
    v, echo, terminal, bar = _verbose_mode(verbose)
    binary = find_binary()
    prefix, kind, env_add = _run.launcher_command(launcher, ranks, hosts)

    if resume and run_dir is None:
        run_dir = getattr(model, "_dptrain_run_dir", None)
        if run_dir is None:
            raise DptrainError("fit: resume=True needs run_dir (the directory of the run to "
                               "continue)", 2)
    run_dir = os.path.abspath(run_dir) if run_dir else _new_run_dir()
    os.makedirs(run_dir, exist_ok=True)

    # the data
    fit_sec = {"epochs": int(epochs), "batch_size": int(batch_size or 32),
               "shuffle": bool(shuffle), "seed": int(seed or 0)}
    data_sec = {}
    n_rows = None
    if data is not None:
        data_path = os.path.abspath(data)
        if validation_data is not None and not isinstance(validation_data, str):
            raise DptrainError("fit: with data=PATH, validation_data names a group of that file", 2)
        if validation_data:
            data_sec["validation"] = validation_data
    else:
        xa, ya = _keras.arrays(x, y)
        groups = [("train", xa, ya)]
        n_rows = len(xa)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise DptrainError("fit: validation_data: expected (x_val, y_val)", 2)
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise DptrainError("fit: validation_data: sample weights are not supported by "
                                   "dptrain", 3)
            xv, yv = _keras.arrays(validation_data[0], validation_data[1], "validation x")
            groups.append(("validation", xv, yv))
            data_sec["validation"] = "validation"
        data_path = os.path.join(run_dir, "data.h5")
        _keras.write_dataset(data_path, groups)
    data_sec = dict({"path": data_path}, **data_sec)
    if "validation" not in data_sec:
        fit_sec["validation_split"] = float(validation_split or 0.0)
    if cbs:
        fit_sec["callbacks"] = cbs

    cfg = {"model": _keras.model_json(model), "compile": comp, "fit": fit_sec, "data": data_sec}
    cfg_path = os.path.join(run_dir, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)

    args = ["fit", cfg_path, "--run-dir", run_dir]
    if resume:
        args.append("--resume")
    if fit_options.get("init_weights") is None and _keras.is_built(model):
        fit_options["init_weights"] = _keras.save_weights(model, os.path.join(run_dir, "init"))
    for k, flag in _FIT_FLAGS.items():
        if fit_options.get(k) is not None:
            args += [flag, str(fit_options[k])]
    for k, flag in _FIT_SWITCHES.items():
        if fit_options.get(k):
            args.append(flag)
    model._dptrain_run_dir = run_dir

    # 1. one rank checks what the ranks would refuse before their first step
    res = _run.run([binary] + args + ["--dry-run", "--verbose", "0"])
    _run.check(res, "dptrain fit --dry-run")

    # 2. the ranks
    res = _run.run(prefix + [binary] + args + ["--verbose", str(v)], env_add, echo=echo,
                   terminal=terminal, bar=bar, kind=kind)
    hint = ("dptrain.fit(model, ..., run_dir=%r, resume=True) continues from its last checkpoint"
            % run_dir)
    if res.interrupted and (res.rc == _run.PREEMPTED or "preempted (resumable)" in res.err):
        raise DptrainInterrupted("dptrain: interrupted: checkpoint written in %s; %s" %
                                 (run_dir, hint), _run.PREEMPTED, run_dir, res.output)
    if res.rc != 0:
        line = _run.last_error_line(res.err) or "dptrain fit: exit %d" % res.rc
        code = _run.PREEMPTED if "preempted (resumable)" in res.err else res.rc
        e = DptrainError(line, code, run_dir, res.output)
        e.args = ("%s\n  run directory %s: %s" % (line, run_dir, hint),)
        raise e

    model.load_weights(os.path.join(run_dir, "final.h5"))
    steps = None
    if n_rows is not None:
        n_train = n_rows if "validation" in data_sec else _keras.validation_sizes(
            n_rows, fit_sec.get("validation_split", 0.0))[0]
        steps = -(-n_train // fit_sec["batch_size"])
    return _history(model, run_dir, metric_names, fit_sec["epochs"], steps, v)


def _callback(model, cb):
    """A Keras EarlyStopping / ReduceLROnPlateau (object or {"class_name", "config"}) as dptrain's
    fit.callbacks entry; any other callback is refused by name."""
    if isinstance(cb, dict):
        return cb
    name = type(cb).__name__
    if name == "EarlyStopping":
        cfg = {"monitor": cb.monitor, "patience": int(cb.patience),
               "min_delta": abs(float(cb.min_delta)), "baseline": cb.baseline,
               "restore_best_weights": bool(cb.restore_best_weights),
               "start_from_epoch": int(getattr(cb, "start_from_epoch", 0)),
               "mode": getattr(cb, "mode", "auto")}
    elif name == "ReduceLROnPlateau":
        cfg = {"monitor": cb.monitor, "factor": float(cb.factor), "patience": int(cb.patience),
               "mode": cb.mode, "min_delta": float(cb.min_delta), "cooldown": int(cb.cooldown),
               "min_lr": float(cb.min_lr)}
    else:
        raise DptrainError("fit: callbacks: %s is not supported by dptrain (supported: "
                           "EarlyStopping, ReduceLROnPlateau)" % name, 3)
    return {"class_name": name, "config": cfg}


def _inference(model, x, y, group, ranks, launcher, hosts, work, need_loss):
    if need_loss or getattr(model, "compiled", False):
        comp, names = _keras.compile_config(model)
    else:  # predict needs no loss: any the parser accepts
        comp, names = {"loss": "mse", "optimizer": "sgd", "metrics": []}, []
    binary = find_binary()
    if launcher is None and (ranks or 1) == 1:
        prefix, kind, env_add = [], "none", {}
    else:
        prefix, kind, env_add = _run.launcher_command(launcher, ranks, hosts)
    xa, ya = _keras.arrays(x, y)
    data = os.path.join(work, "data.h5")
    _keras.write_dataset(data, [(group, xa, ya)])
    cfg = {"model": _keras.model_json(model), "compile": comp, "data": {"path": data}}
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    weights = _keras.save_weights(model, os.path.join(work, "weights"))
    return binary, prefix, kind, env_add, data, cfg_path, weights, names, len(xa)


def evaluate(model, x, y, *, ranks=None, launcher=None, hosts=None, return_dict=False,
             verbose=0):
    """Loss (and the metric) of the model's current weights on (x, y), computed by `dptrain
    evaluate` across the ranks. Returns like Keras: the loss, or [loss, metric]; a dict with
    return_dict=True. dptrain prints 4 decimals: the values are rounded to them."""
    with tempfile.TemporaryDirectory(prefix="dptrain-eval-") as work:
        binary, prefix, kind, env_add, data, cfg, w, names, _ = _inference(
            model, x, y, "test", ranks, launcher, hosts, work, True)
        res = _run.run(prefix + [binary, "evaluate", w, "--data", data + ":test", "--config", cfg],
                       env_add, kind=kind)
        _run.check(res, "dptrain evaluate")
    vals = {}
    for line in res.out.splitlines():
        if line.startswith("loss:"):
            parts = line.split("(")[0].split(" - ")
            for p in parts:
                k, v = p.split(":")
                vals[k.strip()] = float(v)
    if verbose:
        print(res.out.strip())
    out = {"loss": vals.get("loss")}
    if names and "accuracy" in vals:
        out[names[0]] = vals["accuracy"]
    if return_dict:
        return out
    return out["loss"] if len(out) == 1 else list(out.values())


def predict(model, x, *, mc_samples=None, seed=None, ranks=None, launcher=None, hosts=None):
    """The model's outputs for x (probabilities after a sigmoid / softmax head), computed by
    `dptrain predict` across the ranks, in input order: an array (N, outputs). With mc_samples=K,
    Monte Carlo dropout (K passes with dropout on, spread across the ranks): (mean, std), each
    (N, outputs); the same seed gives the same numbers whatever the rank count."""
    import h5py
    with tempfile.TemporaryDirectory(prefix="dptrain-predict-") as work:
        binary, prefix, kind, env_add, data, cfg, w, _, n = _inference(
            model, x, None, "test", ranks, launcher, hosts, work, False)
        out = os.path.join(work, "pred.h5")
        argv = [binary, "predict", w, "--data", data + ":test", "--out", out, "--config", cfg]
        if mc_samples is not None:
            argv += ["--mc-samples", str(int(mc_samples))]
        if seed is not None:
            argv += ["--seed", str(int(seed))]
        res = _run.run(prefix + argv, env_add, kind=kind)
        _run.check(res, "dptrain predict")
        with h5py.File(out, "r") as f:
            if mc_samples is None:
                return f["pred"][()]
            return f["mean"][()], f["std"][()]
