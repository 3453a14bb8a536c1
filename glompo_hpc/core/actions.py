"""What the run's policies decide, as plain records the session applies in one place.

Policies (stoppers, exit conditions, checkpoint timing, intervention files, status timing, the
crash-loop guard) read the settings and the state and return these; only ``RunSession.apply``
acts on them, so no policy holds a session, a backend or a child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .state import EndKind

__all__ = ("Action", "StartOptimizer", "StopOptimizer", "TakeCheckpoint", "EndRun", "StopSpawning")


@dataclass(frozen=True)
class StartOptimizer:
    """Start a new optimizer from ``option`` (an ``OptimizerOption`` of the selector)."""

    option: Any


@dataclass(frozen=True)
class StopOptimizer:
    """Ask optimizer ``opt_id`` to stop (and count it as stopped by the manager)."""

    opt_id: int
    reason: str


@dataclass(frozen=True)
class TakeCheckpoint:
    """Take a checkpoint now; ``then_stop``: the children are not resumed after it (the run ends)."""

    then_stop: bool = False


@dataclass(frozen=True)
class EndRun:
    """End the run with this outcome."""

    kind: EndKind
    detail: str


@dataclass(frozen=True)
class StopSpawning:
    """Start no new optimizers; ``outcome``, if given, becomes the run's outcome once none is alive."""

    outcome: EndRun | None = None


Action = StartOptimizer | StopOptimizer | TakeCheckpoint | EndRun | StopSpawning
