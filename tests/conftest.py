"""Test configuration: a deterministic hypothesis profile for CI.

With CI set (as `.ci/run` is run), hypothesis draws the same examples every run (derandomize),
so a CI verdict is reproducible; locally it explores new examples each run.
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
