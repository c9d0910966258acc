"""Verdict checks: each kind passes on the right model and fails on a wrong one."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics import verdict as V
from asymptotics.compare import Series


def _sim(theory, seeds, rng, bias=0.0, sd=0.1):
    """Simulated means and stds over seeds around theory·(1 + bias)."""
    draws = theory * (1 + bias) + sd * rng.standard_normal((seeds, theory.size))
    return draws.mean(axis=0), draws.std(axis=0, ddof=1)


def test_pointwise_check_passes_for_the_right_theory_and_fails_for_a_shifted_one():
    rng = np.random.default_rng(0)
    theory = np.linspace(1, 2, 60)
    for seeds in (3, 10):
        ok = fail = 0
        for _ in range(50):
            m, s = _sim(theory, seeds, rng)
            good = V.pointwise_from_series([Series("p", "a", sim_x=theory, sim_mean=m, sim_std=s, n_seeds=seeds,
                                                   theory_at_sim=theory)])
            bad = V.pointwise_from_series([Series("p", "a", sim_x=theory, sim_mean=m, sim_std=s, n_seeds=seeds,
                                                  theory_at_sim=theory * 1.1)])
            ok += good.passed
            fail += not bad.passed
        assert ok >= 47  # the 99 % null quantile: about one false alarm in 100
        assert fail == 50  # a 10 % shift with σ = 0.1 per seed is seen every time


def test_allowed_misses_is_the_binomial_quantile():
    from scipy import stats

    for n, p in ((30, 0.058), (123, 0.0081), (10, 0.5)):
        assert V.allowed_misses([p] * n, 0.99) == int(stats.binom.ppf(0.99, n, p))


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-4, 4), seed=st.integers(0, 10**6))
def test_power_law_fit_recovers_the_exponent_and_its_interval_covers_it(a, seed):
    rng = np.random.default_rng(seed)
    x = np.geomspace(4, 64, 6)
    y = 2.0 * x**a * np.exp(0.02 * rng.standard_normal(6))
    fit = V.power_law_fit(x, y, 0.02 * y)
    assert abs(fit.exponent - a) < 6 * fit.se + 1e-9
    assert fit.interval[0] < fit.exponent < fit.interval[1]


def test_interval_check_rejects_an_exponent_fitted_on_data_made_with_exponent_2():
    rng = np.random.default_rng(1)
    x = np.array([4.0, 6.0, 8.0, 12.0, 16.0])
    for true, expect in ((3.0, True), (2.0, False)):
        y = x**true * np.exp(0.05 * rng.standard_normal(5))
        fit = V.power_law_fit(x, y, 0.05 * y)
        chk = V.interval_check("n* ∝ d³", 3.0, fit.exponent, fit.se, fit.interval)
        assert chk.passed is expect


def test_z_bound_and_sign_checks():
    assert V.z_check("plateau", 0.1432, 0.145, 0.002).passed
    assert not V.z_check("plateau", 0.1432, 0.1632, 0.002).passed  # a shifted plateau
    assert V.bound_check("below", 0.12, 0.005, 0.1432, margin=1.645).passed
    assert not V.bound_check("below", 0.14, 0.005, 0.1432, margin=1.645).passed
    assert V.bound_check("above", 0.5, 0.01, 0.1, side="above").passed
    assert V.sign_check("decay", -0.5, 0.1, (-0.7, -0.3)).passed
    assert not V.sign_check("decay", -0.1, 0.1, (-0.3, 0.1)).passed
    with pytest.raises(ValueError, match="side"):
        V.bound_check("x", 1, 1, 1, side="left")


def test_check_records_are_json_ready_and_print_one_line():
    import json

    c = V.interval_check("exponent", 3.0, 2.9, 0.2, (2.5, 3.3))
    d = c.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["passed"] is True and d["interval"] == [2.5, 3.3]
    assert "\n" not in c.line() and c.line().startswith("PASS exponent")
    assert V.checks_block([c, V.z_check("a", 0, 10, 1)])["passed"] is False
