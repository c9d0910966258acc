"""Run a grid of (parameter point × seed) tasks on a backend, with a resumable on-disk cache.

A task is a pure function of its parameters and its seed::

    fn(params: dict, seed: numpy.random.SeedSequence) -> result (any picklable object)

``fn`` must be a module-level function (workers import it by name). The seed of a task is a
:class:`~numpy.random.SeedSequence` whose entropy is derived from (root seed, experiment name,
a stable hash of the parameters, seed index) only, so every task gets the same random numbers
whatever the backend, the number of workers, the order of execution or the chunking.

Backends
    ``serial`` (this process), ``processes`` (K worker processes of the standard library, started
    by a fork server so that no thread state is inherited), ``dask`` (a ``dask.distributed``
    client: an existing scheduler given by address, or a ``LocalCluster`` started on demand).
    Every task runs with BLAS and Numba limited to ``threads`` threads (default 1), so that
    workers × threads ≤ cores and results are bitwise identical on every backend (a BLAS
    reduction split over a different number of threads may round differently).

Cache
    With ``cache=DIR`` each finished task is written atomically (temporary file, fsync,
    ``os.replace``) to ``DIR/<experiment>/<key>.pkl`` by the process that computed it; ``key``
    hashes the experiment, the parameters, the seed, the root seed and the task's code version
    (a hash of the source of ``fn``'s module unless ``code_version`` is given). A file starts
    with the SHA-256 of its payload: a truncated or corrupt file is reported, removed and
    recomputed, never used. A rerun (for instance after the sweep was killed, SIGKILL
    included) loads finished tasks and computes only the rest.

Failures
    An exception in a task is recorded with its parameters and traceback; the other tasks
    finish (and are cached); :class:`SweepError` is raised at the end, listing the failures.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Task", "SweepStats", "SweepResult", "SweepError", "run_sweep", "task_seed", "stable_hash",
           "BACKENDS", "CorruptCacheWarning"]

BACKENDS = ("serial", "processes", "dask")
_MAGIC = b"ASYMPTOTICS-SWEEP-1\n"


class SweepError(RuntimeError):
    """Some tasks of a sweep raised; ``failures`` lists (params, seed index, traceback)."""

    def __init__(self, failures: list[dict], result: "SweepResult"):
        self.failures = failures
        self.result = result
        lines = [f"{len(failures)} of {result.stats.total} tasks failed:"]
        for f in failures[:20]:
            last = f["error"].strip().splitlines()[-1] if f["error"].strip() else "?"
            lines.append(f"  params={json.dumps(f['params'], sort_keys=True)} seed={f['seed_index']}: {last}")
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        super().__init__("\n".join(lines))


class CorruptCacheWarning(RuntimeWarning):
    """A cache file failed its checksum (truncated or corrupt) and is recomputed."""


def _canonical(obj: Any) -> Any:
    """JSON-compatible canonical form of parameters (numpy scalars and arrays included)."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": _canonical(obj.tolist()), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return repr(x) if not math.isfinite(x) else x
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if obj is None or isinstance(obj, (int, str)):
        return obj
    raise TypeError(f"sweep parameters must be JSON-like (dict, list, str, int, float, bool, None, "
                    f"numpy arrays); got {type(obj).__name__}")


def stable_hash(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``: stable across processes and runs."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def task_seed(root_seed: int, experiment: str, params: dict, seed_index: int) -> np.random.SeedSequence:
    """The SeedSequence of one task, keyed by (root seed, experiment, parameters, seed index)."""
    words = [int(root_seed), int(seed_index)]
    for h in (stable_hash(experiment), stable_hash(params)):
        words += [int(h[i:i + 8], 16) for i in range(0, 32, 8)]
    return np.random.SeedSequence(words)


@dataclass(frozen=True)
class Task:
    params: dict
    seed_index: int


@dataclass
class SweepStats:
    total: int = 0
    computed: int = 0
    cached: int = 0
    failed: int = 0
    corrupt: int = 0
    wall_time_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SweepResult:
    """Results in the order of the tasks given (``None`` where a task failed)."""

    tasks: list[Task]
    results: list[Any]
    stats: SweepStats
    failures: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------- cache
def _code_version(fn: Callable) -> str:
    mod = sys.modules.get(fn.__module__)
    try:
        src = inspect.getsource(mod) if mod is not None else inspect.getsource(fn)
    except (OSError, TypeError):
        src = fn.__qualname__
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def _write_atomic(path: Path, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + digest + b"\n" + payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Corrupt(Exception):
    pass


def _read_checked(path: Path) -> Any:
    data = path.read_bytes()
    head = len(_MAGIC) + 65
    if len(data) < head or not data.startswith(_MAGIC) or data[head - 1:head] != b"\n":
        raise _Corrupt("bad header (truncated?)")
    digest, payload = data[len(_MAGIC):head - 1], data[head:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise _Corrupt("checksum mismatch (truncated or corrupt)")
    try:
        return pickle.loads(payload)
    except Exception as exc:  # checksum matched but payload unreadable: treat as corrupt
        raise _Corrupt(f"unreadable payload: {exc}") from exc


# ---------------------------------------------------------------- task runner
def _limit_threads(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # numba absent or not configurable: BLAS limit is what matters
        pass


def _run_task(fn, params, seed_index, root_seed, experiment, cache_path):
    """Run one task (in whichever process), cache it, and return ("ok", result) or ("error", tb).

    Thread limits are set by the caller: once around the serial loop, once per worker process.
    """
    try:
        result = fn(params, task_seed(root_seed, experiment, params, seed_index))
    except Exception:
        return "error", traceback.format_exc()
    if cache_path is not None:
        _write_atomic(Path(cache_path), result)
    return "ok", result


def _run_task_limited(threads, *args):
    """:func:`_run_task` under a thread limit (dask workers may join a cluster at any time)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _run_task(*args)


def _progress(total: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="pt", file=sys.stderr, dynamic_ncols=True)


def run_sweep(fn: Callable[[dict, np.random.SeedSequence], Any], params: Sequence[dict], seeds: int | Sequence[int], *,
              experiment: str, root_seed: int = 0, backend: str = "serial", workers: int | None = None,
              cache: str | os.PathLike | None = None, scheduler: str | None = None, quiet: bool = False,
              threads: int = 1, code_version: str | None = None, raise_on_failure: bool = True) -> SweepResult:
    """Run ``fn`` on every (params[i], seed index) pair; see the module docstring.

    Parameters
    ----------
    params : parameter points (JSON-like dicts).
    seeds : number of seeds S (indices 0..S−1) or explicit seed indices.
    backend : "serial", "processes" or "dask"; ``workers`` processes/dask workers (default: cores).
    cache : folder of the on-disk cache (``None``: no cache).
    scheduler : address of an existing dask scheduler (``dask`` backend only).
    threads : BLAS/Numba threads per task (default 1; workers × threads should be ≤ cores).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if scheduler is not None and backend != "dask":
        raise ValueError("scheduler is only used by the dask backend (--backend dask)")
    if not callable(fn) or fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
        raise TypeError("fn must be a module-level function (workers import it by name)")
    cores = os.cpu_count() or 1
    if workers is None:
        workers = max(1, cores // max(threads, 1))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        seed_list = list(range(int(seeds)))
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list or min(seed_list) < 0 or len(set(seed_list)) != len(seed_list):
            raise ValueError("seeds must be distinct non-negative indices")
    params = [dict(p) for p in params]
    for p in params:
        stable_hash(p)  # validates that parameters are JSON-like
    tasks = [Task(p, s) for p in params for s in seed_list]
    version = code_version or _code_version(fn)
    cache_dir = None if cache is None else Path(cache) / _safe_name(experiment)
    paths = [None if cache_dir is None else cache_dir / (stable_hash(
        {"experiment": experiment, "params": t.params, "seed": t.seed_index, "root_seed": root_seed,
         "code": version, "fn": f"{fn.__module__}.{fn.__qualname__}"})[:40] + ".pkl") for t in tasks]

    stats = SweepStats(total=len(tasks))
    results: list[Any] = [None] * len(tasks)
    done = [False] * len(tasks)
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        if path is not None and path.exists():
            try:
                results[i] = _read_checked(path)
                done[i] = True
                stats.cached += 1
            except (_Corrupt, OSError) as exc:
                stats.corrupt += 1
                warnings.warn(f"cache file {path} is corrupt ({exc}); recomputing task "
                              f"params={tasks[i].params} seed={tasks[i].seed_index}", CorruptCacheWarning,
                              stacklevel=2)
                path.unlink(missing_ok=True)
    todo = [i for i in range(len(tasks)) if not done[i]]
    failures: list[dict] = []
    bar = _progress(len(tasks), quiet)
    if bar is not None:
        bar.update(stats.cached)

    def finish(i: int, status: str, value: Any) -> None:
        if status == "ok":
            results[i] = value
            stats.computed += 1
        else:
            stats.failed += 1
            failures.append({"params": tasks[i].params, "seed_index": tasks[i].seed_index, "error": value})
        if bar is not None:
            bar.update(1)

    args = [(fn, tasks[i].params, tasks[i].seed_index, root_seed, experiment,
             None if paths[i] is None else str(paths[i])) for i in todo]
    try:
        if not todo:
            pass
        elif backend == "serial":
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=threads):
                for i, a in zip(todo, args):
                    finish(i, *_run_task(*a))
        elif backend == "processes":
            _run_processes(todo, args, workers, threads, finish)
        else:
            _run_dask(todo, args, workers, threads, scheduler, finish)
    finally:
        if bar is not None:
            bar.close()
    stats.wall_time_s = time.perf_counter() - t0
    result = SweepResult(tasks=tasks, results=results, stats=stats, failures=failures)
    if failures and raise_on_failure:
        raise SweepError(failures, result)
    return result


def _safe_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return safe or "experiment"


def _run_processes(todo, args, workers, threads, finish) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "threadpoolctl", "simulations.sweep"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        pending = {pool.submit(_run_task, *a): i for i, a in zip(todo, args)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    finish(i, *fut.result())
                except Exception:  # the worker died (e.g. killed): record, keep going
                    finish(i, "error", traceback.format_exc())


def _run_dask(todo, args, workers, threads, scheduler, finish) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("the dask backend needs dask.distributed: pip install 'asymptotics[dask]'") from exc
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [client.submit(_run_task_limited, threads, *a, pure=False) for a in args]
        index = {f.key: i for f, i in zip(futures, todo)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                finish(i, *fut.result())
            except Exception:
                finish(i, "error", traceback.format_exc())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
