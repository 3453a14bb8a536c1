"""The MPI transport: how every glompo_hpc rank sends and receives, without ever blocking in MPI.

Rank 0 (mpi_world.py, mpi.py) and the rank hosts (mpi_host.py, mpi_batch_router.py) both build
on this module and on nothing of each other's:

* :class:`Outbox`: non-blocking sends (``isend``) kept until they complete. No side ever blocks
  in a send: a large message (a task, a big report) needs its receiver to post a receive, and
  two ranks each blocked sending to the other would deadlock.
* :class:`Inbox`: the probe loop, ``improbe`` on one tag (or any), yielding every message
  waiting now; with :class:`~.backoff.Backoff` between empty probes (:meth:`Inbox.wait_until`),
  a wait never blocks in MPI, so signal handlers run within milliseconds.
* :func:`wait_request`: wait for one request (a collective such as ``Idup``) by polling.

Lowercase (pickle) mpi4py calls throughout.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator

from mpi4py import MPI

from .backoff import Backoff

__all__ = ("Outbox", "Inbox", "wait_request")


class Outbox:
    """Non-blocking sends (``isend``) kept until they complete.

    Args:
        comm: The communicator to send on.
    """

    def __init__(self, comm: MPI.Comm):
        self.comm = comm
        self._requests: list[MPI.Request] = []

    def send(self, obj: Any, dest: int, tag: int) -> None:
        self._requests.append(self.comm.isend(obj, dest=dest, tag=int(tag)))

    def progress(self) -> None:
        """Forget the sends that have completed."""
        if self._requests:
            self._requests = [r for r in self._requests if not r.Test()]

    @property
    def pending(self) -> int:
        return len(self._requests)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every send to complete; True if they have."""
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while True:
            self.progress()
            if not self._requests or time.monotonic() >= deadline:
                return not self._requests
            backoff.sleep(deadline - time.monotonic())


class Inbox:
    """The receiving side: every message waiting now on ``tag``, from any source.

    Args:
        comm: The communicator to receive on.
        tag: The tag to read (default: any tag).
        outbox: This rank's Outbox, advanced while :meth:`wait_until` waits (its sends may be
            what the awaited answers depend on).
    """

    def __init__(self, comm: MPI.Comm, tag: int = MPI.ANY_TAG, outbox: Outbox | None = None):
        self.comm = comm
        self.tag = int(tag)
        self.outbox = outbox
        self._status = MPI.Status()

    def incoming(self) -> Iterator[Any]:
        """Receive and yield each message waiting now, in arrival order; ends when none is waiting."""
        while (message := self.comm.improbe(MPI.ANY_SOURCE, self.tag, self._status)) is not None:
            yield message.recv()

    def wait_until(self, done: Callable[[], bool], timeout: float | None, take: Callable[[Any], None]) -> bool:
        """Pass each message to ``take`` until ``done()`` or ``timeout`` s (None: forever); returns done()."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while not done():
            if time.monotonic() >= deadline:
                return False
            got = False
            for item in self.incoming():
                got = True
                take(item)
            if self.outbox is not None:
                self.outbox.progress()
            if got:
                backoff.reset()
            else:
                backoff.sleep(deadline - time.monotonic())
        return True


def wait_request(request: MPI.Request) -> None:
    """Wait for a request by polling, so signal handlers run meanwhile."""
    backoff = Backoff()
    while not request.Test():
        backoff.sleep()
