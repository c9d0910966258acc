"""Tests of simulations.covariance: streaming estimates of Omega, Phi, Psi, b, E[y^2]."""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.covariance import MomentAccumulator, estimate_moments
from simulations.features import SampleStream, Teacher, draw_samples, random_weights
from simulations.rng import make_rng


def _data(seed, n, p, k, shift=0.0):
    rng = make_rng(seed)
    A = rng.standard_normal((p + k + 1, p + k + 1))
    Z = rng.standard_normal((n, p + k + 1)) @ A + shift + rng.standard_normal(p + k + 1)
    return Z[:, :p], Z[:, p: p + k], Z[:, -1]


def _direct(F, P, y, center):
    """Direct (np.cov-style, bias=True) computation of every moment."""
    n = F.shape[0]
    mu, nu = F.mean(0), P.mean(0)
    if center:
        omega = np.cov(F, rowvar=False, bias=True).reshape(F.shape[1], F.shape[1])
        joint = np.cov(np.hstack([F, P]), rowvar=False, bias=True)
        phi = joint[: F.shape[1], F.shape[1]:]
        psi = np.cov(P, rowvar=False, bias=True).reshape(P.shape[1], P.shape[1])
        b = (F - mu).T @ y / n
    else:
        omega, phi, psi, b = F.T @ F / n, F.T @ P / n, P.T @ P / n, F.T @ y / n
    return dict(omega=omega, phi=phi, psi=psi, b=b, y2=np.mean(y**2), mean_phi=mu, mean_psi=nu,
                mean_y=y.mean())


def _assert_moments_equal(est, ref, rtol=1e-12):
    for name, r in ref.items():
        got = getattr(est, name)
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(got, r, rtol=0, atol=rtol * scale, err_msg=name)


def _splits(draw, n):
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return [0, *cuts, n]


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 80), p=st.integers(1, 6), k=st.integers(1, 4),
    seed=st.integers(0, 2**31), center=st.booleans(), data=st.data(),
)
def test_accumulator_equals_direct_computation(n, p, k, seed, center, data):
    F, P, y = _data(seed, n, p, k, shift=3.0)
    edges = _splits(data.draw, n)
    acc = MomentAccumulator()
    for a, b in zip(edges[:-1], edges[1:]):
        acc.update(F[a:b], P[a:b], y[a:b])  # empty chunks are allowed
    est = acc.finalize(center=center)
    assert est.n_samples == n and est.centered == center
    assert est.omega.shape == (p, p) and est.phi.shape == (p, k) and est.psi.shape == (k, k)
    _assert_moments_equal(est, _direct(F, P, y, center))
    # Omega and Psi are exactly symmetric
    assert np.array_equal(est.omega, est.omega.T) and np.array_equal(est.psi, est.psi.T)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(2, 80), p=st.integers(1, 6), seed=st.integers(0, 2**31), data=st.data(),
)
def test_merging_equals_one_pass(n, p, seed, data):
    F, P, y = _data(seed, n, p, 2, shift=-2.0)
    one = MomentAccumulator().update(F, P, y)
    edges = _splits(data.draw, n)
    parts = []
    for a, b in zip(edges[:-1], edges[1:]):
        parts.append(MomentAccumulator().update(F[a:b], P[a:b], y[a:b]))
    merged = MomentAccumulator()
    for part in parts:
        merged.merge(pickle.loads(pickle.dumps(part)))  # as if computed by another process
    rev = MomentAccumulator()
    for part in reversed(parts):
        rev.merge(part)
    for center in (False, True):
        ref = one.finalize(center)
        for acc in (merged, rev):
            est = acc.finalize(center)
            assert est.n_samples == n
            _assert_moments_equal(est, {k: getattr(ref, k) for k in
                                        ("omega", "phi", "psi", "b", "y2", "mean_phi", "mean_psi", "mean_y")})


def test_centering_is_stable_for_large_means():
    """Cov = E[phi phi^T] - mu mu^T computed naively loses ~ eps |mu|^2/var relative accuracy
    (here 1e-16 * 1e12 = 1e-4); the pairwise algorithm keeps it at rounding level."""
    rng = make_rng(5)
    n, p = 4000, 3
    F = 1e6 + rng.standard_normal((n, p)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    acc = MomentAccumulator()
    for a in range(0, n, 333):
        acc.update(F[a: a + 333])
    est = acc.finalize(center=True)
    Fc = F - F.mean(0)
    ref = Fc.T @ Fc / n  # two-pass reference
    np.testing.assert_allclose(est.omega, ref, rtol=1e-8, atol=1e-8)
    raw = acc.finalize(center=False)
    np.testing.assert_allclose(raw.omega - np.outer(raw.mean_phi, raw.mean_phi), ref, atol=1e-2)
    assert raw.phi is None and raw.psi is None and raw.b is None and raw.y2 is None


def test_centering_relations():
    """centred = raw - mean products; b is centred through phi only; E[y^2] stays raw."""
    F, P, y = _data(2, 500, 4, 3, shift=1.5)
    acc = MomentAccumulator().update(F, P, y)
    raw, cen = acc.finalize(False), acc.finalize(True)
    mu, nu, my = raw.mean_phi, raw.mean_psi, raw.mean_y
    np.testing.assert_allclose(cen.omega, raw.omega - np.outer(mu, mu), atol=1e-12)
    np.testing.assert_allclose(cen.phi, raw.phi - np.outer(mu, nu), atol=1e-12)
    np.testing.assert_allclose(cen.psi, raw.psi - np.outer(nu, nu), atol=1e-12)
    np.testing.assert_allclose(cen.b, raw.b - mu * my, atol=1e-12)
    assert cen.y2 == raw.y2 == pytest.approx(np.mean(y**2), rel=1e-13)
    np.testing.assert_allclose(cen.b, ((F - F.mean(0)) * y[:, None]).mean(0), atol=1e-12)
    # the centred covariance is PSD, the raw moment is PSD and dominates it
    assert np.linalg.eigvalsh(cen.omega).min() > -1e-12
    assert np.linalg.eigvalsh(raw.omega - cen.omega).min() > -1e-12


def test_estimated_omega_converges_like_one_over_sqrt_n():
    """|Omega_n - Omega_ref|_F^2 has expectation V (1/n + 1/n_ref) with
    V = sum_ij Var(phi_i phi_j) (independent samples), for a 2-layer tanh network."""
    d, p = 16, 24
    rng = make_rng(21)
    W = random_weights([d, 32, p], rng)
    n_ref = 200_000
    ref_stream = SampleStream(W, "tanh", make_rng(22))
    acc = MomentAccumulator()
    fourth = np.zeros((p, p))
    for _ in range(n_ref // 20_000):
        phi = ref_stream.take(20_000).phi
        acc.update(phi)
        fourth += (phi**2).T @ (phi**2)
    omega_ref = acc.finalize().omega
    V = float(np.sum(fourth / n_ref - omega_ref**2))  # sum_ij E[phi_i^2 phi_j^2] - Omega_ij^2
    ns = [500, 2000, 8000, 32000]
    stream = SampleStream(W, "tanh", make_rng(23))
    errs = []
    for n in ns:
        est = estimate_moments(stream, n, chunk=1500)
        err = np.linalg.norm(est.omega - omega_ref)
        errs.append(err)
        ratio = err / np.sqrt(V * (1 / n + 1 / n_ref))
        assert 0.5 <= ratio <= 2.0, (n, err, ratio)
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -0.65 <= slope <= -0.35, slope


def test_linear_network_and_teacher_population_moments():
    """phi = W x (linear activation), psi = x, y = theta^T x/sqrt(d) + sigma eps, x ~ N(0, I):
    Omega = W W^T, Phi = W, Psi = I, b = W theta/sqrt(d), E[y^2] = |theta|^2/d + sigma^2.
    Estimates agree within 5 standard errors entrywise (Var(u v) = E u^2 E v^2 + E[uv]^2
    for jointly Gaussian centred u, v)."""
    d, p, n, sigma = 6, 5, 60_000, 0.4
    rng = make_rng(30)
    (W,) = random_weights([d, p], rng)
    theta = rng.standard_normal(d)
    stream = SampleStream([W], "linear", rng, teacher=Teacher(theta, noise=sigma))
    est = estimate_moments(stream, n, chunk=7000)
    omega, phi, psi = W @ W.T, W, np.eye(d)
    b = W @ theta / np.sqrt(d)
    y2 = theta @ theta / d + sigma**2

    def se(a_var, b_var, cross):
        return np.sqrt((np.outer(a_var, b_var) + cross**2) / n)

    assert np.all(np.abs(est.omega - omega) <= 5 * se(np.diag(omega), np.diag(omega), omega))
    assert np.all(np.abs(est.phi - phi) <= 5 * se(np.diag(omega), np.ones(d), phi))
    assert np.all(np.abs(est.psi - psi) <= 5 * se(np.ones(d), np.ones(d), psi))
    assert np.all(np.abs(est.b - b) <= 5 * np.sqrt((np.diag(omega) * y2 + b**2) / n))
    assert abs(est.y2 - y2) <= 5 * np.sqrt(2 * y2**2 / n)
    assert np.all(np.abs(est.mean_phi) <= 5 * np.sqrt(np.diag(omega) / n))


def test_estimate_moments_from_a_stream_does_not_depend_on_chunk():
    rng = make_rng(40)
    W = random_weights([10, 20, 15], rng)
    T = Teacher(rng.standard_normal(10), noise=0.1)
    whole = draw_samples(3000, W, "tanh", make_rng(41), teacher=T)
    ref = MomentAccumulator().update(whole.phi, whole.psi, whole.y).finalize(center=True)
    for chunk in (1, 999, 1024, 5000):
        if chunk == 1:
            stream = SampleStream(W, "tanh", make_rng(41), teacher=T)
            est = estimate_moments(lambda m: (stream.take(m).phi,), 200, chunk)
            assert est.phi is None and est.b is None
            np.testing.assert_allclose(
                est.omega, MomentAccumulator().update(whole.phi[:200]).finalize().omega, atol=1e-13)
            continue
        est = estimate_moments(SampleStream(W, "tanh", make_rng(41), teacher=T), 3000, chunk, center=True)
        for name in ("omega", "phi", "psi", "b", "y2", "mean_phi"):
            np.testing.assert_allclose(getattr(est, name), getattr(ref, name), rtol=0, atol=1e-12)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    F, P, y = _data(0, 20, 3, 2)
    acc = MomentAccumulator().update(F, P, y)
    with pytest.raises(ValueError, match="psi_chunk"):
        acc.update(F, P[:19], y)
    with pytest.raises(ValueError, match="y_chunk"):
        acc.update(F, P, y[:5])
    with pytest.raises(ValueError, match="phi_chunk"):
        acc.update(F[0], P, y)
    with pytest.raises(ValueError, match="phi"):
        acc.update(F[:, :2], P, y)  # p changed
    with pytest.raises(ValueError, match="psi"):
        acc.update(F, None, y)  # layout changed
    with pytest.raises(ValueError, match="y"):
        acc.update(F, P)
    Fn = F.copy()
    Fn[2, 1] = np.nan
    with pytest.raises(ValueError, match="phi_chunk contains NaN"):
        acc.update(Fn, P, y)
    yn = y.copy()
    yn[0] = np.inf
    with pytest.raises(ValueError, match="y_chunk contains NaN"):
        acc.update(F, P, yn)
    Pn = P.copy()
    Pn[0, 0] = -np.inf
    with pytest.raises(ValueError, match="psi_chunk contains NaN"):
        acc.update(F, Pn, y)
    assert acc.n == 20  # failed updates change nothing
    fresh = MomentAccumulator()
    with pytest.raises(ValueError, match="phi_chunk contains NaN"):
        fresh.update(Fn, P, y)
    assert fresh.p is None and fresh.n == 0  # not even the layout was fixed
    fresh.update(F[:, :2])  # so another layout is still accepted
    assert fresh.finalize().omega.shape == (2, 2)
    with pytest.raises(ValueError, match="no samples"):
        MomentAccumulator().finalize()
    with pytest.raises(ValueError, match="other"):
        acc.merge(MomentAccumulator().update(F))
    with pytest.raises(TypeError, match="other"):
        acc.merge(object())
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="chunk"):
            estimate_moments(lambda m: F[:m], 10, bad)
        with pytest.raises(ValueError, match="n_samples"):
            estimate_moments(lambda m: F[:m], bad, 5)
    with pytest.raises(ValueError, match="rows"):
        estimate_moments(lambda m: F[:3], 10, 5)
