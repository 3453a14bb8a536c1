"""Batches over helper ranks (``slots: ranks``, optimizers with ``workers`` > 1), on a rank host.

A rank host has one BatchRouter; it plays both roles a rank can have:

* leader: a child optimizer running here sends each batch's helper parts through its batch pipe
  (see mpi_batch.RemoteBatch); the router sends each part to its helper rank (BatchChunk), gathers
  the ChunkResults and answers the child with all of them at once;
* helper: for an optimizer led elsewhere, it runs an evaluator process with the task, passes it
  the parts that arrive and returns their outcomes to the leader rank.

A helper's evaluator is a process, so a task that hangs on a helper rank is killed with it when the
optimizer ends (EndHelper); a helper that dies or cannot start answers every part with an error,
which the leader's child raises as its own task failure.
"""

from __future__ import annotations

import logging
import multiprocessing.connection as mpc
from dataclasses import dataclass, field
from typing import Any, Callable

from .mpi_batch import evaluator_main
from .mpi_protocol import BatchChunk, ChunkResult, StartHelper, Tag
from .mpi_transport import Outbox

__all__ = ("BatchRouter",)

logger = logging.getLogger("glompo_hpc.backends.mpi")

_END_GRACE = 2.0  # s: an evaluator's time to end on SIGTERM before SIGKILL


@dataclass
class _Gather:
    """One batch of a led child waiting for its helpers' parts."""

    seq: int
    waiting: set[int]
    parts: dict[int, list] = field(default_factory=dict)
    error: str = ""


@dataclass
class _Lead:
    """A child optimizer running on this rank with helper ranks: its batch pipe and open batches."""

    opt_id: int
    helpers: tuple[int, ...]
    batch_conn: mpc.Connection | None
    gathers: dict[int, _Gather] = field(default_factory=dict)


@dataclass
class _Help:
    """This rank's evaluator process for optimizer ``opt_id`` led by rank ``leader``."""

    opt_id: int
    leader: int
    proc: Any = None
    conn: mpc.Connection | None = None
    outstanding: list[int] = field(default_factory=list)
    error: str = ""  # set when the evaluator cannot run: every part is answered with it


class BatchRouter:
    """Routes batch parts between this rank's children, helper ranks and evaluator processes.

    Args:
        rank: This rank.
        outbox: The host's non-blocking sends.
        ctx: The multiprocessing context (fork) for evaluator processes.
    """

    def __init__(self, rank: int, outbox: Outbox, ctx: Any):
        self.rank = rank
        self.outbox = outbox
        self._ctx = ctx
        self.leads: dict[int, _Lead] = {}
        self.helps: dict[int, _Help] = {}
        self._early_chunks: dict[int, list[BatchChunk]] = {}  # parts that came before their StartHelper
        self._ended_helps: set[int] = set()

    def add_lead(self, opt_id: int, helpers: tuple[int, ...], batch_conn: mpc.Connection) -> None:
        self.leads[opt_id] = _Lead(opt_id, helpers, batch_conn)

    def lead_ended(self, opt_id: int) -> None:
        lead = self.leads.pop(opt_id, None)
        if lead is not None and lead.batch_conn is not None:
            lead.batch_conn.close()

    def connections(self) -> list[mpc.Connection]:
        """The pipes to wait on while idle."""
        conns = [lead.batch_conn for lead in self.leads.values() if lead.batch_conn is not None]
        return conns + [h.conn for h in self.helps.values() if h.conn is not None]

    def close(self) -> None:
        """End every role (the session is over)."""
        for opt_id in list(self.helps):
            self.end_helper(opt_id)
        for opt_id in list(self.leads):
            self.lead_ended(opt_id)
        self._early_chunks.clear()
        self._ended_helps.clear()

    def collect(self) -> bool:
        """Read what children and evaluators wrote; True if anything was."""
        busy = False
        for lead in list(self.leads.values()):
            conn = lead.batch_conn
            try:
                while conn is not None and conn.poll():
                    busy = True
                    seq, parts = conn.recv()
                    self._spread(lead, seq, parts)
            except (EOFError, OSError):  # the child died; its main pipe reports that
                lead.batch_conn = None
                conn.close()
        for help_ in list(self.helps.values()):
            try:
                while help_.conn is not None and help_.conn.poll():
                    busy = True
                    seq, outcomes, error = help_.conn.recv()
                    help_.outstanding.remove(seq)
                    self.outbox.send(ChunkResult(help_.opt_id, seq, self.rank, outcomes, error), help_.leader,
                                     Tag.BATCH)
            except (EOFError, OSError):
                self._helper_broke(help_, f"the evaluator process on rank {self.rank} died "
                                          f"(exit code {help_.proc.exitcode})")
        return busy

    def _spread(self, lead: _Lead, seq: int, parts: list) -> None:
        gather = _Gather(seq, set())
        for rank, xs in zip(lead.helpers, parts):
            if len(xs):
                self.outbox.send(BatchChunk(lead.opt_id, seq, xs), rank, Tag.BATCH)
                gather.waiting.add(rank)
            else:
                gather.parts[rank] = []
        lead.gathers[seq] = gather
        if not gather.waiting:
            self._answer(lead, gather)

    def part_done(self, result: ChunkResult) -> None:
        lead = self.leads.get(result.opt_id)
        gather = lead.gathers.get(result.seq) if lead is not None else None
        if gather is None:  # the child ended meanwhile
            return
        gather.parts[result.rank] = result.outcomes
        if result.error and not gather.error:
            gather.error = f"(helper rank {result.rank}) {result.error}"
        gather.waiting.discard(result.rank)
        if not gather.waiting:
            self._answer(lead, gather)

    def _answer(self, lead: _Lead, gather: _Gather) -> None:
        del lead.gathers[gather.seq]
        if lead.batch_conn is None:
            return
        try:
            lead.batch_conn.send((gather.seq, [gather.parts[r] for r in lead.helpers], gather.error))
        except (BrokenPipeError, OSError):  # the child died; its main pipe reports that
            pass

    def start_helper(self, order: StartHelper, task: Callable | None, task_error: str = "") -> None:
        """Evaluate parts for ``order.opt_id`` with ``task`` (None: it failed to load, ``task_error`` says why)."""
        help_ = _Help(order.opt_id, order.leader)
        self.helps[order.opt_id] = help_
        if task is None:
            help_.error = f"the task could not be unpickled on helper rank {self.rank}:\n{task_error}"
        else:
            try:
                here, there = self._ctx.Pipe(duplex=True)
                help_.proc = self._ctx.Process(target=evaluator_main, args=(task, order.detailed, there),
                                               daemon=True, name=f"glompo-help{order.opt_id}")
                help_.proc.start()
                there.close()
                help_.conn = here
            except Exception as e:
                help_.error = f"helper rank {self.rank} cannot start its evaluator: {type(e).__name__}: {e}"
        for chunk in self._early_chunks.pop(order.opt_id, []):
            self.evaluate_part(chunk)

    def evaluate_part(self, chunk: BatchChunk) -> None:
        help_ = self.helps.get(chunk.opt_id)
        if help_ is None:
            if chunk.opt_id not in self._ended_helps:  # it overtook its StartHelper (another sender)
                self._early_chunks.setdefault(chunk.opt_id, []).append(chunk)
            return
        if help_.error:
            self.outbox.send(ChunkResult.failed(chunk, self.rank, help_.error), help_.leader, Tag.BATCH)
            return
        help_.outstanding.append(chunk.seq)
        try:
            help_.conn.send((chunk.seq, chunk.xs))
        except (BrokenPipeError, OSError):
            self._helper_broke(help_, f"the evaluator process on rank {self.rank} died")

    def _helper_broke(self, help_: _Help, error: str) -> None:
        help_.error = error
        for seq in help_.outstanding:
            self.outbox.send(ChunkResult(help_.opt_id, seq, self.rank, [], error), help_.leader, Tag.BATCH)
        help_.outstanding.clear()
        help_.conn.close()
        help_.conn = None

    def end_helper(self, opt_id: int) -> None:
        """The optimizer ended: stop its evaluator (a hung evaluation is killed with it)."""
        help_ = self.helps.pop(opt_id, None)
        self._ended_helps.add(opt_id)
        self._early_chunks.pop(opt_id, None)
        if help_ is None:
            return
        if help_.conn is not None:
            help_.conn.close()
        proc = help_.proc
        if proc is not None:
            if proc.is_alive():
                proc.terminate()
                proc.join(_END_GRACE)
                if proc.is_alive():
                    proc.kill()
            proc.join(_END_GRACE)
