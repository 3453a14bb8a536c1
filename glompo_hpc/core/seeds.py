"""The run's seed, and the independent seeds derived from it for its optimizers and generator.

A run has one root seed (``GloMPOManager.seed``; drawn from fresh entropy when the user gives
none, and recorded, so any run can be repeated). Optimizer ``i`` gets the seed derived from
``(root, i)``, the default generator that of ``(root, 0)``: numpy's ``SeedSequence`` makes these
streams independent, and since they depend on the id alone a resumed run gives its new
optimizers the seeds the uninterrupted run would have given them.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_int

__all__ = ("GENERATOR_KEY", "root_seed", "derived_seed")

#: Spawn key of the default generator's seed (optimizer ids start at 1).
GENERATOR_KEY = 0


def root_seed(seed: int | None) -> int:
    """``seed`` checked (an integer >= 0), or a fresh 128-bit one when it is None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    return check_int("seed", seed, 0)


def derived_seed(root: int, key: int) -> int:
    """A 32-bit seed for stream ``key`` of the run seeded with ``root``."""
    return int(np.random.SeedSequence(root, spawn_key=(key,)).generate_state(1)[0])
