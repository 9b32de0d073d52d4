#!/usr/bin/python3
"""PyTorch peer for the recurrent layers: the same network as examples/fmnist_lstm.json /
fmnist_gru.json (28 steps x 28 features -> LSTM/GRU 128 -> Dense 10 softmax, sparse categorical
CE, Adam lr 1e-3, batch 128), dropout 0, one thread, synthetic data of Fashion-MNIST's shape.

    /usr/bin/python3 bench/peers/torch_lstm.py [--cell lstm|gru] [--samples N] [--epochs E]

Prints ONE line: torch_rnn cell=lstm threads=1 batch=128 samples=N samples_per_s=... torch=...
(median over the timed epochs, after 5 warm-up steps).
"""
import argparse
import os
import statistics
import time

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
ap.add_argument("--samples", type=int, default=12800)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--units", type=int, default=128)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        rnn = nn.LSTM if a.cell == "lstm" else nn.GRU
        self.rnn = rnn(28, a.units, batch_first=True)
        self.out = nn.Linear(a.units, 10)

    def forward(self, x):
        _, h = self.rnn(x)
        h = h[0] if a.cell == "lstm" else h
        return self.out(h[-1])


net = Net()
opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
lossf = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.uniform(size=(a.samples, 28, 28)).astype(np.float32))
y = torch.from_numpy(rng.integers(0, 10, size=a.samples))
B = 128


def step(i):
    opt.zero_grad()
    loss = lossf(net(x[i:i + B]), y[i:i + B])
    loss.backward()
    opt.step()


for i in range(5):
    step(i * B)
rates = []
for e in range(a.epochs):
    t0 = time.perf_counter()
    for i in range(0, a.samples, B):
        step(i)
    rates.append(a.samples / (time.perf_counter() - t0))
print("torch_rnn cell=%s threads=1 batch=%d samples=%d samples_per_s=%.1f torch=%s" %
      (a.cell, B, a.samples, statistics.median(rates), torch.__version__))
