"""The run's state as one explicit record, and how a run ends.

``RunState`` holds everything that changes while a run goes and survives a checkpoint: the
counters, the incumbent, the sessions, the spawn state, the checkpoint records, the policy timers
and the end record. Nothing else of the manager is saved (the settings are their own record, see
``settings.py``); a new field here is a deliberate change to the checkpoint format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.optlog import OptimizerLog
from ..protocol.result import Result

if TYPE_CHECKING:  # run_identity reads checkpoint files, whose module needs this one
    from .run_identity import RunIdentity

__all__ = ("STATE_FORMAT", "EndKind", "EndRecord", "RunState", "STATE_FIELDS")

#: Version of the checkpointed state record. 1: main up to b80b930 pickled the manager's
#: ``__dict__`` (still read, see ``snapshot.py``); 2: the RunState and Settings records. Version 2
#: records written before ``run_identity`` existed load with it None (a run without identity).
STATE_FORMAT = 2


class EndKind(enum.Enum):
    """Why a run (or a session of it) ended. The text users see is the record's ``detail``."""

    EXIT_CONDITIONS = "exit_conditions"  # the exit conditions were met
    NO_OPTIMIZERS = "no_optimizers"  # none alive and spawning is stopped
    CRASH_LOOP = "crash_loop"  # optimizers kept crashing; spawning stopped, then none alive
    INTERVENTION = "intervention"  # an EXIT file
    INTERRUPTED = "interrupted"  # SIGINT, SIGTERM or SIGUSR2
    MANAGER_CRASHED = "manager_crashed"  # an exception in the manager itself


@dataclass(frozen=True)
class EndRecord:
    """An outcome: its kind, for code to branch on, and the detail text users read."""

    kind: EndKind
    detail: str


@dataclass
class RunState:
    """Everything of a run that changes as it goes and is saved in its checkpoints."""

    # evaluations, optimizers started / converged, stopper evaluations
    f_counter: int = 0
    o_counter: int = 0
    conv_counter: int = 0
    stopcheck_counter: int = 0
    # which run this is (None: continued from a checkpoint older than run ids; see run_identity.py)
    run_identity: RunIdentity | None = None
    # the incumbent and every evaluation
    result: Result = field(default_factory=Result)
    opt_log: OptimizerLog | None = None
    # sessions (one per start_manager() call, across checkpoints)
    t_start: float | None = None
    t_end: float | None = None
    t_used: float = 0.0
    dt_starts: list[datetime] = field(default_factory=list)
    dt_ends: list[datetime] = field(default_factory=list)
    # spawning and stopping
    spawning_opts: bool = True
    last_opt_spawn: tuple[int, int] = (0, 0)
    opt_crashed: bool = False
    stopped_opts: dict[int, float] = field(default_factory=dict)
    spawn_stop: EndRecord | None = None  # why spawning stopped, when it is the run's outcome (crash loop)
    # checkpoints
    last_checkpoint_eval: int = 0
    last_checkpoint_time: float = 0.0
    checkpoint_history: set[str] = field(default_factory=set)
    checkpoint_files: list[str] = field(default_factory=list)  # still on disk, oldest first (keep_past)
    checkpoint_log: list[dict] = field(default_factory=list)  # name, f_counter, optimizers, seconds, bytes
    exit_checkpoint: Path | None = None  # the checkpoint taken when a signal ended the session
    # policy timers
    last_stopcheck: int = 0
    last_status: float = 0.0
    # status histories
    cpu_history: list[float] = field(default_factory=list)
    mem_history: list[float] = field(default_factory=list)
    load_history: list[tuple[float, float, float]] = field(default_factory=list)
    # the end
    converged: bool = False
    end: EndRecord | None = None
    interrupted: str | None = None

    @property
    def exit_reason(self) -> str:
        return self.end.detail if self.end is not None else ""

    def finish(self, kind: EndKind, detail: str) -> None:
        """Record the run's outcome; the loop stops at its next turn."""
        self.converged = True
        self.end = EndRecord(kind, detail)

    def as_record(self) -> dict[str, Any]:
        """The fields, by name, for a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RunState))
