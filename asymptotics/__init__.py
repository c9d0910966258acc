"""asymptotics: high-dimensional learning curves, theory and simulation side by side.

The theory modules (this package) compute deterministic equivalents; the simulators live in
the sibling package :mod:`simulations`; :mod:`asymptotics.compare`,
:mod:`asymptotics.experiments` and :mod:`asymptotics.cli` put both together.
"""
from .ridge import GaussianCovariateModel, NumericalWarning, OptimalRidge, RidgeResult, marchenko_pastur_ridge

__version__ = "0.1.0"

__all__ = ["GaussianCovariateModel", "RidgeResult", "OptimalRidge", "NumericalWarning",
           "marchenko_pastur_ridge", "__version__"]
