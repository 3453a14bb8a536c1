"""ScipyOptimizer: any ``scipy.optimize.minimize`` method as a child optimizer.

Stopping:
    scipy keeps control until it returns, so the optimizer is stopped two ways. Its ``callback``
    runs ``check_messages()`` once per scipy iteration and raises ``StopIteration`` when the manager
    asked to stop (scipy >= 1.11 then returns the best point so far; TNC lets the exception out,
    which is caught here). Between iterations the ObservedTask raises OptimizerStopped before the
    next evaluation, which the child host reports as a clean stop.

Bounds:
    Methods that support bounds ('Nelder-Mead', 'L-BFGS-B', 'TNC', 'SLSQP', 'Powell',
    'trust-constr', 'COBYLA', 'COBYQA', and callables) receive the manager's bounds. For the others
    (CG, BFGS, Newton-CG, the trust-region family) the task is never evaluated outside the box: the
    function they see returns +inf there without calling the task. Derivative-free methods treat
    that as a wall; gradient methods may end their line search early and report no success.

Evaluations are sequential: scipy asks for one point at a time, so ``workers`` > 1 only
reserves slots.

Checkpoints:
    scipy has no resumable state. A loaded ScipyOptimizer (``is_restart`` True) starts a new scipy
    run from the best point it had found, not from the manager's ``x0``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize

from ..errors import ConfigurationError
from .base import BaseOptimizer, MinimizeResult

__all__ = ("ScipyOptimizer", "ScipyOptimizeWrapper")

#: Methods (lower case) to which ``scipy.optimize.minimize`` passes bounds.
BOUNDED_METHODS = frozenset({"nelder-mead", "l-bfgs-b", "tnc", "slsqp", "powell", "trust-constr", "cobyla", "cobyqa"})

#: Method names (lower case) ``scipy.optimize.minimize`` knows: any other fails every run of it.
METHODS = frozenset(getattr(scipy.optimize._minimize, "MINIMIZE_METHODS", ())) | BOUNDED_METHODS \
    | {"cg", "bfgs", "newton-cg", "dogleg", "trust-ncg", "trust-exact", "trust-krylov"}

#: ``minimize`` arguments the wrapper owns.
_RESERVED = ("fun", "x0", "bounds", "callback", "method")


class ScipyOptimizer(BaseOptimizer):
    """A ``scipy.optimize.minimize`` method.

    Args:
        method: Any method name ``scipy.optimize.minimize`` accepts, or a custom callable.
        workers: Slots the optimizer occupies (evaluations stay sequential).
        backend: 'threads' or 'processes'.
        is_log_detailed: Evaluate through ``task.detailed_call``.
        **scipy_kwargs: Other ``minimize`` arguments: ``options``, ``tol``, ``jac``, ``args``,
            ``constraints``, ...
    """


    def __init__(self, method: str | Callable = "Nelder-Mead", workers: int = 1, backend: str = "threads",
                 is_log_detailed: bool = False, **scipy_kwargs: Any):
        taken = sorted(k for k in scipy_kwargs if k in _RESERVED)
        if taken:
            raise ConfigurationError(f"ScipyOptimizer sets {taken} itself; remove them from its arguments")
        if not callable(method) and not isinstance(method, str):
            raise ConfigurationError(f"method must be a scipy method name or a callable, got {method!r}")
        if isinstance(method, str) and method.lower() not in METHODS:
            # refused here, not when each started child crashes on it
            raise ConfigurationError(f"method {method!r} is not a scipy.optimize.minimize method; valid: "
                                     f"{', '.join(sorted(METHODS))}, or a callable")
        super().__init__(workers, backend, is_log_detailed, method=method, **scipy_kwargs)
        self.method = method
        self.scipy_kwargs = dict(scipy_kwargs)
        self.best_x: np.ndarray | None = None
        self.best_fx = math.inf
        self.n_evals = 0

    @property
    def uses_bounds(self) -> bool:
        """True if scipy receives the bounds; False if the wrapper enforces them itself."""
        return callable(self.method) or self.method.lower() in BOUNDED_METHODS

    def minimize(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], callbacks: Callable | None = None,
                 **kwargs: Any) -> MinimizeResult:
        """Run the scipy method once.

        A loaded optimizer starts from its best point so far instead of ``x0``. ``callbacks``, if
        given, is called with the optimizer every scipy iteration; a truthy return ends the run.
        """
        box = np.asarray(bounds, dtype=float).reshape(-1, 2)
        start = self.best_x if (self.is_restart and self.best_x is not None) else x0
        start = np.clip(np.asarray(start, dtype=float).reshape(-1), box[:, 0], box[:, 1])
        ended_by_callback = False

        def fun(x: np.ndarray, *args: Any) -> float:
            x = np.asarray(x, dtype=float)
            if not self.uses_bounds and (np.any(x < box[:, 0]) or np.any(x > box[:, 1])):
                return math.inf
            fx = float(function(x))  # any scipy ``args`` are for a user's jac/hess; the task takes x only
            self.n_evals += 1
            if fx < self.best_fx:  # NaN compares False and is never kept
                self.best_x, self.best_fx = x.copy(), fx
            return fx

        def callback(intermediate_result: Any) -> None:
            # scipy passes an OptimizeResult (new style) or, for a few methods, only xk
            nonlocal ended_by_callback
            if callbacks is not None and callbacks(self):
                ended_by_callback = True
                raise StopIteration
            self.check_messages()
            if self.stop_requested:
                raise StopIteration

        options = dict(self.scipy_kwargs)
        if self.uses_bounds:
            options["bounds"] = [tuple(b) for b in box]
        try:
            # outside the box the function is +inf, and finite differences of inf warn 'invalid value'
            with np.errstate(invalid="ignore") if not self.uses_bounds else contextlib.nullcontext():
                res = scipy.optimize.minimize(fun, start, method=self.method, callback=callback, **options)
        except StopIteration:  # methods (TNC) that do not catch the callback's StopIteration
            res = None
        success = bool(res is not None and res.success) and not self.stop_requested and not ended_by_callback
        stats: dict[str, Any] = {"evaluations": self.n_evals, "message": "callback raised StopIteration"}
        if res is not None:
            stats.update(message=str(res.message), status=res.get("status"), iterations=res.get("nit"))
        x = None if self.best_x is None else self.best_x.copy()
        return MinimizeResult(success=success, x=x, fx=self.best_fx, stats=stats)


#: GloMPO's name for the same class.
ScipyOptimizeWrapper = ScipyOptimizer
