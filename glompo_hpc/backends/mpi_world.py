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

from .mpi_env import check_slots, check_world_matches_launcher
from .mpi_protocol import Exit, Hello, SessionEnded, Tag
from .mpi_transport import Inbox, Outbox, wait_request

__all__ = ("MPIWorld", "mpi_workers", "active_world")

logger = logging.getLogger("glompo_hpc.backends.mpi")

RELEASE_TIMEOUT = 30.0  # s: how long rank 0 waits for the hosts to confirm their exit
_WAIT_LOG_EVERY = 60.0  # s: how often rank 0 says it still waits for ranks to report


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

        def take(items: list) -> None:  # reports of an ended session are dropped
            waiting.difference_update(item.rank for item in items if isinstance(item, SessionEnded))

        deadline = time.monotonic() + RELEASE_TIMEOUT
        Inbox(self.comm, Tag.RELAY, outbox).wait_until(lambda: not waiting, RELEASE_TIMEOUT, take)
        outbox.flush(max(0.0, deadline - time.monotonic()))
        if waiting:
            logger.warning("Ranks %s did not confirm their exit within %.0f s", sorted(waiting), RELEASE_TIMEOUT)


_active: MPIWorld | None = None


def active_world() -> MPIWorld | None:
    """The world of the enclosing ``mpi_workers`` block on rank 0, else None."""
    return _active


def _gather_hellos(comm: MPI.Comm) -> dict[int, Hello]:
    hosts: dict[int, Hello] = {}
    inbox = Inbox(comm, Tag.RELAY)
    started = time.monotonic()

    def take(items: list) -> None:
        hosts.update((item.rank, item) for item in items if isinstance(item, Hello))

    while not inbox.wait_until(lambda: len(hosts) >= comm.Get_size() - 1, _WAIT_LOG_EVERY, take):
        missing = sorted(set(range(1, comm.Get_size())) - set(hosts))
        logger.warning("Still waiting after %.0f s for ranks %s to start serving", time.monotonic() - started,
                       missing)
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
    wait_request(request)
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

