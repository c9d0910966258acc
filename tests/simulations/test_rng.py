"""The seed rule: stream(seed, *path) depends on (seed, path) only, and distinct paths never share a stream."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.rng import child_rng, child_seed, hash_words, make_rng, point_seed, stream
from simulations.spec import stable_hash


def _draw(rng):
    return rng.integers(0, 2**63, size=4).tolist()


def test_keys_of_different_length_never_collide():
    # The regression: SeedSequence pads its entropy with zeros, so entropy lists [s, i] and
    # [s, i, 0] give the same stream. Spawn keys with typed, fixed-width elements do not.
    assert _draw(np.random.default_rng(np.random.SeedSequence([7, 3]))) == \
        _draw(np.random.default_rng(np.random.SeedSequence([7, 3, 0])))  # the pitfall itself
    draws = {tuple(_draw(child_rng(7, *keys))) for keys in [(), (3,), (3, 0), (3, 0, 0), (0,), (0, 3), (30,)]}
    assert len(draws) == 7
    assert _draw(child_rng(7)) == _draw(make_rng(7))  # the empty path is the seed itself
    assert _draw(stream(7, 3)) != _draw(stream(7, 3, 0))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), a=st.lists(st.integers(0, 2**40), max_size=3),
       b=st.lists(st.integers(0, 2**40), max_size=3))
def test_distinct_integer_paths_give_distinct_streams(seed, a, b):
    same = _draw(stream(seed, *a)) == _draw(stream(seed, *b))
    assert same == (a == b)


def test_purpose_names_differ_from_each_other_and_from_integers():
    names = ["teacher", "init", "test", "train", "noise"]
    draws = [tuple(_draw(stream(0, k))) for k in names + [0, 1, 2, 3, 4]]
    assert len(set(draws)) == len(draws)


def test_stream_is_reproducible_and_nested_paths_compose():
    assert _draw(stream(5, "test", 2)) == _draw(stream(5, "test", 2))
    # a task seed handed down: stream(child_seed(s, a), b) is stream(s, a, b)
    assert _draw(stream(child_seed(5, "test"), 2)) == _draw(stream(5, "test", 2))
    assert _draw(stream(5, "test", 2)) != _draw(stream(6, "test", 2))


def test_point_seed_depends_on_every_part():
    h1, h2 = stable_hash({"n": 1}), stable_hash({"n": 2})
    ref = _draw(make_rng(point_seed(0, "exp", h1, 0)))
    for other in (point_seed(1, "exp", h1, 0), point_seed(0, "exp2", h1, 0), point_seed(0, "exp", h2, 0),
                  point_seed(0, "exp", h1, 1)):
        assert _draw(make_rng(other)) != ref
    assert _draw(make_rng(point_seed(0, "exp", h1, 0))) == ref


@pytest.mark.parametrize("bad", [-1, 1.5, True, "x", None, 2**64])
def test_bad_keys_are_rejected(bad):
    with pytest.raises((TypeError, ValueError)):
        stream(0, bad) if not isinstance(bad, str) else stream(bad)


def _documented_code(key):
    """The path coding of the module docstring, written out independently: a type tag (1 for an
    integer, 2 for a name), then two 32-bit words (the integer's low and high word, or the first
    eight bytes of the name's SHA-256 read as two little-endian words)."""
    if isinstance(key, str):
        d = hashlib.sha256(key.encode()).digest()
        return (2, int.from_bytes(d[0:4], "little"), int.from_bytes(d[4:8], "little"))
    return (1, key % 2**32, key // 2**32)


@pytest.mark.parametrize("seed, path", [(0, ()), (0, ("test", 3)), (7, (3, 0)), (12345, ("train", 2**40 + 5, 0)),
                                        (2**70, ("teacher",))])
def test_stream_is_the_documented_rule(seed, path):
    """The published numbers depend on the exact rule (SeedSequence(seed, spawn_key = code(path))):
    a change of a type tag, of the number of words per element, or from spawn keys to entropy
    lists changes every figure; this pins it."""
    key = tuple(w for k in path for w in _documented_code(k))
    ref = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
    assert _draw(stream(seed, *path)) == _draw(ref)
    ss = child_seed(seed, *path)
    assert ss.entropy == seed and tuple(ss.spawn_key) == key


def test_an_integer_never_takes_a_names_stream():
    """The type tag is what separates a name from the integer with the same two hash words."""
    for name in ("teacher", "test", "train"):
        w = hash_words(name)
        as_int = w[0] + (w[1] << 32)
        assert _draw(stream(0, name)) != _draw(stream(0, as_int))
        assert _draw(stream(0, name, 1)) != _draw(stream(0, as_int, 1))


@pytest.mark.parametrize("a, b", [((5,), (5 + 2**32,)), ((0,), (2**32,)), ((1, 2), (1 + 2**33, 2)),
                                  ((2**32 - 1,), (2**64 - 1,))])
def test_integers_equal_in_their_low_word_differ(a, b):
    """Each integer is coded with both 32-bit words: keys that agree modulo 2**32 differ."""
    assert _draw(stream(3, *a)) != _draw(stream(3, *b))


def test_keys_of_different_length_differ_also_under_a_task_seed():
    """The same facts under a sweep task's seed (a SeedSequence with its own spawn key)."""
    task = point_seed(0, "exp", stable_hash({"n": 1}), 0)
    draws = {tuple(_draw(stream(task, *keys))) for keys in [(), (0,), (0, 0), ("test",), ("test", 0), (0, "test")]}
    assert len(draws) == 6
    assert _draw(stream(task, 3)) != _draw(stream(point_seed(0, "exp", stable_hash({"n": 1}), 1), 3))


def test_point_seed_uses_all_128_bits_of_the_point_hash():
    h = stable_hash({"n": 1})
    for i in (0, 8, 16, 24, 31):  # one hex digit changed in each 32-bit word of the 128 bits
        other = h[:i] + ("0" if h[i] != "0" else "1") + h[i + 1:]
        assert _draw(make_rng(point_seed(0, "exp", other, 0))) != _draw(make_rng(point_seed(0, "exp", h, 0)))
