"""asymptotics: high-dimensional learning curves, theory and simulation side by side.

The theory modules (this package) compute deterministic equivalents; the simulators live in
the sibling package :mod:`simulations`; :mod:`asymptotics.compare`,
:mod:`asymptotics.experiments` and :mod:`asymptotics.cli` put both together.

The top-level names are loaded lazily, so that ``simulations`` can import the base layer
``asymptotics.functions`` without loading the theory modules.
"""
__version__ = "0.1.0"

_RIDGE_NAMES = ("GaussianCovariateModel", "RidgeResult", "OptimalRidge", "NumericalWarning",
                "marchenko_pastur_ridge")
__all__ = list(_RIDGE_NAMES) + ["__version__"]


def __getattr__(name):
    if name in _RIDGE_NAMES:
        from . import ridge

        return getattr(ridge, name)
    raise AttributeError(f"module 'asymptotics' has no attribute {name!r}")
