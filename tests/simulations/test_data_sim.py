"""Tests of simulations.data: Gaussian features with prescribed population moments."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.data import sample_gaussian_features, validate_moments
from simulations.rng import child_rng, make_rng

# A model with a zero eigenvalue (b must vanish there) and a misspecification residual.
W = np.array([2.0, 1.0, 0.5, 0.0])
B = np.array([0.5, -0.3, 0.2, 0.0])
Y2 = 1.0
SIGMA_RES2 = Y2 - (0.5**2 / 2.0 + 0.3**2 / 1.0 + 0.2**2 / 0.5)  # = 0.705


def _assert_means_within(samples, expected, n_sigma=5.0):
    """Column means of ``samples`` (rows = draws) equal ``expected`` within n_sigma SE."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    dev = np.abs(mean - expected)
    # where the quantity is deterministic (se = 0) it must be exact
    assert np.all(dev <= n_sigma * se + 1e-12 * (1 + np.abs(expected))), (mean, expected, se)


def _second_moment_samples(F, y):
    """Per-row products phi_i phi_j (i <= j), phi_i y and y^2, as columns."""
    n, p = F.shape
    iu = np.triu_indices(p)
    prods = (F[:, :, None] * F[:, None, :])[:, iu[0], iu[1]]
    return np.column_stack([prods, F * y[:, None], y**2]), iu


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_population_moments_in_eigenbasis(dtype):
    n = 200_000 if dtype == np.float64 else 100_000
    F, y = sample_gaussian_features(W, B, Y2, n, child_rng(1, 0), dtype=dtype)
    assert F.shape == (n, 4) and y.shape == (n,)
    assert F.dtype == dtype and y.dtype == dtype
    S, iu = _second_moment_samples(F.astype(np.float64), y.astype(np.float64))
    expected = np.concatenate([np.diag(W)[iu], B, [Y2]])
    _assert_means_within(S, expected)
    # the zero-variance feature is identically zero
    assert np.all(F[:, 3] == 0)


def test_population_moments_with_basis():
    p = 4
    U, _ = np.linalg.qr(make_rng(7).standard_normal((p, p)))
    n = 200_000
    F, y = sample_gaussian_features(W, B, Y2, n, child_rng(2, 0), basis=U)
    S, iu = _second_moment_samples(F, y)
    omega = U @ np.diag(W) @ U.T
    expected = np.concatenate([omega[iu], U @ B, [Y2]])
    _assert_means_within(S, expected)


def test_basis_is_a_rotation_of_the_same_draw():
    U, _ = np.linalg.qr(make_rng(3).standard_normal((4, 4)))
    F0, y0 = sample_gaussian_features(W, B, Y2, 50, child_rng(5, 1))
    F1, y1 = sample_gaussian_features(W, B, Y2, 50, child_rng(5, 1), basis=U)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_allclose(F1, F0 @ U.T, rtol=0, atol=1e-13)


def test_labels_are_linear_without_residual():
    """If y2 = b^T Omega^+ b, then y = F beta exactly with beta = Omega^+ b."""
    y2 = float(np.sum(B[:3] ** 2 / W[:3]))
    mom = validate_moments(W, B, y2)
    assert mom.sigma_res2 == 0.0
    F, y = sample_gaussian_features(W, B, y2, 100, child_rng(0, 0))
    np.testing.assert_allclose(y, F @ mom.beta, rtol=1e-12, atol=1e-12)


def test_residual_is_uncorrelated_noise_of_right_variance():
    """y - F beta has variance sigma_res^2 and is uncorrelated with the features."""
    mom = validate_moments(W, B, Y2)
    assert mom.sigma_res2 == pytest.approx(SIGMA_RES2, rel=1e-14)
    F, y = sample_gaussian_features(W, B, Y2, 100_000, child_rng(4, 0))
    r = y - F @ mom.beta
    _assert_means_within(np.column_stack([r**2, F[:, :3] * r[:, None]]),
                         np.array([SIGMA_RES2, 0.0, 0.0, 0.0]))


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 6),
    n=st.integers(1, 20),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_shapes_reproducibility_and_dtype(p, n, seed, dtype):
    rng = make_rng(seed)
    w = rng.uniform(0.1, 3.0, p)
    b = rng.uniform(-1, 1, p) * np.sqrt(w) / np.sqrt(p)
    y2 = float(np.sum(b**2 / w)) + rng.uniform(0, 1)
    F1, y1 = sample_gaussian_features(w, b, y2, n, child_rng(seed, 1), dtype=dtype)
    F2, y2_ = sample_gaussian_features(w, b, y2, n, child_rng(seed, 1), dtype=dtype)
    assert F1.shape == (n, p) and y1.shape == (n,)
    assert F1.dtype == dtype and y1.dtype == dtype
    np.testing.assert_array_equal(F1, F2)
    np.testing.assert_array_equal(y1, y2_)
    assert np.all(np.isfinite(F1)) and np.all(np.isfinite(y1))
    F3, _ = sample_gaussian_features(w, b, y2, n, child_rng(seed, 2), dtype=dtype)
    assert not np.array_equal(F1, F3)


def test_round_off_is_tolerated():
    # tiny negative eigenvalue (round-off of eigh) and y2 a hair below b^T Omega^+ b
    w = np.array([1.0, -1e-14])
    b = np.array([0.5, 0.0])
    F, y = sample_gaussian_features(w, b, 0.25 * (1 - 1e-12), 10, make_rng(0))
    assert np.all(F[:, 1] == 0)
    np.testing.assert_allclose(y, 0.5 * F[:, 0], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(eigenvalues=[1.0, -0.1]), "eigenvalues"),
        (dict(eigenvalues=[1.0, np.nan]), "eigenvalues"),
        (dict(eigenvalues=[[1.0, 1.0]]), "eigenvalues"),
        (dict(b_eigen=[0.1, np.inf]), "b_eigen"),
        (dict(b_eigen=[0.1, 0.1, 0.1]), "b_eigen"),
        (dict(eigenvalues=[1.0, 0.0], b_eigen=[0.1, 0.1]), "b_eigen"),
        (dict(y2=0.01), "y2"),
        (dict(y2=np.nan), "y2"),
        (dict(n=0), "n"),
        (dict(n=-3), "n"),
        (dict(n=2.5), "n"),
        (dict(n=10.0), "n"),
        (dict(dtype=np.int64), "dtype"),
        (dict(basis=np.eye(3)), "basis"),
        (dict(basis=np.ones((2, 2))), "basis"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(kwargs, name):
    args = dict(eigenvalues=[1.0, 0.5], b_eigen=[0.1, 0.1], y2=1.0, n=5, rng=make_rng(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        sample_gaussian_features(**args)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="rng"):
        sample_gaussian_features([1.0], [0.1], 1.0, 5, rng=0)
