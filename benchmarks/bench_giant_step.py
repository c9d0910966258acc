"""Benchmark: Algorithm 1 (one giant step + ridge readout) at the paper's largest point.

Point (single_step.ipynb; docs/theory/giant_step.md): target T1 (committee of He1 + He2/2 + He4/24), ReLU student,
d = 512, p = 1024, n = 2^18 = 262144, T = 1 step with eta = 10 sqrt(n p), a0 ~ N(0, 1/p),
preprocessing (first Hermite component removed), lambda_P = 1 (lam = p/n), n_test = 10^5.

* Ours: :func:`simulations.giant_step.simulate` in its default clean mode (fresh readout batch,
  A, B from the gradient batch), streamed in chunks, float32 and float64; 1 seed by default
  (``--seeds S`` for more).
* Baseline: a plain numpy implementation in the style of the published notebook (global RNG
  ``np.random.randn``, whole batches in memory, the gradient as in the notebook (Z W0^T formed
  twice), features of the same batch for the readout, ``np.linalg.inv`` for the ridge,
  float64). At the full size it needs > 10 GB and minutes per seed, so by default it is run at
  a smaller n (``--baseline-n``, default 65536) and its time is SCALED BY ITS FLOP COUNT to
  n = 262144 (printed as such). The notebook's own timing (445 s for 10 seeds, i.e. 44.5 s
  per seed, on the authors' machine) is printed for reference.

Each measurement runs in a fresh process (spawned), so that its peak memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process) is its own. The machine's
matrix-multiply rate is measured first (4096^3 ``@``, best of 3); "fraction of GEMM rate" =
(flops of the run) / (time) / (that rate in the run's dtype), with SYRK (F^T F) counted as its
true n p^2 flops.

Run: ``python benchmarks/bench_giant_step.py`` (about a minute and a half on 2 cores; run it
once), ``--small`` for a quick check (d = 128, p = 256, n = 16384, n_test = 10^4, baseline at
the same n, no scaling).
"""
from __future__ import annotations

import os

# Idle OpenBLAS threads spin for ~2^28 cycles (~0.1 s) after every product before sleeping; on a
# 2-core machine that takes a core away from whatever runs next (here: the parallel drawing of
# random numbers, ~15% of the total time). 2^4 cycles makes them sleep at once. Read by OpenBLAS
# when numpy is imported, so it is set before the import (and inherited by the spawned
# measurement processes, baseline included). Override by setting it in the environment.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_rates as _gemm_rates, in_child as _in_child, peak_mb as _peak_mb  # noqa: E402

NOTEBOOK_SECONDS_PER_SEED = 445.0 / 10  # single_step.ipynb, n = 262144, 10 seeds


# ----------------------------------------------------------------------------- flop counts
def flops_ours(d, p, n, n_test, steps=1, n_ridge=None):
    """Per step 2 GEMMs of n p d (Z W^T, sigma'(H)^T (r Z)); readout Z W^T + SYRK; test Z W^T."""
    n_ridge = n if n_ridge is None else n_ridge
    return steps * 4.0 * n * p * d + 2.0 * n_ridge * p * d + n_ridge * p * p + 2.0 * n_test * p * d


def flops_baseline(d, p, n, n_test):
    """The notebook: Z W0^T twice + Z^T R (gradient), Z W^T (features), X^T X (SYRK),
    inverse (~2 p^3), test features."""
    return 8.0 * n * p * d + n * p * p + 2.0 * p**3 + 2.0 * n_test * p * d


# ----------------------------------------------------------------------------- baseline
def notebook_baseline(d, p, n, n_test, seed):
    """single_step.ipynb, restated (T1 teacher, ReLU student, preprocessing, batch reuse).

    Differences from the notebook: the test predictions use the TRAINING estimates A, B (the
    notebook recomputes them from the test labels, a leak), so the number is comparable to
    ours; everything else (global RNG, data in memory, explicit inverse) is as in the notebook.
    """
    np.random.seed(seed)

    def s_star(x):
        return (x**4 - 6 * x**2 + 3) / 24 + (x**2 - 1) / 2 + x

    def f(x):
        return np.maximum(x, 0)

    def fprime(x):
        return (x > 0).astype(int)

    W0 = 1 / np.sqrt(d) * np.random.randn(p, d)
    v1 = np.random.randn(d)
    theta1 = v1 / np.linalg.norm(v1)
    w = np.zeros(d)
    w[0] = np.random.randn()
    w -= np.dot(w, v1) * v1 / np.dot(v1, v1)
    theta2 = w / np.linalg.norm(w)
    a0 = 1 / np.sqrt(p) * np.random.randn(p)
    eta = 10 * np.sqrt(n) * np.sqrt(p)
    lamb = 1.0

    Z = np.random.randn(n, d)
    Ztest = np.random.randn(n_test, d)
    Y = (s_star(Z @ theta1) + s_star(Z @ theta2)) / 2
    Ytest = (s_star(Ztest @ theta1) + s_star(Ztest @ theta2)) / 2
    A = np.mean(Y)
    B = np.mean(Y.reshape(-1, 1) * Z, axis=0)
    Y_touse = Y - A - Z @ B

    def fnn0(D, W, a):
        return 1 / np.sqrt(p) * f(D @ W.T) @ a

    G = 1 / n * Z.T @ (1 / np.sqrt(p) * np.outer((Y_touse - fnn0(Z, W0, a0)), a0) * fprime(Z @ W0.T))
    Wgd = W0 + eta * G.T
    X = f(Z @ Wgd.T)
    Xtest = f(Ztest @ Wgd.T)
    Xs = X / np.sqrt(p)
    if n >= p:
        wr = np.linalg.inv(Xs.T @ Xs + lamb * np.identity(p)) @ Xs.T @ Y_touse
    else:
        wr = Xs.T @ np.linalg.inv(Xs @ Xs.T + lamb * np.identity(n)) @ Y_touse
    Yhat_test = A + Ztest @ B + 1 / np.sqrt(p) * Xtest @ wr
    return float(np.mean((Yhat_test - Ytest) ** 2))


# ----------------------------------------------------------------------------- children


def _run_ours(d, p, n, n_test, dtype, seeds):
    from asymptotics.conventions import lam_from_scaled_features
    from simulations.giant_step import simulate

    kw = dict(target="T1", activation="relu", d=d, p=p, n=n, steps=1, eta="notebook",
              lam=lam_from_scaled_features(1.0, p, n), n_test=n_test, preprocess=True, dtype=dtype)
    simulate(**{**kw, "n": 4096, "n_test": 4096, "lam": lam_from_scaled_features(1.0, p, 4096)})  # warm-up
    times, errors = [], []
    for s in seeds:
        t = time.perf_counter()
        r = simulate(**kw, seed=s)
        times.append(time.perf_counter() - t)
        errors.append(r.test_error)
    return times, errors, _peak_mb()


def _run_baseline(d, p, n, n_test, seeds):
    times, errors = [], []
    for s in seeds:
        t = time.perf_counter()
        errors.append(notebook_baseline(d, p, n, n_test, 1000 + s))
        times.append(time.perf_counter() - t)
    return times, errors, _peak_mb()






# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="quick check at d=128, p=256, n=16384")
    ap.add_argument("--seeds", type=int, default=1, help="seeds for our simulator (default 1)")
    ap.add_argument("--baseline-seeds", type=int, default=1)
    ap.add_argument("--baseline-n", type=int, default=None,
                    help="n at which the baseline is run (default 65536; --small: the same n)")
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--no-baseline", action="store_true", help="time our simulator only")
    args = ap.parse_args()

    if args.small:
        d, p, n, n_test = 128, 256, 16384, 10_000
        n_base = args.baseline_n or n
    else:
        d, p, n, n_test = 512, 1024, 262_144, 100_000
        n_base = args.baseline_n or 65_536
    seeds = list(range(args.seeds))
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]

    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; OPENBLAS_THREAD_TIMEOUT="
          f"{os.environ['OPENBLAS_THREAD_TIMEOUT']}; load average {os.getloadavg()[0]:.2f} "
          f"(other processes on the same cores slow everything down)")
    rates = _in_child(_gemm_rates)
    print("matrix multiply (4096^3 @, best of 3): "
          + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in rates.items()))
    print(f"point: T1, relu, d={d}, p={p}, n={n}, T=1, eta=10 sqrt(np), lambda_P=1 (lam=p/n), "
          f"n_test={n_test}, preprocessing; ours: fresh readout batch (clean mode)")

    f_ours = flops_ours(d, p, n, n_test)
    ours = {}
    for dt in dtypes:
        times, errs, peak = _in_child(_run_ours, d, p, n, n_test, dt, seeds)
        t = float(np.mean(times))
        ours[dt] = t
        frac = f_ours / t / rates[dt]
        err = f"{np.mean(errs):.4f}" + (f" ± {np.std(errs):.4f}" if len(errs) > 1 else "")
        print(f"  ours {dt}: {t:7.2f} s/seed (seeds {len(times)}), test error {err}, "
              f"{f_ours:.3g} flop -> {f_ours / t / 1e9:.1f} GFLOP/s = {100 * frac:.0f}% of the "
              f"{dt} GEMM rate; peak RSS {peak:.0f} MB")

    if args.no_baseline:
        return
    bseeds = list(range(args.baseline_seeds))
    times, errs, peak = _in_child(_run_baseline, d, p, n_base, n_test, bseeds)
    t_base = float(np.mean(times))
    f_b_small, f_b = flops_baseline(d, p, n_base, n_test), flops_baseline(d, p, n, n_test)
    print(f"  baseline (notebook style, float64) at n={n_base}: {t_base:.2f} s/seed, test error "
          f"{np.mean(errs):.4f} (batch reused for the readout), "
          f"{f_b_small / t_base / 1e9:.1f} GFLOP/s, peak RSS {peak:.0f} MB")
    if n_base != n:
        scale = f_b / f_b_small
        t_base_full = t_base * scale
        print(f"  baseline SCALED BY FLOP COUNT to n={n}: x{scale:.2f} -> {t_base_full:.1f} s/seed "
              f"(estimate; peak memory ~{peak * n / n_base / 1024:.1f} GB if extrapolated linearly "
              f"in n); the notebook itself reports {NOTEBOOK_SECONDS_PER_SEED:.1f} s/seed")
    else:
        t_base_full = t_base
    for dt, t in ours.items():
        line = f"speed-up ours {dt} vs baseline: {t_base_full / t:.1f}x"
        if not args.small:
            line += f"  (vs the notebook's own 44.5 s/seed: {NOTEBOOK_SECONDS_PER_SEED / t:.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
