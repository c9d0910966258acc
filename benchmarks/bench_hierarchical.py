"""Benchmark: one epoch of full-batch Adam on the three-layer network of the hierarchical model.

Point (issues 8 and 17): d = 40, m1 = 1600, m2 = 1000, n = 2^17, μP, full batch. One epoch = one
forward + backward pass over all n rows and one Adam update of every tensor.

* Ours: the training pass of :mod:`simulations.hierarchical` (``_loss_grad``: 16 lanes of rows in
  parallel, each in tiles small enough for Z to stay in cache; per tile the BLAS GEMMs
  Z = [X, 1][V, s]^T and ∂[V, s] += W^T [X, 1], fused Numba kernels for the cube, δ and W, and
  the ReLU branch through its sorted kinks), float64 and float32, plus the update of the shared
  Adam (:class:`simulations.optim.Adam`, the one :func:`~simulations.hierarchical.train_adam` uses).
* Baseline: a plain numpy implementation of the same gradient (whole n × m1 and n × m2 arrays, one
  expression per formula, Z*Z*Z rather than Z**3) and of the Adam update, float64.

Everything runs in this one process, interleaved: each round times a 4096³ matrix product in
float64, ours in float64, the 4096³ product in float32, ours in float32, and the baseline; the
best round of each counts. "Fraction of the GEMM rate" = (GEMM flops of one epoch,
4 n m1 (d + 1)) / time / (the rate of the 4096³ product of the same dtype in the same rounds).
Both clocks are reported: wall time, and CPU time of the process (all its threads; on a shared,
loaded machine the wall clock also counts the time other processes hold the cores, the CPU
time does not, while threads that spin waiting for work count in it). Memory: the peak of the
arrays allocated during one epoch, beyond those held before it (tracemalloc traces numpy's
allocations); "data" is the training set itself (n × (d + 1) + n floats).

Run: ``python benchmarks/bench_hierarchical.py`` (about a minute on 2 idle cores, 9 GB for the
baseline), ``--small`` for d = 16, m1 = 256, n = 2^14.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402


def gemm_flops(n, m1, d):
    """Forward Z = [X,1] Θ^T and backward ∂Θ = W^T [X,1]: 2 × 2 n m1 (d + 1)."""
    return 4.0 * n * m1 * (d + 1)


def _setup(d, m1, m2, n, dtype):
    from simulations import hierarchical as S

    problem = S.make_problem(d, seed=0)
    net = S.init_network(d, m1, m2, seed=0, mup=True)
    rng = np.random.default_rng(1)
    net.u = rng.standard_normal(m1)  # a trained-looking state: every branch active
    net.c = rng.standard_normal(m2)
    X1, y, _ = problem._batch1("train", n, dtype=np.dtype(dtype))
    return S, net, X1, y


def _adam(net, grads, moments, step, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Plain numpy Adam (the baseline's update)."""
    for name, param in net.tensors().items():
        g = grads[name]
        m, v = moments[name]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        param -= lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)


def numpy_epoch(net, X, y):
    """Plain numpy loss + gradient (whole arrays), same model and formulas."""
    n, d = X.shape
    V, s = net.theta[:, :d], net.theta[:, d]
    Z = X @ V.T + s
    Phi = Z * Z * Z
    g = net.alpha1 * (Phi @ net.u)
    pre = np.outer(g, net.a) + net.b
    A = pre > 0
    R = np.maximum(pre, 0)
    f = g + net.alpha2 * (R @ net.c)
    e = (f - y) / n
    grads = {"c": net.alpha2 * (R.T @ e), "b": net.alpha2 * net.c * (A.T @ e),
             "a": net.alpha2 * net.c * (A.T @ (e * g))}
    delta = net.alpha1 * e * (1 + net.alpha2 * (A @ (net.a * net.c)))
    grads["u"] = Phi.T @ delta
    W = 3 * (delta[:, None] * net.u) * (Z * Z)
    grads["theta"] = np.hstack([W.T @ X, W.sum(axis=0)[:, None]])
    return 0.5 * np.mean((f - y) ** 2), grads


def _ours(d, m1, m2, n, dtype):
    """One epoch of ours (a closure) after compiling and warming up; returns (epoch, loss box)."""
    from simulations.optim import Adam

    S, net, X1, y = _setup(d, m1, m2, n, dtype)
    eng = S._Engine(m1, m2, d, S.BLOCK, np.dtype(dtype))
    opt = Adam(list(net.tensors().values()), lr=1e-3)
    S._loss_grad(net, X1[: 4 * S.BLOCK], y[: 4 * S.BLOCK], eng, S.BLOCK)  # compile / warm up
    opt.step([np.zeros_like(p) for p in opt.params], lr=0.0)  # compile the Adam kernels
    opt.t = 0
    out = {}

    def epoch():
        out["loss"], grads = S._loss_grad(net, X1, y, eng, S.BLOCK)
        opt.step([grads[k] for k in net.tensors()])
    return epoch, out


def _baseline(d, m1, m2, n):
    _, net, X1, y = _setup(d, m1, m2, n, "float64")
    X = np.ascontiguousarray(X1[:, :d])
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in net.tensors().items()}
    out = {"step": 0}

    def epoch():
        out["step"] += 1
        out["loss"], grads = numpy_epoch(net, X, y)
        _adam(net, grads, moments, out["step"])
    return epoch, out


def _gemm(dtype, size=4096):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)
    return lambda: A @ B


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _transient_mb(fn) -> float:
    """Peak MiB of the arrays allocated during one call, beyond those held before it."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="d = 16, m1 = 256, n = 2^14")
    ap.add_argument("--d", type=int, default=40)
    ap.add_argument("--m1", type=int, default=1600)
    ap.add_argument("--m2", type=int, default=1000)
    ap.add_argument("--n", type=int, default=1 << 17)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    d, m1, m2, n = (16, 256, 1000, 1 << 14) if args.small else (args.d, args.m1, args.m2, args.n)
    flops = gemm_flops(n, m1, d)
    print(f"one full-batch Adam epoch: d = {d}, m1 = {m1}, m2 = {m2}, n = {n}  (GEMM flops {flops / 1e9:.1f} G; "
          f"training data {(n * (d + 1) * 8 + n * 8 * 2) / 2**20:.0f} MB)")
    runs = {"gemm float64": (_gemm(np.float64), {}), "ours float64": _ours(d, m1, m2, n, "float64"),
            "gemm float32": (_gemm(np.float32), {}), "ours float32": _ours(d, m1, m2, n, "float32"),
            "numpy float64": _baseline(d, m1, m2, n)}
    memory = {k: _transient_mb(fn) for k, (fn, _) in runs.items() if not k.startswith("gemm")}
    best = {k: (np.inf, np.inf) for k in runs}
    for _ in range(args.rounds):
        for k, (fn, _) in runs.items():
            best[k] = tuple(map(min, best[k], _timed(fn)))
    rate = {dt: [2.0 * 4096**3 / t for t in best[f"gemm {dt}"]] for dt in ("float64", "float32")}
    print(f"GEMM rate (4096³ @, best of {args.rounds} rounds): float64 {rate['float64'][0] / 1e9:.1f} GFLOP/s wall, "
          f"{rate['float64'][1] / 1e9:.1f} per CPU-second; float32 {rate['float32'][0] / 1e9:.1f} wall, "
          f"{rate['float32'][1] / 1e9:.1f} per CPU-second")
    for k in ("ours float64", "ours float32", "numpy float64"):
        (tw, tc), r = best[k], rate[k.split()[1]]
        print(f"  {k:14s} {tw:7.3f} s/epoch wall ({flops / tw / r[0]:5.1%} of the GEMM rate), {tc:7.3f} CPU-s "
              f"({flops / tc / r[1]:5.1%})  loss {runs[k][1]['loss']:.6f}  memory during an epoch +{memory[k]:.0f} MB")
    base = best["numpy float64"]
    for k in ("ours float64", "ours float32"):
        print(f"speed-up of {k} over numpy float64: {base[0] / best[k][0]:.2f}x wall, {base[1] / best[k][1]:.2f}x CPU")


if __name__ == "__main__":
    main()
