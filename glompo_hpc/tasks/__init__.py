"""Optimization tasks: the BaseFunction interface and benchmark functions with known minima."""

from .base import BaseFunction
from .functions import (ALL_FUNCTIONS, Ackley, Griewank, LennardJones, Levy, Michalewicz, Rastrigin,
                        Rosenbrock, Schwefel, Shekel, StyblinskiTang)

__all__ = ("BaseFunction", "ALL_FUNCTIONS", "Rastrigin", "Ackley", "Griewank", "Levy", "Michalewicz",
           "Schwefel", "StyblinskiTang", "Rosenbrock", "Shekel", "LennardJones")
