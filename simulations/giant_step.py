"""Two-layer networks after (giant) gradient steps on the first layer: Algorithm 1.

Model (Dandi, Krzakala, Loureiro, Pesce, Stephan, "How Two-Layer Neural Networks Learn, One
(Giant) Step at a Time", JMLR 2024, arXiv:2305.18270; equations in docs/theory/giant_step.md)
--------------------------------------------------------------------------------------------
* Inputs z ~ N(0, I_d), samples are rows (a batch Z is n x d).
* Multi-index target y = g(W* z) + sqrt(noise_var) eps, W* (k x d) with orthonormal rows
  theta_1..theta_k, drawn as the (transposed) Q factor of a d x k Gaussian matrix.
  ``g`` is a numpy callable of the (m, k) array h = Z W*^T, or a string/sympy expression
  in ``h1 .. hk`` (any function registered in :mod:`asymptotics.functions` may be used,
  e.g. ``"relu(h1) + he2(h2)"``), or one of the named targets of :data:`TARGETS`.
* Network f(z; W, a) = a^T sigma(W z) / sqrt(p), W (p x d), second layer a FIXED at a0
  during the first-layer steps.
* Step t = 0..T-1, on a FRESH batch (Z_t, y_t) of n samples, full-batch gradient descent on
  L(W) = (1/2n) sum (y - f(z; W, a0))^2::

      H = Z W^T,  r = y - sigma(H) a0/sqrt(p),  R = (r a0^T/sqrt(p)) * sigma'(H),
      G = R^T Z / n = -grad_W L,  W <- W + eta G.

  No row normalisation, no bias, no weight decay.
* Readout: ridge on the second layer on an independent fresh batch of ``n_ridge`` (default n)
  samples, in the project's convention with F = sigma(Z W^T) (no 1/sqrt(p) inside F)::

      theta = (F^T F/n_ridge + lam I)^{-1} F^T y/n_ridge,   y_hat = F theta.

  The paper's lambda_P (its ridge is argmin ||y - X w/sqrt p||^2 + lambda_P ||w||^2) is
  ``lam = lambda_P * p / n_ridge`` (:func:`asymptotics.conventions.lam_from_scaled_features`,
  called by the experiments: the simulator takes the project's lam only); the paper's second
  layer is w = sqrt(p) theta. ``reuse_batch=True`` fits the readout on the last gradient batch
  instead, as single_step.ipynb does.
* Test error: mean of (y - y_hat)^2 over ``n_test`` fresh samples (label noise included,
  no factor 1/2). The training error is the same mean over the readout batch.
* ``preprocess=True`` ("remove the first Hermite component", single_step.ipynb): on each
  gradient batch A = mean(y), B = Z^T y/n and the step uses y~ = y - A - Z B. The readout
  is fitted to y~ on its own batch and predicts A + B^T z + F theta, with (A, B) from the
  last gradient batch (``prep_estimate="gradient"``, default) or estimated on the readout
  batch (``"ridge"``; also what ``steps = 0`` uses, having no gradient batch). Test labels
  never enter anything but the test error (the notebook's test-set leak is not reproduced).
* ``steps = 0`` is plain random-features ridge regression on sigma(Z W0^T).

Learning rate: ``eta`` is either the step size itself (a positive number) or the
name of a rule, with the prefactor ``eta_c`` (defaults in brackets)::

    "const":    eta = c p               [c = 2; multiple_steps.ipynb]
    "sqrt":     eta = c p sqrt(n/d)     [c = 1; recommended for the stairway figure]
    "notebook": eta = c sqrt(n p)       [c = 10; single_step.ipynb]

Initialisation: W0 rows i.i.d. N(0, I/d) (``w_init="gauss"``) or uniform on the unit sphere
(``"sphere"``); a0 (``a_init``): ``"gauss"`` a_j ~ N(0, 1/p), ``"pm1"`` a_j = +-1/sqrt(p)
with fair signs (``forced_signs=m`` forces the first m entries to + and the next m to -, as
in multiple_steps.ipynb), ``"ones"`` a_j = 1/sqrt(p); or explicit arrays.

Overlaps: after every step (and at initialisation) the rows w_j are normalised
and projected on span(W*): ``row_overlaps[j, i] = w_j.theta_i/|w_j|``, ``cosines[j] =
|P* w_j|/|w_j|`` and ``mean_cosine`` their mean (random level sqrt(k/d)); ``subspace`` is
the k x k matrix mean_j of (W* w^_j)(W* w^_j)^T, whose eigenvalues say how many directions of
span(W*) the neurons have picked up. The normalised rows of each step's gradient G get the same
treatment (``gradient_overlaps``, ``gradient_mean_cosine``): the scatter panels of the paper.

Computation
-----------
Nothing of size n x d or n x p is ever held: each batch is generated and consumed block by
block (memory O(window x block x max(d, p)) + O(p (p + d))). A block is one job of a pool of
``threads`` threads (default: the BLAS thread limit), run with single-threaded BLAS: it draws
its rows and labels (and the preprocessed labels y~, and the rounding to float32), then one
GEMM H = Z W^T, the activation (and its derivative) by :func:`asymptotics.functions.apply`, and
its contribution: sigma'(H)^T (r * Z) (GEMM, after a GEMV for the network output) to the
gradient, F^T F (SYRK) and F^T y~ to the readout's sufficient statistics, or its squared test
residuals. The calling thread adds the contributions in block order (float64), with at most
``window`` = max(2 threads, chunk / block) blocks in flight, so the cores never wait for each
other between drawing and multiplying. The readout is solved in float64 from K = F^T F, by one
Cholesky factorisation per lambda for up to 8 values of lambda > 0 (p^3/3 flops each),
otherwise by one symmetric eigendecomposition (every lambda of a grid at O(p^2) each; lam = 0
is the minimum-norm solution), and the test error needs only F_test theta. Preprocessing costs
a second generation pass over the gradient batch (A and B must be known before the step). The
BLAS thread limit is set to 1 for the process while the blocks run (threadpoolctl) and
restored after. On machines with few cores, set ``OPENBLAS_THREAD_TIMEOUT=4`` in the
environment (before numpy is imported): otherwise idle OpenBLAS threads spin ~0.1 s after
every multi-threaded product (the GEMMs of the overlaps, the ridge solve).

Randomness and chunking (every generator is :func:`simulations.rng.stream` of the seed and a
named purpose): W* comes from ``stream(seed, "teacher")``, W0 from ``stream(seed, "first
layer")``, a0 from ``stream(seed, "second layer")``. Rows are drawn in fixed blocks of ``block``
rows (default :data:`BLOCK`); block b of a batch comes from ``stream(seed, batch, step, b,
"inputs")`` (float64) and ``stream(seed, batch, step, b, "label noise")``, with batch
"gradient batch" (step t), "readout batch" or "test batch" (step 0). A batch of n rows is the first
n rows of its stream (batches of different n share their first rows). Every accumulation is
summed block by block in block order, so the result is bitwise the same for every ``chunk`` and
number of ``threads`` (changing ``block`` changes the random draw, not its law).

float32 (``dtype="float32"``): the inputs are drawn in float64 (labels are always computed
in float64) and rounded; the GEMMs and activations run in float32, every accumulation over
blocks, the update of W and the ridge solve in float64. About twice as fast; the relative
error of the test error is ~1e-6, far below its seed-to-seed spread.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import threading
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import sympy
from threadpoolctl import threadpool_limits

from asymptotics import functions
from asymptotics.conventions import lam_from_scaled_features
from asymptotics.functions import TARGETS
from asymptotics.validation import choice, float_dtype, nonneg_float, nonneg_int, pos_int

from .checkpoint import segments
from .linalg import check_lams, ridge_from_gram
from .rng import SeedLike, seed_sequence, stream
from .spec import ModelSpec, register_spec

__all__ = [
    "BLOCK",
    "TARGETS",
    "RULES",
    "TargetFunction",
    "make_target",
    "learning_rate",
    "lam_from_paper",
    "GiantStepProblem",
    "make_problem",
    "first_layer_gradient",
    "StepOverlap",
    "GiantStepResult",
    "GiantStepSpec",
    "simulate",
    "giant_step_task",
]

#: Rows per block of every random stream (a fixed constant by default: results never depend
#: on the compute chunk, only on the block size).
BLOCK = 4096
#: Default compute chunk: about this many elements (rows x max(d, p)) per buffer.
_CHUNK_ELEMENTS = 1 << 23
_EPS = np.finfo(np.float64).eps
#: Elements per call of the activation inside the test-set threads: below the size at which
#: :func:`asymptotics.functions.apply` starts its parallel Numba loop (2^15), so that the threads
#: never enter that loop concurrently.
_SERIAL_PIECE = 1 << 14
#: Up to this many λ (all > 0) the readout is solved by one Cholesky factorisation per λ, beyond it
#: (or with λ = 0) by one eigendecomposition for the whole grid.
_CHOLESKY_MAX_LAMS = 8

#: Learning-rate rules and their default prefactors (docs/theory/giant_step.md).
RULES: dict[str, float] = {"const": 2.0, "sqrt": 1.0, "notebook": 10.0}


def _blas_threads() -> int:
    """The current BLAS thread limit (respects threadpoolctl limits set by sweeps)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    except Exception:  # threadpoolctl missing or failing: no parallel generation
        return 1
    return max(1, min(counts)) if counts else 1


# =============================================================================== validation


def _real_array(a, name: str, shape: tuple) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _activation(a):
    try:
        return functions.get(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"activation: {exc}") from None


# =============================================================================== targets


@dataclass(frozen=True, eq=False)
class TargetFunction:
    """A multi-index target g: R^k -> R evaluated on the rows of h = Z W*^T.

    ``expr`` is the sympy expression (in real symbols h1..hk) when the target was given
    symbolically, else None. Calling it on an (m, k) float64 array returns an (m,) float64
    array.
    """

    k: int
    fn: Callable = field(repr=False)
    expr: sympy.Expr | None = None
    columns: bool = field(default=False, repr=False)  # fn takes k column arguments

    def __call__(self, h: np.ndarray) -> np.ndarray:
        m = h.shape[0]
        with np.errstate(over="ignore", under="ignore"):
            y = self.fn(*h.T) if self.columns else self.fn(h)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (m,):
            if y.ndim == 0:
                return np.full(m, float(y))
            if y.shape == (m, 1):
                return y[:, 0]
            raise ValueError(f"target must return an array of shape ({m},) for h of shape "
                             f"{h.shape}, got {y.shape}")
        return y


def make_target(target, k: int | None = None) -> TargetFunction:
    """A :class:`TargetFunction` from a name of :data:`TARGETS`, a string or sympy expression
    in h1..hk, a numpy callable of the (m, k) array h (``k`` required), or a TargetFunction.

    For an expression, k defaults to the largest index used (``k`` may be larger: extra
    directions the target ignores). A string is read by the whitelist parser
    :func:`asymptotics.functions.safe_expression` (via
    :func:`asymptotics.functions.multi_index_target`; never evaluated as Python, with its limits
    on length, exponents, Hermite orders and k <= ``MAX_TARGET_DIRECTIONS``). ValueError naming
    ``target`` or ``k`` on bad input.
    """
    if isinstance(target, TargetFunction):
        if k is not None and int(k) != target.k:
            raise ValueError(f"k = {k} does not match the target's k = {target.k}")
        return target
    if callable(target) and not isinstance(target, (str, sympy.Basic)):
        if k is None:
            raise ValueError("k: a callable target needs the number of directions k "
                             "(option k=...)")
        k = pos_int(k, "k")
        tf = TargetFunction(k, target)
        probe = tf(np.zeros((3, k)))  # shape check now rather than deep in a run
        if not np.all(np.isfinite(probe)):
            raise ValueError("target returned NaN/inf at h = 0")
        return tf
    if not isinstance(target, (str, sympy.Basic)):
        raise ValueError(f"target must be a name {sorted(TARGETS)}, an expression in h1..hk or a "
                         f"callable, got {type(target).__name__}")
    expr, k = functions.multi_index_target(target, k, "target")
    syms = [sympy.Symbol(f"h{i}", real=True) for i in range(1, k + 1)]
    fn = sympy.lambdify(syms, expr, modules=["scipy", "numpy"])
    tf = TargetFunction(k, fn, expr, columns=True)
    # the compiled function must agree with the expression (catches printer surprises)
    probe = (0.3, -1.1, 0.7, 1.9, -0.4)
    pts = np.array([[probe[(i + j) % 5] for j in range(k)] for i in range(3)])
    got = tf(pts)
    for row, g in zip(pts, got):
        ref = complex(expr.subs(dict(zip(syms, row))).evalf())
        if not abs(ref - g) <= 1e-9 * max(1.0, abs(ref)):
            raise ValueError(f"target: numeric evaluation of {expr} disagrees with sympy at "
                             f"{row.tolist()}: {g} != {ref}")
    return tf


# =============================================================================== conventions
def learning_rate(rule: str, n: int, d: int, p: int, c: float | None = None) -> float:
    """Step size of a named rule: ``const`` c p, ``sqrt`` c p sqrt(n/d),
    ``notebook`` c sqrt(n p); c defaults to :data:`RULES` [rule] (2, 1, 10)."""
    if rule not in RULES:
        raise ValueError(f"eta: unknown learning-rate rule {rule!r}; known: {sorted(RULES)}")
    c = RULES[rule] if c is None else float(c)
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"eta_c must be a finite number > 0, got {c!r}")
    if rule == "const":
        return c * p
    if rule == "sqrt":
        return c * p * math.sqrt(n / d)
    return c * math.sqrt(n * p)


def lam_from_paper(lam_paper: float, p: int, n_ridge: int) -> float:
    """Deprecated: :func:`asymptotics.conventions.lam_from_scaled_features` (lam = lambda_P p / n_ridge)."""
    warnings.warn("simulations.giant_step.lam_from_paper is deprecated: use "
                  "asymptotics.conventions.lam_from_scaled_features", DeprecationWarning, stacklevel=2)
    return lam_from_scaled_features(lam_paper, p, n_ridge)


# =============================================================================== problem
@dataclass(frozen=True, eq=False)
class GiantStepProblem:
    """One realisation: teacher W*, initial weights W0, a0, and the data streams.

    Built by :func:`make_problem` (what :func:`simulate` uses); :meth:`batch` draws a whole
    batch in memory (for tests and small sizes), exactly the rows :func:`simulate` streams.
    """

    target: TargetFunction
    activation: functions.Activation
    d: int
    p: int
    W_star: np.ndarray
    W0: np.ndarray
    a0: np.ndarray
    noise_var: float
    block: int
    seed: np.random.SeedSequence

    @property
    def k(self) -> int:
        return self.target.k

    #: purpose of the random stream of each kind of batch
    _KIND = {"gd": "gradient batch", "ridge": "readout batch", "test": "test batch"}

    def _draw(self, purpose: str, step: int, b: int, Z: np.ndarray, eps: np.ndarray) -> None:
        """Draw the inputs (and label noise) of block b into its rows Z (float64) and eps:
        ``stream(seed, purpose, step, b, "inputs")`` and ``(..., "label noise")``."""
        stream(self.seed, purpose, step, b, "inputs").standard_normal(out=Z)
        if self.noise_var:
            stream(self.seed, purpose, step, b, "label noise").standard_normal(out=eps)

    def _labels(self, Z: np.ndarray, eps: np.ndarray) -> np.ndarray:
        y = self.target(Z @ self.W_star.T)
        if self.noise_var:
            y = y + math.sqrt(self.noise_var) * eps
        if not np.all(np.isfinite(y)):
            raise ValueError("target returned NaN or inf")
        return y

    def _fill(self, purpose: str, step: int, b: int, Z: np.ndarray, eps: np.ndarray, y: np.ndarray,
              prep=None, yt: np.ndarray | None = None, Zc: np.ndarray | None = None) -> None:
        """Everything of block b that needs no weights: its inputs Z (float64) and labels y; with
        ``prep`` = (A, B) the preprocessed labels yt = y - A - Z B; with ``Zc`` the inputs rounded
        to the compute dtype. Run in the drawing threads (numpy releases the GIL)."""
        self._draw(purpose, step, b, Z, eps)
        y[:] = self._labels(Z, eps)
        if prep is not None:
            np.subtract(y, prep[0], out=yt)
            yt -= Z @ prep[1]
        if Zc is not None:
            np.copyto(Zc, Z, casting="same_kind")

    def stream(self, kind: str, n: int, step: int = 0, chunk: int | None = None,
               pool: ThreadPoolExecutor | None = None) -> Iterator[tuple]:
        """Yield (start, Z (m x d float64), y (m,)) for a batch of n rows, ``chunk`` rows at a time
        (rounded down to a multiple of ``block``). The arrays are reused between chunks. With a
        thread ``pool`` the random numbers and labels of the blocks of a chunk are computed in
        parallel (numpy releases the GIL; each block has its own generator, so the draw is the
        same)."""
        purpose = self._KIND[kind]
        rows = _chunk_rows(chunk, self.block, self.d, self.p, n)
        Zbuf, ebuf, ybuf = np.empty((rows, self.d)), np.empty(rows), np.empty(rows)
        for start in range(0, n, rows):
            m = min(rows, n - start)
            jobs = [(purpose, step, (start + s) // self.block, Zbuf[s:e], ebuf[s:e], ybuf[s:e])
                    for s, e in _blocks(m, self.block)]
            if pool is None or len(jobs) == 1:
                for job in jobs:
                    self._fill(*job)
            else:
                for _ in pool.map(lambda job: self._fill(*job), jobs):
                    pass
            yield start, Zbuf[:m], ybuf[:m]

    def batch(self, kind: str, n: int, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The whole batch (Z, y) of a ``kind`` in {"gd", "ridge", "test"} (step t for "gd")."""
        if kind not in self._KIND:
            raise ValueError(f"kind must be one of {sorted(self._KIND)}, got {kind!r}")
        n = pos_int(n, "n")
        Z = np.empty((n, self.d))
        y = np.empty(n)
        for start, Zc, yc in self.stream(kind, n, step, chunk=n):
            Z[start:start + len(yc)] = Zc
            y[start:start + len(yc)] = yc
        return Z, y


def _chunk_rows(chunk, block: int, d: int, p: int, n: int, threads: int = 1) -> int:
    if chunk is None:
        chunk = max(threads * block, _CHUNK_ELEMENTS // max(d, p))
    chunk = pos_int(chunk, "chunk")
    rows = max(1, chunk // block) * block
    return min(rows, -(-n // block) * block)


def _orthonormal_rows(W, k: int, d: int) -> np.ndarray:
    W = _real_array(W, "W_star", (k, d))
    if np.abs(W @ W.T - np.eye(k)).max() > 1e-8:
        raise ValueError("W_star must have orthonormal rows (W_star @ W_star.T = I_k)")
    return W


def make_problem(target, activation, d: int, p: int, *, seed: SeedLike = 0, a_init="gauss",
                 w_init="gauss", k: int | None = None, W_star=None, noise_var: float = 0.0,
                 forced_signs: int = 0, block: int = BLOCK) -> GiantStepProblem:
    """Teacher and initial weights of one seed (see the module docstring for the options)."""
    d = pos_int(d, "d")
    p = pos_int(p, "p")
    if W_star is not None and k is None and not isinstance(target, TargetFunction):
        k = np.shape(W_star)[0] if np.ndim(W_star) == 2 else None
    tf = make_target(target, k)
    k = tf.k
    if k > d:
        raise ValueError(f"k = {k} directions do not fit in d = {d} dimensions")
    act = _activation(activation)
    seed = seed_sequence(seed)
    noise_var = nonneg_float(noise_var, "noise_var")
    block = pos_int(block, "block")
    if W_star is None:
        q, r = np.linalg.qr(stream(seed, "teacher").standard_normal((d, k)))
        W_star = (q * np.sign(np.diag(r))).T.copy()  # unique QR: the law is Haar
    else:
        W_star = _orthonormal_rows(W_star, k, d)
    if isinstance(w_init, str):
        if w_init not in ("gauss", "sphere"):
            raise ValueError(f"w_init must be 'gauss', 'sphere' or a (p, d) array, got {w_init!r}")
        W0 = stream(seed, "first layer").standard_normal((p, d)) / math.sqrt(d)
        if w_init == "sphere":
            W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    else:
        W0 = _real_array(w_init, "w_init", (p, d))
    forced = nonneg_int(forced_signs, "forced_signs")
    if isinstance(a_init, str):
        rng = stream(seed, "second layer")
        if a_init == "gauss":
            a0 = rng.standard_normal(p) / math.sqrt(p)
        elif a_init == "pm1":
            a0 = np.where(rng.random(p) < 0.5, -1.0, 1.0) / math.sqrt(p)
        elif a_init == "ones":
            a0 = np.full(p, 1.0 / math.sqrt(p))
        else:
            raise ValueError(f"a_init must be 'gauss', 'pm1', 'ones' or a (p,) array, got {a_init!r}")
        if forced:
            if 2 * forced > p:
                raise ValueError(f"forced_signs = {forced} needs p >= {2 * forced}, got p = {p}")
            a0[:forced] = np.abs(a0[:forced])
            a0[forced:2 * forced] = -np.abs(a0[forced:2 * forced])
    else:
        a0 = _real_array(a_init, "a_init", (p,))
    return GiantStepProblem(tf, act, d, p, np.ascontiguousarray(W_star), np.ascontiguousarray(W0), a0,
                            noise_var, block, seed)


# =============================================================================== kernels
class _Work:
    """The compute dtype, the thread pool, the number of blocks in flight (``window``) and chunk
    buffers of ``rows`` rows in the compute dtype (:func:`first_layer_gradient`; :func:`simulate`
    needs none: its blocks have per-thread buffers, :func:`_reduce_blocks`)."""

    def __init__(self, rows: int, d: int, p: int, dtype: np.dtype, pool=None, window: int = 1):
        self.dtype = dtype
        self.pool = pool
        self.window = window
        self.Z = np.empty((rows, d), dtype) if dtype != np.float64 else None
        self.Zr = np.empty((rows, d), dtype)
        self.H = np.empty((rows, p), dtype)
        self.S = np.empty((rows, p), dtype)

    def inputs(self, Z64: np.ndarray) -> np.ndarray:
        if self.Z is None:
            return Z64
        Z = self.Z[:Z64.shape[0]]
        np.copyto(Z, Z64, casting="same_kind")
        return Z


def _blocks(m: int, block: int):
    for s in range(0, m, block):
        yield s, min(s + block, m)


def _forward(act, Z, Wc_t, H, block, apply=False):
    """H = Z W^T block by block (one GEMM per random-number block: BLAS results may depend
    on the number of rows of a product, so the rows of a block are always multiplied
    together), then sigma applied in place if ``apply``."""
    for s, e in _blocks(Z.shape[0], block):
        np.matmul(Z[s:e], Wc_t, out=H[s:e])
    if apply:
        functions.apply(act, H, out=H)
    return H


def _gradient_chunk(act, Wc_t, a_s, Z, y, work: _Work, G: np.ndarray, block: int) -> None:
    """G += sigma'(H)^T (r * Z) for one chunk (H = Z W^T, r = y - sigma(H) a_s), block by block."""
    m = Z.shape[0]
    H = _forward(act, Z, Wc_t, work.H[:m], block)
    S = functions.apply(act, H, out=work.S[:m])
    f = np.empty(m, dtype=work.dtype)
    for s, e in _blocks(m, block):
        np.matmul(S[s:e], a_s, out=f[s:e])
    r = (y - f).astype(work.dtype, copy=False)
    functions.apply(act, H, out=H, derivative=True)
    Zr = np.multiply(Z, r[:, None], out=work.Zr[:m])
    for s, e in _blocks(m, block):
        G += H[s:e].T @ Zr[s:e]


def first_layer_gradient(W, a, Z, y, activation, *, dtype="float64", chunk: int | None = None,
                         block: int = BLOCK) -> np.ndarray:
    """G = -grad_W L(W) for L(W) = (1/2n) sum_nu (y_nu - a^T sigma(W z_nu)/sqrt(p))^2.

    ``W`` (p, d), ``a`` (p,), ``Z`` (n, d), ``y`` (n,). The same streaming kernel as
    :func:`simulate` (chunks of ``chunk`` rows, accumulation block by block in float64).
    """
    act = _activation(activation)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be a (p, d) array, got shape {W.shape}")
    p, d = W.shape
    a = _real_array(a, "a", (p,))
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != d:
        raise ValueError(f"Z must be an (n, {d}) array, got shape {Z.shape}")
    n = Z.shape[0]
    y = _real_array(y, "y", (n,))
    dt = float_dtype(dtype)
    block = pos_int(block, "block")
    rows = _chunk_rows(chunk, block, d, p, n)
    work = _Work(rows, d, p, dt)
    Wc_t = W.astype(dt).T
    a_s = (a / math.sqrt(p)).astype(dt)
    G = np.zeros((p, d))
    for start in range(0, n, rows):
        Zc = work.inputs(Z[start:start + rows])
        _gradient_chunk(act, Wc_t, a_s, Zc, y[start:start + rows], work, G, block)
    G *= (a / math.sqrt(p))[:, None] / n
    return G


def _apply_serial(act, H: np.ndarray, out: np.ndarray | None = None, derivative: bool = False) -> np.ndarray:
    """sigma(H) (or sigma') into ``out`` (default: in place), in pieces below the size at which
    :func:`asymptotics.functions.apply` starts its parallel Numba loop: the threads of
    :func:`_reduce_blocks` never enter that loop together."""
    out = H if out is None else out
    src, dst = H.reshape(-1), out.reshape(-1)
    for i in range(0, src.size, _SERIAL_PIECE):
        functions.apply(act, src[i:i + _SERIAL_PIECE], out=dst[i:i + _SERIAL_PIECE], derivative=derivative)
    return out


def _reduce_blocks(problem, kind: str, step: int, n: int, prep, work: _Work, fn: Callable, add: Callable,
                   buffers: tuple = ()) -> None:
    """add(fn(Z, y~, Zc, *bufs)) for every block of a batch, ``add`` called in block order.

    Each block is one job of the thread pool of ``work`` (or of the calling thread): it draws the
    block's inputs Z (float64) and labels (y~ = y - A - Z B with ``prep``, else y), rounds Z to
    the compute dtype (Zc) and runs ``fn`` with single-threaded BLAS, so the cores never wait for
    each other between a drawing phase and a product phase. ``buffers`` ((columns, dtype) pairs)
    are per-thread scratch arrays of ``block`` rows. At most ``work.window`` blocks are in flight
    (bounded memory); the sums made by ``add`` in block order do not depend on the threads.
    """
    block, d = problem.block, problem.d
    purpose = problem._KIND[kind]
    local = threading.local()

    def job(b: int):
        m = min(n, (b + 1) * block) - b * block
        if not hasattr(local, "arrays"):
            local.arrays = (np.empty((block, d)), np.empty(block), np.empty(block),
                            None if prep is None else np.empty(block),
                            np.empty((block, d), work.dtype) if work.dtype != np.float64 else None,
                            *(np.empty((block, cols), dt) for cols, dt in buffers))
        Z, eps, y, yt, Zc, *bufs = (None if a is None else a[:m] for a in local.arrays)
        problem._fill(purpose, step, b, Z, eps, y, prep, yt, Zc)
        return fn(Z, y if prep is None else yt, Z if Zc is None else Zc, *bufs)

    with threadpool_limits(1, user_api="blas"):
        if work.pool is None:
            for b in range(-(-n // block)):
                add(job(b))
            return
        pending: deque = deque()
        for b in range(-(-n // block)):
            pending.append(work.pool.submit(job, b))
            if len(pending) >= work.window:
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())


class _Sum:
    """Running sums of a tuple of arrays/floats, added in the order given (see :func:`_reduce_blocks`)."""

    def __init__(self, *zeros):
        self.values = list(zeros)

    def __call__(self, parts) -> None:
        for i, part in enumerate(parts):
            self.values[i] = self.values[i] + part if np.isscalar(self.values[i]) else \
                np.add(self.values[i], part, out=self.values[i])


def _linear_part(problem: GiantStepProblem, kind: str, step: int, n: int, work: _Work) -> tuple[float, np.ndarray]:
    """A = mean(y), B = Z^T y / n on a batch (the notebook's first-Hermite estimates)."""
    acc = _Sum(0.0, np.zeros(problem.d))
    _reduce_blocks(problem, kind, step, n, None, work, lambda Z, y, Zc: (float(np.sum(y)), Z.T @ y), acc)
    return acc.values[0] / n, acc.values[1] / n


def _gd_step(problem, W, step, n, prep, work) -> np.ndarray:
    """G = -grad_W L on a gradient batch: per block H = Z W^T, r = y~ - sigma(H) a0/sqrt(p), and
    sigma'(H)^T (r * Z) summed over blocks, then scaled by a0/(sqrt(p) n) row by row."""
    act, p, dt = problem.activation, problem.p, work.dtype
    Wc_t = W.astype(dt).T
    a_s = (problem.a0 / math.sqrt(p)).astype(dt)

    def block_gradient(Z, yt, Zc, H, S):
        np.matmul(Zc, Wc_t, out=H)
        r = (yt - _apply_serial(act, H, out=S) @ a_s).astype(dt, copy=False)
        Zr = np.multiply(Zc, r[:, None], out=Zc)  # Zc is this block's own buffer
        return (_apply_serial(act, H, derivative=True).T @ Zr,)

    acc = _Sum(np.zeros((p, problem.d)))
    _reduce_blocks(problem, "gd", step, n, prep, work, block_gradient, acc, ((p, dt), (p, dt)))
    G = acc.values[0]
    G *= (problem.a0 / math.sqrt(p))[:, None] / n
    return G


def _gram(problem, W, kind, step, n, prep, work):
    """K = F^T F, b = F^T y~, sum y~^2 over a readout batch (block by block, float64)."""
    act, p, dt = problem.activation, problem.p, work.dtype
    Wc_t = W.astype(dt).T

    def block_gram(Z, yt, Zc, H):
        F = _apply_serial(act, np.matmul(Zc, Wc_t, out=H))
        return F.T @ F, F.T @ yt.astype(dt, copy=False), float(yt @ yt)  # F^T F: SYRK

    acc = _Sum(np.zeros((p, p)), np.zeros(p), 0.0)
    _reduce_blocks(problem, kind, step, n, prep, work, block_gram, acc, ((p, dt),))
    return tuple(acc.values)


def _test_errors(problem, W, theta, prep, n_test, work) -> np.ndarray:
    """Mean (y~ - F theta)^2 per lambda over the test batch (y~ = y - A - Z B with ``prep``)."""
    act, dt = problem.activation, work.dtype
    Wc_t = W.astype(dt).T
    th = theta.astype(dt)

    def block_errors(Z, yt, Zc, H):
        res = yt[:, None] - _apply_serial(act, np.matmul(Zc, Wc_t, out=H)) @ th
        return (np.einsum("ij,ij->j", res, res),)

    acc = _Sum(np.zeros(theta.shape[1]))
    _reduce_blocks(problem, "test", 0, n_test, prep, work, block_errors, acc, ((problem.p, dt),))
    return acc.values[0] / n_test


# =============================================================================== overlaps
@dataclass(frozen=True)
class StepOverlap:
    """Alignment of the first layer with span(W*) after ``step`` steps (0: initialisation).

    row_overlaps : (p, k) w_j.theta_i / |w_j|.
    cosines : (p,) |P* w_j| / |w_j| (norm of the projection of the normalised row).
    mean_cosine : mean of ``cosines`` (random level ~ sqrt(k/d)).
    subspace : (k, k) mean over j of (W* w^_j)(W* w^_j)^T; its trace is the mean squared
        cosine, its eigenvalues show which directions of span(W*) are picked up.
    gradient_overlaps, gradient_mean_cosine : the same for the normalised rows of the
        gradient G of the step that produced these weights (None at step 0).
    """

    step: int
    mean_cosine: float
    cosines: np.ndarray
    row_overlaps: np.ndarray
    subspace: np.ndarray
    gradient_overlaps: np.ndarray | None = None
    gradient_mean_cosine: float | None = None


def _normalised_overlaps(M: np.ndarray, W_star: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1)
    return (M @ W_star.T) / np.where(norms > 0, norms, 1.0)[:, None]


def _overlap(step, W, W_star, G=None) -> StepOverlap:
    R = _normalised_overlaps(W, W_star)
    cos = np.linalg.norm(R, axis=1)
    g_R = g_mean = None
    if G is not None:
        g_R = _normalised_overlaps(G, W_star)
        g_mean = float(np.mean(np.linalg.norm(g_R, axis=1)))
    return StepOverlap(step, float(cos.mean()), cos, R, R.T @ R / R.shape[0], g_R, g_mean)


def _first_layer(problem, steps, eta, n, preprocess, work):
    """The T gradient steps, each on a fresh batch: (W_T, overlaps after 0..T steps, (A, B)).
    The state after a step is checkpointed (:mod:`simulations.checkpoint`) and resumed from."""
    W = problem.W0.copy()
    overlaps = [_overlap(0, W, problem.W_star)]
    prep, first = None, 0
    seg = segments("steps", {"n": n, "steps": steps, "eta": eta, "preprocess": preprocess, "shape": list(W.shape)})
    saved = seg.resume()
    if saved is not None:
        first, overlaps, prep = saved["t"], saved["overlaps"], saved["prep"]
        W[...] = saved["W"]
    for t in range(first, steps):
        prep = _linear_part(problem, "gd", t, n, work) if preprocess else None
        G = _gd_step(problem, W, t, n, prep, work)
        W += eta * G
        overlaps.append(_overlap(t + 1, W, problem.W_star, G))
        seg.save_if_due(lambda: {"t": t + 1, "W": W, "overlaps": overlaps, "prep": prep})
    return W, overlaps, prep


# =============================================================================== simulate
@dataclass(frozen=True)
class GiantStepResult:
    """Outcome of :func:`simulate`.

    test_error, train_error : float (scalar ``lam``) or (L,) arrays (a lam grid); mean
        squared errors on the fresh test set / on the readout batch, label noise included.
    lam : the lam(s) used (project convention).
    eta : the step size used (None for steps = 0).
    overlaps : steps + 1 :class:`StepOverlap`, index t = after t steps (0 = initialisation).
    n, n_ridge, n_test, steps, d, p, k : sizes.
    linear_part : (A, B) of the preprocessing used by the readout, else None.
    theta : (p,) or (p, L) readout (project convention; the paper's second layer is
        sqrt(p) theta); W, a0, W_star only with ``return_weights=True``.
    wall_time : seconds.
    """

    test_error: Any
    train_error: Any
    lam: Any
    eta: float | None
    overlaps: tuple
    n: int
    n_ridge: int
    n_test: int
    steps: int
    d: int
    p: int
    k: int
    linear_part: tuple | None = None
    theta: np.ndarray | None = None
    W: np.ndarray | None = None
    a0: np.ndarray | None = None
    W_star: np.ndarray | None = None
    wall_time: float = 0.0

    @property
    def mean_cosines(self) -> np.ndarray:
        """(steps + 1,) mean row cosine with span(W*) after 0, 1, ..., steps steps."""
        return np.array([o.mean_cosine for o in self.overlaps])

    @property
    def gradient_mean_cosines(self) -> np.ndarray:
        """(steps,) mean cosine of the normalised gradient rows with span(W*), per step."""
        return np.array([o.gradient_mean_cosine for o in self.overlaps[1:]])

    def summary(self) -> dict:
        """Plain dict of numbers/arrays (what the sweep task returns)."""
        return {
            "test_error": np.asarray(self.test_error, dtype=np.float64),
            "train_error": np.asarray(self.train_error, dtype=np.float64),
            "lam": np.asarray(self.lam, dtype=np.float64),
            "eta": np.nan if self.eta is None else float(self.eta),
            "mean_cosine": self.mean_cosines,
            "gradient_mean_cosine": self.gradient_mean_cosines,
            "subspace": np.array([o.subspace for o in self.overlaps]),
        }


def simulate(target, activation, d: int, p: int, n: int, steps: int, eta, lam, n_test: int,
             a_init="gauss", preprocess: bool = False, seed: SeedLike = 0, **options) -> GiantStepResult:
    """Algorithm 1: ``steps`` giant GD steps on the first layer, ridge readout, test error.

    Parameters
    ----------
    target : name in :data:`TARGETS`, expression (str or sympy) in h1..hk, numpy callable
        of the (m, k) array h = Z W*^T (give ``k``), or a :class:`TargetFunction`.
    activation : registered activation name (or ``functions.Activation``) of the student.
    d, p, n : input dimension, width, samples per gradient step.
    steps : number T >= 0 of first-layer steps (0: random features).
    eta : step size (> 0 when steps >= 1) or a rule name "const" | "sqrt" | "notebook"
        (prefactor ``eta_c``; see :func:`learning_rate`). Ignored when steps = 0.
    lam : ridge lam >= 0 in the project convention (scalar, or a 1-D grid: then the errors
        are arrays). The paper's lambda_P is lam = lambda_P p / n_ridge
        (:func:`asymptotics.conventions.lam_from_scaled_features`, called by the experiments).
    n_test : fresh test samples.
    a_init : "gauss" | "pm1" | "ones" | (p,) array: the fixed second layer a0.
    preprocess : remove the empirical first Hermite component A + B^T z (module docstring).
    seed : int, sequence of ints or numpy SeedSequence.

    Options (the fields of :class:`GiantStepSpec` after ``preprocess``, same defaults)
    -------
    k : number of directions (callable targets; default for expressions: largest index).
    noise_var : label-noise variance (default 0).
    reuse_batch : fit the readout on the last gradient batch (notebook) instead of a fresh one.
    n_ridge : readout samples (default n; must equal n with reuse_batch).
    w_init : "gauss" (rows N(0, I/d)) | "sphere" | (p, d) array.
    W_star : (k, d) array with orthonormal rows (default: Haar-random from the seed).
    dtype : "float64" (default) or "float32" compute precision.
    chunk : rows whose blocks may be in flight at once (at least 2 ``threads`` blocks; default
        about 8e6 / max(d, p) rows): bounds the memory. Never changes the result.
    block : rows per random-number block (default :data:`BLOCK`; changes the draw).
    prep_estimate : "gradient" (default) | "ridge": batch on which the readout's (A, B) are
        estimated.
    eta_c : prefactor of a learning-rate rule.
    forced_signs : with a_init="pm1", force a0[:m] > 0 and a0[m:2m] < 0.
    return_weights : also return W (after the steps), a0, W*.
    threads : threads computing the blocks in parallel, each with single-threaded BLAS
        (default: the current BLAS thread limit). Never changes the result.

    Returns
    -------
    :class:`GiantStepResult`.
    """
    t0 = time.perf_counter()
    run = _check_run(d, p, n, steps, eta, lam, n_test, preprocess, options)
    problem = make_problem(target, activation, run.d, run.p, seed=seed, a_init=a_init, **run.problem_options)
    threads = _blas_threads() if run.threads is None else run.threads
    rows = _chunk_rows(run.chunk, problem.block, run.d, run.p, max(run.n, run.n_ridge, run.n_test), threads)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        work = _Work(0, run.d, run.p, run.dtype, pool, window=max(2 * threads, rows // problem.block))
        out = _algorithm_1(problem, run, work)
    finally:
        if pool is not None:
            pool.shutdown()
    return _result(problem, run, *out, wall_time=time.perf_counter() - t0)


@dataclass(frozen=True)
class _Run:
    """The checked arguments of one :func:`simulate` call (everything but the problem)."""

    d: int
    p: int
    n: int
    n_test: int
    steps: int
    eta: float | None
    lams: np.ndarray
    scalar_lam: bool
    preprocess: bool
    reuse: bool
    n_ridge: int
    prep_estimate: str
    dtype: np.dtype
    threads: int | None
    chunk: int | None
    return_weights: bool
    problem_options: dict


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_eta(eta, eta_c, steps: int, n: int, d: int, p: int) -> float | None:
    """The step size: a positive number, or a rule of :data:`RULES` (None when steps = 0)."""
    if steps == 0:
        return None
    if isinstance(eta, str):
        value = learning_rate(eta, n, d, p, eta_c)
    elif isinstance(eta, (bool, np.bool_)) or not isinstance(eta, numbers.Real):
        raise ValueError(f"eta must be a number > 0 or a rule in {sorted(RULES)}, got {eta!r}")
    else:
        if eta_c is not None:
            raise ValueError("eta_c is the prefactor of a named rule; eta is a number here")
        value = float(eta)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"eta must be > 0 (and finite) when steps >= 1, got {eta!r}")
    return value


def _check_run(d, p, n, steps, eta, lam, n_test, preprocess, options: dict) -> _Run:
    """Argument checks of :func:`simulate` (the options and their defaults are the fields of
    :class:`GiantStepSpec`); the target and the initialisation are checked by :func:`make_problem`."""
    defaults = _option_defaults()
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"simulate() got unknown option(s) {unknown}; known: {sorted(defaults)}")
    opt = {**defaults, **options}
    d, p, n = pos_int(d, "d"), pos_int(p, "p"), pos_int(n, "n")
    n_test, steps = pos_int(n_test, "n_test"), nonneg_int(steps, "steps")
    try:
        lams = check_lams(np.atleast_1d(np.asarray(lam, dtype=np.float64)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lam: {exc}") from None
    preprocess, reuse = _flag(preprocess, "preprocess"), _flag(opt["reuse_batch"], "reuse_batch")
    n_ridge = n if opt["n_ridge"] is None else pos_int(opt["n_ridge"], "n_ridge")
    if reuse and n_ridge != n:
        raise ValueError(f"n_ridge = {n_ridge} must equal n = {n} with reuse_batch=True")
    choice(opt["prep_estimate"], "prep_estimate", ("gradient", "ridge"))
    problem_options = {name: opt[name] for name in ("w_init", "k", "W_star", "noise_var", "forced_signs", "block")}
    return _Run(d, p, n, n_test, steps, _check_eta(eta, opt["eta_c"], steps, n, d, p), lams, np.ndim(lam) == 0,
                preprocess, reuse, n_ridge, opt["prep_estimate"], float_dtype(opt["dtype"]),
                None if opt["threads"] is None else pos_int(opt["threads"], "threads"),
                None if opt["chunk"] is None else pos_int(opt["chunk"], "chunk"), bool(opt["return_weights"]),
                problem_options)


def _algorithm_1(problem: GiantStepProblem, run: _Run, work: _Work):
    """The T steps, the readout θ(λ) = (K/n_ridge + λ)⁻¹ b/n_ridge on its batch, the test errors.

    Returns (W_T, overlaps, (A, B) or None, θ (p, L), training errors (L,), test errors (L,)).
    """
    W, overlaps, prep = _first_layer(problem, run.steps, run.eta, run.n, run.preprocess, work)
    # readout batch: with reuse_batch the last gradient batch IS the readout batch (its (A, B) are kept)
    kind, rstep = ("gd", run.steps - 1) if run.reuse and run.steps >= 1 else ("ridge", 0)
    if run.preprocess and (run.steps == 0 or (kind == "ridge" and run.prep_estimate == "ridge")):
        prep = _linear_part(problem, kind, rstep, run.n_ridge, work)
    K, b, sy2 = _gram(problem, W, kind, rstep, run.n_ridge, prep, work)
    m = run.n_ridge
    # a short grid of λ > 0: one Cholesky solve each (~20x cheaper than the eigendecomposition)
    method = "cholesky" if len(run.lams) <= _CHOLESKY_MAX_LAMS else "eigh"
    theta, train = ridge_from_gram(K / m, b / m, run.lams, sy2 / m, n=m, method=method)
    test = _test_errors(problem, W, theta, prep, run.n_test, work)
    return W, overlaps, prep, theta, train, test


def _result(problem, run: _Run, W, overlaps, prep, theta, train, test, *, wall_time: float) -> GiantStepResult:
    if run.scalar_lam:
        test, train, lam, theta = float(test[0]), float(train[0]), float(run.lams[0]), theta[:, 0]
    else:
        lam = run.lams
    keep = run.return_weights
    return GiantStepResult(
        test, train, lam, run.eta, tuple(overlaps), run.n, run.n_ridge, run.n_test, run.steps, run.d, run.p,
        problem.k, prep, theta, W if keep else None, problem.a0 if keep else None,
        problem.W_star if keep else None, wall_time)


# =============================================================================== sweep task
def _frozen(value, name: str):
    """A string, None, or a (nested) real array as nested tuples of floats (JSON-able spec field)."""
    if value is None or isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a name or a real array, got {value!r}")
    return _to_tuple(arr.astype(np.float64).tolist())


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list) else x


def _thawed(value):
    return np.array(value, dtype=np.float64) if isinstance(value, tuple) else value


@register_spec
@dataclass(frozen=True)
class GiantStepSpec(ModelSpec):
    """One parameter point of Algorithm 1 (:func:`simulate`): its arguments and options by name.

    ``target`` is a name of :data:`TARGETS` or an expression string in h1..hk (checked at
    construction by the whitelist parser :func:`asymptotics.functions.safe_expression`: a task
    read from a sweep file never runs code), ``activation`` a registered name, ``eta`` a number
    or a rule name, ``lam`` the project's λ (a number or a tuple: a grid); arrays (``a_init``, ``w_init``, ``W_star``) are held as nested tuples.
    ``rows=True`` makes :func:`giant_step_task` also return the per-neuron overlaps. The fields
    after ``preprocess`` (except ``rows``) are the options of :func:`simulate`, with their
    defaults. Validated once, at construction (by the checks of :func:`simulate`).
    """

    kind: ClassVar[str] = "giant_step"
    target: str
    activation: str
    d: int
    p: int
    n: int
    steps: int
    lam: Any
    n_test: int
    eta: Any = None
    a_init: Any = "gauss"
    preprocess: bool = False
    rows: bool = False
    k: int | None = None
    noise_var: float = 0.0
    reuse_batch: bool = False
    n_ridge: int | None = None
    w_init: Any = "gauss"
    W_star: Any = None
    dtype: str = "float64"
    chunk: int | None = None
    block: int = BLOCK
    prep_estimate: str = "gradient"
    eta_c: float | None = None
    forced_signs: int = 0
    return_weights: bool = False
    threads: int | None = None

    def validate(self) -> None:
        if not isinstance(self.target, str):
            raise ValueError(f"target must be a name of TARGETS or an expression string, got {self.target!r}")
        if not isinstance(self.activation, str):
            raise ValueError(f"activation must be a registered name, got {self.activation!r}")
        _activation(self.activation)
        functions.multi_index_target(self.target, self.k)
        for name in ("a_init", "w_init", "W_star"):
            self._set(name, _frozen(getattr(self, name), name))
        lam = np.asarray(self.lam, dtype=np.float64) if not isinstance(self.lam, str) else self.lam
        self._set("lam", float(lam) if np.ndim(lam) == 0 else _to_tuple(np.asarray(lam).tolist()))
        run = _check_run(self.d, self.p, self.n, self.steps, self.eta, self.lam, self.n_test, self.preprocess,
                         self.options())
        for name in ("d", "p", "n", "n_test", "steps", "preprocess", "threads", "chunk", "return_weights"):
            self._set(name, getattr(run, name))
        self._set("reuse_batch", run.reuse)
        self._set("rows", _flag(self.rows, "rows"))
        self._set("dtype", str(run.dtype))
        self._set("noise_var", nonneg_float(self.noise_var, "noise_var"))
        self._set("block", pos_int(self.block, "block"))
        self._set("forced_signs", nonneg_int(self.forced_signs, "forced_signs"))
        if isinstance(self.eta, numbers.Real) and not isinstance(self.eta, (bool, np.bool_)):
            self._set("eta", float(self.eta))
        for name in ("k", "n_ridge"):
            if getattr(self, name) is not None:
                self._set(name, pos_int(getattr(self, name), name))
        if self.eta_c is not None:
            self._set("eta_c", float(self.eta_c))

    def options(self) -> dict:
        """The options of :func:`simulate` (the fields after ``preprocess``, ``rows`` excepted)."""
        return {name: _thawed(getattr(self, name)) for name in _option_defaults()}

    def arguments(self) -> dict:
        """Keyword arguments of :func:`simulate` (arrays back from tuples), seed excepted."""
        main = {name: _thawed(getattr(self, name)) for name in _SIMULATE_ARGUMENTS}
        return {**main, **self.options()}

    @classmethod
    def from_dict(cls, data: dict) -> "GiantStepSpec":
        """Also accepts the old task dict with ``lam_paper`` (deprecated: the paper's λ_P,
        converted by :func:`asymptotics.conventions.lam_from_scaled_features` with n_ridge)."""
        data = dict(data)
        if ("lam" in data) == ("lam_paper" in data):
            raise ValueError("giant_step_task needs exactly one of 'lam' and 'lam_paper'")
        if "lam_paper" in data:
            warnings.warn("the 'lam_paper' task parameter is deprecated: give the project's 'lam' "
                          "(asymptotics.conventions.lam_from_scaled_features(lam_paper, p, n_ridge))",
                          DeprecationWarning, stacklevel=3)
            n_ridge = data.get("n_ridge") or data.get("n")
            data["lam"] = lam_from_scaled_features(data.pop("lam_paper"), data.get("p"), n_ridge)
        return super().from_dict(data)


_SIMULATE_ARGUMENTS = ("target", "activation", "d", "p", "n", "steps", "eta", "lam", "n_test", "a_init",
                       "preprocess")


@lru_cache(maxsize=1)
def _option_names() -> tuple:
    skip = set(_SIMULATE_ARGUMENTS) | {"rows"}
    return tuple(f.name for f in dataclasses.fields(GiantStepSpec) if f.name not in skip)


def _option_defaults() -> dict:
    """{option: default} of :func:`simulate`: the fields of :class:`GiantStepSpec` (one list)."""
    fields = {f.name: f.default for f in dataclasses.fields(GiantStepSpec)}
    return {name: fields[name] for name in _option_names()}


def giant_step_task(spec: GiantStepSpec | dict, seed: np.random.SeedSequence) -> dict:
    """One sweep point for :func:`simulations.sweep.run_sweep`: :func:`simulate` of a
    :class:`GiantStepSpec` (or of the equivalent dict: ``GiantStepSpec.from_dict``) with the
    task's seed. Returns :meth:`GiantStepResult.summary` (+ ``row_overlaps`` (T+1, p, k) and
    ``gradient_overlaps`` (T, p, k) with ``rows``).
    """
    if isinstance(spec, dict):
        spec = GiantStepSpec.from_dict(spec)
    res = simulate(seed=seed, **spec.arguments())
    out = res.summary()
    if spec.rows:
        out["row_overlaps"] = np.array([o.row_overlaps for o in res.overlaps])
        out["gradient_overlaps"] = np.array([o.gradient_overlaps for o in res.overlaps[1:]]).reshape(
            res.steps, res.p, res.k)
    return out
