"""Hierarchical-polynomial experiments at quick size: the n/d³ picture, stated with error bars."""
import csv

import numpy as np
import pytest

from asymptotics import cli, experiments
from asymptotics.experiments import hierarchical as EH
from simulations import hierarchical as S


@pytest.fixture(scope="module")
def layerwise(tmp_path_factory):
    out = tmp_path_factory.mktemp("hl")
    meta = experiments.run("hierarchical-layerwise", quick=True, out=out)
    with open(out / "hierarchical-layerwise.csv") as fh:
        meta["rows"] = list(csv.DictReader(fh))
    return meta


def test_layerwise_feature_correlation_grows_with_n_over_d3_and_collapses(layerwise):
    """Mean |corr| over 5 seeds grows with n/d³, and d = 6, 8 agree at equal n/d³.

    Agreement across d is judged against its own error bar: at every n/d³ the difference of the
    two means is within 3 combined standard errors (per-seed |corr| spreads by ≈ 0.1, so the SE of
    a 5-seed mean is ≈ 0.05 and a fixed bound on the raw spread would fail for some root seeds
    whatever the implementation)."""
    notes = layerwise["notes"]
    sims = {}
    for r in layerwise["rows"]:
        if r["panel"] == "corr vs n/d³" and r["kind"] == "simulation" and r["series"] in ("d = 6", "d = 8"):
            sims.setdefault(r["series"], {})[float(r["x"])] = (float(r["y"]), float(r["y_err"]), int(r["n_seeds"]))
    common = sorted(set(sims["d = 6"]) & set(sims["d = 8"]))
    assert len(common) >= 3
    for x in common:
        (m6, s6, k6), (m8, s8, k8) = sims["d = 6"][x], sims["d = 8"][x]
        assert abs(m6 - m8) < 3 * np.hypot(s6 / np.sqrt(k6), s8 / np.sqrt(k8)), (x, m6, m8)
    for d in (6, 8):
        corr = np.array(list(notes[f"d = {d}"]["mean |corr| per κ"].values()))
        assert np.all(np.diff(corr) > 0), corr
        assert corr[-1] > 0.7 and corr[-1] - corr[0] > 0.4
        assert corr[-1] < notes[f"d = {d}"]["stage-1 correlation ceiling"]


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
    for bad in ("dims=[8.7]", "dims=[true]", "dims=[100000]", "dims=8"):
        assert cli.main(["reproduce", "hierarchical-layerwise", "--quick", "--set", bad, "--out", str(tmp_path)]) == 2
        assert "dims must be" in capsys.readouterr().err
    assert cli.main(["reproduce", "hierarchical-adam", "--quick", "--set", "max_steps=true", "--out", str(tmp_path)]) == 2
    assert "max_steps" in capsys.readouterr().err
    assert cli.main(["reproduce", "ridge-isotropic", "--quick", "--set", "dims=[5]", "--out", str(tmp_path)]) == 2
    assert "no option" in capsys.readouterr().err


def _probe(spec, seed):
    """What a replica fixes: the signs λ, the first-layer biases s and the first test points."""
    problem = S.make_problem(spec.d, seed)
    net = S.init_network(spec.d, spec.m1, spec.m2, seed)
    return {"lam": problem.lam, "s": net.s[:4], "test": problem.batch("test", 3)[0][:, 0]}


def test_replicas_are_paired_in_n_and_independent_across_d_methods_and_root_seeds():
    """The experiment's sweep: replica r of d is shared by every n of that d (paired=("n",)), and
    independent across replicas, d, methods and root seeds."""
    def per_d(d):
        return dict(m1=16, m2=8, n_test=64)

    def run(method, root_seed=0):
        sweep = experiments.Sweeper("hierarchical-layerwise-quick",
                                    experiments.SweepConfig(seeds=2, quiet=True, root_seed=root_seed))
        return EH._run(sweep, method, [6, 8], [0.5, 2.0, 8.0], per_d, task=_probe)

    lw, adam, other_root = run("layerwise"), run("adam"), run("layerwise", root_seed=1)
    for d in (6, 8):
        for key in ("lam", "s", "test"):
            v = lw[d][key].values                                   # (seeds, n, ...)
            assert np.array_equal(v[:, 0], v[:, 1]) and np.array_equal(v[:, 0], v[:, 2])  # every n
        t = lw[d]["test"].values
        assert not np.array_equal(t[0, 0], t[1, 0])                  # replicas differ
        assert not np.array_equal(t, adam[d]["test"].values)         # methods differ
        assert not np.array_equal(t, other_root[d]["test"].values)   # root seeds differ
    assert not np.array_equal(lw[6]["test"].values, lw[8]["test"].values)  # dimensions differ
