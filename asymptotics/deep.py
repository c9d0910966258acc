r"""Linearised population covariances Ω, Φ, Ψ of deep random features and deep random teachers.

Model (samples x ~ N(0, Σ) in R^d, no biases, weights used as given):

    student  φ(x) = σ_L(W_L σ_{L−1}(⋯ σ_1(W_1 x))),     W_ℓ ∈ R^{p_ℓ × p_{ℓ−1}}, p_0 = d,
    teacher  ψ(x) = σ*_{L*}(W*_{L*} ⋯ σ*_1(W*_1 x))      (or ψ(x) = x: a linear teacher, k = d).

Gaussian equivalence replaces every activation applied to a pre-activation h_i ~ N(m_i, r_i) by its
first two Hermite components plus independent noise, σ(h_i) ≈ κ0_i + κ1_i (h_i − m_i) + κ*_i ξ_i,
with κ0 = E σ(h), κ1 = E σ'(h), κ*² = E σ² − κ0² − r κ1² at that mean and variance (see
:func:`asymptotics.gaussian.kappas`). The features have the mean μ_ℓ = κ0 (a vector), and it
propagates: the next layer's pre-activations h = W_{ℓ+1} φ_ℓ have the mean m_{ℓ+1} = W_{ℓ+1} μ_ℓ, so
its κ's are Gaussian expectations at N(m_i, r_i), not at N(0, r_i). Layer by layer, with μ_0 = 0,
Ω_0 = Σ, m_ℓ = W_ℓ μ_{ℓ−1} and C_ℓ = W_ℓ Ω_{ℓ−1} W_ℓᵀ the pre-activation covariance (Ω_ℓ is the
covariance of the features, centred by their exact mean):

    μ_ℓ = κ0(m_ℓ, r_ℓ),   Ω_ℓ = (κ1 κ1ᵀ) ∘ C_ℓ + diag(κ*²)          (E-μ), (E-Ω)

where κ0, κ1, κ* are evaluated at each neuron's own mean m_{ℓ,i} and at the mean pre-activation
variance r_ℓ = Tr C_ℓ / p_ℓ (default, the anchor code's ``avg=True``) or per neuron at
r_{ℓ,i} = (C_ℓ)_{ii} (``per_neuron=True``; this keeps diag Ω_ℓ = Var σ(h_i) exact for unequal row
norms). The means are never averaged: m_{ℓ,i} = Σ_j (W_ℓ)_{ij} μ_{ℓ−1,j} differs between neurons
at order one. For odd activations κ0 = 0 at mean zero, so every mean vanishes and (E-Ω) is the
centred recursion of the deep-features paper, bit for bit. The cross-covariance of student and teacher
units propagates with κ1 only, X ← (κ1 ∘ W) X on a student layer and X ← X (κ1* ∘ W*)ᵀ on a
teacher layer — their κ*-noises are independent — except on layers the two networks share
(literally the same neurons), where X follows Ω including its κ*² diagonal. Starting from
Ω_0 = Ψ_0 = X_0 = Σ, the result is Ω = Ω_L (p × p), Φ = X (p × k), Ψ = Ψ_{L*} (k × k): the
covariances (``center=True``, the default), or with ``center=False`` the raw second moments
E[φφᵀ] = Ω + μμᵀ, E[φψᵀ] = Φ + μ μ*ᵀ, E[ψψᵀ] = Ψ + μ* μ*ᵀ (μ* the teacher's mean,
:func:`feature_mean`). The covariances and the means feed
:meth:`asymptotics.ridge.GaussianCovariateModel.from_teacher` (its ``readout`` says how a mean is
treated).

Second order (``second_order=True``, the default; skipped for odd activations, which it leaves
bit for bit unchanged). With s_ℓ = E σ''(h) at N(m_ℓ, r_ℓ) (= 2 c_2, the He₂ coefficient), every
layer's features carry a He₂ component (s/2)((h − m)² − r) besides the linear one. Two of its effects
are of the order the linearisation keeps for uncentred activations and are added: the k = 2 Mehler
term of the layer itself, and the third cumulant (skewness) it gives to the next layers'
pre-activations, through the Edgeworth expansion Cov(σ(h_i), σ(h_j)) = κ1_i κ1_j C_ij +
½ s_i κ1_j cum(h_i, h_i, h_j) + ½ κ1_i s_j cum(h_i, h_j, h_j) + …:

    ΔΩ_ℓ = ½ (s sᵀ) ∘ C_ℓ^{∘2} (off the diagonal) + ½ (s κ1ᵀ) ∘ Tᵀ + ½ (κ1 sᵀ) ∘ T,
    T_ij = cum(h_i, h_j, h_j) = Σ_{k<ℓ} Σ_e s_{k,e} [A_ie L_je² + 2 L_ie A_je L_je],       (E-2)
    ΔX_ℓ = ½ s ∘ cum(h_i, h_i, x) = ½ s ∘ Σ_{k<ℓ} 2 (A ∘ L) diag(s_k) Cov(h_k, x),

with A = W_ℓ diag(κ1_{ℓ−1}) W_{ℓ−1} ⋯ diag(κ1_{k+1}) W_{k+1} (p_ℓ × p_k; A = W_ℓ for k = ℓ − 1) and
L = A diag(κ1_k) C_k = Cov(linear part of h_ℓ, h_k): one He₂ insertion at each earlier layer k
(the leading order in the pre-activations' correlations). (E-2) is an expansion around each
neuron's own law N(m_i, r_i): it is added with per-neuron variances (``per_neuron=True``) only; the
mean-variance convention stays the published first-order recursion. Both corrected Ω_ℓ and X
feed the next layer. ΔX is added along the student's own layers (the linear-teacher cross-covariance and its
image through a teacher's κ1's); the teacher's chain gets its own (E-2) for Ψ. The means stay the
first-order κ0 (at the corrected variances, :func:`feature_mean` with the same ``second_order``).
The derivation and its measured accuracy are in ``docs/theory/deep_features.md``; the papers it
follows are cited there.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from . import functions, gaussian

__all__ = ["linearized_covariances", "feature_mean", "kernel_covariances", "layer_kappas"]


def _as_matrix(w, name: str) -> np.ndarray:
    a = np.asarray(w, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D weight matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_chain(weights, name: str, d: int) -> list[np.ndarray]:
    if weights is None or len(weights) == 0:
        raise ValueError(f"{name} must be a non-empty list of weight matrices")
    mats = [_as_matrix(w, f"{name}[{i}]") for i, w in enumerate(weights)]
    prev = d
    for i, m in enumerate(mats):
        if m.shape[1] != prev:
            raise ValueError(f"{name}[{i}] has shape {m.shape}: expected {prev} columns "
                             f"(the width of the layer before)")
        prev = m.shape[0]
    return mats


def _check_activations(activations, count: int, name: str) -> list:
    if isinstance(activations, (str, functions.Activation)):
        activations = [activations] * count
    if len(activations) != count:
        raise ValueError(f"{name} must have one activation per layer: got {len(activations)} for {count} layers")
    return [functions.get(a) for a in activations]


def _layer_moments(activation, pre_covariance: np.ndarray, per_neuron: bool, pre_mean=None):
    """(κ0, κ1, κ*, r) of one layer from its pre-activation covariance C and mean m (None: 0):
    variances per neuron or at Tr C/p, means always per neuron."""
    diag = np.clip(np.diag(pre_covariance), 0.0, None)
    if per_neuron:
        r = diag
    else:
        r = np.full(diag.shape, diag.mean())
    if np.any(r <= 0):
        raise ValueError("a pre-activation has zero variance (a zero row of the weights?)")
    if pre_mean is None or not np.any(pre_mean):
        uniq, inverse = np.unique(r, return_inverse=True)
        k0, k1, ks = (np.asarray(x, dtype=np.float64)[inverse] for x in gaussian.kappas(activation, uniq))
    else:
        k0, k1, ks = (np.asarray(x, dtype=np.float64) for x in gaussian.kappas(activation, r, mean=pre_mean))
    return k0, k1, ks, r


def layer_kappas(activation, pre_covariance: np.ndarray, per_neuron: bool,
                 pre_mean=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(κ1, κ*, r) of one layer from its pre-activation covariance C (and mean m, default 0):
    κ's at N(m_i, r_i), r per neuron or at Tr C/p."""
    return _layer_moments(activation, pre_covariance, per_neuron, pre_mean)[1:]


def _student_layer(w, act, omega, per_neuron, mean=None, skew=None, cross=None):
    """One layer of (E-μ), (E-Ω): (Ω_ℓ, κ1, μ_ℓ, ΔX) from (Ω_{ℓ−1}, μ_{ℓ−1}) (``mean`` None: zero);
    with a :class:`_SecondOrder` state ``skew`` the terms (E-2) are added to Ω_ℓ and ΔX is the
    correction to the cross-covariance W_ℓ ``cross`` (None without ``skew`` or ``cross``)."""
    c = w @ omega @ w.T
    c = 0.5 * (c + c.T)
    m = None if mean is None else w @ mean
    k0, k1, ks, r = _layer_moments(act, c, per_neuron, m)
    new = (k1[:, None] * c) * k1[None, :]
    new[np.diag_indices_from(new)] += ks**2
    d_cross = None
    if skew is not None:
        d_omega, d_cross = skew.layer(w, act, c, r, m, k1, None if cross is None else w @ cross)
        new += d_omega
    return new, k1, k0, d_cross


class _SecondOrder:
    """The terms (E-2) of the module docstring, layer by layer. Each earlier layer k contributes
    one He₂ insertion (s_k, A, K_k, X_k): A = W_ℓ diag(κ1_{ℓ−1}) ⋯ W_{k+1} maps its features to the
    current pre-activations, K_k = diag(κ1_k) C_k, X_k = Cov(h_k, x) (None where not tracked)."""

    def __init__(self):
        self.insertions, self.k1 = [], None

    def copy(self):
        new = _SecondOrder()
        new.insertions, new.k1 = list(self.insertions), self.k1
        return new

    def layer(self, w, act, c, r, m, k1, xk):
        """(ΔΩ_ℓ, ΔX_ℓ) of (E-2) at pre-activation covariance C = ``c``, variances r, means m."""
        self.insertions = [(s, w if a is None else w @ (self.k1[:, None] * a), kk, x)
                           for s, a, kk, x in self.insertions]
        coef = gaussian.hermite_coefficients(act, 2, r, mean=m if m is not None and np.any(m) else None)
        s = 2.0 * np.asarray(coef, dtype=np.float64)[:, 2]  # E σ''(h_i) at N(m_i, r_i)
        t, dx = np.zeros_like(c), None
        for s_k, a, kk, x in self.insertions:
            lin = a @ kk  # Cov(linear part of h_ℓ, h_k)
            t += (a * s_k) @ (lin * lin).T + 2.0 * (lin * s_k) @ (a * lin).T
            if x is not None and xk is not None:
                dx = (0 if dx is None else dx) + 2.0 * ((a * lin) * s_k) @ x
        d_omega = 0.5 * np.outer(s, s) * c**2
        np.fill_diagonal(d_omega, 0.0)  # the diagonal of Var σ(h_i) is exact in κ*²
        d_omega += 0.5 * (s[:, None] * k1[None, :] * t.T + k1[:, None] * s[None, :] * t)
        self.insertions.append((s, None, k1[:, None] * c, xk))
        self.k1 = k1
        return d_omega, None if dx is None else 0.5 * s[:, None] * dx


def feature_mean(weights: Sequence, activations, input_covariance=None, *, per_neuron: bool = False,
                 second_order: bool = True) -> np.ndarray:
    """The population mean μ_L = E φ(x) (p_L,) of a deep random-feature map, x ~ N(0, Σ).

    The recursion (E-μ), (E-Ω) of the module docstring: μ_ℓ = κ0(m_ℓ, r_ℓ) with the pre-activation
    mean m_ℓ = W_ℓ μ_{ℓ−1} (μ_0 = 0) and variances from the centred covariances (per neuron or at
    Tr C_ℓ/p_ℓ, ``per_neuron``). Exact at the first layer with ``per_neuron=True`` (the variances
    ‖w_i‖² then enter one by one); deeper, exact up to the linearisation of the covariances it uses
    (with ``second_order``, as in :func:`linearized_covariances`, the variances include the terms
    (E-2); the mean itself is the first-order κ0). Zero for odd activations. Apply it to a teacher's
    chain for μ*.
    """
    if not isinstance(second_order, (bool, np.bool_)):
        raise TypeError(f"second_order must be True or False, got {second_order!r}")
    student = list(weights)
    sigma, mats, acts = _student_chain(student, activations, input_covariance)
    skew = _SecondOrder() if second_order and per_neuron and not all(a.is_odd for a in acts) else None
    omega, mean = sigma, np.zeros(sigma.shape[0])
    for w, act in zip(mats, acts):
        omega, _, mean, _ = _student_layer(w, act, omega, per_neuron, mean, skew)
    return mean


def linearized_covariances(weights: Sequence, activations, teacher_weights: Sequence | None = None,
                           teacher_activations=None, input_covariance=None, *, per_neuron: bool = False,
                           shared_layers: int | None = None,
                           center: bool = True, second_order: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearised (Ω, Φ, Ψ) of a deep random-feature student and a linear or deep teacher.

    Parameters
    ----------
    weights : list of arrays, W_ℓ of shape (p_ℓ, p_{ℓ−1}), p_0 = d, used as given.
    activations : one activation (name or :class:`asymptotics.functions.Activation`) per layer,
        or a single one for all layers.
    teacher_weights, teacher_activations : the teacher network; ``None`` means the linear
        teacher ψ(x) = x (k = d).
    input_covariance : Σ (d × d), identity by default.
    per_neuron : evaluate κ1, κ* at each neuron's own pre-activation variance (default: at the
        layer's mean variance Tr C_ℓ/p_ℓ).
    shared_layers : number of first layers the teacher shares with the student (the same
        neurons). Default: detected as the longest common prefix of identical weight *objects*
        with identical activations.
    center : True (default): the covariances of the features centred by their exact population
        means (:func:`feature_mean`), Ω = Cov φ, Φ = Cov(φ, ψ), Ψ = Cov ψ; False: the raw second
        moments E[φφᵀ] = Ω + μμᵀ, E[φψᵀ] = Φ + μμ*ᵀ, E[ψψᵀ] = Ψ + μ*μ*ᵀ. The two agree for odd
        activations (all means vanish).
    second_order : True (default; with ``per_neuron=True`` only): add the terms (E-2) of the
        module docstring — the layer's own k = 2 Mehler term and the third-cumulant (skewness)
        correction from the earlier layers' He₂ components — to Ω, Ψ and the student's part of Φ;
        for relu they bring the centred Ω of a 2-layer network (d = 100, p = 200) from 11 % to
        2.5 % of the sampled covariance. False: the first-order
        linearisation (E-Ω) alone. No effect for odd activations (bit for bit). Where the terms
        make the joint covariance of (φ, ψ) indefinite (narrow layers, where they are not small),
        a ``UserWarning`` says so and the first-order moments are returned.

    Returns
    -------
    Ω (p_L × p_L), Φ (p_L × k), Ψ (k × k), all float64; see the module docstring for the
    recursion (E-μ), (E-Ω), with the means of every layer propagated.
    """
    for name, flag in (("center", center), ("second_order", second_order)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    student = list(weights)
    sigma, mats, acts = _student_chain(student, activations, input_covariance)
    t_mats, t_acts = _teacher_chain(teacher_weights, teacher_activations, sigma.shape[0])
    shared = _shared_layers(shared_layers, student, teacher_weights, mats, acts, t_mats, t_acts)
    # (E-2): per neuron only (the mean-variance convention stays the published first-order one);
    # it vanishes for odd activations and is skipped (bit for bit)
    active = bool(second_order and per_neuron and not all(a.is_odd for a in list(acts) + list(t_acts)))
    chains = (mats, acts, t_mats, t_acts, shared)
    omega, cross, psi, mean, t_mean = _propagate(sigma, chains, per_neuron, active)
    if active:
        joint = np.block([[omega, cross], [cross.T, psi]])
        low = float(np.linalg.eigvalsh(0.5 * (joint + joint.T)).min())
        if low < -1e-10 * float(np.max(np.abs(joint))):
            warnings.warn(f"linearized_covariances: the second-order terms (E-2) make the joint covariance "
                          f"of (φ, ψ) indefinite (smallest eigenvalue {low:.2e}; narrow layers?): the "
                          f"first-order moments are returned (second_order=False)", UserWarning, stacklevel=2)
            omega, cross, psi, mean, t_mean = _propagate(sigma, chains, per_neuron, False)
    if center:
        return omega, cross, psi
    mu = np.zeros(omega.shape[0]) if mean is None else mean
    mu_t = np.zeros(psi.shape[0]) if t_mean is None else t_mean
    return omega + np.outer(mu, mu), cross + np.outer(mu, mu_t), psi + np.outer(mu_t, mu_t)


def _propagate(sigma, chains, per_neuron, second_order):
    """(Ω, X, Ψ, μ, μ*) by (E-μ), (E-Ω) (and (E-2) with ``second_order``) along the shared layers,
    then the student's and the teacher's own layers; μ None: zero (the centred path, bit for bit)."""
    mats, acts, t_mats, t_acts, shared = chains
    skew = _SecondOrder() if second_order else None
    omega, mean = sigma.copy(), None
    for i in range(shared):  # the same neurons: Ω = Ψ = X
        omega, _, mean, _ = _student_layer(mats[i], acts[i], omega, per_neuron, mean, skew)
    psi, cross, t_mean = omega.copy(), omega.copy(), mean
    t_skew = None if skew is None else skew.copy()
    for i in range(shared, len(mats)):
        omega_new, k1, mean, d_cross = _student_layer(mats[i], acts[i], omega, per_neuron, mean, skew, cross)
        cross = k1[:, None] * (mats[i] @ cross) + (0.0 if d_cross is None else d_cross)
        omega = omega_new
    for j in range(shared, len(t_mats)):
        psi_new, k1t, t_mean, _ = _student_layer(t_mats[j], t_acts[j], psi, per_neuron, t_mean, t_skew)
        cross = (cross @ t_mats[j].T) * k1t[None, :]
        psi = psi_new
    return omega, cross, psi, mean, t_mean


def _student_chain(student: list, activations, input_covariance) -> tuple[np.ndarray, list, list]:
    """Σ, the checked weight matrices and the activations of a student chain."""
    sigma = _input_covariance(input_covariance, student)
    mats = _check_chain(student, "weights", sigma.shape[0])
    return sigma, mats, _check_activations(activations, len(mats), "activations")


def _input_covariance(input_covariance, student: list) -> np.ndarray:
    """Σ: the identity of the student's input dimension, or the given symmetric PSD matrix."""
    if input_covariance is None:
        d = _as_matrix(student[0], "weights[0]").shape[1] if len(student) else 0
        return np.eye(d)
    sigma = _as_matrix(input_covariance, "input_covariance")
    if sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"input_covariance must be square, got shape {sigma.shape}")
    if np.max(np.abs(sigma - sigma.T), initial=0.0) > 1e-10 * max(np.max(np.abs(sigma)), 1e-300):
        raise ValueError("input_covariance must be symmetric")
    if np.linalg.eigvalsh(sigma).min() < -1e-10 * max(np.max(np.abs(sigma)), 1e-300):
        raise ValueError("input_covariance must be positive semi-definite")
    return sigma


def _teacher_chain(teacher_weights, teacher_activations, d: int) -> tuple[list, list]:
    """Checked teacher weights and activations ([] and [] for the linear teacher ψ(x) = x)."""
    if teacher_weights is None:
        if teacher_activations is not None:
            raise ValueError("teacher_activations given without teacher_weights")
        return [], []
    if teacher_activations is None:
        raise ValueError("teacher_weights given without teacher_activations")
    t_mats = _check_chain(list(teacher_weights), "teacher_weights", d)
    return t_mats, _check_activations(teacher_activations, len(t_mats), "teacher_activations")


def _shared_layers(shared_layers, student, teacher_weights, mats, acts, t_mats, t_acts) -> int:
    """Number of first layers the teacher shares with the student: checked if given, else the longest
    common prefix of identical weight *objects* with identical activations."""
    if shared_layers is None:
        shared = 0
        if teacher_weights is not None:
            for ws, wt, a_s, a_t in zip(student, teacher_weights, acts, t_acts):
                if ws is wt and a_s.name == a_t.name:
                    shared += 1
                else:
                    break
        return shared
    shared = int(shared_layers)
    if not 0 <= shared <= min(len(mats), len(t_mats)):
        raise ValueError(f"shared_layers must be in [0, {min(len(mats), len(t_mats))}], got {shared_layers}")
    for i in range(shared):
        if mats[i].shape != t_mats[i].shape or not np.array_equal(mats[i], t_mats[i]) or acts[i].name != t_acts[i].name:
            raise ValueError(f"shared_layers={shared}: layer {i} of the teacher differs from the student's")
    return shared


# --------------------------------------------------------------------------- every Hermite order
#: Largest Hermite order of :func:`kernel_covariances` (the series is cut where its remainder
#: bound falls below ``tol``, at this order at the latest).
KERNEL_MAX_ORDER = 80


def _normalised_hermite(act, r: np.ndarray, order: int) -> np.ndarray:
    """α_k(r_i) = √(k!) c_k(r_i) r_i^{k/2}, k = 0..order (so E σ(N)² = Σ_k α_k²), shape (p, order+1)."""
    c = gaussian.hermite_coefficients(act, order, r)
    k = np.arange(order + 1)
    log_fact = np.cumsum(np.log(np.maximum(k, 1)))
    return c * np.exp(0.5 * log_fact + 0.5 * k * np.log(r)[:, None])


def _kernel_layer(act, c: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(Ω, κ1, remainder bound) of one layer from its pre-activation covariance C (module docstring of
    :func:`kernel_covariances`): Ω_ij = Σ_{k≥1} α_k(r_i) α_k(r_j) ρ_ij^k, Ω_ii = E σ(h_i)²."""
    r = np.clip(np.diag(c), 0.0, None)
    if np.any(r <= 0):
        raise ValueError("a pre-activation has zero variance (a zero row of the weights?)")
    s = np.sqrt(r)
    rho = np.clip(c / s[:, None] / s[None, :], -1.0, 1.0)
    np.fill_diagonal(rho, 0.0)
    rho_max = float(np.max(np.abs(rho))) if rho.size > 1 else 0.0
    mom = gaussian.moments(act, r)
    second = np.asarray(mom.second, dtype=np.float64) * np.ones_like(r)
    order = KERNEL_MAX_ORDER
    if rho_max < 1.0:
        scale = float(np.max(second))
        order = int(min(KERNEL_MAX_ORDER, max(3, np.ceil(np.log(tol / scale) / np.log(max(rho_max, 1e-300))))))
    alpha = _normalised_hermite(act, r, order)
    omega = np.zeros_like(c)
    power = rho.copy()
    for k in range(1, order + 1):
        omega += np.outer(alpha[:, k], alpha[:, k]) * power
        power *= rho
    tail = np.clip(second - np.sum(alpha**2, axis=1), 0.0, None)  # Σ_{k>order} α_k², per neuron
    bound = rho_max ** (order + 1) * float(np.max(tail))
    omega[np.diag_indices_from(omega)] = second
    k1 = np.asarray(mom.slope, dtype=np.float64) * np.ones_like(r)
    return 0.5 * (omega + omega.T), k1, bound


def kernel_covariances(weights: Sequence, activations, input_covariance=None, *,
                       tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""(Ω, Φ, Ψ) of a deep random-feature student and the linear teacher ψ(x) = x with **every**
    Hermite order of the activations kept: the finite-width correction to
    :func:`linearized_covariances`.

    Each layer's pre-activations h = W_ℓ φ_{ℓ−1}(x) are taken jointly Gaussian with covariance
    C_ℓ = W_ℓ Ω_{ℓ−1} W_ℓᵀ (exact at the first layer), and Ω_ℓ is their exact image through σ_ℓ:
    with r_i = (C_ℓ)_ii, ρ_ij = (C_ℓ)_ij/√(r_i r_j) and the normalised Hermite coefficients
    α_k(r) = √(k!) c_k(r) r^{k/2} of :func:`asymptotics.gaussian.hermite_coefficients` (Mehler's
    formula),

        (Ω_ℓ)_ij = Σ_{k≥1} α_k(r_i) α_k(r_j) ρ_ij^k   (i ≠ j),       (Ω_ℓ)_ii = E σ(h_i)²,

    whose k = 1 term is the linearisation (κ1κ1ᵀ) ∘ C_ℓ and whose k ≥ 3 terms are the off-diagonal
    higher Hermite components that (E-Ω) drops: an O(1/p) perturbation in operator norm, against
    smallest eigenvalues of Ω of order κ*², which moves the ridge error by O(1/p) (see
    ``docs/theory/deep_features.md``, "Finite width"). The series is cut at the first order K with
    max|ρ|^{K+1}·max E σ² ≤ ``tol``; a ``UserWarning`` reports a remainder bound
    max|ρ|^{K+1}·max_i Σ_{k>K} α_k(r_i)² above ``tol`` (at order :data:`KERNEL_MAX_ORDER`).
    By Stein's lemma Φ = diag(κ1,L) W_L ⋯ diag(κ1,1) W_1 Σ exactly, as in the per-neuron
    linearisation, and Ψ = Σ.

    Only odd activations (κ0 = 0: every pre-activation is centred) are accepted; the activations'
    coefficients are evaluated at each neuron's own variance. Weights are used as given.
    """
    student = list(weights)
    sigma, mats, acts = _student_chain(student, activations, input_covariance)
    even = sorted({a.name for a in acts if not a.is_odd})
    if even:
        raise ValueError(f"activations must be odd for kernel_covariances, got {even}: "
                         "use linearized_covariances")
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    omega, cross = sigma.copy(), sigma.copy()
    for i, (w, act) in enumerate(zip(mats, acts)):
        c = w @ omega @ w.T
        omega, k1, bound = _kernel_layer(act, 0.5 * (c + c.T), float(tol))
        if bound > tol:
            warnings.warn(f"kernel_covariances: layer {i + 1}: Hermite series cut at order {KERNEL_MAX_ORDER} "
                          f"with remainder bound {bound:.1e} > tol = {tol:g} (nearly parallel rows of "
                          f"weights[{i}])", UserWarning, stacklevel=2)
        cross = k1[:, None] * (w @ cross)
    return omega, cross, sigma.copy()


