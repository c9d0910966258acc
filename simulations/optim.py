r"""The one optimiser of the simulators: Adam / AdamW with a fused Numba update.

Adam (Kingma & Ba) with bias correction, per parameter array w with gradient g, step t ≥ 1:

    m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,
    w ← w − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε),

and weight decay ξ either decoupled (AdamW, the default: w ← (1 − lr ξ) w before the step, as
``torch.optim.AdamW``) or as an L2 term added to the gradient (``decoupled=False``: g ← g + ξ w).
The update is one fused Numba loop per parameter array (no temporaries), parallel above 2¹⁵
elements; the moments are kept in the parameters' dtype. A learning-rate schedule passes its
rate to :meth:`Adam.step`.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numba
import numpy as np

__all__ = ["Adam"]

_PARALLEL = 1 << 15  # elements above which the Adam loop runs in parallel


@numba.njit(inline="always", cache=True)
def _adam_element(w, g, m, v, i, lr, b1, b2, c1, c2, eps, decay, l2):  # pragma: no cover - compiled
    """The update of element i (c1 = 1/(1 − β1ᵗ), c2 = 1/(1 − β2ᵗ), decay = 1 − lr·ξ for AdamW)."""
    gi = g[i] + l2 * w[i]
    mi = b1 * m[i] + (1.0 - b1) * gi
    vi = b2 * v[i] + (1.0 - b2) * gi * gi
    m[i] = mi
    v[i] = vi
    w[i] = w[i] * decay - lr * (mi * c1) / (math.sqrt(vi * c2) + eps)


# Two dispatchers (not one function compiled twice: they would share one on-disk cache entry).
@numba.njit(parallel=True, cache=True)
def _adam_parallel(w, g, m, v, lr, b1, b2, c1, c2, eps, decay, l2):  # pragma: no cover - compiled
    for i in numba.prange(w.size):
        _adam_element(w, g, m, v, i, lr, b1, b2, c1, c2, eps, decay, l2)


@numba.njit(cache=True)
def _adam_serial(w, g, m, v, lr, b1, b2, c1, c2, eps, decay, l2):  # pragma: no cover - compiled
    for i in range(w.size):
        _adam_element(w, g, m, v, i, lr, b1, b2, c1, c2, eps, decay, l2)


class Adam:
    """Adam / AdamW on a list of parameter arrays, updated in place (module docstring)."""

    def __init__(self, params: Sequence[np.ndarray], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = True):
        for name, val in (("lr", lr), ("eps", eps)):
            if not (isinstance(val, numbers.Real) and math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a positive number, got {val!r}")
        if not (isinstance(weight_decay, numbers.Real) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        for p in params:
            if not (isinstance(p, np.ndarray) and p.flags.c_contiguous and p.dtype in (np.float32, np.float64)):
                raise ValueError("params must be C-contiguous float32/float64 arrays")
        self.params = list(params)
        self.lr, self.b1, self.b2, self.eps = float(lr), float(b1), float(b2), float(eps)
        self.weight_decay, self.decoupled = float(weight_decay), bool(decoupled)
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: Sequence[np.ndarray], lr: float | None = None) -> None:
        """One update with ``grads`` (one per parameter array); ``lr`` overrides the learning rate
        for this step (a schedule), ``None`` keeps ``self.lr``."""
        lr = self.lr if lr is None else float(lr)
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        self.t += 1
        c1 = 1.0 / (1.0 - self.b1 ** self.t)
        c2 = 1.0 / (1.0 - self.b2 ** self.t)
        decay = 1.0 - lr * self.weight_decay if self.decoupled else 1.0
        l2 = 0.0 if self.decoupled else self.weight_decay
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if g.shape != p.shape:
                raise ValueError(f"gradient of shape {g.shape} for a parameter of shape {p.shape}")
            g = np.ascontiguousarray(g, dtype=p.dtype).reshape(-1)
            kernel = _adam_parallel if p.size >= _PARALLEL else _adam_serial
            kernel(p.reshape(-1), g, m.reshape(-1), v.reshape(-1), lr, self.b1, self.b2, c1, c2,
                   self.eps, decay, l2)
