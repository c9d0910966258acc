"""Trained features and real data: ridge on network snapshots, theory from plug-in moments.

Theory (``docs/theory/trained_features.md``): :class:`asymptotics.ridge.GaussianCovariateModel`
built from the centred moments Ω̂, b̂, E[y²] that :mod:`simulations.trained` estimates on the
covariance part of the data; for random features at initialisation also the closed-form
linearisation of :func:`asymptotics.deep.linearized_covariances`. Simulation: ridge on subsamples
of the regression part, test error on the test part (:func:`simulations.trained.mnist_even_odd_task`,
:func:`simulations.trained.synthetic_trained_task`, specs :class:`simulations.trained.TrainedSpec`,
:class:`simulations.trained.SyntheticTrainedSpec`).

λ: the paper's figures use the sum-loss λ_c (‖y − Fθ‖² + λ_c‖θ‖²); this project's mean-loss λ is
λ = λ_c / n, converted here, once, by :func:`asymptotics.conventions.lam_from_sum_loss` (the
simulator and the theory take the project's λ; the series keep the paper's λ_c in their names).

Error bars: one network is trained per experiment; a point's "seeds" (the CSV's n_seeds, y_err the
standard deviation) are the ``repeats`` ridge subsamples of the regression part. Every repeat is
evaluated on the same test part, so its test-set standard error is shared by all repeats and
enters the z-scores in quadrature (``Series.shared_se``).
"""
from __future__ import annotations

import numpy as np

from simulations.trained import (SyntheticTrainedSpec, TrainedSpec, load_dataset, mnist_even_odd_task,
                                 synthetic_trained_task)

from ..compare import Panel, SeedStack, Series
from ..conventions import lam_from_sum_loss
from ..deep import linearized_covariances
from ..ridge import GaussianCovariateModel
from ..verdict import Check, bound_check, pointwise_check, z_check
from . import ExperimentOutput, Size, InputError, Sweeper, expected_numerics, peak_ns, register

LAMBDA_CONVENTION = "paper λ_c (sum loss); project λ = λ_c / n"


def _lams(ns, lam_c) -> np.ndarray:
    """The project's λ (N, L) of the paper's sum-loss λ_c at the sizes ns: λ = λ_c/n."""
    return lam_from_sum_loss(np.asarray(lam_c, dtype=float)[None, :], np.asarray(ns, dtype=float)[:, None])


def _theory(omega, b, y2, ns, lam_c) -> np.ndarray:
    """Test error (N, L) of the plug-in model at sizes ns and λ = λ_c/n."""
    ns = np.asarray(ns, dtype=float)
    with expected_numerics():
        return GaussianCovariateModel(omega, b, y2).ridge(ns[:, None], _lams(ns, lam_c)).test_error


def _over_repeats(ev: dict, key: str) -> SeedStack:
    """``ev[key]`` (N, R, L) as a stack over the R ridge subsamples."""
    return SeedStack(np.moveaxis(np.asarray(ev[key], dtype=float), 1, 0))


def _curves(panel: str, ev: dict, ns, lam_c, n_theory) -> tuple[list[Series], dict]:
    th = _theory(ev["omega"], ev["b"], ev["y2"], n_theory, lam_c)
    at = _theory(ev["omega"], ev["b"], ev["y2"], ns, lam_c)
    half = _theory(ev["omega_half"], ev["b_half"], ev["y2_half"], ns, lam_c)
    err = _over_repeats(ev, "test_error")
    shared = _over_repeats(ev, "test_se").mean
    out = [Series(panel=panel, name=f"λ_c = {lc:g}", theory_x=n_theory, theory_y=th[:, j], sim_x=np.asarray(ns, float),
                  sim_mean=err.mean[:, j], sim_std=err.std[:, j], n_seeds=err.n, theory_at_sim=at[:, j],
                  shared_se=shared[:, j], style={"color": f"C{j}"})
           for j, lc in enumerate(lam_c)]
    info = {"max relative change of the theory with half of the covariance part": float(np.max(np.abs(half - at) / at))}
    return out, info


def _hline(panel: str, value: float, ns, name: str) -> Series:
    return Series(panel=panel, name=f"{name} = {value:.3g}", theory_x=np.array([min(ns), max(ns)], float),
                  theory_y=np.full(2, value), style={"color": "grey", "ls": "--", "lw": 1.0})


def _snapshot_panels(res: dict, ns, lam_c, title_prefix: str) -> tuple[list, list, dict]:
    n_theory = np.geomspace(min(ns), max(ns), 200)
    panels, series, notes = [], [], {}
    cases = [(f"epoch {s['epoch']:g}", s) for s in res["snapshots"]] + [("linear regression (raw inputs)", res["linear"])]
    for name, ev in cases:
        panels.append(Panel(name, "n", "test error", title=f"{title_prefix}: {name}"))
        curves, info = _curves(name, ev, ns, lam_c, n_theory)
        series += curves
        if "network_test_mse" in ev:
            series.append(_hline(name, ev["network_test_mse"], ns, "network's own test MSE"))
            info["network test MSE"] = ev["network_test_mse"]
        if "leverage_residual_ratio" in ev:
            info["leverage-residual ratio rho (1 for Gaussian covariates)"] = ev["leverage_residual_ratio"]
        notes[name] = info
    # theory only, one λ_c, colour = training time (the paper's panel b)
    lam_mid = lam_c[len(lam_c) // 2]
    panels.append(Panel("training time", "n", "test error", title=f"theory, λ_c = {lam_mid:g}, by training time"))
    for i, s in enumerate(res["snapshots"]):
        series.append(Series(panel="training time", name=f"epoch {s['epoch']:g}", theory_x=n_theory,
                             theory_y=_theory(s["omega"], s["b"], s["y2"], n_theory, [lam_mid])[:, 0],
                             style={"color": f"C{i}"}))
    return panels, series, notes


def _one_network(sweep: Sweeper, name: str) -> None:
    if sweep.seeds != 1:
        raise InputError(f"{name} trains one network (networks are trained once per experiment); its error "
                         "bars are over the ridge subsamples (`repeats`), so --seeds must be 1")


def _grid_with_peaks(lo: int, hi: int, count: int, peaks) -> list[int]:
    """Log-spaced sample sizes in [lo, hi] plus points on both sides (±5 %, ±10 %) of every
    interpolation peak n = p in ``peaks`` (the feature count; the input dimension for linear
    regression), never at the peak itself."""
    ns = set(np.round(np.geomspace(lo, hi, count)).astype(int).tolist())
    for p in peaks:
        ns -= {p}
        ns |= {int(n) for n in peak_ns(p) if lo <= n <= hi}
    return sorted(ns)


def _mnist_sizes(size: Size) -> dict:
    """quick and medium: scikit-learn's digits (1797 images of 8×8; widths 3 × 64 as 2352 = 3 × 784).
    The 719 covariance images bound the width (the plug-in bias grows as p/m), so medium keeps the
    width and adds training times (epochs 0.5 and 20, training to epoch 200), repeats and sample
    sizes. full: MNIST from --data (784 → 2352 → 2352 as the paper)."""
    common = dict(activation="relu", lr=1e-3, batch_size=128, lam_c=[0.1, 1.0, 10.0, 100.0])
    return common | size.pick(
        quick=dict(data="digits", widths=[192, 192], epochs=120, snapshots=[0, 1, 5, 120], repeats=20, n_count=10),
        medium=dict(data="digits", widths=[192, 192], epochs=200, snapshots=[0, 0.5, 1, 5, 20, 200], repeats=40,
                    n_count=14),
        full=dict(data=None, widths=[2352, 2352], epochs=120, snapshots=[0, 0.1, 1, 10, 120], repeats=20, n_count=10))


@register("mnist-even-odd", "Ridge on the features of a ReLU network trained with Adam (MNIST even/odd with --data; "
          "scikit-learn's digits at quick and medium size): theory from plug-in moments vs ridge on held-out data, "
          "at several training times", quick_seeds=1, full_seeds=1, medium_seeds=1)
def mnist_even_odd(size: Size, sweep: Sweeper, data: str | None = None) -> ExperimentOutput:
    _one_network(sweep, "mnist-even-odd")
    s = _mnist_sizes(size)
    if data is not None:
        s["data"] = str(data)
    if s["data"] is None:
        raise InputError("mnist-even-odd at full size needs --data PATH (a folder with the four MNIST IDX files, "
                         "or mnist.npz); --size quick and --size medium use scikit-learn's shipped digits")
    try:
        X, _ = load_dataset(s["data"])  # fail here, in one line, before any task starts
    except (FileNotFoundError, ValueError, ImportError) as exc:
        raise InputError(str(exc)) from None
    n_reg = int(round(0.25 * X.shape[0]))
    ns = _grid_with_peaks(10, n_reg // 2, s["n_count"], [s["widths"][-1], X.shape[1]])
    params = {k: v for k, v in s.items() if k != "n_count"} | {"ns": ns}
    spec = TrainedSpec(lams=_lams(ns, s["lam_c"]), **{k: v for k, v in params.items() if k != "lam_c"})
    res = sweep(mnist_even_odd_task, [spec], seeds=1)[0][0]
    panels, series, notes = _snapshot_panels(res, ns, s["lam_c"], "digits" if s["data"] == "digits" else "MNIST")
    notes["sizes of the parts"] = res["sizes"]
    notes["final training loss"] = float(res["loss_history"][-1]) if len(res["loss_history"]) else None
    return ExperimentOutput(panels, series, title="Trained features, even/odd: plug-in theory vs ridge",
                            parameters={**params, "lambda_convention": LAMBDA_CONVENTION,
                                        "split": "10% test / 25% adam / 25% regression / 40% covariance"},
                            notes=notes)


#: The synthetic teachers: "sign" (default) y = sign(w·x), a single index with a strong non-linear
#: part (the best linear predictor leaves 1 − 2/π ≈ 36 % of E y²), which a trained first layer can
#: align to; "tanh" the reconstruction of earlier releases, y = θᵀtanh(W* x)/√k with k = d, nearly
#: linear (its non-linear part is ≈ 7 % of E y²).
SYNTHETIC_TEACHERS = ("sign", "tanh")


def _synthetic_sizes(size: Size, teacher: str) -> dict:
    if teacher == "tanh":  # earlier releases' teacher and full-batch protocol (n_adam = 1400 as the paper)
        net = dict(k=64, teacher="tanh", teacher_readout="gauss", epochs=1000, lr=3e-4, batch_size=None,
                   n_adam=1400, snapshots=[0, 100, 1000])
        return dict(d=64, widths=[256, 256], activation="tanh", init="gauss", weight_decay=1e-3, n_test=100_000,
                    lam_c=[0.1, 10.0], repeats=size.pick(10, 20, 20), n_max=2000, n_count=8) | net
    common = dict(k=1, teacher="sign", teacher_readout="ones", activation="tanh", init="gauss", lr=1e-3,
                  batch_size=128, weight_decay=1e-3)
    return common | size.pick(
        quick=dict(d=64, widths=[256, 256], n_adam=8000, epochs=10, snapshots=[0, 3, 10], n_test=100_000,
                   lam_c=[0.1, 10.0], repeats=10, n_max=2000, n_count=8),
        medium=dict(d=128, widths=[512, 512], n_adam=16_000, epochs=30, snapshots=[0, 1, 3, 10, 30],
                    n_test=200_000, lam_c=[0.1, 1.0, 10.0], repeats=20, n_max=4000, n_count=10),
        full=dict(d=784, widths=[1500, 1400], n_adam=100_000, epochs=30, snapshots=[0, 1, 3, 10, 30],
                  n_test=200_000, lam_c=[0.1, 1.0, 10.0, 100.0], repeats=20, n_max=10_000, n_count=10))


def _linearised_at_init(res: dict, s: dict, ns) -> tuple[list[Series], float]:
    """Closed-form linearised theory of the features at initialisation (tanh is odd: κ0 = 0, as
    centred) on the network's own initial weights and the teacher, and its largest relative
    difference from the plug-in theory at init."""
    omega, phi, psi = linearized_covariances(res["init_weights"], [s["activation"]] * len(s["widths"]),
                                             [res["teacher"]["W"]], [s["teacher"]], per_neuron=True)
    model = GaussianCovariateModel.from_teacher(omega, phi, psi, res["teacher"]["theta"], 0.0)
    n_theory = np.geomspace(min(ns), max(ns), 200)
    with expected_numerics():
        lin = model.ridge(n_theory[:, None], _lams(n_theory, s["lam_c"])).test_error
    series = [Series(panel="epoch 0", name=f"λ_c = {lc:g}, linearised (closed form)", theory_x=n_theory,
                     theory_y=lin[:, j], style={"color": f"C{j}", "ls": ":"}) for j, lc in enumerate(s["lam_c"])]
    init = res["snapshots"][0]
    plug = _theory(init["omega"], init["b"], init["y2"], n_theory, s["lam_c"])
    return series, float(np.max(np.abs(lin - plug) / plug))


def _repeat_z(ev: dict, ns, lam_c) -> tuple[np.ndarray, np.ndarray, int]:
    """z = (mean − theory)/(std/√R) over the R independent repeats (N, L), the relative
    deviation of each repeat (N, R, L) from the theory, and R."""
    err = np.asarray(ev["test_error"], dtype=float)
    theory = _theory(ev["omega"], ev["b"], ev["y2"], ns, lam_c)
    R = err.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (err.mean(axis=1) - theory) / (err.std(axis=1, ddof=1) / np.sqrt(R))
    return z, (err - theory[:, None, :]) / theory[:, None, :], R


#: The two regimes in which the agreement is summarised at every training time: the points next to
#: the interpolation peak n = p (variance-dominated) and the largest n (n ≫ p, where the variance
#: term of least squares is the sandwich E[r²h]/n of docs/theory/trained_features.md).
REGIMES = ("next to the peak n = p", "at the largest n")


def _regime_deviation(rel: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (L,) and standard deviation (L,) over the repeats of each repeat's relative deviation
    averaged over the sample sizes ``rows``."""
    per_repeat = rel[rows].mean(axis=0)  # (R, L)
    return per_repeat.mean(axis=0), per_repeat.std(axis=0, ddof=1)


def _time_checks(res: dict, ns, lam_c, p: int) -> tuple[list[Check], np.ndarray, dict]:
    """Agreement of the plug-in theory at every training time, by z-scores over the independent
    repeats: a point-wise check per snapshot and, at the smallest λ_c, a z-check of the mean
    relative deviation in each of :data:`REGIMES`. Returns the checks, the deviations
    (T, regimes, L, mean/std) and notes."""
    rows = (np.isin(ns, peak_ns(p)), ns == ns.max())
    checks, notes = [], {}
    dev = np.zeros((len(res["snapshots"]), len(REGIMES), len(lam_c), 2))
    for t, snap in enumerate(res["snapshots"]):
        z, rel, R = _repeat_z(snap, ns, lam_c)
        name = f"epoch {snap['epoch']:g}"
        checks.append(pointwise_check(f"plug-in theory at {name}", z, R))
        for g, regime in enumerate(REGIMES):
            dev[t, g, :, 0], dev[t, g, :, 1] = _regime_deviation(rel, rows[g])
            checks.append(z_check(f"plug-in theory {regime} at {name}, λ_c = {lam_c[0]:g}", 0.0, dev[t, g, 0, 0],
                                  dev[t, g, 0, 1] / np.sqrt(R), prediction="mean relative deviation 0"))
        notes[name] = {"largest |z| over repeats": float(np.nanmax(np.abs(z))),
                       "RMS z by λ_c": np.sqrt(np.nanmean(z ** 2, axis=0)).tolist(),
                       **{f"relative deviation {regime} by λ_c": dev[t, g, :, 0].tolist()
                          for g, regime in enumerate(REGIMES)}}
    return checks, dev, notes


def _time_series(epochs: np.ndarray, dev: np.ndarray, lam_c, R: int) -> list[Series]:
    """The panel of the relative deviation (mean ± std over the repeats) against training time."""
    out = [Series(panel="deviation by training time", name=f"{regime}, λ_c = {lc:g}", sim_x=epochs,
                  sim_mean=dev[:, g, j, 0], sim_std=dev[:, g, j, 1], n_seeds=R,
                  style={"color": f"C{j}", "marker": "os"[g]})
           for g, regime in enumerate(REGIMES) for j, lc in enumerate(lam_c)]
    out.append(Series(panel="deviation by training time", name="theory (0)", theory_x=epochs[[0, -1]],
                      theory_y=np.zeros(2), style={"color": "grey", "ls": "--"}))
    return out


def _beats(res: dict, a: str, b: dict, b_name: str) -> Check:
    """Paired comparison at the largest n: ridge on the final trained features (λ_c with the lowest
    mean error) against ``b`` at its best λ_c; the repeats share their training inputs."""
    final = np.asarray(res["snapshots"][-1]["test_error"], dtype=float)[-1]  # (R, L)
    other = np.asarray(b["test_error"], dtype=float)[-1]
    diff = final[:, np.argmin(final.mean(axis=0))] - other[:, np.argmin(other.mean(axis=0))]
    return bound_check(f"{a} beat {b_name}", float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size)), 0.0,
                       side="below", margin=3.0,
                       prediction=f"test error (trained − {b_name}) < 0 at the largest n, best λ_c of each")


@register("trained-features-synthetic", "Linear regression, random 3-layer tanh features at initialisation "
          "and the same network at several training times (Adam): ridge on fresh data vs plug-in and linearised "
          "theory, and the agreement against training time", quick_seeds=1, full_seeds=1, medium_seeds=1)
def trained_features_synthetic(size: Size, sweep: Sweeper, teacher: str = "sign") -> ExperimentOutput:
    _one_network(sweep, "trained-features-synthetic")
    if teacher not in SYNTHETIC_TEACHERS:
        raise InputError(f"teacher must be one of {SYNTHETIC_TEACHERS}, got {teacher!r}")
    s = _synthetic_sizes(size, teacher)
    ns = _grid_with_peaks(50, s["n_max"], s["n_count"], [s["widths"][-1], s["d"]])
    params = {k: v for k, v in s.items() if k not in ("n_count", "n_max")} | {"ns": ns, "return_weights": True}
    spec = SyntheticTrainedSpec(lams=_lams(ns, s["lam_c"]), **{k: v for k, v in params.items() if k != "lam_c"})
    res = sweep(synthetic_trained_task, [spec], seeds=1)[0][0]
    panels, series, notes = _snapshot_panels(res, ns, s["lam_c"], "synthetic")
    for curve in series:  # judged over the independent repeats: the test error shares the theory's sample
        curve.shared_se = None
    lin_series, notes["max relative difference, linearised vs plug-in theory at init"] = _linearised_at_init(res, s, ns)
    checks, dev, notes["agreement by training time"] = _time_checks(res, np.asarray(ns), s["lam_c"], s["widths"][-1])
    epochs = np.array([snap["epoch"] for snap in res["snapshots"]], dtype=float)
    time_series = _time_series(epochs, dev, s["lam_c"], s["repeats"])
    checks.append(pointwise_check("plug-in theory, linear regression (raw inputs)",
                                  *_repeat_z(res["linear"], np.asarray(ns), s["lam_c"])[::2]))
    checks += [_beats(res, "trained features", res["snapshots"][0], "features at initialisation"),
               _beats(res, "trained features", res["linear"], "linear regression")]
    panels.append(Panel("deviation by training time", "epoch", "(simulation − theory)/theory", xscale="symlog",
                        yscale="linear", title="relative deviation by training time (mean ± std of the repeats)"))
    best = {name: float(np.min(_over_repeats(ev, "test_error").mean[-1]))
            for name, ev in (("linear", res["linear"]), ("init", res["snapshots"][0]), ("trained", res["snapshots"][-1]))}
    notes["best test error at the largest n"] = best
    notes["final training loss"] = float(res["loss_history"][-1])
    return ExperimentOutput(panels, series + lin_series + time_series, checks=[c for c in checks if c is not None],
                            title="Synthetic trained features: plug-in theory vs ridge on fresh data",
                            parameters={**params, "lambda_convention": LAMBDA_CONVENTION, "inputs": "x ~ N(0, I_d)",
                                        "teacher_law": _TEACHER_LAW[teacher],
                                        "samples": "all fresh: network training set, one ridge training set per n "
                                                   "and repeat, one evaluation sample = covariance sample and test set"},
                            notes=notes)


_TEACHER_LAW = {"sign": "y = sign(w·x), w ~ N(0, I_d/d), no noise",
                "tanh": "y = θᵀ tanh(W* x)/√k, W* ~ N(0, 1/d), θ ~ N(0, I_k), k = d, no noise"}
