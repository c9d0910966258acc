"""Hierarchical polynomials h = C_d p³ learned by a three-layer network (Wang, Nichani, Lee, ICLR 2024).

Theory: :mod:`asymptotics.hierarchical` (degree energies, the degree-≤3 "kernel" level
1 − E1 − E3, the stage-1 correlation heuristic and its threshold n* ∝ d³). Simulation:
:func:`simulations.hierarchical.hierarchical_task` (layer-wise Algorithm 1 or end-to-end Adam).

Every seed r is one *replica* (its λ, initialisation and test set) shared by all n of a given d,
so curves in n are paired comparisons: the sweep runs one spec per (method, d, n) with
``paired=("n",)``, so the seed of replica r depends on every field but n (the method, d, the
widths, ...), the root seed and r (equations: ``docs/theory/hierarchical.md``). The test loss is a tail statistic (E h⁴ ≈ 2·10⁴
at d = 16): its per-point Monte-Carlo error is in the CSV notes, and the correlation corr(g, p)
and the median squared error are the stable statistics.
"""
from __future__ import annotations

import math

import numpy as np

from simulations.hierarchical import AdamSpec, LayerwiseSpec, hierarchical_task

from ..compare import Panel, SeedStack, Series
from ..hierarchical import degree_energies, stage1_ceiling, stage1_corr_heuristic, threshold_n
from . import ExperimentOutput, InputError, Sweeper, register


def _d3(d: int) -> int:
    return math.comb(d + 3, 3)


MAX_DIM = 64  # d³ samples and d² cubic features: d = 64 is already beyond a day on one machine


def _check_dims(dims) -> list[int]:
    """dims: a non-empty list of integers 2 ≤ d ≤ MAX_DIM (no floats, no booleans)."""
    if not isinstance(dims, (list, tuple)) or not dims or any(
            isinstance(x, bool) or not isinstance(x, int) or not 2 <= x <= MAX_DIM for x in dims):
        raise InputError(f"dims must be a non-empty list of integers from 2 to {MAX_DIM}, got {dims!r}")
    return [int(x) for x in dims]


_SPECS = {"layerwise": LayerwiseSpec, "adam": AdamSpec}


def _specs(method: str, d: int, kappas, per_d) -> list:
    """One spec per n = κ d³ (at least 8) of dimension d."""
    ns = [max(8, int(round(k * d ** 3))) for k in kappas]
    return [_SPECS[method](d=d, n=n, **per_d(d)) for n in ns]


def _run(sweep: Sweeper, method: str, dims, kappas, per_d, task=hierarchical_task) -> dict:
    """{d: {metric: SeedStack (S, K)}, "n": (K,)} for n = κ d³ (``task``: the sweep task).

    Replica r of dimension d (its λ, initialisation and test set) is shared by every n of that d
    (``paired=("n",)``: paired comparisons in n) and independent across d, methods and root seeds.
    """
    out = {}
    for d in dims:
        specs = _specs(method, d, kappas, per_d)
        res = sweep(task, specs, paired=("n",))
        out[d] = {key: SeedStack.of(res, key, seed_axis=1) for key in res[0][0]}
        out[d]["n"] = np.array([spec.n for spec in specs], dtype=float)
    return out


def _keys(kappas) -> list[str]:
    return [f"{k:g}" for k in kappas]


def _figure(res: dict, method: str, kappas, seeds: int, stage1_baseline: bool) -> tuple[list, list, dict]:
    dims = sorted(res)
    kap = np.asarray(kappas, dtype=float)
    panels = [Panel("corr vs n/d³", "n / d³", "|corr(g, p)| on test points", yscale="linear", ylim=(0, 1.02),
                    title="feature correlation: curves collapse in n/d³"),
              Panel("corr vs n", "n", "|corr(g, p)|", yscale="linear", ylim=(0, 1.02), title="the same against n"),
              Panel("loss vs n/d³", "n / d³", "test loss (E h² = 1)", title="test loss (mean ± std over seeds)"),
              Panel("median vs n/d³", "n / d³", "median squared error", title="median squared error (tail-free)")]
    series, notes = [], {"threshold n*/d³ (stage-1 heuristic, corr 0.9)": {}}
    grid = np.geomspace(kap.min(), kap.max(), 100)
    for i, d in enumerate(dims):
        r, c = res[d], f"C{i}"
        x = r["n"] / d ** 3
        m, s = r["abs_corr"].mean, r["abs_corr"].std
        series.append(Series(panel="corr vs n/d³", name=f"d = {d}", sim_x=x, sim_mean=m, sim_std=s, n_seeds=seeds,
                             style={"color": c}))
        series.append(Series(panel="corr vs n", name=f"d = {d}", sim_x=r["n"], sim_mean=m, sim_std=s, n_seeds=seeds,
                             style={"color": c}))
        if method == "layerwise":  # the OLS heuristic of stage 1; NaN below n = C(d+3, 3)
            h = stage1_corr_heuristic(d, grid * d ** 3)
            ok = np.isfinite(h)
            series.append(Series(panel="corr vs n/d³", name=f"d = {d}: stage-1 heuristic", theory_x=grid[ok],
                                 theory_y=h[ok], style={"color": c, "ls": ":", "lw": 1.0}))
        m, s = r["test_loss"].mean, r["test_loss"].std
        series.append(Series(panel="loss vs n/d³", name=f"d = {d}", sim_x=x, sim_mean=m, sim_std=s, n_seeds=seeds,
                             style={"color": c}))
        if stage1_baseline and "stage1_test_loss" in r:
            m1, s1 = r["stage1_test_loss"].mean, r["stage1_test_loss"].std
            series.append(Series(panel="loss vs n/d³", name=f"d = {d}: degree ≤ 3 (stage 1 alone)", sim_x=x,
                                 sim_mean=m1, sim_std=s1, n_seeds=seeds, style={"color": c, "marker": "x"}))
        e = degree_energies(d, exact=False)
        kernel = 1.0 - e[1] - e[3]
        series.append(Series(panel="loss vs n/d³", name=f"d = {d}: kernel level 1 − E1 − E3 = {kernel:.3f}",
                             theory_x=np.array([kap.min(), kap.max()]), theory_y=np.full(2, kernel),
                             style={"color": c, "ls": "--", "lw": 1.0}))
        m, s = r["median_sq_error"].mean, r["median_sq_error"].std
        series.append(Series(panel="median vs n/d³", name=f"d = {d}", sim_x=x, sim_mean=m, sim_std=s,
                             n_seeds=seeds, style={"color": c}))
        ceiling = stage1_ceiling(d)
        notes["threshold n*/d³ (stage-1 heuristic, corr 0.9)"][d] = threshold_n(d) / d ** 3
        notes[f"d = {d}"] = {"stage-1 correlation ceiling": ceiling, "kernel level 1 - E1 - E3": kernel,
                             "mean |corr| per κ": dict(zip(_keys(kap), map(float, res[d]["abs_corr"].mean))),
                             "median over seeds of the test loss per κ":
                                 dict(zip(_keys(kap), map(float, res[d]["test_loss"].median))),
                             "largest Monte-Carlo SE of a test loss": float(np.max(res[d]["test_loss_se"].values))}
    kstar = float(np.mean(list(notes["threshold n*/d³ (stage-1 heuristic, corr 0.9)"].values())))
    series.append(Series(panel="corr vs n/d³", name=f"heuristic threshold n*/d³ ≈ {kstar:.2f}",
                         theory_x=np.array([kstar, kstar]), theory_y=np.array([0.0, 1.0]),
                         style={"color": "k", "ls": "-.", "lw": 1.0}))
    # the collapse: spread across d of the mean correlation at equal n/d³ vs at equal n
    if len(dims) > 1:
        corr = np.array([res[d]["abs_corr"].mean for d in dims])
        notes["spread across d of mean |corr| at equal n/d³ (max over κ)"] = float(np.max(np.ptp(corr, axis=0)))
    return panels, series, notes


def _layerwise_sizes(quick: bool, dims) -> dict:
    if quick:
        return dict(dims=dims or [6, 8], kappas=[0.5, 2.0, 8.0, 32.0], n_test=1 << 16, m2=200)
    return dict(dims=dims or [16, 24, 32, 40], kappas=[2.0 ** k for k in range(-4, 5)], n_test=1 << 18, m2=1000)


@register("hierarchical-layerwise", "Layer-wise Algorithm 1 on h = C_d p³: feature correlation and test loss vs "
          "n and n/d³ for several d, with the kernel level and the stage-1 threshold", quick_seeds=5, full_seeds=5)
def hierarchical_layerwise(quick: bool, sweep: Sweeper, dims=None) -> ExperimentOutput:
    s = _layerwise_sizes(quick, None if dims is None else _check_dims(dims))

    def per_d(d):  # m1 ≥ C(d+3, 3): the cubic features span every polynomial of degree ≤ 3
        return dict(m1=1 << math.ceil(math.log2(_d3(d))), m2=s["m2"], n_test=s["n_test"])

    res = _run(sweep, "layerwise", s["dims"], s["kappas"], per_d)
    panels, series, notes = _figure(res, "layerwise", s["kappas"], sweep.seeds, stage1_baseline=True)
    return ExperimentOutput(panels, series, title="Hierarchical polynomial, layer-wise training (Algorithm 1)",
                            parameters={**s, "m1": {d: per_d(d)["m1"] for d in s["dims"]}, "n": "κ d³, n1 = n2 = n",
                                        "stage 1": "closed-form ridge, relative ridge 1e-6", "bias": "std(ĝ)·t_10"},
                            notes=notes)


def _adam_sizes(quick: bool, dims) -> dict:
    if quick:
        return dict(dims=dims or [6, 8], kappas=[0.5, 2.0, 8.0], n_test=1 << 15, m2=200, lr=1e-2, max_steps=1000,
                    patience=300)
    return dict(dims=dims or [16, 24, 32, 40], kappas=[2.0 ** k for k in range(-4, 5)], n_test=1 << 17, m2=1000,
                lr=1e-2, max_steps=20000, patience=1000)


@register("hierarchical-adam", "End-to-end Adam (μP) on h = C_d p³: feature correlation and test loss vs n and "
          "n/d³ for several d, with the kernel level", quick_seeds=3, full_seeds=5)
def hierarchical_adam(quick: bool, sweep: Sweeper, dims=None, max_steps=None) -> ExperimentOutput:
    s = _adam_sizes(quick, None if dims is None else _check_dims(dims))
    if max_steps is not None:  # a cheaper cap than the default 20000 steps (reported in the parameters)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InputError(f"max_steps must be a positive integer, got {max_steps!r}")
        s["max_steps"] = max_steps

    def per_d(d):
        return dict(m1=d * d, m2=s["m2"], n_test=s["n_test"], lr=s["lr"], max_steps=s["max_steps"],
                    patience=s["patience"])

    res = _run(sweep, "adam", s["dims"], s["kappas"], per_d)
    panels, series, notes = _figure(res, "adam", s["kappas"], sweep.seeds, stage1_baseline=False)
    for d in s["dims"]:
        notes[f"d = {d}"]["fraction of runs stopped on the plateau rule"] = float(res[d]["converged"].values.mean())
    return ExperimentOutput(panels, series, title="Hierarchical polynomial, end-to-end Adam (μP)",
                            parameters={**s, "m1": "d²", "n": "κ d³",
                                        "optimiser": "Adam (0.9, 0.999, 1e-8), cosine decay, full batch ≤ 2^15 rows, "
                                                     "else mini-batches of 2^13; stop on a 0.1 % plateau over "
                                                     "`patience` steps or at max_steps",
                                        "lr note": "1e-2: the default 1e-3 of train_adam learns the feature poorly at these sizes"},
                            notes=notes)
