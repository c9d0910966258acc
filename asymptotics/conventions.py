r"""Each paper's ridge penalty ↔ this project's mean-loss λ (base layer; each conversion once).

This project's ridge estimator, everywhere in theory and simulators, is

    θ̂ = argmin_θ (1/n) Σ_i (y_i − θᵀφ_i)² + λ‖θ‖² = (FᵀF/n + λ I)⁻¹ Fᵀy/n .

The papers write their penalties differently; the experiments and the command line convert here,
and only here, and pass the project's λ on:

* **sum loss** (the published code of *Asymptotics of Learning with Deep Structured (Random)
  Features*, arXiv:2402.13999, and of its predecessor *Deterministic equivalent and error
  universality of deep random features learning*, arXiv:2302.00401; its trained-feature
  experiments too): ‖y − Fθ‖² + λ_c‖θ‖², so λ = λ_c / n.
* **scaled features** (*How Two-Layer Neural Networks Learn, One (Giant) Step at a Time*,
  arXiv:2305.18270, and the spiked random-features asymptotics of *Asymptotics of feature
  learning in two-layer networks after one gradient-step*, arXiv:2402.04980):
  ‖y − Xw/√p‖² + λ_P‖w‖² on the p features X; with θ = w/√p the penalty is λ_P p ‖θ‖², so
  λ = λ_P · p / n.

Every function accepts scalars or arrays (broadcast) and returns floats or float arrays.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lam_from_sum_loss", "lam_to_sum_loss", "lam_from_scaled_features", "lam_to_scaled_features",
           "CONVENTIONS", "PROJECT_CONVENTION"]

PROJECT_CONVENTION = "mean loss: (1/n)Σ(y−θᵀφ)² + λ‖θ‖²"

#: One line per paper convention, written to the JSON of the experiments that use it.
CONVENTIONS = {
    "sum_loss": "paper λ_c (sum loss ‖y − Fθ‖² + λ_c‖θ‖²); project λ = λ_c / n",
    "scaled_features": "paper: argmin ‖y − Xw/√p‖² + λ_P‖w‖²; project λ = λ_P p / n_ridge",
}


def _out(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _check(lam, name):
    a = np.asarray(lam, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {lam!r}")
    return a


def _check_size(n, name):
    a = np.asarray(n, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be positive, got {n!r}")
    return a


def lam_from_sum_loss(lam_c, n):
    """λ = λ_c / n: the project's λ of a sum-loss penalty λ_c at sample size n."""
    return _out(_check(lam_c, "lam_c") / _check_size(n, "n"))


def lam_to_sum_loss(lam, n):
    """λ_c = λ n (inverse of :func:`lam_from_sum_loss`)."""
    return _out(_check(lam, "lam") * _check_size(n, "n"))


def lam_from_scaled_features(lam_paper, p, n):
    """λ = λ_P p / n: the project's λ of the penalty λ_P on ‖y − Xw/√p‖² (p features, n samples)."""
    return _out(_check(lam_paper, "lam_paper") * _check_size(p, "p") / _check_size(n, "n"))


def lam_to_scaled_features(lam, p, n):
    """λ_P = λ n / p (inverse of :func:`lam_from_scaled_features`)."""
    return _out(_check(lam, "lam") * _check_size(n, "n") / _check_size(p, "p"))
