"""Small deterministic optimizers and tasks for manager tests (real BaseOptimizer subclasses)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from glompo_hpc.core.result import MinimizeResult
from glompo_hpc.optimizers.base import BaseOptimizer


def sphere(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sum(x ** 2))


class WalkOptimizer(BaseOptimizer):
    """Greedy random walk: each iteration evaluates ``batch`` points around its best and moves.

    Ends on its own (success) after ``iters`` iterations.
    """

    def __init__(self, iters: int = 50, batch: int = 4, step: float = 0.3, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.iters, self.batch, self.step, self.seed = iters, batch, step, seed

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs) -> MinimizeResult:
        rng = np.random.default_rng(self.seed)
        bounds = np.asarray(bounds)
        best_x = np.asarray(x0, dtype=float)
        best_f = function(best_x)
        for _ in range(self.iters):
            pts = np.clip(best_x + rng.normal(0, self.step, (self.batch, len(best_x))), bounds[:, 0], bounds[:, 1])
            fxs = function.batch(pts)
            i = int(np.nanargmin(np.where(np.isfinite(fxs), fxs, np.inf)))
            if fxs[i] < best_f:
                best_x, best_f = pts[i], fxs[i]
            self.check_messages()
            if self.stop_requested:
                return MinimizeResult(False, best_x, best_f)
        return MinimizeResult(True, best_x, best_f)


class CrashingOptimizer(WalkOptimizer):
    """Raises after ``crash_after`` iterations."""

    def __init__(self, crash_after: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.crash_after = crash_after

    def check_messages(self) -> None:
        super().check_messages()
        if self.n_iterations >= self.crash_after:
            raise RuntimeError("deliberate crash in optimizer")


class SleepyTask:
    """Sphere that sleeps ``delay`` s per call; hangs (sleeps ``hang`` s) when x[0] > ``hang_above``."""

    def __init__(self, delay: float = 0.0, hang_above: float = np.inf, hang: float = 3600.0):
        self.delay, self.hang_above, self.hang = delay, hang_above, hang

    def __call__(self, x) -> float:
        if x[0] > self.hang_above:
            time.sleep(self.hang)
        if self.delay:
            time.sleep(self.delay)
        return sphere(x)


class PidTask:
    """Sphere that also reports which process evaluated it (detailed_call extras)."""

    def __call__(self, x) -> float:
        return sphere(x)

    def detailed_call(self, x):
        return sphere(x), os.getpid(), "tag"

    def headers(self):
        return {"pid": "int64", "tag": "str"}


class MarkedTask:
    """Sphere that leaves a file per evaluation in ``marks`` (``started-PID-THREAD-N``, then ``finished-...``),
    so a test can wait for evaluations and see which ones a stop cut off, in any process.

    With ``gate`` set, a process's evaluations from number ``gate_from`` on (default: all but the
    first) wait until the file ``gate`` exists: an evaluation is then surely in flight when the test acts. ``marked`` limits the marks to a
    process's first evaluations (a long run would fill the directory); ``delay`` as SleepyTask's.
    """

    def __init__(self, marks: str, gate: str | None = None, marked: int | None = None, delay: float = 0.0,
                 gate_from: int = 2):
        self.marks, self.gate, self.marked, self.delay, self.gate_from = marks, gate, marked, delay, gate_from
        self.calls: dict[int, int] = {}  # per thread: the threads backend shares one task between children

    def __call__(self, x) -> float:
        thread = threading.get_ident()
        n = self.calls[thread] = self.calls.get(thread, 0) + 1
        if self.delay:
            time.sleep(self.delay)
        if self.marked is not None and n > self.marked:
            return sphere(x)
        name = f"{os.getpid()}-{thread}-{n}"
        open(os.path.join(self.marks, f"started-{name}"), "w").close()
        if self.gate is not None and n >= self.gate_from:
            while not os.path.exists(self.gate):
                time.sleep(0.01)  # polls for the test's event; no timing is assumed
        open(os.path.join(self.marks, f"finished-{name}"), "w").close()
        return sphere(x)

    @staticmethod
    def evaluations(marks) -> tuple[set[str], set[str]]:
        """(started, finished) evaluation names, ``PID-THREAD-N``, found in ``marks``."""
        names = os.listdir(marks)
        return ({n[len("started-"):] for n in names if n.startswith("started-")},
                {n[len("finished-"):] for n in names if n.startswith("finished-")})
