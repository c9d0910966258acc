"""Trained-feature experiments at quick size: plug-in theory vs ridge on held-out data."""
import numpy as np
import pytest

from asymptotics import experiments


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return experiments.run("mnist-even-odd", quick=True, out=out)


def test_digits_theory_agrees_with_ridge_on_held_out_data(digits_run):
    """Every point is compared with its combined standard error (20 subsamples + the shared
    180-point test set): ≥ 90 % of the 360 points (18 sample sizes, 4 λ, 5 panels) within 3σ, none
    beyond 4σ."""
    overall = digits_run["agreement"]["overall"]
    assert overall["n_points"] == 360
    assert overall["fraction_within_3sigma"] >= 0.9 and overall["max_abs_z"] < 4


def test_training_improves_the_network_and_its_features(digits_run):
    notes = digits_run["notes"]
    mse = [notes[f"epoch {e}"]["network test MSE"] for e in (0, 1, 5, 120)]
    assert all(a > b for a, b in zip(mse, mse[1:]))
    assert notes["final training loss"] < 1e-3


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return experiments.run("trained-features-synthetic", quick=True, out=out)


def _checks(run) -> dict:
    return {c["name"]: c for c in run["agreement"]["checks"]}


def test_synthetic_plug_in_theory_agrees_before_feature_learning(synthetic_run):
    """Every sample is fresh (one 10⁵-row evaluation sample is the covariance sample and the test
    set, so the estimation errors are negligible and shared by theory and simulation); z-scores are
    over the 10 independent repeats only. At initialisation, at epoch 3 and for raw inputs the
    point-wise null check passes, and next to the peak n = p the mean relative deviation is within
    3 of its standard errors of 0."""
    checks = _checks(synthetic_run)
    for name in ("plug-in theory at epoch 0", "plug-in theory at epoch 3",
                 "plug-in theory, linear regression (raw inputs)"):
        assert checks[name]["passed"], name
    for e in (0, 3):
        c = checks[f"plug-in theory next to the peak n = p at epoch {e}, λ_c = 0.1"]
        assert c["passed"] and abs(c["measured"]) < 0.05, c


def test_synthetic_trained_features_deviation_after_feature_learning_is_bounded(synthetic_run):
    """After the first layer has learned the teacher's direction (epoch 10: the network's test MSE
    0.08 from 1.38) the plug-in theory is no longer exact (measured at medium size and with 200
    repeats, docs/trained_features.md: a few per cent below it next to the peak, above it at
    n ≫ p). At quick size (10 repeats) the deviation is bounded by what medium size measured within
    three of its standard errors: next to the peak |mean deviation| < 0.15 + 3 SE, at the largest n
    < 0.05 + 3 SE."""
    checks = _checks(synthetic_run)
    assert synthetic_run["notes"]["epoch 10"]["network test MSE"] < 0.2
    for regime, bound in (("next to the peak n = p", 0.15), ("at the largest n", 0.05)):
        c = checks[f"plug-in theory {regime} at epoch 10, λ_c = 0.1"]
        assert abs(c["measured"]) < bound + 3 * c["se"], c


def test_synthetic_trained_features_beat_initialisation_and_linear_regression(synthetic_run):
    """Paired over the repeats (the same fresh training inputs for every feature map), at the
    largest n and each map's best λ_c: trained − init and trained − linear below 0 by > 3 SE."""
    checks = _checks(synthetic_run)
    for name in ("trained features beat features at initialisation", "trained features beat linear regression"):
        assert checks[name]["passed"], name
    best = synthetic_run["notes"]["best test error at the largest n"]
    assert best["trained"] < best["linear"] < best["init"]


def test_synthetic_linearised_theory_close_to_plug_in_at_init(synthetic_run):
    notes = synthetic_run["notes"]
    assert notes["max relative difference, linearised vs plug-in theory at init"] < 0.15
    # Plug-in bias check. The theory at small λ is dominated by the residual variance
    # σ_res² = E[y²] − bᵀΩ⁻¹b, whose plug-in estimate from m rows is an in-sample least-squares
    # residual: low by the factor (1 − p/m), with a sampling fluctuation of relative size
    # √(Var r²/m)/σ_res² = √(2/m) for near-Gaussian residuals. Halving m therefore moves the theory
    # by ≈ p/m ± √(2/m): bound p/m + 5√(2/m) (0.025 for the 256-wide features, 0.023 for the 64 raw
    # inputs at m = 10⁵).
    m = synthetic_run["parameters"]["n_test"]
    params = synthetic_run["parameters"]
    widths = {"epoch 0": params["widths"][-1], "epoch 10": params["widths"][-1], "linear regression (raw inputs)": params["d"]}
    for name, width in widths.items():
        bound = width / m + 5 * np.sqrt(2 / m)
        assert bound < 0.03
        assert notes[name]["max relative change of the theory with half of the covariance part"] < bound, name
    # Gaussian-covariate diagnostic: at initialisation the residual of the best linear predictor
    # is (nearly) independent of the leverage (ρ ≈ 1; its sampling error on 10⁵ rows is ≈ 0.01).
    assert abs(notes["epoch 0"]["leverage-residual ratio rho (1 for Gaussian covariates)"] - 1) < 0.05


def _small_spec(**changes):
    from simulations.trained import SyntheticTrainedSpec

    fields = dict(d=6, k=5, widths=(8,), activation="tanh", init="gauss", epochs=3, lr=1e-2, snapshots=(0, 3),
                  n_adam=40, n_test=50, ns=(10, 20), lams=(0.01, 0.1), repeats=2)
    return SyntheticTrainedSpec(**(fields | changes))


def test_trained_specs_validate_once_and_round_trip():
    from simulations.spec import spec_from_json
    from simulations.trained import TrainedSpec

    spec = _small_spec()
    assert spec_from_json(spec.to_json()) == spec
    assert spec.lam_grid().shape == (2, 2)
    per_n = _small_spec(lams=[[0.1, 1.0], [0.05, 0.5]])
    assert per_n.lams == ((0.1, 1.0), (0.05, 0.5)) and per_n.key() != spec.key()
    digits = TrainedSpec(data="digits", widths=[4], activation="relu", epochs=1, lr=1e-3, snapshots=[0],
                         ns=[5], lams=[1.0], repeats=2)
    assert spec_from_json(digits.to_json()) == digits
    for bad, match in ((dict(lams=(-1.0,)), "lams"), (dict(lams=((1.0,),)), "lams"), (dict(ns=(0,)), "ns"),
                       (dict(init="he"), "init"), (dict(snapshots=(4,)), "snapshots"), (dict(lr=0.0), "lr")):
        with pytest.raises(ValueError, match=match):
            _small_spec(**bad)


def test_tasks_accept_the_dict_form_and_convert_the_deprecated_lam_c():
    from simulations.trained import SyntheticTrainedSpec, synthetic_trained_task

    spec = _small_spec(lams=[[0.1 / 10, 1.0 / 10], [0.1 / 20, 1.0 / 20]])
    old = {k: v for k, v in spec.to_dict().items() if k not in ("kind", "lams")} | {"lam_c": [0.1, 1.0]}
    with pytest.warns(DeprecationWarning, match="lam_c"):
        assert SyntheticTrainedSpec.from_dict(old) == spec
    seed = np.random.SeedSequence(3)
    a = synthetic_trained_task(spec, seed)
    with pytest.warns(DeprecationWarning):
        b = synthetic_trained_task(old, seed)
    np.testing.assert_array_equal(a["snapshots"][-1]["test_error"], b["snapshots"][-1]["test_error"])
    assert a["linear"]["test_error"].shape == (2, 2, 2)


def test_sample_grid_has_points_on_both_sides_of_every_peak():
    """Learning curves with an interpolation peak at n = p get simulated points within ±10 % on both
    sides (never at p): for the feature count and, for linear regression, the input dimension."""
    from asymptotics.experiments.trained import _grid_with_peaks

    ns = _grid_with_peaks(50, 2000, 8, [256, 64])
    for p in (256, 64):
        assert p not in ns
        assert any(0.9 * p <= n < p for n in ns) and any(p < n <= 1.1 * p for n in ns)
    assert ns == sorted(set(ns)) and min(ns) >= 50 and max(ns) <= 2000
