"""Backoff: the one sleep policy of every polling loop (MPI probes, rank hosts, timed waits).

A poller that finds nothing sleeps a little, then longer, doubling from ``min_sleep`` up to a cap,
and starts again from the shortest sleep as soon as something happens. A busy channel is thus
served with microsecond latency, and an idle one costs about ``1 / cap`` wake-ups a second. The
cap is read from the environment variable ``GLOMPO_HPC_POLL_MAX_SLEEP`` (seconds, default 0.005):
raise it to spare CPU on idle ranks of an oversubscribed node, lower it for latency.

Why not block in MPI: Open MPI's blocking receives busy-poll its progress engine (a full core per
waiting rank, ``mpi_yield_when_idle`` only adds ``sched_yield``), and a rank blocked in MPI cannot
run its signal handlers. Why 5 ms: a wake-up of an idle rank host costs some 100 µs of CPU on a
loaded node (bench/mpi_throughput), so at a 1 ms cap fifteen idle hosts took about half a core of
a two-core node; the host sleeps inside ``select`` on its children's pipes, so its children are
still served at once, and only orders from rank 0 wait up to the cap.
"""

from __future__ import annotations

import math
import time

from ..env_settings import env_float

__all__ = ("Backoff", "poll_max_sleep", "POLL_MAX_SLEEP_VAR", "DEFAULT_MAX_SLEEP")

POLL_MAX_SLEEP_VAR = "GLOMPO_HPC_POLL_MAX_SLEEP"
DEFAULT_MAX_SLEEP = 0.005  # s; 200 wake-ups a second when idle (see the module's docstring)
_MAX_ALLOWED = 1.0  # s; a longer cap would delay signal handling and stop orders past a second


def poll_max_sleep() -> float:
    """The sleep cap in seconds: ``GLOMPO_HPC_POLL_MAX_SLEEP`` if set, else 0.005.

    Raises:
        ConfigurationError: the variable is not a number in (0, 1].
    """
    return env_float(POLL_MAX_SLEEP_VAR, DEFAULT_MAX_SLEEP, maximum=_MAX_ALLOWED)


class Backoff:
    """Exponential sleep between empty polls, reset on progress.

    Args:
        max_sleep: The cap in seconds; None reads ``GLOMPO_HPC_POLL_MAX_SLEEP``.
        min_sleep: The first non-zero sleep; None means ``max_sleep / 1024``.

    The first sleep after a reset is zero (a bare yield of the GIL and CPU), since the next
    message often follows at once.
    """

    def __init__(self, max_sleep: float | None = None, min_sleep: float | None = None):
        self.max_sleep = poll_max_sleep() if max_sleep is None else float(max_sleep)
        self.min_sleep = self.max_sleep / 1024 if min_sleep is None else float(min_sleep)
        self._delay = 0.0

    def reset(self) -> None:
        """Something happened: the next sleep is the shortest again."""
        self._delay = 0.0

    def next_delay(self, limit: float = math.inf) -> float:
        """The next sleep's length (at most ``limit``) and advance the schedule, without sleeping.

        For loops that wait on something else with a timeout (``multiprocessing.connection.wait``).
        """
        delay = min(self._delay, max(limit, 0.0))
        self._delay = min(self.max_sleep, max(self.min_sleep, self._delay * 2))
        return delay

    def sleep(self, limit: float = math.inf) -> None:
        """Sleep the next delay, at most ``limit`` seconds."""
        time.sleep(self.next_delay(limit))
