"""Mathematical facts about the ridge deterministic equivalent (asymptotics.ridge)."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymptotics import GaussianCovariateModel, NumericalWarning, marchenko_pastur_ridge

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def isotropic(p=200, noise=0.1):
    return GaussianCovariateModel.from_spectrum(np.ones(p), np.ones(p) / np.sqrt(p), 1 + noise**2)


def power_law(p=1000):
    i = np.arange(1, p + 1, dtype=float)
    s = np.sum(i**-0.5)
    return GaussianCovariateModel.from_spectrum(i**-1.5, i**-1.0 / np.sqrt(s), 1.01)


@st.composite
def spectra(draw, max_p=24):
    """A random spectrum with a random rank deficiency, b in its range, y2 ≥ bᵀΩ⁺b."""
    p = draw(st.integers(2, max_p))
    logs = draw(st.lists(st.floats(-4, 1), min_size=p, max_size=p))
    w = 10.0 ** np.array(logs)
    zeros = draw(st.integers(0, p - 1))
    w[:zeros] = 0.0
    bt = np.array(draw(st.lists(st.floats(-1, 1), min_size=p, max_size=p)))
    bt[:zeros] = 0.0
    explained = float(np.sum(bt[zeros:] ** 2 / w[zeros:]))
    resid = draw(st.floats(0.0, 2.0))
    return GaussianCovariateModel.from_spectrum(w, bt, explained + resid)


# ----------------------------------------------------------------- closed forms
@SETTINGS
@given(gamma=st.floats(0.05, 20), lam=st.floats(1e-8, 50), noise=st.floats(0, 1))
def test_isotropic_matches_marchenko_pastur(gamma, lam, noise):
    p = 50
    n = p / gamma
    model = GaussianCovariateModel.from_spectrum(np.ones(p), np.ones(p) / np.sqrt(p), 1 + noise**2)
    res = model.ridge(n, lam)
    kappa, err = marchenko_pastur_ridge(n, p, lam, noise**2)
    assert res.converged
    assert res.kappa == pytest.approx(kappa, rel=1e-10)
    assert res.test_error == pytest.approx(err, rel=1e-9)


@pytest.mark.parametrize("n", [100.0, 400.0])
def test_isotropic_ridgeless_closed_form(n):
    res = isotropic().ridge(n, 0.0)
    _, err = marchenko_pastur_ridge(n, 200, 0.0, 0.01)
    assert res.test_error == pytest.approx(err, rel=1e-12)


# Reference values (isotropic Ω = I_200, ‖b‖² = 1, σ² = 0.01; power law ω_i = i^-1.5, b_i ∝ i^-1,
# bᵀΩ⁻¹b = 1, E[y²] = 1.01, p = 1000), computed independently with brentq / mpmath from the
# equations of docs/theory/ridge.md.
REFERENCE_ISOTROPIC = [
    (100, 1e-3, 1.0019980060, 0.5199611732, 5.178896126e-7),
    (100, 0.1, 1.1844288770, 0.5233515933, 3.730573289e-3),
    (100, 1.0, 2.4142135624, 0.6156244584, 0.1056244584),
    (200, 1e-3, 0.03212672920, 0.1789825818, 1.734114394e-4),
    (200, 1.0, 1.6180339887, 0.4589217994, 0.1752925292),
    (400, 0.0, 0.0, 0.02, 0.005),
    (400, 0.1, 0.1741657387, 0.05021293350, 0.01655351177),
]
REFERENCE_POWER_LAW = [
    (100, 0.0, 2.739879414e-3, 1.132218248),
    (100, 1e-2, 0.01529470772, 0.9443645557),
    (500, 0.0, 1.180866258e-4, 0.5391624991),
    (500, 1e-4, 3.002686873e-4, 0.5464557487),
    (1000, 1e-4, 1.744009382e-4, 0.3541561073),
    (2000, 0.0, 0.0, 0.02),
    (2000, 1, 1.000944574, 0.9816786734),
]


@pytest.mark.parametrize("n,lam,kappa,egen,etrain", REFERENCE_ISOTROPIC)
def test_reference_isotropic_table(n, lam, kappa, egen, etrain):
    res = isotropic().ridge(n, lam)
    assert res.kappa == pytest.approx(kappa, rel=1e-9, abs=1e-15)
    assert res.test_error == pytest.approx(egen, rel=1e-9)
    assert res.train_error == pytest.approx(etrain, rel=1e-9)


@pytest.mark.parametrize("n,lam,kappa,egen", REFERENCE_POWER_LAW)
def test_reference_power_law_table(n, lam, kappa, egen):
    res = power_law().ridge(n, lam)
    assert res.kappa == pytest.approx(kappa, rel=1e-9, abs=1e-15)
    assert res.test_error == pytest.approx(egen, rel=1e-9)


# ------------------------------------------------------------- mpmath reference
@SETTINGS
@given(model=spectra(), n=st.floats(0.5, 60), lam=st.one_of(st.just(0.0), st.floats(1e-10, 1e2)))
def test_agrees_with_mpmath_reference(model, n, lam):
    if lam == 0 and abs(n - model.rank) < 1e-3:
        n += 0.5  # the singular point is tested separately
    fast = model.ridge(n, lam)
    ref = model.ridge_high_precision(n, lam, dps=40)
    assert fast.converged and ref.converged
    # Absolute floor: σ_res² = E[y²] − bᵀΩ⁺b is formed in double precision (error ~ eps·E[y²]),
    # and (E2) amplifies it by 1/(1 − df2/n).
    floor = 1e-14 * model.y2 / (1 - float(ref.df2) / n)
    for field, abs_tol in (("test_error", floor), ("train_error", floor), ("kappa", 0.0),
                           ("df1", 1e-14 * n), ("df2", 1e-14 * n)):
        x, y = float(getattr(fast, field)), float(getattr(ref, field))
        assert x == pytest.approx(y, rel=1e-10, abs=abs_tol), field


def test_grid_agrees_with_mpmath_next_to_the_peak():
    model = power_law(400)
    n = np.array([390.0, 399.0, 401.0, 410.0])[:, None]
    lam = np.array([0.0, 1e-10, 1e-6])[None, :]
    fast = model.ridge(n, lam)
    ref = model.ridge_high_precision(n, lam, dps=40)
    np.testing.assert_allclose(fast.test_error, ref.test_error, rtol=1e-10)
    np.testing.assert_allclose(fast.kappa, ref.kappa, rtol=1e-10, atol=1e-300)


# ------------------------------------------------------------------- structure
@SETTINGS
@given(model=spectra(), n=st.floats(0.5, 60), lam=st.floats(1e-8, 1e2))
def test_bounds_and_decomposition(model, n, lam):
    res = model.ridge(n, lam)
    assert res.kappa >= lam
    assert 0 <= res.df2 <= res.df1 * (1 + 1e-12)
    assert res.df1 <= min(model.rank, n) * (1 + 1e-12)
    # (E1) holds at the returned κ.
    # (tolerance: the rounding of κ·(1 − df1/n) itself, whose two terms nearly cancel for λ ≪ κ)
    assert res.kappa * (1 - res.df1 / n) == pytest.approx(lam, rel=1e-9, abs=1e-13 * res.kappa)
    assert res.test_error >= model.residual_variance * (1 - 1e-12)
    assert res.train_error <= res.test_error * (1 + 1e-12)
    total = model.residual_variance + res.bias + res.variance
    assert total == pytest.approx(res.test_error, rel=1e-10, abs=1e-15)


@SETTINGS
@given(model=spectra(), n=st.floats(0.5, 60), lam=st.floats(1e-4, 10))
def test_dkappa_dlambda_identity(model, n, lam):
    """dκ/dλ = 1/(1 − df2/n) (implicit differentiation of (E1))."""
    h = 1e-4 * lam
    k_plus, k_minus = model.ridge(n, [lam + h, lam - h]).kappa
    res = model.ridge(n, lam)
    # Truncation error O((h/λ)²); rounding floor of κ (a few 1e-14 relative when λ ≪ κ) over h.
    rounding = 5e-14 * float(res.kappa) / h
    assert (k_plus - k_minus) / (2 * h) == pytest.approx(1 / (1 - res.df2 / n), rel=1e-6, abs=rounding)


@SETTINGS
@given(model=spectra(), n=st.floats(0.5, 60))
def test_continuity_into_ridgeless_branch(model, n):
    if abs(n - model.rank) < 0.25:
        n += 0.5
    scale = float(model.eigenvalues.min())  # λ must be small against the smallest eigenvalue
    exact = model.ridge(n, 0.0)
    near = model.ridge(n, 1e-12 * scale)
    assert near.test_error == pytest.approx(exact.test_error, rel=1e-6, abs=1e-9 * model.y2)
    assert near.train_error == pytest.approx(exact.train_error, rel=1e-6, abs=1e-9 * model.y2)


def test_rotation_invariance():
    rng = np.random.default_rng(1)
    p = 40
    w = rng.uniform(0, 2, p) ** 3
    bt = rng.normal(size=p) * np.sqrt(w)
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    y2 = float(np.sum(bt**2 / w)) + 0.5
    rotated = GaussianCovariateModel(q @ np.diag(w) @ q.T, q @ bt, y2)
    diagonal = GaussianCovariateModel.from_spectrum(w, bt, y2)
    n = np.array([10.0, 39.0, 41.0, 100.0])[:, None]
    lam = np.array([0.0, 1e-3, 1.0])[None, :]
    a, b = rotated.ridge(n, lam), diagonal.ridge(n, lam)
    np.testing.assert_allclose(a.test_error, b.test_error, rtol=1e-9)
    np.testing.assert_allclose(a.train_error, b.train_error, rtol=1e-9, atol=1e-15)


def test_large_n_limits():
    model = power_law(300)
    w, bt = model.eigenvalues, model.b_eigen
    for lam in [1e-3, 0.1]:
        pop = model.y2 - np.sum(bt**2 * (w + 2 * lam) / (w + lam) ** 2)
        big = model.ridge(1e13, lam)
        assert big.test_error == pytest.approx(pop, rel=1e-9)
        assert big.kappa == pytest.approx(lam, rel=1e-9)
    assert model.ridge(1e13, 0.0).test_error == pytest.approx(model.residual_variance, rel=1e-9)


def test_small_n_and_large_lambda_limits():
    model = power_law(300)
    assert model.ridge(1e-9, 0.1).test_error == pytest.approx(model.y2, rel=1e-6)
    big = model.ridge(100.0, 1e12)
    assert big.test_error == pytest.approx(model.y2, rel=1e-9)
    assert big.train_error == pytest.approx(model.y2, rel=1e-9)


def test_ridgeless_branches():
    model = power_law(300)
    sres = model.residual_variance
    over = model.ridge(600.0, 0.0)
    assert over.kappa == 0 and over.test_error == pytest.approx(sres / (1 - 300 / 600), rel=1e-12)
    assert over.train_error == pytest.approx(sres * 0.5, rel=1e-12)
    under = model.ridge(150.0, 0.0)
    assert under.kappa > 0 and under.train_error == 0
    assert under.df1 == pytest.approx(150.0, rel=1e-12)


def test_singular_point_is_infinite_and_flagged():
    model = power_law(300)
    with pytest.warns(NumericalWarning, match="singular"):
        res = model.ridge([299.0, 300.0, 301.0], 0.0)
    assert np.isinf(res.test_error[1]) and not res.converged[1] and res.status[1] == 2
    assert np.all(np.isfinite(res.test_error[[0, 2]])) and res.converged[[0, 2]].all()
    assert res.test_error[0] > 100 * model.residual_variance  # the peak is visible next to it


def test_iteration_cap_is_flagged_never_nan():
    model = power_law(500)
    with pytest.warns(NumericalWarning, match="not converged"):
        res = model.ridge(np.geomspace(50, 5000, 40), 1e-9, max_iter=1, grid_size=2)
    assert not res.converged.all()
    assert np.all(np.isfinite(res.test_error))


def test_broadcasting_and_shapes():
    model = power_law(100)
    res = model.ridge(np.array([10.0, 50.0, 200.0])[:, None], np.array([0.0, 0.1]))
    assert res.test_error.shape == (3, 2) and res.converged.shape == (3, 2)
    single = model.ridge(50.0, 0.1)
    assert single.test_error.shape == ()
    assert single.test_error == pytest.approx(res.test_error[1, 1], rel=1e-13)


def test_grid_points_do_not_depend_on_the_rest_of_the_grid():
    model = power_law(500)
    ns = np.geomspace(20, 5000, 30)
    whole = model.ridge(ns[:, None], np.array([0.0, 1e-6, 1e-2])[None, :]).test_error
    alone = np.array([[float(model.ridge(n, lam).test_error) for lam in (0.0, 1e-6, 1e-2)] for n in ns])
    np.testing.assert_allclose(whole, alone, rtol=1e-12)


def test_from_teacher_moments():
    rng = np.random.default_rng(2)
    p, k = 30, 20
    a = rng.normal(size=(p + k, p + k))
    joint = a @ a.T / (p + k)
    omega, phi, psi = joint[:p, :p], joint[:p, p:], joint[p:, p:]
    theta = rng.normal(size=k)
    model = GaussianCovariateModel.from_teacher(omega, phi, psi, theta, noise=0.3)
    assert model.y2 == pytest.approx(theta @ psi @ theta / k + 0.09, rel=1e-12)
    direct = GaussianCovariateModel(omega, phi @ theta / np.sqrt(k), model.y2)
    assert model.ridge(40.0, 0.01).test_error == pytest.approx(direct.ridge(40.0, 0.01).test_error, rel=1e-12)
    # Schur complement: the residual variance is the teacher's unexplained part plus noise.
    schur = psi - phi.T @ np.linalg.solve(omega, phi)
    assert model.residual_variance == pytest.approx(theta @ schur @ theta / k + 0.09, rel=1e-8)


# --------------------------------------------------------------- optimal lambda
@pytest.mark.parametrize("n", [100.0, 200.0, 400.0])
def test_optimal_lambda_isotropic_bayes(n):
    opt = isotropic().optimal_lambda(n)
    assert opt.lam == pytest.approx(0.01 * 200 / n, rel=1e-4)  # λ_opt = σ² p / (n ‖β‖²)
    others = isotropic().ridge(n, [1e-3, 0.5 * opt.lam, 2 * opt.lam]).test_error
    assert opt.test_error <= others.min()
    if n != 200:
        assert opt.test_error <= isotropic().ridge(n, 0.0).test_error


def test_optimal_curve_is_monotone_and_below_fixed_lambda():
    model = power_law(300)
    ns = np.geomspace(30, 3000, 15)
    opt = model.optimal_lambda(ns)
    assert np.all(np.diff(opt.test_error) < 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        fixed = model.ridge(ns[:, None], np.array([0.0, 1e-4, 1e-2, 1.0])).test_error
    assert np.all(opt.test_error[:, None] <= fixed * (1 + 1e-9))


def test_noiseless_hard_target_prefers_ridgeless_when_overparametrised():
    p = 100
    w = np.ones(p)
    model = GaussianCovariateModel.from_spectrum(w, np.ones(p) / 10, 1.0)  # σ_res = 0
    opt = model.optimal_lambda(400.0)
    assert opt.lam == 0.0 and opt.test_error == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(omega=np.array([[1.0, 0.5], [0.0, 1.0]]), b=np.zeros(2), y2=1.0), "omega"),
        (dict(omega=np.diag([1.0, -0.5]), b=np.zeros(2), y2=1.0), "positive semi-definite"),
        (dict(omega=np.eye(2), b=np.zeros(3), y2=1.0), "b must have shape"),
        (dict(omega=np.eye(2), b=np.array([np.nan, 0.0]), y2=1.0), "b contains NaN"),
        (dict(omega=np.ones((2, 3)), b=np.zeros(2), y2=1.0), "omega must be a square"),
        (dict(omega=np.eye(2), b=np.ones(2), y2=1.0), "y2"),
        (dict(omega=np.eye(2), b=np.ones(2), y2=np.inf), "y2 contains NaN or inf"),
        (dict(omega=np.diag([1.0, 0.0]), b=np.array([0.1, 0.5]), y2=5.0), "range of Ω"),
    ],
)
def test_bad_model_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianCovariateModel(**kwargs)


@pytest.mark.parametrize(
    "n,lam,match",
    [(0.0, 0.1, "n must be > 0"), (-5, 0.1, "n must be > 0"), (10, -1e-3, "lam must be >= 0"),
     (10, np.nan, "lam contains NaN"), ([1, 2, 3], [0.1, 0.2], "do not broadcast")],
)
def test_bad_grid_inputs(n, lam, match):
    with pytest.raises(ValueError, match=match):
        isotropic(10).ridge(n, lam)


def test_bad_teacher_inputs():
    with pytest.raises(ValueError, match="noise"):
        GaussianCovariateModel.from_teacher(np.eye(2), np.eye(2), np.eye(2), np.ones(2), noise=-1)
    with pytest.raises(ValueError, match="psi must have shape"):
        GaussianCovariateModel.from_teacher(np.eye(2), np.eye(2), np.eye(3), np.ones(2), noise=0)
