"""Linearised covariances of deep random features (asymptotics.deep)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import gaussian
from asymptotics.deep import linearized_covariances


def weights(widths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]


def test_linear_one_layer_is_linear_regression():
    (w,) = weights([30, 40])
    sigma = np.diag(np.linspace(0.5, 2, 30))
    omega, phi, psi = linearized_covariances([w], "linear", input_covariance=sigma)
    np.testing.assert_allclose(omega, w @ sigma @ w.T, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(phi, w @ sigma, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(psi, sigma)


def test_linear_deep_network_is_a_product_and_has_the_bottleneck_rank():
    ws = weights([50, 20, 60])
    omega, phi, _ = linearized_covariances(ws, ["linear", "linear"])
    prod = ws[1] @ ws[0]
    np.testing.assert_allclose(omega, prod @ prod.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(phi, prod, rtol=1e-12, atol=1e-14)
    assert np.linalg.matrix_rank(omega, tol=1e-10 * np.abs(omega).max()) == 20


@pytest.mark.filterwarnings("ignore:activations .* are not odd")
@settings(max_examples=15, deadline=None)
@given(act=st.sampled_from(["tanh", "erf", "sign", "relu", "erf_scaled", "cube"]), depth=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_structure_of_the_recursion(act, depth, seed):
    widths = [20] + [25] * depth
    ws = weights(widths, seed)
    omega, phi, psi = linearized_covariances(ws, act)
    # symmetric PSD with smallest eigenvalue at least κ*² of the last layer (averaged variant)
    assert np.allclose(omega, omega.T)
    pre = ws[-1] @ _previous(ws, act) @ ws[-1].T
    r = np.trace(pre) / pre.shape[0]
    k0, k1, ks = gaussian.kappas(act, r)
    assert np.linalg.eigvalsh(omega).min() >= ks**2 * (1 - 1e-9) - 1e-12
    # Tr Ω / p = κ1² r + κ*² = E σ² − κ0²
    m = gaussian.moments(act, r)
    assert np.trace(omega) / omega.shape[0] == pytest.approx(m.second - m.mean**2, rel=1e-10)
    # the joint covariance of (φ, ψ) is PSD
    joint = np.block([[omega, phi], [phi.T, psi]])
    assert np.linalg.eigvalsh(joint).min() >= -1e-10 * np.abs(joint).max()


def _previous(ws, act):
    if len(ws) == 1:
        return np.eye(ws[0].shape[1])
    omega, _, _ = linearized_covariances(ws[:-1], act)
    return omega


def test_per_neuron_diagonal_is_exact():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((30, 20)) * np.linspace(0.2, 2, 30)[:, None] / np.sqrt(20)
    omega, _, _ = linearized_covariances([w], "tanh", per_neuron=True)
    r = np.sum(w**2, axis=1)
    m = gaussian.moments("tanh", r)
    np.testing.assert_allclose(np.diag(omega), m.second - m.mean**2, rtol=1e-10)


def test_two_layer_deep_teacher_matches_the_closed_expression():
    """The dRF notebook's formulas for a 2-layer student and a 1-layer teacher: Ω, Φ, Ψ of
    docs/theory/deep_features.md written out by hand."""
    w1, w2 = weights([40, 50, 60], 1)
    (wt,) = weights([40, 30], 2)
    omega, phi, psi = linearized_covariances([w1, w2], ["tanh", "erf"], [wt], ["sign"])
    r1 = np.trace(w1 @ w1.T) / 50
    _, a1, s1 = gaussian.kappas("tanh", r1)
    c2 = a1**2 * w2 @ w1 @ w1.T @ w2.T + s1**2 * w2 @ w2.T
    _, a2, s2 = gaussian.kappas("erf", np.trace(c2) / 60)
    rt = np.trace(wt @ wt.T) / 30
    _, at, st_ = gaussian.kappas("sign", rt)
    np.testing.assert_allclose(omega, a2**2 * c2 + s2**2 * np.eye(60), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(phi, a1 * a2 * at * w2 @ w1 @ wt.T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(psi, at**2 * wt @ wt.T + st_**2 * np.eye(30), rtol=1e-12)


def test_teacher_that_is_the_student_has_phi_equal_omega():
    ws = weights([30, 40, 50], 4)
    omega, phi, psi = linearized_covariances(ws, "tanh", ws, ["tanh", "tanh"])
    np.testing.assert_allclose(phi, omega, rtol=1e-12)
    np.testing.assert_allclose(psi, omega, rtol=1e-12)
    # sharing only the first layer: the κ*² diagonal enters the cross term through layer 1 only
    (wt,) = weights([40, 20], 5)
    o2, p2, _ = linearized_covariances(ws, "tanh", [ws[0], wt], ["tanh", "erf"])
    o1, _, _ = linearized_covariances(ws[:1], "tanh")
    _, k1b, _ = gaussian.kappas("tanh", np.trace(ws[1] @ o1 @ ws[1].T) / 50)
    _, k1t, _ = gaussian.kappas("erf", np.trace(wt @ o1 @ wt.T) / 20)
    np.testing.assert_allclose(p2, k1b * k1t * ws[1] @ o1 @ wt.T, rtol=1e-12)


def test_monte_carlo_omega_approaches_the_linearisation():
    """Linearised Ω vs Ω̂ from samples: relative Frobenius error ≈ sampling error + O(p^-1/2)."""
    rng = np.random.default_rng(5)
    errs = []
    for p in (50, 400):
        w1, w2 = weights([p, p, p], 6)
        omega, _, _ = linearized_covariances([w1, w2], "tanh")
        x = rng.standard_normal((40_000, p))
        h = np.tanh(np.tanh(x @ w1.T) @ w2.T)
        est = h.T @ h / len(h)
        errs.append(np.linalg.norm(est - omega) / np.linalg.norm(omega))
    assert errs[1] < 0.1
    assert errs[1] < errs[0] * 1.2 or errs[1] < 0.05


def test_bad_inputs():
    ws = weights([10, 12, 14])
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        linearized_covariances([ws[0], ws[0]], "tanh")
    with pytest.raises(ValueError, match="activations"):
        linearized_covariances(ws, ["tanh"])
    with pytest.raises(ValueError, match="unknown|Unknown|known"):
        linearized_covariances(ws, "no-such-activation")
    with pytest.raises(ValueError, match="weights\\[0\\] has shape"):
        linearized_covariances(ws, "tanh", input_covariance=np.eye(3))
    with pytest.raises(ValueError, match="input_covariance must be symmetric"):
        linearized_covariances(ws, "tanh", input_covariance=np.triu(np.ones((10, 10))))
    with pytest.raises(ValueError, match="teacher_activations"):
        linearized_covariances(ws, "tanh", teacher_weights=ws)
    with pytest.raises(ValueError, match="NaN"):
        linearized_covariances([np.full((3, 10), np.nan)], "tanh")


def test_non_odd_activation_warns_that_kappa0_is_dropped():
    ws = weights([10, 12])
    with pytest.warns(UserWarning, match="relu.*not odd"):
        linearized_covariances(ws, "relu")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        linearized_covariances(ws, "tanh")
