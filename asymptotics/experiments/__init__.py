"""Registry of reproducible experiments: one function per paper figure.

An experiment is registered with :func:`register` and run by :func:`run`, which writes into the
output folder ``NAME.png`` (theory lines, simulated points with error bars), ``NAME.csv`` (tidy:
panel, series, kind, x, y, y_err, n_seeds) and ``NAME.json`` (parameters, seeds, package versions,
wall time, agreement metrics). Each experiment has a ``quick`` size (seconds) and a ``full`` size
(the paper's).
"""
from __future__ import annotations

import importlib
import inspect
import json
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from simulations.sweep import SweepStats, run_sweep

from ..compare import Panel, Series, overlay, series_agreement, tidy_rows, write_csv

__all__ = ["Experiment", "ExperimentOutput", "Sweeper", "InputError", "register", "get", "names", "run"]

_MODULES = ("ridge", "deep", "giant_step", "trained", "hierarchical")  # experiment modules, imported lazily by the registry
_REGISTRY: dict[str, "Experiment"] = {}


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


@dataclass
class Sweeper:
    """Runs an experiment's simulation tasks through :func:`simulations.sweep.run_sweep`.

    ``sweeper(fn, params)`` returns ``results[i][s]`` for parameter point i and seed s; every
    call of one experiment shares the backend, the cache and the root seed, and the counts of
    computed / cached tasks are accumulated in ``stats`` (written to NAME.json).
    """

    experiment: str
    seeds: int
    root_seed: int = 0
    backend: str = "serial"
    workers: int | None = None
    cache: str | None = None
    scheduler: str | None = None
    quiet: bool = True
    stats: SweepStats = field(default_factory=SweepStats)

    def __call__(self, fn, params: Sequence[dict], seeds: int | None = None) -> list[list]:
        """Results ``[i][s]``; ``seeds`` overrides the experiment's number of seeds for this call."""
        seeds = self.seeds if seeds is None else seeds
        res = run_sweep(fn, params, seeds, experiment=self.experiment, root_seed=self.root_seed,
                        backend=self.backend, workers=self.workers, cache=self.cache,
                        scheduler=self.scheduler, quiet=self.quiet)
        for key in ("total", "computed", "cached", "failed", "corrupt", "wall_time_s"):
            setattr(self.stats, key, getattr(self.stats, key) + getattr(res.stats, key))
        return [res.results[i * seeds:(i + 1) * seeds] for i in range(len(params))]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    function: Callable[..., ExperimentOutput]
    default_seeds: dict  # {"quick": S, "full": S}


def register(name: str, description: str, quick_seeds: int, full_seeds: int):
    """Decorator registering ``f(quick: bool, sweep: Sweeper) -> ExperimentOutput``.

    The function runs its simulations through ``sweep`` (seeds, root seed, backend and cache
    are the sweeper's) and computes its theory directly.
    """

    def deco(f):
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} registered twice")
        _REGISTRY[name] = Experiment(name, description, f, {"quick": quick_seeds, "full": full_seeds})
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


def run(name: str, *, quick: bool = False, out="results", seeds: int | None = None, seed: int = 0,
        backend: str = "serial", workers: int | None = None, cache=None, scheduler: str | None = None,
        quiet: bool = True, data=None, options: dict | None = None) -> dict:
    """Run experiment ``name`` and write NAME.png, NAME.csv, NAME.json into ``out``.

    Simulation tasks run on ``backend`` ("serial", "processes", "dask") with ``workers``
    workers, cached under ``cache`` (resumable), see :mod:`simulations.sweep`. The CSV does not
    depend on the backend, the number of workers or the cache. ``data``: a data path for the
    experiments that read one (those whose function takes ``data``; :class:`InputError` otherwise).
    ``options``: further keyword arguments that an experiment function declares (e.g. the
    dimensions of a sweep); an unknown one is an :class:`InputError` naming the accepted ones.
    Returns the JSON metadata (also written to disk). Raises :class:`simulations.sweep.SweepError` if tasks failed (finished
    tasks are kept in the cache).
    """
    exp = get(name)
    takes_data = "data" in inspect.signature(exp.function).parameters
    if data is not None and not takes_data:
        raise InputError(f"experiment {name!r} reads no data file (--data is for: "
                         f"{', '.join(n for n in names() if 'data' in inspect.signature(get(n).function).parameters)})")
    if seeds is None:
        seeds = exp.default_seeds["quick" if quick else "full"]
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweeper = Sweeper(experiment=name + ("-quick" if quick else ""), seeds=seeds, root_seed=seed,
                      backend=backend, workers=workers, cache=None if cache is None else str(cache),
                      scheduler=scheduler, quiet=quiet)
    t0 = time.perf_counter()
    kwargs = {"data": data} if data is not None else {}
    if options:
        accepted = [k for k in inspect.signature(exp.function).parameters if k not in ("quick", "sweep", "data")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise InputError(f"experiment {name!r} has no option(s) {unknown}; its options: {accepted or 'none'}")
        kwargs.update(options)
    result = exp.function(quick=quick, sweep=sweeper, **kwargs)
    wall = time.perf_counter() - t0
    rows = tidy_rows(result.series)
    write_csv(rows, out / f"{name}.csv")
    overlay(result.panels, result.series, out / f"{name}.png", title=result.title)
    meta = {
        "experiment": name,
        "description": exp.description,
        "size": "quick" if quick else "full",
        "parameters": result.parameters,
        "seeds": {"count": seeds, "root_seed": seed},
        "versions": _versions(),
        "wall_time_s": round(wall, 3),
        "sweep": {"backend": backend, "workers": workers, "cache": None if cache is None else str(cache),
                  **sweeper.stats.as_dict()},
        "agreement": series_agreement(result.series),
        "notes": result.notes,
        "files": [f"{name}.png", f"{name}.csv", f"{name}.json"],
    }
    with open(out / f"{name}.json", "w") as fh:
        json.dump(meta, fh, indent=2, default=float)
    return meta
