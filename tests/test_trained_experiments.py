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
    180-point test set): ≥ 90 % of the 200 points within 3σ, none beyond 4σ."""
    overall = digits_run["agreement"]["overall"]
    assert overall["n_points"] == 200
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
    per = synthetic_run["agreement"]["series"]
    for key, ag in per.items():
        if not key.startswith("epoch 1000"):  # fixed features: Gaussian-equivalent plug-in
            assert ag["fraction_within_3sigma"] == 1.0, key
        assert ag["max_relative_deviation"] < 0.15, key


def test_synthetic_linearised_theory_close_to_plug_in_at_init(synthetic_run):
    notes = synthetic_run["notes"]
    assert notes["max relative difference, linearised vs plug-in theory at init"] < 0.15
    for name in ("epoch 0", "epoch 1000", "linear regression (raw inputs)"):
        assert notes[name]["max relative change of the theory with half of the covariance part"] < 0.05
    best = notes["best test error at the largest n"]
    assert best["trained"] < best["init"]
