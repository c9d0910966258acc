"""Theory of the hierarchical target h = C_d p^3 (asymptotics.hierarchical).

References: independent sympy expansions of p = Σ He3(x_i) for small d, the closed forms and the
sanity tables of docs/theory/hierarchical.md (constants, energies, reference runs), and Monte Carlo.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import hierarchical as H

# docs/theory/hierarchical.md, table of constants: d, C_d (He3), C_d (He3/sqrt6), corr(h, p)
TABLE_C = [
    (8, 9.4986886636e-05, 1.3960164271e-03, 0.4501325031),
    (16, 6.0977205849e-05, 8.9617824162e-04, 0.4946903894),
    (24, 4.5440967769e-05, 6.6784310671e-04, 0.5300234481),
    (32, 3.6112208939e-05, 5.3073891231e-04, 0.5584301569),
    (40, 2.9794605565e-05, 4.3788948433e-04, 0.5815858163),
]
# docs/theory/hierarchical.md, energy table: d, E1, E3, E5, E7, E9, stage-1 ceiling, E h^4
TABLE_E = [
    (8, 0.0075772, 0.2026193, 0.4217961, 0.3182414, 0.0497661, 0.9818105, 56143),
    (16, 0.0062452, 0.2447186, 0.3643022, 0.3122591, 0.0724749, 0.9874792, 21392),
    (24, 0.0052023, 0.2809249, 0.3173410, 0.3017341, 0.0947977, 0.9908674, 11126),
    (32, 0.0043807, 0.3118442, 0.2789075, 0.2891293, 0.1157382, 0.9930492, 6666.4),
    (40, 0.0037276, 0.3382421, 0.2472619, 0.2758399, 0.1349287, 0.9945349, 4358.3),
]
# regression constant ρ = E[h p]/E[p^2] = C_d (18 d + 540) for H = He3
TABLE_RHO = {16: 0.0504891264, 24: 0.0441686207, 32: 0.0403012252, 40: 0.0375412030}


# ------------------------------------------------------------------ independent sympy reference
def _gauss_expect(poly_expr, xs):
    """E over independent N(0,1) xs of a polynomial, by monomial moments (sympy, exact)."""
    poly = sympy.Poly(sympy.expand(poly_expr), *xs)
    total = sympy.Integer(0)
    for powers, coef in poly.terms():
        term = coef
        for k in powers:
            term *= 0 if k % 2 else sympy.factorial2(k - 1)
        total += term
    return total


def _sympy_p(d):
    xs = sympy.symbols(f"x1:{d + 1}")
    return xs, sum(x**3 - 3 * x for x in xs)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_moments_and_C_against_sympy(d):
    xs, p = _sympy_p(d)
    m2, m4, m6 = (_gauss_expect(p**k, xs) for k in (2, 4, 6))
    mom = H.p_moments(d, 6)
    assert (mom[2], mom[4], mom[6]) == (m2, m4, m6)
    assert H.normalising_constant(d, exact=True) == 1 / sympy.sqrt(m6)
    assert H.normalising_constant(d, "He3/sqrt6", exact=True) == sympy.simplify(
        1 / sympy.sqrt(m6 / 6**3))
    # degree-3 projection: E[p^3 He3(x_1)] / E[He3^2] is the coefficient κ of P_3(p^3) = κ p
    kappa = _gauss_expect(p**3 * (xs[0] ** 3 - 3 * xs[0]), xs) / 6
    assert H.degree3_coefficient(d) == Fraction(int(kappa))
    assert kappa == 18 * d + 540


@pytest.mark.parametrize("d, c_he3, c_norm, corr", TABLE_C)
def test_reference_table_constants(d, c_he3, c_norm, corr):
    assert H.normalising_constant(d) == pytest.approx(c_he3, rel=1e-9)
    assert H.normalising_constant(d, "He3/sqrt6") == pytest.approx(c_norm, rel=1e-9)
    assert H.feature_correlation(d) == pytest.approx(corr, abs=1e-10)


@pytest.mark.parametrize("d", sorted(TABLE_RHO))
def test_projection_constant_table(d):
    assert H.projection_constant(d) == pytest.approx(TABLE_RHO[d], abs=1e-10)
    assert H.projection_constant(d, "He3/sqrt6") == pytest.approx(math.sqrt(6) * TABLE_RHO[d], rel=1e-8)


def test_univariate_moments_and_expansions():
    assert H.univariate_moments(12) == (1, 0, 6, 0, 3348, 0, 11608920, 0, 108990418320, 0,
                                        2162378141290080, 0, 78113189685425590080)
    cube = [0, 0, 0, -27, 0, 27, 0, -9, 0, 1]
    assert H.hermite_expansion(cube) == {1: 324, 3: 558, 5: 216, 7: 27, 9: 1}
    square = [0, 0, 9, 0, -6, 0, 1]  # (z^3 - 3z)^2 = z^6 - 6z^4 + 9z^2
    assert H.hermite_expansion(square) == {0: 6, 2: 18, 4: 9, 6: 1}


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=400))
def test_closed_forms(d):
    m = H.p_moments(d, 6)
    assert m[2] == 6 * d and m[4] == 108 * d**2 + 3240 * d
    assert m[6] == 3240 * d**3 + 291600 * d**2 + 11314080 * d
    mn = H.p_moments(d, 6, "He3/sqrt6")
    assert mn[2] == d and mn[6] == 15 * d**3 + 1350 * d**2 + 52380 * d
    assert H.normalising_constant(d, "He3/sqrt6") == pytest.approx(
        6**1.5 * H.normalising_constant(d), rel=1e-13)
    E = H.degree_energies(d)
    assert sum(E.values()) == 1                                   # exact
    tot = m[6]
    closed = {1: 104976 * d, 3: 1944 * d * (d + 30) ** 2, 5: 34992 * d * (d + 159),
              7: 104976 * d * (d + 34), 9: 1296 * d * (d * d + 27 * d + 252)}
    # for d < 3 there are no triple terms and for d = 1 no pair terms: the closed forms of the
    # docs are the d >= 3 polynomials; compare there, and the total always
    if d >= 3:
        assert E == {k: Fraction(v, tot) for k, v in closed.items()}
    assert float(E[3]) == pytest.approx(H.feature_correlation(d) ** 2, rel=1e-13)
    assert H.feature_correlation(d) == pytest.approx(
        (3 + 90 / d) / math.sqrt(15 + 1350 / d + 52380 / d**2), rel=1e-13)
    assert H.projection_constant(d) == pytest.approx(H.normalising_constant(d) * (18 * d + 540), rel=1e-13)
    s3, s1 = H.stein_errors(d)
    assert s3 == pytest.approx(90 / d, rel=1e-13)
    assert s1 == pytest.approx(324 / (6**1.5 * d), rel=1e-13)


@pytest.mark.parametrize("row", TABLE_E)
def test_reference_energy_table(row):
    d, *shares, ceil, eh4 = row
    E = H.degree_energies(d, exact=False)
    assert [E[k] for k in (1, 3, 5, 7, 9)] == pytest.approx(shares, abs=6e-8)
    assert H.stage1_ceiling(d) == pytest.approx(ceil, abs=6e-8)
    assert H.target_fourth_moment(d) == pytest.approx(eh4, rel=1e-4)


def test_large_d_limits():
    d = 10**7
    assert H.feature_correlation(d) == pytest.approx(math.sqrt(3 / 5), abs=1e-5)
    E = H.degree_energies(d, exact=False)
    assert E[3] == pytest.approx(0.6, abs=1e-5) and E[9] == pytest.approx(0.4, abs=1e-5)
    assert H.target_fourth_moment(d) == pytest.approx(10395 / 225, rel=1e-4)
    dd = sympy.Symbol("d", positive=True)
    corr = (3 + 90 / dd) / sympy.sqrt(15 + 1350 / dd + 52380 / dd**2)
    assert sympy.limit(corr, dd, sympy.oo) == sympy.sqrt(sympy.Rational(3, 5))


def test_monte_carlo_second_moment_and_linear_leak():
    """E h^2 = 1 and E[h x_i] = 324 C_d λ_i (the degree-1 part), within Monte-Carlo error."""
    rng = np.random.default_rng(7)
    d, n = 40, 1 << 18
    lam = rng.choice([-1.0, 1.0], d)
    X = rng.standard_normal((n, d))
    p = (X * (X * X - 3)) @ lam
    h = H.normalising_constant(d) * p**3
    h2 = h * h
    se = math.sqrt((H.target_fourth_moment(d) - 1) / n)  # exact standard error
    assert abs(h2.mean() - 1) < 4.5 * se
    w = X @ lam / math.sqrt(d)  # unit-variance linear direction: E[h w] = 324 C_d √d
    hw = h * w
    target = 324 * H.normalising_constant(d) * math.sqrt(d)
    assert math.sqrt(float(H.degree_energies(d)[1])) == pytest.approx(target, rel=1e-12)
    assert abs(hw.mean() - target) < 4.5 * hw.std() / math.sqrt(n)


def test_stage1_heuristic_and_threshold():
    c = H.stage1_corr_heuristic(16, np.array([32768, 131072]))
    np.testing.assert_allclose(c, [0.945, 0.977], atol=6e-4)           # OLS heuristic at n = 8 d³, 32 d³
    assert math.isnan(H.stage1_corr_heuristic(16, math.comb(19, 3)))   # n <= D3: not covered
    assert H.threshold_n(16) / 16**3 == pytest.approx(3.70, abs=0.01)  # n* ≈ 3.7 d^3 at corr 0.9
    assert H.threshold_n(16, kappa=30) == 30 * 16**3
    assert H.threshold_n(16, corr=0.99) == math.inf                    # above the ceiling 0.9875
    # the heuristic inverts: corr at n* is the requested corr; n* ∝ d^3 in the sense of a bounded ratio
    for d in (16, 24, 40):
        n_star = H.threshold_n(d, corr=0.8)
        assert H.stage1_corr_heuristic(d, n_star) == pytest.approx(0.8, rel=1e-10)
        assert 0.5 < n_star / d**3 < 10


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=4, max_value=60), st.floats(min_value=1.1, max_value=1e4))
def test_heuristic_monotone_and_below_ceiling(d, ratio):
    n = ratio * math.comb(d + 3, 3)
    c1 = H.stage1_corr_heuristic(d, n)
    c2 = H.stage1_corr_heuristic(d, 2 * n)
    assert 0 < c1 < c2 < H.stage1_ceiling(d)


def test_error_floors():
    E = H.degree_energies(16, exact=False)
    assert H.error_floor(16, 0) == 1.0
    assert H.error_floor(16, 1) == pytest.approx(1 - E[1], abs=1e-15)
    assert H.error_floor(16, 3) == pytest.approx(0.749, abs=1e-3)       # kernel plateau 1 − E1 − E3
    assert H.error_floor(40, 3) == pytest.approx(0.658, abs=1e-3)
    assert H.error_floor(16, 9) == 0.0
    floors = [H.error_floor(24, ell) for ell in range(11)]
    assert all(a >= b for a, b in zip(floors, floors[1:]))
    # staircase: blocks of dimension N_0 = 1, N_1 = 16, N_2 = 136, N_3 = 816, ... filled in order
    n = np.array([0.0, 17.0, 17 + 136 + 408, 17 + 136 + 816, 1e12])
    k = H.kernel_error_heuristic(16, n)
    np.testing.assert_allclose(k, [1.0, 1 - E[1], 1 - E[1] - E[3] / 2, 1 - E[1] - E[3], 0.0], rtol=1e-12)
    assert np.all(np.diff(H.kernel_error_heuristic(16, np.geomspace(1, 1e12, 50))) <= 0)
    assert H.zero_predictor_se(16, 1 << 17) == pytest.approx(0.40, abs=0.01)  # √((E h⁴ − 1)/N), zero predictor


@pytest.mark.parametrize("call, name", [
    (lambda: H.normalising_constant(0), "d"),
    (lambda: H.normalising_constant(2.5), "d"),
    (lambda: H.normalising_constant(True), "d"),
    (lambda: H.normalising_constant(8, "h3"), "convention"),
    (lambda: H.feature_correlation(-1), "d"),
    (lambda: H.degree_energies(0), "d"),
    (lambda: H.stage1_corr_heuristic(16, -5), "n"),
    (lambda: H.stage1_corr_heuristic(16, float("nan")), "n"),
    (lambda: H.threshold_n(16, corr=1.5), "corr"),
    (lambda: H.threshold_n(16, kappa=-1), "kappa"),
    (lambda: H.error_floor(16, -1), "ell"),
    (lambda: H.zero_predictor_se(16, 0), "n_test"),
])
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_theory_does_not_import_simulations():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(H))
    mods = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
        [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(m and m.startswith("simulations") for m in mods)
