"""Ctrl-C during dptrain.fit checkpoints (exit 75, DptrainInterrupted saying how to resume), and
resume=True continues to the same weights as an uninterrupted fit."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

import dptrain
from helpers import tutorial_data, tutorial_model

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = 6


def _data(tmp_path):
    # ~0.3 s an epoch: still training when the signal lands
    x, y = tutorial_data(100000, seed=5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y


CHILD = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [%(here)r, %(src)r]
    import numpy as np
    import dptrain
    from helpers import tutorial_model
    x, y = np.load(%(x)r), np.load(%(y)r)
    model = tutorial_model()
    try:
        dptrain.fit(model, x, y, epochs=%(epochs)d, batch_size=32, ranks=2, seed=7,
                    run_dir=%(run)r, verbose=2)
        print(json.dumps({"finished": True}))
    except dptrain.DptrainError as e:
        print(json.dumps({"exit_code": e.exit_code, "message": str(e), "run_dir": e.run_dir,
                          "keyboard": isinstance(e, KeyboardInterrupt)}))
""")


def _rows(run):
    p = os.path.join(run, "history.jsonl")
    if not os.path.exists(p):
        return 0
    with open(p) as f:
        return sum(1 for line in f if line.strip())


def test_interrupt_then_resume_equals_uninterrupted(tmp_path):
    x, y = _data(tmp_path)
    ref = tutorial_model()
    dptrain.fit(ref, x, y, epochs=EPOCHS, batch_size=32, ranks=2, seed=7,
                run_dir=str(tmp_path / "ref"), verbose=0)

    run = str(tmp_path / "cut")
    script = CHILD % {"here": HERE, "src": os.path.dirname(HERE), "x": str(tmp_path / "x.npy"),
                      "y": str(tmp_path / "y.npy"), "epochs": EPOCHS, "run": run}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while _rows(run) < 2 and time.time() - t0 < 120 and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "the fit ended before it could be interrupted"
    child.send_signal(signal.SIGINT)  # what Ctrl-C sends Python
    out, err = child.communicate(timeout=120)
    res = json.loads(out.strip().splitlines()[-1])
    assert res.get("exit_code") == 75, (out, err)
    assert res["keyboard"] and res["run_dir"] == run
    assert "resume=True" in res["message"] and run in res["message"]
    done = _rows(run)
    assert done < EPOCHS

    model = tutorial_model()
    h = dptrain.fit(model, x, y, epochs=EPOCHS, batch_size=32, ranks=2, seed=7, run_dir=run,
                    resume=True, verbose=0)
    assert h.epoch == list(range(EPOCHS))
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit, as the CLI's resume
    print("interrupted after %d epochs; resumed weights equal the uninterrupted run's" % done)


def test_preempted_run_raises_with_run_dir_and_resumes(tmp_path):
    """A signal from outside (Slurm's warning, an admin) to one rank: DptrainError with exit 75
    and the run directory; resume=True alone continues this model's last run."""
    import threading
    x, y = tutorial_data(100000, seed=5)
    model = tutorial_model()
    run = str(tmp_path / "pre")

    def preempt():
        t0 = time.time()
        while _rows(run) < 1 and time.time() - t0 < 120:
            time.sleep(0.05)
        ranks = []  # the ranks: argv[0] is the binary, argv has this run directory
        for pid in os.listdir("/proc"):
            try:
                argv = open("/proc/%s/cmdline" % pid).read().split("\0")
            except (OSError, ValueError):
                continue
            if (os.path.basename(argv[0]) == "dptrain" and run in argv and
                    "--dry-run" not in argv):
                ranks.append(int(pid))
        if ranks:
            os.kill(ranks[-1], signal.SIGUSR1)

    t = threading.Thread(target=preempt)
    t.start()
    try:
        dptrain.fit(model, x, y, epochs=EPOCHS, batch_size=32, ranks=2, seed=7, run_dir=run,
                    verbose=0)
        raise AssertionError("the fit was not preempted")
    except dptrain.DptrainError as e:
        assert e.exit_code == 75 and e.run_dir == run
        assert not isinstance(e, KeyboardInterrupt)
        assert "preempted (resumable)" in e.message and "resume=True" in str(e)
    finally:
        t.join()
    h = dptrain.fit(model, x, y, epochs=EPOCHS, batch_size=32, ranks=2, seed=7, resume=True,
                    verbose=0)
    assert h.run_dir == run and h.epoch == list(range(EPOCHS))
