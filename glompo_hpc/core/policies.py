"""The run's decisions that read only its settings and state: each returns actions (``actions.py``).

Nothing here touches a backend, a child or the session; the session gives each policy what it
needs to read (the live optimizers' ids) and applies what comes back.
"""

from __future__ import annotations

import logging
from typing import Iterable

from ..checkpointing import CheckpointingControl
from .actions import EndRun, StartOptimizer, StopOptimizer, StopSpawning
from .settings import Settings
from .state import EndKind, RunState
from .view import RunView

__all__ = ("CRASH_LOOP", "CRASH_LOOP_LIMIT", "CrashLoopGuard", "checkpoint_due", "exit_decision",
           "spawn_decision", "status_due", "stopper_decisions", "all_ended_decision")

logger = logging.getLogger("glompo_hpc.manager")

# Optimizers in a row that crash while no evaluation is made anywhere: then every new one would
# crash too (a setting its class rejects only when it runs, a task that always raises), and the
# loop would start them forever, filling the disk with their logs. No new ones are started.
CRASH_LOOP_LIMIT = 20
CRASH_LOOP = "optimizers keep crashing"  # the start of the run's exit_reason then


def spawn_decision(settings: Settings, view: RunView, free_slots: int) -> StartOptimizer | StopSpawning | None:
    """What the selector starts in ``free_slots``: an optimizer, nothing yet, or nothing ever again."""
    option = settings.opt_selector.select_optimizer(view, free_slots)
    if option is False:
        logger.info("Spawning of new optimizers is stopped")
        return StopSpawning()
    if option is None or option.workers > free_slots:
        return None
    return StartOptimizer(option)


def stopper_decisions(settings: Settings, state: RunState, running: Iterable[int]) -> list[StopOptimizer]:
    """Every ``stopcheck_interval`` evaluations: the running optimizers the stoppers end."""
    stoppers = settings.stoppers
    if stoppers is None or state.f_counter - state.last_stopcheck < settings.stopcheck_interval \
            or not state.result.origin:
        return []
    state.last_stopcheck = state.f_counter
    state.stopcheck_counter += 1
    best_id = state.result.origin["opt_id"]
    stops = []
    for opt_id in running:
        if state.opt_log.n_evals(opt_id) == 0 or (opt_id == best_id and not settings.apply_stoppers_to_best):
            continue
        stoppers.reset()
        if stoppers(state.opt_log, best_id, opt_id):
            stops.append(StopOptimizer(opt_id, stoppers.str_with_result()))
    return stops


def exit_decision(settings: Settings, view: RunView) -> EndRun | None:
    """The run's end if its exit conditions hold now."""
    conditions = settings.exit_conditions
    conditions.reset()
    if conditions(view):
        return EndRun(EndKind.EXIT_CONDITIONS, conditions.reason())
    return None


def all_ended_decision(state: RunState, restoring: bool, alive: bool, spawn_stop: StopSpawning | None) \
        -> EndRun | None:
    """The run's end when spawning is stopped and no optimizer is alive or waiting to be restored."""
    if state.spawning_opts or restoring or alive:
        return None
    if spawn_stop is not None and spawn_stop.outcome is not None:
        return spawn_stop.outcome
    return EndRun(EndKind.NO_OPTIMIZERS, "no optimizers alive and spawning is stopped")


def checkpoint_due(control: CheckpointingControl, state: RunState, now: float) -> bool:
    """A periodic checkpoint is due (evaluations or seconds since the last one)."""
    return (state.f_counter - state.last_checkpoint_eval >= control.checkpoint_eval_interval
            or now - state.last_checkpoint_time >= control.checkpoint_time_interval)


def status_due(settings: Settings, state: RunState, now: float) -> bool:
    return now - state.last_status >= settings.status_interval


class CrashLoopGuard:
    """Stop spawning after CRASH_LOOP_LIMIT crashes with no evaluation made in between; optimizers
    still alive go on, and the run ends when they have."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.f_counter_at_crash = -1

    def crashed(self, state: RunState, error: str) -> StopSpawning | None:
        if state.f_counter != self.f_counter_at_crash:
            self.in_a_row = 0  # evaluations since the last crash: not a loop
        self.f_counter_at_crash = state.f_counter
        self.in_a_row += 1
        if self.in_a_row < CRASH_LOOP_LIMIT or not state.spawning_opts:
            return None
        detail = (f"{CRASH_LOOP}: {self.in_a_row} in a row crashed with no evaluation made in between "
                  f"(last: {error}); no new ones were started")
        return StopSpawning(EndRun(EndKind.CRASH_LOOP, detail))
