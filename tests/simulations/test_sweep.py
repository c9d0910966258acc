"""The sweep engine: seeding, backends, cache, resume after SIGKILL, failures."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from simulations.ridge import ridge_task
from simulations.sweep import CorruptCacheWarning, SweepError, run_sweep, stable_hash, task_seed

SPEC = {"kind": "power-law", "p": 40, "alpha": 1.5, "beta": 1.0}


def points(ns=(20, 60, 120)):
    return [{"spectrum": SPEC, "y2": 1.01, "n": n, "lams": [0.0, 1e-2]} for n in ns]


def as_array(res):
    return np.array([np.concatenate([r["test_error"], r["train_error"]]) for r in res.results])


def test_stable_hash_and_seed_are_canonical():
    assert stable_hash({"a": 1, "b": [1.0, 2]}) == stable_hash({"b": [1.0, 2], "a": np.int64(1)})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    s1 = task_seed(0, "exp", {"n": 5}, 3).generate_state(4)
    assert np.array_equal(s1, task_seed(0, "exp", {"n": 5}, 3).generate_state(4))
    for other in (task_seed(1, "exp", {"n": 5}, 3), task_seed(0, "exp2", {"n": 5}, 3),
                  task_seed(0, "exp", {"n": 6}, 3), task_seed(0, "exp", {"n": 5}, 4)):
        assert not np.array_equal(s1, other.generate_state(4))
    with pytest.raises(TypeError, match="JSON-like"):
        stable_hash({"f": object()})


def test_results_do_not_depend_on_order_or_grid():
    a = run_sweep(ridge_task, points(), 3, experiment="t")
    b = run_sweep(ridge_task, points()[::-1], 3, experiment="t")
    c = run_sweep(ridge_task, points((60,)), [1], experiment="t")
    A, B = as_array(a), as_array(b)
    assert np.array_equal(A, np.concatenate([B[6:9], B[3:6], B[0:3]]))
    assert np.array_equal(A[4], as_array(c)[0])  # (n = 60, seed 1) alone
    assert a.stats.computed == 9 and a.stats.cached == 0


@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_backends_give_bitwise_identical_results(backend):
    serial = run_sweep(ridge_task, points(), 3, experiment="t")
    other = run_sweep(ridge_task, points(), 3, experiment="t", backend=backend, workers=2)
    assert np.array_equal(as_array(serial), as_array(other))


def test_cache_skips_finished_tasks_and_detects_corruption(tmp_path):
    first = run_sweep(ridge_task, points(), 2, experiment="t", cache=tmp_path)
    files = sorted((tmp_path / "t").glob("*.npz"))
    assert first.stats.computed == 6 and len(files) == 6
    again = run_sweep(ridge_task, points(), 2, experiment="t", cache=tmp_path)
    assert again.stats.cached == 6 and again.stats.computed == 0
    assert np.array_equal(as_array(first), as_array(again))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    raw = bytearray(files[1].read_bytes())
    raw[-3] ^= 0xFF  # one flipped byte
    files[1].write_bytes(bytes(raw))
    with pytest.warns(CorruptCacheWarning, match="corrupt"):
        third = run_sweep(ridge_task, points(), 2, experiment="t", cache=tmp_path)
    assert third.stats.corrupt == 2 and third.stats.computed == 2 and third.stats.cached == 4
    assert np.array_equal(as_array(first), as_array(third))


def test_code_version_invalidates_the_cache(tmp_path):
    run_sweep(ridge_task, points(), 1, experiment="t", cache=tmp_path, code_version="v1")
    res = run_sweep(ridge_task, points(), 1, experiment="t", cache=tmp_path, code_version="v2")
    assert res.stats.computed == 3


def test_a_failing_task_is_reported_and_the_others_are_kept(tmp_path):
    bad = points() + [{"spectrum": SPEC, "y2": 1.01, "n": -5, "lams": [0.0]}]
    with pytest.raises(SweepError, match=r"2 of 8 tasks failed") as info:
        run_sweep(ridge_task, bad, 2, experiment="t", cache=tmp_path)
    err = info.value
    assert all(f["params"]["n"] == -5 for f in err.failures)
    assert '"n": -5' in str(err) and "n must be a positive integer" in str(err)
    assert err.result.stats.computed == 6
    rerun = run_sweep(ridge_task, points(), 2, experiment="t", cache=tmp_path)
    assert rerun.stats.cached == 6 and rerun.stats.computed == 0


def test_failure_in_a_worker_process(tmp_path):
    bad = points((20,)) + [{"spectrum": {"kind": "nonsense"}, "y2": 1.0, "n": 5, "lams": [0.0]}]
    res = run_sweep(ridge_task, bad, 1, experiment="t", backend="processes", workers=2,
                    raise_on_failure=False)
    assert res.stats.failed == 1 and res.results[1] is None and res.results[0] is not None
    assert "spec['kind']" in res.failures[0]["error"]


def test_sigkill_mid_sweep_then_resume(tmp_path):
    """A real process killed with SIGKILL: the rerun recomputes only unfinished tasks."""
    params = [{"spectrum": {"kind": "power-law", "p": 250, "alpha": 1.5, "beta": 1.0}, "y2": 1.01,
               "n": n, "lams": [0.0, 1e-3]} for n in (1500, 1600, 1700, 1800, 1900, 2000)]
    script = textwrap.dedent(f"""
        from simulations.ridge import ridge_task
        from simulations.sweep import run_sweep
        run_sweep(ridge_task, {params!r}, 4, experiment="kill", cache={str(tmp_path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache_dir = tmp_path / "kill"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache_dir.glob("*.npz"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(cache_dir.glob("*.npz")))
    assert 3 <= finished < 24, "the sweep must have been killed mid-way"
    resumed = run_sweep(ridge_task, params, 4, experiment="kill", cache=tmp_path)
    assert resumed.stats.cached == finished and resumed.stats.computed == 24 - finished
    fresh = run_sweep(ridge_task, params, 4, experiment="kill")
    assert np.array_equal(as_array(resumed), as_array(fresh))


def test_progress_is_silent_when_quiet_or_not_a_terminal(capsys):
    run_sweep(ridge_task, points((20,)), 2, experiment="t")
    assert capsys.readouterr().err == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        run_sweep(ridge_task, points(), 1, experiment="t", backend="mpi")
    with pytest.raises(ValueError, match="workers"):
        run_sweep(ridge_task, points(), 1, experiment="t", workers=0)
    with pytest.raises(ValueError, match="seeds"):
        run_sweep(ridge_task, points(), 0, experiment="t")
    with pytest.raises(ValueError, match="scheduler"):
        run_sweep(ridge_task, points(), 1, experiment="t", scheduler="tcp://x:1")
    with pytest.raises(TypeError, match="module-level"):
        run_sweep(lambda p, s: 0, points(), 1, experiment="t")


def _echo_seed(params, seed):
    """A task that returns its first random numbers (module level: workers import it)."""
    return np.random.default_rng(seed).integers(0, 2**62, size=3).tolist()


def test_paired_fields_share_the_seed_and_the_rest_do_not():
    pts = [{"d": d, "n": n} for d in (4, 8) for n in (10, 20, 30)]
    res = run_sweep(_echo_seed, pts, 2, experiment="t", paired=("n",))
    by = {(t.params["d"], t.params["n"], t.seed_index): r for t, r in zip(res.tasks, res.results)}
    for d in (4, 8):
        for s in (0, 1):
            assert by[(d, 10, s)] == by[(d, 20, s)] == by[(d, 30, s)]  # one replica for every n of d
    assert by[(4, 10, 0)] != by[(8, 10, 0)] and by[(4, 10, 0)] != by[(4, 10, 1)]
    unpaired = run_sweep(_echo_seed, pts, 1, experiment="t")
    assert unpaired.results[0] != unpaired.results[1]


def test_sweep_config_validates_once_and_carries_everything():
    from simulations.sweep import SweepConfig

    cfg = SweepConfig(seeds=2, root_seed=3)
    a = run_sweep(ridge_task, points((20,)), experiment="t", config=cfg)
    b = run_sweep(ridge_task, points((20,)), 2, experiment="t", root_seed=3)
    assert np.array_equal(as_array(a), as_array(b)) and len(a.results) == 2
    for bad, match in (({"seeds": 0}, "seeds"), ({"root_seed": -1}, "seed"), ({"threads": 0}, "threads"),
                       ({"workers": True}, "workers"), ({"backend": "x"}, "backend")):
        with pytest.raises(ValueError, match=match):
            SweepConfig(**bad)
    with pytest.raises(TypeError, match="either config"):
        run_sweep(ridge_task, points(), experiment="t", config=cfg, backend="serial")
