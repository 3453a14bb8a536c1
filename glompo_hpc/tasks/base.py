"""BaseFunction: an optional base class for optimization tasks.

Any callable ``f(x) -> float`` is a valid task. Subclass BaseFunction to also offer
``detailed_call`` (extra values logged with each evaluation), ``headers`` (their names and types)
and ``checkpoint_save``/``checkpoint_load`` (to rebuild a task that cannot be pickled).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

__all__ = ("BaseFunction",)


class BaseFunction(ABC):
    """Base class for tasks."""

    @abstractmethod
    def __call__(self, x: Sequence[float]) -> float:
        """The value to minimize at ``x``."""

    def detailed_call(self, x: Sequence[float]) -> Sequence[Any]:
        """``(fx, *extras)``: the value and any extra quantities worth logging. Default: ``(fx,)``."""
        return (self(x),)

    def headers(self) -> dict[str, str] | None:
        """Names and numpy type strings of the extras of ``detailed_call``, in order; None if unnamed."""
        return None

    def checkpoint_save(self, path: str | Path) -> None:
        """Write files into the directory ``path`` from which ``checkpoint_load`` can rebuild the task."""
        raise NotImplementedError(f"{type(self).__name__} does not implement checkpoint_save")

    @classmethod
    def checkpoint_load(cls, path: str | Path) -> "BaseFunction":
        """Rebuild a task from the files ``checkpoint_save`` wrote in directory ``path``."""
        raise NotImplementedError(f"{cls.__name__} does not implement checkpoint_load")
