"""Benchmark: one epoch of Adam on the paper's MNIST network (784 → 2352 → 2352 → 1, ReLU, no biases).

15 000 MNIST-sized samples (synthetic Gaussian inputs, ±1 labels), mini-batches of 128 (118 steps),
mean squared error, Adam (lr 1e-3).

* Ours: :func:`simulations.training.train` — BLAS products on each batch, σ and σ′ by the fused Numba
  kernels of :func:`asymptotics.functions.apply`, Adam by :class:`simulations.optim.Adam` (one fused
  parallel Numba loop per parameter array); float32 and float64.
* Baseline: the same computation in plain numpy (np.maximum for ReLU, (H > 0) for its derivative,
  Adam with array temporaries), float64 and float32.

Fraction of the matrix-multiply rate = (GEMM flops of the epoch) / time / (the machine's measured
rate of a 4096³ ``@`` in that dtype). GEMM flops per step of B rows:
forward 2B(d p1 + p1 p2 + p2), backward 2B(p2 + p1 p2 + p1 p2 + d p1) (∇θ, ∇W2, G W2, ∇W1).

Run: ``python benchmarks/bench_training.py`` (about a minute on 2 cores); ``--small`` for widths 588.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # idle OpenBLAS threads sleep at once (see bench_giant_step)

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_rates, peak_mb  # noqa: E402


def gemm_flops(n, d, p1, p2, batch):
    steps = -(-n // batch)
    per_row = 2 * (d * p1 + p1 * p2 + p2) + 2 * (p2 + 2 * p1 * p2 + d * p1)
    return n * per_row, steps


def numpy_epoch(params, X, y, batch, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, state=None, order=None):
    W1, W2, th = params
    state = state or {"m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params], "t": 0}
    for start in range(0, X.shape[0], batch):
        idx = order[start:start + batch]
        Xb, yb = X[idx], y[idx]
        H1 = Xb @ W1.T
        A1 = np.maximum(H1, 0)
        H2 = A1 @ W2.T
        A2 = np.maximum(H2, 0)
        f = A2 @ th
        delta = 2.0 * (f - yb) / len(idx)
        g_th = A2.T @ delta
        G2 = np.outer(delta, th) * (H2 > 0)
        g_W2 = G2.T @ A1
        G1 = (G2 @ W2) * (H1 > 0)
        g_W1 = G1.T @ Xb
        state["t"] += 1
        t = state["t"]
        for p, g, m, v in zip(params, (g_W1, g_W2, g_th), state["m"], state["v"]):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mhat = m / (1 - b1 ** t)
            vhat = v / (1 - b2 ** t)
            p -= lr * mhat / (np.sqrt(vhat) + eps)
    return state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--n", type=int, default=15000)
    args = ap.parse_args(argv)
    from simulations.rng import stream
    from simulations.training import init_mlp, train

    d, width, batch, n = 784, (588 if args.small else 2352), 128, args.n
    rng = stream(0, "data")
    X = rng.standard_normal((n, d))
    y = np.sign(rng.standard_normal(n))
    rates = gemm_rates()
    flops, steps = gemm_flops(n, d, width, width, batch)
    print(f"network {d} → {width} → {width} → 1 (ReLU), n = {n}, batch {batch} ({steps} steps), "
          f"{flops / 1e9:.0f} GFLOP of GEMM per epoch")
    print(f"machine GEMM rate (4096³): float64 {rates['float64'] / 1e9:.0f} GFLOP/s, "
          f"float32 {rates['float32'] / 1e9:.0f} GFLOP/s")
    results = {}
    for dt in ("float32", "float64"):
        mlp = init_mlp(d, [width, width], "relu", seed=0, dtype=dt)
        train(mlp, X[:256].astype(dt), y[:256], epochs=1, batch_size=batch)  # compile / warm up
        t = time.perf_counter()
        train(mlp, X.astype(dt), y, epochs=1, batch_size=batch, seed=1)
        results[f"ours {dt}"] = time.perf_counter() - t
        mlp = init_mlp(d, [width, width], "relu", seed=0, dtype=dt)
        params = [w.copy() for w in mlp.parameters()]
        Xd = X.astype(dt)
        order = stream(1, "batch-order", 0).permutation(n)  # the order train(seed=1) visits in epoch 0
        numpy_epoch(params, Xd[:256], y[:256].astype(dt), batch, order=np.arange(256))
        params = [w.copy() for w in mlp.parameters()]
        t = time.perf_counter()
        numpy_epoch(params, Xd, y.astype(dt), batch, order=order)
        results[f"numpy {dt}"] = time.perf_counter() - t
    for dt in ("float32", "float64"):
        ours, base = results[f"ours {dt}"], results[f"numpy {dt}"]
        print(f"{dt}: ours {ours:6.2f} s/epoch ({flops / ours / rates[dt]:.0%} of GEMM rate) | plain numpy "
              f"{base:6.2f} s ({flops / base / rates[dt]:.0%}) | ratio {base / ours:.2f}x")
    print(f"peak memory {peak_mb():.0f} MiB")


if __name__ == "__main__":
    main()
