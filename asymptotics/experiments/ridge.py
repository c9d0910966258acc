"""Ridge regression on Gaussian features: deterministic equivalent vs simulation.

Experiments
-----------
``ridge-isotropic``
    Ω = I_p, ‖b‖² = 1, label noise σ = 0.1 (E[y²] = 1 + σ²). Test and training error vs n/p for
    several λ (including 0), theory from :class:`GaussianCovariateModel`, the Marchenko–Pastur
    closed form as a third (dashed) curve, and simulated points.
``ridge-power-law``
    Ω = diag(i^-α), b_i ∝ i^-β normalised so that bᵀΩ⁻¹b = 1, σ = 0.1 (α = 1.5, β = 1: a hard
    target, 2β < α + 1). Test and training error vs n for λ ∈ {0, 1e-4, 1e-2, 1} — the
    interpolation peak at n = p shows for λ = 0 — the optimally regularised curve, and test
    error vs λ at n = p/2 and n = 2p.

λ is this project's mean-loss λ throughout (θ̂ = (FᵀF/n + λ)⁻¹Fᵀy/n); no conversion needed.
Simulated test errors are exact population errors E[y²] − 2θ̂ᵀb + θ̂ᵀΩθ̂ of each fitted θ̂. The
theory is derived in ``docs/theory/ridge.md``.
"""
from __future__ import annotations

import numpy as np

from simulations.data import spectrum_from_spec
from simulations.ridge import RidgeSpec, ridge_task

from ..compare import Panel, SeedStack, Series
from ..conventions import PROJECT_CONVENTION
from ..ridge import GaussianCovariateModel, marchenko_pastur_ridge
from . import ExperimentOutput, Size, Sweeper, expected_numerics, peak_ns, register


def _simulate(sweep: Sweeper, spectrum: dict, y2: float, ns, lams) -> dict[str, SeedStack]:
    """Ridge simulations for every n (one sweep task per (n, seed)): test and training error as
    seed stacks of shape (S, N, L)."""
    specs = [RidgeSpec(spectrum=spectrum, y2=y2, n=int(n), lams=tuple(float(x) for x in lams)) for n in ns]
    res = sweep(ridge_task, specs)
    return {kind: SeedStack.of(res, kind, seed_axis=1) for kind in ("test_error", "train_error")}


def _sim_ns(p: int, lo: float, hi: float, count: int) -> np.ndarray:
    """Integer sample sizes, log-spaced, plus :func:`peak_ns`, without n = p (where ridgeless
    diverges)."""
    ns = np.unique(np.concatenate([np.round(np.geomspace(lo * p, hi * p, count)).astype(int), peak_ns(p)]))
    return ns[(ns != p) & (ns >= 2)]


def _lam_label(lam: float) -> str:
    return "λ = 0" if lam == 0 else f"λ = {lam:g}"


def _curves(model, sweep, spectrum, ns_sim, lams, n_theory, x_scale=1.0,
            test_panel="test", train_panel="train"):
    """Theory and simulated test/train curves vs n for every λ."""
    with expected_numerics():  # λ = 0 at n = p is +inf by design
        th = model.ridge(n_theory[:, None], lams[None, :])
        at_sim = model.ridge(ns_sim[:, None].astype(float), lams[None, :])
    sim = _simulate(sweep, spectrum, model.y2, ns_sim, lams)
    test, train = sim["test_error"], sim["train_error"]
    series = []
    for j, lam in enumerate(lams):
        for panel, th_y, at, mean, std in (
            (test_panel, th.test_error[:, j], at_sim.test_error[:, j], test.mean[:, j], test.std[:, j]),
            (train_panel, th.train_error[:, j], at_sim.train_error[:, j], train.mean[:, j], train.std[:, j]),
        ):
            if panel is None:
                continue
            if panel == train_panel and lam == 0:
                keep_t, keep_s = n_theory > model.rank, ns_sim > model.rank  # 0 below: off a log axis
            else:
                keep_t, keep_s = np.ones_like(n_theory, bool), np.ones_like(ns_sim, bool)
            series.append(Series(
                panel=panel, name=_lam_label(lam),
                theory_x=n_theory[keep_t] / x_scale, theory_y=th_y[keep_t],
                sim_x=ns_sim[keep_s] / x_scale, sim_mean=mean[keep_s], sim_std=std[keep_s],
                n_seeds=test.n, theory_at_sim=at[keep_s]))
    return series


@register("ridge-isotropic", "Isotropic Gaussian features: deterministic equivalent, "
          "Marchenko–Pastur closed form and simulation", quick_seeds=20, full_seeds=50, medium_seeds=20)
def ridge_isotropic(size: Size, sweep: Sweeper) -> ExperimentOutput:
    p = size.pick(quick=200, medium=500, full=1000)
    noise = 0.1
    lams = np.array([0.0, 1e-3, 0.1, 1.0])
    spectrum = {"kind": "isotropic", "p": p}
    w, b = spectrum_from_spec(spectrum)
    model = GaussianCovariateModel.from_spectrum(w, b, 1 + noise**2)
    n_theory = np.geomspace(0.1 * p, 10 * p, 400)
    ns_sim = _sim_ns(p, 0.1, 10, size.pick(quick=12, medium=16, full=16))
    series = _curves(model, sweep, spectrum, ns_sim, lams, n_theory, x_scale=p)
    deviation = 0.0
    for j, lam in enumerate(lams):
        _, mp = marchenko_pastur_ridge(n_theory, p, lam, noise**2)
        with expected_numerics():
            de = model.ridge(n_theory, lam).test_error
        ok = np.isfinite(mp)
        deviation = max(deviation, float(np.max(np.abs(de[ok] - mp[ok]) / mp[ok])))
        series.append(Series(panel="test", name=f"{_lam_label(lam)} (Marchenko–Pastur)",
                             theory_x=n_theory / p, theory_y=mp,
                             style={"ls": ":", "lw": 2.4, "color": "0.25",
                                    "label": "Marchenko–Pastur closed form" if j == 0 else None}))
    panels = [Panel("test", "n / p", "test error", title="test error (σ² = 0.01), Ω = I"),
              Panel("train", "n / p", "training error", title="training error")]
    return ExperimentOutput(
        panels=panels, series=series,
        parameters={"p": p, "noise_std": noise, "lams": lams.tolist(), "ns_simulated": ns_sim.tolist(),
                    "lambda_convention": PROJECT_CONVENTION},
        title=f"Isotropic ridge, p = {p}",
        notes={"max_relative_difference_solver_vs_marchenko_pastur": deviation})


@register("ridge-power-law", "Power-law spectrum: double descent at n = p, optimal λ, and "
          "test error vs λ", quick_seeds=20, full_seeds=50, medium_seeds=20)
def ridge_power_law(size: Size, sweep: Sweeper) -> ExperimentOutput:
    p = size.pick(quick=200, medium=500, full=1000)
    alpha, beta, noise = 1.5, 1.0, 0.1
    spectrum = {"kind": "power-law", "p": p, "alpha": alpha, "beta": beta}
    w, b = spectrum_from_spec(spectrum)
    y2 = 1.0 + noise**2
    model = GaussianCovariateModel.from_spectrum(w, b, y2)
    lams = np.array([0.0, 1e-4, 1e-2, 1.0])
    n_theory = np.geomspace(0.05 * p, 20 * p, 400)
    ns_sim = _sim_ns(p, 0.05, 20, size.pick(quick=14, medium=20, full=20))
    series = _curves(model, sweep, spectrum, ns_sim, lams, n_theory)
    opt = model.optimal_lambda(np.geomspace(0.05 * p, 20 * p, 60))
    series.append(Series(panel="test", name="optimal λ (theory)", theory_x=opt.n, theory_y=opt.test_error,
                         style={"ls": "--", "color": "k"}))

    # Test error vs λ at two fixed sample sizes.
    lam_theory = np.geomspace(1e-6, 10, 200)
    lam_sim = np.geomspace(1e-6, 10, size.pick(quick=9, medium=13, full=13))
    n_fixed = np.array([p // 2, 2 * p])
    with expected_numerics():
        th = model.ridge(n_fixed[:, None].astype(float), lam_theory[None, :])
        at = model.ridge(n_fixed[:, None].astype(float), lam_sim[None, :])
    test = _simulate(sweep, spectrum, y2, n_fixed, lam_sim)["test_error"]
    for i, n in enumerate(n_fixed):
        series.append(Series(panel="vs-lambda", name=f"n = {n}", theory_x=lam_theory, theory_y=th.test_error[i],
                             sim_x=lam_sim, sim_mean=test.mean[i], sim_std=test.std[i],
                             n_seeds=test.n, theory_at_sim=at.test_error[i]))
    panels = [Panel("test", "n", "test error", title=f"test error, ω_i = i^-{alpha}, b_i ∝ i^-{beta:g}"),
              Panel("train", "n", "training error", title="training error"),
              Panel("vs-lambda", "λ", "test error", title="test error vs λ")]
    return ExperimentOutput(
        panels=panels, series=series,
        parameters={"p": p, "alpha": alpha, "beta": beta, "noise_std": noise, "y2": y2,
                    "lams": lams.tolist(), "ns_simulated": ns_sim.tolist(), "n_fixed": n_fixed.tolist(),
                    "lams_simulated_vs_lambda": lam_sim.tolist(),
                    "lambda_convention": PROJECT_CONVENTION},
        title=f"Ridge on power-law Gaussian features, p = {p}",
        notes={"optimal_lambda": {"n": opt.n.tolist(), "lam": opt.lam.tolist()}})
