"""Ridge regression on trained features: data splits, moment estimates, empirical learning curves.

Protocol (spec deep_structured_features §3–§4)
-----------------------------------------------
Four disjoint parts of the data: *adam* (trains the network), *covariance* (estimates the moments),
*regression* (ridge training sets are drawn from it) and *test*. For a feature map φ (a snapshot of
the network, or the raw inputs for linear regression):

* μ̂ = mean of φ over the covariance part; every feature vector is centred, φ̃ = φ − μ̂;
* Ω̂ = E_cov[φ̃φ̃ᵀ], b̂ = E_cov[φ̃ y], E[y²] ≈ mean of y² over the covariance part — the plug-in
  moments of the Gaussian-covariate theory (the theory side builds its model from them);
* the same with the first half of the covariance part (the spec's check of the plug-in bias);
* ridge θ̂ = (F̃ᵀF̃/n + λI)⁻¹F̃ᵀy/n on n rows drawn without replacement from the regression part
  (``repeats`` draws per n), every λ from one decomposition (:func:`simulations.ridge.ridge_path`);
  test error = mean of (y − φ̃ᵀθ̂)² over the test part, with its standard error over test points.

No intercept is fitted (features are centred, labels are not): the theory sees the same E[y²].

Randomness: splits from ``child_rng(seed, 10)``, the network from ``child_rng(seed, 11)``,
mini-batch orders from ``child_rng(seed, 12)``, ridge subsamples of n-index i from
``child_rng(seed, 13, i)``, synthetic inputs of part j from ``child_rng(seed, 20, j)``.
"""
from __future__ import annotations

import numpy as np

from .covariance import MomentAccumulator
from .data import even_odd_labels, load_digits, load_mnist, split_and_normalise
from .features import feature_map, random_weights
from .ridge import _check_lams, ridge_path
from .rng import child_rng
from .training import init_mlp, train

__all__ = ["plug_in_moments", "ridge_curves", "evaluate_features", "load_dataset", "mnist_even_odd_task",
           "synthetic_trained_task"]

_CHUNK = 4096


def plug_in_moments(F_cov: np.ndarray, y_cov: np.ndarray) -> dict:
    """Centred plug-in moments {omega, b, y2, mean} of features F_cov (rows) with labels y_cov."""
    acc = MomentAccumulator()
    for i in range(0, F_cov.shape[0], _CHUNK):
        acc.update(F_cov[i:i + _CHUNK], None, y_cov[i:i + _CHUNK])
    m = acc.finalize(center=True)
    # E[y²] is the raw second moment (finalize never centres y2); b = E[(φ − μ)y]
    return {"omega": m.omega, "b": m.b, "y2": float(m.y2), "mean": m.mean_phi}


def ridge_curves(F_reg, y_reg, F_test, y_test, ns, lams_of_n, repeats: int, seed) -> dict:
    """Test errors of ridge on ``repeats`` subsamples of size n of (F_reg, y_reg) for each n.

    ``lams_of_n(n)`` gives the λ grid (project convention) at n. Returns arrays (N, R, L):
    ``test_error`` and ``test_se`` (standard error of that mean over the test points).
    """
    ns = [int(n) for n in ns]
    if any(n < 1 or n > F_reg.shape[0] for n in ns):
        raise ValueError(f"ns must lie in [1, {F_reg.shape[0]}] (the regression part), got {ns}")
    F_test64 = np.asarray(F_test, dtype=np.float64)
    out_err, out_se = [], []
    for i, n in enumerate(ns):
        rng = child_rng(seed, 13, i)
        lams = _check_lams(np.atleast_1d(np.asarray(lams_of_n(n), dtype=np.float64)))
        errs, ses = [], []
        for _ in range(repeats):
            rows = np.sort(rng.choice(F_reg.shape[0], size=n, replace=False))
            # the Gram route is twice as fast; the SVD keeps λ ≈ 0 accurate near the peak n ≈ p
            near_peak = abs(n - F_reg.shape[1]) < 0.2 * F_reg.shape[1] or lams.min() == 0
            path = ridge_path(np.asarray(F_reg[rows], dtype=np.float64), y_reg[rows], lams,
                              method="svd" if near_peak else "gram")
            sq = (y_test[:, None] - F_test64 @ path.theta) ** 2
            errs.append(sq.mean(axis=0))
            ses.append(sq.std(axis=0, ddof=1) / np.sqrt(sq.shape[0]))
        out_err.append(errs)
        out_se.append(ses)
    return {"test_error": np.array(out_err), "test_se": np.array(out_se)}


def evaluate_features(featurize, parts: dict, labels: dict, ns, lams_of_n, repeats: int, seed) -> dict:
    """Plug-in moments (full and half covariance part) and empirical ridge curves of one feature map."""
    F = {k: np.asarray(featurize(parts[k]), dtype=np.float64) for k in ("covariance", "regression", "test")}
    full = plug_in_moments(F["covariance"], labels["covariance"])
    half_rows = F["covariance"].shape[0] // 2
    half = plug_in_moments(F["covariance"][:half_rows], labels["covariance"][:half_rows])
    mu = full["mean"]
    curves = ridge_curves(F["regression"] - mu, labels["regression"], F["test"] - mu, labels["test"], ns,
                          lams_of_n, repeats, seed)
    return {"omega": full["omega"], "b": full["b"], "y2": full["y2"], "omega_half": half["omega"],
            "b_half": half["b"], "y2_half": half["y2"], **curves}


def load_dataset(source: str):
    """``"digits"`` (scikit-learn's shipped 8×8 digits) or a path accepted by :func:`load_mnist`."""
    if source == "digits":
        return load_digits()
    return load_mnist(source)


def _lams_of_n(params: dict):
    """λ grid at n: ``lam_c`` (the paper's sum-loss λ_c, λ = λ_c/n) or ``lams`` (project convention)."""
    if "lam_c" in params:
        lam_c = np.asarray(params["lam_c"], dtype=np.float64)
        return lambda n: lam_c / n
    lams = np.asarray(params["lams"], dtype=np.float64)
    return lambda n: lams


def _train_and_evaluate(params: dict, seed, parts: dict, labels: dict) -> dict:
    d = parts["adam"].shape[1]
    mlp = init_mlp(d, params["widths"], params["activation"], child_rng(seed, 11).integers(2**63),
                   init=params.get("init", "glorot"), dtype=params.get("dtype", "float64"))
    run = train(mlp, parts["adam"], labels["adam"], epochs=int(params["epochs"]), lr=float(params["lr"]),
                batch_size=params.get("batch_size"), weight_decay=float(params.get("weight_decay", 0.0)),
                seed=child_rng(seed, 12).integers(2**63), snapshots=params["snapshots"])
    ns, lams_of_n, repeats = params["ns"], _lams_of_n(params), int(params["repeats"])
    out = {"snapshots": [], "loss_history": run.loss_history}
    for snap in run.snapshots:
        ev = evaluate_features(snap.mlp.features, parts, labels, ns, lams_of_n, repeats, seed)
        net_mse = float(np.mean((snap.mlp.predict(parts["test"]) - labels["test"]) ** 2))
        out["snapshots"].append({"epoch": snap.epoch, "step": snap.step, "network_test_mse": net_mse, **ev})
        if params.get("return_weights") and snap.step == 0:
            out["init_weights"] = [w.astype(np.float64) for w in snap.mlp.weights]
    out["linear"] = evaluate_features(lambda X: X, parts, labels, ns, lams_of_n, repeats, seed)
    out["sizes"] = {k: int(v.shape[0]) for k, v in parts.items()}
    return out


def mnist_even_odd_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """MNIST (or digits) even/odd: split 10/25/25/40 and normalise (train-only statistics), train the
    network with Adam on the adam part, and for every snapshot (and raw pixels) return the plug-in
    moments and the empirical ridge curves (see the module docstring).

    ``params``: data ("digits" or a path), widths, activation, epochs, lr, batch_size, snapshots
    (epochs), ns, lam_c (sum-loss λ_c; λ = λ_c/n) or lams, repeats; optional weight_decay, init, dtype.
    """
    X, digit = load_dataset(params["data"])
    sp = split_and_normalise(X, even_odd_labels(digit), child_rng(seed, 10))
    return _train_and_evaluate(params, seed, sp.X, sp.y)


def synthetic_trained_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """Synthetic data: x ~ N(0, I_d), y = θᵀ tanh(W* x)/√k (W* entries N(0, 1/d), θ ~ N(0, I_k),
    no noise); parts of sizes ``n_adam, n_cov, n_reg, n_test``; otherwise as :func:`mnist_even_odd_task`
    (full-batch Adam when ``batch_size`` is None). Also returns the teacher's weights for the
    closed-form theory at initialisation."""
    d, k = int(params["d"]), int(params["k"])
    trng = child_rng(seed, 19)
    W_star = random_weights([d, k], trng)[0]
    theta = trng.standard_normal(k)

    def label(X):
        return feature_map(X, [W_star], ["tanh"], dtype=np.float64) @ theta / np.sqrt(k)

    parts, labels = {}, {}
    for j, name in enumerate(("adam", "covariance", "regression", "test")):
        size = int(params[{"adam": "n_adam", "covariance": "n_cov", "regression": "n_reg", "test": "n_test"}[name]])
        parts[name] = child_rng(seed, 20, j).standard_normal((size, d))
        labels[name] = label(parts[name])
    out = _train_and_evaluate(params, seed, parts, labels)
    out["teacher"] = {"W": W_star, "theta": theta}
    return out

