"""kernel_covariances: every Hermite order of the activations on the realised weights (issue 15).

Facts checked: Mehler's series reproduces the closed-form kernels of sign and erf; it is exact at
the first layer (Monte Carlo agrees within its standard error where the linearisation is off by
tens of standard errors); it reduces to the linearisation for linear activations and keeps the
per-neuron diagonal and Φ; its finite-width correction to the ridge error decays with the width.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from asymptotics.deep import kernel_covariances, linearized_covariances
from asymptotics.ridge import GaussianCovariateModel


def _weights(rng, widths, scale=1.0):
    return [scale * rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]


def _rho(c):
    s = np.sqrt(np.diag(c))
    return np.clip(c / s[:, None] / s[None, :], -1.0, 1.0)


def test_sign_and_erf_layers_match_their_arcsine_kernels():
    rng = np.random.default_rng(0)
    (w,) = _weights(rng, [30, 40])
    c = w @ w.T
    off = ~np.eye(40, dtype=bool)
    om, _, _ = kernel_covariances([w], "sign")
    assert np.max(np.abs(om - 2 / np.pi * np.arcsin(_rho(c)))[off]) < 1e-12
    assert np.allclose(np.diag(om), 1.0, rtol=0, atol=1e-14)  # E sign² = 1
    om, _, _ = kernel_covariances([w], "erf")  # E erf(u) erf(v) = (2/π) arcsin(2c/√((1+2r_u)(1+2r_v)))
    r = np.diag(c)
    ref = 2 / np.pi * np.arcsin(2 * c / np.sqrt(np.outer(1 + 2 * r, 1 + 2 * r)))
    assert np.max(np.abs(om - ref)) < 1e-12


def test_first_layer_is_exact_where_the_linearisation_is_not():
    """d = 4, p = 12, pre-activation variance ~ 2: the higher Hermite terms are large. Ω̂ from
    2·10⁵ samples: every entry of the kernel within 5 standard errors (78 distinct entries), the
    linearisation off by more than 20."""
    rng = np.random.default_rng(3)
    (w,) = _weights(rng, [4, 12], scale=1.5)
    m = 200_000
    f = np.tanh(rng.standard_normal((m, 4)) @ w.T)
    om_hat = f.T @ f / m
    se = np.sqrt(np.mean((f[:, :, None] * f[:, None, :]) ** 2, axis=0) - om_hat**2) / np.sqrt(m)
    with warnings.catch_warnings():  # d = 4: some rows nearly parallel; remainder bound ~1e-8 ≪ se
        warnings.simplefilter("ignore", UserWarning)
        om_k, _, _ = kernel_covariances([w], "tanh")
    om_l, _, _ = linearized_covariances([w], "tanh", per_neuron=True)
    assert np.max(np.abs(om_k - om_hat) / se) < 5
    assert np.max(np.abs(om_l - om_hat) / se) > 20


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(2, 12), p1=st.integers(2, 15), p2=st.integers(1, 15),
       act=st.sampled_from(["tanh", "erf", "erf_scaled", "sign"]))
def test_kernel_keeps_the_per_neuron_diagonal_and_phi_and_is_psd(seed, d, p1, p2, act):
    rng = np.random.default_rng(seed)
    ws = _weights(rng, [d, p1, p2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nearly parallel rows at these tiny sizes
        om1, phi1, _ = kernel_covariances(ws[:1], act)
        om2, _, psi2 = kernel_covariances(ws, act)
    lin1, phil1, _ = linearized_covariances(ws[:1], act, per_neuron=True)
    # one layer: the same per-neuron diagonal E σ(h_i)² and the same Φ (Stein's lemma)
    assert np.allclose(np.diag(om1), np.diag(lin1), rtol=1e-10, atol=1e-14)
    assert np.allclose(phi1, phil1, rtol=1e-12, atol=1e-14)
    assert np.allclose(psi2, np.eye(d))
    for om in (om1, om2):
        assert np.allclose(om, om.T)
        assert np.linalg.eigvalsh(om).min() >= -1e-10 * np.abs(om).max()


def test_linear_activation_reduces_to_the_linearisation():
    rng = np.random.default_rng(1)
    ws = _weights(rng, [10, 20, 15])
    om_k, phi_k, _ = kernel_covariances(ws, "linear")
    om_l, phi_l, _ = linearized_covariances(ws, "linear", per_neuron=True)
    assert np.allclose(om_k, om_l, rtol=1e-12, atol=1e-14) and np.allclose(phi_k, phi_l, rtol=1e-12, atol=1e-14)


def test_bad_input_is_rejected_and_parallel_rows_warn():
    rng = np.random.default_rng(2)
    ws = _weights(rng, [5, 6])
    with pytest.raises(ValueError, match="activations must be odd"):
        kernel_covariances(ws, "relu")
    with pytest.raises(ValueError, match="tol"):
        kernel_covariances(ws, "tanh", tol=0.0)
    with pytest.raises(ValueError, match="weights"):
        kernel_covariances([np.ones(3)], "tanh")
    w = ws[0].copy()
    w[1] = w[0]  # two identical neurons: ρ = 1, the series cannot be cut early
    with pytest.warns(UserWarning, match="remainder bound"):
        kernel_covariances([w], "sign")


def _gap(p, draw):
    """(kernel − lin)/lin of the ridge error at n = 2p, λ = 0.01: 2 tanh layers, d = p/2, linear teacher."""
    rng = np.random.default_rng(draw)
    ws = _weights(rng, [p // 2, p, p])
    theta = rng.standard_normal(p // 2)
    errs = []
    for om, phi, psi in (kernel_covariances(ws, "tanh"), linearized_covariances(ws, "tanh", per_neuron=True)):
        errs.append(float(GaussianCovariateModel.from_teacher(om, phi, psi, theta, 0.1).ridge(2.0 * p, 0.01).test_error))
    return (errs[0] - errs[1]) / errs[1]


def test_the_correction_to_the_linearised_error_decays_with_the_width():
    """The kernel lowers the predicted error at n = 2p, λ = 0.01, by an amount that shrinks faster
    than p^{-1/2} between p = 64 and 256 (measured over 100 … 800 in deep-rf-finite-size: ≈ p^{-1.2})."""
    gaps = {p: np.mean([_gap(p, s) for s in range(3)]) for p in (64, 256)}
    assert gaps[64] < 0 and gaps[256] < 0
    assert abs(gaps[256]) < abs(gaps[64]) * (64 / 256) ** 0.5
