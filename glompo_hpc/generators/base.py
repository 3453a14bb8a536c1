"""What every generator shares: the base classes, the checks of their settings, and reading the
optimizer log for the best results."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..validation import check_bounds

__all__ = ("BaseGenerator", "BoxGenerator", "SeedLike", "as_point", "checked_number", "finite_bests", "best_of")

SeedLike = int | np.random.SeedSequence | np.random.Generator | None


# ------------------------------------------------------------ validation helpers

def as_point(x: Any, bounds: np.ndarray, name: str) -> np.ndarray:
    """Check ``x`` has one finite value per bound and lies inside the box; return a float copy."""
    try:
        arr = np.array(x, dtype=float).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"{name} must be a sequence of numbers, got {x!r}") from e
    if arr.size != len(bounds):
        raise ConfigurationError(f"{name} must have {len(bounds)} values (one per bound), got {arr.size}: {x!r}")
    outside = np.flatnonzero(~np.isfinite(arr) | (arr < bounds[:, 0]) | (arr > bounds[:, 1]))
    if outside.size:
        i = int(outside[0])
        raise ConfigurationError(f"{name}[{i}] = {float(arr[i])!r} is outside bounds[{i}] = "
                                 f"({float(bounds[i, 0])!r}, {float(bounds[i, 1])!r})")
    return arr


def checked_number(value: Any, name: str, lo: float = 0, hi: float = math.inf, *, lo_incl: bool = False,
                   hi_incl: bool = False, integer: bool = False) -> Any:
    """Check ``value`` is a finite number (an integer if asked) in the given range; return it as such."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (lo <= value if lo_incl else lo < value) and (value <= hi if hi_incl else value < hi)):
        span = (f"{'>=' if lo_incl else '>'} {lo}" if hi == math.inf
                else f"in {'[' if lo_incl else '('}{lo}, {hi}{']' if hi_incl else ')'}")
        raise ConfigurationError(f"{name} must be {'an integer' if integer else 'a finite number'} {span}, "
                                 f"got {value!r}")
    return int(value) if integer else float(value)


def _short(value: Any) -> str:
    """Text of a setting; long arrays (bounds of a 100-parameter problem) are abbreviated."""
    if not isinstance(value, np.ndarray):
        return repr(value)
    if len(value) > 4:
        return f"[{value[0].tolist()!r}, ..., {value[-1].tolist()!r}] ({len(value)} items)"
    return repr(value.tolist())


# ------------------------------------------------------------ base classes

class BaseGenerator(ABC):
    """Base class of starting-point generators.

    Args:
        seed: Seed of the generator's own ``numpy.random.Generator`` (``self.rng``); None draws
            fresh entropy.
    """

    #: Task evaluations this generator made itself (the manager counts them); 0 for most generators.
    n_task_calls: int = 0

    def __init__(self, seed: SeedLike = None):
        self.rng = np.random.default_rng(seed)
        self.logger = logging.getLogger("glompo_hpc.generators")

    @abstractmethod
    def generate(self, manager: Any) -> np.ndarray:
        """A starting point of length ``manager.n_parms`` inside ``manager.bounds``."""

    #: Attributes shown by ``__str__`` (the summary file).
    _shown: tuple[str, ...] = ()

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_short(getattr(self, k))}" for k in self._shown)
        return f"{type(self).__name__}({args})"

    __repr__ = __str__


class BoxGenerator(BaseGenerator):
    """A generator given its own ``bounds`` (validated at init), with a uniform fallback point."""

    def __init__(self, bounds: Sequence[tuple[float, float]], seed: SeedLike = None):
        super().__init__(seed)
        self.bounds = check_bounds(bounds)

    def _random(self) -> np.ndarray:
        return self.rng.uniform(self.bounds[:, 0], self.bounds[:, 1])


# ------------------------------------------------------------ reading the optimizer log

def finite_bests(log: Any, opt_ids: Sequence[int]) -> list[tuple[np.ndarray, float, int]]:
    """(x, fx, opt_id) of the listed optimizers that have a finite best."""
    out = []
    for opt_id in opt_ids:
        x, fx, _ = log.best(opt_id)
        if x is not None and math.isfinite(fx):
            out.append((np.asarray(x, dtype=float), float(fx), opt_id))
    return out


def best_of(bests: list[tuple[np.ndarray, float, int]]) -> tuple[np.ndarray, float, int] | None:
    return min(bests, key=lambda b: b[1]) if bests else None
