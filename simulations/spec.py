"""Model specifications: one frozen dataclass per simulator, validated once, canonical JSON.

A sweep task is ``fn(spec, seed)``: ``spec`` a :class:`ModelSpec` (everything that defines one
parameter point of one simulator) and ``seed`` the task's :class:`numpy.random.SeedSequence`.
A spec validates (and normalises: ints, floats, tuples) its fields once, in ``__post_init__``;
every later hop trusts it. Its canonical JSON — sorted keys, the spec's ``kind`` included, floats
written exactly by ``repr`` — is what the sweep hashes for the cache key and the task's seed, so
two specs that differ in any field have different keys, and ``from_json(to_json(s)) == s``.

Subclasses::

    @register_spec
    @dataclass(frozen=True)
    class RidgeSpec(ModelSpec):
        kind: ClassVar[str] = "ridge"
        n: int
        ...
        def validate(self):            # called by __post_init__
            self._set("n", pos_int(self.n, "n"))
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, ClassVar

import numpy as np

__all__ = ["ModelSpec", "register_spec", "spec_from_json", "spec_from_dict", "canonical", "stable_hash"]

_SPECS: dict[str, type["ModelSpec"]] = {}


def canonical(obj: Any) -> Any:
    """JSON-compatible canonical form (numpy scalars and arrays, tuples, specs included)."""
    if isinstance(obj, ModelSpec):
        return canonical(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": canonical(obj.tolist()), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return repr(x) if not math.isfinite(x) else x
    if obj is None or isinstance(obj, (int, str)):
        return obj
    raise TypeError(f"sweep parameters must be JSON-like (dict, list, str, int, float, bool, None, "
                    f"numpy arrays, ModelSpec); got {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    return json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``: stable across processes and runs."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def _thaw(value: Any) -> Any:
    """JSON lists back to tuples (specs hold tuples so that they are hashable and immutable)."""
    if isinstance(value, list):
        return tuple(_thaw(v) for v in value)
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Base of the model specifications (module docstring)."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check and normalise the fields (subclasses); raise ValueError/TypeError naming the field."""

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field during validation (the dataclass is frozen afterwards)."""
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["kind"] = self.kind
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, exact floats, the spec's kind)."""
        return canonical_json(self)

    def key(self) -> str:
        """SHA-256 of the canonical JSON: differs for specs that differ in any field."""
        return stable_hash(self)

    def replace(self, **changes) -> "ModelSpec":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if cls.kind and kind != cls.kind:
            raise ValueError(f"spec kind {kind!r} is not {cls.kind!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; fields: {sorted(names)}")
        return cls(**{k: _thaw(v) for k, v in data.items()})


def register_spec(cls: type[ModelSpec]) -> type[ModelSpec]:
    """Class decorator: make a spec class known to :func:`spec_from_json` by its ``kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute kind")
    if _SPECS.get(cls.kind, cls) is not cls:
        raise ValueError(f"spec kind {cls.kind!r} registered twice")
    _SPECS[cls.kind] = cls
    return cls


def spec_from_dict(data: dict) -> ModelSpec:
    kind = data.get("kind")
    if kind not in _SPECS:
        raise ValueError(f"unknown spec kind {kind!r}; known: {sorted(_SPECS)}")
    return _SPECS[kind].from_dict(data)


def spec_from_json(text: str) -> ModelSpec:
    """The spec of a canonical JSON text (inverse of :meth:`ModelSpec.to_json`)."""
    return spec_from_dict(json.loads(text))
