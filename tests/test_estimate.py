"""Cost estimates before a run: placeholders, calibration cache, `reproduce --estimate [--json]`.

The calibration is measured once per test session into a temporary folder
(``ASYMPTOTICS_CACHE_DIR``); estimates refer to an idle machine, so measured runs are compared by
their busy time (the smaller of wall and CPU time: on a shared machine the wall time of a
single-threaded run grows with the other jobs' load, its CPU time does not).
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from asymptotics import cli, experiments
from simulations import cost
from simulations.sweep import task_seed

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("tasks", "core_hours", "peak_memory_bytes", "wall_seconds")


@pytest.fixture(scope="session")
def calibration_dir(tmp_path_factory):
    """One calibration of every cost model for the session, in a temporary cache folder."""
    folder = tmp_path_factory.mktemp("asymptotics-cache")
    old = os.environ.get("ASYMPTOTICS_CACHE_DIR")
    os.environ["ASYMPTOTICS_CACHE_DIR"] = str(folder)
    cost.calibrate()
    yield folder
    if old is None:
        os.environ.pop("ASYMPTOTICS_CACHE_DIR", None)
    else:
        os.environ["ASYMPTOTICS_CACHE_DIR"] = old


def _structure(x):
    """Keys, types and shapes of a result (not its values)."""
    if isinstance(x, dict):
        return {k: _structure(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [type(x).__name__, [_structure(v) for v in x]]
    if isinstance(x, np.ndarray):
        return ["ndarray", x.shape, x.dtype.kind]
    if isinstance(x, np.generic):
        return ["scalar", x.dtype.kind]
    return type(x).__name__


@pytest.mark.parametrize("kind", sorted(cost.MODELS))
def test_placeholder_has_the_structure_of_the_real_result(kind):
    model = cost.MODELS[kind]
    fn = model.function()
    spec = model.instances()[0]
    real = fn(spec, task_seed(0, "placeholder-test", spec, 0))
    for s in (0, 3):
        assert _structure(cost.placeholder(fn, spec, s)) == _structure(real)


@pytest.mark.parametrize("kind", sorted(cost.MODELS))
def test_work_grows_with_the_instance_and_memory_is_positive(kind):
    model = cost.MODELS[kind]
    fn = model.function()
    small, large = model.instances()
    w_small, w_large = cost.work(fn, small), cost.work(fn, large)
    assert set(w_small) == set(cost.KINDS) and all(v >= 0 for v in w_small.values())
    assert cost.flops(fn, large) > cost.flops(fn, small) > 0
    assert cost.peak_bytes(fn, large) >= cost.peak_bytes(fn, small) > 0


@pytest.mark.parametrize("kind", sorted(cost.MODELS))
def test_peak_memory_formula_bounds_the_measured_peak(kind):
    """The formula is an upper bound of the arrays' peak (numpy's allocations, as tracemalloc sees
    them) and not more than 3 times it, on both calibration instances."""
    import tracemalloc

    model = cost.MODELS[kind]
    fn = model.function()
    for spec in model.instances():
        seed = task_seed(0, "memory-test", spec, 0)
        fn(spec, seed)  # caches and compiled kernels first
        tracemalloc.start()
        try:
            fn(spec, seed)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert 0.8 * peak <= cost.peak_bytes(fn, spec) <= 3 * peak


def test_ridge_flops_follow_the_svd_formula():
    """ridge_task's dominant cost is the thin SVD of the n × p sample: 4·n·p² + 8·p³ for n ≥ p."""
    from simulations.ridge import RidgeSpec, ridge_task

    spec = RidgeSpec(spectrum={"kind": "isotropic", "p": 100}, y2=1.01, n=1000, lams=(0.0,))
    assert cost.work(ridge_task, spec)["lapack"] == 4.0 * 1000 * 100**2 + 8.0 * 100**3


def test_no_model_for_an_unknown_task():
    with pytest.raises(TypeError, match="no cost model"):
        cost.work(test_no_model_for_an_unknown_task, {"n": 3})


def test_calibration_is_cached_and_recalibrates_a_changed_simulator(calibration_dir):
    path = calibration_dir / cost.CALIBRATION_FILE
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["machine"] == cost.machine() and set(data["tasks"]) == set(cost.MODELS)
    assert all(t["factor"] > 0 and t["overhead_s"] >= 0 for t in data["tasks"].values())
    assert cost.calibrate().recalibrated == []  # read back, nothing measured
    data["tasks"]["ridge"]["code"] = "0" * 16  # as if ridge.py had changed
    path.write_text(json.dumps(data))
    again = cost.calibrate(["ridge", "deep-features"])
    assert again.recalibrated == ["ridge"]
    assert json.loads(path.read_text())["tasks"]["ridge"]["code"] != "0" * 16


def test_makespan_of_list_scheduling():
    assert cost._makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert cost._makespan([1.0] * 4, 1) == 4.0
    assert cost._makespan([2.0, 2.0, 2.0], 3) == 2.0


def test_estimate_honours_seeds_options_and_workers(calibration_dir):
    base = experiments.estimate("ridge-isotropic", size="quick", seeds=2, figure=False)
    more = experiments.estimate("ridge-isotropic", size="quick", seeds=4, figure=False)
    assert more["tasks"] == 2 * base["tasks"] and more["core_hours"] > base["core_hours"]
    one = experiments.estimate("hierarchical-layerwise", size="quick", seeds=1, options={"dims": [6]}, figure=False)
    two = experiments.estimate("hierarchical-layerwise", size="quick", seeds=1, options={"dims": [6, 8]},
                               figure=False)
    assert two["tasks"] == 2 * one["tasks"] and two["core_hours"] > one["core_hours"]
    par = experiments.estimate("ridge-isotropic", size="quick", seeds=4, backend="processes", workers=2,
                               figure=False)
    assert par["workers"] == min(2, cost._cores()) and par["tasks"] == more["tasks"]
    remote = experiments.estimate("ridge-isotropic", size="quick", seeds=4, backend="dask", workers=64,
                                  scheduler="tcp://127.0.0.1:1", figure=False)  # not contacted
    assert remote["workers"] == 64 and remote["tasks"] == more["tasks"]
    sweep_serial = more["wall_seconds"] - more["other_seconds"]
    sweep_par = par["wall_seconds"] - par["other_seconds"] - cost.calibrate(pool=True).pool_start_s
    assert sweep_serial / par["workers"] * (1 - 1e-9) <= sweep_par <= sweep_serial * (1 + 1e-9)


def test_estimate_counts_cached_tasks_as_free_and_writes_nothing(calibration_dir, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    first = experiments.estimate("ridge-isotropic", size="quick", seeds=1, cache=cache, figure=False)
    assert first["cached_tasks"] == 0 and not cache.exists()
    meta = experiments.run("ridge-isotropic", size="quick", seeds=1, cache=cache, out=out)
    again = experiments.estimate("ridge-isotropic", size="quick", seeds=2, cache=cache, figure=False)
    assert again["tasks"] == 2 * meta["sweep"]["total"] and again["cached_tasks"] == meta["sweep"]["total"]
    assert again["core_hours"] < 0.75 * experiments.estimate("ridge-isotropic", size="quick", seeds=2,
                                                            figure=False)["core_hours"]


def _cli(*args, env) -> tuple[subprocess.CompletedProcess, float]:
    """Run the command line in a fresh process: (result, busy seconds = min(wall, child CPU))."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "asymptotics.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, min(wall, cpu)


@pytest.mark.parametrize("name", ["ridge-isotropic", "deep-rf-depth"])
def test_estimate_within_a_factor_two_of_a_quick_run(name, calibration_dir, tmp_path):
    env = {**os.environ, "ASYMPTOTICS_CACHE_DIR": str(calibration_dir)}
    est_proc, _ = _cli("reproduce", name, "--quick", "--estimate", "--json", env=env)
    assert est_proc.returncode == 0, est_proc.stderr
    est = json.loads(est_proc.stdout)
    assert not any(tmp_path.iterdir())  # an estimate writes nothing
    run, busy = _cli("reproduce", name, "--quick", "--quiet", "--out", str(tmp_path), env=env)
    assert run.returncode == 0, run.stderr
    ratio = est["wall_seconds"] / busy
    print(f"{name} quick: estimated {est['wall_seconds']:.1f} s, measured {busy:.1f} s busy, ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0


@pytest.mark.slow
def test_estimate_within_a_factor_two_of_a_medium_run(calibration_dir, tmp_path):
    """The same at medium size (about a minute of computing: in the slow suite)."""
    env = {**os.environ, "ASYMPTOTICS_CACHE_DIR": str(calibration_dir)}
    est = json.loads(_cli("reproduce", "ridge-isotropic", "--size", "medium", "--estimate", "--json", env=env)[0].stdout)
    run, busy = _cli("reproduce", "ridge-isotropic", "--size", "medium", "--quiet", "--out", str(tmp_path), env=env)
    assert run.returncode == 0, run.stderr
    assert 0.5 <= est["wall_seconds"] / busy <= 2.0


def test_json_estimate_is_one_object_with_the_contract_keys(calibration_dir, capsys, tmp_path):
    out = tmp_path / "not-created"
    assert cli.main(["reproduce", "ridge-power-law", "--quick", "--seeds", "2", "--estimate", "--json",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    est = json.loads(text)
    assert text.strip().count("\n") == 0
    assert all(k in est for k in KEYS)
    assert isinstance(est["tasks"], int) and est["tasks"] % 2 == 0  # two seeds per point
    assert est["core_hours"] > 0 and est["peak_memory_bytes"] > 0 and est["wall_seconds"] > 0
    assert not out.exists()


def test_text_estimate_names_the_numbers(calibration_dir, capsys):
    assert cli.main(["reproduce", "ridge-isotropic", "--quick", "--seeds", "1", "--estimate"]) == 0
    text = capsys.readouterr().out
    assert "tasks" in text and "core-hours" in text and "peak memory per task" in text and "wall time" in text


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "ridge-isotropic", "--json"], "--json is only used with --estimate"),
    (["reproduce", "ridge-isotropic", "--quick", "--json", "--seeds", "2"], "--json is only used with --estimate"),
    (["reproduce", "ridge-isotropic", "--estimate", "--seeds", "0"], "--seeds"),
    (["reproduce", "ridge-isotropic", "--estimate", "--workers", "0"], "--workers"),
    (["reproduce", "ridge-isotropic", "--estimate", "--set", "p=3"], "has no option"),
    (["reproduce", "ridge-isotropic", "--estimate", "--quick", "--size", "full"], "contradicts quick"),
    (["reproduce", "ridge-isotropic", "--estimate", "--data", "x.npz"], "reads no data file"),
    (["reproduce", "no-such", "--estimate"], "unknown experiment"),
])
def test_bad_flag_combinations_are_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("asymptotics: ")


def test_unknown_size_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ridge-isotropic", "--estimate", "--size", "huge"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def _fake_mnist(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (1200, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 1200),
             x_test=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 300))
    return path


def test_medium_estimate_for_every_experiment(calibration_dir, tmp_path):
    """`--size medium --estimate` works for all experiments (planning only: theory, no sweep)."""
    for name in experiments.names():
        try:
            est = experiments.estimate(name, size="medium", figure=False)
        except experiments.InputError as exc:  # an experiment that reads data at this size
            assert "--data" in str(exc), exc
            est = experiments.estimate(name, size="medium", figure=False, data=str(_fake_mnist(tmp_path)))
        json.dumps(est)
        assert est["tasks"] > 0 and est["core_hours"] > 0 and est["peak_memory_bytes"] > 0, name
        assert np.isfinite(est["wall_seconds"]) and est["wall_seconds"] >= est["other_seconds"] >= 0, name
        assert est["tasks"] == sum(b["tasks"] for b in est["by_task"].values()), name
