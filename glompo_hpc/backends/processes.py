"""Processes backend: each child optimizer runs in its own process (``fork`` start method).

Each child has a private duplex pipe to the manager (no shared results queue), so a child killed
mid-message (SIGKILL by the OOM killer, or a forced termination) breaks only its own pipe: the
backend sees the end of file and reports a ChildFailed for it, and every other child's messages
stay intact.

``processes`` children are daemonic and cannot start processes of their own (an optimizer asking
for process workers gets threads). ``processes_forced`` children are not daemonic and may.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpc
import signal
import time
from typing import Any, Iterable

from ..protocol import messages as msg
from ..protocol.observed_task import RemoteBatchEvaluator
from ..core.backend import Backend, ChildSpec
from .blas_threads import limit_blas_threads
from .child_host import run_child
from .child_signals import set_child_signal_dispositions
from .printstreams import redirect_process_streams

__all__ = ("ProcessesBackend", "PipeLink", "process_main")

_TERMINATE_GRACE = 2.0


class PipeLink:
    """The child's end of its pipe."""

    def __init__(self, conn: mpc.Connection):
        self._conn = conn

    def send(self, message: msg.ChildMessage) -> None:
        self._conn.send(message)

    def receive(self, timeout: float | None = 0.0) -> msg.ManagerMessage | None:
        if not self._conn.poll(timeout):
            return None
        try:
            return self._conn.recv()
        except EOFError:  # the manager is gone: stop rather than run on unobserved
            return msg.Stop("manager connection lost")


def process_main(spec: ChildSpec, conn: mpc.Connection, allow_processes: bool,
                 remote_batch: RemoteBatchEvaluator | None = None) -> None:
    """Entry of a child optimizer's process: signal dispositions, split printstreams, run_child."""
    set_child_signal_dispositions()
    if spec.printstream_dir is not None:
        redirect_process_streams(spec.printstream_dir, spec.opt_id)
    limit_blas_threads()  # this child is one slot: one core
    run_child(spec, PipeLink(conn), allow_processes, remote_batch)
    conn.close()


def _join_all(procs: list, timeout: float) -> list:
    """Wait up to ``timeout`` s in all for the processes to end; returns those still alive."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    return [p for p in procs if p.is_alive()]


class ProcessesBackend(Backend):
    """Args:
        forced: Non-daemonic children that may start their own processes ('processes_forced').
    """

    proc_backend = True

    def __init__(self, forced: bool = False, start_method: str = "fork"):
        self.forced = forced
        self.name = "processes_forced" if forced else "processes"
        self._ctx = mp.get_context(start_method)
        self._conns: dict[int, mpc.Connection] = {}
        self._procs: dict[int, Any] = {}
        self._final_seen: set[int] = set()
        self._drained: list[msg.ChildMessage] = []  # read from children ended by force, not yet polled

    def start_child(self, spec: ChildSpec) -> None:
        manager_end, child_end = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=process_main, args=(spec, child_end, self.forced),
                                 daemon=not self.forced, name=f"glompo-opt{spec.opt_id}")
        proc.start()
        child_end.close()  # so the manager sees EOF when the child dies
        self._conns[spec.opt_id] = manager_end
        self._procs[spec.opt_id] = proc

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        conn = self._conns.get(opt_id)
        if conn is None:
            return
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the child ended; its EOF is reported by poll

    def poll(self, timeout: float) -> list[msg.ChildMessage]:
        out, self._drained = self._drained, []
        if out:
            timeout = 0
        if not self._conns:
            return out
        for conn in mpc.wait(list(self._conns.values()), timeout):
            opt_id = next(i for i, c in self._conns.items() if c is conn)
            self._drain(opt_id, conn, out)
        return out

    def _drain(self, opt_id: int, conn: mpc.Connection, out: list) -> None:
        try:
            while conn.poll():
                m = conn.recv()
                out.append(m)
                if isinstance(m, (msg.OptimizerFinished, msg.ChildFailed)):
                    self._final_seen.add(opt_id)
        except Exception:  # EOF, or a message cut short when the child was killed mid-send
            self._conns.pop(opt_id).close()
            if opt_id not in self._final_seen:
                out.append(self._death_report(opt_id))

    def _death_report(self, opt_id: int) -> msg.ChildFailed:
        proc = self._procs[opt_id]
        proc.join(_TERMINATE_GRACE)
        code = proc.exitcode
        how = f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0 \
            else f"exited with code {code}"
        self._final_seen.add(opt_id)
        return msg.ChildFailed(opt_id, f"child process {how} before reporting its end", "", "", "process")

    def stop_child(self, opt_id: int) -> bool:
        """Terminate (SIGTERM, then SIGKILL) a child; the reports it sent before are kept for poll.

        The manager decided this end, so no ChildFailed is made for it.
        """
        return self.stop_children([opt_id])[opt_id]

    def stop_children(self, opt_ids: Iterable[int]) -> dict[int, bool]:
        """Terminate many children at once: one grace period for all, then SIGKILL for the rest."""
        opt_ids = list(opt_ids)
        procs = [p for i in opt_ids if (p := self._procs.get(i)) is not None and p.is_alive()]
        for proc in procs:
            proc.terminate()
        for proc in _join_all(procs, _TERMINATE_GRACE):
            proc.kill()
            proc.join(_TERMINATE_GRACE)
        for opt_id in opt_ids:
            self._final_seen.add(opt_id)
            conn = self._conns.get(opt_id)
            if conn is not None:
                self._drain(opt_id, conn, self._drained)
                if opt_id in self._conns:
                    self._conns.pop(opt_id).close()
        return {opt_id: True for opt_id in opt_ids}

    def join_child(self, opt_id: int, timeout: float | None) -> bool:
        proc = self._procs.get(opt_id)
        if proc is None:
            return True
        proc.join(timeout)
        return not proc.is_alive()

    def is_alive(self, opt_id: int) -> bool:
        proc = self._procs.get(opt_id)
        return proc is not None and proc.is_alive()

    def close(self) -> None:
        self.stop_children([i for i, p in self._procs.items() if p.is_alive()])
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
