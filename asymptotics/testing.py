r"""Hypothesis strategies for property-based tests of models built on this toolkit.

Needs `hypothesis <https://hypothesis.readthedocs.io>`_, which is in the ``dev`` extra
(``pip install -e ".[dev]"``); importing this module without it raises an ImportError that says
so. ``import asymptotics`` never imports this module.

Every strategy reaches the edge cases that break numerical code, and does so early (hypothesis
tries the simplest examples first and shrinks failures towards them):

* :func:`spectra` — eigenvalue vectors of PSD matrices with a controlled rank (rank 0, the all-zero
  spectrum, included) and condition number (κ = 1 and κ = ``max_condition`` included);
* :func:`psd_matrices` — symmetric PSD matrices with such a spectrum, randomly rotated;
* :func:`gaussian_covariate_models` — valid :class:`asymptotics.ridge.GaussianCovariateModel`
  instances (Ω, b in the range of Ω, E[y²] = bᵀΩ⁺b + σ²), rank-deficient and noiseless included;
* :func:`activations` — names of registered activations (:mod:`asymptotics.functions`);
* :func:`multi_index_targets` — :class:`asymptotics.giant_step.MultiIndexTarget` instances: the
  named targets ``T1, T2, T3`` and small random polynomials in ``h1 … hk`` with exact rational
  coefficients (the zero and constant targets included).

Example (see ``docs/testing.md``)::

    from hypothesis import given
    from asymptotics.testing import gaussian_covariate_models

    @given(gaussian_covariate_models(max_size=6))
    def test_ridge_error_is_at_least_the_noise(model):
        e = model.ridge(2.0 * model.p + 1, 0.1).test_error
        assert e >= model.residual_variance * (1 - 1e-12)

Randomness that hypothesis does not need to shrink (the rotation of a PSD matrix) is drawn from a
numpy generator whose seed is itself drawn by hypothesis, so every example is reproducible from
hypothesis' own record of it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("asymptotics.testing needs hypothesis, which is in the 'dev' extra: "
                      "pip install -e \".[dev]\" (or pip install hypothesis)") from exc

__all__ = ["spectra", "psd_matrices", "gaussian_covariate_models", "activations",
           "multi_index_targets", "random_rotation"]

_ORDERS = ("any", "ascending", "descending")
_FORMS = ("any", "spectrum", "matrix")
_TINY = 1e-100  # teacher amplitudes below this are drawn as 0


# --------------------------------------------------------------------------------------------
# argument checks (ValueError/TypeError naming the argument)
# --------------------------------------------------------------------------------------------
def _int(value, name: str, low: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _real(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _range(pair, name: str, low: float, strictly: bool) -> tuple[float, float]:
    try:
        a, b = pair
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high), got {pair!r}") from None
    a, b = _real(a, f"{name}[0]"), _real(b, f"{name}[1]")
    if (a <= low if strictly else a < low) or b < a:
        rel = ">" if strictly else ">="
        raise ValueError(f"{name} must be (low, high) with low {rel} {low} and high >= low, got {pair!r}")
    return a, b


def _sizes(min_size, max_size, rank, min_rank, max_rank) -> tuple[int, int, int | None, int, int | None]:
    min_size = _int(min_size, "min_size", 0)
    max_size = _int(max_size, "max_size", 0)
    if max_size < min_size:
        raise ValueError(f"max_size must be >= min_size, got {max_size} < {min_size}")
    if rank is not None:
        rank = _int(rank, "rank", 0)
        if rank > max_size:
            raise ValueError(f"rank must be <= max_size, got {rank} > {max_size}")
    min_rank = _int(min_rank, "min_rank", 0)
    if max_rank is not None:
        max_rank = _int(max_rank, "max_rank", 0)
        if max_rank < min_rank:
            raise ValueError(f"max_rank must be >= min_rank, got {max_rank} < {min_rank}")
    if min_rank > max_size:
        raise ValueError(f"min_rank must be <= max_size, got {min_rank} > {max_size}")
    return min_size, max_size, rank, min_rank, max_rank


def _log_uniform(lo: float, hi: float):
    """A float in [lo, hi] (0 < lo <= hi), log-uniform, with both ends drawn as such."""
    if lo == hi:
        return st.just(lo)
    a, b = math.log(lo), math.log(hi)
    inner = st.floats(0.0, 1.0).map(lambda u: min(max(math.exp(a + u * (b - a)), lo), hi))
    return st.sampled_from([lo, hi]) | inner


# --------------------------------------------------------------------------------------------
# spectra and PSD matrices
# --------------------------------------------------------------------------------------------
def random_rotation(p: int, seed: int) -> np.ndarray:
    """A p×p orthogonal matrix (Haar distributed) from ``numpy.random.default_rng(seed)``."""
    p = _int(p, "p", 0)
    if p == 0:
        return np.zeros((0, 0))
    rng = np.random.default_rng(_int(seed, "seed", 0))
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


@st.composite
def _spectrum(draw, min_size, max_size, rank, min_rank, max_rank, max_condition, scale, order):
    low_p = max(min_size, rank if rank is not None else min_rank)
    p = draw(st.integers(low_p, max_size))
    if rank is None:
        r = draw(st.integers(min_rank, p if max_rank is None else min(max_rank, p)))
    else:
        r = rank
    w = np.zeros(p)
    if r:
        top = draw(_log_uniform(*scale))
        kappa = draw(_log_uniform(1.0, max_condition)) if r >= 2 else 1.0
        # the largest and the smallest positive eigenvalue set the condition number exactly
        # (up to rounding of top/kappa); the others lie between them, ties included
        inner = draw(st.lists(st.floats(0.0, 1.0), min_size=max(r - 2, 0), max_size=max(r - 2, 0)))
        pos = [top] + ([top / kappa] if r >= 2 else []) + [top * kappa ** -u for u in inner]
        w[:r] = np.clip(pos, top / kappa, top)
    if order == "ascending":
        w = np.sort(w)
    elif order == "descending":
        w = np.sort(w)[::-1].copy()
    else:
        w = w[np.asarray(draw(st.permutations(range(p))), dtype=np.intp)] if p else w
    return w


def spectra(*, min_size: int = 1, max_size: int = 12, rank: int | None = None, min_rank: int = 0,
            max_rank: int | None = None, max_condition: float = 1e12, scale=(1e-3, 1e3),
            order: str = "any"):
    """Eigenvalue vectors of PSD matrices: 1-D float64 arrays ``w`` of length p.

    Guarantees, for every example:

    * ``min_size <= p <= max_size``;
    * exactly ``r`` entries are positive and the other ``p − r`` are exactly 0, where ``r = rank``
      if given, else ``min_rank <= r <= min(p, max_rank)`` (``r = 0``, the zero spectrum, is
      reached whenever ``min_rank = 0``);
    * the largest entry lies in ``scale = (low, high)`` (both > 0);
    * the condition number κ = max w / min(w > 0) lies in [1, ``max_condition``]; κ = 1 (all
      positive entries equal) and κ = ``max_condition`` (up to rounding) are both drawn;
    * ``order``: ``"any"`` (a random permutation), ``"ascending"`` or ``"descending"``.

    Bad arguments raise ValueError/TypeError naming the argument.
    """
    min_size, max_size, rank, min_rank, max_rank = _sizes(min_size, max_size, rank, min_rank, max_rank)
    max_condition = _real(max_condition, "max_condition")
    if max_condition < 1:
        raise ValueError(f"max_condition must be >= 1, got {max_condition}")
    scale = _range(scale, "scale", 0.0, strictly=True)
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
    return _spectrum(min_size, max_size, rank, min_rank, max_rank, max_condition, scale, order)


@st.composite
def _psd(draw, spectrum_strategy, return_spectrum):
    w = draw(spectrum_strategy)
    q = random_rotation(w.shape[0], draw(st.integers(0, 2**32 - 1)))
    m = (q * w[None, :]) @ q.T
    m = 0.5 * (m + m.T)
    return (m, w) if return_spectrum else m


def psd_matrices(*, min_size: int = 1, max_size: int = 8, rank: int | None = None, min_rank: int = 0,
                 max_rank: int | None = None, max_condition: float = 1e8, scale=(1e-3, 1e3),
                 return_spectrum: bool = False):
    """Symmetric positive semi-definite matrices M = Q diag(w) Qᵀ (float64, p×p).

    ``w`` is drawn by :func:`spectra` with the same arguments (so rank, condition number and
    scale are controlled as there) and Q is a Haar-random rotation (:func:`random_rotation`).
    M is exactly symmetric; since it is formed in floating point, its eigenvalues equal ``w``
    up to about ``p · eps · max(w)`` (so "zero" eigenvalues may be ±1e-16·max(w)); the zero
    matrix (rank 0) is exact. ``return_spectrum=True`` draws pairs ``(M, w)``.
    """
    return _psd(spectra(min_size=min_size, max_size=max_size, rank=rank, min_rank=min_rank,
                        max_rank=max_rank, max_condition=max_condition, scale=scale),
                bool(return_spectrum))


# --------------------------------------------------------------------------------------------
# Gaussian covariate models
# --------------------------------------------------------------------------------------------
@st.composite
def _model(draw, spectrum_strategy, noise, zero_signal, form, psd_tol, rank_tol):
    from .ridge import GaussianCovariateModel  # theory layer; imported when first drawn

    w = draw(spectrum_strategy)
    p = w.shape[0]
    pos = w > 0
    # whitened teacher a: b_i = sqrt(w_i) a_i on the positive eigenvalues, 0 on the null space,
    # so bᵀΩ⁺b = Σ a_i²; the zero teacher (pure noise) is drawn as such
    amps = np.zeros(p)
    if pos.any() and not (zero_signal and draw(st.booleans())):
        amps[pos] = draw(st.lists(st.floats(-1.0, 1.0, allow_subnormal=False), min_size=int(pos.sum()),
                                  max_size=int(pos.sum())))
        amps[np.abs(amps) < _TINY] = 0.0  # a² must not underflow: bᵀΩ⁺b is then exact to rounding
    b_eigen = np.sqrt(w) * amps
    sigma2 = draw(st.sampled_from(list(dict.fromkeys(noise))) | st.floats(*noise, allow_subnormal=False))
    kind = draw(st.sampled_from(["spectrum", "matrix"])) if form == "any" else form
    kw = {"psd_tol": psd_tol, "rank_tol": rank_tol}
    if kind == "spectrum":
        explained = math.fsum(b_eigen[pos] ** 2 / w[pos])
        return GaussianCovariateModel.from_spectrum(w, b_eigen, explained + sigma2, **kw)
    q = random_rotation(p, draw(st.integers(0, 2**32 - 1)))
    omega = (q * w[None, :]) @ q.T
    omega = 0.5 * (omega + omega.T)
    b = q @ b_eigen
    # E[y²] from the model's own eigendecomposition of the rounded Ω, so that the residual
    # variance is σ² to rounding (bᵀΩ⁺b of the rounded Ω differs from Σ a_i² by ~ eps·κ)
    probe = GaussianCovariateModel(omega, b, 2.0 * math.fsum(amps ** 2) + sigma2 + 1.0, **kw)
    explained = math.fsum(probe.b_eigen ** 2 / probe.eigenvalues) if probe.rank else 0.0
    return GaussianCovariateModel(omega, b, explained + sigma2, **kw)


def gaussian_covariate_models(*, min_size: int = 1, max_size: int = 8, rank: int | None = None,
                              min_rank: int = 0, max_rank: int | None = None,
                              max_condition: float = 1e8, scale=(1e-3, 1e3), noise=(0.0, 1.0),
                              form: str = "any", zero_signal: bool = True,
                              psd_tol: float = 1e-9, rank_tol: float | None = None):
    """Valid :class:`asymptotics.ridge.GaussianCovariateModel` instances.

    The population moments are built from a spectrum ``w`` drawn by :func:`spectra` (same size,
    rank, condition and scale arguments), a whitened teacher a (entries in [−1, 1] on the
    positive eigenvalues, each 0 or of magnitude >= 1e-100; with ``zero_signal`` also a = 0) and
    a residual variance σ² in
    ``noise = (low, high)`` (both ends drawn, so σ² = 0, the noiseless model, is reached):

        b̃ = √w ∘ a  (b̃ = 0 on the null space),   E[y²] = bᵀΩ⁺b + σ².

    ``form``: ``"spectrum"`` builds the model with :meth:`~GaussianCovariateModel.from_spectrum`
    (exact rank r = number of positive w), ``"matrix"`` from Ω = Q diag(w) Qᵀ and b = Q b̃ with a
    random rotation Q (then E[y²] is computed from the model's own eigendecomposition, so that
    ``residual_variance`` is σ² up to rounding, and the model's rank is r unless a rounded zero
    eigenvalue exceeds ``rank_tol``), ``"any"`` draws both. ``psd_tol`` and ``rank_tol`` are
    passed to the constructor. Every model satisfies ``residual_variance ≈ σ² >= 0`` and
    ``rank <= p``; the defaults keep κ <= 1e8 so that the rank is well determined in floating
    point.
    """
    spec = spectra(min_size=min_size, max_size=max_size, rank=rank, min_rank=min_rank,
                   max_rank=max_rank, max_condition=max_condition, scale=scale)
    noise = _range(noise, "noise", 0.0, strictly=False)
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    return _model(spec, noise, bool(zero_signal), form, psd_tol, rank_tol)


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------
def activations(*, odd: bool | None = None, polynomial: bool | None = None, names=None,
                exclude=()):
    """Names of registered activations (:func:`asymptotics.functions.names`), for
    ``functions.get(name)`` or any function taking an activation name.

    Private names (starting with ``_``, registered internally) are left out. ``odd`` /
    ``polynomial``: keep only those whose expression is (not) odd / a polynomial. ``names``
    restricts the choice to these names (each must be registered); ``exclude`` removes some.
    The list is taken when the strategy is created (activations registered later are not drawn).
    """
    from . import functions

    if names is None:
        pool = [n for n in functions.names() if not n.startswith("_")]
    else:
        if isinstance(names, str):
            raise TypeError("names must be a list of activation names, not a single string")
        pool = [functions.get(n).name if not isinstance(n, str) else n for n in names]
        unknown = [n for n in pool if n not in functions.names()]
        if unknown:
            raise ValueError(f"names: unknown activation(s) {unknown}; known: {functions.names()}")
    if isinstance(exclude, str):
        exclude = (exclude,)
    pool = [n for n in pool if n not in set(exclude)]
    if odd is not None:
        pool = [n for n in pool if functions.get(n).is_odd == bool(odd)]
    if polynomial is not None:
        pool = [n for n in pool if functions.get(n).is_polynomial == bool(polynomial)]
    if not pool:
        raise ValueError("no registered activation satisfies the arguments (names, exclude, odd, polynomial)")
    return st.sampled_from(sorted(pool))


# --------------------------------------------------------------------------------------------
# multi-index targets
# --------------------------------------------------------------------------------------------
@st.composite
def _monomial(draw, k, max_degree):
    exps, budget = [], max_degree
    for _ in range(k):
        e = draw(st.integers(0, budget))
        exps.append(e)
        budget -= e
    return tuple(exps)


@st.composite
def _polynomial_target(draw, min_k, max_k, max_degree, max_terms):
    import sympy

    from .giant_step import MultiIndexTarget

    k = draw(st.integers(min_k, max_k))
    hs = [sympy.Symbol(f"h{i}", real=True) for i in range(1, k + 1)]
    terms = draw(st.lists(st.tuples(st.integers(-4, 4), st.integers(1, 4), _monomial(k, max_degree)),
                          max_size=max_terms))
    expr = sympy.Add(*[sympy.Rational(num, den) * sympy.Mul(*[h ** e for h, e in zip(hs, exps)])
                       for num, den, exps in terms])
    return MultiIndexTarget(expr, k=k)


def multi_index_targets(*, min_k: int = 1, max_k: int = 3, max_degree: int = 3, max_terms: int = 4,
                        named: bool = True):
    """:class:`asymptotics.giant_step.MultiIndexTarget` instances.

    Random polynomials g(h1, …, hk) = Σ c_j Π_i h_i^{e_ji}, with ``min_k <= k <= max_k``,
    at most ``max_terms`` terms of total degree <= ``max_degree`` and exact rational coefficients
    c = m/n, |m| <= 4, 1 <= n <= 4 (so every quantity of the target is an exact rational with
    ``exact=True``). The zero target (no term), constant targets and targets that ignore some of
    their k directions are drawn. With ``named`` (and 2 in [min_k, max_k]), the named targets
    ``T1, T2, T3`` of :data:`asymptotics.functions.TARGETS` are drawn too.
    """
    min_k, max_k = _int(min_k, "min_k", 1), _int(max_k, "max_k", 1)
    if max_k < min_k:
        raise ValueError(f"max_k must be >= min_k, got {max_k} < {min_k}")
    from . import functions

    if max_k > functions.MAX_TARGET_DIRECTIONS:
        raise ValueError(f"max_k must be <= {functions.MAX_TARGET_DIRECTIONS} "
                         f"(asymptotics.functions.MAX_TARGET_DIRECTIONS), got {max_k}")
    max_degree = _int(max_degree, "max_degree", 0)
    max_terms = _int(max_terms, "max_terms", 0)
    poly = _polynomial_target(min_k, max_k, max_degree, max_terms)
    if named and min_k <= 2 <= max_k:
        from .functions import TARGETS
        from .giant_step import MultiIndexTarget

        return poly | st.sampled_from(sorted(TARGETS)).map(MultiIndexTarget)
    return poly
