"""The MPI world of a glompo_hpc program: rank 0 manages, every other rank serves as a rank host.

:func:`mpi_workers` is the entry for both the CLI and users' own scripts run under ``mpirun``.
Like mpi4py's ``MPICommExecutor``, rank 0 gets the go-ahead (True) and builds the manager inside
the ``with`` block, while the other ranks serve in the host loop (mpi_host.py) until rank 0
leaves the block, and then get False::

    with glompo_hpc.mpi_workers(slots="ranks") as is_manager:
        if is_manager:
            manager = GloMPOManager.new_manager(task, bounds, selector, backend="mpi", ...)
            manager.start_manager()

Outside MPI (one process) the block simply runs with True, so the same script works on a
laptop with a single-node backend.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Iterator

from mpi4py import MPI

from .backoff import Backoff
from .mpi_env import check_slots, check_world_matches_launcher
from .mpi_protocol import Exit, Hello, SessionEnded, Tag

__all__ = ("MPIWorld", "Outbox", "mpi_workers", "active_world")

logger = logging.getLogger("glompo_hpc.backends.mpi")

RELEASE_TIMEOUT = 30.0  # s: how long rank 0 waits for the hosts to confirm their exit
_WAIT_LOG_EVERY = 60.0  # s: how often rank 0 says it still waits for ranks to report


class Outbox:
    """Non-blocking sends (``isend``) kept until they complete.

    No side ever blocks in a send: a large message (a task, a big report) needs its receiver to
    post a receive, and two ranks each blocked sending to the other would deadlock.
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


class MPIWorld:
    """Rank 0's view of the world: the communicator, the serving hosts and the slot rule.

    Args:
        comm: The communicator (a duplicate of the user's, private to glompo_hpc).
        hosts: Each worker rank's Hello.
        slots: 'ranks' (one slot per worker rank) or 'cores' (each rank offers its CPUs).
    """

    def __init__(self, comm: MPI.Comm, hosts: dict[int, Hello], slots: str):
        self.comm = comm
        self.hosts = hosts
        self.slots = slots
        self.session: Any = None  # the MPIBackend currently using the hosts

    @property
    def ranks(self) -> list[int]:
        return sorted(self.hosts)

    def capacity(self, rank: int) -> int:
        """Slots rank ``rank`` offers."""
        return self.hosts[rank].cpus if self.slots == "cores" else 1

    @property
    def max_jobs(self) -> int:
        """The default ``max_jobs``: one per worker rank, or the sum of their CPUs under ``slots: cores``."""
        return sum(self.capacity(r) for r in self.ranks)

    def describe(self) -> str:
        nodes = sorted({h.host for h in self.hosts.values()})
        return (f"{len(self.hosts)} worker ranks on {len(nodes)} node(s), slots: {self.slots} "
                f"({self.max_jobs} slots)")

    def release(self) -> None:
        """Tell every host to leave its loop, and wait (bounded) until each has confirmed."""
        if self.session is not None:
            self.session.close()
        outbox = Outbox(self.comm)
        for rank in self.ranks:
            outbox.send(Exit(), rank, Tag.ORDER)
        waiting = set(self.ranks)
        deadline = time.monotonic() + RELEASE_TIMEOUT
        backoff = Backoff()
        status = MPI.Status()
        while waiting and time.monotonic() < deadline:
            message = self.comm.improbe(MPI.ANY_SOURCE, Tag.RELAY, status)
            if message is None:
                outbox.progress()
                backoff.sleep(deadline - time.monotonic())
                continue
            backoff.reset()
            for item in message.recv():  # reports of an ended session are dropped
                if isinstance(item, SessionEnded):
                    waiting.discard(item.rank)
        outbox.flush(max(0.0, deadline - time.monotonic()))
        if waiting:
            logger.warning("Ranks %s did not confirm their exit within %.0f s", sorted(waiting), RELEASE_TIMEOUT)


_active: MPIWorld | None = None


def active_world() -> MPIWorld | None:
    """The world of the enclosing ``mpi_workers`` block on rank 0, else None."""
    return _active


def _wait(request: MPI.Request) -> None:
    """Wait for a request by polling, so signal handlers run meanwhile."""
    backoff = Backoff()
    while not request.Test():
        backoff.sleep()


def _gather_hellos(comm: MPI.Comm) -> dict[int, Hello]:
    hosts: dict[int, Hello] = {}
    status = MPI.Status()
    backoff = Backoff()
    started = last_log = time.monotonic()
    while len(hosts) < comm.Get_size() - 1:
        message = comm.improbe(MPI.ANY_SOURCE, Tag.RELAY, status)
        if message is None:
            backoff.sleep()
            if time.monotonic() - last_log > _WAIT_LOG_EVERY:
                last_log = time.monotonic()
                missing = sorted(set(range(1, comm.Get_size())) - set(hosts))
                logger.warning("Still waiting after %.0f s for ranks %s to start serving", last_log - started, missing)
            continue
        for item in message.recv():
            if isinstance(item, Hello):
                hosts[item.rank] = item
    return hosts


@contextlib.contextmanager
def mpi_workers(slots: str = "ranks", cores_per_rank: int | None = None, comm: Any = None) -> Iterator[bool]:
    """Rank 0 gets True and runs the block; the other ranks serve as rank hosts, then get False.

    Call it on every rank with the same arguments. Under one rank (no MPI launcher) it yields
    True and starts nothing, so a script runs unchanged without ``mpirun``.

    Args:
        slots: 'ranks': each worker rank is one slot (``max_jobs`` defaults to size-1); 'cores':
            each worker rank offers one slot per CPU it may use (see ``cores_per_rank``).
        cores_per_rank: The CPUs (slots) of each rank under ``slots: cores``; None reads
            ``SLURM_CPUS_PER_TASK`` or the CPUs the rank is bound to.
        comm: The communicator to use (default MPI.COMM_WORLD); glompo_hpc works on a private duplicate.

    Raises:
        ConfigurationError: bad ``slots`` or ``cores_per_rank``.
        RuntimeError: called inside another ``mpi_workers`` block.
    """
    global _active
    check_slots(slots, cores_per_rank)
    base = MPI.COMM_WORLD if comm is None else comm
    if base.Get_size() < 2:
        if comm is None:
            check_world_matches_launcher(base.Get_size())  # N launched programs, each a world of 1
        yield True
        return
    if _active is not None:
        raise RuntimeError("mpi_workers() blocks cannot be nested")
    private, request = base.Idup()
    _wait(request)
    if private.Get_rank() != 0:
        from .mpi_host import RankHost
        RankHost(private, cores_per_rank).serve()
        yield False
        return
    world = MPIWorld(private, _gather_hellos(private), slots)
    logger.info("MPI: %s", world.describe())
    _active = world
    try:
        yield True
    finally:
        _active = None
        world.release()

