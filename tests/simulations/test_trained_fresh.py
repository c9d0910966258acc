"""Ridge on features of data drawn fresh from a known law (simulations.trained.evaluate_fresh)."""
import numpy as np
import pytest

from asymptotics.ridge import GaussianCovariateModel
from asymptotics.verdict import pointwise_check
from simulations.rng import stream
from simulations.trained import SyntheticTrainedSpec, evaluate_fresh


def _linear_law(d: int, noise: float, seed: int = 0):
    """x ~ N(0, I_d), y = βᵀx + noise·ε with β ~ N(0, I_d/d); samples of a path are reproducible."""
    beta = stream(seed, "beta").standard_normal(d) / np.sqrt(d)

    def draw(path, rows):
        g = stream(seed, "inputs", *path)
        X = g.standard_normal((rows, d))
        return X, X @ beta + noise * g.standard_normal(rows)

    return beta, draw


def test_gaussian_covariates_agree_with_the_deterministic_equivalent_over_independent_repeats():
    """Raw Gaussian inputs with a linear teacher are exactly the Gaussian covariate model: over
    independent fresh training sets, the repeat z-scores of the plug-in theory pass the point-wise
    null check (Student t with R − 1 dof), and the leverage–residual ratio is 1 within its error."""
    d, R = 20, 20
    _, draw = _linear_law(d, noise=0.5)
    ns = [10, 18, 22, 40, 100, 300]
    lams = np.array([1e-3, 0.1])
    ev = evaluate_fresh(lambda X: X, draw, ns, lams, R, n_test=50_000)
    theory = GaussianCovariateModel(ev["omega"], ev["b"], ev["y2"]).ridge(
        np.array(ns, float)[:, None], lams[None, :]).test_error
    err = ev["test_error"]
    z = (err.mean(axis=1) - theory) / (err.std(axis=1, ddof=1) / np.sqrt(R))
    assert pointwise_check("gaussian", z, R).passed
    # ρ − 1 for Gaussian x and independent noise is 0; its sampling error on 5·10⁴ rows is ≈ 0.01
    assert abs(ev["leverage_residual_ratio"] - 1) < 0.05
    assert ev["test_error"].shape == ev["test_se"].shape == (len(ns), R, 2)


def test_rescaled_features_with_rescaled_lambda_give_the_same_predictions():
    """Ridge on c·φ with λc² predicts exactly as ridge on φ with λ (θ ↦ θ/c); the same draw paths
    give the same samples to both feature maps, so the test errors coincide."""
    _, draw = _linear_law(6, noise=0.3, seed=4)
    lams = np.array([1e-2, 1.0])
    a = evaluate_fresh(lambda X: X, draw, [5, 30], lams, 3, n_test=9000)
    b = evaluate_fresh(lambda X: 3.0 * X, draw, [5, 30], 9.0 * lams, 3, n_test=9000)
    np.testing.assert_allclose(b["test_error"], a["test_error"], rtol=1e-9)
    np.testing.assert_allclose(b["omega"], 9.0 * a["omega"], rtol=1e-12)


def test_leverage_residual_ratio_of_a_heteroscedastic_residual():
    """y = ε‖x‖/√d (b = 0): r = y, h = ‖x‖², so ρ = E[‖x‖⁴]/d² = 1 + 2/d exactly (χ²_d moments).
    Relative standard deviation of ε²‖x‖⁴ at d = 4: √(3·1920 − 24²)/24 = 3, so on 2·10⁵ rows the
    estimate has a relative error ≈ 3/√(2·10⁵) ≈ 0.007; tolerance 5 of those."""
    d = 4

    def draw(path, rows):
        g = stream(7, "inputs", *path)
        X = g.standard_normal((rows, d))
        return X, g.standard_normal(rows) * np.linalg.norm(X, axis=1) / np.sqrt(d)

    ev = evaluate_fresh(lambda X: X, draw, [50], [0.1], 2, n_test=200_000)
    assert ev["leverage_residual_ratio"] == pytest.approx(1 + 2 / d, rel=5 * 0.0067)


def test_synthetic_spec_checks_teacher_and_evaluation_sample():
    fields = dict(d=6, k=1, widths=(8,), activation="tanh", epochs=1, lr=1e-2, snapshots=(0,), n_adam=10,
                  n_test=100, ns=(5,), lams=(0.1,), repeats=2, teacher="sign", teacher_readout="ones")
    assert SyntheticTrainedSpec(**fields).teacher == "sign"
    for bad, match in ((dict(teacher_readout="unit"), "teacher_readout"), (dict(n_test=1), "n_test"),
                       (dict(teacher=3), "teacher")):
        with pytest.raises(ValueError, match=match):
            SyntheticTrainedSpec(**(fields | bad))
    with pytest.raises((ValueError, KeyError), match="nope"):
        SyntheticTrainedSpec(**(fields | dict(teacher="nope")))
