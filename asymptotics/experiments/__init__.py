"""Registry of reproducible experiments: one function per paper figure.

An experiment is registered with :func:`register` and run by :func:`run`, which writes into the
output folder ``NAME.png`` (theory lines, simulated points with error bars), ``NAME.csv`` (tidy:
panel, series, kind, x, y, y_err, n_seeds) and ``NAME.json`` (parameters, seeds, package versions,
wall time, agreement metrics, and the SHA-256 of the CSV and PNG it belongs to). Each experiment
has three sizes (:class:`Size`): ``quick`` (seconds; CI), ``medium`` (at most ten minutes on two
cores, large enough for the experiment's checks: several d for every trend) and ``full`` (the
paper's).

The three files are replaced together (see :func:`run` and ``docs/conventions.md``): each is
written under a temporary name, then, under an advisory lock on ``.NAME.lock`` in the output
folder, a commit record is written and the three are renamed in the order CSV, PNG, JSON. A kill
at any moment leaves the previous complete set or the new complete set, except in the window
between the renames, which the commit record and the JSON's checksums expose and which
:func:`recover_outputs` (run first by every later run) completes. :func:`verify_outputs` checks a
folder.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import inspect
import json
import math
import os
import platform
import re
import secrets
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from simulations.sweep import SweepConfig, SweepStats, run_sweep

from ..compare import (Panel, SeedStack, Series, _csv_bytes, _figure_bytes, overlay, series_agreement, tidy_rows,
                       write_csv)
from ..verdict import Check, checks_block, pointwise_from_series

try:  # Windows has no fcntl: outputs are still replaced atomically, one file at a time, without the lock
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

__all__ = ["Experiment", "ExperimentOutput", "Size", "SIZES", "Sweeper", "PlanningSweeper", "SweepConfig", "estimate", "SeedStack", "InputError", "register",
           "get", "names", "run", "expected_numerics", "verify_outputs", "recover_outputs", "outputs_lock", "MAX_SEEDS"]

#: The most seeds per simulated point that :func:`run` (and ``--seeds``) accepts; more is refused
#: before any work (10⁹ seeds would mean 10⁹ tasks held in memory).
MAX_SEEDS = 10_000
#: Seconds a run waits for another run's commit into the same output folder (a commit takes ms).
LOCK_TIMEOUT_S = 60.0
_EXTS = ("csv", "png", "json")  # the order in which a commit replaces the files: JSON last

_MODULES = ("ridge", "deep", "giant_step", "trained", "hierarchical")  # experiment modules, imported lazily by the registry
_REGISTRY: dict[str, "Experiment"] = {}


#: The sizes of every experiment, smallest first.
SIZES = ("quick", "medium", "full")


class Size(str):
    """An experiment size: ``"quick"``, ``"medium"`` or ``"full"`` (a ``str``, so it compares and
    prints as its name). ``size.pick(quick=a, medium=b, full=c)`` is the value for this size."""

    def __new__(cls, value):
        if isinstance(value, Size):
            return value
        if not isinstance(value, str) or value not in SIZES:
            raise InputError(f"size must be one of {', '.join(SIZES)}, got {value!r}")
        return super().__new__(cls, value)

    @property
    def quick(self) -> bool:
        return self == "quick"

    def pick(self, quick, medium, full):
        """The argument named like this size."""
        return {"quick": quick, "medium": medium, "full": full}[str(self)]


class InputError(ValueError):
    """Bad user input to an experiment (e.g. a missing or malformed data file): the command line
    prints its one-line message and exits with status 2."""


@dataclass
class ExperimentOutput:
    """What an experiment function returns: the figure's content and its parameters."""

    panels: Sequence[Panel]
    series: Sequence[Series]
    parameters: dict
    title: str = ""
    notes: dict = field(default_factory=dict)
    checks: Sequence[Check] = ()  # the experiment's named verdicts (asymptotics.verdict)


@dataclass
class Sweeper:
    """Runs an experiment's simulation tasks through :func:`simulations.sweep.run_sweep`.

    ``sweeper(fn, specs)`` returns ``results[i][s]`` for parameter point i and seed s; every
    call of one experiment shares the :class:`~simulations.sweep.SweepConfig` (backend, cache,
    root seed, number of seeds), and the counts of computed / cached tasks are accumulated in
    ``stats`` (written to NAME.json).
    """

    experiment: str
    config: SweepConfig
    stats: SweepStats = field(default_factory=SweepStats)

    @property
    def seeds(self) -> int:
        return self.config.seeds

    @property
    def root_seed(self) -> int:
        return self.config.root_seed

    def __call__(self, fn, params: Sequence, seeds: int | None = None, paired: Sequence[str] = ()) -> list[list]:
        """Results ``[i][s]``; ``seeds`` overrides the experiment's number of seeds for this call;
        ``paired``: fields whose values share one seed (see :func:`~simulations.sweep.run_sweep`)."""
        seeds = self.seeds if seeds is None else seeds
        res = run_sweep(fn, params, seeds, experiment=self.experiment, config=self.config, paired=paired)
        for key in ("total", "computed", "cached", "failed", "corrupt", "wall_time_s"):
            setattr(self.stats, key, getattr(self.stats, key) + getattr(res.stats, key))
        return [res.results[i * seeds:(i + 1) * seeds] for i in range(len(params))]

    def stack(self, fn, params: Sequence, key, seeds: int | None = None, paired: Sequence[str] = ()) -> SeedStack:
        """``SeedStack`` of ``result[key]`` over seeds, values of shape (S, points, ...)."""
        return SeedStack.of(self(fn, params, seeds, paired), key, seed_axis=1)


class PlanningSweeper(Sweeper):
    """A :class:`Sweeper` that plans instead of running: every call records (task function,
    parameter points, seeds) in ``calls`` and returns placeholder results of the right keys and
    shapes (:func:`simulations.cost.placeholder`), so that the experiment function runs to its
    end (its theory included) without simulating, writing outputs or touching a cache.
    ``placeholder_s`` is the (busy) time spent planning and making placeholders, not part of the
    experiment's own time."""

    def __init__(self, experiment: str, config: SweepConfig):
        super().__init__(experiment=experiment, config=config)
        self.calls: list = []
        self.placeholder_s = 0.0

    def __call__(self, fn, params: Sequence, seeds: int | None = None, paired: Sequence[str] = ()) -> list[list]:
        from simulations.cost import PlannedCall, busy_seconds, cached_tasks, placeholder

        seeds = self.seeds if seeds is None else seeds
        params = tuple(params)

        def record():
            cached = cached_tasks(fn, params, seeds, experiment=self.experiment, config=self.config)
            self.calls.append(PlannedCall(fn, params, int(seeds), cached))
            return [[placeholder(fn, spec, s) for s in range(seeds)] for spec in params]

        out, busy = busy_seconds(record)  # measured as the planning is: see estimate()
        self.stats.total += len(params) * seeds
        self.placeholder_s += busy
        return out


#: Relative offsets of the simulated points around an interpolation peak n = p (both sides, within
#: ±10 %, never at p itself where ridgeless diverges).
PEAK_OFFSETS = (-0.1, -0.05, 0.05, 0.1)


def peak_ns(p: int) -> np.ndarray:
    """n = p(1 ± 0.05), p(1 ± 0.1) rounded: the simulated points on both sides of a peak at n = p."""
    return np.unique(np.round(p * (1 + np.array(PEAK_OFFSETS))).astype(int))


@contextlib.contextmanager
def expected_numerics():
    """Silence :class:`~asymptotics.ridge.NumericalWarning` where an infinite or flagged value is
    expected by design (the ridgeless peak at n = p drawn as a gap)."""
    from ..ridge import NumericalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        yield


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    function: Callable[..., ExperimentOutput]
    default_seeds: dict  # {"quick": S, "medium": S, "full": S}


def register(name: str, description: str, quick_seeds: int, full_seeds: int, medium_seeds: int | None = None):
    """Decorator registering ``f(size: Size, sweep: Sweeper) -> ExperimentOutput``.

    The function runs its simulations through ``sweep`` (seeds, root seed, backend and cache
    are the sweeper's) and computes its theory directly. ``medium_seeds`` defaults to ``full_seeds``.
    """

    def deco(f):
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} registered twice")
        seeds = {"quick": quick_seeds, "medium": full_seeds if medium_seeds is None else medium_seeds,
                 "full": full_seeds}
        _REGISTRY[name] = Experiment(name, description, f, seeds)
        return f

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("asymptotics", "numpy", "scipy", "numba", "mpmath", "sympy", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def run(name: str, *, quick: bool = False, size: str | None = None, out="results", seeds: int | None = None, seed: int = 0,
        backend: str = "serial", workers: int | None = None, cache=None, scheduler: str | None = None,
        quiet: bool = True, data=None, options: dict | None = None, connect_timeout: float = 30.0) -> dict:
    """Run experiment ``name`` and write NAME.png, NAME.csv, NAME.json into ``out``.

    ``size``: "quick", "medium" or "full" (default full); ``quick=True`` is the alias of
    ``size="quick"`` (both given and different: an :class:`InputError`).

    Simulation tasks run on ``backend`` ("serial", "processes", "dask") with ``workers``
    workers, cached under ``cache`` (resumable), see :mod:`simulations.sweep`; ``connect_timeout``:
    seconds to wait for the dask ``scheduler``. The CSV does not depend on the backend, the number
    of workers or the cache. ``data``: a data path for the experiments that read one (those whose
    function takes ``data``; :class:`InputError` otherwise). ``options``: further keyword
    arguments that an experiment function declares (e.g. the dimensions of a sweep); an unknown
    one, or a value that is not plain JSON with finite numbers and integers within ±2⁶³, is an
    :class:`InputError` naming it.

    Checked before any work, each an :class:`InputError` with a one-line message that starts with
    the argument's name: the sweep settings (``seeds`` at most :data:`MAX_SEEDS`), ``out`` (a
    writable folder, created if missing, whose name is valid UTF-8) and ``cache`` (not a file).

    Outputs are replaced together: see the module docstring; the JSON's ``sha256`` holds the
    SHA-256 of the CSV and PNG written with it. Returns the JSON metadata (also written to disk).
    Raises :class:`simulations.sweep.SweepError` if tasks failed (finished tasks are kept in the
    cache).
    """
    exp = get(name)
    size = resolve_size(quick, size)
    config = _sweep_config(exp, size, seeds, backend=backend, workers=workers, cache=cache, scheduler=scheduler,
                           quiet=quiet, root_seed=seed, connect_timeout=connect_timeout)
    kwargs = _experiment_kwargs(exp, data, options)
    out = _output_folder(out)
    if cache is not None:
        _check_cache(cache)
    sweeper = Sweeper(experiment=sweep_name(name, size), config=config)
    t0 = time.perf_counter()
    result = exp.function(size=size, sweep=sweeper, **kwargs)
    wall = time.perf_counter() - t0
    csv_data = _csv_bytes(tidy_rows(result.series))
    png_data = _figure_bytes(overlay(result.panels, result.series, None, title=result.title), "png")
    meta = {
        "experiment": name,
        "description": exp.description,
        "size": str(size),
        "parameters": result.parameters,
        "seeds": {"count": config.seeds, "root_seed": config.root_seed},
        "versions": _versions(),
        "wall_time_s": round(wall, 3),
        "sweep": {"backend": config.backend, "workers": config.workers, "cache": config.cache,
                  **sweeper.stats.as_dict()},
        "agreement": agreement_block(result),
        "notes": result.notes,
        "files": [f"{name}.png", f"{name}.csv", f"{name}.json"],
        "sha256": {f"{name}.csv": hashlib.sha256(csv_data).hexdigest(),
                   f"{name}.png": hashlib.sha256(png_data).hexdigest()},
    }
    json_data = json.dumps(meta, indent=2, default=float).encode("utf-8")
    _commit(out, name, {"csv": csv_data, "png": png_data, "json": json_data})
    return meta


def estimate(name: str, *, quick: bool = False, size: str | None = None, seeds: int | None = None, seed: int = 0,
             backend: str = "serial", workers: int | None = None, scheduler: str | None = None, cache=None, data=None,
             options: dict | None = None, figure: bool = True) -> dict:
    """The cost of ``run(name, ...)`` without running its sweep (``asymptotics reproduce NAME
    --estimate``): the experiment function runs with a :class:`PlanningSweeper` (its theory is
    computed, its tasks only recorded; with ``figure`` the figure is drawn in memory, as a run
    does), then :func:`simulations.cost.estimate` predicts the tasks' cost from the calibrated
    cost models; tasks whose results are already in ``cache`` cost nothing (``cached_tasks``); with a
    dask ``scheduler`` (not contacted) ``workers`` counts the cluster's workers.
    Nothing is written but the calibration cache. Returns a dict with ``tasks``,
    ``core_hours``, ``peak_memory_bytes``, ``wall_seconds`` (for ``backend`` and ``workers``),
    ``other_seconds`` (the experiment's own time, measured here), ``by_task`` and ``calibration``.
    The same arguments as :func:`run` are checked the same way (:class:`InputError`)."""
    from simulations.cost import busy_seconds, estimate as cost_estimate

    exp = get(name)
    size = resolve_size(quick, size)
    config = _sweep_config(exp, size, seeds, backend=backend, workers=workers, cache=cache, scheduler=scheduler,
                           quiet=True, root_seed=seed)
    kwargs = _experiment_kwargs(exp, data, options)
    if cache is not None:
        _check_cache(cache)
    planner = PlanningSweeper(sweep_name(name, size), config)

    def plan():
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # placeholders are not data: their statistics may warn
            result = exp.function(size=size, sweep=planner, **kwargs)
            if figure:
                _figure_bytes(overlay(result.panels, result.series, None, title=result.title), "png")

    other = max(0.0, busy_seconds(plan)[1] - planner.placeholder_s)
    out = cost_estimate(planner.calls, backend=backend, workers=config.n_workers if workers is None else workers,
                        other_seconds=other, remote=scheduler is not None)
    return {"experiment": name, "size": str(size), "seeds": config.seeds, **out}


# ------------------------------------------------------------------- checks of user input
def _show(path) -> str:
    """A path as one printable line (undecodable bytes escaped)."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")


def _output_folder(out) -> Path:
    """``out`` as a writable folder (created if missing), or an InputError saying why not."""
    if not isinstance(out, (str, os.PathLike)):
        raise InputError(f"out must be a folder path, got {type(out).__name__}")
    text = os.fsdecode(out)
    if not text:
        raise InputError("out must be a folder path, got an empty string")
    if "\0" in text:
        raise InputError(f"out {_show(text)!r}: a path cannot contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"out {_show(text)}: the folder name is not valid UTF-8 (undecodable bytes shown "
                         "escaped); choose a UTF-8 name") from None
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise InputError(f"out {_show(path)}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = _mkstemp(path, "write-check", "tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"out {_show(path)}: cannot write there ({exc.strerror or exc})") from None
    return path


def _check_cache(cache) -> None:
    """A cache path that is a file, or lies under one, is refused before any work."""
    if not isinstance(cache, (str, os.PathLike)):
        return  # SweepConfig has said what a cache must be
    path = Path(os.fsdecode(cache))
    probe = path
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    except OSError as exc:  # e.g. a name too long
        raise InputError(f"cache {_show(path)}: not usable ({exc.strerror or exc})") from None
    if probe.exists() and not probe.is_dir():
        where = "is" if probe == path else f"lies under {_show(probe)}, which is"
        raise InputError(f"cache {_show(path)}: {where} a file, not a folder")


def _check_option_value(key: str, value, depth: int = 0) -> None:
    """Option values are plain JSON: finite numbers, integers within ±2⁶³, strings, lists, dicts."""
    if depth > 32:
        raise InputError(f"option {key}: nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:
            raise InputError(f"option {key}: the integer {str(value)[:20]}... is out of range (|v| < 2^63)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"option {key}: numbers must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_option_value(key, v, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"option {key}: keys must be strings, got {k!r}")
            _check_option_value(key, v, depth + 1)
        return
    raise InputError(f"option {key}: expected a JSON value (number, string, list, object), got {type(value).__name__}")


# ------------------------------------------------------------------- atomic output groups
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{16})\.(?P<ext>[a-z-]+)$")


def _mkstemp(folder: Path, name: str, ext: str) -> tuple[int, str]:
    """A new temporary file ``.NAME.PID.TOKEN.EXT`` in ``folder`` (the PID tells a later run
    whether its writer is still alive)."""
    for _ in range(100):
        path = folder / f".{name}.{os.getpid()}.{secrets.token_hex(8)}.{ext}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), str(path)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))  # pragma: no cover


def _write_synced(folder: Path, name: str, ext: str, data: bytes) -> Path:
    fd, tmp = _mkstemp(folder, name, ext)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened / synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(folder: Path, name: str, shared: bool = False, timeout: float = LOCK_TIMEOUT_S):
    """The advisory lock ``folder/.NAME.lock`` (fcntl.flock; exclusive for a commit, shared for a
    reader), waited for at most ``timeout`` seconds. The lock file is never removed."""
    if fcntl is None:  # pragma: no cover - not on POSIX
        yield
        return
    fd = os.open(folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{_show(folder)}: another process has held .{name}.lock for over "
                                       f"{timeout:g} s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists
        return True
    return True


def _journal(folder: Path, name: str) -> Path:
    return folder / f".{name}.commit"


def _recover(folder: Path, name: str) -> bool:
    """Under the exclusive lock: finish a commit whose writer died between its renames (roll
    forward from the commit record) and remove dead writers' temporary files. True if a commit
    was finished."""
    finished = False
    journal = _journal(folder, name)
    if journal.is_file():
        try:
            entries = json.loads(journal.read_text())
        except (ValueError, OSError):
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
                continue
            tmp, final = entry
            m = _TMP_NAME.match(tmp)
            if not m or m["name"] != name or final != f"{name}.{m['ext']}" or m["ext"] not in _EXTS:
                continue  # only this experiment's own temporary files onto its own names
            if (folder / tmp).is_file():
                os.replace(folder / tmp, folder / final)
                finished = True
        _fsync_dir(folder)
        journal.unlink(missing_ok=True)
    for entry in folder.iterdir():
        m = _TMP_NAME.match(entry.name)
        if m and m["name"] == name and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                entry.unlink()
    return finished


def _commit(folder: Path, name: str, files: dict) -> None:
    """Write ``files`` ({ext: bytes}) to temporary files, then replace NAME.csv, NAME.png,
    NAME.json in that order under the lock, with a commit record for roll-forward."""
    tmps: dict = {}
    committed = False
    try:
        for ext in _EXTS:
            tmps[ext] = _write_synced(folder, name, ext, files[ext])
        with _locked(folder, name):
            _recover(folder, name)
            record = json.dumps([[tmps[ext].name, f"{name}.{ext}"] for ext in _EXTS]).encode()
            os.replace(_write_synced(folder, name, "commit-tmp", record), _journal(folder, name))
            _fsync_dir(folder)
            committed = True  # from here on, the group is logically written: a failure is rolled forward
            for ext in _EXTS:
                os.replace(tmps[ext], folder / f"{name}.{ext}")
            _fsync_dir(folder)
            _journal(folder, name).unlink()
    except BaseException:
        if committed:
            with contextlib.suppress(Exception):
                with _locked(folder, name, timeout=5.0):
                    _recover(folder, name)
        else:
            for tmp in tmps.values():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        raise


@contextlib.contextmanager
def outputs_lock(out, name: str, *, shared: bool = True, timeout: float = LOCK_TIMEOUT_S):
    """Hold the advisory lock of experiment ``name``'s outputs in ``out`` (shared by default: a
    reader holding it sees no commit half done, so NAME.csv, NAME.png and NAME.json read inside
    are one set). Raises TimeoutError after ``timeout`` seconds."""
    with _locked(Path(out), name, shared=shared, timeout=timeout):
        yield


def recover_outputs(out, name: str) -> bool:
    """Finish, in ``out``, a commit of experiment ``name``'s outputs that a killed run left between
    its renames, and remove temporary files of runs that are no longer alive (every :func:`run`
    does this first). Returns True if a commit was finished."""
    folder = Path(out)
    if not folder.is_dir():
        return False
    with _locked(folder, name):
        return _recover(folder, name)


def verify_outputs(out, name: str) -> list[str]:
    """Problems with ``out/NAME.{csv,png,json}`` as one set (an empty list when there are none):
    a missing file, a JSON without checksums (written before release 16) or whose SHA-256 of the
    CSV or PNG does not match the file, an interrupted commit. Reads under the shared lock, so a
    commit in progress is never seen half done."""
    folder = Path(out)
    problems = []
    with (_locked(folder, name, shared=True) if folder.is_dir() and os.access(folder, os.W_OK)
          else contextlib.nullcontext()):
        if _journal(folder, name).exists():
            problems.append(f"a commit was interrupted (.{name}.commit exists): run recover_outputs or rerun")
        try:
            meta = json.loads((folder / f"{name}.json").read_text())
        except FileNotFoundError:
            return problems + [f"{name}.json is missing"]
        except (ValueError, OSError) as exc:
            return problems + [f"{name}.json is not readable JSON ({exc})"]
        sums = meta.get("sha256") if isinstance(meta, dict) else None
        if not isinstance(sums, dict):
            return problems + [f"{name}.json records no sha256 checksums"]
        for ext in ("csv", "png"):
            fname = f"{name}.{ext}"
            try:
                digest = hashlib.sha256((folder / fname).read_bytes()).hexdigest()
            except OSError:
                problems.append(f"{fname} is missing or unreadable")
                continue
            if sums.get(fname) != digest:
                problems.append(f"{fname} does not match the SHA-256 recorded in {name}.json")
    return problems


def agreement_block(result: ExperimentOutput) -> dict:
    """NAME.json's agreement: point-wise z-scores per series and pooled ("series", "overall"), and
    the named checks — the pooled point-wise check first, then the experiment's own — with
    "passed" (all checks passed)."""
    pointwise = pointwise_from_series(result.series)
    checks = ([pointwise] if pointwise is not None else []) + list(result.checks)
    return {**series_agreement(result.series), **checks_block(checks)}


def _sweep_config(exp: Experiment, size: Size, seeds, **settings) -> SweepConfig:
    """The validated sweep settings of a run or an estimate: the experiment's seeds for this size
    unless ``seeds`` is given (at most :data:`MAX_SEEDS`); bad settings are an :class:`InputError`."""
    n_seeds = exp.default_seeds[size] if seeds is None else seeds
    if isinstance(n_seeds, int) and not isinstance(n_seeds, bool) and n_seeds > MAX_SEEDS:
        raise InputError(f"seeds must be at most {MAX_SEEDS}, got {n_seeds}")
    try:
        return SweepConfig(seeds=n_seeds, **settings)
    except (ValueError, TypeError) as exc:  # the settings' own validation: a user error
        raise InputError(str(exc)) from None


def resolve_size(quick: bool, size) -> Size:
    """The size from ``quick`` (the alias of "quick") and ``size`` (default "full")."""
    if size is None:
        return Size("quick" if quick else "full")
    size = Size(size)
    if quick and not size.quick:
        raise InputError(f"size {size!r} contradicts quick (the alias of size 'quick')")
    return size


def sweep_name(name: str, size: Size) -> str:
    """The experiment name that seeds and cache keys are derived from: NAME-quick, NAME-medium, NAME
    (full). Different sizes never share seeds or cache entries."""
    return name if size == "full" else f"{name}-{size}"


def _experiment_kwargs(exp: Experiment, data, options: dict | None) -> dict:
    """The keyword arguments of an experiment function beyond (size, sweep): data and options."""
    accepted = list(inspect.signature(exp.function).parameters)
    if data is not None and "data" not in accepted:
        readers = [n for n in names() if "data" in inspect.signature(get(n).function).parameters]
        raise InputError(f"experiment {exp.name!r} reads no data file (--data is for: {', '.join(readers)})")
    kwargs = {"data": data} if data is not None else {}
    if options:
        own = [k for k in accepted if k not in ("size", "sweep", "data")]
        unknown = sorted(set(options) - set(own))
        if unknown:
            raise InputError(f"experiment {exp.name!r} has no option(s) {unknown}; its options: {own or 'none'}")
        for key, value in options.items():
            _check_option_value(key, value)
        kwargs.update(options)
    return kwargs
