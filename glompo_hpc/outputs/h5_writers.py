"""The HDF5 log writers open in this process, kept safe across ``fork`` and closed at exit.

The processes backend forks children while the manager's writer may be flushing. Holding every
writer's I/O lock across the fork means no child is born in the middle of a flush (with HDF5
state half-changed), and a child's copy of a writer is disabled so it never writes the parent's
file. At interpreter exit every writer still open is closed, so its last rows reach the file.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any, Protocol

import h5py  # noqa: F401 (before our atexit hook: exit handlers run in reverse, so ours runs before h5py's)

__all__ = ("LiveWriter", "track", "forget")


class LiveWriter(Protocol):
    """What this module needs of a writer."""

    def hold_io(self) -> bool:
        """Wait for a flush in progress and keep the next from starting; False if it hung."""

    def release_io(self) -> None:
        """Let flushes start again (after :meth:`hold_io` returned True)."""

    def disable_in_child(self) -> None:
        """In a forked child: never write (the file is the parent's)."""

    def close(self) -> Any:
        """Flush and close."""


_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()
_HELD_AT_FORK: list[LiveWriter] = []


def track(writer: LiveWriter) -> None:
    """Keep ``writer`` safe across forks and close it at exit, until :func:`forget`."""
    _LIVE.add(writer)


def forget(writer: LiveWriter) -> None:
    _LIVE.discard(writer)


def _before_fork() -> None:
    for writer in list(_LIVE):
        if writer.hold_io():
            _HELD_AT_FORK.append(writer)


def _after_fork_parent() -> None:
    while _HELD_AT_FORK:
        _HELD_AT_FORK.pop().release_io()


def _after_fork_child() -> None:
    _after_fork_parent()
    for writer in list(_LIVE):
        writer.disable_in_child()


def _close_all_at_exit() -> None:
    for writer in list(_LIVE):
        try:
            writer.close()
        except Exception:  # at exit nothing is left to report to; the next writer still closes
            pass


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
atexit.register(_close_all_at_exit)
