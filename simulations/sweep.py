"""Run a grid of (parameter point × seed) tasks on a backend, with a resumable on-disk cache.

A task is a pure function of its parameter point and its seed::

    fn(spec: ModelSpec | dict, seed: numpy.random.SeedSequence) -> result (any picklable object)

``fn`` must be a module-level function (workers import it by name). The seed of a task is
:func:`simulations.rng.point_seed` of (root seed, experiment name, the hash of the point's
canonical JSON, seed index) only, so every task gets the same random numbers whatever the
backend, the number of workers, the order of execution or the chunking. Points that differ only
in ``paired`` fields share their seeds (paired replicas). Where and how a sweep runs is one
:class:`SweepConfig`.

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

from .rng import point_seed
from .spec import ModelSpec, canonical, stable_hash

__all__ = ["Task", "SweepConfig", "SweepStats", "SweepResult", "SweepError", "run_sweep", "task_seed",
           "stable_hash", "BACKENDS", "CorruptCacheWarning"]

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
            lines.append(f"  params={json.dumps(canonical(f['params']), sort_keys=True)} seed={f['seed_index']}: {last}")
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        super().__init__("\n".join(lines))


class CorruptCacheWarning(RuntimeWarning):
    """A cache file failed its checksum (truncated or corrupt) and is recomputed."""


def _describe(params) -> dict:
    return params.to_dict() if isinstance(params, ModelSpec) else params


def _seed_point(params, paired: Sequence[str]):
    """The part of a parameter point that its seed depends on: all of it but the ``paired`` fields."""
    if not paired:
        return params
    point = dict(_describe(params))
    for name in paired:
        point.pop(name, None)
    return point


def task_seed(root_seed: int, experiment: str, params, seed_index: int) -> np.random.SeedSequence:
    """The SeedSequence of one task, keyed by (root seed, experiment, parameters, seed index)
    (:func:`simulations.rng.point_seed` of the parameters' :func:`stable_hash`)."""
    return point_seed(root_seed, experiment, stable_hash(params), seed_index)


@dataclass(frozen=True)
class SweepConfig:
    """Where and how a sweep runs; validated once, carried from the command line to the engine.

    backend : "serial", "processes" or "dask"; ``workers`` processes/dask workers (default: cores
        divided by ``threads``).
    cache : folder of the on-disk cache (``None``: no cache).
    scheduler : address of an existing dask scheduler (``dask`` backend only).
    quiet : no progress bar.  threads : BLAS/Numba threads per task (workers × threads ≤ cores).
    seeds : number of seeds per parameter point (seed indices 0..seeds−1).  root_seed : the root seed.
    """

    backend: str = "serial"
    workers: int | None = None
    cache: str | None = None
    scheduler: str | None = None
    quiet: bool = False
    threads: int = 1
    seeds: int = 1
    root_seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError("scheduler is only used by the dask backend (--backend dask)")
        for name in ("threads", "seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, (int, np.integer))
                                         or self.workers < 1):
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if isinstance(self.root_seed, bool) or not isinstance(self.root_seed, (int, np.integer)) or self.root_seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.root_seed!r}")
        if self.cache is not None:
            object.__setattr__(self, "cache", str(self.cache))

    @property
    def n_workers(self) -> int:
        cores = os.cpu_count() or 1
        return self.workers if self.workers is not None else max(1, cores // self.threads)


@dataclass(frozen=True)
class Task:
    params: Any  # a ModelSpec, or a JSON-like dict
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


def _run_task(fn, params, seed, cache_path):
    """Run one task (in whichever process), cache it, and return ("ok", result) or ("error", tb).

    Thread limits are set by the caller: once around the serial loop, once per worker process.
    """
    try:
        result = fn(params, seed)
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


def _check_fn(fn) -> None:
    if not callable(fn) or fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
        raise TypeError("fn must be a module-level function (workers import it by name)")


def _seed_indices(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return list(range(int(seeds)))
    seed_list = [int(s) for s in seeds]
    if not seed_list or min(seed_list) < 0 or len(set(seed_list)) != len(seed_list):
        raise ValueError("seeds must be distinct non-negative indices")
    return seed_list


def _cache_paths(fn, tasks, experiment, config, code_version) -> list:
    if config.cache is None:
        return [None] * len(tasks)
    version = code_version or _code_version(fn)
    cache_dir = Path(config.cache) / _safe_name(experiment)
    return [cache_dir / (stable_hash(
        {"experiment": experiment, "params": t.params, "seed": t.seed_index, "root_seed": config.root_seed,
         "code": version, "fn": f"{fn.__module__}.{fn.__qualname__}"})[:40] + ".pkl") for t in tasks]


def _load_cached(tasks, paths, results, stats) -> list[int]:
    """Fill ``results`` from the cache; return the indices still to compute."""
    todo = []
    for i, path in enumerate(paths):
        if path is not None and path.exists():
            try:
                results[i] = _read_checked(path)
                stats.cached += 1
                continue
            except (_Corrupt, OSError) as exc:
                stats.corrupt += 1
                warnings.warn(f"cache file {path} is corrupt ({exc}); recomputing task "
                              f"params={_describe(tasks[i].params)} seed={tasks[i].seed_index}",
                              CorruptCacheWarning, stacklevel=3)
                path.unlink(missing_ok=True)
        todo.append(i)
    return todo


def run_sweep(fn: Callable[[Any, np.random.SeedSequence], Any], params: Sequence, seeds=None, *,
              experiment: str, config: SweepConfig | None = None, paired: Sequence[str] = (),
              code_version: str | None = None, raise_on_failure: bool = True, **settings) -> SweepResult:
    """Run ``fn`` on every (params[i], seed index) pair; see the module docstring.

    Parameters
    ----------
    params : parameter points (:class:`~simulations.spec.ModelSpec` or JSON-like dicts).
    seeds : number of seeds S (indices 0..S−1) or explicit seed indices (default ``config.seeds``).
    config : a :class:`SweepConfig`; or its fields as keyword arguments (``backend``, ``workers``,
        ``cache``, ``scheduler``, ``quiet``, ``threads``, ``root_seed``).
    paired : fields of the parameter points that the seed does not depend on: points that differ
        only in them get the same random draws (paired replicas, e.g. one data set for every n).
    """
    if config is None:
        config = SweepConfig(**settings)
    elif settings:
        raise TypeError(f"run_sweep: give either config or its fields, not both ({sorted(settings)})")
    _check_fn(fn)
    seed_list = _seed_indices(config.seeds if seeds is None else seeds)
    params = [p if isinstance(p, ModelSpec) else dict(p) for p in params]
    hashes = [stable_hash(_seed_point(p, paired)) for p in params]  # also validates JSON-likeness
    tasks = [Task(p, s) for p in params for s in seed_list]
    seeds_of = [point_seed(config.root_seed, experiment, h, s) for h in hashes for s in seed_list]
    paths = _cache_paths(fn, tasks, experiment, config, code_version)

    stats = SweepStats(total=len(tasks))
    results: list[Any] = [None] * len(tasks)
    t0 = time.perf_counter()
    todo = _load_cached(tasks, paths, results, stats)
    failures: list[dict] = []
    bar = _progress(len(tasks), config.quiet)
    if bar is not None:
        bar.update(stats.cached)

    def finish(i: int, status: str, value: Any) -> None:
        if status == "ok":
            results[i] = value
            stats.computed += 1
        else:
            stats.failed += 1
            failures.append({"params": _describe(tasks[i].params), "seed_index": tasks[i].seed_index,
                             "error": value})
        if bar is not None:
            bar.update(1)

    args = [(fn, tasks[i].params, seeds_of[i], None if paths[i] is None else str(paths[i])) for i in todo]
    try:
        _dispatch(config, todo, args, finish)
    finally:
        if bar is not None:
            bar.close()
    stats.wall_time_s = time.perf_counter() - t0
    result = SweepResult(tasks=tasks, results=results, stats=stats, failures=failures)
    if failures and raise_on_failure:
        raise SweepError(failures, result)
    return result


def _dispatch(config: SweepConfig, todo, args, finish) -> None:
    if not todo:
        return
    if config.backend == "serial":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=config.threads):
            for i, a in zip(todo, args):
                finish(i, *_run_task(*a))
    elif config.backend == "processes":
        _run_processes(todo, args, config.n_workers, config.threads, finish)
    else:
        _run_dask(todo, args, config.n_workers, config.threads, config.scheduler, finish)


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
