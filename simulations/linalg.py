"""The one ridge solve of the simulators: a whole λ path from one factorisation.

Conventions: samples are rows (F is n × p); the project's mean-loss ridge

    θ(λ) = argmin_θ (1/n) Σ_i (y_i − θᵀφ_i)² + λ‖θ‖² = (FᵀF/n + λ I)⁻¹ Fᵀy/n,

λ = 0 being the minimum-norm least-squares solution F⁺y (the λ → 0⁺ limit).

* :func:`ridge_path` — from F and y: thin SVD of F/√n (accurate at the interpolation peak) or the
  eigendecomposition of the smaller Gram matrix. With F/√n = U diag(s) Vᵀ and c = Uᵀy/√n,
  θ(λ) = V diag(s/(s² + λ)) c and E_train(λ) = ‖(I − UUᵀ)y‖²/n + Σ_i c_i² (λ/(s_i² + λ))².
* :func:`ridge_from_gram` — from sufficient statistics accumulated in a stream (G = FᵀF/n,
  g = Fᵀy/n, ȳ² = ‖y‖²/n), when F never fits in memory at once: one symmetric
  eigendecomposition G = V diag(s²) Vᵀ serves every λ; for one λ > 0 a Cholesky solve.

At λ = 0 only s_i > max(n, p)·ε·s_max are inverted (numpy's ``pinv`` rule); the others count as
exact zeros. Everything is computed in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["RidgePath", "ridge_path", "ridge_from_gram", "spectral_filters", "check_lams", "check_Fy"]

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- validation
def check_lams(lams) -> np.ndarray:
    try:
        lam = np.asarray(lams, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("lams must be a 1-D array of real numbers") from exc
    if lam.ndim != 1:
        raise ValueError(f"lams must be a 1-D array, got shape {lam.shape}")
    if lam.shape[0] == 0:
        raise ValueError("lams must contain at least one value")
    if not np.all(np.isfinite(lam)):
        raise ValueError("lams contains NaN or inf")
    if np.any(lam < 0):
        raise ValueError(f"lams must be >= 0, got min {lam.min()!r}")
    return lam


def check_Fy(F, y) -> tuple[np.ndarray, np.ndarray]:
    F = np.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"F must be a 2-D (n, p) array, got shape {F.shape}")
    n, p = F.shape
    if n == 0 or p == 0:
        raise ValueError(f"F must have n >= 1 rows and p >= 1 columns, got shape {F.shape}")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must be a 1-D array of length n = {n}, got shape {y.shape}")
    try:
        F = np.asarray(F, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("F and y must be real arrays") from exc
    if not np.all(np.isfinite(F)):
        raise ValueError("F contains NaN or inf")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf")
    return F, y


# --------------------------------------------------------------------------- ridge path
def spectral_filters(s2: np.ndarray, keep: np.ndarray, lam: np.ndarray):
    """(k, L) arrays inv = 1/(s^2 + lam) and res = lam/(s^2 + lam).

    At lam = 0 (the pseudo-inverse): inv = 1/s^2 and res = 0 on kept components,
    inv = 0 and res = 1 on the dropped (numerically zero) ones.
    """
    pos = lam > 0
    inv = np.empty((s2.shape[0], lam.shape[0]))
    res = np.empty_like(inv)
    denom = s2[:, None] + lam[None, pos]
    inv[:, pos] = 1.0 / denom
    res[:, pos] = lam[None, pos] / denom
    s2_safe = np.where(keep, s2, 1.0)
    inv[:, ~pos] = np.where(keep, 1.0 / s2_safe, 0.0)[:, None]
    res[:, ~pos] = (~keep).astype(np.float64)[:, None]
    return inv, res


@dataclass(frozen=True)
class RidgePath:
    """Ridge solutions for a grid of lambdas, from one decomposition.

    Attributes
    ----------
    lams : (L,) the lambdas (mean-loss convention).
    theta : (p, L) one column theta(lam) per lambda.
    train_error : (L,) (1/n) ||y - F theta(lam)||^2.
    singular_values : (k,) singular values of F/sqrt(n), descending, k = min(n, p).
    rank : number of singular values inverted at lam = 0 (numerical rank of F).
    """

    lams: np.ndarray
    theta: np.ndarray
    train_error: np.ndarray
    singular_values: np.ndarray
    rank: int


def ridge_path(F, y, lams, method: str = "svd") -> RidgePath:
    """Ridge estimators theta(lam) = (F^T F/n + lam I)^{-1} F^T y/n for every lam in ``lams``.

    Parameters
    ----------
    F : (n, p) array, rows are samples (float32 or float64; computed in float64).
    y : (n,) array of labels.
    lams : (L,) array of lambdas >= 0 (mean-loss convention). lam = 0 gives the
        minimum-norm least-squares solution F^+ y (the lam -> 0+ limit).
    method : "svd" (default) or "gram"
        "svd": thin SVD of F/sqrt(n) (LAPACK gesdd, gesvd as fallback). Errors
        ~ eps * cond(F) (plus the usual eps * cond^2 * residual term of least squares),
        so the ridgeless solution stays accurate at the interpolation peak n ~ p,
        where F is nearly singular.
        "gram": ``eigh`` of the smaller Gram matrix (F^T F/n if n >= p, F F^T/n
        otherwise), about twice as fast but with errors ~ eps * cond(F)^2: at lam = 0
        only eigenvalues s^2 > max(n, p) * eps * s_max^2 are inverted, i.e. singular
        values down to ~ sqrt(max(n,p) eps) s_max ~ 1e-6 s_max are resolved instead of
        ~ max(n,p) eps s_max. Fine for lam > 0 and for well-conditioned F.

    Returns
    -------
    RidgePath with ``theta`` (p, L) and ``train_error`` (L,).

    Notes
    -----
    With F/sqrt(n) = U diag(s) V^T and c = U^T y/sqrt(n):
    theta(lam) = V diag(s/(s^2+lam)) c and
    E_train(lam) = ||y/sqrt(n) - U c||^2 + sum_i c_i^2 (lam/(s_i^2+lam))^2 (no
    cancellation: both terms are sums of squares). At lam = 0, components with
    s_i <= max(n, p) eps s_max are dropped from theta and kept whole in E_train.
    With ``method="gram"`` and n >= p the training error is the directly computed
    residual (1/n) ||y - F theta||^2.
    """
    F, y = check_Fy(F, y)
    lam = check_lams(lams)
    if method not in ("svd", "gram"):
        raise ValueError(f"method must be 'svd' or 'gram', got {method!r}")
    return _svd_path(F, y, lam) if method == "svd" else _gram_path(F, y, lam)


def _svd_path(F: np.ndarray, y: np.ndarray, lam: np.ndarray) -> RidgePath:
    """:func:`ridge_path` by the thin SVD of F/√n (errors ~ ε·cond(F))."""
    n, p = F.shape
    sqrt_n = np.sqrt(n)
    try:
        U, s, Vt = scipy.linalg.svd(F / sqrt_n, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:  # gesdd occasionally fails to converge
        U, s, Vt = scipy.linalg.svd(F / sqrt_n, full_matrices=False, check_finite=False, lapack_driver="gesvd")
    keep = s > max(n, p) * _EPS * (s[0] if s.size else 0.0)
    yn = y / sqrt_n
    c = U.T @ yn
    if n <= p:
        perp2 = 0.0  # U is square orthogonal: y lies in its span
    else:
        r = yn - U @ c
        perp2 = float(r @ r)
    inv, resid = spectral_filters(s**2, keep, lam)
    theta = Vt.T @ ((s[:, None] * inv) * c[:, None])
    train = perp2 + np.sum((c[:, None] * resid) ** 2, axis=0)
    return RidgePath(lam, theta, np.maximum(train, 0.0), s, int(keep.sum()))


def _gram_path(F: np.ndarray, y: np.ndarray, lam: np.ndarray) -> RidgePath:
    """:func:`ridge_path` by ``eigh`` of the smaller Gram matrix, in float64 (errors ~ ε·cond(F)²)."""
    n, p = F.shape
    G = (F.T @ F) / n if n >= p else (F @ F.T) / n
    ev, V = scipy.linalg.eigh(G, check_finite=False, driver="evd")  # divide and conquer: ~1.6x faster
    ev, V = ev[::-1], V[:, ::-1]
    s2 = np.clip(ev, 0.0, None)
    keep = s2 > max(n, p) * _EPS * (s2[0] if s2.size else 0.0)
    inv, resid = spectral_filters(s2, keep, lam)
    if n >= p:
        g = V.T @ (F.T @ y / n)
        theta = V @ (inv * g[:, None])
        R = y[:, None] - F @ theta
        train = np.einsum("ij,ij->j", R, R) / n
    else:
        c = V.T @ (y / np.sqrt(n))  # V is the (complete) eigenbasis U of F F^T/n
        theta = F.T @ (V @ (inv * c[:, None])) / np.sqrt(n)
        train = np.sum((c[:, None] * resid) ** 2, axis=0)
    return RidgePath(lam, theta, np.maximum(train, 0.0), np.sqrt(s2), int(keep.sum()))


def _cholesky_solve(G: np.ndarray, lam: float, g: np.ndarray) -> np.ndarray:
    """(G + λI)⁻¹ g by Cholesky: numpy's LAPACK for the factorisation (the GEMMs' OpenBLAS; see
    the note in :func:`ridge_from_gram`), two O(p²) triangular solves. LinAlgError if not PD."""
    L = np.linalg.cholesky(G + lam * np.eye(G.shape[0]))
    z = scipy.linalg.solve_triangular(L, g, lower=True, check_finite=False)
    return scipy.linalg.solve_triangular(L, z, lower=True, trans="T", check_finite=False)


def ridge_from_gram(G, g, lams, y2: float | None = None, *, n: int | None = None, method: str = "eigh"):
    """θ(λ) = (G + λI)⁻¹ g for every λ, from one factorisation of the Gram matrix G = FᵀF/n.

    Parameters
    ----------
    G : (p, p) symmetric positive semi-definite (FᵀF/n); g : (p,) (Fᵀy/n).
    lams : (L,) λ >= 0 (mean-loss convention).
    y2 : ‖y‖²/n; when given, the training errors (1/n)‖y − Fθ(λ)‖² = ȳ² − Σ_i c_i² f_i (2 − s_i² f_i)
        with c = Vᵀg/… are returned too (clipped at 0).
    n : the sample size behind G (sets the λ = 0 cut-off max(n, p)·ε·s_max; default p).
    method : "eigh" (one eigendecomposition for the whole grid; λ = 0 allowed) or "cholesky"
        (one Cholesky factorisation per λ > 0, about 20 times cheaper than the eigendecomposition
        for one λ; the training errors as ȳ² − 2θᵀg + θᵀGθ; falls back to "eigh" when a λ is 0
        or G + λI is not numerically positive definite).

    Returns
    -------
    theta : (p, L); train : (L,) training errors, or None without ``y2``.
    """
    G = np.asarray(G, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    p = G.shape[0]
    if G.ndim != 2 or G.shape != (p, p) or g.shape != (p,):
        raise ValueError(f"G must be (p, p) and g (p,), got {G.shape} and {g.shape}")
    lam = check_lams(lams)
    if method not in ("eigh", "cholesky"):
        raise ValueError(f"method must be 'eigh' or 'cholesky', got {method!r}")
    if method == "cholesky" and np.all(lam > 0):
        try:
            theta = np.stack([_cholesky_solve(G, l, g) for l in lam], axis=1)
        except np.linalg.LinAlgError:
            pass  # not numerically positive definite: the spectral solve below
        else:
            if y2 is None:
                return theta, None
            train = float(y2) - 2.0 * (g @ theta) + np.einsum("il,il->l", theta, G @ theta)
            return theta, np.maximum(train, 0.0)
    # numpy's LAPACK: the same OpenBLAS (and thread pool) as the GEMMs; scipy's bundled second
    # OpenBLAS competes with numpy's still-spinning threads on small machines (10-100x slower)
    ev, V = np.linalg.eigh(G)
    ev, V = ev[::-1], V[:, ::-1]
    s2 = np.clip(ev, 0.0, None)
    keep = s2 > max(n or p, p) * _EPS * (s2[0] if s2.size else 0.0)
    inv, _ = spectral_filters(s2, keep, lam)
    c = V.T @ g
    theta = V @ (inv * c[:, None])
    if y2 is None:
        return theta, None
    # (1/n)|y − Fθ|² = ȳ² − 2θᵀg + θᵀGθ, in the eigenbasis
    train = float(y2) - np.sum((c**2)[:, None] * inv * (2.0 - s2[:, None] * inv), axis=0)
    return theta, np.maximum(train, 0.0)
