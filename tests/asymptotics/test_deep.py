"""Linearised covariances of deep random features (asymptotics.deep)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import gaussian
from asymptotics.deep import feature_mean, linearized_covariances
from asymptotics.testing import activations


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


@settings(max_examples=15, deadline=None)
@given(act=activations(exclude=["linear"]), depth=st.integers(1, 3), seed=st.integers(0, 1000),
       per_neuron=st.booleans())
def test_structure_of_the_recursion(act, depth, seed, per_neuron):
    # rows of unequal norms, so that per-neuron κ's differ from neuron to neuron
    widths = [20] + [25] * depth
    ws = [w * np.linspace(0.5, 1.5, w.shape[0])[:, None] for w in weights(widths, seed)]
    omega, phi, psi = linearized_covariances(ws, act, per_neuron=per_neuron, second_order=False)
    # the first-order recursion (E-Ω) (second_order=False; (E-2) is tested in test_deep_uncentred.py)
    # of the last layer, written out: Ω = diag(κ1) C diag(κ1) + diag(κ*²), C = W Ω_prev Wᵀ, with κ's
    # at each neuron's variance C_ii (per_neuron) or at Tr C/p and at its mean m = W μ_prev (the
    # previous layer's exact mean, zero for odd activations); an exchanged index or a missing
    # factor breaks the equality (and the symmetry, which is not imposed afterwards: per neuron it
    # holds to rounding only, κ1_i C_ij κ1_j and κ1_j C_ji κ1_i being rounded in another order)
    pre = ws[-1] @ _previous(ws, act, per_neuron) @ ws[-1].T
    r = np.diag(pre) if per_neuron else np.full(pre.shape[0], np.trace(pre) / pre.shape[0])
    prev_mean = feature_mean(ws[:-1], act, per_neuron=per_neuron, second_order=False) if len(ws) > 1 else np.zeros(20)
    mean = ws[-1] @ prev_mean
    _, k1, ks = (np.asarray(x, dtype=float) for x in gaussian.kappas(act, r, mean=mean))
    expected = k1[:, None] * pre * k1[None, :] + np.diag(ks**2)
    np.testing.assert_allclose(omega, expected, rtol=1e-10, atol=1e-13 * np.abs(expected).max())
    assert np.max(np.abs(omega - omega.T)) <= 4 * np.finfo(float).eps * np.abs(omega).max()  # to rounding
    assert np.linalg.eigvalsh(omega).min() >= (ks**2).min() * (1 - 1e-9) - 1e-12
    # diag Ω = κ1² C_ii + κ*² = Var σ(h_i) exactly, h_i ~ N(m_i, C_ii), when the κ's are per neuron
    if per_neuron:
        m = gaussian.moments(act, r, mean=mean)
        np.testing.assert_allclose(np.diag(omega), m.second - m.mean**2, rtol=1e-9, atol=1e-14)
    # the cross-covariance with the linear teacher: Φ = diag(κ1) W Φ_prev, Ψ = I
    np.testing.assert_allclose(phi, k1[:, None] * (ws[-1] @ _previous_phi(ws, act, per_neuron)),
                               rtol=1e-10, atol=1e-13 * np.abs(phi).max())
    np.testing.assert_array_equal(psi, np.eye(20))
    # the joint covariance of (φ, ψ) is PSD
    joint = np.block([[omega, phi], [phi.T, psi]])
    assert np.linalg.eigvalsh(joint).min() >= -1e-10 * np.abs(joint).max()


def _previous_phi(ws, act, per_neuron):
    if len(ws) == 1:
        return np.eye(ws[0].shape[1])
    return linearized_covariances(ws[:-1], act, per_neuron=per_neuron, second_order=False)[1]


def _previous(ws, act, per_neuron=False):
    if len(ws) == 1:
        return np.eye(ws[0].shape[1])
    omega, _, _ = linearized_covariances(ws[:-1], act, per_neuron=per_neuron, second_order=False)
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


def test_non_odd_activations_are_exact_without_a_warning():
    """relu's mean is propagated (no κ0 warning any more); center=False adds μμᵀ to Ω and nothing
    to Φ (linear teacher: mean 0)."""
    import warnings

    ws = weights([10, 12, 14])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        omega, phi, psi = linearized_covariances(ws, "relu")
        raw = linearized_covariances(ws, "relu", center=False)
    mu = feature_mean(ws, "relu")
    assert np.all(mu > 0)
    np.testing.assert_array_equal(raw[0], omega + np.outer(mu, mu))
    np.testing.assert_array_equal(raw[1], phi)
    np.testing.assert_array_equal(raw[2], psi)
