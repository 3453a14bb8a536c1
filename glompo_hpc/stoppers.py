"""Stoppers: criteria that decide when the manager stops one of its child optimizers.

The manager calls ``stopper(log, best_opt_id, tested_opt_id)`` every ``stopcheck_interval``
evaluations, once a best result exists, for every live optimizer with history; True means "stop
``tested_opt_id``". Stoppers combine with ``&`` and ``|`` (see :mod:`glompo_hpc.combinable`), e.g.
``MinFuncCalls(500) & (BestUnmoving(200, 0.01) | StepSize(bounds, 50))``.

Stoppers read the log only through the public methods of
:class:`~glompo_hpc.protocol.optlog.OptimizerLog` and never need more than the last ``calls`` rows of
one optimizer, so each call costs O(calls) at most. An optimizer with fewer evaluations than a
stopper's window is never stopped by that stopper.

"Window" below means the last ``calls`` evaluations of the tested optimizer, so a change or a step
needs ``calls >= 2``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Sequence

import numpy as np

from .combinable import AndCombination, BaseCombinable, OrCombination
from .compat import Place, old_keywords
from .validation import check_bounds, check_int, check_real
from .protocol.optlog import OptimizerLog, class_lineage
from .errors import ConfigurationError

__all__ = (
    "BaseStopper", "AndStopper", "OrStopper",
    "BestUnmoving", "EvaluationsUnmoving", "LastPointsInvalid", "MinFuncCalls", "ParameterDistance",
    "StepSize", "TimeAnnealing", "ValueAnnealing", "TypeHunter", "BasinHeld", "NotBest", "PolishDue",
    "BestFunctionValueUnmoving", "CurrentFunctionValueUnmoving", "MaxSequentialInvalidPoints",
    "TypeStopper",
)


class BaseStopper(BaseCombinable, family="stopper"):
    """Base class of stoppers; subclasses implement ``__call__`` (its result is stored in ``last_result``)."""

    @abstractmethod
    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        """Return True to stop optimizer ``tested_opt_id``.

        Args:
            log: The manager's record of every optimizer's evaluations.
            best_opt_id: Id of the optimizer that found the best value so far.
            tested_opt_id: Id of the optimizer being judged.
        """


class AndStopper(AndCombination, BaseStopper):
    """``a & b``: stops when every member says stop (members after a False one are not called)."""


class OrStopper(OrCombination, BaseStopper):
    """``a | b``: stops when any member says stop (members after a True one are not called)."""


# ------------------------------------------------------------ validation helpers

def _check_bounds(bounds: Sequence[Sequence[float]]) -> tuple[tuple[tuple[float, float], ...], float]:
    """Bounds as a tuple of (min, max) pairs, and the length of the box diagonal."""
    arr = check_bounds(bounds)
    pairs = tuple((float(lo), float(hi)) for lo, hi in arr)
    span = np.array([hi - lo for lo, hi in pairs])
    return pairs, float(np.linalg.norm(span))


def _check_dimension(stopper: BaseStopper, log: OptimizerLog, n_bounds: int) -> None:
    if log.n_parms != n_bounds:
        raise ConfigurationError(f"{stopper} has {n_bounds} bounds but the task has {log.n_parms} parameters")


# ------------------------------------------------------------ stoppers

class _WindowStopper(BaseStopper):
    """A stopper judging an optimizer's last ``calls`` evaluations; False until it made that many.

    Args:
        calls: Window length in evaluations (>= 2).
        tol: Relative tolerance (>= 0).
    """

    def __init__(self, calls: int, tol: float = 0):
        self.calls = check_int("calls", calls, 2)
        self.tol = check_real("tol", tol, minimum=0)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        return log.n_evals(tested_opt_id) >= self.calls and self._settled(log, tested_opt_id)

    def _settled(self, log: OptimizerLog, opt_id: int) -> bool:
        raise NotImplementedError


class BestUnmoving(_WindowStopper):
    """Stops an optimizer whose best value has (nearly) stopped improving.

    True when the optimizer's running best changed by at most ``abs(old * tol)`` within its last
    ``calls`` evaluations, ``old`` being the running best at the first evaluation of that window.
    Never stops while no finite value exists at the start of the window.

    Args:
        calls: Window length in evaluations (>= 2).
        tol: Relative tolerance (>= 0); 0 means "no improvement at all".
    """

    def _settled(self, log: OptimizerLog, opt_id: int) -> bool:
        old = log.best_fx(opt_id, self.calls - 1)
        new = log.best_fx(opt_id, 0)
        return math.isfinite(old) and abs(new - old) <= abs(old * self.tol)


class EvaluationsUnmoving(_WindowStopper):
    """Stops an optimizer whose evaluations have (nearly) stopped changing.

    True when the standard deviation of its last ``calls`` values is at most ``abs(last * tol)``,
    ``last`` being the latest value. A non-finite value in the window never stops.

    Args:
        calls: Window length in evaluations (>= 2).
        tol: Relative tolerance (>= 0).
    """

    def _settled(self, log: OptimizerLog, opt_id: int) -> bool:
        fx = log.tail(opt_id, "fx", self.calls)
        return bool(np.all(np.isfinite(fx))) and float(np.std(fx)) <= abs(fx[-1] * self.tol)


class LastPointsInvalid(BaseStopper):
    """Stops an optimizer whose last ``n_iters`` values are all non-finite (NaN or infinite).

    Args:
        n_iters: Number of consecutive invalid evaluations that stops it (>= 1).
    """

    def __init__(self, n_iters: int = 1):
        self.n_iters = check_int("n_iters", n_iters, 1)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        if log.n_evals(tested_opt_id) < self.n_iters:
            return False
        return not np.any(np.isfinite(log.tail(tested_opt_id, "fx", self.n_iters)))


class MinFuncCalls(BaseStopper):
    """True once the optimizer made at least ``min_pts`` evaluations.

    Alone it stops every optimizer at ``min_pts``; its use is as a gate, e.g.
    ``MinFuncCalls(1000) & BestUnmoving(200)`` leaves young optimizers alone.

    Args:
        min_pts: Evaluations needed (>= 1).
    """

    def __init__(self, min_pts: int):
        self.min_pts = check_int("min_pts", min_pts, 1)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        return log.n_evals(tested_opt_id) >= self.min_pts


class ParameterDistance(BaseStopper):
    """Stops an optimizer that is exploring the same place as another.

    True when the tested optimizer's last point lies within ``relative_distance`` x (length of the
    diagonal of the bounds box) of the best optimizer's last point, or with ``test_all`` of the
    last point of any other optimizer in the log (finished ones included: their region has been
    explored already). An optimizer is never compared with itself, so without ``test_all`` the
    best optimizer is never stopped by this stopper.

    Args:
        bounds: (min, max) of every parameter.
        relative_distance: Fraction of the diagonal (> 0).
        test_all: Compare with every other optimizer instead of the best only (costs O(optimizers)).
    """

    def __init__(self, bounds: Sequence[Sequence[float]], relative_distance: float, test_all: bool = False):
        self.bounds, self._diagonal = _check_bounds(bounds)
        self.relative_distance = check_real("relative_distance", relative_distance, minimum=0, inclusive=False)
        self.test_all = bool(test_all)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        _check_dimension(self, log, len(self.bounds))
        if log.n_evals(tested_opt_id) == 0:
            return False
        others = log.opt_ids if self.test_all else [best_opt_id]
        x_tested = log.tail(tested_opt_id, "x", 1)[0]
        limit = self.relative_distance * self._diagonal
        for other in others:
            if other == tested_opt_id or log.n_evals(other) == 0:
                continue
            distance = float(np.linalg.norm(log.tail(other, "x", 1)[0] - x_tested))
            if distance <= limit:
                self.logger.debug("optimizer %d is %.3g from optimizer %d (limit %.3g)",
                                  tested_opt_id, distance, other, limit)
                return True
        return False


class StepSize(BaseStopper):
    """Stops an optimizer that has stopped moving through parameter space.

    True when the mean Euclidean distance between consecutive points of its last ``calls``
    evaluations (``calls - 1`` steps) is below ``relative_tol`` x (diagonal of the bounds box).

    Args:
        bounds: (min, max) of every parameter.
        calls: Window length in evaluations (>= 2).
        relative_tol: Fraction of the diagonal (> 0).
    """

    def __init__(self, bounds: Sequence[Sequence[float]], calls: int, relative_tol: float = 0.05):
        self.bounds, self._diagonal = _check_bounds(bounds)
        self.calls = check_int("calls", calls, 2)
        self.relative_tol = check_real("relative_tol", relative_tol, minimum=0, inclusive=False)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        _check_dimension(self, log, len(self.bounds))
        if log.n_evals(tested_opt_id) < self.calls:
            return False
        x = log.tail(tested_opt_id, "x", self.calls)
        mean_step = float(np.mean(np.linalg.norm(np.diff(x, axis=0), axis=1)))
        return mean_step < self.relative_tol * self._diagonal


class TimeAnnealing(BaseStopper):
    """Randomly stops optimizers that have used more evaluations than the best one.

    Draws ``u ~ U(0, crit_ratio)`` and stops when ``u > n_evals(best) / n_evals(tested)``: an
    optimizer that has run longer than the best without beating it is ever more likely to stop,
    and with ``crit_ratio <= 1`` one that has run less than the best is never stopped.

    Args:
        crit_ratio: Upper end of the uniform draw (> 0).
        seed: Seed of the stopper's own random generator, for reproducible runs.
    """

    def __init__(self, crit_ratio: float = 1, seed: int | None = None):
        self.crit_ratio = check_real("crit_ratio", crit_ratio, minimum=0, inclusive=False)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        n_tested = log.n_evals(tested_opt_id)
        if n_tested == 0:
            return False
        ratio = log.n_evals(best_opt_id) / n_tested
        return float(self._rng.uniform(0, self.crit_ratio)) > ratio


class ValueAnnealing(BaseStopper):
    """Randomly stops optimizers, more likely the worse their best value is compared with the best.

    With ``d = abs((f_best - f_tested) / f_best)`` (running bests of each optimizer), stops when
    ``U(0, 1) > med_kill_chance ** d``; so an optimizer whose value is twice the best's (``d = 1``)
    stops with probability ``1 - med_kill_chance``. Never stops an optimizer as good as the best,
    nor while ``f_best`` is 0 or non-finite. An optimizer with no finite value (``d`` infinite)
    always stops.

    Args:
        med_kill_chance: Strictly between 0 and 1.
        seed: Seed of the stopper's own random generator, for reproducible runs.
    """

    def __init__(self, med_kill_chance: float = 0.5, seed: int | None = None):
        self.med_kill_chance = check_real("med_kill_chance", med_kill_chance, minimum=0, inclusive=False)
        if self.med_kill_chance >= 1:
            raise ConfigurationError(f"med_kill_chance must be < 1, got {med_kill_chance!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        if log.n_evals(tested_opt_id) == 0 or log.n_evals(best_opt_id) == 0:
            return False
        f_best = log.best_fx(best_opt_id)
        f_tested = log.best_fx(tested_opt_id)
        if not math.isfinite(f_best) or f_best == 0 or f_tested <= f_best:
            return False
        distance = abs((f_best - f_tested) / f_best)
        survive = math.exp(math.log(self.med_kill_chance) * distance)
        return float(self._rng.uniform(0, 1)) > survive


class TypeHunter(BaseStopper):
    """True when the tested optimizer is an instance of ``opt_class``; aims other stoppers at one type.

    Subclasses match: ``TypeHunter(ScipyOptimizer)`` also hunts a ``class MyScipy(ScipyOptimizer)``.
    Given a class, the match is on the class itself (module and name); given a name (as job files
    do), on the name of the optimizer's class or of any class it derives from. Use it as
    ``TypeHunter(CMAOptimizer) & BestUnmoving(100)``.

    Args:
        opt_class: An optimizer class or its name.
    """

    opt_path: str | None = None  # instances from checkpoints written before it existed match by name

    @old_keywords(Place.TYPE_HUNTER, "TypeHunter()")  # GloMPO 3.1's opt_to_kill
    def __init__(self, opt_class: type | str):
        if isinstance(opt_class, type):
            self.opt_path = class_lineage(opt_class)[0]
            opt_class = opt_class.__name__
        if not isinstance(opt_class, str) or not opt_class:
            raise ConfigurationError(f"opt_class must be an optimizer class or its name, got {opt_class!r}")
        self.opt_class = opt_class

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        record = log.records.get(tested_opt_id)
        if record is None:
            return False
        if not record.opt_lineage:  # a record restored from an older checkpoint knows only its class name
            return record.opt_type == self.opt_class
        if self.opt_path is not None:
            return self.opt_path in record.opt_lineage
        return any(path.rpartition(":")[2].rpartition(".")[2] == self.opt_class for path in record.opt_lineage)


class BasinHeld(BaseStopper):
    """Stops an optimizer that has settled where another already holds a better value.

    True when the tested optimizer's best point lies within ``relative_distance`` x (length of the
    diagonal of the bounds box) of the best point of another optimizer in the log (finished ones
    included) whose best value is lower: the tested one is refining a basin already explored,
    to a value no better than what was found there. Unlike :class:`ParameterDistance` (last
    points), best points are compared, so an optimizer merely passing by a good region is spared,
    and only a better holder counts. Combine it with a convergence test, e.g.
    ``BasinHeld(bounds, 0.05) & EvaluationsUnmoving(10 * n, 0.01)``. Costs O(optimizers).

    Args:
        bounds: (min, max) of every parameter.
        relative_distance: Fraction of the diagonal (> 0).
    """

    def __init__(self, bounds: Sequence[Sequence[float]], relative_distance: float):
        self.bounds, self._diagonal = _check_bounds(bounds)
        self.relative_distance = check_real("relative_distance", relative_distance, minimum=0, inclusive=False)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        _check_dimension(self, log, len(self.bounds))
        x_tested, f_tested, _ = log.best(tested_opt_id)
        if x_tested is None or not math.isfinite(f_tested):
            return False
        limit = self.relative_distance * self._diagonal
        for other in log.opt_ids:
            if other == tested_opt_id:
                continue
            x_other, f_other, _ = log.best(other)
            if x_other is not None and f_other < f_tested and float(np.linalg.norm(x_other - x_tested)) <= limit:
                self.logger.debug("optimizer %d (%.6g) settled within %.3g of optimizer %d (%.6g)",
                                  tested_opt_id, f_tested, limit, other, f_other)
                return True
        return False


class NotBest(BaseStopper):
    """True unless the tested optimizer holds the best value; ``NotBest() & s`` spares the best from
    ``s`` when the manager applies stoppers to the best (``apply_stoppers_to_best=True``)."""

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        return tested_opt_id != best_opt_id


class PolishDue(BaseStopper):
    """Stops every optimizer started before the run made ``calls`` evaluations, once it has.

    Frees the slots late in a run for children that polish the incumbent (see
    ``ExploitExploreGenerator(polish_after=...)``); to stop the best optimizer too, the manager
    needs ``apply_stoppers_to_best=True``. An optimizer started at or after that point is never
    stopped by it.

    Args:
        calls: Evaluations of the whole run (all optimizers) from which it applies (>= 1).
    """

    def __init__(self, calls: int):
        self.calls = check_int("calls", calls, 1)

    def __call__(self, log: OptimizerLog, best_opt_id: int, tested_opt_id: int) -> bool:
        made = len(log)
        # More evaluations than were made since the threshold: some came before it.
        return made >= self.calls and log.n_evals(tested_opt_id) > made - self.calls


# Names used by the GloMPO/ParAMS documentation.
BestFunctionValueUnmoving = BestUnmoving
CurrentFunctionValueUnmoving = EvaluationsUnmoving
MaxSequentialInvalidPoints = LastPointsInvalid
TypeStopper = TypeHunter
