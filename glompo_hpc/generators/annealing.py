"""A short dual-annealing search from the incumbent, which evaluates the task itself."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np

from ..compat import Place, old_keywords
from ..errors import ConfigurationError
from .base import BoxGenerator, SeedLike, checked_number

__all__ = ("AnnealingGenerator",)


class _BudgetSpent(Exception):
    """Unwinds dual_annealing once the per-call evaluation budget is used up."""


class _TaskFailed(Exception):
    """Carries an exception of the task through dual_annealing (``__cause__`` is the original)."""


class AnnealingGenerator(BoxGenerator):
    """A short dual-annealing search from the incumbent; its best point is the starting point.

    Each ``generate`` call runs ``scipy.optimize.dual_annealing`` for ``maxiter`` iterations from
    ``manager.result.x`` (a random point before there is an incumbent) and returns the best point
    that search evaluated (the start point itself when every value was non-finite). Without
    local search an iteration costs ``2 * n_parms`` evaluations, plus one for the start.

    **Evaluation contract:** this generator calls ``task`` itself, outside any child optimizer,
    so those evaluations reach neither the optimizer log nor the manager's counters by
    themselves. ``n_task_calls`` is the exact running total of task evaluations this generator
    has made (it travels with the generator through checkpoints and never decreases); the
    manager reads it before and after each ``generate`` call and adds the increase to
    ``f_counter``. ``last_task_calls`` is the count of the latest call alone (at most the budget
    below).

    The budget of a call is ``maxfun`` if given; otherwise, with ``no_local_search``, exactly
    what ``maxiter`` iterations need (``1 + 2 * n_parms * maxiter``). It is enforced here rather
    than left to scipy, which overshoots its own ``maxfun`` and, when the task returns only
    non-finite values, re-draws the start point up to 1000 times.

    Args:
        bounds: (min, max) of every parameter.
        task: The function being minimized (any callable ``f(x) -> float``).
        maxiter: Annealing iterations per call (integer >= 1).
        maxfun: Evaluation budget per call (None: see above; unbounded with local search).
        initial_temp: ``dual_annealing``'s initial temperature, in (0.01, 5e4].
        visit: ``dual_annealing``'s visiting-distribution parameter, in (1, 3].
        accept: ``dual_annealing``'s acceptance parameter, in (-1e4, -5].
        no_local_search: Skip the local-search phase (True keeps each call cheap).
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("maxiter", "maxfun", "initial_temp", "visit", "accept", "no_local_search")

    @old_keywords(Place.ANNEALING, "AnnealingGenerator()")  # GloMPO 3.1's qa, qv, restart_temp_ratio
    def __init__(self, bounds: Sequence[tuple[float, float]], task: Callable[[np.ndarray], float],
                 maxiter: int = 5, maxfun: int | None = None, initial_temp: float = 5230.0, visit: float = 2.62,
                 accept: float = -5.0, no_local_search: bool = True, seed: SeedLike = None):
        super().__init__(bounds, seed)
        if not callable(task):
            raise ConfigurationError(f"task must be callable, got {task!r}")
        self.task = task
        self.maxiter = checked_number(maxiter, "maxiter", integer=True)
        self.maxfun = None if maxfun is None else checked_number(maxfun, "maxfun", integer=True)
        # scipy's documented ranges, checked here so a ValueError from scipy never means a bad setting
        self.initial_temp = checked_number(initial_temp, "initial_temp", 0.01, 5e4, hi_incl=True)
        self.visit = checked_number(visit, "visit", 1, 3, hi_incl=True)
        self.accept = checked_number(accept, "accept", -1e4, -5, hi_incl=True)
        self.no_local_search = bool(no_local_search)
        self.n_task_calls = 0
        self.last_task_calls = 0
        self._budget = math.inf
        self._best: tuple[np.ndarray, float] | None = None

    @property
    def budget(self) -> float:
        """Most task evaluations one ``generate`` call may make (inf: unbounded)."""
        if self.maxfun is not None:
            return self.maxfun
        return 1 + 2 * len(self.bounds) * self.maxiter if self.no_local_search else math.inf

    def _counted(self, x: np.ndarray) -> float:
        if self.last_task_calls >= self._budget:
            raise _BudgetSpent
        self.last_task_calls += 1
        self.n_task_calls += 1
        try:
            fx = float(self.task(x))
        except Exception as e:  # wrapped so it cannot pass for scipy's own ValueError below
            raise _TaskFailed from e
        if not math.isfinite(fx):
            return math.inf
        if self._best is None or fx < self._best[1]:
            self._best = (np.array(x, dtype=float), fx)
        return fx

    def generate(self, manager: Any) -> np.ndarray:
        from scipy.optimize import dual_annealing

        self.last_task_calls = 0
        self._budget = self.budget
        self._best = None
        result = getattr(manager, "result", None)
        x0 = getattr(result, "x", None)
        lo, hi = self.bounds[:, 0], self.bounds[:, 1]
        x0 = self._random() if x0 is None else np.clip(np.asarray(x0, dtype=float), lo, hi)
        kwargs: dict[str, Any] = {"maxiter": self.maxiter, "initial_temp": self.initial_temp, "visit": self.visit,
                                  "accept": self.accept, "no_local_search": self.no_local_search, "x0": x0}
        if self.maxfun is not None:
            kwargs["maxfun"] = self.maxfun
        # scipy >= 1.15 names the random source 'rng'; older releases call it 'seed'.
        kwargs["rng" if "rng" in inspect.signature(dual_annealing).parameters else "seed"] = self.rng
        task_error: BaseException | None = None
        try:
            dual_annealing(self._counted, [tuple(b) for b in self.bounds], **kwargs)
        except _BudgetSpent:
            pass
        except _TaskFailed as e:
            task_error = e.__cause__
        except ValueError:
            if self._best is not None:  # not scipy's all-values-non-finite complaint: a real fault
                raise
            self.logger.warning("annealing: every task value was non-finite; starting from the unannealed point")
        finally:
            self._budget = math.inf
        if task_error is not None:
            raise task_error  # outside the handler, so the traceback shows the task's own error only
        if self._best is None:
            return x0
        self.logger.debug("annealing: %d task calls, best fx=%.6g", self.last_task_calls, self._best[1])
        return np.clip(self._best[0], lo, hi)
