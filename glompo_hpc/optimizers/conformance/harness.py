"""The conformance kit's harness: a recording task with a gate, and one child optimizer run the way
every backend runs it (``run_child`` on a thread, a ``QueueLink``), driven message by message."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Sequence

import numpy as np

from ...core.backend import ChildSpec
from ...backends.child_host import run_child
from ...backends.threads import QueueLink
from ...protocol import messages as msg
from ..base import BaseOptimizer

__all__ = ("ConformanceError", "ChildRun", "RecordingTask", "CheckSetup", "Factory", "describe_final", "POLL")

Factory = Callable[[], BaseOptimizer]
POLL = 0.005  # seconds between looks at the channel while waiting


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
                raise ConformanceError(f"the optimizer ended ({describe_final(self.final)}) before {what}; "
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
            self.drain(POLL)

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


def describe_final(final: msg.ChildMessage) -> str:
    if isinstance(final, msg.OptimizerFinished):
        return f"OptimizerFinished(success={final.success}, stopped={final.stopped})"
    return type(final).__name__


class CheckSetup:
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
            run.drain(POLL)
            if run.final is not None:
                run._raise_if_failed()
                raise ConformanceError(f"the optimizer ended ({describe_final(run.final)}) after {run.task.n_started} "
                                       f"evaluations; the kit needs more than {self.gate_after} to act mid-run")
            if time.monotonic() > deadline:
                raise ConformanceError(f"the optimizer made only {run.task.n_started} evaluations in "
                                       f"{self.timeout:g} s; the kit needs {self.gate_after + 1}")
