"""Deep random feature maps and teacher networks, chunked over samples.

Conventions
-----------
* Samples are rows: X is n x d, the feature matrix F is n x p (row i = phi(x_i)^T).
* A network is a list of weight matrices W_1..W_L, W_l of shape p_l x p_{l-1} (p_0 = d),
  and one activation per layer; layer l computes h_l = sigma_l(W_l h_{l-1}), h_0 = x, so
  for a block of rows H_l = sigma_l(H_{l-1} W_l^T). No biases. The weights are used
  exactly as given: any 1/sqrt(width) scaling lives in the matrices
  (:func:`random_weights` draws W_l = Z_l / sqrt(p_{l-1}), so pre-activations are O(1)).
* Teacher: y = theta^T psi(x) / sqrt(k) + noise * eps, psi a (possibly empty = linear,
  psi(x) = x) network with k outputs, eps ~ N(0, 1) independent (see :class:`Teacher`).

Computation
-----------
Per chunk of rows: one BLAS product ``H @ W.T`` per layer, then the activation applied in
place by :func:`asymptotics.functions.apply` (a fused Numba kernel). Intermediate layers
live in two chunk-sized buffers; the last layer is written straight into the output, so
``feature_map`` needs no n x p memory beyond its result, and :func:`iter_features` /
:func:`iter_samples` stream chunks without ever holding all n rows.

float32 halves memory and is about twice as fast (single-precision GEMM); errors are then
~ 1e-7 relative per layer, far below the O(1/sqrt(n)) statistical fluctuations of any
learning-curve point, so float32 is fine for simulation (the ridge solve itself is done
in float64 by :mod:`simulations.ridge`).

Randomness
----------
Only from the ``numpy.random.Generator`` passed in. Weights and inputs are always drawn in
float64 and then cast, so the float32 and float64 versions of a model are the same draw
up to rounding. :class:`SampleStream` draws inputs and label noise per fixed block of
``SAMPLE_BLOCK`` rows from the streams ``stream(root, "inputs", b)`` and
``stream(root, "noise", b)`` of one root seed (a seed, or a child spawned from the generator
passed in): the samples do not depend on the chunk size used to process them, and the first
m rows of a longer draw equal a draw of m rows.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from asymptotics import functions

from asymptotics.validation import float_dtype, pos_int
from .rng import SeedLike, child_seed, stream

__all__ = [
    "random_weights",
    "gaussian_inputs",
    "psd_sqrt",
    "feature_map",
    "iter_features",
    "default_chunk",
    "Teacher",
    "random_teacher",
    "SampleChunk",
    "SampleStream",
    "iter_samples",
    "draw_samples",
    "SAMPLE_BLOCK",
    "CHUNK_ELEMENTS",
]

#: Rows per block of the input / noise random stream of :class:`SampleStream` (a fixed
#: constant: changing it changes the samples, never their distribution).
SAMPLE_BLOCK = 1024
#: Default chunk: about this many elements (rows x widest layer) per buffer.
CHUNK_ELEMENTS = 1 << 21
#: Smallest default chunk (BLAS efficiency drops for very thin blocks).
_MIN_CHUNK = 64
#: Eigenvalues of a covariance below -PSD_RTOL * max eigenvalue make it non-PSD.
PSD_RTOL = 1e-10


# --------------------------------------------------------------------------- validation
def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _real_matrix(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a real (float or integer) array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")


def psd_sqrt(cov, name: str = "covariance") -> np.ndarray:
    """Symmetric square root S = S^T, S @ S = C of a symmetric PSD matrix (float64).

    Computed from ``eigh``; eigenvalues in [-1e-10 max, 0) are round-off and set to 0
    (singular covariances are allowed), more negative ones raise ``ValueError``.
    """
    C = _real_matrix(cov, name).astype(np.float64)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be square, got shape {C.shape}")
    _check_finite(C, name)
    scale = max(float(np.abs(C).max()), np.finfo(np.float64).tiny)
    if np.abs(C - C.T).max() > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric")
    w, U = np.linalg.eigh((C + C.T) / 2)
    if w[0] < -PSD_RTOL * max(w[-1], 0.0) or w[-1] < 0:
        raise ValueError(f"{name} must be positive semi-definite; smallest eigenvalue {w[0]:.3e}")
    S = (U * np.sqrt(np.clip(w, 0.0, None))) @ U.T
    return (S + S.T) / 2


def _check_widths_and_covariances(widths, covariances) -> tuple[list[int], list]:
    """Checked widths (p_0, ..., p_L) and the square roots C_l^{1/2} (None for the identity)."""
    try:
        ws = [int(w) if isinstance(w, numbers.Integral) else w for w in widths]
    except TypeError as exc:
        raise ValueError("widths must be a sequence of positive integers") from exc
    if len(ws) < 2:
        raise ValueError(f"widths must have at least 2 entries (p_0 = d, p_1, ...), got {widths!r}")
    ws = [pos_int(w, f"widths[{i}]") for i, w in enumerate(ws)]
    L = len(ws) - 1
    covs = [None] * L if covariances is None else list(covariances)
    if len(covs) != L:
        raise ValueError(f"covariances must have one entry per layer ({L}), got {len(covs)}")
    roots = []
    for l, C in enumerate(covs):  # validate everything before drawing anything
        S = None if C is None else psd_sqrt(C, f"covariances[{l}]")
        if S is not None and S.shape[0] != ws[l]:
            raise ValueError(
                f"covariances[{l}] must have shape ({ws[l]}, {ws[l]}) (p_{l} = widths[{l}]), "
                f"got {S.shape}"
            )
        roots.append(S)
    return ws, roots


# --------------------------------------------------------------------------- random draws
def random_weights(
    widths: Sequence[int], rng: np.random.Generator, covariances=None, dtype=np.float64
) -> list[np.ndarray]:
    """Gaussian weights of a deep network with widths (p_0 = d, p_1, ..., p_L).

    W_l = Z_l / sqrt(p_{l-1}) with Z_l (p_l x p_{l-1}) i.i.d. N(0, 1), or, with a row
    covariance C_l (p_{l-1} x p_{l-1}, symmetric PSD), W_l = Z_l C_l^{1/2} / sqrt(p_{l-1}):
    the rows of W_l are i.i.d. N(0, C_l / p_{l-1}), so E||row||^2 = Tr(C_l)/p_{l-1}
    (= 1 for C_l = I) and the pre-activation W_l h has variance h^T C_l h / p_{l-1}.

    Parameters
    ----------
    widths : sequence of L + 1 positive ints (L >= 1).
    rng : numpy.random.Generator; Z_1, ..., Z_L are drawn from it in this order, in
        float64 (then cast to ``dtype``: float32 weights are the float64 ones rounded).
    covariances : None or a sequence of L entries, each None (identity) or a
        (p_{l-1}, p_{l-1}) PSD matrix. For "rainbow" networks whose C_l depends on the
        earlier weights, call this once per layer with ``widths=[p_{l-1}, p_l]``.
    dtype : float64 (default) or float32.

    Returns
    -------
    list of L C-contiguous arrays, W_l of shape (p_l, p_{l-1}).
    """
    ws, roots = _check_widths_and_covariances(widths, covariances)
    dt = float_dtype(dtype)
    _check_rng(rng)
    out = []
    for l in range(len(ws) - 1):
        Z = rng.standard_normal((ws[l + 1], ws[l]))
        if roots[l] is not None:
            Z = Z @ roots[l]
        Z *= 1.0 / np.sqrt(ws[l])
        out.append(np.ascontiguousarray(Z, dtype=dt))
    return out


def gaussian_inputs(
    n: int, d: int, rng: np.random.Generator, covariance=None, dtype=np.float64
) -> np.ndarray:
    """n i.i.d. rows x ~ N(0, covariance) (identity by default), shape (n, d).

    Drawn in float64 as Z @ C^{1/2} (Z standard normal, C^{1/2} the symmetric root, so
    E[x x^T] = C), then cast to ``dtype``.
    """
    n = pos_int(n, "n")
    d = pos_int(d, "d")
    dt = float_dtype(dtype)
    _check_rng(rng)
    S = None
    if covariance is not None:
        S = psd_sqrt(covariance, "covariance")
        if S.shape[0] != d:
            raise ValueError(f"covariance must have shape ({d}, {d}), got {S.shape}")
    Z = rng.standard_normal((n, d))
    if S is not None:
        Z = Z @ S
    return Z.astype(dt, copy=False)


# --------------------------------------------------------------------------- networks
def _resolve_activation(a, name: str):
    """An ``asymptotics.functions.Activation`` from a registered name or an Activation."""
    try:
        return functions.get(a)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class _Network:
    """Validated network: W_l^T views in the compute dtype and resolved activations."""

    weights_t: tuple  # W_l.T (p_{l-1} x p_l), views of C-contiguous W_l in ``dtype``
    activations: tuple
    dtype: np.dtype

    @property
    def d(self) -> int:
        return self.weights_t[0].shape[0]

    @property
    def p(self) -> int:
        return self.weights_t[-1].shape[1]

    @property
    def max_width(self) -> int:
        return max(w.shape[1] for w in self.weights_t)


def _prepare_network(weights, activations, dtype: np.dtype, name: str = "weights",
                     act_name: str = "activations") -> _Network:
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        raise ValueError(f"{name} must be a sequence of 2-D arrays (one per layer), not one array")
    try:
        ws = list(weights)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of 2-D arrays") from exc
    if len(ws) == 0:
        raise ValueError(f"{name} must contain at least one layer")
    L = len(ws)
    if isinstance(activations, (str, functions.Activation)):
        acts = [activations] * L  # one activation for every layer
    else:
        try:
            acts = list(activations)
        except TypeError as exc:
            raise ValueError(f"{act_name} must be a name, an Activation or a sequence of them") from exc
        if len(acts) != L:
            raise ValueError(
                f"{act_name} must have one entry per layer ({L} layers), got {len(acts)}"
            )
    acts = tuple(_resolve_activation(a, f"{act_name}[{l}]") for l, a in enumerate(acts))
    wt = []
    prev = None
    for l, W in enumerate(ws):
        W = _real_matrix(W, f"{name}[{l}]")
        if prev is not None and W.shape[1] != prev:
            raise ValueError(
                f"{name}[{l}] has shape {W.shape}: its {W.shape[1]} columns must equal the "
                f"{prev} rows of {name}[{l - 1}]"
            )
        _check_finite(W, f"{name}[{l}]")
        prev = W.shape[0]
        wt.append(np.ascontiguousarray(W, dtype=dtype).T)
    return _Network(tuple(wt), acts, dtype)


def _infer_dtype(X: np.ndarray, weights) -> np.dtype:
    dts = [X.dtype] + [np.asarray(W).dtype for W in weights]
    if all(dt == np.float32 for dt in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def default_chunk(max_width: int, n: int | None = None) -> int:
    """Default rows per chunk: about ``CHUNK_ELEMENTS`` elements per buffer row block."""
    c = max(_MIN_CHUNK, CHUNK_ELEMENTS // max(1, int(max_width)))
    return c if n is None else max(1, min(c, int(n)))


class _Buffers:
    """Two ping-pong buffers of shape (chunk, widest hidden layer) for the forward pass."""

    def __init__(self, net: _Network, rows: int):
        hidden = [w.shape[1] for w in net.weights_t[:-1]]
        width = max(hidden) if hidden else 0
        self.a = np.empty(rows * width, dtype=net.dtype)
        self.b = np.empty(rows * width, dtype=net.dtype) if len(hidden) > 1 else None

    def get(self, which: int, rows: int, width: int) -> np.ndarray:
        buf = self.a if which == 0 else self.b
        return buf[: rows * width].reshape(rows, width)


def _forward(net: _Network, H: np.ndarray, out: np.ndarray, bufs: _Buffers) -> np.ndarray:
    """Write sigma_L(... sigma_1(H W_1^T) ... W_L^T) into ``out`` (C-contiguous, net.dtype)."""
    rows = H.shape[0]
    L = len(net.weights_t)
    for l, (WT, act) in enumerate(zip(net.weights_t, net.activations)):
        target = out if l == L - 1 else bufs.get(l % 2, rows, WT.shape[1])
        np.matmul(H, WT, out=target)
        functions.apply(act, target, out=target)
        H = target
    return out


def _check_X(X, d: int | None, name: str = "X") -> np.ndarray:
    X = _real_matrix(X, name)
    if d is not None and X.shape[1] != d:
        raise ValueError(
            f"{name} must have {d} columns (the input dimension of weights[0]), got shape {X.shape}"
        )
    return X


def _check_chunk(chunk, net: _Network, n: int) -> int:
    if chunk is None:
        return default_chunk(net.max_width, n)
    return min(pos_int(chunk, "chunk"), n)


def _rows(X: np.ndarray, i: int, j: int, dtype: np.dtype, name: str) -> np.ndarray:
    H = np.ascontiguousarray(X[i:j], dtype=dtype)
    if not np.all(np.isfinite(H)):
        raise ValueError(f"{name} contains NaN or inf (rows {i}..{j - 1})")
    return H


def _setup(X, weights, activations, dtype, chunk):
    """Validated (X, dtype, network, n, chunk) shared by :func:`feature_map` and :func:`iter_features`."""
    X = _real_matrix(X, "X")
    dt = _infer_dtype(X, weights) if dtype is None else float_dtype(dtype)
    net = _prepare_network(weights, activations, dt)
    X = _check_X(X, net.d)
    n = X.shape[0]
    return X, dt, net, n, _check_chunk(chunk, net, n)


def feature_map(X, weights, activations, *, dtype=None, chunk=None, out=None) -> np.ndarray:
    """Deep random features F = sigma_L(... sigma_1(X W_1^T) ... W_L^T), shape (n, p_L).

    Parameters
    ----------
    X : (n, d) array, rows are samples.
    weights : sequence of L >= 1 matrices, W_l of shape (p_l, p_{l-1}), p_0 = d, used as
        given (no scaling is added).
    activations : one activation per layer (a sequence of L names such as "tanh", or
        ``asymptotics.functions.Activation`` objects), or a single one for all layers.
    dtype : float32 or float64 compute dtype; default float32 if X and every weight are
        float32, else float64. Inputs are cast chunk by chunk, weights once.
    chunk : rows per block (default: about 2M elements per buffer, see
        :func:`default_chunk`). Memory beyond ``out``: two buffers of chunk x (widest
        hidden layer) plus one chunk of X in ``dtype``.
    out : optional (n, p_L) C-contiguous array of ``dtype`` to write into.

    Returns
    -------
    F : (n, p_L) array of ``dtype`` (``out`` if given).

    Notes
    -----
    Each chunk costs one GEMM per layer plus an in-place fused activation
    (:func:`asymptotics.functions.apply`). Rows are computed independently, so the result
    does not depend on ``chunk`` except through BLAS rounding: OpenBLAS gives bitwise
    equal rows for large blocks, but for small ones (its small-matrix kernels) rows can
    differ in the last bits (~1e-14 for O(1) features in float64).
    Raises ``ValueError`` naming the argument for shape mismatches, NaN/inf, a wrong
    number of activations, ``chunk <= 0`` or a bad ``out``.
    """
    X, dt, net, n, c = _setup(X, weights, activations, dtype, chunk)
    if out is None:
        out = np.empty((n, net.p), dtype=dt)
    else:
        if not isinstance(out, np.ndarray):
            raise ValueError("out must be a numpy array")
        if out.shape != (n, net.p):
            raise ValueError(f"out must have shape ({n}, {net.p}), got {out.shape}")
        if out.dtype != dt:
            raise ValueError(f"out must have dtype {dt}, got {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be a writeable C-contiguous array")
    bufs = _Buffers(net, c)
    for i in range(0, n, c):
        j = min(i + c, n)
        _forward(net, _rows(X, i, j, dt, "X"), out[i:j], bufs)
    return out


def iter_features(X, weights, activations, *, dtype=None, chunk=None) -> Iterator[np.ndarray]:
    """Yield the rows of :func:`feature_map` ``(X, weights, activations)`` chunk by chunk.

    Each yielded array is a fresh (m, p_L) array (m = ``chunk`` except for the last), in
    row order; concatenated they equal ``feature_map`` with the same ``chunk``. Arguments
    are validated when the generator is created (before the first chunk is requested).
    """
    X, dt, net, n, c = _setup(X, weights, activations, dtype, chunk)

    def gen():
        bufs = _Buffers(net, c)
        for i in range(0, n, c):
            j = min(i + c, n)
            yield _forward(net, _rows(X, i, j, dt, "X"), np.empty((j - i, net.p), dt), bufs)

    return gen()


# --------------------------------------------------------------------------- teachers
@dataclass(frozen=True)
class Teacher:
    """Target y = theta^T psi(x) / sqrt(k) + noise * eps, eps ~ N(0, 1).

    psi(x) = sigma*_L(W*_L ... sigma*_1(W*_1 x)) with ``weights`` (same conventions as the
    student), or psi(x) = x (a linear teacher, k = d) when ``weights`` is empty.
    Population moments: b = E[phi y] = Phi theta / sqrt(k), E[y^2] =
    theta^T Psi theta / k + noise^2.

    Attributes
    ----------
    theta : (k,) readout, k = the teacher's output width (d for a linear teacher).
    weights : tuple of matrices (may be empty).
    activations : one per layer (or a single one for all), as for :func:`feature_map`.
    noise : standard deviation sigma >= 0 of the label noise.
    """

    theta: np.ndarray
    weights: tuple = ()
    activations: tuple | str = ()
    noise: float = 0.0

    def __post_init__(self):
        th = np.asarray(self.theta, dtype=np.float64)
        if th.ndim != 1 or th.shape[0] == 0:
            raise ValueError(f"theta must be a non-empty 1-D array, got shape {th.shape}")
        _check_finite(th, "theta")
        try:
            noise = float(self.noise)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"noise must be a real number, got {self.noise!r}") from exc
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be finite and >= 0, got {self.noise!r}")
        ws = tuple(self.weights)
        if ws:
            net = _prepare_network(ws, self.activations, np.dtype(np.float64),
                                   "teacher weights", "teacher activations")
            if net.p != th.shape[0]:
                raise ValueError(
                    f"theta must have length k = {net.p} (rows of the last teacher weight), "
                    f"got {th.shape[0]}"
                )
        object.__setattr__(self, "theta", th)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "noise", noise)

    @property
    def k(self) -> int:
        return int(self.theta.shape[0])

    @property
    def is_linear(self) -> bool:
        return len(self.weights) == 0


def random_teacher(
    widths: Sequence[int], activations, rng: np.random.Generator, *, noise: float = 0.0,
    covariances=None,
) -> Teacher:
    """A deep random teacher: weights from :func:`random_weights` (widths p*_0 = d, ...,
    p*_L = k), then theta ~ N(0, I_k), so theta^T psi / sqrt(k) has variance Tr(Psi)/k
    on average. ``widths = [d]`` gives the linear teacher psi(x) = x."""
    _check_rng(rng)
    try:
        ws = list(widths)
    except TypeError as exc:
        raise ValueError("widths must be a sequence of positive integers") from exc
    if len(ws) == 1:
        k = pos_int(ws[0], "widths[0]")
        return Teacher(rng.standard_normal(k), (), (), noise)
    weights = random_weights(ws, rng, covariances)
    theta = rng.standard_normal(weights[-1].shape[0])
    return Teacher(theta, tuple(weights), activations, noise)


# --------------------------------------------------------------------------- sample streams
@dataclass(frozen=True)
class SampleChunk:
    """Rows ``start .. start + len - 1`` of a sample stream.

    X : (m, d) inputs; phi : (m, p) student features; psi : (m, k) teacher features (None
    without a teacher); y : (m,) labels (None without a teacher). All of the stream's dtype.
    """

    start: int
    X: np.ndarray
    phi: np.ndarray
    psi: np.ndarray | None = None
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])


def _root_seed(rng) -> np.random.SeedSequence:
    """The root SeedSequence of a sample stream: a seed as given, or a child of a generator."""
    if isinstance(rng, np.random.Generator):
        return rng.spawn(1)[0].bit_generator.seed_seq
    try:
        return child_seed(rng)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"rng must be a numpy.random.Generator or a seed, got {type(rng).__name__}") from exc


class SampleStream:
    """Deterministic stream of samples (x, phi(x), psi(x), y) from one root seed.

    Block b of ``SAMPLE_BLOCK`` rows takes its inputs x ~ N(0, Sigma) from
    ``stream(root, "inputs", b)`` and its label noise eps ~ N(0, 1) from
    ``stream(root, "noise", b)`` (:mod:`simulations.rng`), always a whole block, in float64.
    Hence row i of the stream depends only on (root, i): not on the sizes passed to
    :meth:`take`, nor on the dtype (float32 streams are the float64 samples rounded, features
    then computed in float32).

    Parameters
    ----------
    weights, activations : the student network (see :func:`feature_map`).
    rng : the root: a seed (int, sequence of ints or SeedSequence, e.g. ``child_seed(task_seed,
        "train")``), or a numpy.random.Generator, from which one child seed is spawned
        (``rng.spawn``; no number is drawn from it, and two streams built from one generator
        are independent).
    teacher : optional :class:`Teacher`; without one, psi and y are None.
    input_covariance : optional (d, d) PSD covariance of x (identity by default).
    dtype : float64 (default) or float32, the dtype of every returned array.
    chunk : rows per forward-pass chunk inside :meth:`take` (default: see
        :func:`default_chunk`).
    """

    def __init__(self, weights, activations, rng: np.random.Generator | SeedLike, *, teacher=None,
                 input_covariance=None, dtype=np.float64, chunk=None):
        self._seed = _root_seed(rng)
        self.dtype = float_dtype(dtype)
        self._net = _prepare_network(weights, activations, self.dtype)
        d = self._net.d
        if teacher is not None and not isinstance(teacher, Teacher):
            raise TypeError(f"teacher must be a Teacher or None, got {type(teacher).__name__}")
        self.teacher = teacher
        self._tnet = None
        if teacher is not None:
            if teacher.is_linear:
                if teacher.k != d:
                    raise ValueError(
                        f"a linear teacher needs theta of length d = {d}, got {teacher.k}"
                    )
            else:
                self._tnet = _prepare_network(teacher.weights, teacher.activations, self.dtype,
                                              "teacher weights", "teacher activations")
                if self._tnet.d != d:
                    raise ValueError(
                        f"teacher weights[0] must have d = {d} columns (the student's input "
                        f"dimension), got {self._tnet.d}"
                    )
            self._theta = (teacher.theta / np.sqrt(teacher.k)).astype(self.dtype)
        self._root = None
        if input_covariance is not None:
            self._root = psd_sqrt(input_covariance, "input_covariance")
            if self._root.shape[0] != d:
                raise ValueError(f"input_covariance must have shape ({d}, {d}), got {self._root.shape}")
        widest = max(self._net.max_width, self._tnet.max_width if self._tnet else 0)
        self.chunk = default_chunk(widest) if chunk is None else pos_int(chunk, "chunk")
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.position = 0

    @property
    def d(self) -> int:
        return self._net.d

    @property
    def p(self) -> int:
        return self._net.p

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        blk = self._cache.get(b)
        if blk is None:
            Z = stream(self._seed, "inputs", b).standard_normal((SAMPLE_BLOCK, self.d))
            if self._root is not None:
                Z = Z @ self._root
            eps = stream(self._seed, "noise", b).standard_normal(SAMPLE_BLOCK)
            blk = (Z, eps)
            self._cache = {b: blk}  # keep only the current block
        return blk

    def _raw_rows(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        X = np.empty((j - i, self.d), dtype=self.dtype)
        eps = np.empty(j - i, dtype=np.float64)
        r = i
        while r < j:
            b, off = divmod(r, SAMPLE_BLOCK)
            m = min(SAMPLE_BLOCK - off, j - r)
            Z, e = self._block(b)
            X[r - i: r - i + m] = Z[off: off + m]
            eps[r - i: r - i + m] = e[off: off + m]
            r += m
        return X, eps

    def take(self, m: int) -> SampleChunk:
        """The next ``m`` rows of the stream (advances :attr:`position` by m)."""
        m = pos_int(m, "m")
        i = self.position
        X, eps = self._raw_rows(i, i + m)
        c = min(self.chunk, m)
        phi = np.empty((m, self.p), dtype=self.dtype)
        bufs = _Buffers(self._net, c)
        for a in range(0, m, c):
            _forward(self._net, X[a: a + c], phi[a: a + c], bufs)
        psi = y = None
        if self.teacher is not None:
            if self._tnet is None:
                psi = X.copy()
            else:
                psi = np.empty((m, self._tnet.p), dtype=self.dtype)
                tb = _Buffers(self._tnet, c)
                for a in range(0, m, c):
                    _forward(self._tnet, X[a: a + c], psi[a: a + c], tb)
            y = psi @ self._theta
            if self.teacher.noise:
                y += (self.teacher.noise * eps).astype(self.dtype)
        self.position = i + m
        return SampleChunk(i, X, phi, psi, y)

    __call__ = take


def iter_samples(n: int, weights, activations, rng: np.random.Generator, *, teacher=None,
                 input_covariance=None, dtype=np.float64, chunk=None) -> Iterator[SampleChunk]:
    """Yield n samples of a :class:`SampleStream` in chunks of ``chunk`` rows.

    The rows (concatenated) do not depend on ``chunk`` (up to BLAS rounding of the
    features); arguments are validated and the stream's root seed taken from ``rng``
    at the call, before the first chunk is requested.
    """
    n = pos_int(n, "n")
    samples = SampleStream(weights, activations, rng, teacher=teacher,
                          input_covariance=input_covariance, dtype=dtype)
    c = samples.chunk if chunk is None else pos_int(chunk, "chunk")
    samples.chunk = c

    def gen():
        done = 0
        while done < n:
            m = min(c, n - done)
            yield samples.take(m)
            done += m

    return gen()


def draw_samples(n: int, weights, activations, rng: np.random.Generator, *, teacher=None,
                 input_covariance=None, dtype=np.float64, chunk=None) -> SampleChunk:
    """All n samples at once (the first n rows of the :class:`SampleStream`)."""
    n = pos_int(n, "n")
    samples = SampleStream(weights, activations, rng, teacher=teacher,
                          input_covariance=input_covariance, dtype=dtype, chunk=chunk)
    return samples.take(n)
