"""The process side of the MPI rank host: child and evaluator process entries, and batch spreading.

Everything here runs in processes forked from a rank host, which must never call MPI (a forked
copy of an MPI process is not an MPI process). They talk to their host through pipes only; the
host does the MPI part. No mpi4py import here.

* :func:`child_main`: a child optimizer's process. With helper ranks (``slots: ranks``, an
  optimizer with ``workers`` > 1) it gives :class:`RemoteBatch` to ObservedTask as its remote batch
  evaluator, so each ``function.batch(xs)`` is cut into ``1 + helpers`` parts: the first is
  evaluated here, the others on the helper ranks (through the host), and the outcomes are put back
  in order.
* :func:`evaluator_main`: a helper rank's evaluator process: it evaluates the parts it is sent.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing.connection as mpc
import signal
import sys
import traceback
from typing import Callable

import numpy as np

from ..protocol.observed_task import evaluate_point
from ..core.backend import ChildSpec
from .blas_threads import limit_blas_threads
from .child_signals import set_child_signal_dispositions
from .mpi_protocol import Outcome
from .processes import process_main

__all__ = ("child_main", "evaluator_main", "RemoteBatch", "die_with_parent")

logger = logging.getLogger("glompo_hpc.backends.mpi")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its host dies, so no child outlives a killed rank.

    A rank killed by mpirun (SIGKILL after its SIGTERM) cannot stop its children itself; a hung
    evaluation would otherwise run on, orphaned, after the job ended. Elsewhere this is a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol: the host's own clean-up still applies
        pass


class RemoteBatch:
    """ObservedTask's remote batch evaluator in a leader child: spreads batches over helper ranks.

    Args:
        conn: The child's end of its batch pipe to the host.
        helpers: How many helper ranks evaluate parts.
    """

    def __init__(self, conn: mpc.Connection, helpers: int):
        self._conn = conn
        self._helpers = helpers
        self._seq = 0

    def __call__(self, xs: list[np.ndarray], evaluate: Callable[[np.ndarray], Outcome]) -> list[Outcome]:
        if not xs:
            return []
        parts = np.array_split(np.asarray(xs, dtype=float).reshape(len(xs), -1), self._helpers + 1)
        self._seq += 1
        self._conn.send((self._seq, parts[1:]))
        # The local part runs while the helpers work on theirs: the leader is one of the workers.
        local = [evaluate(x) for x in parts[0]]
        seq, remote, error = self._conn.recv()
        if seq != self._seq:  # the pipe is strictly request/answer: anything else is a host bug
            raise RuntimeError(f"batch answer {seq} does not match request {self._seq}")
        if error:
            raise RuntimeError(f"the task failed on a helper rank:\n{error}")
        out = list(local)
        for outcomes in remote:
            out.extend(outcomes)
        return out


def child_main(spec: ChildSpec, conn: mpc.Connection, batch_conn: mpc.Connection | None, helpers: int) -> None:
    """Entry of a child optimizer's process on a rank (forked by the host)."""
    die_with_parent()
    remote = RemoteBatch(batch_conn, helpers) if batch_conn is not None else None
    process_main(spec, conn, True, remote)


def evaluator_main(task: Callable, detailed: bool, conn: mpc.Connection) -> None:
    """Entry of a helper rank's evaluator process: evaluate parts until the host closes the pipe."""
    die_with_parent()
    set_child_signal_dispositions()
    limit_blas_threads()  # this helper is one slot: one core
    while True:
        try:
            seq, xs = conn.recv()
        except (EOFError, OSError):  # the host ended this helper role
            return
        try:
            outcomes = [evaluate_point(task, x, detailed) for x in xs]
            answer = (seq, outcomes, "")
        except BaseException as e:  # the leader reports it as its own task failure, with this traceback
            answer = (seq, [], f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):
            return
