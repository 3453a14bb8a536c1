"""RunSession: one ``start_manager()`` session — the loop that drives the children.

The manager holds the optimization's state and the public API; a RunSession holds what exists
only while a session runs (the backend, the live children, the checkpointer, the intervention
watcher) and makes the decisions: spawn, absorb reports, stop, checkpoint, exit, shut down.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..backends import ChildSpec, make_backend
from . import messages as msg
from .checkpointer import Checkpointer
from .interventions import InterventionWatcher
from .result import Result
from .seeds import derived_seed
from .signals import SignalFlag
from .status import ResourceMonitor

__all__ = ("RunSession",)

POLL_TIMEOUT = 0.1  # s: the longest the loop sleeps, so signals and hung children are seen promptly
# a cluster's "time is up", and Ctrl-C: checkpoint before exiting, so nothing computed is lost
CHECKPOINT_SIGNALS = ("SIGUSR2", "SIGTERM", "SIGINT")
# Optimizers in a row that crash while no evaluation is made anywhere: then every new one would
# crash too (a setting its class rejects only when it runs, a task that always raises), and the
# loop would start them forever, filling the disk with their logs. No new ones are started.
CRASH_LOOP_LIMIT = 20
CRASH_LOOP = "optimizers keep crashing"  # the start of the run's exit_reason then

logger = logging.getLogger("glompo_hpc.manager")


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
    def __init__(self, manager):
        self.m = manager
        self.backend = None
        self.children: dict[int, _Child] = {}
        control = manager.checkpoint_control
        self.checkpointer = Checkpointer(self, control) if control is not None else None
        self.interventions = InterventionWatcher(manager.paths)
        self.monitor = ResourceMonitor()
        self.crashes_in_a_row = 0
        self.f_counter_at_crash = -1
        self.spawn_stop_reason: str | None = None

    # ================================================================ the loop

    def run(self, signals: SignalFlag) -> None:
        from ..outputs import open_log_sink

        m = self.m
        self.backend = m.backend = make_backend(m.backend_name)
        m.opt_log.sink = open_log_sink(m)
        if self.checkpointer and self.checkpointer.control.checkpoint_at_init:
            self.checkpointer.take()
        while not m.converged:
            self._start_restored()
            if not m._restored:
                self._fill_slots()
            self.handle_messages(self.backend.poll(POLL_TIMEOUT))
            self._check_unresponsive()
            self._check_stoppers()
            self._check_exit()
            if m.converged and self.checkpointer and self.checkpointer.control.checkpoint_at_conv:
                self.checkpointer.take(then_stop=True)
            if not m.converged:
                self._check_all_ended()
            self.log_status()
            self.interventions.check(self)
            if not m.converged and self.checkpointer and self.checkpointer.due():
                self.checkpointer.take()
            if signals.received is not None and not m.converged:  # once the outcome is decided, it stays
                self.interrupt(signals.received.name)
        signals.outcome_decided()

    def interrupt(self, signal_name: str, checkpoint: bool = True) -> None:
        m = self.m
        m.interrupted = signal_name
        m.converged = True
        m.exit_reason = f"interrupted by {signal_name}"
        logger.warning("Run interrupted by %s: stopping children and writing outputs", signal_name)
        if checkpoint and signal_name in CHECKPOINT_SIGNALS and self.checkpointer is not None:
            m.exit_checkpoint = self.checkpointer.take(then_stop=True)

    def take_checkpoint(self, then_stop: bool = False):
        """A checkpoint now, with the configured control (or default settings if none)."""
        from ..checkpointing import CheckpointingControl
        checkpointer = self.checkpointer or Checkpointer(self, CheckpointingControl())
        return checkpointer.take(then_stop=then_stop)

    # ---------------------------------------------------------------- spawning

    def _free_slots(self) -> int:
        return self.m.max_jobs - sum(c.slots for c in self.children.values() if not c.abandoned)

    def _fill_slots(self) -> None:
        m = self.m
        while m.spawning_opts and (free := self._free_slots()) > 0:
            self._check_exit()  # each start may satisfy an exit condition (e.g. MaxOptsStarted)
            if m.converged:
                return
            option = m.opt_selector.select_optimizer(m, free)
            if option is False:
                m.spawning_opts = False
                logger.info("Spawning of new optimizers is stopped")
                return
            if option is None or option.workers > free:
                return
            self._start_new(option)

    def _start_new(self, option) -> None:
        m = self.m
        calls_before = getattr(m.x0_generator, "n_task_calls", 0)
        x0 = np.asarray(m.x0_generator.generate(m), dtype=float)
        # generators that evaluate the task (AnnealingGenerator) count those calls themselves
        m.f_counter += getattr(m.x0_generator, "n_task_calls", 0) - calls_before
        optimizer = option.build()
        m.o_counter += 1
        optimizer.reseed(derived_seed(m.seed, m.o_counter))  # before anything records its settings
        m.opt_log.add_optimizer(m.o_counter, type(optimizer).__name__, time.time(), option.workers, repr(optimizer))
        self._launch(m.o_counter, optimizer, x0, option.workers)
        m.last_opt_spawn = (m.f_counter, m.o_counter)
        logger.info("Started optimizer %d: %r at x0=%s", m.o_counter, optimizer, np.array2string(x0, precision=4))

    def _start_restored(self) -> None:
        """Restart the optimizers a checkpoint saved, before any new one, as slots allow."""
        m = self.m
        while m._restored and m._restored[0][1].workers <= self._free_slots():
            opt_id, optimizer = m._restored.pop(0)
            x0, _, _ = m.opt_log.best(opt_id)
            x0 = x0 if x0 is not None else m.x0_generator.generate(m)
            self._launch(opt_id, optimizer, x0, optimizer.workers)
            logger.info("Resumed optimizer %d: %r", opt_id, optimizer)

    def _launch(self, opt_id: int, optimizer, x0: np.ndarray, slots: int) -> None:
        m = self.m
        optimizer.is_log_detailed = m.is_log_detailed
        printstreams = None
        if m.split_printstreams:
            printstreams = m.paths.printstreams
            printstreams.mkdir(exist_ok=True)
        spec = ChildSpec(opt_id, optimizer, m.task, x0, m.bounds.copy(), m.is_log_detailed, printstreams)
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
        if improved and self.m.incumbent_sharing:
            self._share_incumbent()

    def _absorb_report(self, report: msg.IterationReport) -> bool:
        m = self.m
        k = len(report.fx)
        if k == 0:
            return False
        call_ids = np.arange(m.f_counter + 1, m.f_counter + k + 1, dtype=np.int64)
        m.f_counter += k
        m.opt_log.put_batch(report.opt_id, call_ids, report.x, report.fx, report.extras)
        finite = np.where(np.isfinite(report.fx), report.fx, np.inf)
        i = int(np.argmin(finite))
        if finite[i] < m.result.fx:
            m.result = Result(report.x[i].copy(), float(finite[i]), {},
                              {"opt_id": report.opt_id, "type": m.opt_log.records[report.opt_id].opt_type})
            return True
        return False

    def _share_incumbent(self) -> None:
        best = self.m.result
        for opt_id, child in self.children.items():
            if opt_id != best.origin["opt_id"] and child.stop_sent is None:
                self.backend.send(opt_id, msg.InjectIncumbent(best.x, best.fx))

    def _optimizer_finished(self, message: msg.OptimizerFinished) -> None:
        m = self.m
        if message.opt_id not in self.children:
            return
        if message.opt_id in m.stopped_opts:
            cond = "GloMPO Termination"
        elif message.stopped:
            cond = f"Stopped: {message.reason}"
        else:
            cond = "Optimizer convergence" if message.success else "Optimizer ended without convergence"
            m.conv_counter += 1
        self._retire(message.opt_id, cond)
        logger.info("Optimizer %d ended: %s (best fx %s)", message.opt_id, cond, message.fx)

    def _optimizer_failed(self, message: msg.ChildFailed) -> None:
        if message.opt_id not in self.children:
            return  # it was already ended by force; its end is recorded
        self.m.opt_crashed = True
        if message.traceback:
            self.m.opt_log.put_message(message.opt_id, message.traceback)
        self._retire(message.opt_id, f"Error termination: {message.error}")
        logger.error("Optimizer %d crashed: %s\n%s", message.opt_id, message.error, message.traceback)
        self._count_crash(message.error)

    def _count_crash(self, error: str) -> None:
        """Stop spawning after CRASH_LOOP_LIMIT crashes with no evaluation made in between;
        optimizers still alive go on, and the run ends when they have."""
        m = self.m
        if m.f_counter != self.f_counter_at_crash:
            self.crashes_in_a_row = 0  # evaluations since the last crash: not a loop
        self.f_counter_at_crash = m.f_counter
        self.crashes_in_a_row += 1
        if self.crashes_in_a_row >= CRASH_LOOP_LIMIT and m.spawning_opts:
            m.spawning_opts = False
            self.spawn_stop_reason = (f"{CRASH_LOOP}: {self.crashes_in_a_row} in a row crashed with no evaluation "
                                      f"made in between (last: {error}); no new ones were started")
            logger.error("%s", self.spawn_stop_reason)

    def _retire(self, opt_id: int, end_cond: str) -> None:
        if self.children.pop(opt_id, None) is None:
            return
        self.m.opt_log.put_metadata(opt_id, t_end=time.time(), end_cond=end_cond)
        self.backend.join_child(opt_id, 1.0)

    # ---------------------------------------------------------------- decisions

    def stop_optimizer(self, opt_id: int, reason: str) -> None:
        m = self.m
        child = self.children[opt_id]
        m.stopped_opts[opt_id] = time.time()
        child.stop_sent = time.monotonic()
        self.backend.send(opt_id, msg.Stop(reason))
        m.opt_log.put_message(opt_id, f"Stopped by manager: {reason}")
        logger.info("Stopping optimizer %d: %s", opt_id, reason)
        if m.aggressive_stop and self.backend.proc_backend:
            self._force_end(opt_id, "GloMPO Termination")

    def _force_end(self, opt_id: int, end_cond: str) -> None:
        if self.backend.stop_child(opt_id):
            self._retire(opt_id, end_cond)
        else:  # a thread cannot be killed: give its slot back and leave it to end with the process
            self.children[opt_id].abandoned = True
            self.m.opt_log.put_metadata(opt_id, end_cond=end_cond + " (thread abandoned)")

    def _check_unresponsive(self) -> None:
        m = self.m
        if not m.allow_forced_terminations:
            return
        now = time.monotonic()
        for opt_id, child in list(self.children.items()):
            silent = now - (child.stop_sent or child.last_feedback)
            if not child.abandoned and silent > m.force_terminations_after:
                what = "did not end after its stop signal" if child.stop_sent else "sent no result"
                logger.warning("Optimizer %d %s for %.1f s: forcing its termination", opt_id, what, silent)
                self._force_end(opt_id, "Forced GloMPO Termination")

    def _check_stoppers(self) -> None:
        m = self.m
        if m.stoppers is None or m.f_counter - m.last_stopcheck < m.stopcheck_interval or not m.result.origin:
            return
        m.last_stopcheck = m.f_counter
        m.stopcheck_counter += 1
        best_id = m.result.origin["opt_id"]
        for opt_id, child in list(self.children.items()):
            if child.stop_sent is not None or m.opt_log.n_evals(opt_id) == 0:
                continue
            if opt_id == best_id and not m.apply_stoppers_to_best:
                continue
            _reset(m.stoppers)
            if m.stoppers(m.opt_log, best_id, opt_id):
                self.stop_optimizer(opt_id, _text_with_result(m.stoppers))

    def _check_exit(self) -> None:
        m = self.m
        _reset(m.exit_conditions)
        if m.exit_conditions(m):
            m.converged = True
            reason = getattr(m.exit_conditions, "reason", None)
            m.exit_reason = reason() if callable(reason) else str(m.exit_conditions)
            logger.info("Exit conditions met: %s", m.exit_reason)

    def _check_all_ended(self) -> None:
        m = self.m
        if not m.spawning_opts and not m._restored and not any(not c.abandoned for c in self.children.values()):
            m.converged = True
            m.exit_reason = self.spawn_stop_reason or "no optimizers alive and spawning is stopped"
            logger.info("Ending: %s", m.exit_reason)

    def end_run(self, reason: str) -> None:
        self.m.converged = True
        self.m.exit_reason = reason
        logger.info("Ending: %s", reason)

    def log_status(self, force: bool = False) -> None:
        m = self.m
        now = time.time()
        if not force and now - m.last_status < m.status_interval:
            return
        m.last_status = now
        cpu, mem, load = self.monitor.snapshot()
        m.cpu_history.append(cpu)
        m.mem_history.append(mem)
        m.load_history.append(load)
        elapsed = m.t_used + now - m.t_start
        logger.info("Status: %d evaluations (%.1f/s), best fx %.6g, %d optimizers alive, CPU %.0f%%, "
                    "memory %.1f MB, load %.2f", m.f_counter, m.f_counter / max(elapsed, 1e-9),
                    m.result.fx, len(self.children), cpu, mem / 2 ** 20, load[0])

    # ================================================================ ending

    def shutdown(self) -> None:
        """Stop every child, keep its last reports, and end it within ``end_timeout``."""
        if self.backend is None:
            return
        m = self.m
        for opt_id, child in self.children.items():
            if child.stop_sent is None:
                child.stop_sent = time.monotonic()
                self.backend.send(opt_id, msg.Stop("manager is shutting down"))
        deadline = None if m.end_timeout is None else time.monotonic() + m.end_timeout
        while any(not c.abandoned for c in self.children.values()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.handle_messages(self.backend.poll(POLL_TIMEOUT))
            self._check_unresponsive()
        for opt_id, child in list(self.children.items()):
            if child.abandoned:
                continue
            logger.warning("Optimizer %d did not end within end_timeout=%s s", opt_id, m.end_timeout)
            self._force_end(opt_id, "Forced GloMPO Termination")
        self.handle_messages(self.backend.poll(0))  # reports that raced with the termination
        self.backend.close()


def _reset(criterion) -> None:
    reset = getattr(criterion, "reset", None)
    if callable(reset):
        reset()


def _text_with_result(criterion) -> str:
    text = getattr(criterion, "str_with_result", None)
    return text() if callable(text) else str(criterion)
