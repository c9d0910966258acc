"""Registry of reproducible experiments: one function per paper figure.

An experiment is registered with :func:`register` and run by :func:`run`, which writes into the
output folder ``NAME.png`` (theory lines, simulated points with error bars), ``NAME.csv`` (tidy:
panel, series, kind, x, y, y_err, n_seeds) and ``NAME.json`` (parameters, seeds, package versions,
wall time, agreement metrics). Each experiment has a ``quick`` size (seconds) and a ``full`` size
(the paper's).
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import platform
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from simulations.sweep import SweepConfig, SweepStats, run_sweep

from ..compare import Panel, SeedStack, Series, overlay, series_agreement, tidy_rows, write_csv

__all__ = ["Experiment", "ExperimentOutput", "Sweeper", "SweepConfig", "SeedStack", "InputError", "register",
           "get", "names", "run", "expected_numerics"]

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
    config = SweepConfig(backend=backend, workers=workers, cache=cache, scheduler=scheduler, quiet=quiet,
                         seeds=exp.default_seeds["quick" if quick else "full"] if seeds is None else seeds,
                         root_seed=seed)
    kwargs = _experiment_kwargs(exp, data, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweeper = Sweeper(experiment=name + ("-quick" if quick else ""), config=config)
    t0 = time.perf_counter()
    result = exp.function(quick=quick, sweep=sweeper, **kwargs)
    wall = time.perf_counter() - t0
    write_csv(tidy_rows(result.series), out / f"{name}.csv")
    overlay(result.panels, result.series, out / f"{name}.png", title=result.title)
    meta = {
        "experiment": name,
        "description": exp.description,
        "size": "quick" if quick else "full",
        "parameters": result.parameters,
        "seeds": {"count": config.seeds, "root_seed": config.root_seed},
        "versions": _versions(),
        "wall_time_s": round(wall, 3),
        "sweep": {"backend": config.backend, "workers": config.workers, "cache": config.cache,
                  **sweeper.stats.as_dict()},
        "agreement": series_agreement(result.series),
        "notes": result.notes,
        "files": [f"{name}.png", f"{name}.csv", f"{name}.json"],
    }
    with open(out / f"{name}.json", "w") as fh:
        json.dump(meta, fh, indent=2, default=float)
    return meta


def _experiment_kwargs(exp: Experiment, data, options: dict | None) -> dict:
    """The keyword arguments of an experiment function beyond (quick, sweep): data and options."""
    accepted = list(inspect.signature(exp.function).parameters)
    if data is not None and "data" not in accepted:
        readers = [n for n in names() if "data" in inspect.signature(get(n).function).parameters]
        raise InputError(f"experiment {exp.name!r} reads no data file (--data is for: {', '.join(readers)})")
    kwargs = {"data": data} if data is not None else {}
    if options:
        own = [k for k in accepted if k not in ("quick", "sweep", "data")]
        unknown = sorted(set(options) - set(own))
        if unknown:
            raise InputError(f"experiment {exp.name!r} has no option(s) {unknown}; its options: {own or 'none'}")
        kwargs.update(options)
    return kwargs
