"""Finite-size simulators (Numba + BLAS), data, sweeps.

This package never imports :mod:`asymptotics` (except the base layer
``asymptotics.functions``): it works on plain arrays so that the theory and the
simulation stay independent and can be compared honestly.
"""
