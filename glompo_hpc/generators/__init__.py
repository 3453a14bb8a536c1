"""Generators: where the manager starts each new child optimizer.

A generator is a small object whose ``generate(manager)`` returns a starting point: a float array
of length ``manager.n_parms`` inside ``manager.bounds``. Generators may read (never change) these
manager attributes: ``n_parms``, ``bounds``, ``result`` (``.x``/``.fx``), ``f_counter``,
``o_counter`` and ``opt_log`` (an :class:`~glompo_hpc.protocol.optlog.OptimizerLog`).

Every generator owns a ``numpy.random.Generator`` built from its ``seed`` argument, so a seeded
run repeats its starting points, and the generator (with its random state) pickles with dill into
a checkpoint and resumes where it stopped.

The generators live in modules by family (``base``, ``box``, ``basin_hopping``, ``annealing``);
every public name is imported here, at its documented path (``glompo_hpc.generators.RandomGenerator``),
where checkpoints written before the split find the classes they pickled.
"""

from .annealing import AnnealingGenerator
from .base import BaseGenerator, SeedLike
from .basin_hopping import BasinHoppingGenerator
from .box import (ExploitExploreGenerator, IncumbentGenerator, PerturbationGenerator, RandomGenerator,
                  SinglePointGenerator)

__all__ = ("BaseGenerator", "RandomGenerator", "SinglePointGenerator", "IncumbentGenerator",
           "ExploitExploreGenerator", "PerturbationGenerator", "BasinHoppingGenerator", "AnnealingGenerator")
