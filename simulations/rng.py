"""The one rule from seeds to random streams.

Every random number of the project comes from a :class:`numpy.random.Generator` obtained here,
by one rule::

    stream(seed, *path)  =  PCG64(SeedSequence(seed.entropy, spawn_key = seed.spawn_key + code(path)))

``seed`` is a root seed (an int) or a task's :class:`~numpy.random.SeedSequence`; ``path``
names the unit of work: integers (a sample size, a seed index, a block number) and strings
(named purposes such as ``"teacher"``, ``"init"``, ``"test"``; no magic numbers). A sweep task's
seed is itself ``point_seed(root_seed, experiment, hash(point), seed_index)``: a SeedSequence whose
spawn key codes the experiment, a hash of the parameter point and the seed index.

Why ``spawn_key`` and not a longer entropy list: SeedSequence pads its entropy with zeros, so
``[s, i]`` and ``[s, i, 0]`` give the same stream, whereas spawn keys of different length are
mixed differently (the key length is part of the hash). In addition every path element is coded
as a fixed number of 32-bit words with a type tag, so an integer never collides with a string
and ``(a, b)`` never with ``(a,)`` followed by anything. A unit of work therefore gets the same
random numbers whatever the backend, the number of workers, the order of execution or the
chunking, and different units never share a stream.
"""
from __future__ import annotations

import hashlib
import numbers
from typing import Iterable

import numpy as np

__all__ = ["SeedLike", "seed_sequence", "make_rng", "child_seed", "stream", "child_rng", "point_seed",
           "hash_words"]

SeedLike = int | np.random.SeedSequence | Iterable[int]

_INT, _STR = 0x1, 0x2  # type tags of path elements
_MASK = 0xFFFFFFFF


def seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """A SeedSequence from an int, a sequence of ints (the entropy), or a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError("seed must be an int, a sequence of ints or a SeedSequence, not bool")
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return np.random.SeedSequence(int(seed))
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Iterable):
        raise TypeError(f"seed must be an int, a sequence of ints or a SeedSequence, got {type(seed).__name__}")
    entropy = [int(s) for s in seed]
    if any(s < 0 for s in entropy):
        raise ValueError(f"seed entries must be non-negative, got {entropy}")
    return np.random.SeedSequence(entropy)


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A PCG64 generator seeded from ``seed`` (see :func:`seed_sequence`)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed)))


def hash_words(text: str, words: int = 2) -> tuple[int, ...]:
    """``words`` 32-bit words of the SHA-256 of ``text`` (stable across processes and runs)."""
    digest = hashlib.sha256(text.encode()).digest()
    return tuple(int.from_bytes(digest[4 * i:4 * i + 4], "little") for i in range(words))


def _code(key) -> tuple[int, ...]:
    """Three 32-bit words for one path element: a type tag and the value (see module docstring)."""
    if isinstance(key, str):
        return (_STR, *hash_words(key))
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
        raise TypeError(f"stream keys must be non-negative integers or purpose names (str), got {key!r}")
    k = int(key)
    if not 0 <= k < 1 << 64:
        raise ValueError(f"stream keys must be non-negative integers below 2**64, got {k}")
    return (_INT, k & _MASK, k >> 32)


def child_seed(seed: SeedLike, *path: int | str) -> np.random.SeedSequence:
    """The SeedSequence of the unit of work ``path`` under ``seed`` (module docstring)."""
    base = seed_sequence(seed)
    key = tuple(base.spawn_key) + tuple(w for k in path for w in _code(k))
    return np.random.SeedSequence(base.entropy, spawn_key=key)


def stream(seed: SeedLike, *path: int | str) -> np.random.Generator:
    """The generator of the unit of work ``path`` under ``seed``: ``stream(s, "test", 3)``.

    Depends only on (seed, path); different paths (of any length) give independent streams.
    """
    return np.random.Generator(np.random.PCG64(child_seed(seed, *path)))


def child_rng(seed: SeedLike, *keys: int | str) -> np.random.Generator:
    """Alias of :func:`stream` (the name used by earlier versions)."""
    return stream(seed, *keys)


def point_seed(root_seed: int, experiment: str, point_hash: str, seed_index: int) -> np.random.SeedSequence:
    """The SeedSequence of one sweep task: (root seed, experiment, parameter point, seed index).

    ``point_hash`` is the hex digest of the parameter point's canonical JSON (see
    :func:`simulations.spec.stable_hash`); its first 128 bits enter the key.
    """
    if not isinstance(point_hash, str) or len(point_hash) < 32:
        raise ValueError("point_hash must be a hex digest of at least 32 characters")
    words = tuple(int(point_hash[i:i + 8], 16) for i in range(0, 32, 8))
    key = _code("task") + _code(str(experiment)) + (_STR, *words) + _code(int(seed_index))
    return np.random.SeedSequence(seed_sequence(root_seed).entropy, spawn_key=key)
