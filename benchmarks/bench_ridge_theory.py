"""Benchmark: the deterministic-equivalent ridge solver on a whole (n, λ) grid.

Power-law spectrum ω_i = i^-1.5, b̃_i ∝ i^-1 (hard target), p = 4096; grid of 100 values of n
(log-spaced 0.1p … 10p) × 31 values of λ (0 and 30 log-spaced in 1e-10 … 10).

Fast path: ``GaussianCovariateModel.ridge`` (κ-grid bracketing + safeguarded Halley, Numba,
parallel over points). Baselines, side by side in this process:
  * the per-point fixed-point (Picard) iteration κ ← λ + κ·df1(κ)/n of the deep-features
    paper's published code (λ > 0 only; it cannot do λ = 0), tolerance 1e-12, cap 2000 steps;
  * a plain vectorised numpy Newton from the right end of the bracket (λ > 0 only).
Prints times, ratios, the max relative difference to the mpmath reference on a subset, and
the count of non-converged points. Run: ``python benchmarks/bench_ridge_theory.py``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from asymptotics import GaussianCovariateModel


def power_law_model(p: int) -> GaussianCovariateModel:
    i = np.arange(1, p + 1, dtype=float)
    s = np.sum(i**-0.5)
    return GaussianCovariateModel.from_spectrum(i**-1.5, i**-1.0 / np.sqrt(s), 1.01)


def egen_from_kappa(w, b2, y2, n, kappa):
    """(E2) at given κ, plain numpy (used by the baselines)."""
    num = y2 - np.sum(b2 * (w + 2 * kappa) / (w + kappa) ** 2)
    return num / (1 - np.sum((w / (w + kappa)) ** 2) / n)


def picard(w, n, lam, tol=1e-12, cap=2000):
    """κ ← λ + κ·df1(κ)/n from the right end of the bracket; returns (κ, converged)."""
    kappa = lam + w.sum() / n
    for _ in range(cap):
        new = lam + kappa * np.sum(w / (w + kappa)) / n
        if abs(new - kappa) <= tol * new:
            return new, True
        kappa = new
    return kappa, False


def numpy_newton(w, n, lam, tol=1e-14, cap=200):
    """Vectorised Newton on g(κ) = κ − κ df1/n − λ from κ = λ + Tr/n, all points at once."""
    kappa = lam + w.sum() / n
    active = np.ones(kappa.shape, bool)
    for _ in range(cap):
        k = kappa[active][:, None]
        u = w[None, :] / (w[None, :] + k)
        df1 = u.sum(1)
        df2 = (u * u).sum(1)
        nn, ll = n[active], lam[active]
        g = k[:, 0] - k[:, 0] * df1 / nn - ll
        step = g / (1 - df2 / nn)
        new = k[:, 0] - step
        idx = np.flatnonzero(active)
        kappa[idx] = new
        done = np.abs(step) <= tol * np.abs(new)
        active[idx[done]] = False
        if not active.any():
            break
    return kappa, ~active


def best_of(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=4096)
    ap.add_argument("--mp-points", type=int, default=12, help="points checked against mpmath")
    ap.add_argument("--dps", type=int, default=40)
    args = ap.parse_args(argv)
    p = args.p
    model = power_law_model(p)
    w, b2, y2 = model.eigenvalues, model.b_eigen**2, model.y2
    ns = np.geomspace(0.1 * p, 10 * p, 100)
    lams = np.concatenate([[0.0], np.geomspace(1e-10, 10, 30)])
    N, L = np.meshgrid(ns, lams, indexing="ij")

    model.ridge(N, L)  # compile / load the Numba cache
    t_fast, res = best_of(lambda: model.ridge(N, L), 7)
    print(f"fast path: {N.size} points (p = {p}) in {t_fast * 1e3:.1f} ms "
          f"({t_fast / N.size * 1e6:.1f} µs/point), mean {res.iterations.mean():.2f} "
          f"Halley steps/point, non-converged: {int((~res.converged).sum())}")

    pos = L > 0
    n_pos, l_pos = N[pos], L[pos]
    t0 = time.perf_counter()
    pic = [picard(w, n, lam) for n, lam in zip(n_pos, l_pos)]
    t_pic = time.perf_counter() - t0
    k_pic = np.array([k for k, _ in pic])
    conv_pic = np.array([c for _, c in pic])
    t_fast_pos, res_pos = best_of(lambda: model.ridge(n_pos, l_pos), 7)
    print(f"Picard baseline: {n_pos.size} points (λ > 0) in {t_pic:.3f} s, non-converged "
          f"(cap 2000): {int((~conv_pic).sum())}; fast path on the same points "
          f"{t_fast_pos * 1e3:.1f} ms -> ratio {t_pic / t_fast_pos:.0f}x")
    e_pic = np.array([egen_from_kappa(w, b2, y2, n, k) for n, k in zip(n_pos, k_pic)])
    rel_pic = np.abs(e_pic - res_pos.test_error) / res_pos.test_error
    print(f"  Picard test error vs fast path: median rel. diff {np.median(rel_pic):.1e}, "
          f"max {rel_pic.max():.1e}")

    t_np, (k_np, conv_np) = best_of(lambda: numpy_newton(w, n_pos.copy(), l_pos.copy()), 1)
    print(f"numpy vectorised Newton baseline (λ > 0): {t_np:.3f} s, non-converged "
          f"{int((~conv_np).sum())} -> ratio {t_np / t_fast_pos:.0f}x")

    rng = np.random.default_rng(0)
    peak = [(49, 0), (50, 0), (49, 1), (50, 1), (49, 5)]
    rand = [tuple(x) for x in rng.integers(0, [len(ns), len(lams)], size=(max(args.mp_points - len(peak), 0), 2))]
    worst = {"test_error": 0.0, "train_error": 0.0, "kappa": 0.0}
    t0 = time.perf_counter()
    for a, b in peak + rand:
        ref = model.ridge_high_precision(N[a, b], L[a, b], dps=args.dps)
        for f in worst:
            x, y = getattr(res, f)[a, b], float(getattr(ref, f))
            worst[f] = max(worst[f], abs(x - y) / abs(y) if y != 0 else abs(x))
    print(f"max relative difference to mpmath ({args.dps} digits) on {len(peak) + len(rand)} points "
          f"(incl. λ = 0 and λ = 1e-10 next to n = p): "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
          + f"  [{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
