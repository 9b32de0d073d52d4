#!/usr/bin/python3
"""PyTorch peer for bench/run.sh: the same networks, data, global batch and Keras semantics as dptrain.

    /usr/bin/python3 bench/peers/torch_mlp.py --net tutorial|fmnist [--ranks N] [--data FILE.h5]
        [--epochs E] [--warmup-steps W] [--samples N] [--seed S] [--test]

Networks (Keras semantics: glorot_uniform kernels, zero biases, inverted dropout, Adam lr 1e-3,
beta 0.9/0.999, eps 1e-7 with Keras's placement of eps, losses from logits like Keras's backend):
  tutorial: 20 -> Dense 64 relu -> Dropout .5 -> Dense 64 relu -> Dropout .5 -> Dense 1 sigmoid, BCE, batch 32
  fmnist:   784 -> Dense 512 relu -> Dropout .2 -> Dense 512 relu -> Dropout .2 -> Dense 10 softmax,
            sparse categorical CE, batch 128
Data: --data FILE.h5 in dptrain's format (group train: x float32 or uint8 with attribute scale, y int)
read with h5py; without it (or when the file is missing) synthetic data of the same shape
(tutorial: 100,000 x 20; fmnist: 60,000 x 784).
Ranks: 1 = plain process; N > 1 = DistributedDataParallel over gloo, init tcp://127.0.0.1, the global
batch split across ranks (each rank takes its part of every global batch of one shared order).
Every process runs 1 thread (torch.set_num_threads(1), OMP/MKL/OpenBLAS threads 1).

Timing: --warmup-steps steps (not timed), then --epochs full epochs, each timed on rank 0 between
barriers. Prints ONE line:
  torch_mlp net=fmnist ranks=2 threads=1 batch=128 samples=60000 epochs=1 samples_per_s=11700.0
            epoch_s=5.128 loss=0.5012 accuracy=0.8200 [test_loss=.. test_accuracy=..] torch=1.13.1 data=FILE|synthetic
samples_per_s is the median over the timed epochs.
"""
import argparse
import os
import signal
import socket
import statistics
import sys
import time

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402

NETS = {
    # name: (features, hidden units, dropout rate, classes (1 = binary), batch, synthetic samples)
    "tutorial": (20, (64, 64), 0.5, 1, 32, 100_000),
    "fmnist": (784, (512, 512), 0.2, 10, 128, 60_000),
}


def build(net):
    feat, hidden, rate, classes, _, _ = NETS[net]
    layers, prev = [], feat
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(rate)]
        prev = h
    layers.append(nn.Linear(prev, classes))  # sigmoid / softmax folded into the loss, as Keras does
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)  # = Keras glorot_uniform (fan_in + fan_out symmetric)
            nn.init.zeros_(m.bias)
    return model


def n_weights(net):
    feat, hidden, _, classes, _, _ = NETS[net]
    dims = [feat, *hidden, classes]
    return sum(a * b + b for a, b in zip(dims, dims[1:]))


def read_group(path, group, limit=None):
    import h5py

    with h5py.File(path, "r") as f:
        g = f[group]
        n = g["x"].shape[0] if limit is None else min(limit, g["x"].shape[0])
        x = g["x"][:n]
        scale = g["x"].attrs.get("scale", None)
        x = x.reshape(n, -1).astype(np.float32)
        if scale is not None:
            x *= np.float32(np.asarray(scale).reshape(-1)[0])
        y = np.asarray(g["y"][:n])
    return x, y


def load(args):
    feat, _, _, classes, _, default_n = NETS[args.net]
    n = args.samples or default_n
    test = None
    try:
        import h5py  # noqa: F401
        have_h5py = True
    except ImportError:
        have_h5py = False
    if args.data and os.path.exists(args.data) and not have_h5py:
        print(f"torch_mlp: no h5py here: synthetic data instead of {args.data}", file=sys.stderr)
    if args.data and os.path.exists(args.data) and have_h5py:
        x, y = read_group(args.data, "train", n)
        if args.test:
            try:
                test = read_group(args.data, "test")
            except KeyError:
                test = None
        src = args.data
    else:
        rng = np.random.default_rng(args.seed)
        x = rng.standard_normal((n, feat), dtype=np.float32)
        if classes == 1:
            w = rng.standard_normal(feat).astype(np.float32)
            y = (x @ w > 0).astype(np.int64)
        else:
            y = rng.integers(0, classes, n)
        src = "synthetic"
    if x.shape[1] != feat:
        sys.exit(f"torch_mlp: {args.data}: {x.shape[1]} features, the {args.net} network takes {feat}")
    return x, y, test, src


def targets(y, classes):
    t = torch.from_numpy(np.ascontiguousarray(y))
    return t.float().reshape(-1, 1) if classes == 1 else t.long().reshape(-1)


def worker(rank, world, port, args):
    if args.timeout > 0:
        signal.alarm(args.timeout)  # a hung gloo rank must not hang bench/run.sh: SIGALRM ends it
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    feat, _, _, classes, batch, _ = NETS[args.net]
    batch = args.batch_size or batch
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP broadcasts rank 0's anyway)
    x, y, test, src = load(args)
    n = x.shape[0]
    X, Y = torch.from_numpy(x), targets(y, classes)

    model = build(args.net)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    loss_fn = nn.BCEWithLogitsLoss() if classes == 1 else nn.CrossEntropyLoss()
    eps_keras, b1, b2 = 1e-7, 0.9, 0.999
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(b1, b2), eps=eps_keras)
    step = 0

    def train_steps(order, nsteps=None):
        """Runs the global batches of ORDER (nsteps of them, or all); returns (loss sum, correct, count)."""
        nonlocal step
        net.train()
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        count = 0
        nb = (len(order) + batch - 1) // batch
        if nsteps is not None:
            nb = min(nb, nsteps)
        for k in range(nb):
            gidx = order[k * batch:(k + 1) * batch]
            idx = torch.tensor_split(gidx, world)[rank] if world > 1 else gidx
            xb, yb = X[idx], Y[idx]
            step += 1
            # Keras's Adam puts eps outside the bias correction: w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps).
            # PyTorch's: w -= lr/(1-b1^t) * m/(sqrt(v)/sqrt(1-b2^t) + eps'); equal when eps' = eps*sqrt(1-b2^t).
            opt.param_groups[0]["eps"] = eps_keras * (1.0 - b2 ** step) ** 0.5
            out = net(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(idx)
                pred = (out > 0).float() if classes == 1 else out.argmax(1)
                correct += (pred == yb).sum()
                count += len(idx)
        return loss_sum, correct, count

    g = torch.Generator().manual_seed(args.seed)
    # warm-up: not timed
    if args.warmup_steps > 0:
        train_steps(torch.randperm(n, generator=g), args.warmup_steps)
    rates, secs, last = [], [], None
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=g)
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        stats = train_steps(order)
        if world > 1:
            dist.barrier()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        secs.append(dt)
        last = stats
    loss_sum, correct, count = last
    sums = torch.tensor([float(loss_sum), float(correct), float(count)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(sums)
    line = (f"torch_mlp net={args.net} ranks={world} threads={torch.get_num_threads()} batch={batch} "
            f"samples={n} epochs={args.epochs} samples_per_s={statistics.median(rates):.1f} "
            f"epoch_s={statistics.median(secs):.3f} loss={sums[0] / sums[2]:.4f} accuracy={sums[1] / sums[2]:.4f}")
    if test is not None and rank == 0:
        net.eval()
        with torch.no_grad():
            tx, ty = torch.from_numpy(test[0]), targets(test[1], classes)
            out = model(tx)
            tl = loss_fn(out, ty).item()
            pred = (out > 0).float() if classes == 1 else out.argmax(1)
            ta = (pred == ty).float().mean().item()
        line += f" test_loss={tl:.4f} test_accuracy={ta:.4f}"
    line += f" weights={n_weights(args.net)} torch={torch.__version__} data={src}"
    if rank == 0:
        print(line, flush=True)
    if world > 1:
        # Both ranks are past the all_reduce above, so training is over everywhere. gloo's
        # barrier/destroy_process_group at exit was seen to hang (a rank spinning at 100 % CPU
        # after its peer left), so leave without them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", choices=sorted(NETS), required=True)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--data", help="dptrain-format HDF5 file (group train; test with --test)")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs (median reported)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--samples", type=int, default=0, help="use only the first N training samples")
    p.add_argument("--batch-size", type=int, default=0, help="GLOBAL batch (default: the network's)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timeout", type=int, default=600, help="seconds before every process ends itself (0 = never)")
    p.add_argument("--test", action="store_true", help="evaluate the file's test group after training")
    args = p.parse_args()
    if args.ranks < 1:
        p.error("--ranks must be >= 1")
    if args.ranks == 1:
        worker(0, 1, 0, args)
    else:
        mp.spawn(worker, args=(args.ranks, free_port(), args), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()
