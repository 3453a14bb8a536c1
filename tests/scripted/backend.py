"""A Backend driven by a script of child messages: the session's decisions without processes or time.

Each child follows a ``ChildScript``: so many iteration reports, then an ending (converge, crash,
or run on until stopped), and it answers the manager's Pause / SaveState / Stop as a real child
would, or not at all when ``hung``. ``poll`` hands out one message per child per call, in start
order, and advances a ``ScriptedClock`` by its timeout instead of sleeping, so timeouts (hung
children, the intervention interval) pass in a few loop turns.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from glompo_hpc.backends import Backend, ChildSpec
from glompo_hpc.core import messages as msg


class ScriptedClock:
    """Stands in for the ``time`` module in the session: time moves only when the backend polls."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._wall = time.time()

    def monotonic(self) -> float:
        return self.elapsed

    def time(self) -> float:
        return self._wall + self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds


@dataclass
class ChildScript:
    """What one child does. ``fx(i)``: the value of its i-th report's evaluations."""

    reports: int = 3
    batch: int = 4
    ending: str = "converge"  # 'converge' | 'crash' | 'forever' (reports until stopped)
    hung: bool = False  # answers nothing the manager sends (a child stuck in one evaluation)
    fx: Callable[[int, int], float] = lambda opt_id, i: 10.0 - i


@dataclass
class _Running:
    spec: ChildSpec
    script: ChildScript
    outbox: deque = field(default_factory=deque)
    sent_reports: int = 0
    paused: bool = False
    ended: bool = False
    hung: bool = False


class ScriptedBackend(Backend):
    """``scripts(opt_id)`` gives each new child its script; every message sent is kept in ``sent``."""

    proc_backend = True

    def __init__(self, scripts: Callable[[int], ChildScript], clock: ScriptedClock):
        self.scripts = scripts
        self.clock = clock
        self.children: dict[int, _Running] = {}
        self.sent: list[tuple[int, msg.ManagerMessage]] = []
        self.started: list[int] = []
        self.killed: list[int] = []
        self.closed = False

    def start_child(self, spec: ChildSpec) -> None:
        script = self.scripts(spec.opt_id)
        self.children[spec.opt_id] = _Running(spec, script, hung=script.hung)
        self.started.append(spec.opt_id)

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        self.sent.append((opt_id, message))
        child = self.children[opt_id]
        if child.hung or child.ended:
            return
        if isinstance(message, msg.Pause):
            child.paused = True
            child.outbox.append(msg.ChildPaused(opt_id))
        elif isinstance(message, msg.SaveState):
            child.spec.optimizer.checkpoint_save(message.path)
            child.outbox.append(msg.StateSaved(opt_id, message.path, ""))
        elif isinstance(message, msg.Resume):
            child.paused = False
        elif isinstance(message, msg.Stop):
            child.outbox.append(self._finished(child, stopped=True, reason=message.reason))

    def poll(self, timeout: float) -> list[msg.ChildMessage]:
        self.clock.advance(timeout)
        out = []
        for opt_id, child in list(self.children.items()):
            if child.outbox:
                out.append(child.outbox.popleft())
            elif not (child.paused or child.ended or child.hung):
                out.extend(self._next(opt_id, child))
        return out

    def _next(self, opt_id: int, child: _Running) -> list[msg.ChildMessage]:
        s = child.script
        if child.sent_reports < s.reports or s.ending == "forever":
            i = child.sent_reports
            child.sent_reports += 1
            x = np.full((s.batch, len(child.spec.bounds)), float(i))
            return [msg.IterationReport(opt_id, x, np.full(s.batch, s.fx(opt_id, i)), None, i)]
        if s.ending == "crash":
            child.ended = True
            return [msg.ChildFailed(opt_id, "RuntimeError: scripted crash", "Traceback: scripted")]
        return [self._finished(child, stopped=False)]

    def _finished(self, child: _Running, stopped: bool, reason: str = "") -> msg.OptimizerFinished:
        child.ended = True
        return msg.OptimizerFinished(child.spec.opt_id, not stopped, None, float("inf"), {}, stopped, reason)

    def stop_child(self, opt_id: int) -> bool:
        self.killed.append(opt_id)
        self.children[opt_id].ended = True
        return True

    def join_child(self, opt_id: int, timeout: float | None) -> bool:
        return True

    def is_alive(self, opt_id: int) -> bool:
        return not self.children[opt_id].ended

    def close(self) -> None:
        self.closed = True

    def messages_to(self, opt_id: int) -> list[type]:
        return [type(m) for i, m in self.sent if i == opt_id]
