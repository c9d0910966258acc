"""Resumable segments of long tasks: a checkpoint of a training loop's state in the sweep cache.

A long loop (an Adam run, the accumulation of a Gram matrix over a million rows) saves its whole
state every *segment* of wall time, at a boundary of its own (an epoch, a chunk of rows), and on a
rerun of the task (another dask worker after a kill, a rerun of the command with the same
``--cache``) starts from the last one. The state is everything the loop carries from one
iteration to the next (parameters, optimiser moments and step counter, accumulators, the losses
so far, the stopping rule's counters); random numbers are drawn from streams keyed by the epoch or
the block index (:func:`simulations.rng.stream`), so no generator state is needed. The resumed run
is therefore bit-identical to an uninterrupted one, wherever the segments fell.

Usage inside a loop (no-op when no checkpoint is active, i.e. outside a sweep with a cache)::

    seg = segments("adam", signature)      # signature: what identifies the loop (JSON-like)
    state = seg.resume()                   # the last saved state (dict) or None
    ...
    while ...:
        ...one epoch...
        seg.save_if_due(lambda: {...state...})

The sweep (:func:`simulations.sweep.run_sweep` with ``cache``) activates a :class:`Checkpoint` for
every task it computes (a context variable, so the task's signature ``fn(spec, seed)`` is
unchanged; it works for the serial, processes and dask backends alike); its states are written,
atomically and without pickles, next to the task's cache entry (``<key>.<phase>.ckpt``, in the
cache-entry format of :mod:`simulations.sweep`) and removed once the result is cached.

Segment length: ``every`` seconds (default :data:`SEGMENT_SECONDS`), but at least 20 times the
duration of the previous save, so that writing checkpoints costs at most about 5 % of the run.
A task that is killed loses at most the work since its last save (one segment).
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import re
import time
import warnings
from typing import Any, Callable, Iterator, Protocol

import numpy as np

__all__ = ["SEGMENT_SECONDS", "Checkpoint", "CheckpointStore", "MemoryStore", "Segments", "active", "current",
           "segments", "digest", "CheckpointWarning"]

#: Default wall time between two saves of a running task's state (seconds).
SEGMENT_SECONDS = 120.0
#: A segment lasts at least this many times the previous save (checkpoint overhead ≤ ~5 %).
_SAVE_FACTOR = 20.0
_PHASE = re.compile(r"[a-z][a-z0-9-]{0,39}")


class CheckpointWarning(RuntimeWarning):
    """A saved state was not used (unreadable, or saved by a loop with another signature): the loop
    starts from the beginning."""


class CheckpointStore(Protocol):
    """Where the states of one task's phases are kept (the sweep's cache, or memory)."""

    def save(self, phase: str, state: dict) -> None: ...

    def load(self, phase: str) -> dict | None: ...

    def clear(self) -> None: ...


class MemoryStore:
    """States kept in a dict (tests, interactive use); ``states[phase]`` is a deep copy of the last
    saved state (a loop saves its live arrays)."""

    def __init__(self) -> None:
        self.states: dict[str, dict] = {}

    def save(self, phase: str, state: dict) -> None:
        self.states[phase] = copy.deepcopy(state)

    def load(self, phase: str) -> dict | None:
        return self.states.get(phase)

    def clear(self) -> None:
        self.states.clear()


class Checkpoint:
    """The checkpoint of one run of one task: its store, the segment length and the save clock.

    every : seconds between saves (0: at every boundary the loop offers; tests use it).
    Phases of the task are numbered in the order they are opened (``adam``, then a second
    ``adam`` is ``adam-2``), so a task with two loops of one kind keeps two states.
    """

    def __init__(self, store: CheckpointStore, every: float = SEGMENT_SECONDS):
        if not (isinstance(every, (int, float)) and not isinstance(every, bool) and every >= 0):
            raise ValueError(f"every must be a non-negative number of seconds, got {every!r}")
        self.store, self.every = store, float(every)
        self.saves, self.resumed = 0, 0  # states saved, states resumed from (accepted)
        self._last = time.monotonic()
        self._save_time = 0.0
        self._opened: dict[str, int] = {}

    def phase_name(self, kind: str) -> str:
        if not isinstance(kind, str) or not _PHASE.fullmatch(kind):
            raise ValueError(f"phase must be lower-case letters, digits and '-' (≤ 40), got {kind!r}")
        count = self._opened[kind] = self._opened.get(kind, 0) + 1
        return kind if count == 1 else f"{kind}-{count}"

    def due(self) -> bool:
        """Whether a segment has passed since the last save (or since the task started)."""
        if self.every == 0:
            return True
        return time.monotonic() - self._last >= max(self.every, _SAVE_FACTOR * self._save_time)

    def save(self, phase: str, state: dict) -> None:
        t0 = time.monotonic()
        self.store.save(phase, state)
        self._last = time.monotonic()
        self._save_time = self._last - t0
        self.saves += 1

    def load(self, phase: str) -> dict | None:
        return self.store.load(phase)

    def clear(self) -> None:
        self.store.clear()


_ACTIVE: contextvars.ContextVar[Checkpoint | None] = contextvars.ContextVar("simulations_checkpoint", default=None)


def current() -> Checkpoint | None:
    """The checkpoint of the task running in this context (``None`` outside a cached sweep)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def active(checkpoint: Checkpoint | None) -> Iterator[Checkpoint | None]:
    """Run the body with ``checkpoint`` as the current one (``None``: none)."""
    token = _ACTIVE.set(checkpoint)
    try:
        yield checkpoint
    finally:
        _ACTIVE.reset(token)


class Segments:
    """One loop's view of the current checkpoint (:func:`segments`); inert without one."""

    def __init__(self, kind: str, signature: Any):
        self.checkpoint = current()
        self.signature = signature() if callable(signature) and self.checkpoint is not None else signature
        self.phase = self.checkpoint.phase_name(kind) if self.checkpoint is not None else kind

    def resume(self) -> dict | None:
        """The state saved by the same loop (same signature), or ``None`` to start afresh."""
        if self.checkpoint is None:
            return None
        saved = self.checkpoint.load(self.phase)
        if saved is None:
            return None
        if not isinstance(saved, dict) or saved.get("signature") != self.signature or "state" not in saved:
            warnings.warn(f"checkpoint {self.phase!r} was saved by another loop (signature differs); "
                          "starting from the beginning", CheckpointWarning, stacklevel=2)
            return None
        self.checkpoint.resumed += 1
        return saved["state"]

    def save_if_due(self, state: Callable[[], dict]) -> bool:
        """Save ``state()`` if a segment has passed; ``state`` is only called then."""
        if self.checkpoint is None or not self.checkpoint.due():
            return False
        self.checkpoint.save(self.phase, {"signature": self.signature, "state": state()})
        return True


def segments(kind: str, signature: Any = None) -> Segments:
    """The segments of a loop of kind ``kind`` (a phase name such as ``"adam"``, ``"gram"``) whose
    identity is ``signature`` (JSON-like: shapes, sizes, hyper-parameters, digests of the data; or a
    function returning it, called only when a checkpoint is active); see the module docstring."""
    return Segments(kind, signature)


def digest(*arrays: np.ndarray) -> str:
    """A short SHA-256 of the arrays' dtypes, shapes and C-order bytes (for loop signatures:
    "the same data"), read 16 MiB at a time."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        flat = np.ascontiguousarray(a).reshape(-1)
        step = max(1, (1 << 24) // max(1, a.dtype.itemsize))
        for i in range(0, flat.size, step):
            h.update(flat[i:i + step].tobytes())
    return h.hexdigest()[:32]
