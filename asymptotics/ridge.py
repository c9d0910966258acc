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
and E_train = 0; at n = r the test error is +∞ (the interpolation peak) unless σ_res² = 0, where
the limit is 0.

Bias–variance split (β = Ω⁺b): E_gen = σ_res² + B + V with
B = κ² βᵀΩ(Ω+κ)⁻²β / (1 − df2/n) and V = σ_res² (df2/n)/(1 − df2/n).

Features with a mean μ (:meth:`GaussianCovariateModel.from_teacher`, ``readout``): ridge on the
raw features φ = μ + g is the model of their raw second moments, Ω + μμᵀ, b + μ E[y], E[y²];
ridge on centred features with an unpenalised intercept c, argmin (1/n) Σ (y_i − c − θᵀφ_i)² +
λ‖θ‖², is the model of the centred moments (Cov φ, Cov(φ, y), Var y) with ``intercept=True``:
centring by the sample means leaves n − 1 independent Gaussian rows (an orthogonal rotation
removes the mean row), so θ̂ is ridge on n − 1 samples at λ n/(n − 1), and the estimated
intercept costs E_gen/n (the sample means are independent of θ̂ for Gaussian features):

* (E4) E_gen(n, λ) = (1 + 1/n) E_gen^c(n − 1, λ n/(n − 1)),  E_train = (n − 1)/n · E_train^c(n − 1, λ n/(n − 1)).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import mpmath
import numpy as np
import scipy.linalg
import scipy.optimize

from . import _ridge_kernels as _k
from .validation import choice

__all__ = [
    "GaussianCovariateModel",
    "RidgeResult",
    "OptimalRidge",
    "marchenko_pastur_ridge",
    "NumericalWarning",
]

_STATUS_NAMES = {_k.OK: "ok", _k.NOT_CONVERGED: "not converged", _k.SINGULAR: "singular (λ = 0, n = rank)",
                 _k.OUT_OF_RANGE: "out of range (κ or an error beyond float64, returned as inf)"}


class NumericalWarning(RuntimeWarning):
    """A point of a grid could not be solved to full accuracy, or is singular."""


@dataclass(frozen=True)
class RidgeResult:
    """Deterministic-equivalent ridge quantities on a broadcast grid of (n, λ).

    All arrays have the broadcast shape of the ``n`` and ``lam`` given to
    :meth:`GaussianCovariateModel.ridge`. ``status`` is 0 (ok), 1 (not converged within the
    iteration cap), 2 (λ = 0 and n = rank Ω with σ_res² > 0: test error +∞) or 3 (out of range:
    κ or an error exceeds the float64 range and is returned as +∞; the other fields are still
    exact); ``converged`` is ``status == 0``. A point with status 0 has every field finite.
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
        complex_input = np.iscomplexobj(x) or np.iscomplexobj(np.asarray(x))
    except (TypeError, ValueError):
        complex_input = False
    if complex_input:
        raise TypeError(f"{name} must be real, got complex values")
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


def _check_tol(x, name: str, allow_none: bool = False):
    """A tolerance: a finite real number >= 0 (or None where allowed)."""
    if x is None and allow_none:
        return None
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number >= 0, got {type(x).__name__}")
    x = float(x)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {x!r}")
    return x


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

    intercept : bool
        False (default): the readout θᵀφ, no intercept. True: (Ω, b, y2) are the *centred*
        moments (Cov φ, Cov(φ, y), Var y) and the readout c + θᵀφ fits an unpenalised intercept
        c: every (n, λ) point follows (E4) of the module docstring (n must exceed 1).

    Only the positive eigenvalues ω_i of Ω and the components b̃_i of b along them enter the
    theory; eigenvalues below ``rank_tol · max ω`` are treated as zero (default ``p·eps``).
    """

    def __init__(self, omega, b, y2, *, psd_tol: float = 1e-9, rank_tol: float | None = None,
                 intercept: bool = False):
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
        self.intercept = _check_flag(intercept, "intercept")

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
        self.intercept = False
        return self

    @classmethod
    def from_teacher(cls, omega, phi, psi, theta, noise, *, feature_mean=None, teacher_mean=None,
                     readout: str = "raw", **kwargs):
        """Model of y = θ*ᵀψ(x)/√k + σ ε (``noise`` = σ) from covariances Ω = Cov φ, Φ = Cov(φ, ψ),
        Ψ = Cov ψ and the means μ = E φ (``feature_mean``), μ* = E ψ (``teacher_mean``), both
        zero by default: with b = Φθ*/√k, E[y] = θ*ᵀμ*/√k and Var y = θ*ᵀΨθ*/k + σ²,

        * ``readout="raw"`` (default): ridge on the raw features, the model
          (Ω + μμᵀ, b + μ E[y], Var y + E[y]²) — for μ = μ* = 0 the plain (Ω, Φθ*/√k, θ*ᵀΨθ*/k + σ²);
        * ``readout="intercept"``: ridge on centred features with an unpenalised intercept, the
          model (Ω, b, Var y) with ``intercept=True``, (E4) of the module docstring.

        :func:`asymptotics.deep.linearized_covariances` (``center=True``) and
        :func:`asymptotics.deep.feature_mean` give these inputs for deep random features.
        """
        readout = choice(readout, "readout", ("raw", "intercept"))
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
        if readout == "intercept":
            return cls(omega, b, y2, intercept=True, **kwargs)
        mu, mean_y = _means(feature_mean, teacher_mean, phi.shape[0], theta)
        if mu is None and mean_y == 0:
            return cls(omega, b, y2, **kwargs)
        omega = _as_finite_array(omega, "omega")
        mu = np.zeros(phi.shape[0]) if mu is None else mu
        return cls(omega + np.outer(mu, mu), b + mu * mean_y, y2 + mean_y**2, **kwargs)

    def _init_spectrum(self, w, bt, y2, *, psd_tol, rank_tol, name):
        y2 = _as_finite_scalar(y2, "y2")
        psd_tol = _check_tol(psd_tol, "psd_tol")
        rank_tol = _check_tol(rank_tol, "rank_tol", allow_none=True)
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
        b_scale = float(np.linalg.norm(bt)) if p else 0.0
        if null_b.size and np.max(np.abs(null_b)) > 1e-6 * max(b_scale, 1e-300) and np.max(np.abs(null_b)) > 1e-12:
            raise ValueError("b has a component outside the range of Ω (E[φy] must lie in range(Ω))")
        order = np.argsort(w[keep], kind="stable")
        self.eigenvalues = np.ascontiguousarray(w[keep][order])
        self.b_eigen = np.ascontiguousarray(bt_keep[order])
        self.p = p
        self.rank = int(self.eigenvalues.shape[0])
        self.y2 = y2
        # (b̃/√ω)² rather than b̃²/ω: no intermediate overflow or underflow.
        self._beta2 = np.ascontiguousarray((self.b_eigen / np.sqrt(self.eigenvalues)) ** 2)
        explained = math.fsum(self._beta2)
        resid = y2 - explained
        if resid < -1e-10 * max(abs(y2), explained):
            raise ValueError(f"y2 = {y2:.6g} is smaller than bᵀΩ⁺b = {explained:.6g}: the moments "
                             "are inconsistent (E[y²] ≥ bᵀΩ⁺b by Cauchy–Schwarz)")
        self.residual_variance = max(resid, 0.0)
        self._sum_beta2 = explained
        # Scales of the spectrum for the solver (Tr Ω = ω_max·tr_rel, without overflow).
        self._wmax = float(self.eigenvalues[-1]) if self.rank else 0.0
        self._wmin = float(self.eigenvalues[0]) if self.rank else 0.0
        self._tr_rel = math.fsum(self.eigenvalues / self._wmax) if self.rank else 0.0
        with np.errstate(over="ignore"):
            self.trace = float(np.float64(self._wmax) * self._tr_rel)
        lim = 2.0 ** _k.FAST_LOG2
        self._fast_model = bool(self.rank and self._wmin >= 1 / lim and self._wmax <= lim)

    # ------------------------------------------------------------------ solver
    def _kappa_grid(self, n: np.ndarray, lam: np.ndarray, size: int) -> np.ndarray:
        """Geometric κ-grid covering the bracket of (E1) of every fast-path point.

        Only the starting bracket of each point depends on it (see ``_ridge_kernels``)."""
        w, r = self.eigenvalues, self.rank
        pos = lam > 0
        lows, highs = [], []
        if np.any(pos):
            lows.append(np.min(lam[pos]))
            highs.append(np.max(lam[pos] + self.trace / n[pos]))
        ridgeless = (~pos) & (n < r)
        if np.any(ridgeless):
            nn = n[ridgeless]
            lows.append(np.min(w[0] * ((r - nn) / nn)))
            highs.append(np.max(self.trace / nn))
        if not lows:
            return np.ones(2)
        lo, hi = min(lows), max(highs)
        return np.geomspace(lo, max(hi, lo * (1 + 1e-12)), size)

    def ridge(self, n, lam, *, max_iter: int = 100, rtol: float = 1e-15, grid_size: int = 0) -> RidgeResult:
        """Test error, training error, κ, df1, df2, bias, variance on the broadcast grid of ``n`` and ``lam``.

        See :meth:`_ridge` for the solver and its guarantees. With ``intercept`` the points follow
        (E4): κ, df1, df2 are those of the centred problem at (n − 1, λ n/(n − 1)); the
        intercept's cost E_gen/n is split as (1 + 1/n)·bias and (1 + 1/n)·variance + σ_res²/n.
        """
        if not self.intercept:
            return self._ridge(n, lam, max_iter=max_iter, rtol=rtol, grid_size=grid_size)
        n, lam = _intercept_grid(n, lam)
        res = self._ridge(n - 1, lam * n / (n - 1), max_iter=max_iter, rtol=rtol, grid_size=grid_size)
        return _with_intercept(res, n, lam)

    def _ridge(self, n, lam, *, max_iter: int = 100, rtol: float = 1e-15, grid_size: int = 0) -> RidgeResult:
        """(E1)–(E3) without an intercept on the broadcast grid of ``n`` and ``lam`` (the solver of :meth:`ridge`).

        ``n`` (> 0, real allowed) and ``lam`` (≥ 0, this project's mean-loss λ) broadcast
        together. Ordinary points share one pass over a geometric κ-grid that brackets them,
        then a safeguarded Halley/Newton iteration (bisection fallback, at most ``max_iter``
        steps) solves (E1) to relative accuracy ``rtol`` or the rounding floor; points near the
        ends of the float range are solved one by one in exactly rescaled units, and points
        with κ ≥ 2¹⁰⁸·ω_max (n → 0, λ → ∞) by the expansion in ω/κ. A point's value does not
        depend on the rest of the grid beyond the last bits of its iteration.

        Guarantee: every point with ``status`` 0 has all fields finite. Points that fail are
        flagged in ``converged``/``status`` and a :class:`NumericalWarning` is issued: status 1
        (iteration cap), 2 (λ = 0 at n = rank Ω with σ_res² > 0: test error +∞; with
        σ_res² = 0 the limit there is 0 and the status is 0) or 3 (κ or an error overflows
        float64: returned as +∞, the other fields exact — e.g. κ ≈ TrΩ/n for n < 10⁻³⁰⁸).
        """
        n, lam = _validate_grid(n, lam)
        if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        if not isinstance(rtol, (int, float, np.integer, np.floating)) or not (0 < rtol < 1):
            raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
        if isinstance(grid_size, (bool, np.bool_)) or not isinstance(grid_size, (int, np.integer)):
            raise ValueError(f"grid_size must be an integer, got {grid_size!r}")
        shape = n.shape
        nf = np.ascontiguousarray(n.ravel())
        lf = np.ascontiguousarray(lam.ravel())
        m = nf.shape[0]
        regime = np.empty(m, dtype=np.int8)
        _k.classify(self.rank, self._wmin, self._wmax, self._tr_rel, self._fast_model, nf, lf, regime)
        fast = regime == _k.REG_FAST
        m_fast = int(np.count_nonzero(fast))
        if grid_size <= 0:
            # ~one pass over the spectrum per two points: brackets tight enough for 2-3 steps.
            grid_size = int(np.clip(m_fast // 2, 16, 1024))
        grid = self._kappa_grid(nf[fast], lf[fast], grid_size) if m_fast else np.ones(2)
        grid_off, grid_scale, grid_m = _k.kappa_grid_sums(self.eigenvalues, grid)
        out = {name: np.empty(m) for name in ("kappa", "df1", "df2", "test", "train", "bias", "variance")}
        iters = np.empty(m, dtype=np.int64)
        status = np.empty(m, dtype=np.int8)
        _k.solve_grid(self.eigenvalues, self._beta2, self.residual_variance, self._sum_beta2, self._wmin,
                      self._wmax, self._tr_rel, regime, nf, lf, grid, grid_off, grid_scale, grid_m,
                      int(max_iter),
                      float(rtol), out["kappa"], out["df1"], out["df2"], out["test"], out["train"],
                      out["bias"], out["variance"], iters, status)
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
    def _scan_range(self, n: float) -> tuple[float, float]:
        """Default scan range of λ at one n: from far below every scale on which (E2) varies at
        small λ (ω_min·|n − r|/n, ω_min·σ_res²/E[y²]) to far above ω_max and Tr Ω/n."""
        if not self.rank:
            return 1e-300, 1e300
        # Below ω_min·|n − r|/n nothing varies (κ ∝ λ), except a dip of relative size σ_res²/E[y²]
        # where the variance saved balances the bias added.
        noise = self.residual_variance / self.y2 if self.residual_variance > 0 else 1.0
        lo = 1e-6 * self._wmin * min(1.0, abs(n - self.rank) / n if n != self.rank else 1e-10, noise)
        with np.errstate(over="ignore"):
            hi = 1e4 * (self._wmax + self.trace / n)
        return max(lo, 1e-300), min(max(hi, 10 * max(lo, 1e-300)), 1e300)

    def optimal_lambda(self, n, *, lam_min: float | None = None, lam_max: float | None = None,
                       coarse: int = 64, xtol: float = 1e-10) -> OptimalRidge:
        """The λ ≥ 0 minimising (E2) at each ``n``, and the minimal test error.

        A scan over log λ (``coarse`` points per 12 decades, at least ``coarse`` in all) plus the
        ridgeless limit λ = 0 locates the best basin; a bracketed (bounded Brent) minimisation in
        log λ around the best scan point then polishes it. Defaults: the scan starts at
        10⁻⁶·ω_min·min(1, |n − r|/n, σ_res²/E[y²]) (scales adapted to the spectrum's smallest
        eigenvalue and to the noise) and ends at 10⁴·(ω_max + TrΩ/n); while the best scan point
        is an end of the scan and still better than λ = 0 (below) or improving (above), the scan
        is extended by 12 decades (down to 10⁻³⁰⁰, up to 10³⁰⁰), so optima below any fixed floor
        are found. ``lam_min``/``lam_max`` given fix the scan range (no extension). Returns
        λ = 0 where the ridgeless error is not beaten; the returned error is always
        ``self.ridge(n, lam).test_error`` at the returned λ.
        """
        n_arr = _as_finite_array(n, "n")
        if np.any(n_arr <= 0):
            raise ValueError(f"n must be > 0, got min(n) = {n_arr.min()}")
        if lam_min is not None:
            lam_min = _check_tol(lam_min, "lam_min")
        if lam_max is not None:
            lam_max = _check_tol(lam_max, "lam_max")
        if lam_min is not None and lam_max is not None and not (0 < lam_min < lam_max):
            raise ValueError(f"need 0 < lam_min < lam_max, got lam_min={lam_min}, lam_max={lam_max}")
        if isinstance(coarse, (bool, np.bool_)) or not isinstance(coarse, (int, np.integer)) or coarse < 4:
            raise ValueError(f"coarse must be an integer >= 4, got {coarse!r}")
        xtol = _check_tol(xtol, "xtol")
        flat = n_arr.ravel()
        best_lam = np.empty(flat.shape[0])
        best_err = np.empty(flat.shape[0])
        per_decade = coarse / 12.0
        # One shared scan for all n (the union of their default ranges), then per n: extension
        # of the scan where the best point is an end, and the bracketed refinement.
        ranges = [self._scan_range(float(ni)) for ni in flat] or [(1.0, 10.0)]
        lo = lam_min if lam_min is not None else min(r[0] for r in ranges)
        hi = lam_max if lam_max is not None else max(r[1] for r in ranges)
        if lam_max is None and hi <= lo:
            hi = 1e4 * lo
        if lam_min is None and lo >= hi:
            lo = 1e-12 * hi
        npts = max(coarse, int(math.ceil(per_decade * (math.log10(hi) - math.log10(lo)))) + 1)
        grid = np.geomspace(lo, hi, npts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            scan = self.ridge(flat[:, None], np.concatenate([[0.0], grid])[None, :]).test_error
            for i, ni in enumerate(flat):
                best_lam[i], best_err[i] = self._optimal_one(
                    float(ni), float(scan[i, 0]), grid, scan[i, 1:], lam_min is not None, lam_max is not None,
                    per_decade, xtol)
        return OptimalRidge(n=n_arr.copy(), lam=best_lam.reshape(n_arr.shape),
                            test_error=best_err.reshape(n_arr.shape))

    def _optimal_one(self, n, e0, grid, vals, fixed_lo, fixed_hi, per_decade, xtol):
        def err(lams):
            return self.ridge(n, lams).test_error

        if not self.rank:
            return 0.0, e0  # Ω = 0: E_gen = E[y²] for every λ
        step = 12.0  # decades per extension
        for _ in range(60):  # bounded: 60 × 12 decades covers the float range several times
            j = int(np.argmin(np.where(np.isnan(vals), np.inf, vals)))
            extended = False
            if j == 0 and not fixed_lo and grid[0] > 1e-300 and vals[0] < e0 and (
                    len(vals) < 2 or vals[0] < vals[1]):
                new = np.geomspace(max(grid[0] * 10.0**-step, 1e-300), grid[0], int(per_decade * step) + 1)[:-1]
                grid, vals = np.concatenate([new, grid]), np.concatenate([err(new), vals])
                extended = True
            elif j == len(grid) - 1 and not fixed_hi and grid[-1] < 1e300 and vals[-1] < vals[-2]:
                new = np.geomspace(grid[-1], min(grid[-1] * 10.0**step, 1e300), int(per_decade * step) + 1)[1:]
                grid, vals = np.concatenate([grid, new]), np.concatenate([vals, err(new)])
                extended = True
            if not extended:
                break
        finite = np.where(np.isnan(vals), np.inf, vals)
        j = int(np.argmin(finite))
        cands = [(e0, 0.0), (float(finite[j]), float(grid[j]))]
        # Refine unless the ridgeless limit is clearly better than the whole basin (a grid cell
        # of 12/coarse decades changes (E2) by far less than 10 %).
        if np.isfinite(finite[j]) and not (finite[j] > 1.1 * e0):
            jl, jh = max(j - 1, 0), min(j + 1, len(grid) - 1)
            if jh > jl:
                fun = lambda t: float(err(math.exp(t)))
                res = scipy.optimize.minimize_scalar(fun, bounds=(math.log(grid[jl]), math.log(grid[jh])),
                                                     method="bounded", options={"xatol": xtol})
                cands.append((float(res.fun), math.exp(res.x)))  # res.fun is err(exp(res.x)) itself
        cands = [c for c in cands if not math.isnan(c[0])]
        if not cands:
            return math.nan, math.nan
        err_best, lam_best = min(cands, key=lambda c: (c[0], c[1]))
        return lam_best, err_best

    # ------------------------------------------------------ mpmath reference
    def ridge_high_precision(self, n, lam, dps: int = 50) -> RidgeResult:
        """The mpmath reference of :meth:`ridge` (see :meth:`_ridge_high_precision`); with
        ``intercept`` at the points of (E4)."""
        if not self.intercept:
            return self._ridge_high_precision(n, lam, dps)
        n, lam = _intercept_grid(n, lam)
        return _with_intercept(self._ridge_high_precision(n - 1, lam * n / (n - 1), dps), n, lam)

    def _ridge_high_precision(self, n, lam, dps: int = 50) -> RidgeResult:
        """The same equations (E1)–(E3) in mpmath: the reference for tests.

        Uses the plain formulas (E1)–(E3) (no reformulation), Newton from the right end of
        the bracket (monotone for the convex g) with a bisection guard. Inputs are the same
        double-precision spectrum and b̃ as the fast path (exactly converted); outputs are
        rounded to float64 (±inf beyond its range). The working precision is ``dps`` digits
        plus the decimal dynamic range of the point (eigenvalues, n, λ, TrΩ/n), so that the
        cancellations of the plain formulas (1 − df1/n, 1 − df2/n at λ ≪ κ, κ ≪ ω) cost none of
        the ``dps`` digits; it is exact for subnormal eigenvalues, n or λ.
        """
        n, lam = _validate_grid(n, lam)
        if isinstance(dps, (bool, np.bool_)) or not isinstance(dps, (int, np.integer)) or not 15 <= dps <= 10000:
            raise ValueError(f"dps must be an integer in [15, 10000], got {dps!r}")
        shape = n.shape
        res = {k: np.empty(n.size) for k in ("test", "train", "kappa", "df1", "df2", "bias", "variance")}
        status = np.zeros(n.size, dtype=np.int8)
        iters = np.zeros(n.size, dtype=np.int64)
        scales = [float(x) for x in self.eigenvalues] + [self.trace if math.isfinite(self.trace) else 1e308]
        for idx, (ni, li) in enumerate(zip(n.ravel(), lam.ravel())):
            vals = [x for x in scales + [float(ni), float(li)] if x > 0]
            spread = math.log10(max(vals)) - math.log10(min(vals)) + abs(math.log10(float(ni)))
            with mpmath.workdps(int(dps + 2 * spread + 20)):
                w = [mpmath.mpf(float(x)) for x in self.eigenvalues]
                b2 = [mpmath.mpf(float(x)) ** 2 for x in self.b_eigen]
                y2 = mpmath.mpf(self.y2)
                sres = y2 - mpmath.fsum(bi / wi for bi, wi in zip(b2, w))
                out = _mp_point(w, b2, y2, sres, mpmath.mpf(float(ni)), mpmath.mpf(float(li)), dps)
                for key in res:
                    res[key][idx] = _mp_to_float(out[key])
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
                f"residual_variance={self.residual_variance:.6g}"
                + (", intercept=True)" if self.intercept else ")"))


def _check_flag(x, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {x!r}")
    return bool(x)


def _means(feature_mean, teacher_mean, p: int, theta: np.ndarray) -> tuple[np.ndarray | None, float]:
    """(μ or None, E[y] = θ*ᵀμ*/√k), checked against p and k."""
    mu = None
    if feature_mean is not None:
        mu = _as_finite_array(feature_mean, "feature_mean")
        if mu.shape != (p,):
            raise ValueError(f"feature_mean must have shape ({p},) to match phi, got {mu.shape}")
    if teacher_mean is None:
        return mu, 0.0
    mt = _as_finite_array(teacher_mean, "teacher_mean")
    if mt.shape != theta.shape:
        raise ValueError(f"teacher_mean must have shape {theta.shape} to match theta, got {mt.shape}")
    return mu, float(theta @ mt) / math.sqrt(theta.shape[0])


def _intercept_grid(n, lam) -> tuple[np.ndarray, np.ndarray]:
    """The checked (n, λ) grid of a model with an intercept (n > 1: one sample is spent on it)."""
    n, lam = _validate_grid(n, lam)
    if np.any(n <= 1):
        raise ValueError(f"n must be > 1 with an intercept (one sample estimates it), got min(n) = {n.min()}")
    return n, lam


def _with_intercept(res: RidgeResult, n: np.ndarray, lam: np.ndarray) -> RidgeResult:
    """(E4): the centred result at (n − 1, λ n/(n − 1)) as the result at (n, λ) with an intercept."""
    f = 1.0 + 1.0 / n
    with np.errstate(invalid="ignore"):
        return dataclasses.replace(res, n=n.copy(), lam=lam.copy(), test_error=f * res.test_error,
                                   train_error=res.train_error * (n - 1) / n, bias=f * res.bias,
                                   variance=f * res.variance + res.noise_floor / n)


def _mp_to_float(x) -> float:
    """An mpf rounded to float64: ±inf beyond its range (mpmath's float() gives inf already)."""
    return float(x)


def _mp_point(w, b2, y2, sres, n, lam, dps):
    r = len(w)
    zero = mpmath.mpf(0)
    if lam == 0 and n >= r:
        if n == r:
            if sres == 0:
                return dict(test=zero, train=zero, kappa=zero, df1=r, df2=r, bias=zero, variance=zero,
                            status=_k.OK, iterations=0)
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
    tol = mpmath.mpf(10) ** (-(dps + 2))
    status, it = _k.NOT_CONVERGED, 0
    for it in range(1, 20000):
        d1, d2 = df(x)
        g = x - x * d1 / n - lam
        if g > 0:
            b = x
        elif g < 0:
            a = x
        else:
            status = _k.OK
            break
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
    Returns (κ, E_gen) broadcast over n, p, lam. NaN/inf anywhere, n ≤ 0, p ≤ 0, λ < 0, a negative
    ``noise_variance`` or ``signal`` raise ValueError naming the argument.
    """
    n, p, lam = (_as_finite_array(v, name) for v, name in ((n, "n"), (p, "p"), (lam, "lam")))
    noise_variance = _as_finite_scalar(noise_variance, "noise_variance")
    signal = _as_finite_scalar(signal, "signal")
    if noise_variance < 0:
        raise ValueError(f"noise_variance must be >= 0, got {noise_variance}")
    if signal < 0:
        raise ValueError(f"signal must be >= 0, got {signal}")
    if np.any(n <= 0):
        raise ValueError(f"n must be > 0, got min(n) = {n.min()}")
    if np.any(p <= 0):
        raise ValueError(f"p must be > 0, got min(p) = {p.min()}")
    if np.any(lam < 0):
        raise ValueError(f"lam must be >= 0, got min(lam) = {lam.min()}")
    try:
        n, p, lam = np.broadcast_arrays(n, p, lam)
    except ValueError as exc:
        raise ValueError(f"n {n.shape}, p {p.shape} and lam {lam.shape} do not broadcast") from exc
    gamma = p / n
    kappa = 0.5 * ((gamma + lam - 1) + np.sqrt((1 - gamma - lam) ** 2 + 4 * lam))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = (noise_variance + signal * kappa**2 / (1 + kappa) ** 2) / (1 - gamma / (1 + kappa) ** 2)
    err = np.where((lam == 0) & (gamma == 1), np.inf, err)
    return kappa, err
