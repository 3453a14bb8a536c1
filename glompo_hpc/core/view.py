"""The documented GloMPO attribute names, read from a run's Settings and RunState records.

``GloMPOManager`` and ``RunView`` both expose every field of the two records under its own name
(plus GloMPO's older names in ``ALIASES``), generated here from the records' fields so the two
lists never drift. Components (selectors, generators, stoppers' callers, exit conditions) receive
a ``RunView``: they read the run, they cannot change it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..protocol.paths import RunPaths
from .settings import SETTINGS_FIELDS, Settings
from .state import STATE_FIELDS, RunState

__all__ = ("ALIASES", "RunView", "expose_records")

#: GloMPO's documented attribute name -> (record, field) under which glompo_hpc keeps it.
ALIASES: dict[str, tuple[str, str]] = {
    "share_best_solutions": ("settings", "incumbent_sharing"),
    "last_iter_checkpoint": ("state", "last_checkpoint_eval"),
    "last_time_checkpoint": ("state", "last_checkpoint_time"),
}


def _field(record: str, name: str, writable: bool) -> property:
    def read(self) -> Any:
        return getattr(getattr(self, record), name)

    def write(self, value: Any) -> None:
        setattr(getattr(self, record), name, value)

    return property(read, write if writable else None, doc=f"``{record}.{name}``")


def expose_records(cls: type, writable_state: bool) -> type:
    """Add a property to ``cls`` for every Settings and RunState field and every alias."""
    for name in SETTINGS_FIELDS:
        setattr(cls, name, _field("settings", name, writable=False))
    for name in STATE_FIELDS:
        setattr(cls, name, _field("state", name, writable=writable_state))
    for alias, (record, name) in ALIASES.items():
        setattr(cls, alias, _field(record, name, writable=False))
    return cls


class RunView:
    """A read-only view of a run, for the components that decide from it."""

    __slots__ = ("settings", "state", "task", "logger")

    def __init__(self, settings: Settings, state: RunState, task: Any, logger: logging.Logger):
        self.settings = settings
        self.state = state
        self.task = task
        self.logger = logger

    @property
    def exit_reason(self) -> str:
        return self.state.exit_reason

    @property
    def paths(self) -> RunPaths:
        return self.settings.paths


expose_records(RunView, writable_state=False)
