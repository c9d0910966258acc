"""Statistical agreement of the deterministic equivalent with finite-size simulation.

At fixed seeds these are deterministic; they fail if the theory (or the simulator) is off by more
than the error bars allow: |z| < 4 for every point, z = (mean − theory)/(std/√S). With 24 points
and Gaussian z-scores a false failure has probability ≈ 24 · 6e-5 ≈ 1.5e-3 per seed choice; the
finite-size bias of the deterministic equivalent for Gaussian features (O(1/p) relative) is below
the standard errors at these sizes.
"""
import numpy as np
import pytest

from asymptotics import GaussianCovariateModel
from asymptotics.compare import agreement
from simulations.data import power_law_spectrum
from simulations.ridge import learning_curve

SEEDS = 200


NOISE = 0.1  # label-noise variance σ² (bᵀΩ⁻¹b = 1): large enough that a 10 % error in it is visible
NS, LAMS = np.array([30, 60, 150, 300]), np.array([1e-3, 1e-2, 0.1])


def _power_law_model(noise_variance):
    w, b = power_law_spectrum(100, 1.5, 1.0)
    return GaussianCovariateModel.from_spectrum(w, b, 1.0 + noise_variance)


@pytest.fixture(scope="module")
def power_law_run():
    w, b = power_law_spectrum(100, 1.5, 1.0)
    sim = learning_curve(w, b, 1.0 + NOISE, NS, LAMS, SEEDS, seed=7)
    theory = _power_law_model(NOISE).ridge(NS[:, None].astype(float), LAMS[None, :])
    return theory, sim


@pytest.mark.parametrize("kind", ["test", "train"])
def test_power_law_agreement_within_error_bars(power_law_run, kind):
    theory, sim = power_law_run
    t = theory.test_error if kind == "test" else theory.train_error
    mean = sim.mean_test if kind == "test" else sim.mean_train
    std = sim.std_test if kind == "test" else sim.std_train
    ag, z = agreement(t, mean, std, SEEDS)
    assert np.all(np.abs(z) < 4), z
    assert ag.fraction_within_3sigma >= 0.9


def test_theory_differs_detectably_from_a_wrong_model(power_law_run):
    """The same comparison rejects a model with 10 % more label noise (σ² = 0.11 instead of 0.1):
    the test has power.

    The wrong theory is higher by (1 + variance factor)·0.01 ≈ 0.010–0.018 at every point; with
    200 seeds the standard error at the large-n points is ≈ 8·10⁻⁴, so the shift is more than
    8 standard errors there (checked below, from the error bars themselves) and the wrong model's
    z-scores reach ≈ 13 > 4 (a 5 % error still gives ≈ 6.5; the resolution is ≈ 3 %).
    """
    theory, sim = power_law_run
    grid = (NS[:, None].astype(float), LAMS[None, :])
    wrong = _power_law_model(1.1 * NOISE).ridge(*grid).test_error
    se = sim.std_test / np.sqrt(SEEDS)
    shift = wrong - theory.test_error
    assert np.all((shift > 0.01 * (1 - 1e-9)) & (shift < 0.02))  # a true 10 % of σ², times 1 + variance factor
    assert np.max(shift / se) > 8
    _, z = agreement(wrong, sim.mean_test, sim.std_test, SEEDS)
    assert np.max(np.abs(z)) > 4
    # ... while the right noise level passes the same criterion (test_power_law_agreement_...)
    _, z_right = agreement(theory.test_error, sim.mean_test, sim.std_test, SEEDS)
    assert np.max(np.abs(z_right)) < 4


def test_isotropic_ridgeless_overparametrised_agreement():
    """λ = 0, n > p: E_gen → σ²/(1 − p/n) (finite-n exact value σ²(1 + p/(n − p − 1)))."""
    p, noise = 80, 0.3
    w, b = np.ones(p), np.full(p, 1 / np.sqrt(p))
    model = GaussianCovariateModel.from_spectrum(w, b, 1 + noise**2)
    ns = np.array([400, 800])
    sim = learning_curve(w, b, 1 + noise**2, ns, np.array([0.0]), SEEDS, seed=3)
    exact_finite = noise**2 * (1 + p / (ns - p - 1))
    theory = model.ridge(ns.astype(float), 0.0).test_error
    _, z = agreement(exact_finite, sim.mean_test[:, 0], sim.std_test[:, 0], SEEDS)
    assert np.all(np.abs(z) < 4)
    # the deterministic equivalent differs from the finite-n value by O(1/(n − p)) only
    assert np.all(np.abs(theory - exact_finite) <= 2.0 / (ns - p) * exact_finite)


def test_deep_random_features_agree_with_the_linearised_theory():
    """2-layer tanh features (d = 100, p = 200), linear teacher: the simulated mean lies within
    4 standard errors plus a 5% finite-width allowance of the linearised theory (the measured
    deviation at this width is 1–4%, see the deep-rf-finite-size experiment)."""
    from asymptotics.experiments.deep import network_spec, theory_model
    from simulations.deep import deep_ridge_task
    from simulations.sweep import run_sweep

    spec = network_spec(100, [200, 200], ["tanh", "tanh"])
    model = theory_model(spec)
    ns, lams, seeds = [60, 120, 400, 800], [0.0, 0.01, 0.3], 24
    res = run_sweep(deep_ridge_task, [{"network": spec, "n": n, "lams": lams, "n_test": 4000} for n in ns],
                    seeds, experiment="test-deep")
    a = np.array([[r["test_error"] for r in res.results[i * seeds:(i + 1) * seeds]] for i in range(len(ns))])
    mean, se = a.mean(1), a.std(1, ddof=1) / np.sqrt(seeds)
    theory = model.ridge(np.array(ns, float)[:, None], np.array(lams)[None, :]).test_error
    assert np.all(np.abs(mean - theory) <= 4 * se + 0.05 * theory), (mean, theory, se)
    # ... and the comparison has power: a prediction 30% off is rejected
    assert np.any(np.abs(mean - 1.3 * theory) > 4 * se + 0.05 * theory)
