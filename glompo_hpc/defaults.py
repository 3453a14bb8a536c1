"""The recommended configuration: what to use when the user gives no selector, stoppers, generator
or exit conditions.

Chosen from the evidence of the quality suite (``python -m bench.quality``; the figures and what
else was tried are in docs/benchmarks.md). For ``n`` parameters in a box, a budget of ``B``
evaluations (``default_budget(n) = 2000 n`` when none is given) and ``S`` slots (``max_jobs``):

* **Children**: CMA-ES with ``sigma0`` = 0.2 x the box width (``CMA_stds`` scales narrower
  parameters) and cma's own convergence criteria. Each child evaluates its whole population at
  once over ``workers = min(S, popsize)`` slots, so on a few slots one child runs at a time and
  uses all of them; with more slots than a population needs, several children run side by side.
  The population is rounded up to a multiple of ``workers`` so no slot idles.
* **Population growth** (``recommended_selector``): a ChainSelector doubling the population at
  fixed fractions of the budget, as IPOP-CMA-ES does at each restart: 1x cma's default
  (``4 + floor(3 ln n)``) from the start, 2x from 15 % of ``B``, 4x from 35 %, 8x from 60 %.
* **Stoppers**: ``EvaluationsUnmoving(10 n, tol=1e-3) & MinFuncCalls(100 n)``: a child (never the
  one holding the best point) whose last ``10 n`` values spread by less than 0.1 % of the latest
  has converged into a basin no better than the incumbent's; it is stopped (once it made ``100 n``
  evaluations) instead of spending about half its run polishing that minimum to cma's
  tolerances, and its slots go to a new child. On the suite its effect is within the noise
  (it never cost measurably); a stopper on the best value (``BestUnmoving``) also stops large
  populations during their slow early progress and lost clearly in 30-D.
* **Generator**: ``ExploitExploreGenerator(bounds, B)``: new children start at random early in
  the run and ever closer to good children's best points as the budget is used. With the
  population growth, this is what beats the same children restarted at random.
* **Exit conditions**: ``MaxFuncCalls(B)``, or ``TargetCost(target) | MaxFuncCalls(B)``.
* **Manager settings**: ``share_best_solutions=False``, ``stopcheck_interval = 10 n``.

``recommended_configuration`` returns all of it as ``setup()`` keyword arguments. Its keyword
overrides exist to reproduce the alternatives the suite measured; they are not recommendations.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import ConfigurationError
from .exit_conditions import BaseExitCondition, MaxFuncCalls, TargetCost
from .generators import (BaseGenerator, BasinHoppingGenerator, ExploitExploreGenerator, IncumbentGenerator,
                         RandomGenerator)
from .optimizers.cma import CMAOptimizer
from .selectors import BaseSelector, ChainSelector, OptimizerOption
from .stoppers import BaseStopper, BasinHeld, BestUnmoving, EvaluationsUnmoving, MinFuncCalls, NotBest, PolishDue

__all__ = ("PopulationScheduleSelector", "BUDGET_PER_PARAMETER", "SIGMA_FRACTION", "POPULATION_SCHEDULE", "default_budget", "budget_of",
           "default_popsize",
           "recommended_optimizer", "recommended_selector", "recommended_stoppers", "recommended_generator",
           "recommended_exit_conditions", "recommended_configuration")

#: Default budget, in evaluations per parameter, when the user sets none.
BUDGET_PER_PARAMETER = 2000

#: Initial CMA-ES step size as a fraction of the widest parameter range.
SIGMA_FRACTION = 0.2

#: (fraction of the budget from which it applies, population as a multiple of cma's default).
POPULATION_SCHEDULE: tuple[tuple[float, float], ...] = ((0.0, 1), (0.15, 2), (0.35, 4), (0.6, 8))

_GENERATORS = ("exploit", "random", "incumbent", "basin")
_STOPPERS = ("best", "evaluations", "best|evaluations", "evaluations|basin", "none")

#: BasinHeld's radius in the 'evaluations|basin' stoppers, as a fraction of the box diagonal.
BASIN_RADIUS = 0.05


def default_budget(n_parms: int) -> int:
    """Evaluations allowed when the user sets no budget: ``BUDGET_PER_PARAMETER`` per parameter."""
    return BUDGET_PER_PARAMETER * int(n_parms)


def budget_of(exit_conditions: Any, n_parms: int) -> int:
    """The evaluation budget implied by ``exit_conditions``: the smallest ``MaxFuncCalls`` among its
    leaves, or ``default_budget(n_parms)`` when there is none (or no exit conditions at all).

    This is what ``recommended_generator`` and ``recommended_selector`` need when the user gave
    exit conditions but no generator or selector.
    """
    limits = [leaf.fmax for leaf in (exit_conditions or ()) if isinstance(leaf, MaxFuncCalls)]
    return int(min(limits)) if limits else default_budget(n_parms)


def default_popsize(n_parms: int) -> int:
    """cma's default population size, ``4 + floor(3 ln n)``."""
    return 4 + int(3 * math.log(n_parms))


def _box(bounds: Sequence[Sequence[float]]) -> np.ndarray:
    try:
        box = np.asarray(bounds, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"bounds must be a sequence of (min, max) pairs, got {bounds!r}") from e
    if box.size == 0 or not np.all(np.isfinite(box)) or np.any(box[:, 1] <= box[:, 0]):
        raise ConfigurationError(f"bounds must be finite (min, max) pairs with min < max, got {bounds!r}")
    return box


def _check_jobs(max_jobs: Any) -> int:
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, (int, np.integer)) or max_jobs < 1:
        raise ConfigurationError(f"max_jobs must be an integer >= 1, got {max_jobs!r}")
    return int(max_jobs)


def recommended_optimizer(bounds: Sequence[Sequence[float]], max_jobs: int = 1, pop_factor: float = 1,
                          sigma_fraction: float = SIGMA_FRACTION, concurrent: int | None = None
                          ) -> tuple[type[CMAOptimizer], dict[str, Any]]:
    """A CMA-ES child as ``(CMAOptimizer, init_kwargs)``.

    Args:
        bounds: (min, max) of every parameter.
        max_jobs: Slots of the run.
        pop_factor: Population as a multiple of cma's default.
        sigma_fraction: ``sigma0`` as a fraction of the widest range.
        concurrent: Children meant to run side by side (they share the slots); None: as many as
            fit when each takes ``min(max_jobs, popsize)`` slots.
    """
    box = _box(bounds)
    jobs = _check_jobs(max_jobs)
    width = box[:, 1] - box[:, 0]
    pop = max(2, int(round(pop_factor * default_popsize(len(box)))))
    workers = min(jobs, pop) if concurrent is None else max(1, jobs // concurrent)
    pop = int(math.ceil(max(pop, workers) / workers) * workers)  # every slot busy in every round
    kwargs: dict[str, Any] = {"sigma0": float(sigma_fraction * width.max()), "popsize": pop}
    if not np.allclose(width, width.max()):
        kwargs["CMA_stds"] = (width / width.max()).tolist()
    if workers > 1:
        kwargs["workers"] = workers
    return CMAOptimizer, kwargs


class PopulationScheduleSelector(ChainSelector):
    """The recommended selector: CMA-ES children whose population grows with the evaluations used.

    A ChainSelector over :func:`recommended_optimizer` options, one per step of ``schedule``. Its
    options are sized for the run's slots, so it re-sizes them (``fit_slots``) when a run is
    resumed with another ``max_jobs`` instead of refusing an option sized for the old allocation.

    Args:
        bounds: (min, max) of every parameter.
        max_jobs: Slots of the run.
        max_func_calls: The run's budget (``default_budget`` if None); the schedule's fractions apply to it.
        schedule: ``(fraction of the budget, population factor)`` pairs, the first at fraction 0; a
            third number in a step sets that step's ``sigma_fraction`` (e.g. a small one late in the
            run polishes the best point found).
        sigma_fraction: ``sigma0`` as a fraction of the widest range.
        concurrent: See :func:`recommended_optimizer`.
        child_kwargs: Further keyword arguments of every child (e.g. ``force_injects``).
    """

    def __init__(self, bounds: Sequence[Sequence[float]], max_jobs: int, max_func_calls: int | None = None,
                 schedule: Sequence[Sequence[float]] = POPULATION_SCHEDULE, sigma_fraction: float = SIGMA_FRACTION,
                 concurrent: int | None = None, child_kwargs: dict[str, Any] | None = None):
        self.box = _box(bounds)
        self.budget = default_budget(len(self.box)) if max_func_calls is None else int(max_func_calls)
        self.schedule = [tuple(float(v) for v in step) for step in schedule]
        steps = self.schedule
        if any(len(step) not in (2, 3) for step in steps):
            raise ConfigurationError(f"schedule steps must be (fraction, factor[, sigma_fraction]), got {schedule!r}")
        if not steps or steps[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(steps, steps[1:])):
            raise ConfigurationError(f"schedule must start at fraction 0 and increase strictly, got {schedule!r}")
        self.sigma_fraction = sigma_fraction
        self.concurrent = concurrent
        self.child_kwargs = dict(child_kwargs or {})
        thresholds = [max(1, int(step[0] * self.budget)) for step in steps[1:]]
        super().__init__(*self._options(max_jobs), fcall_thresholds=thresholds)

    def _options(self, max_jobs: int) -> list[OptimizerOption]:
        options = []
        for step in self.schedule:
            sigma = step[2] if len(step) == 3 else self.sigma_fraction
            cls, kwargs = recommended_optimizer(self.box, max_jobs, step[1], sigma, self.concurrent)
            options.append(OptimizerOption(cls, {**kwargs, **self.child_kwargs}))
        return options

    def fit_slots(self, max_jobs: int) -> None:
        """Size the children for ``max_jobs`` slots (called by the manager when it sets ``max_jobs``)."""
        self.options = tuple(self._options(max_jobs))
        self._held = None


def recommended_selector(bounds: Sequence[Sequence[float]], max_jobs: int, max_func_calls: int | None = None,
                         schedule: Sequence[Sequence[float]] = POPULATION_SCHEDULE,
                         sigma_fraction: float = SIGMA_FRACTION, concurrent: int | None = None) -> BaseSelector:
    """A :class:`PopulationScheduleSelector` (see the module docstring); the arguments are its own."""
    return PopulationScheduleSelector(bounds, max_jobs, max_func_calls, schedule, sigma_fraction, concurrent)


def recommended_stoppers(bounds: Sequence[Sequence[float]], kind: str = "evaluations") -> BaseStopper | bool:
    """``EvaluationsUnmoving(10 n, tol=1e-3) & MinFuncCalls(100 n)`` (``kind='evaluations'``).

    The other kinds are the alternatives the suite measured: 'best' stops a child whose best moved
    by less than 1 % over its last ``100 n`` evaluations, 'best|evaluations' either, 'none' no
    stopper (False, setup()'s value for none), 'evaluations|basin' also stops a child whose best
    point lies within ``BASIN_RADIUS`` of the diagonal of a better child's best (``BasinHeld``).
    All are gated by ``MinFuncCalls(100 n)``.
    """
    n = len(_box(bounds))
    gate = MinFuncCalls(100 * n)
    if kind == "best":
        return BestUnmoving(calls=100 * n, tol=0.01) & gate
    if kind == "evaluations":
        return EvaluationsUnmoving(calls=10 * n, tol=1e-3) & gate
    if kind == "best|evaluations":
        return (BestUnmoving(calls=100 * n, tol=0.01) | EvaluationsUnmoving(calls=10 * n, tol=1e-3)) & gate
    if kind == "evaluations|basin":
        return (EvaluationsUnmoving(calls=10 * n, tol=1e-3) | BasinHeld(bounds, BASIN_RADIUS)) & gate
    if kind == "none":
        return False  # setup()'s "no stoppers" (None there means the recommended ones)
    raise ConfigurationError(f"stoppers kind must be one of {_STOPPERS}, got {kind!r}")


def recommended_generator(bounds: Sequence[Sequence[float]], max_func_calls: int | None = None,
                          kind: str = "exploit", seed: Any = None, polish_after: float | None = None
                          ) -> BaseGenerator:
    """``ExploitExploreGenerator(bounds, budget)`` (``kind='exploit'``).

    The alternatives measured: 'random' (RandomGenerator), 'incumbent' (IncumbentGenerator),
    'basin' (BasinHoppingGenerator with its defaults). ``polish_after`` is the exploit kind's.
    """
    box = _box(bounds)
    budget = default_budget(len(box)) if max_func_calls is None else int(max_func_calls)
    if kind == "exploit":
        return ExploitExploreGenerator(box, budget, seed=seed, polish_after=polish_after)
    if kind == "random":
        return RandomGenerator(box, seed=seed)
    if kind == "incumbent":
        return IncumbentGenerator(box, seed=seed)
    if kind == "basin":
        return BasinHoppingGenerator(seed=seed)
    raise ConfigurationError(f"generator kind must be one of {_GENERATORS}, got {kind!r}")


def recommended_exit_conditions(n_parms: int, max_func_calls: int | None = None, target: float | None = None,
                                atol: float = 1e-6) -> BaseExitCondition:
    """``MaxFuncCalls(budget)``, with ``| TargetCost(target, atol)`` when a target is known."""
    budget = default_budget(n_parms) if max_func_calls is None else int(max_func_calls)
    condition: BaseExitCondition = MaxFuncCalls(budget)
    if target is not None:
        condition = TargetCost(target, atol) | condition
    return condition


def recommended_configuration(bounds: Sequence[Sequence[float]], max_jobs: int, max_func_calls: int | None = None,
                              target: float | None = None, seed: Any = None, *,
                              schedule: Sequence[Sequence[float]] = POPULATION_SCHEDULE,
                              sigma_fraction: float = SIGMA_FRACTION, concurrent: int | None = None,
                              stoppers: str = "evaluations", generator: str = "exploit", share: bool = False,
                              polish: Sequence[float] | None = None) -> dict[str, Any]:
    """Every recommended component, as keyword arguments of ``GloMPOManager.setup``.

    Returns ``opt_selector``, ``stoppers``, ``x0_generator``, ``exit_conditions``,
    ``share_best_solutions`` and ``stopcheck_interval``. The keyword-only overrides reproduce
    the alternatives of docs/benchmarks.md; ``share=True`` also makes the children put the shared
    incumbent into their next population (``force_injects``). ``polish=(fraction, sigma_fraction)``
    appends a schedule step from ``fraction`` of the budget: cma's default population with that
    ``sigma_fraction``, started at the incumbent (the exploit generator's ``polish_after``); the
    child then running is stopped (``PolishDue``, with ``apply_stoppers_to_best``).
    """
    box = _box(bounds)
    n = len(box)
    budget = default_budget(n) if max_func_calls is None else int(max_func_calls)
    polish_after = None
    if polish is not None:
        polish_after, polish_sigma = (float(v) for v in polish)
        schedule = [*schedule, (polish_after, 1, polish_sigma)]
    selector = PopulationScheduleSelector(box, max_jobs, budget, schedule, sigma_fraction, concurrent,
                                          child_kwargs={"force_injects": True} if share else None)
    stopper = recommended_stoppers(box, stoppers)
    extra: dict[str, Any] = {}
    if polish_after is not None:
        # The child running at the polishing point (often the best) is stopped to free the slots.
        due = PolishDue(max(1, int(polish_after * budget)))
        stopper = due if stopper is False else (NotBest() & stopper) | due
        extra["apply_stoppers_to_best"] = True
    return {
        **extra,
        "opt_selector": selector,
        "stoppers": stopper,
        "x0_generator": recommended_generator(box, budget, generator, seed, polish_after),
        "exit_conditions": recommended_exit_conditions(n, budget, target),
        "share_best_solutions": bool(share),
        "stopcheck_interval": 10 * n,
    }
