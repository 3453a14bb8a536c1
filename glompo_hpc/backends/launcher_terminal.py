"""Ctrl-C under an MPI launcher: rank 0 takes the terminal's foreground, as a job-control shell does.

A terminal sends Ctrl-C's SIGINT to its foreground process group. Under ``mpirun`` in a terminal
that group is the launcher's, and Open MPI's ranks each run in a process group of their own, so
only ``mpirun`` sees the Ctrl-C: it then sends every rank SIGCONT, SIGTERM about 0.25 s later and
SIGKILL right after (no setting changes this), which leaves rank 0 no time for a checkpoint.

So rank 0, while it runs the job, makes its own process group the terminal's foreground group
(``tcsetpgrp``): a Ctrl-C then reaches rank 0 alone, which stops the run as on one node
(checkpoint, result, workers told to end) and exits; the launcher sees its ranks end normally.
The terminal goes back to the group that had it when rank 0 is done, also on an error or
``sys.exit`` (``finally`` and ``atexit``); if rank 0 is killed, the shell takes its terminal back
when the job ends, as it does after any job.

Rank 0 takes the terminal only when all of these hold: a launcher started it as rank 0; this
process has a controlling terminal (a rank on a remote node has none); the terminal's foreground
group is the launcher's (not when ``mpirun ... &`` runs in the background); rank 0 is not already
in that group (a launcher that keeps its ranks in its own group passes Ctrl-C on by itself).

Ctrl-Z (SIGTSTP) would stop only rank 0 and leave the terminal with a stopped group the shell
does not know of; rank 0 instead gives the terminal back and passes the SIGTSTP to the launcher,
which stops every rank as it does without this module (a later Ctrl-C then reaches the launcher).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from typing import Any, Iterator

from .mpi_env import launcher_rank

__all__ = ("TerminalClaim", "rank_0_takes_terminal", "claim_terminal")

logger = logging.getLogger("glompo_hpc.backends.mpi")


@contextlib.contextmanager
def _sigttou_blocked() -> Iterator[None]:
    """``tcsetpgrp`` from a background group sends the caller SIGTTOU (stopping it) unless blocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class TerminalClaim:
    """The terminal's foreground taken from the launcher's process group; :meth:`give_back` returns it.

    Args:
        tty: An open descriptor of this process's controlling terminal (closed by ``give_back``).
        launcher_group: The foreground process group before the claim (the launcher's).
        launcher_pid: The launcher's process (it receives a Ctrl-Z passed on).
    """

    def __init__(self, tty: int, launcher_group: int, launcher_pid: int):
        self.tty = tty
        self.launcher_group = launcher_group
        self.launcher_pid = launcher_pid
        self.owner = os.getpid()
        self._previous_tstp: Any = None

    def take(self) -> None:
        with _sigttou_blocked():
            os.tcsetpgrp(self.tty, os.getpgrp())
        if _in_main_thread():
            self._previous_tstp = signal.signal(signal.SIGTSTP, self._pass_on_suspend)
        logger.info("Rank 0 took the terminal's foreground from the launcher's process group %d: Ctrl-C "
                    "stops the run keeping everything", self.launcher_group)

    def give_back(self) -> None:
        """Return the foreground to the launcher's group if this process still holds it; idempotent."""
        if self.tty < 0 or os.getpid() != self.owner:  # a forked child inherits the object, not the claim
            return
        try:
            if os.tcgetpgrp(self.tty) == os.getpgrp():
                with _sigttou_blocked():
                    os.tcsetpgrp(self.tty, self.launcher_group)
        except OSError:  # the launcher's group is gone (the job is ending): the shell takes the terminal back
            pass
        finally:
            os.close(self.tty)
            self.tty = -1
        if self._previous_tstp is not None and _in_main_thread():
            signal.signal(signal.SIGTSTP, self._previous_tstp)
            self._previous_tstp = None

    def _pass_on_suspend(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.owner:
            return
        self.give_back()
        logger.warning("Ctrl-Z: passed on to the MPI launcher (it stops every rank; Ctrl-C then ends the run "
                       "without a checkpoint)")
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.launcher_pid, signal.SIGTSTP)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def claim_terminal() -> TerminalClaim | None:
    """Take the terminal's foreground for this process's group if the conditions of the module hold;
    None (and nothing changed) otherwise."""
    if launcher_rank() != 0 or not hasattr(os, "tcsetpgrp"):
        return None
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:  # no controlling terminal: a batch job, a remote node, a daemonised launcher
        return None
    try:
        foreground = os.tcgetpgrp(tty)
        launcher_pid = os.getppid()
        if foreground != os.getpgid(launcher_pid) or foreground == os.getpgrp():
            os.close(tty)
            return None
        claim = TerminalClaim(tty, foreground, launcher_pid)
        claim.take()
        return claim
    except OSError as e:
        logger.debug("Rank 0 leaves the terminal to the launcher: %s", e)
        os.close(tty)
        return None


@contextlib.contextmanager
def rank_0_takes_terminal() -> Iterator[bool]:
    """While the block runs, Ctrl-C in the terminal reaches rank 0 only (see the module); yields
    whether the terminal was taken. A no-op on other ranks and outside a launcher's foreground job."""
    claim = claim_terminal()
    if claim is None:
        yield False
        return
    atexit.register(claim.give_back)  # also on an exit that skips the finally (os._exit excepted)
    try:
        yield True
    finally:
        claim.give_back()
        atexit.unregister(claim.give_back)
