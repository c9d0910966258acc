"""Each paper's λ ↔ the project's mean-loss λ: the conversions are exact inverses and agree with
the estimators they describe."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import conventions as C

_pos = st.floats(1e-6, 1e6, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(lam=_pos, n=st.integers(1, 10**7), p=st.integers(1, 10**5))
def test_round_trips(lam, n, p):
    assert C.lam_to_sum_loss(C.lam_from_sum_loss(lam, n), n) == pytest.approx(lam, rel=1e-14)
    assert C.lam_to_scaled_features(C.lam_from_scaled_features(lam, p, n), p, n) == pytest.approx(lam, rel=1e-14)


def _argmin(objective_matrix, rhs):
    return np.linalg.solve(objective_matrix, rhs)


def test_conversions_give_the_same_estimator():
    rng = np.random.default_rng(0)
    n, p = 50, 20
    F = rng.standard_normal((n, p))
    y = rng.standard_normal(n)
    lam_c, lam_P = 3.0, 0.7
    ours = lambda lam: _argmin(F.T @ F / n + lam * np.eye(p), F.T @ y / n)  # noqa: E731
    # sum loss: ‖y − Fθ‖² + λ_c‖θ‖²
    sum_loss = _argmin(F.T @ F + lam_c * np.eye(p), F.T @ y)
    assert np.allclose(ours(C.lam_from_sum_loss(lam_c, n)), sum_loss)
    # scaled features: ‖y − Fw/√p‖² + λ_P‖w‖², predictor Fw/√p, i.e. θ = w/√p
    w = _argmin(F.T @ F / p + lam_P * np.eye(p), F.T @ y / np.sqrt(p))
    assert np.allclose(ours(C.lam_from_scaled_features(lam_P, p, n)), w / np.sqrt(p))


def test_arrays_broadcast_and_bad_values_are_named():
    out = C.lam_from_sum_loss([1.0, 2.0], np.array([10, 20]))
    assert np.allclose(out, [0.1, 0.1])
    with pytest.raises(ValueError, match="lam_c"):
        C.lam_from_sum_loss(-1.0, 10)
    with pytest.raises(ValueError, match="n must be positive"):
        C.lam_from_scaled_features(1.0, 10, 0)
