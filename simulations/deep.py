"""Finite-size simulation of ridge regression on deep random features (sweep tasks).

A network is described by a small JSON-like ``spec`` so that sweep tasks can rebuild the same
realised weights anywhere (the theory is conditional on them):

    {"d": d, "widths": [p_1, ..., p_L], "activations": [σ_1, ..., σ_L],
     "teacher": {"widths": [d, k_1, ..., k_{L*}], "activations": [...], "noise": σ},
     "weight_seed": s}

Student weights are W_ℓ = Z_ℓ/√p_{ℓ−1} drawn from ``child_rng(s, 0)``; the teacher (weights and
readout θ* ~ N(0, I_k)) from ``child_rng(s, 1)``; ``"widths": [d]`` is the linear teacher
ψ(x) = x. Labels y = θ*ᵀψ(x)/√k + σ ε; inputs x ~ N(0, I_d).

``{"kind": "rainbow", "d": d, "gamma": γ, "weight_seed": s}`` is the structured network of the
deep-features paper's rainbow figure (spec §4 F3): with D_γ = diag(i^-γ),
W_s = Z_s D_0.3^{1/2}/√d, W_1 = ½ Z_1 D_γ^{1/2}/√d + ½ W_s, C_3 = (W_1W_1ᵀ + ½I)⁻¹,
W_3 = Z_3 C_3^{1/2}/√d; φ(x) = tanh(W_3 tanh(W_1 tanh(W_1 x))) (W_1 used twice), teacher
y = θᵀ tanh(W_s x)/√d, θ ~ N(0, I_d), no noise.
"""
from __future__ import annotations

import numpy as np

from .covariance import MomentAccumulator
from .features import SampleStream, Teacher, random_teacher, random_weights
from .ridge import _check_lams, ridge_path
from .rng import child_rng

__all__ = ["build_network", "deep_ridge_task", "moments_task"]


def build_network(spec: dict) -> tuple[list[np.ndarray], list, Teacher]:
    """(student weights, student activations, teacher) of a network ``spec`` (module docstring)."""
    if spec.get("kind") == "rainbow":
        return _rainbow(spec)
    try:
        d = int(spec["d"])
        widths = [int(w) for w in spec["widths"]]
        acts = list(spec["activations"])
        tspec = spec["teacher"]
        seed = int(spec["weight_seed"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"network spec needs d, widths, activations, teacher, weight_seed: {exc}") from exc
    if len(acts) != len(widths):
        raise ValueError(f"spec: {len(acts)} activations for {len(widths)} layers")
    weights = random_weights([d] + widths, child_rng(seed, 0))
    t_widths = [int(w) for w in tspec["widths"]]
    if t_widths[0] != d:
        raise ValueError(f"spec['teacher']['widths'][0] must be d = {d}, got {t_widths[0]}")
    teacher = random_teacher(t_widths, list(tspec.get("activations", [])), child_rng(seed, 1),
                             noise=float(tspec.get("noise", 0.0)))
    return weights, acts, teacher


def _rainbow(spec: dict):
    d, gamma, seed = int(spec["d"]), float(spec["gamma"]), int(spec["weight_seed"])
    i = np.arange(1, d + 1, dtype=np.float64)
    ws = random_weights([d, d], child_rng(seed, 0), [np.diag(i**-0.3)])[0]
    w1 = 0.5 * random_weights([d, d], child_rng(seed, 1), [np.diag(i**-gamma)])[0] + 0.5 * ws
    c3 = np.linalg.inv(w1 @ w1.T + 0.5 * np.eye(d))
    w3 = random_weights([d, d], child_rng(seed, 2), [c3])[0]
    theta = child_rng(seed, 3).standard_normal(d)
    return [w1, w1, w3], ["tanh"] * 3, Teacher(theta, (ws,), ("tanh",), 0.0)


def deep_ridge_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """One sweep task: ridge on n samples of deep random features, every λ of the path.

    ``params``: ``network`` (spec), ``n``, ``lams`` (mean-loss λ), ``n_test``, optional ``dtype``
    ("float64" default). The test error is the mean squared error (label noise included) on
    ``n_test`` fresh samples. Returns ``{"test_error": (L,), "train_error": (L,)}``.
    """
    weights, acts, teacher = build_network(params["network"])
    lams = _check_lams(params["lams"])
    dtype = np.dtype(params.get("dtype", "float64"))
    stream = SampleStream(weights, acts, np.random.Generator(np.random.PCG64(seed)), teacher=teacher, dtype=dtype)
    train = stream.take(int(params["n"]))
    path = ridge_path(train.phi, train.y, lams)
    test = stream.take(int(params["n_test"]))
    resid = test.y.astype(np.float64)[:, None] - test.phi.astype(np.float64) @ path.theta
    return {"test_error": np.mean(resid**2, axis=0), "train_error": path.train_error}


def moments_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """Monte-Carlo estimate of (Ω, Φ, Ψ, E[y²]) from ``n_samples`` fresh samples (streamed)."""
    weights, acts, teacher = build_network(params["network"])
    stream = SampleStream(weights, acts, np.random.Generator(np.random.PCG64(seed)), teacher=teacher)
    acc = MomentAccumulator()
    n, chunk = int(params["n_samples"]), int(params.get("chunk", 4096))
    done = 0
    while done < n:
        c = stream.take(min(chunk, n - done))
        acc.update(c.phi, c.psi, c.y)
        done += len(c)
    est = acc.finalize(center=False)
    return {"omega": est.omega, "phi": est.phi, "psi": est.psi, "y2": est.y2, "b": est.b}
