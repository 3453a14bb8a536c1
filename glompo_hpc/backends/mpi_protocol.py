"""The MPI backend's private envelopes and tags: how rank 0 and the rank hosts talk.

The manager's vocabulary (core/messages.py) travels unchanged inside these envelopes; only the
MPI backend (mpi.py, rank 0) and its rank host (mpi_host.py) use them. Three tags, one per
channel, so each side knows what it is reading before it unpickles:

* ``ORDER`` rank 0 -> host: TaskData, StartChild, StartHelper, ToChild, KillChild, EndHelper,
  EndSession, Exit.
* ``RELAY`` host -> rank 0: a list whose items are ChildMessages (relayed from the host's
  children, in their order), SavedState (a child's StateSaved with the state's bytes) and the
  host's answers Hello, ChildKilled and SessionEnded. A host
  sends one list per loop turn, so a busy rank costs rank 0 one receive for many reports.
* ``BATCH`` leader host <-> helper host (``slots: ranks``, optimizers with workers > 1):
  BatchChunk and ChunkResult.

MPI keeps the order of messages between one sender and one receiver on a tag, so e.g. a
ChildKilled arrives after every report its child sent. No mpi4py import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from ..protocol import messages as msg

__all__ = ("Tag", "TaskData", "StartChild", "StartHelper", "ToChild", "KillChild", "EndHelper", "EndSession",
           "Exit", "Hello", "ChildKilled", "SessionEnded", "SavedState", "BatchChunk", "ChunkResult", "Outcome")

#: One evaluation's result as ObservedTask makes it: (fx, extras).
Outcome = tuple[float, tuple]


class Tag(IntEnum):
    ORDER = 11
    RELAY = 12
    BATCH = 13


# ---------------------------------------------------------------- rank 0 -> host (Tag.ORDER)

@dataclass(frozen=True)
class TaskData:
    """The task, dill-pickled once by rank 0 and sent once per rank and session; ``token`` names it."""

    token: int
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class StartChild:
    """Run a child optimizer here. ``spec_blob`` is the dill-pickled ChildSpec without its task.

    ``helpers`` are the ranks that evaluate parts of its ``function.batch`` calls (empty: none).
    """

    opt_id: int
    spec_blob: bytes = field(repr=False)
    task_token: int
    helpers: tuple[int, ...] = ()


@dataclass(frozen=True)
class StartHelper:
    """Evaluate batch parts for optimizer ``opt_id`` led by rank ``leader``, with task ``task_token``."""

    opt_id: int
    leader: int
    task_token: int
    detailed: bool


@dataclass(frozen=True)
class ToChild:
    """A manager message for child ``opt_id`` (Stop, Pause, Resume, SaveState, InjectIncumbent)."""

    opt_id: int
    message: msg.ManagerMessage


@dataclass(frozen=True)
class KillChild:
    """End child ``opt_id`` by force; answer with its last reports, then ChildKilled."""

    opt_id: int


@dataclass(frozen=True)
class EndHelper:
    """Optimizer ``opt_id`` has ended: stop evaluating for it."""

    opt_id: int


@dataclass(frozen=True)
class EndSession:
    """The manager's session is over: end every child and helper, forget the tasks, answer SessionEnded."""


@dataclass(frozen=True)
class Exit:
    """Leave the host loop: the program is ending on rank 0."""


# ---------------------------------------------------------------- host -> rank 0 (Tag.RELAY)

@dataclass(frozen=True)
class Hello:
    """A host is serving: where it runs and how many CPUs it offers (its slots under ``slots: cores``)."""

    rank: int
    host: str
    cpus: int
    pid: int


@dataclass(frozen=True)
class ChildKilled:
    """Answer to KillChild: the child is gone; its last reports came before this."""

    opt_id: int


@dataclass(frozen=True)
class SavedState:
    """A child's answer to SaveState(``path``) carrying the saved state itself.

    The child saves to a file local to its rank; its host reads the bytes and sends them here, and
    rank 0 writes them to ``path``. So the state reaches the checkpoint even where rank 0 would not
    (yet) see a file written on another node of a shared file system.
    """

    opt_id: int
    path: str
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class SessionEnded:
    """Answer to EndSession."""

    rank: int


# ---------------------------------------------------------------- host <-> host (Tag.BATCH)

@dataclass(frozen=True)
class BatchChunk:
    """Points ``xs`` (k, n) of batch ``seq`` of optimizer ``opt_id``, to evaluate on a helper rank."""

    opt_id: int
    seq: int
    xs: np.ndarray


@dataclass(frozen=True)
class ChunkResult:
    """A helper's outcomes for a BatchChunk, in order, or ``error`` (a traceback) if the task raised."""

    opt_id: int
    seq: int
    rank: int
    outcomes: list[Outcome] = field(default_factory=list)
    error: str = ""

    @classmethod
    def failed(cls, chunk: Any, rank: int, error: str) -> "ChunkResult":
        return cls(chunk.opt_id, chunk.seq, rank, [], error)
