"""Fashion-MNIST MLP (examples/fmnist_mlp.json's network) through dptrain.fit on 2 ranks, from a
dataset file used as it is (data=PATH): the same final weights and test accuracy as the CLI on
the same config from the same initial weights."""
import os
import subprocess

import h5py
import numpy as np
import pytest
import keras

import dptrain

FMNIST = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EPOCHS = 1


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    out = str(tmp_path_factory.mktemp("fm") / "fm.h5")
    subprocess.run([dptrain.find_binary(), "data", "fashion-mnist", "--out", out], check=True,
                   capture_output=True)
    return out


def test_fmnist_mlp_as_the_cli(fmnist, tmp_path):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    run = str(tmp_path / "py")
    h = dptrain.fit(model, data=fmnist, epochs=EPOCHS, batch_size=128, validation_split=0.1,
                    seed=1, ranks=2, run_dir=run, verbose=0)
    assert h.epoch == list(range(EPOCHS)) and "val_accuracy" in h.history
    assert not os.path.exists(os.path.join(run, "data.h5"))  # used as it is, no copy

    # the CLI: the example config, the same initial weights
    cli = str(tmp_path / "cli")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    subprocess.run(["mpirun", "-np", "2", dptrain.find_binary(), "fit",
                    os.path.join(ROOT, "examples", "fmnist_mlp.json"), "--data", fmnist,
                    "--epochs", str(EPOCHS), "--init-weights", os.path.join(run, "init.weights.h5"),
                    "--run-dir", cli, "--verbose", "0"], check=True, env=env, capture_output=True)
    ref = keras.models.clone_model(model)
    ref.load_weights(os.path.join(cli, "final.h5"))
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)

    with h5py.File(fmnist, "r") as f:
        xt = f["test/x"][()].astype(np.float32) * np.float32(f["test/x"].attrs["scale"])
        yt = f["test/y"][()]
    loss, acc = dptrain.evaluate(model, xt, yt, ranks=2)
    r = subprocess.run([dptrain.find_binary(), "evaluate", os.path.join(cli, "final.h5"),
                        "--data", fmnist + ":test", "--config",
                        os.path.join(ROOT, "examples", "fmnist_mlp.json")],
                       check=True, capture_output=True, text=True)
    cli_acc = float(r.stdout.split("accuracy:")[1].split()[0])
    print("Fashion-MNIST MLP, %d epochs on 2 ranks: test accuracy %.4f (CLI %.4f)" %
          (EPOCHS, acc, cli_acc))
    assert acc == cli_acc and acc > 0.8
    keras_acc = model.evaluate(xt, yt, verbose=0)[1]
    assert abs(keras_acc - acc) < 1e-3
