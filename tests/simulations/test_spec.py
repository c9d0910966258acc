"""Model specs: validated once, canonical JSON round trip, keys that tell specs apart."""
import dataclasses
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymptotics.validation import choice, nonneg_float, pos_int
from simulations.spec import ModelSpec, register_spec, spec_from_json


@register_spec
@dataclasses.dataclass(frozen=True)
class _ToySpec(ModelSpec):
    kind: ClassVar[str] = "toy-for-tests"
    n: int = 1
    lam: float = 0.0
    lams: tuple = ()
    name: str = "a"
    flag: bool = False
    extra: int | None = None

    def validate(self) -> None:
        self._set("n", pos_int(self.n, "n"))
        self._set("lam", nonneg_float(self.lam, "lam"))
        self._set("lams", tuple(nonneg_float(x, "lams") for x in self.lams))
        choice(self.name, "name", ("a", "b", "c"))


_specs = st.builds(
    _ToySpec,
    n=st.integers(1, 10**9),
    lam=st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
    lams=st.lists(st.floats(0, 1e3, allow_nan=False), max_size=4).map(tuple),
    name=st.sampled_from(["a", "b", "c"]),
    flag=st.booleans(),
    extra=st.none() | st.integers(-5, 5),
)


@settings(max_examples=200, deadline=None)
@given(spec=_specs)
def test_json_round_trip_is_identity(spec):
    back = spec_from_json(spec.to_json())
    assert back == spec and type(back) is _ToySpec
    assert back.key() == spec.key()


@settings(max_examples=200, deadline=None)
@given(a=_specs, b=_specs)
def test_specs_differing_in_any_field_hash_differently(a, b):
    assert (a.key() == b.key()) == (a == b)


def test_every_single_field_change_changes_the_key():
    base = _ToySpec(n=3, lam=0.5, lams=(1.0,), name="b", flag=True, extra=2)
    changed = [base.replace(n=4), base.replace(lam=0.25), base.replace(lams=(1.0, 2.0)), base.replace(name="c"),
               base.replace(flag=False), base.replace(extra=None)]
    keys = {s.key() for s in changed} | {base.key()}
    assert len(keys) == len(changed) + 1


def test_validation_happens_once_at_construction_and_names_the_field():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        _ToySpec(n=0)
    with pytest.raises(ValueError, match="lam"):
        _ToySpec(lam=-1.0)
    with pytest.raises(ValueError, match="unknown field"):
        _ToySpec.from_dict({"n": 2, "bogus": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        _ToySpec().n = 2
    assert _ToySpec(lams=[1, 2]).lams == (1.0, 2.0)  # normalised: a list becomes a tuple of floats
