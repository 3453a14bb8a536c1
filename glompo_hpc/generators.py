"""Generators: where the manager starts each new child optimizer.

A generator is a small object whose ``generate(manager)`` returns a starting point: a float array
of length ``manager.n_parms`` inside ``manager.bounds``. Generators may read (never change) these
manager attributes: ``n_parms``, ``bounds``, ``result`` (``.x``/``.fx``), ``f_counter``,
``o_counter`` and ``opt_log`` (an :class:`~glompo_hpc.core.optlog.OptimizerLog`).

Every generator owns a ``numpy.random.Generator`` built from its ``seed`` argument, so a seeded
run repeats its starting points, and the generator (with its random state) pickles with dill into
a checkpoint and resumes where it stopped.
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from .compat import Place, old_keywords
from .errors import ConfigurationError
from .validation import check_bounds

__all__ = ("BaseGenerator", "RandomGenerator", "SinglePointGenerator", "IncumbentGenerator",
           "ExploitExploreGenerator", "PerturbationGenerator", "BasinHoppingGenerator", "AnnealingGenerator")

SeedLike = int | np.random.SeedSequence | np.random.Generator | None


# ------------------------------------------------------------ validation helpers

def _as_point(x: Any, bounds: np.ndarray, name: str) -> np.ndarray:
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


def _number(value: Any, name: str, lo: float = 0, hi: float = math.inf, *, lo_incl: bool = False,
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


# ------------------------------------------------------------ generators

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


class _BoxGenerator(BaseGenerator):
    """A generator given its own ``bounds`` (validated at init), with a uniform fallback point."""

    def __init__(self, bounds: Sequence[tuple[float, float]], seed: SeedLike = None):
        super().__init__(seed)
        self.bounds = check_bounds(bounds)

    def _random(self) -> np.ndarray:
        return self.rng.uniform(self.bounds[:, 0], self.bounds[:, 1])


class RandomGenerator(_BoxGenerator):
    """Uniformly random points in the box (GloMPO's default generator; glompo_hpc's is ExploitExploreGenerator).

    Args:
        bounds: (min, max) of every parameter.
        seed: See :class:`BaseGenerator`.
    """

    _shown = ("bounds",)

    def generate(self, manager: Any) -> np.ndarray:
        return self._random()


class SinglePointGenerator(_BoxGenerator):
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
        self.x = self._random() if x is None else _as_point(x, self.bounds, "x")

    def generate(self, manager: Any) -> np.ndarray:
        return self.x.copy()


class IncumbentGenerator(_BoxGenerator):
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


class ExploitExploreGenerator(_BoxGenerator):
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
    """

    _shown = ("max_func_calls", "focus")

    def __init__(self, bounds: Sequence[tuple[float, float]], max_func_calls: int, focus: float = 1,
                 seed: SeedLike = None):
        super().__init__(bounds, seed)
        self.max_func_calls = _number(max_func_calls, "max_func_calls", integer=True)
        self.focus = _number(focus, "focus")

    def alpha(self, f_counter: int) -> float:
        """Exploitation weight after ``f_counter`` evaluations."""
        return float(np.clip((f_counter / self.max_func_calls) ** self.focus, 0.0, 1.0))

    def generate(self, manager: Any) -> np.ndarray:
        x_random = self._random()
        alpha = self.alpha(manager.f_counter)
        bests = _finite_bests(manager.opt_log, manager.opt_log.opt_ids)
        if alpha == 0 or not bests:
            return x_random
        bests.sort(key=lambda b: b[1])
        weights = np.arange(len(bests), 0, -1, dtype=float)
        chosen = bests[self.rng.choice(len(bests), p=weights / weights.sum())]
        self.logger.debug("exploit/explore: alpha=%.3g around optimizer %d (fx=%.6g)", alpha, chosen[2], chosen[1])
        # Both points lie in the (convex) box, so the blend does too; the clip only removes round-off.
        return np.clip(alpha * chosen[0] + (1 - alpha) * x_random, self.bounds[:, 0], self.bounds[:, 1])


class PerturbationGenerator(_BoxGenerator):
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
        self.x0 = _as_point(x0, self.bounds, "x0")
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
        self.temperature = _number(temperature, "temperature", lo_incl=True)
        self.max_step_size = _number(max_step_size, "max_step_size", 0, 1, hi_incl=True)
        self.target_accept_rate = _number(target_accept_rate, "target_accept_rate", 0, 1)
        self.interval = _number(interval, "interval", integer=True)
        self.factor = _number(factor, "factor", 0, 1)
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
                trial = _best_of(_finite_bests(log, log.opt_ids))
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
        return _best_of(_finite_bests(log, ended))

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


class _BudgetSpent(Exception):
    """Unwinds dual_annealing once the per-call evaluation budget is used up."""


class _TaskFailed(Exception):
    """Carries an exception of the task through dual_annealing (``__cause__`` is the original)."""


class AnnealingGenerator(_BoxGenerator):
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
        self.maxiter = _number(maxiter, "maxiter", integer=True)
        self.maxfun = None if maxfun is None else _number(maxfun, "maxfun", integer=True)
        # scipy's documented ranges, checked here so a ValueError from scipy never means a bad setting
        self.initial_temp = _number(initial_temp, "initial_temp", 0.01, 5e4, hi_incl=True)
        self.visit = _number(visit, "visit", 1, 3, hi_incl=True)
        self.accept = _number(accept, "accept", -1e4, -5, hi_incl=True)
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


# ------------------------------------------------------------ reading the optimizer log

def _finite_bests(log: Any, opt_ids: Sequence[int]) -> list[tuple[np.ndarray, float, int]]:
    """(x, fx, opt_id) of the listed optimizers that have a finite best."""
    out = []
    for opt_id in opt_ids:
        x, fx, _ = log.best(opt_id)
        if x is not None and math.isfinite(fx):
            out.append((np.asarray(x, dtype=float), float(fx), opt_id))
    return out


def _best_of(bests: list[tuple[np.ndarray, float, int]]) -> tuple[np.ndarray, float, int] | None:
    return min(bests, key=lambda b: b[1]) if bests else None
