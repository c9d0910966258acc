"""Theory next to simulation: alignment, agreement metrics, tidy tables and overlays.

This module (with :mod:`asymptotics.experiments` and :mod:`asymptotics.cli`) is the only place
that sees both the theory and the simulators; it works on plain arrays.

Agreement of a theory value T with a simulated mean m over S seeds (standard deviation s):

    z = (m − T) / (s/√S)          (the standard error of the mean is the error bar used here)

reported per point, with the fraction of points with |z| < 3 and the largest relative deviation
|m − T|/|T|. Error bars drawn on plots and written to CSV are the standard deviation over seeds
(as in the papers), not the standard error.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from simulations.files import atomic_file

__all__ = ["SeedStack", "Agreement", "agreement", "Panel", "Series", "tidy_rows", "write_csv", "overlay",
           "series_agreement", "CSV_COLUMNS", "error_bar_limits"]

CSV_COLUMNS = ("panel", "series", "kind", "x", "y", "y_err", "n_seeds")


@dataclass(frozen=True)
class SeedStack:
    """Simulated values over seeds, seeds on axis 0: the one place where mean/std/SE are taken.

    ``std`` is the sample standard deviation (ddof = 1; 0 with one seed), ``sem`` = std/√n — the
    error bar of the mean used in z-scores.
    """

    values: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        if v.ndim == 0 or v.shape[0] < 1:
            raise ValueError("SeedStack needs at least one seed (values of shape (S, ...), S >= 1)")
        object.__setattr__(self, "values", v)

    @classmethod
    def of(cls, results: Sequence, key=None, *, seed_axis: int = 0) -> "SeedStack":
        """Stack ``results`` (one entry per seed; ``r[key]`` if ``key`` is given). With
        ``seed_axis`` = 1, ``results[i][s]`` is point i, seed s (the layout the sweeper returns)."""
        pick = (lambda r: r) if key is None else (lambda r: r[key] if isinstance(r, dict) else getattr(r, key))
        if seed_axis == 0:
            return cls(np.array([pick(r) for r in results], dtype=float))
        if seed_axis == 1:
            a = np.array([[pick(r) for r in per_point] for per_point in results], dtype=float)
            return cls(np.moveaxis(a, 1, 0))
        raise ValueError(f"seed_axis must be 0 or 1, got {seed_axis}")

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self.values.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.zeros(self.values.shape[1:])
        return self.values.std(axis=0, ddof=1)

    @property
    def sem(self) -> np.ndarray:
        return self.std / np.sqrt(self.n)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.values, axis=0)


@dataclass(frozen=True)
class Agreement:
    """Agreement metrics of simulated means against theory values."""

    n_points: int
    fraction_within_3sigma: float
    max_abs_z: float
    mean_abs_z: float
    max_relative_deviation: float
    n_excluded: int = 0  # points with a non-finite theory value or no error bar

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def agreement(theory, sim_mean, sim_std, n_seeds) -> tuple[Agreement, np.ndarray]:
    """Per-point z-scores (standard error over seeds) and summary metrics.

    Points whose theory value is not finite (e.g. the ridgeless interpolation peak) or that have
    fewer than two seeds are excluded and counted in ``n_excluded``. A zero standard error with an
    exact match gives z = 0, with a mismatch |z| = inf.
    """
    theory, mean, std, seeds = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                                      (theory, sim_mean, sim_std, n_seeds)))
    if np.any(seeds < 1):
        raise ValueError("n_seeds must be >= 1")
    if np.any(std < 0):
        raise ValueError("sim_std must be >= 0")
    use = np.isfinite(theory) & np.isfinite(mean) & (seeds >= 2)
    se = std / np.sqrt(seeds)
    diff = mean - theory
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf * np.sign(diff)))
        rel = np.abs(diff) / np.abs(theory)
    z = np.where(use, z, np.nan)
    if not np.any(use):
        return Agreement(0, math.nan, math.nan, math.nan, math.nan, int(use.size)), z
    az = np.abs(z[use])
    return Agreement(
        n_points=int(use.sum()),
        fraction_within_3sigma=float(np.mean(az < 3)),
        max_abs_z=float(az.max()),
        mean_abs_z=float(az.mean()),
        max_relative_deviation=float(np.max(rel[use])),
        n_excluded=int((~use).sum()),
    ), z


@dataclass(frozen=True)
class Panel:
    """One axes of a figure.

    :func:`overlay` draws each panel's legend outside its axes (to the right), never over data.
    On a log y-axis, a simulated point whose error bar mean − std would reach 0 or below is drawn
    with the geometric error bar [mean/f, mean·f], f = exp(std/mean) (the ± std bar of log y to
    first order), so that every bar stays on the axis; points with mean ± std > 0 keep the
    ordinary ± std bar.
    """

    name: str
    xlabel: str
    ylabel: str
    xscale: str = "log"
    yscale: str = "log"
    title: str = ""
    ylim: tuple[float, float] | None = None


@dataclass
class Series:
    """One curve: a theory line and/or simulated points (mean ± std over seeds) on a panel.

    ``theory_at_sim`` is the theory evaluated exactly at the simulated x (used for agreement);
    ``shared_se`` (optional, per point) is a standard error common to all seeds — e.g. that of a
    fixed test set every seed is evaluated on — added in quadrature to std/√n_seeds in the
    agreement z-scores (the CSV's y_err stays the standard deviation over seeds).
    """

    panel: str
    name: str
    theory_x: np.ndarray | None = None
    theory_y: np.ndarray | None = None
    sim_x: np.ndarray | None = None
    sim_mean: np.ndarray | None = None
    sim_std: np.ndarray | None = None
    n_seeds: int = 0
    theory_at_sim: np.ndarray | None = None
    style: dict = field(default_factory=dict)
    shared_se: np.ndarray | None = None


def series_agreement(series: Sequence[Series]) -> dict:
    """Agreement per series (those with simulation and theory_at_sim) and pooled over all."""
    per, zs, rel, excluded = {}, [], [], 0
    for s in series:
        if s.sim_mean is None or s.theory_at_sim is None:
            continue
        std = np.asarray(s.sim_std, dtype=float)
        if s.shared_se is not None:  # std_eff/√S = √(std²/S + shared_se²)
            std = np.sqrt(std ** 2 + s.n_seeds * np.asarray(s.shared_se, dtype=float) ** 2)
        ag, z = agreement(s.theory_at_sim, s.sim_mean, std, s.n_seeds)
        per[f"{s.panel}/{s.name}"] = ag.as_dict()
        ok = np.isfinite(z)
        zs.append(np.abs(z[ok]))
        excluded += ag.n_excluded
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(np.asarray(s.sim_mean) - s.theory_at_sim) / np.abs(s.theory_at_sim)
        rel.append(r[ok])
    if not zs or sum(len(z) for z in zs) == 0:
        return {"overall": None, "series": per}
    az, rr = np.concatenate(zs), np.concatenate(rel)
    overall = Agreement(int(az.size), float(np.mean(az < 3)), float(az.max()), float(az.mean()),
                        float(rr.max()), excluded)
    return {"overall": overall.as_dict(), "series": per}


def tidy_rows(series: Sequence[Series]) -> list[dict]:
    """Long-form rows (panel, series, kind, x, y, y_err, n_seeds) of all series."""
    rows = []
    for s in series:
        if s.theory_x is not None:
            for x, y in zip(np.asarray(s.theory_x), np.asarray(s.theory_y)):
                rows.append(dict(panel=s.panel, series=s.name, kind="theory", x=float(x), y=float(y),
                                 y_err="", n_seeds=""))
        if s.sim_x is not None:
            for x, y, e in zip(np.asarray(s.sim_x), np.asarray(s.sim_mean), np.asarray(s.sim_std)):
                rows.append(dict(panel=s.panel, series=s.name, kind="simulation", x=float(x), y=float(y),
                                 y_err=float(e), n_seeds=int(s.n_seeds)))
    return rows


def _csv_bytes(rows: Sequence[dict]) -> bytes:
    """The CSV text of tidy rows (columns :data:`CSV_COLUMNS`, floats with ``repr``), UTF-8."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue().encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` onto ``path`` atomically (:func:`simulations.files.atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


def _figure_bytes(fig, fmt: str = "png") -> bytes:
    """The figure rendered to ``fmt`` (110 dpi), then closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_csv(rows: Sequence[dict], path) -> Path:
    """Write tidy rows with the columns of :data:`CSV_COLUMNS` (floats with full precision).

    Atomic: the file is written under a temporary name in the same folder and renamed onto
    ``path``, so ``path`` is always either the previous file or the complete new one."""
    path = Path(path)
    _write_atomic(path, _csv_bytes(rows))
    return path


def error_bar_limits(mean, std, yscale: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the error bars :func:`overlay` draws (std over seeds).

    Linear axes: mean ∓ std. Log axes: mean ∓ std where mean − std > 0, else the geometric error
    bar (mean/f, mean·f) with f = exp(std/mean), which stays > 0 (and, to first order in std/mean,
    equals ± std). Points with mean ≤ 0 (not drawable on a log axis) get no bar (NaN ends).
    """
    mean, std = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(mean, std))
    lo, hi = mean - std, mean + std
    if yscale == "log":
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f = np.exp(std / mean)
            geo = lo <= 0
            lo = np.where(geo, mean / f, lo)
            hi = np.where(geo, mean * f, hi)
            bad = ~(mean > 0) | ~np.isfinite(lo) | ~np.isfinite(hi)
        lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
    return lo, hi


def _no_tick_label_overlap(fig, ax) -> None:
    """Hide tick labels that would overlap another (log axes with many decades, minor-tick labels
    such as 3×10² next to 4×10², long labels): major labels first, then minor ones, in order."""
    renderer = fig.canvas.get_renderer()
    for axis in (ax.xaxis, ax.yaxis):
        kept = []
        for minor in (False, True):
            for t in axis.get_ticklabels(minor=minor):
                if not (t.get_visible() and t.get_text()):
                    continue
                box = t.get_window_extent(renderer).padded(2)
                if any(box.overlaps(k) for k in kept):
                    t.set_visible(False)
                else:
                    kept.append(box)


def overlay(panels: Sequence[Panel], series: Sequence[Series], path=None, *, title: str = "",
            ncols: int | None = None):
    """Theory lines with simulated points (error bars = std over seeds), one axes per panel.

    Layout for publication: each panel's legend sits outside its axes, to the right (never over
    data); panels with no series are not drawn (no empty axes); the figure uses constrained layout
    and is saved with ``bbox_inches="tight"``, so nothing is clipped; overlapping x tick labels are
    thinned out. On log y-axes, error bars that would reach 0 are geometric (see
    :class:`Panel` and :func:`error_bar_limits`).

    With ``path`` the figure is written atomically (as :func:`write_csv`) and closed; the figure
    is returned either way."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    used = {s.panel for s in series}
    unknown = used - {p.name for p in panels}
    if unknown:
        raise KeyError(f"series on undeclared panels: {sorted(unknown)}")
    panels = [p for p in panels if p.name in used] or list(panels[:1])
    # columns: up to 3, chosen to leave the fewest empty slots (4 panels: 2 × 2, not 3 + 1)
    n_p = len(panels)
    ncols = ncols or (n_p if n_p <= 3 else min((3, 2), key=lambda c: (-(-n_p // c) * c - n_p, -c)))
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.6 * ncols, 4.0 * nrows + (0.4 if title else 0.0)),
                             squeeze=False, layout="constrained")
    by_name = {p.name: ax for p, ax in zip(panels, axes.ravel())}
    yscale = {p.name: p.yscale for p in panels}
    for ax in axes.ravel()[len(panels):]:
        ax.remove()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    counters: dict[str, int] = {}
    for s in series:
        ax = by_name[s.panel]
        i = counters.get(s.panel, 0)
        counters[s.panel] = i + 1
        colour = s.style.get("color", colours[i % len(colours)])
        if s.theory_x is not None:
            y = np.asarray(s.theory_y, dtype=float)
            ax.plot(s.theory_x, np.where(np.isfinite(y), y, np.nan), color=colour,
                    ls=s.style.get("ls", "-"), lw=s.style.get("lw", 1.6),
                    label=s.style.get("label", s.name))
        if s.sim_x is not None:
            mean = np.asarray(s.sim_mean, dtype=float)
            std = np.zeros_like(mean) if s.sim_std is None else np.asarray(s.sim_std, dtype=float)
            lo, hi = error_bar_limits(mean, std, yscale[s.panel])
            yerr = np.nan_to_num(np.stack([mean - lo, hi - mean]), nan=0.0)
            ax.errorbar(s.sim_x, mean, yerr=yerr, fmt=s.style.get("marker", "o"), ms=4,
                        color=colour, capsize=2, lw=1,
                        label=None if s.theory_x is not None else s.name)
    for p in panels:
        ax = by_name[p.name]
        ax.set_xscale(p.xscale)
        ax.set_yscale(p.yscale)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        if p.ylim:
            ax.set_ylim(*p.ylim)
        ax.set_title(p.title or p.name, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                      frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.canvas.draw()
    for ax in by_name.values():
        _no_tick_label_overlap(fig, ax)
    if path is not None:  # atomic, as write_csv; the format is the file's extension (default png)
        path = Path(path)
        _write_atomic(path, _figure_bytes(fig, path.suffix.lstrip(".").lower() or "png"))
    return fig
