"""ObservedTask: the function a child optimizer is given in place of the raw task.

It evaluates the task, records every evaluation in a small column buffer and sends that buffer to
the manager as one IterationReport per flush (at each ``check_messages()``, or when the buffer
grows large or old). Between evaluations it checks for a manager Stop and unwinds the optimizer
with OptimizerStopped, so even optimizers that never return control (scipy) stop promptly.

Values: a task result that is not a real number (None, a string, an array of size != 1) is
recorded and returned as NaN. NaN and +/-inf are logged as they are; they never become the
incumbent.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import OptimizerStopped
from . import messages as msg

__all__ = ("ObservedTask", "RemoteBatchEvaluator", "as_function_value", "evaluate_point")

logger = logging.getLogger("glompo_hpc.core.observed_task")


def as_function_value(value: Any) -> float:
    """Turn what a task returned into a float; anything that is not one real number becomes NaN."""
    if isinstance(value, (str, bytes)) or value is None:
        return math.nan
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return math.nan
    return float(arr.reshape(-1)[0]) if arr.size == 1 else math.nan


def evaluate_point(task: Callable, x: np.ndarray, detailed: bool) -> tuple[float, tuple]:
    """One evaluation as the log records it: ``(fx, extras)``; extras only with ``detailed``."""
    if detailed:
        out = task.detailed_call(x)
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        return as_function_value(out[0]), tuple(out[1:])
    return as_function_value(task(x)), ()


#: Spreads the ``batch`` calls of optimizers with ``workers`` > 1 over other processes (the MPI rank
#: host under ``slots: ranks`` gives one to its children). Called as ``remote_batch(xs, evaluate)``;
#: returns one ``(fx, extras)`` per x, in order; ``evaluate(x)`` evaluates one point in this process.
RemoteBatchEvaluator = Callable[[list[np.ndarray], Callable[[np.ndarray], tuple[float, tuple]]],
                                list[tuple[float, tuple]]]


_worker_task: tuple[Callable, bool] | None = None


def _init_worker(task: Callable, detailed: bool) -> None:
    global _worker_task
    _worker_task = (task, detailed)


def _evaluate_in_worker(x: np.ndarray) -> tuple[float, tuple]:
    task, detailed = _worker_task
    return evaluate_point(task, x, detailed)


class ObservedTask:
    """Callable wrapper recording evaluations for the manager.

    Args:
        task: The user's task.
        optimizer: The BaseOptimizer using it (for its link, stop flag, workers and backend).
        detailed: Call ``task.detailed_call`` and keep the extras.
        flush_rows: Send a report when this many evaluations are buffered.
        flush_seconds: Send a report at the next evaluation once the oldest buffered one is this old.
        allow_processes: False inside daemonic children, which cannot start processes.
        remote_batch: Evaluates ``batch`` calls over other processes when ``workers`` > 1 (None: local pool).
    """

    def __init__(self, task: Callable, optimizer, detailed: bool = False, flush_rows: int = 1024,
                 flush_seconds: float = 1.0, allow_processes: bool = True,
                 remote_batch: RemoteBatchEvaluator | None = None):
        self.task = task
        self.optimizer = optimizer
        self.detailed = detailed
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.n_evals = 0
        self.best_x: np.ndarray | None = None
        self.best_fx = math.inf
        self._xs: list[np.ndarray] = []
        self._fxs: list[float] = []
        self._extras: list[tuple] = []
        self._oldest = 0.0
        self._pool: Executor | None = None
        self._allow_processes = allow_processes
        self._remote_batch = remote_batch
        optimizer.attach_evaluation_flush(self.flush)

    # ------------------------------------------------------------ evaluation

    def __call__(self, x: Sequence[float]) -> float:
        self._before_evaluation()
        x = np.array(x, dtype=float).reshape(-1)
        fx, extras = evaluate_point(self.task, x, self.detailed)
        self._record(x, fx, extras)
        return fx

    def detailed_call(self, x: Sequence[float]) -> tuple:
        """Evaluate ``task.detailed_call(x)`` and return all of it: ``(fx, *extras)``.

        For optimizers that use more than the value, such as a gradient the task returns
        (GloMPO 3.1's pattern: ``fx, dx, dy = function.detailed_call(x)``). The evaluation is
        recorded like any other (its extras too when the run logs details). Works in every
        backend: the wrapper always runs where the optimizer runs.

        Raises:
            AttributeError: the task has no ``detailed_call``.
        """
        if not callable(getattr(self.task, "detailed_call", None)):  # the user's task, not our interface
            raise AttributeError(f"the task ({type(self.task).__name__}) has no detailed_call(x) method: "
                                 "give it one returning (fx, *extras), or call function(x)")
        self._before_evaluation()
        x = np.array(x, dtype=float).reshape(-1)
        out = self.task.detailed_call(x)
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        fx = as_function_value(out[0])
        self._record(x, fx, tuple(out[1:]))
        return out

    def batch(self, xs: Sequence[Sequence[float]]) -> np.ndarray:
        """Evaluate many points, in parallel over the optimizer's workers; returns their values."""
        self._before_evaluation()
        xs = [np.array(x, dtype=float).reshape(-1) for x in xs]
        if self._remote_batch is not None and self.optimizer.workers > 1:
            outs = self._remote_batch(xs, self._evaluate_here)
        else:
            pool = self._get_pool()
            outs = list(pool.map(_evaluate_in_worker if isinstance(pool, ProcessPoolExecutor)
                                 else self._evaluate_here, xs)) if pool else [self._evaluate_here(x) for x in xs]
        for x, (fx, extras) in zip(xs, outs):
            self._record(x, fx, extras)
        return np.array([fx for fx, _ in outs], dtype=float)

    def _evaluate_here(self, x: np.ndarray) -> tuple[float, tuple]:
        return evaluate_point(self.task, x, self.detailed)

    def _before_evaluation(self) -> None:
        if self._fxs and time.monotonic() - self._oldest > self.flush_seconds:
            self.flush()
        if self.optimizer.poll_stop():
            self.flush()
            raise OptimizerStopped(self.optimizer.stop_reason)

    def _record(self, x: np.ndarray, fx: float, extras: tuple) -> None:
        if not self._fxs:
            self._oldest = time.monotonic()
        self._xs.append(x)
        self._fxs.append(fx)
        if self.detailed:
            self._extras.append(extras)
        self.n_evals += 1
        if fx < self.best_fx:  # NaN compares False, so it never becomes the best
            self.best_fx, self.best_x = fx, x
        if len(self._fxs) >= self.flush_rows:
            self.flush()

    # ------------------------------------------------------------ reporting

    def flush(self) -> None:
        """Send the buffered evaluations to the manager as one IterationReport."""
        if not self._fxs:
            return
        extras = None
        if self.detailed:
            extras = np.empty((len(self._extras), max((len(e) for e in self._extras), default=0)), dtype=object)
            for i, row in enumerate(self._extras):
                extras[i, :len(row)] = row
        report = msg.IterationReport(self.optimizer.opt_id, np.vstack(self._xs), np.array(self._fxs, dtype=float),
                                     extras, self.optimizer.n_iterations)
        self._xs, self._fxs, self._extras = [], [], []
        self.optimizer.message_manager(report)

    def _get_pool(self) -> Executor | None:
        workers = self.optimizer.workers
        if workers <= 1:
            return None
        if self._pool is None:
            if self.optimizer.backend == "processes" and self._allow_processes:
                import multiprocessing as mp
                self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"),
                                                 initializer=_init_worker, initargs=(self.task, self.detailed))
            else:
                if self.optimizer.backend == "processes":
                    logger.warning("Optimizer %s asked for process workers inside a daemonic child; using threads "
                                   "(use the 'processes_forced' backend to allow them)", self.optimizer.opt_id)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"opt{self.optimizer.opt_id}-worker")
        return self._pool

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
