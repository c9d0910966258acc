"""Edge cases of the ridge deterministic equivalent: never silently wrong (issue 16, item 7),
and the ridgeless bias/variance decomposition (item 9).

Every point of ``GaussianCovariateModel.ridge`` is either finite with status 0 or flagged
(status ≠ 0 with a NumericalWarning); a point's value does not depend on the grid around it;
``ridge_high_precision`` (mpmath, working precision adapted to the point) is the reference.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asymptotics import GaussianCovariateModel, NumericalWarning, marchenko_pastur_ridge

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("test_error", "train_error", "kappa", "df1", "df2", "bias", "variance")


def power_law(p, alpha, beta, noise2):
    i = np.arange(1, p + 1, dtype=float)
    s = np.sum(i ** (alpha - 2 * beta))
    return GaussianCovariateModel.from_spectrum(i**-alpha, i**-beta / np.sqrt(s), 1.0 + noise2)


@st.composite
def wide_spectra(draw, max_p=12, lo=-300, hi=300):
    """Spectra with eigenvalues anywhere in 10^lo … 10^hi (rank-deficient allowed), b in the
    range, E[y²] ≥ bᵀΩ⁺b; rank_tol = 0 so that no eigenvalue is dropped."""
    p = draw(st.integers(1, max_p))
    logs = np.array(draw(st.lists(st.floats(lo, hi), min_size=p, max_size=p)))
    w = 10.0**logs
    zeros = draw(st.integers(0, p))
    w[:zeros] = 0.0
    coef = np.array(draw(st.lists(st.floats(-1, 1), min_size=p, max_size=p)))
    bt = coef * np.sqrt(w)  # b̃_i² / ω_i = coef_i² ≤ 1
    explained = float(np.sum(coef[zeros:] ** 2))
    resid = draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0)))
    return GaussianCovariateModel.from_spectrum(w, bt, explained + resid, rank_tol=0.0)


def positive_floats(lo, hi):
    return st.floats(lo, hi).map(lambda e: 10.0**e)


def assert_close(fast, ref, rel):
    for f in FIELDS:
        x, y = float(getattr(fast, f)), float(getattr(ref, f))
        if math.isinf(y):
            assert x == y, f
        else:
            assert x == pytest.approx(y, rel=rel, abs=1e-300), f


# ------------------------------------------------------ status ok with NaN (reported)
def test_huge_lambda_is_finite_and_the_null_predictor():
    model = power_law(200, 1.5, 1.0, 0.01)
    res = model.ridge(10.0, 1.7e308)
    assert res.status == 0 and all(np.isfinite(getattr(res, f)) for f in FIELDS)
    # λ → ∞: κ → λ, E_gen = E_train → E[y²].
    assert res.test_error == pytest.approx(model.y2, rel=1e-15)
    assert res.train_error == pytest.approx(model.y2, rel=1e-15)
    assert res.kappa == pytest.approx(1.7e308, rel=1e-15)


def test_subnormal_n_is_the_null_predictor_and_flags_the_overflowing_kappa():
    model = power_law(200, 1.5, 1.0, 0.01)
    with pytest.warns(NumericalWarning, match="out of range"):
        res = model.ridge(1e-320, 0.1)
    assert res.status == 3 and not res.converged
    assert res.kappa == np.inf  # κ ≈ TrΩ/n ≈ 10³²⁰
    assert res.test_error == pytest.approx(model.y2, rel=1e-15)  # n → 0: E_gen → E[y²]
    assert res.train_error == pytest.approx((0.1 * 1e-320 / model.trace) ** 2 * model.y2, rel=1e-6, abs=0)
    ref = model.ridge_high_precision(1e-320, 0.1, dps=30)
    assert float(ref.test_error) == pytest.approx(float(res.test_error), rel=1e-14)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(rank_tol=-1.0), ValueError, "rank_tol"),
    (dict(rank_tol=float("nan")), ValueError, "rank_tol"),
    (dict(psd_tol=-1e-3), ValueError, "psd_tol"),
    (dict(psd_tol=float("inf")), ValueError, "psd_tol"),
    (dict(psd_tol="1e-9"), TypeError, "psd_tol"),
])
def test_bad_tolerances(kwargs, exc, match):
    omega = np.diag([2.0, 1.0, 0.0])
    with pytest.raises(exc, match=match):
        GaussianCovariateModel(omega, np.array([0.5, 0.1, 0.0]), 1.0, **kwargs)
    with pytest.raises(exc, match=match):
        GaussianCovariateModel.from_spectrum([2.0, 1.0, 0.0], [0.5, 0.1, 0.0], 1.0, **kwargs)


def test_complex_inputs_are_refused():
    omega = np.eye(2) + 1e-3j * np.array([[0, 1], [-1, 0]])
    with pytest.raises(TypeError, match="omega"):
        GaussianCovariateModel(omega, np.zeros(2), 1.0)
    with pytest.raises(TypeError, match="b"):
        GaussianCovariateModel(np.eye(2), np.array([0.1 + 1j, 0.0]), 1.0)
    with pytest.raises(TypeError, match="eigenvalues"):
        GaussianCovariateModel.from_spectrum(np.array([1.0 + 0j, 2.0]), np.zeros(2), 1.0)
    model = GaussianCovariateModel(np.eye(2), np.zeros(2), 1.0)
    with pytest.raises(TypeError, match="lam"):
        model.ridge(3.0, 0.1 + 0.1j)


@pytest.mark.parametrize("args,match", [
    ((100, 50, 0.1, float("nan")), "noise_variance"),
    ((100, 50, 0.1, -0.01), "noise_variance"),
    ((float("nan"), 50, 0.1, 0.01), "n contains NaN"),
    ((100, float("nan"), 0.1, 0.01), "p contains NaN"),
    ((100, 50, float("inf"), 0.01), "lam contains NaN"),
])
def test_marchenko_pastur_refuses_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        marchenko_pastur_ridge(*args)
    with pytest.raises(ValueError, match="signal"):
        marchenko_pastur_ridge(100, 50, 0.1, 0.01, signal=-1.0)


# ----------------------------------------------------------- grid independence
def test_reported_grid_dependence():
    """E[y²] = 2, σ_res² = 1.25: at λ = 10³⁰⁰ the test error is E[y²] (λ → ∞ limit), in a grid
    and alone (it was 1.0 — below the noise floor — in the grid, 2.0 alone)."""
    m = GaussianCovariateModel.from_spectrum([1.0], [math.sqrt(0.75)], 2.0)
    assert m.residual_variance == 1.25
    grid = m.ridge([[1.0], [1e9]], [[1.0, 1e300]])
    alone = m.ridge(1e9, 1e300)
    assert grid.test_error[1, 1] == pytest.approx(2.0, rel=1e-15)
    assert alone.test_error == pytest.approx(2.0, rel=1e-15)
    assert np.all(grid.test_error >= m.residual_variance)


@SETTINGS
@given(model=wide_spectra(lo=-20, hi=20), data=st.data())
def test_a_point_in_a_grid_equals_it_alone(model, data):
    ns = data.draw(st.lists(positive_floats(-3, 4), min_size=2, max_size=6))
    lams = data.draw(st.lists(st.one_of(st.just(0.0), positive_floats(-40, 30)), min_size=2, max_size=6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        grid = model.ridge(np.array(ns)[:, None], np.array(lams)[None, :])
        for i, n in enumerate(ns):
            for j, lam in enumerate(lams):
                alone = model.ridge(n, lam)
                assert alone.status == grid.status[i, j]
                for f in FIELDS:
                    x, y = float(getattr(grid, f)[i, j]), float(getattr(alone, f))
                    assert x == pytest.approx(y, rel=1e-12, abs=1e-300) or (math.isinf(x) and x == y), f


# ----------------------------------------------------- mpmath reference, extremes
@SETTINGS
@given(model=wide_spectra(max_p=8, lo=-12, hi=4), ratio=positive_floats(-300, -40))
@example(model=power_law(50, 1.5, 1.0, 0.01), ratio=1e-45)
@example(model=power_law(50, 4.0, 2.5, 0.0), ratio=1e-200)
def test_kappa_at_the_interpolation_threshold_with_tiny_lambda(model, ratio):
    """n = rank Ω, λ/ω_min < 10⁻⁴⁰: κ ≈ √(λ n / Σ 1/ω), against mpmath."""
    if model.rank == 0:
        return
    n, lam = float(model.rank), ratio * float(model.eigenvalues[0])
    fast = model.ridge(n, lam)
    ref = model.ridge_high_precision(n, lam, dps=30)
    assert fast.status == 0 and ref.status == 0
    assert float(fast.kappa) == pytest.approx(float(ref.kappa), rel=1e-12)
    # Test error amplifies the double-precision σ_res² (error eps·E[y²]) by 1/(1 − df2/n).
    floor = 1e-14 * model.y2 / max(1 - float(ref.df2) / n, 1e-300)
    assert float(fast.test_error) == pytest.approx(float(ref.test_error), rel=1e-11, abs=floor)


def test_high_precision_with_subnormal_eigenvalues():
    model = GaussianCovariateModel.from_spectrum([5e-324, 1e-320, 1.0], [1e-162, 1e-160, 0.5], 2.0, rank_tol=0.0)
    assert model.rank == 3
    for n, lam in [(2.0, 0.0), (1.5, 0.0), (1.0, 1e-300), (1.0, 0.0), (2.5, 1e-320), (3.0, 1e-310), (4.0, 1e-321)]:
        fast = model.ridge(n, lam)
        ref = model.ridge_high_precision(n, lam, dps=30)
        assert fast.status == 0 and ref.status == 0
        assert_close(fast, ref, rel=1e-12)


# --------------------------------------------------------------- fuzz: never silent
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=wide_spectra(), data=st.data())
def test_fuzz_every_point_is_finite_ok_or_flagged(model, data):
    ns = data.draw(st.lists(st.one_of(positive_floats(-320, 300), st.integers(1, 14).map(float)),
                            min_size=1, max_size=5))
    lams = data.draw(st.lists(st.one_of(st.just(0.0), positive_floats(-320, 308), st.just(1.7e308)),
                              min_size=1, max_size=5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.ridge(np.array(ns)[:, None], np.array(lams)[None, :])
    ok = res.status == 0
    for f in FIELDS:
        assert np.all(np.isfinite(getattr(res, f)[ok])), f
        assert not np.any(np.isnan(getattr(res, f))), f  # flagged points carry ±inf, never NaN
    assert np.array_equal(res.converged, ok)
    flagged = int(np.count_nonzero(~ok))
    warned = [w for w in caught if issubclass(w.category, NumericalWarning)]
    assert (len(warned) == 1) == (flagged > 0)
    if flagged:
        assert f"{flagged} of {ok.size} ridge points flagged" in str(warned[0].message)
    # Structure holds at every ok point: E_gen ≥ σ_res², E_train ≤ E_gen, bias + variance + σ_res² = E_gen.
    te, tr = res.test_error[ok], res.train_error[ok]
    assert np.all(te >= model.residual_variance * (1 - 1e-12))
    assert np.all(tr <= te * (1 + 1e-12))
    total = model.residual_variance + res.bias[ok] + res.variance[ok]
    np.testing.assert_allclose(total, te, rtol=1e-10, atol=1e-300)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=wide_spectra(max_p=6), n=st.one_of(positive_floats(-320, 300), st.integers(1, 7).map(float)),
       lam=st.one_of(st.just(0.0), positive_floats(-320, 308)))
def test_fuzz_against_mpmath(model, n, lam):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        fast = model.ridge(n, lam)
    if fast.status == 1 or (lam == 0 and n == model.rank):
        return  # the peak itself (σ_res² = 0 or > 0 decided in double precision) is tested apart
    ref = model.ridge_high_precision(n, lam, dps=30)
    floor = 1e-14 * model.y2 / max(1 - float(ref.df2) / n, 1e-300) if fast.status == 0 else 0.0
    for f in ("test_error", "train_error", "kappa"):
        x, y = float(getattr(fast, f)), float(getattr(ref, f))
        if math.isinf(y) or math.isinf(x):
            assert x == y, f
        else:
            assert x == pytest.approx(y, rel=1e-10, abs=max(floor if f != "kappa" else 0.0, 1e-300)), f


# --------------------------------------------------------------- optimal lambda
def test_optimal_lambda_below_the_old_scan_floor():
    """Power law p = n = 1000, α = 4, β = 2.5, σ = 0.1: the optimum is at λ ≈ 1.8e-13, below the
    former fixed floor 10⁻¹²·ω_max (which returned an error of 0.0864)."""
    model = power_law(1000, 4.0, 2.5, 0.01)
    opt = model.optimal_lambda(1000.0)
    lams = np.geomspace(1e-30, 1e3, 4000)
    brute = model.ridge(1000.0, lams).test_error
    assert opt.test_error <= brute.min() * (1 + 1e-9)
    assert opt.test_error < 0.0728
    assert 1e-14 < opt.lam < 1e-12
    assert opt.test_error == pytest.approx(float(model.ridge(1000.0, opt.lam).test_error), rel=1e-15)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=wide_spectra(max_p=10, lo=-15, hi=3), n=st.one_of(positive_floats(-1, 2), st.integers(1, 12).map(float)))
def test_optimal_lambda_beats_a_dense_brute_force_scan(model, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        opt = model.optimal_lambda(n)
        lams = np.concatenate([[0.0], np.geomspace(1e-40, 1e10, 3001)])
        brute = model.ridge(n, lams).test_error
        assert opt.lam >= 0
        assert opt.test_error == pytest.approx(float(model.ridge(n, opt.lam).test_error), rel=1e-15)
    assert opt.test_error <= np.nanmin(brute) * (1 + 1e-9) + 1e-300


def test_optimal_lambda_ridgeless_limit_is_a_candidate():
    # Noiseless, n = rank: the λ → 0⁺ limit is 0 (bias and variance both vanish).
    model = GaussianCovariateModel.from_spectrum(np.ones(20), np.full(20, 0.25), 1.25)
    assert model.residual_variance == 0.0
    res = model.ridge(20.0, 0.0)
    assert res.status == 0 and res.test_error == 0.0
    opt = model.optimal_lambda(20.0)
    assert opt.lam == 0.0 and opt.test_error == 0.0


# ------------------------------------------------- ridgeless bias/variance (item 9)
@pytest.mark.parametrize("n", [1.5, 7.0, 13.0, 1e6])
def test_ridgeless_variance_and_decomposition_overparametrised_data(n):
    """λ = 0, n > r: κ = 0, bias 0, variance σ_res²·r/(n − r), and
    bias + variance + σ_res² = E_gen = σ_res² n/(n − r)."""
    w = np.array([0.0, 0.0, 1e-3, 0.2, 1.0, 3.0])  # r = 4 < p = 6 ... and r = 1 below
    bt = np.array([0.0, 0.0, 0.01, 0.1, -0.3, 0.5])
    for omega, b in ((w, bt), (np.array([0.0, 2.0]), np.array([0.0, 0.7]))):
        model = GaussianCovariateModel.from_spectrum(omega, b, float(np.sum(b[omega > 0] ** 2 / omega[omega > 0])) + 0.3)
        r, s2 = model.rank, model.residual_variance
        assert s2 == pytest.approx(0.3, rel=1e-12)
        if n <= r:
            continue
        res = model.ridge(n, 0.0)
        assert res.status == 0 and res.kappa == 0.0 and res.bias == 0.0
        assert res.variance == pytest.approx(s2 * r / (n - r), rel=1e-14)
        assert res.bias + res.variance + s2 == pytest.approx(res.test_error, rel=1e-14)
        assert res.test_error == pytest.approx(s2 * n / (n - r), rel=1e-14)
        assert res.train_error == pytest.approx(s2 * (n - r) / n, rel=1e-14)
        # Continuous into λ → 0⁺ (the general solver).
        near = model.ridge(n, 1e-14 * float(model.eigenvalues[0]))
        assert near.variance == pytest.approx(res.variance, rel=1e-8)
        assert near.bias == pytest.approx(0.0, abs=1e-8 * s2)


@pytest.mark.parametrize("n", [0.5, 1.0, 2.5])
def test_ridgeless_decomposition_underparametrised_data_matches_mpmath(n):
    model = power_law(4, 1.0, 1.0, 0.2)
    res = model.ridge(n, 0.0)
    ref = model.ridge_high_precision(n, 0.0, dps=40)
    assert res.status == 0 and res.kappa > 0 and res.train_error == 0
    assert res.bias + res.variance + model.residual_variance == pytest.approx(res.test_error, rel=1e-13)
    assert res.bias == pytest.approx(float(ref.bias), rel=1e-12)
    assert res.variance == pytest.approx(float(ref.variance), rel=1e-12)


@pytest.mark.parametrize("lam", [0.0, 1e-8, 1.0])
@pytest.mark.parametrize("n", [0.5, 3.0, 1e4])
def test_rank_zero_spectrum(lam, n):
    """Ω = 0: nothing is learnt; E_gen = E_train = σ_res² = E[y²], bias = variance = 0."""
    model = GaussianCovariateModel(np.zeros((3, 3)), np.zeros(3), 0.7)
    assert model.rank == 0 and model.residual_variance == 0.7
    res = model.ridge(n, lam)
    assert res.status == 0
    assert res.test_error == 0.7 and res.train_error == 0.7
    assert res.bias == 0.0 and res.variance == 0.0
    assert res.bias + res.variance + model.residual_variance == res.test_error
    ref = model.ridge_high_precision(n, lam, dps=20)
    assert float(ref.test_error) == 0.7 and float(ref.variance) == 0.0
