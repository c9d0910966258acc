"""Ridge regression on trained features: data splits, moment estimates, empirical learning curves.

Protocol (equations in ``docs/theory/trained_features.md``)
-----------------------------------------------------------
Four disjoint parts of the data: *adam* (trains the network), *covariance* (estimates the moments),
*regression* (ridge training sets are drawn from it) and *test*. For a feature map φ (a snapshot of
the network, or the raw inputs for linear regression):

* μ̂ = mean of φ over the covariance part; every feature vector is centred, φ̃ = φ − μ̂;
* Ω̂ = E_cov[φ̃φ̃ᵀ], b̂ = E_cov[φ̃ y], E[y²] ≈ mean of y² over the covariance part — the plug-in
  moments of the Gaussian-covariate theory (the theory side builds its model from them);
* the same with the first half of the covariance part (a check of the plug-in bias: an
  estimate from m samples is off by O(p/m), so the change from m to m/2 measures that bias);
* ridge θ̂ = (F̃ᵀF̃/n + λI)⁻¹F̃ᵀy/n on n rows drawn without replacement from the regression part
  (``repeats`` draws per n), every λ from one decomposition (:func:`simulations.linalg.ridge_path`);
  test error = mean of (y − φ̃ᵀθ̂)² over the test part, with its standard error over test points.

Synthetic data (:func:`synthetic_trained_task`) need no fixed parts: every sample is drawn fresh
from the known law (:func:`evaluate_fresh`): the network's training set, a new ridge training set
for every n and repeat, and one large evaluation sample that is both the covariance sample and the
test set.

No intercept is fitted (features are centred, labels are not): the theory sees the same E[y²].
λ is the project's mean-loss λ everywhere here (``lams``: one grid, or one grid per n); papers'
sum-loss λ_c are converted by the caller (:func:`asymptotics.conventions.lam_from_sum_loss`).

Randomness (:mod:`simulations.rng`, named purposes under the task's seed): the split from
``stream(seed, "split")``, the network from ``child_seed(seed, "init")``, mini-batch orders from
``child_seed(seed, "batch-order")``, ridge subsamples of n-index i from
``stream(seed, "ridge-subsample", i)`` (the same rows for every feature map: paired comparisons),
the synthetic teacher from ``stream(seed, "teacher")``, and the synthetic inputs from
``stream(seed, "inputs", "adam")``, ``stream(seed, "inputs", "regression", i, r)`` (n-index i,
repeat r) and ``stream(seed, "inputs", "test", c)`` (chunk c of the evaluation sample).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Callable, ClassVar

import numpy as np

from asymptotics import functions
from asymptotics.conventions import lam_from_sum_loss
from asymptotics.validation import choice, float_dtype, nonneg_float, nonneg_int, pos_float, pos_int

from .covariance import MomentAccumulator
from .data import even_odd_labels, load_digits, load_mnist, split_and_normalise
from .features import feature_map, random_weights
from .linalg import check_lams, ridge_path
from .rng import child_seed, stream
from .spec import ModelSpec, register_spec
from .training import INITS, init_mlp, train

__all__ = ["TrainedSpec", "SyntheticTrainedSpec", "plug_in_moments", "ridge_curves", "evaluate_features", "evaluate_fresh",
           "load_dataset", "mnist_even_odd_task", "synthetic_trained_task", "lam_grid", "PARTS"]

_CHUNK = 4096
PARTS = ("adam", "covariance", "regression", "test")  # the four disjoint parts of the data


# ---------------------------------------------------------------------------------------------
# specs


def lam_grid(lams, ns) -> np.ndarray:
    """The λ grid (N, L) at the sample sizes ``ns`` (project convention, λ ≥ 0).

    ``lams``: one grid (L,) used at every n, one grid per n (N, L), or (earlier releases) a
    function n ↦ grid.
    """
    ns = [int(n) for n in ns]
    if callable(lams):
        rows = [check_lams(np.atleast_1d(np.asarray(lams(n), dtype=np.float64))) for n in ns]
        if len({r.shape for r in rows}) > 1:
            raise ValueError("lams(n) must return grids of one length for every n")
        return np.array(rows)
    try:
        a = np.asarray(lams, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("lams must be a grid (L,) or one grid per n (N, L) of real numbers") from exc
    if a.ndim == 1:
        return np.tile(check_lams(a), (len(ns), 1))
    if a.ndim == 2 and a.shape[0] == len(ns):
        return np.array([check_lams(row) for row in a])
    raise ValueError(f"lams must have shape (L,) or ({len(ns)}, L) (one grid per n), got {a.shape}")


def _tuple_of(a: np.ndarray):
    return tuple(_tuple_of(x) for x in a) if a.ndim > 1 else tuple(float(x) for x in a)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _NetworkRidgeSpec(ModelSpec):
    """Fields shared by the trained-feature tasks: the network, its training and the ridge protocol.

    ``lams``: the project's mean-loss λ, one grid (L,) or one grid per n (N, L). Dicts of earlier
    releases may give ``lam_c`` (the sum-loss λ_c) instead: converted once by :meth:`from_dict`
    (λ = λ_c/n, :func:`asymptotics.conventions.lam_from_sum_loss`) with a DeprecationWarning.
    """

    widths: tuple
    activation: str | tuple
    epochs: int
    lr: float
    snapshots: tuple
    ns: tuple
    lams: tuple
    repeats: int
    batch_size: int | None = None
    weight_decay: float = 0.0
    init: str = "glorot"
    dtype: str = "float64"
    return_weights: bool = False

    def validate(self) -> None:
        widths = tuple(pos_int(w, "widths") for w in _as_tuple(self.widths))
        if not widths:
            raise ValueError("widths must hold at least one layer width")
        self._set("widths", widths)
        self._set("activation", _check_activation(self.activation, len(widths)))
        self._set("epochs", nonneg_int(self.epochs, "epochs"))
        self._set("lr", pos_float(self.lr, "lr"))
        self._set("snapshots", _check_snapshots(self.snapshots, self.epochs))
        self._set("ns", tuple(pos_int(n, "ns") for n in _as_tuple(self.ns)))
        if not self.ns:
            raise ValueError("ns must hold at least one sample size")
        if callable(self.lams):
            raise ValueError("lams of a spec must be numbers: one grid (L,) or one grid per n (N, L)")
        grid = lam_grid(self.lams, self.ns)  # checks λ ≥ 0 and the shape
        self._set("lams", _tuple_of(grid) if np.ndim(self.lams) == 2 else _tuple_of(grid[0]))
        self._set("repeats", pos_int(self.repeats, "repeats"))
        self._set("batch_size", None if self.batch_size is None else pos_int(self.batch_size, "batch_size"))
        self._set("weight_decay", nonneg_float(self.weight_decay, "weight_decay"))
        self._set("init", choice(self.init, "init", INITS))
        self._set("dtype", float_dtype(self.dtype).name)
        if not isinstance(self.return_weights, (bool, np.bool_)):
            raise ValueError(f"return_weights must be a bool, got {self.return_weights!r}")
        self._set("return_weights", bool(self.return_weights))

    def lam_grid(self) -> np.ndarray:
        """λ (N, L), row i at n = ns[i]."""
        return lam_grid(self.lams, self.ns)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        data = dict(data)
        if "lam_c" in data:
            if "lams" in data:
                raise ValueError("give lam_c (sum-loss λ_c, deprecated) or lams (mean-loss λ), not both")
            warnings.warn("lam_c in the task parameters is deprecated: pass the project's mean-loss "
                          "lams = lam_from_sum_loss(lam_c, n) (asymptotics.conventions), one grid per n",
                          DeprecationWarning, stacklevel=3)
            ns = np.asarray([pos_int(n, "ns") for n in _as_tuple(data.get("ns", ()))], dtype=np.float64)
            lam_c = np.atleast_1d(np.asarray(data.pop("lam_c"), dtype=np.float64))
            data["lams"] = lam_from_sum_loss(lam_c[None, :], ns[:, None]).tolist()
        return super().from_dict(data)


def _as_tuple(v) -> tuple:
    return tuple(np.atleast_1d(v).tolist()) if isinstance(v, np.ndarray) else tuple(v)


def _check_activation(activation, layers: int):
    """One registered activation name, or one per layer."""
    names = (activation,) if isinstance(activation, str) else tuple(activation)
    if len(names) not in (1, layers) or not all(isinstance(a, str) for a in names):
        raise ValueError(f"activation must be one name or {layers} names, got {activation!r}")
    for a in names:
        functions.get(a)
    return activation if isinstance(activation, str) else names


def _check_snapshots(snapshots, epochs: int) -> tuple:
    out = []
    for e in _as_tuple(snapshots):
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, float, np.integer, np.floating)) \
                or not 0 <= e <= epochs:
            raise ValueError(f"snapshots must be epochs in [0, {epochs}], got {e!r}")
        out.append(int(e) if isinstance(e, (int, np.integer)) else float(e))
    return tuple(out)


@register_spec
@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainedSpec(_NetworkRidgeSpec):
    """MNIST (or scikit-learn's digits) even/odd: ``data`` = "digits" or a path for
    :func:`simulations.data.load_mnist`; the other fields as :class:`_NetworkRidgeSpec`."""

    kind: ClassVar[str] = "trained-even-odd"
    data: str

    def validate(self) -> None:
        if isinstance(self.data, os.PathLike):
            self._set("data", os.fspath(self.data))
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be 'digits' or a path, got {self.data!r}")
        super().validate()


@register_spec
@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticTrainedSpec(_NetworkRidgeSpec):
    """Synthetic teacher y = θᵀ g(W* x)/√k on x ~ N(0, I_d), W* entries N(0, 1/d), g = ``teacher``
    (a registered activation), θ ~ N(0, I_k) (``teacher_readout="gauss"``) or θ = 1 (``"ones"``).

    Every sample is drawn fresh from that law: the network's training set (``n_adam`` rows), each
    ridge training set (a new draw for every n and repeat) and one evaluation sample of ``n_test``
    rows that is both the test set and the covariance sample of the plug-in moments (see
    :func:`evaluate_fresh`). The other fields as :class:`_NetworkRidgeSpec`.
    """

    kind: ClassVar[str] = "trained-synthetic"
    d: int
    k: int
    n_adam: int
    n_test: int
    teacher: str = "tanh"
    teacher_readout: str = "gauss"

    def validate(self) -> None:
        for name in ("d", "k", "n_adam", "n_test"):
            self._set(name, pos_int(getattr(self, name), name))
        if self.n_test < 2:
            raise ValueError(f"n_test must be at least 2 (its first half estimates the plug-in bias), got {self.n_test}")
        if not isinstance(self.teacher, str):
            raise ValueError(f"teacher must be the name of a registered activation, got {self.teacher!r}")
        functions.get(self.teacher)
        self._set("teacher_readout", choice(self.teacher_readout, "teacher_readout", TEACHER_READOUTS))
        super().validate()


TEACHER_READOUTS = ("gauss", "ones")


# ---------------------------------------------------------------------------------------------
# moments and ridge curves


def plug_in_moments(F_cov: np.ndarray, y_cov: np.ndarray) -> dict:
    """Centred plug-in moments {omega, b, y2, mean} of features F_cov (rows) with labels y_cov:
    μ̂ = mean φ, Ω̂ = mean (φ − μ̂)(φ − μ̂)ᵀ, b̂ = mean (φ − μ̂) y, E[y²] = mean y² (not centred)."""
    acc = MomentAccumulator()
    for i in range(0, F_cov.shape[0], _CHUNK):
        acc.update(F_cov[i:i + _CHUNK], None, y_cov[i:i + _CHUNK])
    m = acc.finalize(center=True)
    return {"omega": m.omega, "b": m.b, "y2": float(m.y2), "mean": m.mean_phi}


def _subsample_test_errors(F_sub, y_sub, F_test64, y_test, lams) -> tuple[np.ndarray, np.ndarray]:
    """Test error (L,) of ridge θ̂(λ) = (FᵀF/n + λI)⁻¹Fᵀy/n fitted on one subsample, and its
    standard error over the test points."""
    n, p = F_sub.shape
    # the Gram route is twice as fast; the SVD keeps λ ≈ 0 accurate near the peak n ≈ p
    near_peak = abs(n - p) < 0.2 * p or lams.min() == 0
    path = ridge_path(np.asarray(F_sub, dtype=np.float64), y_sub, lams, method="svd" if near_peak else "gram")
    sq = (y_test[:, None] - F_test64 @ path.theta) ** 2
    return sq.mean(axis=0), sq.std(axis=0, ddof=1) / np.sqrt(sq.shape[0])


def ridge_curves(F_reg, y_reg, F_test, y_test, ns, lams, repeats: int, seed) -> dict:
    """Test errors of ridge on ``repeats`` subsamples of size n of (F_reg, y_reg) for each n.

    ``lams``: the project's mean-loss λ, one grid (L,) or one grid per n (N, L) (see
    :func:`lam_grid`). Subsample r of n-index i: ``repeats`` draws without replacement from
    ``stream(seed, "ridge-subsample", i)``. Returns arrays (N, R, L): ``test_error`` and
    ``test_se`` (standard error of that mean over the test points).
    """
    ns = [int(n) for n in ns]
    if any(n < 1 or n > F_reg.shape[0] for n in ns):
        raise ValueError(f"ns must lie in [1, {F_reg.shape[0]}] (the regression part), got {ns}")
    grid = lam_grid(lams, ns)
    repeats = pos_int(repeats, "repeats")
    F_test64 = np.asarray(F_test, dtype=np.float64)
    err = np.empty((len(ns), repeats, grid.shape[1]))
    se = np.empty_like(err)
    for i, n in enumerate(ns):
        rng = stream(seed, "ridge-subsample", i)
        for r in range(repeats):
            rows = np.sort(rng.choice(F_reg.shape[0], size=n, replace=False))
            err[i, r], se[i, r] = _subsample_test_errors(F_reg[rows], y_reg[rows], F_test64, y_test, grid[i])
    return {"test_error": err, "test_se": se}


def evaluate_features(featurize: Callable, parts: dict, labels: dict, ns, lams, repeats: int, seed) -> dict:
    """Plug-in moments (full and first half of the covariance part) and empirical ridge curves
    (:func:`ridge_curves`, features centred by the covariance part's mean) of one feature map."""
    F = {k: np.asarray(featurize(parts[k]), dtype=np.float64) for k in ("covariance", "regression", "test")}
    full = plug_in_moments(F["covariance"], labels["covariance"])
    half_rows = F["covariance"].shape[0] // 2
    half = plug_in_moments(F["covariance"][:half_rows], labels["covariance"][:half_rows])
    mu = full["mean"]
    curves = ridge_curves(F["regression"] - mu, labels["regression"], F["test"] - mu, labels["test"], ns,
                          lams, repeats, seed)
    return {"omega": full["omega"], "b": full["b"], "y2": full["y2"], "omega_half": half["omega"],
            "b_half": half["b"], "y2_half": half["y2"], **curves}


# ---------------------------------------------------------------------------------------------
# tasks


def load_dataset(source: str):
    """``"digits"`` (scikit-learn's shipped 8×8 digits) or a path accepted by :func:`load_mnist`."""
    if source == "digits":
        return load_digits()
    return load_mnist(source)


def _train_network(spec: _NetworkRidgeSpec, seed, X: np.ndarray, y: np.ndarray):
    """The network of ``spec`` initialised from ``child_seed(seed, "init")`` and trained on (X, y)."""
    mlp = init_mlp(X.shape[1], spec.widths, spec.activation, child_seed(seed, "init"), init=spec.init,
                   dtype=spec.dtype)
    return train(mlp, X, y, epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                 weight_decay=spec.weight_decay, seed=child_seed(seed, "batch-order"), snapshots=spec.snapshots)


def _train_and_evaluate(spec: _NetworkRidgeSpec, seed, parts: dict, labels: dict) -> dict:
    """Train on the adam part; for every snapshot and for the raw inputs, :func:`evaluate_features`."""
    run = _train_network(spec, seed, parts["adam"], labels["adam"])
    grid = spec.lam_grid()
    out = {"snapshots": [], "loss_history": run.loss_history}
    for snap in run.snapshots:
        ev = evaluate_features(snap.mlp.features, parts, labels, spec.ns, grid, spec.repeats, seed)
        net_mse = float(np.mean((snap.mlp.predict(parts["test"]) - labels["test"]) ** 2))
        out["snapshots"].append({"epoch": snap.epoch, "step": snap.step, "network_test_mse": net_mse, **ev})
        if spec.return_weights and snap.step == 0:
            out["init_weights"] = [w.astype(np.float64) for w in snap.mlp.weights]
    out["linear"] = evaluate_features(lambda X: X, parts, labels, spec.ns, grid, spec.repeats, seed)
    out["sizes"] = {k: int(v.shape[0]) for k, v in parts.items()}
    return out


def mnist_even_odd_task(spec: TrainedSpec | dict, seed: np.random.SeedSequence) -> dict:
    """MNIST (or digits) even/odd: split 10/25/25/40 and normalise (train-only statistics), train the
    network with Adam on the adam part, and for every snapshot (and raw pixels) return the plug-in
    moments and the empirical ridge curves (see the module docstring).

    ``spec``: a :class:`TrainedSpec` (or its dict form).
    """
    spec = spec if isinstance(spec, TrainedSpec) else TrainedSpec.from_dict(spec)
    X, digit = load_dataset(spec.data)
    sp = split_and_normalise(X, even_odd_labels(digit), stream(seed, "split"))
    return _train_and_evaluate(spec, seed, sp.X, sp.y)


# ---------------------------------------------------------------------------------------------
# synthetic data: every sample fresh from the known law


def _fresh_moments(featurize: Callable, draw: Callable, n_test: int) -> tuple[dict, dict]:
    """Centred plug-in moments of φ on the evaluation sample (chunks ``draw(("test", c), rows)``),
    from all of it and from its first half (chunks c < ⌈C/2⌉)."""
    first, second = MomentAccumulator(), MomentAccumulator()
    chunks = _chunk_sizes(n_test)
    for c, rows in enumerate(chunks):
        X, y = draw(("test", c), rows)
        (first if c < (len(chunks) + 1) // 2 else second).update(np.asarray(featurize(X), np.float64), None, y)
    half = first.finalize(center=True)
    full = first.copy().merge(second).finalize(center=True) if second.n else half
    return ({"omega": full.omega, "b": full.b, "y2": float(full.y2), "mean": full.mean_phi},
            {"omega": half.omega, "b": half.b, "y2": float(half.y2)})


def _chunk_sizes(n: int) -> list[int]:
    return [min(_CHUNK, n - i) for i in range(0, n, _CHUNK)]


def _fresh_fits(featurize: Callable, draw: Callable, mu, ns, grid, repeats: int) -> np.ndarray:
    """Ridge θ̂(λ) (p, N·R·L) on a fresh training set of every size n and repeat r
    (``draw(("regression", i, r), n)``), features centred by ``mu``."""
    thetas = []
    for i, n in enumerate(ns):
        for r in range(repeats):
            X, y = draw(("regression", i, r), n)
            F = np.asarray(featurize(X), dtype=np.float64) - mu
            near_peak = abs(n - F.shape[1]) < 0.2 * F.shape[1] or grid[i].min() == 0
            thetas.append(ridge_path(F, y, grid[i], method="svd" if near_peak else "gram").theta)
    return np.concatenate(thetas, axis=1)


def _fresh_test(featurize: Callable, draw: Callable, moments: dict, thetas, n_test: int, readout=None) -> dict:
    """On the evaluation sample: the mean squared test error of every column of ``thetas`` and its
    standard error over the test points (from the sums of r² and r⁴), the network's own mean
    squared error (with ``readout``), and the leverage–residual ratio ρ = E[r²h]/(E[r²]E[h]) of
    the best linear predictor in φ (r = y − φ̃ᵀΩ̂⁺b̂, h = φ̃ᵀΩ̂⁺φ̃; ρ = 1 when the residual is
    independent of the features, as for Gaussian covariates)."""
    mu = moments["mean"]
    pinv = np.linalg.pinv(moments["omega"], hermitian=True)
    beta = pinv @ moments["b"]
    s2, s4 = np.zeros(thetas.shape[1]), np.zeros(thetas.shape[1])
    net, lev = 0.0, np.zeros(3)  # Σ r², Σ h, Σ r²h of the best linear predictor
    for c, rows in enumerate(_chunk_sizes(n_test)):
        X, y = draw(("test", c), rows)
        F = np.asarray(featurize(X), dtype=np.float64)
        if readout is not None:
            net += float(np.sum((F @ readout - y) ** 2))
        F -= mu
        r2 = (y[:, None] - F @ thetas) ** 2
        s2 += r2.sum(axis=0)
        s4 += (r2 ** 2).sum(axis=0)
        res2, h = (y - F @ beta) ** 2, np.einsum("ij,ij->i", F @ pinv, F)
        lev += (res2.sum(), h.sum(), (res2 * h).sum())
    mean = s2 / n_test
    se = np.sqrt(np.maximum(s4 / n_test - mean ** 2, 0.0) / max(n_test - 1, 1))
    rho = lev[2] * n_test / (lev[0] * lev[1]) if lev[0] > 0 and lev[1] > 0 else float("nan")
    return {"test_error": mean, "test_se": se, "network_test_mse": None if readout is None else net / n_test,
            "leverage_residual_ratio": float(rho)}


def evaluate_fresh(featurize: Callable, draw: Callable, ns, lams, repeats: int, n_test: int,
                   readout=None) -> dict:
    """Plug-in moments and ridge curves of one feature map φ when every sample can be drawn fresh.

    ``draw(path, rows)`` returns ``rows`` new samples (X, y) of the data law for a named ``path``
    (the same path gives the same samples for every feature map: paired comparisons).

    * One *evaluation sample* of ``n_test`` rows (paths ("test", c), in chunks) is both the
      covariance sample — μ̂, Ω̂ = E[φ̃φ̃ᵀ], b̂ = E[φ̃y], E[y²] with φ̃ = φ − μ̂, and the same from
      its first half (the plug-in bias check) — and the test set: the test error of θ̂ is the mean
      of (y − φ̃ᵀθ̂)² over it. Theory and simulation then see the same sampling error of the
      irreducible part (it cancels to first order in their difference); what is left of the
      finite sample is a bias ≈ (p/n_test)·σ_res² of the theory (docs/theory/trained_features.md).
    * Ridge θ̂ = (F̃ᵀF̃/n + λI)⁻¹F̃ᵀy/n on a fresh training set for every n and repeat r
      (paths ("regression", i, r)): the repeats are independent draws of the training set.

    Returns {omega, b, y2, mean, omega_half, b_half, y2_half, test_error (N, R, L), test_se
    (N, R, L), leverage_residual_ratio (ρ of :func:`_fresh_test`, a check of the Gaussian-covariate
    assumption that the residual y − φ̃ᵀΩ̂⁺b̂ is independent of φ), network_test_mse (with
    ``readout``: the mean of (y − φᵀreadout)² on the sample)}.
    """
    ns = [int(n) for n in ns]
    grid = lam_grid(lams, ns)
    repeats = pos_int(repeats, "repeats")
    full, half = _fresh_moments(featurize, draw, n_test)
    thetas = _fresh_fits(featurize, draw, full["mean"], ns, grid, repeats)
    test = _fresh_test(featurize, draw, full, thetas, n_test, readout)
    shape = (len(ns), repeats, grid.shape[1])
    out = {**full, "omega_half": half["omega"], "b_half": half["b"], "y2_half": half["y2"],
           "test_error": test["test_error"].reshape(shape), "test_se": test["test_se"].reshape(shape),
           "leverage_residual_ratio": test["leverage_residual_ratio"]}
    if readout is not None:
        out["network_test_mse"] = test["network_test_mse"]
    return out


def _synthetic_teacher(spec: SyntheticTrainedSpec, seed) -> tuple[np.ndarray, np.ndarray, Callable]:
    """W* (k × d, entries N(0, 1/d)), θ and the labelling x ↦ θᵀ g(W* x)/√k."""
    trng = stream(seed, "teacher")
    W_star = random_weights([spec.d, spec.k], trng)[0]
    theta = trng.standard_normal(spec.k) if spec.teacher_readout == "gauss" else np.ones(spec.k)

    def label(X):
        return feature_map(X, [W_star], [spec.teacher], dtype=np.float64) @ theta / np.sqrt(spec.k)

    return W_star, theta, label


def synthetic_trained_task(spec: SyntheticTrainedSpec | dict, seed: np.random.SeedSequence) -> dict:
    """Synthetic data x ~ N(0, I_d), y = θᵀ g(W* x)/√k (no noise; :class:`SyntheticTrainedSpec`).

    The network is trained on ``n_adam`` fresh samples (full-batch Adam when ``batch_size`` is
    None); for every snapshot and for the raw inputs (linear regression) :func:`evaluate_fresh`
    gives the plug-in moments and the ridge curves on fresh data. Also returns the teacher's
    weights (for the closed-form theory at initialisation) and, with ``return_weights``, the
    network's initial weights."""
    spec = spec if isinstance(spec, SyntheticTrainedSpec) else SyntheticTrainedSpec.from_dict(spec)
    W_star, theta, label = _synthetic_teacher(spec, seed)

    def draw(path, rows):
        X = stream(seed, "inputs", *path).standard_normal((rows, spec.d))
        return X, label(X)

    run = _train_network(spec, seed, *draw(("adam",), spec.n_adam))
    grid = spec.lam_grid()
    out = {"snapshots": [], "loss_history": run.loss_history, "teacher": {"W": W_star, "theta": theta}}
    for snap in run.snapshots:
        ev = evaluate_fresh(snap.mlp.features, draw, spec.ns, grid, spec.repeats, spec.n_test,
                            readout=snap.mlp.readout.astype(np.float64))
        out["snapshots"].append({"epoch": snap.epoch, "step": snap.step, "train_loss": snap.train_loss, **ev})
        if spec.return_weights and snap.step == 0:
            out["init_weights"] = [w.astype(np.float64) for w in snap.mlp.weights]
    out["linear"] = evaluate_fresh(lambda X: X, draw, spec.ns, grid, spec.repeats, spec.n_test)
    out["sizes"] = {"adam": spec.n_adam, "test (and covariance)": spec.n_test}
    return out
