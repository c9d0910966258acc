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


@settings(max_examples=30, deadline=None)
@given(shift=st.floats(-5, 5), scale=st.floats(0.01, 10), seeds=st.integers(2, 500))
def test_agreement_invariant_under_affine_rescaling(shift, scale, seeds):
    """z-scores do not change when theory and data are shifted and rescaled together."""
    t, m, s = np.array([1.0, 2.0]), np.array([1.3, 1.8]), np.array([0.5, 0.4])
    _, z1 = agreement(t, m, s, seeds)
    _, z2 = agreement(scale * t + shift, scale * m + shift, scale * s, seeds)
    np.testing.assert_allclose(z1, z2, rtol=1e-9, atol=1e-9)


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
