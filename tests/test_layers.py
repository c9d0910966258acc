"""The dependency rule (DESIGN): theory never imports the simulators, the simulators import from
``asymptotics`` only the shared base, and the base imports no other project module. The contracts
are in setup.cfg; ``lint-imports`` checks them (CI runs it too)."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe, "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_nothing_points_outside_the_repository():
    """Docstrings and docs cite docs/ pages and papers, never the project's private spec files."""
    needles = ("specs" + "/", ".." + "/shared")  # spelled apart so that this file is not an offender
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).parts
        if path.suffix not in {".py", ".md", ".cfg", ".toml", ".txt"} or any(
                part.startswith(".") or part in ("build", "results") or part.endswith(".egg-info") for part in rel):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(needle in text for needle in needles):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
