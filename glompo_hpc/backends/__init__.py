"""Backends: the transports between the manager and its children, chosen by one factory."""

from __future__ import annotations

import os

from ..errors import ConfigurationError
from .base import Backend, ChildSpec

__all__ = ("Backend", "ChildSpec", "make_backend", "default_max_jobs", "BACKENDS")

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


def default_max_jobs(name: str) -> int:
    """Slots when ``max_jobs`` is not given: one less than the CPUs this process may use (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, n - 1)
