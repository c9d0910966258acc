"""Deep structured random features: linearised theory vs finite-size ridge simulation.

Theory: Ω, Φ, Ψ from :func:`asymptotics.deep.linearized_covariances` on the *realised* weights
(per-neuron variances by default), fed to :class:`GaussianCovariateModel.from_teacher`.
Simulation: :func:`simulations.deep.deep_ridge_task`, ridge on n fresh samples of the same
network, test error on a fresh test set (label noise included).

λ is this project's mean-loss λ. The paper's figures use the anchor code's sum-loss λ_c on raw
features, ‖y − Fθ‖² + λ_c‖θ‖², i.e. λ = λ_c / n (:func:`asymptotics.conventions.lam_from_sum_loss`,
called by ``deep-rainbow``); the other experiments state λ in our convention directly. The theory
is derived in ``docs/theory/deep_features.md``.
"""
from __future__ import annotations

import numpy as np

from simulations.deep import DeepFeaturesSpec, DeepMomentsSpec, build_network, deep_ridge_task, moments_task

from ..compare import Panel, SeedStack, Series
from ..conventions import PROJECT_CONVENTION, lam_from_sum_loss
from ..deep import feature_mean, kernel_covariances, linearized_covariances
from ..ridge import GaussianCovariateModel
from ..verdict import bound_check, interval_check, power_law_fit, sign_check
from . import ExperimentOutput, Size, Sweeper, expected_numerics, peak_ns, register


def network_spec(d, widths, activations, teacher_widths=None, teacher_activations=(), noise=0.1, seed=1) -> dict:
    """The network description of :mod:`simulations.deep` (linear teacher by default)."""
    return {"d": int(d), "widths": [int(w) for w in widths], "activations": list(activations),
            "teacher": {"widths": [int(d)] if teacher_widths is None else [int(w) for w in teacher_widths],
                        "activations": list(teacher_activations), "noise": float(noise)},
            "weight_seed": int(seed)}


def theory_model(spec: dict, per_neuron: bool = True, readout: str = "raw") -> GaussianCovariateModel:
    """The linearised Gaussian-covariate model of a network spec (same realised weights): the
    covariances and the exact means of the student and teacher features, for the ``readout``
    ("raw" or "intercept") of :class:`simulations.deep.DeepFeaturesSpec`."""
    weights, acts, teacher = build_network(spec)
    tw = None if teacher.is_linear else list(teacher.weights)
    ta = None if teacher.is_linear else (list(teacher.activations) if not isinstance(teacher.activations, str)
                                          else teacher.activations)
    omega, phi, psi = linearized_covariances(weights, acts, tw, ta, per_neuron=per_neuron)
    mu = feature_mean(weights, acts, per_neuron=per_neuron)
    mu_t = None if tw is None else feature_mean(tw, ta, per_neuron=per_neuron)
    return GaussianCovariateModel.from_teacher(
        omega, phi, psi, teacher.theta, teacher.noise, feature_mean=mu if np.any(mu) else None,
        teacher_mean=mu_t if mu_t is not None and np.any(mu_t) else None, readout=readout)


def _lam_label(lam: float) -> str:
    return "λ = 0" if lam == 0 else f"λ = {lam:g}"


def _sim_ns(p: int, lo: float, hi: float, count: int, peak: bool = True) -> np.ndarray:
    """Log-spaced n off the ridgeless peak (no grid point within 5 % of p), plus :func:`peak_ns`
    when the curves have a peak (``peak``; learning curves with λ = 0)."""
    ns = np.unique(np.round(np.geomspace(lo * p, hi * p, count)).astype(int))
    ns = ns[np.abs(ns - p) > 0.05 * p]
    return np.unique(np.concatenate([ns, peak_ns(p)])) if peak else ns


def _ridge_specs(spec: dict, ns, lams_per_n, n_test: int) -> list[DeepFeaturesSpec]:
    """One :class:`DeepFeaturesSpec` per sample size n (with its own list of λ)."""
    return [DeepFeaturesSpec(network=spec, n=int(n), lams=tuple(float(x) for x in lams), n_test=int(n_test))
            for n, lams in zip(ns, lams_per_n)]


def simulated_test_errors(sweep: Sweeper, spec: dict, ns, lams, n_test: int) -> SeedStack:
    """Simulated test errors over seeds, shape (S, N, L): ridge on n samples for every n in ``ns``."""
    return sweep.stack(deep_ridge_task, _ridge_specs(spec, ns, [lams] * len(ns), n_test), "test_error")


def simulate(sweep: Sweeper, spec: dict, ns, lams, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of the test error, each (N, L)."""
    stack = simulated_test_errors(sweep, spec, ns, lams, n_test)
    return stack.mean, stack.std


def curves(sweep, spec, panel, ns_sim, lams, n_test, model=None) -> list[Series]:
    """Theory and simulated learning curves (test error vs n), one series per λ."""
    model = model or theory_model(spec)
    n_theory = np.geomspace(ns_sim.min(), ns_sim.max(), 240)
    with expected_numerics():
        th = model.ridge(n_theory[:, None], np.asarray(lams)[None, :]).test_error
        at = model.ridge(ns_sim[:, None].astype(float), np.asarray(lams)[None, :]).test_error
    sim = simulated_test_errors(sweep, spec, ns_sim, lams, n_test)
    return [Series(panel=panel, name=_lam_label(lam), theory_x=n_theory, theory_y=th[:, j], sim_x=ns_sim,
                   sim_mean=sim.mean[:, j], sim_std=sim.std[:, j], n_seeds=sim.n, theory_at_sim=at[:, j])
            for j, lam in enumerate(lams)]


#: This project's λ convention (written to the JSON of the experiments).
LAMBDA_CONVENTION = PROJECT_CONVENTION


def _sizes(size: Size) -> dict:
    """d, p (every layer), n_test and the number of log-spaced simulated n (plus the 4 around the
    peak) of depth, activations, teachers and estimated."""
    s = size.pick(quick=dict(d=100, p=200, n_test=4000, count=8),
                  medium=dict(d=200, p=400, n_test=8000, count=10),
                  full=dict(d=400, p=800, n_test=10000, count=12))
    return {**s, "lambda_convention": LAMBDA_CONVENTION}


LAMS = [0.0, 1e-2, 0.3]


@register("deep-rf-depth", "Deep random features with 1, 2, 3 tanh layers, linear teacher: learning curves "
          "vs n (λ including 0)", quick_seeds=10, full_seeds=20, medium_seeds=10)
def deep_rf_depth(size: Size, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(size)
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


@register("deep-rf-activations", "Two-layer random features with tanh, erf(z/√2), sign, relu and softplus "
          "activations (the uncentred ones with their exact means, raw readout), linear teacher",
          quick_seeds=10, full_seeds=20, medium_seeds=10)
def deep_rf_activations(size: Size, sweep: Sweeper) -> ExperimentOutput:
    """relu and softplus features have a mean: the theory is the raw readout of
    :meth:`GaussianCovariateModel.from_teacher` (Ω + μμᵀ with the exact propagated mean μ of
    :func:`asymptotics.deep.feature_mean`), the simulation ridge on the raw features."""
    s = _sizes(size)
    cases = {act: (network_spec(s["d"], [s["p"]] * 2, [act] * 2), f"σ = {act}, 2 layers, p = {s['p']}")
             for act in ("tanh", "erf_scaled", "sign", "relu", "softplus")}
    out = _panels_of_curves(sweep, s, cases, "Deep random features: activations")
    out.parameters.update(readout="raw (relu, softplus: Ω + μμᵀ with the exact propagated mean)",
                          theory="linearised, per-neuron variances")
    return out


@register("deep-rf-teachers", "Two-layer tanh random features learning a linear, a one-layer sign and a "
          "two-layer tanh teacher", quick_seeds=10, full_seeds=20, medium_seeds=10)
def deep_rf_teachers(size: Size, sweep: Sweeper) -> ExperimentOutput:
    s = _sizes(size)
    d = s["d"]
    teachers = {"linear teacher": (None, ()),
                "sign teacher (k = d)": ([d, d], ["sign"]),
                "2-layer tanh teacher": ([d, d, d], ["tanh", "tanh"])}
    cases = {name: (network_spec(d, [s["p"]] * 2, ["tanh"] * 2, tw, ta), name) for name, (tw, ta) in teachers.items()}
    return _panels_of_curves(sweep, s, cases, "Deep random features: teachers")


def finite_size_check(key: str, widths, deviation, deviation_se):
    """The fitted power law |deviation| ∝ p^a (errors: ``deviation_se``, delta method) and the check
    that a < 0 (95 % interval entirely below 0)."""
    fit = power_law_fit(widths, np.abs(deviation), deviation_se)
    return fit, sign_check(f"{key}: decays with p", fit.exponent, fit.se, fit.interval,
                           prediction="log-log slope of the relative deviation vs p < 0 (95 % interval below 0)")


def estimate_rate_check(n_samples, error, error_se):
    """The fitted power law ‖Ω̂ − Ω_lin‖_F/‖Ω_lin‖_F ∝ m^a (errors: standard error over seeds) and
    the check that the Monte-Carlo rate −1/2 lies in its 95 % interval."""
    fit = power_law_fit(n_samples, error, error_se)
    return fit, interval_check("Frobenius error of Ω̂ decays as samples^-1/2", -0.5, fit.exponent, fit.se,
                               fit.interval, prediction="log-log slope of ‖Ω̂ − Ω_lin‖_F/‖Ω_lin‖_F vs samples: "
                                                        "−1/2 inside the 95 % interval (Monte-Carlo rate)")


#: (n/p, λ) of deep-rf-finite-size: both sides of the interpolation peak n = p, two λ; the first is
#: the setting of the fitted rate.
FINITE_SIZE_SETTINGS = ((2.0, 0.01), (2.0, 0.1), (0.5, 0.01), (0.5, 0.1))


def kernel_theory_model(spec: dict) -> GaussianCovariateModel:
    """The Gaussian-covariate model of a network spec with every Hermite order kept
    (:func:`asymptotics.deep.kernel_covariances`, linear teacher), same realised weights."""
    weights, acts, teacher = build_network(spec)
    if not teacher.is_linear:
        raise ValueError("kernel_theory_model: the network spec must have a linear teacher")
    omega, phi, psi = kernel_covariances(weights, acts)
    return GaussianCovariateModel.from_teacher(omega, phi, psi, teacher.theta, teacher.noise)


def _finite_size_draw(sweep: Sweeper, p: int, draw: int) -> dict:
    """One weight draw at width p (d = p/2, two tanh layers, linear teacher): per setting, the
    simulated mean and its standard error (n_test = 4p) and both theories, as arrays over settings."""
    spec = network_spec(p // 2, [p, p], ["tanh", "tanh"], seed=draw)
    ratios = sorted({r for r, _ in FINITE_SIZE_SETTINGS})
    lams = sorted({lam for _, lam in FINITE_SIZE_SETTINGS})
    stack = simulated_test_errors(sweep, spec, [int(r * p) for r in ratios], lams, 4 * p)
    idx = [(ratios.index(r), lams.index(lam)) for r, lam in FINITE_SIZE_SETTINGS]
    out = {"mean": np.array([stack.mean[i, j] for i, j in idx]), "se": np.array([stack.sem[i, j] for i, j in idx])}
    for key, model in (("linearised", theory_model(spec)), ("kernel", kernel_theory_model(spec))):
        out[key] = np.array([float(model.ridge(r * p, lam).test_error) for r, lam in FINITE_SIZE_SETTINGS])
    return out


def _pool_draws(draws: list[dict]) -> dict:
    """Relative deviations pooled over K weight draws (each relative to its own linearised theory):
    D = mean (sim − lin)/lin with SE √(Σ se²/lin²)/K; G = mean (kernel − lin)/lin, the predicted
    finite-width correction, with the standard error of the mean over draws."""
    lin = np.array([d["linearised"] for d in draws])
    sim, se, kernel = (np.array([d[key] for d in draws]) / lin for key in ("mean", "se", "kernel"))
    k = len(draws)
    gap = kernel - 1.0
    return {"dev": (sim - 1.0).mean(0), "dev_se": np.sqrt(np.sum(se**2, 0)) / k,
            "gap": gap.mean(0), "gap_se": gap.std(0, ddof=1) / np.sqrt(k) if k > 1 else np.full(gap.shape[1], np.nan)}


def _finite_size_series(w: np.ndarray, pooled: dict, draws: np.ndarray, seeds: int, fit) -> list[Series]:
    """Series of the three panels: simulation / linearised theory vs every order / linearised, deviation/SE for
    both theories, and the linearisation's error with its fitted power law. A pooled deviation is
    written as its standard error times √S_min (S_min: the fewest seeds pooled at any width), with
    S_min as its number of seeds, so that the agreement z-score is (deviation − correction)/SE."""
    series, s_min = [], int(np.min(draws)) * seeds
    for j, (ratio, lam) in enumerate(FINITE_SIZE_SETTINGS):
        name, colour = f"n/p = {ratio:g}, λ = {lam:g}", f"C{j}"
        dev, se, gap = pooled["dev"][:, j], pooled["dev_se"][:, j], pooled["gap"][:, j]
        series.append(Series(panel="deviation", name=name, theory_x=w, theory_y=1 + gap, sim_x=w, sim_mean=1 + dev,
                             sim_std=se * np.sqrt(s_min), n_seeds=s_min, theory_at_sim=1 + gap,
                             style={"color": colour}))
        series.append(Series(panel="deviation/SE", name=f"{name}: linearised", sim_x=w, sim_mean=dev / se,
                             sim_std=np.zeros_like(w), n_seeds=s_min, style={"marker": "o", "color": colour}))
        series.append(Series(panel="deviation/SE", name=f"{name}: every Hermite order", sim_x=w,
                             sim_mean=(dev - gap) / se, sim_std=np.zeros_like(w), n_seeds=s_min,
                             style={"marker": "x", "color": colour}))
    for z in (-3.0, 3.0):
        series.append(Series(panel="deviation/SE", name="±3 standard errors" if z > 0 else "", theory_x=w,
                             theory_y=np.full_like(w, z), style={"ls": ":", "color": "0.4"}))
    ratio, lam = FINITE_SIZE_SETTINGS[0]
    g, gse = np.abs(pooled["gap"][:, 0]), pooled["gap_se"][:, 0]
    series.append(Series(panel="linearisation error", name=f"|kernel − linearised| / linearised, n/p = {ratio:g}, "
                         f"λ = {lam:g} (± std over weight draws)", sim_x=w, sim_mean=100 * g,
                         sim_std=100 * gse * np.sqrt(draws), n_seeds=int(np.min(draws))))
    series.append(Series(panel="linearisation error", name=f"fitted slope {fit.exponent:.2f} "
                         f"[{fit.interval[0]:.2f}, {fit.interval[1]:.2f}]", theory_x=w,
                         theory_y=100 * fit.prefactor * w ** fit.exponent, style={"ls": "--", "color": "0.3"}))
    return series


@register("deep-rf-finite-size", "Finite-width deviation of the linearised deep random-features theory: "
          "simulation vs the linearisation and vs every Hermite order, and the rate of the linearisation's "
          "error", quick_seeds=8, full_seeds=64, medium_seeds=32)
def deep_rf_finite_size(size: Size, sweep: Sweeper) -> ExperimentOutput:
    """Two tanh layers of width p, d = p/2, linear teacher (σ = 0.1), n/p ∈ {2, 0.5}, λ ∈ {0.01, 0.1};
    several weight draws per width (seeds of the sweep per draw). Theories on each realised network:
    the per-neuron linearisation and :func:`asymptotics.deep.kernel_covariances` (every Hermite order).

    Checks (tolerances fixed before the run): (1) the pooled point-wise check of the simulated
    deviation (sim − lin)/lin against the predicted correction (kernel − lin)/lin, i.e. simulation
    vs the every-order theory; (2) the log-log slope of |kernel − lin|/lin at n/p = 2, λ = 0.01
    (:func:`asymptotics.verdict.power_law_fit`, errors over weight draws) is negative, its 95 %
    interval below 0; (3) at the smallest width the simulation sits below the linearised theory
    (n/p = 2, λ = 0.01) by more than 1.645 standard errors (the linearisation's error is resolved)."""
    widths = size.pick(quick=[100, 200, 300], medium=[100, 200, 400, 800], full=[100, 200, 400, 800, 1600])
    draws = size.pick(quick=[2, 2, 2], medium=[8, 4, 2, 2], full=[8, 4, 2, 2, 2])
    per_width = [[_finite_size_draw(sweep, p, 1 + k) for k in range(m)] for p, m in zip(widths, draws)]
    per_width = [_pool_draws(ds) for ds in per_width]
    pooled = {key: np.array([pw[key] for pw in per_width]) for key in ("dev", "dev_se", "gap", "gap_se")}
    w = np.array(widths, dtype=float)
    ratio, lam = FINITE_SIZE_SETTINGS[0]
    fit, rate = finite_size_check(f"|kernel − linearised|/linearised at n/p = {ratio:g}, λ = {lam:g}", w,
                                  pooled["gap"][:, 0], pooled["gap_se"][:, 0])
    resolved = bound_check(f"simulation below the linearised theory at p = {widths[0]}, n/p = {ratio:g}, λ = {lam:g}",
                           pooled["dev"][0, 0], pooled["dev_se"][0, 0], 0.0, side="below", margin=1.645,
                           prediction="(sim − lin)/lin < 0 by more than 1.645 standard errors")
    print(f"deep-rf-finite-size: |kernel − linearised|/linearised ∝ p^{fit.exponent:.2f} "
          f"[{fit.interval[0]:.2f}, {fit.interval[1]:.2f}] (n/p = {ratio:g}, λ = {lam:g})")
    panels = [Panel("deviation", "p (width of both layers, d = p/2)", "ratio to the linearised theory",
                    yscale="linear", title="simulation (points, bars: std over seeds), every Hermite order (lines)"),
              Panel("deviation/SE", "p (width of both layers, d = p/2)", "(simulation − theory) / SE", yscale="linear",
                    title="deviation in standard errors: o linearised, x every Hermite order"),
              Panel("linearisation error", "p (width of both layers, d = p/2)", "|kernel − linearised| / linearised  [%]",
                    title="the linearisation's finite-width error, fitted power law")]
    notes = {"settings": [list(s) for s in FINITE_SIZE_SETTINGS], "widths": widths, "weight_draws": draws,
             "seeds_per_draw": sweep.seeds, **{k: v.tolist() for k, v in pooled.items()},
             "linearisation_error_fit": {"exponent": fit.exponent, "se": fit.se, "interval": list(fit.interval),
                                         "prefactor": fit.prefactor},
             "units": "relative (fractions); dev = (sim − lin)/lin, gap = (kernel − lin)/lin, per width × setting"}
    return ExperimentOutput(panels, _finite_size_series(w, pooled, np.array(draws), sweep.seeds, fit),
                            parameters={"widths": widths, "weight_draws": draws, "d_over_p": 0.5,
                                        "settings_n_over_p_lambda": [list(s) for s in FINITE_SIZE_SETTINGS],
                                        "n_test": "4p", "lambda_convention": LAMBDA_CONVENTION},
                            title="Finite-width deviation of the deep random-features theory",
                            notes=notes, checks=[rate, resolved])


def _estimated_moment_errors(sweep: Sweeper, spec: dict, model, n_covs, n_grid, lam) -> tuple[dict, list]:
    """For every number m of samples: the relative Frobenius error of Ω̂ against Ω_lin and the largest
    relative change of the predicted curve (θ̂ from Ω̂, b̂, E[y²] instead of the linearisation), as
    seed stacks; plus the curves of seed 0 at m = 1000 and the largest m (dashed series)."""
    res = sweep(moments_task, [DeepMomentsSpec(network=spec, n_samples=m) for m in n_covs])
    ref = model.ridge(n_grid, lam).test_error
    omega_lin = linearized_covariances(*build_network(spec)[:2], per_neuron=True)[0]
    frob, curve_dev = np.zeros((len(n_covs), sweep.seeds)), np.zeros((len(n_covs), sweep.seeds))
    dashed = []
    for i, per_seed in enumerate(res):
        for j, est in enumerate(per_seed):
            frob[i, j] = np.linalg.norm(est["omega"] - omega_lin) / np.linalg.norm(omega_lin)
            e = GaussianCovariateModel(est["omega"], est["b"], est["y2"], psd_tol=1e-6).ridge(n_grid, lam).test_error
            curve_dev[i, j] = np.max(np.abs(e - ref) / ref)
            if j == 0 and n_covs[i] in (1000, n_covs[-1]):
                dashed.append(Series(panel="curves", name=f"theory from moments estimated on {n_covs[i]} samples",
                                     theory_x=n_grid, theory_y=e, style={"ls": "--"}))
    stacks = {"‖Ω̂ − Ω_lin‖_F / ‖Ω_lin‖_F": SeedStack(frob.T),
              "max relative change of the predicted curve": SeedStack(curve_dev.T)}
    return stacks, dashed


@register("deep-rf-estimated", "Theory from Ω, Φ, Ψ estimated from samples vs the linearised theory: "
          "error of the estimate vs the number of samples", quick_seeds=3, full_seeds=5, medium_seeds=4)
def deep_rf_estimated(size: Size, sweep: Sweeper) -> ExperimentOutput:
    """Check (tolerance fixed before the run): the exponent of ‖Ω̂ − Ω_lin‖_F/‖Ω_lin‖_F ∝ m^a in the
    number m of samples, fitted by :func:`asymptotics.verdict.power_law_fit` (weights from the
    standard error over seeds), has −1/2 (the Monte-Carlo rate) inside its 95 % interval
    (:func:`~asymptotics.verdict.interval_check`). It fails once the error reaches the
    linearisation's own floor (Ω̂ → E[φφᵀ] ≠ Ω_lin)."""
    s = _sizes(size)
    spec = network_spec(s["d"], [s["p"]] * 2, ["tanh"] * 2)
    model = theory_model(spec)
    n_covs = [500, 1000, 2000, 4000, 8000, 16000, 32000] + size.pick(quick=[], medium=[64000], full=[64000, 128000])
    ns_sim = _sim_ns(s["p"], 0.15, 5, s["count"], peak=False)  # λ = 0.01 only: no interpolation peak
    lam = 0.01
    series = curves(sweep, spec, "curves", ns_sim, [lam], s["n_test"], model)
    series[0].name = "linearised theory, λ = 0.01"
    stacks, dashed = _estimated_moment_errors(sweep, spec, model, n_covs, series[0].theory_x, lam)
    series += dashed
    frob = stacks["‖Ω̂ − Ω_lin‖_F / ‖Ω_lin‖_F"]
    fit, check = estimate_rate_check(n_covs, frob.mean, frob.sem)
    slope = fit.exponent
    for name, stack in stacks.items():
        series.append(Series(panel="estimate", name=name, sim_x=np.array(n_covs, float), sim_mean=stack.mean,
                             sim_std=stack.std, n_seeds=stack.n))
    m = np.geomspace(n_covs[0], n_covs[-1], 50)
    series.append(Series(panel="estimate", name=f"fitted power law, slope {slope:.3f}", theory_x=m,
                         theory_y=fit.prefactor * m ** slope, style={"ls": "--", "color": "0.3"}))
    panels = [Panel("curves", "n", "test error", title=f"2-layer tanh, p = {s['p']}"),
              Panel("estimate", "samples used for Ω̂, Φ̂, Ψ̂", "relative error",
                    title=f"estimate vs linearisation (Frobenius slope {slope:.2f} "
                          f"[{fit.interval[0]:.2f}, {fit.interval[1]:.2f}])")]
    return ExperimentOutput(panels, series, parameters={**s, "lam": lam, "n_covariance_samples": n_covs},
                            title="Deep random features from estimated covariances",
                            checks=[check],
                            notes={"frobenius_slope": slope,
                                   "frobenius_fit": {"exponent": fit.exponent, "se": fit.se,
                                                     "interval": list(fit.interval),
                                                     "tolerance": "−1/2 inside the 95 % interval"},
                                   "frobenius_floor_note": "Ω̂ → E[φφᵀ] ≠ Ω_lin exactly: the error flattens "
                                                           "at the linearisation error O(p^-1/2)"})


def _rainbow_series(sweep: Sweeper, d: int, gamma: float, lam_c: float, n_theory, ns_sim, n_cov: int,
                    n_test: int) -> Series:
    """One γ of the rainbow figure: theory from moments estimated on ``n_cov`` fresh samples (one seed)
    vs ridge simulations, both at the project's λ = λ_c / n of the paper's sum-loss λ_c."""
    spec = {"kind": "rainbow", "d": d, "gamma": gamma, "weight_seed": 1}
    lam_theory, lam_sim = lam_from_sum_loss(lam_c, n_theory), lam_from_sum_loss(lam_c, ns_sim)
    est = sweep(moments_task, [DeepMomentsSpec(network=spec, n_samples=n_cov)], seeds=1)[0][0]
    model = GaussianCovariateModel(est["omega"], est["b"], est["y2"], psd_tol=1e-6)
    sim = sweep.stack(deep_ridge_task, _ridge_specs(spec, ns_sim, [[lam] for lam in lam_sim], n_test),
                      "test_error")
    with expected_numerics():
        th = model.ridge(n_theory, lam_theory).test_error
        at = model.ridge(ns_sim.astype(float), lam_sim).test_error
    return Series(panel="rainbow", name=f"γ = {gamma:g}", theory_x=n_theory, theory_y=th, sim_x=ns_sim,
                  sim_mean=sim.mean[:, 0], sim_std=sim.std[:, 0], n_seeds=sim.n, theory_at_sim=at)


@register("deep-rainbow", "Deep rainbow (structured, layer-dependent) random features with a teacher sharing "
          "the first layer's structure, for several spectra γ (the paper's rainbow figure)",
          quick_seeds=6, full_seeds=10, medium_seeds=8)
def deep_rainbow(size: Size, sweep: Sweeper) -> ExperimentOutput:
    d = size.pick(quick=150, medium=300, full=500)
    gammas = [0.01, 0.2, 0.5, 0.8]
    lam_c = 1e-3  # the paper's (anchor code's) sum-loss λ_c on raw features
    n_theory = np.linspace(50, 1000, 50) if size == "full" else np.linspace(0.2 * d, 2 * d, 60)
    ns_sim = np.unique(np.round(np.linspace(n_theory[0], n_theory[-1], size.pick(8, 10, 10))).astype(int))
    ns_sim = ns_sim[np.abs(ns_sim - d) > 0.05 * d]
    ns_sim = np.unique(np.concatenate([ns_sim, peak_ns(d)]))  # λ = λ_c/n ≈ 0: a peak at n = p = d
    n_cov = size.pick(quick=20_000, medium=50_000, full=100_000)
    n_test = 2000
    series = [_rainbow_series(sweep, d, gamma, lam_c, n_theory, ns_sim, n_cov, n_test) for gamma in gammas]
    return ExperimentOutput(
        [Panel("rainbow", "n", "test error", xscale="linear", title=f"rainbow features, d = p = {d}, λ_c = {lam_c:g}")],
        series, parameters={"d": d, "gammas": gammas, "lambda_c_sum_loss": lam_c, "lambda_ours": "λ_c / n",
                            "lambda_convention": "paper/anchor code: sum loss on raw features, λ = λ_c / n",
                            "moment_samples": n_cov, "n_test": n_test, "ns_simulated": ns_sim.tolist()},
        title="Deep rainbow random features (theory from moments estimated on fresh samples)")
