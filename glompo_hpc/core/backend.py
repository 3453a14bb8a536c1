"""The Backend interface: how the manager starts children and exchanges messages with them.

A backend moves messages and starts/stops children; it makes no decision. The manager drives it
through six verbs: ``start_child``, ``send``, ``poll``, ``stop_child`` (or ``stop_children``
for many at once), ``join_child`` and ``close``. Every backend guarantees that each started
child ends with exactly one final message (OptimizerFinished or ChildFailed) in ``poll``: when a
child dies without sending one (killed, terminated), the backend makes a ChildFailed for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..protocol import messages as msg
from ..optimizers.base import BaseOptimizer

__all__ = ("Backend", "ChildSpec")


@dataclass
class ChildSpec:
    """Everything a child host needs to run one optimizer."""

    opt_id: int
    optimizer: BaseOptimizer
    task: Callable
    x0: np.ndarray
    bounds: np.ndarray
    is_log_detailed: bool = False
    printstream_dir: Path | None = None
    flush_seconds: float = 1.0


class Backend(ABC):
    """Transport between the manager and its children.

    Attributes:
        name: The ``backend`` setting that selects it.
        proc_backend: True if children are processes (they can be terminated by signal).
    """

    name: str = ""
    proc_backend: bool = False

    @abstractmethod
    def start_child(self, spec: ChildSpec) -> None:
        """Start a child hosting ``spec.optimizer``; returns at once."""

    @abstractmethod
    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        """Deliver a message to a live child; silently dropped if the child has ended."""

    @abstractmethod
    def poll(self, timeout: float) -> list[msg.ChildMessage]:
        """Every message waiting now; waits up to ``timeout`` s for the first one. Never blocks longer."""

    @abstractmethod
    def stop_child(self, opt_id: int) -> bool:
        """End a child by force. Returns False if this backend cannot (threads)."""

    def stop_children(self, opt_ids: Iterable[int]) -> dict[int, bool]:
        """End many children by force; returns ``stop_child``'s answer for each.

        A backend whose stop waits for an answer (a process's exit, a remote rank's confirmation)
        overrides this to order every end first and then wait once for all, so N children cost
        one wait, not N. This default stops them one at a time.
        """
        return {opt_id: self.stop_child(opt_id) for opt_id in opt_ids}

    @abstractmethod
    def join_child(self, opt_id: int, timeout: float | None) -> bool:
        """Wait up to ``timeout`` s (None: forever) for a child to end; True if it has."""

    @abstractmethod
    def is_alive(self, opt_id: int) -> bool:
        """True while the child's thread/process runs."""

    @abstractmethod
    def close(self) -> None:
        """Release transport resources. Children must already be ended or abandoned. Idempotent."""
