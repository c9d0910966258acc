r"""Theory of two-layer networks after giant gradient steps (Dandi et al., JMLR 2024).

The equations are collected in ``docs/theory/giant_step.md``. Conventions: inputs z ~ N(0, I_d), a multi-index target y = g(W* z) with orthonormal rows of W* (k×d), so that
h := W* z ~ N(0, I_k); probabilists' Hermite polynomials He_k.

What this module computes
-------------------------
:class:`MultiIndexTarget` — the Hermite analysis of g (a sympy expression in ``h1 … hk``):

* ``mean()`` = E y, ``second_moment()`` = E y², ``variance()`` = Var y = E y² − (E y)²
  (for centred targets Var y = E y²);
* ``first_order()`` = C1 = E[y h] (k-vector), ``second_order()`` = C2 = E[y (hhᵀ − I)],
  ``hermite_coefficient(alpha)`` = E[y He_α(h)] with He_α(h) = Π_i He_{α_i}(h_i);
* ``conditional_variance(U)`` = Var E[y | U h];
* ``plateau_error(U)``: the best error of a readout that represents any function of the
  learned coordinates s = U h plus a linear function of z,

      e(U) = Var y − Var E[y | s] − ‖P_U^⊥ C1‖²,     P_U^⊥ = I − UᵀU,

  and for ``U=None`` (only the linear part: "linear kernel") e = Var y − ‖C1‖². (Derivation: the
  class {f(s) + cᵀt} with t = V h the complementary coordinates is an orthogonal sum, because t
  is independent of s and centred; the projection of y on it is E[y|s] + E[y t]ᵀ t.)
* ``staircase(steps)``: the leap-1 rule for fresh batches of size n = Θ(d), η = Θ(p).
  Starting from U_0 = {0}, a unit vector v ⊥ U_t is learned at step t+1 iff
  E[g(h) (v·h) q(U_t h)] ≠ 0 for some function q. The span of all such couplings is the range
  of the PSD matrix

      M_t = E_s[ m(s) m(s)ᵀ ],   m(s) = E[ g(h) P_{U_t}^⊥ h | U_t h = s ],

  so U_{t+1} = U_t ⊕ range(M_t). For t = 0, M_0 = C1 C1ᵀ and U_1 = span(v*) (v* ∝ C1) — one
  direction, and nothing if C1 = 0. Eigenvalues of M_t are at most E y² (Cauchy–Schwarz); a
  direction counts as learned when its eigenvalue exceeds ``tol · E y²``.

:func:`one_step_cosine` — the one-step cosine of a first-layer row with span(W*) (with the E[y]·μ2
correction, see there).

How numbers are obtained
------------------------
Every expectation is reduced to Gaussian expectations of *separable* terms: the expression
(after rotating h to coordinates (s, t) adapted to the subspace, when one is given) is expanded
into a sum of products of functions of one variable each. Polynomial factors use the exact
moments E x^{2j} = (2j−1)!! (sympy rationals, so polynomial targets give exact numbers, exact
also in U when U is a sympy matrix); other factors use :func:`asymptotics.gaussian.expectation`
(closed forms for erf/relu/sign, else quadrature to ~1e-12), after registering the factor as an
activation (names beginning ``_giant_step/``). A term that does not separate (e.g.
erf((h1+h2)/√2) after rotation, or tanh(h1*h2)) sends the whole quantity to nested tensor
Gauss–Hermite quadrature with node counts doubled (4, 8, …, at most 256 per dimension and
4e6 points) until two rules agree to 1e-11 relative to E y²;
this is fast and accurate for smooth g, but converges only algebraically for kinks (relu, sign)
in rotated coordinates — then a :class:`RuntimeWarning` reports the achieved agreement.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from functools import lru_cache

import numpy as np
import sympy
from numpy.polynomial.hermite_e import hermegauss

from . import functions, gaussian
from .functions import z
from .validation import choice

__all__ = ["MultiIndexTarget", "one_step_cosine", "activation_constants"]

_REL_TOL = 1e-11          # agreement of successive Gauss-Hermite rules (relative to E y²)
_MAX_NODES = 4_000_000    # tensor quadrature: at most this many points per rule
_MAX_GH = 256             # numpy's hermegauss overflows beyond a few hundred nodes


def _h(i: int) -> sympy.Symbol:
    return sympy.Symbol(f"h{i}", real=True)


def _x(i: int) -> sympy.Symbol:
    return sympy.Symbol(f"_x{i}", real=True)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
def _parse_target(expr, k):
    """(expression in h1..hk, k) by the one parser :func:`asymptotics.functions.multi_index_target`."""
    if isinstance(expr, MultiIndexTarget):
        expr = expr.expr
    return functions.multi_index_target(expr, k, "expr", constant_k=None)


# --------------------------------------------------------------------------------------------
# Separable Gaussian expectations (exact for polynomial factors)
# --------------------------------------------------------------------------------------------
class _NotSeparable(Exception):
    """A term mixes a variable being integrated with another variable."""


def _moment(p: int):
    return sympy.S.Zero if p % 2 else sympy.factorial2(p - 1)


def _activation_of(f: sympy.Expr) -> functions.Activation:
    """f(z) as a (reserved-name) registered activation, for asymptotics.gaussian."""
    name = f"_giant_step/{sympy.srepr(f)}"
    try:
        act = functions.get(name)
        if act.expr == f:
            return act
    except ValueError:
        pass
    return functions.register(name, f, replace=True)


@lru_cache(maxsize=4096)
def _univariate_mean(f: sympy.Expr, x: sympy.Symbol):
    """E f(x), x ~ N(0, 1): exact (sympy) for polynomials, else a 15-digit sympy Float."""
    if f.is_polynomial(x):
        return sum((c * _moment(p) for (p,), c in sympy.Poly(f, x).terms()), sympy.S.Zero)
    value = gaussian.expectation(_activation_of(f.xreplace({x: z})), 1.0)
    if not math.isfinite(value):
        raise ValueError(f"E[{f}] is not finite")
    return sympy.Float(value, 17)


def _partial_expectation(expr: sympy.Expr, over) -> sympy.Expr:
    """E over the independent standard Gaussians ``over`` of expr (the other symbols are kept).
    Raises _NotSeparable if a term couples an integrated variable with another one."""
    over = frozenset(over)
    out = []
    for term in sympy.Add.make_args(sympy.expand(expr)):
        keep, by_var = [], defaultdict(list)
        for f in sympy.Mul.make_args(term):
            syms = f.free_symbols
            inside = syms & over
            if not inside:
                keep.append(f)
            elif len(syms) == 1:
                by_var[next(iter(inside))].append(f)
            else:
                raise _NotSeparable(str(f))
        value = sympy.Mul(*keep)
        for x, fs in by_var.items():
            value *= _univariate_mean(sympy.Mul(*fs), x)
        out.append(value)
    return sympy.Add(*out)


# --------------------------------------------------------------------------------------------
# Nested tensor Gauss-Hermite quadrature (fallback for non-separable terms)
# --------------------------------------------------------------------------------------------
def _gh_tensor(dim: int, n: int):
    if dim == 0:
        return np.zeros((1, 0)), np.ones(1)
    u, w = hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    grids = np.meshgrid(*([u] * dim), indexing="ij")
    weights = np.meshgrid(*([w] * dim), indexing="ij")
    return (np.stack([g.ravel() for g in grids], axis=1),
            np.prod(np.stack([g.ravel() for g in weights], axis=1), axis=1))


def _nested_stats(gfun, Q: np.ndarray, r: int, n: int) -> np.ndarray:
    """With x = (s, t) = Q h (s: first r coordinates): the vector
    [E g, E g², E[g x] (k), E_s (E_t g)², vec E_s m mᵀ ((k−r)²)], m(s) = E_t[g t]."""
    k = Q.shape[0]
    S, ws = _gh_tensor(r, n)
    T, wt = _gh_tensor(k - r, n)
    rows = max(1, _MAX_NODES // max(1, T.shape[0]))
    acc = np.zeros(2 + k + 1 + (k - r) ** 2)
    for start in range(0, S.shape[0], rows):
        Sb, wb = S[start:start + rows], ws[start:start + rows]
        X = np.concatenate([np.broadcast_to(Sb[:, None, :], (Sb.shape[0], T.shape[0], r)),
                            np.broadcast_to(T[None, :, :], (Sb.shape[0], T.shape[0], k - r))],
                           axis=2)
        H = X @ Q
        G = np.broadcast_to(np.asarray(gfun(*np.moveaxis(H, -1, 0)), dtype=float), H.shape[:2])
        c = G @ wt
        c2 = (G * G) @ wt
        m = (G * wt) @ T                                     # (rows, k−r)
        gx_s = np.concatenate([c[:, None] * Sb, m], axis=1)  # E_t[g x] at each s
        acc[0] += wb @ c
        acc[1] += wb @ c2
        acc[2:2 + k] += wb @ gx_s
        acc[2 + k] += wb @ (c * c)
        acc[3 + k:] += (np.einsum("a,ai,aj->ij", wb, m, m)).ravel()
    return acc


def _quadrature_stats(expr, symbols, Q: np.ndarray, r: int) -> np.ndarray:
    k = Q.shape[0]
    gfun = sympy.lambdify(symbols, expr, modules=["scipy", "numpy"])
    prev, n, diff, scale = None, 4, np.inf, 1.0
    while n <= _MAX_GH and (n ** k <= _MAX_NODES or prev is None):
        with np.errstate(over="ignore", invalid="ignore"):
            est = _nested_stats(gfun, Q, r, n)
        if not np.all(np.isfinite(est)):
            raise ValueError(f"expr: Gaussian moments of {expr} are not finite")
        if prev is not None:
            scale = max(abs(est[1]), 1e-300)
            diff = np.max(np.abs(est - prev))
            if diff <= _REL_TOL * scale:
                return est
        prev, n = est, 2 * n
    warnings.warn(f"tensor Gauss-Hermite quadrature for {expr} agrees only to "
                  f"{diff / scale:.1e} (relative to E y²) between the last two rules "
                  f"(up to {n // 2} nodes per dimension); non-smooth or fast-varying "
                  "functions in rotated coordinates converge slowly", RuntimeWarning, stacklevel=4)
    return est


# --------------------------------------------------------------------------------------------
# Subspaces
# --------------------------------------------------------------------------------------------
def _clean(a: np.ndarray) -> np.ndarray:
    """Entries within 1e-13 of 0 or ±1 made exact (keeps coordinate-aligned frames separable)."""
    a = np.array(a, dtype=float)
    for v in (0.0, 1.0, -1.0):
        a[np.abs(a - v) <= 1e-13] = v
    return a


def _to_sympy_matrix(Q: np.ndarray) -> sympy.Matrix:
    return sympy.Matrix(Q.shape[0], Q.shape[1],
                        lambda i, j: sympy.Integer(int(Q[i, j])) if Q[i, j] == int(Q[i, j])
                        else sympy.Float(float(Q[i, j]), 17))


class _Frame:
    """An orthonormal frame Q (k×k, rows): the first r rows span U, the others complete it
    (Gram-Schmidt of e_1, e_2, ... against U, so a coordinate subspace gives coordinate axes).
    ``sym`` is the sympy matrix (exact if U was), ``num`` the float one."""

    def __init__(self, U, k: int, exact: bool):
        if exact:
            rows = [U.row(i) for i in range(U.rows)]
            for i in range(k):
                v = sympy.Matrix.zeros(1, k)
                v[i] = 1
                for q in rows:
                    v = v - (v.dot(q)) * q
                v = v.applyfunc(sympy.simplify)
                norm2 = sympy.simplify(v.dot(v))
                if norm2 != 0 and len(rows) < k:
                    rows.append((v / sympy.sqrt(norm2)).applyfunc(sympy.simplify))
            self.sym = sympy.Matrix.vstack(*rows) if rows else sympy.Matrix.zeros(0, k)
            self.num = np.array(self.sym.evalf(20).tolist(), dtype=float).reshape(k, k)
        else:
            rows = list(U)
            for i in range(k):
                if len(rows) == k:
                    break
                v = np.zeros(k)
                v[i] = 1.0
                for _ in range(2):  # twice is enough (Kahan)
                    for q in rows:
                        v = v - (v @ q) * q
                nv = np.linalg.norm(v)
                if nv > 1e-6:
                    rows.append(v / nv)
            self.num = _clean(np.array(rows).reshape(k, k))
            self.sym = _to_sympy_matrix(self.num)
        self.r = U.rows if exact else len(U)


def _check_subspace(U, k: int, what: str = "U"):
    """(U as sympy Matrix or float array (r, k), exact flag); ValueError naming ``what``."""
    if isinstance(U, sympy.MatrixBase):
        M = sympy.Matrix(U)
        if M.cols != k or M.rows > k:
            raise ValueError(f"{what} must have shape (r, {k}) with r <= {k} (rows in "
                             f"h-coordinates), got {M.shape}")
        if M.free_symbols:
            raise ValueError(f"{what} must be numeric, got symbols {M.free_symbols}")
        gram = (M * M.T - sympy.eye(M.rows)).applyfunc(sympy.simplify)
        if any(abs(complex(e.evalf(30))) > 1e-20 for e in gram):
            raise ValueError(f"{what} must have orthonormal rows (U Uᵀ = I)")
        if M.has(sympy.Float):
            return np.array(M.evalf(17).tolist(), dtype=float).reshape(M.shape), False
        return M, True
    try:
        a = np.array(U, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of numbers, got {U!r}") from None
    if a.ndim == 1 and a.size == k:
        a = a[None, :]
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, k)
    if a.ndim != 2 or a.shape[1] != k or a.shape[0] > k:
        raise ValueError(f"{what} must have shape (r, {k}) with r <= {k} (rows in "
                         f"h-coordinates), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinite entries")
    if a.shape[0] and not np.allclose(a @ a.T, np.eye(a.shape[0]), atol=1e-8):
        raise ValueError(f"{what} must have orthonormal rows (U Uᵀ = I); "
                         f"max |U Uᵀ − I| = {np.max(np.abs(a @ a.T - np.eye(a.shape[0]))):.2e}")
    return a, False


def _as_output(value, exact: bool):
    if exact:
        return sympy.nsimplify(value) if not value.has(sympy.Float) else value
    return float(value)


# --------------------------------------------------------------------------------------------
# Multi-index targets
# --------------------------------------------------------------------------------------------
class MultiIndexTarget:
    """A multi-index target y = g(h), h = W* z ~ N(0, I_k).

    Parameters
    ----------
    expr : sympy expression or string in the variables ``h1 … hk``, e.g. ``"erf(h1) + h1*h2"``,
        ``"(h1 + h1**2 + h2 - h2**2)/2"``, ``"relu(h1)"``, ``"hermite_prob(3, h2)"``. Sympy
        functions and the registered activations of :mod:`asymptotics.functions` (by name:
        ``relu``, ``tanh``, ``he3``, …) are allowed, and the names of
        :data:`asymptotics.functions.TARGETS` (``"T1"``, ``"T2"``, ``"T3"``). A string is read by
        the whitelist parser :func:`asymptotics.functions.safe_expression` (numbers, ``h1 … hk``,
        ``+ - * / **``, calls of :data:`~asymptotics.functions.SAFE_FUNCTIONS` and of registered
        activations; never evaluated as Python) within its limits: at most
        :data:`~asymptotics.functions.MAX_EXPRESSION_LENGTH` characters, indices and k at most
        :data:`~asymptotics.functions.MAX_TARGET_DIRECTIONS`, exponents at most
        :data:`~asymptotics.functions.MAX_EXPONENT`, Hermite orders at most
        :data:`~asymptotics.functions.MAX_HERMITE_ORDER`; beyond them, or for an infinite
        value (``"1/(h1 - h1)"``), a ValueError naming ``expr``.
    k : number of directions (default: the largest index in ``expr``); a larger k embeds the
        target in more directions (on which it does not depend).

    Methods returning numbers take ``exact=False``; ``exact=True`` returns the sympy number,
    exact (rational, radicals) whenever every expectation involved has a closed form and any
    subspace ``U`` was given exactly (a sympy matrix), else a sympy Float.

    Examples
    --------
    >>> T1 = MultiIndexTarget("(h1 + h2)/2 + (h1**2 + h2**2 - 2)/4 + (he4(h1) + he4(h2))/48")
    >>> T1.variance(exact=True), T1.plateau_error(exact=True)
    (37/48, 13/48)
    """

    def __init__(self, expr, k: int | None = None):
        self.expr, self.k = _parse_target(expr, k)
        self.symbols = tuple(_h(i) for i in range(1, self.k + 1))
        self._cache = {}

    def __repr__(self):
        return f"MultiIndexTarget({str(self.expr)!r}, k={self.k})"

    @property
    def is_polynomial(self) -> bool:
        return bool(self.expr.is_polynomial(*self.symbols))

    @property
    def numpy(self):
        """Vectorised g: ``target.numpy(H)`` for H of shape (..., k)."""
        f = sympy.lambdify(self.symbols, self.expr, modules=["scipy", "numpy"])

        def g(H):
            H = np.asarray(H, dtype=float)
            return np.broadcast_to(np.asarray(f(*np.moveaxis(H, -1, 0)), dtype=float),
                                   H.shape[:-1]).copy()
        return g

    # ---- expectations ---------------------------------------------------------------------
    def _expect(self, expr) -> sympy.Expr:
        """E expr(h), h ~ N(0, I_k) (separable path; _NotSeparable otherwise)."""
        return _partial_expectation(expr, self.symbols)

    def _stats(self, frame: _Frame | None):
        """Quadrature stats (see _nested_stats) in the frame (identity frame if None)."""
        Q = np.eye(self.k) if frame is None else frame.num
        r = 0 if frame is None else frame.r
        key = ("quad", Q.tobytes(), r)
        if key not in self._cache:
            self._cache[key] = _quadrature_stats(self.expr, self.symbols, Q, r)
        return self._cache[key]

    def _moments(self):
        """(E y, E y², C1 as a list) as sympy numbers."""
        if "moments" not in self._cache:
            try:
                mean = self._expect(self.expr)
                second = self._expect(self.expr ** 2)
                c1 = [self._expect(self.expr * h) for h in self.symbols]
            except _NotSeparable:
                st = self._stats(None)
                mean, second = sympy.Float(st[0], 17), sympy.Float(st[1], 17)
                c1 = [sympy.Float(v, 17) for v in st[2:2 + self.k]]
            self._cache["moments"] = (mean, second, c1)
        return self._cache["moments"]

    def mean(self, exact: bool = False):
        """E y."""
        return _as_output(self._moments()[0], exact)

    def second_moment(self, exact: bool = False):
        """E y² (the quantity in the noise term of the one-step cosine)."""
        return _as_output(self._moments()[1], exact)

    def variance(self, exact: bool = False):
        """Var y = E y² − (E y)² (equals E y² for centred y)."""
        mean, second, _ = self._moments()
        return _as_output(sympy.expand(second - mean ** 2), exact)

    def first_order(self, exact: bool = False):
        """C1 = E[y h] (k-vector; = the κ1/μ1 of each direction by Stein's lemma)."""
        c1 = self._moments()[2]
        if exact:
            return [_as_output(c, True) for c in c1]
        return np.array([float(c) for c in c1])

    def hermite_coefficient(self, alpha, exact: bool = False):
        """E[y He_α(h)], He_α(h) = Π_i He_{α_i}(h_i) (so y = Σ_α E[y He_α] He_α / α!)."""
        a = np.asarray(alpha)
        if (a.shape != (self.k,) or not np.issubdtype(a.dtype, np.integer)
                or np.any(a < 0)):
            raise ValueError(f"alpha must be {self.k} non-negative integers, got {alpha!r}")
        he = sympy.Mul(*[sympy.hermite_prob(int(n), h) for n, h in zip(a, self.symbols)])
        try:
            value = self._expect(self.expr * he)
        except _NotSeparable:
            f = sympy.lambdify(self.symbols, self.expr * he, modules=["scipy", "numpy"])
            value = sympy.Float(self._quadrature_mean(f), 17)
        return _as_output(value, exact)

    def _quadrature_mean(self, f):
        prev, n = None, 4
        while n <= _MAX_GH and (n ** self.k <= _MAX_NODES or prev is None):
            X, w = _gh_tensor(self.k, n)
            est = float(w @ np.broadcast_to(np.asarray(f(*X.T), dtype=float), w.shape))
            if prev is not None and abs(est - prev) <= _REL_TOL * max(1.0, abs(est)):
                return est
            prev, n = est, 2 * n
        warnings.warn(f"quadrature did not converge to {_REL_TOL:.0e}", RuntimeWarning,
                      stacklevel=3)
        return est

    def second_order(self, exact: bool = False):
        """C2 = E[y (hhᵀ − I_k)] (k×k)."""
        out = [[self.hermite_coefficient([int(i == a) + int(j == a) for a in range(self.k)],
                                         exact=exact)
                for j in range(self.k)] for i in range(self.k)]
        return out if exact else np.array(out, dtype=float)

    # ---- subspaces --------------------------------------------------------------------------
    def _frame(self, U) -> _Frame:
        U, exact = _check_subspace(U, self.k)
        return _Frame(U, self.k, exact)

    def _rotated(self, frame: _Frame):
        xs = tuple(_x(i) for i in range(1, self.k + 1))
        Q = frame.sym
        subs = {h: sum((Q[j, i] * xs[j] for j in range(self.k)), sympy.S.Zero)
                for i, h in enumerate(self.symbols)}
        return self.expr.xreplace(subs), xs[:frame.r], xs[frame.r:]

    def _conditional_second_moment(self, frame: _Frame):
        """E_s[(E[y | s])²] with s = U h."""
        key = ("cond", frame.num.tobytes(), frame.r, frame.sym.has(sympy.Float))
        if key not in self._cache:
            g, s, t = self._rotated(frame)
            try:
                c = _partial_expectation(g, t)
                value = _partial_expectation(c ** 2, s)
            except _NotSeparable:
                value = sympy.Float(self._stats(frame)[2 + self.k], 17)
            self._cache[key] = value
        return self._cache[key]

    def conditional_variance(self, U, exact: bool = False):
        """Var E[y | U h] for U with orthonormal rows (r×k, h-coordinates)."""
        frame = self._frame(U)
        mean = self._moments()[0]
        return _as_output(sympy.expand(self._conditional_second_moment(frame) - mean ** 2),
                          exact)

    def plateau_error(self, U=None, exact: bool = False):
        """Best error of a readout knowing the learned subspace (module docstring).

        e(U) = Var y − Var E[y | U h] − ‖(I − UᵀU) C1‖², U with orthonormal rows (r×k) in
        h-coordinates. ``U=None`` (or r = 0): the linear part only, e = Var y − ‖C1‖².
        """
        mean, second, c1 = self._moments()
        var = second - mean ** 2
        c1v = sympy.Matrix(c1)
        if U is None:
            value = var - (c1v.T * c1v)[0]
        else:
            frame = self._frame(U)
            if frame.r == 0:
                value = var - (c1v.T * c1v)[0]
            else:
                cond = self._conditional_second_moment(frame) - mean ** 2
                Ur = frame.sym[:frame.r, :]
                proj = Ur * c1v
                value = var - cond - ((c1v.T * c1v)[0] - (proj.T * proj)[0])
        value = sympy.simplify(sympy.expand(value)) if exact else sympy.expand(value)
        if not exact:
            value = float(value)
            scale = max(float(second), 1e-300)
            if -1e-9 * scale < value < 0:  # rounding of a zero plateau
                value = 0.0
            return value
        return _as_output(value, True)

    def coupling_matrix(self, U=None) -> np.ndarray:
        """M = E_s[m(s) m(s)ᵀ], m(s) = E[y P_U^⊥ h | U h = s] (k×k, h-coordinates; leap-1 rule).
        Its range is what the next step learns under the leap-1 rule (M = C1 C1ᵀ for U=None)."""
        if U is None:
            U = np.zeros((0, self.k))
        frame = self._frame(U)
        r, k = frame.r, self.k
        if r == k:
            return np.zeros((k, k))
        g, s, t = self._rotated(frame)
        try:
            m = [_partial_expectation(g * ti, t) for ti in t]
            Mt = np.array([[float(_partial_expectation(sympy.expand(mi * mj), s))
                            for mj in m] for mi in m])
        except _NotSeparable:
            Mt = self._stats(frame)[3 + k:].reshape(k - r, k - r)
        V = frame.num[r:]
        M = V.T @ Mt @ V
        return (M + M.T) / 2

    def staircase(self, steps: int, tol: float = 1e-10) -> list[np.ndarray]:
        """Orthonormal bases (rows, h-coordinates) of the subspaces U_1, …, U_steps learned
        after 1, …, steps giant steps with n = Θ(d), η = Θ(p) under the leap-1 rule:
        U_{t+1} = U_t ⊕ range(M_t), M_t = :meth:`coupling_matrix` (U_t); eigen-directions with
        eigenvalue ≤ ``tol`` · E y² count as not coupled. Raising ``tol`` treats weak couplings
        as absent (e.g. T3's 4/17·u·ū term has relative strength (4/17)²/E y² ≈ 0.011).
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise ValueError(f"tol must be in (0, 1), got {tol!r}")
        scale = float(self._moments()[1])
        B = np.zeros((0, self.k))
        out = []
        for _ in range(int(steps)):
            if B.shape[0] < self.k and scale > 0:
                M = self.coupling_matrix(B)
                lam, vec = np.linalg.eigh(M)
                new = vec[:, lam > tol * scale].T
                if new.shape[0]:
                    new = new - (new @ B.T) @ B
                    q, _ = np.linalg.qr(new.T)
                    new = q.T
                    # sign convention: the first entry above 1e-8 of each new direction is > 0
                    idx = np.argmax(np.abs(new) > 1e-8, axis=1)
                    new = new * np.sign(new[np.arange(new.shape[0]), idx])[:, None]
                    B = _clean(np.vstack([B, new]))
            out.append(B.copy())
        return out


# --------------------------------------------------------------------------------------------
# One giant step
# --------------------------------------------------------------------------------------------
def activation_constants(activation) -> dict:
    """μ0 = E σ(ξ), μ1 = E σ'(ξ) = E[ξσ(ξ)], μ2 = E[σ(ξ) He2(ξ)] (= E σ'' for smooth σ) and
    E σ'(ξ)², ξ ~ N(0, 1), from :mod:`asymptotics.gaussian` (derivative taken a.e.)."""
    act = functions.get(activation)
    c = gaussian.hermite_coefficients(act, 2, 1.0)
    dsq = act.derivative_expr ** 2
    e_dsq = (float(_univariate_mean(dsq, z)) if dsq.free_symbols else float(dsq))
    return {"mu0": float(c[0]), "mu1": float(c[1]), "mu2": 2.0 * float(c[2]),
            "E_dsigma2": e_dsq}


def _cosine_arguments(target, alpha, eta_tilde, a_init):
    """Checked (MultiIndexTarget, alpha array, eta_tilde array) of :func:`one_step_cosine`."""
    choice(a_init, "a_init", ("pm1", "ones"))
    if not isinstance(target, MultiIndexTarget):
        target = MultiIndexTarget(target)
    try:
        alpha_a = np.asarray(alpha, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number or an array of numbers, got {alpha!r}") from None
    try:
        eta_a = np.asarray(eta_tilde, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"eta_tilde must be a number or array, got {eta_tilde!r}") from None
    if np.any(np.isnan(alpha_a)) or np.any(alpha_a < 0):
        raise ValueError(f"alpha must be >= 0 (alpha = n/d), got {alpha!r}")
    if np.any(~np.isfinite(eta_a)) or np.any(eta_a < 0):
        raise ValueError(f"eta_tilde must be finite and >= 0 (η = η̃ p), got {eta_tilde!r}")
    return target, alpha_a, eta_a


def one_step_cosine(activation, target, alpha, eta_tilde, *, a_init: str = "pm1"):
    r"""Predicted cosine of a first-layer row with span(W*) after one giant step.

    Setting: rows of W0 of unit norm, one full-batch step on n = α d fresh samples, η = η̃ p,
    second layer a fixed at ±1/√p (``a_init="pm1"``, default), or +1/√p (``"ones"``, the
    companion paper's choice), proportional limit n, d, p → ∞. The row after the step is

        w¹ = w⁰ (1 + ε η̃ μ2 E[y]) + ε η̃ μ1 v* + noise,   ‖noise‖² = η̃² E[y²] E[σ'(ξ)²]/α,

    with ε = sign(a_j), v* = W*ᵀC1, μ1 = E σ'(ξ), μ2 = E[σ He2] (= E σ''), so

        cos = η̃ |μ1| ‖C1‖ / √((1 + ε η̃ μ2 E[y])² + η̃² (μ1²‖C1‖² + E[y²] E[σ'²]/α)),

    averaged over ε = ±1 for ``pm1``. For E[y]·μ2 = 0 this is the formula of the paper
    (arXiv:2305.18270; companion (c, r, γ) form of arXiv:2402.04980: cos = γ r / √(c + r²)). The w⁰-term comes from Stein's lemma
    along w: E[y σ'(w·z) z] = μ1 v* + μ2 E[y] w + O(1/√d); the paper's formula drops it by
    assuming a centred target. (Check: η̃ → ∞ with the term gives the T3 gradient-row cosine 0.5431 at
    α = 1, ReLU — simulation 0.542 — vs 0.5461 without it.)

    The O(√(k/d)) random initial overlap is absent (it vanishes in the limit). α = 0 gives 0,
    α = ∞ the noiseless limit. ``alpha`` and ``eta_tilde`` broadcast (arrays in, array out).
    ``target`` is a :class:`MultiIndexTarget` or what it accepts (a string goes through the
    whitelist parser :func:`asymptotics.functions.safe_expression`, never Python's eval).
    """
    target, alpha_a, eta_a = _cosine_arguments(target, alpha, eta_tilde, a_init)
    const = activation_constants(activation)
    mu1, mu2, e_dsq = const["mu1"], const["mu2"], const["E_dsigma2"]
    c1 = float(np.linalg.norm(target.first_order()))
    ey, ey2 = target.mean(), target.second_moment()
    alpha_a, eta_a = np.broadcast_arrays(alpha_a, eta_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = np.where(alpha_a > 0, ey2 * e_dsq / alpha_a, np.inf)
        signal = eta_a * abs(mu1) * c1
        signs = (1.0, -1.0) if a_init == "pm1" else (1.0,)
        cos = np.zeros(alpha_a.shape)
        for eps in signs:
            spread = np.where(eta_a > 0, eta_a ** 2 * noise, 0.0)
            denom = np.sqrt((1 + eps * eta_a * mu2 * ey) ** 2 + signal ** 2 + spread)
            term = np.where(np.isinf(noise) & (eta_a > 0), 0.0, signal / denom)
            term = np.where(signal == 0, 0.0, term)
            cos += term / len(signs)
    return float(cos) if cos.ndim == 0 else cos
