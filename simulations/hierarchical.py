r"""Hierarchical polynomials h = C_d p^3 learned by a three-layer network (layer-wise / Adam).

Model (Wang, Nichani, Lee, "Learning Hierarchical Polynomials with Three-Layer Neural Networks",
arXiv:2311.13774; equations and conventions in ``docs/theory/hierarchical.md``)
---------------------------------------------------------------------------------------------
* Inputs x ~ N(0, I_d) (rows). Target h(x) = C_d p(x)^3 with p(x) = Σ_i λ_i He3(x_i),
  λ_i uniform ±1 (drawn once per seed), He3 = z^3 − 3z and
  C_d = (3240 d^3 + 291600 d^2 + 11314080 d)^{-1/2} (E h^2 = 1; h does not depend on the
  convention for p, see :mod:`asymptotics.hierarchical`, which computes C_d exactly).
* Network (a reconstruction of the paper's network: skip connection and a scalar bottleneck),
  with width multipliers α1, α2::

      z_j = v_j·x + s_j,   g(x) = α1 Σ_j u_j z_j^3,   f(x) = g(x) + α2 Σ_i c_i ReLU(a_i g(x) + b_i)

  ``mup=True`` (Adam default): α1 = 1/m1, α2 = 1/m2 (μP; one learning rate for all tensors);
  ``mup=False`` (layer-wise default): α1 = α2 = 1.
* Initialisation (options of :func:`init_network`): u = c = 0; v_j uniform on the sphere of
  radius 1/√2 (``v_init="sphere"``; ``"gauss"``: N(0, I/(2d))); s_j ~ N(0, 1/2); a_i uniform ±1;
  b_i ~ ``bias``: "t" (Student t_ν, ν = ``bias_df`` = 10, the heavy-tailed default), "normal",
  or "unif" (U[−1, 1]); times ``bias_scale``. The layer-wise algorithm rescales b after
  stage 1: b_i = std_{D1}(ĝ) t_ν ("t"), or U[−B, B] with B = max_{D1}|ĝ| ("unif").

:func:`layerwise` — Algorithm 1 of the paper: V, s, a, b frozen. Stage 1 on D1 (n1 rows): with
Φ = (X Vᵀ + s)^3, u = (ΦᵀΦ/n1 + ξ1 I)^{-1} Φᵀy/n1 (closed form, Cholesky, by
:func:`simulations.linalg.ridge_from_gram`; ``stage1="gd"``: T1 steps of GD on
L1(u) = ‖y − Φu‖^2/(2 n1) + ξ1‖u‖^2/2 from u = 0, step η1, default 1/λ_max(ΦᵀΦ/n1 + ξ1)).
Default ξ1 = ``xi1_rel`` tr(ΦᵀΦ/n1)/m1 with xi1_rel = 1e-6 (a relative ridge) unless ``xi1`` is
given. Stage 2 on D2 (n2 rows) with ĝ frozen: Ψ = ReLU(ĝ aᵀ + 1bᵀ),
c = (ΨᵀΨ/n2 + ξ2 I)^{-1} Ψᵀ(y − ĝ)/n2 (or GD, ``stage2="gd"``), ξ2 likewise relative.

:func:`train_adam` — all of (V, s, u, a, b, c) trained jointly by Adam
(:class:`simulations.optim.Adam`, β = 0.9, 0.999, ε = 1e-8, same η on every tensor, μP
multipliers) on L = (1/2n) Σ (f − y)^2, full batch (default for n ≤ 2^15) or mini-batches
(default 2^13, reshuffled each epoch), cosine decay η_t = η (1 + cos(π t/T))/2 to 0 over
T = ``max_steps`` (``schedule="constant"`` to switch off). Stops when the monitored train loss
(per step, or the epoch mean with mini-batches) has not gone below (1 − rel_tol) times its value
at the last improvement for ``patience`` steps, or after ``max_steps`` steps.

Gradients (per row block, e = (f − y)/n, A = 1[g aᵀ + b > 0], R = ReLU(g aᵀ + b))::

    ∂c = α2 Rᵀe,  ∂b = α2 c∘(Aᵀe),  ∂a = α2 c∘(Aᵀ(e∘g)),  δ = α1 e∘(1 + α2 A(a∘c)),
    ∂u = Φᵀδ,  W = 3 (δ uᵀ)∘Z∘Z,  ∂[V, s] = Wᵀ [X, 1]   (one GEMM; the ones column gives ∂s).

Metrics (every result, on ``n_test`` fresh points, default 2^17; one test set per seed, shared
by all n): test loss mean (h − f)^2 with its Monte-Carlo standard error std((h − f)^2)/√N, the
control-variate estimate mean(r²) − β(mean(h²) − 1) using E h^2 = 1, the decomposed estimate
1 + mean(f² − 2hf) (E h² = 1 exact, only the light-tailed remainder by Monte Carlo) with its
standard error, the median squared error,
the bulk loss (points with |p̄| ≤ 3, p̄ = p/√(6d)), corr(g, p) (Pearson, signed, and its absolute
value); layer-wise also the stage-1-only loss (predictor ĝ), Adam also the training-set
correlation and loss.

Specs and tasks
---------------
:class:`LayerwiseSpec` and :class:`AdamSpec` (frozen :class:`~simulations.spec.ModelSpec`
dataclasses) hold one parameter point of each method and validate it once; :func:`layerwise`
and :func:`train_adam` build one from their keyword arguments, :func:`hierarchical_task`
(the sweep task) takes one (or the earlier dict form with a ``"method"`` key).

Computation
-----------
Nothing of size n × m1 or n × m2 is ever held. Forward passes (test set, stage statistics) take
rows in blocks of ``block`` rows (default :data:`BLOCK`): Z = [X, 1] [V, s]ᵀ is one GEMM (numpy
``@``, BLAS), then Numba kernels compute g = α1 Σ u_j z_j^3 and the ReLU branch (O(m2) per row).

A training pass (loss and gradient, :func:`loss_and_gradient`, each Adam step) cuts the rows into
:data:`_LANES` contiguous lanes that run in parallel (one Numba thread each, BLAS single-threaded
inside); a lane takes its rows in tiles small enough for Z to stay in the core's cache
(:data:`_TILE_BYTES`, at most ``block`` rows) and per tile: Z = [X, 1] [V, s]ᵀ (GEMM), g, the
ReLU branch, δ, W = 3 (δ uᵀ)∘Z∘Z and ∂u in place of Z, ∂[V, s] += Wᵀ [X, 1] (GEMM). The ReLU
branch is a piecewise-linear function of the scalar g with its kinks at t_k = −b_k/a_k: sorted once
per pass (:func:`_relu_tables`), Σ_k c_k ReLU(a_k g + b_k) and Σ_{k active} a_k c_k come from
prefix sums at the position of g (binary search, O(log m2) per row), and ∂a, ∂b, ∂c from
histograms of e and e g over those positions (O(m2) per pass, not per row). Each lane sums its
tiles in order and the lanes are added in lane order (float64), so the results do not depend on
the number of threads, nor on ``chunk`` (rows per generated buffer of the streamed data sets D1,
D2 and the test set; rounded to a multiple of ``block``). Stage 1 accumulates ΦᵀΦ (SYRK) in
float64. ``dtype="float32"`` runs the GEMMs and the first-layer kernels in float32 (g, δ,
parameters, Gram matrices and every accumulation over tiles stay float64).

Randomness (:func:`simulations.rng.stream`): stream(seed, purpose, ...) with the named purposes
"lambda", "V", "s", "a", "b", "D1", "D2", "train", "test", "shuffle"; data block k (``block``
rows) of a set comes from stream(seed, purpose, k), so a data set of n rows is the first n rows
of its stream (the same for every chunk size; changing ``block`` changes the draw, not its law);
the mini-batch order of epoch k from stream(seed, "shuffle", k). The training set of
:func:`train_adam` (n × (d + 1) and n labels: "the data itself") is held in memory.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import numpy as np
import numba
import scipy.linalg
from numba import njit, prange

from asymptotics import functions
from asymptotics.validation import choice, float_dtype, nonneg_int, pos_float, pos_int

from .linalg import ridge_from_gram
from .optim import Adam
from .rng import SeedLike, seed_sequence, stream
from .spec import ModelSpec, register_spec

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
    "LayerwiseSpec",
    "AdamSpec",
    "layerwise",
    "run_layerwise",
    "train_adam",
    "run_adam",
    "hierarchical_task",
]

#: Rows per random-number block and per compute block.
BLOCK = 512
#: Default rows per generated buffer of streamed data sets.
_CHUNK_ROWS = 8192


# =============================================================================== target
def normalising_constant(d: int) -> float:
    """C_d for p built from unnormalised He3: (3240 d^3 + 291600 d^2 + 11314080 d)^{-1/2}
    (closed form; :func:`asymptotics.hierarchical.normalising_constant` derives it exactly)."""
    d = pos_int(d, "d")
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

    #: The data sets; each name is also the purpose of its random stream.
    KINDS: ClassVar[tuple[str, ...]] = ("D1", "D2", "train", "test")

    def stream(self, kind: str, n: int, chunk: int | None = None, dtype=np.float64,
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (start, X1 (m × (d+1), last column = 1, ``dtype``), h (m,), p (m,)) for the data
        set ``kind`` ∈ {"D1", "D2", "train", "test"} of n rows, ``chunk`` rows at a time (rounded
        down to a multiple of ``block``). Buffers are reused between chunks."""
        purpose = choice(kind, "kind", self.KINDS)
        n = pos_int(n, "n")
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
                stream(self.seed, purpose, k).standard_normal(out=Xb)
                hb, pb = target(Xb[: e - s], self.lam, self.C)
                h[s:e], p[s:e] = hb, pb
                X1[s:e, : self.d] = Xb[: e - s]
            yield start, X1[:m], h[:m], p[:m]

    def batch(self, kind: str, n: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole data set (X (n × d), h, p) in memory: exactly the rows :meth:`stream` yields."""
        X1, h, p = self._batch1(kind, n, dtype)
        return np.ascontiguousarray(X1[:, : self.d]), h, p

    def _batch1(self, kind, n, dtype=np.float64):
        n = pos_int(n, "n")
        X1 = np.empty((n, self.d + 1), dtype=dtype)
        h = np.empty(n)
        p = np.empty(n)
        for start, Xc, hc, pc in self.stream(kind, n, chunk=max(n, self.block), dtype=dtype):
            X1[start:start + len(hc)] = Xc
            h[start:start + len(hc)] = hc
            p[start:start + len(hc)] = pc
        return X1, h, p


def _chunk_rows(chunk, block: int, n: int) -> int:
    chunk = _CHUNK_ROWS if chunk is None else pos_int(chunk, "chunk")
    rows = max(1, chunk // block) * block
    return min(rows, -(-n // block) * block)


def make_problem(d: int, seed: SeedLike = 0, block: int = BLOCK) -> HierarchicalProblem:
    """Target of one seed: λ_i uniform ±1 from stream(seed, "lambda"); C = C_d."""
    d = pos_int(d, "d")
    block = pos_int(block, "block")
    seed = seed_sequence(seed)
    lam = stream(seed, "lambda").choice(np.array([-1.0, 1.0]), size=d)
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
    """Initial network (``docs/theory/hierarchical.md``): u = c = 0; V rows on the sphere of radius 1/√2 (``"sphere"``) or
    N(0, I/(2d)) (``"gauss"``); s ~ N(0, 1/2); a uniform ±1; b = bias_scale × (t_ν | N(0,1) |
    U[−1,1]) for ``bias`` = "t" | "normal" | "unif". μP: α1 = 1/m1, α2 = 1/m2, else 1, 1."""
    d, m1, m2 = pos_int(d, "d"), pos_int(m1, "m1"), pos_int(m2, "m2")
    seed = seed_sequence(seed)
    choice(v_init, "v_init", ("sphere", "gauss"))
    choice(bias, "bias", _BIASES)
    bias_df = pos_float(bias_df, "bias_df")
    bias_scale = pos_float(bias_scale, "bias_scale", allow_zero=True)
    if not isinstance(mup, (bool, np.bool_)):
        raise ValueError(f"mup must be True or False, got {mup!r}")
    G = stream(seed, "V").standard_normal((m1, d))
    if v_init == "sphere":
        G /= np.linalg.norm(G, axis=1, keepdims=True) * math.sqrt(2.0)
    else:
        G /= math.sqrt(2.0 * d)
    theta = np.empty((m1, d + 1))
    theta[:, :d] = G
    theta[:, d] = stream(seed, "s").standard_normal(m1) / math.sqrt(2.0)
    a = stream(seed, "a").choice(np.array([-1.0, 1.0]), size=m2)
    b = bias_scale * _draw_bias(stream(seed, "b"), m2, bias, bias_df)
    al1, al2 = (1.0 / m1, 1.0 / m2) if mup else (1.0, 1.0)
    return Network(theta, np.zeros(m1), a, b, np.zeros(m2), al1, al2)


# =============================================================================== kernels
_FM = {"reassoc", "contract", "nsz"}  # vectorised reductions; deterministic for fixed shapes
#: Lanes of a training epoch: the rows are cut into this many contiguous ranges, each summed on its
#: own (serially, tile by tile) and the lanes reduced in lane order, so that the gradient does not
#: depend on the number of threads.
_LANES = 16
#: Size of one lane's Z tile: tile rows = the largest power of 2 with rows × m1 × itemsize ≤ this
#: (at most ``block``), so that Z, W and the GEMMs on them stay in the core's cache.
_TILE_BYTES = 2 << 20


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
def _relu_branch(g, a, b, c, alpha2, f):  # pragma: no cover - compiled
    """f = g + alpha2 Σ_k c_k ReLU(a_k g + b_k), rows in parallel (O(m2) per row)."""
    m2 = a.shape[0]
    for i in prange(g.shape[0]):
        gi = g[i]
        acc = 0.0
        for j in range(m2):
            acc += c[j] * max(a[j] * gi + b[j], 0.0)
        f[i] = gi + alpha2 * acc


# ------------------------------------------------------------------ the training epoch
@njit(cache=True)
def _relu_tables(a, b, c, tab, perm):  # pragma: no cover - compiled
    """The ReLU branch as a piecewise-linear function of the scalar g, for one epoch.

    Unit k is active (a_k g + b_k > 0) iff g > t_k = −b_k/a_k for a_k > 0 (and always for
    a_k = 0 < b_k, t_k = −∞: the set P), iff g < t_k for a_k < 0 (the set N); never otherwise.
    perm[:nP] = P sorted by t ascending, perm[nP:nP+nN] = N sorted likewise; tab rows:
    0 t of P, 1 t of N, 2/3 prefix sums over P of c a / c b (tab[2, q] = Σ_{m<q}),
    4/5 suffix sums over N of c a / c b (tab[4, q] = Σ_{m≥q}). A row with q_P units of P below
    its g and q_N units of N at or below it has Σ_k c_k ReLU(a_k g + b_k) =
    g (tab[2, q_P] + tab[4, q_N]) + tab[3, q_P] + tab[5, q_N]. Returns (nP, nN).
    """
    m2 = a.shape[0]
    t = np.empty(m2)
    kind = np.zeros(m2, np.int64)  # 1: P, 2: N, 0: never active
    for k in range(m2):
        if a[k] > 0.0 or (a[k] == 0.0 and b[k] > 0.0):
            kind[k] = 1
        elif a[k] < 0.0:
            kind[k] = 2
        t[k] = -b[k] / a[k] if a[k] != 0.0 else -np.inf
    P = np.flatnonzero(kind == 1)
    N = np.flatnonzero(kind == 2)
    P = P[np.argsort(t[P], kind="mergesort")]
    N = N[np.argsort(t[N], kind="mergesort")]
    nP, nN = P.shape[0], N.shape[0]
    perm[:nP] = P
    perm[nP:nP + nN] = N
    tab[:, :] = 0.0
    for q in range(nP):
        k = P[q]
        tab[0, q] = t[k]
        tab[2, q + 1] = tab[2, q] + c[k] * a[k]
        tab[3, q + 1] = tab[3, q] + c[k] * b[k]
    for q in range(nN - 1, -1, -1):
        k = N[q]
        tab[1, q] = t[k]
        tab[4, q] = tab[4, q + 1] + c[k] * a[k]
        tab[5, q] = tab[5, q + 1] + c[k] * b[k]
    return nP, nN


@njit(cache=True)
def _relu_grads(H, perm, nP, nN, a, b, c, alpha2, ga, gb, gc):  # pragma: no cover - compiled
    """∂a, ∂b, ∂c from the lanes' histograms H[lane, 0/1, q] = Σ e_i / Σ e_i g_i over the rows
    with q_P = q and H[lane, 2/3, q] likewise for q_N (lanes summed in order). Unit P[m] is
    active for the rows with q_P > m, N[m] for those with q_N ≤ m; with E_k = Σ_{active} e_i and
    G_k = Σ_{active} e_i g_i: ∂a_k = α2 c_k G_k, ∂b_k = α2 c_k E_k, ∂c_k = α2 (a_k G_k + b_k E_k)."""
    h = np.zeros((4, H.shape[2]))
    for lane in range(H.shape[0]):
        h += H[lane]
    ga[:] = 0.0
    gb[:] = 0.0
    gc[:] = 0.0
    E, G = 0.0, 0.0
    for m in range(nP - 1, -1, -1):  # suffix sums over q_P > m
        E += h[0, m + 1]
        G += h[1, m + 1]
        k = perm[m]
        ga[k], gb[k], gc[k] = alpha2 * c[k] * G, alpha2 * c[k] * E, alpha2 * (a[k] * G + b[k] * E)
    E, G = 0.0, 0.0
    for m in range(nN):  # prefix sums over q_N ≤ m
        E += h[2, m]
        G += h[3, m]
        k = perm[nP + m]
        ga[k], gb[k], gc[k] = alpha2 * c[k] * G, alpha2 * c[k] * E, alpha2 * (a[k] * G + b[k] * E)


@njit(cache=True, fastmath=_FM)
def _tile_forward(Z, u, alpha1, g):  # pragma: no cover - compiled
    """g[i] = alpha1 Σ_j u_j Z[i, j]^3 (float64 accumulation), serial."""
    r, m = Z.shape
    for i in range(r):
        acc = 0.0
        for j in range(m):
            z = np.float64(Z[i, j])
            acc += u[j] * (z * z * z)
        g[i] = alpha1 * acc


@njit(cache=True)
def _tile_relu(g, y, rows, tab, nP, nN, alpha1, alpha2, inv_n, H, delta):  # pragma: no cover
    """Output, residual and δ of the tile's rows (``rows``: their indices in y) through the
    tables of :func:`_relu_tables`: f = g + α2 (g S_a + S_b), e = (f − y) inv_n,
    δ = α1 e (1 + α2 S_a); adds e, e g to the histograms H (:func:`_relu_grads`); returns
    Σ (f − y)²."""
    sse = 0.0
    for i in range(g.shape[0]):
        gi = g[i]
        qp = np.searchsorted(tab[0, :nP], gi, side="left")
        qn = np.searchsorted(tab[1, :nN], gi, side="right")
        slope = tab[2, qp] + tab[4, qn]
        res = gi + alpha2 * (gi * slope + tab[3, qp] + tab[5, qn]) - y[rows[i]]
        sse += res * res
        e = res * inv_n
        H[0, qp] += e
        H[1, qp] += e * gi
        H[2, qn] += e
        H[3, qn] += e * gi
        delta[i] = alpha1 * e * (1.0 + alpha2 * slope)
    return sse


@njit(cache=True, fastmath=_FM)
def _tile_backward(Z, delta, u, du):  # pragma: no cover - compiled
    """Z[i, j] <- W_ij = 3 δ_i u_j Z_ij² in place and du_j += Σ_i δ_i Z_ij³; four rows per pass
    over j (one load and store of du per four rows), then the remaining rows one by one."""
    r, m = Z.shape
    i = 0
    while i + 4 <= r:
        d0, d1, d2, d3 = delta[i], delta[i + 1], delta[i + 2], delta[i + 3]
        for j in range(m):
            z0, z1 = np.float64(Z[i, j]), np.float64(Z[i + 1, j])
            z2, z3 = np.float64(Z[i + 2, j]), np.float64(Z[i + 3, j])
            s0, s1, s2, s3 = z0 * z0, z1 * z1, z2 * z2, z3 * z3
            du[j] += (d0 * s0) * z0 + (d1 * s1) * z1 + (d2 * s2) * z2 + (d3 * s3) * z3
            w = 3.0 * u[j]
            Z[i, j] = w * d0 * s0
            Z[i + 1, j] = w * d1 * s1
            Z[i + 2, j] = w * d2 * s2
            Z[i + 3, j] = w * d3 * s3
        i += 4
    for i in range(i, r):
        di = delta[i]
        for j in range(m):
            z = np.float64(Z[i, j])
            s = z * z
            du[j] += di * s * z
            Z[i, j] = 3.0 * u[j] * di * s


@njit(cache=True)
def _lane(lane, X1, idx, y, thetaT, u, alpha1, alpha2, inv_n, tab, nP, nN, per,
          Zb, Xb, gb, db, Tb, dth, du, H):  # pragma: no cover - compiled
    """One lane of :func:`_epoch`: its rows, tile by tile — Z = X thetaᵀ (BLAS), g, the ReLU branch
    and δ, W and ∂u in place of Z, ∂[V, s] += Wᵀ X (BLAS); returns the lane's Σ (f − y)²."""
    gather = idx.shape[0] > 0
    n = idx.shape[0] if gather else y.shape[0]
    tile, m1 = Zb.shape[1], Zb.shape[2]
    Z, Xt, T, D, U = Zb[lane], Xb[lane], Tb[lane], dth[lane], du[lane]
    D[:, :] = 0.0
    U[:] = 0.0
    H[lane] = 0.0
    sse = 0.0
    for s in range(lane * per, min(n, (lane + 1) * per), tile):
        r = min(tile, n - s)
        rows = idx[s:s + r] if gather else np.arange(s, s + r)
        if gather:
            for i in range(r):
                Xt[i] = X1[rows[i]]
        Xr = Xt[:r] if gather else X1[s:s + r]
        Zr = Z[:r]
        np.dot(Xr, thetaT, Zr)
        _tile_forward(Zr, u, alpha1, gb[lane, :r])
        sse += _tile_relu(gb[lane, :r], y, rows, tab, nP, nN, alpha1, alpha2, inv_n, H[lane], db[lane, :r])
        _tile_backward(Zr, db[lane, :r], u, U)
        np.dot(Zr.T, Xr, T)
        for j in range(m1):
            for k in range(T.shape[1]):
                D[j, k] += T[j, k]
    return sse


@njit(parallel=True, cache=True)
def _epoch(X1, idx, y, thetaT, u, alpha1, alpha2, tab, nP, nN, Zb, Xb, gb, db, Tb, dth, du, H, sse
           ):  # pragma: no cover - compiled
    """Loss and gradient sums of one pass over the rows of X1 (``idx``: a subset; empty: all):
    lane k takes the rows [k per, (k + 1) per), per = ⌈n/lanes⌉ rounded up to whole tiles, and
    fills dth[k], du[k], H[k], sse[k]; lanes run in parallel, each serially (BLAS inside)."""
    n = idx.shape[0] if idx.shape[0] > 0 else y.shape[0]
    lanes, tile = dth.shape[0], Zb.shape[1]
    rows = -(-n // lanes)
    per = -(-rows // tile) * tile  # ⌈n/lanes⌉ rounded up to whole tiles
    for lane in prange(lanes):
        sse[lane] = _lane(lane, X1, idx, y, thetaT, u, alpha1, alpha2, 1.0 / n, tab, nP, nN, per,
                          Zb, Xb, gb, db, Tb, dth, du, H)


_BLAS = None  # threadpoolctl controller of the loaded BLAS libraries (built on first use)


def _serial_blas():
    """A context in which the BLAS that Numba's np.dot calls (scipy's) runs on one thread: the
    lanes of :func:`_epoch` already use every Numba thread. A no-op with one Numba thread (a sweep
    task: its BLAS is limited to one thread already)."""
    global _BLAS
    if numba.get_num_threads() == 1:
        return contextlib.nullcontext()
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS.limit(limits=1)


# =============================================================================== engine
class _Engine:
    """Buffers for one network size and dtype; forward block by block, training epochs by lanes."""

    def __init__(self, m1: int, m2: int, d: int, block: int, dtype: np.dtype):
        self.block, self.dtype = block, dtype
        self.Z = np.empty((block, m1), dtype=dtype)
        self.thetaT = np.empty((d + 1, m1), dtype=dtype)
        self.g = np.empty(block)
        self.f = np.empty(block)
        self.m2 = m2
        self._train = None

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

    def output(self, g, net: Network) -> np.ndarray:
        """f = g + α2 Σ c_k ReLU(a_k g + b_k) for the bottleneck values g."""
        f = self.f[:g.shape[0]]
        _relu_branch(g, net.a, net.b, net.c, net.alpha2, f)
        return f

    def train_buffers(self, block: int) -> dict:
        """The lanes' tiles and partial sums (allocated on first use, again if ``block`` changes):
        tile rows = the largest power of 2 ≤ ``block`` whose Z tile fits in :data:`_TILE_BYTES`."""
        if self._train is None or self._train["block"] != block:
            (K, m1), m2, L, dt = self.thetaT.shape, self.m2, _LANES, self.dtype
            fit = max(1, min(block, _TILE_BYTES // (m1 * dt.itemsize)))
            tile = 1 << (fit.bit_length() - 1)
            self._train = dict(block=block, Zb=np.empty((L, tile, m1), dt), Xb=np.empty((L, tile, K), dt),
                               gb=np.empty((L, tile)), db=np.empty((L, tile)), Tb=np.empty((L, m1, K), dt),
                               dth=np.empty((L, m1, K)), du=np.empty((L, m1)), H=np.empty((L, 4, m2 + 1)),
                               sse=np.empty(L), tab=np.empty((6, m2 + 1)), perm=np.empty(m2, np.int64))
        return self._train


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
    dt = float_dtype(dtype)
    X = _as_rows(X, net.d)
    block = pos_int(block, "block")
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
    dt = float_dtype(dtype)
    X = _as_rows(X, net.d)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    block = pos_int(block, "block")
    return _loss_grad(net, _with_ones(X, dt), y, _Engine(net.m1, net.m2, net.d, block, dt), block)


def _loss_grad(net, X1, y, eng, block, idx=None):
    """L = (1/2n) Σ (f − y)² over the rows of X1 (with its ones column; ``idx``: a subset of
    them) and its gradients, in one pass of :func:`_epoch` (tiles of at most ``block`` rows)."""
    eng.load(net)
    buf = eng.train_buffers(block)
    nP, nN = _relu_tables(net.a, net.b, net.c, buf["tab"], buf["perm"])
    rows = _ALL_ROWS if idx is None else np.ascontiguousarray(idx, dtype=np.int64)
    with _serial_blas():
        _epoch(np.ascontiguousarray(X1), rows, y, eng.thetaT, net.u, net.alpha1, net.alpha2, buf["tab"], nP, nN,
               buf["Zb"], buf["Xb"], buf["gb"], buf["db"], buf["Tb"], buf["dth"], buf["du"], buf["H"], buf["sse"])
    grads = {"theta": buf["dth"].sum(axis=0), "u": buf["du"].sum(axis=0), "a": np.empty(net.m2),
             "b": np.empty(net.m2), "c": np.empty(net.m2)}
    _relu_grads(buf["H"], buf["perm"], nP, nN, net.a, net.b, net.c, net.alpha2, grads["a"], grads["b"], grads["c"])
    n = X1.shape[0] if idx is None else len(idx)
    return 0.5 * float(buf["sse"].sum()) / n, grads


_ALL_ROWS = np.empty(0, dtype=np.int64)  # the index of "every row" for :func:`_epoch`


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
    test_loss_dec: float = math.nan
    test_loss_dec_se: float = math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def evaluate(net: Network, problem: HierarchicalProblem, n_test: int, *, chunk=None,
             dtype="float64", stage1: bool = False) -> dict:
    """Test metrics of ``net`` on the seed's test set (first ``n_test`` rows): see
    :class:`HierarchicalResult`. ``stage1=True`` also reports the loss of g alone."""
    dt = float_dtype(dtype)
    n_test = pos_int(n_test, "n_test")
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
    q = r2 - h2  # = f² − 2 h f: the loss is E h² + E q = 1 + E q, only the light-tailed q is Monte-Carlo
    dec_se = float(q.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return _Metrics(loss, se, cv, float(np.median(r2)), float(r2[bulk].mean()) if bulk.any() else math.nan,
                    corr, abs(corr), float(np.mean(r1 * r1)) if r1 is not None else math.nan,
                    1.0 + float(q.mean()), dec_se)


# =============================================================================== results
@dataclass
class HierarchicalResult:
    """Outcome of :func:`layerwise` / :func:`train_adam`.

    test_loss, test_loss_se : mean (h − f)^2 on the test set and its MC standard error.
    test_loss_cv : control-variate estimate (uses E h^2 = 1; lower variance).
    test_loss_dec, test_loss_dec_se : the decomposed loss E(h − f)² = E h² + E(f² − 2hf) with
        E h² = 1 exact (Hermite coefficients) and only the remainder f² − 2hf by Monte Carlo,
        and its MC standard error (the zero predictor gives exactly 1; the heavy tail of h²
        — E h⁴ ≈ 2·10⁴ at d = 16 — drops out).
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
    test_loss_dec: float = math.nan
    test_loss_dec_se: float = math.nan

    def summary(self) -> dict:
        """Plain dict of floats (JSON-able): what :func:`hierarchical_task` returns."""
        keys = ("d", "n", "m1", "m2", "n_test", "test_loss", "test_loss_se", "test_loss_cv",
                "median_sq_error", "bulk_loss", "corr", "abs_corr", "stage1_test_loss",
                "train_corr", "train_loss", "steps", "wall_time", "test_loss_dec", "test_loss_dec_se")
        out = {k: float(getattr(self, k)) for k in keys}
        out["converged"] = float(self.converged)
        return out


# =============================================================================== specs
@dataclass(frozen=True, kw_only=True)
class _HierarchicalSpec(ModelSpec):
    """Fields shared by the two methods (see :class:`LayerwiseSpec`, :class:`AdamSpec`).

    d, n : input dimension and training-set size (layer-wise: |D1|).
    n_test : fresh test points (one test set per seed, shared by all n).
    bias, bias_df : law of the ReLU biases b ("t": Student t_ν with ν = bias_df, "normal", "unif").
    v_init : "sphere" or "gauss" (:func:`init_network`).
    dtype : "float64" or "float32", precision of the first-layer GEMMs and kernels.
    block, chunk : rows per compute / random-number block and per generated buffer.
    replica : deprecated; a fixed seed (an int) used instead of the task's seed. Paired
        replicas are a sweep option now: ``run_sweep(..., paired=("n",))``.
    """

    method: ClassVar[str] = ""

    d: int
    n: int
    n_test: int = 1 << 17
    bias: str = "t"
    bias_df: float = 10.0
    v_init: str = "sphere"
    dtype: str = "float64"
    block: int = BLOCK
    chunk: int | None = None
    replica: int | None = None

    def validate(self) -> None:
        for name in ("d", "n", "n_test", "block"):
            self._set(name, pos_int(getattr(self, name), name))
        choice(self.bias, "bias", _BIASES)
        choice(self.v_init, "v_init", ("sphere", "gauss"))
        self._set("bias_df", pos_float(self.bias_df, "bias_df"))
        self._set("dtype", float_dtype(self.dtype).name)
        self._optional("chunk", pos_int)
        self._optional("replica", nonneg_int)
        if self.replica is not None:
            warnings.warn("replica is deprecated: pair the points of a sweep with "
                          "run_sweep(..., paired=('n',)) instead", DeprecationWarning, stacklevel=3)

    def _optional(self, name: str, check, **kw) -> None:
        value = getattr(self, name)
        if value is not None:
            self._set(name, check(value, name, **kw))

    def task_seed(self, seed: SeedLike) -> np.random.SeedSequence:
        """The seed of a run: ``seed``, or SeedSequence(replica) when ``replica`` is set."""
        return seed_sequence(seed if self.replica is None else self.replica)


@register_spec
@dataclass(frozen=True, kw_only=True)
class LayerwiseSpec(_HierarchicalSpec):
    """One point of :func:`layerwise` (Algorithm 1); the fields are its keyword arguments.

    m1, m2 : widths of the cubic and the ReLU layer; n2 : |D2| (None: n).
    stage1, stage2 : "ridge" (closed form) or "gd" (T1/T2 steps of GD with step eta1/eta2,
        None: 1/λ_max of the regularised Gram matrix).
    xi1, xi2 : absolute ridges (None: xi_rel × tr(Gram)/width).
    """

    kind: ClassVar[str] = "hierarchical-layerwise"
    method: ClassVar[str] = "layerwise"

    m1: int
    m2: int
    n2: int | None = None
    stage1: str = "ridge"
    stage2: str = "ridge"
    xi1: float | None = None
    xi2: float | None = None
    xi1_rel: float = 1e-6
    xi2_rel: float = 1e-6
    eta1: float | None = None
    eta2: float | None = None
    T1: int = 1000
    T2: int = 1000

    def validate(self) -> None:
        super().validate()
        for name in ("m1", "m2"):
            self._set(name, pos_int(getattr(self, name), name))
        self._optional("n2", pos_int)
        choice(self.stage1, "stage1", ("ridge", "gd"))
        choice(self.stage2, "stage2", ("ridge", "gd"))
        for name in ("T1", "T2"):
            self._set(name, nonneg_int(getattr(self, name), name))
        for name in ("xi1_rel", "xi2_rel"):
            self._set(name, pos_float(getattr(self, name), name, allow_zero=True))
        self._optional("xi1", pos_float, allow_zero=True)
        self._optional("xi2", pos_float, allow_zero=True)
        self._optional("eta1", pos_float)
        self._optional("eta2", pos_float)


@register_spec
@dataclass(frozen=True, kw_only=True)
class AdamSpec(_HierarchicalSpec):
    """One point of :func:`train_adam`; the fields are its keyword arguments.

    m1 : cubic width (None: d², the paper's choice); m2 : ReLU width.
    lr, betas, eps : Adam (same lr on every tensor; μP multipliers with ``mup``).
    max_steps : cap on optimiser steps; patience, rel_tol : plateau rule (module docstring).
    batch_size : None = full batch for n ≤ 2^15, else 2^13; a value ≥ n means full batch.
    schedule : "cosine" (lr → 0 at max_steps) or "constant".  bias_scale : factor of b at init.
    """

    kind: ClassVar[str] = "hierarchical-adam"
    method: ClassVar[str] = "adam"

    m1: int | None = None
    m2: int = 1000
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    max_steps: int = 20000
    patience: int = 1000
    rel_tol: float = 1e-3
    batch_size: int | None = None
    schedule: str = "cosine"
    mup: bool = True
    bias_scale: float = 1.0

    def validate(self) -> None:
        super().validate()
        self._optional("m1", pos_int)
        self._optional("batch_size", pos_int)
        for name in ("m2", "max_steps", "patience"):
            self._set(name, pos_int(getattr(self, name), name))
        for name in ("lr", "eps"):
            self._set(name, pos_float(getattr(self, name), name))
        for name in ("rel_tol", "bias_scale"):
            self._set(name, pos_float(getattr(self, name), name, allow_zero=True))
        self._set("betas", _betas(self.betas))
        choice(self.schedule, "schedule", ("cosine", "constant"))
        if not isinstance(self.mup, (bool, np.bool_)):
            raise ValueError(f"mup must be True or False, got {self.mup!r}")
        self._set("mup", bool(self.mup))


def _betas(betas) -> tuple[float, float]:
    try:
        b1, b2 = (float(x) for x in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}") from None
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    return b1, b2


# =============================================================================== layer-wise
def layerwise(d: int, n: int, m1: int, m2: int, seed: SeedLike = 0, *, n2: int | None = None,
              n_test: int = 1 << 17, stage1: str = "ridge", stage2: str = "ridge",
              xi1: float | None = None, xi2: float | None = None, xi1_rel: float = 1e-6,
              xi2_rel: float = 1e-6, eta1: float | None = None, eta2: float | None = None,
              T1: int = 1000, T2: int = 1000, bias: str = "t", bias_df: float = 10.0,
              v_init: str = "sphere", dtype="float64", block: int = BLOCK, chunk: int | None = None,
              return_network: bool = False) -> HierarchicalResult:
    """Algorithm 1 (layer-wise training; module docstring): stage 1 on u over D1 (n rows),
    stage 2 on c over D2 (``n2`` rows, default n), test metrics on ``n_test`` fresh points.

    The keyword arguments are the fields of :class:`LayerwiseSpec`. bias : "t"
    (b_i = std_{D1}(ĝ) t_ν, ν = bias_df), "unif" (U[−B, B], B = max_{D1}|ĝ|) or "normal"
    (std_{D1}(ĝ) N(0, 1)).
    """
    spec = LayerwiseSpec(d=d, n=n, m1=m1, m2=m2, n2=n2, n_test=n_test, stage1=stage1, stage2=stage2,
                         xi1=xi1, xi2=xi2, xi1_rel=xi1_rel, xi2_rel=xi2_rel, eta1=eta1, eta2=eta2,
                         T1=T1, T2=T2, bias=bias, bias_df=bias_df, v_init=v_init, dtype=dtype,
                         block=block, chunk=chunk)
    return run_layerwise(spec, seed, return_network=return_network)


def run_layerwise(spec: LayerwiseSpec, seed: SeedLike = 0, *, return_network: bool = False
                  ) -> HierarchicalResult:
    """Algorithm 1 for a validated :class:`LayerwiseSpec`:

    stage 1  u = argmin ‖y − Φu‖²/(2 n1) + ξ1‖u‖²/2 on D1,  Φ = ([X, 1][V, s]ᵀ)^3;
    bias     b = scale × draw, scale = std_{D1}(ĝ) (max_{D1}|ĝ| for "unif");
    stage 2  c = argmin ‖y − ĝ − Ψc‖²/(2 n2) + ξ2‖c‖²/2 on D2,  Ψ = ReLU(ĝ aᵀ + 1bᵀ).
    """
    t0 = time.perf_counter()
    seed = spec.task_seed(seed)
    dt = np.dtype(spec.dtype)
    n2 = spec.n if spec.n2 is None else spec.n2
    problem = make_problem(spec.d, seed, spec.block)
    net = init_network(spec.d, spec.m1, spec.m2, seed, mup=False, v_init=spec.v_init, bias=spec.bias,
                       bias_df=spec.bias_df)
    eng = _Engine(spec.m1, spec.m2, spec.d, spec.block, dt)
    eng.load(net)
    G, Phi_y, Phi_sum = _cubic_gram(problem, eng, spec.n, spec.chunk, dt)
    xi1 = _ridge(spec.xi1, spec.xi1_rel, G)
    net.u = _minimise_quadratic(G, Phi_y, xi1, spec.stage1, spec.eta1, spec.T1, spec.n)
    net.b = _bias_scale(problem, eng, net, spec, G, Phi_sum, dt) * _draw_bias(
        stream(seed, "b"), spec.m2, spec.bias, spec.bias_df)
    K, rhs = _relu_gram(problem, eng, net, n2, spec.chunk, dt)
    xi2 = _ridge(spec.xi2, spec.xi2_rel, K)
    net.c = _minimise_quadratic(K, rhs, xi2, spec.stage2, spec.eta2, spec.T2, n2)
    m = evaluate(net, problem, spec.n_test, chunk=spec.chunk, dtype=dt, stage1=True)
    return HierarchicalResult("layerwise", spec.d, spec.n, spec.m1, spec.m2, spec.n_test, m.test_loss,
                              m.test_loss_se, m.test_loss_cv, m.median_sq_error, m.bulk_loss, m.corr,
                              m.abs_corr, m.stage1_test_loss, wall_time=time.perf_counter() - t0,
                              network=net if return_network else None, test_loss_dec=m.test_loss_dec,
                              test_loss_dec_se=m.test_loss_dec_se)


def _ridge(xi: float | None, xi_rel: float, G: np.ndarray) -> float:
    """The absolute ridge: ``xi``, or the relative one ξ = xi_rel · tr(G)/width."""
    return xi_rel * float(np.trace(G)) / G.shape[0] if xi is None else xi


def _minimise_quadratic(K, rhs, xi, method, eta, steps, n) -> np.ndarray:
    """argmin_u ½ uᵀ(K + ξI)u − rhsᵀu: the ridge solve u = (K + ξI)⁻¹ rhs ("ridge": Cholesky,
    by :func:`simulations.linalg.ridge_from_gram`) or ``steps`` of gradient descent ("gd")."""
    if method == "ridge":
        theta, _ = ridge_from_gram(K, rhs, [xi], n=n, method="cholesky")
        return theta[:, 0]
    return _gradient_descent(K, rhs, xi, eta, steps)


def _gradient_descent(K, rhs, xi, eta, steps) -> np.ndarray:
    """``steps`` iterations u ← u − η((K + ξI)u − rhs) from u = 0; η default 1/λ_max(K + ξI)."""
    m = K.shape[0]
    A = K + xi * np.eye(m)
    if eta is None:
        eta = 1.0 / float(scipy.linalg.eigvalsh(A, subset_by_index=[m - 1, m - 1])[0])
    u = np.zeros(m)
    for _ in range(steps):
        u -= eta * (A @ u - rhs)
    return u


def _cubic_gram(problem, eng, n, chunk, dt):
    """Stage-1 statistics on D1 (float64): G = ΦᵀΦ/n (SYRK), Φᵀy/n and the column sums Σ_i Φ_i."""
    m1 = eng.Z.shape[1]
    G, Phi_y, Phi_sum = np.zeros((m1, m1)), np.zeros(m1), np.zeros(m1)
    block = eng.block
    for _, X1, h, _p in problem.stream("D1", n, chunk, dtype=dt):
        for s in range(0, len(h), block):
            Z = eng.Z[: min(block, len(h) - s)]
            np.matmul(X1[s:s + len(Z)], eng.thetaT, out=Z)
            functions.apply("cube", Z, out=Z)
            Phi = Z if dt == np.float64 else Z.astype(np.float64)
            G += Phi.T @ Phi
            Phi_y += h[s:s + len(Z)] @ Phi
            Phi_sum += Phi.sum(axis=0)
    return G / n, Phi_y / n, Phi_sum


def _bias_scale(problem, eng, net, spec, G, Phi_sum, dt) -> float:
    """Scale of the ReLU biases after stage 1: max_{D1}|ĝ| ("unif", one pass over D1) or
    std_{D1}(ĝ) = √(uᵀGu − (Σ_i ĝ(x_i)/n)²) from the stage-1 statistics."""
    if spec.bias == "unif":
        gmax = 0.0
        for _, X1, h, _p in problem.stream("D1", spec.n, spec.chunk, dtype=dt):
            for s in range(0, len(h), spec.block):
                _, g = eng.features(X1[s:s + spec.block], net)
                gmax = max(gmax, float(np.abs(g).max()))
        return gmax
    g_mean = float(Phi_sum @ net.u) / spec.n
    return math.sqrt(max(float(net.u @ G @ net.u) - g_mean**2, 0.0))


def _relu_gram(problem, eng, net, n2, chunk, dt):
    """Stage-2 statistics on D2: K = ΨᵀΨ/n2 and Ψᵀ(y − ĝ)/n2, Ψ = ReLU(ĝ aᵀ + 1bᵀ)."""
    m2 = net.m2
    K, rhs = np.zeros((m2, m2)), np.zeros(m2)
    for _, X1, h, _p in problem.stream("D2", n2, chunk, dtype=dt):
        for s in range(0, len(h), eng.block):
            _, g = eng.features(X1[s:s + eng.block], net)
            Psi = np.maximum(np.multiply.outer(g, net.a) + net.b, 0.0)
            K += Psi.T @ Psi
            rhs += (h[s:s + len(g)] - g) @ Psi
    return K / n2, rhs / n2


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

    The keyword arguments are the fields of :class:`AdamSpec`: m1 (default d²) and m2 the
    widths; lr, betas, eps the Adam constants; max_steps, patience, rel_tol the stopping rule;
    batch_size (None: full batch for n ≤ 2^15, else 2^13); schedule "cosine" or "constant".
    """
    spec = AdamSpec(d=d, n=n, m1=m1, m2=m2, n_test=n_test, lr=lr, betas=betas, eps=eps,
                    max_steps=max_steps, patience=patience, rel_tol=rel_tol, batch_size=batch_size,
                    schedule=schedule, mup=mup, bias=bias, bias_df=bias_df, bias_scale=bias_scale,
                    v_init=v_init, dtype=dtype, block=block, chunk=chunk)
    return run_adam(spec, seed, return_network=return_network, keep_history=keep_history)


def run_adam(spec: AdamSpec, seed: SeedLike = 0, *, return_network: bool = False,
             keep_history: bool = True) -> HierarchicalResult:
    """End-to-end Adam for a validated :class:`AdamSpec`: minimise (1/2n) Σ (f(x_i) − y_i)² over
    (V, s, u, a, b, c) from :func:`init_network`, then the training correlation and test metrics."""
    t0 = time.perf_counter()
    seed = spec.task_seed(seed)
    dt = np.dtype(spec.dtype)
    m1 = spec.d * spec.d if spec.m1 is None else spec.m1
    problem = make_problem(spec.d, seed, spec.block)
    net = init_network(spec.d, m1, spec.m2, seed, mup=spec.mup, v_init=spec.v_init, bias=spec.bias,
                       bias_df=spec.bias_df, bias_scale=spec.bias_scale)
    X1, y, p_train = problem._batch1("train", spec.n, dtype=dt)
    eng = _Engine(m1, spec.m2, spec.d, spec.block, dt)
    steps, converged, history = _adam_fit(net, X1, y, eng, spec, seed)
    train_corr = _pearson(_bottleneck(net, X1, eng), p_train)
    m = evaluate(net, problem, spec.n_test, chunk=spec.chunk, dtype=dt)
    return HierarchicalResult("adam", spec.d, spec.n, m1, spec.m2, spec.n_test, m.test_loss, m.test_loss_se,
                              m.test_loss_cv, m.median_sq_error, m.bulk_loss, m.corr, m.abs_corr,
                              train_corr=train_corr, train_loss=history[-1] if history else math.nan,
                              steps=steps, converged=converged, wall_time=time.perf_counter() - t0,
                              history=np.asarray(history) if keep_history else np.empty(0),
                              network=net if return_network else None, test_loss_dec=m.test_loss_dec,
                              test_loss_dec_se=m.test_loss_dec_se)


class _Plateau:
    """The stopping rule: stop once the monitored loss has not gone below (1 − rel_tol) times its
    value at the last improvement for ``patience`` consecutive checks."""

    def __init__(self, rel_tol: float, patience: int):
        self.rel_tol, self.patience = rel_tol, patience
        self.ref, self.since = math.inf, 0

    def stop(self, value: float) -> bool:
        if value < (1 - self.rel_tol) * self.ref:
            self.ref, self.since = value, 0
        else:
            self.since += 1
        return self.since >= self.patience


def _adam_fit(net, X1, y, eng, spec: AdamSpec, seed) -> tuple[int, bool, list[float]]:
    """Adam steps until the plateau rule or ``max_steps``: (steps, converged, monitored losses).

    Full batch: the loss of every step is monitored; mini-batches: the mean loss of each complete
    epoch, with the patience counted in epochs (⌈patience / batches per epoch⌉)."""
    n = len(y)
    batch = min(spec.batch_size or (n if n <= (1 << 15) else (1 << 13)), n)
    full, per_epoch = batch >= n, -(-n // batch)
    plateau = _Plateau(spec.rel_tol, spec.patience if full else max(1, -(-spec.patience // per_epoch)))
    opt = Adam(list(net.tensors().values()), lr=spec.lr, betas=spec.betas, eps=spec.eps)
    history: list[float] = []
    step, epoch, converged = 0, 0, False
    while step < spec.max_steps and not converged:
        losses = []
        for idx in _minibatches(n, batch, seed, epoch):
            if step >= spec.max_steps:
                break
            losses.append(_adam_step(net, X1, y, eng, spec, opt, idx, step))
            step += 1
            if full:
                history.append(losses[-1])
                converged = plateau.stop(losses[-1])
        if not full and len(losses) == per_epoch:
            history.append(float(np.mean(losses)))
            converged = plateau.stop(history[-1])
        epoch += 1
    return step, converged, history


def _minibatches(n: int, batch: int, seed, epoch: int) -> list:
    """Row indices (sorted) of the mini-batches of ``epoch`` (order from stream(seed, "shuffle",
    epoch)); ``[None]`` (all rows) for full batch."""
    if batch >= n:
        return [None]
    order = stream(seed, "shuffle", epoch).permutation(n)
    return [np.sort(order[k:k + batch]) for k in range(0, n, batch)]


def _adam_step(net, X1, y, eng, spec: AdamSpec, opt: Adam, idx, step: int) -> float:
    """One Adam update on the rows ``idx`` at the scheduled rate; returns the batch loss."""
    loss, grads = _loss_grad(net, X1, y, eng, spec.block, idx)
    if not math.isfinite(loss):
        raise FloatingPointError(f"train_adam: loss became {loss} at step {step} (lr too large?)")
    opt.step([grads[name] for name in net.tensors()], lr=_learning_rate(spec, step))
    return loss


def _learning_rate(spec: AdamSpec, step: int) -> float:
    """η_t = η (constant) or η (1 + cos(π t/T))/2, t = step (from 0), T = max_steps (cosine)."""
    if spec.schedule == "constant":
        return spec.lr
    return 0.5 * spec.lr * (1 + math.cos(math.pi * step / spec.max_steps))


def _bottleneck(net, X1, eng) -> np.ndarray:
    """g(x) on the rows of X1 (with its ones column), block by block."""
    eng.load(net)
    g_all = np.empty(X1.shape[0])
    for s in range(0, X1.shape[0], eng.block):
        _, g = eng.features(X1[s:s + eng.block], net)
        g_all[s:s + len(g)] = g
    return g_all


# =============================================================================== sweep task
_SPECS = {"layerwise": LayerwiseSpec, "adam": AdamSpec}


def hierarchical_task(spec: LayerwiseSpec | AdamSpec | dict, seed: np.random.SeedSequence) -> dict:
    """One sweep point for :func:`simulations.sweep.run_sweep`: :meth:`HierarchicalResult.summary`
    (dict of floats) of :func:`run_layerwise` or :func:`run_adam` (no history kept).

    ``spec``: a :class:`LayerwiseSpec` / :class:`AdamSpec`, or the earlier dict form —
    ``"method"`` ∈ {"layerwise", "adam"} and the spec's fields by name (``betas`` a list).
    Paired comparisons across n (one λ, initialisation and test set per replica for every n):
    ``run_sweep(hierarchical_task, specs, paired=("n",))``.
    """
    if isinstance(spec, dict):
        spec = _spec_from_dict(spec)
    if isinstance(spec, LayerwiseSpec):
        return run_layerwise(spec, seed).summary()
    if isinstance(spec, AdamSpec):
        return run_adam(spec, seed, keep_history=False).summary()
    raise TypeError(f"hierarchical_task: expected a LayerwiseSpec, AdamSpec or dict, got {type(spec).__name__}")


def _spec_from_dict(params: dict) -> LayerwiseSpec | AdamSpec:
    params = dict(params)
    method = params.pop("method", None)
    if method not in _SPECS:
        raise ValueError(f"hierarchical_task: params['method'] must be 'layerwise' or 'adam', got {method!r}")
    return _SPECS[method].from_dict(params)
