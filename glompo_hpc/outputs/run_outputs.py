"""The run's output files as the manager asks for them (``core.plugins.RunOutputs``), registered
on import. The package's ``__init__`` names this module as a built-in provider; the manager never
imports the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.plugins import RunOutputs, register_outputs
from ..protocol.log_sink import LogSink
from . import open_log_sink, write_outputs
from .read_log import end_counts
from .summary import write_summary

__all__ = ("FileOutputs",)


class FileOutputs(RunOutputs):
    """The files of docs/outputs.md: HDF5 log, YAML summary, plots (by ``summary_files`` level)."""

    def open_log_sink(self, manager: Any) -> LogSink | None:
        return open_log_sink(manager)

    def write_outputs(self, manager: Any) -> None:
        write_outputs(manager)

    def write_summary(self, manager: Any, path: Path) -> None:
        write_summary(manager, path)

    def end_counts(self, records: Any) -> dict[str, int]:
        return end_counts(records)


register_outputs(FileOutputs())
