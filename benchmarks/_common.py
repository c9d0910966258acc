"""Shared benchmark helpers: the machine's matrix-multiply rate, peak memory, timing, child processes."""
from __future__ import annotations

import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def gemm_rates(size: int = 4096, rounds: int = 3) -> dict:
    """Best-of-``rounds`` flop rate of a size³ ``@`` in float64 and float32: {"float64": r, "float32": r}."""
    rates = {}
    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        A = rng.standard_normal((size, size)).astype(dt)
        B = rng.standard_normal((size, size)).astype(dt)
        best = np.inf
        for _ in range(rounds):
            t = time.perf_counter()
            A @ B
            best = min(best, time.perf_counter() - t)
        rates[np.dtype(dt).name] = 2.0 * size**3 / best
    return rates


def gemm_rate(dtype, size: int = 4096, rounds: int = 3) -> float:
    """Best-of-``rounds`` flop rate of a size³ ``@`` in one dtype (to measure it right before a run)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)
    return 2.0 * size**3 / best_time(lambda: A @ B, rounds)


def peak_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_time(fn, rounds: int = 3) -> float:
    best = np.inf
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def in_child(fn, *args):
    """Run ``fn(*args)`` in a fresh spawned process (its own peak memory, no shared caches)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result()
