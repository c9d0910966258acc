"""Facts about the giant-step theory (asymptotics.giant_step): Hermite analysis of multi-index
targets, plateau errors, the leap-1 staircase and the one-step cosine.

References: exact sympy values, the plateau table and the reference values of
docs/theory/giant_step.md (T1-T3 as defined there), closed forms (erf), Monte Carlo least
squares, and a small one-step simulation.
"""
import itertools
import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import gaussian as G
from asymptotics.giant_step import MultiIndexTarget, activation_constants, one_step_cosine
from asymptotics.testing import multi_index_targets

R = sympy.Rational
S_STAR = "he1({h}) + he2({h})/2 + he4({h})/24"          # s* of T1
T1 = "(" + S_STAR.format(h="h1") + " + " + S_STAR.format(h="h2") + ")/2"
T2 = "((h1 + h1**2) + (h2 - h2**2))/2"
T3 = "((4*h1 + h1**2) + h2)/2"
V_STAR = sympy.Matrix([[1, 1]]) / sympy.sqrt(2)          # v* of T1, T2 (C1 ∝ (1, 1))
V_STAR_T3 = sympy.Matrix([[4, 1]]) / sympy.sqrt(17)      # C1 = (2, 1/2)


@pytest.fixture(scope="module")
def targets():
    return {name: MultiIndexTarget(e) for name, e in (("T1", T1), ("T2", T2), ("T3", T3))}


# --------------------------------------------------------------------------------------------
# Parsing and input validation
# --------------------------------------------------------------------------------------------
def test_parsing_forms_agree():
    a = MultiIndexTarget("relu(h1) + hermite_prob(3, h2)")
    h1, h2 = sympy.symbols("h1 h2", real=True)
    b = MultiIndexTarget(sympy.Max(0, h1) + h2**3 - 3 * h2)
    assert a.k == b.k == 2
    assert sympy.simplify(a.expr - b.expr) == 0
    assert MultiIndexTarget("h2", k=4).k == 4
    assert MultiIndexTarget(MultiIndexTarget("h1*h3")).k == 3


@pytest.mark.parametrize("bad, word", [
    ("h1 + x", "expr"),            # unknown symbol
    ("h1 +", "expr"),              # unparsable
    ("foo(h1)", "expr"),           # unknown function
    ("h0 + h1", "expr"),           # indices start at 1
    ("3", "expr"),                 # no variable and no k
    (object(), "expr"),
])
def test_bad_expressions_raise_naming_the_argument(bad, word):
    with pytest.raises(ValueError, match=word):
        MultiIndexTarget(bad)


def test_k_smaller_than_largest_index_raises():
    with pytest.raises(ValueError, match="k must"):
        MultiIndexTarget("h1*h3", k=2)


@pytest.mark.parametrize("U", [np.ones((1, 3)) / math.sqrt(3), np.eye(3), [[1.0, 1.0]],
                               [[np.nan, 0.0]], "abc", np.eye(2)[:, :1]])
def test_bad_subspace_raises_naming_U(targets, U):
    with pytest.raises(ValueError, match="U"):
        targets["T2"].plateau_error(U)


def test_bad_staircase_arguments(targets):
    with pytest.raises(ValueError, match="steps"):
        targets["T2"].staircase(-1)
    with pytest.raises(ValueError, match="tol"):
        targets["T2"].staircase(1, tol=0.0)
    with pytest.raises(ValueError, match="alpha"):
        targets["T2"].hermite_coefficient((1,))


# --------------------------------------------------------------------------------------------
# Hermite coefficients and moments (reference quadratures to 1e-10)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("f, mu, second", [
    (S_STAR.format(h="h1"), [0, 1, 1, 0, 1], R(37, 24)),     # 1.5416666667
    ("h1 + h1**2", [1, 1, 2, 0, 0], 4),
    ("h1 - h1**2", [-1, 1, -2, 0, 0], 4),
    ("4*h1 + h1**2", [1, 4, 2, 0, 0], 19),
])
def test_univariate_hermite_table_exact(f, mu, second):
    t = MultiIndexTarget(f)
    assert [t.hermite_coefficient((j,), exact=True) for j in range(5)] == mu
    assert t.second_moment(exact=True) == second
    # Parseval: E f² = Σ μ_j² / j!
    assert sum(R(m**2, math.factorial(j)) for j, m in enumerate(mu)) == second


@pytest.mark.parametrize("name, mu1, mu3, second", [
    ("tanh", 0.6057055096, -0.3635953763, 0.3942944904),
    ("erf", 0.6514700159, -0.4343133439, 0.4645590544),
    ("sin", 0.6065306597, -0.6065306597, 0.4323323584),
])
def test_univariate_hermite_table_quadrature(name, mu1, mu3, second):
    t = MultiIndexTarget(f"{name}(h1)")
    assert t.hermite_coefficient((1,)) == pytest.approx(mu1, abs=1e-9)
    assert t.hermite_coefficient((3,)) == pytest.approx(mu3, abs=1e-9)
    assert t.second_moment() == pytest.approx(second, abs=1e-9)
    assert t.hermite_coefficient((2,)) == pytest.approx(0.0, abs=1e-12)   # odd function


def test_first_order_of_erf_is_kappa1():
    c1 = MultiIndexTarget("erf(h1)").first_order()
    _, k1, _ = G.kappas("erf", 1.0)
    assert c1.shape == (1,)
    assert c1[0] == pytest.approx(k1, rel=1e-12)
    assert c1[0] == pytest.approx(2 / math.sqrt(3 * math.pi), rel=1e-12)


def test_target_level_constants_exact(targets):
    t1, t2, t3 = targets["T1"], targets["T2"], targets["T3"]
    assert t1.first_order(exact=True) == [R(1, 2), R(1, 2)]
    assert t1.second_moment(exact=True) == R(37, 48)
    assert t2.first_order(exact=True) == [R(1, 2), R(1, 2)]
    assert t2.second_moment(exact=True) == R(3, 2)
    assert t3.first_order(exact=True) == [2, R(1, 2)]
    assert t3.mean(exact=True) == R(1, 2)
    assert t3.variance(exact=True) == R(19, 4)
    # T2 = u/√2 + u·ū: C2 = E[y(hhᵀ − I)] = diag(1, −1) (u·ū = (h1² − h2²)/2)
    np.testing.assert_allclose(t2.second_order(), [[1.0, 0.0], [0.0, -1.0]], atol=1e-14)
    # multi-index Hermite coefficient of a product: E[h1 h2 He_(1,1)] = 1
    assert MultiIndexTarget("h1*h2").hermite_coefficient((1, 1), exact=True) == 1


# --------------------------------------------------------------------------------------------
# Plateaus (docs/theory/giant_step.md, plateau table)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, var, linear, vstar, v_star", [
    ("T1", R(37, 48), R(13, 48), R(55, 384), V_STAR),
    ("T2", R(3, 2), 1, 1, V_STAR),
    ("T3", R(19, 4), R(1, 2), R(33, 578), V_STAR_T3),
])
def test_plateau_table_exact(targets, name, var, linear, vstar, v_star):
    t = targets[name]
    assert t.variance(exact=True) == var
    assert t.plateau_error(exact=True) == linear
    assert t.plateau_error(v_star, exact=True) == vstar
    assert t.plateau_error(sympy.eye(2), exact=True) == 0
    # the same numbers from float subspaces
    assert t.plateau_error(np.array(v_star.evalf(), dtype=float)) == pytest.approx(
        float(vstar), abs=1e-12)
    assert t.plateau_error(np.eye(2)) == pytest.approx(0.0, abs=1e-12)
    assert t.plateau_error(np.zeros((0, 2))) == t.plateau_error()


@pytest.mark.parametrize("name, var, linear", [
    ("tanh", 0.3942944904, 0.0274153260), ("erf", 0.4645590544, 0.0401458728)])
def test_plateau_table_single_index(name, var, linear):
    t = MultiIndexTarget(f"{name}(h1)")
    assert t.variance() == pytest.approx(var, abs=1e-9)
    assert t.plateau_error() == pytest.approx(linear, abs=1e-9)
    assert t.plateau_error([[1.0]]) == pytest.approx(0.0, abs=1e-12)
    # linear-only plateau of an odd single index = κ*² of the activation
    _, _, kstar = G.kappas(name, 1.0)
    assert t.plateau_error() == pytest.approx(kstar**2, rel=1e-9)


@pytest.mark.parametrize("name, U, expected", [
    # T3 = (4h1 + h1²)/2 + h2/2 with U = span(h1): E[y | h1] = (4h1 + h1²)/2 and the rest, h2/2,
    # is linear: 19/4 − 9/2 − ‖(0, 1/2)‖² = 0 although C1 = (2, 1/2) is not in U
    ("T3", [[1, 0]], 0),
    # T3, U = span(h2): E[y|h2] = (1 + h2)/2; residual h1²/2 − 1/2 has variance 1/2
    ("T3", [[0, 1]], R(1, 2)),
    # T2 = (h1 + h1² + h2 − h2²)/2, U = span(h1): 3/2 − 3/4 − 1/4 = −(h2²−1)/2 has variance 1/2
    ("T2", [[1, 0]], R(1, 2)),
    # T1 = (s*(h1) + s*(h2))/2, U = span(h1): the He2, He4 parts of h2 remain: (1/2 + 1/24)/4
    ("T1", [[1, 0]], R(13, 96)),
    ("T1", [[0, 1]], R(13, 96)),
])
def test_plateau_when_c1_is_not_in_the_learned_subspace(targets, name, U, expected):
    """e(U) = Var y − Var E[y|Uh] − ‖(I − UᵀU) C1‖², each value derived by hand from the
    Hermite expansion (the residual y − E[y|s] − C1ᵀP^⊥h is what no readout of the class
    represents). The plateau table only has subspaces that contain C1 (v*, W*), where the
    projection term vanishes."""
    t = targets[name]
    assert t.plateau_error(sympy.Matrix(U), exact=True) == expected
    assert t.plateau_error(np.array(U, dtype=float)) == pytest.approx(float(expected), abs=1e-12)


def test_plateau_of_the_empty_subspace_is_the_linear_level_not_var_y(targets):
    """U = {} (r = 0): the readout still has its linear part, so e = Var y − ‖C1‖², not Var y."""
    for name, linear in (("T1", R(13, 48)), ("T2", 1), ("T3", R(1, 2))):
        t = targets[name]
        assert t.plateau_error(np.zeros((0, 2))) == pytest.approx(float(linear), abs=1e-12)
        assert t.plateau_error(sympy.zeros(0, 2), exact=True) == linear
    assert MultiIndexTarget("he2(h1)").plateau_error() == pytest.approx(2.0, abs=1e-12)


def _hermite_plateau(t, S):
    """e(span{e_i : i in S}) from the Hermite expansion y = Σ_α c_α He_α/α!: the energy
    c_α²/α! of the multi-indices α with |α| >= 2 that involve a coordinate outside S."""
    deg = max(sympy.Poly(t.expr, *t.symbols).total_degree(), 0) if t.expr != 0 else 0
    total = sympy.S.Zero
    for alpha in itertools.product(range(deg + 1), repeat=t.k):
        if 2 <= sum(alpha) <= deg and any(a for i, a in enumerate(alpha) if i not in S):
            c = t.hermite_coefficient(alpha, exact=True)
            total += c**2 / sympy.Mul(*[sympy.factorial(a) for a in alpha])
    return total


@settings(max_examples=25, deadline=None)
@given(t=multi_index_targets(max_k=3, max_degree=3, max_terms=3, named=False), data=st.data())
def test_plateau_of_coordinate_subspaces_is_the_hermite_energy_left(t, data):
    """For polynomial targets and U spanned by coordinate axes, e(U) is the Hermite energy of the
    terms of degree >= 2 that involve an unlearned coordinate (exact rationals)."""
    S = sorted(data.draw(st.sets(st.integers(0, t.k - 1)), label="S"))
    U = sympy.Matrix([[int(i == j) for j in range(t.k)] for i in S]) if S else sympy.zeros(0, t.k)
    assert t.plateau_error(U, exact=True) == _hermite_plateau(t, set(S))
    assert t.plateau_error(np.array(U.tolist(), dtype=float).reshape(len(S), t.k)) == pytest.approx(
        float(_hermite_plateau(t, set(S))), abs=1e-9 * max(1.0, t.second_moment()))


def test_plateau_monotone_in_subspace_and_rotation_invariant(targets):
    t = targets["T1"]
    assert t.plateau_error() >= t.plateau_error(np.array([[1.0, 1.0]]) / math.sqrt(2)) >= 0
    # T2 rotated by 45°: u/√2 + u ū with u, ū the coordinates themselves
    rot = MultiIndexTarget("h1/sqrt(2) + h1*h2")
    assert rot.plateau_error([[1.0, 0.0]]) == pytest.approx(1.0, abs=1e-12)
    assert rot.variance() == pytest.approx(targets["T2"].variance(), abs=1e-14)


def test_plateau_matches_least_squares_monte_carlo(targets):
    """T1, U = span(v*): the best predictor in {f(u) + linear} is a polynomial of degree 4 in u
    plus a linear term in ū; its least-squares residual converges to 55/384."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((400_000, 2))
    y = targets["T1"].numpy(h)
    u, ub = (h[:, 0] + h[:, 1]) / math.sqrt(2), (h[:, 0] - h[:, 1]) / math.sqrt(2)
    X = np.column_stack([u**j for j in range(5)] + [ub])
    res = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.mean(res**2) == pytest.approx(55 / 384, abs=4e-3)


def test_non_separable_quadrature_fallback():
    """erf((h1+h2)/√2) is a single-index target along v*: moments equal those of erf."""
    t = MultiIndexTarget("erf((h1 + h2)/sqrt(2))")
    _, k1, kstar = G.kappas("erf", 1.0)
    assert t.second_moment() == pytest.approx(0.4645590543975, rel=1e-10)
    np.testing.assert_allclose(t.first_order(), [k1 / math.sqrt(2)] * 2, rtol=1e-10)
    assert t.plateau_error() == pytest.approx(kstar**2, rel=1e-8)
    v = np.array([[1.0, 1.0]]) / math.sqrt(2)
    assert t.plateau_error(v) == pytest.approx(0.0, abs=1e-10)
    assert t.conditional_variance(v) == pytest.approx(t.variance(), rel=1e-10)
    # the learned subspace is v* and nothing else
    (b1, b2) = t.staircase(2)
    np.testing.assert_allclose(np.abs(b2), np.abs(v), atol=1e-8)


def test_non_smooth_rotated_target_warns_instead_of_failing_silently():
    """relu((h1+h2)/√2): the kink is not along a coordinate, Gauss-Hermite converges slowly; the
    value is still close and a RuntimeWarning reports the achieved agreement."""
    t = MultiIndexTarget("relu((h1 + h2)/sqrt(2))")
    with pytest.warns(RuntimeWarning, match="agrees only"):
        var = t.variance()
    assert var == pytest.approx(0.5 - 1 / (2 * math.pi), abs=1e-3)


# --------------------------------------------------------------------------------------------
# Leap-1 staircase (docs/theory/giant_step.md)
# --------------------------------------------------------------------------------------------
def test_staircase_one_new_direction_per_step():
    bases = MultiIndexTarget("h1 + h1*h2 + h1*h2*h3").staircase(4)
    assert [b.shape[0] for b in bases] == [1, 2, 3, 3]
    np.testing.assert_allclose(bases[2], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(bases[0], [[1.0, 0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(bases[1], np.eye(3)[:2], atol=1e-12)


@pytest.mark.parametrize("expr", ["h1*h2", "he2(h1)", "he2(h1) + he3(h2)", "relu(h1) - 1/sqrt(2*pi)"
                                  " - h1/2 + h1**2*h2**2"])
def test_no_first_order_part_learns_nothing_at_step_1(expr):
    t = MultiIndexTarget(expr)
    np.testing.assert_allclose(t.first_order(), 0.0, atol=1e-12)
    first, second = t.staircase(2)
    assert first.shape == (0, t.k) and second.shape == (0, t.k)   # nothing to couple to either


def test_staircase_worked_examples(targets):
    v = np.array([1.0, 1.0]) / math.sqrt(2)
    # T1: symmetric under h1 <-> h2, no linear coupling to ū: stuck on v* (leap 2)
    for b in targets["T1"].staircase(3):
        np.testing.assert_allclose(b, [v], atol=1e-12)
    # T2 = u/√2 + u ū: v* at step 1, ū at step 2
    b1, b2, b3 = targets["T2"].staircase(3)
    np.testing.assert_allclose(b1, [v], atol=1e-12)
    assert b2.shape == (2, 2) and b3.shape == (2, 2)
    np.testing.assert_allclose(b2 @ b2.T, np.eye(2), atol=1e-12)
    # T3: weak coupling (4/17) u ū, relative strength (4/17)²/E y² = 0.0111: learned under the
    # strict rule, "stuck on v*" if couplings below 2% of E y² are ignored
    assert [b.shape[0] for b in targets["T3"].staircase(2)] == [1, 2]
    assert [b.shape[0] for b in targets["T3"].staircase(2, tol=0.02)] == [1, 1]
    M = targets["T3"].coupling_matrix(np.array([[4.0, 1.0]]) / math.sqrt(17))
    assert np.trace(M) == pytest.approx((4 / 17) ** 2, rel=1e-12)


def test_coupling_matrix_at_step_0_is_c1_outer(targets):
    t = targets["T3"]
    c1 = t.first_order()
    np.testing.assert_allclose(t.coupling_matrix(), np.outer(c1, c1), atol=1e-13)


# --------------------------------------------------------------------------------------------
# One-step cosine (docs/theory/giant_step.md; predicted values of the reference table)
# --------------------------------------------------------------------------------------------
def test_activation_constants_relu():
    c = activation_constants("relu")
    assert c["mu1"] == pytest.approx(0.5, abs=1e-14)
    assert c["mu2"] == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-12)
    assert c["E_dsigma2"] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("target, alpha, eta, predicted", [
    (T1, 1, 1, 0.2877), (T1, 1, 5, 0.4766), (T1, 4, 1, 0.3199), (T1, 4, 5, 0.6916),
    ("tanh(h1)", 1, 5, 0.5281), ("tanh(h1)", 4, 5, 0.7118)])
def test_one_step_cosine_reference_table(target, alpha, eta, predicted):
    assert one_step_cosine("relu", target, alpha, eta) == pytest.approx(predicted, abs=6e-5)


def test_one_step_cosine_gradient_row_limit():
    """η̃ → ∞ gives the gradient-row cosine; T1, T2 as in the paper's formula; T3 (E y = 1/2)
    includes the μ2 E[y] w-term: 0.5431 (reference simulation at d = 2048: 0.542; the formula
    without the term: 0.5461)."""
    for target, value in ((T1, 0.4949), (T2, 0.3780), (T3, 0.5431)):
        assert one_step_cosine("relu", target, 1.0, 1e9) == pytest.approx(value, abs=6e-5)


def test_one_step_cosine_limits_and_monotonicity():
    alphas = np.array([0.0, 1e-6, 0.1, 0.5, 1, 2, 8, 64, 1e6, np.inf])
    for act, target in (("relu", T1), ("tanh", "tanh(h1)"), ("erf", T2)):
        cos = one_step_cosine(act, target, alphas, 3.0)
        assert cos.shape == alphas.shape
        assert cos[0] == 0.0 and cos[1] < 1e-2
        assert np.all(np.diff(cos) > 0)
        assert np.all((cos >= 0) & (cos < 1))
        # α = ∞: η̃|μ1|‖C1‖ / √(1 + η̃²μ1²‖C1‖²) for a centred target
        t = MultiIndexTarget(target)
        s = 3.0 * abs(activation_constants(act)["mu1"]) * np.linalg.norm(t.first_order())
        assert cos[-1] == pytest.approx(s / math.sqrt(1 + s * s), rel=1e-12)
        etas = np.array([0.0, 0.5, 1, 4, 16, 1e3])
        ce = one_step_cosine(act, target, 2.0, etas)
        assert ce[0] == 0.0 and np.all(np.diff(ce) > 0)
    # both limits jointly -> 1
    assert one_step_cosine("relu", T1, 1e12, 1e6) == pytest.approx(1.0, abs=1e-6)
    # nothing to learn without a first-order part
    assert one_step_cosine("relu", "h1*h2", 4.0, 5.0) == 0.0


def test_one_step_cosine_bad_inputs():
    with pytest.raises(ValueError, match="alpha"):
        one_step_cosine("relu", T1, -1.0, 1.0)
    with pytest.raises(ValueError, match="eta_tilde"):
        one_step_cosine("relu", T1, 1.0, -1.0)
    with pytest.raises(ValueError, match="expr"):
        one_step_cosine("relu", "h1 + q", 1.0, 1.0)
    with pytest.raises(ValueError, match="activation"):
        one_step_cosine("no_such_activation", T1, 1.0, 1.0)
    with pytest.raises(ValueError, match="a_init"):
        one_step_cosine("relu", T1, 1.0, 1.0, a_init="gauss")


def test_one_step_cosine_matches_small_simulation():
    """One full-batch step (Algorithm 1) at d = 2000, p = 200, n = 2d, a = ±1/√p, η = 4p, ReLU,
    target T1; the mean row cosine with span(W*) vs the prediction with the random initial
    overlap √(k/d) added in quadrature (as in the reference table). Seed-to-seed std ≈ 0.002 here
    (≈ 0.02 at d = 800: the shared noise of Zᵀy/n in span(W*) is O(1/√n))."""
    rng = np.random.default_rng(1)
    d, p, alpha, eta_t = 2000, 200, 2.0, 4.0
    n = int(alpha * d)
    Wstar = np.linalg.qr(rng.standard_normal((d, 2)))[0].T
    W = rng.standard_normal((p, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    a = rng.choice([-1.0, 1.0], p) / math.sqrt(p)
    Z = rng.standard_normal((n, d))
    y = MultiIndexTarget(T1).numpy(Z @ Wstar.T)
    H = Z @ W.T
    r = y - np.maximum(H, 0) @ a / math.sqrt(p)
    R = (r[:, None] * a[None, :] / math.sqrt(p)) * (H > 0)
    W = W + eta_t * p * (R.T @ Z) / n
    cos = np.linalg.norm(W @ Wstar.T, axis=1) / np.linalg.norm(W, axis=1)
    pred = one_step_cosine("relu", T1, alpha, eta_t)
    assert np.mean(cos) == pytest.approx(math.sqrt(pred**2 + 2 / d), abs=0.015)
