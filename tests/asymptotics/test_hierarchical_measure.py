"""n*(d) by crossing, its seeded bootstrap and the exponent check (asymptotics.hierarchical_measure)."""
import math

import numpy as np
import pytest

from asymptotics.hierarchical_measure import bootstrap_crossing, crossing_exponent, crossing_n, seed_mean


def test_crossing_is_linear_in_log_n_between_the_bracketing_points():
    assert crossing_n([10, 100, 1000], [0.1, 0.25, 0.75], 0.5) == pytest.approx(math.sqrt(100 * 1000))
    assert crossing_n([10, 100], [0.2, 0.5], 0.5) == pytest.approx(100)
    assert math.isnan(crossing_n([10, 100], [0.6, 0.9], 0.5))   # above at the smallest n: not bracketed
    assert math.isnan(crossing_n([10, 100], [0.1, 0.3], 0.5))   # never crosses


def _synthetic(exponent, dims=(4, 5, 6, 8, 10), seeds=8, noise=0.05, seed=0):
    """Curves c(n) = 1/(1 + n*/n) (mean crossing 0.5 exactly at n* = 20 d^exponent), per-seed noise,
    on the experiment's kind of grid n = κ d³."""
    rng = np.random.default_rng(seed)
    kappas = np.geomspace(1 / 64, 64, 13)
    out = []
    for d in dims:
        ns = kappas * d ** 3
        c = 1.0 / (1.0 + 20.0 * d ** exponent / ns)
        out.append((d, ns, c + noise * rng.standard_normal((seeds, len(ns)))))
    return out


def _fit(data):
    dims = [d for d, _, _ in data]
    crossings = [bootstrap_crossing(ns, v, 0.5, seed=d) for d, ns, v in data]
    return crossing_exponent(dims, crossings, name="n* ∝ d^3")


def test_exponent_check_passes_on_cubic_data_and_fails_on_quadratic_data():
    fit3, check3 = _fit(_synthetic(3.0))
    assert check3.passed and abs(fit3.exponent - 3.0) < 0.2
    fit2, check2 = _fit(_synthetic(2.0))
    assert not check2.passed, fit2
    assert fit2.interval[0] < 2.0 < fit2.interval[1]   # the wrong model's own exponent is recovered


def test_bootstrap_is_seeded_and_brackets_the_point_estimate():
    d, ns, v = _synthetic(3.0)[2]
    a, b = bootstrap_crossing(ns, v, seed=1), bootstrap_crossing(ns, v, seed=1)
    assert a == b
    assert a["interval"][0] < a["n_star"] < a["interval"][1] and a["se"] > 0 and a["kept"] == 1.0


def test_too_few_crossings_is_a_failed_check_not_an_error():
    for k in (2, 3):  # fewer than four dimensions: no fit (a 3-point fit's t₁ interval means nothing)
        fit, check = _fit(_synthetic(3.0)[:k])
        assert fit is None and not check.passed


def test_seed_mean_is_the_mean_and_the_se_over_seeds():
    v = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    m, se = seed_mean(v)
    assert np.allclose(m, [3.0, 5.0]) and np.allclose(se, v.std(axis=0, ddof=1) / math.sqrt(3))
