"""Basin hopping over the child optimizers' results."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..validation import check_bounds
from .base import BaseGenerator, SeedLike, best_of, checked_number, finite_bests

__all__ = ("BasinHoppingGenerator",)


class BasinHoppingGenerator(BaseGenerator):
    """Basin hopping over the results of the child optimizers.

    The child optimizers play the local minimizer of classic basin hopping. Each ``generate``
    call works as follows (the box is ``manager.bounds``, its width per dimension ``w``):

    1. **Trial.** The trial is the best result (lowest finite best value) among the optimizers
       that have ended (``opt_log.records[i].t_end`` is set) and were not yet considered; all of
       them are then marked as considered. There is no trial when none ended since the last call.
    2. **Basin.** The first time any result exists, the basin is set to it without a test: the
       trial if there is one, otherwise the best result of any optimizer (live ones included).
       Afterwards every trial goes through a Metropolis test against the current basin: it is
       accepted if ``f_trial <= f_basin``, else with probability
       ``exp(-(f_trial - f_basin) / temperature)`` (never when ``temperature`` is 0). An
       accepted trial becomes the basin.
    3. **Step-size adaptation.** After every ``interval`` Metropolis tests (generations that
       had a trial), the acceptance rate over those tests is compared with
       ``target_accept_rate``: if higher the step grows (``step_size /= factor``, at most
       ``max_step_size``); if lower it shrinks (``step_size *= factor``). The step starts at
       ``max_step_size``.
    4. **Step.** The point is ``x_basin + step_size * w * u`` with ``u ~ U(-1, 1)`` per
       dimension, mirrored back into the box at the bounds it crosses.

    Before any optimizer has a finite result the point is uniformly random.

    Args:
        temperature: Metropolis temperature, in function-value units (>= 0; 0 is greedy).
        max_step_size: Initial and largest step, as a fraction of the box width (in (0, 1]).
        target_accept_rate: Acceptance rate the step size is tuned toward (in (0, 1)).
        interval: Metropolis tests between step-size adaptations (integer >= 1).
        factor: Multiplicative step change at each adaptation (in (0, 1)).
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("temperature", "max_step_size", "target_accept_rate", "interval", "factor")

    def __init__(self, temperature: float = 1, max_step_size: float = 0.5, target_accept_rate: float = 0.5,
                 interval: int = 5, factor: float = 0.9, seed: SeedLike = None):
        super().__init__(seed)
        self.temperature = checked_number(temperature, "temperature", lo_incl=True)
        self.max_step_size = checked_number(max_step_size, "max_step_size", 0, 1, hi_incl=True)
        self.target_accept_rate = checked_number(target_accept_rate, "target_accept_rate", 0, 1)
        self.interval = checked_number(interval, "interval", integer=True)
        self.factor = checked_number(factor, "factor", 0, 1)
        self.step_size = self.max_step_size
        self.basin: tuple[np.ndarray, float] | None = None
        self.n_tests = 0
        self.n_accepted = 0
        self._window_tests = 0
        self._window_accepted = 0
        self._considered: set[int] = set()

    def generate(self, manager: Any) -> np.ndarray:
        bounds = check_bounds(manager.bounds)
        log = manager.opt_log
        trial = self._take_trial(log)
        if self.basin is None:
            if trial is None:
                trial = best_of(finite_bests(log, log.opt_ids))
            if trial is None:
                return self.rng.uniform(bounds[:, 0], bounds[:, 1])
            self.basin = trial[:2]
            self.logger.debug("basin hopping: first basin from optimizer %d (fx=%.6g)", trial[2], trial[1])
        elif trial is not None:
            self._metropolis(trial)
        return self._step(bounds)

    def _take_trial(self, log: Any) -> tuple[np.ndarray, float, int] | None:
        ended = [i for i in log.opt_ids if i not in self._considered and log.records[i].t_end is not None]
        self._considered.update(ended)
        return best_of(finite_bests(log, ended))

    def _metropolis(self, trial: tuple[np.ndarray, float, int]) -> None:
        x, fx, opt_id = trial
        delta = fx - self.basin[1]
        if delta <= 0:
            accept = True
        elif self.temperature == 0:
            accept = False
        else:
            accept = bool(self.rng.random() < math.exp(-delta / self.temperature))
        self.n_tests += 1
        self._window_tests += 1
        if accept:
            self.basin = (x, fx)
            self.n_accepted += 1
            self._window_accepted += 1
        self.logger.debug("basin hopping: optimizer %d (fx=%.6g) %s", opt_id, fx, "accepted" if accept else "rejected")
        if self._window_tests >= self.interval:
            self._adapt()

    def _adapt(self) -> None:
        rate = self._window_accepted / self._window_tests
        if rate > self.target_accept_rate:
            self.step_size = min(self.step_size / self.factor, self.max_step_size)
        elif rate < self.target_accept_rate:
            self.step_size *= self.factor
        self._window_tests = self._window_accepted = 0
        self.logger.debug("basin hopping: acceptance %.2f, step size now %.4g", rate, self.step_size)

    def _step(self, bounds: np.ndarray) -> np.ndarray:
        lo, hi = bounds[:, 0], bounds[:, 1]
        x = self.basin[0] + self.step_size * (hi - lo) * self.rng.uniform(-1, 1, len(bounds))
        # One mirror suffices: the step is at most one box width and the basin is inside the box.
        x = np.where(x < lo, 2 * lo - x, x)
        x = np.where(x > hi, 2 * hi - x, x)
        return np.clip(x, lo, hi)
