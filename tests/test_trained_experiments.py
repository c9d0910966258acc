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


def test_synthetic_plug_in_theory_agrees(synthetic_run):
    """Fixed features (at initialisation, raw inputs) are Gaussian-equivalent: every point within 3
    standard errors (next to the interpolation peaks a 10-repeat mean fluctuates by ~25 % relative,
    so only the error-bar statement is meaningful there). Trained features: within 15 % relative."""
    per = synthetic_run["agreement"]["series"]
    for key, ag in per.items():
        if key.startswith("epoch 1000"):
            assert ag["max_relative_deviation"] < 0.15, key
        else:
            assert ag["fraction_within_3sigma"] == 1.0, key


def test_synthetic_linearised_theory_close_to_plug_in_at_init(synthetic_run):
    notes = synthetic_run["notes"]
    assert notes["max relative difference, linearised vs plug-in theory at init"] < 0.15
    # Plug-in bias check. The theory at small λ is dominated by the residual variance
    # σ_res² = E[y²] − bᵀΩ⁻¹b, whose plug-in estimate from m covariance rows is an in-sample
    # least-squares residual: low by the factor (1 − p/m), with a sampling fluctuation of relative
    # size √(Var r²/m)/σ_res² = √(2/m) for near-Gaussian residuals (measured kurtosis 3.2–3.4 here).
    # Halving m therefore moves the theory by ≈ p/m ± √(2/m) (measured over 16 seeds at init:
    # −0.030 ± 0.015 at m = 8000, −0.008 ± 0.009 at m = 32000, p = 256). Bound: that bias plus
    # 5 fluctuations — 0.047 for the 256-wide features and 0.042 for the 64 raw inputs at the quick
    # n_cov = 32000, both under the 5 % that makes the bias negligible next to the error bars.
    # (At n_cov = 8000 the expected value 0.032 ± 0.016 exceeded 5 % for about a third of seeds.)
    n_cov = synthetic_run["parameters"]["n_cov"]
    p = {"epoch 0": synthetic_run["parameters"]["widths"][-1], "epoch 1000": synthetic_run["parameters"]["widths"][-1],
         "linear regression (raw inputs)": synthetic_run["parameters"]["d"]}
    for name, width in p.items():
        bound = width / n_cov + 5 * np.sqrt(2 / n_cov)
        assert bound < 0.05
        assert notes[name]["max relative change of the theory with half of the covariance part"] < bound, name
    best = notes["best test error at the largest n"]
    assert best["trained"] < best["init"]


def _small_spec(**changes):
    from simulations.trained import SyntheticTrainedSpec

    fields = dict(d=6, k=5, widths=(8,), activation="tanh", init="gauss", epochs=3, lr=1e-2, snapshots=(0, 3),
                  n_adam=40, n_cov=60, n_reg=30, n_test=50, ns=(10, 20), lams=(0.01, 0.1), repeats=2)
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
    for bad, match in ((dict(lams=(-1.0,)), "lams"), (dict(lams=((1.0,),)), "lams"), (dict(ns=(40,)), "ns"),
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
