"""RunSession: one ``start_manager()`` session — the loop that drives the children.

The manager holds the run's records (settings, state) and the public API; a RunSession owns what
exists only while a session runs: the backend and the live children. Each turn of its loop it
absorbs the children's reports, asks the policies (``policies.py``, ``interventions.py``, the
checkpoint timing) what to do, and applies their actions in one place, ``apply``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..protocol import messages as msg
from .backend import ChildSpec
from .plugins import backend_kind, run_outputs
from .actions import Action, EndRun, StartOptimizer, StopOptimizer, StopSpawning, TakeCheckpoint
from .checkpointer import Checkpointer
from .interventions import InterventionWatcher
from .policies import (CRASH_LOOP, CRASH_LOOP_LIMIT, CrashLoopGuard, all_ended_decision, checkpoint_due,
                       exit_decision, spawn_decision, status_due, stopper_decisions)
from ..protocol.optlog import class_lineage
from ..protocol.result import Result
from .seeds import derived_seed
from .signals import SignalFlag
from .state import EndKind
from .status import ResourceMonitor

__all__ = ("RunSession", "CRASH_LOOP", "CRASH_LOOP_LIMIT")

POLL_TIMEOUT = 0.1  # s: the longest the loop sleeps, so signals and hung children are seen promptly
# a cluster's "time is up", and Ctrl-C: checkpoint before exiting, so nothing computed is lost
CHECKPOINT_SIGNALS = ("SIGUSR2", "SIGTERM", "SIGINT")

logger = logging.getLogger("glompo_hpc.manager")
_ENDING = {EndKind.EXIT_CONDITIONS: "Exit conditions met"}


class _Child:
    """Manager-side bookkeeping of one live child."""

    __slots__ = ("opt_id", "opt_class", "slots", "last_feedback", "stop_sent", "abandoned")

    def __init__(self, opt_id: int, opt_class: type, slots: int, now: float):
        self.opt_id = opt_id
        self.opt_class = opt_class
        self.slots = slots
        self.last_feedback = now
        self.stop_sent: float | None = None
        self.abandoned = False


class RunSession:
    def __init__(self, manager, backend=None):
        self.m = manager
        self.settings = manager.settings
        self.state = manager.state
        self.backend = backend  # None: made from the settings when the session runs
        self.children: dict[int, _Child] = {}
        control = self.settings.checkpoint_control
        self.checkpointer = Checkpointer(control, self.settings.working_dir) if control is not None else None
        self.interventions = InterventionWatcher(self.settings.paths)
        self.monitor = ResourceMonitor()
        self.crash_guard = CrashLoopGuard()
        self.spawn_stop: StopSpawning | None = None

    # ================================================================ the loop

    def run(self, signals: SignalFlag) -> None:
        state, control = self.state, self.settings.checkpoint_control
        if self.backend is None:
            self.backend = backend_kind(self.settings.backend_name).make()
        state.opt_log.sink = run_outputs().open_log_sink(self.m)
        if self.checkpointer is not None:
            self.checkpointer.remove_leftovers()
            if control.checkpoint_at_init:
                self.apply([TakeCheckpoint()])
        while not state.converged:
            self._start_restored()
            if not self.m.restored_optimizers:
                self._fill_slots()
            self.handle_messages(self.backend.poll(POLL_TIMEOUT))
            self._check_unresponsive()
            self.apply(stopper_decisions(self.settings, state, self._stoppable()))
            self.apply([exit_decision(self.settings, self.m.view())])
            # a periodic checkpoint that fell due in this turn is still written when the run ends in it:
            # children fast enough to finish the budget between two turns would otherwise leave none
            if state.converged and control is not None and (control.checkpoint_at_conv or
                                                           checkpoint_due(control, state, time.time())):
                self.apply([TakeCheckpoint(then_stop=True)])
            if not state.converged:
                alive = any(not c.abandoned for c in self.children.values())
                self.apply([all_ended_decision(state, bool(self.m.restored_optimizers), alive, self.spawn_stop)])
            self.log_status()
            self.apply(self.interventions.check(set(self._stoppable())))
            if not state.converged and control is not None and checkpoint_due(control, state, time.time()):
                self.apply([TakeCheckpoint()])
            if signals.received is not None and not state.converged:  # once the outcome is decided, it stays
                self.interrupt(signals.received.name)
        signals.outcome_decided()

    def apply(self, actions: list[Action | None]) -> None:
        """The one place where the policies' decisions take effect."""
        for action in actions:
            if action is None:
                continue
            if isinstance(action, StartOptimizer):
                self._start_new(action.option)
            elif isinstance(action, StopOptimizer):
                if action.opt_id in self._stoppable():  # it may have ended since the decision
                    self.stop_optimizer(action.opt_id, action.reason)
            elif isinstance(action, TakeCheckpoint):
                self.take_checkpoint(then_stop=action.then_stop)
            elif isinstance(action, EndRun):
                self.state.finish(action.kind, action.detail)
                logger.info("%s: %s", _ENDING.get(action.kind, "Ending"), action.detail)
            elif isinstance(action, StopSpawning):
                self.state.spawning_opts = False
                self.spawn_stop = action
                if action.outcome is not None:
                    logger.error("%s", action.outcome.detail)

    def interrupt(self, signal_name: str, checkpoint: bool = True) -> None:
        m = self.m
        m.interrupted = signal_name
        self.state.finish(EndKind.INTERRUPTED, f"interrupted by {signal_name}")
        logger.warning("Run interrupted by %s: stopping children and writing outputs", signal_name)
        if checkpoint and signal_name in CHECKPOINT_SIGNALS and self.checkpointer is not None:
            self.state.exit_checkpoint = self.take_checkpoint(then_stop=True)

    def take_checkpoint(self, then_stop: bool = False):
        """A checkpoint now, with the configured control (or default settings if none)."""
        from ..checkpointing import CheckpointingControl
        checkpointer = self.checkpointer or Checkpointer(CheckpointingControl(), self.settings.working_dir)
        return checkpointer.take(self.settings, self.state, self.m.task, self.state.t_start, self, then_stop)

    def end_run(self, reason: str) -> None:
        self.apply([EndRun(EndKind.INTERVENTION, reason)])

    # ---------------------------------------------------------------- what the checkpointer reads (ChildChannel)

    def pausable(self) -> dict[int, tuple[type, int]]:
        return {i: (c.opt_class, c.slots) for i, c in self.children.items() if c.stop_sent is None and not c.abandoned}

    def alive(self) -> set[int]:
        return set(self.children)

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        self.backend.send(opt_id, message)

    def gather(self, expected: set[int], kind: type, timeout: float) -> dict[int, msg.ChildMessage]:
        answers: dict[int, msg.ChildMessage] = {}
        deadline = time.monotonic() + timeout
        while (expected - set(answers)) & set(self.children) and time.monotonic() < deadline:
            messages = self.backend.poll(0.05)
            answers.update((m.opt_id, m) for m in messages if isinstance(m, kind))
            self.handle_messages(messages)
        return answers

    def _stoppable(self) -> list[int]:
        return [i for i, c in self.children.items() if c.stop_sent is None]

    # ---------------------------------------------------------------- spawning

    def _free_slots(self) -> int:
        return self.settings.max_jobs - sum(c.slots for c in self.children.values() if not c.abandoned)

    def _fill_slots(self) -> None:
        s, state = self.settings, self.state
        while state.spawning_opts and (free := self._free_slots()) > 0:
            # each start may satisfy an exit condition (e.g. MaxOptsStarted)
            self.apply([exit_decision(s, self.m.view())])
            if state.converged:
                return
            decision = spawn_decision(s, self.m.view(), free)
            if decision is None:
                return
            self.apply([decision])

    def _start_new(self, option) -> None:
        s, state = self.settings, self.state
        calls_before = s.x0_generator.n_task_calls
        x0 = np.asarray(s.x0_generator.generate(self.m.view()), dtype=float)
        # generators that evaluate the task (AnnealingGenerator) count those calls themselves
        state.f_counter += s.x0_generator.n_task_calls - calls_before
        optimizer = option.build()
        state.o_counter += 1
        optimizer.reseed(derived_seed(s.seed, state.o_counter))  # before anything records its settings
        state.opt_log.add_optimizer(state.o_counter, type(optimizer).__name__, time.time(), option.workers,
                                    repr(optimizer),
                                    class_lineage(type(optimizer)))
        self._launch(state.o_counter, optimizer, x0, option.workers)
        state.last_opt_spawn = (state.f_counter, state.o_counter)
        logger.info("Started optimizer %d: %r at x0=%s", state.o_counter, optimizer, np.array2string(x0, precision=4))

    def _start_restored(self) -> None:
        """Restart the optimizers a checkpoint saved, before any new one, as slots allow."""
        restored = self.m.restored_optimizers
        while restored and restored[0][1].workers <= self._free_slots():
            opt_id, optimizer = restored.pop(0)
            x0, _, _ = self.state.opt_log.best(opt_id)
            x0 = x0 if x0 is not None else self.settings.x0_generator.generate(self.m.view())
            self._launch(opt_id, optimizer, x0, optimizer.workers)
            logger.info("Resumed optimizer %d: %r", opt_id, optimizer)

    def _launch(self, opt_id: int, optimizer, x0: np.ndarray, slots: int) -> None:
        s = self.settings
        optimizer.is_log_detailed = s.is_log_detailed
        printstreams = None
        if s.split_printstreams:
            printstreams = s.paths.printstreams
            printstreams.mkdir(exist_ok=True)
        spec = ChildSpec(opt_id, optimizer, self.m.task, x0, s.bounds.copy(), s.is_log_detailed, printstreams)
        self.children[opt_id] = _Child(opt_id, type(optimizer), slots, time.monotonic())
        self.backend.start_child(spec)

    # ---------------------------------------------------------------- messages

    def handle_messages(self, messages: list[msg.ChildMessage]) -> None:
        improved = False
        for message in messages:
            child = self.children.get(message.opt_id)
            if child is not None:
                child.last_feedback = time.monotonic()
            if isinstance(message, msg.IterationReport):
                improved |= self._absorb_report(message)
            elif isinstance(message, msg.OptimizerFinished):
                self._optimizer_finished(message)
            elif isinstance(message, msg.ChildFailed):
                self._optimizer_failed(message)
        if improved and self.settings.incumbent_sharing:
            self._share_incumbent()

    def _absorb_report(self, report: msg.IterationReport) -> bool:
        state = self.state
        k = len(report.fx)
        if k == 0:
            return False
        call_ids = np.arange(state.f_counter + 1, state.f_counter + k + 1, dtype=np.int64)
        state.f_counter += k
        state.opt_log.put_batch(report.opt_id, call_ids, report.x, report.fx, report.extras)
        finite = np.where(np.isfinite(report.fx), report.fx, np.inf)
        i = int(np.argmin(finite))
        if finite[i] < state.result.fx:
            state.result = Result(report.x[i].copy(), float(finite[i]), {},
                                  {"opt_id": report.opt_id, "type": state.opt_log.records[report.opt_id].opt_type})
            return True
        return False

    def _share_incumbent(self) -> None:
        best = self.state.result
        for opt_id, child in self.children.items():
            if opt_id != best.origin["opt_id"] and child.stop_sent is None:
                self.backend.send(opt_id, msg.InjectIncumbent(best.x, best.fx))

    def _optimizer_finished(self, message: msg.OptimizerFinished) -> None:
        state = self.state
        if message.opt_id not in self.children:
            return
        if message.opt_id in state.stopped_opts:
            cond = "GloMPO Termination"
        elif message.stopped:
            cond = f"Stopped: {message.reason}"
        else:
            cond = "Optimizer convergence" if message.success else "Optimizer ended without convergence"
            state.conv_counter += 1
        self._retire(message.opt_id, cond)
        logger.info("Optimizer %d ended: %s (best fx %s)", message.opt_id, cond, message.fx)

    def _optimizer_failed(self, message: msg.ChildFailed) -> None:
        if message.opt_id not in self.children:
            return  # it was already ended by force; its end is recorded
        self.state.opt_crashed = True
        if message.traceback:
            self.state.opt_log.put_message(message.opt_id, message.traceback)
        self._retire(message.opt_id, f"Error termination: {message.error}")
        logger.error("Optimizer %d crashed: %s\n%s", message.opt_id, message.error, message.traceback)
        self.apply([self.crash_guard.crashed(self.state, message.error)])

    def _retire(self, opt_id: int, end_cond: str) -> None:
        if self.children.pop(opt_id, None) is None:
            return
        self.state.opt_log.put_metadata(opt_id, t_end=time.time(), end_cond=end_cond)
        self.backend.join_child(opt_id, 1.0)

    # ---------------------------------------------------------------- stopping

    def stop_optimizer(self, opt_id: int, reason: str) -> None:
        child = self.children[opt_id]
        self.state.stopped_opts[opt_id] = time.time()
        child.stop_sent = time.monotonic()
        self.backend.send(opt_id, msg.Stop(reason))
        self.state.opt_log.put_message(opt_id, f"Stopped by manager: {reason}")
        logger.info("Stopping optimizer %d: %s", opt_id, reason)
        if self.settings.aggressive_stop and self.backend.proc_backend:
            self._force_end(opt_id, "GloMPO Termination")

    def _force_end(self, opt_id: int, end_cond: str) -> None:
        self._force_end_all([opt_id], end_cond)

    def _force_end_all(self, opt_ids: list[int], end_cond: str) -> None:
        """End children by force, all ordered at once (one wait for all, not one per child)."""
        for opt_id, stopped in self.backend.stop_children(opt_ids).items():
            if stopped:
                self._retire(opt_id, end_cond)
            else:  # a thread cannot be killed: give its slot back and leave it to end with the process
                self.children[opt_id].abandoned = True
                self.state.opt_log.put_metadata(opt_id, end_cond=end_cond + " (thread abandoned)")

    def _check_unresponsive(self) -> None:
        s = self.settings
        if not s.allow_forced_terminations:
            return
        now = time.monotonic()
        overdue = []
        for opt_id, child in list(self.children.items()):
            silent = now - (child.stop_sent or child.last_feedback)
            if not child.abandoned and silent > s.force_terminations_after:
                what = "did not end after its stop signal" if child.stop_sent else "sent no result"
                logger.warning("Optimizer %d %s for %.1f s: forcing its termination", opt_id, what, silent)
                overdue.append(opt_id)
        if overdue:
            self._force_end_all(overdue, "Forced GloMPO Termination")

    def log_status(self, force: bool = False) -> None:
        state = self.state
        now = time.time()
        if not force and not status_due(self.settings, state, now):
            return
        state.last_status = now
        cpu, mem, load = self.monitor.snapshot()
        state.cpu_history.append(cpu)
        state.mem_history.append(mem)
        state.load_history.append(load)
        elapsed = state.t_used + now - state.t_start
        logger.info("Status: %d evaluations (%.1f/s), best fx %.6g, %d optimizers alive, CPU %.0f%%, "
                    "memory %.1f MB, load %.2f", state.f_counter, state.f_counter / max(elapsed, 1e-9),
                    state.result.fx, len(self.children), cpu, mem / 2 ** 20, load[0])

    # ================================================================ ending

    def shutdown(self) -> None:
        """Stop every child, keep its last reports, and end it within ``end_timeout``."""
        if self.backend is None:
            return
        end_timeout = self.settings.end_timeout
        for opt_id, child in self.children.items():
            if child.stop_sent is None:
                child.stop_sent = time.monotonic()
                self.backend.send(opt_id, msg.Stop("manager is shutting down"))
        deadline = None if end_timeout is None else time.monotonic() + end_timeout
        while any(not c.abandoned for c in self.children.values()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.handle_messages(self.backend.poll(POLL_TIMEOUT))
            self._check_unresponsive()
        stragglers = [opt_id for opt_id, child in self.children.items() if not child.abandoned]
        for opt_id in stragglers:
            logger.warning("Optimizer %d did not end within end_timeout=%s s", opt_id, end_timeout)
        self._force_end_all(stragglers, "Forced GloMPO Termination")
        self.handle_messages(self.backend.poll(0))  # reports that raced with the termination
        self.backend.close()
