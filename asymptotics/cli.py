"""Command line: ``asymptotics list`` and ``asymptotics reproduce NAME``.

``reproduce NAME --estimate [--json]`` prints the cost of the run (tasks, core-hours, peak memory
per task, wall time on this machine for ``--backend``/``--workers``) without running its sweep
(:func:`asymptotics.experiments.estimate`, ``docs/sizes.md``).

Exit status: 0 on success; 2 for a user error (a bad flag or value, an unusable ``--out`` or
``--cache``, a bad data file, a dask scheduler that cannot be reached), reported as one line
``asymptotics: ...`` on stderr, never a traceback, and before any simulation runs; 1 when tasks
failed (listed, with the cache kept for a rerun). Anything else (a bug, a full disk) is not a
user error and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from simulations.sweep import BACKENDS, CacheError, SchedulerError, SweepConfig, SweepError

from . import experiments
from .verdict import Check


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``asymptotics reproduce: ...``, exit 2) instead of the usage
    block; ``--help`` still shows the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="asymptotics", description="High-dimensional learning curves: "
                 "theory and simulation side by side.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the reproducible experiments")
    rep = sub.add_parser("reproduce", help="run an experiment; write NAME.png, NAME.csv, NAME.json")
    rep.add_argument("name", help="experiment name (see `asymptotics list`)")
    rep.add_argument("--size", choices=experiments.SIZES, default=None,
                     help="quick (seconds), medium (at most 10 minutes on 2 cores, every claim shown) or full "
                          "(the paper's sizes; the default)")
    rep.add_argument("--quick", action="store_true", help="the alias of --size quick")
    rep.add_argument("--out", default="results", help="output folder (default: results)")
    rep.add_argument("--seeds", type=int, default=None,
                     help=f"number of seeds per simulated point, at most {experiments.MAX_SEEDS} "
                          "(default: the experiment's)")
    rep.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    rep.add_argument("--backend", choices=BACKENDS, default="serial",
                     help="where simulation tasks run (default: serial)")
    rep.add_argument("--workers", type=int, default=None,
                     help="worker processes / dask workers (default: number of cores)")
    rep.add_argument("--cache", default=None, metavar="DIR",
                     help="cache finished tasks in DIR; a rerun resumes without recomputing them")
    rep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="address of a running dask scheduler (with --backend dask), e.g. tcp://host:8786")
    rep.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="seconds to wait for the dask scheduler before giving up (default 30)")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument("--data", default=None, metavar="PATH",
                     help="data for experiments that read it (mnist-even-odd: a folder with the MNIST IDX "
                          "files, or mnist.npz)")
    rep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="an option of the experiment (VALUE in JSON, e.g. --set dims=[16,24]); repeatable")
    rep.add_argument("--estimate", action="store_true",
                     help="print the cost (tasks, core-hours, peak memory per task, wall time on this machine for "
                          "--backend and --workers) without running the sweep; writes nothing")
    rep.add_argument("--json", action="store_true", help="with --estimate: the estimate as one JSON object on stdout")
    return ap


def _finite_float(key: str):
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise experiments.InputError(f"--set {key}: the number {text} is out of range (finite numbers only)")
        return value
    return parse


def _no_constant(key: str):
    def parse(text: str):
        raise experiments.InputError(f"--set {key}: {text} is not allowed (finite numbers only)")
    return parse


def _options(pairs) -> dict:
    """``KEY=VALUE`` pairs; VALUE is JSON with finite numbers (NaN, Infinity, 1e400 are refused), or
    else a plain string."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise experiments.InputError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value, parse_float=_finite_float(key), parse_constant=_no_constant(key))
        except json.JSONDecodeError:
            out[key] = value
        except RecursionError:
            raise experiments.InputError(f"--set {key}: the value is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            if isinstance(exc, experiments.InputError):
                raise
            raise experiments.InputError(f"--set {key}: {exc}") from None
    return out


_FLAGS = {"seeds": "--seeds", "seed": "--seed", "workers": "--workers", "scheduler": "--scheduler",
          "backend": "--backend", "threads": "threads", "out": "--out", "cache": "--cache",
          "connect_timeout": "--connect-timeout", "data": "--data", "size": "--size"}


def _flag_names(message: str) -> str:
    """A message about an argument in the command line's words (seeds → --seeds, root seed → --seed,
    connect_timeout → --connect-timeout, …), on one line."""
    message = " ".join(str(message).split()) or "invalid input"
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable path bytes escaped
    word, sep, rest = message.partition(" ")
    if sep and word in _FLAGS:
        return f"{_FLAGS[word]} {rest}"
    return message


def _error(message) -> int:
    print(f"asymptotics: {_flag_names(message)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("asymptotics: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`asymptotics list | head -1`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in experiments.names():
            print(f"{name:24s} {experiments.get(name).description}")
        sys.stdout.flush()
        return 0
    try:
        experiments.get(args.name)
    except KeyError as exc:
        return _error(exc.args[0])
    if args.json and not args.estimate:
        return _error("--json is only used with --estimate")
    try:  # the one validation of the sweep settings (SweepConfig), before any work
        SweepConfig(backend=args.backend, workers=args.workers, cache=args.cache, scheduler=args.scheduler,
                    seeds=1 if args.seeds is None else args.seeds, root_seed=args.seed,
                    connect_timeout=args.connect_timeout)
    except (ValueError, TypeError) as exc:
        return _error(exc)
    if args.estimate:
        return _estimate(args)
    try:
        options = _options(args.set)
        meta = experiments.run(args.name, quick=args.quick, size=args.size, out=args.out, seeds=args.seeds, seed=args.seed,
                               backend=args.backend, workers=args.workers, cache=args.cache,
                               scheduler=args.scheduler, quiet=args.quiet, data=args.data,
                               options=options, connect_timeout=args.connect_timeout)
    except (experiments.InputError, CacheError, SchedulerError) as exc:
        return _error(exc)
    except SweepError as exc:
        print(f"asymptotics: {exc}", file=sys.stderr)
        if args.cache:
            print(f"asymptotics: finished tasks are kept in {args.cache}; rerun to retry the failed ones",
                  file=sys.stderr)
        return 1
    overall = meta["agreement"]["overall"]
    sw = meta["sweep"]
    print(f"{args.name}: wrote {', '.join(meta['files'])} to {args.out} in {meta['wall_time_s']:.1f} s "
          f"({sw['computed']} tasks computed, {sw['cached']} from cache, backend {args.backend})")
    if overall:
        print("agreement (theory vs simulation, z = deviation / standard error over seeds): "
              + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in overall.items()}))
    for check in meta["agreement"].get("checks", []):
        print("  " + Check(**{**check, "interval": None if check["interval"] is None
                               else tuple(check["interval"])}).line())
    return 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _estimate(args) -> int:
    """``reproduce NAME --estimate [--json]``: the planned cost, nothing run, nothing written."""
    startup = time.process_time()  # CPU time of this process so far (interpreter, imports): a run pays it too
    try:
        options = _options(args.set)
        est = experiments.estimate(args.name, quick=args.quick, size=args.size, seeds=args.seeds, seed=args.seed,
                                   backend=args.backend, workers=args.workers, scheduler=args.scheduler,
                                   cache=args.cache, data=args.data, options=options)
    except experiments.InputError as exc:
        return _error(exc)
    est["startup_seconds"] = startup
    for key in ("wall_seconds", "wall_seconds_at_current_load", "other_seconds"):
        est[key] += startup
    if args.json:
        print(json.dumps(est, default=float))
        return 0
    cached = f" ({est['cached_tasks']} already in the cache)" if est["cached_tasks"] else ""
    print(f"{args.name} ({est['size']}, {est['seeds']} seeds): {est['tasks']} tasks{cached}, "
          f"{est['core_hours']:.3g} core-hours, peak memory per task {_megabytes(est['peak_memory_bytes'])}, "
          f"wall time ~{_duration(est['wall_seconds'])} on this machine (backend {est['backend']}, "
          f"{est['workers']} worker{'s' if est['workers'] > 1 else ''}; "
          f"{_duration(est['other_seconds'])} of it outside the sweep: start-up, theory, figure)")
    load = est.get("load_average")
    if load is not None and est["wall_seconds_at_current_load"] > 1.2 * est["wall_seconds"]:
        print(f"  at the current load (load average {load:.1f} on {est['calibration']['machine']['cores']} cores): "
              f"~{_duration(est['wall_seconds_at_current_load'])}")
    for kind, b in sorted(est["by_task"].items()):
        print(f"  {kind:24s} {b['tasks']:6d} tasks  {b['core_hours']:9.3g} core-hours  {b['flops']:9.3g} flop  "
              f"peak {_megabytes(b['peak_memory_bytes'])}")
    if est["upper_bound"]:
        print("  (hierarchical-adam: every run counted at max_steps; the plateau rule may stop it earlier)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
