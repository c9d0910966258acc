"""A dask.distributed cluster started by hand, one worker killed mid-run (issue 17, item 3).

A scheduler and two workers (``dask scheduler`` / ``dask worker --nworkers 1 --nthreads 1``) run as
subprocesses on 127.0.0.1 (a free port), each in its own process group. A sweep of segmented
tasks (each a loop of short steps that saves its state at every step) runs against the scheduler
with a cache; once a task is running on worker A, worker A's process group (nanny and worker) is
killed with SIGKILL. The sweep finishes on worker B, with results bit-identical to a serial run;
the task that was running on A resumes from its checkpoint, so at most one step (one segment) is
computed twice. Every process is killed and reaped by the fixture's finaliser, also on failure.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import distributed  # noqa: F401  (the [dask] extra is installed wherever the tests run: never skipped)

from simulations.sweep import run_sweep

TASKS = '''
"""Segmented tasks for test_cluster (a module on the workers' PYTHONPATH)."""
import os
import time

import numpy as np

from simulations.checkpoint import segments
from simulations.rng import stream


def segmented_task(params, seed):
    """``steps`` steps of x <- 0.5 x + N(0, 1) (stream(seed, "step", k)), ``t`` s each, the state
    saved after every step; leaves a file per step computed (task, step, pid) in ``dir``."""
    x = np.zeros(4)
    first = 0
    seg = segments("count", {"steps": params["steps"]})
    saved = seg.resume()
    if saved is not None:
        first, x = saved["k"], saved["x"].copy()
    for k in range(first, params["steps"]):
        open(os.path.join(params["dir"], "step-%d-%d-%d" % (params["i"], k, os.getpid())), "w").close()
        time.sleep(params["t"])
        x = 0.5 * x + stream(seed, "step", k).standard_normal(4)
        seg.save_if_due(lambda: {"k": k + 1, "x": x})
    return {"i": params["i"], "x": x}
'''

STEPS, T, N_TASKS = 8, 0.25, 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Scheduler and workers as subprocesses, each the leader of its own process group."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=self.env, cwd=self.root, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "cluster_tasks.py").write_text(TASKS)
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(repo), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="20s")
    c = Cluster(tmp_path, env)
    try:
        c.start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(c.port), "--no-dashboard")
        for name in ("worker-a", "worker-b"):
            c.start(name, "worker", c.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                    "--name", name, "--death-timeout", "60", "--local-directory", str(tmp_path / name))
        sys.path.insert(0, str(tmp_path))
        yield c
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
        sys.modules.pop("cluster_tasks", None)
        c.close()


def _wait_for_workers(address: str, count: int, timeout: float) -> None:
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(count, timeout=timeout)


def _steps_done(folder: Path) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in p.name.split("-")[1:]) for p in folder.glob("step-*")]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_killed_worker_loses_at_most_one_segment_and_the_results_equal_a_serial_run(cluster, tmp_path):
    import cluster_tasks

    _wait_for_workers(cluster.address, 2, timeout=40)
    marks = tmp_path / "marks"
    marks.mkdir()
    params = [{"i": i, "steps": STEPS, "t": T, "dir": str(marks)} for i in range(N_TASKS)]
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["res"] = run_sweep(cluster_tasks.segmented_task, params, 1, experiment="cluster", backend="dask",
                                       scheduler=cluster.address, cache=str(tmp_path / "cache"), checkpoint_every=0,
                                       quiet=True, connect_timeout=20)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    victim = cluster.procs["worker-a"].pid  # the process group of worker A (its nanny and worker)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill A once it is two steps into a task
        on_a = [s for s in _steps_done(marks) if _group_of(s[2]) == victim]
        if any(k >= 2 for _, k, _ in on_a):
            break
        time.sleep(0.05)
    else:
        pytest.fail("no task ran on worker A within 30 s:\n" + cluster.log("worker-a"))
    killed_task = max(on_a, key=lambda s: s[1])[0]
    cluster.kill("worker-a")
    runner.join(timeout=90)
    assert not runner.is_alive(), "the sweep did not finish after the worker was killed:\n" + cluster.log("scheduler")
    if "error" in outcome:
        raise outcome["error"]
    res = outcome["res"]
    steps = _steps_done(marks)  # before the serial reference run adds its own
    serial = run_sweep(cluster_tasks.segmented_task, params, 1, experiment="cluster", quiet=True)
    for got, want in zip(res.results, serial.results):
        assert got["i"] == want["i"] and got["x"].tobytes() == want["x"].tobytes()
    per_task = {i: sorted(k for j, k, _ in steps if j == i) for i in range(N_TASKS)}
    repeated = sum(len(ks) - len(set(ks)) for ks in per_task.values())
    assert all(set(ks) == set(range(STEPS)) for ks in per_task.values()), per_task
    # the task running on A continued on B from its last saved step: at most one step done twice
    # (the step in flight when A died) for that task, none for the others
    assert repeated <= 1, per_task
    pids = {pid for j, _, pid in steps if j == killed_task}
    assert len(pids) == 2, "the killed task was finished by the other worker"
    assert not list((tmp_path / "cache" / "cluster").glob("*.ckpt")), "checkpoints removed once cached"
