"""Streaming estimates of the population moments Omega, Phi, Psi, b, E[y^2] from samples.

Moments (samples are rows; student features phi in R^p, teacher features psi in R^k,
label y)::

    Omega = E[phi phi^T],  Phi = E[phi psi^T],  Psi = E[psi psi^T],
    b = E[phi y],  E[y^2],  mu = E[phi].

Estimates are plain sample averages (normalised by n, i.e. ``np.cov(..., bias=True)``
plus the outer product of the means when not centred). With ``center=True`` the features
are centred by their sample means, as for the plug-in theory of trained features (whose
activations have a non-zero mean; see docs/theory/deep_features.md):
Omega = E[phi phi^T] - mu mu^T, Phi = E[phi psi^T] - mu mu_psi^T,
Psi = E[psi psi^T] - mu_psi mu_psi^T, b = E[(phi - mu) y]; the labels are not centred
(E[y^2] is always the raw second moment).

Algorithm
---------
The vector z = [phi, psi, y] of each sample is stacked into one float64 row. Every chunk
contributes its mean and its centred co-moment matrix Zc^T Zc (Zc = chunk minus chunk
mean; one BLAS SYRK), merged into the running state (n, mean, M) by the pairwise update
of Chan, Golub & LeVeque (1979)::

    n = n_a + n_b,  delta = mean_b - mean_a,  mean = mean_a + delta n_b / n,
    M = M_a + M_b + delta delta^T n_a n_b / n.

This is exact algebra (merging two accumulators gives the one-pass moments up to
rounding, whatever the split) and avoids the cancellation of E[zz^T] - mean mean^T when
the means are large compared with the spread. Memory: one (m x m) float64 matrix,
m = p + k + 1, plus one chunk.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["EstimatedMoments", "MomentAccumulator", "estimate_moments"]


@dataclass(frozen=True)
class EstimatedMoments:
    """Moments estimated from ``n_samples`` samples (float64).

    Attributes
    ----------
    omega : (p, p) E[phi phi^T] (centred: the covariance of phi).
    phi : (p, k) E[phi psi^T] (centred: cross-covariance), or None without psi.
    psi : (k, k) E[psi psi^T] (centred: covariance of psi), or None without psi.
    b : (p,) E[phi y] (centred: E[(phi - mu) y]), or None without y.
    y2 : E[y^2] (never centred), or None without y.
    mean_phi : (p,) sample mean of phi.
    mean_psi : (k,) sample mean of psi, or None.
    mean_y : sample mean of y, or None.
    n_samples : number of samples.
    centered : whether phi and psi were centred by their sample means.
    """

    omega: np.ndarray
    phi: np.ndarray | None
    psi: np.ndarray | None
    b: np.ndarray | None
    y2: float | None
    mean_phi: np.ndarray
    mean_psi: np.ndarray | None
    mean_y: float | None
    n_samples: int
    centered: bool


def _as_chunk(a, name: str, ndim: int, rows: int | None = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = "(m, width)" if ndim == 2 else "(m,)"
        raise ValueError(f"{name} must be a {ndim}-D array of shape {shape}, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(
            f"{name} must have {rows} rows (as phi_chunk), got shape {arr.shape}"
        )
    if ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
    return arr


class MomentAccumulator:
    """Running first and second moments of (phi, psi, y), updated chunk by chunk.

    The layout (p, whether psi and its width k, whether y) is fixed by the first
    :meth:`update`; later chunks must have the same layout. Accumulation is in float64
    whatever the input dtype. Accumulators are picklable and :meth:`merge` combines two
    of them exactly (parallel estimation: one accumulator per worker, merge at the end).

    Examples
    --------
    >>> acc = MomentAccumulator()
    >>> for c in chunks:                      # doctest: +SKIP
    ...     acc.update(c.phi, c.psi, c.y)
    >>> mom = acc.finalize(center=True)       # doctest: +SKIP
    """

    def __init__(self):
        self.n = 0
        self.p: int | None = None
        self.k: int | None = None  # None: no psi
        self.has_y: bool | None = None
        self.mean: np.ndarray | None = None
        self.M: np.ndarray | None = None

    # ------------------------------------------------------------------ layout
    @property
    def width(self) -> int:
        return self.p + (self.k or 0) + (1 if self.has_y else 0)

    def _layout_of(self, phi, psi, y) -> tuple[int, int | None, bool]:
        return phi.shape[1], (None if psi is None else psi.shape[1]), y is not None

    def _check_layout(self, layout, what: str) -> None:
        """Raise if ``layout`` differs from the accumulator's (no-op before the first update)."""
        if self.p is None:
            return
        p, k, has_y = layout
        if p != self.p:
            raise ValueError(f"{what}: phi has {p} columns, the accumulator has p = {self.p}")
        if k != self.k:
            raise ValueError(
                f"{what}: psi {'is missing' if k is None else f'has {k} columns'}, the "
                f"accumulator has {'no psi' if self.k is None else f'k = {self.k}'}"
            )
        if has_y != self.has_y:
            raise ValueError(
                f"{what}: y is {'given' if has_y else 'missing'}, the accumulator was "
                f"started {'with' if self.has_y else 'without'} y"
            )

    def _set_layout(self, layout) -> None:
        if self.p is None:
            self.p, self.k, self.has_y = layout
            m = self.width
            self.mean = np.zeros(m)
            self.M = np.zeros((m, m))

    # ------------------------------------------------------------------ updates
    def _combine(self, n_b: int, mean_b: np.ndarray, M_b: np.ndarray) -> None:
        n_a = self.n
        n = n_a + n_b
        if n_a == 0:
            self.mean = mean_b.copy()
            self.M = M_b.copy()
        else:
            delta = mean_b - self.mean
            self.mean += delta * (n_b / n)
            self.M += M_b
            u = delta * np.sqrt(n_a * n_b / n)
            self.M += np.outer(u, u)  # u_i u_j = u_j u_i: M stays exactly symmetric
        self.n = n

    def update(self, phi_chunk, psi_chunk=None, y_chunk=None) -> "MomentAccumulator":
        """Add the m samples of one chunk: phi_chunk (m, p), psi_chunk (m, k), y_chunk (m,).

        Raises ``ValueError`` naming the argument for shape mismatches (including a
        layout different from earlier chunks) and NaN/inf. Returns ``self``.
        """
        phi = _as_chunk(phi_chunk, "phi_chunk", 2)
        m = phi.shape[0]
        psi = None if psi_chunk is None else _as_chunk(psi_chunk, "psi_chunk", 2, m)
        y = None if y_chunk is None else _as_chunk(y_chunk, "y_chunk", 1, m)
        layout = self._layout_of(phi, psi, y)
        self._check_layout(layout, "update")
        p, k = layout[0], layout[1] or 0
        Z = np.empty((m, p + k + (y is not None)))
        Z[:, :p] = phi
        if not np.all(np.isfinite(Z[:, :p])):
            raise ValueError("phi_chunk contains NaN or inf")
        if psi is not None:
            Z[:, p: p + k] = psi
            if not np.all(np.isfinite(Z[:, p: p + k])):
                raise ValueError("psi_chunk contains NaN or inf")
        if y is not None:
            Z[:, -1] = y
            if not np.all(np.isfinite(Z[:, -1])):
                raise ValueError("y_chunk contains NaN or inf")
        self._set_layout(layout)  # only once the first chunk is known to be valid
        if m == 0:
            return self
        mean_b = Z.mean(axis=0)
        Z -= mean_b
        M_b = Z.T @ Z  # SYRK: exactly symmetric
        self._combine(m, mean_b, M_b)
        return self

    def merge(self, other: "MomentAccumulator") -> "MomentAccumulator":
        """Add the samples of ``other`` to this accumulator (exact pairwise update); returns self."""
        if not isinstance(other, MomentAccumulator):
            raise TypeError(f"other must be a MomentAccumulator, got {type(other).__name__}")
        if other.p is None:
            return self
        layout = (other.p, other.k, other.has_y)
        self._check_layout(layout, "merge (other)")
        self._set_layout(layout)
        if other.n:
            self._combine(other.n, other.mean, other.M)
        return self

    def copy(self) -> "MomentAccumulator":
        new = MomentAccumulator()
        new.n, new.p, new.k, new.has_y = self.n, self.p, self.k, self.has_y
        new.mean = None if self.mean is None else self.mean.copy()
        new.M = None if self.M is None else self.M.copy()
        return new

    # ------------------------------------------------------------------ results
    def finalize(self, center: bool = False) -> EstimatedMoments:
        """The estimated moments (see :class:`EstimatedMoments`); the accumulator is unchanged."""
        if self.n == 0:
            raise ValueError("no samples accumulated: call update() with at least one row first")
        n, p, k = self.n, self.p, self.k or 0
        mu = self.mean
        S = self.M / n  # centred second moments (covariance, ddof = 0)
        if not center:
            S = S + np.outer(mu, mu)
        if self.has_y:
            iy = self.width - 1
            y2 = float(self.M[iy, iy] / n + mu[iy] ** 2)
            # centred b = E[(phi - mu) y] = Cov(phi, y); raw b = Cov + mu mean_y
            b = S[:p, iy].copy()
            mean_y = float(mu[iy])
        else:
            y2 = b = mean_y = None
        omega = S[:p, :p].copy()
        if self.k is not None:
            phi = S[:p, p: p + k].copy()
            psi = S[p: p + k, p: p + k].copy()
            mean_psi = mu[p: p + k].copy()
        else:
            phi = psi = mean_psi = None
        return EstimatedMoments(omega, phi, psi, b, y2, mu[:p].copy(), mean_psi, mean_y,
                                int(n), bool(center))


def _unpack(sample, name: str = "sampler(m)"):
    """(phi, psi, y) from what a sampler returns: an array, a tuple, or an object with
    attributes ``phi`` (and optionally ``psi``, ``y``) such as a SampleChunk."""
    if hasattr(sample, "phi"):
        return sample.phi, getattr(sample, "psi", None), getattr(sample, "y", None)
    if isinstance(sample, tuple):
        if not 1 <= len(sample) <= 3:
            raise ValueError(f"{name} must return phi, (phi, psi) or (phi, psi, y); got a "
                             f"tuple of length {len(sample)}")
        phi, psi, y = (tuple(sample) + (None, None))[:3]
        return phi, psi, y
    return sample, None, None


def estimate_moments(sampler: Callable, n_samples: int, chunk: int,
                     center: bool = False) -> EstimatedMoments:
    """Estimate the moments from ``n_samples`` samples drawn ``chunk`` rows at a time.

    Parameters
    ----------
    sampler : callable ``sampler(m)`` returning the next m samples as phi (m, p), a
        tuple (phi, psi) or (phi, psi, y) (psi may be None), or an object with attributes
        ``phi``, ``psi``, ``y`` -- e.g. a :class:`simulations.features.SampleStream`,
        whose samples do not depend on ``chunk``.
    n_samples : total number of samples, > 0.
    chunk : rows per call, > 0 (the last call gets the remainder).
    center : see :meth:`MomentAccumulator.finalize`.
    """
    for v, name in ((n_samples, "n_samples"), (chunk, "chunk")):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not callable(sampler):
        raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
    acc = MomentAccumulator()
    done = 0
    while done < n_samples:
        m = min(int(chunk), int(n_samples) - done)
        phi, psi, y = _unpack(sampler(m))
        phi = np.asarray(phi)
        if phi.ndim != 2 or phi.shape[0] != m:
            raise ValueError(f"sampler(m) must return m = {m} rows of phi, got shape {phi.shape}")
        acc.update(phi, psi, y)
        done += m
    return acc.finalize(center=center)
