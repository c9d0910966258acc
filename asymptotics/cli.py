"""Command line: ``asymptotics list`` and ``asymptotics reproduce NAME``."""
from __future__ import annotations

import argparse
import json
import sys

from simulations.sweep import BACKENDS, SweepConfig, SweepError

from . import experiments


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="asymptotics", description="High-dimensional learning curves: "
                                 "theory and simulation side by side.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the reproducible experiments")
    rep = sub.add_parser("reproduce", help="run an experiment; write NAME.png, NAME.csv, NAME.json")
    rep.add_argument("name", help="experiment name (see `asymptotics list`)")
    rep.add_argument("--quick", action="store_true", help="small sizes that run in seconds")
    rep.add_argument("--out", default="results", help="output folder (default: results)")
    rep.add_argument("--seeds", type=int, default=None,
                     help="number of seeds per simulated point (default: the experiment's)")
    rep.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    rep.add_argument("--backend", choices=BACKENDS, default="serial",
                     help="where simulation tasks run (default: serial)")
    rep.add_argument("--workers", type=int, default=None,
                     help="worker processes / dask workers (default: number of cores)")
    rep.add_argument("--cache", default=None, metavar="DIR",
                     help="cache finished tasks in DIR; a rerun resumes without recomputing them")
    rep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="address of a running dask scheduler (with --backend dask), e.g. tcp://host:8786")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument("--data", default=None, metavar="PATH",
                     help="data for experiments that read it (mnist-even-odd: a folder with the MNIST IDX "
                          "files, or mnist.npz)")
    rep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="an option of the experiment (VALUE in JSON, e.g. --set dims=[16,24]); repeatable")
    return ap


def _options(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise experiments.InputError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _flag_names(message: str) -> str:
    """A SweepConfig message in the command line's words (seeds → --seeds, root seed → --seed)."""
    for word in ("seeds", "seed", "workers", "scheduler", "backend", "threads"):
        if message.startswith(word + " "):
            return "--" + message
    return message


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in experiments.names():
            print(f"{name:24s} {experiments.get(name).description}")
        return 0
    try:
        experiments.get(args.name)
    except KeyError as exc:
        print(f"asymptotics: {exc.args[0]}", file=sys.stderr)
        return 2
    try:  # the one validation of the sweep settings (SweepConfig), before any work
        SweepConfig(backend=args.backend, workers=args.workers, cache=args.cache, scheduler=args.scheduler,
                    seeds=1 if args.seeds is None else args.seeds, root_seed=args.seed)
    except ValueError as exc:
        print(f"asymptotics: {_flag_names(str(exc))}", file=sys.stderr)
        return 2
    try:
        options = _options(args.set)
        meta = experiments.run(args.name, quick=args.quick, out=args.out, seeds=args.seeds, seed=args.seed,
                               backend=args.backend, workers=args.workers, cache=args.cache,
                               scheduler=args.scheduler, quiet=args.quiet, data=args.data,
                               options=options)
    except experiments.InputError as exc:
        print(f"asymptotics: {exc}", file=sys.stderr)
        return 2
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
