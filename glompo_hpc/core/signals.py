"""Signals the manager acts on: handlers only set a flag; the manager loop reads it each turn."""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ("SignalFlag",)

WATCHED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))


class SignalFlag:
    """Context manager installing flag-setting handlers for SIGINT, SIGTERM and SIGUSR2.

    Installing handlers is only possible from the main thread; elsewhere (a manager run from a
    worker thread) it does nothing and ``received`` stays None.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        elif signum == signal.SIGINT:
            # a second Ctrl-C while shutting down: the user insists
            raise KeyboardInterrupt

    def __enter__(self) -> "SignalFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in WATCHED:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
