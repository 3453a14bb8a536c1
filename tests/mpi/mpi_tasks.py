"""Tasks and optimizers for the MPI tests: they record which rank did what, in files on rank 0's disk.

They live in an importable module (not a test file) so worker ranks unpickle them by reference.
No mpi4py import: the rank comes from the launcher's environment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

# the shared test helpers live in tests/support; every rank imports this module first, so every
# rank can then unpickle them by reference
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.optimizers import SleepyTask, sphere  # noqa: E402,F401  (re-exported for the rank cases)

from glompo_hpc.backends.mpi_env import mpi_world_rank  # noqa: E402
from glompo_hpc.core.result import MinimizeResult
from glompo_hpc.optimizers.base import BaseOptimizer


class RankRecordingTask:
    """Sphere that appends '<rank> <pid>' to ``path`` at every call (sleeping ``delay`` s first)."""

    def __init__(self, path: str, delay: float = 0.0):
        self.path, self.delay = path, delay

    def __call__(self, x) -> float:
        if self.delay:
            time.sleep(self.delay)
        with open(self.path, "a") as f:
            f.write(f"{mpi_world_rank()} {os.getpid()}\n")
        return sphere(x)


class FailingOnRank:
    """Sphere that raises on rank ``rank``."""

    def __init__(self, rank: int):
        self.rank = rank

    def __call__(self, x) -> float:
        if mpi_world_rank() == self.rank:
            raise RuntimeError(f"task broke on rank {self.rank}")
        return sphere(x)


class Walker(BaseOptimizer):
    """Random walk in batches of ``batch`` until ``iters`` iterations or a Stop.

    With ``log_dir`` it appends '<opt_id> <rank>' to ``log_dir/starts.txt`` when it starts, and
    with ``crash_on_rank`` it raises after its first iteration when it runs on that rank and no
    earlier optimizer has crashed there (a marker file records the crash): the rank must then be
    reused by a later optimizer.
    """

    def __init__(self, iters: int = 10 ** 9, batch: int = 4, log_dir: str | None = None,
                 crash_on_rank: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.iters, self.batch, self.log_dir, self.crash_on_rank = iters, batch, log_dir, crash_on_rank

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs) -> MinimizeResult:
        rank = mpi_world_rank()
        if self.log_dir is not None:
            with open(Path(self.log_dir) / "starts.txt", "a") as f:
                f.write(f"{self.opt_id} {rank}\n")
        rng = np.random.default_rng(self.opt_id)
        b = np.asarray(bounds, dtype=float)
        x = np.asarray(x0, dtype=float)
        fx = float("inf")
        for i in range(self.iters):
            pts = np.clip(x + rng.normal(0, 0.2, (self.batch, len(x))), b[:, 0], b[:, 1])
            fxs = function.batch(pts)
            j = int(np.argmin(fxs))
            if fxs[j] < fx:
                x, fx = pts[j], float(fxs[j])
            self.check_messages()
            if self.crash_on_rank == rank and self.log_dir is not None:
                marker = Path(self.log_dir) / f"crashed_on_{rank}"
                if not marker.exists():
                    marker.touch()
                    raise RuntimeError(f"deliberate crash on rank {rank}")
            if self.stop_requested:
                return MinimizeResult(False, x, fx)
        return MinimizeResult(True, x, fx)
