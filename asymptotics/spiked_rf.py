r"""Exact asymptotic test error of ridge after one giant step: spiked random features.

From "Asymptotics of feature learning in two-layer networks after one gradient-step" (Cui, Pesce,
Dandi, Krzakala, Lu, Zdeborová, Loureiro, ICML 2024, arXiv:2402.04980), the companion of "How
Two-Layer Neural Networks Learn, One (Giant) Step at a Time" (arXiv:2305.18270). The equations are
collected in ``docs/theory/giant_step.md``.

Setting
-------
Single-index teacher y = σ*(θ·z), z ~ N(0, I_d), ‖θ‖ = 1, noiseless. Student
f(z) = aᵀσ(Wz)/√p, rows of W0 of unit norm, a0 = +1/√p (``a_init="ones"``). One full-batch
gradient step on the first layer with n0 = α0 d fresh samples and η = η̃ p, then a ridge readout
on n = α d fresh samples, then the test error E (y − ŷ)² (no 1/2).

Ridge convention. :func:`one_step_ridge_error` takes the project's λ, the readout
θ̂ = (FᵀF/n + λI)⁻¹Fᵀy/n with F = σ(ZWᵀ), scalar or one value per point of the α grid. The
paper writes w = argmin ‖y − Xw/√p‖² + λ_P‖w‖², X = σ(ZWᵀ), which gives the same predictions iff
λ = λ_P p/n; experiments convert with :func:`asymptotics.conventions.lam_from_scaled_features`
(a λ_P constant along the grid, as in the companion, is λ = λ_P (p/d)/α). In the equations below
the penalty appears as λ_P = λ α_eff.

Equivalent model (c, r, γ)
--------------------------
With μ1 = E[ξσ(ξ)], v' = Var σ'(ξ), μ1* = E[ξσ*(ξ)], m* = E σ*(ξ)², ξ ~ N(0, 1):

    c = 1 + η̃² m* v'/α0,   r = η̃ μ1 √(m*/α0 + μ1*²),   γ = μ1*/√(m*/α0 + μ1*²),   ρ = √(1 − γ²);

α0 = 0 means "no step": c = 1, r = 0, γ = 0 (plain random features). The features after the
step are x_j(z) = σ(r κ + √c ξ_j) with κ = v̂·z the spike coordinate and ξ_j = w0_j·Πz (Π
projects out v̂); the teacher is y = σ*(γκ + ρκ⊥). (The formula assumes a centred residual at
initialisation: E[y] − μ0(σ) and the μ2(σ)E[y]-term of the one-step cosine are neglected; a warning is issued when
μ2(σ)·(E y − E σ) ≠ 0.)

Conditional Gaussian equivalence given κ = k (E over ξ ~ N(0, 1), ``inner_nodes``-point
Gauss–Hermite, 19 as the companion code):

    μ0(k) = E σ(rk + √c ξ),  μ1(k) = E[σ(rk + √c ξ) ξ]/√c,
    μ2(k)² = max(0, E σ(rk + √c ξ)² − μ0(k)² − c μ1(k)²),
    h(k) = E σ*(γk + ρξ),  h1(k) = E[ξ σ*(γk + ρξ)],  hh(k) = E σ*(γk + ρξ)².

Spectral inputs: W = √c W0, Ω = W Π Wᵀ = U diag(D) Uᵀ (p×p), v̂ the spike direction and ζ a unit
vector ⊥ v̂ (the teacher's bulk direction), both scaled to norm √p (= √d in the companion, p = d;
see the note on p ≠ d below), F_i = (UᵀWv)_i², H_i = (UᵀWζ)_i²; ⟨·⟩ is the average over
i = 1..p. Two sources (``spectrum``):

* ``"draw"`` (default, as the companion): one finite draw of W0 (rows N(0, I/d) rescaled to unit
  norm), v and ζ from ``np.random.RandomState(seed)`` in the companion's order (``seed=58``
  reproduces its draw); ``d`` and ``p = round(p_over_d·d)`` set the size.
* ``"mp"`` (deterministic, p, d → ∞ with p/d = y fixed): for Gaussian W0, W0v̂ is independent of
  W0Π, so F_i = c y·χ²₁ independent of D_i and ⟨g(D)F⟩ → c y⟨g(D)⟩; ζ is uniform in range(Π),
  so E_ζ H_i = y D_i and ⟨g(D)H⟩ → y⟨D g(D)⟩. W0ΠW0ᵀ is a Wishart matrix with ratio y and mean
  eigenvalue 1, so D/c follows Marchenko–Pastur: density √((b−x)(x−a))/(2πyx) on
  [a, b] = [(1 ∓ √y)²] plus an atom 1 − 1/y at 0 for y > 1. ⟨·⟩ is then a Gauss–Jacobi rule
  (weight (1−u)^{1/2}(1+u)^{−1/2} on x = a + (b−a)(1+u)/2; exact for a polynomial times the
  density at y = 1) with ``mp_nodes`` nodes. A finite draw fluctuates around it by O(1/√p)
  (mostly through the single teacher direction in H: ~1e-4 on the MSE at α0 = 20, d = 2000,
  a few percent at α0 = 0, d = 400); the mean over draws converges to it (tested).

Fixed point (order parameters q1, q2, V1, V2, θ, ψ, m and hats), with α_eff = n/p = α/(p/d)
(α_eff = α for the companion's p = d):

    S_i = λ_P + V̂1 D_i + V̂2,   N_i = q̂1 D_i + q̂2 + θ̂² F_i + ψ̂² H_i,
    q1 = ⟨D N/S²⟩, q2 = ⟨N/S²⟩, V1 = ⟨D/S⟩, V2 = ⟨1/S⟩, θ = θ̂⟨F/S⟩, ψ = ψ̂⟨H/S⟩,
    V_k = μ1(k)² V1 + μ2(k)² V2,   c_k = μ0(k) m + μ1(k) k θ,   q_k = μ1(k)² q1 + μ2(k)² q2,
    e_k = hh(k) − 2 c_k h(k) + c_k² − 2 μ1(k) ψ h1(k) + q_k,
    m  = E_k[μ0(k)(h(k) − μ1(k) k θ)/(1+V_k)] / E_k[μ0(k)²/(1+V_k)]   (m = 0 if the
         denominator vanishes, e.g. odd σ at r = 0),
    q̂1 = α_eff E_k[μ1(k)² e_k/(1+V_k)²],   q̂2 = α_eff E_k[μ2(k)² e_k/(1+V_k)²],
    V̂1 = α_eff E_k[μ1(k)²/(1+V_k)],        V̂2 = α_eff E_k[μ2(k)²/(1+V_k)],
    θ̂  = α_eff E_k[k μ1(k)(h(k) − c_k)/(1+V_k)],   ψ̂ = α_eff E_k[μ1(k) h1(k)/(1+V_k)],
    test MSE = E_k[e_k],

E_k over k ~ N(0, 1) by ``outer_nodes``-point Gauss–Hermite.

Notes on the transcription (checked here):

* ψ̂ has no −c_k term, unlike θ̂. This is right: ψ̂ is the correlation of the residual with the
  teacher's bulk coordinate κ⊥ (independent of k), and the mean prediction c_k depends on k only,
  so E[κ⊥ c_k | k] = 0; θ̂ is the correlation with k itself, which c_k does carry (μ1(k) k θ).
  (For odd σ and σ* a −c_k term would integrate to zero anyway, so simulations with
  tanh/tanh cannot tell the two apart; the α0 = 0 check below and the derivation can.)
* p ≠ d. The companion uses p = d. For p ≠ d, ⟨·⟩ stays the mean over the p eigen-directions,
  the hat equations carry α_eff = n/p, and v, ζ must have norm √p (not √d) in F, H (i.e. F and H
  of the norm-√d vectors times p/d). Both are fixed by the α0 = 0 limit, where the equations
  must reduce to Gaussian-equivalent ridge on random features: with these choices they
  reproduce :class:`asymptotics.ridge.GaussianCovariateModel` built on the same W0 (feature
  covariance κ1² W0ΠW0ᵀ + κ*² I, b = κ1 μ1* W0 θ) to 1e-8 for p/d ∈ {0.5, 1, 2} (tested); with
  α_eff = n/d or norm-√d vectors they are off by tens of percent. F and θ enter exactly as H and
  ψ do, so they take the same normalisation.
* α0 = 0 (companion): ζ = √d e_1, which is not exactly ⊥ v̂; Ω = W0ΠW0ᵀ still drops the v̂
  direction. This is a finite-size choice (O(1/√d) effect on a single draw, ~1 % at d = 1000);
  ``spectrum="mp"`` has no such ambiguity.

Solver (as the companion): starting from (q1, q2, V1, V2, θ, ψ, m) = (0.1, 0.2, 3, 3, 0.5, 0.5,
1.5), iterate hats → overlaps (and m from the previous overlaps), stop when the largest change
of (q1, q2, V1, V2, θ, ψ, m) is below ``tol``, else damp every non-hat variable,
x ← (1 − damping)·x_new + damping·x (damping 0.5). Points of the α grid are solved in
increasing order, each warm-started at the previous solution. A point that reaches
``max_iter`` or produces a non-finite value is flagged (``converged`` False, a
:class:`SpikedRFWarning`); its values are the last finite iterate (never a silent NaN).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy
from scipy.special import roots_jacobi

from . import conventions, functions, gaussian
from .functions import z
from .giant_step import MultiIndexTarget, activation_constants

__all__ = ["SpikedRFWarning", "SpikedRFParameters", "SpectralInputs", "SpikedRFResult",
           "spiked_parameters", "draw_initialisation", "spectral_inputs",
           "one_step_ridge_error", "lam_to_project", "lam_to_paper"]

_INIT = (0.1, 0.2, 3.0, 3.0, 0.5, 0.5, 1.5)   # (q1, q2, V1, V2, θ, ψ, m), companion code
_NAMES = ("q1", "q2", "V1", "V2", "theta", "psi", "m")


class SpikedRFWarning(RuntimeWarning):
    """A point of the α grid did not converge (or hit a non-finite value)."""


# --------------------------------------------------------------------------------------------
# λ conventions
# --------------------------------------------------------------------------------------------
def lam_to_project(lam_paper, p, n):
    """Deprecated: :func:`asymptotics.conventions.lam_from_scaled_features` (λ = λ_P p/n)."""
    warnings.warn("asymptotics.spiked_rf.lam_to_project is deprecated: use "
                  "asymptotics.conventions.lam_from_scaled_features", DeprecationWarning, stacklevel=2)
    return np.asarray(conventions.lam_from_scaled_features(lam_paper, p, n), dtype=float)


def lam_to_paper(lam, p, n):
    """Deprecated: :func:`asymptotics.conventions.lam_to_scaled_features` (λ_P = λ n/p)."""
    warnings.warn("asymptotics.spiked_rf.lam_to_paper is deprecated: use "
                  "asymptotics.conventions.lam_to_scaled_features", DeprecationWarning, stacklevel=2)
    return np.asarray(conventions.lam_to_scaled_features(lam, p, n), dtype=float)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _target(target) -> tuple[MultiIndexTarget, sympy.Expr]:
    """A single-index target as (MultiIndexTarget in h1, expression in z)."""
    h1 = sympy.Symbol("h1", real=True)
    if isinstance(target, MultiIndexTarget):
        if target.k != 1:
            raise ValueError(f"target must be single-index (k = 1), got k = {target.k}")
        return target, target.expr.xreplace({h1: z})
    if isinstance(target, functions.Activation):
        expr = target.expr
    elif isinstance(target, str):
        if target in functions.names():
            expr = functions.get(target).expr
        else:
            mt = MultiIndexTarget(target, k=None)
            if mt.k != 1:
                raise ValueError(f"target {target!r}: a single-index target depends on h1 only")
            return mt, mt.expr.xreplace({h1: z})
    else:
        if not isinstance(target, (sympy.Basic, numbers.Real)) or isinstance(target, (bool, np.bool_)):
            # nothing but sympy objects and numbers: sympy.sympify would run the text of other
            # objects (a numpy string array, say) through Python's eval
            raise ValueError(f"target must be a registered name, a string in h1, a sympy expression "
                             f"in one variable or a MultiIndexTarget, got {type(target).__name__}")
        expr = functions.safe_expression(target, "target")
        syms = expr.free_symbols
        if len(syms) > 1:
            raise ValueError(f"target {expr} depends on more than one variable")
        if syms:
            expr = expr.xreplace({next(iter(syms)): z})
    return MultiIndexTarget(expr.xreplace({z: h1}), k=1), expr


@dataclass(frozen=True)
class SpikedRFParameters:
    """(c, r, γ, ρ) of the equivalent spiked model and the scalars they come from."""

    c: float
    r: float
    gamma: float
    rho: float
    mu1: float          # E[ξ σ(ξ)]
    v_prime: float      # Var σ'(ξ)
    mu1_star: float     # E[ξ σ*(ξ)]
    m_star: float       # E σ*(ξ)²


def spiked_parameters(activation, target, alpha0: float, eta_tilde: float) -> SpikedRFParameters:
    """(c, r, γ) of the equivalent spiked model: c = 1 + η̃² m* v'/α0, r = η̃ μ1 √(m*/α0 + μ1*²),
    γ = μ1*/√(m*/α0 + μ1*²); α0 = 0 gives (1, 0, 0) (no step). Scalars from
    :func:`asymptotics.giant_step.activation_constants` and :class:`MultiIndexTarget`. ``target``
    as in :func:`one_step_ridge_error` (strings through the whitelist parser
    :func:`asymptotics.functions.safe_expression`)."""
    alpha0, eta_tilde = float(alpha0), float(eta_tilde)
    if not (math.isfinite(alpha0) and alpha0 >= 0):
        raise ValueError(f"alpha0 must be finite and >= 0, got {alpha0}")
    if not (math.isfinite(eta_tilde) and eta_tilde >= 0):
        raise ValueError(f"eta_tilde must be finite and >= 0, got {eta_tilde}")
    const = activation_constants(activation)
    mt, _ = _target(target)
    mu1, vp = const["mu1"], const["E_dsigma2"] - const["mu1"] ** 2
    mu1s, ms = float(mt.first_order()[0]), float(mt.second_moment())
    if alpha0 == 0:
        return SpikedRFParameters(1.0, 0.0, 0.0, 1.0, mu1, vp, mu1s, ms)
    scale = math.sqrt(ms / alpha0 + mu1s ** 2)
    c = 1 + eta_tilde ** 2 * ms * vp / alpha0
    r = eta_tilde * mu1 * scale
    gamma = mu1s / scale if scale > 0 else 0.0
    return SpikedRFParameters(c, r, gamma, math.sqrt(max(0.0, 1 - gamma ** 2)), mu1, vp, mu1s, ms)


def draw_initialisation(p: int, d: int, seed: int = 58, alpha0: float = 1.0):
    """W0 (p×d, rows unit norm), spike v and teacher bulk direction ζ ⊥ v (both norm √d) from
    ``np.random.RandomState(seed)`` in the companion's order: W0 = randn(p, d)/√d rescaled,
    v = randn(d), ζ = Π randn(d). For α0 = 0 the companion uses ζ = √d e_1."""
    rs = np.random.RandomState(seed)
    W0 = rs.randn(p, d) / math.sqrt(d)
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    v = rs.randn(d)
    v *= math.sqrt(d) / np.linalg.norm(v)
    g = rs.randn(d)
    zeta = g - v * (v @ g) / (v @ v)
    zeta *= math.sqrt(d) / np.linalg.norm(zeta)
    if alpha0 == 0:
        zeta = np.zeros(d)
        zeta[0] = math.sqrt(d)
    return W0, v, zeta


@lru_cache(maxsize=8)
def _drawn_unit_spectrum(p: int, d: int, seed: int, no_step: bool):
    """(D, F, H) for c = 1 (they scale linearly with c)."""
    W0, v, zeta = draw_initialisation(p, d, seed, 0.0 if no_step else 1.0)
    wv = W0 @ v / math.sqrt(d)                       # W0 v̂
    omega = W0 @ W0.T - np.outer(wv, wv)             # W0 Π W0ᵀ
    D, U = np.linalg.eigh(omega)
    D = np.clip(D, 0.0, None)
    F = (U.T @ (W0 @ v)) ** 2 * (p / d)              # v, ζ rescaled to norm √p
    H = (U.T @ (W0 @ zeta)) ** 2 * (p / d)
    for a in (D, F, H):
        a.setflags(write=False)
    return D, F, H


@lru_cache(maxsize=8)
def _mp_unit_spectrum(y: float, nodes: int):
    """Nodes and weights of the Marchenko–Pastur law (ratio y, mean 1), atom at 0 included."""
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2
    u, w = roots_jacobi(nodes, 0.5, -0.5)
    x = a + (b - a) * (1 + u) / 2
    wt = w * (b - a) ** 2 / (8 * math.pi * y) * (1 + u) / x
    atom = max(0.0, 1 - 1 / y)
    wt *= (1 - atom) / wt.sum()                      # removes the 1e-10 rule error
    if atom > 0:
        x, wt = np.append(x, 0.0), np.append(wt, atom)
    return x, wt


@dataclass(frozen=True)
class SpectralInputs:
    """⟨g⟩ = Σ_i weights_i g(D_i, F_i, H_i) (weights 1/p for a finite draw)."""

    D: np.ndarray
    F: np.ndarray
    H: np.ndarray
    weights: np.ndarray
    kind: str


def spectral_inputs(c: float, *, spectrum: str = "draw", d: int = 2000, p_over_d: float = 1.0,
                    seed: int = 58, alpha0: float = 1.0, mp_nodes: int = 2000) -> SpectralInputs:
    """D, F, H of the fixed-point equations for W = √c W0 (see the module docstring for both sources)."""
    if spectrum == "draw":
        d = int(d)
        p = int(round(p_over_d * d))
        if d < 2 or p < 1:
            raise ValueError(f"need d >= 2 and p >= 1, got d = {d}, p = {p}")
        D, F, H = _drawn_unit_spectrum(p, d, int(seed), alpha0 == 0)
        return SpectralInputs(c * D, c * F, c * H, np.full(p, 1.0 / p), "draw")
    if spectrum == "mp":
        x, w = _mp_unit_spectrum(float(p_over_d), int(mp_nodes))
        y = float(p_over_d)
        return SpectralInputs(c * x, np.full_like(x, c * y), c * y * x, w, "mp")
    raise ValueError(f"spectrum must be 'draw' or 'mp', got {spectrum!r}")


# --------------------------------------------------------------------------------------------
# Conditional Gaussian-equivalence coefficients on the outer nodes
# --------------------------------------------------------------------------------------------
def _coefficients(act, target_fn, par: SpikedRFParameters, outer: int, inner: int):
    """μ0, μ1, μ2, h, h1, hh on the outer Gauss–Hermite nodes k, and the weights."""
    k, wk = gaussian._gauss_hermite(outer)           # probabilists' nodes, weights sum to 1
    xi, wx = gaussian._gauss_hermite(inner)
    sc = math.sqrt(par.c)
    pre = par.r * k[:, None] + sc * xi[None, :]
    s = np.asarray(act.numpy(pre), dtype=float)
    mu0 = s @ wx
    mu1 = (s * xi) @ wx / sc
    e2 = (s * s) @ wx
    mu2 = np.sqrt(np.maximum(0.0, e2 - mu0 ** 2 - par.c * mu1 ** 2))
    t = target_fn(par.gamma * k[:, None] + par.rho * xi[None, :])
    h, h1, hh = t @ wx, (t * xi) @ wx, (t * t) @ wx
    return k, wk, mu0, mu1, mu2, h, h1, hh, float(wk @ e2)


# --------------------------------------------------------------------------------------------
# Result and solver
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpikedRFResult:
    """Solution on the α grid (arrays of the grid's shape, in the order given).

    ``alpha`` = n/d of the readout batch; ``lam`` the project λ at each point and ``lam_paper``
    = λ α_eff, the penalty as it enters the equations (= the paper's λ_P = λ n/p). Order parameters q1, q2, V1, V2, theta, psi, m and their
    conjugates (``hats`` dict: qhat1, qhat2, Vhat1, Vhat2, thetahat, psihat).
    """

    alpha: np.ndarray
    lam_paper: np.ndarray
    lam: np.ndarray
    test_error: np.ndarray
    q1: np.ndarray
    q2: np.ndarray
    V1: np.ndarray
    V2: np.ndarray
    theta: np.ndarray
    psi: np.ndarray
    m: np.ndarray
    hats: dict
    converged: np.ndarray
    iterations: np.ndarray
    c: float
    r: float
    gamma: float
    rho: float
    p_over_d: float
    spectrum: str


def _solve_point(a_eff, lam_p, S_in: SpectralInputs, co, init, *, damping, tol, max_iter):
    k, wk, mu0, mu1, mu2, h, h1, hh, e2 = co
    D, F, H, wD = S_in.D, S_in.F, S_in.H, S_in.weights
    m1s, m2s = mu1 * mu1, mu2 * mu2
    den_scale = e2 + 1e-300                          # E σ², the scale of E μ0(k)²
    x = np.array(init, dtype=float)
    hats = np.zeros(6)

    def step(x):
        q1, q2, V1, V2, th, ps, m = x
        Vk = m1s * V1 + m2s * V2
        ck = mu0 * m + mu1 * k * th
        ek = hh - 2 * ck * h + ck * ck - 2 * mu1 * ps * h1 + m1s * q1 + m2s * q2
        g1, g2 = wk / (1 + Vk), wk / (1 + Vk) ** 2
        hat = a_eff * np.array([g2 @ (m1s * ek), g2 @ (m2s * ek), g1 @ m1s, g1 @ m2s,
                                g1 @ (k * mu1 * (h - ck)), g1 @ (mu1 * h1)])
        qh1, qh2, Vh1, Vh2, thh, psh = hat
        S = lam_p + Vh1 * D + Vh2
        N = qh1 * D + qh2 + thh ** 2 * F + psh ** 2 * H
        invS = wD / S
        NS2 = invS * N / S
        den = g1 @ (mu0 * mu0)
        m_new = (g1 @ (mu0 * (h - mu1 * k * th))) / den if den > 1e-12 * den_scale else 0.0
        new = np.array([NS2 @ D, NS2.sum(), invS @ D, invS.sum(), thh * (invS @ F),
                        psh * (invS @ H), m_new])
        return new, hat

    for it in range(1, max_iter + 1):
        with np.errstate(all="ignore"):
            new, hat = step(x)
        if not (np.all(np.isfinite(new)) and np.all(np.isfinite(hat))):
            return x, hats, False, it
        hats = hat
        if np.max(np.abs(new - x)) < tol:
            return new, hats, True, it
        x = (1 - damping) * new + damping * x
    return x, hats, False, max_iter


def _test_error(x, co):
    k, wk, mu0, mu1, mu2, h, h1, hh, _ = co
    q1, q2, V1, V2, th, ps, m = x
    ck = mu0 * m + mu1 * k * th
    ek = hh - 2 * ck * h + ck * ck - 2 * mu1 * ps * h1 + mu1 ** 2 * q1 + mu2 ** 2 * q2
    return float(wk @ ek)


def one_step_ridge_error(activation, target, alpha0: float, eta_tilde: float, alpha,
                         lam_paper=None, *, lam=None, p_over_d: float = 1.0,
                         spectrum: str = "draw", d: int = 2000, seed: int = 58,
                         inner_nodes: int = 19, outer_nodes: int = 120, mp_nodes: int = 2000,
                         damping: float = 0.5, tol: float = 1e-8, max_iter: int = 20000,
                         init=None) -> SpikedRFResult:
    r"""Asymptotic test error of the ridge readout after one giant step (module docstring;
    equations in ``docs/theory/giant_step.md``).

    Parameters
    ----------
    activation : student σ, a name registered in :mod:`asymptotics.functions` (or Activation).
    target : single-index link σ*: a registered name (``"sin"`` is not built in; pass
        ``sympy.sin(z)`` or ``"sin(h1)"``), a sympy expression in one variable, a string in
        ``h1`` (parsed by the whitelist parser :func:`asymptotics.functions.safe_expression`,
        never evaluated as Python), or a :class:`MultiIndexTarget` with k = 1.
    alpha0 : n0/d, samples of the gradient step (0: no step, plain random features).
    eta_tilde : η̃ = η/p.
    alpha : n/d of the readout batch (scalar or array; solved in increasing order, each point
        warm-started from the previous one).
    lam : the project's ridge λ (θ = (FᵀF/n + λI)⁻¹Fᵀy/n, F = σ(ZWᵀ)), scalar or an array like
        ``alpha`` (a penalty constant in the paper's λ_P varies along the grid: λ = λ_P (p/d)/α,
        :func:`asymptotics.conventions.lam_from_scaled_features`). The equations use λ α_eff.
    lam_paper : deprecated alias (the paper's λ_P, converted by
        :func:`asymptotics.conventions.lam_from_scaled_features`); give exactly one of the two.
    p_over_d : p/d (the hat equations use α_eff = n/p = α/(p/d)).
    spectrum : ``"draw"`` (one finite draw of size d, p = round(p_over_d·d), ``seed``; the
        companion's legacy ``RandomState`` order) or ``"mp"`` (deterministic p, d → ∞ limit).
    inner_nodes, outer_nodes : Gauss–Hermite points of the inner (ξ) and outer (k) averages.
    mp_nodes : Gauss–Jacobi nodes of the Marchenko–Pastur average (``spectrum="mp"``).
    damping, tol, max_iter, init : solver (module docstring); ``init`` = (q1, q2, V1, V2, θ, ψ, m)
        of the first point.

    Returns
    -------
    :class:`SpikedRFResult` (``test_error``, order parameters, ``converged`` per point, c, r, γ).
    """
    act = functions.get(activation)
    mt, _ = _target(target)
    alpha_in, p_over_d, lams = _check_grid(alpha, p_over_d, lam, lam_paper)
    if not (0 <= damping < 1 and tol > 0 and int(max_iter) >= 1):
        raise ValueError(f"need 0 <= damping < 1, tol > 0 and max_iter >= 1, got damping = {damping}, "
                         f"tol = {tol}, max_iter = {max_iter}")
    par = spiked_parameters(act, mt, alpha0, eta_tilde)
    _warn_uncentred(act, mt, alpha0)
    S_in = spectral_inputs(par.c, spectrum=spectrum, d=d, p_over_d=p_over_d, seed=seed,
                           alpha0=float(alpha0), mp_nodes=mp_nodes)
    g = mt.numpy
    co = _coefficients(act, lambda x: g(x[..., None]), par, int(outer_nodes), int(inner_nodes))
    a_flat = alpha_in.reshape(-1)
    sol = _solve_grid(a_flat / p_over_d, lams, S_in, co, _INIT if init is None else init,
                      damping=damping, tol=tol, max_iter=int(max_iter), alphas=a_flat)

    def sh(a):
        return a.reshape(alpha_in.shape)

    out, hats, err, conv, its, pen = sol
    names = ("qhat1", "qhat2", "Vhat1", "Vhat2", "thetahat", "psihat")
    return SpikedRFResult(
        alpha=sh(a_flat.copy()), lam_paper=sh(pen), lam=sh(lams.copy()),
        test_error=sh(err), **{nm: sh(out[:, j].copy()) for j, nm in enumerate(_NAMES)},
        hats={nm: sh(hats[:, j].copy()) for j, nm in enumerate(names)},
        converged=sh(conv), iterations=sh(its), c=par.c, r=par.r, gamma=par.gamma,
        rho=par.rho, p_over_d=p_over_d, spectrum=S_in.kind)


def _warn_uncentred(act, mt, alpha0) -> None:
    const = activation_constants(act)
    if float(alpha0) > 0 and abs(const["mu2"] * (float(mt.mean()) - const["mu0"])) > 1e-12:
        warnings.warn("μ2(σ)·(E y − E σ) ≠ 0: the equivalent model (c, r, γ) neglects this term "
                      "(centred residual assumed)", SpikedRFWarning, stacklevel=3)


def _check_grid(alpha, p_over_d, lam, lam_paper):
    """(α array, p/d, project λ per point (flat)) of :func:`one_step_ridge_error`."""
    alpha_in = np.asarray(alpha, dtype=float)
    a_flat = alpha_in.reshape(-1)
    if a_flat.size == 0 or not np.all(np.isfinite(a_flat)) or np.any(a_flat <= 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha!r}")
    p_over_d = float(p_over_d)
    if not (math.isfinite(p_over_d) and p_over_d > 0):
        raise ValueError(f"p_over_d must be > 0, got {p_over_d}")
    if (lam_paper is None) == (lam is None):
        raise ValueError("give exactly one of lam (project λ) and lam_paper (deprecated: the paper's λ_P)")
    if lam_paper is not None:
        warnings.warn("one_step_ridge_error(lam_paper=...) is deprecated: pass the project's lam "
                      "(asymptotics.conventions.lam_from_scaled_features(lam_paper, p, n))",
                      DeprecationWarning, stacklevel=3)
        lp = np.asarray(lam_paper, dtype=float)
        if not np.all(np.isfinite(lp)) or np.any(lp <= 0):
            raise ValueError("the ridge penalty must be finite and > 0")
        lam = conventions.lam_from_scaled_features(lp, p_over_d, alpha_in)
    lams = np.broadcast_to(np.asarray(lam, dtype=float), alpha_in.shape).reshape(-1).copy()
    if not np.all(np.isfinite(lams)) or np.any(lams <= 0):
        raise ValueError("the ridge penalty must be finite and > 0")
    return alpha_in, p_over_d, lams


def _solve_grid(a_eff, lams, S_in, co, init, *, damping, tol, max_iter, alphas):
    """The fixed point at every point of the grid, in increasing α, warm-started; the penalty
    entering the equations is λ α_eff (= the paper's λ_P). Returns (order parameters (N, 7),
    hats (N, 6), test errors, converged, iterations, λ α_eff)."""
    pen = lams * a_eff
    order = np.argsort(alphas, kind="stable")
    out = np.zeros((alphas.size, 7))
    hats = np.zeros((alphas.size, 6))
    err = np.zeros(alphas.size)
    conv = np.zeros(alphas.size, dtype=bool)
    its = np.zeros(alphas.size, dtype=int)
    x = np.array(init, dtype=float)
    for i in order:
        xi, hi, ok, it = _solve_point(a_eff[i], pen[i], S_in, co, x,
                                      damping=damping, tol=tol, max_iter=max_iter)
        out[i], hats[i], conv[i], its[i] = xi, hi, ok, it
        err[i] = _test_error(xi, co)
        if ok:
            x = xi                                    # warm start
        else:
            warnings.warn(f"spiked RF fixed point did not converge at alpha = {alphas[i]:.4g} "
                          f"(λ = {lams[i]:.4g}) after {it} iterations; values are the last "
                          "finite iterate", SpikedRFWarning, stacklevel=3)
    return out, hats, err, conv, its, pen
