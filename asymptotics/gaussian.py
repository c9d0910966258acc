"""Gaussian expectations of activations: moments, κ coefficients and Hermite coefficients.

For N ~ N(0, r) (r is the *variance*) and an activation σ (a name or an
:class:`~asymptotics.functions.Activation`):

* κ0(r) = E σ(N) (not centred), κ1(r) = E σ'(N) = E[N σ(N)]/r (Stein's lemma, so it is right for
  sign and relu too), E2(r) = E σ(N)², κ*(r)² = E2 − κ0² − r κ1² = E[(σ(N) − κ0 − κ1 N)²];
* Hermite coefficients c_k(r) = E[σ(N) He_k(N/√r)] / (k! r^{k/2}) = E[σ^{(k)}(N)]/k!, i.e. the
  Taylor coefficients at 0 of t ↦ E σ(N + t); Parseval: Σ_k k! r^k c_k² = E σ(N)²,
  c_0 = κ0, c_1 = κ1, κ*² = Σ_{k≥2} k! r^k c_k².

How a number is obtained (``method="auto"``):

1. **Closed forms**, recognised from the sympy expression (not from the name), for
   c·g(a z) with g ∈ {relu, sign, erf} and for every polynomial. With ρ = a² r:
   relu: κ0 = √(ρ/2π), κ1 = 1/2, E2 = ρ/2, c_k = He_{k−2}(0) / (√(2π) k! ρ^{(k−1)/2}) (k ≥ 2);
   sign: κ1 = √(2/(πρ)), E2 = 1, c_k = 2 He_{k−1}(0) / (√(2π) k! ρ^{k/2});
   erf:  κ1 = 2/√(π(1+2ρ)), E2 = (2/π) arcsin t, κ*² = (2/π)(arcsin t − t), t = 2ρ/(1+2ρ),
   c_{2j+1} = (2/√π)(1+2ρ)^{−1/2} (−1/(1+2ρ))^j (2j)! / (j! (2j+1)!);
   and f = c g(a z) has c_k = c a^k c_k^g(ρ). Polynomials: c_k(r) is computed exactly by sympy
   (rationals times powers of r) from E N^{2j} = (2j−1)!! r^j, and κ*², E2 by Parseval (a sum
   of non-negative terms: no cancellation).
2. **Quadrature** otherwise, in u = N/√r: Gauss–Hermite with 96 and 192 nodes (smooth
   functions), then composite 20-point Gauss–Legendre panels on [−10, 10] split at the kinks of
   the expression (16, 32, ..., 2048 panels per piece). A value is accepted when two successive
   rules agree to 1e-12 relative to its Cauchy–Schwarz scale (‖σ‖ for E σ, E[uσ] and each
   normalised Hermite coefficient, E2 for E2, and κ*² itself up to rounding); the finer one is
   returned. κ*² is integrated directly as E[(σ − κ0 − κ1 N)²], never as a difference; its
   relative accuracy is still limited to about eps·‖σ‖/κ* by the rounding of σ itself
   (3e-13 for sigmoid at r = 0.01, where κ* ≈ 5e-5).
   If σ − σ(0) is odd, κ0 = σ(0) and the even coefficients are exact.
   The panel window is widened beyond far-away kinks, and a row is rejected when the integrand
   of E σ² is not negligible at the window's ends (fast-growing σ such as e^z at large r).
3. **mpmath** adaptive quadrature (split at 0, ±√r, ±4√r, the kinks and around the peak of
   |σ|φ) for the rare points where no rule converged — never a silent inaccurate number; a
   RuntimeWarning if even its error estimate is too large.

:func:`expectation_mp`, :func:`kappas_mp`, :func:`hermite_coefficients_mp` compute at arbitrary
precision with mpmath from the same sympy expression (the references of the tests).

Values from quadrature and mpmath are cached per (activation name, expression, variance); the
closed forms are cheaper than a cache lookup. Every function accepts a scalar variance (returns
floats) or an array of variances (returns arrays of that shape).
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np
import sympy
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss
from scipy.special import erfc, gammaln, ndtr

from . import functions
from .functions import z
from .validation import choice

__all__ = ["GaussianMoments", "expectation", "moments", "kappas", "hermite_coefficients",
           "expectation_mp", "kappas_mp", "hermite_coefficients_mp", "TOL"]

#: Relative accuracy required of quadrature values (see the module docstring).
TOL = 1e-12
_EPS = np.finfo(float).eps
_L = 10.0                     # panels integrate u over [-L, L]: Φ(-10) = 7.6e-24
_GH_NODES = (96, 192)
_PANELS = (16, 32, 64, 128, 256, 512, 1024, 2048)
_GL_NODES = 20
_MAX_BLOCK = 1 << 22          # nodes × variances evaluated at once
_METHODS = ("auto", "exact", "quadrature", "mpmath")


@dataclass(frozen=True)
class GaussianMoments:
    """E f(N), E f'(N) = E[N f(N)]/r and E f(N)² for N ~ N(0, r) (floats or arrays)."""

    mean: float | np.ndarray
    slope: float | np.ndarray
    second: float | np.ndarray


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _variances(variance) -> tuple[np.ndarray, tuple]:
    try:
        r = np.asarray(variance, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"variance must be a number or an array of numbers, "
                        f"got {variance!r}") from None
    if not np.all(np.isfinite(r) & (r > 0)):
        bad = r[~(np.isfinite(r) & (r > 0))].ravel()[:3]
        raise ValueError(f"variance must be positive and finite, got {bad.tolist()}")
    return r.reshape(-1), r.shape


def _variances_and_means(variance, mean) -> tuple[np.ndarray, np.ndarray | None, tuple]:
    """Flat variances, flat means broadcast with them (None when ``mean`` is None or all zero:
    the centred path, bit for bit) and the broadcast shape."""
    r, shape = _variances(variance)
    if mean is None:
        return r, None, shape
    try:
        m = np.asarray(mean, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"mean must be a number or an array of numbers, got {mean!r}") from None
    if not np.all(np.isfinite(m)):
        raise ValueError("mean contains NaN or inf")
    try:
        rb, mb = np.broadcast_arrays(r.reshape(shape), m)
    except ValueError:
        raise ValueError(f"mean of shape {m.shape} does not broadcast with variance of shape {shape}") from None
    if not np.any(mb):
        return r, None, shape
    return np.ascontiguousarray(rb).reshape(-1), np.ascontiguousarray(mb).reshape(-1), rb.shape


def _shaped(values: np.ndarray, shape: tuple):
    """Reshape a (n_variances, ...) result to the variance's shape (floats for a scalar)."""
    out = values.reshape(shape + values.shape[1:])
    return float(out) if out.ndim == 0 else out


def _method(method: str) -> str:
    return choice(method, "method", _METHODS)


# --------------------------------------------------------------------------------------------
# Symbolic analysis (cached per expression)
# --------------------------------------------------------------------------------------------
def _he0(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign, log|He_m(0)|): He_m(0) = (−1)^{m/2} (m−1)!! for even m, 0 for odd m."""
    m = np.asarray(m)
    h = m // 2
    logabs = gammaln(m + 1.0) - h * math.log(2.0) - gammaln(h + 1.0)
    sign = np.where(m % 2 == 1, 0.0, np.where(h % 2 == 1, -1.0, 1.0))
    return sign, logabs


def _relu_coefficients(k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    s, lg = _he0(np.maximum(k - 2, 0))
    ck = s * np.exp(lg - gammaln(k + 1.0) - 0.5 * math.log(2 * math.pi)
                    - 0.5 * (k - 1) * np.log(rho))
    ck = np.where(k == 1, 0.5, ck)
    return np.where(k == 0, np.sqrt(rho / (2 * np.pi)), ck)


def _sign_coefficients(k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    s, lg = _he0(np.maximum(k - 1, 0))
    ck = 2 * s * np.exp(lg - gammaln(k + 1.0) - 0.5 * math.log(2 * math.pi) - 0.5 * k * np.log(rho))
    return np.where(k == 0, 0.0, ck)


def _erf_coefficients(k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    j = np.maximum(k - 1, 0) // 2
    q = 1.0 + 2.0 * rho
    log_abs = (math.log(2 / math.sqrt(math.pi)) - 0.5 * np.log(q) - j * np.log(q)
               + gammaln(2 * j + 1.0) - gammaln(j + 1.0) - gammaln(k + 1.0))
    return np.where(k % 2 == 1, np.where(j % 2 == 1, -1.0, 1.0) * np.exp(log_abs), 0.0)


def _asin_minus_identity(t: np.ndarray) -> np.ndarray:
    """arcsin(t) − t without cancellation for small t (series below 0.5)."""
    t = np.asarray(t, dtype=float)
    series, term, t2 = np.zeros_like(t), t.copy(), t * t
    for n in range(1, 40):  # term_n = (2n)!/(4^n n!^2 (2n+1)) t^{2n+1}
        term = term * t2 * (2 * n - 1) ** 2 / ((2 * n) * (2 * n + 1))
        series += term
    return np.where(t < 0.5, series, np.arcsin(t) - t)


def _relu_moments(rho):
    return (np.sqrt(rho / (2 * np.pi)), np.full_like(rho, 0.5), rho / 2,
            rho * (0.25 - 1 / (2 * np.pi)))


def _sign_moments(rho):
    return (np.zeros_like(rho), np.sqrt(2 / (np.pi * rho)), np.ones_like(rho),
            np.full_like(rho, 1 - 2 / np.pi))


def _erf_moments(rho):
    t = 2 * rho / (1 + 2 * rho)
    return (np.zeros_like(rho), 2 / np.sqrt(np.pi * (1 + 2 * rho)), (2 / np.pi) * np.arcsin(t),
            (2 / np.pi) * _asin_minus_identity(t))


def _relu_shifted(mu, s):
    """(E g, E g', E g², κ*²) of g = relu at y ~ N(μ, s²), t = μ/s: E g = s(tΦ(t) + φ(t)),
    E g' = Φ(t), E g² = s²((t² + 1)Φ(t) + tφ(t)). κ*² is even in μ (relu(y) − y = relu(−y) has
    the same linear residual), so it is evaluated at −|t|, where no term is O(μ²): its relative
    rounding error is about ε·t⁴."""
    def parts(t):
        cdf, pdf = ndtr(t), np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
        return s * (t * cdf + pdf), cdf, s * s * ((t * t + 1) * cdf + t * pdf)

    t = mu / s
    mean, slope, second = parts(t)
    mean_n, slope_n, second_n = parts(-np.abs(t))
    return mean, slope, second, second_n - mean_n**2 - (s * slope_n) ** 2


def _sign_shifted(mu, s):
    """(E g, E g', E g², κ*²) of g = sign at y ~ N(μ, s²), t = μ/s: E g = erf(t/√2),
    E g' = 2φ(t)/s (Stein), E g² = 1, κ*² = q(2 − q) − 4φ(t)² with q = erfc(|t|/√2)."""
    t = mu / s
    pdf = np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    q = erfc(np.abs(t) / math.sqrt(2))
    return np.sign(t) * (1 - q), 2 * pdf / s, np.ones_like(t), q * (2 - q) - 4 * pdf * pdf


_SHIFTED = {"relu": _relu_shifted, "sign": _sign_shifted}  # closed forms at N ~ N(m, r)

_FAMILIES = {  # base function g: (moments(ρ), Hermite coefficients(k, ρ))
    "relu": (_relu_moments, _relu_coefficients),
    "sign": (_sign_moments, _sign_coefficients),
    "erf": (_erf_moments, _erf_coefficients),
}


@lru_cache(maxsize=None)
def _closed_form(expr: sympy.Expr):
    """("polynomial", [coefficients of c_k(r) in r]) | (family, c, a) for c·g(a z) | None."""
    if expr.is_polynomial(z):
        r = sympy.Symbol("r", positive=True)
        poly = sympy.Poly(expr, z)
        plans = []
        for k in range(max(poly.degree(), 0) + 1):  # the zero polynomial has degree -oo
            dk = poly.diff((z, k)) if k else poly
            mean = sum(coeff * sympy.factorial2(p - 1) * r ** (p // 2)
                       for (p,), coeff in dk.terms() if p % 2 == 0)
            ck = sympy.Poly(sympy.expand(mean / sympy.factorial(k)), r)
            plans.append(np.array([float(c) for c in ck.all_coeffs()]))
        return ("polynomial", plans)
    c, g = expr.as_independent(z, as_Add=False)
    if isinstance(g, sympy.Max) and len(g.args) == 2 and sympy.S.Zero in g.args:
        family, arg = "relu", [x for x in g.args if x != 0][0]
    elif isinstance(g, sympy.sign):
        family, arg = "sign", g.args[0]
    elif isinstance(g, sympy.erf):
        family, arg = "erf", g.args[0]
    else:
        return None
    a, rest = arg.as_independent(z, as_Add=False)
    if rest != z or not (a.is_number and a.is_real and a != 0 and c.is_number and c.is_real):
        return None
    return (family, float(c), float(a))


@lru_cache(maxsize=None)
def _kinks(expr: sympy.Expr) -> tuple[float, ...]:
    """Real points where the expression is not smooth (kinks and jumps)."""
    equations = []
    for e in expr.atoms(sympy.Max, sympy.Min):
        equations += [x - y for i, x in enumerate(e.args) for y in e.args[i + 1:]]
    for e in expr.atoms(sympy.Abs, sympy.sign, sympy.Heaviside):
        equations.append(e.args[0])
    for e in expr.atoms(sympy.Piecewise):
        equations += [c.lhs - c.rhs for _, c in e.args if isinstance(c, sympy.Rel)]
    points = set()
    for eq in equations:
        try:
            sol = sympy.solveset(eq, z, sympy.S.Reals)
        except Exception:  # solveset gives up on some expressions: no split points then
            continue
        if isinstance(sol, sympy.FiniteSet):
            points |= {float(s) for s in sol if s.is_real}
    return tuple(sorted(points))


@lru_cache(maxsize=None)
def _odd_offset(expr: sympy.Expr):
    """σ(0) if σ − σ(0) is an odd function (then κ0 = σ(0) exactly), else None."""
    try:
        f0 = expr.subs(z, 0)
        if not (f0.is_number and f0.is_finite):
            return None
        if sympy.simplify(expr.subs(z, -z) + expr - 2 * f0) == 0:
            return float(f0)
    except Exception:  # simplify can fail on exotic expressions: just no shortcut then
        return None
    return None


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def _exact_moments(act, r):
    """(mean, slope, second, κ*²) arrays from a closed form, or None."""
    form = _closed_form(act.expr)
    if form is None:
        return None
    if form[0] == "polynomial":
        c = _exact_hermite(act, len(form[1]) - 1, r)
        k = np.arange(c.shape[1])
        factorial = np.array([float(math.factorial(j)) for j in k])
        terms = factorial * r[:, None] ** k * c * c
        slope = c[:, 1] if c.shape[1] > 1 else np.zeros_like(r)
        return c[:, 0], slope, terms.sum(1), terms[:, 2:].sum(1)
    family, c, a = form
    mean, slope, second, kstar2 = _FAMILIES[family][0](a * a * r)
    return c * mean, c * a * slope, c * c * second, c * c * kstar2


def _exact_moments_shifted(act, r, m):
    """(mean, slope, second, κ*²) at N ~ N(m, r) for c·relu(a z) and c·sign(a z), or None: with
    y = a N ~ N(a m, a² r), κ0 = c E g(y), κ1 = c a E g'(y), E2 = c² E g², κ*² = c² (κ*² of g)."""
    form = _closed_form(act.expr)
    if form is None or form[0] not in _SHIFTED:
        return None
    family, c, a = form
    mean, slope, second, kstar2 = _SHIFTED[family](a * m, abs(a) * np.sqrt(r))
    return c * mean, c * a * slope, c * c * second, c * c * kstar2


def _exact_hermite(act, order, r):
    """c_0..c_order, shape (len(r), order+1), from a closed form, or None."""
    form = _closed_form(act.expr)
    if form is None:
        return None
    k = np.arange(order + 1)
    if form[0] == "polynomial":
        out = np.zeros((r.size, order + 1))
        for j, coeffs in enumerate(form[1][:order + 1]):
            out[:, j] = np.polyval(coeffs, r)
        return out
    family, c, a = form
    rho = (a * a * r)[:, None]
    return c * a ** k * _FAMILIES[family][1](k[None, :], rho)


# --------------------------------------------------------------------------------------------
# Quadrature
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _gauss_hermite(n: int):
    u, w = hermegauss(n)
    return u, w / math.sqrt(2 * math.pi)


@lru_cache(maxsize=None)
def _gauss_legendre():
    return leggauss(_GL_NODES)


def _nodes(rule, r: np.ndarray, kinks: tuple, m: np.ndarray | None = None):
    """Nodes u and weights (standard normal density included), shape (len(r), n_nodes); the
    integrand is σ(m + √r u) (m: the means, None for 0), so the kinks lie at (k − m)/√r."""
    kind, n = rule
    if kind == "gh":
        u, w = _gauss_hermite(n)
        return np.broadcast_to(u, (r.size, n)), np.broadcast_to(w, (r.size, n))
    # [-L, L], widened so that L standard deviations lie beyond every kink (Max(0, z - 1) at a
    # tiny variance has all its mass right of the kink), split at the kinks
    k = np.asarray(kinks, dtype=float)[None, :]
    inner = (k if m is None else k - m[:, None]) / np.sqrt(r)[:, None]
    lo = np.minimum(-_L, inner.min(axis=1, initial=0.0) - _L)[:, None]
    hi = np.maximum(_L, inner.max(axis=1, initial=0.0) + _L)[:, None]
    edges = np.concatenate([lo, inner, hi], axis=1)
    width = (edges[:, 1:] - edges[:, :-1]) / n                        # (P, pieces)
    left = edges[:, :-1, None] + width[:, :, None] * np.arange(n)     # (P, pieces, n)
    x, w = _gauss_legendre()
    u = left[..., None] + width[:, :, None, None] * (x + 1) / 2
    wu = width[:, :, None, None] * w / 2 * np.exp(-u * u / 2) / math.sqrt(2 * math.pi)
    return u.reshape(r.size, -1), wu.reshape(r.size, -1)


def _normalised_hermite(u: np.ndarray, order: int):
    """Yield h_k(u) = He_k(u)/√(k!) for k = 0..order (stable three-term recurrence)."""
    h_prev, h = np.zeros_like(u), np.ones_like(u)
    for k in range(order + 1):
        yield h
        h_prev, h = h, (u * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)


def _estimate(act, r, rule, kinks, order, m=None):
    """One rule's estimates at N ~ N(m, r) (m None: mean 0). order None: columns (E σ, E[uσ],
    E σ², κ*²); else the normalised Hermite projections a_k = E[σ h_k(u)], k = 0..order, and E σ²
    last. Rows whose value is not representable, or (panels) whose integrand of E σ² is not
    negligible at the ends of the window, are NaN: they never pass :func:`_agree`."""
    n_nodes = rule[1] if rule[0] == "gh" else (len(kinks) + 1) * rule[1] * _GL_NODES
    rows, out = max(1, _MAX_BLOCK // n_nodes), []
    for s in range(0, r.size, rows):
        rb = r[s:s + rows]
        mb = None if m is None else m[s:s + rows]
        u, w = _nodes(rule, rb, kinks, mb)
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.sqrt(rb)[:, None] * u
            f = act.numpy(x if mb is None else mb[:, None] + x)
            second = np.sum(w * f * f, axis=1)
            if order is None:
                mean, first = np.sum(w * f, axis=1), np.sum(w * u * f, axis=1)
                res = f - mean[:, None] - first[:, None] * u
                cols = [mean, first, second, np.sum(w * res * res, axis=1)]
            else:
                cols = [np.sum(w * f * h, axis=1) for h in _normalised_hermite(u, order)]
                cols.append(second)
            est = np.stack(cols, axis=1)
            if rule[0] == "panels":  # nodes are sorted: columns 0 and -1 are the window's ends
                ends = u[:, [0, -1]]
                edge = np.sum(f[:, [0, -1]] ** 2 * np.exp(-ends * ends / 2), axis=1)
                est[~(edge <= 1e-3 * TOL * second)] = np.nan
        est[~np.all(np.isfinite(est), axis=1)] = np.nan
        out.append(est)
    return np.concatenate(out)


def _agree(old, new, order):
    """Rows where two rules agree to TOL of the Cauchy–Schwarz scales (module docstring): E σ² is
    column 2 of the moments and the last column of the Hermite projections."""
    col = 2 if order is None else -1
    d, second = np.abs(new - old), new[:, col]
    scale = np.sqrt(second)
    ok = d[:, col] <= TOL * second
    if order is None:
        ks2 = new[:, 3]
        ok &= (d[:, 0] <= TOL * scale) & (d[:, 1] <= TOL * scale)
        ok &= d[:, 3] <= TOL * ks2 + 8 * _EPS * np.sqrt(ks2) * scale + 16 * _EPS**2 * second
    else:
        ok &= np.all(d[:, :-1] <= TOL * scale[:, None], axis=1)
    return ok


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 1 << 16


def _quadrature(act, r, order=None, m=None):
    """Rows of :func:`_estimate` to TOL (rules of increasing accuracy, then mpmath); cached.
    ``m``: the means of N (None: mean 0)."""
    keys = ([(act.name, act.expr, order, float(x)) for x in r] if m is None else
            [(act.name, act.expr, order, float(x), float(mu)) for x, mu in zip(r, m)])
    todo = np.array([i for i, key in enumerate(keys) if key not in _CACHE], dtype=int)
    kinks = _kinks(act.expr)
    rules = ([] if kinks else [("gh", n) for n in _GH_NODES]) + [("panels", m) for m in _PANELS]
    pending, prev, done = todo, None, {}
    for rule in rules:
        if pending.size == 0:
            break
        est = _estimate(act, r[pending], rule, kinks, order, None if m is None else m[pending])
        if prev is not None:
            ok = _agree(prev, est, order)
            done.update(zip(pending[ok], est[ok]))
            pending, est = pending[~ok], est[~ok]
        prev = est
    for i in pending:  # no rule converged: adaptive mpmath quadrature (slow, rare)
        done[i] = _mp_row(act, r[i], order, mean=0.0 if m is None else float(m[i]))
    for i, row in done.items():
        _CACHE[keys[i]] = row
    if not keys:
        return np.empty((0, 4 if order is None else order + 2))
    rows = np.stack([_CACHE[key] for key in keys])
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return rows


def _numeric_moments(act, r, m=None):
    rows = _quadrature(act, r, m=m)
    mean, slope, second, kstar2 = rows[:, 0], rows[:, 1] / np.sqrt(r), rows[:, 2], rows[:, 3]
    offset = _odd_offset(act.expr) if m is None else None
    if offset is not None:
        mean = np.full_like(r, offset)
    return mean, slope, second, kstar2


def _numeric_hermite(act, order, r, m=None):
    a = _quadrature(act, r, order, m)[:, :-1]
    k = np.arange(order + 1)
    c = a * np.exp(-0.5 * gammaln(k + 1.0) - 0.5 * k * np.log(r)[:, None])
    offset = _odd_offset(act.expr) if m is None else None
    if offset is not None:
        c[:, 0], c[:, 2::2] = offset, 0.0
    return c


# --------------------------------------------------------------------------------------------
# mpmath (arbitrary precision)
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _mp_callable(expr: sympy.Expr):
    return sympy.lambdify(z, expr, modules="mpmath")


def _memoised(f):
    """f with its values remembered: the integrals of one call share their quadrature nodes."""
    values = {}

    def g(x):
        if x not in values:
            values[x] = f(x)
        return values[x]

    return g


def _mp_variance(variance):
    r = mpmath.mpf(variance)
    if not (mpmath.isfinite(r) and r > 0):
        raise ValueError(f"variance must be positive and finite, got {variance!r}")
    return r


def _mp_expect(name, expr, r, g, dps, shift=0):
    """E g(N) for N ~ N(0, r) at dps digits: adaptive tanh-sinh quadrature split at 0, ±√r,
    ±4√r, the kinks (of σ, at k − ``shift`` when g(x) = σ(shift + x)), and around the peak of
    |g| φ (found on a grid of u = x/√r in [-64, 64], so that the far-away mass of a fast-growing
    g is not missed)."""
    with mpmath.workdps(dps + 10):
        s = mpmath.sqrt(r)
        grid = [mpmath.mpf(k) / 2 for k in range(-128, 129)]
        size = [abs(g(s * u)) for u in grid]
        peak = max(range(len(grid)), key=lambda i: (mpmath.log(size[i]) - grid[i] ** 2 / 2)
                   if size[i] else -mpmath.inf)
        around = [grid[peak] + d for d in (-4, -1, 0, 1, 4)]
        points = sorted({mpmath.mpf(0), s, -s, 4 * s, -4 * s, *(s * u for u in around),
                         *(mpmath.mpf(k) - shift for k in _kinks(expr))})
        nodes = [-mpmath.inf, *points, mpmath.inf]

        def integrand(x):
            return g(x) * mpmath.exp(-x * x / (2 * r))

        value, err = mpmath.quad(integrand, nodes, error=True)
        target = abs(value) * mpmath.mpf(10) ** (-dps - 2) + mpmath.mpf(10) ** (-dps - 8)
        if not abs(err) <= target:
            value, err = mpmath.quad(integrand, nodes, error=True, maxdegree=12)
        if not abs(err) <= target * 1000:
            warnings.warn(f"mpmath quadrature for {name!r} at variance {mpmath.nstr(r, 8)} has "
                          f"error estimate {mpmath.nstr(err, 3)}", RuntimeWarning, stacklevel=4)
        value = value / mpmath.sqrt(2 * mpmath.pi * r)
    return +value


@lru_cache(maxsize=4096)
def _mp_moments(name, expr, variance, dps, mean=0.0):
    """(κ0, κ1, E2, κ*²) at N ~ N(mean, variance) as mpf at dps digits; κ*² integrated as
    E[(σ − κ0 − κ1 (N − mean))²]."""
    f = _memoised(_mp_callable(expr))
    with mpmath.workdps(dps):
        r = _mp_variance(variance)
        m = mpmath.mpf(mean)
        if m != 0:
            f = _memoised(lambda x, f=f: f(m + x))
        k0 = _mp_expect(name, expr, r, f, dps, m)
        k1 = _mp_expect(name, expr, r, lambda x: x * f(x), dps, m) / r
        e2 = _mp_expect(name, expr, r, lambda x: f(x) ** 2, dps, m)
        ks2 = _mp_expect(name, expr, r, lambda x: (f(x) - k0 - k1 * x) ** 2, dps, m)
        return k0, k1, e2, ks2


@lru_cache(maxsize=4096)
def _mp_hermite(name, expr, order, variance, dps, mean=0.0):
    """Normalised projections E[σ(N) h_k((N − mean)/√r)], k = 0..order, N ~ N(mean, r), as mpf
    (h_k = He_k/√(k!))."""
    f = _memoised(_mp_callable(expr))
    with mpmath.workdps(dps):
        r = _mp_variance(variance)
        s = mpmath.sqrt(r)
        m = mpmath.mpf(mean)
        if m != 0:
            f = _memoised(lambda x, f=f: f(m + x))

        def h(k, x):  # He_k(x/√r)/√(k!) by the three-term recurrence
            u, prev, cur = x / s, mpmath.mpf(0), mpmath.mpf(1)
            for j in range(k):
                prev, cur = cur, (u * cur - mpmath.sqrt(j) * prev) / mpmath.sqrt(j + 1)
            return cur

        return tuple(_mp_expect(name, expr, r, lambda x, k=k: f(x) * h(k, x), dps, m)
                     for k in range(order + 1))


def _mp_row(act, r, order, dps=20, mean=0.0):
    """A quadrature row (see :func:`_estimate`) computed with mpmath, as floats."""
    k0, k1, e2, ks2 = _mp_moments(act.name, act.expr, float(r), dps, float(mean))
    if order is None:
        return np.array([float(k0), float(k1 * mpmath.sqrt(r)), float(e2), float(ks2)])
    a = _mp_hermite(act.name, act.expr, order, float(r), dps, float(mean))
    return np.array([float(x) for x in a] + [float(e2)])


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _moments4(f, variance, method, mean=None):
    """(mean, slope, second, κ*²) arrays of shape (n,), and the broadcast shape of variance and
    mean (N ~ N(mean, variance); ``mean`` None or all zero: the centred path)."""
    act, method = functions.get(f), _method(method)
    r, m, shape = _variances_and_means(variance, mean)
    if method == "mpmath":
        rows = ([_mp_moments(act.name, act.expr, float(x), 30) for x in r] if m is None else
                [_mp_moments(act.name, act.expr, float(x), 30, float(mu)) for x, mu in zip(r, m)])
        out = tuple(np.array([float(row[i]) for row in rows]) for i in range(4))
    elif m is not None:
        out = None if method == "quadrature" else _exact_moments_shifted(act, r, m)
        if out is None and method == "exact":
            raise ValueError(f"no closed form for activation {act.name!r} ({act.expr}) at a non-zero "
                             "mean; use method='auto' or 'quadrature'")
        if out is None:
            out = _numeric_moments(act, r, m)
    else:
        out = None if method == "quadrature" else _exact_moments(act, r)
        if out is None and method == "exact":
            raise ValueError(f"no closed form for activation {act.name!r} ({act.expr}); "
                             "use method='auto' or 'quadrature'")
        if out is None:
            out = _numeric_moments(act, r)
    return tuple(np.asarray(x, dtype=float) for x in out), shape


def expectation(f, variance, *, mean=None, method: str = "auto"):
    """E f(N) for N ~ N(mean, variance) (mean 0 by default); ``method`` in {"auto", "exact",
    "quadrature", "mpmath"}."""
    (first, *_), shape = _moments4(f, variance, method, mean)
    return _shaped(first, shape)


def moments(f, variance, *, mean=None, method: str = "auto") -> GaussianMoments:
    """E f(N), E f'(N) (= E[(N − m) f(N)]/r by Stein's lemma) and E f(N)² for
    N ~ N(m, variance), m = ``mean`` (0 by default; broadcast with ``variance``)."""
    (first, slope, second, _), shape = _moments4(f, variance, method, mean)
    return GaussianMoments(_shaped(first, shape), _shaped(slope, shape), _shaped(second, shape))


def kappas(activation, variance, *, mean=None, method: str = "auto"):
    """(κ0, κ1, κ*) of an activation at N ~ N(m, variance), m = ``mean`` (0 by default, broadcast
    with ``variance``): κ0 = E σ(N) (not centred), κ1 = E[(N − m) σ(N)]/r = E σ'(N),
    κ*² = E σ² − κ0² − r κ1² = E[(σ(N) − κ0 − κ1 (N − m))²] ≥ 0 (rounding below 0 clipped to 0).
    A non-zero mean uses the closed forms of relu and sign (c·g(a z)) and quadrature otherwise;
    mean None or all zero is the centred computation, bit for bit."""
    (first, slope, _, kstar2), shape = _moments4(activation, variance, method, mean)
    kstar = np.sqrt(np.maximum(kstar2, 0.0))
    return _shaped(first, shape), _shaped(slope, shape), _shaped(kstar, shape)


def hermite_coefficients(f, order: int, variance=1.0, *, mean=None, method: str = "auto") -> np.ndarray:
    """c_0..c_order with c_k = E[f(N) He_k((N − m)/√r)] / (k! r^{k/2}) = E[f^{(k)}(N)]/k!,
    N ~ N(m, r), m = ``mean`` (0 by default; a non-zero mean is computed by quadrature).

    Shape (order+1,) for a scalar variance, variance.shape + (order+1,) for an array.
    """
    act, method = functions.get(f), _method(method)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    r, m, shape = _variances_and_means(variance, mean)
    if m is not None:
        return _shifted_hermite(act, int(order), r, m, method).reshape(shape + (order + 1,))
    if method == "mpmath":
        c = np.array([[float(x) for x in hermite_coefficients_mp(act, order, float(v))] for v in r])
    else:
        c = None if method == "quadrature" else _exact_hermite(act, int(order), r)
        if c is None and method == "exact":
            raise ValueError(f"no closed form for activation {act.name!r} ({act.expr}); "
                             "use method='auto' or 'quadrature'")
        if c is None:
            c = _numeric_hermite(act, int(order), r)
    return c.reshape(shape + (order + 1,))


def _shifted_hermite(act, order, r, m, method):
    """c_0..c_order at N ~ N(m, r) by quadrature (or mpmath), shape (len(r), order + 1)."""
    if method == "exact":
        raise ValueError(f"no closed form for the Hermite coefficients of {act.name!r} at a non-zero mean; "
                         "use method='auto' or 'quadrature'")
    if method != "mpmath":
        return _numeric_hermite(act, order, r, m)
    k = np.arange(order + 1)
    a = np.array([[float(x) for x in _mp_hermite(act.name, act.expr, order, float(v), 30, float(mu))]
                  for v, mu in zip(r, m)])
    return a * np.exp(-0.5 * gammaln(k + 1.0) - 0.5 * k * np.log(r)[:, None])


def expectation_mp(f, variance, dps: int = 30):
    """E f(N), N ~ N(0, variance), as an mpmath number accurate to about ``dps`` digits."""
    act = functions.get(f)
    with mpmath.workdps(dps):
        return _mp_expect(act.name, act.expr, _mp_variance(variance), _mp_callable(act.expr), dps)


def kappas_mp(activation, variance, dps: int = 30):
    """(κ0, κ1, κ*) as mpmath numbers (adaptive quadrature at ``dps`` digits; κ*² is integrated
    as E[(σ − κ0 − κ1 N)²], so it has no cancellation)."""
    act = functions.get(activation)
    k0, k1, _, ks2 = _mp_moments(act.name, act.expr, variance, dps)
    with mpmath.workdps(dps):
        return k0, k1, mpmath.sqrt(ks2)


def hermite_coefficients_mp(f, order: int, variance=1.0, dps: int = 30) -> list:
    """c_0..c_order (see :func:`hermite_coefficients`) as mpmath numbers."""
    act = functions.get(f)
    a = _mp_hermite(act.name, act.expr, int(order), variance, dps)
    with mpmath.workdps(dps):
        r = _mp_variance(variance)
        return [a[k] / (mpmath.sqrt(mpmath.factorial(k)) * r ** (mpmath.mpf(k) / 2))
                for k in range(order + 1)]
