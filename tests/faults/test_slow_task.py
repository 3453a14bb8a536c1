"""A task that is extremely slow on some points: it delays only the optimizer evaluating it.

Users' tasks (simulations) can take seconds on some parameter sets where others take
milliseconds. The run must neither wait for them with its other slots, nor take them for hung
while they are within ``force_terminations_after``, nor lose their values.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from support.optimizers import WalkOptimizer, sphere

from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxOptsStarted
from glompo_hpc.generators import BaseGenerator
from glompo_hpc.selectors import CycleSelector

BOUNDS = [(-5.0, 5.0)] * 2
SLOW_POINT = np.array([4.0, 0.0])
SLOW_SECONDS = 1.5


class SlowOnOnePoint:
    """Sphere, taking ``SLOW_SECONDS`` on ``SLOW_POINT`` (where odd optimizers start)."""

    def __call__(self, x) -> float:
        if np.array_equal(x, SLOW_POINT):
            time.sleep(SLOW_SECONDS)
        return sphere(x)


class AlternatingStarts(BaseGenerator):
    """Odd optimizers start on the slow point, even ones elsewhere."""

    def generate(self, manager):
        return SLOW_POINT.copy() if manager.o_counter % 2 == 0 else np.array([-4.0, 0.0])


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_slow_points_delay_only_their_optimizer_and_are_logged(tmp_path, backend):
    m = GloMPOManager.new_manager(
        SlowOnOnePoint(), BOUNDS, CycleSelector((WalkOptimizer, {"iters": 30})),
        working_dir=tmp_path, max_jobs=2, backend=backend, x0_generator=AlternatingStarts(), stoppers=False,
        exit_conditions=MaxOptsStarted(4), force_terminations_after=30)
    m.start_manager()

    log = m.opt_log
    ends = [r.end_cond for r in log.records.values()]
    assert not any("Forced" in e or "Error" in e for e in ends), ends  # slow is not hung
    call_ids = np.sort(np.concatenate([log.history(i, "call_id") for i in log.opt_ids]))
    assert np.array_equal(call_ids, np.arange(1, m.f_counter + 1))  # each evaluation once
    slow_opt, fast_opt = 1, 2
    first_slow = log.history(slow_opt, "x")[0]
    assert np.array_equal(first_slow, SLOW_POINT) and log.history(slow_opt, "fx")[0] == pytest.approx(sphere(first_slow))
    # while the slow point was evaluated, the other slot kept working: the fast optimizer's
    # results reached the manager before the slow one's first result did
    before = np.sum(log.history(fast_opt, "call_id") < log.history(slow_opt, "call_id")[0])
    assert before >= 10, f"only {before} evaluations of optimizer {fast_opt} during the slow call"
