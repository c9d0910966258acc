r"""Theory of hierarchical polynomials h = g∘p learned by three-layer networks.

Wang, Nichani, Lee, *Learning Hierarchical Polynomials with Three-Layer Neural Networks*
(ICLR 2024, arXiv:2311.13774). The equations, their derivation and the sanity tables are in
``docs/theory/hierarchical.md``.

Target
------
x ~ N(0, I_d), probabilists' Hermite polynomials He_k (monic, E[He_j He_k] = k! δ_jk)::

    p(x) = Σ_{i=1}^d λ_i H(x_i),   λ_i = ±1,   h(x) = g(p(x)) = C_d p(x)^3,   E[h^2] = 1,

so C_d = E[p^6]^{-1/2}. ``convention="He3"``: H = He3 = z^3 − 3z; ``"He3/sqrt6"``: H = He3/√6
(the normalised h3, the paper's likely convention). h itself does not depend on the convention
(it is invariant to rescaling p); only C_d does. The law of p does not depend on the signs λ_i
(each Y_i = λ_i H(x_i) is symmetric), so every moment E[p^m] follows exactly from the univariate
moments E[H^j] by binomial convolution, d times::

    E[(S + Y)^m] = Σ_j binom(m, j) E[S^j] E[Y^{m-j}]          (exact integers for H = He3).

Closed forms (H = He3, checked by the tests): E p^2 = 6d, E p^4 = 108 d^2 + 3240 d,
E p^6 = 3240 d^3 + 291600 d^2 + 11314080 d.

Hermite spectrum
----------------
Expanding p^3 = Σ_a Y_a^3 + 3 Σ_{a≠b} Y_a^2 Y_b + 6 Σ_{a<b<c} Y_a Y_b Y_c with the univariate
expansions He3^3 = Σ_k α_k He_k (α = 324, 558, 216, 27, 1 at k = 1, 3, 5, 7, 9) and
He3^2 = Σ_j β_j He_j (β = 6, 18, 9, 1 at j = 0, 2, 4, 6) gives the orthogonal decomposition::

    diagonal   λ_a α_k He_k(x_a)                       energy α_k^2 k! per a
    pair       3 λ_b β_j He_j(x_a) He3(x_b), j ≥ 2      energy 9 β_j^2 j! 3! per ordered (a, b)
    pair j=0   3 β_0 λ_b He3(x_b): merges with the diagonal He3 term,
               coefficient of λ_a He3(x_a) = α_3 + 3 β_0 (d − 1) = 18 d + 540
    triple     6 λ_a λ_b λ_c He3 He3 He3, degree 9      energy 36 (3!)^3 per a < b < c

hence (H = He3; divide by E p^6 for shares of E h^2 = 1) E_1 = 104976 d,
E_3 = 1944 d (d + 30)^2, E_5 = 34992 d (d + 159), E_7 = 104976 d (d + 34),
E_9 = 1296 d (d^2 + 27 d + 252). :func:`degree_energies` returns E_ℓ / E p^6 as exact
fractions; the univariate expansions are computed (not typed in), for any He_k in p.

Projection on degree 3: P_3(p^3) = (18 d + 540) p (H = He3), so P_3 h = ρ p with
:func:`projection_constant` ρ = E[h p]/E[p^2] = C_d (18 d + 540) (× √6 for He3/√6) and
corr(h, p) = E[p^4]/√(E[p^2] E[p^6]) → √(3/5) as d → ∞ (:func:`feature_correlation`);
E_3 share = corr(h, p)^2. The "approximate Stein lemma" errors for p̄ = p/√E p^2 are
‖P_3(p̄^3) − 3 p̄‖ = 90/d and ‖P_1(p̄^3)‖ = 324/(6^{3/2} d) (:func:`stein_errors`).

Predictions
-----------
* Stage-1 ceiling: population stage 1 returns P_1 h + P_3 h, corr with p ≤ √(E_3/(E_1 + E_3)).
* :func:`stage1_corr_heuristic` (Gaussian-design OLS heuristic, NOT exact; layer-wise runs
  are well below it at finite n): with D_3 = binom(d + 3, 3) cubic directions
  and noise σ^2 = 1 − E_1 − E_3,   corr^2 ≈ E_3 / (E_1 + E_3 + σ^2 D_3/(n − D_3)),  n > D_3.
* :func:`threshold_n` inverts it: n*(c) = D_3 (1 + σ^2 c^2/(E_3 − c^2 (E_1 + E_3))) ∝ d^3
  (≈ 3.7 d^3 at d = 16 for c = 0.9); or n* = κ d^3 for a given constant κ (frozen-V
  layer-wise runs at d = 16 suggest κ ≈ 30).
* :func:`error_floor` (degree-ℓ polynomial/kernel predictor, population): 1 − Σ_{j≤ℓ} E_j.
  Kernel methods need n ≍ d^ℓ to fit degree ℓ, so fitting all of h costs d^9 (not d^6).
  :func:`kernel_error_heuristic` interpolates the staircase inside each step (HEURISTIC:
  ridgeless isotropic block of dimension N_ℓ = binom(d + ℓ − 1, ℓ) ≈ d^ℓ/ℓ!, of which a
  fraction max(0, 1 − n/N_ℓ) of E_ℓ remains unlearned).
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import sympy

from .validation import choice, nonneg_int, pos_float, pos_int, probability

__all__ = [
    "CONVENTIONS",
    "univariate_moments",
    "hermite_expansion",
    "p_moments",
    "normalising_constant",
    "feature_correlation",
    "degree_energies",
    "projection_constant",
    "degree3_coefficient",
    "stein_errors",
    "target_fourth_moment",
    "zero_predictor_se",
    "stage1_ceiling",
    "stage1_corr_heuristic",
    "threshold_n",
    "error_floor",
    "kernel_error_heuristic",
]

#: Conventions for the univariate piece H of p: the value is H^2's normalisation E[H^2].
CONVENTIONS = ("He3", "He3/sqrt6")


# ============================================================================ exact Hermite algebra
@lru_cache(maxsize=None)
def _he(k: int) -> tuple[int, ...]:
    """Integer monomial coefficients (index = power) of He_k: He_{k+1} = z He_k − k He_{k−1}."""
    if k == 0:
        return (1,)
    if k == 1:
        return (0, 1)
    a, b = list(_he(k - 1)), list(_he(k - 2))
    out = [0] + a
    for i, c in enumerate(b):
        out[i] -= (k - 1) * c
    return tuple(out)


def _polymul(a, b):
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] += x * y
    return out


def _polypow(a, m: int):
    out = [1]
    for _ in range(m):
        out = _polymul(out, a)
    return out


def _gauss_moment(j: int) -> int:
    """E z^j for z ~ N(0, 1): (j − 1)!! for even j, 0 for odd j."""
    return 0 if j % 2 else math.prod(range(j - 1, 0, -2))


def hermite_expansion(coeffs) -> dict[int, int]:
    """Exact He-basis coefficients {k: c_k} of the polynomial Σ_j coeffs[j] z^j (integers in,
    exact numbers out; He monic, so integer polynomials have integer coefficients).

    E.g. He3^3 = 324 He1 + 558 He3 + 216 He5 + 27 He7 + He9 and He3^2 = 6 + 18 He2 + 9 He4 + He6.
    """
    poly = list(coeffs)
    out: dict[int, int] = {}
    for k in range(len(poly) - 1, -1, -1):
        c = poly[k]
        if c:
            out[k] = c
            for i, h in enumerate(_he(k)):
                poly[i] -= c * h
    return dict(sorted(out.items()))


@lru_cache(maxsize=None)
def univariate_moments(m_max: int, k: int = 3) -> tuple[int, ...]:
    """(E[He_k(z)^j] for j = 0..m_max), exact integers (k = 3: 1, 0, 6, 0, 3348, 0, 11608920...)."""
    m_max = int(m_max)
    he = _he(k)
    return tuple(sum(c * _gauss_moment(i) for i, c in enumerate(_polypow(he, j)))
                 for j in range(m_max + 1))


@lru_cache(maxsize=None)
def _p_moments_int(d: int, m_max: int, k: int) -> tuple[int, ...]:
    """E[(Σ_{i≤d} He_k(x_i))^m], m = 0..m_max: binomial convolution of univariate moments."""
    def conv(a, b):  # moments of the sum of two independent variables
        return [sum(math.comb(m, j) * a[j] * b[m - j] for j in range(m + 1)) for m in range(m_max + 1)]

    y = list(univariate_moments(m_max, k))
    s = [1] + [0] * m_max  # moments of the empty sum
    while d:  # binary powering of the convolution: O(m_max^2 log d)
        if d & 1:
            s = conv(s, y)
        d >>= 1
        if d:
            y = conv(y, y)
    return tuple(s)


def p_moments(d: int, m_max: int = 6, convention: str = "He3") -> tuple:
    """Exact moments (E[p^m], m = 0..m_max) of p = Σ λ_i H(x_i): ints for "He3", Fractions
    (odd m: 0) for "He3/sqrt6" (E[p^m] = E[p_He3^m] / 6^{m/2})."""
    d = pos_int(d, "d")
    m_max = pos_int(m_max, "m_max") if m_max else 0
    conv = choice(convention, "convention", CONVENTIONS)
    mom = _p_moments_int(d, m_max, 3)
    if conv == "He3":
        return mom
    return tuple(Fraction(v, 6 ** (m // 2)) if m % 2 == 0 else Fraction(0) for m, v in enumerate(mom))


# ============================================================================ public quantities
def normalising_constant(d: int, convention: str = "He3", exact: bool = False):
    """C_d = E[p^6]^{-1/2}, so that h = C_d p^3 has E[h^2] = 1.

    "He3": C_d = (3240 d^3 + 291600 d^2 + 11314080 d)^{-1/2};
    "He3/sqrt6": C_d = (15 d^3 + 1350 d^2 + 52380 d)^{-1/2} = 6^{3/2} × the He3 value.
    ``exact=True`` returns the sympy number (e.g. 1/sqrt(...)) instead of a float.
    """
    m6 = p_moments(d, 6, convention)[6]
    val = 1 / sympy.sqrt(sympy.Rational(m6.numerator, m6.denominator) if isinstance(m6, Fraction)
                         else sympy.Integer(m6))
    return val if exact else float(val.evalf(30))


def feature_correlation(d: int, exact: bool = False):
    """corr(h, p) = E[p^4]/√(E[p^2] E[p^6]) = (3 + 90/d)/√(15 + 1350/d + 52380/d^2) → √(3/5).

    Equals the square root of the degree-3 energy share (P_3 h ∝ p). Convention-free.
    """
    m = p_moments(d, 6)
    val = sympy.Integer(m[4]) / sympy.sqrt(sympy.Integer(m[2]) * sympy.Integer(m[6]))
    return val if exact else float(val.evalf(30))


@lru_cache(maxsize=None)
def _energies_int(d: int, k: int) -> dict[int, int]:
    """Energies E_ℓ = ‖P_ℓ (Σ_i He_k(x_i) λ_i)^3‖^2 (exact integers), H = He_k unnormalised."""
    he = _he(k)
    alpha = hermite_expansion(_polypow(he, 3))   # He_k^3
    beta = hermite_expansion(_polypow(he, 2))    # He_k^2
    E: dict[int, int] = {}

    def add(level, val):
        E[level] = E.get(level, 0) + val

    fk = math.factorial(k)
    # diagonal terms λ_a He_k(x_a)^3 (the He_k part merges with the j = 0 pair terms)
    for deg, a in alpha.items():
        coef = a + (3 * beta.get(0, 0) * (d - 1) if deg == k else 0)
        add(deg, coef * coef * math.factorial(deg) * d)
    if k not in alpha and d > 1 and beta.get(0):
        add(k, (3 * beta[0] * (d - 1)) ** 2 * fk * d)
    # pair terms 3 λ_b He_j(x_a) He_k(x_b), a ≠ b, j ≥ 1: distinct multi-indices per ordered pair
    for j, b in beta.items():
        if j >= 1 and d >= 2:
            add(j + k, 9 * b * b * math.factorial(j) * fk * d * (d - 1))
    # triple terms 6 λ_a λ_b λ_c He_k He_k He_k, a < b < c
    if d >= 3:
        add(3 * k, 36 * fk ** 3 * math.comb(d, 3))
    return dict(sorted((lv, v) for lv, v in E.items() if v))


def degree_energies(d: int, exact: bool = True) -> dict:
    """{ℓ: ‖P_ℓ h‖^2} for ℓ = 1, 3, 5, 7, 9 — shares of E[h^2] = 1, summing to 1 exactly.

    Exact :class:`fractions.Fraction` by default (``exact=False``: floats). E.g. d = 16:
    {1: 0.0062452, 3: 0.2447186, 5: 0.3643022, 7: 0.3122591, 9: 0.0724749}.
    """
    d = pos_int(d, "d")
    E = _energies_int(d, 3)
    total = _p_moments_int(d, 6, 3)[6]
    out = {lv: Fraction(v, total) for lv, v in E.items()}
    return out if exact else {lv: float(v) for lv, v in out.items()}


def degree3_coefficient(d: int, convention: str = "He3"):
    """The exact constant κ with P_3(p^3) = κ p: 18 d + 540 for "He3" (He3/√6: (18 d + 540)/6,
    since p = p_He3/√6 there). Returned as a Fraction."""
    d = pos_int(d, "d")
    he = _he(3)
    alpha3 = hermite_expansion(_polypow(he, 3))[3]
    beta0 = hermite_expansion(_polypow(he, 2))[0]
    kappa = Fraction(alpha3 + 3 * beta0 * (d - 1))
    return kappa if choice(convention, "convention", CONVENTIONS) == "He3" else kappa / 6


def projection_constant(d: int, convention: str = "He3") -> float:
    """Regression constant of the target on the feature, ρ = E[h p]/E[p^2], so P_3 h = ρ p.

    "He3": ρ = C_d (18 d + 540) (d = 16: 0.0504891264); "He3/sqrt6": √6 × that.
    """
    conv = choice(convention, "convention", CONVENTIONS)
    C = normalising_constant(d, conv, exact=True)
    kappa = degree3_coefficient(d, conv)
    return float((C * sympy.Rational(kappa.numerator, kappa.denominator)).evalf(30))


def stein_errors(d: int) -> tuple[float, float]:
    """For the unit-variance p̄: (‖P_3(p̄^3) − 3 p̄‖, ‖P_1(p̄^3)‖) = (90/d, 324/(6^{3/2} d))."""
    d = pos_int(d, "d")
    m2 = _p_moments_int(d, 2, 3)[2]
    kappa = degree3_coefficient(d)             # P_3(p^3) = κ p  ⇒  P_3(p̄^3) = κ m2^{-1} p̄
    e1 = _energies_int(d, 3)[1]
    return float(abs(kappa / m2 - 3)), math.sqrt(e1 / m2**3)


def target_fourth_moment(d: int) -> float:
    """E[h^4] = E[p^12]/E[p^6]^2 (d = 16: 21392; → 10395/225 as d → ∞)."""
    m = p_moments(d, 12)
    return float(Fraction(m[12], m[6] ** 2))


def zero_predictor_se(d: int, n_test: int) -> float:
    """Monte-Carlo standard error of the test MSE of the zero predictor, √((E h^4 − 1)/N)."""
    n_test = pos_int(n_test, "n_test")
    return math.sqrt((target_fourth_moment(d) - 1.0) / n_test)


def stage1_ceiling(d: int) -> float:
    """√(E_3/(E_1 + E_3)): corr(P_{≤3} h, p), the population limit of stage 1 (d = 16: 0.98748)."""
    E = degree_energies(d)
    return math.sqrt(E[3] / (E[1] + E[3]))


def _d3(d: int) -> int:
    return math.comb(d + 3, 3)


def stage1_corr_heuristic(d: int, n):
    """OLS heuristic for corr(ĝ, p) after stage 1 on n samples (HEURISTIC)::

        corr^2 ≈ E_3 / (E_1 + E_3 + σ^2 D_3/(n − D_3)),  σ^2 = 1 − E_1 − E_3,  D_3 = binom(d+3, 3)

    for n > D_3; NaN for n ≤ D_3 (interpolation regime, not covered). ``n`` scalar or array.
    d = 16, n = 8 d^3: 0.945 (layer-wise runs give 0.805 ± 0.032 there, see
    ``docs/theory/hierarchical.md``).
    """
    d = pos_int(d, "d")
    n_arr = np.asarray(n, dtype=np.float64)
    if n_arr.size and (not np.all(np.isfinite(n_arr)) or np.any(n_arr <= 0)):
        raise ValueError(f"n must be positive and finite, got {n!r}")
    E = degree_energies(d, exact=False)
    sig2 = 1.0 - E[1] - E[3]
    D3 = _d3(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = E[3] / (E[1] + E[3] + sig2 * D3 / (n_arr - D3))
        out = np.where(n_arr > D3, np.sqrt(c2), np.nan)
    return float(out) if out.ndim == 0 else out


def threshold_n(d: int, corr: float = 0.9, kappa: float | None = None) -> float:
    """Predicted sample threshold n* ∝ d^3 of the layer-wise algorithm.

    Default: invert :func:`stage1_corr_heuristic` at correlation ``corr``::

        n* = D_3 (1 + σ^2 c^2 / (E_3 − c^2 (E_1 + E_3)))        (d = 16, c = 0.9: 3.70 d^3)

    (inf when c ≥ :func:`stage1_ceiling`). With ``kappa`` given: n* = κ d^3 (an empirical
    constant, e.g. κ ≈ 30 from frozen-V layer-wise runs at d = 16).
    """
    d = pos_int(d, "d")
    if kappa is not None:
        return pos_float(kappa, "kappa") * d**3
    if not 0 < probability(corr, "corr") < 1:
        raise ValueError(f"corr must be a number in (0, 1), got {corr!r}")
    E = degree_energies(d, exact=False)
    sig2 = 1.0 - E[1] - E[3]
    den = E[3] - corr**2 * (E[1] + E[3])
    if den <= 0:
        return math.inf
    return _d3(d) * (1.0 + sig2 * corr**2 / den)


def error_floor(d: int, ell: int) -> float:
    """Population error 1 − Σ_{j ≤ ℓ} E_j of the best degree-ℓ polynomial (= kernel method with
    n ≫ d^ℓ samples, ≪ d^{ℓ+1}) predictor of h; ℓ ≥ 9 gives 0 (h has degree 9)."""
    d = pos_int(d, "d")
    ell = nonneg_int(ell, "ell")
    E = degree_energies(d)
    return float(1 - sum(v for lv, v in E.items() if lv <= ell))


def kernel_error_heuristic(d: int, n):
    """HEURISTIC staircase test error of a rotation-invariant kernel method with n samples.

    The degree blocks ℓ = 0, 1, 2, ... (dimension N_ℓ = binom(d + ℓ − 1, ℓ) ≈ d^ℓ/ℓ!, even
    degrees included: the kernel does not know h is odd) are filled in order, a ridgeless fit
    on an isotropic block learning the fraction n_ℓ/N_ℓ of its energy, n_ℓ = the samples left
    after the lower blocks::

        error(n) = Σ_ℓ E_ℓ (1 − clip((n − Σ_{j<ℓ} N_j)/N_ℓ, 0, 1)).

    Plateaus: 1 − E_1 (d ≪ n ≪ d^3), 1 − E_1 − E_3 (d^3 ≪ n ≪ d^5), E_7 + E_9, E_9, 0 (n ≫ d^9).
    """
    d = pos_int(d, "d")
    n_arr = np.asarray(n, dtype=np.float64)
    if n_arr.size and (not np.all(np.isfinite(n_arr)) or np.any(n_arr < 0)):
        raise ValueError(f"n must be non-negative and finite, got {n!r}")
    E = degree_energies(d, exact=False)
    out = np.zeros_like(n_arr)
    used = 0.0
    for lv in range(max(E) + 1):
        N = float(math.comb(d + lv - 1, lv))
        if lv in E:
            out = out + E[lv] * (1.0 - np.clip((n_arr - used) / N, 0.0, 1.0))
        used += N
    return float(out) if np.ndim(out) == 0 else out
