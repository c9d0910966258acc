"""Numba kernels of the ridge deterministic-equivalent solver (see :mod:`asymptotics.ridge`).

Everything is written in terms of the positive eigenvalues ``w`` of Ω (sorted ascending),
``beta2 = b̃²/w`` and σ_res² = E[y²] − bᵀΩ⁺b. For one point (n, λ) with r = len(w):

    t_i = 1/(w_i + κ),  u_i = w_i t_i,  v_i = κ t_i           (u_i + v_i = 1)
    df1 = Σ u_i,  df2 = Σ u_i²,  n − df1 = n − Σ u_i = (n − r) + Σ v_i

The fixed-point equation (E1) λ = κ(1 − df1/n) is solved as the root of

    g(κ) = κ (n − df1) / n − λ

where n − df1 is formed from whichever of the two sums is smaller (Σu when df1 < r/2, else
(n − r) + Σv): its rounding error is then eps·min(df1, r − df1) instead of eps·r, which keeps
κ accurate both for n ≪ r at large κ and next to the interpolation threshold at small κ.

which is convex, negative below its root and positive above it (for λ > 0, and for λ = 0
when n < r). Its derivatives are g′ = 1 − df2/n and g″ = 2 Σ u_i² t_i / n.

Solving a whole grid: one pass computes df1 on a geometric κ-grid covering every point's
bracket; because the sign of g is monotone in κ, a binary search on that grid gives each
point a tight bracket, regula falsi an initial guess, and two or three safeguarded Halley
steps finish. At the root the error formula (E2) is evaluated in the cancellation-free form

    1 − df2/n = λ/κ + Σ u_i v_i / n,
    E[y²] − bᵀ(Ω+κ)⁻²(Ω+2κ)b = σ_res² + Σ beta2_i v_i².
"""
from __future__ import annotations

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
SINGULAR = 2  # λ = 0 and n = rank(Ω): the interpolation peak, test error +inf

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_EPS = np.finfo(np.float64).eps


@njit(cache=True, fastmath=_FASTMATH)
def _sum_uv(w, kappa):
    """(Σ w_i/(w_i + κ), Σ κ/(w_i + κ)) = (df1, r − df1), each accurate to relative eps."""
    su = 0.0
    sv = 0.0
    for i in range(w.shape[0]):
        t = 1.0 / (w[i] + kappa)
        su += w[i] * t
        sv += kappa * t
    return su, sv


@njit(cache=True)
def _n_minus_df1(n, r, su, sv):
    """n − df1 from the smaller of the two sums, and the size of its rounding error / eps."""
    if su < sv:
        return n - su, n + su
    return (n - r) + sv, abs(n - r) + sv


@njit(cache=True, parallel=True)
def kappa_grid_sums(w, grid):
    """(df1, r − df1) at every κ_j of ``grid`` (one pass over the spectrum each)."""
    su = np.empty(grid.shape[0])
    sv = np.empty(grid.shape[0])
    for j in prange(grid.shape[0]):
        su[j], sv[j] = _sum_uv(w, grid[j])
    return su, sv


@njit(cache=True, fastmath=_FASTMATH)
def _point_sums(w, beta2, kappa):
    """(Σu, Σv, Σu², Σuv, Σu²t, Σ beta2 v²) at κ in one fused pass."""
    su = 0.0
    sv = 0.0
    su2 = 0.0
    suv = 0.0
    su2t = 0.0
    sb = 0.0
    for i in range(w.shape[0]):
        t = 1.0 / (w[i] + kappa)
        u = w[i] * t
        v = kappa * t
        su += u
        sv += v
        su2 += u * u
        suv += u * v
        su2t += u * u * t
        sb += beta2[i] * v * v
    return su, sv, su2, suv, su2t, sb


@njit(cache=True)
def _g_grid(n, r, lam, grid, grid_su, grid_sv, j):
    return grid[j] * _n_minus_df1(n, r, grid_su[j], grid_sv[j])[0] / n - lam


@njit(cache=True)
def _grid_bracket(n, r, lam, grid, grid_su, grid_sv):
    """Index j of the first κ-grid point with g(κ_j) >= 0 (binary search: g is sign-monotone in κ)."""
    lo_i = 0
    hi_i = grid.shape[0]
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        if _g_grid(n, r, lam, grid, grid_su, grid_sv, mid) >= 0.0:
            hi_i = mid
        else:
            lo_i = mid + 1
    return lo_i


@njit(cache=True)
def _initial_bracket(w, r, n, lam, grid, grid_su, grid_sv):
    """Bracket [a, b] of the root of g and a first guess x (regula falsi inside the grid cell).

    A root outside the grid (only through rounding at the ends) gets the analytic bracket of (E1):
    [λ, λ + Tr Ω/n] for λ > 0, [w_min (r − n)/n, Tr Ω/n] for λ = 0.
    """
    m = grid.shape[0]
    j = _grid_bracket(n, r, lam, grid, grid_su, grid_sv)
    if j == 0 or j == m:
        trace = 0.0
        for i in range(w.shape[0]):
            trace += w[i]
        if lam > 0.0:
            a = lam
            b = lam + trace / n
        else:
            a = w[0] * (r - n) / n
            b = trace / n
        return a, b, 0.5 * (a + b)
    a = grid[j - 1]
    ga = _g_grid(n, r, lam, grid, grid_su, grid_sv, j - 1)
    b = grid[j]
    gb = _g_grid(n, r, lam, grid, grid_su, grid_sv, j)
    if gb == 0.0:
        return a, b, b
    x = a - ga * (b - a) / (gb - ga)
    if not (a < x < b):
        x = 0.5 * (a + b)
    return a, b, x


@njit(cache=True)
def _solve_point(w, beta2, sigma_res2, r, n, lam, grid, grid_su, grid_sv, max_iter, rtol):
    """Solve one (n, λ) point; returns (κ, Σu, Σu², Σuv, Σ beta2 v², iterations, status).

    Safeguarded Halley iteration on g(κ) = κ(n − df1)/n − λ inside the bracket of
    :func:`_initial_bracket` (bisection whenever a step leaves it).
    """
    a, b, x = _initial_bracket(w, r, n, lam, grid, grid_su, grid_sv)
    status = NOT_CONVERGED
    it = 0
    su = su2 = suv = sb = 0.0
    while it < max_iter:
        it += 1
        su, sv, su2, suv, su2t, sb = _point_sums(w, beta2, x)
        nd, nd_scale = _n_minus_df1(n, r, su, sv)
        g = x * nd / n - lam
        if g < 0.0:
            a = x
        elif g > 0.0:
            b = x
        else:
            status = OK
            break
        dg = 1.0 - su2 / n
        # Rounding floor of g: converged once g is at its noise level.
        if abs(g) <= 4.0 * _EPS * (x * nd_scale / n + lam):
            status = OK
            break
        if dg > 0.0:
            d2g = 2.0 * su2t / n
            step = g / dg
            corr = 1.0 - 0.5 * step * d2g / dg
            if corr > 0.5:
                step = step / corr  # Halley
            x_new = x - step
        else:
            x_new = -1.0
        if abs(x_new - x) <= rtol * x:
            status = OK
            break
        if not (a < x_new < b):
            x_new = 0.5 * (a + b)
        if b - a <= rtol * x:
            status = OK
            break
        x = x_new
    return x, su, su2, suv, sb, it, status


@njit(cache=True, parallel=True)
def solve_grid(w, beta2, sigma_res2, n_arr, lam_arr, grid, grid_su, grid_sv, max_iter, rtol,
               kappa, df1, df2, test, train, bias, variance, iters, status):
    """Solve every point (n_arr[k], lam_arr[k]) of a flattened grid in parallel."""
    r = w.shape[0]
    for k in prange(n_arr.shape[0]):
        n = n_arr[k]
        lam = lam_arr[k]
        if lam == 0.0 and n >= r:
            # Ridgeless, under-parametrised (or at the peak): κ = 0 exactly.
            kappa[k] = 0.0
            df1[k] = r
            df2[k] = r
            iters[k] = 0
            train[k] = sigma_res2 * (n - r) / n
            bias[k] = 0.0
            if n > r:
                test[k] = sigma_res2 * n / (n - r)
                variance[k] = sigma_res2 * r / (n - r)
                status[k] = OK
            else:
                test[k] = np.inf
                variance[k] = np.inf
                status[k] = SINGULAR
            continue
        if r == 0:
            kappa[k] = lam
            df1[k] = 0.0
            df2[k] = 0.0
            test[k] = sigma_res2
            train[k] = sigma_res2
            bias[k] = 0.0
            variance[k] = 0.0
            iters[k] = 0
            status[k] = OK
            continue
        x, su, su2, suv, sb, it, st = _solve_point(
            w, beta2, sigma_res2, r, n, lam, grid, grid_su, grid_sv, max_iter, rtol)
        denom = lam / x + suv / n
        e = (sigma_res2 + sb) / denom
        kappa[k] = x
        df1[k] = su
        df2[k] = su2
        test[k] = e
        train[k] = (lam / x) ** 2 * e
        bias[k] = sb / denom
        variance[k] = sigma_res2 * (su2 / n) / denom
        iters[k] = it
        status[k] = st
