r"""Measurements of the hierarchical experiments: the crossing sample size n*(d), its exponent in d, and
the seed average of test losses with an honest error bar.

``crossing_n``  n*: the sample size at which the mean over seeds of a curve c(n) (the feature
    correlation |corr(g, p)|) first crosses ``level``, interpolated linearly in log n between the
    two grid points that bracket it (NaN when the mean curve never crosses).
``bootstrap_crossing``  n* with a seeded bootstrap over seeds: resample the S seeds with
    replacement ``n_boot`` times, recompute n* from the resampled mean curve; the standard error is
    the bootstrap standard deviation of log n* times n* (delta method), the 95 % interval the 2.5 and
    97.5 % quantiles. Resamples whose mean never crosses are dropped (their fraction is returned).
``crossing_exponent``  the fitted exponent a of n* ∝ d^a (:func:`asymptotics.verdict.power_law_fit`
    with the bootstrap standard errors) and the check that 3 lies in its 95 % interval; at least
    four dimensions with a bracketed n* are required (else the check fails without a fit).
``seed_mean``  the mean over seeds of per-seed estimates and the standard error over seeds
    std/√S (ddof 1): each seed has its own test set, so the spread over seeds contains both the
    replica and the Monte-Carlo variation. Used on the decomposed test loss
    L = 1 + mean(f² − 2 h f) of :mod:`simulations.hierarchical` (E h² = 1 exactly; only the
    light-tailed remainder is Monte-Carlo). The *median* over seeds of plain Monte-Carlo means of
    (h − f)² is biased low (the mean of a heavy-tailed sample is usually below its expectation)
    and is not used.
"""
from __future__ import annotations

import math

import numpy as np

from .verdict import Check, PowerLawFit, interval_check, power_law_fit

__all__ = ["crossing_n", "bootstrap_crossing", "Crossing", "crossing_exponent", "seed_mean", "CROSSING_LEVEL"]

CROSSING_LEVEL = 0.5  # fixed before the runs: the mean |corr| level whose crossing defines n*(d)


def crossing_n(ns, curve, level: float = CROSSING_LEVEL) -> float:
    """First crossing of ``level`` by ``curve`` (values at increasing ``ns``), linear in log n."""
    ns, c = np.asarray(ns, dtype=float), np.asarray(curve, dtype=float)
    if c[0] >= level:
        return math.nan  # already above at the smallest n: not bracketed
    for k in range(1, len(c)):
        if c[k] >= level:
            t = (level - c[k - 1]) / (c[k] - c[k - 1])
            return float(np.exp(np.log(ns[k - 1]) + t * (np.log(ns[k]) - np.log(ns[k - 1]))))
    return math.nan


class Crossing(dict):
    """n*, se, interval (95 %), kept (fraction of bootstrap resamples that crossed)."""


def bootstrap_crossing(ns, values, level: float = CROSSING_LEVEL, *, n_boot: int = 2000,
                       seed: int = 0) -> Crossing:
    """n* of the seed mean of ``values`` (S seeds × K sizes) with a seeded bootstrap over seeds."""
    v = np.asarray(values, dtype=float)
    n_star = crossing_n(ns, v.mean(axis=0), level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
    boots = np.array([crossing_n(ns, v[i].mean(axis=0), level) for i in idx])
    ok = np.isfinite(boots)
    if not math.isfinite(n_star) or ok.sum() < 10:
        return Crossing(n_star=n_star, se=math.nan, interval=(math.nan, math.nan), kept=float(ok.mean()))
    lb = np.log(boots[ok])
    lo, hi = np.quantile(boots[ok], [0.025, 0.975])
    return Crossing(n_star=n_star, se=float(n_star * lb.std(ddof=1)), interval=(float(lo), float(hi)),
                    kept=float(ok.mean()))


MIN_DIMS = 4  # the fit needs at least four dimensions (with three, Student's t₁ makes any interval useless)


def crossing_exponent(dims, crossings, *, name: str, predicted: float = 3.0,
                      min_dims: int = MIN_DIMS) -> tuple[PowerLawFit | None, Check]:
    """Fit n* ∝ d^a over the dimensions with a finite n* and its bootstrap SE; check ``predicted`` ∈ 95 %.
    Fewer than ``min_dims`` such dimensions: no fit, a failed check."""
    d = np.asarray(dims, dtype=float)
    y = np.array([c["n_star"] for c in crossings], dtype=float)
    se = np.array([c["se"] for c in crossings], dtype=float)
    ok = np.isfinite(y) & np.isfinite(se) & (se > 0)
    pred = f"n*(d) ∝ d^{predicted:g}: {predicted:g} inside the 95 % interval of the fitted exponent"
    if ok.sum() < min_dims:
        return None, Check(name, "interval", pred + f" (only {int(ok.sum())} dimensions with a bracketed n* and a bootstrap SE > 0: no fit)", False,
                           predicted=predicted, tolerance="95 % interval")
    fit = power_law_fit(d[ok], y[ok], se[ok])
    return fit, interval_check(name, predicted, fit.exponent, fit.se, fit.interval, prediction=pred)


def seed_mean(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its standard error std/√S (ddof 1)."""
    v = np.asarray(values, dtype=float)
    S = v.shape[0]
    return v.mean(axis=0), (v.std(axis=0, ddof=1) / math.sqrt(S) if S > 1 else np.full(v.shape[1:], math.nan))
