"""Seeding through :class:`numpy.random.SeedSequence`.

Every unit of work gets its own child seed, derived from explicit integers only,
so a result never depends on a global random state, on the order in which work
is executed or on how it is split between workers.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

SeedLike = int | np.random.SeedSequence | Iterable[int]


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
    entropy = [int(s) for s in seed]
    if any(s < 0 for s in entropy):
        raise ValueError(f"seed entries must be non-negative, got {entropy}")
    return np.random.SeedSequence(entropy)


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A PCG64 generator seeded from ``seed`` (see :func:`seed_sequence`)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed)))


def child_rng(seed: SeedLike, *keys: int) -> np.random.Generator:
    """Generator for the unit of work identified by integer ``keys`` under ``seed``.

    ``child_rng(s, i, j)`` depends only on (s, i, j): the same unit of work gets the
    same random numbers however the work is scheduled.
    """
    base = seed_sequence(seed)
    entropy = base.entropy if isinstance(base.entropy, (list, tuple)) else [base.entropy]
    keys = [int(k) for k in keys]
    if any(k < 0 for k in keys):
        raise ValueError(f"keys must be non-negative integers, got {keys}")
    # The key count is appended: SeedSequence pads with zeros, so (s, i) and (s, i, 0) would
    # otherwise collide.
    return make_rng(list(entropy) + list(base.spawn_key) + keys + [len(keys)])
