"""The one message vocabulary that every backend carries.

Children talk to the manager with the ``ChildMessage`` classes; the manager talks to children
with the ``ManagerMessage`` classes. Backends move these objects and never look inside them,
except the MPI backend, which maps them to tags privately. Results travel per iteration (a
batch of evaluations), never per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = (
    "ChildMessage", "IterationReport", "OptimizerFinished", "ChildFailed", "ChildPaused", "StateSaved",
    "ManagerMessage", "Stop", "Pause", "Resume", "SaveState", "InjectIncumbent",
)


# ---------------------------------------------------------------- child -> manager

@dataclass(frozen=True)
class ChildMessage:
    opt_id: int


@dataclass(frozen=True)
class IterationReport(ChildMessage):
    """A batch of evaluations made by one optimizer since its previous report.

    ``x`` is (k, n_parms), ``fx`` is (k,), ``extras`` is (k, m) object array or None. The manager
    gives the rows their global call ids in the order it receives them.
    """

    x: np.ndarray
    fx: np.ndarray
    extras: np.ndarray | None = None
    iteration: int = 0


@dataclass(frozen=True)
class OptimizerFinished(ChildMessage):
    """The optimizer's ``minimize`` returned. ``stopped`` is True if it ended on a manager Stop."""

    success: bool
    x: Any
    fx: float
    stats: dict
    stopped: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ChildFailed(ChildMessage):
    """The optimizer raised. The traceback is text so it crosses any transport."""

    error: str
    traceback: str
    host: str = ""
    where: str = ""


@dataclass(frozen=True)
class ChildPaused(ChildMessage):
    """The child honoured a Pause: it is between iterations and waits for Resume."""


@dataclass(frozen=True)
class StateSaved(ChildMessage):
    """Answer to SaveState: the optimizer's state is in ``path`` (or ``error`` says why not)."""

    path: str
    error: str = ""


# ---------------------------------------------------------------- manager -> child

@dataclass(frozen=True)
class ManagerMessage:
    pass


@dataclass(frozen=True)
class Stop(ManagerMessage):
    reason: str = "GloMPO termination"


@dataclass(frozen=True)
class Pause(ManagerMessage):
    pass


@dataclass(frozen=True)
class Resume(ManagerMessage):
    pass


@dataclass(frozen=True)
class SaveState(ManagerMessage):
    path: str


@dataclass(frozen=True)
class InjectIncumbent(ManagerMessage):
    x: np.ndarray
    fx: float
