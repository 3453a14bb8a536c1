"""Results: what an optimizer returns and what the manager returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

__all__ = ("MinimizeResult", "Result")


@dataclass
class MinimizeResult:
    """What a child optimizer's ``minimize`` returns.

    Attributes:
        success: True if the optimizer converged by its own criteria.
        x: Best parameters it found (None if it made no evaluation).
        fx: Function value at ``x`` (inf if none).
        stats: Free-form statistics (iterations, evaluations, ...).
        origin: Who produced the result (filled by the manager: ``opt_id``, ``type``).
    """

    success: bool = False
    x: np.ndarray | None = None
    fx: float = float("inf")
    stats: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """The manager's answer: the best point seen by any child.

    Attributes:
        x: Best parameters found, or None when no finite value was seen.
        fx: Best function value (inf when none).
        stats: Run statistics: evaluations, optimizers started/stopped/converged, time, exit reason.
        origin: The optimizer that found it: ``{'opt_id': int, 'type': str}``.
    """

    x: np.ndarray | None = None
    fx: float = float("inf")
    stats: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        """``x, fx, stats, origin = result``, as with GloMPO's NamedTuple."""
        return iter((self.x, self.fx, self.stats, self.origin))
