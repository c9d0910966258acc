"""Benchmark: the sweep engine (simulations.sweep) on this machine.

1. 64 tasks of about 0.2 s each (a ridge fit: SVD of a Gaussian feature matrix, one BLAS thread
   per task): serial vs 2 worker processes (target ≥ 1.7× on 2 cores);
2. cache overhead per task: the same trivial tasks with and without ``cache=`` (write: first
   run, an .npz with a JSON header, fsync included; read: the rerun, with the key, task and
   SHA-256 checks), target < 5 ms;
3. dask LocalCluster (2 workers) overhead per task on trivial tasks, start-up excluded and
   included.
Run: ``python benchmarks/bench_sweep.py`` (needs the ``dask`` extra for part 3).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from simulations.ridge import ridge_task
from simulations.sweep import run_sweep


def trivial_task(params: dict, seed: np.random.SeedSequence) -> dict:
    """A task that does almost nothing: what remains is the engine's overhead."""
    return {"x": np.random.default_rng(seed).standard_normal(8)}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--n", type=int, default=2400, help="samples per ridge task (sets the task time)")
    args = ap.parse_args(argv)
    spec = {"kind": "power-law", "p": 600, "alpha": 1.5, "beta": 1.0}
    params = [{"spectrum": spec, "y2": 1.01, "n": args.n + i, "lams": [0.0, 1e-3, 1e-1]} for i in range(args.tasks)]

    t_one, _ = timed(lambda: run_sweep(ridge_task, params[:4], 1, experiment="bench"))
    t_serial, serial = timed(lambda: run_sweep(ridge_task, params, 1, experiment="bench"))
    t_proc, proc = timed(lambda: run_sweep(ridge_task, params, 1, experiment="bench", backend="processes", workers=2))
    same = all(np.array_equal(a["test_error"], b["test_error"]) for a, b in zip(serial.results, proc.results))
    print(f"{args.tasks} ridge tasks of {t_serial / args.tasks:.3f} s each (1 BLAS thread): serial "
          f"{t_serial:.2f} s, processes x2 {t_proc:.2f} s (pool start-up included) -> speed-up "
          f"{t_serial / t_proc:.2f}x; identical results: {same}")

    light = [{"i": i} for i in range(400)]
    t_plain, _ = timed(lambda: run_sweep(trivial_task, light, 1, experiment="bench-light"))
    with tempfile.TemporaryDirectory() as tmp:
        t_write, _ = timed(lambda: run_sweep(trivial_task, light, 1, experiment="bench-light", cache=tmp))
        t_read, res = timed(lambda: run_sweep(trivial_task, light, 1, experiment="bench-light", cache=tmp))
        assert res.stats.cached == len(light)
    print(f"cache overhead per task: write {(t_write - t_plain) / len(light) * 1e3:.2f} ms "
          f"(atomic write + fsync), resume/read {(t_read) / len(light) * 1e3:.2f} ms "
          f"(npz + JSON header: key, task and SHA-256 checked; no cache: {t_plain / len(light) * 1e3:.2f} ms "
          f"per trivial task)")

    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask not installed: skipping the dask part (pip install 'asymptotics[dask]')")
        return
    t_total, _ = timed(lambda: run_sweep(trivial_task, light, 1, experiment="bench-light", backend="dask", workers=2))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40) as cluster:
        address = cluster.scheduler_address
        run = lambda k: run_sweep(trivial_task, light[:k], 1, experiment="bench-light", backend="dask",
                                  scheduler=address)
        run(10)
        t_small, _ = timed(lambda: run(40))
        t_big, _ = timed(lambda: run(len(light)))
    per_task = (t_big - t_small) / (len(light) - 40)
    print(f"dask LocalCluster x2, trivial tasks: {per_task * 1e3:.2f} ms per task on a running cluster "
          f"(connecting a client: {t_small - 40 * per_task:.2f} s); {len(light)} tasks with the cluster "
          f"started on demand: {t_total:.2f} s in all")


if __name__ == "__main__":
    main()
