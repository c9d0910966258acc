"""Run a grid of (parameter point × seed) tasks on a backend, with a resumable on-disk cache.

A task is a pure function of its parameter point and its seed::

    fn(spec: ModelSpec | dict, seed: numpy.random.SeedSequence) -> result

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
    The number of workers is capped, with a warning, at ``cores // threads`` (the cores this
    process may run on) and at the number of tasks to compute.

Same bits on every backend
    Every task, whatever the backend, runs with the same thread configuration: the BLAS and
    OpenMP libraries (threadpoolctl: numpy's and scipy's OpenBLAS, libgomp, …) and Numba limited
    to ``threads`` threads (default 1), applied in the process that runs the task, just before it
    runs, after numpy, ``scipy.linalg`` and Numba's thread pool are loaded (a library loaded
    later is not limited: the limit of threadpoolctl only reaches libraries already loaded).
    A BLAS reduction split over a different number of threads may round differently; with the
    same configuration everywhere the results, and the CSV of an experiment, are bitwise
    identical for ``serial``, ``processes`` and ``dask``. In ``serial`` the previous limits of
    this process are restored after each task.

Cache
    With ``cache=DIR`` each finished task is written atomically (temporary file, fsync,
    ``os.replace``) to ``DIR/<experiment>/<key>.npz`` by the process that computed it; ``key``
    hashes the experiment, the parameters, the seed, the root seed and the task's code version
    (a hash of the source of ``fn``'s module unless ``code_version`` is given). An entry is a
    zip (an ``.npz``) of uncompressed ``.npy`` arrays, read with ``allow_pickle=False``, and a
    member ``header.json`` recording the format version, the entry's own key, the experiment,
    the task (function, code version, parameters, seed index, root seed), the result as JSON
    with references to the arrays, and a SHA-256 over both the header and the arrays. Nothing
    is ever unpickled or imported from a cache file (see :func:`encode_result` for what a result
    may contain). Only regular files are opened (no symlink is followed, a FIFO does not block).
    An entry whose key, task or checksum does not match (forged, swapped, truncated, a flipped
    byte) or that is not a regular file is reported (:class:`CorruptCacheWarning`), removed
    and recomputed, never used. A cache folder that cannot be used raises :class:`CacheError`
    before any task is computed; a result that cannot be written is kept (and reported with
    :class:`CacheWriteWarning`), never thrown away. A rerun (for instance after the sweep was
    killed, SIGKILL included) loads finished tasks and computes only the rest. Entries of
    earlier releases (``.pkl``) are ignored. A task sent again (dask, after a worker died) whose
    entry already exists is read, not recomputed.

Checkpoints
    With a cache, every task runs with a :class:`simulations.checkpoint.Checkpoint` active (a
    context variable: the task's signature is unchanged, on every backend): its long loops save
    their state every ``checkpoint_every`` seconds next to its entry (``<key>.<phase>.ckpt``, the
    entry format) and a rerun of the task resumes from it, bit-identically; the checkpoints are
    removed once the result is cached.

Dask scheduler
    ``scheduler=ADDRESS`` is checked before any task is sent: a closed port, a host that does
    not answer, or a server that is not a dask scheduler (an HTTP server, a silent listener)
    raise :class:`SchedulerError` within about ``connect_timeout`` seconds, one line naming
    the address and the reason.

Workers do not outlive the sweep
    With ``processes``, each worker ends by itself within a second or so when the process that
    started the sweep dies (SIGKILL included): a watchdog thread waits on the parent's pidfd
    (Linux; elsewhere it polls the parent's PID), and on Linux the fork server is killed by the
    kernel when the parent dies and the workers when the fork server dies (``PR_SET_PDEATHSIG``).
    The fork server and multiprocessing's resource tracker end when the last worker has gone.

Failures
    An exception in a task is recorded with its parameters and traceback; the other tasks
    finish (and are cached); :class:`SweepError` is raised at the end, listing the failures.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import importlib
import inspect
import json
import math
import multiprocessing
import os
import re
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zipfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .checkpoint import SEGMENT_SECONDS, Checkpoint, CheckpointWarning, active
from .files import atomic_file
from .rng import point_seed
from .spec import ModelSpec, canonical, stable_hash

__all__ = ["Task", "SweepConfig", "SweepStats", "SweepResult", "SweepError", "run_sweep", "task_seed",
           "stable_hash", "BACKENDS", "CorruptCacheWarning", "CacheWriteWarning", "CacheError",
           "SchedulerError", "encode_result", "decode_result", "CACHE_FORMAT"]

BACKENDS = ("serial", "processes", "dask")
CACHE_FORMAT = {"name": "asymptotics-sweep-cache", "version": 2, "suffix": ".npz"}
_HEADER = "header.json"
_MAX_DEPTH = 100  # nesting of a result (lists, dicts, …)


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


class SchedulerError(RuntimeError):
    """The dask scheduler address cannot be used (nothing listens, it does not answer within
    ``connect_timeout``, or it is not a dask scheduler). ``str()`` is one line naming the
    address and the reason; ``address`` and ``reason`` are attributes."""

    def __init__(self, address: str, reason: str):
        self.address = address
        self.reason = reason
        super().__init__(f"dask scheduler {address}: {reason}")


class CacheError(ValueError):
    """The cache folder cannot be used (a file, not a directory, not writable, a dangling
    symlink, …); raised before any task is computed. ``str()`` is one line naming the path."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cache {_show(path)}: {reason}")


class CorruptCacheWarning(RuntimeWarning):
    """A cache entry failed its checks (truncated, corrupt, forged, another task's entry, not a
    regular file) and is recomputed."""


class CacheWriteWarning(RuntimeWarning):
    """A finished result could not be written to the cache (disk full, a directory in the way, a
    result type the cache cannot store): the result is kept and used, only not cached."""


def _show(path) -> str:
    """A path as one printable line (undecodable bytes escaped)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")


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
        divided by ``threads``; capped with a warning at that and at the number of tasks).
    cache : folder of the on-disk cache (``None``: no cache).
    scheduler : address of an existing dask scheduler (``dask`` backend only).
    connect_timeout : seconds to wait for the dask scheduler (> 0, default 30).
    quiet : no progress bar.  threads : BLAS/Numba threads per task (workers × threads ≤ cores).
    seeds : number of seeds per parameter point (seed indices 0..seeds−1).  root_seed : the root seed.
    checkpoint_every : seconds between two saves of a long task's loop state, with a cache
        (:mod:`simulations.checkpoint`; default 120, 0 = at every boundary the loop offers).
    """

    backend: str = "serial"
    workers: int | None = None
    cache: str | None = None
    scheduler: str | None = None
    quiet: bool = False
    threads: int = 1
    seeds: int = 1
    root_seed: int = 0
    connect_timeout: float = 30.0
    checkpoint_every: float = SEGMENT_SECONDS

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or not self.scheduler.strip():
                raise ValueError(f"scheduler must be an address such as 'tcp://host:8786', got {self.scheduler!r}")
            if self.backend != "dask":
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
        t = self.connect_timeout
        if (isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating))
                or not math.isfinite(float(t)) or float(t) <= 0):
            raise ValueError(f"connect_timeout must be a positive number of seconds, got {t!r}")
        object.__setattr__(self, "connect_timeout", float(t))
        c = self.checkpoint_every
        if (isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating))
                or not math.isfinite(float(c)) or float(c) < 0):
            raise ValueError(f"checkpoint_every must be a non-negative number of seconds, got {c!r}")
        object.__setattr__(self, "checkpoint_every", float(c))
        if self.cache is not None:
            if not isinstance(self.cache, (str, os.PathLike)):
                raise TypeError(f"cache must be a folder path, got {type(self.cache).__name__}")
            object.__setattr__(self, "cache", os.fsdecode(self.cache))

    @property
    def n_workers(self) -> int:
        """``workers``, or by default the cores this process may use divided by ``threads``."""
        return self.workers if self.workers is not None else max(1, _cores() // self.threads)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _capped_workers(config: SweepConfig, n_tasks: int) -> int:
    """Workers to start: ``config.n_workers`` capped at cores // threads and at the number of
    tasks, with a warning when an explicit ``workers`` is lowered."""
    cores = _cores()
    cap = max(1, min(cores // config.threads, n_tasks))
    if config.workers is not None and config.workers > cap:
        warnings.warn(f"workers={config.workers} capped at {cap}: {cores} cores available with "
                      f"{config.threads} thread(s) per task, {n_tasks} task(s) to compute",
                      RuntimeWarning, stacklevel=4)
    return min(config.n_workers, cap)


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


# ------------------------------------------------------------- result codec
class _Uncacheable(TypeError):
    pass


class _Corrupt(Exception):
    pass


_TOP_PACKAGES = ("simulations", "asymptotics")


def _dataclass_allowed(module: str, extra: Sequence[str]) -> bool:
    return module.split(".")[0] in _TOP_PACKAGES or module in extra


def encode_result(obj: Any, *, dataclass_modules: Sequence[str] = ()) -> tuple[Any, dict]:
    """A task result as (JSON tree, arrays): lossless and without pickles.

    Supported: ``None``, ``bool``, ``int``, ``float`` (non-finite ones by their IEEE bits),
    ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict`` (any keys of these types),
    numpy arrays and scalars of any dtype without Python objects, and dataclass instances of
    the ``simulations``/``asymptotics`` packages or of ``dataclass_modules``. Exact types are
    kept (a subclass, e.g. a namedtuple or an OrderedDict, is not supported); anything else
    raises ``TypeError``. ``decode_result(tree, arrays)`` gives back an equal object, bit for bit.
    """
    arrays: dict[str, np.ndarray] = {}
    return _encode(obj, arrays, tuple(dataclass_modules), 0), arrays


def _add_array(arrays: dict, a: np.ndarray) -> str:
    if a.dtype.hasobject:
        raise _Uncacheable("numpy arrays of Python objects cannot be cached (they need pickles)")
    name = f"a{len(arrays)}"
    arrays[name] = a
    return name


def _encode(obj, arrays, modules, depth):
    if depth > _MAX_DEPTH:
        raise _Uncacheable(f"result nested deeper than {_MAX_DEPTH} levels")
    t = type(obj)
    if obj is None or t is bool or t is str:
        return obj
    if t is int:
        if obj.bit_length() > 4096:
            raise _Uncacheable("integers above 2**4096 are not cached")
        return obj
    if t is float:
        return obj if math.isfinite(obj) else {"$float": struct.pack(">d", obj).hex()}
    if t is complex:
        return {"$complex": [_encode(obj.real, arrays, modules, depth + 1), _encode(obj.imag, arrays, modules, depth + 1)]}
    if t is list:
        return [_encode(v, arrays, modules, depth + 1) for v in obj]
    if t is tuple:
        return {"$tuple": [_encode(v, arrays, modules, depth + 1) for v in obj]}
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in obj):
            return {k: _encode(v, arrays, modules, depth + 1) for k, v in obj.items()}
        return {"$items": [[_encode(k, arrays, modules, depth + 1), _encode(v, arrays, modules, depth + 1)]
                           for k, v in obj.items()]}
    if t is np.ndarray:
        return {"$array": _add_array(arrays, obj)}
    if isinstance(obj, np.generic):
        return {"$scalar": _add_array(arrays, np.asarray(obj))}
    if t is bytes:
        return {"$bytes": _add_array(arrays, np.frombuffer(obj, dtype=np.uint8).copy())}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if not _dataclass_allowed(t.__module__, modules) or "<locals>" in t.__qualname__:
            raise _Uncacheable(f"dataclass {t.__module__}.{t.__qualname__} is outside the packages the "
                               f"cache may rebuild ({', '.join(_TOP_PACKAGES)} and the task's module)")
        return {"$dataclass": f"{t.__module__}:{t.__qualname__}",
                "fields": {f.name: _encode(getattr(obj, f.name), arrays, modules, depth + 1)
                           for f in dataclasses.fields(obj)}}
    raise _Uncacheable(f"a result of type {t.__module__}.{t.__qualname__} cannot be cached")


def decode_result(tree: Any, arrays: dict, *, dataclass_modules: Sequence[str] = ()) -> Any:
    """The inverse of :func:`encode_result`; ``ValueError`` on a tree it could not have written.
    Never imports a module outside the ``simulations``/``asymptotics`` packages and
    ``dataclass_modules``, never runs a constructor (dataclasses are rebuilt field by field)."""
    try:
        return _decode(tree, arrays, tuple(dataclass_modules), 0)
    except _Corrupt as exc:
        raise ValueError(str(exc)) from None


def _array_ref(value, arrays) -> np.ndarray:
    if type(value) is not str or value not in arrays:
        raise _Corrupt(f"reference to a missing array {value!r}")
    return arrays[value]


def _decode(node, arrays, modules, depth):
    if depth > _MAX_DEPTH:
        raise _Corrupt("result nested too deeply")
    t = type(node)
    if node is None or t in (bool, str, int, float):
        return node
    if t is list:
        return [_decode(v, arrays, modules, depth + 1) for v in node]
    if t is not dict:
        raise _Corrupt(f"unexpected JSON value of type {t.__name__}")
    tags = [k for k in node if k.startswith("$")]
    if not tags:
        return {k: _decode(v, arrays, modules, depth + 1) for k, v in node.items()}
    tag = tags[0]
    if tag == "$dataclass" and set(node) == {"$dataclass", "fields"}:
        return _rebuild_dataclass(node["$dataclass"], node["fields"], arrays, modules, depth)
    if len(node) != 1:
        raise _Corrupt(f"malformed tagged value {tag!r}")
    value = node[tag]
    if tag == "$float":
        if type(value) is not str or not re.fullmatch(r"[0-9a-f]{16}", value):
            raise _Corrupt("malformed $float")
        return struct.unpack(">d", bytes.fromhex(value))[0]
    if tag == "$complex":
        if type(value) is not list or len(value) != 2:
            raise _Corrupt("malformed $complex")
        re_, im = (_decode(v, arrays, modules, depth + 1) for v in value)
        if type(re_) is not float or type(im) is not float:
            raise _Corrupt("malformed $complex")
        return complex(re_, im)
    if tag == "$tuple":
        if type(value) is not list:
            raise _Corrupt("malformed $tuple")
        return tuple(_decode(v, arrays, modules, depth + 1) for v in value)
    if tag == "$items":
        if type(value) is not list or not all(type(kv) is list and len(kv) == 2 for kv in value):
            raise _Corrupt("malformed $items")
        out = {}
        for k, v in value:
            key = _decode(k, arrays, modules, depth + 1)
            try:
                out[key] = _decode(v, arrays, modules, depth + 1)
            except TypeError as exc:  # an unhashable key
                raise _Corrupt(f"malformed $items: {exc}") from None
        return out
    if tag == "$array":
        return _array_ref(value, arrays)
    if tag == "$scalar":
        a = _array_ref(value, arrays)
        if a.shape != ():
            raise _Corrupt("a $scalar is not 0-d")
        return a[()]
    if tag == "$bytes":
        a = _array_ref(value, arrays)
        if a.dtype != np.uint8 or a.ndim != 1:
            raise _Corrupt("malformed $bytes")
        return a.tobytes()
    raise _Corrupt(f"unknown tag {tag!r}")


def _rebuild_dataclass(name, fields, arrays, modules, depth):
    if type(name) is not str or type(fields) is not dict or name.count(":") != 1:
        raise _Corrupt("malformed $dataclass")
    module, qualname = name.split(":")
    if not _dataclass_allowed(module, modules) or not re.fullmatch(r"[A-Za-z_][\w.]*", module + "." + qualname):
        raise _Corrupt(f"dataclass {name} is outside the packages the cache may rebuild")
    try:
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except Exception as exc:  # ImportError, AttributeError, or an error of the module itself
        raise _Corrupt(f"dataclass {name} not found ({type(exc).__name__})") from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise _Corrupt(f"{name} is not a dataclass")
    names = [f.name for f in dataclasses.fields(cls)]
    if sorted(names) != sorted(fields):
        raise _Corrupt(f"fields of {name} do not match")
    try:
        obj = object.__new__(cls)
        for f in names:
            object.__setattr__(obj, f, _decode(fields[f], arrays, modules, depth + 1))
    except _Corrupt:
        raise
    except Exception as exc:
        raise _Corrupt(f"dataclass {name} cannot be rebuilt ({type(exc).__name__})") from None
    return obj


def _checksum(header: dict, arrays: dict) -> str:
    """SHA-256 over the header (without its ``sha256``) and every array (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True,
                        separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii"))
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"\0{name}\0{np.lib.format.dtype_to_descr(a.dtype)!r}\0{a.shape!r}\0".encode())
        # the C-order bytes, 16 MiB at a time (a checkpointed Gram matrix may hold 2 GB: no copy of it)
        flat = np.ascontiguousarray(a).reshape(-1)
        step = max(1, (1 << 24) // max(1, a.dtype.itemsize))
        for i in range(0, flat.size, step):
            h.update(flat[i:i + step].tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------- cache
@dataclass(frozen=True)
class _Entry:
    """Where a task is cached and what its header must say."""

    path: str
    key: str
    experiment: str
    task: dict  # canonical JSON: fn, code, params, seed, root_seed
    modules: tuple  # modules whose dataclasses the entry may hold


def _code_version(fn: Callable) -> str:
    mod = sys.modules.get(fn.__module__)
    try:
        src = inspect.getsource(mod) if mod is not None else inspect.getsource(fn)
    except (OSError, TypeError):
        src = fn.__qualname__
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def _write_entry(entry: _Entry, result: Any) -> None:
    """Encode ``result`` and write it atomically (temporary file, fsync, ``os.replace``)."""
    tree, arrays = encode_result(result, dataclass_modules=entry.modules)
    header = {"format": CACHE_FORMAT["name"], "version": CACHE_FORMAT["version"], "key": entry.key,
              "experiment": entry.experiment, "task": entry.task, "result": tree,
              "arrays": {name: {"descr": np.lib.format.dtype_to_descr(a.dtype), "shape": list(a.shape)}
                         for name, a in arrays.items()}}
    header = json.loads(json.dumps(header, allow_nan=False))  # tuples of dtype descriptions → lists
    header["sha256"] = _checksum(header, arrays)
    header_bytes = json.dumps(header, ensure_ascii=True, allow_nan=False).encode("ascii")
    path = Path(entry.path)
    with atomic_file(path, prefix=".tmp-", suffix=".part") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_HEADER, header_bytes)
            for name, a in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=a.nbytes > 2**30) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _read_entry(entry: _Entry) -> Any:
    """The result stored in ``entry.path``, or :class:`_Corrupt` saying why it cannot be used."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(entry.path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Corrupt("is a symbolic link, not a regular file") from None
        raise _Corrupt(f"cannot be opened ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Corrupt(f"is {_file_kind(st.st_mode)}, not a regular file")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        try:
            return _parse_entry(fh, st.st_size, entry)
        except _Corrupt:
            raise
        except Exception as exc:  # zipfile CRC/format errors, npy header errors, JSON errors, …
            raise _Corrupt(f"unreadable ({type(exc).__name__}: {str(exc)[:200]})") from None


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_entry(fh, size: int, entry: _Entry) -> Any:
    with zipfile.ZipFile(fh) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        for info in infos.values():
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size or info.file_size > size:
                raise _Corrupt(f"member {info.filename!r} is not a stored member of a plausible size")
        if _HEADER not in infos:
            raise _Corrupt("no header (truncated, or not a cache entry)")
        header = json.loads(zf.read(_HEADER).decode("ascii"), parse_constant=_reject_constant)
        if type(header) is not dict or header.get("format") != CACHE_FORMAT["name"]:
            raise _Corrupt("not a cache entry of this format")
        if header.get("version") != CACHE_FORMAT["version"]:
            raise _Corrupt(f"format version {header.get('version')!r}, expected {CACHE_FORMAT['version']}")
        if header.get("key") != entry.key:
            raise _Corrupt(f"holds the entry of another key ({str(header.get('key'))[:40]!r}): swapped or copied")
        if header.get("experiment") != entry.experiment or header.get("task") != entry.task:
            raise _Corrupt("its recorded experiment/task differ from this task's")
        described = header.get("arrays")
        if type(described) is not dict or set(infos) != {_HEADER} | {n + ".npy" for n in described}:
            raise _Corrupt("its arrays do not match its header")
        arrays = {}
        for name, info in described.items():
            if not re.fullmatch(r"a[0-9]{1,9}", name) or type(info) is not dict:
                raise _Corrupt(f"malformed array entry {name!r}")
            arrays[name] = _read_member(zf, infos[name + ".npy"], info)
        if header.get("sha256") != _checksum(header, arrays):
            raise _Corrupt("checksum mismatch (a changed header or array)")
        try:
            return _decode(header.get("result"), arrays, entry.modules, 0)
        except RecursionError:
            raise _Corrupt("result nested too deeply") from None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, described: dict) -> np.ndarray:
    """One ``.npy`` member: its own header checked against the entry's header and against the
    member's size before anything is allocated, then read with ``allow_pickle=False``."""
    fmt = np.lib.format
    with zf.open(info) as m:
        version = fmt.read_magic(m)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if reader is None:
            raise _Corrupt(f"unsupported npy version {version}")
        shape, _fortran, dtype = reader(m)
        if dtype.hasobject:
            raise _Corrupt("an array of Python objects (a pickle): refused")
        if [int(s) for s in shape] != described.get("shape") or \
                json.loads(json.dumps(fmt.dtype_to_descr(dtype))) != described.get("descr"):
            raise _Corrupt(f"array {info.filename} differs from its description")
        if math.prod(shape) * dtype.itemsize != info.file_size - m.tell():
            raise _Corrupt(f"array {info.filename} has the wrong size (truncated?)")
    with zf.open(info) as m:
        return fmt.read_array(m, allow_pickle=False)


def _prepare_cache(config: SweepConfig, experiment: str) -> Path | None:
    """The entry folder ``<cache>/<experiment>``, created and checked writable, or
    :class:`CacheError` (before anything is computed)."""
    if config.cache is None:
        return None
    root = Path(config.cache)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        if os.path.lexists(root):
            raise CacheError(root, "is a symbolic link to nothing") from None
        st = None
    except OSError as exc:
        raise CacheError(root, f"cannot be used ({exc.strerror})") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else _file_kind(st.st_mode)
        raise CacheError(root, f"is {kind}, not a directory")
    folder = root / _safe_name(experiment)
    try:
        if os.path.islink(folder):
            raise CacheError(folder, "is a symbolic link, not a directory")
        folder.mkdir(parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise CacheError(folder, "is not a directory")
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
        os.close(fd)
        os.unlink(probe)
    except CacheError:
        raise
    except FileExistsError:
        raise CacheError(folder, "is not a directory") from None
    except OSError as exc:
        raise CacheError(folder if os.path.isdir(root) else root,
                         f"cannot be created or written ({exc.strerror or exc})") from None
    return folder


def _cache_entries(fn, tasks, experiment, config, code_version, folder) -> list:
    if folder is None:
        return [None] * len(tasks)
    version = code_version or _code_version(fn)
    fn_name = f"{fn.__module__}.{fn.__qualname__}"
    entries = []
    for t in tasks:
        key = stable_hash({"experiment": experiment, "params": t.params, "seed": t.seed_index,
                           "root_seed": config.root_seed, "code": version, "fn": fn_name})[:40]
        task = {"fn": fn_name, "code": version, "params": canonical(t.params), "seed": t.seed_index,
                "root_seed": config.root_seed}
        entries.append(_Entry(path=str(folder / (key + CACHE_FORMAT["suffix"])), key=key, experiment=experiment,
                              task=json.loads(json.dumps(task)), modules=(fn.__module__,)))
    return entries


def _load_cached(tasks, entries, results, stats) -> list[int]:
    """Fill ``results`` from the cache; return the indices still to compute. An entry that fails
    its checks is reported, removed (a directory is left alone and the task is not cached) and
    recomputed."""
    todo = []
    for i, entry in enumerate(entries):
        if entry is None:
            todo.append(i)
            continue
        try:
            mode = os.lstat(entry.path).st_mode
        except FileNotFoundError:
            todo.append(i)
            continue
        except OSError as exc:
            mode, problem = None, f"cannot be examined ({exc.strerror})"
        else:
            try:
                results[i] = _read_entry(entry)
                stats.cached += 1
                continue
            except _Corrupt as exc:
                problem = str(exc)
        stats.corrupt += 1
        where = f"params={json.dumps(canonical(tasks[i].params), sort_keys=True)} seed={tasks[i].seed_index}"
        if mode is not None and stat.S_ISDIR(mode):
            entries[i] = None
            warnings.warn(f"cache entry {_show(entry.path)} {problem}; it is left alone and task {where} is "
                          "recomputed without being cached", CorruptCacheWarning, stacklevel=3)
        else:
            warnings.warn(f"cache entry {_show(entry.path)} is corrupt: {problem}; removed, recomputing task {where}",
                          CorruptCacheWarning, stacklevel=3)
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
            except OSError:
                entries[i] = None
        todo.append(i)
    return todo


# ---------------------------------------------------------------- task runner
_POOLS_LOADED = False
_CONTROLLER: Any = None
_CONTROLLER_MODULES = -1


def _load_thread_pools() -> None:
    """Load the libraries whose thread pools a task may use (numpy's and scipy's BLAS, Numba's
    threading layer) so that a limit set now reaches them all."""
    global _POOLS_LOADED
    if _POOLS_LOADED:
        return
    _POOLS_LOADED = True
    with contextlib.suppress(ImportError):
        import scipy.linalg  # noqa: F401  (scipy ships its own OpenBLAS)
    try:
        import numba

        numba.get_num_threads()  # launches the threading layer (loads libgomp/TBB if used)
    except Exception:  # numba absent or its threading layer unavailable
        pass


@contextlib.contextmanager
def _task_threads(threads: int):
    """Run the body with every loaded BLAS/OpenMP library and Numba limited to ``threads``
    threads; the previous settings of this process are restored afterwards."""
    global _CONTROLLER, _CONTROLLER_MODULES
    _load_thread_pools()
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None or len(sys.modules) != _CONTROLLER_MODULES:  # new modules may bring new libraries
        _CONTROLLER = ThreadpoolController()
        _CONTROLLER_MODULES = len(sys.modules)
    numba = sys.modules.get("numba")
    previous = None
    if numba is not None:
        try:
            previous = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except Exception:
            previous = None
    try:
        with _CONTROLLER.limit(limits=threads):
            yield
    finally:
        if previous is not None:
            numba.set_num_threads(previous)


class _EntryStore:
    """The checkpoint states of one task (:mod:`simulations.checkpoint`), next to its cache entry:
    ``<key>.<phase>.ckpt`` in the cache-entry format (key ``<key>.<phase>.ckpt``, same task)."""

    def __init__(self, entry: _Entry):
        self.entry = entry

    def _entry(self, phase: str) -> _Entry:
        name = f"{self.entry.key}.{phase}.ckpt"
        return dataclasses.replace(self.entry, path=str(Path(self.entry.path).with_name(name)), key=name)

    def save(self, phase: str, state: dict) -> None:
        _write_entry(self._entry(phase), state)

    def load(self, phase: str) -> dict | None:
        entry = self._entry(phase)
        if not os.path.lexists(entry.path):
            return None
        try:
            return _read_entry(entry)
        except _Corrupt as exc:
            warnings.warn(f"checkpoint {_show(entry.path)} is not used: {exc}; the task starts from the beginning",
                          CheckpointWarning, stacklevel=3)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            return None

    def clear(self) -> None:
        for path in Path(self.entry.path).parent.glob(f"{self.entry.key}.*.ckpt"):
            with contextlib.suppress(OSError):
                path.unlink()


def _run_task(threads, fn, params, seed, entry, every=SEGMENT_SECONDS):
    """Run one task (in whichever process) under the thread limits, with its checkpoint active
    when it is cached (resuming from its last segment), cache it and remove its checkpoints;
    return ("ok", result, note) or ("error", traceback, None). ``note`` says why the result could
    not be cached (the result is returned all the same)."""
    if entry is not None and os.path.lexists(entry.path):  # cached by a worker that died before handing it over
        with contextlib.suppress(_Corrupt):
            return "ok", _read_entry(entry), None
    checkpoint = Checkpoint(_EntryStore(entry), every) if entry is not None else None
    try:
        with _task_threads(threads), active(checkpoint):
            result = fn(params, seed)
    except Exception:
        return "error", traceback.format_exc(), None
    note = None
    if entry is not None:
        try:
            _write_entry(entry, result)
        except Exception as exc:  # an unsupported result type, disk full, a directory in the way, …
            note = f"result not cached at {_show(entry.path)} ({type(exc).__name__}: {exc})"
        else:
            checkpoint.clear()
    return "ok", result, note


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


def run_sweep(fn: Callable[[Any, np.random.SeedSequence], Any], params: Sequence, seeds=None, *,
              experiment: str, config: SweepConfig | None = None, paired: Sequence[str] = (),
              code_version: str | None = None, raise_on_failure: bool = True, **settings) -> SweepResult:
    """Run ``fn`` on every (params[i], seed index) pair; see the module docstring.

    Parameters
    ----------
    params : parameter points (:class:`~simulations.spec.ModelSpec` or JSON-like dicts).
    seeds : number of seeds S (indices 0..S−1) or explicit seed indices (default ``config.seeds``).
    config : a :class:`SweepConfig`; or its fields as keyword arguments (``backend``, ``workers``,
        ``cache``, ``scheduler``, ``connect_timeout``, ``quiet``, ``threads``, ``root_seed``).
    paired : fields of the parameter points that the seed does not depend on: points that differ
        only in them get the same random draws (paired replicas, e.g. one data set for every n).

    Raises :class:`CacheError` (an unusable cache folder) and :class:`SchedulerError` (an
    unusable dask scheduler) before any task is computed; :class:`SweepError` at the end if
    tasks failed (and ``raise_on_failure``).
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
    folder = _prepare_cache(config, experiment)
    entries = _cache_entries(fn, tasks, experiment, config, code_version, folder)

    stats = SweepStats(total=len(tasks))
    results: list[Any] = [None] * len(tasks)
    t0 = time.perf_counter()
    todo = _load_cached(tasks, entries, results, stats)
    failures: list[dict] = []
    bar = _progress(len(tasks), config.quiet) if todo else None
    if bar is not None:
        bar.update(stats.cached)

    def finish(i: int, status: str, value: Any, note: str | None = None) -> None:
        if status == "ok":
            results[i] = value
            stats.computed += 1
            if note:
                warnings.warn(note, CacheWriteWarning, stacklevel=2)
        else:
            stats.failed += 1
            failures.append({"params": _describe(tasks[i].params), "seed_index": tasks[i].seed_index,
                             "error": value})
        if bar is not None:
            bar.update(1)

    args = [(config.threads, fn, tasks[i].params, seeds_of[i], entries[i], config.checkpoint_every) for i in todo]
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
        for i, a in zip(todo, args):
            finish(i, *_run_task(*a))
    elif config.backend == "processes":
        _run_processes(todo, args, _capped_workers(config, len(todo)), finish)
    else:
        workers = None if config.scheduler is not None else _capped_workers(config, len(todo))
        _run_dask(todo, args, workers, config.scheduler, config.connect_timeout, finish)


def _safe_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return safe if safe.strip(".") else "experiment"


# ------------------------------------------------------ processes: no orphans
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> bool:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except Exception:
        return False


def _in_forkserver() -> bool:
    """Whether this module is being imported by multiprocessing's fork server (preload)."""
    fs = sys.modules.get("multiprocessing.forkserver")
    if fs is None:
        return False
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is fs.main.__code__:
            return True
        frame = frame.f_back
    return False


if _in_forkserver():  # the fork server dies with the process that started it (its children follow)
    _die_with_parent()


def _watch_parent(parent_pid: int) -> None:
    """End this worker (``os._exit``) as soon as process ``parent_pid`` has ended: a daemon
    thread waits on its pidfd (Linux ≥ 5.3), or polls it every 0.2 s elsewhere."""
    pidfd = None
    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(70)
    except (AttributeError, OSError):
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            import select

            select.select([pidfd], [], [])  # readable once the process has ended
        else:
            while True:
                time.sleep(0.2)
                try:
                    os.kill(parent_pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
        os._exit(70)

    threading.Thread(target=watch, name="sweep-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """Worker start-up: die with the fork server (kernel) and with the sweep's process (watchdog)."""
    _die_with_parent()
    _watch_parent(parent_pid)
    _load_thread_pools()


def _run_processes(todo, args, workers, finish) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "threadpoolctl", "simulations.sweep"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(_run_task, *a): i for i, a in zip(todo, args)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception:  # the worker died (e.g. killed): record, keep going
                    outcome = ("error", traceback.format_exc(), None)
                finish(i, *outcome)


# ----------------------------------------------------------------------- dask
def _check_scheduler(address: str, timeout: float) -> None:
    """A TCP scheduler address answers like a dask scheduler (it sends its handshake frame first)
    within ``timeout`` seconds, or :class:`SchedulerError`. Other protocols are left to dask."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address, strict=False)
        if scheme != "tcp":
            return
        host, port = parse_host_port(loc, 8786)
    except Exception as exc:
        raise SchedulerError(address, f"not an address of the form tcp://HOST:PORT ({exc})") from None
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise SchedulerError(address, f"unknown host {host!r} ({exc.strerror})") from None
    except ConnectionRefusedError:
        raise SchedulerError(address, "connection refused (no dask scheduler listens there)") from None
    except (socket.timeout, TimeoutError):
        raise SchedulerError(address, f"no answer within the connect timeout of {timeout:g} s") from None
    except OSError as exc:
        raise SchedulerError(address, f"cannot connect ({exc.strerror or exc})") from None
    with sock:
        head = b""
        try:
            while len(head) < 8:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout
                sock.settimeout(left)
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    break
                head += chunk
        except (socket.timeout, TimeoutError):
            raise SchedulerError(address, f"not a dask scheduler: it accepted the connection but sent no dask "
                                          f"handshake within the connect timeout of {timeout:g} s") from None
        except OSError as exc:
            raise SchedulerError(address, f"connection lost ({exc.strerror or exc})") from None
    if len(head) < 8:
        raise SchedulerError(address, "not a dask scheduler: it closed the connection without a handshake")
    if head.startswith(b"HTTP"):
        raise SchedulerError(address, "not a dask scheduler: it answers HTTP")
    frame = int.from_bytes(head, "little")
    if not 0 < frame < 2**26:
        raise SchedulerError(address, "not a dask scheduler: unexpected reply")


def _run_dask(todo, args, workers, scheduler, connect_timeout, finish) -> None:
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
        _check_scheduler(scheduler, connect_timeout)
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except Exception as exc:  # OSError, TimeoutError, protocol errors of a non-scheduler
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise SchedulerError(scheduler, f"cannot connect within {connect_timeout:g} s ({reason})") from None
    try:
        futures = [client.submit(_run_task, *a, pure=False) for a in args]
        index = {f.key: i for f, i in zip(futures, todo)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                outcome = fut.result()
            except Exception:
                outcome = ("error", traceback.format_exc(), None)
            finish(i, *outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
