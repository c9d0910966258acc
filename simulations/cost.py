"""Cost of sweep tasks before running them: work, peak memory, placeholder results, calibration.

Every sweep task function has a cost model per spec class (:data:`MODELS`, keyed by the spec's
``kind``), read off its simulator:

* ``work(spec)`` — the operations of one task by kind (:data:`KINDS`): ``gemm`` / ``gemm32``
  floating-point operations in level-3 BLAS products (float64 / float32; a product of an m × k
  and a k × n matrix is 2mkn, a SYRK m·k² for a k × k Gram matrix of m rows), ``lapack`` flops of
  dense factorisations (thin SVD of m × k, m ≥ k: 4mk² + 8k³; symmetric eigendecomposition with
  vectors: 9k³; Cholesky: k³/3), ``rng`` standard normal draws, ``transcendental`` evaluations of
  smooth activations and their derivatives (tanh, erf, …), ``elementwise`` simple element
  operations (copies, scalings, ReLU, fused polynomial Numba kernels) and ``steps`` Python-level
  iterations (optimiser steps, compute chunks);
* ``peak_bytes(spec)`` — the largest arrays held at once by one task (bytes);
* ``placeholder(spec, seed_index)`` — a result with the same keys, types and shapes as the real
  task's (values ≈ 1, varying slightly with the seed index so that spreads over seeds are not 0):
  what a planning sweep hands to an experiment so that it runs to its end without simulating.

Calibration (:func:`calibrate`): on this machine, with the sweep's thread limit (one BLAS /
Numba thread per task), one timing of each kind of operation gives its rate r_k (operations per
second), and timing two small instances of each task gives a correction factor c and a fixed
overhead o of the model: t(spec) = o + c Σ_k work_k(spec) / r_k. The first call of a task in a
fresh process also loads its Numba kernels: ``startup_s``. The calibration is cached as JSON
(no pickle; written atomically) in ``$ASYMPTOTICS_CACHE_DIR`` or else
``$XDG_CACHE_HOME/asymptotics`` (default ``~/.cache/asymptotics``), keyed by the machine (CPU,
cores, numpy/scipy/numba versions) and, per task, by a hash of its simulator's source: a code
change recalibrates that task only (a few seconds).

:func:`estimate` turns a list of planned sweep calls into the number of tasks, core-hours, peak
memory per task and the wall time on ``workers`` workers (greedy list scheduling of each call's
tasks in submission order; the calls of one experiment run one after another).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .files import atomic_file

__all__ = ["KINDS", "MODELS", "TaskModel", "Calibration", "model_for", "work", "flops", "peak_bytes",
           "placeholder", "calibrate", "cache_dir", "estimate", "PlannedCall", "CALIBRATION_FILE", "busy_seconds",
           "machine", "cached_tasks"]

#: The kinds of work a model counts (see the module docstring).
KINDS = ("gemm", "gemm32", "lapack", "rng", "transcendental", "elementwise", "steps")
#: File name of the cached calibration inside :func:`cache_dir`.
CALIBRATION_FILE = "cost-calibration.json"
_FORMAT = 1
_F8 = 8


# ============================================================================ flop formulas
def _svd(m: int, k: int) -> float:
    """Thin SVD of an m × k matrix (gesdd with vectors): 4·max·min² + 8·min³."""
    lo, hi = min(m, k), max(m, k)
    return 4.0 * hi * lo * lo + 8.0 * lo**3


def _eigh(k: int) -> float:
    return 9.0 * float(k) ** 3


def _w(_x: dict | None = None, **kinds) -> dict:
    """Work by kind from keyword counts, plus ``_x`` ({kind: count}, for a kind chosen at run time)."""
    out = dict.fromkeys(KINDS, 0.0)
    for key, value in [*kinds.items(), *(_x or {}).items()]:
        out[key] += float(value)
    return out


def _add(total: dict, part: dict, times: float = 1.0) -> dict:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + times * value
    return total


_CHEAP = {"relu", "sign", "linear", "identity", "id", "cube", "square", "abs", "step"}


def _act(names, count: float) -> dict:
    """``count`` activations (value and derivative) of the activations ``names``: transcendental
    work for smooth ones (tanh, erf, …), simple element operations for piecewise-polynomial ones."""
    names = [names] if isinstance(names, str) else list(names) or ["relu"]
    smooth = sum(1 for a in names if str(a).lower() not in _CHEAP) / len(names)
    return _w(transcendental=smooth * count, elementwise=(1 - smooth) * count + count)


def _gemm_key(dtype: str) -> str:
    return "gemm32" if str(dtype) == "float32" else "gemm"


# ============================================================================ ridge
def _ridge_work(spec) -> dict:
    p, n, L = int(spec.spectrum["p"]), spec.n, len(spec.lams)
    k = min(n, p)
    w = _w(rng=n * p + n, elementwise=6.0 * n * p + 2.0 * p * L + 4.0 * p, lapack=_svd(n, p),
           gemm=2.0 * n * k + 2.0 * p * k * L, steps=1)
    if spec.n_test:
        _add(w, _w(rng=spec.n_test * (p + 1), gemm=2.0 * spec.n_test * p * L,
                   elementwise=3.0 * spec.n_test * (p + L), steps=spec.n_test * p / (1 << 21) + 1))
    return w


def _ridge_bytes(spec) -> int:
    p, n = int(spec.spectrum["p"]), spec.n
    k = min(n, p)
    test = min(spec.n_test or 0, max(1, (1 << 21) // p)) * p * 2
    return _F8 * (3 * n * p + k * (n + p) + 4 * k * k + 2 * p * len(spec.lams) + test)


def _ridge_placeholder(spec, s: int) -> dict:
    L = len(spec.lams)
    return {"test_error": np.full(L, 1.0 + 1e-3 * s), "train_error": np.full(L, 0.5 + 1e-3 * s)}


# ============================================================================ deep random features
def _layers(net: dict) -> tuple[list[int], list[int]]:
    """(student widths [d, p_1..p_L], teacher widths [d, k_1..]) of a network description."""
    if net.get("kind") == "rainbow":
        d = int(net["d"])
        return [d, d, d, d], [d, d]
    return [int(net["d"]), *map(int, net["widths"])], [int(x) for x in net["teacher"]["widths"]]


def _network_rows(net: dict, rows: float, dtype: str) -> dict:
    """Work of ``rows`` samples through the student and the teacher (inputs, products, activations)."""
    s, t = _layers(net)
    prods = sum(a * b for a, b in zip(s[:-1], s[1:])) + sum(a * b for a, b in zip(t[:-1], t[1:]))
    names = ["tanh"] * 4 if net.get("kind") == "rainbow" else [*net["activations"], *net["teacher"]["activations"]]
    w = _w(rng=rows * (s[0] + 1), elementwise=rows * (s[0] + t[-1]), _x={_gemm_key(dtype): 2.0 * rows * prods},
           steps=rows / 4096 + 1)
    return _add(w, _act(names, rows * (sum(s[1:]) + sum(t[1:]))))


def _network_build(net: dict) -> dict:
    s, t = _layers(net)
    draws = sum(a * b for a, b in zip(s[:-1], s[1:])) + sum(a * b for a, b in zip(t[:-1], t[1:])) + t[-1]
    w = _w(rng=draws, elementwise=2.0 * draws)
    if net.get("kind") == "rainbow":
        _add(w, _w(gemm=8.0 * s[0] ** 3, lapack=_eigh(s[0]) + 2.0 * s[0] ** 3))
    return w


def _deep_work(spec) -> dict:
    s, _ = _layers(spec.network)
    p, L = s[-1], len(spec.lams)
    w = _network_build(spec.network)
    _add(w, _network_rows(spec.network, spec.n + spec.n_test, spec.dtype))
    return _add(w, _w(lapack=_svd(spec.n, p), elementwise=6.0 * spec.n * p + 4.0 * spec.n_test * L,
                      gemm=2.0 * spec.n_test * p * L + 2.0 * spec.n * min(spec.n, p)))


def _deep_bytes(spec) -> int:
    s, t = _layers(spec.network)
    p, k = s[-1], min(spec.n, s[-1])
    size = 4 if spec.dtype == "float32" else _F8
    weights = _F8 * (sum(a * b for a, b in zip(s[:-1], s[1:])) + sum(a * b for a, b in zip(t[:-1], t[1:])))
    return int(weights + size * (spec.n + spec.n_test) * p + _F8 * (3 * spec.n * p + k * (spec.n + p) + 4 * k * k
                                                                   + 2 * spec.n_test * p))


def _deep_placeholder(spec, s: int) -> dict:
    L = len(spec.lams)
    return {"test_error": np.full(L, 1.0 + 1e-3 * s), "train_error": np.full(L, 0.5 + 1e-3 * s)}


def _moments_dims(spec) -> tuple[int, int]:
    s, t = _layers(spec.network)
    return s[-1], t[-1]


def _moments_work(spec) -> dict:
    p, k = _moments_dims(spec)
    q = p + k + 1
    w = _network_build(spec.network)
    _add(w, _network_rows(spec.network, spec.n_samples, "float64"))
    return _add(w, _w(gemm=float(spec.n_samples) * q * q, elementwise=3.0 * spec.n_samples * q + 4.0 * q * q,
                      steps=spec.n_samples / spec.chunk))


def _moments_bytes(spec) -> int:
    p, k = _moments_dims(spec)
    q = p + k + 1
    s, t = _layers(spec.network)
    widest = max(s + t)
    return _F8 * (3 * min(spec.chunk, spec.n_samples) * (q + widest) + 3 * q * q)


def _moments_placeholder(spec, s: int) -> dict:
    p, k = _moments_dims(spec)
    scale = 1.0 + 1e-3 * (s + 1)  # differs between seeds: spreads over seeds are not 0
    return {"omega": scale * np.eye(p), "phi": np.zeros((p, k)), "psi": scale * np.eye(k), "y2": scale,
            "b": np.zeros(p)}


# ============================================================================ giant step
def _giant_k(spec) -> int:
    if spec.k is not None:
        return int(spec.k)
    from asymptotics import functions

    _, k = functions.multi_index_target(spec.target, None)
    return int(k)


def _giant_lams(spec) -> int:
    return 1 if np.ndim(spec.lam) == 0 else int(np.size(spec.lam))


def _giant_rows(spec, rows: float, k: int) -> dict:
    """Drawing ``rows`` inputs with their labels (float64) and the forward pass H = Z Wᵀ, σ(H)."""
    d, p = spec.d, spec.p
    w = _w(rng=rows * (d + (1 if spec.noise_var else 0)), gemm=2.0 * rows * d * k,
           elementwise=rows * (8.0 * k + (d if spec.dtype == "float32" else 0)),
           _x={_gemm_key(spec.dtype): 2.0 * rows * d * p}, steps=rows / spec.block + 1)
    return _add(w, _act(spec.activation, rows * p))


def _giant_work(spec) -> dict:
    d, p, n, T = spec.d, spec.p, spec.n, spec.steps
    k, L = _giant_k(spec), _giant_lams(spec)
    n_ridge = spec.n_ridge or n
    g = _gemm_key(spec.dtype)
    w = _w(rng=p * d + 2 * d * k + p, lapack=4.0 * d * k * k, elementwise=3.0 * p * d)
    for _ in range(T):  # gradient step: forward, σ′, residual, G += Rᵀ Z; overlaps
        _add(w, _giant_rows(spec, n, k))
        _add(w, _w(elementwise=3.0 * n * p, gemm=4.0 * p * d * k + 2.0 * p * d, _x={g: 2.0 * n * p * d + 2.0 * n * p}))
        _add(w, _act(spec.activation, n * p))  # σ′
        if spec.preprocess:  # a second generation pass (A, B) before the step, and y~ = y − A − Z B
            _add(w, _giant_rows(spec, n, k))
            _add(w, _w(elementwise=4.0 * n * d, _x={g: -2.0 * n * d * p}))
    readout_rows = 0 if (spec.reuse_batch and T >= 1) else n_ridge
    if spec.preprocess and (T == 0 or (readout_rows and spec.prep_estimate == "ridge")):
        _add(w, _giant_rows(spec, n_ridge, k))
        _add(w, _w(elementwise=4.0 * n_ridge * d, _x={g: -2.0 * n_ridge * d * p}))
    if readout_rows:
        _add(w, _giant_rows(spec, readout_rows, k))
    else:  # the last gradient batch is drawn again for the readout
        _add(w, _giant_rows(spec, n_ridge, k))
    _add(w, _w(gemm=float(n_ridge) * p * p + 2.0 * n_ridge * p, lapack=_giant_solve(spec, p, L),
               elementwise=4.0 * p * p + 4.0 * p * L))
    _add(w, _giant_rows(spec, spec.n_test, k))
    return _add(w, _w(gemm=2.0 * spec.n_test * p * L + 2.0 * p * p * L, elementwise=3.0 * spec.n_test * L))


def _giant_solve(spec, p: int, L: int) -> float:
    """The readout solve from the Gram matrix: a Cholesky factorisation per λ for a short grid of
    λ > 0 (the simulator's rule), else one eigendecomposition."""
    from . import giant_step

    lams = np.atleast_1d(np.asarray(spec.lam, dtype=np.float64))
    if L <= getattr(giant_step, "_CHOLESKY_MAX_LAMS", 0) and np.all(lams > 0):
        return L * (p**3 / 3.0 + 4.0 * p * p)
    return _eigh(p)


def _giant_bytes(spec) -> int:
    from . import giant_step

    n_ridge = spec.n_ridge or spec.n
    rows = giant_step._chunk_rows(spec.chunk, spec.block, spec.d, spec.p, max(spec.n, n_ridge, spec.n_test))
    size = 4 if spec.dtype == "float32" else _F8
    buffers = rows * (_F8 * (spec.d + 3) + size * (2 * spec.d + 2 * spec.p))
    return int(buffers + _F8 * (5 * spec.p * spec.p + 6 * spec.p * spec.d + 2 * spec.p * _giant_lams(spec)))


def _giant_placeholder(spec, s: int) -> dict:
    k, T, L = _giant_k(spec), spec.steps, _giant_lams(spec)
    err = (lambda v: np.float64(v)) if np.ndim(spec.lam) == 0 else (lambda v: np.full(L, v))
    out = {"test_error": np.asarray(err(1.0 + 1e-3 * s)), "train_error": np.asarray(err(0.5 + 1e-3 * s)),
           "lam": np.asarray(spec.lam, dtype=np.float64), "eta": 1.0 if T else math.nan,
           "mean_cosine": np.full(T + 1, 0.5 + 1e-3 * s), "gradient_mean_cosine": np.full(T, 0.5 + 1e-3 * s),
           "subspace": np.tile(np.eye(k) * (0.5 / k), (T + 1, 1, 1))}
    if spec.rows:
        out["row_overlaps"] = np.full((T + 1, spec.p, k), 0.5 / math.sqrt(k))
        out["gradient_overlaps"] = np.full((T, spec.p, k), 0.5 / math.sqrt(k))
    return out


# ============================================================================ hierarchical
_HIER_KEYS = ("d", "n", "m1", "m2", "n_test", "test_loss", "test_loss_se", "test_loss_cv", "median_sq_error",
              "bulk_loss", "corr", "abs_corr", "stage1_test_loss", "train_corr", "train_loss", "steps",
              "wall_time", "test_loss_dec", "test_loss_dec_se")


def _hier_rows(spec, rows: float, m1: int, m2: int, dtype: str, *, draw: bool = True,
               backward: bool = False) -> dict:
    """The network's forward pass on ``rows`` inputs (and its backward pass), drawing the inputs
    with their targets p(x), h(x) when ``draw``."""
    d, g = spec.d, _gemm_key(dtype)
    w = _w(elementwise=rows * (4.0 * m1 + 6.0 * m2), _x={g: 2.0 * rows * (d + 1) * m1}, steps=rows / spec.block + 1)
    if draw:
        _add(w, _w(rng=rows * d, elementwise=8.0 * rows * d))
    if backward:
        _add(w, _w(elementwise=rows * (4.0 * m1 + 6.0 * m2), _x={g: 2.0 * rows * (d + 1) * m1}))
    return w


def _quadratic(method: str, m: int, steps: int) -> dict:
    """Solving a ridge problem of width m from its Gram matrix: Cholesky, or GD steps."""
    if method == "ridge":
        return _w(lapack=m**3 / 3.0, gemm=2.0 * m * m)
    return _w(lapack=_eigh(m) / 9.0, gemm=2.0 * steps * m * m, steps=steps)


def _layerwise_work(spec) -> dict:
    n, m1, m2 = spec.n, spec.m1, spec.m2
    n2 = spec.n2 or n
    w = _w(rng=m1 * (spec.d + 1) + 3 * m2 + spec.d)
    _add(w, _hier_rows(spec, n, m1, 0, spec.dtype))  # stage 1 on D1: Φ = Z³, ΦᵀΦ (SYRK), Φᵀy
    _add(w, _w(gemm=float(n) * m1 * m1 + 2.0 * n * m1, elementwise=2.0 * n * m1))
    _add(w, _quadratic(spec.stage1, m1, spec.T1))
    if spec.bias == "unif":
        _add(w, _hier_rows(spec, n, m1, 0, spec.dtype))
    _add(w, _hier_rows(spec, n2, m1, 0, spec.dtype))  # stage 2 on D2: Ψ = ReLU(ĝaᵀ + b), ΨᵀΨ
    _add(w, _w(gemm=float(n2) * m2 * m2 + 2.0 * n2 * m2, elementwise=3.0 * n2 * m2))
    _add(w, _quadratic(spec.stage2, m2, spec.T2))
    _add(w, _hier_rows(spec, spec.n_test, m1, m2, spec.dtype))  # test metrics
    return _add(w, _w(elementwise=30.0 * spec.n_test))


def _adam_batch(spec) -> int:
    n = spec.n
    return min(spec.batch_size or (n if n <= (1 << 15) else (1 << 13)), n)


def _adam_work(spec) -> dict:
    """An upper bound: ``max_steps`` Adam steps (the plateau rule may stop earlier). A training
    pass evaluates the ReLU branch through its sorted kinks: O(log m2) per row, O(m2 log m2) per
    step for the tables."""
    d, n, m2 = spec.d, spec.n, spec.m2
    m1 = spec.m1 or d * d
    batch, steps = _adam_batch(spec), spec.max_steps
    params = m1 * (d + 2) + 3 * m2
    log_m2 = math.log2(m2 + 2)
    w = _w(rng=m1 * (d + 1) + 3 * m2 + d + n * d, elementwise=8.0 * n * d)  # init, the training set in memory
    _add(w, _hier_rows(spec, batch, m1, 0, spec.dtype, draw=False, backward=True), times=steps)
    _add(w, _w(elementwise=12.0 * params + batch * 12.0 * log_m2 + m2 * (10.0 * log_m2 + 80.0)
               + (batch * (d + 2) if batch < n else 0)), times=steps)
    _add(w, _hier_rows(spec, n, m1, m2, spec.dtype, draw=False))  # training correlation
    _add(w, _hier_rows(spec, spec.n_test, m1, m2, spec.dtype))  # test metrics
    return _add(w, _w(elementwise=30.0 * spec.n_test))


def _hier_buffers(spec, m1: int, m2: int) -> int:
    from . import hierarchical

    chunk = min(spec.chunk or hierarchical._CHUNK_ROWS, max(spec.n, spec.n_test))
    return _F8 * (chunk * (spec.d + 4) + spec.block * (m1 + 4 * m2) + 6 * spec.n_test + 12 * m1 * (spec.d + 2)
                  + 24 * m2)


def _layerwise_bytes(spec) -> int:
    return _F8 * (3 * spec.m1 * spec.m1 + 3 * spec.m2 * spec.m2) + _hier_buffers(spec, spec.m1, spec.m2)


def _adam_bytes(spec) -> int:
    """The training set, the streaming buffers and the training pass's lanes of tiles."""
    from . import hierarchical

    m1, K = spec.m1 or spec.d * spec.d, spec.d + 1
    size = 4 if spec.dtype == "float32" else _F8
    lanes = getattr(hierarchical, "_LANES", 1)
    fit = max(1, min(spec.block, getattr(hierarchical, "_TILE_BYTES", spec.block * m1 * size) // (m1 * size)))
    tile = 1 << (fit.bit_length() - 1)
    training = lanes * (size * (tile * (m1 + K) + m1 * K) + _F8 * (2 * tile + m1 * K + m1 + 4 * (spec.m2 + 1)))
    return _F8 * spec.n * (spec.d + 4) + _hier_buffers(spec, m1, spec.m2) + training


def _hier_placeholder(spec, s: int) -> dict:
    m1 = getattr(spec, "m1", None) or spec.d * spec.d
    out = {key: 0.5 + 1e-3 * s for key in _HIER_KEYS}
    out.update(d=float(spec.d), n=float(spec.n), m1=float(m1), m2=float(spec.m2), n_test=float(spec.n_test),
               steps=float(getattr(spec, "max_steps", 0)), wall_time=0.0)
    out["converged"] = 0.0
    return out


# ============================================================================ trained features
def _trained_parts(spec) -> tuple[dict, int]:
    """({part: rows}, input dimension) of a trained-feature spec."""
    from .trained import PARTS

    if hasattr(spec, "part_sizes"):
        return dict(spec.part_sizes), spec.d
    total, dim = _dataset_shape(spec.data)
    sizes = {"test": 0.10, "adam": 0.25, "regression": 0.25}
    parts = {name: int(round(f * total)) for name, f in sizes.items()}
    parts["covariance"] = total - sum(parts.values())
    return {name: parts[name] for name in PARTS}, dim


@lru_cache(maxsize=8)
def _dataset_shape(source: str) -> tuple[int, int]:
    from .trained import load_dataset

    X, _ = load_dataset(source)
    return int(X.shape[0]), int(X.shape[1])


def _trained_work(spec) -> dict:
    if _fresh(spec):
        return _fresh_work(spec)
    parts, dim = _trained_parts(spec)
    widths = [dim, *spec.widths]
    prods, acts = sum(a * b for a, b in zip(widths[:-1], widths[1:])), sum(spec.widths)
    params = prods + widths[-1]
    g = _gemm_key(spec.dtype)
    n_adam = parts["adam"]
    batch = spec.batch_size or n_adam
    batch = min(batch, n_adam)
    steps = spec.epochs * -(-n_adam // batch)
    total_rows = sum(parts.values())
    w = _w(rng=params, elementwise=2.0 * total_rows * dim)
    if hasattr(spec, "part_sizes"):  # synthetic: inputs and teacher labels
        _add(w, _w(rng=total_rows * dim + spec.d * spec.k + spec.k, gemm=2.0 * total_rows * dim * spec.k,
                   elementwise=3.0 * total_rows * spec.k))
    # training: forward + backward (3 products per layer) and the Adam update, per step
    _add(w, _w(_x={g: 6.0 * n_adam * prods * spec.epochs}, elementwise=spec.epochs * n_adam * 4.0 * acts
               + 12.0 * params * steps + (n_adam * dim * spec.epochs if batch < n_adam else 0), steps=steps))
    _add(w, _act(spec.activation, spec.epochs * n_adam * 2.0 * acts))
    evals = [widths[-1]] * len(spec.snapshots)
    for _ in spec.snapshots:  # a copy and its training loss, the features of three parts, the network's test MSE
        _add(w, _w(_x={g: 2.0 * (total_rows + parts["test"]) * prods},
                   elementwise=2.0 * (total_rows + parts["test"]) * acts + 2.0 * params))
        _add(w, _act(spec.activation, (total_rows + parts["test"]) * acts))
    for p in [*evals, dim]:
        _add(w, _ridge_curves_work(spec, parts, p))
    return w


def _ridge_curves_work(spec, parts: dict, p: int) -> dict:
    """Plug-in moments (full and half covariance part) and the ridge curves of one feature map."""
    n_cov, n_reg, n_test = parts["covariance"], parts["regression"], parts["test"]
    q = p + 1
    w = _w(gemm=1.5 * n_cov * q * q, elementwise=4.5 * n_cov * q + 3.0 * (n_reg + n_test) * p, steps=n_cov / 2048)
    lams = np.asarray(spec.lam_grid())
    L = lams.shape[1]
    for i, n in enumerate(spec.ns):
        near_peak = abs(n - p) < 0.2 * p or lams[i].min() == 0
        k = min(n, p)
        if near_peak:
            fit = _w(lapack=_svd(n, p), elementwise=6.0 * n * p, gemm=2.0 * n * k + 2.0 * p * k * L)
        else:
            fit = _w(gemm=2.0 * n * k * k + 2.0 * n * p * (1 + L), lapack=_eigh(k), elementwise=4.0 * n * p)
        _add(fit, _w(gemm=2.0 * n_test * p * L, elementwise=6.0 * n_test * L, rng=n))
        _add(w, fit, times=spec.repeats)
    return w


def _fresh(spec) -> bool:
    """The synthetic task that draws every sample fresh (no covariance / regression parts)."""
    return hasattr(spec, "k") and not hasattr(spec, "n_cov")


def _fresh_rows(spec, rows: float, widths: list, prods: float) -> dict:
    """Drawing ``rows`` synthetic samples (inputs, teacher labels) and their features."""
    w = _w(rng=rows * spec.d, gemm=2.0 * rows * spec.d * spec.k, elementwise=2.0 * rows * spec.k)
    _add(w, _act(getattr(spec, "teacher", "tanh"), rows * spec.k))
    if prods:
        _add(w, _w(_x={_gemm_key(spec.dtype): 2.0 * rows * prods}, elementwise=rows * sum(widths[1:])))
        _add(w, _act(spec.activation, rows * sum(widths[1:])))
    return w


def _fresh_evaluation(spec, p: int, widths: list, prods: float) -> dict:
    """evaluate_fresh of one feature map of width p: moments, fresh fits, test (module trained)."""
    n_test, lams = spec.n_test, np.asarray(spec.lam_grid())
    L, cols = lams.shape[1], len(spec.ns) * spec.repeats * lams.shape[1]
    w = _add(_fresh_rows(spec, n_test, widths, prods), _fresh_rows(spec, n_test, widths, prods))
    _add(w, _w(gemm=float(n_test) * (p + 1) ** 2 + 2.0 * n_test * p * (cols + p + 2), lapack=_eigh(p),
               elementwise=6.0 * n_test * (p + cols), steps=2 * n_test / 2048))
    for i, n in enumerate(spec.ns):
        k = min(n, p)
        fit = _fresh_rows(spec, n, widths, prods)
        if abs(n - p) < 0.2 * p or lams[i].min() == 0:
            _add(fit, _w(lapack=_svd(n, p), elementwise=6.0 * n * p, gemm=2.0 * n * k + 2.0 * p * k * L))
        else:
            _add(fit, _w(gemm=2.0 * n * k * k + 2.0 * n * p * (1 + L), lapack=_eigh(k), elementwise=4.0 * n * p))
        _add(w, fit, times=spec.repeats)
    return w


def _fresh_work(spec) -> dict:
    widths = [spec.d, *spec.widths]
    prods = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    params = prods + widths[-1]
    batch = min(spec.batch_size or spec.n_adam, spec.n_adam)
    steps = spec.epochs * -(-spec.n_adam // batch)
    w = _add(_w(rng=params + spec.d * spec.k + spec.k), _fresh_rows(spec, spec.n_adam, widths, 0))
    _add(w, _w(_x={_gemm_key(spec.dtype): 6.0 * spec.n_adam * prods * spec.epochs},
               elementwise=spec.epochs * spec.n_adam * 4.0 * sum(spec.widths) + 12.0 * params * steps, steps=steps))
    _add(w, _act(spec.activation, spec.epochs * spec.n_adam * 2.0 * sum(spec.widths)))
    for _ in spec.snapshots:
        _add(w, _fresh_evaluation(spec, widths[-1], widths, prods))
        _add(w, _w(_x={_gemm_key(spec.dtype): 2.0 * spec.n_adam * prods}))  # the snapshot's training loss
    return _add(w, _fresh_evaluation(spec, spec.d, [spec.d], 0))


def _fresh_bytes(spec) -> int:
    widths = [spec.d, *spec.widths]
    p, n_max = max(widths), max(spec.ns)
    k = min(n_max, p)
    cols = len(spec.ns) * spec.repeats * np.asarray(spec.lam_grid()).shape[1]
    params = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    chunk = min(spec.n_test, 4096)
    return _F8 * (spec.n_adam * (spec.d + 2 * sum(spec.widths)) + 4 * p * p + 3 * n_max * p + k * (n_max + p)
                  + 4 * k * k + p * cols + 3 * chunk * (p + cols) + 4 * params * (len(spec.snapshots) + 1))


def _fresh_placeholder(spec, s: int) -> dict:
    N, R, L = len(spec.ns), spec.repeats, np.asarray(spec.lam_grid()).shape[1]
    rng = np.random.default_rng(s)

    def evaluation(p: int, network: bool) -> dict:
        out = {"omega": np.eye(p), "b": np.zeros(p), "y2": 1.0, "mean": np.zeros(p), "omega_half": np.eye(p),
               "b_half": np.zeros(p), "y2_half": 1.0, "test_error": 1.0 + 0.01 * rng.random((N, R, L)),
               "test_se": np.full((N, R, L), 0.01), "leverage_residual_ratio": 1.0}
        return {**out, "network_test_mse": 1.0} if network else out

    widths = [spec.d, *spec.widths]
    out = {"snapshots": [{"epoch": float(e), "step": i, "train_loss": 1.0, **evaluation(widths[-1], True)}
                         for i, e in enumerate(spec.snapshots)],
           "loss_history": np.ones(spec.epochs),
           "teacher": {"W": rng.standard_normal((spec.k, spec.d)) / math.sqrt(spec.d),
                       "theta": rng.standard_normal(spec.k)}}
    if spec.return_weights:
        out["init_weights"] = [rng.standard_normal((b, a)) / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    out["linear"] = evaluation(spec.d, False)
    out["sizes"] = {"adam": int(spec.n_adam), "test (and covariance)": int(spec.n_test)}
    return out


def _trained_bytes(spec) -> int:
    if _fresh(spec):
        return _fresh_bytes(spec)
    parts, dim = _trained_parts(spec)
    p = max([dim, *spec.widths])
    rows = sum(parts.values())
    n_max = max(spec.ns)
    k = min(n_max, p)
    widths = [dim, *spec.widths]
    params = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    batch = spec.batch_size or parts["adam"]
    return _F8 * (rows * (dim + 1) + (rows + parts["test"]) * p + 4 * p * p + 3 * n_max * p + k * (n_max + p)
                  + 4 * k * k + 4 * params * (len(spec.snapshots) + 1) + 4 * batch * sum(spec.widths))


def _trained_placeholder(spec, s: int) -> dict:
    if _fresh(spec):
        return _fresh_placeholder(spec, s)
    parts, dim = _trained_parts(spec)
    N, R, L = len(spec.ns), spec.repeats, np.asarray(spec.lam_grid()).shape[1]
    rng = np.random.default_rng(s)

    def evaluation(p: int) -> dict:
        err = 1.0 + 0.01 * rng.random((N, R, L))
        return {"omega": np.eye(p), "b": np.zeros(p), "y2": 1.0, "omega_half": np.eye(p), "b_half": np.zeros(p),
                "y2_half": 1.0, "test_error": err, "test_se": np.full((N, R, L), 0.01)}

    snaps = []
    for i, e in enumerate(spec.snapshots):
        snaps.append({"epoch": float(e), "step": i, "network_test_mse": 1.0, **evaluation(spec.widths[-1])})
    out = {"snapshots": snaps, "loss_history": np.ones(spec.epochs)}
    if spec.return_weights:
        widths = [dim, *spec.widths]
        out["init_weights"] = [rng.standard_normal((b, a)) / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    out["linear"] = evaluation(dim)
    out["sizes"] = {name: int(v) for name, v in parts.items()}
    if hasattr(spec, "part_sizes"):
        out["teacher"] = {"W": rng.standard_normal((spec.k, spec.d)) / math.sqrt(spec.d),
                          "theta": rng.standard_normal(spec.k)}
    return out


# ============================================================================ registry
@dataclass(frozen=True)
class TaskModel:
    """The cost model of one spec class: its task function (by module and name), the work and
    peak-memory formulas, the placeholder result, and the two small calibration instances."""

    kind: str
    task: str  # "module:function"
    work: Callable[[Any], dict]
    peak_bytes: Callable[[Any], int]
    placeholder: Callable[[Any, int], Any]
    instances: Callable[[], tuple]  # (small spec, larger spec)
    shared: tuple = ("simulations.linalg", "simulations.rng", "simulations.data")

    def function(self) -> Callable:
        module, name = self.task.split(":")
        return getattr(_import(module), name)


def _import(module: str):
    import importlib

    return importlib.import_module(module)


def _ridge_instances():
    from .ridge import RidgeSpec

    sp = {"kind": "isotropic", "p": 96}
    return (RidgeSpec(spectrum=sp, y2=1.01, n=60, lams=(0.0, 0.1)),
            RidgeSpec(spectrum={"kind": "isotropic", "p": 320}, y2=1.01, n=640, lams=(0.0, 0.1, 1.0)))


def _deep_net(d: int, p: int) -> dict:
    return {"d": d, "widths": [p, p], "activations": ["tanh", "tanh"],
            "teacher": {"widths": [d], "activations": [], "noise": 0.1}, "weight_seed": 1}


def _deep_instances():
    from .deep import DeepFeaturesSpec

    return (DeepFeaturesSpec(network=_deep_net(32, 64), n=64, lams=(0.0, 0.1), n_test=256),
            DeepFeaturesSpec(network=_deep_net(128, 256), n=512, lams=(0.0, 0.1), n_test=2048))


def _moments_instances():
    from .deep import DeepMomentsSpec

    return (DeepMomentsSpec(network=_deep_net(32, 64), n_samples=512),
            DeepMomentsSpec(network=_deep_net(128, 256), n_samples=8192))


def _giant_instances():
    from .giant_step import GiantStepSpec

    common = dict(target="h1 + h1*h2", activation="relu", steps=1, eta="sqrt", lam=(1e-3, 1e-1))
    return (GiantStepSpec(d=16, p=32, n=512, n_test=1024, **common),
            GiantStepSpec(d=64, p=256, n=8192, n_test=8192, **common))


def _layerwise_instances():
    from .hierarchical import LayerwiseSpec

    return (LayerwiseSpec(d=6, n=512, m1=32, m2=32, n_test=2048),
            LayerwiseSpec(d=12, n=8192, m1=144, m2=256, n_test=16384))


def _adam_instances():
    from .hierarchical import AdamSpec

    return (AdamSpec(d=6, n=256, m2=32, n_test=1024, max_steps=20, patience=10**6),
            AdamSpec(d=10, n=2048, m2=128, n_test=4096, max_steps=60, patience=10**6))


def _trained_common(widths, epochs, ns):
    return dict(widths=widths, activation="tanh", epochs=epochs, lr=1e-3, snapshots=(0, epochs), ns=ns,
                lams=(1e-3, 1e-1), repeats=2)


def _synthetic_instances():
    from .trained import SyntheticTrainedSpec

    fields = {f.name for f in dataclasses.fields(SyntheticTrainedSpec)}

    def spec(parts: dict, widths, epochs, ns):
        return SyntheticTrainedSpec(**{k: v for k, v in parts.items() if k in fields},
                                    **_trained_common(widths, epochs, ns))

    return (spec(dict(d=16, k=16, n_adam=128, n_cov=512, n_reg=256, n_test=256), (32, 32), 5, (20, 100)),
            spec(dict(d=64, k=64, n_adam=512, n_cov=4096, n_reg=1024, n_test=2048), (128, 128), 40, (50, 200, 900)))


@lru_cache(maxsize=1)
def _calibration_images() -> str:
    """A small MNIST-format file (1500 + 300 random 28 × 28 images, Keras' ``mnist.npz`` layout) in
    a temporary folder removed at exit: the even/odd task calibrates on it without any data set
    installed."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="asymptotics-calibration-")
    atexit.register(shutil.rmtree, folder, True)
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "mnist.npz")
    np.savez(path, x_train=rng.integers(0, 256, (1500, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 1500),
             x_test=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 300))
    return path


def _mnist_instances():
    from .trained import TrainedSpec

    data = _calibration_images()
    return (TrainedSpec(data=data, batch_size=128, **_trained_common((32, 32), 1, (20, 100))),
            TrainedSpec(data=data, batch_size=128, **_trained_common((128, 128), 4, (50, 200, 400))))


_TRAINED_SHARED = ("simulations.linalg", "simulations.rng", "simulations.data", "simulations.training",
                   "simulations.optim", "simulations.features", "simulations.covariance")
_DEEP_SHARED = ("simulations.linalg", "simulations.rng", "simulations.features", "simulations.covariance")

#: Cost models by spec kind (``type(spec).kind``).
MODELS: dict[str, TaskModel] = {m.kind: m for m in (
    TaskModel("ridge", "simulations.ridge:ridge_task", _ridge_work, _ridge_bytes, _ridge_placeholder,
              _ridge_instances),
    TaskModel("deep-features", "simulations.deep:deep_ridge_task", _deep_work, _deep_bytes, _deep_placeholder,
              _deep_instances, _DEEP_SHARED),
    TaskModel("deep-moments", "simulations.deep:moments_task", _moments_work, _moments_bytes, _moments_placeholder,
              _moments_instances, _DEEP_SHARED),
    TaskModel("giant_step", "simulations.giant_step:giant_step_task", _giant_work, _giant_bytes, _giant_placeholder,
              _giant_instances, ("simulations.linalg", "simulations.rng", "asymptotics.functions")),
    TaskModel("hierarchical-layerwise", "simulations.hierarchical:hierarchical_task", _layerwise_work,
              _layerwise_bytes, _hier_placeholder, _layerwise_instances,
              ("simulations.linalg", "simulations.rng", "simulations.optim")),
    TaskModel("hierarchical-adam", "simulations.hierarchical:hierarchical_task", _adam_work, _adam_bytes,
              _hier_placeholder, _adam_instances, ("simulations.linalg", "simulations.rng", "simulations.optim")),
    TaskModel("trained-synthetic", "simulations.trained:synthetic_trained_task", _trained_work, _trained_bytes,
              _trained_placeholder, _synthetic_instances, _TRAINED_SHARED),
    TaskModel("trained-even-odd", "simulations.trained:mnist_even_odd_task", _trained_work, _trained_bytes,
              _trained_placeholder, _mnist_instances, _TRAINED_SHARED),
)}


def _as_spec(fn: Callable, spec):
    """A spec object for ``spec`` (a task's dict form is read by the task's own spec class)."""
    if not isinstance(spec, dict):
        return spec
    name = f"{fn.__module__}:{fn.__name__}"
    errors = []
    for model in MODELS.values():
        if model.task == name:
            cls = type(model.instances()[0])
            try:
                return cls.from_dict({k: v for k, v in spec.items() if k != "method"})
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
    raise TypeError(f"no cost model reads this parameter dict of the task {fn.__module__}.{fn.__name__}"
                    + (f" ({errors[-1]})" if errors else ""))


def model_for(fn: Callable, spec) -> tuple[TaskModel, Any]:
    """(the cost model, the spec object) of one task; ``TypeError`` naming the task if it has none."""
    spec = _as_spec(fn, spec)
    model = MODELS.get(getattr(type(spec), "kind", None))
    if model is None or model.task != f"{fn.__module__}:{fn.__name__}":
        raise TypeError(f"no cost model for the task {fn.__module__}.{fn.__name__} with a "
                        f"{type(spec).__name__}; known: {sorted(MODELS)}")
    return model, spec


def work(fn: Callable, spec) -> dict:
    """Operations of one task ``fn(spec, seed)`` by kind (:data:`KINDS`)."""
    model, spec = model_for(fn, spec)
    return {k: max(0.0, v) for k, v in model.work(spec).items()}


def flops(fn: Callable, spec) -> float:
    """Floating-point operations in the task's products and factorisations (gemm + gemm32 + lapack)."""
    w = work(fn, spec)
    return w["gemm"] + w["gemm32"] + w["lapack"]


def peak_bytes(fn: Callable, spec) -> int:
    """The largest memory one task holds at once (bytes; its arrays, not the interpreter)."""
    model, spec = model_for(fn, spec)
    return int(model.peak_bytes(spec))


def placeholder(fn: Callable, spec, seed_index: int = 0):
    """A result with the keys, types and shapes of ``fn(spec, seed)`` (values ≈ 1), computed in
    microseconds: what a planning sweep returns instead of running the task."""
    model, spec = model_for(fn, spec)
    return model.placeholder(spec, int(seed_index))


# ============================================================================ calibration
def cache_dir() -> Path:
    """``$ASYMPTOTICS_CACHE_DIR``, else ``$XDG_CACHE_HOME/asymptotics``, else ``~/.cache/asymptotics``."""
    if os.environ.get("ASYMPTOTICS_CACHE_DIR"):
        return Path(os.environ["ASYMPTOTICS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asymptotics"


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The facts a calibration is valid for: CPU, cores, Python and library versions."""
    import scipy

    facts = {"cpu": _cpu_name(), "cores": _cores(), "python": platform.python_version(),
             "numpy": np.__version__, "scipy": scipy.__version__}
    with contextlib.suppress(ImportError):
        import numba

        facts["numba"] = numba.__version__
    return facts


def _source_hash(model: TaskModel) -> str:
    h = hashlib.sha256()
    for name in (model.task.split(":")[0], *model.shared, __name__):
        mod = _import(name)
        try:
            h.update(inspect.getsource(mod).encode())
        except (OSError, TypeError):
            h.update(name.encode())
    return h.hexdigest()[:16]


def busy_seconds(fn: Callable) -> tuple[Any, float]:
    """(fn(), seconds it kept this machine busy): the smaller of its wall time and its CPU time
    (all threads of this process). On a machine shared with other jobs the wall time of a
    single-threaded call grows with their load while its CPU time does not; a multi-threaded call
    on an idle machine has the wall time as the smaller one. Both estimate the wall time on an idle
    machine, which is what calibrations and estimates refer to."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, min(time.perf_counter() - w0, time.process_time() - c0)


def _best_time(fn: Callable, repeats: int) -> float:
    """The shortest busy time of ``repeats`` calls after one warm-up call: the machine's own speed,
    least disturbed by other processes (their load slows even the CPU time of a call: shared
    caches, memory bandwidth, hyper-threads)."""
    fn()
    return min(busy_seconds(fn)[1] for _ in range(repeats))


def _measure_rates() -> dict:
    """Operations per second of each kind, on one thread (the sweep's limit per task)."""
    import scipy.linalg

    rng = np.random.default_rng(0)
    A = rng.standard_normal((384, 384))
    A32 = A.astype(np.float32)
    M = rng.standard_normal((480, 240))
    x = rng.standard_normal(1 << 20)
    y = np.empty_like(x)
    rates = {
        "gemm": 2.0 * 384**3 / _best_time(lambda: A @ A, 5),
        "gemm32": 2.0 * 384**3 / _best_time(lambda: A32 @ A32, 5),
        "lapack": _svd(480, 240) / _best_time(
            lambda: scipy.linalg.svd(M, full_matrices=False, check_finite=False, lapack_driver="gesdd"), 4),
        "rng": float(x.size) / _best_time(lambda: rng.standard_normal(out=y), 5),
        "transcendental": float(x.size) / _best_time(lambda: np.tanh(x, out=y), 5),
        "elementwise": float(x.size) / _best_time(lambda: np.multiply(x, x, out=y), 5),
    }
    small = np.ones(8)
    rates["steps"] = 100.0 / _best_time(lambda: [small * small + small for _ in range(100)], 5)
    return rates


def _seconds(w: dict, rates: dict) -> float:
    return sum(max(0.0, w.get(k, 0.0)) / rates[k] for k in KINDS)


def _calibrate_task(model: TaskModel, rates: dict) -> dict:
    """Time the model's two instances (after a first, cold call): overhead and factor of the model."""
    from .rng import stream  # noqa: F401  (loaded before the timing)
    from .sweep import task_seed

    fn = model.function()
    small, large = model.instances()
    seed = task_seed(0, "calibration", small, 0)
    cold = busy_seconds(lambda: fn(small, seed))[1]  # the first call: Numba kernels loaded
    t_small = _best_time(lambda: fn(small, seed), 3)
    large_seed = task_seed(0, "calibration", large, 0)
    t_large = min(busy_seconds(lambda: fn(large, large_seed))[1] for _ in range(2))
    m_small, m_large = (_seconds({k: max(0.0, v) for k, v in model.work(s).items()}, rates) for s in (small, large))
    factor = (t_large - t_small) / (m_large - m_small) if m_large > m_small else 0.0
    if not factor > 0:
        factor = t_large / m_large
    overhead = t_small - factor * m_small
    if overhead < 0:  # the small instance is faster than the model says: no fixed cost, one factor
        overhead, factor = 0.0, t_large / m_large
    return {"factor": factor, "overhead_s": overhead, "startup_s": max(0.0, cold - t_small),
            "measured_s": [t_small, t_large], "model_s": [m_small, m_large]}


def _measure_pool_start() -> float:
    """Seconds a sweep on the "processes" backend spends starting its workers: a sweep of two
    tiny ridge tasks on two worker processes, less the tasks' own time, scaled to an idle machine
    by the load average at the time (see :func:`estimate`)."""
    from .ridge import ridge_task
    from .sweep import run_sweep

    small = _ridge_instances()[0]
    workers = min(2, _cores())
    load = _load_average()
    w0 = time.perf_counter()
    run_sweep(ridge_task, [small], 2, experiment="calibration", backend="processes", workers=workers, quiet=True)
    wall = time.perf_counter() - w0
    share = 1.0 if load is None else min(1.0, _cores() / (load + workers))  # as on an idle machine
    return max(0.0, wall * share - 2 * busy_seconds(lambda: ridge_task(small, 0))[1])


@dataclass
class Calibration:
    """Rates per kind of work and a (factor, overhead, startup) per cost model, for this machine."""

    machine: dict
    rates: dict
    tasks: dict
    path: str | None = None
    created: str = ""
    recalibrated: list = field(default_factory=list)
    pool_start_s: float | None = None

    def task_seconds(self, fn: Callable, spec) -> float:
        """Predicted seconds of one task on one core: overhead + factor · Σ work / rate."""
        model, spec = model_for(fn, spec)
        c = self.tasks[model.kind]
        return c["overhead_s"] + c["factor"] * _seconds(work(fn, spec), self.rates)

    def startup_seconds(self, kind: str) -> float:
        return self.tasks[kind]["startup_s"]


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def calibrate(kinds: Sequence[str] | None = None, *, refresh: bool = False, folder=None,
              pool: bool = False) -> Calibration:
    """The calibration of the cost models ``kinds`` (default all) on this machine: read from the
    cache (:func:`cache_dir` or ``folder``) when its machine facts and the simulators' source
    hashes match, otherwise measured (about a second per model) and written back atomically.
    ``pool``: also the start-up time of a pool of worker processes (once, a second or two)."""
    from .sweep import _task_threads

    folder = Path(folder) if folder is not None else cache_dir()
    path = folder / CALIBRATION_FILE
    facts = machine()
    data = None if refresh else _read_json(path)
    if data is None or data.get("machine") != facts:
        data = {"format": _FORMAT, "machine": facts, "rates": None, "tasks": {}}
    wanted = sorted(MODELS) if kinds is None else sorted(set(kinds))
    todo = [k for k in wanted if (data["tasks"].get(k) or {}).get("code") != _source_hash(MODELS[k])]
    measure_pool = pool and data.get("pool_start_s") is None
    if data["rates"] is None or todo or measure_pool:
        with _task_threads(1):
            if data["rates"] is None:
                data["rates"] = _measure_rates()
            for kind in todo:
                data["tasks"][kind] = {**_calibrate_task(MODELS[kind], data["rates"]),
                                       "code": _source_hash(MODELS[kind])}
        if measure_pool:
            data["pool_start_s"] = _measure_pool_start()
        data["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with contextlib.suppress(OSError):  # an unwritable cache only costs a recalibration next time
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as fh:
                fh.write(json.dumps(data, indent=1, sort_keys=True).encode())
    return Calibration(facts, data["rates"], data["tasks"], str(path), data.get("created", ""), todo,
                       data.get("pool_start_s"))


# ============================================================================ estimate
@dataclass(frozen=True)
class PlannedCall:
    """One ``run_sweep`` call of an experiment: its task function, parameter points and seeds;
    ``cached``: one flag per task (point-major, as the sweep orders them), True where the cache
    already holds its result (empty: none cached)."""

    fn: Callable
    params: tuple
    seeds: int
    cached: tuple = ()


def cached_tasks(fn: Callable, params: Sequence, seeds: int, *, experiment: str, config) -> tuple:
    """For each task of ``run_sweep(fn, params, seeds, experiment=..., config=config)`` (point-major),
    whether the cache of ``config`` holds an entry file for it. Reads only: nothing is created or
    verified (a corrupt entry counts as cached here and is recomputed by the run)."""
    from .spec import ModelSpec
    from .sweep import Task, _cache_entries, _safe_name

    if config.cache is None:
        return ()
    folder = Path(config.cache) / _safe_name(experiment)
    if not folder.is_dir():
        return ()
    points = [p if isinstance(p, ModelSpec) else dict(p) for p in params]
    tasks = [Task(p, s) for p in points for s in range(int(seeds))]
    entries = _cache_entries(fn, tasks, experiment, config, None, folder)
    return tuple(os.path.isfile(e.path) and not os.path.islink(e.path) for e in entries)


def _load_average() -> float | None:
    """The 1-minute load average of this machine (runnable processes), None where unknown."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _makespan(durations: Sequence[float], workers: int) -> float:
    """Wall time of tasks taken in order by the first free of ``workers`` workers."""
    if workers <= 1:
        return float(sum(durations))
    free = [0.0] * workers
    for t in durations:
        i = int(np.argmin(free))
        free[i] += t
    return float(max(free))


def estimate(calls: Sequence[PlannedCall], *, backend: str = "serial", workers: int | None = None,
             other_seconds: float = 0.0, calibration: Calibration | None = None, remote: bool = False) -> dict:
    """Tasks, core-hours, peak memory per task and wall seconds of the planned ``calls`` (tasks
    already in the cache, ``PlannedCall.cached``, are counted in ``tasks`` and ``cached_tasks`` but
    cost nothing).

    ``workers``: for "processes"/"dask" (default: the cores of this machine; capped at the cores
    and at each call's number of tasks, as the sweep does); "serial" is one worker. ``remote``: the
    workers are a dask cluster elsewhere (``--scheduler``): ``workers`` is not capped at this
    machine's cores, and each of them is taken to be as fast as one core here.
    ``other_seconds``: the experiment's own time outside the sweep (theory, figure), added to the
    wall time. Each sweep call on "processes" or "dask" also starts its workers (the calibrated
    start-up of a process pool; a dask cluster's is taken to be the same).

    ``wall_seconds`` is the time on this machine when nothing else runs (calibrations are timed by
    :func:`busy_seconds`); ``wall_seconds_at_current_load`` divides it by the share of the cores
    that ``workers`` busy processes get next to the current load average (cores / (load +
    workers), at most 1): on a shared machine the measured wall time follows the load.
    """
    kinds = sorted({model_for(c.fn, p)[0].kind for c in calls for p in c.params})
    cal = calibration if calibration is not None else calibrate(kinds, pool=backend != "serial")
    pool_start_s = cal.pool_start_s or 0.0
    cores = _cores()
    w = 1 if backend == "serial" else max(1, workers or cores) if remote else max(1, min(workers or cores, cores))
    by_kind: dict = {}
    total_s, wall, tasks, cached = 0.0, float(other_seconds), 0, 0
    for call in calls:
        durations, startup, n_cached = _call_durations(call, cal, by_kind)
        cached += n_cached
        tasks += len(durations) + n_cached
        if durations:
            n_workers = min(w, len(durations))
            wall += _makespan(durations, n_workers) + startup + (pool_start_s if backend != "serial" else 0.0)
            total_s += sum(durations) + startup * n_workers
    for entry in by_kind.values():
        entry["core_hours"] = entry.pop("core_seconds") / 3600.0
    load = _load_average()
    share = 1.0 if load is None else min(1.0, cores / (load + w))
    return {"tasks": tasks, "cached_tasks": cached, "core_hours": total_s / 3600.0,
            "peak_memory_bytes": max((e["peak_memory_bytes"] for e in by_kind.values()), default=0),
            "wall_seconds": wall, "backend": backend, "workers": w, "other_seconds": float(other_seconds),
            "load_average": load, "wall_seconds_at_current_load": wall / share, "by_task": by_kind,
            "upper_bound": "hierarchical-adam" in by_kind,
            "calibration": {"path": cal.path, "created": cal.created, "machine": cal.machine,
                            "recalibrated": list(cal.recalibrated)}}


def _call_durations(call: PlannedCall, cal: Calibration, by_kind: dict) -> tuple[list, float, int]:
    """(predicted seconds of each task still to compute, in submission order; the start-up of the
    call's task kinds in a fresh worker; the number of cached tasks) of one sweep call, adding its
    tasks to the per-kind totals ``by_kind``."""
    durations, kinds, n_cached = [], set(), 0
    for i, spec in enumerate(call.params):
        model, spec_obj = model_for(call.fn, spec)
        todo = call.seeds - sum(call.cached[i * call.seeds:(i + 1) * call.seeds])
        n_cached += call.seeds - todo
        t = cal.task_seconds(call.fn, spec_obj)
        durations += [t] * todo
        kinds.add(model.kind)
        entry = by_kind.setdefault(model.kind, {"tasks": 0, "cached": 0, "core_seconds": 0.0,
                                                "peak_memory_bytes": 0, "flops": 0.0})
        entry["tasks"] += call.seeds
        entry["cached"] += call.seeds - todo
        entry["core_seconds"] += t * todo
        entry["flops"] += flops(call.fn, spec_obj) * todo
        entry["peak_memory_bytes"] = max(entry["peak_memory_bytes"], peak_bytes(call.fn, spec_obj))
    return durations, sum(cal.startup_seconds(k) for k in kinds), n_cached


def _main() -> int:  # pragma: no cover - a manual check: python -m simulations.cost
    cal = calibrate(refresh="--refresh" in sys.argv)
    print(json.dumps({"rates": cal.rates, "tasks": cal.tasks}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
