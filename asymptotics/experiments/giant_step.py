"""Two-layer networks after giant gradient steps: the paper's figures, theory next to Algorithm 1.

Theory: :mod:`asymptotics.giant_step` (Hermite analysis of the target, plateau errors, the
staircase of learned directions, the one-step cosine) and :mod:`asymptotics.spiked_rf` (exact
ridge error after one step). Simulation: :func:`simulations.giant_step.giant_step_task`.

λ conventions: the paper's ridge is argmin ‖y − Xw/√p‖² + λ_P‖w‖² on X = σ(ZWᵀ); this project's
mean-loss λ on F = σ(ZWᵀ) is λ = λ_P · p / n_ridge. The experiments state λ_P (as the paper) and
convert here, with :func:`asymptotics.conventions.lam_from_scaled_features`; simulator and theory
take the project's λ only. Learning rates are η = η̃ p ("const", η̃ = c), η = c p √(n/d) ("sqrt")
or η = c √(n p) ("notebook"). Equations: ``docs/theory/giant_step.md``.
"""
from __future__ import annotations

import math

import numpy as np

from simulations.giant_step import GiantStepSpec, giant_step_task

from ..compare import Panel, Series
from ..conventions import CONVENTIONS, lam_from_scaled_features
from ..giant_step import MultiIndexTarget, one_step_cosine
from ..verdict import Check, bound_check, power_law_fit, sign_check, z_check
from . import ExperimentOutput, Size, InputError, Sweeper, register

LAMBDA_CONVENTION = CONVENTIONS["scaled_features"]


def _spec(*, lam_paper: float, **fields) -> GiantStepSpec:
    """The simulator's spec of one point, the paper's λ_P converted to the project's λ = λ_P p/n_ridge."""
    n_ridge = fields.get("n_ridge") or fields["n"]
    return GiantStepSpec(lam=lam_from_scaled_features(lam_paper, fields["p"], n_ridge), **fields)


def _plateaus(name: str) -> dict:
    """Var y, the linear-kernel error and the plateau after each staircase step (docs/theory/giant_step.md)."""
    t = MultiIndexTarget(name)
    out = {"Var y": t.variance(), "linear kernel": t.plateau_error(None)}
    dim = -1
    for i, U in enumerate(t.staircase(2, tol=0.02), start=1):
        if U.shape[0] > dim:  # a step that learns nothing new has the previous plateau
            dim = U.shape[0]
            value = t.plateau_error(U)
            out[f"plateau after {i} step{'s' if i > 1 else ''} (dim {dim})"] = 0.0 if abs(value) < 1e-12 else value
    return out


def _hlines(panel: str, x, levels: dict, styles=(":", "--", "-.", (0, (1, 3)))) -> list[Series]:
    xs = np.array([min(x), max(x)], dtype=float)
    return [Series(panel=panel, name=f"{name} = {value:.4g}", theory_x=xs, theory_y=np.full(2, value),
                   style={"ls": styles[i % len(styles)], "color": "k" if i == 1 else "grey", "lw": 1.0})
            for i, (name, value) in enumerate(levels.items())]


# ----------------------------------------------------------------------------- stairway (Fig. 1)
@register("giant-step-stairway", "Fig. 1: test error vs κ = log n / log d after T = 0 (random features) … "
          "giant steps, targets T1 and T2, with the linear-kernel and staircase plateaus", quick_seeds=4,
          full_seeds=10, medium_seeds=6)
def stairway(size: Size, sweep: Sweeper) -> ExperimentOutput:
    s = size.pick(quick=dict(d=64, p=128, kappas=np.arange(0.75, 2.0001, 0.125), steps=[0, 1, 2, 3], n_test=10_000),
                  medium=dict(d=128, p=256, kappas=np.arange(0.75, 2.0001, 0.125), steps=[0, 1, 2, 3],
                              n_test=20_000),
                  full=dict(d=512, p=1024, kappas=np.arange(0.25, 2.2501, 0.1), steps=[0, 1, 2, 3, 4, 5, 6],
                            n_test=100_000))
    d, p = s["d"], s["p"]
    ns = np.unique(np.floor(float(d) ** s["kappas"]).astype(int))
    kap = np.log(ns) / math.log(d)
    common = dict(activation="relu", d=d, p=p, eta="sqrt", eta_c=1.0, lam_paper=1.0, n_test=s["n_test"],
                  a_init="gauss")
    panels, series, notes = [], [], {}
    for name, ylim in (("T1", (0.0, 0.85)), ("T2", (0.0, 1.65))):
        panels.append(Panel(name, "κ = log n / log d", "test error", xscale="linear", yscale="linear",
                            ylim=ylim, title=f"target {name}, ReLU, d = {d}, p = {p}"))
        specs = [_spec(**common, target=name, n=int(n), steps=T) for T in s["steps"] for n in ns]
        # paired replicas: the curves T = 0, 1, 2, … at one n share teacher, initialisation and
        # batches, so that the comparisons between numbers of steps are not drowned in seed noise
        err = sweep.stack(giant_step_task, specs, "test_error", paired=("steps",))
        mean, std = (a.reshape(len(s["steps"]), len(ns)) for a in (err.mean, err.std))
        for i, T in enumerate(s["steps"]):
            series.append(Series(panel=name, name="random features (T = 0)" if T == 0 else f"T = {T}",
                                 sim_x=kap, sim_mean=mean[i], sim_std=std[i], n_seeds=err.n,
                                 style={"marker": "s" if T == 0 else "o"}))
        levels = _plateaus(name)
        series += _hlines(name, kap, levels)
        notes[name] = {
            "plateaus": levels,
            "T=1 below random features at every n": bool(np.all(mean[1] < mean[0])),
            "error at largest n": {("RF" if T == 0 else f"T={T}"): float(mean[i, -1]) for i, T in enumerate(s["steps"])},
            "best T at largest n": int(s["steps"][int(np.argmin(mean[:, -1]))]),
        }
    checks = _stairway_convergence(size, sweep, panels, series, notes)
    return ExperimentOutput(panels, series, title="Giant steps: the staircase (ReLU, η = p√(n/d), λ_P = 1)",
                            parameters={**{k: v for k, v in s.items() if k != "kappas"}, "ns": ns.tolist(),
                                        "kappas": kap.tolist(), "activation": "relu", "a_init": "gauss",
                                        "eta_rule": "sqrt (η = p √(n/d)); the paper's value is not recoverable "
                                                    "(docs/theory/giant_step.md)",
                                        "lam_paper": 1.0, "lambda_convention": LAMBDA_CONVENTION,
                                        "convergence": STAIRWAY_CONVERGENCE[str(size)]},
                            notes=notes, checks=checks)


#: The stairway's approach to the plateaus: n = d^κ at one κ between 1 and 2 (n/d → ∞, so the
#: error after T steps tends to the plateau of the subspace learned in T steps), p = 2d, d on a grid.
STAIRWAY_CONVERGENCE = {"quick": dict(ds=[32, 45, 64, 90, 128], kappa=1.5, steps=[1, 2], n_test=10_000),
                        "medium": dict(ds=[64, 91, 128, 181, 256], kappa=1.5, steps=[1, 2], n_test=20_000),
                        "full": dict(ds=[64, 91, 128, 181, 256, 362, 512], kappa=1.5, steps=[1, 2], n_test=50_000)}


def _stairway_convergence(size: Size, sweep: Sweeper, panels: list, series: list, notes: dict) -> list:
    """Per (target, T): the gap (error − plateau after T steps) at n = d^κ for several d, its
    power-law exponent in d (95 % interval) and the check that the exponent is negative."""
    c = STAIRWAY_CONVERGENCE[str(size)]
    ds = np.asarray(c["ds"], dtype=float)
    panel = f"gap to the plateau at n = d^{c['kappa']:g}"
    panels.append(Panel(panel, "d", "test error − plateau", xscale="log", yscale="log",
                        title=f"approach to the plateaus, ReLU, p = 2d, n = d^{c['kappa']:g}"))
    checks = []
    for name in ("T1", "T2"):
        t = MultiIndexTarget(name)
        stair = t.staircase(max(c["steps"]), tol=0.02)
        specs = [_spec(target=name, activation="relu", d=int(d), p=2 * int(d), n=int(round(d ** c["kappa"])),
                       steps=T, eta="sqrt", eta_c=1.0, lam_paper=1.0, n_test=c["n_test"], a_init="gauss")
                 for T in c["steps"] for d in ds]
        err = sweep.stack(giant_step_task, specs, "test_error")
        mean, sem = (a.reshape(len(c["steps"]), len(ds)) for a in (err.mean, err.sem))
        for i, T in enumerate(c["steps"]):
            plateau = float(t.plateau_error(stair[T - 1]))
            plateau = 0.0 if abs(plateau) < 1e-12 else plateau
            gap = mean[i] - plateau
            label = f"{name}, T = {T} (plateau {plateau:.4g})"
            rec = {"d": ds.tolist(), "n": [int(round(d ** c["kappa"])) for d in ds], "plateau": plateau,
                   "gap": gap.tolist(), "se": sem[i].tolist()}
            if np.all(gap > 0):
                fit = power_law_fit(ds, gap, sem[i])
                rec.update(exponent=fit.exponent, exponent_se=fit.se, interval=list(fit.interval))
                checks.append(sign_check(f"{label}: gap decays with d", fit.exponent, fit.se, fit.interval,
                                         negative=True, prediction="exponent of the gap in d < 0"))
                series.append(Series(panel=panel, name=label, sim_x=ds, sim_mean=gap, sim_std=sem[i] * math.sqrt(err.n),
                                     n_seeds=err.n, style={"marker": "o", "color": f"C{len(checks) - 1}"}))
                series.append(Series(panel=panel, name=f"fit ∝ d^{fit.exponent:.2f}", theory_x=ds,
                                     theory_y=fit.prefactor * ds ** fit.exponent,
                                     style={"ls": "--", "lw": 1.0, "color": f"C{len(checks) - 1}"}))
            else:  # the error is at or below the plateau somewhere: no power law to fit
                checks.append(Check(f"{label}: gap decays with d", "sign", "exponent of the gap in d < 0", False,
                                    predicted=0.0, measured=float(np.min(gap)),
                                    tolerance="needs a positive gap at every d (measured: the minimum gap)"))
            notes.setdefault("approach to the plateaus", {})[label] = rec
    return checks


# ----------------------------------------------------------------------------- one-step cosine
def _cos_finite_d(cos: np.ndarray, k: int, d: int) -> np.ndarray:
    """The d → ∞ cosine with the random initial overlap added: |P*w|² gains (k/d)(|w|² − signal²),
    so cos_d² = cos² + (k/d)(1 − cos²)."""
    return np.sqrt(cos ** 2 + (k / d) * (1.0 - cos ** 2))


@register("giant-step-cosine", "One giant step: cosine of the first-layer rows with span(W*) vs α = n/d, "
          "theory (one-step cosine) vs simulation, for several η̃", quick_seeds=4, full_seeds=10, medium_seeds=6)
def cosine(size: Size, sweep: Sweeper) -> ExperimentOutput:
    s = size.pick(quick=dict(d=400, p=200, alphas=[0.5, 1.0, 2.0, 4.0, 8.0], n_test=1000),
                  medium=dict(d=1000, p=400, alphas=np.geomspace(0.25, 16, 7).round(4).tolist(), n_test=1000),
                  full=dict(d=1000, p=400, alphas=np.geomspace(0.25, 16, 13).round(4).tolist(), n_test=1000))
    d, p = s["d"], s["p"]
    alphas = np.asarray(s["alphas"], dtype=float)
    etas = [1.0, 5.0]
    targets = {"T1": "T1", "T3 (E y ≠ 0)": "T3", "tanh(h1)": "tanh(h1)"}
    a_grid = np.geomspace(alphas.min(), alphas.max(), 200)
    panels, series = [], []
    for panel, tname in targets.items():
        panels.append(Panel(panel, "α = n/d", "mean cosine with span(W*)", yscale="linear", ylim=(0, 1),
                            title=f"{panel}: ReLU, a = ±1/√p, unit rows, d = {d}, p = {p}"))
        target = MultiIndexTarget(tname)
        for j, eta_t in enumerate(etas):
            specs = [_spec(target=tname, activation="relu", d=d, p=p, n=int(round(a * d)), steps=1, eta=eta_t * p,
                           lam_paper=1.0, n_test=s["n_test"], a_init="pm1", w_init="sphere") for a in alphas]
            cos = sweep.stack(giant_step_task, specs, "mean_cosine")
            mean, std = cos.mean[:, 1], cos.std[:, 1]
            k = target.k
            th = one_step_cosine("relu", target, a_grid, eta_t)
            th_at = _cos_finite_d(one_step_cosine("relu", target, alphas, eta_t), k, d)
            series.append(Series(panel=panel, name=f"η̃ = {eta_t:g}", theory_x=a_grid,
                                 theory_y=_cos_finite_d(th, k, d), sim_x=alphas, sim_mean=mean, sim_std=std,
                                 n_seeds=cos.n, theory_at_sim=th_at, style={"color": f"C{j}"}))
            series.append(Series(panel=panel, name=f"η̃ = {eta_t:g}, d → ∞", theory_x=a_grid, theory_y=th,
                                 style={"ls": ":", "lw": 1.0, "color": f"C{j}"}))
    return ExperimentOutput(panels, series, title="One giant step: alignment with the target subspace",
                            parameters={**s, "eta_tilde": etas, "eta": "η = η̃ p", "activation": "relu",
                                        "a_init": "pm1", "w_init": "sphere",
                                        "theory": "one-step cosine with the E[y]μ2 term (docs/theory/giant_step.md); "
                                                  "finite-d line adds the random initial overlap, "
                                                  "cos² + (k/d)(1 − cos²)"})


# ----------------------------------------------------------------------------- orientation (multi-step)
def _off_line(xy: np.ndarray, direction: np.ndarray) -> float:
    """Mean |sin| of the angle between the in-plane vectors and the line along ``direction``."""
    u = direction / np.linalg.norm(direction)
    cross = np.abs(xy[:, 0] * u[1] - xy[:, 1] * u[0])
    return float(np.mean(cross / np.maximum(np.linalg.norm(xy, axis=1), 1e-300)))


#: Null of the off-line statistic R = mean_j d·perp_j²/(1 − cos_j²) (the squared component of the
#: normalised gradient row j perpendicular to the predicted line, in units of the isotropic noise
#: of one coordinate): the gradient's noise is μ1(ĉ − v*) (common to all rows) + b_j (per row),
#: with variances μ1² E y²/α and Var σ′ E y²/α, equal for ReLU (¼ and ¼; docs/theory/giant_step.md
#: §3), so R ≈ ½ + ½ χ²₁ (the per-row half averages out over p rows, the common half does not).
#: Its 99 % quantile, fixed before any run:
ORIENTATION_R_MAX = 0.5 + 0.5 * 6.634896601021214


def _off_line_ratio(G: np.ndarray, direction: np.ndarray, d: int) -> float:
    """R = mean_j d·perp_j²/(1 − cos_j²) for normalised gradient rows G (p, k) (:data:`ORIENTATION_R_MAX`)."""
    u = direction / np.linalg.norm(direction)
    perp = G[:, 0] * u[1] - G[:, 1] * u[0]
    cos2 = np.sum(G ** 2, axis=1)
    return float(np.mean(d * perp ** 2 / np.maximum(1.0 - cos2, 1e-12)))


def _circle(panel: str, name: str, radius: float, style: dict) -> Series:
    t = np.linspace(0.0, 2 * np.pi, 241)
    return Series(panel=panel, name=name, theory_x=radius * np.cos(t), theory_y=radius * np.sin(t), style=style)


@register("giant-step-orientation", "Multi-step orientation: gradient rows of tracked neurons projected on "
          "(θ1, θ2) after steps 1 and 2, with the unit and noise circles; T2 leaves the one-step line "
          "(staircase), T1 and T3 stay on it up to the finite-d noise", quick_seeds=1, full_seeds=1)
def orientation(size: Size, sweep: Sweeper) -> ExperimentOutput:
    if sweep.seeds != 1:
        raise InputError("giant-step-orientation plots the neurons of one network: --seeds must be 1")
    # medium = full: one network per target, a few seconds at d = 4096
    s = size.pick(quick=dict(d=1024, p=256, n=1024), medium=dict(d=4096, p=1024, n=4096),
                  full=dict(d=4096, p=1024, n=4096))
    d, p = s["d"], s["p"]
    forced = 20
    noise_radius = math.sqrt(2.0 / d)
    panels, series, notes, checks = [], [], {}, []
    for tname in ("T1", "T2", "T3"):
        target = MultiIndexTarget(tname)
        c1 = np.asarray(target.first_order(), dtype=float)
        dims = [U.shape[0] for U in target.staircase(2, tol=0.02)]
        specs = [_spec(target=tname, activation="relu", d=d, p=p, n=s["n"], steps=2, eta="const", eta_c=2.0,
                       lam_paper=1.0, n_test=1000, a_init="pm1", forced_signs=forced, rows=True)]
        res = sweep(giant_step_task, specs, seeds=1)[0][0]
        G = np.asarray(res["gradient_overlaps"])  # (steps, p, k)
        notes[tname] = {"staircase dimensions after steps 1, 2 (leap rule, tol 0.02)": dims,
                        "one-step line slope C1_2/C1_1": float(c1[1] / c1[0])}
        for step in (1, 2):
            panel = f"{tname}, step {step}"
            panels.append(Panel(panel, "cos(G_j, θ1)", "cos(G_j, θ2)", xscale="linear", yscale="linear",
                                ylim=(-1.05, 1.05), title=f"{panel} (learned dim. {dims[step - 1]})"))
            xs = np.linspace(-1.0, 1.0, 3)
            series.append(Series(panel=panel, name=f"theory line, slope {c1[1] / c1[0]:.3g}", theory_x=xs,
                                 theory_y=xs * c1[1] / c1[0], style={"color": "k", "lw": 1.0}))
            series.append(_circle(panel, "unit circle", 1.0, {"color": "grey", "lw": 0.8}))
            series.append(_circle(panel, f"noise circle √(2/d) = {noise_radius:.3f}", noise_radius,
                                  {"color": "grey", "lw": 0.8, "ls": "--"}))
            for label, rows in (("a > 0", slice(0, forced)), ("a < 0", slice(forced, 2 * forced))):
                xy = G[step - 1, rows, :2]
                series.append(Series(panel=panel, name=label, sim_x=xy[:, 0], sim_mean=xy[:, 1],
                                     sim_std=np.zeros(len(xy)), n_seeds=1,
                                     style={"marker": "o" if label == "a > 0" else "^"}))
                notes[tname][f"step {step}, {label}: mean |sin| off the line"] = _off_line(xy, c1)
                notes[tname][f"step {step}, {label}: mean (cos θ1, cos θ2)"] = xy.mean(axis=0).tolist()
            rows_all = G[step - 1]
            sin_all = _off_line(rows_all[:, :2], c1)
            r_in = np.linalg.norm(rows_all[:, :2], axis=1)
            noise_sin = float(np.mean(math.sqrt(2 / math.pi) * np.sqrt((1 - np.sum(rows_all ** 2, axis=1)) / d)
                                      / np.maximum(r_in, 1e-300)))
            ratio = _off_line_ratio(rows_all, c1, d)
            notes[tname][f"step {step}: mean |sin| off the line (all neurons)"] = sin_all
            notes[tname][f"step {step}: mean |sin| of isotropic finite-d noise alone"] = noise_sin
            notes[tname][f"step {step}: off-line ratio R"] = ratio
            leaves = tname == "T2" and step == 2
            checks.append(Check(
                f"{tname}, step {step}: gradient rows {'leave' if leaves else 'stay on'} the one-step line",
                "above" if leaves else "below",
                ("off the line: R = mean d·perp²/(1 − cos²) above " if leaves else
                 "on the line up to finite-d noise: R = mean d·perp²/(1 − cos²) at most ")
                + f"{ORIENTATION_R_MAX:.2f} (mean |sin| {sin_all:.3f}, noise alone {noise_sin:.3f})",
                bool(ratio > ORIENTATION_R_MAX) if leaves else bool(ratio <= ORIENTATION_R_MAX),
                predicted=ORIENTATION_R_MAX, measured=ratio,
                tolerance="99 % quantile of ½ + ½χ²₁ (common + per-row gradient noise, ReLU)"))
    return ExperimentOutput(panels, series, title="Gradient rows in the target plane (ReLU, η = 2p, a = ±1/√p)",
                            parameters={**s, "steps": 2, "eta": "2p", "a_init": "pm1", "forced_signs": forced,
                                        "activation": "relu", "noise circle radius": noise_radius,
                                        "off-line ratio bound": ORIENTATION_R_MAX}, notes=notes, checks=checks)


# ----------------------------------------------------------------------------- single step + preprocessing
#: The bound checks' margin below the one-direction plateau, fixed before any run: one-sided 95 %.
SPECIALISATION_MARGIN = 1.645

#: Reference simulations by an independent numpy implementation of the paper's notebook setting
#: (d = 64, p = 128, λ_P = 1, η = 10√(np), fresh readout batch, n_test = 2·10⁴, 10 seeds):
#: {case: {n: (mean, std)}}.
REFERENCE_D64 = {
    "random features": {256: (0.5219, 0.0358), 1024: (0.4134, 0.0232)},
    "one step": {256: (0.3252, 0.0175), 1024: (0.2222, 0.0127), 4096: (0.1941, 0.0116)},
    "one step, preprocessed": {4096: (0.1400, 0.0102)},
}


@register("giant-step-preprocessing", "One giant step with the first Hermite component removed "
          "(single_step.ipynb): T1 test error vs κ, towards the v*-only plateau and below it at n ~ d²",
          quick_seeds=5, full_seeds=10, medium_seeds=8)
def preprocessing(size: Size, sweep: Sweeper) -> ExperimentOutput:
    # the reference points of the independent implementation exist at d = 64 (quick) only
    s = size.pick(quick=dict(d=64, p=128, count=8, n_test=20_000), medium=dict(d=128, p=256, count=10, n_test=50_000),
                  full=dict(d=512, p=1024, count=15, n_test=100_000))
    d, p = s["d"], s["p"]
    ns = np.floor(np.logspace(1.3, 2.0, s["count"], base=d)).astype(int)
    if d == 64:  # the reference points
        ns = np.concatenate([ns, [256, 1024]])
    ns = np.unique(ns)
    kap = np.log(ns) / math.log(d)
    common = dict(target="T1", activation="relu", d=d, p=p, eta="notebook", eta_c=10.0, lam_paper=1.0,
                  n_test=s["n_test"], a_init="gauss")
    cases = {"random features": dict(steps=0), "one step": dict(steps=1),
             "one step, preprocessed": dict(steps=1, preprocess=True)}
    panel = "T1"
    panels = [Panel(panel, "κ = log n / log d", "test error", xscale="linear", yscale="linear", ylim=(0, 0.8),
                    title=f"T1, ReLU, d = {d}, p = {p}, η = 10√(np), λ_P = 1")]
    series, means, checks, verdicts, sems = [], {}, {}, [], {}
    for name, extra in cases.items():
        err = sweep.stack(giant_step_task, [_spec(**common, n=int(n), **extra) for n in ns], "test_error")
        mean, std = err.mean, err.std
        means[name] = mean
        series.append(Series(panel=panel, name=name, sim_x=kap, sim_mean=mean, sim_std=std, n_seeds=err.n))
        for n, (ref, ref_std) in (REFERENCE_D64[name].items() if d == 64 else ()):
            i = int(np.searchsorted(ns, n))
            se = math.hypot(err.sem[i], ref_std / math.sqrt(10))
            checks[f"{name}, n = {n}"] = {"ours": float(mean[i]), "reference": ref, "z": float((mean[i] - ref) / se)}
            verdicts.append(z_check(f"{name}, n = {n}: reference run", ref, float(mean[i]), se,
                                    prediction=f"the independent implementation's {ref:.4f} (10 seeds)"))
        sems[name] = err.sem
    if checks:
        pts = [(k.split(", n = ")[0], int(k.split(", n = ")[1]), v) for k, v in checks.items()]
        series.append(Series(panel=panel, name="reference runs (10 seeds)",
                             sim_x=np.log([n for _, n, _ in pts]) / math.log(d),
                             sim_mean=np.array([v["reference"] for *_, v in pts]),
                             sim_std=np.array([REFERENCE_D64[c][n][1] for c, n, _ in pts]), n_seeds=10,
                             style={"marker": "x", "color": "k"}))
    levels = _plateaus("T1")
    series += _hlines(panel, kap, {k: levels[k] for k in ("linear kernel", "plateau after 1 step (dim 1)")})
    prep = means["one step, preprocessed"]
    notes = {"plateaus": levels,
             "preprocessed error at n = d²": float(prep[-1]),
             "below the v*-only plateau at n = d²": bool(prep[-1] < levels["plateau after 1 step (dim 1)"]),
             "preprocessing helps at the largest n": bool(prep[-1] < means["one step"][-1]),
             "reference checks (z with both standard errors)": checks}
    plateau = levels["plateau after 1 step (dim 1)"]
    verdicts.append(bound_check(f"preprocessed, n = {ns[-1]} = d^{kap[-1]:.2f}: below the one-direction plateau",
                                float(prep[-1]), float(sems["one step, preprocessed"][-1]), plateau, side="below",
                                margin=SPECIALISATION_MARGIN,
                                prediction=f"the paper's claim: below {plateau:.4f} at n ~ d² "
                                           "(at d = 64 a finite-size question: giant-step-specialisation)"))
    return ExperimentOutput(panels, series, title="One giant step with preprocessing (clean mode: fresh readout "
                            "batch, train-only linear part)",
                            parameters={**s, "ns": ns.tolist(), "kappas": kap.tolist(), "eta": "10 √(n p)",
                                        "lam_paper": 1.0, "reuse_batch": False,
                                        "lambda_convention": LAMBDA_CONVENTION}, notes=notes, checks=verdicts)


#: Old name of :data:`REFERENCE_D64`.
SPEC_REFERENCE_D64 = REFERENCE_D64


# ----------------------------------------------------------------------------- exact one-step asymptotics
@register("giant-step-spiked-rf", "Exact ridge error after one giant step (spiked random features, companion "
          "paper): test error vs α = n/d, theory vs Algorithm 1, with and without the step", quick_seeds=4,
          full_seeds=3, medium_seeds=4)
def spiked_rf(size: Size, sweep: Sweeper) -> ExperimentOutput:
    from ..spiked_rf import one_step_ridge_error

    # full: the companion's simulations (d = p = 2000, 3 seeds, n_test = 5000); medium: its cases
    # and λ_P at d = p = 600
    s = size.pick(quick=dict(d=300, alphas=[0.25, 0.5, 1.0, 1.5, 2.0, 3.0], cases=[(0.0, 0.0), (2.0, 2.0)],
                             lam_paper=0.1, n_test=5000),
                  medium=dict(d=600, alphas=np.round(np.linspace(0.2, 3.0, 8), 3).tolist(),
                              cases=[(0.0, 0.0), (0.5, 1.0), (20.0, 1.0), (20.0, 3.0)], lam_paper=0.01, n_test=5000),
                  full=dict(d=2000, alphas=np.round(np.linspace(0.2, 3.0, 8), 3).tolist(),
                            cases=[(0.0, 0.0), (0.5, 1.0), (20.0, 1.0), (20.0, 3.0)], lam_paper=0.01, n_test=5000))
    d = p = s["d"]
    alphas = np.asarray(s["alphas"], dtype=float)
    grid = np.linspace(alphas.min(), alphas.max(), 60)
    panel = "tanh"
    panels = [Panel(panel, "α = n/d (readout samples)", "test error", xscale="linear", yscale="log",
                    title=f"σ = σ* = tanh, d = p = {d}, λ_P = {s['lam_paper']:g}, a = 1/√p, unit rows")]
    series, notes = [], {}
    for j, (a0, eta_t) in enumerate(s["cases"]):
        name = "no step (random features)" if a0 == 0 else f"α0 = {a0:g}, η̃ = {eta_t:g}"
        # λ_P constant along the grid: λ = λ_P p/n = λ_P (p/d)/α
        th = one_step_ridge_error("tanh", "tanh", a0, eta_t, grid, lam=lam_from_scaled_features(
            s["lam_paper"], p / d, grid), spectrum="mp")
        at = one_step_ridge_error("tanh", "tanh", a0, eta_t, alphas, lam=lam_from_scaled_features(
            s["lam_paper"], p / d, alphas), spectrum="mp")
        specs = [_spec(target="tanh(h1)", activation="tanh", d=d, p=p, n=int(round(a0 * d)) if a0 else
                       int(round(a * d)), n_ridge=int(round(a * d)), steps=1 if a0 else 0,
                       eta=eta_t * p if a0 else None, lam_paper=s["lam_paper"], n_test=s["n_test"],
                       a_init="ones", w_init="sphere") for a in alphas]
        err = sweep.stack(giant_step_task, specs, "test_error")
        # a fixed point that did not converge has no theory value: drawn as a gap, excluded from
        # the agreement (counted in n_excluded) and listed in the notes
        series.append(Series(panel=panel, name=name, theory_x=grid,
                             theory_y=np.where(th.converged, th.test_error, np.nan), sim_x=alphas, sim_mean=err.mean, sim_std=err.std, n_seeds=err.n,
                             theory_at_sim=np.where(at.converged, at.test_error, np.nan), style={"color": f"C{j}"}))
        notes[name] = {"c": at.c, "r": at.r, "gamma": at.gamma, "all converged": bool(np.all(at.converged)),
                       "theory not converged at α": [float(a) for a in grid[~np.asarray(th.converged)]]}
    return ExperimentOutput(panels, series, title="One giant step, exact asymptotics (spiked random features)",
                            parameters={**s, "p": p, "theory": "asymptotics.spiked_rf, Marchenko–Pastur spectrum",
                                        "lambda_convention": LAMBDA_CONVENTION}, notes=notes)


# ----------------------------------------------------------------------------- specialisation at n ~ d²
@register("giant-step-specialisation", "One giant step with preprocessing at n = c·d²: T1 test error vs d "
          "for three c, below the one-direction plateau 55/384 ≈ 0.1432 and falling with d (leap 2 at n ~ d²)",
          quick_seeds=3, full_seeds=5, medium_seeds=8)
def specialisation(size: Size, sweep: Sweeper) -> ExperimentOutput:
    """single_step.ipynb's setting (T1, ReLU, p = 2d, η = 10√(np), λ_P = 1, preprocessing, fresh
    readout batch of n samples), float32, at n = c d² for c ∈ {0.5, 1, 2}.

    Checks (tolerances fixed in advance): for every c, at the largest d the mean error is below the
    plateau 55/384 by more than 1.645 standard errors over seeds (one-sided 95 %), and the error at
    the largest d is below the one at the second largest by more than 1.645 standard errors of the
    difference (independent seeds)."""
    s = size.pick(quick=dict(ds=[64, 128, 256], cs=[0.5, 1.0, 2.0], n_test=10_000),
                  medium=dict(ds=[64, 128, 256], cs=[0.5, 1.0, 2.0], n_test=20_000),
                  full=dict(ds=[64, 128, 256, 512], cs=[0.5, 1.0, 2.0], n_test=50_000))
    ds, cs = s["ds"], s["cs"]
    plateau = _plateaus("T1")["plateau after 1 step (dim 1)"]
    panel = "T1"
    panels = [Panel(panel, "d", "test error", xscale="log", yscale="linear",
                    title="T1, ReLU, p = 2d, η = 10√(np), λ_P = 1, preprocessed, n = c·d²")]
    series, checks, notes = [], [], {"plateau after 1 step (dim 1)": plateau}
    for j, c in enumerate(cs):
        specs = [_spec(target="T1", activation="relu", d=d, p=2 * d, n=int(round(c * d * d)), steps=1,
                       eta="notebook", eta_c=10.0, lam_paper=1.0, n_test=s["n_test"], a_init="gauss",
                       preprocess=True, dtype="float32") for d in ds]
        err = sweep.stack(giant_step_task, specs, "test_error")
        mean, sem = err.mean, err.sem
        series.append(Series(panel=panel, name=f"n = {c:g}·d²", sim_x=np.asarray(ds, dtype=float), sim_mean=mean,
                             sim_std=err.std, n_seeds=err.n, style={"marker": "o", "color": f"C{j}"}))
        checks.append(bound_check(f"n = {c:g} d², d = {ds[-1]}: below the one-direction plateau", float(mean[-1]),
                                  float(sem[-1]), plateau, side="below", margin=SPECIALISATION_MARGIN,
                                  prediction=f"below {plateau:.4f} (both directions learned)"))
        diff, se_diff = float(mean[-1] - mean[-2]), float(math.hypot(sem[-1], sem[-2]))
        checks.append(bound_check(f"n = {c:g} d²: error falls from d = {ds[-2]} to d = {ds[-1]}", diff, se_diff, 0.0,
                                  side="below", margin=SPECIALISATION_MARGIN,
                                  prediction="difference < 0"))
        notes[f"n = {c:g} d²"] = {"d": list(ds), "mean": mean.tolist(), "se": sem.tolist()}
    series += _hlines(panel, ds, {"plateau after 1 step (dim 1)": plateau})
    return ExperimentOutput(panels, series, title="One giant step at n ∝ d²: specialisation to both directions of T1",
                            parameters={**s, "p": "2d", "eta": "10 √(n p)", "lam_paper": 1.0, "preprocess": True,
                                        "n_ridge": "n (fresh batch)", "dtype": "float32", "target": "T1",
                                        "margin (standard errors)": SPECIALISATION_MARGIN,
                                        "lambda_convention": LAMBDA_CONVENTION},
                            notes=notes, checks=checks)


# ----------------------------------------------------------------------------- hard (leap-2) direction
def _hard_direction(name: str) -> np.ndarray:
    """Unit coefficients (in the θ basis) of the part of span(W*) not learned by one step at n ∝ d
    (the orthogonal complement of the staircase's first subspace; T1: (θ1 − θ2)/√2)."""
    t = MultiIndexTarget(name)
    U = t.staircase(1, tol=0.02)[0]
    P = np.eye(t.k) - U.T @ U
    vals, vecs = np.linalg.eigh(P)
    return vecs[:, -1]


@register("giant-step-hard-direction", "One preprocessed giant step on T1: overlap of the first-layer rows with "
          "the leap-2 direction (θ1 − θ2)/√2 at n = 4d (random level, not learned) vs n = d² (learned), vs d",
          quick_seeds=3, full_seeds=5, medium_seeds=6)
def hard_direction(size: Size, sweep: Sweeper) -> ExperimentOutput:
    """Statistic Q = d · mean_j (ŵ_j·u_hard)² over the p rows after the step (ŵ_j = w_j/|w_j|): 1 for
    rows with no overlap beyond the random one (E (ŵ·u)² = 1/d), ∝ d for rows that learned u_hard.
    The staircase (asymptotics.giant_step, leap rule) says one step at n = Θ(d) learns only v*; at
    n ~ d² the He2 part of T1 is reached (preprocessing removes the v* spike).

    Checks (fixed in advance): at n = 4d, Q consistent with 1 at every d (|z| ≤ 3, standard error over
    seeds); at n = d², Q above 1 by more than 1.645 standard errors at every d."""
    s = size.pick(quick=dict(ds=[32, 64, 128], n_test=2000), medium=dict(ds=[64, 128, 256], n_test=2000),
                  full=dict(ds=[64, 128, 256, 512], n_test=10_000))
    ds = np.asarray(s["ds"], dtype=float)
    u = _hard_direction("T1")
    sizes = {"n = 4d": lambda d: 4 * d, "n = d²": lambda d: d * d}
    panel = "T1"
    panels = [Panel(panel, "d", "d · mean_j cos²(w_j, u_hard)", xscale="log", yscale="log",
                    title="T1, ReLU, p = 2d, η = 10√(np), preprocessed, one step")]
    series, checks, notes = [], [], {"hard direction (θ coefficients)": u.tolist()}
    for j, (label, n_of) in enumerate(sizes.items()):
        specs = [_spec(target="T1", activation="relu", d=int(d), p=2 * int(d), n=int(n_of(int(d))), steps=1,
                       eta="notebook", eta_c=10.0, lam_paper=1.0, n_test=s["n_test"], a_init="gauss",
                       preprocess=True, dtype="float32", rows=True) for d in ds]
        res = sweep(giant_step_task, specs)
        Q = np.array([[d * float(np.mean((np.asarray(r["row_overlaps"])[1] @ u) ** 2)) for r in per_point]
                      for d, per_point in zip(ds, res)])  # (points, seeds)
        S = Q.shape[1]
        mean = Q.mean(axis=1)
        std = Q.std(axis=1, ddof=1) if S > 1 else np.zeros(len(ds))
        sem = std / math.sqrt(S)
        series.append(Series(panel=panel, name=label, sim_x=ds, sim_mean=mean, sim_std=std, n_seeds=S,
                             style={"marker": "o", "color": f"C{j}"}))
        notes[label] = {"d": ds.tolist(), "Q": mean.tolist(), "se": sem.tolist()}
        for d, m, e in zip(ds, mean, sem):
            if label == "n = 4d":
                checks.append(z_check(f"{label}, d = {int(d)}: hard direction not learned", 1.0, float(m), float(e),
                                      prediction="random level Q = 1"))
            else:
                checks.append(bound_check(f"{label}, d = {int(d)}: hard direction learned", float(m), float(e), 1.0,
                                          side="above", margin=SPECIALISATION_MARGIN,
                                          prediction="above the random level Q = 1"))
    series += _hlines(panel, ds, {"random level": 1.0})
    return ExperimentOutput(panels, series, title="The leap-2 direction of T1: not learned at n ∝ d, learned at n ∝ d²",
                            parameters={**s, "p": "2d", "eta": "10 √(n p)", "lam_paper": 1.0, "preprocess": True,
                                        "target": "T1", "sizes": list(sizes), "dtype": "float32",
                                        "statistic": "Q = d · mean_j (ŵ_j·u_hard)², random level 1",
                                        "lambda_convention": LAMBDA_CONVENTION},
                            notes=notes, checks=checks)
