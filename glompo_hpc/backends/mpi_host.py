"""The rank host: the loop every MPI rank but 0 runs while rank 0 manages.

Its phases mirror the Backend verbs rank 0 calls: ``start_child`` (fork the child optimizer as a
local process, with the processes backend), ``send`` (pass a manager message to it; a SaveState
is redirected to a file on this rank and the state's bytes go back to rank 0 in the answer),
``stop_children`` (kill them together and relay their last reports), ``close`` (end the session);
batches spread over helper ranks (``slots: ranks``) are routed by its BatchRouter (mpi_batch_router.py). The host
itself never runs user code, so it stays responsive whatever a task does:

* a child that raises is reported by its own ChildFailed (with the traceback), and a child that
  dies (segfault, OOM kill) by the ChildFailed the processes backend makes for it; the rank is
  free for the next child at once;
* a hung task (a call that never returns) is killed with its process when rank 0 orders it
  (``force_terminations_after``): the evaluation in progress is lost, the reports sent before it
  reach the manager, and the slot is reused.

Signals: Open MPI forwards SIGUSR2 (and SIGTERM/SIGINT before it kills) to every rank; a host
ignores them and waits for rank 0's orders. It leaves its loop on Exit, or when its parent
process (the launcher's daemon) is gone. A SIGTERM that ends the job (``mpirun`` after its own
SIGINT or SIGTERM, SLURM at a time limit or on ``scancel``) goes to the rank's whole process group,
so its children die of it too: the host, which got the same signal first, reports them as
stopped with the job ("unfinished"), not as crashed optimizers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dill
from mpi4py import MPI

from ..protocol import messages as msg
from .backoff import Backoff
from ..core.backend import ChildSpec
from .mpi_batch import child_main
from .mpi_batch_router import BatchRouter
from .mpi_env import rank_cpus
from .mpi_protocol import (BatchChunk, ChildKilled, ChunkResult, EndHelper, EndSession, Exit, Hello, KillChild,
                           SavedState, SessionEnded, StartChild, StartHelper, Tag, TaskData, ToChild)
from .mpi_transport import Inbox, Outbox
from .processes import ProcessesBackend

__all__ = ("RankHost",)

logger = logging.getLogger("glompo_hpc.backends.mpi")

_FINAL = (msg.OptimizerFinished, msg.ChildFailed)
_IGNORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))
_ORPHAN_CHECK_EVERY = 1.0  # s
_EXIT_FLUSH_TIMEOUT = 10.0  # s


class _LocalChildren(ProcessesBackend):
    """The processes backend inside a rank: non-daemonic children (they may start worker processes)
    started with :func:`child_main`, which adds the batch pipe to helper ranks and dies with the host."""

    def __init__(self) -> None:
        super().__init__(forced=True, start_method="fork")

    def start_on_rank(self, spec: ChildSpec, batch_conn: mpc.Connection | None, helpers: int) -> None:
        manager_end, child_end = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=child_main, args=(spec, child_end, batch_conn, helpers), daemon=False,
                                 name=f"glompo-opt{spec.opt_id}")
        proc.start()
        child_end.close()  # so the host sees EOF when the child dies
        self._conns[spec.opt_id] = manager_end
        self._procs[spec.opt_id] = proc

    def connections(self) -> list[mpc.Connection]:
        return list(self._conns.values())

    def reap(self, opt_id: int) -> bool:
        """Forget an ended child's process once it has exited; True when done."""
        proc = self._procs.get(opt_id)
        if proc is None:
            return True
        if proc.is_alive():
            return False
        proc.join(0)
        self._procs.pop(opt_id).close()
        return True

    def reap_all(self) -> None:
        for opt_id in list(self._procs):
            self.reap(opt_id)

    def killed_by(self, opt_id: int) -> signal.Signals | None:
        """The signal that ended a child's process, if one did."""
        proc = self._procs.get(opt_id)
        code = None if proc is None else proc.exitcode
        return signal.Signals(-code) if code is not None and code < 0 else None


class RankHost:
    """Serves rank 0 on one worker rank until told to exit.

    Args:
        comm: glompo_hpc's private communicator (rank 0 manages).
        cores_per_rank: The CPUs to announce (None: detect, see ``rank_cpus``).
    """

    def __init__(self, comm: MPI.Comm, cores_per_rank: int | None = None):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.hostname = socket.gethostname()
        self.cpus = rank_cpus(cores_per_rank)
        self.outbox = Outbox(comm)
        self.inbox = Inbox(comm)
        self._ctx = mp.get_context("fork")
        self._backoff = Backoff()
        self._relay: list[Any] = []
        self._exit = False
        self._ppid = os.getppid()
        self._next_orphan_check = 0.0
        self._job_ended_by: signal.Signals | None = None  # a SIGTERM to this rank's process group
        self._state_dir = Path(tempfile.mkdtemp(prefix=f"glompo_rank{self.rank}_states_"))
        self._new_session()

    def _new_session(self) -> None:
        self.local = _LocalChildren()
        self.tasks: dict[int, Callable] = {}
        self.batches = BatchRouter(self.rank, self.outbox, self._ctx)
        self._ended_children: list[int] = []
        self._saving: dict[int, str] = {}  # opt_id -> where rank 0 wants the state it is saving

    # ================================================================ the loop

    def serve(self) -> None:
        """The host loop: take orders, relay reports, route batch parts; returns on Exit."""
        saved = {s: signal.signal(s, self._note_job_end if s == signal.SIGTERM else signal.SIG_IGN)
                 for s in _IGNORED_SIGNALS}
        try:
            self._relay.append(Hello(self.rank, self.hostname, self.cpus, os.getpid()))
            while not self._exit:
                busy = self._take_orders()
                busy |= self._collect_children()
                busy |= self.batches.collect()
                self._flush_relay()
                self.outbox.progress()
                self._reap()
                if self._orphaned():
                    logger.error("Rank %d: the launcher is gone; leaving", self.rank)
                    break
                if busy:
                    self._backoff.reset()
                else:
                    self._idle()
            self.close()
            self._relay.append(SessionEnded(self.rank))
            self._flush_relay()
            self.outbox.flush(_EXIT_FLUSH_TIMEOUT)
        finally:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            for s, handler in saved.items():
                signal.signal(s, handler)

    def _idle(self) -> None:
        """Sleep the next backoff delay, waking at once if a child or evaluator writes to its pipe."""
        conns = self.local.connections() + self.batches.connections()
        delay = self._backoff.next_delay()
        if conns:
            mpc.wait(conns, delay)
        else:
            time.sleep(delay)

    def _orphaned(self) -> bool:
        now = time.monotonic()
        if now < self._next_orphan_check:
            return False
        self._next_orphan_check = now + _ORPHAN_CHECK_EVERY
        return os.getppid() != self._ppid

    def _flush_relay(self) -> None:
        if self._relay:
            self.outbox.send(self._relay, 0, Tag.RELAY)
            self._relay = []

    def _take_orders(self) -> bool:
        got = False
        kills: list[int] = []  # ended together after the turn, so N kills cost one grace period, not N
        for item in self.inbox.incoming():
            got = True
            if isinstance(item, BatchChunk):
                self.batches.evaluate_part(item)
            elif isinstance(item, ChunkResult):
                self.batches.part_done(item)
            elif isinstance(item, ToChild):
                self.local.send(item.opt_id, self._to_child(item))
            elif isinstance(item, TaskData):
                self._store_task(item)
            elif isinstance(item, StartChild):
                self.start_child(item)
            elif isinstance(item, StartHelper):
                task = self.tasks.get(item.task_token)
                loaded = task is not None and not isinstance(task, _Unloadable)
                self.batches.start_helper(item, task if loaded else None, getattr(task, "error", ""))
            elif isinstance(item, KillChild):
                kills.append(item.opt_id)
            elif isinstance(item, EndHelper):
                self.batches.end_helper(item.opt_id)
            elif isinstance(item, EndSession):
                self.stop_children(kills)
                kills = []
                self.close()
                self._relay.append(SessionEnded(self.rank))
            elif isinstance(item, Exit):
                self._exit = True
                break
            else:
                logger.error("Rank %d: unknown message %r", self.rank, item)
        self.stop_children(kills)
        return got

    # ================================================================ child optimizers

    def _store_task(self, item: TaskData) -> None:
        try:
            self.tasks[item.token] = dill.loads(item.blob)
        except Exception:  # each child started with it then fails with this traceback
            self.tasks[item.token] = _Unloadable(traceback.format_exc())

    def start_child(self, order: StartChild) -> None:
        batch_here = batch_there = None
        try:
            task = self.tasks.get(order.task_token)
            if isinstance(task, _Unloadable) or task is None:
                raise RuntimeError(f"the task could not be unpickled on this rank:\n{getattr(task, 'error', '')}")
            spec: ChildSpec = dill.loads(order.spec_blob)
            spec.task = task
            if order.helpers:
                batch_here, batch_there = self._ctx.Pipe(duplex=True)
            self.local.start_on_rank(spec, batch_there, len(order.helpers))
        except Exception as e:  # the child cannot start: its one final message says why
            self._relay.append(msg.ChildFailed(order.opt_id, f"cannot start on rank {self.rank}: "
                                               f"{type(e).__name__}: {e}", traceback.format_exc(),
                                               self.hostname, f"rank {self.rank}"))
            if batch_here is not None:
                batch_here.close()
            return
        finally:
            if batch_there is not None:
                batch_there.close()
        if batch_here is not None:
            self.batches.add_lead(order.opt_id, order.helpers, batch_here)

    def _collect_children(self) -> bool:
        messages = self.local.poll(0)
        for m in messages:
            self._relay_from_child(m)
        return bool(messages)

    def _note_job_end(self, signum: int, frame: Any) -> None:
        # Ignored like the others (rank 0 ends the run), but remembered: the kernel delivers a
        # group's signal to all its members at once, so this handler has run before the host can
        # see a child dead of the same signal.
        if self._job_ended_by is None:
            self._job_ended_by = signal.Signals(signum)
            logger.info("Rank %d: %s; rank 0 ends the run", self.rank, self._job_ended_by.name)

    def _relay_from_child(self, m: msg.ChildMessage) -> None:
        if isinstance(m, msg.StateSaved) and m.opt_id in self._saving:
            m = self._state_answer(m)
        elif isinstance(m, msg.ChildFailed) and self._job_ended_by is not None \
                and self.local.killed_by(m.opt_id) == self._job_ended_by:
            m = msg.OptimizerFinished(m.opt_id, False, None, math.nan, {}, stopped=True,
                                      reason=f"killed by {self._job_ended_by.name} sent to rank {self.rank}'s "
                                             "process group: the job is being ended")
        self._relay.append(m)
        if isinstance(m, _FINAL):
            self._child_ended(m.opt_id)

    # ---------------------------------------------------------------- saved states

    def _to_child(self, order: ToChild) -> msg.ManagerMessage:
        """Redirect a SaveState to a file on this rank: its bytes go to rank 0 with the answer."""
        if not isinstance(order.message, msg.SaveState):
            return order.message
        self._saving[order.opt_id] = order.message.path
        return msg.SaveState(str(self._state_dir / f"{order.opt_id}.pkl"))

    def _state_answer(self, saved: msg.StateSaved) -> SavedState | msg.StateSaved:
        """The answer for rank 0: the state's bytes, or why there are none."""
        path = self._saving.pop(saved.opt_id)
        local = Path(saved.path)
        try:
            if saved.error:
                return msg.StateSaved(saved.opt_id, path, saved.error)
            return SavedState(saved.opt_id, path, local.read_bytes())
        except OSError as e:
            return msg.StateSaved(saved.opt_id, path, f"rank {self.rank} cannot read the saved state: {e}")
        finally:
            local.unlink(missing_ok=True)

    def _child_ended(self, opt_id: int) -> None:
        self.batches.lead_ended(opt_id)
        self._ended_children.append(opt_id)

    def _reap(self) -> None:
        if self._ended_children:
            self._ended_children = [i for i in self._ended_children if not self.local.reap(i)]

    def stop_children(self, opt_ids: list[int]) -> None:
        """Kill children (SIGTERM, then SIGKILL, all at once); relay the reports each sent before,
        then its ChildKilled."""
        if not opt_ids:
            return
        self.local.stop_children(opt_ids)
        for m in self.local.poll(0):
            self._relay_from_child(m)
        for opt_id in opt_ids:
            self._child_ended(opt_id)
            self._relay.append(ChildKilled(opt_id))

    def close(self) -> None:
        """End the session: kill every child and helper evaluator; forget the tasks."""
        self.batches.close()
        self.local.close()
        self.local.reap_all()
        self._new_session()


@dataclass
class _Unloadable:
    """A task that failed to unpickle on this rank; ``error`` is the traceback."""

    error: str
