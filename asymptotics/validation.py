"""Argument checks shared by theory and simulators (base layer): a clear error naming the argument.

Each check returns the normalised value (a Python int/float, a numpy dtype, ...) so that callers
write ``n = pos_int(n, "n")``. Bad values raise ``ValueError`` (``TypeError`` only where the
type, not the value, is wrong and the caller asked for it) with the argument's name in the message.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["pos_int", "nonneg_int", "pos_float", "nonneg_float", "finite_float", "choice", "float_dtype",
           "probability"]


def _is_int(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, numbers.Integral)


def _is_real(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, numbers.Real)


def pos_int(v, name: str) -> int:
    """A positive integer (bools rejected)."""
    if not _is_int(v) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def nonneg_int(v, name: str) -> int:
    """A non-negative integer (bools rejected)."""
    if not _is_int(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def finite_float(v, name: str) -> float:
    """A finite real number."""
    if not _is_real(v) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def nonneg_float(v, name: str) -> float:
    """A finite real number >= 0."""
    if not _is_real(v) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


def pos_float(v, name: str, allow_zero: bool = False) -> float:
    """A finite real number > 0 (>= 0 with ``allow_zero``)."""
    if allow_zero:
        return nonneg_float(v, name)
    if not _is_real(v) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def probability(v, name: str) -> float:
    """A number in [0, 1]."""
    if not _is_real(v) or not 0 <= v <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    return float(v)


def choice(v, name: str, options) -> str:
    """One of ``options``."""
    if v not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {v!r}")
    return v


def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """float32 or float64 as a numpy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name} must be float32 or float64, got {dt}")
    return dt
