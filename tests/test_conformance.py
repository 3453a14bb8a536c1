"""The conformance kit passes the shipped optimizers and fails broken ones with a clear message."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from glompo_hpc.optimizers import BaseOptimizer, CMAOptimizer, MinimizeResult, RandomOptimizer, ScipyOptimizer
from glompo_hpc.optimizers.conformance import (ConformanceError, check_checkpoint, check_optimizer, check_pause,
                                               check_reports, check_stop)

KIT_TIMEOUT = 1.0  # seconds per wait when the kit is expected to fail


@pytest.mark.parametrize("factory", [
    lambda: CMAOptimizer(sigma0=1.0),
    lambda: CMAOptimizer(sigma0=1.0, workers=4, sampler="vd"),
    lambda: ScipyOptimizer("Nelder-Mead"),
    lambda: ScipyOptimizer("L-BFGS-B"),
    lambda: RandomOptimizer(iters=10 ** 6, workers=2),
], ids=["cma", "cma-workers-vd", "nelder-mead", "l-bfgs-b", "random"])
def test_shipped_optimizers_conform(factory):
    check_optimizer(factory, timeout=10)


def test_kit_accepts_a_custom_task_and_box():
    check_optimizer(lambda: CMAOptimizer(sigma0=0.3), task=lambda x: float(np.sum(np.abs(x))),
                    bounds=[(-1.0, 2.0)] * 3, timeout=10)


# ---------------------------------------------------------------- broken optimizers

class Deaf(BaseOptimizer):
    """Never calls check_messages and swallows OptimizerStopped: it ignores the manager.

    It gives up on its own after ``lifetime`` s so the abandoned thread does not outlive the tests.
    """

    lifetime = 3.0

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        end = time.monotonic() + self.lifetime
        while time.monotonic() < end:
            try:
                function(x0)
            except Exception:
                pass
            time.sleep(0.001)
        return MinimizeResult(True, np.asarray(x0), 0.0)


class Walker(BaseOptimizer):
    """A well-behaved minimal optimizer, relying on BaseOptimizer's default checkpointing."""

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        rng = np.random.default_rng(0)
        x = np.asarray(x0, dtype=float)
        while not self.stop_requested:
            function.batch(np.clip(x + rng.normal(0, 0.1, (2, len(x))), -5, 5))
            self.check_messages()
        return MinimizeResult(False, x, float("inf"))


class Unpicklable(Walker):
    _transient = ("_flush_evaluations",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inbox = queue.SimpleQueue()  # not picklable: SaveState must report an error


class Crashing(Walker):
    _transient = ("_flush_evaluations",)

    def check_messages(self):
        super().check_messages()
        raise RuntimeError("deliberate crash")


def test_kit_fails_an_optimizer_that_ignores_stop():
    with pytest.raises(ConformanceError, match="did not end within .* after a Stop"):
        check_stop(Deaf, timeout=KIT_TIMEOUT)


def test_kit_fails_an_optimizer_that_never_checks_messages():
    with pytest.raises(ConformanceError, match="no ChildPaused.*check_messages"):
        check_pause(Deaf, timeout=KIT_TIMEOUT)
    with pytest.raises(ConformanceError, match="two IterationReports"):
        check_reports(Deaf, timeout=KIT_TIMEOUT)
    with pytest.raises(ConformanceError):
        check_optimizer(Deaf, timeout=KIT_TIMEOUT)


def test_kit_fails_an_optimizer_whose_state_cannot_be_saved():
    with pytest.raises(ConformanceError, match="checkpoint_save failed: TypeError"):
        check_checkpoint(Unpicklable, timeout=5)


def test_kit_shows_the_traceback_of_a_crash():
    with pytest.raises(ConformanceError, match="(?s)RuntimeError: deliberate crash.*Traceback"):
        check_optimizer(Crashing, timeout=5)


def test_kit_fails_an_optimizer_that_ends_before_it_can_act():
    with pytest.raises(ConformanceError, match="larger budget|needs more than"):
        check_stop(lambda: RandomOptimizer(iters=1), timeout=5)


def test_a_minimal_subclass_with_default_checkpointing_conforms():
    check_optimizer(Walker, timeout=5)
