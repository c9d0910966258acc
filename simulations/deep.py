"""Finite-size simulation of ridge regression on deep random features (sweep tasks).

A network is described by a small JSON-like dict (the ``network`` field of the specs below) so
that sweep tasks can rebuild the same realised weights anywhere (the theory is conditional on
them):

    {"d": d, "widths": [p_1, ..., p_L], "activations": [σ_1, ..., σ_L],
     "teacher": {"widths": [d, k_1, ..., k_{L*}], "activations": [...], "noise": σ},
     "weight_seed": s}

Student weights are W_ℓ = Z_ℓ/√p_{ℓ−1} drawn from ``stream(s, "student")``; the teacher (weights
and readout θ* ~ N(0, I_k)) from ``stream(s, "teacher")``; ``"widths": [d]`` is the linear
teacher ψ(x) = x. Labels y = θ*ᵀψ(x)/√k + σ ε; inputs x ~ N(0, I_d).

``{"kind": "rainbow", "d": d, "gamma": γ, "weight_seed": s}`` is the structured network of the
deep-features paper's rainbow figure: with D_γ = diag(i^-γ),
W_s = Z_s D_0.3^{1/2}/√d, W_1 = ½ Z_1 D_γ^{1/2}/√d + ½ W_s, C_3 = (W_1W_1ᵀ + ½I)⁻¹,
W_3 = Z_3 C_3^{1/2}/√d; φ(x) = tanh(W_3 tanh(W_1 tanh(W_1 x))) (W_1 used twice), teacher
y = θᵀ tanh(W_s x)/√d, θ ~ N(0, I_d), no noise. Z_s, Z_1, Z_3 and θ come from the streams
``"w_s"``, ``"w_1"``, ``"w_3"`` and ``"theta"`` of s.

Sweep tasks take a spec and the task's seed: :func:`deep_ridge_task` (a :class:`DeepFeaturesSpec`:
training samples from ``child_seed(seed, "train")``, test samples from ``child_seed(seed,
"test")``) and :func:`moments_task` (a :class:`DeepMomentsSpec`, samples from
``child_seed(seed, "moments")``). The linearised theory of these networks is derived in
``docs/theory/deep_features.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from asymptotics.validation import choice, finite_float, float_dtype, nonneg_float, nonneg_int, pos_int

from .covariance import MomentAccumulator
from .features import SampleStream, Teacher, random_teacher, random_weights
from .linalg import check_lams, ridge_path
from .rng import child_seed, stream
from .spec import ModelSpec, register_spec

__all__ = ["build_network", "check_network", "DeepFeaturesSpec", "DeepMomentsSpec", "deep_ridge_task",
           "moments_task"]

_NETWORK_KEYS = ("d", "widths", "activations", "teacher", "weight_seed")
_RAINBOW_KEYS = ("kind", "d", "gamma", "weight_seed")


# --------------------------------------------------------------------------- network descriptions
def check_network(network: dict) -> dict:
    """The canonical form of a network description (module docstring): checked once, tuples
    for lists, ints and floats normalised. Raises ``ValueError`` naming the bad entry."""
    if not isinstance(network, dict):
        raise ValueError(f"network spec must be a dict, got {type(network).__name__}")
    if network.get("kind") == "rainbow":
        return _check_rainbow(network)
    missing = [k for k in _NETWORK_KEYS if k not in network]
    unknown = sorted(set(network) - set(_NETWORK_KEYS))
    if missing or unknown:
        raise ValueError(f"network spec needs d, widths, activations, teacher, weight_seed: "
                         f"missing {missing}, unknown {unknown}")
    d = pos_int(network["d"], "network['d']")
    widths = tuple(pos_int(w, f"network['widths'][{i}]") for i, w in enumerate(network["widths"]))
    acts = tuple(network["activations"])
    if not widths or len(acts) != len(widths):
        raise ValueError(f"network spec: {len(acts)} activations for {len(widths)} layers")
    return {"d": d, "widths": widths, "activations": acts, "teacher": _check_teacher(network["teacher"], d),
            "weight_seed": nonneg_int(network["weight_seed"], "network['weight_seed']")}


def _check_teacher(teacher: dict, d: int) -> dict:
    if not isinstance(teacher, dict) or "widths" not in teacher:
        raise ValueError(f"network['teacher'] must be a dict with widths (and activations, noise), got {teacher!r}")
    unknown = sorted(set(teacher) - {"widths", "activations", "noise"})
    if unknown:
        raise ValueError(f"network['teacher']: unknown entries {unknown}")
    widths = tuple(pos_int(w, f"network['teacher']['widths'][{i}]") for i, w in enumerate(teacher["widths"]))
    if not widths or widths[0] != d:
        raise ValueError(f"network['teacher']['widths'][0] must be d = {d}, got {widths[:1]}")
    acts = tuple(teacher.get("activations", ()))
    if len(acts) != len(widths) - 1:
        raise ValueError(f"network['teacher']: {len(acts)} activations for {len(widths) - 1} layers")
    return {"widths": widths, "activations": acts, "noise": nonneg_float(teacher.get("noise", 0.0), "noise")}


def _check_rainbow(network: dict) -> dict:
    missing = [k for k in _RAINBOW_KEYS if k not in network]
    unknown = sorted(set(network) - set(_RAINBOW_KEYS))
    if missing or unknown:
        raise ValueError(f"rainbow network spec needs d, gamma, weight_seed: missing {missing}, unknown {unknown}")
    return {"kind": "rainbow", "d": pos_int(network["d"], "network['d']"),
            "gamma": finite_float(network["gamma"], "network['gamma']"),
            "weight_seed": nonneg_int(network["weight_seed"], "network['weight_seed']")}


def build_network(network: dict) -> tuple[list[np.ndarray], list, Teacher]:
    """(student weights, student activations, teacher) of a network description (module docstring)."""
    net = check_network(network)
    if net.get("kind") == "rainbow":
        return _rainbow(net)
    seed, tnet = net["weight_seed"], net["teacher"]
    weights = random_weights([net["d"], *net["widths"]], stream(seed, "student"))
    teacher = random_teacher(list(tnet["widths"]), list(tnet["activations"]), stream(seed, "teacher"),
                             noise=tnet["noise"])
    return weights, list(net["activations"]), teacher


def _rainbow(net: dict):
    """The rainbow network: W_s, W_1 = ½ Z_1 D_γ^{1/2}/√d + ½ W_s, W_3 with C_3 = (W_1W_1ᵀ + ½I)⁻¹."""
    d, gamma, seed = net["d"], net["gamma"], net["weight_seed"]
    i = np.arange(1, d + 1, dtype=np.float64)
    ws = random_weights([d, d], stream(seed, "w_s"), [np.diag(i**-0.3)])[0]
    w1 = 0.5 * random_weights([d, d], stream(seed, "w_1"), [np.diag(i**-gamma)])[0] + 0.5 * ws
    c3 = np.linalg.inv(w1 @ w1.T + 0.5 * np.eye(d))
    w3 = random_weights([d, d], stream(seed, "w_3"), [c3])[0]
    theta = stream(seed, "theta").standard_normal(d)
    return [w1, w1, w3], ["tanh"] * 3, Teacher(theta, (ws,), ("tanh",), 0.0)


# --------------------------------------------------------------------------- specs
@register_spec
@dataclass(frozen=True)
class DeepFeaturesSpec(ModelSpec):
    """Ridge on n samples of deep random features of a network (one sweep point).

    network : the network description (module docstring); n : training samples;
    lams : the mean-loss λ of the path (θ̂ = (FᵀF/n + λI)⁻¹Fᵀy/n); n_test : size of the fresh
    test set; dtype : "float64" or "float32" (the features; the solve is always float64);
    readout : "raw" (default: ridge on the features as they are) or "intercept" (an unpenalised
    intercept: features and labels centred by their training-sample means, ridge on them, and
    the prediction ȳ + θ̂ᵀ(φ − φ̄)). A raw readout is left out of the spec's canonical form, so
    the points (and seeds) of earlier specs are unchanged.
    """

    kind: ClassVar[str] = "deep-features"
    network: dict
    n: int
    lams: tuple
    n_test: int
    dtype: str = "float64"
    readout: str = "raw"

    def validate(self) -> None:
        self._set("network", check_network(self.network))
        self._set("n", pos_int(self.n, "n"))
        self._set("lams", tuple(float(x) for x in check_lams(self.lams)))
        self._set("n_test", pos_int(self.n_test, "n_test"))
        self._set("dtype", float_dtype(self.dtype).name)
        self._set("readout", choice(self.readout, "readout", ("raw", "intercept")))
        if self.readout == "intercept" and self.n < 2:
            raise ValueError(f"n must be at least 2 with an intercept readout, got {self.n}")

    def to_dict(self) -> dict:
        out = super().to_dict()
        if out["readout"] == "raw":
            del out["readout"]
        return out


@register_spec
@dataclass(frozen=True)
class DeepMomentsSpec(ModelSpec):
    """Monte-Carlo moments of a network: ``n_samples`` fresh samples, streamed in ``chunk`` rows."""

    kind: ClassVar[str] = "deep-moments"
    network: dict
    n_samples: int
    chunk: int = 4096

    def validate(self) -> None:
        self._set("network", check_network(self.network))
        self._set("n_samples", pos_int(self.n_samples, "n_samples"))
        self._set("chunk", pos_int(self.chunk, "chunk"))


# --------------------------------------------------------------------------- sweep tasks
def deep_ridge_task(spec: DeepFeaturesSpec | dict, seed: np.random.SeedSequence) -> dict:
    """One sweep task: ridge on n samples of deep random features, every λ of the path.

    ``spec``: a :class:`DeepFeaturesSpec` or its dict form (``network``, ``n``, ``lams``,
    ``n_test``, optional ``dtype``). θ̂(λ) = (FᵀF/n + λI)⁻¹Fᵀy/n on n samples from
    ``child_seed(seed, "train")``; the test error is the mean squared error (label noise
    included) on ``n_test`` fresh samples from ``child_seed(seed, "test")``. With
    ``readout="intercept"`` the ridge runs on the training features and labels centred by their
    sample means φ̄, ȳ and predicts ȳ + θ̂ᵀ(φ − φ̄) (the unpenalised intercept).
    Returns ``{"test_error": (L,), "train_error": (L,)}``.
    """
    spec = spec if isinstance(spec, DeepFeaturesSpec) else DeepFeaturesSpec.from_dict(spec)
    weights, acts, teacher = build_network(spec.network)

    def samples(purpose: str, m: int):
        return SampleStream(weights, acts, child_seed(seed, purpose), teacher=teacher, dtype=spec.dtype).take(m)

    train = samples("train", spec.n)
    f, y = train.phi, train.y
    if spec.readout == "intercept":  # centred by the training means: the intercept ȳ − θ̂ᵀφ̄
        phi_bar, y_bar = f.astype(np.float64).mean(axis=0), float(np.mean(y, dtype=np.float64))
        f, y = f - phi_bar, y - y_bar
    path = ridge_path(f, y, np.asarray(spec.lams))
    test = samples("test", spec.n_test)
    f, y = test.phi.astype(np.float64), test.y.astype(np.float64)
    if spec.readout == "intercept":
        f, y = f - phi_bar, y - y_bar
    resid = y[:, None] - f @ path.theta
    return {"test_error": np.mean(resid**2, axis=0), "train_error": path.train_error}


def moments_task(spec: DeepMomentsSpec | dict, seed: np.random.SeedSequence) -> dict:
    """Monte-Carlo estimate of Ω = E[φφᵀ], Φ = E[φψᵀ], Ψ = E[ψψᵀ], b = E[φy], E[y²] from
    ``n_samples`` fresh samples (``child_seed(seed, "moments")``), streamed in chunks (not centred).

    ``spec``: a :class:`DeepMomentsSpec` or its dict form (``network``, ``n_samples``, optional
    ``chunk``).
    """
    spec = spec if isinstance(spec, DeepMomentsSpec) else DeepMomentsSpec.from_dict(spec)
    weights, acts, teacher = build_network(spec.network)
    samples = SampleStream(weights, acts, child_seed(seed, "moments"), teacher=teacher)
    acc = MomentAccumulator()
    done = 0
    while done < spec.n_samples:
        c = samples.take(min(spec.chunk, spec.n_samples - done))
        acc.update(c.phi, c.psi, c.y)
        done += len(c)
    est = acc.finalize(center=False)
    return {"omega": est.omega, "phi": est.phi, "psi": est.psi, "y2": est.y2, "b": est.b}
