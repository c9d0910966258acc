"""Test configuration: hypothesis draws the same examples on every machine and every run.

Profiles (select one with the environment variable ``HYPOTHESIS_PROFILE`` or pytest's
``--hypothesis-profile NAME``):

* ``deterministic`` (the default, locally and in CI): ``derandomize=True`` — the examples of a
  test are a function of the test alone (and the hypothesis version), so a verdict seen locally
  is the verdict CI sees — and no example database, so failures found earlier are not replayed
  on one machine only;
* ``ci``: the same as ``deterministic`` (kept as a name for scripts that load it);
* ``explore``: fresh random examples every run, with the example database (failures found are
  replayed first next time). ``HYPOTHESIS_PROFILE=explore python -m pytest -q tests/...``
  looks for new counterexamples; commit a failure it finds as an explicit example
  (``@example(...)``) so that the deterministic run checks it too.
"""
import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("ci", parent=settings.get_profile("deterministic"))
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
