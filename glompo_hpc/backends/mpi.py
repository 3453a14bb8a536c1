"""MPI backend (rank 0): children run on the worker ranks; MPI messages replace the results queue.

Rank 0 runs the manager and this backend; every other rank runs a rank host (mpi_host.py) that
forks each child optimizer it is given as a local process, relays the child's messages to rank 0
and rank 0's messages to the child, and can kill it on order. The backend only moves messages and
places children; it decides nothing.

Placement. ``slots: ranks``: an optimizer with ``workers=k`` gets the k least-loaded worker
ranks: the first leads (runs the optimizer), the other k-1 help (evaluate parts of its
``function.batch`` calls). ``slots: cores``: it gets the rank with the most free CPUs, where it
runs its workers as threads or processes. When ``max_jobs`` exceeds what the ranks offer, ranks
are oversubscribed (several children on one rank), with a warning.

Transport (mpi_transport.py). Every send is an ``isend`` kept until complete, and receiving is
``improbe`` plus a Backoff sleep, so ``poll`` never blocks longer than its timeout and signal
handlers on rank 0 run within milliseconds. The task is pickled (dill) once and sent
once to each rank per session; each ChildSpec is pickled (dill) without it. Hosts send what their
children report as one list per loop turn, so rank 0 pays one receive for many reports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Iterable

import dill

from ..protocol import messages as msg
from .backoff import Backoff
from ..core.backend import Backend, ChildSpec
from .mpi_protocol import (ChildKilled, EndHelper, EndSession, KillChild, SavedState, SessionEnded, StartChild,
                           StartHelper, Tag, TaskData, ToChild)
from .mpi_transport import Inbox, Outbox
from .mpi_world import MPIWorld

__all__ = ("MPIBackend",)

logger = logging.getLogger("glompo_hpc.backends.mpi")

KILL_TIMEOUT = 15.0  # s: a host terminates (2 s grace) then kills (2 s) a child; leave margin for a busy rank
CLOSE_TIMEOUT = 30.0  # s: for every host to end its children when a session closes

_FINAL = (msg.OptimizerFinished, msg.ChildFailed)


@dataclasses.dataclass
class _Place:
    """Where one child runs: its leader rank, its helper ranks and the slots it holds on each."""

    leader: int
    helpers: tuple[int, ...]
    slots: dict[int, int]


class MPIBackend(Backend):
    """The rank-0 side of the MPI transport. Build it with ``make_backend('mpi')`` inside ``mpi_workers``.

    Attributes:
        kill_timeout: Seconds ``stop_children`` waits, in all, for the ranks to confirm the kills.
    """

    name = "mpi"
    proc_backend = True

    def __init__(self, world: MPIWorld):
        if world.session is not None:  # a previous session that crashed before closing: its hosts' state is stale
            logger.warning("A previous MPI backend was not closed; closing it now")
            world.session.close()
        world.session = self
        self.world = world
        self.comm = world.comm
        self.outbox = Outbox(self.comm)
        self.inbox = Inbox(self.comm, Tag.RELAY, self.outbox)
        self._backoff = Backoff()
        self._load = {rank: 0 for rank in world.ranks}
        self._places: dict[int, _Place] = {}
        self._alive: set[int] = set()
        self._killed: set[int] = set()
        self._ready: list[msg.ChildMessage] = []  # received while waiting in stop/join, for the next poll
        self._tasks: dict[int, object] = {}  # token -> task: holding it keeps id(task) unique in the session
        self._task_blobs: dict[int, bytes] = {}
        self._tasks_on: dict[int, set[int]] = {rank: set() for rank in world.ranks}
        self._ended_hosts: set[int] = set()
        self._warned_full = False
        self._closed = False
        self.kill_timeout = KILL_TIMEOUT

    # ------------------------------------------------------------ starting

    def start_child(self, spec: ChildSpec) -> None:
        workers = max(1, int(getattr(spec.optimizer, "workers", 1)))
        place = self._place(spec.opt_id, workers)
        try:
            token = self._task_token(spec.task)
            blob = dill.dumps(dataclasses.replace(spec, task=None))
        except Exception as e:  # the child cannot start: it still ends with exactly one final message
            self._places.pop(spec.opt_id)
            self._unload(place)
            self._ready.append(msg.ChildFailed(spec.opt_id, f"cannot send the optimizer or task to rank "
                                               f"{place.leader}: {type(e).__name__}: {e}", traceback.format_exc(),
                                               socket.gethostname(), "mpi backend"))
            return
        for rank in (place.leader, *place.helpers):
            if token not in self._tasks_on[rank]:
                self.outbox.send(TaskData(token, self._task_blobs[token]), rank, Tag.ORDER)
                self._tasks_on[rank].add(token)
        for rank in place.helpers:
            self.outbox.send(StartHelper(spec.opt_id, place.leader, token, spec.is_log_detailed), rank, Tag.ORDER)
        self.outbox.send(StartChild(spec.opt_id, blob, token, place.helpers), place.leader, Tag.ORDER)
        self._alive.add(spec.opt_id)
        logger.debug("Optimizer %d placed on rank %d, helpers %s", spec.opt_id, place.leader, place.helpers)

    def _task_token(self, task: object) -> int:
        token = id(task)
        if token not in self._tasks:
            self._task_blobs[token] = dill.dumps(task)
            self._tasks[token] = task
        return token

    def _place(self, opt_id: int, workers: int) -> _Place:
        world = self.world
        if world.slots == "ranks":
            chosen = sorted(world.ranks, key=lambda r: (self._load[r], r))[:workers]
            if len(chosen) < workers:
                logger.warning("Optimizer %d asks for %d workers but there are only %d worker ranks: it gets %d",
                               opt_id, workers, len(chosen), len(chosen))
            place = _Place(chosen[0], tuple(chosen[1:]), {r: 1 for r in chosen})
        else:
            rank = max(world.ranks, key=lambda r: (world.capacity(r) - self._load[r], -r))
            if world.capacity(rank) - self._load[rank] < workers:
                self._warn_full(f"optimizer {opt_id} needs {workers} cores; rank {rank} has "
                                f"{world.capacity(rank) - self._load[rank]} free")
            place = _Place(rank, (), {rank: workers})
        for rank, n in place.slots.items():
            self._load[rank] += n
            if self._load[rank] > world.capacity(rank):
                self._warn_full(f"rank {rank} now runs {self._load[rank]} slots for {world.capacity(rank)}")
        self._places[opt_id] = place
        return place

    def _warn_full(self, what: str) -> None:
        if not self._warned_full:
            self._warned_full = True
            logger.warning("MPI ranks are oversubscribed (%s): max_jobs exceeds the %d slots the ranks offer",
                           what, self.world.max_jobs)

    def _unload(self, place: _Place) -> None:
        for rank, n in place.slots.items():
            self._load[rank] -= n

    def _release(self, opt_id: int) -> None:
        """The child has ended: free its slots and end its helpers."""
        self._alive.discard(opt_id)
        place = self._places.pop(opt_id, None)
        if place is None:
            return
        self._unload(place)
        for rank in place.helpers:
            self.outbox.send(EndHelper(opt_id), rank, Tag.ORDER)

    # ------------------------------------------------------------ messages

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        if opt_id in self._alive:
            self.outbox.send(ToChild(opt_id, message), self._places[opt_id].leader, Tag.ORDER)

    def poll(self, timeout: float) -> list[msg.ChildMessage]:
        out, self._ready = self._ready, []
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            self._receive(out)
            self.outbox.progress()
            if out:  # the backoff restarts on traffic only: a manager polling an idle world stays at the cap
                self._backoff.reset()
                return out
            if time.monotonic() >= deadline:
                return out
            self._backoff.sleep(deadline - time.monotonic())

    def _receive(self, out: list[msg.ChildMessage]) -> None:
        """Take every message waiting now."""
        for items in self.inbox.incoming():
            self._take(items, out)

    def _take(self, items: list, out: list[msg.ChildMessage]) -> None:
        """File one host's relayed list: child messages into ``out``, the host's answers into our state."""
        for item in items:
            if isinstance(item, msg.ChildMessage):
                if isinstance(item, _FINAL) and item.opt_id in self._alive:
                    self._release(item.opt_id)
                out.append(item)
            elif isinstance(item, SavedState):
                out.append(_write_state(item))
            elif isinstance(item, ChildKilled):
                self._killed.add(item.opt_id)
            elif isinstance(item, SessionEnded):
                self._ended_hosts.add(item.rank)

    def _wait_until(self, done, timeout: float | None) -> bool:
        """Receive (keeping messages for the next poll) until ``done()`` or ``timeout`` s; returns done()."""
        return self.inbox.wait_until(done, timeout, lambda items: self._take(items, self._ready))

    # ------------------------------------------------------------ ending

    def stop_child(self, opt_id: int) -> bool:
        """Kill the child on its rank; its last reports are kept for the next ``poll``. See ``stop_children``."""
        return self.stop_children([opt_id])[opt_id]

    def stop_children(self, opt_ids: Iterable[int]) -> dict[int, bool]:
        """Kill children on their ranks: every order is sent first, then one wait for all answers.

        Each child is released as soon as its host confirms; one that is not confirmed within
        ``kill_timeout`` s is released then (its slot is reused). Its last reports are kept for the
        next ``poll``. The manager decided these ends, so no ChildFailed is made.
        """
        opt_ids = list(opt_ids)
        leaders = {i: self._places[i].leader for i in opt_ids if i in self._alive}
        for opt_id, rank in leaders.items():
            self.outbox.send(KillChild(opt_id), rank, Tag.ORDER)
        waiting = set(leaders)
        if waiting:
            logger.debug("Kill orders sent for optimizers %s; waiting up to %.0f s for their ranks", sorted(waiting),
                         self.kill_timeout)

        def confirmed() -> bool:
            for opt_id in waiting & self._killed:
                waiting.discard(opt_id)
                self._killed.discard(opt_id)
                self._release(opt_id)
            return not waiting

        if not self._wait_until(confirmed, self.kill_timeout):
            where = ", ".join(f"{i} on rank {leaders[i]}" for i in sorted(waiting))
            logger.warning("No confirmation within %.0f s of the end of optimizers %s; their slots are reused",
                           self.kill_timeout, where)
            for opt_id in waiting:
                self._release(opt_id)
        return {opt_id: True for opt_id in opt_ids}

    def join_child(self, opt_id: int, timeout: float | None) -> bool:
        return self._wait_until(lambda: opt_id not in self._alive, timeout)

    def is_alive(self, opt_id: int) -> bool:
        return opt_id in self._alive

    def close(self) -> None:
        """End the session on every host (children and helpers stopped, tasks forgotten); the hosts stay
        up for the next session until ``mpi_workers`` ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for rank in self.world.ranks:
            self.outbox.send(EndSession(), rank, Tag.ORDER)
        if not self._wait_until(lambda: self._ended_hosts >= set(self.world.ranks), CLOSE_TIMEOUT):
            missing = sorted(set(self.world.ranks) - self._ended_hosts)
            logger.warning("Ranks %s did not confirm the end of the session within %.0f s", missing, CLOSE_TIMEOUT)
        dropped = [m for m in self._ready if not isinstance(m, msg.IterationReport)]
        if dropped:
            logger.debug("Messages after the session's end dropped: %s", dropped)
        self._ready = []
        self.outbox.flush(CLOSE_TIMEOUT)
        if self.world.session is self:
            self.world.session = None


def _write_state(saved: SavedState) -> msg.StateSaved:
    """Write a child's state where the manager asked for it; the StateSaved the manager awaits."""
    path = Path(saved.path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(saved.blob)
        os.replace(partial, path)  # whole or absent: a checkpoint never packs half a state
    except OSError as e:
        partial.unlink(missing_ok=True)
        return msg.StateSaved(saved.opt_id, saved.path, f"rank 0 cannot write the state to {saved.path}: {e}")
    return msg.StateSaved(saved.opt_id, saved.path)
