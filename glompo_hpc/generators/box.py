"""Generators within a box of their own: random, fixed, around the incumbent or a given point, and
the recommended exploit/explore mix."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigurationError
from .base import BoxGenerator, SeedLike, as_point, checked_number, finite_bests

__all__ = ("RandomGenerator", "SinglePointGenerator", "IncumbentGenerator", "ExploitExploreGenerator",
           "PerturbationGenerator")


class RandomGenerator(BoxGenerator):
    """Uniformly random points in the box (GloMPO's default generator; glompo_hpc's is ExploitExploreGenerator).

    Args:
        bounds: (min, max) of every parameter.
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("bounds",)

    def generate(self, manager: Any) -> np.ndarray:
        return self._random()


class SinglePointGenerator(BoxGenerator):
    """Always the same point: ``x``, or (when ``x`` is None) one random point drawn at init.

    Args:
        bounds: (min, max) of every parameter.
        x: The point; must lie inside ``bounds``.
        seed: See :class:`BaseGenerator`; only used to draw the point when ``x`` is None.
    """

    _shown = ("x",)

    def __init__(self, bounds: Sequence[tuple[float, float]], x: Sequence[float] | None = None,
                 seed: SeedLike = None):
        super().__init__(bounds, seed)
        self.x = self._random() if x is None else as_point(x, self.bounds, "x")

    def generate(self, manager: Any) -> np.ndarray:
        return self.x.copy()


class IncumbentGenerator(BoxGenerator):
    """The best point found so far (``manager.result.x``); a random point before there is one.

    Args:
        bounds: (min, max) of every parameter.
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("bounds",)

    def generate(self, manager: Any) -> np.ndarray:
        result = getattr(manager, "result", None)
        x = getattr(result, "x", None)
        if x is None:
            return self._random()
        return np.array(x, dtype=float)


class ExploitExploreGenerator(BoxGenerator):
    """A blend of a random point (explore) and a good optimizer's best point (exploit).

    The point is ``alpha * x_best + (1 - alpha) * x_random`` with
    ``alpha = clip((manager.f_counter / max_func_calls) ** focus, 0, 1)``: early in the run the
    points are random, late in the run they sit on good optimizers' results. ``focus > 1`` keeps
    exploring longer, ``focus < 1`` exploits sooner.

    ``x_best`` is the best point of one optimizer in the log, picked by a roulette that favours
    better optimizers: the optimizers with a finite best are ranked by their best value, and the
    optimizer at rank r (0 = best) of n gets weight ``n - r``, so the best is n times as likely
    as the worst. Ranks, not values, make the roulette indifferent to the scale and sign of the
    function. Without any finite result the point is random.

    Args:
        bounds: (min, max) of every parameter.
        max_func_calls: Evaluations at which alpha reaches 1 (usually the run's budget).
        focus: Exponent shaping alpha over the run (> 0).
        seed: See :class:`BaseGenerator`.
        polish_after: None, or a fraction of ``max_func_calls`` in (0, 1] from which every point is
            the best point in the log (the incumbent) itself, for children meant to polish it.
    """

    _shown = ("max_func_calls", "focus")

    def __init__(self, bounds: Sequence[tuple[float, float]], max_func_calls: int, focus: float = 1,
                 seed: SeedLike = None, polish_after: float | None = None):
        super().__init__(bounds, seed)
        self.max_func_calls = checked_number(max_func_calls, "max_func_calls", integer=True)
        self.focus = checked_number(focus, "focus")
        self.polish_after = None if polish_after is None else checked_number(polish_after, "polish_after", 0, 1,
                                                                      hi_incl=True)

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.polish_after is None else f"{text[:-1]}, polish_after={self.polish_after!r})"

    __repr__ = __str__

    def alpha(self, f_counter: int) -> float:
        """Exploitation weight after ``f_counter`` evaluations."""
        return float(np.clip((f_counter / self.max_func_calls) ** self.focus, 0.0, 1.0))

    def generate(self, manager: Any) -> np.ndarray:
        x_random = self._random()
        alpha = self.alpha(manager.f_counter)
        bests = finite_bests(manager.opt_log, manager.opt_log.opt_ids)
        if alpha == 0 or not bests:
            return x_random
        bests.sort(key=lambda b: b[1])
        if self.polish_after is not None and manager.f_counter >= self.polish_after * self.max_func_calls:
            self.logger.debug("polishing the incumbent of optimizer %d (fx=%.6g)", bests[0][2], bests[0][1])
            return np.clip(bests[0][0], self.bounds[:, 0], self.bounds[:, 1])
        weights = np.arange(len(bests), 0, -1, dtype=float)
        chosen = bests[self.rng.choice(len(bests), p=weights / weights.sum())]
        self.logger.debug("exploit/explore: alpha=%.3g around optimizer %d (fx=%.6g)", alpha, chosen[2], chosen[1])
        # Both points lie in the (convex) box, so the blend does too; the clip only removes round-off.
        return np.clip(alpha * chosen[0] + (1 - alpha) * x_random, self.bounds[:, 0], self.bounds[:, 1])


class PerturbationGenerator(BoxGenerator):
    """Random points near ``x0``: per dimension a normal around ``x0`` truncated to the bounds.

    Args:
        x0: Centre of the distribution; must lie inside ``bounds``.
        bounds: (min, max) of every parameter.
        scale: Standard deviation (in parameter units) of the untruncated normal, one per
            dimension or one for all; each > 0.
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("x0", "scale")

    def __init__(self, x0: Sequence[float], bounds: Sequence[tuple[float, float]],
                 scale: float | Sequence[float], seed: SeedLike = None):
        super().__init__(bounds, seed)
        self.x0 = as_point(x0, self.bounds, "x0")
        try:
            scale_arr = np.broadcast_to(np.asarray(scale, dtype=float), self.x0.shape).copy()
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"scale must be a number or {len(self.x0)} numbers, got {scale!r}") from e
        bad = np.flatnonzero(~(np.isfinite(scale_arr) & (scale_arr > 0)))
        if bad.size:
            raise ConfigurationError(f"scale must be finite and > 0 in every dimension, got {scale!r} "
                                     f"(dimension {int(bad[0])})")
        self.scale = scale_arr

    def generate(self, manager: Any) -> np.ndarray:
        from scipy.stats import truncnorm  # imported here: scipy.stats is slow to import

        lo = (self.bounds[:, 0] - self.x0) / self.scale
        hi = (self.bounds[:, 1] - self.x0) / self.scale
        x = truncnorm.rvs(lo, hi, loc=self.x0, scale=self.scale, random_state=self.rng)
        return np.clip(np.asarray(x, dtype=float), self.bounds[:, 0], self.bounds[:, 1])
