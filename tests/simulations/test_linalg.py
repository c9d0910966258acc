"""The one ridge solve against numpy.linalg.solve on random problems (λ ≥ 0, n < p and n > p)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.linalg import ridge_from_gram, ridge_path


def _reference(F, y, lam):
    n, p = F.shape
    if lam > 0:
        return np.linalg.solve(F.T @ F / n + lam * np.eye(p), F.T @ y / n)
    return np.linalg.pinv(F) @ y  # minimum-norm least squares, the λ → 0⁺ limit


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), p=st.integers(2, 40), seed=st.integers(0, 2**31),
       lams=st.lists(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 10.0]), min_size=1, max_size=4, unique=True))
def test_every_solver_matches_numpy_solve(n, p, seed, lams):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, p))
    y = rng.standard_normal(n)
    ref = np.stack([_reference(F, y, lam) for lam in lams], axis=1)
    scale = 1 + np.abs(ref).max()
    for method in ("svd", "gram"):
        path = ridge_path(F, y, lams, method=method)
        tol = 1e-9 if method == "svd" or min(lams) > 0 else 1e-5
        assert np.allclose(path.theta, ref, atol=tol * scale, rtol=tol), method
        resid = np.array([np.mean((y - F @ ref[:, j]) ** 2) for j in range(len(lams))])
        assert np.allclose(path.train_error, resid, atol=1e-8 * (1 + resid.max()))
    theta, train = ridge_from_gram(F.T @ F / n, F.T @ y / n, lams, y @ y / n, n=n)
    assert np.allclose(theta, ref, atol=1e-5 * scale, rtol=1e-5)
    assert np.allclose(train, [np.mean((y - F @ ref[:, j]) ** 2) for j in range(len(lams))], atol=1e-6)


@pytest.mark.parametrize("n,p", [(10, 30), (30, 10)])
def test_cholesky_branch_agrees_with_the_eigendecomposition(n, p):
    rng = np.random.default_rng(0)
    F = rng.standard_normal((n, p))
    y = rng.standard_normal(n)
    G, g = F.T @ F / n, F.T @ y / n
    lams = [1e-2, 1.0]
    chol, _ = ridge_from_gram(G, g, lams, method="cholesky")
    eig, _ = ridge_from_gram(G, g, lams)
    assert np.allclose(chol, eig, rtol=1e-8, atol=1e-10)
    assert np.allclose(chol[:, 1], np.linalg.solve(G + np.eye(p), g))
    # training errors (1/n)|y − Fθ|² from the same sufficient statistics
    _, train = ridge_from_gram(G, g, lams, y @ y / n, method="cholesky")
    assert np.allclose(train, [np.mean((y - F @ chol[:, j]) ** 2) for j in range(len(lams))], atol=1e-10)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="lams"):
        ridge_from_gram(np.eye(2), np.ones(2), [-1.0])
    with pytest.raises(ValueError, match="G must be"):
        ridge_from_gram(np.eye(2), np.ones(3), [1.0])
    with pytest.raises(ValueError, match="method"):
        ridge_from_gram(np.eye(2), np.ones(2), [1.0], method="qr")
