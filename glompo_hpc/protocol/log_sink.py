"""LogSink: what receives the optimization log as it grows (the HDF5 writer, outputs/hdf5_log.py).

Three methods are required; the others have no-op defaults, so ``OptimizerLog`` and the outputs
call every method of any sink without asking whether it has it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .optlog import OptimizerRecord

__all__ = ("LogSink",)


class LogSink(ABC):
    """Receives the log's optimizers, evaluation batches and messages as they arrive."""

    @abstractmethod
    def add_optimizer(self, record: OptimizerRecord) -> None:
        """A new optimizer's metadata."""

    @abstractmethod
    def append(self, opt_id: int, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray,
               extras: np.ndarray | None) -> None:
        """A batch of evaluations of ``opt_id``."""

    @abstractmethod
    def update_optimizer(self, record: OptimizerRecord) -> None:
        """An optimizer's metadata changed (its end, most often)."""

    def add_message(self, opt_id: int, text: str) -> None:
        """A message about an optimizer (its traceback, why it was stopped); ignored by default."""

    def flush(self, final: bool = False) -> bool:
        """Make everything received so far durable; True if it is."""
        return True

    def status(self) -> dict[str, Any]:
        """Where the sink stands (path, complete, problem, rows); empty by default."""
        return {}

    def close(self) -> dict[str, Any]:
        """Flush and release the sink; returns its final status."""
        return self.status()
