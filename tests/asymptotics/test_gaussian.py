"""Facts about Gaussian expectations, κ and Hermite coefficients (asymptotics.gaussian).

References are closed forms, exact sympy integrals, and mpmath adaptive quadrature at 30 digits
(``*_mp``); the table of κ0, κ1, E2, κ*², κ* at r = 1 is the one of docs/theory/deep_features.md
(checked against mpmath).
"""
import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymptotics import functions as F
from asymptotics import gaussian as G
from asymptotics.functions import z

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VARIANCES = st.floats(0.01, 100.0)

# activation: κ0, κ1, E2, κ*², κ* at r = 1 (13 significant digits; docs/theory/deep_features.md)
TABLE = {
    "tanh": (0, 0.6057055096022, 0.3942944903978, 0.02741532603543, 0.1655757410837),
    "relu": (0.3989422804014, 0.5, 0.5, 0.09084505690810, 0.3014051374945),
    "erf": (0, 0.6514700158706, 0.4645590543975, 0.04014587281915, 0.2003643501703),
    "erf_scaled": (0, 0.5641895835478, 0.3333333333333, 0.01502344714954, 0.1225701723485),
    "sign": (0, 0.7978845608029, 1, 0.3633802276324, 0.6028102749891),
    "linear": (0, 1, 1, 0, 0),
    "cube": (0, 3, 15, 6, 2.449489742783),
    "he2": (0, 0, 2, 2, 1.414213562373),
    "sigmoid": (0.5, 0.2066209641419, 0.2933790358581, 0.0006868130351617, 0.02620711802472),
}


def close(a, b, rel=1e-12, abs_=1e-15):
    return abs(a - b) <= rel * abs(b) + abs_


@pytest.mark.parametrize("name", sorted(TABLE))
def test_kappa_table_at_unit_variance(name):
    k0, k1, e2, ks2, ks = TABLE[name]
    m = G.moments(name, 1.0)
    got = G.kappas(name, 1.0)
    assert close(got[0], k0) and close(m.mean, k0)
    assert close(got[1], k1) and close(m.slope, k1)
    assert close(m.second, e2)
    assert close(got[2], ks) and close(got[2] ** 2, ks2)


@SETTINGS
@given(r=VARIANCES)
def test_tanh_second_moment_is_one_minus_kappa1(r):
    # tanh' = 1 - tanh², so E tanh² = 1 - E tanh' = 1 - κ1
    k0, k1, ks = G.kappas("tanh", r)
    m = G.moments("tanh", r)
    assert k0 == 0.0
    assert abs(m.second - (1 - k1)) <= 1e-12
    assert abs(ks**2 - (m.second - r * k1**2)) <= 1e-12 * m.second


@SETTINGS
@given(r=VARIANCES)
def test_sigmoid_and_softplus_identities(r):
    # sigmoid - 1/2 is odd; sigmoid' = s(1 - s) so E s² = E s - E s' = 1/2 - κ1; softplus' = sigmoid
    k0, k1, _ = G.kappas("sigmoid", r)
    assert k0 == 0.5
    assert abs(G.moments("sigmoid", r).second - (0.5 - k1)) <= 1e-12
    assert abs(G.kappas("softplus", r)[1] - 0.5) <= 1e-12


@pytest.mark.parametrize("name", ["relu", "erf", "erf_scaled", "sign"])
@pytest.mark.parametrize("r", [0.1, 1.0, 10.0])
def test_closed_forms_match_mpmath(name, r):
    exact = G.kappas(name, r, method="exact")
    ref = [float(x) for x in G.kappas_mp(name, r)]
    for got, want in zip(exact, ref):
        assert close(got, want), (got, want)
    quad = G.kappas(name, r, method="quadrature")  # the numerical path reaches them too
    for got, want in zip(quad, ref):
        assert close(got, want), (got, want)


@pytest.mark.parametrize("r", [0.1, 1.0, 10.0])
def test_closed_form_formulas(r):
    assert G.kappas("relu", r) == pytest.approx(
        (math.sqrt(r / (2 * math.pi)), 0.5, math.sqrt(r * (0.25 - 1 / (2 * math.pi)))), rel=1e-15)
    assert G.kappas("sign", r)[1] == pytest.approx(math.sqrt(2 / (math.pi * r)), rel=1e-15)
    assert G.moments("erf_scaled", r).second == pytest.approx(2 / math.pi * math.asin(r / (1 + r)),
                                                            rel=1e-15)
    # polynomials: z³: κ1 = 3r, κ*² = 6r³; He3: κ1 = 3r - 3, κ*² = 6r³; He2: κ0 = r - 1, κ*² = 2r²
    assert G.kappas("cube", r) == pytest.approx((0, 3 * r, math.sqrt(6 * r**3)), rel=1e-15)
    assert G.kappas("he3", r) == pytest.approx((0, 3 * r - 3, math.sqrt(6 * r**3)), rel=1e-15,
                                               abs=1e-15)
    assert G.kappas("he2", r) == pytest.approx((r - 1, 0, math.sqrt(2) * r), rel=1e-15, abs=1e-15)


def test_kinked_user_function_by_quadrature():
    # |z| has no registered closed form: the panel rule split at 0 is exact to rounding
    F.register("test_abs", "Abs(z)", replace=True)
    for r in (0.05, 1.0, 30.0):
        k0, k1, ks = G.kappas("test_abs", r)
        assert close(k0, math.sqrt(2 * r / math.pi)) and abs(k1) <= 1e-15
        assert close(ks**2, r * (1 - 2 / math.pi))
    # a kink away from 0, and at a variance where all the mass lies beyond it
    F.register("test_shifted_relu", "Max(0, z - 1)", replace=True)
    for r in (0.02, 0.5):
        ref = [float(x) for x in G.kappas_mp("test_shifted_relu", r)]
        for got, want in zip(G.kappas("test_shifted_relu", r), ref):
            assert close(got, want, abs_=0.0)


def test_fast_growing_function_is_never_silently_wrong():
    F.register("test_exp", "exp(z)", replace=True)
    for r in (0.5, 9.0, 40.0):  # E e^N = e^{r/2}, E[N e^N]/r = e^{r/2}, E e^{2N} = e^{2r}
        m = G.moments("test_exp", r)
        assert close(m.mean, math.exp(r / 2)) and close(m.slope, math.exp(r / 2))
        assert close(m.second, math.exp(2 * r))


def test_user_expression_in_one_call():
    act = F.register("test_mix", "tanh(2*z) + z**2/3 - erf(z)/5", replace=True)
    got = G.kappas(act, 1.7)
    ref = [float(x) for x in G.kappas_mp(act, 1.7)]
    for g, w in zip(got, ref):
        assert close(g, w)
    # scaled closed-form families c·g(a z) are recognised from the expression
    for expr in ("erf(2*z)/3", "-2*Max(0, -z/2)", "3*sign(-z/5)"):
        user = F.register("test_scaled", expr, replace=True)
        exact = G.kappas(user, 0.7, method="exact")
        ref = [float(x) for x in G.kappas_mp(user, 0.7)]
        for g, w in zip(exact, ref):
            assert close(g, w), expr


def test_cache_is_keyed_by_name_and_expression():
    # regression: a cache keyed by a function's __name__ mixes up different functions
    a = F.register("test_cache_key", "tanh(z)", replace=True)
    before = G.kappas(a, 2.0)
    b = F.register("test_cache_key", "tanh(z/2)", replace=True)
    after = G.kappas("test_cache_key", 2.0)
    assert after[1] == pytest.approx(0.5 * G.kappas("tanh", 0.5)[1], rel=1e-12)
    assert before != after and G.kappas(a, 2.0) == before and G.kappas(b, 2.0) == after


# ----------------------------------------------------------------- Hermite coefficients
@pytest.mark.parametrize("name, r", [("tanh", 2.5), ("relu", 0.3), ("erf", 1.0), ("sign", 4.0),
                                     ("sigmoid", 0.7)])
def test_hermite_coefficients_match_mpmath(name, r):
    order = 6
    c = G.hermite_coefficients(name, order, r)
    ref = np.array([float(x) for x in G.hermite_coefficients_mp(name, order, r, dps=20)])
    # normalised by the Cauchy–Schwarz bound |c_k| √(k!) r^{k/2} ≤ ‖f‖
    scale = np.array([math.sqrt(math.factorial(k)) * r ** (k / 2) for k in range(order + 1)])
    norm = math.sqrt(G.moments(name, r).second)
    assert np.max(np.abs(c - ref) * scale) <= 1e-12 * norm
    quad = G.hermite_coefficients(name, order, r, method="quadrature")
    assert np.max(np.abs(quad - ref) * scale) <= 1e-12 * norm


@pytest.mark.parametrize("name", ["tanh", "relu", "erf", "sign", "sigmoid", "softplus", "he4"])
@pytest.mark.parametrize("r", [0.3, 2.0])
def test_first_hermite_coefficients_are_kappa0_and_kappa1(name, r):
    c = G.hermite_coefficients(name, 3, r)
    k0, k1, ks = G.kappas(name, r)
    assert c[0] == pytest.approx(k0, rel=1e-12, abs=1e-15)
    assert c[1] == pytest.approx(k1, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("k", range(0, 7))
def test_hermite_polynomials_are_their_own_expansion(k):
    c = G.hermite_coefficients(F.hermite(k), 8, 1.0)
    np.testing.assert_array_equal(c, np.eye(9)[k])


@SETTINGS
@given(r=st.sampled_from([sympy.Rational(1, 3), sympy.S.One, sympy.Rational(5, 2), sympy.Integer(7)]),
       coeffs=st.lists(st.integers(-3, 3), min_size=1, max_size=6))
def test_parseval_is_exact_for_polynomials(r, coeffs):
    expr = sum(c * z**j for j, c in enumerate(coeffs))
    act = F.register("test_parseval_poly", expr, replace=True)
    degree = len(coeffs) - 1
    c = G.hermite_coefficients(act, degree + 2, float(r))
    assert np.all(c[degree + 1:] == 0)
    parseval = sum(math.factorial(k) * float(r) ** k * c[k] ** 2 for k in range(degree + 1))
    # E f(N)² exactly: E N^{2j} = (2j - 1)!! r^j
    poly = sympy.Poly(sympy.expand(expr**2), z)
    exact = sum(coef * sympy.factorial2(p - 1) * r ** (p // 2)
                for (p,), coef in poly.terms() if p % 2 == 0)
    assert parseval == pytest.approx(float(exact), rel=1e-13, abs=1e-300)
    assert G.moments(act, float(r)).second == pytest.approx(float(exact), rel=1e-13, abs=1e-300)


def test_parseval_converges_for_tanh():
    r, second = 1.0, G.moments("tanh", 1.0).second
    c = G.hermite_coefficients("tanh", 40, r)
    terms = np.array([math.factorial(k) * r**k * c[k] ** 2 for k in range(41)])
    assert np.all(c[0::2] == 0)  # odd function
    residual = second - np.cumsum(terms)
    assert np.all(np.diff(residual[1::2]) <= 1e-15)  # decreasing to 0
    assert 0 <= residual[-1] < 1e-6


# ----------------------------------------------------------------- API behaviour
def test_vectorised_over_variances():
    r = np.array([[0.01, 0.5], [3.0, 100.0]])
    for name in ("tanh", "relu", "he3", "softplus"):
        k = G.kappas(name, r)
        assert all(np.shape(x) == r.shape for x in k)
        for idx in np.ndindex(r.shape):
            scalar = G.kappas(name, float(r[idx]))
            assert [x[idx] for x in k] == pytest.approx(scalar, rel=1e-15, abs=1e-300)
    c = G.hermite_coefficients("tanh", 4, r)
    assert c.shape == (2, 2, 5)
    assert isinstance(G.expectation("tanh", 1.0), float)


def test_expectation_and_mpmath_method():
    assert G.expectation("relu", 4.0) == pytest.approx(math.sqrt(4 / (2 * math.pi)), rel=1e-15)
    assert G.expectation("he4", 2.0) == pytest.approx(3 * 4 - 6 * 2 + 3, rel=1e-15)
    for name in ("tanh", "softplus"):
        fast, slow = G.kappas(name, 0.8), G.kappas(name, 0.8, method="mpmath")
        assert fast == pytest.approx(slow, rel=1e-12, abs=1e-15)
    with mpmath.workdps(30):
        std = mpmath.sqrt(2)  # N(0, 2)
        ref = mpmath.quad(lambda x: mpmath.log(1 + mpmath.exp(x)) * mpmath.npdf(x, 0, std),
                          [-mpmath.inf, 0, mpmath.inf])
        assert abs(G.expectation_mp("softplus", 2) - ref) < mpmath.mpf(10) ** -28


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), [1.0, -2.0]])
def test_bad_variance(bad):
    with pytest.raises(ValueError, match="variance"):
        G.kappas("tanh", bad)
    with pytest.raises(ValueError, match="variance"):
        G.hermite_coefficients("relu", 3, bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        G.kappas("nope", 1.0)
    with pytest.raises(ValueError, match="method"):
        G.kappas("tanh", 1.0, method="simpson")
    with pytest.raises(ValueError, match="no closed form.*tanh"):
        G.kappas("tanh", 1.0, method="exact")
    with pytest.raises(ValueError, match="order"):
        G.hermite_coefficients("tanh", -1)
    with pytest.raises(ValueError, match="variance"):
        G.kappas_mp("tanh", -1.0)
    with pytest.raises(TypeError, match="variance"):
        G.kappas("tanh", "large")
