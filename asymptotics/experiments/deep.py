"""Deep structured random features: linearised theory vs finite-size ridge simulation.

Theory: Ω, Φ, Ψ from :func:`asymptotics.deep.linearized_covariances` on the *realised* weights
(per-neuron variances by default), fed to :class:`GaussianCovariateModel.from_teacher`.
Simulation: :func:`simulations.deep.deep_ridge_task`, ridge on n fresh samples of the same
network, test error on a fresh test set (label noise included).

λ is this project's mean-loss λ. The paper's figures use the anchor code's sum-loss λ_c on raw
features (spec §1.2): λ = λ_c / n; the experiments here state λ in our convention directly.
"""
from __future__ import annotations

import warnings

import numpy as np

from simulations.deep import build_network, deep_ridge_task, moments_task

from ..compare import Panel, Series
from ..deep import linearized_covariances
from ..ridge import GaussianCovariateModel, NumericalWarning
from . import ExperimentOutput, Sweeper, register


def network_spec(d, widths, activations, teacher_widths=None, teacher_activations=(), noise=0.1, seed=1) -> dict:
    return {"d": int(d), "widths": [int(w) for w in widths], "activations": list(activations),
            "teacher": {"widths": [int(d)] if teacher_widths is None else [int(w) for w in teacher_widths],
                        "activations": list(teacher_activations), "noise": float(noise)},
            "weight_seed": int(seed)}


def theory_model(spec: dict, per_neuron: bool = True) -> GaussianCovariateModel:
    """The linearised Gaussian-covariate model of a network spec (same realised weights)."""
    weights, acts, teacher = build_network(spec)
    tw = None if teacher.is_linear else list(teacher.weights)
    ta = None if teacher.is_linear else (list(teacher.activations) if not isinstance(teacher.activations, str)
                                          else teacher.activations)
    omega, phi, psi = linearized_covariances(weights, acts, tw, ta, per_neuron=per_neuron)
    return GaussianCovariateModel.from_teacher(omega, phi, psi, teacher.theta, teacher.noise)


def _lam_label(lam: float) -> str:
    return "λ = 0" if lam == 0 else f"λ = {lam:g}"


def _sim_ns(p: int, lo: float, hi: float, count: int) -> np.ndarray:
    ns = np.unique(np.round(np.geomspace(lo * p, hi * p, count)).astype(int))
    return ns[np.abs(ns - p) > 0.05 * p]  # off the ridgeless peak, where seeds disagree wildly


def simulate(sweep: Sweeper, spec: dict, ns, lams, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of the test error, each (N, L)."""
    params = [{"network": spec, "n": int(n), "lams": [float(x) for x in lams], "n_test": int(n_test)} for n in ns]
    res = sweep(deep_ridge_task, params)
    a = np.array([[r["test_error"] for r in per_n] for per_n in res])  # (N, S, L)
    std = a.std(axis=1, ddof=1) if a.shape[1] > 1 else np.zeros((a.shape[0], a.shape[2]))
    return a.mean(axis=1), std


def curves(sweep, spec, panel, ns_sim, lams, n_test, model=None) -> list[Series]:
    model = model or theory_model(spec)
    n_theory = np.geomspace(ns_sim.min(), ns_sim.max(), 240)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        th = model.ridge(n_theory[:, None], np.asarray(lams)[None, :]).test_error
        at = model.ridge(ns_sim[:, None].astype(float), np.asarray(lams)[None, :]).test_error
    mean, std = simulate(sweep, spec, ns_sim, lams, n_test)
    return [Series(panel=panel, name=_lam_label(lam), theory_x=n_theory, theory_y=th[:, j], sim_x=ns_sim,
                   sim_mean=mean[:, j], sim_std=std[:, j], n_seeds=sweep.seeds, theory_at_sim=at[:, j])
            for j, lam in enumerate(lams)]


LAMBDA_CONVENTION = "mean loss: (1/n)Σ(y−θᵀφ)² + λ‖θ‖²"


def _sizes(quick: bool) -> dict:
    size = dict(d=100, p=200, n_test=4000, count=8) if quick else dict(d=400, p=800, n_test=10000, count=12)
    return {**size, "lambda_convention": LAMBDA_CONVENTION}


LAMS = [0.0, 1e-2, 0.3]


@register("deep-rf-depth", "Deep random features with 1, 2, 3 tanh layers, linear teacher: learning curves "
          "vs n (λ including 0)", quick_seeds=10, full_seeds=20)
def deep_rf_depth(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(quick)
    cases = {f"L = {depth}": (network_spec(s["d"], [s["p"]] * depth, ["tanh"] * depth),
                              f"{depth}-layer tanh features, p = {s['p']}") for depth in (1, 2, 3)}
    out = _panels_of_curves(sweep, s, cases, "Deep random features: depth")
    out.parameters.update(teacher="linear, θ* ~ N(0, I_d), σ = 0.1", theory="linearised, per-neuron variances")
    return out


def _panels_of_curves(sweep: Sweeper, s: dict, cases: dict, title: str) -> ExperimentOutput:
    """One panel of learning curves (λ ∈ LAMS) per case {panel name: (network spec, panel title)}."""
    ns = _sim_ns(s["p"], 0.15, 5, s["count"])
    panels, series = [], []
    for name, (spec, panel_title) in cases.items():
        panels.append(Panel(name, "n", "test error", title=panel_title))
        series += curves(sweep, spec, name, ns, LAMS, s["n_test"])
    return ExperimentOutput(panels, series, parameters={**s, "lams": LAMS, "ns_simulated": ns.tolist()},
                            title=title)


@register("deep-rf-activations", "Two-layer random features with tanh, erf(z/√2) and sign activations, "
          "linear teacher", quick_seeds=10, full_seeds=20)
def deep_rf_activations(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(quick)
    cases = {act: (network_spec(s["d"], [s["p"]] * 2, [act] * 2), f"σ = {act}, 2 layers, p = {s['p']}")
             for act in ("tanh", "erf_scaled", "sign")}
    return _panels_of_curves(sweep, s, cases, "Deep random features: activations")


@register("deep-rf-teachers", "Two-layer tanh random features learning a linear, a one-layer sign and a "
          "two-layer tanh teacher", quick_seeds=10, full_seeds=20)
def deep_rf_teachers(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(quick)
    d = s["d"]
    teachers = {"linear teacher": (None, ()),
                "sign teacher (k = d)": ([d, d], ["sign"]),
                "2-layer tanh teacher": ([d, d, d], ["tanh", "tanh"])}
    cases = {name: (network_spec(d, [s["p"]] * 2, ["tanh"] * 2, tw, ta), name) for name, (tw, ta) in teachers.items()}
    return _panels_of_curves(sweep, s, cases, "Deep random features: teachers")


@register("deep-rf-finite-size", "Theory–simulation deviation at fixed n/p and λ as the widths grow; "
          "log-log slope", quick_seeds=16, full_seeds=32)
def deep_rf_finite_size(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    widths = [100, 200, 400, 800] if quick else [100, 200, 400, 800, 1600, 3200]
    lam, ratio = 0.01, 2.0
    dev = {"per-neuron variances": [], "mean variance": []}
    rel_se = []  # standard error of the simulated mean, relative to the theory
    for p in widths:
        spec = network_spec(p // 2, [p, p], ["tanh", "tanh"])
        n = int(ratio * p)
        mean, std = simulate(sweep, spec, [n], [lam], 4 * p)
        for key, per in (("per-neuron variances", True), ("mean variance", False)):
            t = float(theory_model(spec, per_neuron=per).ridge(float(n), lam).test_error)
            dev[key].append(abs(mean[0, 0] - t) / t)
        rel_se.append(std[0, 0] / np.sqrt(sweep.seeds) / t)
    w = np.array(widths, dtype=float)
    series, slopes = [], {}
    for key, values in dev.items():
        v = np.array(values)
        slope = float(np.polyfit(np.log(w), np.log(v), 1)[0])
        slopes[key] = slope
        series.append(Series(panel="deviation", name=f"{key} (slope {slope:.2f})", sim_x=w, sim_mean=v,
                             sim_std=np.array(rel_se), n_seeds=sweep.seeds))
    print("deep-rf-finite-size: log-log slope of |simulation − theory|/theory vs p: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in slopes.items()))
    series.append(Series(panel="deviation", name="standard error of the simulated mean (relative)", theory_x=w,
                         theory_y=np.array(rel_se), style={"ls": ":", "color": "0.4"}))
    return ExperimentOutput([Panel("deviation", "p (width of both layers, d = p/2)", "|mean − theory| / theory",
                                   title=f"n/p = {ratio:g}, λ = {lam:g}, 2-layer tanh")], series,
                            parameters={"widths": widths, "lam": lam, "n_over_p": ratio, "d_over_p": 0.5,
                                        "lambda_convention": LAMBDA_CONVENTION},
                            title="Finite-size deviation of the deep random-features theory",
                            notes={"loglog_slopes": slopes, "relative_deviation": dev,
                                   "relative_standard_error": rel_se,
                                   "caveat": "once the deviation reaches the standard error the slope "
                                             "flattens: more seeds are needed at large p"})


@register("deep-rf-estimated", "Theory from Ω, Φ, Ψ estimated from samples vs the linearised theory: "
          "error of the estimate vs the number of samples", quick_seeds=3, full_seeds=5)
def deep_rf_estimated(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(quick)
    spec = network_spec(s["d"], [s["p"]] * 2, ["tanh"] * 2)
    model = theory_model(spec)
    n_covs = [500, 1000, 2000, 4000, 8000, 16000, 32000] + ([] if quick else [64000, 128000])
    ns_sim = _sim_ns(s["p"], 0.15, 5, s["count"])
    lam = 0.01
    series = curves(sweep, spec, "curves", ns_sim, [lam], s["n_test"], model)
    series[0].name = "linearised theory, λ = 0.01"
    res = sweep(moments_task, [{"network": spec, "n_samples": m} for m in n_covs])
    n_grid = series[0].theory_x
    ref = model.ridge(n_grid, lam).test_error
    frob, curve_dev = np.zeros((len(n_covs), sweep.seeds)), np.zeros((len(n_covs), sweep.seeds))
    omega_lin = linearized_covariances(*build_network(spec)[:2], per_neuron=True)[0]
    for i, per_seed in enumerate(res):
        for j, est in enumerate(per_seed):
            frob[i, j] = np.linalg.norm(est["omega"] - omega_lin) / np.linalg.norm(omega_lin)
            m = GaussianCovariateModel(est["omega"], est["b"], est["y2"], psd_tol=1e-6)
            e = m.ridge(n_grid, lam).test_error
            curve_dev[i, j] = np.max(np.abs(e - ref) / ref)
            if j == 0 and n_covs[i] in (1000, n_covs[-1]):
                series.append(Series(panel="curves", name=f"theory from moments estimated on {n_covs[i]} samples",
                                     theory_x=n_grid, theory_y=e, style={"ls": "--"}))
    slope = float(np.polyfit(np.log(n_covs), np.log(frob.mean(1)), 1)[0])
    for name, arr in (("‖Ω̂ − Ω_lin‖_F / ‖Ω_lin‖_F", frob), ("max relative change of the predicted curve", curve_dev)):
        series.append(Series(panel="estimate", name=name, sim_x=np.array(n_covs, float), sim_mean=arr.mean(1),
                             sim_std=arr.std(1, ddof=1) if sweep.seeds > 1 else np.zeros(len(n_covs)),
                             n_seeds=sweep.seeds))
    panels = [Panel("curves", "n", "test error", title=f"2-layer tanh, p = {s['p']}"),
              Panel("estimate", "samples used for Ω̂, Φ̂, Ψ̂", "relative error",
                    title=f"estimate vs linearisation (slope {slope:.2f})")]
    return ExperimentOutput(panels, series, parameters={**s, "lam": lam, "n_covariance_samples": n_covs},
                            title="Deep random features from estimated covariances",
                            notes={"frobenius_slope": slope,
                                   "frobenius_floor_note": "Ω̂ → E[φφᵀ] ≠ Ω_lin exactly: the error flattens "
                                                           "at the linearisation error O(p^-1/2)"})


@register("deep-rainbow", "Deep rainbow (structured, layer-dependent) random features with a teacher sharing "
          "the first layer's structure, for several spectra γ (the paper's rainbow figure)",
          quick_seeds=6, full_seeds=10)
def deep_rainbow(quick: bool, sweep: Sweeper) -> ExperimentOutput:
    d = 150 if quick else 500
    gammas = [0.01, 0.2, 0.5, 0.8]
    lam_c = 1e-3  # the paper's (anchor code's) sum-loss λ_c on raw features
    n_theory = np.linspace(0.2 * d, 2 * d, 60) if quick else np.linspace(50, 1000, 50)
    ns_sim = np.unique(np.round(np.linspace(n_theory[0], n_theory[-1], 8 if quick else 10)).astype(int))
    ns_sim = ns_sim[np.abs(ns_sim - d) > 0.05 * d]
    n_cov = 20_000 if quick else 100_000
    n_test = 2000
    series = []
    for gamma in gammas:
        spec = {"kind": "rainbow", "d": d, "gamma": gamma, "weight_seed": 1}
        # Convert λ_c (sum loss, raw features; spec §1.2) to this project's mean-loss λ = λ_c / n.
        lam_theory, lam_sim = lam_c / n_theory, lam_c / ns_sim
        est = sweep(moments_task, [{"network": spec, "n_samples": n_cov}], seeds=1)[0][0]
        model = GaussianCovariateModel(est["omega"], est["b"], est["y2"], psd_tol=1e-6)
        params = [{"network": spec, "n": int(n), "lams": [float(l)], "n_test": n_test} for n, l in zip(ns_sim, lam_sim)]
        res = sweep(deep_ridge_task, params)
        a = np.array([[r["test_error"][0] for r in per_n] for per_n in res])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            th = model.ridge(n_theory, lam_theory).test_error
            at = model.ridge(ns_sim.astype(float), lam_sim).test_error
        series.append(Series(panel="rainbow", name=f"γ = {gamma:g}", theory_x=n_theory, theory_y=th, sim_x=ns_sim,
                             sim_mean=a.mean(1), sim_std=a.std(1, ddof=1), n_seeds=sweep.seeds, theory_at_sim=at))
    return ExperimentOutput(
        [Panel("rainbow", "n", "test error", xscale="linear", title=f"rainbow features, d = p = {d}, λ_c = {lam_c:g}")],
        series, parameters={"d": d, "gammas": gammas, "lambda_c_sum_loss": lam_c, "lambda_ours": "λ_c / n",
                            "lambda_convention": "paper/anchor code: sum loss on raw features, λ = λ_c / n",
                            "moment_samples": n_cov, "n_test": n_test, "ns_simulated": ns_sim.tolist()},
        title="Deep rainbow random features (theory from moments estimated on fresh samples)")
