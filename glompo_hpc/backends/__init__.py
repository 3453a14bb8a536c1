"""Backends: the transports between the manager and its children, chosen by one factory."""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Backend, ChildSpec

__all__ = ("Backend", "ChildSpec", "make_backend", "BACKENDS")

BACKENDS = ("threads", "processes", "processes_forced")


def make_backend(name: str) -> Backend:
    """The backend for a ``backend`` setting."""
    if name == "threads":
        from .threads import ThreadsBackend
        return ThreadsBackend()
    if name in ("processes", "processes_forced"):
        from .processes import ProcessesBackend
        return ProcessesBackend(forced=name == "processes_forced")
    raise ConfigurationError(f"backend must be one of {BACKENDS}, got {name!r}")
