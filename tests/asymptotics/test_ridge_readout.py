"""Readouts of GaussianCovariateModel for features with a mean: raw features (Ω + μμᵀ) and centred
features with an unpenalised intercept ((E4): (1 + 1/n) E_gen^c(n − 1, λ n/(n − 1)))."""
import numpy as np
import pytest

from asymptotics.ridge import GaussianCovariateModel

P, SEEDS = 100, 60


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((P, 2 * P))
    omega = a @ a.T / (2 * P)
    mu = 0.7 + 0.3 * rng.standard_normal(P)
    beta = rng.standard_normal(P) / np.sqrt(P)
    return omega, mu, beta, 0.5, 0.3  # Ω, μ, β, intercept c of y, noise σ


def _simulate(omega, mu, beta, c, noise, n, lams, readout, rng):
    """Gaussian features φ = μ + Ω^{1/2} g, y = c + βᵀ(φ − μ) + σ ε; ridge (mean loss) on the raw
    features or, with an intercept, on the features and labels centred by their sample means."""
    root = np.linalg.cholesky(omega + 1e-12 * np.eye(P))
    def draw(m):
        f = mu + rng.standard_normal((m, P)) @ root.T
        return f, c + (f - mu) @ beta + noise * rng.standard_normal(m)
    f, y = draw(n)
    ft, yt = draw(2000)
    if readout == "intercept":
        fb, yb = f.mean(0), y.mean()
        f, y, ft, yt = f - fb, y - yb, ft - fb, yt - yb
    u, s, vt = np.linalg.svd(f / np.sqrt(n), full_matrices=False)
    coef = u.T @ y / np.sqrt(n)
    out = []
    for lam in lams:
        filt = s / (s**2 + lam) if lam > 0 else np.where(s > 1e-10 * s[0], 1 / np.where(s > 0, s, 1), 0.0)
        theta = vt.T @ (filt * coef)
        out.append(np.mean((yt - ft @ theta) ** 2))
    return out


@pytest.mark.parametrize("readout", ["raw", "intercept"])
def test_readouts_agree_with_gaussian_simulation(readout):
    """Every (n, λ) point within 3 standard errors (60 seeds; at p = 100 the O(1/p) bias of the
    deterministic equivalent stays below their size) at ≥ 95 % of the 12 points."""
    omega, mu, beta, c, noise = _problem()
    phi = omega @ beta[:, None]  # Cov(φ, ψ) with ψ = βᵀ(φ − μ)·√1 (k = 1, θ* = 1)
    psi = np.array([[beta @ omega @ beta]])
    model = GaussianCovariateModel.from_teacher(omega, phi, psi, np.array([1.0]), noise, feature_mean=mu,
                                                teacher_mean=np.array([c]), readout=readout)
    rng = np.random.default_rng(1)
    ns, lams = [50, 88, 112, 200], [0.0, 1e-2, 0.2]
    z = []
    for n in ns:
        sim = np.array([_simulate(omega, mu, beta, c, noise, n, lams, readout, rng) for _ in range(SEEDS)])
        theory = model.ridge(float(n), np.array(lams)).test_error
        z.append((sim.mean(0) - theory) / (sim.std(0, ddof=1) / np.sqrt(SEEDS)))
    z = np.concatenate(z)
    assert np.mean(np.abs(z) < 3) >= 0.95, z


def test_raw_readout_is_the_model_of_the_raw_second_moments():
    omega, mu, beta, c, noise = _problem()
    phi, psi = omega @ beta[:, None], np.array([[beta @ omega @ beta]])
    raw = GaussianCovariateModel.from_teacher(omega, phi, psi, np.array([1.0]), noise, feature_mean=mu,
                                              teacher_mean=np.array([c]))
    manual = GaussianCovariateModel(omega + np.outer(mu, mu), phi[:, 0] + mu * c,
                                    float(beta @ omega @ beta) + noise**2 + c**2)
    n, lam = np.array([10.0, 50.0, 200.0]), np.array([0.0, 0.1, 1.0])
    np.testing.assert_allclose(raw.ridge(n, lam).test_error, manual.ridge(n, lam).test_error, rtol=1e-12)
    plain = GaussianCovariateModel.from_teacher(omega, phi, psi, np.array([1.0]), noise)
    np.testing.assert_array_equal(plain.ridge(n, lam).test_error,
                                  GaussianCovariateModel(omega, phi[:, 0], float(beta @ omega @ beta) + noise**2)
                                  .ridge(n, lam).test_error)


def test_intercept_identities():
    """(E4) against the centred model, the bias–variance split, the mpmath reference, and n > 1."""
    omega, _, beta, _, noise = _problem()
    b, y2 = omega @ beta, float(beta @ omega @ beta) + noise**2
    centred = GaussianCovariateModel(omega, b, y2)
    model = GaussianCovariateModel(omega, b, y2, intercept=True)
    n, lam = np.array([5.0, 99.0, 102.0, 300.0]), np.array([0.0, 0.05, 0.0, 1.0])
    res, ref = model.ridge(n, lam), centred.ridge(n - 1, lam * n / (n - 1))
    np.testing.assert_allclose(res.test_error, (1 + 1 / n) * ref.test_error, rtol=1e-14)
    np.testing.assert_allclose(res.train_error, (n - 1) / n * ref.train_error, rtol=1e-14)
    np.testing.assert_allclose(res.noise_floor + res.bias + res.variance, res.test_error, rtol=1e-10)
    np.testing.assert_allclose(model.ridge_high_precision(n, lam).test_error, res.test_error, rtol=1e-10)
    np.testing.assert_array_equal(res.n, n)
    with pytest.raises(ValueError, match="n must be > 1"):
        model.ridge(1.0, 0.1)
    with pytest.raises(TypeError, match="intercept"):
        GaussianCovariateModel(omega, b, y2, intercept="yes")
    with pytest.raises(ValueError, match="readout"):
        GaussianCovariateModel.from_teacher(omega, omega[:, :1], np.eye(1), np.ones(1), 0.1, readout="centred")
    with pytest.raises(ValueError, match="feature_mean"):
        GaussianCovariateModel.from_teacher(omega, omega[:, :1], np.eye(1), np.ones(1), 0.1, feature_mean=np.ones(3))
