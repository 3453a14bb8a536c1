"""The signal dispositions of every child process: one function, called by each backend's process entry.

A child process is a process backend's child optimizer, or on an MPI rank a child optimizer or a
helper rank's evaluator (both forked by the rank host). The manager alone decides how children
end: Ctrl-C in a terminal reaches the whole process group, and the manager then sends Stop;
SIGUSR2 (the walltime guard's) is the manager's cue to checkpoint, not the children's; SIGTERM
keeps its default so ``terminate()`` ends a hung child (a rank host ignores it and its forked
children would inherit that).
"""

from __future__ import annotations

import signal

__all__ = ("CHILD_SIGNAL_DISPOSITIONS", "set_child_signal_dispositions")

#: Signal -> disposition in every child process.
CHILD_SIGNAL_DISPOSITIONS: dict[signal.Signals, signal.Handlers] = {
    signal.SIGINT: signal.SIG_IGN,
    signal.SIGTERM: signal.SIG_DFL,
    **({signal.SIGUSR2: signal.SIG_IGN} if hasattr(signal, "SIGUSR2") else {}),
}


def set_child_signal_dispositions() -> None:
    """Give this (child) process :data:`CHILD_SIGNAL_DISPOSITIONS`; call first thing in its entry."""
    for sig, disposition in CHILD_SIGNAL_DISPOSITIONS.items():
        signal.signal(sig, disposition)
