"""RandomOptimizer: uniform random search in the bounds, a baseline and a test workhorse.

Each iteration draws ``workers`` points uniformly in the box and evaluates them together with
``function.batch``. The generator, the iteration count and the best point are all in the
checkpoint, so a loaded optimizer draws exactly the points the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigurationError
from .base import BaseOptimizer, MinimizeResult

__all__ = ("RandomOptimizer",)


class RandomOptimizer(BaseOptimizer):
    """Uniform random search.

    Args:
        iters: Number of iterations (batches of ``workers`` points); success when all are done.
        seed: Seed of the optimizer's own generator. None: the manager gives it one derived from
            its ``seed`` (see ``reseed``); built outside a manager, one drawn from numpy's global
            generator.
        workers: Points per batch, evaluated in parallel.
        backend: 'threads' or 'processes'.
        is_log_detailed: Evaluate through ``task.detailed_call``.
    """

    free_options = False  # its **kwargs only reach the settings: a misspelt keyword fails at setup()

    def __init__(self, iters: int = 100, seed: int | None = None, workers: int = 1, backend: str = "threads",
                 is_log_detailed: bool = False, **kwargs: Any):
        if not isinstance(iters, (int, np.integer)) or isinstance(iters, bool) or iters < 0:
            raise ConfigurationError(f"iters must be an integer >= 0, got {iters!r}")
        self._explicit_seed = seed is not None
        if seed is None:
            seed = int(np.random.randint(0, 2 ** 31 - 1))
        super().__init__(workers, backend, is_log_detailed, iters=iters, seed=seed, **kwargs)
        self.iters = int(iters)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.iteration = 0
        self.best_x: np.ndarray | None = None
        self.best_fx = math.inf

    def reseed(self, seed: int) -> None:
        if not self._explicit_seed:
            self.seed = int(seed)
            self.settings["seed"] = self.seed
            self.rng = np.random.default_rng(self.seed)

    def minimize(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], callbacks: Callable | None = None,
                 **kwargs: Any) -> MinimizeResult:
        """Evaluate the remaining batches; ``x0`` is not used (random search has no start point).

        ``callbacks``, if given, is called with the optimizer after every batch; a truthy return
        ends the run.
        """
        box = np.asarray(bounds, dtype=float).reshape(-1, 2)
        batch = max(1, self.workers)
        ended_by_callback = False
        while self.iteration < self.iters and not self.stop_requested:
            xs = self.rng.uniform(box[:, 0], box[:, 1], size=(batch, len(box)))
            fx = np.asarray(function.batch(xs), dtype=float)
            # the iteration counts once its points are evaluated, so a checkpoint taken in
            # check_messages below resumes with the next batch
            self.iteration += 1
            finite = np.isfinite(fx)
            if finite.any():
                i = int(np.argmin(np.where(finite, fx, np.inf)))
                if fx[i] < self.best_fx:
                    self.best_x, self.best_fx = xs[i].copy(), float(fx[i])
            if callbacks is not None and callbacks(self):
                ended_by_callback = True
                break
            self.check_messages()
        success = self.iteration >= self.iters and not self.stop_requested and not ended_by_callback
        x = None if self.best_x is None else self.best_x.copy()
        return MinimizeResult(success=success, x=x, fx=self.best_fx,
                              stats={"iterations": self.iteration, "evaluations": self.iteration * batch})
