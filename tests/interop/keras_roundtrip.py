"""Keras <-> dptrain weight files, checked with real Keras (run by tests/interop/run.sh).

1. dptrain writes weights (legacy layout, name NOT *.weights.h5) -> keras Model.load_weights
   reads them -> Keras's predictions equal dptrain's (|diff| <= 1e-5).
2. dptrain writes a checkpoint -> Keras load_weights reads DIR/last.h5 directly -> same check.
3. Keras writes save_weights('k.weights.h5') (Keras 3 format) and model.save('k.h5') (legacy
   full model) -> dptrain loads each -> dptrain's predictions equal Keras's.
Usage: keras_roundtrip.py PREDICT_DUMP WORKDIR. Leaves the C side to predict_dump.c.
"""
import os
import subprocess
import sys

import numpy as np
import keras

TOL = 1e-5


def build():
    m = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    return m


def read_dump(path):
    xs, ys = [], []
    with open(path) as f:
        for line in f:
            a, b = line.split("|")
            xs.append([float(v) for v in a.split()])
            ys.append(float(b))
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32)[:, None]


def check(name, ours, theirs):
    d = float(np.max(np.abs(ours - theirs)))
    ok = d <= TOL
    print(f"{'ok' if ok else 'FAIL'}: {name}: max |diff| = {d:.3g} over {ours.size} predictions"
          f" (range {float(theirs.min()):.4f}..{float(theirs.max()):.4f})")
    return ok


def main():
    dump, work = sys.argv[1], sys.argv[2]
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    good = True

    # 1. ours -> Keras
    ours = os.path.join(work, "ours.h5")
    subprocess.run([dump, "save", ours, os.path.join(work, "ours.txt")], check=True)
    x, y = read_dump(os.path.join(work, "ours.txt"))
    m = build()
    m.load_weights(ours)
    good &= check("Keras load_weights(dptrain weights file)", y, m.predict(x, verbose=0))

    # 2. our checkpoint -> Keras
    ck = os.path.join(work, "run")
    subprocess.run([dump, "ckpt", ck, os.path.join(work, "ck.txt")], check=True)
    x, y = read_dump(os.path.join(work, "ck.txt"))
    m = build()
    m.load_weights(os.path.join(ck, "last.h5"))
    good &= check("Keras load_weights(dptrain checkpoint last.h5)", y, m.predict(x, verbose=0))

    # 3. Keras -> ours
    keras.utils.set_random_seed(3)
    m = build()
    for layer in m.layers:  # non-zero biases
        if layer.weights:
            k, b = layer.get_weights()
            layer.set_weights([k, np.sin(np.arange(b.size, dtype=np.float32)) * 0.05])
    wfile = os.path.join(work, "k.weights.h5")
    hfile = os.path.join(work, "k.h5")
    m.save_weights(wfile)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.save(hfile)
    for f in (wfile, hfile):
        out = os.path.join(work, os.path.basename(f) + ".txt")
        subprocess.run([dump, "load", f, out], check=True)
        x, y = read_dump(out)
        good &= check(f"dptrain load of Keras {os.path.basename(f)}", y, m.predict(x, verbose=0))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
