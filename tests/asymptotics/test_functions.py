"""Facts about the symbolic activations and their compiled forms (asymptotics.functions)."""
import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymptotics import functions as F
from asymptotics.functions import z

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUILTINS = ["linear", "tanh", "relu", "erf", "erf_scaled", "sign", "sigmoid", "softplus", "cube",
            "he1", "he2", "he3", "he4", "he5", "he6"]
KINKED = {"relu", "sign"}
GRID = np.concatenate([np.linspace(-6.0, 6.0, 97), [-0.0, 1e-8, -1e-8, 30.0, -30.0]])


def test_builtins_are_registered_with_their_expressions():
    assert set(BUILTINS) <= set(F.names())
    assert F.get("relu").expr == sympy.Max(0, z)
    assert F.get("erf_scaled").expr == sympy.erf(z / sympy.sqrt(2))
    assert F.get("softplus").expr == sympy.log(1 + sympy.exp(z))
    # probabilists' Hermite polynomials, orthogonal under N(0, 1) with E He_k² = k!
    assert sympy.expand(F.get("he2").expr - (z**2 - 1)) == 0
    assert sympy.expand(F.get("he3").expr - (z**3 - 3 * z)) == 0
    assert sympy.expand(F.get("he4").expr - (z**4 - 6 * z**2 + 3)) == 0
    for k in range(1, 7):
        assert sympy.Poly(F.get(f"he{k}").expr, z).LC() == 1


def test_non_smooth_derivatives_are_taken_almost_everywhere():
    assert F.get("relu").derivative_expr == sympy.Heaviside(z, 0)
    assert F.get("sign").derivative_expr == 0
    relu, sign = F.get("relu"), F.get("sign")
    assert relu.numpy_derivative(0.0) == 0.0 and relu.scalar_derivative(0.0) == 0.0
    np.testing.assert_array_equal(relu.numpy_derivative(np.array([-1.0, 2.0])), [0.0, 1.0])
    np.testing.assert_array_equal(sign.numpy_derivative(np.array([-1.0, 0.0, 2.0])), 0.0)


def test_parity_and_polynomial_flags():
    odd = {"linear", "tanh", "erf", "erf_scaled", "sign", "cube", "he1", "he3", "he5"}
    for name in BUILTINS:
        assert F.get(name).is_odd == (name in odd), name
    poly = {"linear", "cube"} | {f"he{k}" for k in range(1, 7)}
    for name in BUILTINS:
        assert F.get(name).is_polynomial == (name in poly), name


@pytest.mark.parametrize("name", BUILTINS)
def test_numpy_and_numba_kernels_agree(name):
    act = F.get(name)
    value, deriv = act.numpy(GRID), act.numpy_derivative(GRID)
    scalar = np.array([act.scalar(x) for x in GRID])
    scalar_d = np.array([act.scalar_derivative(x) for x in GRID])
    # numpy's SIMD tanh/exp and libm differ by an ulp: absolute 1e-15 where 1 - tanh² cancels
    np.testing.assert_allclose(scalar, value, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(scalar_d, deriv, rtol=1e-14, atol=1e-15)
    # the symbolic value, evaluated by sympy itself at a few points
    for x in (-1.7, 0.3, 2.2):
        assert act.numpy(x) == pytest.approx(float(act.expr.subs(z, x)), rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("name", BUILTINS)
def test_derivative_matches_finite_differences(name):
    act = F.get(name)
    x = np.linspace(-4.0, 4.0, 41) + 0.0123  # avoids the kink of relu and sign at 0
    h = 1e-5
    fd = (act.numpy(x + h) - act.numpy(x - h)) / (2 * h)
    scale = 1.0 + np.abs(act.numpy(x)) + np.abs(x) ** 3
    assert np.max(np.abs(fd - act.numpy_derivative(x)) / scale) < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_functions_keep_the_dtype_and_shape(dtype):
    x = np.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
    for name in BUILTINS:
        act = F.get(name)
        for y in (act.numpy(x), act.numpy_derivative(x), act(x)):
            assert y.dtype == dtype and y.shape == x.shape, name
    assert F.get("tanh").numpy(np.arange(3)).dtype == np.float64  # integers -> float64
    assert np.ndim(F.get("he1").numpy_derivative(0.5)) == 0       # scalar in, scalar out


def test_sigmoid_and_softplus_do_not_overflow():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sp, dsp = F.get("softplus").numpy(x), F.get("softplus").numpy_derivative(x)
        sg, dsg = F.get("sigmoid").numpy(x), F.get("sigmoid").numpy_derivative(x)
    np.testing.assert_allclose(sp, [0.0, math.exp(-40), math.log(2), 40.0, 1000.0], rtol=1e-15)
    np.testing.assert_allclose(dsp, sg, rtol=1e-15)
    np.testing.assert_allclose(dsg, [0.0, math.exp(-40), 0.25, math.exp(-40), 0.0], rtol=1e-12)
    for name in ("softplus", "sigmoid"):
        act = F.get(name)
        np.testing.assert_allclose([act.scalar(v) for v in x], act.numpy(x), rtol=1e-15)
        np.testing.assert_allclose([act.scalar_derivative(v) for v in x], act.numpy_derivative(x),
                                   rtol=1e-15)


# ----------------------------------------------------------------- apply
@pytest.mark.parametrize("name", ["tanh", "relu", "he3", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_matches_numpy(name, dtype):
    act = F.get(name)
    a = np.random.default_rng(0).standard_normal((70, 600)).astype(dtype) * 3
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for derivative in (False, True):
        ref = act.numpy_derivative(a) if derivative else act.numpy(a)
        out = F.apply(act, a, derivative=derivative)
        assert out.dtype == dtype and out.shape == a.shape
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * np.max(np.abs(ref)))
    # in place
    b = a.copy()
    assert F.apply(name, b, out=b) is b
    np.testing.assert_array_equal(b, F.apply(name, a))


@pytest.mark.parametrize("name", ["tanh", "cube"])  # numpy engine, numba engine
def test_apply_is_bit_identical_for_any_chunking(name):
    a = np.random.default_rng(1).standard_normal(300_001)
    whole = F.apply(name, a)
    pieces = np.concatenate([F.apply(name, a[s:s + 977]) for s in range(0, a.size, 977)])
    np.testing.assert_array_equal(whole, pieces)


def test_apply_engines_agree_and_are_chosen_by_expression():
    assert F.engine("cube") == "numba" and F.engine("relu") == "numba"
    expected = "numba" if F.numba.config.USING_SVML else "numpy"
    assert F.engine("tanh") == expected
    act = F.get("tanh")
    a = np.random.default_rng(2).standard_normal(50_000)
    out = np.empty_like(a)
    act.kernels.apply_value(a, out)  # the Numba loop itself
    np.testing.assert_allclose(out, F.apply(act, a), rtol=1e-14, atol=1e-16)


def test_apply_input_checks():
    a = np.ones((3, 4))
    with pytest.raises(TypeError, match="a must be"):
        F.apply("tanh", np.ones(3, dtype=int))
    with pytest.raises(TypeError, match="a must be"):
        F.apply("tanh", [1.0, 2.0])
    with pytest.raises(ValueError, match="out must be"):
        F.apply("tanh", a, out=np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        F.apply("tanh", a, out=np.ones((4, 3)).T)
    strided = np.arange(20.0).reshape(4, 5)[:, ::2]  # non-contiguous input is fine
    np.testing.assert_allclose(F.apply("cube", strided), strided**3)


# ----------------------------------------------------------------- registry
@SETTINGS
@given(a=st.floats(0.1, 3.0), b=st.floats(-2.0, 2.0))
def test_registered_expression_compiles_consistently(a, b):
    act = F.register("test_user_expression", f"tanh({a!r}*z) + ({b!r})*z**2", replace=True)
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(act(x), np.tanh(a * x) + b * x**2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(act.numpy_derivative(x), a / np.cosh(a * x) ** 2 + 2 * b * x,
                               rtol=1e-12, atol=1e-14)


def test_register_string_or_sympy_and_replace():
    act = F.register("test_reg_erf", "erf(z/sqrt(2))", replace=True)
    assert act == F.get("test_reg_erf") and act.expr == F.get("erf_scaled").expr
    assert act != F.get("erf_scaled")  # equality is by name
    with pytest.raises(ValueError, match="test_reg_erf"):
        F.register("test_reg_erf", "tanh(z)")
    again = F.register("test_reg_erf", sympy.tanh(2 * z), replace=True)
    assert F.get("test_reg_erf").expr == sympy.tanh(2 * z) and again.numpy(1.0) == math.tanh(2.0)
    plain = F.register("test_reg_plain_symbol", sympy.Symbol("z") ** 2, replace=True)
    assert plain.expr == z**2 and plain.derivative_expr == 2 * z


@pytest.mark.parametrize("expr, message", [
    ("tanh(z", "cannot parse"),
    ("tanh(x)", "only depend on z"),
    ("relu(z)", "unknown function"),
    ("", "cannot parse"),
])
def test_register_rejects_bad_expressions(expr, message):
    with pytest.raises(ValueError, match=message):
        F.register("test_bad", expr, replace=True)
    assert "test_bad" not in F.names()


def test_register_checks_the_numeric_form():
    with pytest.raises(ValueError, match="numeric"):
        F.register("test_bad_numeric", "log(1 + exp(z))", numeric="Max(z, 0)", replace=True)
    with pytest.raises(ValueError, match="name"):
        F.register("", "z")


def test_get_and_hermite():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        F.get("swish")
    with pytest.raises(TypeError):
        F.get(3)
    assert F.get(F.get("tanh")) is F.get("tanh")
    he7 = F.hermite(7)
    assert he7.name == "he7" and sympy.expand(he7.expr - sympy.hermite_prob(7, z)) == 0
    assert F.get("he9").expr == sympy.expand(sympy.hermite_prob(9, z))  # created on demand
    assert F.hermite(0)(np.zeros(2)).tolist() == [1.0, 1.0]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            F.hermite(bad)


def test_activation_pickles_by_expression():
    for name in ("softplus", "relu", "he3"):
        act = F.get(name)
        assert pickle.loads(pickle.dumps(act)) is act
    user = F.register("test_pickled", "z*tanh(z)", replace=True)
    F._REGISTRY.pop("test_pickled")
    clone = pickle.loads(pickle.dumps(user))
    assert clone == user and clone.expr == user.expr and clone(2.0) == user(2.0)


# ----------------------------------------------------------------- kernel cache
def test_kernels_are_written_to_the_cache_folder_and_cached_by_numba(tmp_path, monkeypatch):
    monkeypatch.setenv("ASYMPTOTICS_CACHE", str(tmp_path))
    act = F.register("test_cached_kernel", "tanh(z) + z/7 + 1/11", replace=True)
    assert act.scalar(0.5) == pytest.approx(math.tanh(0.5) + 0.5 / 7 + 1 / 11, rel=1e-15)
    files = list((tmp_path / "kernels").glob("k_*.py"))
    assert len(files) == 1 and "def value(z):" in files[0].read_text()
    assert act.kernels.__file__ == str(files[0])
    index = list((tmp_path / "kernels" / "__pycache__").glob("*value*.nbi"))
    assert index, "Numba wrote no cache index"
    # a fresh process loads the compiled kernel from the cache instead of compiling it
    code = ("from asymptotics import functions as F; "
            "a = F.register('k', 'tanh(z) + z/7 + 1/11'); a.scalar(0.5); "
            "print(len(a.scalar.stats.cache_hits))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "ASYMPTOTICS_CACHE": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) >= 1


def test_kernels_work_without_a_writable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("ASYMPTOTICS_CACHE", str(blocker))
    act = F.register("test_uncached_kernel", "tanh(z) + z/13", replace=True)
    assert act.scalar(0.25) == pytest.approx(math.tanh(0.25) + 0.25 / 13, rel=1e-15)
    assert not hasattr(act.kernels, "__file__") or act.kernels.__file__ is None


def test_multi_index_expression_parses_registered_functions_and_names_the_argument():
    h1, h2 = sympy.Symbol("h1", real=True), sympy.Symbol("h2", real=True)
    expr, top = F.multi_index_expression("relu(h1) + he2(h2)*h1", "target")
    assert top == 2
    assert sympy.simplify(expr - (sympy.Max(0, h1) + (h2**2 - 1) * h1)) == 0
    assert F.multi_index_expression("3", "target") == (sympy.Integer(3), 0)
    for bad, msg in (("x + h1", "unknown variable"), ("foo(h1)", "unknown function"), ("h1 +* 2", "cannot parse"),
                     ("1/(h1 - h1)", "not finite")):
        with pytest.raises(ValueError, match=f"target: .*{msg}|target: {msg}"):
            F.multi_index_expression(bad, "target")


def test_multi_index_target_resolves_names_and_checks_k():
    """The one target parser of the giant-step theory and simulator (TARGETS live here)."""
    assert set(F.TARGETS) == {"T1", "T2", "T3"}
    expr, k = F.multi_index_target("T2")
    assert k == 2 and sympy.simplify(expr - sympy.sympify(F.TARGETS["T2"]).xreplace(
        {s: sympy.Symbol(str(s), real=True) for s in sympy.sympify(F.TARGETS["T2"]).free_symbols})) == 0
    assert F.multi_index_target("h2", k=4)[1] == 4
    assert F.multi_index_target("3")[1] == 1                     # a constant target: k = 1 by default
    with pytest.raises(ValueError, match="depends on no variable"):
        F.multi_index_target("3", constant_k=None)
    with pytest.raises(ValueError, match="k must"):
        F.multi_index_target("h1*h3", k=2)
    with pytest.raises(ValueError, match="expr"):
        F.multi_index_target("h1 + q", what="expr")
