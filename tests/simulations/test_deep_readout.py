"""Ridge on uncentred (relu) deep random features: the raw readout and the intercept readout of
the simulator against the theory of the same realised network (exact propagated means)."""
import numpy as np
import pytest

from asymptotics.experiments.deep import network_spec, theory_model
from simulations.deep import DeepFeaturesSpec, deep_ridge_task
from simulations.rng import child_seed

SEEDS = 16
LAMS = (0.0, 1e-2, 0.3)


@pytest.mark.parametrize("readout", ["raw", "intercept"])
def test_relu_ridge_simulation_agrees_with_theory(readout):
    """2-layer relu, d = 50, p = 100, linear teacher σ = 0.1; n on both sides of the peak; every
    (n, λ) point: |mean − theory| within 3 standard errors of the mean over 16 seeds at ≥ 95 % of
    the 18 points (at most one outside)."""
    d, p = 50, 100
    spec = network_spec(d, [p, p], ["relu", "relu"], noise=0.1, seed=3)
    model = theory_model(spec, readout=readout)
    ns = [int(f * p) for f in (0.3, 0.7, 0.9, 1.1, 1.5, 3.0)]
    z = []
    for n in ns:
        task = DeepFeaturesSpec(network=spec, n=n, lams=LAMS, n_test=2000, readout=readout)
        sim = np.array([deep_ridge_task(task, child_seed(11, n, s))["test_error"] for s in range(SEEDS)])
        theory = model.ridge(float(n), np.array(LAMS)).test_error
        z.append((sim.mean(0) - theory) / (sim.std(0, ddof=1) / np.sqrt(SEEDS)))
    z = np.concatenate(z)
    assert np.mean(np.abs(z) < 3) >= 0.95, z


def test_readout_field():
    spec = network_spec(10, [12], ["relu"])
    raw = DeepFeaturesSpec(network=spec, n=20, lams=(0.1,), n_test=10)
    assert "readout" not in raw.to_dict()  # the raw readout keeps the canonical form (and seeds) of earlier specs
    inter = raw.replace(readout="intercept")
    assert inter.to_dict()["readout"] == "intercept" and inter.key() != raw.key()
    assert DeepFeaturesSpec.from_dict(inter.to_dict()) == inter
    with pytest.raises(ValueError, match="readout"):
        raw.replace(readout="centred")
    with pytest.raises(ValueError, match="n must be at least 2"):
        DeepFeaturesSpec(network=spec, n=1, lams=(0.1,), n_test=10, readout="intercept")

