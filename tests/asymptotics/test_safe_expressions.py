"""User strings become sympy expressions only through the whitelist parser (issue 16, item 1).

Every entry point that takes an expression string (activations, numeric forms, multi-index
targets of the theory, the spiked random-features link, the simulator and its sweep spec) is fed
hostile strings that would run a shell command, touch a marker file, reach Python objects through
attributes, or ask for unbounded work. Facts checked: the marker file never appears, every probe
is a ValueError naming the argument, every probe returns within a second of CPU time; and every
expression form the project uses parses to exactly the sympy expression of the old parser
(``sympy.parse_expr``, applied here only to trusted strings).
"""
import contextlib
import re
import signal
import time

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymptotics import functions as F
from asymptotics import giant_step, spiked_rf
from asymptotics.functions import z
from simulations import giant_step as sim

# ---------------------------------------------------------------------------------- probes
# "MARK" is replaced by the path of a marker file; "z" by the variable of the entry point.
CODE_PROBES = [
    "[__import__('os').system('touch MARK'), z][1]",
    "__import__('os').system('touch MARK')",
    "open('MARK', 'w').write('x')",
    "exec(\"open('MARK', 'w')\")",
    "eval(\"open('MARK', 'w')\")",
    "(lambda: open('MARK', 'w'))()",
    "lambda: open('MARK', 'w')",
    "z.__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "z.__class__.__init__.__globals__['os'].system('touch MARK')",
    "getattr(z, '__class__')",
    "Symbol('x')",
    "sympify(\"open('MARK', 'w')\")",
    "S(\"open('MARK', 'w')\")",
    "parse_expr(\"open('MARK', 'w')\")",
    "Function('f')(z)",
    "__builtins__",
    "[open('MARK', 'w') for _ in (1,)][0]",
    "{1: z}[1]",
    "{z}",
    "(z, z)",
    "z if open('MARK', 'w') else z",
    "z < 1",
    "z and open('MARK', 'w')",
    "'abc'",
    "b'abc'",
    "f'{z}'",
    "(y := z)",
    "tanh(*[z])",
    "tanh(x=z)",
    "z[0]",
    "z[0:1]",
    "z % 2",
    "z // 2",
    "z @ z",
    "z ^ 2",
    "~z",
    "not z",
    "z << 1",
    "None",
    "True*z",
    "...",
    "1j*z",
    "I*z",
    "tanh(z); open('MARK', 'w')",
    "tanh(z)\nopen('MARK', 'w')",
    "z\x00",
    "tanh(z",
    "",
    "   ",
]
# finite-function and work limits
LIMIT_PROBES = [
    "1/0",
    "log(0)",
    "0**-1",
    "z/0",
    "zoo",
    "nan",
    "oo*z",
    "1e400*z",
    "10**400*z",
    "(10**300)**2*z",
    "exp(1e308)*z",
    "z**10**10",
    "z**(10**10)",
    "z**65",
    "z**-65",
    "2**2**2**2**2**2",
    "((((2**64)**64)**64)**64)*z",
    "((z + 1)**64)**64",
    " * ".join(f"(z + {i})**64" for i in range(1, 40)),
    "z**z",
    "2**z",
    "z**sqrt(2)",
    "exp(exp(exp(z)))",
    "exp(exp(z))",
    "sin(exp(1e300*z))",
    "cosh(sinh(z))",
    "hermite_prob(100000, z)",
    "hermite_prob(65, z)",
    "hermite_prob(-1, z)",
    "hermite_prob(2.5, z)",
    "hermite_prob(z, z)",
    "hermite(10**9, z)",
    "Heaviside(z, z)",
    "exp(z, z)",
    "Max()",
    "tanh()",
    "9" * 3000,
    "z" + "+z" * 1500,
    "-" * 500 + "z",
    "(" * 300 + "z" + ")" * 300,
    "tanh(" * 100 + "z" + ")" * 100,
    "+".join(["tanh(z)"] * 240),
]
TARGET_ONLY_PROBES = ["he20000(h1)", "he" + "9" * 5000 + "(h1)", "h1000000", "h" + "9" * 100,
                      "h257", "relu(h1, h2)", "x + h1"]


def _in_h(probe: str) -> str:
    return re.sub(r"\bz\b", "h1", probe)


def _entry_points():
    """(name, callable of one string, variable) for every place a user string reaches sympy."""
    return [
        ("register(expr=)", lambda s: F.register("test_probe", s, replace=True), "z"),
        ("register(numeric=)", lambda s: F.register("test_probe", "z", numeric=s, replace=True), "z"),
        ("register(numeric_derivative=)",
         lambda s: F.register("test_probe", "z", numeric_derivative=s, replace=True), "z"),
        ("safe_expression", lambda s: F.safe_expression(s, "expr"), "z"),
        ("multi_index_expression", lambda s: F.multi_index_expression(s, "target"), "h"),
        ("multi_index_target", lambda s: F.multi_index_target(s, None, "target"), "h"),
        ("MultiIndexTarget", lambda s: giant_step.MultiIndexTarget(s), "h"),
        ("one_step_cosine(target=)", lambda s: giant_step.one_step_cosine("relu", s, 1.0, 1.0), "h"),
        ("spiked_parameters", lambda s: spiked_rf.spiked_parameters("relu", s, 1.0, 1.0), "h"),
        ("one_step_ridge_error(target=)",
         lambda s: spiked_rf.one_step_ridge_error("tanh", s, 1.0, 1.0, [1.0], lam=0.1, spectrum="mp"), "h"),
        ("make_target", lambda s: sim.make_target(s), "h"),
        ("GiantStepSpec(target=)",
         lambda s: sim.GiantStepSpec(target=s, activation="relu", d=8, p=16, n=32, steps=1, eta="sqrt",
                                     lam=0.5, n_test=50), "h"),
        ("GiantStepSpec.from_dict",
         lambda s: sim.GiantStepSpec.from_dict(
             {"target": s, "activation": "relu", "d": 8, "p": 16, "n": 32, "steps": 1, "eta": "sqrt",
              "lam": 0.5, "n_test": 50}), "h"),
    ]


@contextlib.contextmanager
def _deadline(seconds: float):
    """Abort a hanging call with TimeoutError (SIGALRM; the library is pure Python there)."""
    def handler(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_probe(fn, text):
    """('ok' | 'ValueError' | other exception name, message, CPU seconds)."""
    t0 = time.process_time()
    try:
        with _deadline(20.0):
            fn(text)
        outcome, message = "ok", ""
    except ValueError as err:
        outcome, message = "ValueError", str(err)
    except Exception as err:  # noqa: BLE001 - a probe may fail any way; the test names it
        outcome, message = type(err).__name__, str(err)
    return outcome, message, time.process_time() - t0


@pytest.mark.parametrize("entry", _entry_points(), ids=lambda e: e[0])
def test_no_string_runs_code_or_hangs(entry, tmp_path):
    name, fn, var = entry
    marker = tmp_path / "MARKER"
    probes = CODE_PROBES + LIMIT_PROBES + (TARGET_ONLY_PROBES if var == "h" else [])
    failures = []
    for probe in probes:
        text = probe.replace("MARK", str(marker))
        text = _in_h(text) if var == "h" else text
        outcome, message, cpu = _run_probe(fn, text)
        if marker.exists():
            failures.append(f"{text[:60]!r}: CODE RAN (marker created)")
            marker.unlink()
        if outcome != "ValueError":
            failures.append(f"{text[:60]!r}: {outcome} {message[:80]}")
        elif cpu > 1.0:
            failures.append(f"{text[:60]!r}: took {cpu:.2f} s of CPU")
    assert not failures, f"{name}: {len(failures)} of {len(probes)} probes:\n" + "\n".join(failures)
    assert "test_probe" not in F.names() or F.get("test_probe").expr == z


@pytest.mark.parametrize("entry", _entry_points(), ids=lambda e: e[0])
def test_errors_name_the_argument(entry):
    name, fn, var = entry
    want = {"z": r"^(expr|numeric|numeric_derivative): ", "h": r"^(target|expr): "}[var]
    for probe in ("__import__('os').getcwd()", "z.real", "1/0", "z**100"):
        with pytest.raises(ValueError, match=want):
            fn(_in_h(probe) if var == "h" else probe)


def test_register_one_over_zero_is_a_value_error():
    """Was a KeyError from the code printer; now a ValueError naming the argument."""
    for bad in ("1/0", "log(0)", "z + 1/0", "0**-1"):
        with pytest.raises(ValueError, match=r"^expr: .*not finite"):
            F.register("test_inf", bad, replace=True)
        with pytest.raises(ValueError, match=r"^numeric: .*not finite"):
            F.register("test_inf", "z", numeric=bad, replace=True)
    with pytest.raises(ValueError, match="not finite"):
        F.register("test_inf", sympy.zoo * z, replace=True)       # a sympy object too
    assert "test_inf" not in F.names()


def test_objects_are_never_parsed_as_text(tmp_path):
    """sympy.sympify runs the text of a numpy string array through eval; objects are refused."""
    marker = tmp_path / "MARKER"
    payload = f"__import__('os').system('touch {marker}')"

    class Sneaky:
        def __str__(self):
            return payload

    for obj in (np.array(payload), payload.encode(), bytearray(payload.encode()), Sneaky(), [z],
                None, True):
        with pytest.raises(ValueError, match="expr"):
            F.register("test_obj", obj, replace=True)
        with pytest.raises(ValueError, match="target"):
            F.multi_index_expression(obj, "target")
        with pytest.raises(ValueError, match="target"):
            spiked_rf.spiked_parameters("relu", obj, 1.0, 1.0)
        assert not marker.exists()
    # sympy objects and real numbers still work
    assert F.safe_expression(np.float64(0.5)) == sympy.Float(0.5)
    assert F.safe_expression(3) == 3 and F.safe_expression(np.array(2)) == 2
    assert F.register("test_obj", sympy.tanh(z) / 2, replace=True).expr == sympy.tanh(z) / 2
    assert spiked_rf._target(sympy.sin(sympy.Symbol("x")))[1] == sympy.sin(z)


# ---------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("call, message", [
    (lambda: F.get("he20000"), "MAX_HERMITE_ORDER"),
    (lambda: F.get("he" + "9" * 5000), "MAX_HERMITE_ORDER"),
    (lambda: F.hermite(F.MAX_HERMITE_ORDER + 1), "MAX_HERMITE_ORDER"),
    (lambda: giant_step.MultiIndexTarget("h1000000"), "MAX_TARGET_DIRECTIONS"),
    (lambda: giant_step.MultiIndexTarget(f"h{F.MAX_TARGET_DIRECTIONS + 1}"), "MAX_TARGET_DIRECTIONS"),
    (lambda: giant_step.MultiIndexTarget("h1", k=10**9), "MAX_TARGET_DIRECTIONS"),
    (lambda: giant_step.MultiIndexTarget(sympy.Symbol("h1000000")), "MAX_TARGET_DIRECTIONS"),
    (lambda: sim.make_target("h2", k=F.MAX_TARGET_DIRECTIONS + 1), "MAX_TARGET_DIRECTIONS"),
    (lambda: F.register("test_lim", "z" + "+z" * F.MAX_EXPRESSION_LENGTH, replace=True), "MAX_EXPRESSION_LENGTH"),
    (lambda: F.register("test_lim", "+".join(["z*z"] * 400), replace=True), "MAX_EXPRESSION_NODES"),
    (lambda: F.register("test_lim", "tanh(" * 40 + "z" + ")" * 40, replace=True), "MAX_EXPRESSION_DEPTH"),
    (lambda: F.register("test_lim", f"z**{F.MAX_EXPONENT + 1}", replace=True), "MAX_EXPONENT"),
    (lambda: F.register("test_lim", "((z + 1)**64)**64", replace=True), "MAX_EXPRESSION_SIZE"),
    (lambda: F.register("test_lim", "hermite_prob(65, z)", replace=True), "MAX_HERMITE_ORDER"),
    (lambda: F.multi_index_expression("he65(h1)"), "MAX_HERMITE_ORDER"),
])
def test_limits_are_clear_and_fast(call, message):
    t0 = time.process_time()
    with _deadline(20.0), pytest.raises(ValueError, match=message):
        call()
    assert time.process_time() - t0 < 1.0


def test_limits_are_inclusive():
    """The documented limits themselves are accepted."""
    k = F.MAX_HERMITE_ORDER
    assert F.get(f"he{k}").expr == sympy.expand(sympy.hermite_prob(k, z))
    assert F.safe_expression(f"z**{F.MAX_EXPONENT} + z**-{F.MAX_EXPONENT}") == z**64 + z**-64
    assert F.safe_expression("tanh(" * F.MAX_EXPRESSION_DEPTH + "z" + ")" * F.MAX_EXPRESSION_DEPTH).count(sympy.tanh) \
        == F.MAX_EXPRESSION_DEPTH
    assert F.multi_index_target(f"h{F.MAX_TARGET_DIRECTIONS}")[1] == F.MAX_TARGET_DIRECTIONS
    assert F.multi_index_target("h1", k=F.MAX_TARGET_DIRECTIONS)[1] == F.MAX_TARGET_DIRECTIONS
    long_sum = " + ".join(f"h{i}" for i in range(1, 201))     # a long chain is one level deep
    assert F.multi_index_target(long_sum)[1] == 200
    assert F.safe_expression("exp(-z**2/2)*sin(z) + exp(tanh(exp(z)))") is not None  # one exp level


# ---------------------------------------------------------------------------------- equivalence
def _reference(text: str, variables: str) -> sympy.Expr:
    """The parser before issue 16 (sympy.parse_expr); only ever given trusted strings here."""
    if variables == "z":
        e = sympy.parse_expr(text, local_dict={"z": z})
        return e.xreplace({s: z for s in e.free_symbols if s.name == "z" and s != z})
    local = {n: sympy.Lambda(z, F.get(n).expr) for n in F.names()
             if n.isidentifier() and not n.startswith("_") and not re.fullmatch(r"h([1-9][0-9]*)", n)}
    e = sympy.parse_expr(text, local_dict=local)
    return e.xreplace({s: sympy.Symbol(str(s), real=True) for s in e.free_symbols})


PROJECT_ACTIVATION_STRINGS = [
    "tanh(z) + z**3/10", "erf(z/sqrt(2))", "z**3 - 3*z", "tanh(z)", "tanh(z/2)", "z*tanh(z)",
    "tanh(z) + z/7 + 1/11", "tanh(z) + z/13", "log(1 + exp(z))", "Max(z, 0)", "Max(0, z - 1)",
    "Abs(z)", "exp(z)", "-2*Max(0, -z/2)", "3*sign(-z/5)", "erf(2*z)/3", "tanh(2*z) + z**2/3 - erf(z)/5",
    "tanh(0.5*z) + (-1.25)*z**2", "tanh(2.220446049250313e-16*z) + (1e-05)*z**2",
]
PROJECT_TARGET_STRINGS = [
    "(h1 + h2)/2 + (h1**2 + h2**2 - 2)/4 + (he4(h1) + he4(h2))/48", "(h1 + h1**2 + h2 - h2**2)/2",
    "erf(h1) + h1*h2", "erf((h1 + h2)/sqrt(2))", "h1 + h1*h2 + h1*h2*h3", "h1*h2", "h1/sqrt(2) + h1*h2",
    "relu((h1 + h2)/sqrt(2))", "relu(h1) + he2(h2) + sign(h3)", "relu(h1) + he2(h2)*h1",
    "relu(h1) + hermite_prob(3, h2)", "relu(h1) - 1/sqrt(2*pi)", "relu(h1)", "sin(h1)", "tanh(h1)",
    "he2(h1) + he3(h2)", "h1 + h1**2", "h1 - h1**2", "4*h1 + h1**2", "h2", "3", "h1 - h1/2 + h1**2*h2**2",
]


def test_registered_activations_parse_to_the_same_expression():
    """str() of every registered activation (and its derivative) reads back to itself, exactly as
    the old parser read it. Only the public registry: other tests register internal forms
    (names starting with "_") whose printed text sympy itself does not read back to the same tree."""
    checked = 0
    for name in F.names():
        if name.startswith("_"):
            continue
        act = F.get(name)
        for form in (act.expr, act.derivative_expr, act.numeric_expr, act.numeric_derivative_expr):
            text = str(form)
            if "log1p" in text:  # the codegen function of softplus' numeric form: not in strings
                continue
            assert F.safe_expression(text) == _reference(text, "z") == form, (name, text)
            checked += 1
    assert checked >= 4 * 15 - 2


@pytest.mark.parametrize("name", sorted(F.TARGETS))
def test_named_targets_parse_to_the_same_expression(name):
    expr, k = F.multi_index_target(name)
    assert expr == _reference(F.TARGETS[name], "h") and k == 2


def test_project_expression_strings_parse_to_the_same_expression():
    for text in PROJECT_ACTIVATION_STRINGS:
        assert F.safe_expression(text) == _reference(text, "z"), text
    for text in PROJECT_TARGET_STRINGS:
        assert F.multi_index_expression(text)[0] == _reference(text, "h"), text


def _grammar(variables):
    leaves = st.one_of(
        st.sampled_from(variables + ["pi", "E"]),
        st.integers(0, 12).map(str),
        st.sampled_from(["0.5", "2.25", "1e-3", "3.", ".75", "1.5e2", "0.1"]),
        st.sampled_from([f"exp({v})" for v in variables] + [f"exp(-{v}**2/2)" for v in variables]),
    )
    calls = ["tanh", "erf", "sqrt", "Abs", "sign", "atan", "erfc", "log", "asinh"]
    if variables[0] == "h1":
        calls += ["relu", "he2", "he3", "cube", "erf_scaled"]

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.sampled_from(["2", "3", "-1", "(1/2)", "0.5", "-2"])).map(lambda t: f"({t[0]})**{t[1]}"),
            inner.map(lambda a: f"-{a}"),
            st.tuples(st.sampled_from(calls), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(["Max", "Min"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        )
    return st.recursive(leaves, extend, max_leaves=10)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=_grammar(["z"]))
def test_random_activation_strings_parse_as_before(text):
    _same_as_reference(text, "z")


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=_grammar(["h1", "h2", "h3"]))
def test_random_target_strings_parse_as_before(text):
    _same_as_reference(text, "h")


def _same_as_reference(text, variables):
    old = _reference(text, variables)
    if old.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        with pytest.raises(ValueError, match="not finite"):
            F.safe_expression(text, variables=variables)
        return
    try:
        new = F.safe_expression(text, variables=variables)
    except ValueError as err:  # only the growth rule may refuse what the old parser took
        assert "exponentially growing" in str(err), (text, err)
        return
    assert new == old, (text, new, old)


def test_every_safe_function_compiles_and_evaluates():
    """Each whitelisted function has a numpy and a Numba printer (printed, not compiled, here)."""
    calls = {"hermite_prob": "hermite_prob(3, z)", "hermite": "hermite(3, z)", "log": "log(z, 2)",
             "Heaviside": "Heaviside(z - 0.1, 0.5)", "Max": "Max(z, 0.2, -z)", "Min": "Min(z, 1)",
             "max": "max(z, 0)", "min": "min(z, 0)"}
    for name in F.SAFE_FUNCTIONS:
        text = calls.get(name, f"{name}(z)")
        act = F.register("test_safe_fn", text, replace=True)
        x = 0.7
        assert act.numpy(x) == pytest.approx(float(act.expr.subs(z, x)), rel=1e-13), text
        assert "def value(z)" in F._kernel_source(act.numeric_expr, act.numeric_derivative_expr)
    assert F.safe_expression("max(z, 0)") == F.get("relu").expr
    assert F.safe_expression("abs(z)") == sympy.Abs(z)
