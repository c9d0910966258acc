"""NAME.png, NAME.csv and NAME.json are replaced together: a kill at any moment, or two runs writing
one --out at once, never leave the CSV of one run next to the JSON of another.

The runs here are of a tiny experiment whose CSV holds its root seed in every row (``y = seed``), so
a reader can tell which run wrote a file without trusting the JSON's checksums.
"""
import csv
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

import pytest

from asymptotics import experiments

NAME = "atomic-probe"

CHILD = r'''
import os, sys
import numpy as np
from asymptotics import experiments
from asymptotics.compare import Panel, Series

@experiments.register("atomic-probe", "test experiment: y = root seed", quick_seeds=1, full_seeds=1)
def probe(size, sweep):
    x = np.arange(1, 2001, dtype=float)
    s = Series("p", "y=seed", sim_x=x, sim_mean=np.full(x.size, float(sweep.root_seed)),
               sim_std=np.zeros(x.size), n_seeds=1)
    return experiments.ExperimentOutput([Panel("p", "x", "y")], [s], {"seed": sweep.root_seed})

out, first, count, crash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "crash"
if crash:  # die like SIGKILL right after the first output file is replaced, before the others
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if str(dst).endswith(".csv") and os.path.basename(str(dst)) == "atomic-probe.csv":
            os._exit(9)
    os.replace = replace
for seed in range(first, first + count):
    experiments.run("atomic-probe", out=out, seed=seed, quiet=True)
    print("wrote", seed, flush=True)
'''


def _child(tmp_path, out, first, count, crash=False):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), str(out), str(first), str(count),
                             "crash" if crash else "no"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _csv_seed(out):
    """The seed every row of NAME.csv carries (AssertionError if the file is truncated or mixed)."""
    with open(out / f"{NAME}.csv") as fh:
        ys = {float(r["y"]) for r in csv.DictReader(fh)}
    assert len(ys) == 1, f"CSV mixes or lost rows: {sorted(ys)[:5]}"
    with open(out / f"{NAME}.csv") as fh:
        assert sum(1 for _ in fh) == 2001, "truncated CSV"
    return int(ys.pop())


def _consistent(out):
    """The CSV and the JSON next to it come from one run, and the JSON's checksums say so (read
    under the shared lock, as a reader should while runs may be writing)."""
    with experiments.outputs_lock(out, NAME):
        meta = json.loads((out / f"{NAME}.json").read_text())
        assert _csv_seed(out) == meta["seeds"]["root_seed"], "CSV of one run next to the JSON of another"
    assert experiments.verify_outputs(out, NAME) == []
    return meta["seeds"]["root_seed"]


def _wait_line(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child wrote nothing in time"
    return proc.stdout.readline()


def test_sigkill_at_random_moments_leaves_a_complete_set(tmp_path):
    """8 runs killed at random moments while writing: after each kill (and the recovery every run
    starts with) the three files are one complete set, the old one or the new one."""
    out = tmp_path / "out"
    rng = random.Random(16)
    seen = set()
    for k in range(8):
        proc = _child(tmp_path, out, first=100 * (k + 1), count=50)
        try:
            assert _wait_line(proc, 120).startswith("wrote"), proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            proc.kill()
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
        experiments.recover_outputs(out, NAME)  # what the next run does first, under the lock
        seen.add(_consistent(out))
    assert len(seen) == 8  # every kill left its own run's last complete set
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(f".{NAME}.") and p.name != f".{NAME}.lock"]
    assert leftovers == [], leftovers  # dead runs' temporary files are removed by the recovery


def test_a_kill_between_the_replacements_is_detected_and_rolled_forward(tmp_path):
    """The one window where the folder is mixed (the CSV replaced, the JSON not yet): the JSON's
    checksum tells, and the commit record lets the next run finish the group."""
    out = tmp_path / "out"
    proc = _child(tmp_path, out, first=1, count=1)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert _consistent(out) == 1
    proc = _child(tmp_path, out, first=2, count=1, crash=True)
    assert proc.wait(timeout=300) == 9, proc.stderr.read()
    meta = json.loads((out / f"{NAME}.json").read_text())
    assert _csv_seed(out) == 2 and meta["seeds"]["root_seed"] == 1  # mixed on disk ...
    problems = experiments.verify_outputs(out, NAME)
    assert any("interrupted" in p for p in problems) and any(f"{NAME}.csv" in p for p in problems), problems
    assert experiments.recover_outputs(out, NAME) is True  # ... and completed from the commit record
    assert _consistent(out) == 2


def test_two_concurrent_runs_into_one_out(tmp_path):
    """Two runs with different seeds write one --out 8 times each, at once; a reader polling the
    folder (under the shared lock) in between and the final state always see one run's complete
    set."""
    out = tmp_path / "out"
    a = _child(tmp_path, out, first=1000, count=8)
    b = _child(tmp_path, out, first=2000, count=8)
    seen, deadline = set(), time.monotonic() + 400
    try:
        while (a.poll() is None or b.poll() is None) and time.monotonic() < deadline:
            if (out / f"{NAME}.json").exists():
                seen.add(_consistent(out))
            time.sleep(0.05)
        assert a.wait(timeout=60) == 0 and b.wait(timeout=60) == 0, (a.stderr.read(), b.stderr.read())
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
    last = _consistent(out)
    assert last in (1007, 2007)
    assert {s // 1000 for s in seen} == {1, 2}  # both runs were seen writing


def test_json_carries_the_checksums_and_a_changed_csv_is_detected(tmp_path):
    out = tmp_path / "out"
    meta = experiments.run("ridge-isotropic", quick=True, out=out, seeds=2)
    assert set(meta["sha256"]) == {"ridge-isotropic.csv", "ridge-isotropic.png"}
    assert json.loads((out / "ridge-isotropic.json").read_text())["sha256"] == meta["sha256"]
    assert experiments.verify_outputs(out, "ridge-isotropic") == []
    with open(out / "ridge-isotropic.csv", "a") as fh:
        fh.write("test,x,theory,1.0,1.0,,\n")
    problems = experiments.verify_outputs(out, "ridge-isotropic")
    assert len(problems) == 1 and "ridge-isotropic.csv" in problems[0]
    assert sorted(p.name for p in out.iterdir()) == [".ridge-isotropic.lock", "ridge-isotropic.csv",
                                                     "ridge-isotropic.json", "ridge-isotropic.png"]
