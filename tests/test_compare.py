"""The comparison layer: agreement metrics and tidy output."""
import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics.compare import CSV_COLUMNS, Series, agreement, series_agreement, tidy_rows, write_csv


def test_agreement_z_scores_use_the_standard_error():
    ag, z = agreement(theory=[1.0, 2.0, 3.0], sim_mean=[1.1, 2.0, 2.0], sim_std=[0.2, 0.1, 0.1], n_seeds=4)
    np.testing.assert_allclose(z, [1.0, 0.0, -20.0])
    assert ag.n_points == 3
    assert ag.fraction_within_3sigma == pytest.approx(2 / 3)
    assert ag.max_abs_z == pytest.approx(20.0)
    assert ag.max_relative_deviation == pytest.approx(1 / 3)


def test_agreement_excludes_infinite_theory_and_single_seeds():
    ag, z = agreement([np.inf, 1.0, 1.0], [5.0, 1.0, 1.2], [1.0, 0.1, 0.1], [10, 10, 1])
    assert ag.n_points == 1 and ag.n_excluded == 2
    assert np.isnan(z[0]) and np.isnan(z[2]) and z[1] == 0


def test_agreement_zero_spread():
    _, z = agreement([1.0, 1.0], [1.0, 2.0], [0.0, 0.0], 5)
    assert z[0] == 0 and np.isinf(z[1])


def test_agreement_bad_inputs():
    with pytest.raises(ValueError, match="n_seeds"):
        agreement([1.0], [1.0], [0.1], 0)
    with pytest.raises(ValueError, match="sim_std"):
        agreement([1.0], [1.0], [-0.1], 3)


_finite = st.floats(-1e3, 1e3, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(t=st.lists(_finite, min_size=1, max_size=6), data=st.data(),
       shift=st.floats(-5, 5), scale=st.floats(0.01, 10), sign=st.sampled_from([1.0, -1.0]))
def test_agreement_z_is_the_standardised_difference_and_transforms_with_the_data(t, data, shift, scale, sign):
    """z = (mean − theory)·√S/std point by point; under (theory, mean) → a·(theory, mean) + c and
    std → |a|·std the z-scores are multiplied by sign(a) and the summary keeps |z|, while the
    relative deviation |mean − theory|/|theory| is NOT invariant under a shift."""
    k = len(t)
    t = np.array(t)
    m = t + np.array(data.draw(st.lists(st.floats(-10, 10), min_size=k, max_size=k), label="diff"))
    s = np.array(data.draw(st.lists(st.floats(0.05, 5), min_size=k, max_size=k), label="std"))
    seeds = np.array(data.draw(st.lists(st.integers(2, 500), min_size=k, max_size=k), label="seeds"))
    ag, z = agreement(t, m, s, seeds)
    np.testing.assert_allclose(z, (m - t) * np.sqrt(seeds) / s, rtol=1e-12)
    az = np.abs(z)
    assert ag.n_points == k and ag.n_excluded == 0
    assert ag.max_abs_z == pytest.approx(az.max(), rel=1e-12)
    assert ag.mean_abs_z == pytest.approx(az.mean(), rel=1e-12)
    assert ag.fraction_within_3sigma == np.mean(az < 3)
    a = sign * scale
    ag2, z2 = agreement(a * t + shift, a * m + shift, scale * s, seeds)
    np.testing.assert_allclose(z2, sign * z, rtol=1e-6, atol=1e-6 * (1 + az.max()))
    assert ag2.mean_abs_z == pytest.approx(ag.mean_abs_z, rel=1e-6, abs=1e-6)


def test_agreement_three_sigma_boundary_and_relative_deviation():
    """|z| = 3 exactly is outside "within 3σ"; the relative deviation divides by |theory|."""
    ag, z = agreement([1.0, 1.0, -2.0], [1.75, 0.5, -3.25], [1.0, 1.0, 1.0], 16)  # se = 0.25, all exact
    np.testing.assert_array_equal(z, [3.0, -2.0, -5.0])
    assert ag.fraction_within_3sigma == pytest.approx(1 / 3)
    assert ag.max_relative_deviation == pytest.approx(0.75)
    assert ag.mean_abs_z == pytest.approx(10 / 3)


def test_tidy_csv_round_trip(tmp_path):
    series = [
        Series(panel="a", name="λ = 0", theory_x=np.array([1.0, 2.0]), theory_y=np.array([0.5, np.inf]),
               sim_x=np.array([1.0]), sim_mean=np.array([0.1 + 0.2]), sim_std=np.array([0.01]), n_seeds=7,
               theory_at_sim=np.array([0.3])),
    ]
    path = write_csv(tidy_rows(series), tmp_path / "x.csv")
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert [r["kind"] for r in rows] == ["theory", "theory", "simulation"]
    assert float(rows[2]["y"]) == 0.1 + 0.2  # full precision survives the round trip
    assert rows[2]["n_seeds"] == "7" and rows[0]["y_err"] == ""
    summary = series_agreement(series)
    assert summary["overall"]["n_points"] == 1


def test_seed_stack_statistics():
    from asymptotics.compare import SeedStack

    rng = np.random.default_rng(0)
    v = rng.standard_normal((7, 3, 2))
    s = SeedStack(v)
    assert s.n == 7
    np.testing.assert_allclose(s.mean, v.mean(axis=0))
    np.testing.assert_allclose(s.std, v.std(axis=0, ddof=1))
    np.testing.assert_allclose(s.sem, v.std(axis=0, ddof=1) / np.sqrt(7))
    assert np.all(SeedStack(v[:1]).std == 0)  # one seed: no spread, not NaN
    # the sweeper's layout results[i][s] (points × seeds) with dict results
    res = [[{"e": float(i + 10 * s)} for s in range(4)] for i in range(3)]
    st_ = SeedStack.of(res, "e", seed_axis=1)
    assert st_.values.shape == (4, 3)
    np.testing.assert_allclose(st_.mean, [15.0, 16.0, 17.0])
    with pytest.raises(ValueError, match="at least one seed"):
        SeedStack(np.empty((0, 2)))
