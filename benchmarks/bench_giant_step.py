"""Benchmark: Algorithm 1 side by side with the published notebook's algorithm, at the notebook's grid.

The published code of "How Two-Layer Neural Networks Learn, One (Giant) Step at a Time"
(arXiv:2305.18270), ``single_step/single_step.ipynb``, runs one preprocessed giant step at
d = 512, p = 1024 for the sample sizes n = ⌊d^κ⌋, κ ∈ {1.3, 1.65, 2} (n = 3326, 29532, 262144),
n_test = 10⁵, λ_P = 1, η = 10√(np), target T1 (committee of He1 + He2/2 + He4/24 on two
orthonormal directions), ReLU student, a0 ~ N(0, 1/p), noise 0, 10 seeds per n, float64 numpy.
Its own timings (the authors' machine): 41.7, 77.2 and 445 s for 10 seeds.

Per seed its loop does, in this order (restated in :func:`notebook_seed`, plain numpy, float64,
the legacy global-state generator ``randn``, everything in memory):

1. draw Z (n × d), Z_test (n_test × d), the labels of both and their noise vectors;
2. A = mean y, B = mean(y z) on both sets (the test pair is used for the test prediction);
3. the gradient G = Zᵀ[(r a0ᵀ/√p) ⊙ σ′(Z W0ᵀ)]/n with r = ỹ − σ(Z W0ᵀ)a0/√p (Z W0ᵀ formed twice),
   W = W0 + η Gᵀ;
4. X = σ(Z Wᵀ) on the SAME batch, X_test = σ(Z_test Wᵀ);
5. ridge on X/√p with ``inv(XᵀX/p + λI) @ (X/√p)ᵀ @ ỹ`` evaluated left to right (a p × n product),
   training and test losses, then the predictions with A + Bᵀz put back and the test error.

Ours: :func:`simulations.giant_step.simulate` in the notebook's protocol (``reuse_batch=True``:
the readout on the gradient batch; ``preprocess=True`` with A, B from that batch; the test set
streamed, never stored), in float64 (the notebook's dtype) and float32 (GEMMs and activations in
float32, every accumulation and the ridge solve in float64). Both sides run in this one process,
one after the other at each point, each run right after the matrix-multiply rate of its dtype is
measured (4096³ ``@``, best of 3), so that a change of the machine's load between runs moves both.

"Fraction of the GEMM rate" = (the algorithm's matrix-product flops) / (time) / (that rate in
the run's dtype), the same flop count for both sides (:func:`flops`): the gradient's two products
4npd, the features after the step 2npd, the Gram matrix np² (SYRK), the test features 2 n_test p d.
The notebook does more (Z W0ᵀ twice, the p × n product of the ridge, an explicit inverse); those
extra flops count as overhead, not as work. Peak memory: numpy's allocations as traced by
``tracemalloc`` during the run (numpy reports its buffers to it).

Run: ``python benchmarks/bench_giant_step.py`` (the three points, one seed each; 7 minutes on 2
cores shared with other jobs, most of it the notebook's largest point, which needs 10.4 GB of
memory), ``--points 0 1`` for a subset,
``--small`` for a quick check (d = 128, p = 256, n_test = 10⁴ at the same κ).
"""
from __future__ import annotations

import os

# Idle OpenBLAS threads spin for ~2^28 cycles (~0.1 s) after every product before sleeping; on a
# 2-core machine that takes a core away from whatever runs next (here: the parallel drawing of
# random numbers). 2^4 cycles makes them sleep at once. Read by OpenBLAS when numpy is imported,
# so it is set before the import; it applies to both sides. Override it in the environment.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_rate  # noqa: E402

#: single_step.ipynb: the exponents of its sample sizes n = ⌊d^κ⌋ and its own seconds per 10 seeds.
NOTEBOOK_KAPPAS = (1.3, 1.65, 2.0)
NOTEBOOK_SECONDS_10_SEEDS = {3326: 41.66, 29532: 77.17, 262144: 445.02}
LAMBDA_P = 1.0


def notebook_grid(d: int) -> list[int]:
    """The notebook's sample sizes: ⌊d^κ⌋ for κ = 1.3, 1.65, 2 (logspace of base d, cast to int)."""
    return [int(n) for n in np.logspace(NOTEBOOK_KAPPAS[0], NOTEBOOK_KAPPAS[-1], len(NOTEBOOK_KAPPAS), base=d)
            .astype(int)]


def flops(d: int, p: int, n: int, n_test: int) -> float:
    """Matrix-product flops of one preprocessed step with the readout on the same batch."""
    return 4.0 * n * p * d + 2.0 * n * p * d + float(n) * p * p + 2.0 * n_test * p * d


# ----------------------------------------------------------------------------- the notebook's loop
def _he124(x):
    """s(x) = He1 + He2/2 + He4/24 (the notebook's teacher activation)."""
    x2 = x * x
    return (x2 * x2 - 6.0 * x2 + 3.0) / 24.0 + (x2 - 1.0) / 2.0 + x


def _teacher_labels(rs, Z, t1, t2):
    """y = (s(Z θ1) + s(Z θ2))/2 + √noise ε with noise 0 (the ε are still drawn, as there)."""
    return 0.5 * (_he124(Z @ t1) + _he124(Z @ t2)) + 0.0 * rs.standard_normal(Z.shape[0])


def _notebook_setup(rs, d, p):
    """W0 rows N(0, I/d); θ1 uniform; θ2 ⊥ θ1 from a vector with one random entry; a0 ~ N(0, 1/p)."""
    W0 = rs.standard_normal((p, d)) / math.sqrt(d)
    t1 = rs.standard_normal(d)
    t1 /= np.linalg.norm(t1)
    e = np.zeros(d)
    e[0] = rs.standard_normal()
    e -= (e @ t1) * t1
    t2 = e / np.linalg.norm(e)
    a0 = rs.standard_normal(p) / math.sqrt(p)
    return W0, t1, t2, a0


def notebook_seed(d: int, p: int, n: int, n_test: int, seed: int, lam: float = LAMBDA_P) -> float:
    """One seed of single_step.ipynb's loop (steps 1-5 of the module docstring); its test error.

    The test prediction uses A, B estimated on the test set itself, as the notebook does (a leak
    of ≈ 10⁻³ in the error at d = 512; ours never uses test labels for anything but the error)."""
    rs = np.random.RandomState(seed)  # the algorithm of the notebook's global np.random.randn
    W0, t1, t2, a0 = _notebook_setup(rs, d, p)
    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    eta = 10.0 * math.sqrt(n) * math.sqrt(p)
    Z = rs.standard_normal((n, d))
    Zt = rs.standard_normal((n_test, d))
    y = _teacher_labels(rs, Z, t1, t2)
    yt = _teacher_labels(rs, Zt, t1, t2)
    A, At = y.mean(), yt.mean()
    B, Bt = (y[:, None] * Z).mean(axis=0), (yt[:, None] * Zt).mean(axis=0)
    y_res, yt_res = y - A - Z @ B, yt - At - Zt @ Bt
    # the notebook's evaluation order: a scalar times a matrix, then the product (n × p temporaries)
    out0 = relu(Z @ W0.T) / math.sqrt(p) @ a0
    M = np.outer(y_res - out0, a0) / math.sqrt(p) * (Z @ W0.T > 0).astype(int)
    W = W0 + eta * (Z.T / n @ M).T
    X, Xt = relu(Z @ W.T), relu(Zt @ W.T)
    Xs = X / math.sqrt(p)
    w = np.linalg.inv(Xs.T @ Xs + lam * np.identity(p)) @ Xs.T @ y_res  # n >= p on the whole grid
    fit, pred = X @ w / math.sqrt(p), Xt @ w / math.sqrt(p)
    _train, _test = np.mean((y_res - fit) ** 2), np.mean((yt_res - pred) ** 2)
    _y_hat_train = A + Z @ B + X / math.sqrt(p) @ w
    y_hat = At + Zt @ Bt + Xt / math.sqrt(p) @ w
    return float(np.mean((y_hat - yt) ** 2))


# ----------------------------------------------------------------------------- ours
def ours_seed(d: int, p: int, n: int, n_test: int, seed: int, dtype: str) -> float:
    """Algorithm 1 in the notebook's protocol (batch reused for the readout, preprocessing)."""
    from asymptotics.conventions import lam_from_scaled_features
    from simulations.giant_step import simulate

    return simulate("T1", "relu", d, p, n, 1, "notebook", lam_from_scaled_features(LAMBDA_P, p, n), n_test,
                    a_init="gauss", preprocess=True, reuse_batch=True, dtype=dtype, seed=seed).test_error


def _timed(fn, *args) -> tuple[float, float, float]:
    """(seconds, result, traced peak MB) of one call."""
    tracemalloc.start()
    t = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, value, peak


# ----------------------------------------------------------------------------- main
def _point(d, p, n, n_test, seeds, dtypes, baseline: bool) -> None:
    work = flops(d, p, n, n_test)
    print(f"n = {n} (κ = {math.log(n) / math.log(d):.2f}), {work:.3g} flop per seed; the GEMM rate of the "
          "run's dtype is measured right before each run")
    times = {}
    rows = [(f"ours {dt}", dt, ours_seed, (dt,)) for dt in dtypes]
    if baseline:
        rows.append(("notebook (numpy)", "float64", notebook_seed, ()))
    for label, dt, fn, extra in rows:
        rate = gemm_rate(dt)
        runs = [_timed(fn, d, p, n, n_test, s, *extra) for s in seeds]
        t = float(np.mean([r[0] for r in runs]))
        times[label] = t
        errs = [r[1] for r in runs]
        err = f"{np.mean(errs):.4f}" + (f" ± {np.std(errs):.4f}" if len(errs) > 1 else "")
        print(f"  {label:18s}: {t:7.2f} s/seed, test error {err}, {100 * work / t / rate:3.0f} % of the {dt} "
              f"GEMM rate ({rate / 1e9:.1f} GFLOP/s), peak {max(r[2] for r in runs):6.0f} MB")
    if baseline:
        t_nb = times["notebook (numpy)"]
        ratios = ", ".join(f"{label} {t_nb / times[label]:.1f}x" for label in times if label.startswith("ours"))
        ref = NOTEBOOK_SECONDS_10_SEEDS.get(n) if d == 512 and p == 1024 else None
        own = f" (the notebook's own run: {ref / 10:.1f} s/seed on its authors' machine)" if ref else ""
        print(f"  speed-up over the notebook's algorithm: {ratios}{own}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="d = 128, p = 256, n_test = 10^4")
    ap.add_argument("--points", type=int, nargs="*", default=None, help="indices into the grid (default all)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per side and point (default 1)")
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--no-baseline", action="store_true", help="time our simulator only")
    args = ap.parse_args()
    d, p, n_test = (128, 256, 10_000) if args.small else (512, 1024, 100_000)
    grid = notebook_grid(d)
    points = range(len(grid)) if args.points is None else args.points
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; OPENBLAS_THREAD_TIMEOUT="
          f"{os.environ['OPENBLAS_THREAD_TIMEOUT']}; load average {os.getloadavg()[0]:.2f} "
          "(other processes on the same cores slow everything down)")
    print(f"single_step.ipynb: T1, ReLU, d = {d}, p = {p}, n = {grid}, T = 1, η = 10√(np), λ_P = 1, "
          f"n_test = {n_test}, preprocessing, readout on the gradient batch")
    ours_seed(d, p, 4096, 4096, 0, dtypes[0])  # warm-up: Numba kernels, imports
    for i in points:
        _point(d, p, grid[i], n_test, list(range(args.seeds)), dtypes, not args.no_baseline)


if __name__ == "__main__":
    main()
