"""Split printstreams: each child's stdout/stderr goes to its own file.

Files: ``<dir>/printstream_NNNN.out`` and ``.err`` (NNNN = optimizer id). A process child
redirects its file descriptors 1 and 2, so output of compiled code is caught too. Thread children
share the process's streams, so a router installed on ``sys.stdout``/``sys.stderr`` sends each
write to the file of the thread that made it (writes from other threads pass through).
"""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

__all__ = ("printstream_paths", "redirect_process_streams", "ThreadStreamRouter")


def printstream_paths(directory: Path, opt_id: int) -> tuple[Path, Path]:
    stem = Path(directory) / f"printstream_{opt_id:04d}"
    return stem.with_suffix(".out"), stem.with_suffix(".err")


def redirect_process_streams(directory: Path, opt_id: int) -> None:
    """In a child process: point fds 1/2 and sys.stdout/sys.stderr at this child's files."""
    out_path, err_path = printstream_paths(directory, opt_id)
    for fd, path, name in ((1, out_path, "stdout"), (2, err_path, "stderr")):
        getattr(sys, name).flush()
        f = open(path, "a", buffering=1)
        os.dup2(f.fileno(), fd)
        setattr(sys, name, f)


class _RoutingStream(io.TextIOBase):
    def __init__(self, fallback: TextIO, router: "ThreadStreamRouter", which: int):
        self.fallback = fallback
        self.router = router
        self.which = which

    def write(self, s: str) -> int:
        target = self.router.target(self.which)
        return (target or self.fallback).write(s)

    def flush(self) -> None:
        target = self.router.target(self.which)
        (target or self.fallback).flush()

    def fileno(self) -> int:
        return self.fallback.fileno()


class ThreadStreamRouter:
    """Routes sys.stdout/sys.stderr writes per thread while installed."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._files: dict[int, tuple[TextIO, TextIO]] = {}
        self._saved: tuple[TextIO, TextIO] | None = None

    def target(self, which: int) -> TextIO | None:
        files = self._files.get(threading.get_ident())
        return files[which] if files else None

    def install(self) -> None:
        with self._lock:
            if self._saved is None:
                self._saved = (sys.stdout, sys.stderr)
                sys.stdout = _RoutingStream(self._saved[0], self, 0)
                sys.stderr = _RoutingStream(self._saved[1], self, 1)

    def uninstall(self) -> None:
        with self._lock:
            if self._saved is not None:
                sys.stdout, sys.stderr = self._saved
                self._saved = None

    @contextmanager
    def route_current_thread(self, directory: Path, opt_id: int) -> Iterator[None]:
        out_path, err_path = printstream_paths(directory, opt_id)
        with open(out_path, "a", buffering=1) as out, open(err_path, "a", buffering=1) as err:
            self._files[threading.get_ident()] = (out, err)
            try:
                yield
            finally:
                del self._files[threading.get_ident()]
