"""Deep random-feature sweep tasks (simulations.deep)."""
import numpy as np
import pytest

from simulations.deep import build_network, deep_ridge_task, moments_task
from simulations.sweep import task_seed

SPEC = {"d": 20, "widths": [30, 30], "activations": ["tanh", "tanh"],
        "teacher": {"widths": [20], "noise": 0.1}, "weight_seed": 3}


def test_network_is_rebuilt_identically_from_its_spec():
    w1, a1, t1 = build_network(SPEC)
    w2, a2, t2 = build_network(dict(SPEC))
    assert all(np.array_equal(x, y) for x, y in zip(w1, w2)) and np.array_equal(t1.theta, t2.theta)
    assert [w.shape for w in w1] == [(30, 20), (30, 30)] and t1.is_linear and t1.k == 20
    w3, _, _ = build_network({**SPEC, "weight_seed": 4})
    assert not np.array_equal(w1[0], w3[0])


def test_task_is_deterministic_and_errors_are_consistent():
    params = {"network": SPEC, "n": 60, "lams": [0.0, 0.1, 10.0], "n_test": 3000}
    a = deep_ridge_task(params, task_seed(0, "t", params, 0))
    b = deep_ridge_task(params, task_seed(0, "t", params, 0))
    assert np.array_equal(a["test_error"], b["test_error"])
    assert np.all(np.diff(a["train_error"]) > 0)  # training error grows with λ
    assert a["train_error"][0] > 0  # n = 60 > p = 30: least squares cannot interpolate
    big = deep_ridge_task({**params, "n": 10}, task_seed(0, "t", params, 1))
    assert big["train_error"][0] < 1e-20  # n = 10 < p = 30: ridgeless interpolates


def test_moments_task_estimates_label_variance():
    params = {"network": SPEC, "n_samples": 40_000}
    est = moments_task(params, task_seed(0, "m", params, 0))
    _, _, teacher = build_network(SPEC)
    # y = θᵀx/√d + σε with x ~ N(0, I): E y² = ‖θ‖²/d + σ²; standard error ≈ E y² √(2/n)
    expected = teacher.theta @ teacher.theta / 20 + 0.01
    assert abs(est["y2"] - expected) < 5 * expected * np.sqrt(2 / 40_000)
    assert est["omega"].shape == (30, 30) and np.allclose(est["omega"], est["omega"].T)


def test_bad_spec():
    with pytest.raises(ValueError, match="activations"):
        build_network({**SPEC, "activations": ["tanh"]})
    with pytest.raises(ValueError, match="teacher"):
        build_network({**SPEC, "teacher": {"widths": [7]}})
    with pytest.raises(ValueError, match="spec needs"):
        build_network({"d": 3})


def test_specs_validate_once_and_accept_the_dict_form():
    from simulations.deep import DeepFeaturesSpec, DeepMomentsSpec, check_network
    from simulations.spec import spec_from_json

    params = {"network": SPEC, "n": 40, "lams": [0.0, 0.1], "n_test": 500}
    spec = DeepFeaturesSpec.from_dict(params)
    assert spec.network == check_network(SPEC) and spec.dtype == "float64"
    assert spec_from_json(spec.to_json()) == spec
    seed = task_seed(0, "t", params, 0)
    a, b = deep_ridge_task(params, seed), deep_ridge_task(spec, seed)
    assert np.array_equal(a["test_error"], b["test_error"])
    with pytest.raises(ValueError, match="n_test"):
        DeepFeaturesSpec(network=SPEC, n=40, lams=(0.1,), n_test=0)
    with pytest.raises(ValueError, match="unknown field"):
        DeepMomentsSpec.from_dict({"network": SPEC, "n_samples": 10, "n": 3})
