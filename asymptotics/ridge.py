r"""Deterministic equivalent of ridge regression on Gaussian-equivalent features.

Convention (mean loss, see ``docs/conventions.md``; derivation in ``docs/theory/ridge.md``)::

    θ̂ = argmin_θ (1/n) Σ_i (y_i − θᵀφ(x_i))² + λ‖θ‖²  =  (FᵀF/n + λI)⁻¹ Fᵀy/n.

The model is fixed by Ω = E[φφᵀ] (p×p), b = E[φy] (p) and E[y²]. With the eigenvalues ω_i of
Ω, b̃ = Uᵀb in its eigenbasis, df1(κ) = Σ ω_i/(ω_i+κ) and df2(κ) = Σ ω_i²/(ω_i+κ)²:

* (E1) the effective regularisation κ is the unique positive root of λ = κ (1 − df1(κ)/n);
* (E2) test error  E_gen = [E[y²] − Σ_i b̃_i² (ω_i+2κ)/(ω_i+κ)²] / (1 − df2(κ)/n);
* (E3) training error E_train = (λ/κ)² E_gen.

Ridgeless limit λ → 0 with r = rank Ω: for n > r, κ = 0, E_gen = σ_res²/(1 − r/n) and
E_train = (1 − r/n) σ_res² with σ_res² = E[y²] − bᵀΩ⁺b; for n < r, κ₀ > 0 solves df1(κ₀) = n
and E_train = 0; at n = r the test error is +∞ (the interpolation peak).

Bias–variance split (β = Ω⁺b): E_gen = σ_res² + B + V with
B = κ² βᵀΩ(Ω+κ)⁻²β / (1 − df2/n) and V = σ_res² (df2/n)/(1 − df2/n).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import mpmath
import numpy as np
import scipy.linalg
import scipy.optimize

from . import _ridge_kernels as _k

__all__ = [
    "GaussianCovariateModel",
    "RidgeResult",
    "OptimalRidge",
    "marchenko_pastur_ridge",
    "NumericalWarning",
]

_STATUS_NAMES = {_k.OK: "ok", _k.NOT_CONVERGED: "not converged", _k.SINGULAR: "singular (λ = 0, n = rank)"}


class NumericalWarning(RuntimeWarning):
    """A point of a grid could not be solved to full accuracy, or is singular."""


@dataclass(frozen=True)
class RidgeResult:
    """Deterministic-equivalent ridge quantities on a broadcast grid of (n, λ).

    All arrays have the broadcast shape of the ``n`` and ``lam`` given to
    :meth:`GaussianCovariateModel.ridge`. ``status`` is 0 (ok), 1 (not converged within the
    iteration cap) or 2 (λ = 0 and n = rank Ω: test error +∞); ``converged`` is ``status == 0``.
    """

    n: np.ndarray
    lam: np.ndarray
    test_error: np.ndarray
    train_error: np.ndarray
    kappa: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    bias: np.ndarray
    variance: np.ndarray
    converged: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    noise_floor: float = field(default=0.0)

    @property
    def excess_error(self) -> np.ndarray:
        """Test error minus the residual variance σ_res² (approximation error excluded)."""
        return self.test_error - self.noise_floor


@dataclass(frozen=True)
class OptimalRidge:
    """The λ ≥ 0 minimising the deterministic-equivalent test error at each n."""

    n: np.ndarray
    lam: np.ndarray
    test_error: np.ndarray


def _as_finite_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}") from exc
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _as_finite_scalar(x, name: str) -> float:
    a = _as_finite_array(x, name)
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    return float(a)


def _validate_grid(n, lam) -> tuple[np.ndarray, np.ndarray]:
    n = _as_finite_array(n, "n")
    lam = _as_finite_array(lam, "lam")
    if np.any(n <= 0):
        raise ValueError(f"n must be > 0, got min(n) = {n.min()}")
    if np.any(lam < 0):
        raise ValueError(f"lam must be >= 0, got min(lam) = {lam.min()}")
    try:
        n, lam = np.broadcast_arrays(n, lam)
    except ValueError as exc:
        raise ValueError(f"n of shape {n.shape} and lam of shape {lam.shape} do not broadcast") from exc
    return n, lam


class GaussianCovariateModel:
    r"""Ridge regression on features with population moments (Ω, b = E[φy], E[y²]).

    Parameters
    ----------
    omega : (p, p) array
        Feature covariance Ω = E[φφᵀ]; symmetric positive semi-definite (up to a relative
        tolerance ``psd_tol`` on its eigenvalues).
    b : (p,) array
        Cross moment E[φ y]; must lie in the range of Ω.
    y2 : float
        Second moment E[y²] ≥ bᵀΩ⁺b.

    Only the positive eigenvalues ω_i of Ω and the components b̃_i of b along them enter the
    theory; eigenvalues below ``rank_tol · max ω`` are treated as zero (default ``p·eps``).
    """

    def __init__(self, omega, b, y2, *, psd_tol: float = 1e-9, rank_tol: float | None = None):
        omega = _as_finite_array(omega, "omega")
        if omega.ndim != 2 or omega.shape[0] != omega.shape[1]:
            raise ValueError(f"omega must be a square matrix, got shape {omega.shape}")
        p = omega.shape[0]
        b = _as_finite_array(b, "b")
        if b.shape != (p,):
            raise ValueError(f"b must have shape ({p},) to match omega, got {b.shape}")
        scale = np.max(np.abs(omega)) if p else 0.0
        if np.max(np.abs(omega - omega.T), initial=0.0) > 1e-10 * max(scale, np.finfo(float).tiny):
            raise ValueError("omega is not symmetric (beyond a relative tolerance of 1e-10)")
        omega = 0.5 * (omega + omega.T)
        w, u = scipy.linalg.eigh(omega) if p else (np.zeros(0), np.zeros((0, 0)))
        self._init_spectrum(w, u.T @ b, y2, psd_tol=psd_tol, rank_tol=rank_tol, name="omega")
        self.eigenvectors = u

    @classmethod
    def from_spectrum(cls, eigenvalues, b_eigen, y2, *, psd_tol: float = 1e-9, rank_tol: float | None = None):
        """Model from Ω's eigenvalues and b expressed in Ω's eigenbasis (b̃ = Uᵀb)."""
        w = _as_finite_array(eigenvalues, "eigenvalues")
        if w.ndim != 1:
            raise ValueError(f"eigenvalues must be 1-D, got shape {w.shape}")
        bt = _as_finite_array(b_eigen, "b_eigen")
        if bt.shape != w.shape:
            raise ValueError(f"b_eigen must have shape {w.shape} to match eigenvalues, got {bt.shape}")
        self = cls.__new__(cls)
        self._init_spectrum(w, bt, y2, psd_tol=psd_tol, rank_tol=rank_tol, name="eigenvalues")
        self.eigenvectors = None
        return self

    @classmethod
    def from_teacher(cls, omega, phi, psi, theta, noise, **kwargs):
        """Model of y = θ*ᵀψ(x)/√k + σ ε: b = Φθ*/√k, E[y²] = θ*ᵀΨθ*/k + σ² (``noise`` = σ)."""
        phi = _as_finite_array(phi, "phi")
        psi = _as_finite_array(psi, "psi")
        theta = _as_finite_array(theta, "theta")
        noise = _as_finite_scalar(noise, "noise")
        if noise < 0:
            raise ValueError(f"noise (the label-noise standard deviation σ) must be >= 0, got {noise}")
        if theta.ndim != 1:
            raise ValueError(f"theta must be 1-D, got shape {theta.shape}")
        k = theta.shape[0]
        if psi.shape != (k, k):
            raise ValueError(f"psi must have shape ({k}, {k}) to match theta, got {psi.shape}")
        if phi.ndim != 2 or phi.shape[1] != k:
            raise ValueError(f"phi must have shape (p, {k}) to match theta, got {phi.shape}")
        if np.max(np.abs(psi - psi.T), initial=0.0) > 1e-10 * max(np.max(np.abs(psi), initial=0.0), 1e-300):
            raise ValueError("psi is not symmetric")
        b = phi @ theta / math.sqrt(k)
        y2 = float(theta @ psi @ theta) / k + noise**2
        return cls(omega, b, y2, **kwargs)

    def _init_spectrum(self, w, bt, y2, *, psd_tol, rank_tol, name):
        y2 = _as_finite_scalar(y2, "y2")
        p = w.shape[0]
        wmax = float(np.max(np.abs(w), initial=0.0))
        if p and np.min(w) < -psd_tol * wmax:
            raise ValueError(f"{name}: Ω is not positive semi-definite (smallest eigenvalue "
                             f"{np.min(w):.3g}, largest {wmax:.3g})")
        if rank_tol is None:
            rank_tol = max(p, 1) * np.finfo(np.float64).eps
        keep = w > rank_tol * wmax
        null_b = bt[~keep]
        bt_keep = bt[keep]
        b_scale = math.sqrt(float(bt @ bt)) if p else 0.0
        if null_b.size and np.max(np.abs(null_b)) > 1e-6 * max(b_scale, 1e-300) and np.max(np.abs(null_b)) > 1e-12:
            raise ValueError("b has a component outside the range of Ω (E[φy] must lie in range(Ω))")
        order = np.argsort(w[keep], kind="stable")
        self.eigenvalues = np.ascontiguousarray(w[keep][order])
        self.b_eigen = np.ascontiguousarray(bt_keep[order])
        self.p = p
        self.rank = int(self.eigenvalues.shape[0])
        self.y2 = y2
        self._beta2 = np.ascontiguousarray(self.b_eigen**2 / self.eigenvalues)
        explained = math.fsum(self._beta2)
        resid = y2 - explained
        if resid < -1e-10 * max(abs(y2), explained):
            raise ValueError(f"y2 = {y2:.6g} is smaller than bᵀΩ⁺b = {explained:.6g}: the moments "
                             "are inconsistent (E[y²] ≥ bᵀΩ⁺b by Cauchy–Schwarz)")
        self.residual_variance = max(resid, 0.0)
        self.trace = math.fsum(self.eigenvalues)

    # ------------------------------------------------------------------ solver
    def _kappa_grid(self, n: np.ndarray, lam: np.ndarray, size: int) -> np.ndarray:
        """Geometric κ-grid covering the bracket of (E1) of every point."""
        w, r = self.eigenvalues, self.rank
        pos = lam > 0
        lows, highs = [], []
        if np.any(pos):
            lows.append(np.min(lam[pos]))
            highs.append(np.max(lam[pos] + self.trace / n[pos]))
        ridgeless = (~pos) & (n < r)
        if np.any(ridgeless):
            nn = n[ridgeless]
            lows.append(np.min(w[0] * (r - nn) / nn))
            highs.append(np.max(self.trace / nn))
        if not lows:
            return np.ones(2)
        lo, hi = min(lows), max(highs)
        return np.geomspace(lo, max(hi, lo * (1 + 1e-12)), size)

    def ridge(self, n, lam, *, max_iter: int = 100, rtol: float = 1e-15, grid_size: int = 0) -> RidgeResult:
        """Test error, training error, κ, df1, df2 on the broadcast grid of ``n`` and ``lam``.

        ``n`` (> 0, real allowed) and ``lam`` (≥ 0, this project's mean-loss λ) broadcast
        together. One pass over a geometric κ-grid brackets every point, then a safeguarded
        Halley/Newton iteration (bisection fallback, at most ``max_iter`` steps) solves (E1) to
        relative accuracy ``rtol`` or the rounding floor. Points that fail are flagged in
        ``converged``/``status`` and a :class:`NumericalWarning` is issued; λ = 0 at n = rank Ω
        gives test error +∞ with status 2.
        """
        n, lam = _validate_grid(n, lam)
        if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        if not (0 < rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {rtol}")
        shape = n.shape
        nf = np.ascontiguousarray(n.ravel())
        lf = np.ascontiguousarray(lam.ravel())
        m = nf.shape[0]
        if grid_size <= 0:
            # ~one pass over the spectrum per two points: brackets tight enough for 2-3 steps.
            grid_size = int(np.clip(m // 2, 16, 1024))
        grid = self._kappa_grid(nf, lf, grid_size)
        grid_su, grid_sv = _k.kappa_grid_sums(self.eigenvalues, grid)
        out = {name: np.empty(m) for name in ("kappa", "df1", "df2", "test", "train", "bias", "variance")}
        iters = np.empty(m, dtype=np.int64)
        status = np.empty(m, dtype=np.int8)
        _k.solve_grid(self.eigenvalues, self._beta2, self.residual_variance, nf, lf, grid, grid_su, grid_sv,
                      int(max_iter), float(rtol), out["kappa"], out["df1"], out["df2"], out["test"],
                      out["train"], out["bias"], out["variance"], iters, status)
        _warn_status(status, nf, lf)
        return RidgeResult(
            n=n.copy(), lam=lam.copy(),
            test_error=out["test"].reshape(shape), train_error=out["train"].reshape(shape),
            kappa=out["kappa"].reshape(shape), df1=out["df1"].reshape(shape), df2=out["df2"].reshape(shape),
            bias=out["bias"].reshape(shape), variance=out["variance"].reshape(shape),
            converged=(status == _k.OK).reshape(shape), status=status.reshape(shape),
            iterations=iters.reshape(shape), noise_floor=self.residual_variance,
        )

    def test_error(self, n, lam) -> np.ndarray:
        """Shortcut for ``self.ridge(n, lam).test_error``."""
        return self.ridge(n, lam).test_error

    # --------------------------------------------------------- optimal lambda
    def optimal_lambda(self, n, *, lam_min: float | None = None, lam_max: float | None = None,
                       coarse: int = 64, xtol: float = 1e-10) -> OptimalRidge:
        """The λ ≥ 0 minimising (E2) at each ``n``, and the minimal test error.

        A coarse scan over log λ ∈ [lam_min, lam_max] (defaults 1e-12·ω_max and 1e4·ω_max + 1)
        together with λ = 0 locates the best basin; bounded Brent refinement in log λ then
        polishes it. Returns λ = 0 where the ridgeless error is not beaten.
        """
        n_arr = _as_finite_array(n, "n")
        if np.any(n_arr <= 0):
            raise ValueError(f"n must be > 0, got min(n) = {n_arr.min()}")
        wmax = float(self.eigenvalues[-1]) if self.rank else 1.0
        lam_min = 1e-12 * wmax if lam_min is None else float(lam_min)
        lam_max = 1e4 * wmax + 1.0 if lam_max is None else float(lam_max)
        if not (0 < lam_min < lam_max):
            raise ValueError(f"need 0 < lam_min < lam_max, got lam_min={lam_min}, lam_max={lam_max}")
        grid = np.concatenate([[0.0], np.geomspace(lam_min, lam_max, coarse)])
        flat = n_arr.ravel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            scan = self.ridge(flat[:, None], grid[None, :]).test_error
        best_lam = np.empty(flat.shape[0])
        best_err = np.empty(flat.shape[0])
        logs = np.log(grid[1:])
        for i, ni in enumerate(flat):
            j = int(np.nanargmin(scan[i]))
            if j == 0:
                best_lam[i], best_err[i] = 0.0, scan[i, 0]
                continue
            # Bracket the coarse minimum by its neighbours in log λ (grid index j ≥ 1 is λ_j > 0).
            jl, jh = max(j - 1, 1), min(j + 1, coarse)
            lo, hi = logs[jl - 1], logs[jh - 1]
            fun = lambda t, ni=ni: float(self.ridge(ni, math.exp(t)).test_error)
            res = scipy.optimize.minimize_scalar(fun, bounds=(lo, hi), method="bounded",
                                                 options={"xatol": xtol})
            cand = [(scan[i, j], grid[j]), (float(res.fun), math.exp(res.x))]
            err, lam_best = min(cand)
            if scan[i, 0] <= err:
                err, lam_best = scan[i, 0], 0.0
            best_lam[i], best_err[i] = lam_best, err
        return OptimalRidge(n=n_arr.copy(), lam=best_lam.reshape(n_arr.shape),
                            test_error=best_err.reshape(n_arr.shape))

    # ------------------------------------------------------ mpmath reference
    def ridge_high_precision(self, n, lam, dps: int = 50) -> RidgeResult:
        """The same equations (E1)–(E3) in mpmath at ``dps`` digits: the reference for tests.

        Uses the plain formulas (E1)–(E3) (no reformulation), Newton from the right end of
        the bracket (monotone for the convex g) with a bisection guard. Inputs are the same
        double-precision spectrum and b̃ as the fast path; outputs are rounded to float64.
        """
        n, lam = _validate_grid(n, lam)
        shape = n.shape
        res = {k: np.empty(n.size) for k in ("test", "train", "kappa", "df1", "df2", "bias", "variance")}
        status = np.zeros(n.size, dtype=np.int8)
        iters = np.zeros(n.size, dtype=np.int64)
        with mpmath.workdps(dps):
            w = [mpmath.mpf(float(x)) for x in self.eigenvalues]
            b2 = [mpmath.mpf(float(x)) ** 2 for x in self.b_eigen]
            y2 = mpmath.mpf(self.y2)
            sres = y2 - mpmath.fsum(bi / wi for bi, wi in zip(b2, w))
            for idx, (ni, li) in enumerate(zip(n.ravel(), lam.ravel())):
                out = _mp_point(w, b2, y2, sres, mpmath.mpf(float(ni)), mpmath.mpf(float(li)), dps)
                for key in res:
                    res[key][idx] = float(out[key])
                status[idx], iters[idx] = out["status"], out["iterations"]
        return RidgeResult(
            n=n.copy(), lam=lam.copy(),
            test_error=res["test"].reshape(shape), train_error=res["train"].reshape(shape),
            kappa=res["kappa"].reshape(shape), df1=res["df1"].reshape(shape), df2=res["df2"].reshape(shape),
            bias=res["bias"].reshape(shape), variance=res["variance"].reshape(shape),
            converged=(status == 0).reshape(shape), status=status.reshape(shape),
            iterations=iters.reshape(shape), noise_floor=self.residual_variance,
        )

    def __repr__(self) -> str:
        return (f"GaussianCovariateModel(p={self.p}, rank={self.rank}, y2={self.y2:.6g}, "
                f"residual_variance={self.residual_variance:.6g})")


def _mp_point(w, b2, y2, sres, n, lam, dps):
    r = len(w)
    zero = mpmath.mpf(0)
    if lam == 0 and n >= r:
        if n == r:
            return dict(test=mpmath.inf, train=zero, kappa=zero, df1=r, df2=r, bias=zero,
                        variance=mpmath.inf, status=_k.SINGULAR, iterations=0)
        return dict(test=sres * n / (n - r), train=sres * (n - r) / n, kappa=zero, df1=r, df2=r,
                    bias=zero, variance=sres * r / (n - r), status=_k.OK, iterations=0)
    if r == 0:
        return dict(test=sres, train=sres, kappa=lam, df1=zero, df2=zero, bias=zero, variance=zero,
                    status=_k.OK, iterations=0)
    trace = mpmath.fsum(w)

    def df(k):
        d1 = mpmath.fsum(wi / (wi + k) for wi in w)
        d2 = mpmath.fsum((wi / (wi + k)) ** 2 for wi in w)
        return d1, d2

    if lam > 0:
        a, b = lam, lam + trace / n
    else:
        a, b = min(w) * (r - n) / n, trace / n
    x = b
    tol = mpmath.mpf(10) ** (-(dps - 8))
    status, it = _k.NOT_CONVERGED, 0
    for it in range(1, 2000):
        d1, d2 = df(x)
        g = x - x * d1 / n - lam
        if g > 0:
            b = x
        elif g < 0:
            a = x
        dg = 1 - d2 / n
        x_new = x - g / dg if dg > 0 else (a + b) / 2
        if not (a <= x_new <= b):
            x_new = (a + b) / 2
        if abs(x_new - x) <= tol * x:
            x = x_new
            status = _k.OK
            break
        x = x_new
    d1, d2 = df(x)
    num = y2 - mpmath.fsum(bi * (wi + 2 * x) / (wi + x) ** 2 for bi, wi in zip(b2, w))
    denom = 1 - d2 / n
    test = num / denom
    bias = x**2 * mpmath.fsum(bi / (wi * (wi + x) ** 2) for bi, wi in zip(b2, w)) / denom
    return dict(test=test, train=(lam / x) ** 2 * test, kappa=x, df1=d1, df2=d2, bias=bias,
                variance=sres * (d2 / n) / denom, status=status, iterations=it)


def _warn_status(status: np.ndarray, n: np.ndarray, lam: np.ndarray) -> None:
    bad = status != _k.OK
    if not np.any(bad):
        return
    idx = np.flatnonzero(bad)
    examples = ", ".join(f"(n={n[i]:.6g}, lam={lam[i]:.3g}: {_STATUS_NAMES[int(status[i])]})" for i in idx[:3])
    warnings.warn(f"{idx.size} of {status.size} ridge points flagged: {examples}"
                  + (" ..." if idx.size > 3 else ""), NumericalWarning, stacklevel=3)


def marchenko_pastur_ridge(n, p, lam, noise_variance, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed form for isotropic features Ω = I_p, ‖β‖² = ``signal``, label noise σ².

    With γ = p/n: κ = [(γ + λ − 1) + √((1 − γ − λ)² + 4λ)]/2 and
    E_gen = (σ² + s κ²/(1+κ)²)/(1 − γ/(1+κ)²). At λ = 0 this gives κ = 0, E_gen = σ²/(1 − γ)
    for n > p and κ₀ = γ − 1, E_gen = (σ² + s(1 − 1/γ)²)/(1 − 1/γ) for n < p; n = p is +∞.
    Returns (κ, E_gen) broadcast over n, p, lam.
    """
    n, p, lam = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (n, p, lam)))
    if np.any(n <= 0) or np.any(p <= 0):
        raise ValueError("n and p must be > 0")
    if np.any(lam < 0):
        raise ValueError("lam must be >= 0")
    gamma = p / n
    kappa = 0.5 * ((gamma + lam - 1) + np.sqrt((1 - gamma - lam) ** 2 + 4 * lam))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = (noise_variance + signal * kappa**2 / (1 + kappa) ** 2) / (1 - gamma / (1 + kappa) ** 2)
    err = np.where((lam == 0) & (gamma == 1), np.inf, err)
    return kappa, err
