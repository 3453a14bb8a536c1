"""Threads backend: each child optimizer runs in a daemon thread of the manager's process.

Threads share the task object and memory (use it for tasks that are not process-safe or are
cheap to share). They cannot be killed: a hung thread is abandoned, and it stops only when the
process ends.
"""

from __future__ import annotations

import queue
import threading

from ..protocol import messages as msg
from ..core.backend import Backend, ChildSpec
from .child_host import run_child
from .printstreams import ThreadStreamRouter

__all__ = ("ThreadsBackend", "QueueLink")


class QueueLink:
    """The child's end of a thread channel: a shared inbox to the manager, its own outbox."""

    def __init__(self, to_manager: queue.SimpleQueue, from_manager: queue.SimpleQueue):
        self._to_manager = to_manager
        self._from_manager = from_manager

    def send(self, message: msg.ChildMessage) -> None:
        self._to_manager.put(message)

    def receive(self, timeout: float | None = 0.0) -> msg.ManagerMessage | None:
        try:
            if timeout == 0.0:
                return self._from_manager.get_nowait()
            return self._from_manager.get(timeout=timeout)
        except queue.Empty:
            return None


class ThreadsBackend(Backend):
    name = "threads"
    proc_backend = False

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._outboxes: dict[int, queue.SimpleQueue] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._router = ThreadStreamRouter()

    def start_child(self, spec: ChildSpec) -> None:
        outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._outboxes[spec.opt_id] = outbox
        link = QueueLink(self._inbox, outbox)
        if spec.printstream_dir is not None:
            self._router.install()
        thread = threading.Thread(target=self._thread_main, args=(spec, link), daemon=True,
                                  name=f"glompo-opt{spec.opt_id}")
        self._threads[spec.opt_id] = thread
        thread.start()

    def _thread_main(self, spec: ChildSpec, link: QueueLink) -> None:
        if spec.printstream_dir is None:
            run_child(spec, link)
            return
        with self._router.route_current_thread(spec.printstream_dir, spec.opt_id):
            run_child(spec, link)

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        outbox = self._outboxes.get(opt_id)
        if outbox is not None and self.is_alive(opt_id):
            outbox.put(message)

    def poll(self, timeout: float) -> list[msg.ChildMessage]:
        try:
            first = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return []
        out = [first]
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def stop_child(self, opt_id: int) -> bool:
        return False

    def join_child(self, opt_id: int, timeout: float | None) -> bool:
        thread = self._threads.get(opt_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def is_alive(self, opt_id: int) -> bool:
        thread = self._threads.get(opt_id)
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        self._router.uninstall()
