#!/usr/bin/env python3
"""Are the samples Monte Carlo dropout calls uncertain misclassified more often? (issue 8)

    mc_uncertainty.py MC.h5 DATA.h5 [GROUP] [DET.h5]

MC.h5 is the output of `dptrain predict CKPT --data DATA.h5:GROUP --out MC.h5 --mc-samples K`
(/mean (N, C), /std (N, C), /entropy (N)); DATA.h5's GROUP/y holds the labels (default group
"test"). DET.h5 (optional) is the plain prediction (/pred, dropout off) of the same samples.

Prints a Markdown table: the samples sorted by predictive entropy and cut into ten deciles of
(nearly) equal size, with each decile's entropy range and misclassification rate of the MC mean,
then the overall accuracy, the error rate of the most and least uncertain deciles and their ratio,
and the AUROC of entropy as a detector of the model's errors (0.5 = no better than chance); with
DET.h5 also the AUROC of the dropout-off softmax's own entropy, the baseline MC dropout must beat.
Needs numpy and h5py (Debian: python3-numpy python3-h5py; use /usr/bin/python3).
"""
import sys

import h5py
import numpy as np


def auroc(score, positive):
    """Probability that a random positive scores higher than a random negative (ties count 1/2)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return (r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mc_path, data_path = sys.argv[1], sys.argv[2]
    group = sys.argv[3] if len(sys.argv) > 3 else "test"
    det_path = sys.argv[4] if len(sys.argv) > 4 else None
    with h5py.File(mc_path, "r") as f:
        mean = f["mean"][...]
        std = f["std"][...]
        ent = f["entropy"][...]
    with h5py.File(data_path, "r") as f:
        y = f[group]["y"][...].astype(np.int64).reshape(-1)
    if mean.shape[0] != y.shape[0]:
        sys.exit(f"{mc_path}: {mean.shape[0]} predictions, but {data_path}:/{group}/y has {y.shape[0]} labels")
    pred = mean.argmax(axis=1)
    wrong = pred != y
    n = len(y)

    order = np.argsort(ent, kind="mergesort")  # least uncertain first
    bins = np.array_split(order, 10)
    print(f"{n} samples of {data_path}:/{group}; MC mean accuracy {1 - wrong.mean():.4f}")
    det_ent = None
    if det_path:
        with h5py.File(det_path, "r") as f:
            p = f["pred"][...].astype(np.float64)
        det = p.argmax(axis=1)
        det_wrong = det != y
        det_ent = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
        print(f"dropout-off accuracy {(det == y).mean():.4f}; the MC mean and the dropout-off "
              f"prediction disagree on {(det != pred).sum()} samples")
    print()
    print("| entropy decile | entropy range (nats) | samples | misclassified | error rate | mean std of the predicted class |")
    print("| ---: | :--- | ---: | ---: | ---: | ---: |")
    rates = []
    for d, idx in enumerate(bins):
        e = ent[idx]
        err = wrong[idx]
        rates.append(err.mean())
        s = std[idx, pred[idx]].mean()
        print(f"| {d + 1} | {e.min():.4f} – {e.max():.4f} | {len(idx)} | {int(err.sum())} | "
              f"{100 * err.mean():.1f} % | {s:.4f} |")
    print()
    lo, hi = rates[0], rates[-1]
    ratio = f"{hi / lo:.1f}×" if lo > 0 else "∞ (no error in the least uncertain decile)"
    print(f"most uncertain decile: {100 * hi:.1f} % misclassified; least uncertain: {100 * lo:.1f} %; "
          f"ratio {ratio}")
    print(f"AUROC of the MC entropy for finding the misclassified samples: {auroc(ent, wrong):.4f}")
    if det_ent is not None:
        print(f"baseline, the entropy of the dropout-off softmax for its own errors: AUROC "
              f"{auroc(det_ent, det_wrong):.4f}")
    print(f"error rates rise monotonically over the deciles: {all(np.diff(rates) >= 0)}")


if __name__ == "__main__":
    main()
