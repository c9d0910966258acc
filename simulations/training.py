"""Multi-layer perceptrons trained with Adam on the square loss, with feature snapshots.

Model
-----
    f(x) = θᵀ φ(x),   φ(x) = σ_L(W_L ⋯ σ_1(W_1 x)),   W_ℓ ∈ ℝ^{p_ℓ × p_{ℓ−1}}, p_0 = d, no biases

(the feature-map convention of :mod:`simulations.features`: samples are rows, a block of rows
computes H_ℓ = A_{ℓ−1} W_ℓᵀ, A_ℓ = σ_ℓ(H_ℓ)). The loss of a batch of B rows is the mean squared
error (Keras' "mse")

    L = (1/B) Σ_i (y_i − f(x_i))²,

and back-propagation is, with δ = 2(f − y)/B,

    ∇θ = A_Lᵀ δ,   G_L = (δ θᵀ) ⊙ σ_L′(H_L),   ∇W_ℓ = G_ℓᵀ A_{ℓ−1},   G_{ℓ−1} = (G_ℓ W_ℓ) ⊙ σ_{ℓ−1}′(H_{ℓ−1}).

Optimiser: Adam / AdamW (bias correction, decoupled or L2 weight decay) of
:mod:`simulations.optim` (re-exported here as ``Adam``).

Computation: every product is one BLAS call on the batch; σ, σ′ come from the fused Numba kernels
of :func:`asymptotics.functions.apply`; the Adam update is the fused Numba loop of
:mod:`simulations.optim`. float32 (``dtype``) halves memory and doubles the GEMM rate; Adam's
moments are kept in the same dtype.

Randomness (:func:`simulations.rng.stream`): the initial weights of layer ℓ from
``stream(seed, "weights", ℓ)`` (ℓ = 0, …, L − 1 for W_1 … W_L, ℓ = L for θ), the order of the
mini-batches of epoch e from ``stream(seed, "batch-order", e)``: the same seed gives the same
network and the same snapshots.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from asymptotics import functions
from asymptotics.validation import choice, float_dtype, nonneg_int, pos_int

from .checkpoint import digest, segments
from .features import feature_map
from .optim import Adam
from .rng import SeedLike, stream

__all__ = ["MLP", "init_mlp", "forward", "loss_and_gradients", "Adam", "Snapshot", "TrainResult", "train"]

@dataclass
class MLP:
    """Weights W_1..W_L (W_ℓ of shape p_ℓ × p_{ℓ−1}), activations σ_1..σ_L and readout θ (p_L)."""

    weights: list
    activations: list
    readout: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.readout.dtype

    @property
    def widths(self) -> list[int]:
        return [w.shape[0] for w in self.weights]

    def parameters(self) -> list[np.ndarray]:
        return [*self.weights, self.readout]

    def copy(self) -> "MLP":
        return MLP([w.copy() for w in self.weights], list(self.activations), self.readout.copy())

    def features(self, X, chunk: int | None = None) -> np.ndarray:
        """φ(X) (n × p_L), chunked over rows (see :func:`simulations.features.feature_map`)."""
        return feature_map(X, self.weights, self.activations, dtype=self.dtype, chunk=chunk)

    def predict(self, X, chunk: int | None = None) -> np.ndarray:
        return self.features(X, chunk).astype(np.float64) @ self.readout.astype(np.float64)


INITS = ("glorot", "gauss")


def _check_architecture(d, widths, activations, init, dtype) -> tuple[int, list[int], list[str], np.dtype]:
    """d, the widths, one activation name per layer, the dtype (arguments of :func:`init_mlp`)."""
    d = pos_int(d, "d")
    widths = [pos_int(w, "widths") for w in widths]
    if not widths:
        raise ValueError("widths must hold at least one layer width")
    acts = [activations] * len(widths) if isinstance(activations, str) else list(activations)
    if len(acts) != len(widths):
        raise ValueError(f"activations: expected {len(widths)} names, got {len(acts)}")
    for a in acts:
        functions.get(a)
    choice(init, "init", INITS)
    return d, widths, acts, float_dtype(dtype)


def init_mlp(d: int, widths: Sequence[int], activations, seed: SeedLike = 0, *, init: str = "glorot",
             dtype="float64") -> MLP:
    """A network d → widths[0] → … → widths[-1] → 1 with random weights.

    ``init="glorot"``: Keras' default glorot_uniform, entries U(−a, a), a = √(6/(fan_in + fan_out));
    ``"gauss"``: N(0, 1/fan_in) (pre-activations O(1)). The readout θ (fan_out 1) likewise.
    ``activations``: one registered name for every layer, or one per layer. Layer ℓ draws from
    ``stream(seed, "weights", ℓ)``.
    """
    d, widths, acts, dt = _check_architecture(d, widths, activations, init, dtype)
    shapes = list(zip(widths, [d] + widths[:-1])) + [(1, widths[-1])]
    params = []
    for layer, (fan_out, fan_in) in enumerate(shapes):
        rng = stream(seed, "weights", layer)
        if init == "glorot":
            a = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-a, a, size=(fan_out, fan_in))
        else:
            w = rng.standard_normal((fan_out, fan_in)) / math.sqrt(fan_in)
        params.append(np.ascontiguousarray(w, dtype=dt))
    return MLP(params[:-1], acts, params[-1].reshape(-1).copy())


def forward(mlp: MLP, X: np.ndarray):
    """Pre-activations H_ℓ, activations A_ℓ (A_0 = X) and the output f, for one batch."""
    A = [X]
    H = []
    for W, act in zip(mlp.weights, mlp.activations):
        h = A[-1] @ W.T
        H.append(h)
        A.append(functions.apply(act, h))
    return H, A, A[-1] @ mlp.readout


def _check_Xy(mlp: MLP, X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(X, dtype=mlp.dtype)
    y = np.asarray(y, dtype=mlp.dtype).reshape(-1)
    if X.ndim != 2 or X.shape[1] != mlp.weights[0].shape[1]:
        raise ValueError(f"X must have shape (n, {mlp.weights[0].shape[1]}), got {np.shape(X)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have {X.shape[0]} entries, got {y.shape[0]}")
    return X, y


def loss_and_gradients(mlp: MLP, X, y) -> tuple[float, list[np.ndarray]]:
    """Mean squared error of the batch and its gradients [∇W_1, …, ∇W_L, ∇θ] (module docstring)."""
    X, y = _check_Xy(mlp, X, y)
    H, A, f = forward(mlp, X)
    r = f - y
    B = X.shape[0]
    loss = float(np.dot(r.astype(np.float64), r.astype(np.float64)) / B)
    delta = (2.0 / B) * r
    grads = [None] * (len(mlp.weights) + 1)
    grads[-1] = A[-1].T @ delta
    G = np.multiply.outer(delta, mlp.readout)
    for layer in range(len(mlp.weights) - 1, -1, -1):
        deriv = functions.apply(mlp.activations[layer], H[layer], out=H[layer], derivative=True)
        G *= deriv
        grads[layer] = G.T @ A[layer]
        if layer:
            G = G @ mlp.weights[layer]
    return loss, grads


@dataclass
class Snapshot:
    """The network after ``step`` optimiser steps (``epoch`` = step / steps per epoch) and its mean
    squared error on the whole training set."""

    epoch: float
    step: int
    mlp: MLP
    train_loss: float


@dataclass
class TrainResult:
    mlp: MLP
    snapshots: list
    loss_history: np.ndarray  # mean training loss of each epoch (over its batches)
    steps_per_epoch: int
    extra: dict = field(default_factory=dict)


def _snapshot_steps(snapshots, epochs: int, per_epoch: int) -> list[int]:
    out = []
    for e in snapshots:
        if not (isinstance(e, numbers.Real) and 0 <= e <= epochs):
            raise ValueError(f"snapshots must be epochs in [0, {epochs}], got {e!r}")
        out.append(int(round(float(e) * per_epoch)))
    return sorted(set(out))


def _check_training(mlp: MLP, X, y, epochs, batch_size) -> tuple[np.ndarray, np.ndarray, int, int]:
    """X, y (finite, in the network's dtype), epochs and the batch size (n for full batch)."""
    X, y = _check_Xy(mlp, X, y)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite")
    epochs = nonneg_int(epochs, "epochs")
    n = X.shape[0]
    bs = n if batch_size is None else min(pos_int(batch_size, "batch_size"), n)
    return X, y, epochs, bs


def _train_loss(mlp: MLP, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((mlp.predict(X) - y) ** 2))


def _adam_step(mlp: MLP, opt: Adam, X: np.ndarray, y: np.ndarray, epoch: int) -> float:
    """One optimiser step on the batch (X, y); its loss before the step."""
    with np.errstate(over="ignore", invalid="ignore"):  # a divergence is reported below
        loss, grads = loss_and_gradients(mlp, X, y)
    if not math.isfinite(loss):
        raise FloatingPointError(f"training diverged at epoch {epoch} (loss {loss}); lower lr")
    opt.step(grads)
    return loss


def train(mlp: MLP, X, y, *, epochs: int, lr: float = 1e-3, batch_size: int | None = None,
          weight_decay: float = 0.0, decoupled: bool = True, betas=(0.9, 0.999), eps: float = 1e-8,
          seed: SeedLike = 0, snapshots: Sequence[float] = ()) -> TrainResult:
    """Train ``mlp`` in place with Adam (:class:`simulations.optim.Adam`) on the mean squared error.

    ``batch_size=None`` is full-batch gradient descent (one step per epoch); otherwise each epoch
    visits a fresh random permutation of the rows (``stream(seed, "batch-order", epoch)``) in
    batches of ``batch_size`` (the last one possibly smaller). ``snapshots``: epochs (fractions
    allowed, rounded to the nearest step; 0 is the initialisation) at which a copy of the network
    is kept.
    """
    X, y, epochs, bs = _check_training(mlp, X, y, epochs, batch_size)
    n = X.shape[0]
    per_epoch = math.ceil(n / bs)
    keep = _snapshot_steps(snapshots, epochs, per_epoch)
    opt = Adam(mlp.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled)
    snaps, history, step, first = [], np.zeros(epochs), 0, 0
    seg = segments("train", lambda: {"shape": list(X.shape), "data": digest(X, y), "epochs": epochs, "batch": bs,
                                     "hyper": [lr, weight_decay, decoupled, list(betas), eps],
                                     "snapshots": list(keep), "seed": repr(seed)})
    saved = seg.resume()  # a checkpoint of an earlier run of this task: continue from there
    if saved is not None:
        first, step = _restore(saved, mlp, opt, history, snaps)
        keep = [k for k in keep if k > step]

    def maybe_snapshot():
        if keep and step == keep[0]:
            keep.pop(0)
            snaps.append(Snapshot(step / per_epoch, step, mlp.copy(), _train_loss(mlp, X, y)))

    if saved is None:
        maybe_snapshot()
    for epoch in range(first, epochs):
        order = np.arange(n) if bs == n else stream(seed, "batch-order", epoch).permutation(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            loss = _adam_step(mlp, opt, X[idx] if bs < n else X, y[idx] if bs < n else y, epoch)
            step += 1
            total += loss * len(idx)
            maybe_snapshot()
        history[epoch] = total / n
        seg.save_if_due(lambda: _state(mlp, opt, history, snaps, epoch + 1, step))
    return TrainResult(mlp, snaps, history, per_epoch)


def _state(mlp: MLP, opt: Adam, history, snaps, epoch: int, step: int) -> dict:
    """Everything :func:`train` carries from one epoch to the next (a checkpoint), ``epoch`` the next one."""
    return {"epoch": epoch, "step": step, "params": mlp.parameters(), "m": opt.m, "v": opt.v, "t": opt.t,
            "history": history, "snapshots": [[s.epoch, s.step, s.mlp.parameters(), s.train_loss] for s in snaps]}


def _restore(state: dict, mlp: MLP, opt: Adam, history, snaps: list) -> tuple[int, int]:
    """Load a state of :func:`_state` in place (the optimiser holds the network's arrays);
    return (next epoch, step)."""
    for mine, saved in zip(mlp.parameters() + opt.m + opt.v, state["params"] + state["m"] + state["v"]):
        mine[...] = saved
    opt.t = state["t"]
    history[...] = state["history"]
    for epoch, step, params, loss in state["snapshots"]:
        weights = [np.array(w) for w in params]  # own, writable copies
        snaps.append(Snapshot(epoch, step, MLP(weights[:-1], list(mlp.activations), weights[-1]), loss))
    return state["epoch"], state["step"]
