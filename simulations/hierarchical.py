r"""Hierarchical polynomials h = C_d p^3 learned by a three-layer network (layer-wise / Adam).

Model (Wang, Nichani, Lee, ICLR 2024; spec ``specs/hierarchical_polynomials.md`` §1-§4, §6)
-------------------------------------------------------------------------------------------
* Inputs x ~ N(0, I_d) (rows). Target h(x) = C_d p(x)^3 with p(x) = Σ_i λ_i He3(x_i),
  λ_i uniform ±1 (drawn once per seed), He3 = z^3 − 3z and
  C_d = (3240 d^3 + 291600 d^2 + 11314080 d)^{-1/2} (E h^2 = 1; h does not depend on the
  convention for p, see :mod:`asymptotics.hierarchical`, which computes C_d exactly).
* Network (§2; the exact form is a reconstruction [recon]), with width multipliers α1, α2::

      z_j = v_j·x + s_j,   g(x) = α1 Σ_j u_j z_j^3,   f(x) = g(x) + α2 Σ_i c_i ReLU(a_i g(x) + b_i)

  ``mup=True`` (Adam default): α1 = 1/m1, α2 = 1/m2 (μP; one learning rate for all tensors);
  ``mup=False`` (layer-wise default): α1 = α2 = 1.
* Initialisation (§2 [recon]/[default], options of :func:`init_network`): u = c = 0; v_j uniform
  on the sphere of radius 1/√2 (``v_init="sphere"``; ``"gauss"``: N(0, I/(2d))); s_j ~ N(0, 1/2);
  a_i uniform ±1; b_i ~ ``bias``: "t" (Student t_ν, ν = ``bias_df`` = 10, the heavy-tailed
  default), "normal", or "unif" (U[−1, 1]); times ``bias_scale``. The layer-wise algorithm
  rescales b after stage 1: b_i = std_{D1}(ĝ) t_ν ("t"), or U[−B, B] with B = max_{D1}|ĝ|
  ("unif").

:func:`layerwise` — Algorithm 1 (§3): V, s, a, b frozen. Stage 1 on D1 (n1 rows): with
Φ = (X Vᵀ + s)^3, u = (ΦᵀΦ/n1 + ξ1 I)^{-1} Φᵀy/n1 (closed form, Cholesky; ``stage1="gd"``: T1
steps of GD on L1(u) = ‖y − Φu‖^2/(2 n1) + ξ1‖u‖^2/2 from u = 0, step η1, default
1/λ_max(ΦᵀΦ/n1 + ξ1)). Default ξ1 = ``xi1_rel`` tr(ΦᵀΦ/n1)/m1 with xi1_rel = 1e-6 (spec §7.1)
unless ``xi1`` is given. Stage 2 on D2 (n2 rows) with ĝ frozen: Ψ = ReLU(ĝ aᵀ + 1bᵀ),
c = (ΨᵀΨ/n2 + ξ2 I)^{-1} Ψᵀ(y − ĝ)/n2 (or GD, ``stage2="gd"``), ξ2 likewise relative.

:func:`train_adam` — all of (V, s, u, a, b, c) trained jointly by Adam (β = 0.9, 0.999,
ε = 1e-8, same η on every tensor, μP multipliers) on L = (1/2n) Σ (f − y)^2, full batch
(default for n ≤ 2^15) or mini-batches (default 2^13, reshuffled each epoch), cosine decay of η
to 0 over ``max_steps`` (``schedule="constant"`` to switch off). Stops when the monitored train
loss (per step, or the epoch mean with mini-batches) has not gone below (1 − rel_tol) times its
value at the last improvement for ``patience`` steps, or after ``max_steps`` steps.

Gradients (per row block, e = (f − y)/n, A = 1[g aᵀ + b > 0], R = ReLU(g aᵀ + b))::

    ∂c = α2 Rᵀe,  ∂b = α2 c∘(Aᵀe),  ∂a = α2 c∘(Aᵀ(e∘g)),  δ = α1 e∘(1 + α2 A(a∘c)),
    ∂u = Φᵀδ,  W = 3 (δ uᵀ)∘Z∘Z,  ∂[V, s] = Wᵀ [X, 1]   (one GEMM; the ones column gives ∂s).

Metrics (every result, on ``n_test`` fresh points, default 2^17; one test set per seed, shared
by all n): test loss mean (h − f)^2 with its Monte-Carlo standard error std((h − f)^2)/√N, the
control-variate estimate using E h^2 = 1 (§6), the median squared error, the bulk loss (points
with |p̄| ≤ 3, p̄ = p/√(6d)), corr(g, p) (Pearson, signed, and its absolute value); layer-wise
also the stage-1-only loss (predictor ĝ), Adam also the training-set correlation and loss.

Computation
-----------
Nothing of size n × m1 or n × m2 is ever held. Rows are processed in blocks of ``block`` rows
(default :data:`BLOCK`): Z = [X, 1] [V, s]ᵀ is one GEMM (numpy ``@``, BLAS), then fused Numba
kernels compute g = α1 Σ u_j z_j^3 (one pass over Z), the ReLU branch of the scalar bottleneck
(O(m2) per row, no GEMM) with its gradient, and W in place of Z with ∂u; ∂[V, s] is one GEMM.
Per-row-group partial sums (fixed groups of :data:`_GROUP` rows) are reduced in a fixed order,
and every accumulation over blocks is summed block by block in block order (float64), so the
results do not depend on the number of threads or on ``chunk`` (rows per generated buffer of the
streamed data sets D1, D2 and the test set; rounded to a multiple of ``block``). Stage 1
accumulates ΦᵀΦ (SYRK) in float64. ``dtype="float32"`` runs the GEMMs and the first-layer
kernels in float32 (accumulations, parameters and Gram matrices stay float64).

Randomness (``simulations.rng``): child_rng(seed, purpose, ...) with purposes λ, V, s, a, b,
D1, D2, train, test, shuffle; data block k (``block`` rows) of a set comes from
child_rng(seed, purpose, k), so a data set of n rows is the first n rows of its stream (the same
for every chunk size; changing ``block`` changes the draw, not its law). The training set of
:func:`train_adam` (n × (d + 1) and n labels: "the data itself") is held in memory.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import scipy.linalg
from numba import njit, prange

from asymptotics import functions

from asymptotics.validation import float_dtype as _check_dtype, nonneg_int as _nonneg_int, pos_int as _pos_int
from .rng import SeedLike, child_rng, seed_sequence

__all__ = [
    "BLOCK",
    "normalising_constant",
    "target",
    "HierarchicalProblem",
    "make_problem",
    "sample",
    "Network",
    "init_network",
    "forward",
    "loss_and_gradient",
    "evaluate",
    "HierarchicalResult",
    "layerwise",
    "train_adam",
    "hierarchical_task",
]

#: Rows per random-number block and per compute block.
BLOCK = 512
#: Rows per parallel group inside the Numba kernels (fixed: reductions never depend on threads).
_GROUP = 32
#: Default rows per generated buffer of streamed data sets.
_CHUNK_ROWS = 8192

_LAMBDA, _V, _S, _A, _B, _D1, _D2, _TRAIN, _TEST, _SHUFFLE = range(10)


# =============================================================================== validation


def _pos_float(v, name: str, allow_zero: bool = False) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
            or v < 0 or (v == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {rel}, got {v!r}")
    return float(v)


def _choice(v, name: str, options) -> str:
    if v not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {v!r}")
    return v


# =============================================================================== target
def normalising_constant(d: int) -> float:
    """C_d for p built from unnormalised He3: (3240 d^3 + 291600 d^2 + 11314080 d)^{-1/2}
    (closed form; :func:`asymptotics.hierarchical.normalising_constant` derives it exactly)."""
    d = _pos_int(d, "d")
    return (3240.0 * d**3 + 291600.0 * d**2 + 11314080.0 * d) ** -0.5


def target(X: np.ndarray, lam: np.ndarray, C: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(h, p) on the rows of X (m × d): p = Σ λ_i He3(x_i), h = C p^3 (C default C_d)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(lam):
        raise ValueError(f"X must have shape (m, {len(lam)}), got {X.shape}")
    C = normalising_constant(X.shape[1]) if C is None else C
    p = (X * (X * X - 3.0)) @ lam
    return C * p * p * p, p


@dataclass(frozen=True, eq=False)
class HierarchicalProblem:
    """One seed's target (signs λ) and data streams; built by :func:`make_problem`."""

    d: int
    lam: np.ndarray
    C: float
    seed: np.random.SeedSequence
    block: int

    _KIND = {"D1": _D1, "D2": _D2, "train": _TRAIN, "test": _TEST}

    def stream(self, kind: str, n: int, chunk: int | None = None, dtype=np.float64,
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (start, X1 (m × (d+1), last column = 1, ``dtype``), h (m,), p (m,)) for the data
        set ``kind`` ∈ {"D1", "D2", "train", "test"} of n rows, ``chunk`` rows at a time (rounded
        down to a multiple of ``block``). Buffers are reused between chunks."""
        purpose = self._KIND[_choice(kind, "kind", self._KIND)]
        n = _pos_int(n, "n")
        rows = _chunk_rows(chunk, self.block, n)
        Xb = np.empty((self.block, self.d))
        X1 = np.empty((rows, self.d + 1), dtype=dtype)
        X1[:, self.d] = 1.0
        h = np.empty(rows)
        p = np.empty(rows)
        for start in range(0, n, rows):
            m = min(rows, n - start)
            for s in range(0, m, self.block):
                e = min(s + self.block, m)
                k = (start + s) // self.block
                child_rng(self.seed, purpose, k).standard_normal(out=Xb)
                hb, pb = target(Xb[: e - s], self.lam, self.C)
                h[s:e], p[s:e] = hb, pb
                X1[s:e, : self.d] = Xb[: e - s]
            yield start, X1[:m], h[:m], p[:m]

    def batch(self, kind: str, n: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole data set (X (n × d), h, p) in memory: exactly the rows :meth:`stream` yields."""
        X1, h, p = self._batch1(kind, n, dtype)
        return np.ascontiguousarray(X1[:, : self.d]), h, p

    def _batch1(self, kind, n, dtype=np.float64):
        n = _pos_int(n, "n")
        X1 = np.empty((n, self.d + 1), dtype=dtype)
        h = np.empty(n)
        p = np.empty(n)
        for start, Xc, hc, pc in self.stream(kind, n, chunk=max(n, self.block), dtype=dtype):
            X1[start:start + len(hc)] = Xc
            h[start:start + len(hc)] = hc
            p[start:start + len(hc)] = pc
        return X1, h, p


def _chunk_rows(chunk, block: int, n: int) -> int:
    chunk = _CHUNK_ROWS if chunk is None else _pos_int(chunk, "chunk")
    rows = max(1, chunk // block) * block
    return min(rows, -(-n // block) * block)


def make_problem(d: int, seed: SeedLike = 0, block: int = BLOCK) -> HierarchicalProblem:
    """Target of one seed: λ_i uniform ±1 from child_rng(seed, λ-purpose); C = C_d."""
    d = _pos_int(d, "d")
    block = _pos_int(block, "block")
    seed = seed_sequence(seed)
    lam = child_rng(seed, _LAMBDA).choice(np.array([-1.0, 1.0]), size=d)
    return HierarchicalProblem(d, lam, normalising_constant(d), seed, block)


def sample(d: int, n: int, seed: SeedLike = 0, kind: str = "train", block: int = BLOCK
           ) -> tuple[np.ndarray, np.ndarray]:
    """A sample (X (n × d), h(X)) of the target of ``seed`` (data set ``kind``)."""
    X, h, _ = make_problem(d, seed, block).batch(kind, n)
    return X, h


# =============================================================================== network
@dataclass(eq=False)
class Network:
    """Parameters of f(x) = g(x) + α2 Σ c_i ReLU(a_i g(x) + b_i), g(x) = α1 Σ u_j (v_j·x + s_j)^3.

    ``theta`` = [V, s] (m1 × (d + 1), float64; V = theta[:, :d], s = theta[:, d]); u (m1,),
    a, b, c (m2,); alpha1, alpha2 the width multipliers.
    """

    theta: np.ndarray
    u: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    alpha1: float = 1.0
    alpha2: float = 1.0

    @property
    def V(self) -> np.ndarray:
        return self.theta[:, :-1]

    @property
    def s(self) -> np.ndarray:
        return self.theta[:, -1]

    @property
    def d(self) -> int:
        return self.theta.shape[1] - 1

    @property
    def m1(self) -> int:
        return self.theta.shape[0]

    @property
    def m2(self) -> int:
        return self.a.shape[0]

    def copy(self) -> "Network":
        return Network(self.theta.copy(), self.u.copy(), self.a.copy(), self.b.copy(),
                       self.c.copy(), self.alpha1, self.alpha2)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"theta": self.theta, "u": self.u, "a": self.a, "b": self.b, "c": self.c}


_BIASES = ("t", "normal", "unif")


def _draw_bias(rng, m2, bias, df):
    if bias == "t":
        return rng.standard_t(df, m2)
    if bias == "normal":
        return rng.standard_normal(m2)
    return rng.uniform(-1.0, 1.0, m2)


def init_network(d: int, m1: int, m2: int, seed: SeedLike = 0, *, mup: bool = True,
                 v_init: str = "sphere", bias: str = "t", bias_df: float = 10.0,
                 bias_scale: float = 1.0) -> Network:
    """Initial network (spec §2): u = c = 0; V rows on the sphere of radius 1/√2 (``"sphere"``) or
    N(0, I/(2d)) (``"gauss"``); s ~ N(0, 1/2); a uniform ±1; b = bias_scale × (t_ν | N(0,1) |
    U[−1,1]) for ``bias`` = "t" | "normal" | "unif". μP: α1 = 1/m1, α2 = 1/m2, else 1, 1."""
    d, m1, m2 = _pos_int(d, "d"), _pos_int(m1, "m1"), _pos_int(m2, "m2")
    seed = seed_sequence(seed)
    _choice(v_init, "v_init", ("sphere", "gauss"))
    _choice(bias, "bias", _BIASES)
    bias_df = _pos_float(bias_df, "bias_df")
    bias_scale = _pos_float(bias_scale, "bias_scale", allow_zero=True)
    if not isinstance(mup, (bool, np.bool_)):
        raise ValueError(f"mup must be True or False, got {mup!r}")
    G = child_rng(seed, _V).standard_normal((m1, d))
    if v_init == "sphere":
        G /= np.linalg.norm(G, axis=1, keepdims=True) * math.sqrt(2.0)
    else:
        G /= math.sqrt(2.0 * d)
    theta = np.empty((m1, d + 1))
    theta[:, :d] = G
    theta[:, d] = child_rng(seed, _S).standard_normal(m1) / math.sqrt(2.0)
    a = child_rng(seed, _A).choice(np.array([-1.0, 1.0]), size=m2)
    b = bias_scale * _draw_bias(child_rng(seed, _B), m2, bias, bias_df)
    al1, al2 = (1.0 / m1, 1.0 / m2) if mup else (1.0, 1.0)
    return Network(theta, np.zeros(m1), a, b, np.zeros(m2), al1, al2)


# =============================================================================== kernels
_FM = {"reassoc", "contract", "nsz"}  # vectorised reductions; deterministic for fixed shapes


@njit(parallel=True, cache=True, fastmath=_FM)
def _cubic_forward(Z, u, alpha1, g):  # pragma: no cover - compiled
    """g[i] = alpha1 Σ_j u_j Z[i, j]^3 (float64 accumulation), rows in parallel."""
    r, m = Z.shape
    for i in prange(r):
        acc = 0.0
        for j in range(m):
            z = np.float64(Z[i, j])
            acc += u[j] * (z * z * z)
        g[i] = alpha1 * acc


@njit(parallel=True, cache=True, fastmath=_FM)
def _cubic_backward(Z, u, delta, part_u, group):  # pragma: no cover - compiled
    """Z[i, j] <- 3 δ_i u_j Z[i, j]^2 in place; part_u[k, j] = Σ_{i in group k} δ_i Z[i, j]^3."""
    r, m = Z.shape
    ng = (r + group - 1) // group
    for k in prange(ng):
        pu = part_u[k]
        for j in range(m):
            pu[j] = 0.0
        for i in range(k * group, min(r, (k + 1) * group)):
            di = delta[i]
            for j in range(m):
                z = np.float64(Z[i, j])
                z2 = z * z
                pu[j] += di * z2 * z
                Z[i, j] = 3.0 * di * u[j] * z2


@njit(parallel=True, cache=True, fastmath=_FM)
def _relu_branch(g, y, a, b, c, alpha2, inv_n, f, delta, part, group, backward):  # pragma: no cover
    """f = g + alpha2 Σ_k c_k ReLU(a_k g + b_k); with ``backward``: e = (f − y) inv_n,
    part[grp, 0/1/2, k] = Σ_{i in grp} (R_ik e_i, A_ik e_i, A_ik e_i g_i) and
    delta_i = e_i (1 + alpha2 Σ_k A_ik a_k c_k) (the factor alpha1 is applied by the caller)."""
    r = g.shape[0]
    m2 = a.shape[0]
    ng = (r + group - 1) // group
    for k in prange(ng):
        if backward:
            for q in range(3):
                for j in range(m2):
                    part[k, q, j] = 0.0
        for i in range(k * group, min(r, (k + 1) * group)):
            gi = g[i]
            acc = 0.0
            for j in range(m2):
                pre = a[j] * gi + b[j]
                acc += c[j] * max(pre, 0.0)
            fi = gi + alpha2 * acc
            f[i] = fi
            if backward:
                e = (fi - y[i]) * inv_n
                eg = e * gi
                s = 0.0
                for j in range(m2):
                    pre = a[j] * gi + b[j]
                    on = 1.0 if pre > 0.0 else 0.0
                    part[k, 0, j] += max(pre, 0.0) * e
                    part[k, 1, j] += on * e
                    part[k, 2, j] += on * eg
                    s += on * a[j] * c[j]
                delta[i] = e * (1.0 + alpha2 * s)


# =============================================================================== engine
class _Engine:
    """Buffers for one network size and dtype; forward/backward block by block."""

    def __init__(self, m1: int, m2: int, d: int, block: int, dtype: np.dtype):
        self.block, self.dtype = block, dtype
        self.Z = np.empty((block, m1), dtype=dtype)
        self.thetaT = np.empty((d + 1, m1), dtype=dtype)
        self.dth = np.empty((m1, d + 1), dtype=dtype)
        self.g = np.empty(block)
        self.f = np.empty(block)
        self.delta = np.empty(block)
        ng = -(-block // _GROUP)
        self.part_u = np.empty((ng, m1))
        self.part2 = np.empty((ng, 3, m2))

    def load(self, net: Network) -> None:
        self.thetaT[...] = net.theta.T

    def features(self, X1: np.ndarray, net: Network) -> tuple[np.ndarray, np.ndarray]:
        """Z = X1 thetaᵀ (into the buffer) and g = α1 Σ u_j z_j^3 (float64)."""
        r = X1.shape[0]
        Z = self.Z[:r]
        np.matmul(X1, self.thetaT, out=Z)
        g = self.g[:r]
        _cubic_forward(Z, net.u, net.alpha1, g)
        return Z, g

    def output(self, g, net: Network, y=None, inv_n=0.0) -> np.ndarray:
        r = g.shape[0]
        f = self.f[:r]
        backward = y is not None
        _relu_branch(g, y if backward else g, net.a, net.b, net.c, net.alpha2, inv_n, f,
                     self.delta[:r], self.part2, _GROUP, backward)
        return f

    def accumulate_grad(self, X1, y, net: Network, inv_n: float, grads: dict) -> float:
        """Add this block's gradient of (1/2n) Σ (f − y)^2 (n via inv_n = 1/n) to ``grads``;
        return Σ_block (f − y)^2."""
        r = X1.shape[0]
        Z, g = self.features(X1, net)
        f = self.output(g, net, y, inv_n)
        ng = -(-r // _GROUP)
        p2 = self.part2[:ng].sum(axis=0)
        grads["c"] += net.alpha2 * p2[0]
        grads["b"] += net.alpha2 * net.c * p2[1]
        grads["a"] += net.alpha2 * net.c * p2[2]
        delta = self.delta[:r]
        delta *= net.alpha1
        _cubic_backward(Z, net.u, delta, self.part_u, _GROUP)
        grads["u"] += self.part_u[:ng].sum(axis=0)  # δ already carries α1
        np.matmul(Z.T, X1, out=self.dth)
        grads["theta"] += self.dth
        res = f - y
        return float(res @ res)


def _zero_grads(net: Network) -> dict:
    return {k: np.zeros_like(v) for k, v in net.tensors().items()}


def _as_rows(X, d_expected=None, name="X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or (d_expected is not None and X.shape[1] != d_expected):
        raise ValueError(f"{name} must have shape (n, {d_expected}), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf")
    return X


def _with_ones(X, dtype) -> np.ndarray:
    X1 = np.empty((X.shape[0], X.shape[1] + 1), dtype=dtype)
    X1[:, :-1] = X
    X1[:, -1] = 1.0
    return X1


def forward(net: Network, X, *, block: int = BLOCK, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """(f(X), g(X)) for the rows of X (n × d), block by block."""
    dt = _check_dtype(dtype)
    X = _as_rows(X, net.d)
    block = _pos_int(block, "block")
    eng = _Engine(net.m1, net.m2, net.d, block, dt)
    eng.load(net)
    n = X.shape[0]
    f, g = np.empty(n), np.empty(n)
    for s in range(0, n, block):
        X1 = _with_ones(X[s:s + block], dt)
        _, gb = eng.features(X1, net)
        g[s:s + len(gb)] = gb
        f[s:s + len(gb)] = eng.output(gb, net)
    return f, g


def loss_and_gradient(net: Network, X, y, *, block: int = BLOCK, dtype="float64"
                      ) -> tuple[float, dict[str, np.ndarray]]:
    """L = (1/2n) Σ (f(x) − y)^2 and its gradients {"theta" ([∂V, ∂s]), "u", "a", "b", "c"}
    (float64), computed block by block with the training kernels."""
    dt = _check_dtype(dtype)
    X = _as_rows(X, net.d)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    block = _pos_int(block, "block")
    return _loss_grad(net, _with_ones(X, dt), y, _Engine(net.m1, net.m2, net.d, block, dt), block)


def _loss_grad(net, X1, y, eng, block, idx=None):
    eng.load(net)
    grads = _zero_grads(net)
    n = X1.shape[0] if idx is None else len(idx)
    sse = 0.0
    for s in range(0, n, block):
        if idx is None:
            Xb, yb = X1[s:s + block], y[s:s + block]
        else:
            Xb, yb = X1[idx[s:s + block]], y[idx[s:s + block]]
        sse += eng.accumulate_grad(Xb, yb, net, 1.0 / n, grads)
    return 0.5 * sse / n, grads


# =============================================================================== evaluation
@dataclass
class _Metrics:
    test_loss: float
    test_loss_se: float
    test_loss_cv: float
    median_sq_error: float
    bulk_loss: float
    corr: float
    abs_corr: float
    stage1_test_loss: float = math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def evaluate(net: Network, problem: HierarchicalProblem, n_test: int, *, chunk=None,
             dtype="float64", stage1: bool = False) -> dict:
    """Test metrics of ``net`` on the seed's test set (first ``n_test`` rows): see
    :class:`HierarchicalResult`. ``stage1=True`` also reports the loss of g alone."""
    dt = _check_dtype(dtype)
    n_test = _pos_int(n_test, "n_test")
    eng = _Engine(net.m1, net.m2, net.d, problem.block, dt)
    eng.load(net)
    r = np.empty(n_test)
    r1 = np.empty(n_test) if stage1 else None
    gs = np.empty(n_test)
    ps = np.empty(n_test)
    hs = np.empty(n_test)
    for start, X1, h, p in problem.stream("test", n_test, chunk, dtype=dt):
        for s in range(0, len(h), problem.block):
            e = min(s + problem.block, len(h))
            _, g = eng.features(X1[s:e], net)
            f = eng.output(g, net)
            i0, i1 = start + s, start + e
            r[i0:i1] = f - h[s:e]
            gs[i0:i1] = g
            if stage1:
                r1[i0:i1] = g - h[s:e]
        ps[start:start + len(h)] = p
        hs[start:start + len(h)] = h
    return _metrics(r, gs, ps, hs, problem.d, r1)


def _metrics(r, g, p, h, d, r1=None) -> _Metrics:
    n = len(r)
    r2 = r * r
    loss = float(r2.mean())
    se = float(r2.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    h2 = h * h
    vh = float(h2.var())
    beta = float(np.mean((r2 - loss) * (h2 - h2.mean())) / vh) if vh > 0 else 0.0
    cv = loss - beta * (float(h2.mean()) - 1.0)
    bulk = np.abs(p) <= 3.0 * math.sqrt(6.0 * d)
    corr = _pearson(g, p)
    return _Metrics(loss, se, cv, float(np.median(r2)), float(r2[bulk].mean()) if bulk.any() else math.nan,
                    corr, abs(corr), float(np.mean(r1 * r1)) if r1 is not None else math.nan)


# =============================================================================== results
@dataclass
class HierarchicalResult:
    """Outcome of :func:`layerwise` / :func:`train_adam`.

    test_loss, test_loss_se : mean (h − f)^2 on the test set and its MC standard error.
    test_loss_cv : control-variate estimate (uses E h^2 = 1; lower variance).
    median_sq_error, bulk_loss : median of (h − f)^2; mean over test points with |p̄| ≤ 3.
    corr, abs_corr : Pearson corr(g, p) on the test set (signed; absolute value).
    stage1_test_loss : (layer-wise) test loss of ĝ alone (degree-≤3 random-feature baseline).
    train_corr, train_loss : corr(g, p) on the training set (D1 for layer-wise) and final
        (1/2n) Σ (f − y)^2 (Adam: at the last step; layer-wise: NaN).
    steps, converged : Adam steps taken and whether the plateau rule stopped training.
    history : train loss per step (Adam) or per epoch (mini-batch); empty for layer-wise.
    network : the trained :class:`Network` (``return_network=True``).
    """

    method: str
    d: int
    n: int
    m1: int
    m2: int
    n_test: int
    test_loss: float
    test_loss_se: float
    test_loss_cv: float
    median_sq_error: float
    bulk_loss: float
    corr: float
    abs_corr: float
    stage1_test_loss: float = math.nan
    train_corr: float = math.nan
    train_loss: float = math.nan
    steps: int = 0
    converged: bool = False
    wall_time: float = 0.0
    history: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    network: Network | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """Plain dict of floats (JSON-able): what :func:`hierarchical_task` returns."""
        keys = ("d", "n", "m1", "m2", "n_test", "test_loss", "test_loss_se", "test_loss_cv",
                "median_sq_error", "bulk_loss", "corr", "abs_corr", "stage1_test_loss",
                "train_corr", "train_loss", "steps", "wall_time")
        out = {k: float(getattr(self, k)) for k in keys}
        out["converged"] = float(self.converged)
        return out


def _common(d, n, seed, n_test, dtype, block, chunk):
    d, n = _pos_int(d, "d"), _pos_int(n, "n")
    n_test = _pos_int(n_test, "n_test")
    dt = _check_dtype(dtype)
    block = _pos_int(block, "block")
    if chunk is not None:
        _pos_int(chunk, "chunk")
    seed = seed_sequence(seed)
    return d, n, n_test, dt, block, seed


# =============================================================================== layer-wise
def _solve_ridge(K, rhs, xi, method, eta, steps, name):
    """argmin ½ uᵀ(K + ξI)u − rhsᵀu: Cholesky ("ridge") or ``steps`` of GD from 0 ("gd")."""
    m = K.shape[0]
    A = K + xi * np.eye(m)
    if method == "ridge":
        try:
            return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, lower=True), rhs)
        except np.linalg.LinAlgError:  # not numerically PD: spectral solve on the PSD part
            w, Q = np.linalg.eigh(A)
            w = np.where(w > w.max() * 1e-14, w, np.inf)
            return Q @ ((Q.T @ rhs) / w)
    if eta is None:
        eta = 1.0 / float(scipy.linalg.eigvalsh(A, subset_by_index=[m - 1, m - 1])[0])
    eta = _pos_float(eta, name)
    u = np.zeros(m)
    for _ in range(steps):
        u -= eta * (A @ u - rhs)
    return u


def layerwise(d: int, n: int, m1: int, m2: int, seed: SeedLike = 0, *, n2: int | None = None,
              n_test: int = 1 << 17, stage1: str = "ridge", stage2: str = "ridge",
              xi1: float | None = None, xi2: float | None = None, xi1_rel: float = 1e-6,
              xi2_rel: float = 1e-6, eta1: float | None = None, eta2: float | None = None,
              T1: int = 1000, T2: int = 1000, bias: str = "t", bias_df: float = 10.0,
              v_init: str = "sphere", dtype="float64", block: int = BLOCK, chunk: int | None = None,
              return_network: bool = False) -> HierarchicalResult:
    """Algorithm 1 (layer-wise training; module docstring): stage 1 on u over D1 (n rows),
    stage 2 on c over D2 (``n2`` rows, default n), test metrics on ``n_test`` fresh points.

    stage1, stage2 : "ridge" (closed form = GD run to convergence) or "gd" (T steps of GD from 0
        with step ``eta1``/``eta2``, default 1/λ_max of the regularised Gram matrix).
    xi1, xi2 : absolute weight decays; default ``xi_rel`` × tr(Gram)/width (relative ridge).
    bias : "t" (b_i = std_{D1}(ĝ) t_ν, ν = bias_df), "unif" (U[−B, B], B = max_{D1}|ĝ|) or
        "normal" (std_{D1}(ĝ) N(0, 1)).
    dtype : compute precision of the first-layer GEMM and kernels (Gram matrices: float64).
    """
    t0 = time.perf_counter()
    d, n, n_test, dt, block, seed = _common(d, n, seed, n_test, dtype, block, chunk)
    m1, m2 = _pos_int(m1, "m1"), _pos_int(m2, "m2")
    n2 = n if n2 is None else _pos_int(n2, "n2")
    _choice(stage1, "stage1", ("ridge", "gd"))
    _choice(stage2, "stage2", ("ridge", "gd"))
    T1, T2 = _nonneg_int(T1, "T1"), _nonneg_int(T2, "T2")
    xi1_rel = _pos_float(xi1_rel, "xi1_rel", allow_zero=True)
    xi2_rel = _pos_float(xi2_rel, "xi2_rel", allow_zero=True)
    if xi1 is not None:
        xi1 = _pos_float(xi1, "xi1", allow_zero=True)
    if xi2 is not None:
        xi2 = _pos_float(xi2, "xi2", allow_zero=True)
    problem = make_problem(d, seed, block)
    net = init_network(d, m1, m2, seed, mup=False, v_init=v_init, bias=bias, bias_df=bias_df)
    eng = _Engine(m1, m2, d, block, dt)
    eng.load(net)

    # ---- stage 1: Gram matrix of the cubic features on D1 (float64), closed form / GD
    G = np.zeros((m1, m1))
    Phi_y = np.zeros(m1)
    Phi_sum = np.zeros(m1)
    for _, X1, h, _p in problem.stream("D1", n, chunk, dtype=dt):
        for s in range(0, len(h), block):
            Z = eng.Z[: min(block, len(h) - s)]
            np.matmul(X1[s:s + len(Z)], eng.thetaT, out=Z)
            functions.apply("cube", Z, out=Z)
            Phi = Z if dt == np.float64 else Z.astype(np.float64)
            G += Phi.T @ Phi  # SYRK
            Phi_y += h[s:s + len(Z)] @ Phi
            Phi_sum += Phi.sum(axis=0)
    G /= n
    Phi_y /= n
    if xi1 is None:
        xi1 = xi1_rel * float(np.trace(G)) / m1
    net.u = _solve_ridge(G, Phi_y, xi1, stage1, eta1, T1, "eta1")
    eng.load(net)
    g_mean = float(Phi_sum @ net.u) / n
    g_std = math.sqrt(max(float(net.u @ G @ net.u) - g_mean**2, 0.0))

    # ---- bias of the ReLU layer from ĝ on D1 (correlation on D1 in the same pass)
    need_pass = bias == "unif"
    gmax = 0.0
    if need_pass:
        for _, X1, h, p in problem.stream("D1", n, chunk, dtype=dt):
            for s in range(0, len(h), block):
                _, g = eng.features(X1[s:s + block], net)
                gmax = max(gmax, float(np.abs(g).max()))
    raw = _draw_bias(child_rng(seed, _B), m2, bias, _pos_float(bias_df, "bias_df"))
    net.b = raw * (gmax if bias == "unif" else g_std)

    # ---- stage 2: ReLU features of the frozen scalar ĝ on D2
    K = np.zeros((m2, m2))
    rhs = np.zeros(m2)
    for _, X1, h, _p in problem.stream("D2", n2, chunk, dtype=dt):
        for s in range(0, len(h), block):
            _, g = eng.features(X1[s:s + block], net)
            Psi = np.maximum(np.multiply.outer(g, net.a) + net.b, 0.0)
            K += Psi.T @ Psi
            rhs += (h[s:s + len(g)] - g) @ Psi
    K /= n2
    rhs /= n2
    if xi2 is None:
        xi2 = xi2_rel * float(np.trace(K)) / m2
    net.c = _solve_ridge(K, rhs, xi2, stage2, eta2, T2, "eta2")

    m = evaluate(net, problem, n_test, chunk=chunk, dtype=dt, stage1=True)
    return HierarchicalResult("layerwise", d, n, m1, m2, n_test, m.test_loss, m.test_loss_se,
                              m.test_loss_cv, m.median_sq_error, m.bulk_loss, m.corr, m.abs_corr,
                              m.stage1_test_loss, wall_time=time.perf_counter() - t0,
                              network=net if return_network else None)


# =============================================================================== Adam
def train_adam(d: int, n: int, seed: SeedLike = 0, *, m1: int | None = None, m2: int = 1000,
               n_test: int = 1 << 17, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
               eps: float = 1e-8, max_steps: int = 20000, patience: int = 1000,
               rel_tol: float = 1e-3, batch_size: int | None = None, schedule: str = "cosine",
               mup: bool = True, bias: str = "t", bias_df: float = 10.0, bias_scale: float = 1.0,
               v_init: str = "sphere", dtype="float64", block: int = BLOCK,
               chunk: int | None = None, return_network: bool = False,
               keep_history: bool = True) -> HierarchicalResult:
    """End-to-end Adam on all parameters (module docstring), then test metrics.

    m1 : cubic width (default d^2, the paper's choice); m2 : ReLU width (default 1000).
    lr, betas, eps : Adam (same lr on every tensor; μP multipliers with ``mup=True``).
    max_steps : cap on optimiser steps; patience, rel_tol : plateau rule (module docstring).
    batch_size : None = full batch for n ≤ 2^15, else 2^13; a value ≥ n means full batch.
    schedule : "cosine" (lr → 0 at max_steps) or "constant".
    """
    t0 = time.perf_counter()
    d, n, n_test, dt, block, seed = _common(d, n, seed, n_test, dtype, block, chunk)
    m1 = d * d if m1 is None else _pos_int(m1, "m1")
    m2 = _pos_int(m2, "m2")
    lr = _pos_float(lr, "lr")
    eps = _pos_float(eps, "eps")
    try:
        b1, b2 = (float(x) for x in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}") from None
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    max_steps = _pos_int(max_steps, "max_steps")
    patience = _pos_int(patience, "patience")
    rel_tol = _pos_float(rel_tol, "rel_tol", allow_zero=True)
    _choice(schedule, "schedule", ("cosine", "constant"))
    if batch_size is None:
        batch_size = n if n <= (1 << 15) else (1 << 13)
    batch_size = min(_pos_int(batch_size, "batch_size"), n)
    full = batch_size >= n

    problem = make_problem(d, seed, block)
    net = init_network(d, m1, m2, seed, mup=mup, v_init=v_init, bias=bias, bias_df=bias_df,
                       bias_scale=bias_scale)
    X1, y, p_train = problem._batch1("train", n, dtype=dt)
    eng = _Engine(m1, m2, d, block, dt)
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in net.tensors().items()}

    history: list[float] = []
    ref, since, converged = math.inf, 0, False
    step = 0
    per_epoch = -(-n // batch_size)
    pat = patience if full else max(1, -(-patience // per_epoch))
    epoch = 0
    last_loss = math.nan
    while step < max_steps and not converged:
        order = None if full else child_rng(seed, _SHUFFLE, epoch).permutation(n)
        epoch_losses = []
        for k in range(per_epoch):
            if step >= max_steps:
                break
            idx = None if full else np.sort(order[k * batch_size:(k + 1) * batch_size])
            loss, grads = _loss_grad(net, X1, y, eng, block, idx)
            if not math.isfinite(loss):
                raise FloatingPointError(f"train_adam: loss became {loss} at step {step} (lr too large?)")
            epoch_losses.append(loss)
            step += 1
            lr_t = lr if schedule == "constant" else 0.5 * lr * (1 + math.cos(math.pi * (step - 1) / max_steps))
            c1, c2 = 1 - b1**step, 1 - b2**step
            for name, param in net.tensors().items():
                gr = grads[name]
                m, v = moments[name]
                m *= b1
                m += (1 - b1) * gr
                v *= b2
                v += (1 - b2) * gr * gr
                param -= lr_t * (m / c1) / (np.sqrt(v / c2) + eps)
            if full:
                monitored = loss
                last_loss = loss
                history.append(loss)
                if monitored < (1 - rel_tol) * ref:
                    ref, since = monitored, 0
                else:
                    since += 1
                    if since >= pat:
                        converged = True
                        break
        if not full and epoch_losses and len(epoch_losses) == per_epoch:
            monitored = float(np.mean(epoch_losses))
            last_loss = monitored
            history.append(monitored)
            if monitored < (1 - rel_tol) * ref:
                ref, since = monitored, 0
            else:
                since += 1
                if since >= pat:
                    converged = True
        epoch += 1

    # ---- training-set correlation and final metrics
    eng.load(net)
    g_train = np.empty(n)
    for s in range(0, n, block):
        _, g = eng.features(X1[s:s + block], net)
        g_train[s:s + len(g)] = g
    train_corr = _pearson(g_train, p_train)
    m = evaluate(net, problem, n_test, chunk=chunk, dtype=dt)
    return HierarchicalResult("adam", d, n, m1, m2, n_test, m.test_loss, m.test_loss_se,
                              m.test_loss_cv, m.median_sq_error, m.bulk_loss, m.corr, m.abs_corr,
                              train_corr=train_corr, train_loss=last_loss, steps=step,
                              converged=converged, wall_time=time.perf_counter() - t0,
                              history=np.asarray(history) if keep_history else np.empty(0),
                              network=net if return_network else None)


# =============================================================================== sweep task
_LAYERWISE_KEYS = {"d", "n", "m1", "m2", "n2", "n_test", "stage1", "stage2", "xi1", "xi2",
                   "xi1_rel", "xi2_rel", "eta1", "eta2", "T1", "T2", "bias", "bias_df", "v_init",
                   "dtype", "block", "chunk"}
_ADAM_KEYS = {"d", "n", "m1", "m2", "n_test", "lr", "betas", "eps", "max_steps", "patience",
              "rel_tol", "batch_size", "schedule", "mup", "bias", "bias_df", "bias_scale",
              "v_init", "dtype", "block", "chunk"}


def hierarchical_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """One sweep point for :func:`simulations.sweep.run_sweep`.

    ``params``: ``"method"`` ∈ {"layerwise", "adam"} and the keyword arguments of
    :func:`layerwise` / :func:`train_adam` by name (``betas`` a list). Optional ``"replica"``
    (int): use SeedSequence(replica) instead of the task seed, so that points differing only in
    n share λ, the initialisation and the test set (paired comparisons across n, spec §4); the
    sweep's seed index should then be encoded in ``replica``. Returns
    :meth:`HierarchicalResult.summary` (dict of floats).
    """
    kw = dict(params)
    method = kw.pop("method", None)
    if method not in ("layerwise", "adam"):
        raise ValueError(f"hierarchical_task: params['method'] must be 'layerwise' or 'adam', got {method!r}")
    replica = kw.pop("replica", None)
    allowed = _LAYERWISE_KEYS if method == "layerwise" else _ADAM_KEYS
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ValueError(f"hierarchical_task: unknown parameter(s) {unknown} for method {method!r}")
    if replica is not None:
        seed = seed_sequence(_nonneg_int(replica, "replica"))
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    if method == "layerwise":
        for key in ("d", "n", "m1", "m2"):
            if key not in kw:
                raise ValueError(f"hierarchical_task: layerwise needs {key!r}")
        res = layerwise(seed=seed, **kw)
    else:
        for key in ("d", "n"):
            if key not in kw:
                raise ValueError(f"hierarchical_task: adam needs {key!r}")
        res = train_adam(seed=seed, keep_history=False, **kw)
    return res.summary()
