"""Benchmark: one epoch of full-batch Adam on the three-layer network of the hierarchical model.

Point (issue 8): d = 40, m1 = 1600, m2 = 1000, n = 2^17, μP, full batch. One epoch = one forward
+ backward pass over all n rows and one Adam update of every tensor.

* Ours: :func:`simulations.hierarchical.loss_and_gradient` machinery (blocks of rows, BLAS GEMMs
  for Z = [X, 1][V, s]^T and ∂[V, s] = W^T [X, 1], fused Numba kernels for the cube, the ReLU
  branch and W), float64 and float32, plus the update of the shared Adam
  (:class:`simulations.optim.Adam`, the one :func:`~simulations.hierarchical.train_adam` uses).
* Baseline: a plain numpy implementation of the same gradient (whole n × m1 arrays, one
  expression per formula, Z*Z*Z rather than Z**3) and of the Adam update, float64.

Each measurement runs in a fresh (spawned) process so that its peak memory
(``ru_maxrss``) is its own; "data" is the training set itself (n × (d + 1) + n floats). The
machine's matrix-multiply rate is measured first (4096^3 ``@``, best of 3, per dtype);
"fraction of GEMM rate" = (GEMM flops of one epoch, 4 n m1 (d + 1)) / time / that rate.

Run: ``python benchmarks/bench_hierarchical.py`` (about a minute on 2 cores), ``--small`` for
d = 16, m1 = 256, n = 2^14.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_rates as _gemm_rates, in_child, peak_mb as _peak_mb  # noqa: E402




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


def _run_ours(d, m1, m2, n, dtype, repeats):
    from simulations.optim import Adam

    S, net, X1, y = _setup(d, m1, m2, n, dtype)
    eng = S._Engine(m1, m2, d, S.BLOCK, np.dtype(dtype))
    opt = Adam(list(net.tensors().values()), lr=1e-3)
    S._loss_grad(net, X1[: 4 * S.BLOCK], y[: 4 * S.BLOCK], eng, S.BLOCK)  # compile / warm up
    opt.step([np.zeros_like(p) for p in opt.params], lr=0.0)  # compile the Adam kernels
    opt.t = 0
    base = _peak_mb()
    times = []
    loss = None
    for r in range(repeats):
        t = time.perf_counter()
        loss, grads = S._loss_grad(net, X1, y, eng, S.BLOCK)
        opt.step([grads[k] for k in net.tensors()])
        times.append(time.perf_counter() - t)
    return min(times), loss, _peak_mb(), base


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


def _run_numpy(d, m1, m2, n, repeats):
    _, net, X1, y = _setup(d, m1, m2, n, "float64")
    X = np.ascontiguousarray(X1[:, :d])
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in net.tensors().items()}
    base = _peak_mb()
    times = []
    loss = None
    for r in range(repeats):
        t = time.perf_counter()
        loss, grads = numpy_epoch(net, X, y)
        _adam(net, grads, moments, r + 1)
        times.append(time.perf_counter() - t)
    return min(times), loss, _peak_mb(), base




def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="d = 16, m1 = 256, n = 2^14")
    ap.add_argument("--d", type=int, default=40)
    ap.add_argument("--m1", type=int, default=1600)
    ap.add_argument("--m2", type=int, default=1000)
    ap.add_argument("--n", type=int, default=1 << 17)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    d, m1, m2, n = (16, 256, 1000, 1 << 14) if args.small else (args.d, args.m1, args.m2, args.n)
    rates = in_child(_gemm_rates)
    print(f"machine GEMM rate (4096^3 @): float64 {rates['float64'] / 1e9:.1f} GFLOP/s, "
          f"float32 {rates['float32'] / 1e9:.1f} GFLOP/s")
    data_mb = (n * (d + 1) * 8 + n * 8 * 2) / 2**20
    print(f"one full-batch Adam epoch: d = {d}, m1 = {m1}, m2 = {m2}, n = {n}  "
          f"(GEMM flops {gemm_flops(n, m1, d) / 1e9:.1f} G; training data {data_mb:.0f} MB)")
    results = {}
    for label, fn, fargs in [("ours float64", _run_ours, (d, m1, m2, n, "float64", args.repeats)),
                             ("ours float32", _run_ours, (d, m1, m2, n, "float32", args.repeats)),
                             ("numpy float64", _run_numpy, (d, m1, m2, n, args.repeats))]:
        t, loss, peak, base = in_child(fn, *fargs)
        results[label] = t
        rate = rates["float32" if "float32" in label else "float64"]
        frac = gemm_flops(n, m1, d) / t / rate
        print(f"  {label:14s} {t:7.3f} s/epoch  loss {loss:.6f}  GEMM-rate fraction {frac:5.1%}  "
              f"peak RSS {peak:7.0f} MB (after setup {base:.0f} MB, +{peak - base:.0f} MB)")
    print(f"speed-up vs numpy: float64 {results['numpy float64'] / results['ours float64']:.2f}x, "
          f"float32 {results['numpy float64'] / results['ours float32']:.2f}x")


if __name__ == "__main__":
    main()
