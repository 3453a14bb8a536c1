"""Where a run stands, read from its manager: running or ended, how it ended, the HDF5 log's status.

Shared by the HDF5 log's root attributes (``outputs/__init__``) and the YAML summary
(``outputs/summary``); kept apart so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from ..core.state import EndKind

__all__ = ("in_session", "run_state", "log_status")


def in_session(manager: Any) -> bool:
    """True while a session runs and has not ended yet (a manager loaded from a checkpoint is not)."""
    m = manager
    return m.is_running and m.t_start is not None and (m.t_end is None or m.t_end < m.t_start)


def run_state(manager: Any, final: bool) -> str:
    if not final:
        return "running"
    if manager.interrupted:
        return "interrupted"
    end = manager.state.end
    if end is not None and end.kind is EndKind.MANAGER_CRASHED:
        return "crashed"
    return "finished" if manager.converged else "ended"


def log_status(manager: Any) -> dict[str, Any]:
    """Where the HDF5 log stands: path, complete, problem, rows (empty below level 3)."""
    log = manager.opt_log
    if log is None or manager.summary_files < 3:
        return {}
    sink = log.sink
    if sink is not None:
        return sink.status()
    return dict(log.sink_status)
