"""Conformance kit: proves that a BaseOptimizer subclass keeps the child contract.

Each check runs the optimizer the way every backend does, with ``run_child`` and a real message
channel (a thread and a ``QueueLink``; no manager), against a task that records every call and can
hold evaluations at a gate, so the kit can act while the optimizer is surely mid-run. It checks:

(a) ``check_reports``: evaluations reach the manager as IterationReports whose rows, x of shape
    (k, n) and fx of shape (k,), are exactly the points the task evaluated, with their values;
(b) ``check_stop``: a Stop ends the run within ``timeout`` with OptimizerFinished(stopped=True);
(c) ``check_pause``: a Pause is answered with ChildPaused, no evaluation happens until Resume,
    and the run goes on afterwards;
(d) ``check_checkpoint``: SaveState(path) is answered with StateSaved without error, and
    ``type(opt).checkpoint_load(path)`` gives an optimizer (``is_restart`` True) that runs again;
(e) ``check_inject``: an InjectIncumbent is accepted and the run goes on;
(f) every run ends with exactly one final message, an OptimizerFinished (a ChildFailed fails the
    check and shows the child's traceback).

The first failure raises ConformanceError (an AssertionError, so test runners show it as a
failure) saying what was expected. Evaluations run in threads even for ``backend='processes'``:
the kit's recording task must see them. The factory's optimizer needs a budget well above
``gate_after`` evaluations so it is still running when the kit acts.

Example, in your own test suite::

    from glompo_hpc.optimizers.conformance import check_optimizer
    from mypackage import MyOptimizer

    def test_my_optimizer_keeps_the_contract():
        check_optimizer(lambda: MyOptimizer(workers=2), timeout=10)
"""

from __future__ import annotations

import math
import queue
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..backends.base import ChildSpec
from ..backends.child_host import run_child
from ..backends.threads import QueueLink
from ..core import messages as msg
from .base import BaseOptimizer

__all__ = ("ConformanceError", "ChildRun", "RecordingTask", "check_optimizer", "check_reports", "check_stop",
           "check_pause", "check_checkpoint", "check_inject")

Factory = Callable[[], BaseOptimizer]
_POLL = 0.005  # seconds between looks at the channel while waiting


class ConformanceError(AssertionError):
    """An optimizer broke the child contract; the message says which part and how."""


def _shifted_sphere(x: np.ndarray) -> float:
    return float(np.sum((np.asarray(x) - 0.5) ** 2))


class RecordingTask:
    """Wraps a task: records every call, and can hold calls at a gate.

    Args:
        task: The function evaluated (default: a sphere centred at 0.5).
        delay: Seconds each call sleeps, so optimizers do not race through their budget.
    """

    def __init__(self, task: Callable | None = None, delay: float = 0.001):
        self.task = task or _shifted_sphere
        self.delay = delay
        self.starts: list[float] = []
        self.done: list[tuple[np.ndarray, float]] = []
        self.blocked = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self._gate_at: int | None = None
        self._lock = threading.Lock()

    def close_gate(self, at_call: int) -> None:
        """Hold every call from the ``at_call``-th (0-based) on until ``open_gate``."""
        self._gate_at = at_call
        self.blocked.clear()
        self._gate.clear()

    def open_gate(self) -> None:
        self._gate.set()

    @property
    def n_started(self) -> int:
        return len(self.starts)

    def __call__(self, x: Sequence[float]) -> float:
        x = np.array(x, dtype=float)
        with self._lock:
            index = len(self.starts)
            self.starts.append(time.monotonic())
        if self._gate_at is not None and index >= self._gate_at and not self._gate.is_set():
            self.blocked.set()
            self._gate.wait()
        if self.delay:
            time.sleep(self.delay)
        fx = self.task(x)
        with self._lock:
            self.done.append((x, fx))
        return fx


class ChildRun:
    """One optimizer under ``run_child`` in a daemon thread, talking through a QueueLink.

    Use it as a context manager: leaving it opens the task's gate and sends Stop, so a conforming
    optimizer ends even when a check failed half-way.
    """

    def __init__(self, optimizer: BaseOptimizer, task: Callable, x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], opt_id: int = 1, flush_seconds: float = 60.0):
        self.optimizer = optimizer
        self.task = task
        self.opt_id = opt_id
        self.messages: list[msg.ChildMessage] = []
        self.final: msg.ChildMessage | None = None
        self._to_manager: queue.SimpleQueue = queue.SimpleQueue()
        self._to_child: queue.SimpleQueue = queue.SimpleQueue()
        spec = ChildSpec(opt_id, optimizer, task, np.asarray(x0, dtype=float), np.asarray(bounds, dtype=float),
                         flush_seconds=flush_seconds)
        # allow_processes=False: evaluations stay in this process where the recording task sees them
        self.thread = threading.Thread(target=run_child, args=(spec, QueueLink(self._to_manager, self._to_child)),
                                       kwargs={"allow_processes": False}, daemon=True, name=f"conformance-opt{opt_id}")

    def __enter__(self) -> "ChildRun":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.task, RecordingTask):
            self.task.open_gate()
        if self.final is None:
            self.send(msg.Stop("conformance kit cleanup"))

    def send(self, message: msg.ManagerMessage) -> None:
        self._to_child.put(message)

    def drain(self, timeout: float = 0.0) -> None:
        """Move what the child sent into ``messages``; wait up to ``timeout`` for the first."""
        try:
            first = self._to_manager.get(timeout=timeout) if timeout > 0 else self._to_manager.get_nowait()
        except queue.Empty:
            return
        batch = [first]
        while True:
            try:
                batch.append(self._to_manager.get_nowait())
            except queue.Empty:
                break
        for m in batch:
            if self.final is not None:
                raise ConformanceError(f"the child sent {type(m).__name__} after its final message "
                                       f"{type(self.final).__name__}: exactly one final message is allowed")
            self.messages.append(m)
            if isinstance(m, (msg.OptimizerFinished, msg.ChildFailed)):
                self.final = m

    def wait_for(self, kind: type, timeout: float, what: str, since: int | None = None) -> msg.ChildMessage:
        """First message of ``kind`` received after index ``since`` (default: now).

        Raises ConformanceError naming ``what`` was awaited on timeout, or when the run ended first.
        """
        start = len(self.messages) if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages[start:]:
                if isinstance(m, kind):
                    return m
            if self.final is not None:
                self._raise_if_failed()
                raise ConformanceError(f"the optimizer ended ({_describe(self.final)}) before {what}; "
                                       "give the kit an optimizer with a larger budget")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConformanceError(f"no {kind.__name__} within {timeout:g} s while waiting for {what}")
            self.drain(min(left, 0.05))

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll the channel until ``condition()`` holds; a clean end of the run also ends the wait."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.final is not None:
                self._raise_if_failed()
                return
            if time.monotonic() > deadline:
                raise ConformanceError(f"timed out after {timeout:g} s waiting for {what}")
            self.drain(_POLL)

    def finish(self, timeout: float, after: str = "") -> msg.OptimizerFinished:
        """Wait for the final message and check that it is the only one and an OptimizerFinished."""
        deadline = time.monotonic() + timeout
        while self.final is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConformanceError(f"the optimizer did not end within {timeout:g} s{after}: minimize must "
                                       "return when self.stop_requested (check it after every check_messages())")
            self.drain(min(left, 0.05))
        self.thread.join(timeout)
        self.drain(0.0)
        self._raise_if_failed()
        finals = [m for m in self.messages if isinstance(m, (msg.OptimizerFinished, msg.ChildFailed))]
        if len(finals) != 1:
            raise ConformanceError(f"expected exactly one final message, got {len(finals)}")
        return self.final

    def reports(self) -> list[msg.IterationReport]:
        return [m for m in self.messages if isinstance(m, msg.IterationReport)]

    def _raise_if_failed(self) -> None:
        if isinstance(self.final, msg.ChildFailed):
            raise ConformanceError(f"the optimizer raised {self.final.error}\n{self.final.traceback}")


def _describe(final: msg.ChildMessage) -> str:
    if isinstance(final, msg.OptimizerFinished):
        return f"OptimizerFinished(success={final.success}, stopped={final.stopped})"
    return type(final).__name__


class _Setup:
    """The task, bounds and start point shared by the checks."""

    def __init__(self, task: Callable | None, bounds: Sequence[tuple[float, float]] | None,
                 x0: Sequence[float] | None, timeout: float, gate_after: int):
        self.inner = task
        self.bounds = np.asarray(bounds if bounds is not None else [(-5.0, 5.0)] * 2, dtype=float).reshape(-1, 2)
        lo, hi = self.bounds[:, 0], self.bounds[:, 1]
        self.x0 = np.asarray(x0, dtype=float) if x0 is not None else lo + 0.7 * (hi - lo)
        self.timeout = timeout
        self.gate_after = gate_after

    def run(self, factory: Factory | BaseOptimizer, gated: bool = True) -> ChildRun:
        opt = factory if isinstance(factory, BaseOptimizer) else factory()
        if not isinstance(opt, BaseOptimizer):
            raise ConformanceError(f"the factory returned {type(opt).__name__}, not a BaseOptimizer")
        task = RecordingTask(self.inner)
        if gated:
            task.close_gate(self.gate_after)
        return ChildRun(opt, task, self.x0, self.bounds)

    def wait_blocked(self, run: ChildRun) -> None:
        """Wait until the optimizer is held at the gate, i.e. surely mid-run."""
        deadline = time.monotonic() + self.timeout
        while not run.task.blocked.is_set():
            run.drain(_POLL)
            if run.final is not None:
                run._raise_if_failed()
                raise ConformanceError(f"the optimizer ended ({_describe(run.final)}) after {run.task.n_started} "
                                       f"evaluations; the kit needs more than {self.gate_after} to act mid-run")
            if time.monotonic() > deadline:
                raise ConformanceError(f"the optimizer made only {run.task.n_started} evaluations in "
                                       f"{self.timeout:g} s; the kit needs {self.gate_after + 1}")


# ---------------------------------------------------------------- the checks

def check_reports(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                  gate_after: int = 3) -> None:
    """(a) IterationReports are well formed and hold exactly the evaluations the task saw."""
    setup = _Setup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory, gated=False) as run:
        run.wait_until(lambda: len(run.reports()) >= 2, timeout, "two IterationReports")
        run.send(msg.Stop("conformance check"))
        run.finish(timeout, " after a Stop")
    n = len(setup.bounds)
    iteration = -math.inf
    for i, r in enumerate(run.reports()):
        where = f"IterationReport #{i}"
        if r.opt_id != run.opt_id:
            raise ConformanceError(f"{where} has opt_id {r.opt_id}, expected {run.opt_id}")
        if not isinstance(r.x, np.ndarray) or r.x.ndim != 2 or r.x.shape[1] != n or r.x.shape[0] < 1:
            raise ConformanceError(f"{where}: x must be an array of shape (k>=1, {n}), got {np.shape(r.x)}")
        if not isinstance(r.fx, np.ndarray) or r.fx.shape != (r.x.shape[0],):
            raise ConformanceError(f"{where}: fx must have shape ({r.x.shape[0]},), got {np.shape(r.fx)}")
        if r.iteration < iteration:
            raise ConformanceError(f"{where}: iteration went back from {iteration} to {r.iteration}")
        iteration = r.iteration
    reported = Counter(_row_key(x, fx) for r in run.reports() for x, fx in zip(r.x, r.fx))
    evaluated = Counter(_row_key(x, fx) for x, fx in run.task.done)
    if reported != evaluated:
        raise ConformanceError(f"reported rows differ from the task's evaluations: "
                               f"{sum((evaluated - reported).values())} evaluation(s) never reported, "
                               f"{sum((reported - evaluated).values())} reported row(s) never evaluated "
                               f"({sum(evaluated.values())} evaluations, {sum(reported.values())} rows)")


def _row_key(x: np.ndarray, fx: float) -> tuple:
    fx = float(fx)
    return tuple(np.asarray(x, dtype=float).tolist()), fx if math.isfinite(fx) else repr(fx)


def check_stop(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
               gate_after: int = 3) -> None:
    """(b) A Stop sent mid-run ends it promptly with OptimizerFinished(stopped=True)."""
    setup = _Setup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        run.send(msg.Stop("conformance check"))
        n_at_stop = run.task.n_started
        run.task.open_gate()
        final = run.finish(timeout, " after a Stop")
    if not final.stopped:
        raise ConformanceError(f"the run ended after a Stop with stopped=False ({_describe(final)}, "
                               f"{run.task.n_started - n_at_stop} evaluations after the Stop)")
    if final.reason != "conformance check":
        raise ConformanceError(f"the stop reason is {final.reason!r}, expected the Stop's 'conformance check' "
                               "(an overriding callstop must call super().callstop(reason))")


def check_pause(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                gate_after: int = 3, pause_window: float = 0.2) -> None:
    """(c) Pause is answered with ChildPaused; nothing is evaluated until Resume; the run goes on."""
    setup = _Setup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        since = len(run.messages)
        run.send(msg.Pause())
        run.task.open_gate()
        run.wait_for(msg.ChildPaused, timeout, "the answer to Pause (does minimize call self.check_messages() "
                                               "once per iteration?)", since)
        n_paused = run.task.n_started
        time.sleep(pause_window)
        run.drain(0.0)
        if run.task.n_started != n_paused:
            raise ConformanceError(f"the optimizer evaluated the task {run.task.n_started - n_paused} time(s) "
                                   "while paused")
        _resume_then_stop(run, n_paused, timeout, "an evaluation after Resume")


def check_inject(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                 gate_after: int = 3) -> None:
    """(e) InjectIncumbent is handled without error and the run goes on."""
    setup = _Setup(task, bounds, x0, timeout, gate_after)
    x_inj = setup.bounds.mean(axis=1)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        since = len(run.messages)
        run.send(msg.InjectIncumbent(x_inj, float(run.task.task(x_inj))))
        # messages are handled in order, so ChildPaused proves the injection was processed
        run.send(msg.Pause())
        run.task.open_gate()
        run.wait_for(msg.ChildPaused, timeout, "the Pause sent after InjectIncumbent", since)
        _resume_then_stop(run, run.task.n_started, timeout, "an evaluation after the injection")


def _resume_then_stop(run: Any, n_paused: int, timeout: float, expected: str) -> None:
    """Resume a paused run, wait for an evaluation beyond ``n_paused``, then stop it and see it end."""
    run.send(msg.Resume())
    run.wait_until(lambda: run.task.n_started > n_paused, timeout, expected)
    run.send(msg.Stop("conformance check"))
    run.finish(timeout, " after a Stop")


def check_checkpoint(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                     gate_after: int = 3) -> None:
    """(d) SaveState gets StateSaved without error; the loaded optimizer is a restart and runs."""
    setup = _Setup(task, bounds, x0, timeout, gate_after)
    with tempfile.TemporaryDirectory(prefix="glompo-conformance-") as tmp:
        path = str(Path(tmp) / "optimizer.ckpt")
        with setup.run(factory) as run:
            setup.wait_blocked(run)
            since = len(run.messages)
            run.send(msg.SaveState(path))
            run.task.open_gate()
            saved = run.wait_for(msg.StateSaved, timeout, "the answer to SaveState", since)
            run.send(msg.Stop("conformance check"))
            run.finish(timeout, " after a Stop")
        if saved.error:
            raise ConformanceError(f"checkpoint_save failed: {saved.error}")
        if saved.path != path or not Path(path).exists():
            raise ConformanceError(f"StateSaved names {saved.path!r}, but nothing was written at {path!r}")
        kind = type(run.optimizer)
        try:
            loaded = kind.checkpoint_load(path)
        except Exception as e:
            raise ConformanceError(f"{kind.__name__}.checkpoint_load failed: {type(e).__name__}: {e}") from e
        if not isinstance(loaded, kind):
            raise ConformanceError(f"checkpoint_load returned {type(loaded).__name__}, expected {kind.__name__}")
        if not loaded.is_restart:
            raise ConformanceError("a loaded optimizer must have is_restart True")
        with setup.run(loaded, gated=False) as rerun:
            rerun.wait_until(lambda: rerun.task.n_started > 0, timeout, "the loaded optimizer's first evaluation")
            rerun.send(msg.Stop("conformance check"))
            rerun.finish(timeout, " after a Stop")
        if rerun.task.n_started == 0:
            raise ConformanceError("the loaded optimizer ended without evaluating the task")


def check_optimizer(factory: Factory, task: Callable | None = None, bounds: Sequence[tuple[float, float]] | None = None,
                    x0: Sequence[float] | None = None, timeout: float = 30.0, gate_after: int = 3) -> None:
    """Run every check on fresh optimizers from ``factory``; raise ConformanceError on the first failure.

    Args:
        factory: Makes a new optimizer for each check; give it a budget well above ``gate_after``.
        task: The function to minimize (default: a 2-D sphere centred at 0.5).
        bounds: (n, 2) box (default: [-5, 5] per parameter).
        x0: Start point (default: 70 % of the way across the box).
        timeout: Seconds any single wait may take.
        gate_after: The kit acts when the optimizer starts its evaluation number ``gate_after + 1``.
    """
    for check in (check_reports, check_stop, check_pause, check_inject, check_checkpoint):
        check(factory, task=task, bounds=bounds, x0=x0, timeout=timeout, gate_after=gate_after)
