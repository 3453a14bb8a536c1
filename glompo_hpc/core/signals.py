"""Signals the manager acts on: handlers only set a flag; the manager loop reads it each turn.

Once a run's outcome is decided (its loop has ended: exit conditions met, or a signal already
acted on), a time-limit or termination signal must not change it. The loop then stops reading
the flag and :class:`SignalFlag` logs such signals as ignored. A program that ends with the run
(the command line, the submitit callable) asks, with :func:`late_signals_ignored`, that USR2 and
TERM stay ignored after ``start_manager()`` returns, up to its exit; callers of the Python API get
their own handlers back as before.

For tests, ``GLOMPO_HPC_SIGNAL_AT=STAGE:SIGNAME`` makes the process send itself the signal when
it reaches that stage of its shut-down (:data:`STAGES`), which makes the end-of-run race
deterministic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from types import FrameType
from typing import Iterator

__all__ = ("SignalFlag", "LATE_SIGNALS", "ignore_late_signal", "late_signals_ignored", "signal_hook", "STAGES",
           "SIGNAL_AT_VARIABLE")

logger = logging.getLogger("glompo_hpc.manager")

WATCHED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))
#: The scheduler's signals that may come after a run's end (time limit, forwarded by mpirun, preemption).
LATE_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR2") if hasattr(signal, name))
SIGNAL_AT_VARIABLE = "GLOMPO_HPC_SIGNAL_AT"
#: Stages at which the test hook can deliver a signal: a new run's start (its id written, the
#: earlier run's checkpoints deleted, its results purged), each checkpoint, and the shut-down
#: (outcome decided, outputs being written, result printed, program exiting, worker rank done).
STAGES = ("run-id-written", "checkpoints-deleted", "purged", "checkpoint-written", "decided", "outputs", "printed",
          "exiting", "worker-end")

_late_signals_ignored = False
_hook_fired = False


def ignore_late_signal(signum: int, frame: FrameType | None) -> None:
    """A handler that logs a signal arriving after the run's outcome was decided, and ignores it.
    A Python handler rather than SIG_IGN, which programs started later would inherit."""
    logger.warning("Ignoring %s: the run's outcome is already decided", signal.Signals(signum).name)


@contextlib.contextmanager
def late_signals_ignored() -> Iterator[None]:
    """While the block runs, a manager that ends leaves :func:`ignore_late_signal` installed for
    USR2 and TERM instead of the previous handlers (the caller restores its own when it exits)."""
    global _late_signals_ignored
    before, _late_signals_ignored = _late_signals_ignored, True
    try:
        yield
    finally:
        _late_signals_ignored = before


def signal_hook(stage: str) -> None:
    """Test hook: send this process the signal ``GLOMPO_HPC_SIGNAL_AT`` names for ``stage``, the
    first time the process reaches that stage (a stage such as a checkpoint can recur)."""
    global _hook_fired
    wanted = os.environ.get(SIGNAL_AT_VARIABLE, "")
    if not wanted or _hook_fired:
        return
    at, _, name = wanted.partition(":")
    if at == stage:
        _hook_fired = True
        logger.warning("Test hook %s=%s: sending %s at stage %r", SIGNAL_AT_VARIABLE, wanted, name, stage)
        os.kill(os.getpid(), signal.Signals[name])


class SignalFlag:
    """Context manager installing flag-setting handlers for SIGINT, SIGTERM and SIGUSR2.

    Installing handlers is only possible from the main thread; elsewhere (a manager run from a
    worker thread) it does nothing and ``received`` stays None.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.decided = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.decided:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # Ctrl-C while the outputs are written: the user insists
            ignore_late_signal(signum, frame)
        elif self.received is None:
            self.received = signal.Signals(signum)
        elif signum == signal.SIGINT:
            # a second Ctrl-C while shutting down: the user insists
            raise KeyboardInterrupt

    def outcome_decided(self) -> None:
        """The run's loop has ended: from now on its outcome does not change (see the module)."""
        self.decided = True
        signal_hook("decided")

    def __enter__(self) -> "SignalFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in WATCHED:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            if _late_signals_ignored and sig in LATE_SIGNALS:
                handler = ignore_late_signal
            signal.signal(sig, handler)
        self._previous.clear()
