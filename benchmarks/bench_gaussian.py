"""Gaussian coefficients and fused activations: speed and accuracy side by side.

1. κ0, κ1, κ* of every registered activation at 1000 variances (log-spaced 0.01 .. 100) with
   the fast path (closed form or quadrature, cold cache) against the mpmath path (30 digits) on
   a subset of the variances, extrapolated per point; max relative error of the fast path
   against mpmath on that subset (absolute error where the mpmath value is 0).
2. ``functions.apply`` against numpy for tanh on a 4000×2000 array, float32 and float64; the
   Numba loop itself is timed too (``apply`` uses numpy's SIMD tanh when Numba has no SVML).

Run: python benchmarks/bench_gaussian.py [--subset 12]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from asymptotics import functions, gaussian


def _best(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_kappas(n_variances: int, subset: int) -> None:
    r = np.geomspace(0.01, 100.0, n_variances)
    r_sub = r[np.linspace(0, n_variances - 1, subset).round().astype(int)]
    print(f"κ coefficients at {n_variances} variances in [0.01, 100]; mpmath (30 digits) on "
          f"{subset} of them")
    print("(fast: value cache cleared; 'setup' = one-time symbolic analysis of the expression)")
    print(f"{'activation':12s} {'path':11s} {'setup':>8s} {'fast total':>11s} {'fast/point':>11s} "
          f"{'mpmath/point':>13s} {'ratio':>9s} {'max rel err':>12s}")
    for name in functions.names():
        t = time.perf_counter()
        gaussian.kappas(name, 0.123)  # symbolic analysis (closed form? kinks? odd part?)
        t_setup = time.perf_counter() - t
        gaussian._CACHE.clear()
        t = time.perf_counter()
        gaussian.kappas(name, r)
        t_fast = time.perf_counter() - t
        k_sub = gaussian.kappas(name, r_sub)
        t = time.perf_counter()
        k_mp = [[float(v) for v in gaussian.kappas_mp(name, x)] for x in r_sub]
        t_mp = (time.perf_counter() - t) / subset
        k_mp = np.array(k_mp).T
        err = 0.0
        for fast, ref in zip(k_sub, k_mp):
            den = np.where(np.abs(ref) > 1e-30, np.abs(ref), 1.0)
            err = max(err, float(np.max(np.abs(fast - ref) / den)))
        path = "closed form" if gaussian._closed_form(functions.get(name).expr) else "quadrature"
        print(f"{name:12s} {path:11s} {t_setup * 1e3:6.0f}ms {t_fast * 1e3:9.2f}ms {t_fast / n_variances * 1e6:9.2f}us "
              f"{t_mp * 1e3:11.1f}ms {t_mp / (t_fast / n_variances):9.0f}x {err:12.2e}")


def bench_apply(shape=(4000, 2000)) -> None:
    print(f"\ntanh on a {shape[0]}x{shape[1]} array (best of 5; engine: "
          f"{functions.engine('tanh')}; Numba SVML: {functions.numba.config.USING_SVML})")
    print(f"{'dtype':8s} {'numpy':>9s} {'apply':>9s} {'in place':>9s} {'numba loop':>11s} "
          f"{'numpy/apply':>12s} {'numpy/numba':>12s}")
    act = functions.get("tanh")
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        out = np.empty_like(x)
        t_np = _best(lambda: np.tanh(x))
        t_apply = _best(lambda: functions.apply(act, x))
        t_inplace = _best(lambda: functions.apply(act, x, out=out))
        t_numba = _best(lambda: act.kernels.apply_value(x.reshape(-1), out.reshape(-1)))
        err = float(np.max(np.abs(functions.apply(act, x) - np.tanh(x))))
        assert err <= 4 * np.finfo(dtype).eps, err
        print(f"{np.dtype(dtype).name:8s} {t_np * 1e3:7.1f}ms {t_apply * 1e3:7.1f}ms "
              f"{t_inplace * 1e3:7.1f}ms {t_numba * 1e3:9.1f}ms {t_np / t_apply:11.2f}x "
              f"{t_np / t_numba:11.2f}x")
    print("\nother activations, float64 (apply vs numpy callable of the same expression):")
    x = np.random.default_rng(1).standard_normal(shape)
    for name in ("relu", "cube", "he4", "sigmoid", "softplus", "erf"):
        a = functions.get(name)
        t_np, t_apply = _best(lambda: a.numpy(x), 3), _best(lambda: functions.apply(a, x), 3)
        print(f"  {name:9s} engine {functions.engine(a):5s}  numpy {t_np * 1e3:6.1f}ms  "
              f"apply {t_apply * 1e3:6.1f}ms  ratio {t_np / t_apply:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variances", type=int, default=1000)
    parser.add_argument("--subset", type=int, default=12)
    args = parser.parse_args()
    bench_kappas(args.variances, args.subset)
    bench_apply()


if __name__ == "__main__":
    main()
