"""Tests of simulations.ridge: ridge paths, exact test error, learning curves."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics.testing import spectra
from simulations.data import sample_gaussian_features
from simulations.ridge import (
    LearningCurve,
    learning_curve,
    population_test_error,
    ridge_path,
)
from simulations.rng import child_rng, make_rng

EPS = np.finfo(np.float64).eps
METHODS = ["svd", "gram"]


def _problem(n, p, seed, rank=None):
    rng = make_rng(seed)
    if rank is None:
        F = rng.standard_normal((n, p))
    else:
        F = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p))
    y = rng.standard_normal(n)
    return F, y


def _cond(F):
    s = np.linalg.svd(F, compute_uv=False)
    return s[0] / s[-1]


# --------------------------------------------------------------------------- ridge_path
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    p=st.integers(1, 12),
    seed=st.integers(0, 2**31),
    lam=st.floats(1e-3, 10.0),
    method=st.sampled_from(METHODS),
)
def test_ridge_path_solves_normal_equations(n, p, seed, lam, method):
    F, y = _problem(n, p, seed)
    path = ridge_path(F, y, [lam, 2 * lam], method=method)
    for j, l in enumerate([lam, 2 * lam]):
        A = F.T @ F / n + l * np.eye(p)
        ref = np.linalg.solve(A, F.T @ y / n)
        tol = 10 * (A.shape[0] + 10) * EPS * np.linalg.cond(A) * max(np.linalg.norm(ref), 1e-300)
        assert np.linalg.norm(path.theta[:, j] - ref) <= tol
        resid = np.mean((y - F @ path.theta[:, j]) ** 2)
        assert path.train_error[j] == pytest.approx(resid, rel=1e-9, abs=1e-13 * np.mean(y**2))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    p=st.integers(1, 12),
    seed=st.integers(0, 2**31),
    method=st.sampled_from(METHODS),
)
def test_ridgeless_is_min_norm_least_squares(n, p, seed, method):
    F, y = _problem(n, p, seed)
    path = ridge_path(F, y, [0.0], method=method)
    ref = np.linalg.pinv(F) @ y
    ref_lstsq = np.linalg.lstsq(F, y, rcond=None)[0]
    c = _cond(F)
    # backward-stable solvers: error ≲ (p + n)·eps·cond² relative (with a margin of 10)
    tol = 10 * (n + p + 10) * EPS * c**2 * np.linalg.norm(ref)
    assert np.linalg.norm(path.theta[:, 0] - ref) <= tol
    assert np.linalg.norm(path.theta[:, 0] - ref_lstsq) <= tol
    assert path.rank == min(n, p)
    resid = np.mean((y - F @ path.theta[:, 0]) ** 2)
    assert path.train_error[0] == pytest.approx(resid, rel=1e-8, abs=1e2 * EPS * c**2 * np.mean(y**2))
    if n <= p:  # full row rank: interpolation
        assert resid <= 1e2 * EPS * c**2 * np.mean(y**2)
        assert path.train_error[0] <= 1e2 * EPS * c**2 * np.mean(y**2)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n, p, r", [(20, 8, 3), (8, 20, 3), (15, 15, 10), (30, 10, 10)])
def test_ridgeless_rank_deficient(method, n, p, r):
    """Rank-deficient F: lam = 0 gives the pseudo-inverse, orthogonal to null(F)."""
    F, y = _problem(n, p, 11, rank=r)
    path = ridge_path(F, y, [0.0], method=method)
    assert path.rank == r
    ref = np.linalg.pinv(F) @ y
    np.testing.assert_allclose(path.theta[:, 0], ref, rtol=1e-8, atol=1e-8 * np.linalg.norm(ref))
    _, s, Vt = np.linalg.svd(F)
    null = Vt[r:]
    assert np.linalg.norm(null @ path.theta[:, 0]) <= 1e-10 * np.linalg.norm(ref)
    resid = np.mean((y - F @ ref) ** 2)
    assert path.train_error[0] == pytest.approx(resid, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n, p", [(10, 30), (30, 10), (12, 12)])
def test_ridgeless_is_the_small_lambda_limit(method, n, p):
    """theta(lam) = theta(0) + O(lam / s_min^2) for full-rank F."""
    F, y = _problem(n, p, 5)
    s_min2 = np.linalg.svd(F / np.sqrt(n), compute_uv=False)[-1] ** 2
    path = ridge_path(F, y, [0.0, 1e-8 * s_min2, 1e-4 * s_min2], method=method)
    norm0 = np.linalg.norm(path.theta[:, 0])
    d1 = np.linalg.norm(path.theta[:, 1] - path.theta[:, 0])
    d2 = np.linalg.norm(path.theta[:, 2] - path.theta[:, 0])
    assert d1 <= 1e-6 * norm0
    assert 1e-7 * norm0 <= d2 <= 1e-3 * norm0  # it does move, linearly in lam


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 15),
    p=st.integers(2, 15),
    seed=st.integers(0, 2**31),
    method=st.sampled_from(METHODS),
)
def test_train_error_and_norm_monotone_in_lambda(n, p, seed, method):
    F, y = _problem(n, p, seed)
    lams = np.concatenate([[0.0], np.logspace(-6, 4, 25)])
    path = ridge_path(F, y, lams, method=method)
    scale = np.mean(y**2)
    assert np.all(np.diff(path.train_error) >= -1e-12 * scale)
    norms = np.linalg.norm(path.theta, axis=0)
    assert np.all(np.diff(norms) <= 1e-9 * norms[:-1] + 1e-300)
    # lam -> infinity: theta -> 0 and the training error -> mean(y^2)
    assert path.train_error[-1] == pytest.approx(scale, rel=1e-2)
    assert np.all(path.train_error <= scale * (1 + 1e-12))


def test_ridgeless_interpolates_at_the_peak_with_ill_conditioned_spectrum():
    """n = p with a power-law spectrum: the SVD path still interpolates and matches lstsq."""
    n = p = 200
    w = np.arange(1, p + 1) ** -2.0
    F, y = sample_gaussian_features(w, np.zeros(p), 1.0, n, child_rng(3, n))
    path = ridge_path(F, y, [0.0])
    theta = path.theta[:, 0]
    assert path.rank == p
    assert np.linalg.norm(F @ theta - y) <= 1e-9 * np.linalg.norm(y)
    ref = np.linalg.lstsq(F, y, rcond=None)[0]
    assert np.linalg.norm(theta - ref) <= 1e-9 * np.linalg.norm(ref)


def test_float32_features_give_the_float64_solution():
    F, y = _problem(30, 12, 4)
    F32, y32 = F.astype(np.float32), y.astype(np.float32)
    a = ridge_path(F32, y32, [0.0, 0.1])
    b = ridge_path(F32.astype(np.float64), y32.astype(np.float64), [0.0, 0.1])
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.theta.dtype == np.float64


# --------------------------------------------------------------------------- test error
def _model(p, seed):
    rng = make_rng(seed)
    w = rng.uniform(0.2, 2.0, p)
    b = rng.uniform(-1, 1, p) * np.sqrt(w) / np.sqrt(p)
    y2 = float(np.sum(b**2 / w)) + 0.3
    return w, b, y2


@settings(max_examples=40, deadline=None)
@given(w=spectra(max_size=10, max_condition=1e6), seed=st.integers(0, 2**31), L=st.integers(1, 4))
def test_population_test_error_is_the_quadratic_form(w, seed, L):
    """Any spectrum, rank-deficient and all-zero included (b vanishes on the null space)."""
    p = w.shape[0]
    rng = make_rng(seed)
    b = np.sqrt(w) * rng.uniform(-1, 1, p)
    pos = w > 0
    explained = float(np.sum(b[pos] ** 2 / w[pos]))
    y2 = explained + 0.3
    theta = make_rng(seed + 1).standard_normal((p, L))
    direct = y2 - 2 * b @ theta + np.einsum("il,i,il->l", theta, w, theta)
    got = population_test_error(theta, w, b, y2)
    assert got.shape == (L,)
    scale = y2 + np.sum(w[:, None] * theta**2, axis=0)
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-13 * scale.max())
    assert np.all(got >= y2 - explained - 1e-13 * scale)  # >= sigma_res^2
    one = population_test_error(theta[:, 0], w, b, y2)
    assert np.ndim(one) == 0 and one == pytest.approx(got[0], rel=1e-15)
    # the best predictor beta = Omega^+ b attains sigma_res^2 (on the null space theta is free)
    beta = np.where(pos, b / np.where(pos, w, 1.0), 0.0)
    assert population_test_error(beta, w, b, y2) == pytest.approx(0.3, rel=1e-12)


def test_population_test_error_matches_monte_carlo():
    p = 6
    w, b, y2 = _model(p, 5)
    theta = np.column_stack([b / w, np.zeros(p), make_rng(6).standard_normal(p) * 0.5])
    exact = population_test_error(theta, w, b, y2)
    np.testing.assert_allclose(exact[1], y2, rtol=1e-14)  # null predictor
    np.testing.assert_allclose(exact[0], y2 - np.sum(b**2 / w), rtol=1e-12)  # best predictor
    F, y = sample_gaussian_features(w, b, y2, 400_000, child_rng(9, 0))
    e = (y[:, None] - F @ theta) ** 2
    mc = e.mean(axis=0)
    se = e.std(axis=0, ddof=1) / np.sqrt(e.shape[0])
    assert np.all(np.abs(mc - exact) <= 5 * se), (mc, exact, se)


# --------------------------------------------------------------------------- learning curves
def test_learning_curve_ridgeless_matches_inverse_wishart_identities():
    """Exact finite-n facts for Gaussian features and linear labels + noise.

    n > p + 1: E_gen = s2 (1 + p/(n-p-1)) for any full-rank spectrum, E_train = s2 (n-p)/n.
    n < p - 1, isotropic Omega: E_gen = s2 + |beta|^2 (1 - n/p) + s2 n/(p-n-1), E_train = 0.
    """
    S = 400
    # overparametrised side needs the isotropic spectrum; the other works for any spectrum
    p = 10
    w = np.linspace(0.3, 3.0, p)
    b = 0.4 * np.sqrt(w)
    s2 = 0.5
    y2 = float(np.sum(b**2 / w)) + s2
    n = 40
    lc = learning_curve(w, b, y2, [n], [0.0], S, seed=21)
    _check_mean(lc.test_error[0, 0], s2 * (1 + p / (n - p - 1)))
    _check_mean(lc.train_error[0, 0], s2 * (n - p) / n)

    p = 40
    w = np.ones(p)
    b = np.full(p, 0.15)
    y2 = float(np.sum(b**2)) + s2
    n = 10
    lc = learning_curve(w, b, y2, [n], [0.0], S, seed=22)
    _check_mean(lc.test_error[0, 0], s2 + np.sum(b**2) * (1 - n / p) + s2 * n / (p - n - 1))
    assert np.all(lc.train_error <= 1e-20)


def _check_mean(x, expected, n_sigma=5.0):
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.mean() - expected) <= n_sigma * se, (x.mean(), expected, se)


def test_learning_curve_shapes_and_summaries():
    w, b, y2 = _model(8, 1)
    lc = learning_curve(w, b, y2, [4, 8, 16], [0.0, 0.1, 1.0], [3, 7], seed=2)
    assert isinstance(lc, LearningCurve)
    assert lc.test_error.shape == lc.train_error.shape == (3, 3, 2)
    np.testing.assert_array_equal(lc.seeds, [3, 7])
    np.testing.assert_allclose(lc.mean_test, lc.test_error.mean(-1))
    np.testing.assert_allclose(lc.std_test, lc.test_error.std(-1, ddof=1))
    np.testing.assert_allclose(lc.std_train, lc.train_error.std(-1, ddof=1))
    np.testing.assert_allclose(lc.sem_test, lc.std_test / np.sqrt(2))
    assert np.all(lc.test_error >= y2 - np.sum(b**2 / w) - 1e-12)
    one = learning_curve(w, b, y2, [4], [0.1], 1)
    np.testing.assert_array_equal(one.std_test, np.zeros((1, 1)))


def test_learning_curve_entries_depend_only_on_their_own_n_and_seed():
    w, b, y2 = _model(6, 2)
    lams = [0.0, 0.05]
    full = learning_curve(w, b, y2, [3, 6, 12], lams, 3, seed=8)
    again = learning_curve(w, b, y2, [3, 6, 12], lams, 3, seed=8)
    np.testing.assert_array_equal(full.test_error, again.test_error)
    np.testing.assert_array_equal(full.train_error, again.train_error)
    sub = learning_curve(w, b, y2, [12, 6], lams, [2], seed=8)
    np.testing.assert_array_equal(sub.test_error[1, :, 0], full.test_error[1, :, 2])
    np.testing.assert_array_equal(sub.train_error[0, :, 0], full.train_error[2, :, 2])
    other = learning_curve(w, b, y2, [3, 6, 12], lams, 3, seed=9)
    assert not np.array_equal(other.test_error, full.test_error)
    # with a fresh test set too
    a = learning_curve(w, b, y2, [3, 6], lams, 2, n_test=500, seed=8)
    c = learning_curve(w, b, y2, [6], lams, [1], n_test=500, seed=8)
    np.testing.assert_array_equal(c.test_error[0, :, 0], a.test_error[1, :, 1])


def test_fresh_test_set_agrees_with_exact_test_error():
    """Same training samples; the residual y - theta^T phi is Gaussian, so the empirical
    MSE on n_test points has standard error E_gen sqrt(2/n_test)."""
    w, b, y2 = _model(8, 3)
    n_test = 20_000
    exact = learning_curve(w, b, y2, [5, 30], [0.0, 0.1], 2, seed=4)
    emp = learning_curve(w, b, y2, [5, 30], [0.0, 0.1], 2, n_test=n_test, seed=4)
    np.testing.assert_array_equal(exact.train_error, emp.train_error)
    assert emp.n_test == n_test and exact.n_test is None
    se = exact.test_error * np.sqrt(2 / n_test)
    assert np.all(np.abs(emp.test_error - exact.test_error) <= 5 * se)


def test_fresh_test_set_of_size_n_is_not_the_training_set():
    """n_test = n: the test samples come from their own stream, never the training one.

    Underparametrised ridgeless regression with linear labels + noise s2 (n > p + 1) has the exact
    finite-n means E_train = s2 (n − p)/n and E_test = s2 (1 + p/(n − p − 1)); scored on the
    training samples the "test" error would have the training mean. Overparametrised, the
    ridgeless fit interpolates (train error 0) while fresh samples see the noise and more.
    """
    S, p, n, s2 = 300, 10, 40, 0.5
    w = np.linspace(0.3, 3.0, p)
    b = 0.4 * np.sqrt(w)
    y2 = float(np.sum(b**2 / w)) + s2
    lc = learning_curve(w, b, y2, [n], [0.0], S, n_test=n, seed=31)
    assert not np.any(lc.test_error == lc.train_error)
    _check_mean(lc.test_error[0, 0], s2 * (1 + p / (n - p - 1)))
    _check_mean(lc.train_error[0, 0], s2 * (n - p) / n)
    # interpolation: train error 0 (to rounding), fresh test error above the noise floor
    over = learning_curve(np.ones(30), np.full(30, 0.1), 0.3 + s2, [12], [0.0], 20, n_test=12, seed=32)
    assert np.all(over.train_error <= 1e-20)
    assert over.test_error.mean() > s2
    # the same for one sweep task (its own "train" and "test" streams)
    from simulations.ridge import ridge_task

    spec = {"spectrum": {"kind": "isotropic", "p": 30}, "y2": 1.5, "n": 12, "lams": [0.0], "n_test": 12}
    out = [ridge_task(spec, np.random.SeedSequence(i)) for i in range(10)]
    assert all(o["train_error"][0] <= 1e-20 and o["test_error"][0] > 1e-3 for o in out)


@settings(max_examples=40, deadline=None)
@given(w=spectra(max_size=8, max_condition=1e6), n=st.integers(1, 12), seed=st.integers(0, 2**31),
       method=st.sampled_from(METHODS))
def test_learning_curve_on_any_spectrum_respects_the_noise_floor(w, n, seed, method):
    """Rank-0 and rank-deficient spectra included: finite errors, test error >= sigma_res^2,
    training error <= E[y^2] (theta = 0 is a candidate of every ridge problem)."""
    b = np.sqrt(w) * make_rng(seed).uniform(-1, 1, w.size)
    pos = w > 0
    s2 = 0.2
    y2 = float(np.sum(b[pos] ** 2 / w[pos])) + s2
    lc = learning_curve(w, b, y2, [n], [0.0, 0.1], 2, seed=seed, method=method)
    assert np.all(np.isfinite(lc.test_error)) and np.all(np.isfinite(lc.train_error))
    assert np.all(lc.test_error >= s2 * (1 - 1e-9))
    if not pos.any():  # nothing to learn: theta = 0, test error E[y^2] exactly
        np.testing.assert_allclose(lc.test_error, y2, rtol=1e-12)


def test_gram_and_svd_learning_curves_agree():
    w, b, y2 = _model(10, 4)
    args = (w, b, y2, [5, 10, 20], [0.0, 1e-3, 1.0], 2)
    a = learning_curve(*args, seed=1, method="svd")
    g = learning_curve(*args, seed=1, method="gram")
    np.testing.assert_allclose(g.test_error, a.test_error, rtol=1e-7)
    np.testing.assert_allclose(g.train_error, a.train_error, rtol=1e-7, atol=1e-12)


def test_float32_learning_curve_runs():
    w, b, y2 = _model(5, 5)
    lc = learning_curve(w, b, y2, [10], [0.1], 3, dtype=np.float32)
    assert lc.test_error.dtype == np.float64 and np.all(np.isfinite(lc.test_error))


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "F, y, lams, name",
    [
        (np.ones((3, 2)), np.ones(3), [[0.1]], "lams"),
        (np.ones((3, 2)), np.ones(3), [-0.1], "lams"),
        (np.ones((3, 2)), np.ones(3), [np.nan], "lams"),
        (np.ones((3, 2)), np.ones(3), [], "lams"),
        (np.ones(3), np.ones(3), [0.1], "F"),
        (np.full((3, 2), np.inf), np.ones(3), [0.1], "F"),
        (np.ones((3, 2)), np.ones(4), [0.1], "y"),
        (np.ones((3, 2)), np.array([1.0, np.nan, 1.0]), [0.1], "y"),
    ],
)
def test_ridge_path_bad_inputs(F, y, lams, name):
    with pytest.raises(ValueError, match=name):
        ridge_path(F, y, lams)
    with pytest.raises(ValueError, match="method"):
        ridge_path(np.ones((3, 2)), np.ones(3), [0.1], method="qr")


def test_population_test_error_bad_inputs():
    with pytest.raises(ValueError, match="theta"):
        population_test_error(np.ones(3), [1.0, 1.0], [0.1, 0.1], 1.0)
    with pytest.raises(ValueError, match="eigenvalues"):
        population_test_error(np.ones(2), [1.0, -1.0], [0.1, 0.1], 1.0)
    with pytest.raises(ValueError, match="y2"):
        population_test_error(np.ones(2), [1.0, 1.0], [0.5, 0.5], 0.1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(ns=[0, 5]), "ns"),
        (dict(ns=[2.5]), "ns"),
        (dict(ns=[[5]]), "ns"),
        (dict(lams=[-1.0]), "lams"),
        (dict(seeds=0), "seeds"),
        (dict(seeds=[1, 1]), "seeds"),
        (dict(seeds=[-1]), "seeds"),
        (dict(n_test=0), "n_test"),
        (dict(dtype=np.int32), "dtype"),
        (dict(eigenvalues=[1.0, np.nan]), "eigenvalues"),
        (dict(b_eigen=[0.1]), "b_eigen"),
        (dict(method="lu"), "method"),
    ],
)
def test_learning_curve_bad_inputs(kwargs, name):
    args = dict(eigenvalues=[1.0, 0.5], b_eigen=[0.1, 0.1], y2=1.0, ns=[5], lams=[0.1], seeds=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        learning_curve(**args)


def test_ridge_task_accepts_a_spec_or_its_dict_form():
    from simulations.data import GaussianMoments, PopulationMoments
    from simulations.ridge import RidgeSpec, ridge_task
    from simulations.spec import spec_from_json

    params = {"spectrum": {"kind": "power-law", "p": 30, "alpha": 1.5, "beta": 1}, "y2": 1.01, "n": 20,
              "lams": [0.0, 0.1]}
    spec = RidgeSpec.from_dict(params)
    assert spec.lams == (0.0, 0.1) and spec.spectrum["beta"] == 1.0 and spec_from_json(spec.to_json()) == spec
    seed = np.random.SeedSequence(5)
    a, b = ridge_task(params, seed), ridge_task(spec, seed)
    assert np.array_equal(a["test_error"], b["test_error"]) and np.array_equal(a["train_error"], b["train_error"])
    with pytest.raises(ValueError, match="unknown field"):
        RidgeSpec.from_dict({**params, "noise": 0.1})
    with pytest.raises(ValueError, match="no joint distribution"):
        RidgeSpec.from_dict({**params, "y2": 0.5})
    assert GaussianMoments is PopulationMoments  # backward-compatible alias
