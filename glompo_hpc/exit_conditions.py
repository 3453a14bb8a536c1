"""Exit conditions: criteria that end the whole optimization.

The manager evaluates ``condition(manager)`` at every turn of its loop; when it is True every
child is stopped and the manager returns its result, recording ``condition.reason()`` as the exit
reason. Conditions combine with ``&`` and ``|`` (see :mod:`glompo_hpc.combinable`), e.g.
``MaxSeconds(session_max=3600) | (NOptConverged(3) & MaxKills(10))``.

A condition reads only these manager attributes: ``f_counter``, ``o_counter``, ``conv_counter``
(ints), ``stopped_opts`` (dict opt_id -> time of each stop the manager made: by its stoppers or
by a ``STOP_<id>`` intervention file, as in GloMPO),
``result.fx`` (best value, inf when none), ``t_start`` (``time.time()`` at the start of this
session) and ``t_used`` (seconds spent in earlier sessions). Those counters carry through
checkpoints, and so does the state a condition keeps (it is pickled with the manager).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

from .combinable import AndCombination, BaseCombinable, Combination, OrCombination, check_int, check_real
from .errors import ConfigurationError

__all__ = (
    "BaseExitCondition", "AndExitCondition", "OrExitCondition",
    "MaxFuncCalls", "TargetCost", "NOptConverged", "MaxOptsStarted", "MaxKills",
    "KillsAfterConvergence", "MaxSeconds",
    "MaxTotalFunctionCalls", "TargetFunctionValue", "MaxOptimizersConverged", "MaxOptimizersStarted",
    "MaxOptimizersStopped", "StopsAfterConvergence", "TimeLimit", "TimeLimitThroughRestarts",
)


def _fired_leaves(condition: BaseCombinable) -> list[BaseCombinable]:
    """The leaves that made ``condition`` True (none if it is not True).

    A True And needs all its members and a True Or stops at its first True member, so the
    answer is always a set of leaves that were all True together: no operator but & is needed
    to describe it.
    """
    if condition.last_result is not True:
        return []
    if not isinstance(condition, Combination):
        return [condition]
    fired = [_fired_leaves(m) for m in condition.members]
    if condition._operator == "|":
        return next((leaves for leaves in fired if leaves), [])
    return [leaf for leaves in fired for leaf in leaves]


class BaseExitCondition(BaseCombinable, family="exitcondition"):
    """Base class of exit conditions; subclasses implement ``__call__`` (its result is stored in ``last_result``)."""

    @abstractmethod
    def __call__(self, manager: Any) -> bool:
        """Return True to end the optimization.

        Args:
            manager: The running manager; only the attributes listed in the module docstring are read.
        """

    def reason(self) -> str:
        """Why the last evaluation was True, naming the leaves responsible.

        For a leaf this is its ``str()``, e.g. ``MaxFuncCalls(fmax=1000)``. For a combination it is
        the leaves responsible joined by `` & ``: ``a | b`` gives the one that fired (evaluation
        stops there) and ``a & b`` gives both. Empty when the last evaluation was not True.
        """
        return " & ".join(str(leaf) for leaf in _fired_leaves(self))


class AndExitCondition(AndCombination, BaseExitCondition):
    """``a & b``: True when every member is True (members after a False one are not called)."""


class OrExitCondition(OrCombination, BaseExitCondition):
    """``a | b``: True when any member is True (members after a True one are not called)."""


class MaxFuncCalls(BaseExitCondition):
    """True once the manager counted ``fmax`` function evaluations or more.

    Args:
        fmax: Evaluation budget (>= 1).
    """

    def __init__(self, fmax: int):
        self.fmax = check_int("fmax", fmax, 1)

    def __call__(self, manager: Any) -> bool:
        return manager.f_counter >= self.fmax


class TargetCost(BaseExitCondition):
    """True once the best value found is at most ``target + atol``.

    Args:
        target: The value that is good enough.
        atol: Absolute tolerance (>= 0).
    """

    def __init__(self, target: float, atol: float = 1e-6):
        self.target = check_real("target", target)
        self.atol = check_real("atol", atol, minimum=0)

    def __call__(self, manager: Any) -> bool:
        return manager.result.fx <= self.target + self.atol


class NOptConverged(BaseExitCondition):
    """True once ``nconv`` optimizers ended by converging on their own.

    Args:
        nconv: Number of converged optimizers (>= 1).
    """

    def __init__(self, nconv: int):
        self.nconv = check_int("nconv", nconv, 1)

    def __call__(self, manager: Any) -> bool:
        return manager.conv_counter >= self.nconv


class MaxOptsStarted(BaseExitCondition):
    """True once ``omax`` optimizers have been started.

    Args:
        omax: Number of optimizers (>= 1).
    """

    def __init__(self, omax: int):
        self.omax = check_int("omax", omax, 1)

    def __call__(self, manager: Any) -> bool:
        return manager.o_counter >= self.omax


class MaxKills(BaseExitCondition):
    """True once the manager has stopped ``kills_max`` optimizers (by its stoppers or by ``STOP_<id>`` files).

    Forced terminations of unresponsive children and the stops of the run's own end do not count.

    Args:
        kills_max: Number of stops (>= 1).
    """

    def __init__(self, kills_max: int):
        self.kills_max = check_int("kills_max", kills_max, 1)

    def __call__(self, manager: Any) -> bool:
        return len(manager.stopped_opts) >= self.kills_max


class KillsAfterConvergence(BaseExitCondition):
    """True once ``n_killed`` optimizers were stopped after ``n_converged`` optimizers converged.

    GloMPO's default exit condition (glompo_hpc's is ``MaxFuncCalls(2000 n)``, see
    ``glompo_hpc.defaults``): keep exploring until the search has both found minima and started
    discarding optimizers.

    State: the first time this condition sees ``conv_counter >= n_converged`` it records the
    number of manager stops at that moment (``len(stopped_opts)``) in ``stops_at_convergence``;
    from then on it is True when ``len(stopped_opts) - stops_at_convergence >= n_killed``. So with
    the default ``n_killed=0`` it fires as soon as the first convergence is seen. Because the
    condition is polled, a stop made between the convergence and that poll counts as *before* the
    convergence. The recorded count is kept through checkpoints and is not cleared by ``reset()``.

    Args:
        n_killed: Stops needed after the convergences (>= 0).
        n_converged: Convergences needed first (>= 1).
    """

    def __init__(self, n_killed: int = 0, n_converged: int = 1):
        self.n_killed = check_int("n_killed", n_killed, 0)
        self.n_converged = check_int("n_converged", n_converged, 1)
        self.stops_at_convergence: int | None = None

    def __call__(self, manager: Any) -> bool:
        stops = len(manager.stopped_opts)
        if self.stops_at_convergence is None:
            if manager.conv_counter < self.n_converged:
                return False
            self.stops_at_convergence = stops
            self.logger.debug("%d optimizers converged; %d stops so far", manager.conv_counter, stops)
        return stops - self.stops_at_convergence >= self.n_killed


class MaxSeconds(BaseExitCondition):
    """True once a time limit is reached; give exactly one of the two limits.

    Args:
        session_max: Seconds of this session (since ``manager.t_start``), > 0.
        overall_max: Seconds of all sessions together (``manager.t_used`` plus this session), so the
            limit holds through restarts from checkpoints; > 0.
    """

    def __init__(self, session_max: float | None = None, overall_max: float | None = None):
        if (session_max is None) == (overall_max is None):
            raise ConfigurationError("MaxSeconds needs exactly one of session_max and overall_max, got "
                                     f"session_max={session_max!r}, overall_max={overall_max!r}")
        self.session_max = None if session_max is None else \
            check_real("session_max", session_max, minimum=0, inclusive=False)
        self.overall_max = None if overall_max is None else \
            check_real("overall_max", overall_max, minimum=0, inclusive=False)

    def __call__(self, manager: Any) -> bool:
        session = time.time() - manager.t_start
        if self.session_max is not None:
            return session >= self.session_max
        return manager.t_used + session >= self.overall_max

    def __str__(self) -> str:
        # Show only the limit in force; the other is always None.
        name, value = ("session_max", self.session_max) if self.session_max is not None \
            else ("overall_max", self.overall_max)
        return f"{type(self).__name__}({name}={value!r})"


# Names used by the GloMPO/ParAMS documentation.
MaxTotalFunctionCalls = MaxFuncCalls
TargetFunctionValue = TargetCost
MaxOptimizersConverged = NOptConverged
MaxOptimizersStarted = MaxOptsStarted
MaxOptimizersStopped = MaxKills
StopsAfterConvergence = KillsAfterConvergence
TimeLimit = MaxSeconds


def TimeLimitThroughRestarts(overall_max: float) -> MaxSeconds:  # noqa: N802 (GloMPO's class name)
    """GloMPO's ``TimeLimitThroughRestarts(seconds)``: ``MaxSeconds(overall_max=seconds)``, a limit on
    the time of all sessions together, so it holds through restarts from checkpoints.

    Raises:
        ConfigurationError: ``overall_max`` is not a number > 0.
    """
    return MaxSeconds(overall_max=overall_max)
