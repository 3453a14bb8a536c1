"""SplitOptimizerLogs: one log file per optimizer, GloMPO's ``glompo.common.logging`` filter.

Every child optimizer logs through its own logger, ``glompo_hpc.optimizers.opt<id>``, below
``glompo_hpc.optimizers``. Put this filter on a handler of that logger and each optimizer's
records also go to ``<filepath>/optimizer_<id>.log``::

    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.FileHandler("all_optimizers.log")
    handler.addFilter(SplitOptimizerLogs("optimizer_logs", propagate=True, formatter=formatter))
    handler.setFormatter(formatter)
    logging.getLogger("glompo_hpc.optimizers").addHandler(handler)

The filter runs where the record is made: in the manager's process (threads backend) or in the
child's (processes backends; a forked child inherits the handler). Under MPI a child logs on its
rank, so configure the handler on every rank, before ``mpi_workers``, and give a ``filepath`` on
a file system every rank shares.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

__all__ = ("SplitOptimizerLogs",)

_OPTIMIZER_LOGGER = re.compile(r"^glompo_hpc\.optimizers\.opt(\d+)$")


class SplitOptimizerLogs(logging.Filter):
    """Copies each optimizer's log records into a file of its own, ``optimizer_<id>.log``.

    Records from any other logger pass through unchanged. Files are appended to, so a run
    resumed from a checkpoint continues its optimizers' files.

    Args:
        filepath: Directory of the per-optimizer files (created if needed); empty: the current directory.
        propagate: True: optimizer records also pass on to the handler this filter is on (one
            file with every optimizer, plus one per optimizer). False: they go only to their own file.
        formatter: Format of the per-optimizer files (None: the message alone).
    """

    def __init__(self, filepath: str | Path = "", propagate: bool = False,
                 formatter: logging.Formatter | None = None):
        super().__init__()
        self.filepath = Path(filepath) if filepath else Path.cwd()
        self.filepath.mkdir(parents=True, exist_ok=True)
        self.propagate = bool(propagate)
        self.formatter = formatter if formatter is not None else logging.Formatter("%(message)s")
        self._handlers: dict[int, logging.FileHandler] = {}
        self._lock = threading.Lock()  # the threads backend's optimizers log at once

    def filter(self, record: logging.LogRecord) -> bool:
        match = _OPTIMIZER_LOGGER.match(record.name)
        if match is None:
            return True
        self._handler(int(match.group(1))).handle(record)
        return self.propagate

    def _handler(self, opt_id: int) -> logging.FileHandler:
        with self._lock:
            handler = self._handlers.get(opt_id)
            if handler is None:
                handler = logging.FileHandler(self.filepath / f"optimizer_{opt_id}.log", mode="a", delay=True)
                handler.setFormatter(self.formatter)
                self._handlers[opt_id] = handler
            return handler

    def close(self) -> None:
        """Close every per-optimizer file (they reopen if more records come)."""
        with self._lock:
            for handler in self._handlers.values():
                handler.close()
            self._handlers.clear()
