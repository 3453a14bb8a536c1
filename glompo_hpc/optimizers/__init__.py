"""Child optimizers: the BaseOptimizer contract and the wrappers shipped with glompo_hpc.

``glompo_hpc.optimizers.conformance`` holds a kit that checks any BaseOptimizer subclass against
the contract.
"""

from .base import BaseOptimizer, MinimizeResult
from .cma import CMAOptimizer
from .random import RandomOptimizer
from .scipy import ScipyOptimizer, ScipyOptimizeWrapper

__all__ = ("BaseOptimizer", "MinimizeResult", "CMAOptimizer", "ScipyOptimizer", "ScipyOptimizeWrapper",
           "RandomOptimizer")
