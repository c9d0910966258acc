"""Empirical ridge regression: whole lambda paths from one decomposition, learning curves.

Conventions (shared with the theory package)
--------------------------------------------
* Samples are rows: F is n x p, y has length n.
* Ridge with the mean loss::

      theta(lam) = argmin_theta (1/n) sum_i (y_i - theta^T phi_i)^2 + lam ||theta||^2
                 = (F^T F/n + lam I)^{-1} F^T y/n,

  and lam = 0 is the minimum-norm least-squares solution (the lam -> 0+ limit),
  theta(0) = F^+ y.
* Training error: (1/n) ||y - F theta||^2.
* Test error (label noise included), for population moments Omega = E[phi phi^T],
  b = E[phi y], E[y^2]::

      E_gen(theta) = E[(y - theta^T phi)^2] = E[y^2] - 2 theta^T b + theta^T Omega theta.

One decomposition per sample
----------------------------
With the thin SVD F/sqrt(n) = U diag(s) V^T (k = min(n, p) singular values) and
c = U^T y / sqrt(n)::

    theta(lam) = V diag(s / (s^2 + lam)) c,
    E_train(lam) = ||(I - U U^T) y||^2/n + sum_i c_i^2 (lam / (s_i^2 + lam))^2,

so every lam of a grid costs O(p k) once the SVD is known. At lam = 0 only singular
values s_i > max(n, p) * eps * s_max are inverted (numpy's ``pinv``/``lstsq`` rule);
the others are treated as exact zeros (their c_i^2 stay in the training error). The solve
itself is :func:`simulations.linalg.ridge_path` (re-exported here), the one ridge solve of
the simulators.

Randomness: the sample of (n, seed index s) comes from ``stream(seed, "train", n, s)`` and a
fresh test set from ``stream(seed, "test", n, s)`` (:mod:`simulations.rng`); a sweep task
(:func:`ridge_task`, parameters a :class:`RidgeSpec`) draws from ``stream(task_seed, "train")``
and ``stream(task_seed, "test")``. The deterministic equivalent these simulations are compared
with is derived in ``docs/theory/ridge.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from asymptotics.validation import choice, float_dtype, nonneg_float, pos_int

from .data import (
    PopulationMoments,
    check_spectrum,
    sample_from_moments,
    spectrum_from_spec,
    validate_moments,
)
from .linalg import RidgePath, check_lams, ridge_path
from .rng import SeedLike, stream
from .spec import ModelSpec, register_spec

__all__ = [
    "RidgePath",
    "ridge_path",
    "population_test_error",
    "LearningCurve",
    "learning_curve",
    "RidgeSpec",
    "ridge_task",
]

#: Rows per chunk of a fresh test set (bounded memory; a fixed constant so the random
#: stream, hence the result, does not depend on anything else).
_TEST_CHUNK_ELEMENTS = 1 << 21
#: The decompositions of :func:`ridge_path`.
_METHODS = ("svd", "gram")


# --------------------------------------------------------------------------- test error
def _population_error(theta: np.ndarray, mom: PopulationMoments) -> np.ndarray:
    """E[y^2] - 2 theta^T b + theta^T diag(w) theta in a cancellation-free form.

    Identity used (sums over w_i > 0 unless marked)::

        y2 - 2 theta.b + sum w theta^2
          = (y2 - sum b^2/w) + sum (sqrt(w) theta - b/sqrt(w))^2 - 2 sum_{w=0} b theta,

    i.e. sigma_res^2 + ||Omega^{1/2}(theta - beta)||^2: the excess error is a sum of
    squares, accurate even when it is tiny compared with E[y^2].
    """
    pos = mom.positive
    sw = np.sqrt(mom.eigenvalues[pos])
    d = sw[:, None] * theta[pos] - (mom.b_eigen[pos] / sw)[:, None]
    err = (mom.y2 - mom.explained) + np.einsum("ij,ij->j", d, d)
    if not np.all(pos):
        err = err - 2.0 * (mom.b_eigen[~pos] @ theta[~pos])
    return err


def population_test_error(theta, eigenvalues, b_eigen, y2) -> np.ndarray:
    """Exact test error of linear predictors under population moments (eigenbasis).

    E_gen(theta) = E[y^2] - 2 theta^T b + theta^T diag(w) theta, label noise included.

    Parameters
    ----------
    theta : (p,) or (p, L) array, predictor(s) in the eigenbasis of Omega (columns).
    eigenvalues, b_eigen, y2 : population moments as in
        :func:`simulations.data.sample_gaussian_features`.

    Returns
    -------
    float64 array of shape () for a (p,) theta, or (L,) for a (p, L) theta.
    Computed as sigma_res^2 + ||diag(w)^{1/2}(theta - beta)||^2 (beta = Omega^+ b), the
    same number without cancellation.
    """
    mom = validate_moments(eigenvalues, b_eigen, y2)
    try:
        th = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("theta must be a real array") from exc
    if th.ndim not in (1, 2) or th.shape[0] != mom.p:
        raise ValueError(
            f"theta must have shape ({mom.p},) or ({mom.p}, L), got {th.shape}"
        )
    if not np.all(np.isfinite(th)):
        raise ValueError("theta contains NaN or inf")
    if th.ndim == 1:
        return _population_error(th[:, None], mom)[0]
    return _population_error(th, mom)


# --------------------------------------------------------------------------- learning curves
@dataclass(frozen=True)
class LearningCurve:
    """Simulated ridge learning curves on a grid (n, lam, seed).

    Attributes
    ----------
    ns : (N,) sample sizes.
    lams : (L,) lambdas (mean-loss convention).
    seeds : (S,) seed indices; the (n, s) sample comes from ``stream(seed, "train", n, s)``.
    test_error : (N, L, S) test error (label noise included).
    train_error : (N, L, S) training error.
    n_test : None if the test error is exact (population moments), else the size of
        the fresh test set used.
    """

    ns: np.ndarray
    lams: np.ndarray
    seeds: np.ndarray
    test_error: np.ndarray
    train_error: np.ndarray
    n_test: int | None = field(default=None)

    @property
    def n_seeds(self) -> int:
        return int(self.seeds.shape[0])

    def _std(self, a: np.ndarray) -> np.ndarray:
        if self.n_seeds > 1:
            return a.std(axis=-1, ddof=1)
        return np.zeros(a.shape[:-1])

    @property
    def mean_test(self) -> np.ndarray:
        """(N, L) mean test error over seeds."""
        return self.test_error.mean(axis=-1)

    @property
    def std_test(self) -> np.ndarray:
        """(N, L) standard deviation over seeds (ddof=1; zeros for one seed)."""
        return self._std(self.test_error)

    @property
    def sem_test(self) -> np.ndarray:
        """(N, L) standard error of the mean test error, std_test / sqrt(S)."""
        return self.std_test / np.sqrt(self.n_seeds)

    @property
    def mean_train(self) -> np.ndarray:
        """(N, L) mean training error over seeds."""
        return self.train_error.mean(axis=-1)

    @property
    def std_train(self) -> np.ndarray:
        """(N, L) standard deviation over seeds (ddof=1; zeros for one seed)."""
        return self._std(self.train_error)

    @property
    def sem_train(self) -> np.ndarray:
        """(N, L) standard error of the mean training error."""
        return self.std_train / np.sqrt(self.n_seeds)


def _check_ns(ns) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(ns))
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"ns must be a non-empty 1-D array of sample sizes, got shape {arr.shape}")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError("ns must contain positive integers")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr <= 0):
        raise ValueError(f"ns must contain positive integers, got {arr!r}")
    return arr.astype(np.int64)


def _check_seeds(seeds) -> np.ndarray:
    if isinstance(seeds, (bool, np.bool_)):
        raise ValueError("seeds must be a number of seeds or a sequence of seed indices")
    if isinstance(seeds, (int, np.integer)):
        if seeds <= 0:
            raise ValueError(f"seeds (the number of seeds) must be positive, got {seeds}")
        return np.arange(int(seeds), dtype=np.int64)
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("seeds must be a positive int or a non-empty 1-D sequence of ints")
    if np.any(arr < 0):
        raise ValueError("seeds must be non-negative seed indices")
    if np.unique(arr).shape[0] != arr.shape[0]:
        raise ValueError("seeds contains duplicate indices (identical samples)")
    return arr.astype(np.int64)


def _empirical_test_error(
    theta: np.ndarray, mom: PopulationMoments, n_test: int, rng: np.random.Generator, dt
) -> np.ndarray:
    """Mean squared error of the columns of theta on n_test fresh samples (in chunks)."""
    chunk = max(1, _TEST_CHUNK_ELEMENTS // mom.p)
    total = np.zeros(theta.shape[1])
    done = 0
    while done < n_test:
        m = min(chunk, n_test - done)
        Ft, yt = sample_from_moments(mom, m, rng, dt)
        R = yt.astype(np.float64)[:, None] - Ft.astype(np.float64) @ theta
        total += np.einsum("ij,ij->j", R, R)
        done += m
    return total / n_test


def learning_curve(
    eigenvalues,
    b_eigen,
    y2,
    ns,
    lams,
    seeds,
    n_test: int | None = None,
    dtype=np.float64,
    seed: SeedLike = 0,
    method: str = "svd",
) -> LearningCurve:
    """Simulate ridge learning curves for Gaussian features with given population moments.

    For every sample size n in ``ns`` and every seed index s in ``seeds``:

    1. draw (F, y), n samples with E[phi phi^T] = diag(w), E[phi y] = b, E[y^2] = y2
       (:func:`simulations.data.sample_gaussian_features`, in the eigenbasis of Omega:
       ridge is rotation-equivariant, theta -> U theta, so the errors are exactly those of
       the rotated problem) from ``stream(seed, "train", n, s)`` -- the sample for (n, s)
       does not depend on the rest of the grid;
    2. one :func:`ridge_path` serves all ``lams``: theta(lam) = (F^T F/n + lam I)^{-1} F^T y/n;
    3. test error E[y^2] - 2 theta^T b + theta^T Omega theta exactly (default), or, if
       ``n_test`` is an int, the mean squared error on ``n_test`` fresh samples drawn
       from ``stream(seed, "test", n, s)``.

    Parameters
    ----------
    eigenvalues, b_eigen, y2 : population moments (see ``sample_gaussian_features``).
    ns : (N,) positive integer sample sizes.
    lams : (L,) lambdas >= 0 (mean-loss convention; 0 = min-norm least squares).
    seeds : int S (indices 0..S-1) or a sequence of distinct non-negative indices.
    n_test : None (exact test error) or a positive int.
    dtype : float64 or float32 -- the dtype in which the samples are drawn and stored.
        The decomposition is always done in float64 (float32 features are converted),
        so float32 only saves sampling time and memory, never accuracy of the solve.
    seed : root seed (int, sequence of ints or SeedSequence).
    method : "svd" or "gram", see :func:`ridge_path`.

    Returns
    -------
    LearningCurve with test_error and train_error of shape (N, L, S).
    """
    mom = validate_moments(eigenvalues, b_eigen, y2)
    ns_, lam, seeds_ = _check_ns(ns), check_lams(lams), _check_seeds(seeds)
    dt = float_dtype(dtype)
    if n_test is not None:
        n_test = pos_int(n_test, "n_test")
    method = choice(method, "method", _METHODS)
    shape = (ns_.shape[0], lam.shape[0], seeds_.shape[0])
    test, train = np.empty(shape), np.empty(shape)
    for i, n in enumerate(ns_):
        for j, s in enumerate(seeds_):
            test[i, :, j], train[i, :, j] = _fit_and_score(
                mom, int(n), lam, stream(seed, "train", int(n), int(s)),
                stream(seed, "test", int(n), int(s)), n_test, dt, method)
    return LearningCurve(ns_, lam, seeds_, test, train, n_test)


def _fit_and_score(mom: PopulationMoments, n: int, lams: np.ndarray, rng_train: np.random.Generator,
                   rng_test: np.random.Generator, n_test: int | None, dt=np.float64,
                   method: str = "svd") -> tuple[np.ndarray, np.ndarray]:
    """(test error, training error), each (L,), of ridge on n samples drawn from ``rng_train``.

    The test error is the exact population error E[y^2] - 2 theta^T b + theta^T Omega theta
    (``n_test`` None) or the mean squared error on ``n_test`` fresh samples from ``rng_test``.
    """
    F, y = sample_from_moments(mom, n, rng_train, dt)
    path = ridge_path(F, y, lams, method=method)
    if n_test is None:
        test = _population_error(path.theta, mom)
    else:
        test = _empirical_test_error(path.theta, mom, n_test, rng_test, dt)
    return np.asarray(test, dtype=np.float64), path.train_error


# --------------------------------------------------------------------------- sweep task
@register_spec
@dataclass(frozen=True)
class RidgeSpec(ModelSpec):
    """One point of a ridge sweep: ridge on n Gaussian samples with the moments of a spectrum.

    spectrum : ``{"kind": "isotropic", "p": p}`` or ``{"kind": "power-law", "p", "alpha",
        "beta"}`` (see :func:`simulations.data.spectrum_from_spec`);
    y2 : E[y^2] (>= b^T Omega^+ b);  n : number of training samples;
    lams : the lambdas of the path (mean-loss convention, >= 0);
    n_test : None (exact population test error) or the size of a fresh test set.
    """

    kind: ClassVar[str] = "ridge"
    spectrum: dict
    y2: float
    n: int
    lams: tuple
    n_test: int | None = None

    def validate(self) -> None:
        self._set("spectrum", check_spectrum(self.spectrum))
        self._set("y2", nonneg_float(self.y2, "y2"))
        self._set("n", pos_int(self.n, "n"))
        self._set("lams", tuple(float(x) for x in check_lams(self.lams)))
        if self.n_test is not None:
            self._set("n_test", pos_int(self.n_test, "n_test"))
        self.moments()  # y2 >= b^T Omega^+ b

    def moments(self) -> PopulationMoments:
        """The validated population moments (eigenbasis) of the spectrum and E[y^2]."""
        return validate_moments(*spectrum_from_spec(self.spectrum), self.y2)


def ridge_task(spec: RidgeSpec | dict, seed: np.random.SeedSequence) -> dict:
    """One sweep task: a ridge fit on n Gaussian samples, errors for every λ of the path.

    ``spec``: a :class:`RidgeSpec` (or its dict form: ``spectrum``, ``y2``, ``n``, ``lams``,
    optional ``n_test``). The training sample comes from ``stream(seed, "train")``, a fresh test
    set (only with ``n_test``) from ``stream(seed, "test")``. Returns
    ``{"test_error": (L,), "train_error": (L,)}``.
    """
    spec = spec if isinstance(spec, RidgeSpec) else RidgeSpec.from_dict(spec)
    test, train = _fit_and_score(spec.moments(), spec.n, np.asarray(spec.lams), stream(seed, "train"),
                                 stream(seed, "test"), spec.n_test)
    return {"test_error": test, "train_error": train}
