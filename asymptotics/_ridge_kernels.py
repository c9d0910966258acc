"""Numba kernels of the ridge deterministic-equivalent solver (see :mod:`asymptotics.ridge`).

Everything is written in terms of the positive eigenvalues ``w`` of Ω (sorted ascending),
``beta2 = b̃²/w`` and σ_res² = E[y²] − bᵀΩ⁺b. For one point (n, λ) with r = len(w):

    t_i = 1/(w_i + κ),  u_i = w_i t_i,  v_i = κ t_i           (u_i + v_i = 1)
    df1 = Σ u_i,  df2 = Σ u_i²,  n − df1 = n − Σ u_i = (n − r) + Σ v_i

The fixed-point equation (E1) λ = κ(1 − df1/n) is solved as the root of

    g(κ) = κ (n − df1)/n − λ

where n − df1 is formed as (n − m) + Σ_{ω_i > κ} v_i − Σ_{ω_i ≤ κ} u_i with m = #{ω_i > κ}:
every term is ≤ 1/2, so its rounding error is eps·(|n − m| + Σ min(u_i, v_i)) instead of eps·r,
which keeps κ accurate for n ≪ r at large κ, next to the interpolation threshold at small κ,
and for κ between widely separated eigenvalues (n − df1 ≪ 1 with n ≈ m).
g is convex, negative below its root and positive above it (for λ > 0, and for λ = 0 when
n < r). Its derivatives are g′ = 1 − df2/n, evaluated as (n − df1)/n + Σ u_i v_i/n (no
cancellation when g′ ≪ 1, i.e. next to the interpolation peak), and g″ = 2 Σ u_i² t_i / n.

Every point is classified (:func:`classify`) into one of four regimes:

* ``REG_CLOSED``: λ = 0 with n ≥ r, or r = 0: closed forms.
* ``REG_LARGE``: κ ≥ 2¹⁰⁸ ω_max (λ/ω_max + Tr Ω/(n ω_max) ≥ 2¹¹⁰, e.g. n → 0 or λ → ∞): every
  u_i ≤ 2⁻¹⁰⁸, so κ = λ + Tr Ω/n, E_gen = E[y²] and the rest follow to double precision from the
  first terms of the expansion in ω/κ, without forming κ (which may exceed the float range).
* ``REG_FAST``: the spectrum, n, λ and the κ-bracket all lie well inside the float range
  (2⁻⁸⁰⁰ … 2⁸⁰⁰): the whole grid shares one geometric κ-grid; because the sign of g is
  monotone in κ, a binary search on that grid gives each point a tight bracket, regula falsi
  an initial guess, and two or three safeguarded Halley steps finish.
* ``REG_SCALED``: anything else (eigenvalues or λ near the ends of the float range, spectra
  wider than 10³⁰⁰): per point, the binade 2ᵉ ≤ κ < 2ᵉ⁺¹ of the root is found by bisection on
  e, then the equation is solved in units of 2ᵉ (Ω/2ᵉ, λ/2ᵉ: exact scaling, so no overflow and
  no subnormal κ) with division-form sums that tolerate eigenvalues beyond the scaled range.

A point never depends on the other points of its grid beyond the last bits of its iteration
(the κ-grid only chooses the starting bracket; every point is solved to the rounding floor of
g). At the root the error formula (E2) is evaluated in the cancellation-free form

    1 − df2/n = λ/κ + Σ u_i v_i / n,
    E[y²] − bᵀ(Ω+κ)⁻²(Ω+2κ)b = σ_res² + Σ beta2_i v_i².

A point whose κ or errors overflow float64 gets status ``OUT_OF_RANGE`` (the finite quantities
are still exact: in ``REG_LARGE`` with κ > 1.8·10³⁰⁸ the errors are right and κ is +inf).
"""
from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

# Numba's OpenMP threading layer keeps its threads spinning after a parallel region; on a
# 2-core machine they then starve OpenBLAS (a quick experiment that mixes these kernels with
# SVDs ran 100x slower: 300 s instead of 3 s). The workqueue layer has no such spin. Users can
# still choose explicitly with NUMBA_THREADING_LAYER.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Status codes of a solved point.
OK = 0
NOT_CONVERGED = 1
SINGULAR = 2  # λ = 0 and n = rank(Ω) with σ_res² > 0: the interpolation peak, test error +inf
OUT_OF_RANGE = 3  # κ or an error beyond the float64 range (returned as +inf)

# Regimes of a point (see the module docstring).
REG_CLOSED = 0
REG_LARGE = 1
REG_FAST = 2
REG_SCALED = 3

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_EPS = np.finfo(np.float64).eps
LARGE_LOG2 = 110.0  # REG_LARGE when log2((λ + Tr/n)/ω_max) ≥ this
FAST_LOG2 = 800.0  # REG_FAST needs every scale within 2^±FAST_LOG2
_HUGE = 2.0**1000


@njit(cache=True)
def _split(w, kappa):
    """Number of eigenvalues ω_i ≤ κ (``w`` ascending)."""
    return np.searchsorted(w, kappa, side="right")


@njit(cache=True, fastmath=_FASTMATH)
def _sum_split(w, kappa):
    """(Σ_{ω_i > κ} v_i − Σ_{ω_i ≤ κ} u_i, Σ_{ω_i > κ} v_i + Σ_{ω_i ≤ κ} u_i, m = #{ω_i > κ})."""
    j = _split(w, kappa)
    su = 0.0
    for i in range(j):
        su += w[i] / (w[i] + kappa)
    sv = 0.0
    for i in range(j, w.shape[0]):
        sv += kappa / (w[i] + kappa)
    return sv - su, sv + su, w.shape[0] - j


@njit(cache=True)
def _ndn(n, off, scale, m):
    """((n − df1)/n, size of its rounding error / eps) from n − df1 = (n − m) + off."""
    d = n - m
    return d / n + off / n, abs(d) / n + scale / n


@njit(cache=True, parallel=True)
def kappa_grid_sums(w, grid):
    """(off_j, scale_j, m_j) of :func:`_sum_split` at every κ_j of ``grid`` (one pass each)."""
    off = np.empty(grid.shape[0])
    scale = np.empty(grid.shape[0])
    cnt = np.empty(grid.shape[0], dtype=np.int64)
    for j in prange(grid.shape[0]):
        off[j], scale[j], cnt[j] = _sum_split(w, grid[j])
    return off, scale, cnt


@njit(cache=True)
def _log2_upper(lam, n, wmax, tr_rel):
    """log2((λ + Tr Ω/n)/ω_max) without overflow (Tr Ω = ω_max·tr_rel)."""
    a = lam / wmax  # may be inf: then the log is inf
    b = tr_rel / n  # may be inf
    s = a + b
    if s < _HUGE:
        return math.log2(s)
    la = math.log2(lam) - math.log2(wmax) if lam > 0.0 else -np.inf
    lb = math.log2(tr_rel) - math.log2(n)
    hi = max(la, lb)
    return hi + math.log2(1.0 + 2.0 ** (min(la, lb) - hi))


@njit(cache=True)
def _classify_point(r, wmin, wmax, tr_rel, fast_model, n, lam):
    if r == 0 or (lam == 0.0 and n >= r):
        return REG_CLOSED
    if _log2_upper(lam, n, wmax, tr_rel) >= LARGE_LOG2:
        return REG_LARGE
    lim = 2.0**FAST_LOG2
    if fast_model and n <= lim and (lam == 0.0 or (lam >= 1.0 / lim and lam <= lim)):
        if lam == 0.0:
            # κ₀ ≥ ω_min (r − n)/n must stay well inside the range.
            if wmin * ((r - n) / n) < 1.0 / lim:
                return REG_SCALED
        return REG_FAST
    return REG_SCALED


@njit(cache=True)
def classify(r, wmin, wmax, tr_rel, fast_model, n_arr, lam_arr, out):
    """Regime of every point (see the module docstring)."""
    for k in range(n_arr.shape[0]):
        out[k] = _classify_point(r, wmin, wmax, tr_rel, fast_model, n_arr[k], lam_arr[k])


# ------------------------------------------------------------------ fast path
@njit(cache=True, fastmath=_FASTMATH)
def _point_sums(w, beta2, kappa):
    """(Σu, Σu², Σuv, Σu²t, Σ beta2 v², off, scale, m) at κ in one fused pass (see _sum_split)."""
    j = _split(w, kappa)
    su = 0.0
    sv_big = 0.0
    su_small = 0.0
    su2 = 0.0
    suv = 0.0
    su2t = 0.0
    sb = 0.0
    for i in range(j):
        t = 1.0 / (w[i] + kappa)
        u = w[i] * t
        v = kappa * t
        su_small += u
        su2 += u * u
        suv += u * v
        su2t += u * u * t
        sb += beta2[i] * v * v
    for i in range(j, w.shape[0]):
        t = 1.0 / (w[i] + kappa)
        u = w[i] * t
        v = kappa * t
        su += u
        sv_big += v
        su2 += u * u
        suv += u * v
        su2t += u * u * t
        sb += beta2[i] * v * v
    return su + su_small, su2, suv, su2t, sb, sv_big - su_small, sv_big + su_small, w.shape[0] - j


@njit(cache=True)
def _g_grid(n, lam, grid, grid_off, grid_scale, grid_m, j):
    return grid[j] * _ndn(n, grid_off[j], grid_scale[j], grid_m[j])[0] - lam


@njit(cache=True)
def _grid_bracket(n, r, lam, grid, grid_off, grid_scale, grid_m):
    """Index j of the first κ-grid point with g(κ_j) >= 0 (binary search: g is sign-monotone in κ)."""
    lo_i = 0
    hi_i = grid.shape[0]
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        if _g_grid(n, lam, grid, grid_off, grid_scale, grid_m, mid) >= 0.0:
            hi_i = mid
        else:
            lo_i = mid + 1
    return lo_i


@njit(cache=True)
def _initial_bracket(w, r, n, lam, trace, grid, grid_off, grid_scale, grid_m):
    """Bracket [a, b] of the root of g and a first guess x (regula falsi inside the grid cell).

    A root outside the grid gets the analytic bracket of (E1): [λ, λ + Tr Ω/n] for λ > 0
    (and κ ≤ λ n/(n − r) for n > r), [ω_min (r − n)/n, Tr Ω/n] for λ = 0.
    """
    m = grid.shape[0]
    j = _grid_bracket(n, r, lam, grid, grid_off, grid_scale, grid_m)
    if j == 0 or j == m:
        if lam > 0.0:
            a = lam
            b = lam + trace / n
            if n > r:
                b = min(b, lam * (n / (n - r)))
        else:
            a = w[0] * ((r - n) / n)
            b = trace / n
        return a, b, 0.5 * a + 0.5 * b
    a = grid[j - 1]
    ga = _g_grid(n, lam, grid, grid_off, grid_scale, grid_m, j - 1)
    b = grid[j]
    gb = _g_grid(n, lam, grid, grid_off, grid_scale, grid_m, j)
    if gb == 0.0:
        return a, b, b
    x = a - ga * ((b - a) / (gb - ga))
    if not (a < x < b):
        x = 0.5 * a + 0.5 * b
    return a, b, x


@njit(cache=True)
def _halley(x, g, dg, d2g_over_dg_times_x):
    """Halley step from x (Newton if the correction is unsafe); returns the new x (maybe NaN)."""
    step = g / dg
    corr = 1.0 - 0.5 * (step / x) * d2g_over_dg_times_x
    if corr > 0.5:
        step = step / corr
    return x - step


@njit(cache=True)
def _solve_fast(w, beta2, r, n, lam, trace, grid, grid_off, grid_scale, grid_m, max_iter, rtol):
    """Safeguarded Halley iteration on g(κ) inside the grid bracket (bisection when a step leaves
    it). Returns (κ, Σu, Σu², Σuv, Σ beta2 v², iterations, status)."""
    a, b, x = _initial_bracket(w, r, n, lam, trace, grid, grid_off, grid_scale, grid_m)
    status = NOT_CONVERGED
    it = 0
    su = su2 = suv = sb = 0.0
    while it < max_iter:
        it += 1
        su, su2, suv, su2t, sb, off, scale, m = _point_sums(w, beta2, x)
        ndn, ndn_scale = _ndn(n, off, scale, m)
        g = x * ndn - lam
        if g < 0.0:
            a = x
        elif g > 0.0:
            b = x
        else:
            status = OK
            break
        # Rounding floor of g: converged once g is at its noise level.
        if abs(g) <= 4.0 * _EPS * (x * ndn_scale + lam):
            status = OK
            break
        dg = ndn + suv / n  # = 1 − df2/n without cancellation
        x_new = -1.0
        if dg > 0.0:
            x_new = _halley(x, g, dg, 2.0 * su2t * x / (n * dg))
        if abs(x_new - x) <= rtol * x:
            status = OK
            break
        if not (a < x_new < b):
            x_new = 0.5 * a + 0.5 * b
        if b - a <= rtol * x:
            status = OK
            break
        x = x_new
    return x, su, su2, suv, sb, it, status


# ---------------------------------------------------------------- scaled path
@njit(cache=True)
def _scaled_sums(w, beta2, s1, s2, kp):
    """Sums at κ = kp/(s1 s2), in units of 1/(s1 s2): (Σu, Σu², Σuv, Σu²v, Σ beta2 v², off, scale, m).

    Division form (u, v ≤ 1 whatever the scale); eigenvalues beyond 2¹⁰⁰⁰ in these units
    (possibly +inf) count as u = 1, v = kp/ω. off, scale, m as in :func:`_sum_split`."""
    su = 0.0
    sv_big = 0.0
    su_small = 0.0
    su2 = 0.0
    suv = 0.0
    su2v = 0.0
    sb = 0.0
    m = 0
    for i in range(w.shape[0]):
        wp = (w[i] * s1) * s2
        if wp < _HUGE:
            d = wp + kp
            u = wp / d
            v = kp / d
        else:
            u = 1.0
            v = kp / wp
        su += u
        if wp > kp:
            sv_big += v
            m += 1
        else:
            su_small += u
        su2 += u * u
        suv += u * v
        su2v += u * u * v
        sb += beta2[i] * v * v
    return su, su2, suv, su2v, sb, sv_big - su_small, sv_big + su_small, m


@njit(cache=True)
def _g_scaled(w, beta2, r, n, lam, e, kp):
    """At κ = kp·2ᵉ: (g/2ᵉ, its rounding scale / eps, λ/2ᵉ, (n − df1)/n, Σu, Σu², Σuv, Σu²v, Σ beta2 v²)."""
    e1 = min(max(-e, -1022), 1023)
    s1 = math.ldexp(1.0, e1)
    s2 = math.ldexp(1.0, -e - e1)
    lp = (lam * s1) * s2
    su, su2, suv, su2v, sb, off, scale, m = _scaled_sums(w, beta2, s1, s2, kp)
    ndn, ndn_scale = _ndn(n, off, scale, m)
    return kp * ndn - lp, kp * ndn_scale + lp, lp, ndn, su, su2, suv, su2v, sb


@njit(cache=True)
def _solve_scaled(w, beta2, r, n, lam, wmin, wmax, tr_rel, max_iter, rtol):
    """Binade search for the root of g, then safeguarded Halley in units of 2ᵉ.

    Returns (kp, e, λ/κ, Σu, Σu², Σuv, Σ beta2 v², iterations, status) with κ = kp·2ᵉ."""
    if lam > 0.0:
        llo = math.log2(lam)
    else:
        llo = math.log2(wmin) + math.log2((r - n) / n)
    lhi = math.log2(wmax) + _log2_upper(lam, n, wmax, tr_rel)
    e_lo = int(math.floor(llo)) - 1
    e_hi = int(math.ceil(lhi)) + 1
    # Invariant: g(2^e_lo) < 0 <= g(2^e_hi) (κ in [lo, hi] analytically; one binade of margin).
    while e_hi - e_lo > 1:
        mid = (e_lo + e_hi) // 2
        if _g_scaled(w, beta2, r, n, lam, mid, 1.0)[0] < 0.0:
            e_lo = mid
        else:
            e_hi = mid
    e = e_lo
    a = 1.0
    b = 2.0
    ga = _g_scaled(w, beta2, r, n, lam, e, 1.0)[0]
    gb = _g_scaled(w, beta2, r, n, lam, e, 2.0)[0]
    x = a - ga * ((b - a) / (gb - ga))
    if not (a < x < b):
        x = 1.5
    status = NOT_CONVERGED
    it = 0
    lp = su = su2 = suv = sb = 0.0
    while it < max_iter:
        it += 1
        g, gscale, lp, ndn, su, su2, suv, su2v, sb = _g_scaled(w, beta2, r, n, lam, e, x)
        if g < 0.0:
            a = x
        elif g > 0.0:
            b = x
        else:
            status = OK
            break
        if abs(g) <= 4.0 * _EPS * gscale:
            status = OK
            break
        dg = ndn + suv / n
        x_new = -1.0
        if dg > 0.0:
            x_new = _halley(x, g, dg, 2.0 * su2v / (n * dg))
        if abs(x_new - x) <= rtol * x:
            status = OK
            break
        if not (a < x_new < b):
            x_new = 0.5 * (a + b)
        if b - a <= rtol * x:
            status = OK
            break
        x = x_new
    return x, e, lp / x, su, su2, suv, sb, it, status


# ---------------------------------------------------------------- whole grid
@njit(cache=True)
def _closed_point(r, n, lam, sigma_res2):
    """λ = 0 with n ≥ rank (κ = 0 exactly), or rank 0: (κ, df1, df2, test, train, bias, variance, status)."""
    if r == 0:
        return lam, 0.0, 0.0, sigma_res2, sigma_res2, 0.0, 0.0, OK
    # Ridgeless, under-parametrised (or at the peak): κ = 0 exactly.
    train = sigma_res2 * ((n - r) / n)
    if n > r:
        return 0.0, float(r), float(r), sigma_res2 * (n / (n - r)), train, 0.0, sigma_res2 * (r / (n - r)), OK
    if sigma_res2 == 0.0:
        # Noiseless interpolation peak: bias and variance both vanish as λ → 0⁺.
        return 0.0, float(r), float(r), 0.0, train, 0.0, 0.0, OK
    return 0.0, float(r), float(r), np.inf, train, 0.0, np.inf, SINGULAR


@njit(cache=True)
def _large_point(w, r, n, lam, wmax, tr_rel, trace, sigma_res2, sum_beta2):
    """κ ≥ 2^108 ω_max: u_i = ω_i/κ (1 + O(2^-108)), v_i = 1 − O(2^-108); same tuple as _closed_point."""
    k_rel = lam / wmax + tr_rel / n  # κ/ω_max (may be inf)
    # κ = λ + TrΩ/n, with TrΩ/n formed so that it overflows only if it exceeds the range.
    if trace < _HUGE and trace > 1.0 / _HUGE:
        t_n = trace / n
    elif trace >= _HUGE:
        t_n = wmax * (tr_rel / n)
    else:
        t_n = (wmax / n) * tr_rel
    kap = lam + t_n
    if lam == 0.0:
        lk = 0.0
    elif kap < np.inf:
        lk = lam / kap
    else:
        # λ/κ = 1/(1 + TrΩ/(nλ)), the ratio formed in logarithms (κ beyond the range).
        lx = math.log2(tr_rel) + math.log2(wmax) - math.log2(n) - math.log2(lam)
        lk = 1.0 / (1.0 + 2.0**lx) if lx < 1000.0 else 0.0
    q = 0.0
    for i in range(r):
        ui = (w[i] / wmax) / k_rel
        q += ui * ui
    test = sigma_res2 + sum_beta2
    return kap, n * (1.0 - lk), q, test, lk * lk * test, sum_beta2, sigma_res2 * (q / n), OK


@njit(cache=True)
def _errors(n, lk, su2, suv, sb, sigma_res2):
    """(test, train, bias, variance) from the sums of a solved point (cancellation-free forms)."""
    denom = lk + suv / n
    test = (sigma_res2 + sb) / denom
    return test, lk * lk * test, sb / denom, sigma_res2 * (su2 / n) / denom


@njit(cache=True, parallel=True)
def solve_grid(w, beta2, sigma_res2, sum_beta2, wmin, wmax, tr_rel, regime, n_arr, lam_arr, grid,
               grid_off, grid_scale, grid_m, max_iter, rtol, kappa, df1, df2, test, train, bias, variance, iters,
               status):
    """Solve every point (n_arr[k], lam_arr[k]) of a flattened grid in parallel; a point whose
    values are not all finite is flagged OUT_OF_RANGE (never a silent NaN)."""
    r = w.shape[0]
    trace = wmax * tr_rel
    for k in prange(n_arr.shape[0]):
        n = n_arr[k]
        lam = lam_arr[k]
        reg = regime[k]
        it = 0
        if reg == REG_CLOSED:
            kap, d1, d2, te, tr, bi, va, st = _closed_point(r, n, lam, sigma_res2)
        elif reg == REG_LARGE:
            kap, d1, d2, te, tr, bi, va, st = _large_point(w, r, n, lam, wmax, tr_rel, trace, sigma_res2,
                                                           sum_beta2)
        elif reg == REG_FAST:
            kap, d1, d2, suv, sb, it, st = _solve_fast(
                w, beta2, r, n, lam, trace, grid, grid_off, grid_scale, grid_m, max_iter, rtol)
            te, tr, bi, va = _errors(n, lam / kap, d2, suv, sb, sigma_res2)
        else:
            kp, e, lk, d1, d2, suv, sb, it, st = _solve_scaled(
                w, beta2, r, n, lam, wmin, wmax, tr_rel, max_iter, rtol)
            kap = math.ldexp(kp, e)
            te, tr, bi, va = _errors(n, lk, d2, suv, sb, sigma_res2)
        kappa[k], df1[k], df2[k], test[k], train[k], bias[k], variance[k], iters[k] = kap, d1, d2, te, tr, bi, va, it
        if st == OK:
            for val in (kap, d1, d2, te, tr, bi, va):
                if not math.isfinite(val):
                    st = OUT_OF_RANGE
        status[k] = st
