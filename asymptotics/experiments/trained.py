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


def _mnist_sizes(quick: bool) -> dict:
    if quick:  # scikit-learn's digits: 1797 images of 8×8, widths 3 × 64 as 2352 = 3 × 784
        return dict(data="digits", widths=[192, 192], activation="relu", epochs=120, lr=1e-3, batch_size=128,
                    snapshots=[0, 1, 5, 120], lam_c=[0.1, 1.0, 10.0, 100.0], repeats=20, n_count=10)
    return dict(data=None, widths=[2352, 2352], activation="relu", epochs=120, lr=1e-3, batch_size=128,
                snapshots=[0, 0.1, 1, 10, 120], lam_c=[0.1, 1.0, 10.0, 100.0], repeats=20, n_count=10)


@register("mnist-even-odd", "Ridge on the features of a ReLU network trained with Adam (MNIST even/odd; digits "
          "with --quick): theory from plug-in moments vs ridge on held-out data, at several training times",
          quick_seeds=1, full_seeds=1)
def mnist_even_odd(size: Size, sweep: Sweeper, data: str | None = None) -> ExperimentOutput:
    quick = size.quick
    _one_network(sweep, "mnist-even-odd")
    s = _mnist_sizes(quick)
    if data is not None:
        s["data"] = str(data)
    if s["data"] is None:
        raise InputError("mnist-even-odd needs --data PATH (a folder with the four MNIST IDX files, or "
                         "mnist.npz); --quick uses scikit-learn's shipped digits")
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


def _synthetic_sizes(quick: bool) -> dict:
    if quick:
        return dict(d=64, k=64, widths=[256, 256], activation="tanh", init="gauss", epochs=1000, lr=3e-4,
                    weight_decay=1e-3, batch_size=None, snapshots=[0, 1000], n_adam=1400, n_cov=32000,
                    n_reg=2000, n_test=4000, lam_c=[0.1, 10.0], repeats=10, n_count=8)
    return dict(d=784, k=800, widths=[1500, 1400], activation="tanh", init="gauss", epochs=3000, lr=1e-4,
                weight_decay=1e-3, batch_size=None, snapshots=[0, 300, 3000], n_adam=1400, n_cov=40000,
                n_reg=10000, n_test=10000, lam_c=[0.1, 1.0, 10.0, 100.0], repeats=10, n_count=10)


def _linearised_at_init(res: dict, s: dict, ns) -> tuple[list[Series], float]:
    """Closed-form linearised theory of the features at initialisation (tanh is odd: κ0 = 0, as
    centred) on the network's own initial weights and the teacher, and its largest relative
    difference from the plug-in theory at init."""
    omega, phi, psi = linearized_covariances(res["init_weights"], [s["activation"]] * len(s["widths"]),
                                             [res["teacher"]["W"]], ["tanh"], per_neuron=True)
    model = GaussianCovariateModel.from_teacher(omega, phi, psi, res["teacher"]["theta"], 0.0)
    n_theory = np.geomspace(min(ns), max(ns), 200)
    with expected_numerics():
        lin = model.ridge(n_theory[:, None], _lams(n_theory, s["lam_c"])).test_error
    series = [Series(panel="epoch 0", name=f"λ_c = {lc:g}, linearised (closed form)", theory_x=n_theory,
                     theory_y=lin[:, j], style={"color": f"C{j}", "ls": ":"}) for j, lc in enumerate(s["lam_c"])]
    init = res["snapshots"][0]
    plug = _theory(init["omega"], init["b"], init["y2"], n_theory, s["lam_c"])
    return series, float(np.max(np.abs(lin - plug) / plug))


@register("trained-features-synthetic", "Linear regression, random 3-layer tanh features at initialisation "
          "and the same network after full-batch AdamW: ridge curves, plug-in and linearised theory",
          quick_seeds=1, full_seeds=1)
def trained_features_synthetic(size: Size, sweep: Sweeper) -> ExperimentOutput:
    quick = size.quick
    _one_network(sweep, "trained-features-synthetic")
    s = _synthetic_sizes(quick)
    ns = _grid_with_peaks(50, s["n_reg"], s["n_count"], [s["widths"][-1], s["d"]])
    params = {k: v for k, v in s.items() if k != "n_count"} | {"ns": ns, "return_weights": True}
    spec = SyntheticTrainedSpec(lams=_lams(ns, s["lam_c"]), **{k: v for k, v in params.items() if k != "lam_c"})
    res = sweep(synthetic_trained_task, [spec], seeds=1)[0][0]
    panels, series, notes = _snapshot_panels(res, ns, s["lam_c"], "synthetic")
    lin_series, notes["max relative difference, linearised vs plug-in theory at init"] = _linearised_at_init(res, s, ns)
    series += lin_series
    final = res["snapshots"][-1]
    best = {name: float(np.min(_over_repeats(ev, "test_error").mean[-1]))
            for name, ev in (("linear", res["linear"]), ("init", res["snapshots"][0]), ("trained", final))}
    notes["best test error at the largest n"] = best
    notes["final training loss"] = float(res["loss_history"][-1])
    return ExperimentOutput(panels, series, title="Synthetic trained features: plug-in theory vs ridge",
                            parameters={**params, "lambda_convention": LAMBDA_CONVENTION,
                                        "teacher": "y = θᵀ tanh(W* x)/√k, W* ~ N(0, 1/d), θ ~ N(0, I_k), no noise",
                                        "inputs": "x ~ N(0, I_d)"}, notes=notes)
