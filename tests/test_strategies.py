"""asymptotics.testing: the strategies draw valid objects, reach the edge cases (rank 0, κ at the
limit, noiseless, zero target), reject bad arguments by name; docs/testing.md's example runs."""
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from asymptotics import functions
from asymptotics import testing as T
from asymptotics.giant_step import MultiIndexTarget
from asymptotics.ridge import GaussianCovariateModel

EPS = np.finfo(float).eps
# find() with the project's determinism: the same search on every machine
FIND = settings(derandomize=True, database=None, max_examples=2000,
                suppress_health_check=list(HealthCheck))


def _cond(w):
    pos = w[w > 0]
    return pos.max() / pos.min()


# --------------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(data=st.data(), min_size=st.integers(0, 4), extra=st.integers(0, 6),
       max_condition=st.sampled_from([1.0, 10.0, 1e6, 1e12]), order=st.sampled_from(["any", "ascending", "descending"]))
def test_spectra_keep_their_guarantees(data, min_size, extra, max_condition, order):
    max_size = min_size + extra
    rank = data.draw(st.none() | st.integers(0, max_size), label="rank")
    w = data.draw(T.spectra(min_size=min_size, max_size=max_size, rank=rank, max_condition=max_condition,
                            scale=(1e-2, 1e2), order=order))
    assert w.dtype == np.float64 and w.ndim == 1 and min_size <= w.size <= max_size
    assert np.all(w >= 0)
    r = int(np.count_nonzero(w))
    if rank is not None:
        assert r == rank
    if r:
        assert 1e-2 <= w.max() <= 1e2
        assert 1.0 <= _cond(w) <= max_condition * (1 + 4 * EPS)
    if order == "ascending":
        assert np.all(np.diff(w) >= 0)
    if order == "descending":
        assert np.all(np.diff(w) <= 0)


def test_spectra_reach_rank_zero_and_both_ends_of_the_condition_number():
    assert not find(T.spectra(), lambda w: np.count_nonzero(w) == 0, settings=FIND).any()
    w = find(T.spectra(max_condition=1e12), lambda w: np.count_nonzero(w) >= 2 and _cond(w) >= 1e12 * (1 - 1e-12),
             settings=FIND)
    assert _cond(w) == pytest.approx(1e12, rel=1e-12)
    w = find(T.spectra(min_rank=3), lambda w: _cond(w) == 1.0, settings=FIND)  # all positive equal
    assert np.count_nonzero(w) >= 3
    # rank-deficient but not zero, and full rank
    find(T.spectra(), lambda w: 0 < np.count_nonzero(w) < w.size, settings=FIND)
    find(T.spectra(min_size=3), lambda w: np.count_nonzero(w) == w.size, settings=FIND)
    # exactly tied inner eigenvalues
    find(T.spectra(rank=5), lambda w: len(set(w[w > 0])) < 5 and _cond(w) > 1, settings=FIND)


# --------------------------------------------------------------------------------------------
# PSD matrices
# --------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(T.psd_matrices(max_size=7, return_spectrum=True))
def test_psd_matrices_are_symmetric_with_the_drawn_spectrum(pair):
    m, w = pair
    p = w.size
    assert m.shape == (p, p)
    np.testing.assert_array_equal(m, m.T)
    tol = 4 * p * EPS * max(w.max(initial=0.0), 1e-300)
    np.testing.assert_allclose(np.linalg.eigvalsh(m), np.sort(w), rtol=0, atol=tol)
    if not w.any():
        assert not m.any()


def test_random_rotation_is_orthogonal_and_reproducible():
    q = T.random_rotation(6, 3)
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-14)
    np.testing.assert_array_equal(q, T.random_rotation(6, 3))
    assert not np.array_equal(q, T.random_rotation(6, 4))
    assert T.random_rotation(0, 1).shape == (0, 0)


# --------------------------------------------------------------------------------------------
# Gaussian covariate models
# --------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(model=T.gaussian_covariate_models(max_size=8), n=st.floats(0.5, 50.0), lam=st.floats(1e-4, 10.0))
def test_models_are_valid_and_solvable(model, n, lam):
    assert isinstance(model, GaussianCovariateModel)
    assert 0 <= model.rank <= model.p and model.residual_variance >= 0
    assert model.residual_variance <= 1.0 + 1e-9  # noise in [0, 1]
    explained = math.fsum(model.b_eigen**2 / model.eigenvalues) if model.rank else 0.0
    assert model.y2 == pytest.approx(explained + model.residual_variance, rel=1e-12, abs=1e-300)
    res = model.ridge(n, lam)
    assert bool(res.converged)
    assert float(res.test_error) >= model.residual_variance * (1 - 1e-9)
    assert float(res.train_error) <= float(res.test_error) * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(T.gaussian_covariate_models(max_size=6, form="matrix", max_condition=1e6, min_rank=1), st.data())
def test_matrix_models_keep_the_rank_of_their_spectrum(model, data):
    """The rotated Ω has the rank of the drawn spectrum, and the model agrees with the one built
    from its own spectrum (the rotation changes nothing in the theory)."""
    assert model.eigenvectors is not None
    twin = GaussianCovariateModel.from_spectrum(model.eigenvalues, model.b_eigen, model.y2)
    n = data.draw(st.floats(0.5, 30.0), label="n")
    assert float(model.ridge(n, 0.1).test_error) == pytest.approx(float(twin.ridge(n, 0.1).test_error), rel=1e-12)


@pytest.mark.parametrize("form", ["spectrum", "matrix"])
def test_models_reach_rank_zero_noiseless_and_rank_deficient(form):
    strat = T.gaussian_covariate_models(form=form)
    m = find(strat, lambda m: m.rank == 0, settings=FIND)
    assert m.residual_variance == m.y2
    find(strat, lambda m: m.rank > 0 and m.residual_variance == 0, settings=FIND)
    find(strat, lambda m: 0 < m.rank < m.p, settings=FIND)
    find(strat, lambda m: m.rank > 0 and not m.b_eigen.any(), settings=FIND)  # pure noise
    # a rank-deficient, noiseless model solved at λ = 0 on both sides of n = rank
    m = find(strat, lambda m: 2 <= m.rank < m.p and m.residual_variance == 0, settings=FIND)
    res = m.ridge(np.array([m.rank - 0.5, m.rank + 0.5]), 0.0)
    assert np.all(np.isfinite(res.test_error))


def test_rotated_zero_model_is_exactly_zero():
    m = find(T.gaussian_covariate_models(form="matrix", min_size=3), lambda m: m.rank == 0, settings=FIND)
    assert m.rank == 0 and m.p >= 3 and float(m.ridge(2.0, 0.1).test_error) == pytest.approx(m.y2)


# --------------------------------------------------------------------------------------------
# activations and multi-index targets
# --------------------------------------------------------------------------------------------
def test_activations_are_registered_names_and_filters_hold():
    drawn = set()

    @settings(max_examples=200, deadline=None)
    @given(T.activations())
    def collect(name):
        drawn.add(name)

    collect()
    assert drawn <= set(functions.names()) and not any(n.startswith("_") for n in drawn)
    assert {"tanh", "relu", "sign"} <= drawn
    odd = _pool(T.activations(odd=True))
    assert "tanh" in odd and "relu" not in odd and all(functions.get(n).is_odd for n in odd)
    poly = _pool(T.activations(polynomial=True))
    assert "cube" in poly and "tanh" not in poly
    assert _pool(T.activations(names=["tanh", "relu"], exclude="relu")) == {"tanh"}


def _pool(strategy):
    """The names a sampled_from strategy draws from."""
    return set(getattr(strategy, "wrapped_strategy", strategy).elements)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T.multi_index_targets(max_k=3, max_degree=3))
def test_multi_index_targets_are_valid(t):
    assert isinstance(t, MultiIndexTarget) and 1 <= t.k <= 3
    assert t.is_polynomial
    var = t.variance(exact=True)
    assert var >= 0 and t.plateau_error(exact=True) >= 0
    assert t.plateau_error(exact=True) <= var
    assert t.plateau_error(sympy.eye(t.k), exact=True) == 0
    # exact rationals throughout
    assert isinstance(var, sympy.Rational)


def test_multi_index_targets_reach_the_edge_cases():
    s = T.multi_index_targets()
    assert find(s, lambda t: t.expr == 0, settings=FIND).variance() == 0
    find(s, lambda t: t.expr.is_number and t.expr != 0, settings=FIND)         # constant
    find(s, lambda t: not t.expr.is_number and t.variance() > 0 and not np.any(t.first_order()),
         settings=FIND)                                                         # C1 = 0
    find(s, lambda t: len(t.expr.free_symbols) < t.k, settings=FIND)           # ignored directions
    named = {str(MultiIndexTarget(n).expr) for n in functions.TARGETS}
    find(s, lambda t: str(t.expr) in named, settings=FIND)


# --------------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, word", [
    (lambda: T.spectra(max_size=-1), "max_size"),
    (lambda: T.spectra(min_size=3, max_size=2), "max_size"),
    (lambda: T.spectra(rank=5, max_size=3), "rank"),
    (lambda: T.spectra(rank=1.5), "rank"),
    (lambda: T.spectra(max_condition=0.5), "max_condition"),
    (lambda: T.spectra(max_condition=math.inf), "max_condition"),
    (lambda: T.spectra(scale=(0.0, 1.0)), "scale"),
    (lambda: T.spectra(scale=(2.0, 1.0)), "scale"),
    (lambda: T.spectra(scale=1.0), "scale"),
    (lambda: T.spectra(order="random"), "order"),
    (lambda: T.spectra(min_rank=3, max_rank=2), "max_rank"),
    (lambda: T.psd_matrices(rank=True), "rank"),
    (lambda: T.gaussian_covariate_models(noise=(-1.0, 1.0)), "noise"),
    (lambda: T.gaussian_covariate_models(form="dense"), "form"),
    (lambda: T.activations(names=["no-such"]), "names"),
    (lambda: T.activations(names="tanh"), "names"),
    (lambda: T.activations(names=["tanh"], exclude=["tanh"]), "activation"),
    (lambda: T.multi_index_targets(min_k=0), "min_k"),
    (lambda: T.multi_index_targets(min_k=3, max_k=2), "max_k"),
    (lambda: T.multi_index_targets(max_degree=-1), "max_degree"),
    (lambda: T.random_rotation(-1, 0), "p"),
])
def test_bad_arguments_name_the_argument(call, word):
    with pytest.raises((ValueError, TypeError), match=word):
        call()


# --------------------------------------------------------------------------------------------
# docs/testing.md: the example of a user testing their own model runs as written
# --------------------------------------------------------------------------------------------
def _doc_blocks():
    """The python blocks of docs/testing.md, each padded with blank lines so that a traceback
    names its line in the page."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    return ["\n" * text[:m.start(1)].count("\n") + m.group(1)
            for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]


def test_docs_example_runs_and_its_tests_pass():
    blocks = _doc_blocks()
    assert len(blocks) >= 2
    ran = []
    for src in blocks:
        ns = {"__name__": "docs_testing_example"}
        exec(compile(src, "docs/testing.md", "exec"), ns)
        for name, fn in ns.items():
            if name.startswith("test_") and callable(fn):
                fn()
                ran.append(name)
    assert "test_my_solver_agrees_with_asymptotics" in ran and len(ran) >= 5


def test_docs_example_catches_a_solver_bug():
    """The example's property tests have teeth: a solver that drops the (1 − df2/n) factor
    fails them."""
    ns = {"__name__": "docs_testing_example"}
    exec(compile(_doc_blocks()[0], "docs/testing.md", "exec"), ns)
    good = ns["my_ridge_test_error"]

    def buggy(w, b, y2, n, lam):
        w_ = np.asarray(w, dtype=float)
        kappa_free = good(w, b, y2, n, lam)  # right value, then the wrong denominator
        keep = w_ > 0
        return kappa_free * (1 - np.sum(w_[keep] ** 2 / (w_[keep] + lam) ** 2) / n)

    check = ns["test_my_solver_agrees_with_asymptotics"].hypothesis.inner_test  # one example, no search
    model = GaussianCovariateModel.from_spectrum([1.0, 0.5, 0.0], [0.3, 0.2, 0.0], 0.5)
    check(model, 2.0, 0.1)  # the right solver passes ...
    ns["my_ridge_test_error"] = buggy
    with pytest.raises(AssertionError):
        check(model, 2.0, 0.1)  # ... the buggy one does not


# --------------------------------------------------------------------------------------------
# tests/conftest.py: the same examples on every run and every machine
# --------------------------------------------------------------------------------------------
def test_hypothesis_draws_the_same_examples_on_every_run_by_default():
    if os.environ.get("HYPOTHESIS_PROFILE", "deterministic") not in ("deterministic", "ci") or any(
            a.startswith("--hypothesis-profile") for a in sys.argv):
        pytest.skip("another hypothesis profile was chosen explicitly")
    assert settings.default.derandomize is True and settings.default.database is None

    def run():
        seen = []

        @given(st.integers(), st.floats(allow_nan=False))
        def probe(i, x):
            seen.append((i, x))

        probe()
        return seen

    first, second = run(), run()
    assert len(first) > 10 and first == second
