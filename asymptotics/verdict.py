r"""Verdicts: named checks that state a prediction, a measurement with its error, and pass or fail.

Every experiment's ``NAME.json`` carries ``agreement.checks``: a list of :class:`Check` records

    name, kind, prediction (words), predicted, measured, se, z, interval (95 %), tolerance (words), passed

and ``agreement.passed`` (all checks passed). The tolerance of a check is written in the
experiment before the run; nothing here is tuned to the data. The kinds:

``pointwise``  (:func:`pointwise_check`) theory curve vs simulated means at every simulated x.
    Under the null (theory exact, seeds independent) z = (m − T)/(s/√S) follows Student's t with
    S − 1 degrees of freedom, so a point misses |z| < 3 with probability p_S = P(|t_{S−1}| > 3).
    The check passes when the number of misses is at most the 99 % quantile of their null
    distribution (a Poisson-binomial over the points, computed exactly): it fails for a real
    deviation, not for the expected few outliers of small seed counts.
``z``  (:func:`z_check`) a measured value against a predicted one: |z| = |m − T|/se ≤ z_max.
``below`` / ``above``  (:func:`bound_check`) a measured value on the predicted side of a bound,
    by at least ``margin`` standard errors (margin 0: the point estimate decides; 1.645: one-sided 95 %).
``interval``  (:func:`interval_check`) a predicted value inside a fitted 95 % interval
    (e.g. the exponent 3 of n* ∝ d³).
``sign``  (:func:`sign_check`) a fitted 95 % interval entirely below (or above) zero
    (e.g. a gap that decays with d).

:func:`power_law_fit` fits y ∝ x^a by weighted least squares in log–log coordinates and returns a
with its standard error and 95 % interval (Student t with N − 2 degrees of freedom; with the
residual scatter, or the given standard errors if they are larger).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = ["Check", "z_check", "bound_check", "interval_check", "sign_check", "pointwise_check",
           "PowerLawFit", "power_law_fit", "allowed_misses", "pointwise_from_series", "checks_block"]

Z_MAX = 3.0


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Check:
    """One named verdict (module docstring). ``interval`` is a 95 % interval or None."""

    name: str
    kind: str
    prediction: str
    passed: bool
    predicted: float | None = None
    measured: float | None = None
    se: float | None = None
    z: float | None = None
    interval: tuple[float, float] | None = None
    tolerance: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("predicted", "measured", "se", "z"):
            d[k] = _num(d[k])
        d["interval"] = None if self.interval is None else [_num(v) for v in self.interval]
        d["passed"] = bool(self.passed)
        return d

    def line(self) -> str:
        """One line for the command line: PASS/FAIL, the name, the numbers."""
        parts = [f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.prediction}"]
        if self.measured is not None:
            m = f"measured {self.measured:.4g}"
            if self.se is not None:
                m += f" ± {self.se:.2g}"
            parts.append(m)
        if self.interval is not None:
            parts.append(f"95% [{self.interval[0]:.3g}, {self.interval[1]:.3g}]")
        if self.z is not None:
            parts.append(f"z = {self.z:.2f}")
        if self.tolerance:
            parts.append(f"({self.tolerance})")
        return "; ".join(parts)


def z_check(name: str, predicted: float, measured: float, se: float, *, z_max: float = Z_MAX,
            prediction: str | None = None) -> Check:
    """|measured − predicted| ≤ z_max · se."""
    se = float(se)
    diff = float(measured) - float(predicted)
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return Check(name, "z", prediction or f"{predicted:.4g}", bool(abs(z) <= z_max), predicted=predicted,
                 measured=measured, se=se, z=z, tolerance=f"|z| ≤ {z_max:g}")


def bound_check(name: str, measured: float, se: float, bound: float, *, side: str = "below",
                margin: float = 0.0, prediction: str | None = None) -> Check:
    """measured < bound − margin·se (side "below") or > bound + margin·se (side "above")."""
    if side not in ("below", "above"):
        raise ValueError(f"side must be 'below' or 'above', got {side!r}")
    se = float(se)
    sign = -1.0 if side == "below" else 1.0
    z = (float(measured) - float(bound)) / se if se > 0 else None
    ok = sign * (float(measured) - float(bound)) > margin * se
    return Check(name, side, prediction or f"{side} {bound:.4g}", bool(ok), predicted=bound, measured=measured,
                 se=se, z=z, tolerance=f"{side} the bound by > {margin:g} standard errors")


def interval_check(name: str, predicted: float, estimate: float, se: float, interval: tuple[float, float],
                   *, prediction: str | None = None) -> Check:
    """The predicted value lies inside the 95 % interval of a fitted quantity."""
    lo, hi = (float(v) for v in interval)
    z = (float(estimate) - float(predicted)) / se if se and se > 0 else None
    return Check(name, "interval", prediction or f"{predicted:g} inside the 95 % interval",
                 bool(lo <= predicted <= hi), predicted=predicted, measured=estimate, se=se, z=z,
                 interval=(lo, hi), tolerance="95 % interval")


def sign_check(name: str, estimate: float, se: float, interval: tuple[float, float], *, negative: bool = True,
               prediction: str | None = None) -> Check:
    """A fitted quantity's 95 % interval lies entirely below 0 (``negative``) or above 0."""
    lo, hi = (float(v) for v in interval)
    ok = hi < 0 if negative else lo > 0
    return Check(name, "sign", prediction or ("negative" if negative else "positive"), bool(ok), predicted=0.0,
                 measured=estimate, se=se, interval=(lo, hi), tolerance="95 % interval excludes 0")


def allowed_misses(p: Sequence[float], level: float = 0.99) -> int:
    """The ``level`` quantile of the number of successes of independent Bernoulli(p_i) (exact)."""
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for q in p:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return int(np.searchsorted(np.cumsum(dist), level - 1e-12))


def _miss_probability(n_seeds: int, z_max: float) -> float:
    """P(|t_{S−1}| > z_max): a point's chance to miss under the null with S seeds."""
    if n_seeds < 2:
        return 1.0
    return float(2 * stats.t.sf(z_max, df=n_seeds - 1))


def pointwise_check(name: str, z: np.ndarray, n_seeds: np.ndarray, *, z_max: float = Z_MAX,
                    level: float = 0.99) -> Check | None:
    """Theory within z_max standard errors at all but the null-expected outliers (module docstring).

    ``z`` : z-scores of the points (NaN for excluded points); ``n_seeds`` : seeds per point.
    """
    z = np.asarray(z, dtype=float)
    seeds = np.broadcast_to(np.asarray(n_seeds), z.shape)
    use = ~np.isnan(z)  # ±inf (a mismatch with zero spread) counts as a miss
    if not np.any(use):
        return None
    p = [_miss_probability(int(s), z_max) for s in seeds[use]]
    misses = int(np.sum(np.abs(z[use]) > z_max))
    k = allowed_misses(p, level)
    return Check(name, "pointwise", f"points beyond {z_max:g} standard errors of the theory (predicted: "
                 f"at most {k} of {int(use.sum())}, the {level:.0%} quantile of the null)", misses <= k,
                 predicted=float(k), measured=float(misses),
                 tolerance="null: z ~ Student t with the seeds' degrees of freedom")


@dataclass(frozen=True)
class PowerLawFit:
    """y ≈ C x^exponent: the exponent, its standard error and 95 % interval, and the prefactor."""

    exponent: float
    se: float
    interval: tuple[float, float]
    prefactor: float
    n_points: int


def power_law_fit(x, y, y_se=None) -> PowerLawFit:
    """Weighted least squares of log y on log x (weights 1/σ² with σ = y_se/y, the delta method).

    The exponent's standard error is the larger of the one implied by the given errors and the
    one from the residual scatter; the 95 % interval uses Student's t with N − 2 degrees of
    freedom (normal when the given errors dominate). Needs ≥ 3 points with y > 0.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sig = np.ones_like(y) if y_se is None else np.asarray(y_se, dtype=float) / np.abs(y)
    ok = (x > 0) & (y > 0) & np.isfinite(sig) & (sig > 0)
    if ok.sum() < 3:
        raise ValueError(f"power_law_fit needs >= 3 points with x, y > 0 and finite errors, got {int(ok.sum())}")
    lx, ly, w = np.log(x[ok]), np.log(y[ok]), 1.0 / sig[ok] ** 2
    A = np.stack([np.ones_like(lx), lx], axis=1)
    cov = np.linalg.inv(A.T @ (w[:, None] * A))
    coef = cov @ (A.T @ (w * ly))
    resid = ly - A @ coef
    dof = len(lx) - 2
    chi2 = float(np.sum(w * resid**2) / dof) if dof > 0 else 0.0
    scale = max(chi2, 1.0) if y_se is not None else chi2
    se = float(np.sqrt(cov[1, 1] * scale))
    q = float(stats.t.ppf(0.975, dof)) if (y_se is None or chi2 > 1.0) and dof > 0 else 1.959963984540054
    a = float(coef[1])
    return PowerLawFit(a, se, (a - q * se, a + q * se), float(np.exp(coef[0])), int(len(lx)))


def pointwise_from_series(series, name: str = "pointwise agreement", z_max: float = Z_MAX) -> Check | None:
    """:func:`pointwise_check` pooled over every series with simulated points and ``theory_at_sim``
    (the same z-scores as :func:`asymptotics.compare.series_agreement`, shared test-set errors
    included)."""
    from .compare import agreement

    zs, seeds = [], []
    for s in series:
        if s.sim_mean is None or s.theory_at_sim is None:
            continue
        std = np.asarray(s.sim_std, dtype=float)
        if s.shared_se is not None:
            std = np.sqrt(std ** 2 + s.n_seeds * np.asarray(s.shared_se, dtype=float) ** 2)
        _, z = agreement(s.theory_at_sim, s.sim_mean, std, s.n_seeds)
        zs.append(np.ravel(z))
        seeds.append(np.full(np.size(z), int(s.n_seeds)))
    if not zs:
        return None
    return pointwise_check(name, np.concatenate(zs), np.concatenate(seeds), z_max=z_max)


def checks_block(checks: Sequence[Check]) -> dict:
    """The ``checks`` and ``passed`` entries of NAME.json's agreement block."""
    return {"checks": [c.as_dict() for c in checks], "passed": bool(all(c.passed for c in checks))}
