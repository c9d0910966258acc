"""Activations and target functions: one symbolic source, compiled to numpy and Numba.

Every function of one real variable that the project uses (activations of random features,
targets of teachers) is defined here once, as a sympy expression in the real symbol ``z``. From
that single definition this module builds

* ``Activation.numpy`` / ``.numpy_derivative`` -- vectorised numpy functions (float32 stays
  float32, float64 stays float64);
* ``Activation.scalar`` / ``.scalar_derivative`` -- Numba ``njit`` kernels float -> float, for
  use inside other jitted code (generated, cached and compiled on first access);
* :func:`apply` -- fused, parallel element-wise application for feature maps (the Numba loop,
  or numpy's SIMD code on cache-sized blocks for exp/tanh/log-type expressions, which Numba
  without Intel's SVML evaluates 5-20x slower; see :func:`engine`);

and :mod:`asymptotics.gaussian` derives the exact Gaussian moments and Hermite coefficients from
the same expression. A new activation is one call::

    >>> from asymptotics import functions
    >>> act = functions.register("my_act", "tanh(z) + z**3/10")
    >>> act(np.array([0.5]))                                 # doctest: +SKIP

Built-ins: ``linear, tanh, relu, erf, erf_scaled (= erf(z/sqrt 2)), sign, sigmoid, softplus,
cube, he1 .. he6`` (probabilists' Hermite polynomials, ``he2 = z**2 - 1``; ``hermite(k)`` or
``get("he{k}")`` adds any other order up to :data:`MAX_HERMITE_ORDER`).

Strings: every expression string of the project (activations here, multi-index targets of
:mod:`asymptotics.giant_step`, :mod:`asymptotics.spiked_rf` and :mod:`simulations.giant_step`)
goes through :func:`safe_expression`, a whitelist parser on Python's :mod:`ast` that never
evaluates Python; numbers, the variables, ``+ - * / **``, and calls of :data:`SAFE_FUNCTIONS`
(and registered activations, in targets) only, with documented limits on length, nesting,
exponents, Hermite orders and the number of target directions (``MAX_*`` constants).

Derivatives of non-smooth functions are taken almost everywhere: ``relu' = Heaviside(z)`` with
value 0 at 0, ``sign' = 0`` (the Dirac delta at the kink is dropped; Gaussian moments use
Stein's lemma E[N f(N)]/r instead of E f', so they stay right, see :mod:`asymptotics.gaussian`).

Code generation: each expression is common-subexpression-eliminated and printed with small
integer powers written as products (``z*z*z``: numpy's ``**`` calls ``pow``, which is slow) and
constants as float literals (so float32 input is not promoted by a float64 numpy scalar). An
activation may carry an equivalent *numeric* form used only for code generation (softplus uses
``max(z, 0) + log1p(exp(-|z|))``, which does not overflow); ``register`` checks that it agrees
with the symbolic form.

Kernel caching: Numba's ``cache=True`` needs a source file, which code built from sympy has
none of. So the Python source of each activation's kernels (value, derivative and the
parallel and serial loops of :func:`apply`) is written to ``<cache>/k_<sha256 of source>.py``
and imported from there; Numba then caches the compiled machine code in ``<cache>/__pycache__`` and
later processes load it instead of compiling. ``<cache>`` is ``$ASYMPTOTICS_CACHE/kernels`` if
that variable is set, else ``~/.cache/asymptotics/kernels``. A file is written once (atomically)
and never rewritten, so Numba's staleness check stays valid; if the folder is not writable the
source is executed in memory with ``cache=False`` (everything works, it just compiles again in
every process).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import numbers
import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable

import numba
import numpy as np
import scipy.special  # noqa: F401  (used by the generated numpy functions: scipy.special.erf)
import sympy
from sympy.codegen.cfunctions import log1p
from sympy.core.function import AppliedUndef
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.pycode import PythonCodePrinter

__all__ = ["z", "Activation", "register", "get", "names", "hermite", "apply", "engine",
           "kernel_folder", "multi_index_expression", "multi_index_target", "TARGETS",
           "safe_expression", "SAFE_FUNCTIONS", "SAFE_CONSTANTS", "MAX_EXPRESSION_LENGTH",
           "MAX_EXPRESSION_NODES", "MAX_EXPRESSION_DEPTH", "MAX_EXPONENT", "MAX_EXPRESSION_SIZE",
           "MAX_HERMITE_ORDER", "MAX_TARGET_DIRECTIONS"]

# Same choice as asymptotics._ridge_kernels: Numba's OpenMP layer keeps threads spinning after a
# parallel region and starves BLAS on small machines; the workqueue layer does not.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: The variable of every activation expression.
z = sympy.Symbol("z", real=True)

_MAX_PRODUCT_POWER = 8  # z**k with 2 <= |k| <= 8 is printed as a product


# --------------------------------------------------------------------------------------------
# Code printers
# --------------------------------------------------------------------------------------------
class _PowerAsProduct:
    """Printer mixin: small integer powers as products, numeric constants as float literals."""

    def _print_Float(self, e):
        return repr(float(e))

    def _print_NumberSymbol(self, e):
        return repr(float(e))

    _print_Exp1 = _print_Pi = _print_NumberSymbol

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        if e.is_number:
            return repr(float(e))
        if exp.is_Integer and 2 <= abs(int(exp)) <= _MAX_PRODUCT_POWER:
            b = self.parenthesize(base, 100)  # atom or parenthesised
            prod = "(" + "*".join([b] * abs(int(exp))) + ")"
            return prod if exp > 0 else f"(1.0/{prod})"
        return super()._print_Pow(e, rational=rational)


class _KernelPrinter(_PowerAsProduct, PythonCodePrinter):
    """Scalar code with ``math`` functions, compilable by Numba."""

    def _print_Rational(self, e):
        return repr(float(e))

    _print_Integer = _print_Rational

    def _print_Heaviside(self, e):
        a, h0 = self._print(e.args[0]), (e.args[1] if len(e.args) > 1 else sympy.S.Half)
        return f"(1.0 if {a} > 0.0 else (0.0 if {a} < 0.0 else {float(h0)!r}))"

    def _print_sign(self, e):
        a = self._print(e.args[0])
        return f"(1.0 if {a} > 0.0 else (-1.0 if {a} < 0.0 else 0.0))"

    def _minmax(self, e, fn):
        out = self._print(e.args[0])
        for arg in e.args[1:]:
            out = f"{fn}({out}, {self._print(arg)})"
        return out

    def _print_Max(self, e):
        return self._minmax(e, "max")

    def _print_Min(self, e):
        return self._minmax(e, "min")


class _NumpyPrinter(_PowerAsProduct, SciPyPrinter):
    """Vectorised code with numpy/scipy.special; python int/float literals keep float32 as is."""

    def _print_Heaviside(self, e):
        h0 = e.args[1] if len(e.args) > 1 else sympy.S.Half
        return f"numpy.heaviside({self._print(e.args[0])}, {float(h0)!r})"

    def _minmax(self, e, fn):
        out = self._print(e.args[0])
        for arg in e.args[1:]:
            out = f"numpy.{fn}({out}, {self._print(arg)})"
        return out

    def _print_Max(self, e):
        return self._minmax(e, "maximum")

    def _print_Min(self, e):
        return self._minmax(e, "minimum")


def _function_body(expr: sympy.Expr, printer) -> str:
    """Body of ``def f(z):`` computing expr, after common-subexpression elimination."""
    subs, (reduced,) = sympy.cse(expr, symbols=sympy.numbered_symbols("_t"))
    lines = [f"    {printer.doprint(s)} = {printer.doprint(e)}" for s, e in subs]
    return "\n".join(lines + [f"    return {printer.doprint(reduced)}"])


def _numpy_function(expr: sympy.Expr) -> Callable:
    """A vectorised numpy function of expr that keeps float32/float64 and the input's shape."""
    src = "def f(z):\n" + _function_body(expr, _NumpyPrinter({"strict": True}))
    namespace = {"numpy": np, "scipy": scipy}
    exec(compile(src, f"<numpy: {expr}>", "exec"), namespace)
    raw = namespace["f"]

    def f(x):
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        x = x.astype(dtype, copy=False)
        with np.errstate(over="ignore", under="ignore"):
            y = np.asarray(raw(x), dtype=dtype)
        if y.shape != x.shape:  # constant expression
            y = np.full(x.shape, y, dtype=dtype)
        return y if y.ndim else y[()]

    f.__doc__ = f"numpy evaluation of {expr}"
    f.source, f.raw = src, raw  # raw: no dtype/shape handling (used blockwise by apply)
    return f


# --------------------------------------------------------------------------------------------
# Numba kernels, generated as a module file so that cache=True works
# --------------------------------------------------------------------------------------------
_KERNEL_TEMPLATE = '''\
"""Numba kernels generated by asymptotics.functions (do not edit; the name is a hash of this text).

value      = {value}
derivative = {derivative}
"""
import math

import numba

CACHE = True


@numba.njit(cache=CACHE, error_model="numpy")
def value(z):
{value_body}


@numba.njit(cache=CACHE, error_model="numpy")
def derivative(z):
{derivative_body}


@numba.njit(parallel=True, cache=CACHE, error_model="numpy")
def apply_value(a, out):
    for i in numba.prange(a.shape[0]):
        out[i] = value(a[i])


@numba.njit(parallel=True, cache=CACHE, error_model="numpy")
def apply_derivative(a, out):
    for i in numba.prange(a.shape[0]):
        out[i] = derivative(a[i])


@numba.njit(cache=CACHE, error_model="numpy")
def apply_value_serial(a, out):
    for i in range(a.shape[0]):
        out[i] = value(a[i])


@numba.njit(cache=CACHE, error_model="numpy")
def apply_derivative_serial(a, out):
    for i in range(a.shape[0]):
        out[i] = derivative(a[i])
'''


def kernel_folder() -> Path:
    """Folder of the generated kernel modules (``$ASYMPTOTICS_CACHE/kernels`` or the default)."""
    root = os.environ.get("ASYMPTOTICS_CACHE")
    return Path(root) / "kernels" if root else Path.home() / ".cache" / "asymptotics" / "kernels"


def _kernel_source(expr: sympy.Expr, derivative: sympy.Expr) -> str:
    printer = _KernelPrinter({"strict": True, "fully_qualified_modules": True})
    return _KERNEL_TEMPLATE.format(
        value=expr, derivative=derivative,
        value_body=_function_body(expr, printer),
        derivative_body=_function_body(derivative, printer))


def _load_kernels(src: str) -> types.ModuleType:
    """Import the kernel module of ``src`` from the cache folder (or build it in memory)."""
    key = hashlib.sha256(src.encode()).hexdigest()[:24]
    name = f"_asymptotics_kernel_{key}"
    if name in sys.modules:
        return sys.modules[name]
    folder = kernel_folder()
    path = folder / f"k_{key}.py"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != src:
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(src)
            os.replace(tmp, path)  # atomic: concurrent processes see the old or the new file
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except OSError:  # read-only or missing home: compile in memory, without Numba's disk cache
        module = types.ModuleType(name)
        exec(compile(src.replace("CACHE = True", "CACHE = False", 1), f"<{name}>", "exec"),
             module.__dict__)
    sys.modules[name] = module
    return module


# --------------------------------------------------------------------------------------------
# Activation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Activation:
    """A function of one real variable, defined by a sympy expression in :data:`z`.

    Equality and hash are by ``name`` (the registry key, also the key of every cache).
    ``numeric_expr`` / ``numeric_derivative_expr`` are mathematically equal forms used for code
    generation (e.g. a form that does not overflow); they default to ``expr`` and
    ``derivative_expr``.
    """

    name: str
    expr: sympy.Expr
    derivative_expr: sympy.Expr
    numpy: Callable = field(repr=False)
    numpy_derivative: Callable = field(repr=False)
    numeric_expr: sympy.Expr = field(repr=False)
    numeric_derivative_expr: sympy.Expr = field(repr=False)

    def __eq__(self, other):
        return isinstance(other, Activation) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __call__(self, x):
        """numpy value ``self.numpy(x)``."""
        return self.numpy(x)

    def __reduce__(self):  # picklable for process pools: rebuilt from the expressions
        return (_rebuild, (self.name, self.expr, self.numeric_expr, self.numeric_derivative_expr))

    @cached_property
    def is_odd(self) -> bool:
        """Whether expr(-z) == -expr(z) (checked symbolically)."""
        return sympy.simplify(self.expr.subs(z, -z) + self.expr) == 0

    @cached_property
    def is_polynomial(self) -> bool:
        """Whether expr is a polynomial in z."""
        return bool(self.expr.is_polynomial(z))

    @cached_property
    def kernels(self) -> types.ModuleType:
        """Generated module with the Numba kernels ``value, derivative, apply_value,
        apply_derivative`` (+ ``_serial`` loops), written to the kernel cache folder and
        imported on first access."""
        return _load_kernels(_kernel_source(self.numeric_expr, self.numeric_derivative_expr))

    @property
    def scalar(self):
        """Numba ``njit`` kernel float -> float of the value."""
        return self.kernels.value

    @property
    def scalar_derivative(self):
        """Numba ``njit`` kernel float -> float of the derivative."""
        return self.kernels.derivative


# --------------------------------------------------------------------------------------------
# The one gate from user strings to sympy: a whitelist parser
# --------------------------------------------------------------------------------------------
#: Limits on a string expression (activation, numeric form, multi-index target), checked before
#: sympy builds anything large; above one, a ValueError names the argument and the limit, in
#: milliseconds.
MAX_EXPRESSION_LENGTH = 2000   # characters of the string
MAX_EXPRESSION_NODES = 1000    # nodes of its Python syntax tree (operators and names included)
MAX_EXPRESSION_DEPTH = 32      # nesting of calls, powers and signs (a chain a + b + c ... is one)
MAX_EXPONENT = 64              # x**p: p a rational or decimal constant with |p| <= 64
MAX_EXPRESSION_SIZE = 4096     # size bound of the expanded expression (see safe_expression)
MAX_HERMITE_ORDER = 64         # He_k: hermite(k), get("he{k}"), he{k}(x), hermite_prob(k, x)
MAX_TARGET_DIRECTIONS = 256    # h1 ... hK of a multi-index target, and its k

_FLOAT_MAX = sympy.Float(sys.float_info.max)
_TARGET_NAME = re.compile(r"h([1-9][0-9]*)")
_HERMITE_NAME = re.compile(r"he([0-9]+)")


def _hermite_order(k, what: str) -> int:
    """k as an int in [0, MAX_HERMITE_ORDER] (ValueError naming ``what`` otherwise)."""
    ok = (isinstance(k, (int, np.integer, sympy.Integer)) and not isinstance(k, (bool, np.bool_))
          and 0 <= int(k) <= MAX_HERMITE_ORDER)
    if not ok:
        raise ValueError(f"{what} must be an integer in [0, {MAX_HERMITE_ORDER}] (MAX_HERMITE_ORDER), "
                         f"got {k!r}")
    return int(k)


def _heaviside(x, h0=None):
    if h0 is None:
        return sympy.Heaviside(x)
    if not h0.is_Number:
        raise ValueError("the value of Heaviside at 0 (second argument) must be a number")
    return sympy.Heaviside(x, h0)


#: Functions a string may call: name -> (sympy function, least and most arguments). Multi-index
#: targets may also call the registered activations by name (``relu(h1)``, ``he3(h2)``).
SAFE_FUNCTIONS: dict[str, tuple[Callable, int, int]] = {
    "exp": (sympy.exp, 1, 1), "log": (sympy.log, 1, 2), "sqrt": (sympy.sqrt, 1, 1),
    "sin": (sympy.sin, 1, 1), "cos": (sympy.cos, 1, 1), "tan": (sympy.tan, 1, 1),
    "atan": (sympy.atan, 1, 1), "sinh": (sympy.sinh, 1, 1), "cosh": (sympy.cosh, 1, 1),
    "tanh": (sympy.tanh, 1, 1), "asinh": (sympy.asinh, 1, 1),
    "erf": (sympy.erf, 1, 1), "erfc": (sympy.erfc, 1, 1),
    "Abs": (sympy.Abs, 1, 1), "abs": (sympy.Abs, 1, 1), "sign": (sympy.sign, 1, 1),
    "Max": (sympy.Max, 1, 16), "Min": (sympy.Min, 1, 16),
    "max": (sympy.Max, 1, 16), "min": (sympy.Min, 1, 16),
    "Heaviside": (_heaviside, 1, 2),
    "hermite_prob": (lambda n, x: sympy.hermite_prob(_hermite_order(n, "hermite_prob order"), x), 2, 2),
    "hermite": (lambda n, x: sympy.hermite(_hermite_order(n, "hermite order"), x), 2, 2),
}
#: Named constants a string may use.
SAFE_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

# exp(exp(...)) or sin(exp(...)) make mpmath compute with astronomically many digits (hours):
# these functions may not take an argument that grows exponentially; bounded ones stop growth.
_GROWING = (sympy.exp, sympy.sinh, sympy.cosh)
_SENSITIVE = _GROWING + (sympy.sin, sympy.cos, sympy.tan)
_BOUNDED = (sympy.tanh, sympy.erf, sympy.erfc, sympy.atan, sympy.sign, sympy.Heaviside,
            sympy.sin, sympy.cos)

_NODE_NAMES = {
    ast.Attribute: "attribute access (x.y)", ast.Subscript: "subscripts (x[i])",
    ast.Lambda: "lambda", ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts",
    ast.Set: "sets", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons", ast.BoolOp: "and/or", ast.IfExp: "if/else",
    ast.JoinedStr: "f-strings", ast.NamedExpr: "assignments (:=)", ast.Starred: "*arguments",
    ast.Slice: "slices", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_FAMILY = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2}


class _Names:
    """What the names of one kind of expression mean: variables, constants and functions."""

    def __init__(self, kind: str):
        self.kind = kind  # "z" (activations) or "h" (multi-index targets)
        self.activations = {}
        if kind == "h":  # registered activations, callable by name (they win over sympy's)
            self.activations = {n: a for n, a in _REGISTRY.items() if n.isidentifier()
                                and not n.startswith("_") and not _TARGET_NAME.fullmatch(n)}

    def variable(self, name: str):
        if self.kind == "z":
            return z if name == "z" else None
        m = _TARGET_NAME.fullmatch(name)
        return sympy.Symbol(name, real=True) if m else None

    def function(self, name: str):
        """(callable, least, most arguments, size factor of the first argument) or None."""
        act = self.activations.get(name)
        if act is None and self.kind == "h" and _HERMITE_NAME.fullmatch(name) \
                and name not in SAFE_FUNCTIONS:
            digits = _HERMITE_NAME.fullmatch(name).group(1)
            order = int(digits) if len(digits) <= 6 else MAX_HERMITE_ORDER + 1
            act = hermite(_hermite_order(order, f"the Hermite order of {name}"))
        if act is not None:
            return (lambda x, e=act.expr: e.xreplace({z: x})), 1, 1, _degree(act)
        if name in SAFE_FUNCTIONS:
            return SAFE_FUNCTIONS[name] + (None,)
        return None


def _degree(act) -> int:
    return int(sympy.degree(act.expr, z)) if act.is_polynomial else 1


def _check_number(value: sympy.Expr, what: str, text: str) -> None:
    if value.is_Number and (value is sympy.nan or abs(value) > _FLOAT_MAX):
        shown = "nan" if value is sympy.nan else sympy.sstr(value.evalf(3))  # never a 10^5-digit str
        raise ValueError(f"{what}: {text!r}: the constant {shown} is not finite in float64")


def _growth(expr: sympy.Expr, what: str, text: str, memo: dict) -> int:
    """1 if expr may grow exponentially (an exp/sinh/cosh not inside a bounded function), else 0;
    ValueError if exp, sinh, cosh, sin, cos or tan is applied to such an argument."""
    if expr in memo:
        return memo[expr]
    inner = max((_growth(a, what, text, memo) for a in expr.args), default=0)
    if inner and isinstance(expr, _SENSITIVE):
        raise ValueError(f"{what}: {text!r} applies {type(expr).__name__} to an exponentially "
                         "growing argument (exp, sinh and cosh may not appear inside exp, sinh, "
                         "cosh, sin, cos or tan unless a bounded function such as tanh or erf "
                         "stands between them)")
    if isinstance(expr, _BOUNDED):
        out = 0
    elif isinstance(expr, _GROWING) or (isinstance(expr, sympy.Pow) and expr.exp.free_symbols):
        out = 1
    else:
        out = inner
    memo[expr] = out
    return out


def _disallowed(what: str, text: str, why: str) -> ValueError:
    return ValueError(f"{what}: cannot parse {text!r}: {why}; an expression may contain only "
                      "numbers, its variables, + - * / **, parentheses and calls of "
                      f"{', '.join(sorted(SAFE_FUNCTIONS))}")


def _children(node: ast.AST) -> list:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call):
        return list(node.args)
    return []


def _validate(tree: ast.Expression, what: str, text: str, names: _Names) -> None:
    """Whitelist check of the syntax tree (no sympy object is built): node kinds, names, number
    of nodes and nesting depth. Iterative, so no input can exhaust the Python stack."""
    count = sum(1 for _ in zip(ast.walk(tree), range(MAX_EXPRESSION_NODES + 1)))
    if count > MAX_EXPRESSION_NODES:
        raise ValueError(f"{what}: the expression has more than {MAX_EXPRESSION_NODES} syntax "
                         "nodes (MAX_EXPRESSION_NODES)")
    unknown_vars, unknown_funcs = set(), set()
    stack = [(tree.body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise ValueError(f"{what}: the expression nests calls, powers or signs more than "
                             f"{MAX_EXPRESSION_DEPTH} deep (MAX_EXPRESSION_DEPTH)")
        kind = type(node)
        if kind is ast.Constant:
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _disallowed(what, text, f"the constant {value!r} is not a real number")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{what}: the number {ast.get_source_segment(text, node)} in "
                                 f"{text!r} is not finite in float64")
        elif kind is ast.Name:
            index = _TARGET_NAME.fullmatch(node.id) if names.kind == "h" else None
            if index and (len(index.group(1)) > 6 or int(index.group(1)) > MAX_TARGET_DIRECTIONS):
                raise ValueError(f"{what}: the variable {node.id[:20]} is beyond "
                                 f"h{MAX_TARGET_DIRECTIONS} (MAX_TARGET_DIRECTIONS)")
            if node.id not in SAFE_CONSTANTS and names.variable(node.id) is None:
                unknown_vars.add(node.id)
        elif kind is ast.BinOp:
            if type(node.op) not in _BINARY:
                hint = " (use ** for powers)" if isinstance(node.op, ast.BitXor) else ""
                raise _disallowed(what, text, f"the operator {type(node.op).__name__} is not "
                                              f"allowed{hint}")
            fam = _FAMILY.get(type(node.op))
            same = fam is not None and isinstance(node.left, ast.BinOp) \
                and _FAMILY.get(type(node.left.op)) == fam  # a + b + c: one level
            stack += [(node.left, depth if same else depth + 1), (node.right, depth + 1)]
        elif kind is ast.UnaryOp:
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise _disallowed(what, text, f"the operator {type(node.op).__name__} is not allowed")
            stack.append((node.operand, depth + 1))
        elif kind is ast.Call:
            if not isinstance(node.func, ast.Name):
                raise _disallowed(what, text, "only functions named directly may be called")
            if node.keywords:
                raise _disallowed(what, text, "keyword arguments are not allowed")
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise _disallowed(what, text, "*arguments are not allowed")
            try:
                known = names.function(node.func.id)
            except ValueError as err:  # he{k} above MAX_HERMITE_ORDER
                raise ValueError(f"{what}: {err}") from None
            if known is None:
                unknown_funcs.add(node.func.id)
            stack += [(a, depth + 1) for a in node.args]
        else:
            raise _disallowed(what, text, f"{_NODE_NAMES.get(kind, kind.__name__)} not allowed")
    if unknown_funcs:
        extra = "" if names.kind == "z" else " or registered activations (" + ", ".join(
            sorted(names.activations)) + ")"
        raise ValueError(f"{what}: unknown function(s) {sorted(unknown_funcs)} in {text!r}; use "
                         f"{', '.join(sorted(SAFE_FUNCTIONS))}{extra}")
    if unknown_vars:
        if names.kind == "z":
            raise ValueError(f"{what}: {text!r} may only depend on z, not on {sorted(unknown_vars)}")
        raise ValueError(f"{what}: unknown variable(s) {sorted(unknown_vars)} in {text!r}; a "
                         "multi-index function may only depend on h1, h2, ..., hk")


def _number(node: ast.Constant, text: str) -> sympy.Expr:
    """A literal as sympy reads it (sympy's auto_number: 0.1 -> Float('0.1'), 3 -> Integer(3))."""
    if isinstance(node.value, int):
        return sympy.Integer(node.value)
    segment = ast.get_source_segment(text, node) or ""
    if re.fullmatch(r"[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?", segment) and any(c.isdigit() for c in segment):
        return sympy.Float(segment)
    return sympy.Float(node.value)


def _build_tree(tree: ast.Expression, what: str, text: str, names: _Names) -> sympy.Expr:
    """The sympy expression of a validated tree, bottom-up without recursion; every constant is
    kept finite in float64, exponents and the size bound are checked as the tree is built."""
    values = {}  # id(node) -> (expr, size)
    stack = [(tree.body, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack += [(c, False) for c in _children(node)]
            continue
        args = [values.pop(id(c)) for c in _children(node)]
        if isinstance(node, ast.Constant):
            out, size = _number(node, text), 1
        elif isinstance(node, ast.Name):
            out, size = SAFE_CONSTANTS.get(node.id), 1
            if out is None:
                out = names.variable(node.id)
        elif isinstance(node, ast.UnaryOp):
            (a, size), = args
            out = -a if isinstance(node.op, ast.USub) else a
        elif isinstance(node, ast.BinOp):
            (a, sa), (b, sb) = args
            op = type(node.op)
            if op is ast.Pow:
                if b.free_symbols or not (b.is_Rational or b.is_Float):
                    raise ValueError(f"{what}: {text!r}: the exponent {b} must be a rational or "
                                     "decimal constant (write exp(x*log(b)) for b**x)")
                if abs(b) > MAX_EXPONENT:
                    raise ValueError(f"{what}: {text!r}: the exponent {b} exceeds "
                                     f"{MAX_EXPONENT} in absolute value (MAX_EXPONENT)")
                size = sa * max(1, math.ceil(abs(float(b))))
                out = a ** b if size <= MAX_EXPRESSION_SIZE else None
            else:
                size = sa + sb
                out = (a + b if op is ast.Add else a - b if op is ast.Sub
                       else a * b if op is ast.Mult else a / b)
        else:  # ast.Call, validated
            fn, least, most, factor = names.function(node.func.id)
            if not least <= len(args) <= most:
                count = str(least) if least == most else f"{least} to {most}"
                raise ValueError(f"{what}: {text!r}: {node.func.id} takes {count} argument(s), "
                                 f"got {len(args)}")
            exprs = [a for a, _ in args]
            if node.func.id in ("hermite_prob", "hermite") and node.func.id not in names.activations:
                try:
                    order = _hermite_order(exprs[0], f"the order of {node.func.id}")
                except ValueError as err:
                    raise ValueError(f"{what}: {text!r}: {err}") from None
                size = max(1, order) * args[1][1]
            else:
                size = sum(s for _, s in args) * (factor or 1)
            try:
                out = fn(*exprs) if size <= MAX_EXPRESSION_SIZE else None
            except ValueError as err:
                raise ValueError(f"{what}: {text!r}: {err}") from None
        if size > MAX_EXPRESSION_SIZE:
            raise ValueError(f"{what}: {text!r} is too large: its expanded size exceeds "
                             f"{MAX_EXPRESSION_SIZE} (MAX_EXPRESSION_SIZE; powers multiply the size "
                             "of their base by the exponent)")
        _check_number(out, what, text)
        values[id(node)] = (out, size)
    return values[id(tree.body)][0]


def safe_expression(expr, what: str = "expr", *, variables: str = "z") -> sympy.Expr:
    """The one gate from user input to sympy: a string or a sympy object as a sympy expression.

    A string is parsed with Python's :mod:`ast` (never evaluated) and accepted only if it is made
    of: int and float literals (finite in float64), the variables (``z`` for
    ``variables="z"``; ``h1, h2, …, hK`` with K <= :data:`MAX_TARGET_DIRECTIONS` for
    ``variables="h"``), the constants ``pi`` and ``E``, the operators ``+ - * / **`` and unary
    ``-``/``+``, parentheses, and calls with positional arguments of the functions in
    :data:`SAFE_FUNCTIONS` (for ``"h"`` also of the registered activations, by name, and of
    ``he{k}``). No attribute, subscript, lambda, comprehension, string, keyword or other name
    gets through. Then sympy builds the expression from the checked tree, operation by operation
    (the same expression ``sympy.parse_expr`` gives for every accepted string).

    Limits, each a ValueError naming ``what``: :data:`MAX_EXPRESSION_LENGTH` characters,
    :data:`MAX_EXPRESSION_NODES` syntax nodes, nesting depth :data:`MAX_EXPRESSION_DEPTH`;
    exponents rational or decimal constants with ``|p| <=`` :data:`MAX_EXPONENT`; Hermite orders
    ``<=`` :data:`MAX_HERMITE_ORDER`; a size bound ``<=`` :data:`MAX_EXPRESSION_SIZE`, where
    numbers and variables have size 1, ``+ - * /`` and function calls add the sizes of their
    operands, ``x**p`` multiplies the size of x by ceil(|p|) and He_k(x) by k (it bounds the
    polynomial degree and the digits of exact constants); every constant finite in float64 as
    it is built (``1/0``, ``log(0)``, ``10**400`` are ValueErrors); exp, sinh, cosh, sin, cos, tan
    not applied to an argument containing exp, sinh or cosh (outside tanh, erf, erfc, atan,
    sign, Heaviside, sin, cos), whose evaluation would need astronomically many digits.

    A non-string must be a sympy expression or a real number (never parsed; ``numpy`` string
    arrays and other objects are refused). The result contains no infinity or NaN.
    """
    if variables not in ("z", "h"):
        raise ValueError(f"variables must be 'z' or 'h', got {variables!r}")
    if isinstance(expr, str):
        text = str.__str__(expr)
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise ValueError(f"{what}: the expression has {len(text)} characters, more than "
                             f"{MAX_EXPRESSION_LENGTH} (MAX_EXPRESSION_LENGTH)")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
            raise ValueError(f"{what}: cannot parse {text!r} as an expression in "
                             f"{'z' if variables == 'z' else 'h1 ... hk'} "
                             f"({type(err).__name__}: {getattr(err, 'msg', err)})") from None
        names = _Names(variables)
        _validate(tree, what, text.strip(), names)
        out = _build_tree(tree, what, text.strip(), names)
        _growth(out, what, text, {})
    else:
        out = _from_object(expr, what)
    if out.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise ValueError(f"{what}: {expr if isinstance(expr, str) else out} is not finite "
                         "(it contains an infinity or NaN)")
    return out


def _from_object(expr, what: str) -> sympy.Expr:
    """A sympy expression from a sympy object or a real number; nothing else (no parsing)."""
    if isinstance(expr, np.ndarray) and expr.ndim == 0 and expr.dtype.kind in "iuf":
        expr = expr.item()
    if isinstance(expr, sympy.Basic):
        if not isinstance(expr, sympy.Expr):
            raise ValueError(f"{what}: {expr!r} is not a sympy expression")
        return expr
    if isinstance(expr, numbers.Real) and not isinstance(expr, (bool, np.bool_)):
        if not math.isfinite(float(expr)):
            raise ValueError(f"{what}: {expr!r} is not finite")
        return sympy.Integer(int(expr)) if isinstance(expr, numbers.Integral) else sympy.Float(float(expr))
    raise ValueError(f"{what} must be a string or a sympy expression, got {type(expr).__name__}")


def _parse(expr, what: str) -> sympy.Expr:
    """A sympy expression in z from a string or sympy object (ValueError naming ``what``)."""
    expr = safe_expression(expr, what, variables="z")
    # a plain Symbol("z") (not real) is the same variable
    expr = expr.xreplace({s: z for s in expr.free_symbols if s.name == "z" and s != z})
    if expr.free_symbols - {z}:
        raise ValueError(f"{what}: {expr} may only depend on z, not on "
                         f"{sorted(map(str, expr.free_symbols - {z}))}")
    undefined = expr.atoms(AppliedUndef)
    if undefined:
        raise ValueError(f"{what}: unknown function(s) {sorted(map(str, undefined))} in {expr}")
    return expr


def _derivative(expr: sympy.Expr) -> sympy.Expr:
    """d expr/dz almost everywhere: Dirac deltas dropped, Heaviside(0) = 0."""
    d = sympy.diff(expr, z).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    return d.replace(sympy.Heaviside, lambda arg, *h0: sympy.Heaviside(arg, 0))


def _check_equal(a: sympy.Expr, b: sympy.Expr, what: str) -> None:
    for point in (-2.3, -0.7, 0.4, 1.9):
        x, y = complex(a.subs(z, point).evalf()), complex(b.subs(z, point).evalf())
        if not abs(x - y) <= 1e-12 * max(1.0, abs(x)):
            raise ValueError(f"{what} = {b} differs from {a} at z = {point}: {y} != {x}")


def _build(name, expr, numeric=None, numeric_derivative=None) -> Activation:
    expr = _parse(expr, "expr")
    derivative = _derivative(expr)
    numeric = expr if numeric is None else _parse(numeric, "numeric")
    if numeric_derivative is None:
        numeric_derivative = derivative if numeric == expr else _derivative(numeric)
    numeric_derivative = _parse(numeric_derivative, "numeric_derivative")
    if numeric != expr:
        _check_equal(expr, numeric, "numeric")
    if numeric_derivative != derivative:
        _check_equal(derivative, numeric_derivative, "numeric_derivative")
    return Activation(name, expr, derivative, _numpy_function(numeric),
                      _numpy_function(numeric_derivative), numeric, numeric_derivative)


_REGISTRY: dict[str, Activation] = {}


def _rebuild(name, expr, numeric, numeric_derivative) -> Activation:
    known = _REGISTRY.get(name)
    if known is not None and known.expr == expr and known.numeric_expr == numeric:
        return known
    return _build(name, expr, numeric, numeric_derivative)


def register(name: str, expr, *, replace: bool = False, numeric=None,
             numeric_derivative=None) -> Activation:
    """Define an activation from a sympy expression or a string in ``z`` and register it.

    Parameters
    ----------
    name : registry key (also the key of the Gaussian-moment caches).
    expr : e.g. ``"tanh(z)"``, ``"z**3 - 3*z"``, ``"erf(z/sqrt(2))"``, ``sympy.Max(0, z)``.
        A string goes through :func:`safe_expression` (a whitelist parser: numbers, ``z``,
        ``pi``, ``E``, ``+ - * / **``, calls of :data:`SAFE_FUNCTIONS`; nothing is evaluated as
        Python, and the limits ``MAX_EXPRESSION_*``, :data:`MAX_EXPONENT` apply).
    replace : allow redefining an existing name.
    numeric, numeric_derivative : optional equivalent forms used for code generation only
        (checked against ``expr`` at a few points); strings parsed the same way.

    Raises ValueError naming the argument (``expr``, ``numeric``, ``numeric_derivative``) for an
    expression that cannot be parsed, breaks a limit, depends on anything but z, or is not finite
    (``"1/0"``, ``"log(0)"``: infinities and NaN are refused).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"activation name {name!r} is already registered "
                         f"(expr = {_REGISTRY[name].expr}); pass replace=True to redefine it")
    act = _build(name, expr, numeric, numeric_derivative)
    _REGISTRY[name] = act
    return act


def hermite(k: int) -> Activation:
    """Probabilists' Hermite polynomial He_k as activation ``"he{k}"`` (registered on demand).

    ``0 <= k <=`` :data:`MAX_HERMITE_ORDER` (64); a larger or non-integer k is a ValueError.
    """
    k = _hermite_order(k, "k")
    name = f"he{k}"
    if name not in _REGISTRY:
        register(name, sympy.expand(sympy.hermite_prob(int(k), z)))
    return _REGISTRY[name]


def get(name_or_activation) -> Activation:
    """The registered activation of that name (an :class:`Activation` is returned as is).

    ``"he{k}"`` registers the Hermite polynomial He_k on demand, for k <= :data:`MAX_HERMITE_ORDER`.
    """
    if isinstance(name_or_activation, Activation):
        return name_or_activation
    if not isinstance(name_or_activation, str):
        raise TypeError(f"activation must be a name or an Activation, got {name_or_activation!r}")
    act = _REGISTRY.get(name_or_activation)
    if act is None:
        m = _HERMITE_NAME.fullmatch(name_or_activation)
        if m:  # he{k}, k <= MAX_HERMITE_ORDER (no int() of a million digits)
            digits = m.group(1)
            order = int(digits) if len(digits) <= 6 else MAX_HERMITE_ORDER + 1
            return hermite(_hermite_order(order, f"activation {name_or_activation!r}: the Hermite order"))
        raise ValueError(f"unknown activation {name_or_activation!r}; known: {', '.join(names())} "
                         "(use register(name, expr) to add one)")
    return act


def names() -> list[str]:
    """Names of the registered activations."""
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------------------------
# Fused element-wise application
# --------------------------------------------------------------------------------------------
# numpy evaluates these with its own SIMD code (AVX2/AVX-512); Numba, without Intel's SVML
# library, calls scalar libm for them, which is 5-20x slower per element (tanh: 80 ms vs 10 ms
# on 8e6 float64). Everything else (polynomials, relu, sign, erf, ...) is faster in the fused
# Numba loop, which makes one pass over memory instead of one per operation.
_SIMD_IN_NUMPY = (sympy.exp, sympy.log, log1p, sympy.tanh, sympy.sinh, sympy.cosh, sympy.sin,
                  sympy.cos, sympy.tan, sympy.atan, sympy.asinh)
_BLOCK = 1 << 16      # numpy engine: elements per block (temporaries stay in the L2 cache)
_PARALLEL = 1 << 15   # numba engine: smaller arrays use the serial loop (same scalar kernel)


def engine(activation, derivative: bool = False) -> str:
    """Which engine :func:`apply` uses for this function: ``"numba"`` or ``"numpy"``.

    ``"numpy"`` when the expression calls an elementary function that numpy vectorises with
    SIMD instructions and Numba was not built with Intel's SVML, else ``"numba"``. The choice
    depends on the expression only (never on the array size), so results are bit-identical for
    any chunking of the input.
    """
    act = get(activation)
    return _engine(act.numeric_derivative_expr if derivative else act.numeric_expr)


@lru_cache(maxsize=None)
def _engine(expr: sympy.Expr) -> str:
    simd = bool(expr.atoms(*_SIMD_IN_NUMPY)) and not numba.config.USING_SVML
    return "numpy" if simd else "numba"


def apply(activation, a: np.ndarray, out: np.ndarray | None = None, derivative: bool = False):
    """σ(a) (or σ'(a)) element-wise, fused; ``out=a`` works in place. Returns ``out``.

    ``a`` must be a float32 or float64 array of any shape (a non-contiguous one is copied
    first); ``out``, if given, a writeable C-contiguous array of the same shape and dtype. The
    work is done by the parallel Numba loop of the activation's generated kernels, or, for
    expressions that numpy evaluates faster (see :func:`engine`), by the numpy function on
    cache-sized blocks.
    """
    act = get(activation)
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"a must be a float32 or float64 numpy array, got "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    if out is None:
        out = np.empty(a.shape, dtype=a.dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != a.shape or out.dtype != a.dtype
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError("out must be a writeable C-contiguous array with the shape and dtype "
                         f"of a ({a.shape}, {a.dtype})")
    flat_a, flat_out = np.ascontiguousarray(a).reshape(-1), out.reshape(-1)
    if engine(act, derivative) == "numpy":
        raw = (act.numpy_derivative if derivative else act.numpy).raw
        with np.errstate(over="ignore", under="ignore"):
            for start in range(0, flat_a.size, _BLOCK):
                flat_out[start:start + _BLOCK] = raw(flat_a[start:start + _BLOCK])
    else:
        kind = "derivative" if derivative else "value"
        serial = "_serial" if flat_a.size < _PARALLEL else ""
        getattr(act.kernels, f"apply_{kind}{serial}")(flat_a, flat_out)
    return out


# --------------------------------------------------------------------------------------------
# Built-ins
# --------------------------------------------------------------------------------------------
def _register_builtins() -> None:
    e = sympy.exp(-sympy.Abs(z))
    register("linear", z)
    register("tanh", sympy.tanh(z))
    register("relu", sympy.Max(0, z))  # relu' = Heaviside(z, 0)
    register("erf", sympy.erf(z))
    register("erf_scaled", sympy.erf(z / sympy.sqrt(2)))
    register("sign", sympy.sign(z))  # sign' = 0 almost everywhere
    # sigmoid' = e^{-|z|}/(1 + e^{-|z|})^2 neither overflows nor loses the tails
    register("sigmoid", 1 / (1 + sympy.exp(-z)), numeric_derivative=e / (1 + e) ** 2)
    register("softplus", sympy.log(1 + sympy.exp(z)),
             numeric=sympy.Max(z, 0) + log1p(e), numeric_derivative=1 / (1 + sympy.exp(-z)))
    register("cube", z**3)
    for k in range(1, 7):
        hermite(k)


_register_builtins()


def multi_index_expression(expr, what: str = "target") -> tuple[sympy.Expr, int]:
    """A function of h1, h2, …, hk (the projections of a multi-index model) as a sympy expression.

    ``expr``: a string or sympy expression. A string goes through :func:`safe_expression` with
    ``variables="h"``: besides :data:`SAFE_FUNCTIONS`, the registered activations may be called by
    name (``"relu(h1) + he2(h2)"``; ``he{k}`` for any k <= :data:`MAX_HERMITE_ORDER`), and nothing
    is evaluated as Python. Returns the expression with one real symbol ``h{i}`` per index and the
    largest index used (0 for a constant). Indices are at most :data:`MAX_TARGET_DIRECTIONS`. Bad
    input (syntax, unknown names, a limit, an infinite value) raises a ``ValueError`` naming
    ``what``.
    """
    expr = safe_expression(expr, what, variables="h")
    undefined = expr.atoms(AppliedUndef)
    if undefined:
        raise ValueError(f"{what}: unknown function(s) {sorted(map(str, undefined))} in {expr}; use sympy "
                         f"functions or registered activations ({', '.join(n for n in names() if not n.startswith('_'))})")
    bad = sorted(str(s) for s in expr.free_symbols if not _TARGET_NAME.fullmatch(str(s)))
    if bad:
        raise ValueError(f"{what}: unknown variable(s) {bad} in {expr}; a multi-index function may only "
                         "depend on h1, h2, ..., hk")
    top = max((int(_TARGET_NAME.fullmatch(str(s)).group(1)) for s in expr.free_symbols), default=0)
    if top > MAX_TARGET_DIRECTIONS:
        raise ValueError(f"{what}: the variable h{top} is beyond h{MAX_TARGET_DIRECTIONS} "
                         f"(MAX_TARGET_DIRECTIONS = {MAX_TARGET_DIRECTIONS})")
    expr = expr.xreplace({s: sympy.Symbol(str(s), real=True) for s in expr.free_symbols})
    return expr, top


#: Named multi-index targets of the giant-step figures (k = 2, committee factor 1/2), in h1, h2;
#: see docs/theory/giant_step.md.
TARGETS: dict[str, str] = {
    # T1: sigma*_1 = sigma*_2 = He1 + He2/2 + He4/24 ("hermite1+2+4_norm")
    "T1": "(h1 + (h1**2 - 1)/2 + (h1**4 - 6*h1**2 + 3)/24"
          " + h2 + (h2**2 - 1)/2 + (h2**4 - 6*h2**2 + 3)/24)/2",
    # T2: staircase, sigma*_1 = x + x^2, sigma*_2 = x - x^2
    "T2": "((h1 + h1**2) + (h2 - h2**2))/2",
    # T3: sigma*_1 = 4x + x^2, sigma*_2 = x ("stuck" example)
    "T3": "((4*h1 + h1**2) + h2)/2",
}


def multi_index_target(target, k=None, what: str = "target", *, constant_k: int | None = 1) -> tuple[sympy.Expr, int]:
    """The one parser of multi-index targets: ``(expression in h1..hk, k)``.

    ``target``: a name of :data:`TARGETS`, or a string / sympy expression accepted by
    :func:`multi_index_expression`. ``k`` (number of directions) defaults to the largest index
    used; a larger k embeds the target in extra directions it ignores (k <=
    :data:`MAX_TARGET_DIRECTIONS`). A constant target takes ``k = constant_k`` (``None``: a
    constant target needs an explicit k). ValueError naming ``what`` or ``k``.
    """
    if isinstance(target, str):
        target = TARGETS.get(target, target)
    expr, top = multi_index_expression(target, what)
    if k is None:
        if top == 0 and constant_k is None:
            raise ValueError(f"{what}: {expr} depends on no variable h1 ... hk; pass k to use a constant target")
        k = top if top else constant_k
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < max(top, 1) \
            or k > MAX_TARGET_DIRECTIONS:
        raise ValueError(f"k must be an integer in [{max(top, 1)}, {MAX_TARGET_DIRECTIONS}] (the "
                         f"largest index in {what}; MAX_TARGET_DIRECTIONS), got {k!r}")
    return expr, int(k)
