"""Hierarchical-polynomial experiments at quick size: the n/d³ picture, stated with error bars."""
import numpy as np
import pytest

from asymptotics import cli, experiments


@pytest.fixture(scope="module")
def layerwise(tmp_path_factory):
    return experiments.run("hierarchical-layerwise", quick=True, out=tmp_path_factory.mktemp("hl"))


def test_layerwise_feature_correlation_grows_with_n_over_d3_and_collapses(layerwise):
    notes = layerwise["notes"]
    for d in (6, 8):
        corr = np.array(list(notes[f"d = {d}"]["mean |corr| per κ"].values()))
        assert np.all(np.diff(corr) > 0), corr
        assert corr[-1] > 0.7 and corr[-1] - corr[0] > 0.4
        assert corr[-1] < notes[f"d = {d}"]["stage-1 correlation ceiling"]
    # curves of different d at equal n/d³ agree far better than at equal n (d = 8 needs 2.4× the samples)
    assert notes["spread across d of mean |corr| at equal n/d³ (max over κ)"] < 0.15


def test_layerwise_beats_the_degree_3_level_at_large_n(layerwise):
    """At n = 32 d³ (d = 8) the median test loss over seeds is below the degree-≤3 kernel level."""
    d8 = layerwise["notes"]["d = 8"]
    assert d8["median over seeds of the test loss per κ"]["32"] < d8["kernel level 1 - E1 - E3"]


def test_adam_quick_learns_the_feature(tmp_path):
    """More samples, a better feature: the mean |corr| over κ ∈ {2, 8} exceeds that at κ = 0.5 by
    a clear margin for each d (3 seeds; single seeds spread by ≈ 0.2)."""
    notes = experiments.run("hierarchical-adam", quick=True, out=tmp_path)["notes"]
    for d in (6, 8):
        corr = notes[f"d = {d}"]["mean |corr| per κ"]
        assert (corr["2"] + corr["8"]) / 2 > corr["0.5"] + 0.15


def test_dims_option_and_bad_options(tmp_path, capsys):
    meta = experiments.run("hierarchical-layerwise", quick=True, out=tmp_path, seeds=2, options={"dims": [5]})
    assert meta["parameters"]["dims"] == [5]
    assert cli.main(["reproduce", "hierarchical-layerwise", "--quick", "--set", "dims=[1]", "--out", str(tmp_path)]) == 2
    assert "dims" in capsys.readouterr().err
    assert cli.main(["reproduce", "ridge-isotropic", "--quick", "--set", "dims=[5]", "--out", str(tmp_path)]) == 2
    assert "no option" in capsys.readouterr().err
