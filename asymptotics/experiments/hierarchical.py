"""Hierarchical polynomials h = C_d p³ learned by a three-layer network (Wang, Nichani, Lee, ICLR 2024).

Theory: :mod:`asymptotics.hierarchical` (degree energies, the degree-≤3 "kernel" level
1 − E1 − E3, the stage-1 correlation heuristic and its threshold n* ∝ d³). Simulation:
:func:`simulations.hierarchical.hierarchical_task` (layer-wise Algorithm 1 or end-to-end Adam).

Every seed r is one *replica* (its λ, initialisation and test set) shared by all n of a given d,
so curves in n are paired comparisons: the sweep runs one spec per (method, d, n) with
``paired=("n",)``, so the seed of replica r depends on every field but n (the method, d, the
widths, ...), the root seed and r (equations: ``docs/theory/hierarchical.md``). Verdicts (``agreement.checks``): n*(d), the sample size at which the seed mean of |corr(g, p)|
crosses 0.5 (linear in log n between grid points, seeded bootstrap over seeds:
:mod:`asymptotics.hierarchical_measure`), its fitted exponent in d with a 95 % interval that must
contain 3; and per d, the test loss at the largest n/d³ below the kernel level 1 − E1 − E3 by more
than 1.645 standard errors over seeds. The test loss is the decomposed estimate
1 + mean(f² − 2hf) (E h² = 1 exact; the heavy tail of h², E h⁴ ≈ 2·10⁴ at d = 16, drops out),
averaged over seeds with the SE over seeds; the median over seeds of plain Monte-Carlo losses is
biased low and is not reported.
"""
from __future__ import annotations

import math

import numpy as np

from simulations.hierarchical import AdamSpec, LayerwiseSpec, hierarchical_task

from ..compare import Panel, SeedStack, Series
from ..hierarchical import degree_energies, stage1_ceiling, stage1_corr_heuristic, threshold_n
from ..hierarchical_measure import CROSSING_LEVEL, bootstrap_crossing, crossing_exponent, seed_mean
from ..verdict import bound_check
from . import ExperimentOutput, Size, InputError, Sweeper, register


def _d3(d: int) -> int:
    return math.comb(d + 3, 3)


KERNEL_MARGIN = 1.645  # below the kernel level by more than one-sided 95 % (in SE over seeds)
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


def _figure(res: dict, method: str, kappas, seeds: int, stage1_baseline: bool) -> tuple[list, list, dict, list]:
    """Panels, series, notes and checks: n*(d) and its exponent, the seed-mean loss vs the kernel level."""
    dims = sorted(res)
    kap = np.asarray(kappas, dtype=float)
    level = CROSSING_LEVEL
    panels = [Panel("corr vs n/d³", "n / d³", "|corr(g, p)| on test points", yscale="linear", ylim=(0, 1.02),
                    title=f"feature correlation (mean ± std); n*(d): crossing of {level:g} (ticks)"),
              Panel("corr vs n", "n", "|corr(g, p)|", yscale="linear", ylim=(0, 1.02), title="the same against n"),
              Panel("n* vs d", "d", f"n*(d): mean |corr| = {level:g}",
                    title="crossing sample size (bootstrap SE over seeds), fit and d³"),
              Panel("loss vs n/d³", "n / d³", "test loss (E h² = 1)",
                    title="test loss 1 + mean(f² − 2hf): mean ± SE over seeds")]
    series, checks = [], []
    notes = {"crossing level of the mean |corr| (fixed before the runs)": level,
             "threshold n*/d³ (stage-1 heuristic, corr 0.9)": {}}
    grid = np.geomspace(kap.min(), kap.max(), 100)
    crossings = []
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
        cr = bootstrap_crossing(r["n"], r["abs_corr"].values, level, seed=d)
        crossings.append(cr)
        if np.isfinite(cr["n_star"]):  # the measured threshold of this d, drawn at its own n*/d³
            k = cr["n_star"] / d ** 3
            series.append(Series(panel="corr vs n/d³", name=f"d = {d}: n*/d³ = {k:.2f}",
                                 theory_x=np.array([k, k]), theory_y=np.array([level - 0.12, level + 0.12]),
                                 style={"color": c, "ls": "-.", "lw": 1.0}))
        dec, dec_se = seed_mean(r["test_loss_dec"].values)
        series.append(Series(panel="loss vs n/d³", name=f"d = {d}", sim_x=x, sim_mean=dec, sim_std=dec_se,
                             n_seeds=1, style={"color": c}))
        if stage1_baseline and "stage1_test_loss" in r:
            m1, s1 = r["stage1_test_loss"].mean, r["stage1_test_loss"].std
            notes.setdefault("stage-1-alone test loss, mean over seeds per κ (plain Monte Carlo)", {})[d] = \
                dict(zip(_keys(kap), map(float, m1)))
        e = degree_energies(d, exact=False)
        kernel = 1.0 - e[1] - e[3]
        series.append(Series(panel="loss vs n/d³", name=f"d = {d}: kernel level 1 − E1 − E3 = {kernel:.3f}",
                             theory_x=np.array([kap.min(), kap.max()]), theory_y=np.full(2, kernel),
                             style={"color": c, "ls": "--", "lw": 1.0}))
        checks.append(bound_check(f"d = {d}: loss below the kernel level at n/d³ = {kap[-1]:g}", float(dec[-1]),
                                  float(dec_se[-1]), kernel, side="below", margin=KERNEL_MARGIN,
                                  prediction=f"below 1 − E1 − E3 = {kernel:.4f}"))
        ceiling = stage1_ceiling(d)
        notes["threshold n*/d³ (stage-1 heuristic, corr 0.9)"][d] = threshold_n(d) / d ** 3
        notes[f"d = {d}"] = {"stage-1 correlation ceiling": ceiling, "kernel level 1 - E1 - E3": kernel,
                             "mean |corr| per κ": dict(zip(_keys(kap), map(float, r["abs_corr"].mean))),
                             "n* (crossing)": cr["n_star"], "n* bootstrap SE": cr["se"],
                             "n* bootstrap 95% interval": list(cr["interval"]),
                             "fraction of bootstrap resamples that cross": cr["kept"],
                             "test loss per κ (1 + mean(f² − 2hf), mean over seeds)":
                                 dict(zip(_keys(kap), map(float, dec))),
                             "test loss per κ: SE over seeds": dict(zip(_keys(kap), map(float, dec_se))),
                             "largest Monte-Carlo SE of a decomposed test loss":
                                 float(np.max(r["test_loss_dec_se"].values))}
    checks[:0] = _exponent_panel(dims, crossings, method, level, series, notes)
    # the collapse: spread across d of the mean correlation at equal n/d³ vs at equal n
    if len(dims) > 1:
        corr = np.array([res[d]["abs_corr"].mean for d in dims])
        notes["spread across d of mean |corr| at equal n/d³ (max over κ)"] = float(np.max(np.ptp(corr, axis=0)))
    return panels, series, notes, checks


def _exponent_panel(dims, crossings, method: str, level: float, series: list, notes: dict):
    """The n*(d) panel (measured n* with bootstrap SE, a d³ reference, the fit and, for layer-wise,
    the stage-1 heuristic's n* at the same level) into ``series`` and ``notes``; returns the checks:
    3 (the d → ∞ exponent) lies in the 95 % interval of the fitted exponent, and, for layer-wise
    training over several d, so does the stage-1 heuristic's own exponent over the same d (its local
    slope is below 3 at every d a machine reaches: ≈ 2.5 over d = 16–28, 2.8 over 64–128)."""
    fit, check = crossing_exponent(dims, crossings, name=f"n* ∝ d^3 ({method})")
    checks = [check]
    dd = np.array(dims, dtype=float)
    ns = np.array([c["n_star"] for c in crossings])
    se = np.array([c["se"] for c in crossings])
    ok = np.isfinite(ns) & np.isfinite(se)
    if ok.any():
        series.append(Series(panel="n* vs d", name=f"n*(d), crossing of {level:g}", sim_x=dd[ok], sim_mean=ns[ok],
                             sim_std=se[ok], n_seeds=1, style={"color": "k"}))
        ref = float(np.exp(np.mean(np.log(ns[ok]) - 3 * np.log(dd[ok]))))
        series.append(Series(panel="n* vs d", name="d³ reference", theory_x=dd, theory_y=ref * dd ** 3,
                             style={"color": "0.5", "ls": "--", "lw": 1.0}))
    if method == "layerwise":  # the stage-1 heuristic's own n*(d) at this level: ∝ d³ only as d → ∞
        heur = np.array([threshold_n(d, corr=level) for d in dims])
        series.append(Series(panel="n* vs d", name=f"stage-1 heuristic at corr {level:g}", theory_x=dd,
                             theory_y=heur, style={"color": "C2", "ls": ":", "lw": 1.2}))
        if len(dims) > 1:
            local = float(np.polyfit(np.log(dd), np.log(heur), 1)[0])
            notes[f"stage-1 heuristic n*(d) at corr {level:g} and its exponent over these d"] = {
                "n*": dict(zip(map(str, dims), map(float, heur))), "exponent": local}
            checks.append(crossing_exponent(dims, crossings, predicted=local,
                                            name=f"n*(d) exponent = the stage-1 heuristic's over these d ({method})")[1])
    if fit is not None:
        series.append(Series(panel="n* vs d", name=f"fit: exponent {fit.exponent:.2f} ± {fit.se:.2f}",
                             theory_x=dd, theory_y=fit.prefactor * dd ** fit.exponent,
                             style={"color": "C3", "lw": 1.2}))
        notes["fitted exponent of n*(d)"] = {"exponent": fit.exponent, "se": fit.se,
                                             "95% interval": list(fit.interval), "dimensions": fit.n_points}
    return checks


def _layerwise_sizes(size: Size, dims) -> dict:
    """quick: d = 4–8 (CI); medium: four d ≥ 16, κ = 1/4 … 2 around the crossing (≈ 1/2–1; ≈ 6
    core-minutes: d = 28 at κ = 2 is half a minute per task); full: the paper's d and κ."""
    s = size.pick(
        quick=dict(dims=[4, 5, 6, 8], kappas=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0], n_test=1 << 16, m2=200),
        medium=dict(dims=[16, 20, 24, 28], kappas=[0.25, 0.5, 1.0, 2.0], n_test=1 << 16, m2=400),
        full=dict(dims=[16, 24, 32, 40], kappas=[2.0 ** k for k in range(-4, 5)], n_test=1 << 18, m2=1000))
    return {**s, "dims": dims or s["dims"]}


def _cubic_width(size: Size, d: int) -> int:
    """m1 ≥ C(d+3, 3), so that the cubic features span every polynomial of degree ≤ 3: the next power
    of 2 (quick, full), the next multiple of 64 at medium (the stage-1 Gram matrix costs n m1²:
    4544 rather than 8192 at d = 28)."""
    if size == "medium":
        return -(-_d3(d) // 64) * 64
    return 1 << math.ceil(math.log2(_d3(d)))


@register("hierarchical-layerwise", "Layer-wise Algorithm 1 on h = C_d p³: feature correlation and test loss vs "
          "n and n/d³ for several d, with the kernel level and the stage-1 threshold", quick_seeds=5, full_seeds=5,
          medium_seeds=4)
def hierarchical_layerwise(size: Size, sweep: Sweeper, dims=None) -> ExperimentOutput:
    s = _layerwise_sizes(size, None if dims is None else _check_dims(dims))

    def per_d(d):
        return dict(m1=_cubic_width(size, d), m2=s["m2"], n_test=s["n_test"])

    res = _run(sweep, "layerwise", s["dims"], s["kappas"], per_d)
    panels, series, notes, checks = _figure(res, "layerwise", s["kappas"], sweep.seeds, stage1_baseline=True)
    return ExperimentOutput(panels, series, title="Hierarchical polynomial, layer-wise training (Algorithm 1)",
                            parameters={**s, "m1": {d: per_d(d)["m1"] for d in s["dims"]}, "n": "κ d³, n1 = n2 = n",
                                        "stage 1": "closed-form ridge, relative ridge 1e-6", "bias": "std(ĝ)·t_10"},
                            notes=notes, checks=checks)


def _adam_sizes(size: Size, dims) -> dict:
    """quick: d = 4–8 (CI); medium: four d ≥ 16, κ = 1/16 … 1 around the crossing (≈ 1/4), 1000
    steps (≈ 16 core-minutes: one step at d = 28, κ = 1 is ≈ 0.1 s); full: the paper's d and κ."""
    s = size.pick(
        quick=dict(dims=[4, 5, 6, 8], kappas=[0.125, 0.25, 0.5, 1.0, 2.0, 8.0], n_test=1 << 15, m2=200,
                   lr=1e-2, max_steps=1000, patience=300),
        medium=dict(dims=[16, 20, 24, 28], kappas=[2.0 ** k for k in range(-4, 1)], n_test=1 << 15, m2=200,
                    lr=1e-2, max_steps=1000, patience=300),
        full=dict(dims=[16, 24, 32, 40], kappas=[2.0 ** k for k in range(-4, 5)], n_test=1 << 17, m2=1000,
                  lr=1e-2, max_steps=20000, patience=1000))
    return {**s, "dims": dims or s["dims"]}


@register("hierarchical-adam", "End-to-end Adam (μP) on h = C_d p³: feature correlation and test loss vs n and "
          "n/d³ for several d, with the kernel level", quick_seeds=3, full_seeds=5, medium_seeds=3)
def hierarchical_adam(size: Size, sweep: Sweeper, dims=None, max_steps=None) -> ExperimentOutput:
    s = _adam_sizes(size, None if dims is None else _check_dims(dims))
    if max_steps is not None:  # a cheaper cap than the default 20000 steps (reported in the parameters)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InputError(f"max_steps must be a positive integer, got {max_steps!r}")
        s["max_steps"] = max_steps

    def per_d(d):
        return dict(m1=d * d, m2=s["m2"], n_test=s["n_test"], lr=s["lr"], max_steps=s["max_steps"],
                    patience=s["patience"])

    res = _run(sweep, "adam", s["dims"], s["kappas"], per_d)
    panels, series, notes, checks = _figure(res, "adam", s["kappas"], sweep.seeds, stage1_baseline=False)
    for d in s["dims"]:
        notes[f"d = {d}"]["fraction of runs stopped on the plateau rule"] = float(res[d]["converged"].values.mean())
    return ExperimentOutput(panels, series, title="Hierarchical polynomial, end-to-end Adam (μP)",
                            parameters={**s, "m1": "d²", "n": "κ d³",
                                        "optimiser": "Adam (0.9, 0.999, 1e-8), cosine decay, full batch ≤ 2^15 rows, "
                                                     "else mini-batches of 2^13; stop on a 0.1 % plateau over "
                                                     "`patience` steps or at max_steps",
                                        "lr note": "1e-2: the default 1e-3 of train_adam learns the feature poorly at these sizes"},
                            notes=notes, checks=checks)
