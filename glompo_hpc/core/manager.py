"""GloMPOManager: the user's entry point. It decides; backends only carry messages.

The manager starts child optimizers in free slots (selector + generator), absorbs their batched
reports into the columnar OptimizerLog, stops poor ones (stoppers), shares the incumbent, and
ends the run when an exit condition holds. It never imports a transport: it drives a Backend
through ``start_child``/``send``/``poll``/``stop_child``/``join_child``/``close``.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..backends import BACKENDS, Backend, ChildSpec, default_max_jobs, make_backend
from ..checkpointing import CheckpointingControl
from ..errors import ConfigurationError, GloMPOError
from . import messages as msg
from .optlog import OptimizerLog
from .paths import RunPaths
from .result import Result
from .setup_checks import check_bounds, check_choice, check_int, check_number, check_task
from .signals import SignalFlag
from .status import ResourceMonitor

__all__ = ("GloMPOManager",)

_POLL_TIMEOUT = 0.1  # s: the longest the loop sleeps, so signals and hung children are seen promptly


class _Child:
    """Manager-side bookkeeping of one live child."""

    __slots__ = ("opt_id", "slots", "last_feedback", "stop_sent", "abandoned")

    def __init__(self, opt_id: int, slots: int, now: float):
        self.opt_id = opt_id
        self.slots = slots
        self.last_feedback = now
        self.stop_sent: float | None = None
        self.abandoned = False


class GloMPOManager:
    """Runs a globally managed parallel optimization. See docs/api.md for every attribute.

    Create with ``GloMPOManager().setup(...)`` / ``GloMPOManager.new_manager(...)`` (a new run) or
    ``load_checkpoint(...)`` / ``load_manager(...)`` (a resumed run), then call ``start_manager()``.
    """

    @classmethod
    def new_manager(cls, *args: Any, **kwargs: Any) -> "GloMPOManager":
        """Class method wrapper around ``setup()``."""
        manager = cls()
        manager.setup(*args, **kwargs)
        return manager

    @classmethod
    def load_manager(cls, *args: Any, **kwargs: Any) -> "GloMPOManager":
        """Class method wrapper around ``load_checkpoint()``."""
        manager = cls()
        manager.load_checkpoint(*args, **kwargs)
        return manager

    def __init__(self) -> None:
        self.logger = logging.getLogger("glompo_hpc.manager")
        self._is_initialised = False
        self.task: Callable[[Sequence[float]], float] | None = None
        self.bounds: np.ndarray | None = None
        self.n_parms: int | None = None
        self.opt_selector = None
        self.x0_generator = None
        self.stoppers = None
        self.exit_conditions = None
        self.working_dir: Path | None = None
        self.overwrite_existing = False
        self.max_jobs: int | None = None
        self.backend_name: str | None = None
        self.proc_backend: bool | None = None
        self.opts_daemonic: bool | None = None
        self.incumbent_sharing = False
        self.stopcheck_interval = 100
        self.apply_stoppers_to_best = False
        self.status_interval = 600.0
        self.checkpoint_control: CheckpointingControl | None = None
        self.summary_files = 0
        self.is_log_detailed = False
        self.allow_forced_terminations = False
        self._too_long: float = -1
        self.aggressive_stop = False
        self.end_timeout: float | None = None
        self.split_printstreams = True
        self.opt_log: OptimizerLog | None = None
        self.backend: Backend | None = None

        self.result = Result()
        self.exit_reason = ""
        self.interrupted: str | None = None
        self.converged = False
        self.spawning_opts = True
        self.opt_crashed = False
        self.f_counter = 0
        self.o_counter = 0
        self.conv_counter = 0
        self.stopcheck_counter = 0
        self.last_stopcheck = 0
        self.last_opt_spawn: tuple[int, int] = (0, 0)
        self.last_status = 0.0
        self.last_checkpoint_eval = 0
        self.last_checkpoint_time = 0.0
        self.checkpoint_history: set[str] = set()
        self.stopped_opts: dict[int, float] = {}
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.t_used = 0.0
        self.dt_starts: list[datetime] = []
        self.dt_ends: list[datetime] = []
        self.cpu_history: list[float] = []
        self.mem_history: list[float] = []
        self.load_history: list[tuple[float, float, float]] = []
        self._children: dict[int, _Child] = {}
        self._running = False
        self._monitor: ResourceMonitor | None = None

    # ================================================================ set-up

    @property
    def is_initialised(self) -> bool:
        """True once ``setup`` or ``load_checkpoint`` has run; a second initialisation raises."""
        return self._is_initialised

    @property
    def optimizer_queue(self) -> Backend | None:
        """The transport into which children place their results (GloMPO's results queue)."""
        return self.backend

    @property
    def force_terminations_after(self) -> float:
        return self._too_long

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.working_dir)

    def setup(self, task: Callable[[Sequence[float]], float], bounds: Sequence[tuple[float, float]], opt_selector,
              working_dir: str | Path = ".", overwrite_existing: bool = False, max_jobs: int | None = None,
              backend: str = "processes", exit_conditions=None, x0_generator=None, stoppers=None,
              share_best_solutions: bool = False, stopcheck_interval: int = 100,
              apply_stoppers_to_best: bool = False, status_interval: float = 600,
              checkpoint_control: CheckpointingControl | None = None, summary_files: int = 0,
              is_log_detailed: bool = False, force_terminations_after: float = -1, aggressive_stop: bool = False,
              end_timeout: float | None = None, split_printstreams: bool = True) -> "GloMPOManager":
        """Build a new optimization. Parameters are those of GloMPO's ``setup`` (see docs/api.md).

        Raises:
            ConfigurationError: an argument is invalid; the message names it and its value.
            FileExistsError: ``working_dir`` holds results of an earlier run and ``overwrite_existing`` is False.
            RuntimeError: the manager is already initialised.
        """
        from ..exit_conditions import KillsAfterConvergence
        from ..generators import RandomGenerator

        if self._is_initialised:
            raise RuntimeError("this GloMPOManager is already initialised; create a new one for a new run")
        check_task(task)
        self.task = task
        self.bounds = check_bounds(bounds)
        self.n_parms = len(self.bounds)
        if not callable(getattr(opt_selector, "select_optimizer", None)):
            raise ConfigurationError(f"opt_selector must be a BaseSelector, got {opt_selector!r}")
        self.opt_selector = opt_selector
        self.backend_name = check_choice("backend", backend, BACKENDS)
        self.proc_backend = backend != "threads"
        self.opts_daemonic = backend != "processes_forced"
        self.max_jobs = default_max_jobs(backend) if max_jobs is None else check_int("max_jobs", max_jobs, 1)
        self._check_options_fit()
        self.exit_conditions = KillsAfterConvergence() if exit_conditions is None else exit_conditions
        self.x0_generator = RandomGenerator(self.bounds) if x0_generator is None else x0_generator
        self.stoppers = stoppers
        for name, obj, attr in (("exit_conditions", self.exit_conditions, "__call__"),
                                ("x0_generator", self.x0_generator, "generate"),
                                ("stoppers", stoppers, "__call__")):
            if obj is not None and not callable(getattr(obj, attr, None)):
                raise ConfigurationError(f"{name} has no {attr}(): got {obj!r}")
        self.incumbent_sharing = bool(share_best_solutions)
        self.stopcheck_interval = check_int("stopcheck_interval", stopcheck_interval, 1)
        self.apply_stoppers_to_best = bool(apply_stoppers_to_best)
        self.status_interval = check_number("status_interval", status_interval, 0, strict=True)
        if checkpoint_control is not None and not isinstance(checkpoint_control, CheckpointingControl):
            raise ConfigurationError(f"checkpoint_control must be a CheckpointingControl, got {checkpoint_control!r}")
        self.checkpoint_control = checkpoint_control
        self.summary_files = check_int("summary_files", summary_files, 0)
        if self.summary_files > 3:
            raise ConfigurationError(f"summary_files must be 0, 1, 2 or 3, got {summary_files!r}")
        self.is_log_detailed = bool(is_log_detailed)
        self._set_force_terminations(check_number("force_terminations_after", force_terminations_after, -1))
        self.aggressive_stop = bool(aggressive_stop)
        default_timeout = None if backend == "threads" else 10.0
        self.end_timeout = check_number("end_timeout", end_timeout, 0, allow_none=True) \
            if end_timeout is not None else default_timeout
        self.split_printstreams = bool(split_printstreams)
        self.overwrite_existing = bool(overwrite_existing)
        self._prepare_working_dir(working_dir)
        self.opt_log = OptimizerLog(self.n_parms)
        self._is_initialised = True
        self.logger.info("Manager set up: %d parameters, %d slots, backend %s", self.n_parms, self.max_jobs, backend)
        return self

    def _check_options_fit(self) -> None:
        for option in getattr(self.opt_selector, "options", ()):
            if option.workers > self.max_jobs:
                raise ConfigurationError(
                    f"optimizer option {option} needs {option.workers} slots but max_jobs is {self.max_jobs}")

    def _set_force_terminations(self, seconds: float) -> None:
        self._too_long = seconds
        self.allow_forced_terminations = seconds > 0
        if self.allow_forced_terminations and not self.proc_backend:
            self.logger.warning("force_terminations_after is set but the backend is 'threads': threads cannot be "
                                "terminated; hung optimizers will be abandoned (their slots are reused) instead")

    def _prepare_working_dir(self, working_dir: str | Path) -> None:
        self.working_dir = Path(working_dir)
        try:
            self.working_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigurationError(f"working_dir {str(self.working_dir)!r} cannot be created: {e}") from None
        old = self.paths.existing_results()
        if old and not self.overwrite_existing:
            names = ", ".join(p.name for p in old)
            raise FileExistsError(f"working_dir {str(self.working_dir)!r} holds results of an earlier run ({names}); "
                                  "pass overwrite_existing=True or choose another directory")

    def load_checkpoint(self, path: str | Path, task_loader: Callable | None = None, task: Callable | None = None,
                        **glompo_kwargs: Any) -> "GloMPOManager":
        """Resume a run from a checkpoint file."""
        raise NotImplementedError("load_checkpoint: resuming from checkpoints is not available in this version "
                                  "of glompo_hpc yet (the checkpointing feature is pending)")

    def checkpoint(self) -> None:
        """Save the manager and its optimizers to disk."""
        raise NotImplementedError("checkpoint: checkpointing is not available in this version of glompo_hpc yet")

    # ================================================================ the run

    def start_manager(self) -> Result:
        """Run the optimization until an exit condition holds; returns the best result.

        On Ctrl-C, SIGTERM or SIGUSR2 the children are stopped, the outputs written and the result
        so far returned; ``interrupted`` then names the signal. A crash of the manager itself is
        re-raised after the same clean-up.
        """
        if not self._is_initialised:
            raise RuntimeError("the manager is not initialised: call setup() or load_checkpoint() first")
        if self._running:
            raise RuntimeError("start_manager() is already running")
        if self.converged:
            self.logger.warning("this optimization has already ended (%s)", self.exit_reason)
            return self.result
        self._running = True
        self._session_start()
        try:
            with SignalFlag() as signals:
                try:
                    self._run_loop(signals)
                except KeyboardInterrupt:
                    self._interrupt("SIGINT")
                except BaseException as e:
                    self.exit_reason = f"manager crashed: {type(e).__name__}: {e}"
                    self.logger.critical("Manager crashed:\n%s", traceback.format_exc())
                    raise
                finally:
                    self._shutdown_children()
                    self._session_end()
                    self._write_outputs()
        finally:
            self._running = False
        return self.result

    def _run_loop(self, signals: SignalFlag) -> None:
        from ..outputs import open_log_sink

        self.backend = make_backend(self.backend_name)
        self.opt_log.sink = open_log_sink(self)
        self._purge_old_results()
        self._fill_slots()
        while not self.converged:
            self._handle_messages(self.backend.poll(_POLL_TIMEOUT))
            self._check_unresponsive()
            self._check_stoppers()
            self._check_exit()
            if not self.converged:
                self._fill_slots()
                self._check_all_ended()
            self._log_status()
            if signals.received is not None:
                self._interrupt(signals.received.name)

    def _interrupt(self, signal_name: str) -> None:
        self.interrupted = signal_name
        self.converged = True
        self.exit_reason = f"interrupted by {signal_name}"
        self.logger.warning("Run interrupted by %s: stopping children and writing outputs", signal_name)

    # ---------------------------------------------------------------- spawning

    def _free_slots(self) -> int:
        return self.max_jobs - sum(c.slots for c in self._children.values() if not c.abandoned)

    def _fill_slots(self) -> None:
        while self.spawning_opts and (free := self._free_slots()) > 0:
            self._check_exit()  # each start may satisfy an exit condition (e.g. MaxOptsStarted)
            if self.converged:
                return
            option = self.opt_selector.select_optimizer(self, free)
            if option is False:
                self.spawning_opts = False
                self.logger.info("Spawning of new optimizers is stopped")
                return
            if option is None or option.workers > free:
                return
            self._start_optimizer(option)

    def _start_optimizer(self, option) -> None:
        calls_before = getattr(self.x0_generator, "n_task_calls", 0)
        x0 = np.asarray(self.x0_generator.generate(self), dtype=float)
        # generators that evaluate the task (AnnealingGenerator) count those calls themselves
        self.f_counter += getattr(self.x0_generator, "n_task_calls", 0) - calls_before
        optimizer = option.build()
        optimizer.is_log_detailed = self.is_log_detailed
        self.o_counter += 1
        opt_id = self.o_counter
        self.opt_log.add_optimizer(opt_id, type(optimizer).__name__, time.time(), option.workers, repr(optimizer))
        printstreams = None
        if self.split_printstreams:
            printstreams = self.paths.printstreams
            printstreams.mkdir(exist_ok=True)
        spec = ChildSpec(opt_id, optimizer, self.task, x0, self.bounds.copy(), self.is_log_detailed, printstreams)
        self._children[opt_id] = _Child(opt_id, option.workers, time.monotonic())
        self.backend.start_child(spec)
        self.last_opt_spawn = (self.f_counter, self.o_counter)
        self.logger.info("Started optimizer %d: %r at x0=%s", opt_id, optimizer, np.array2string(x0, precision=4))

    # ---------------------------------------------------------------- messages

    def _handle_messages(self, messages: list[msg.ChildMessage]) -> None:
        improved = False
        for m in messages:
            child = self._children.get(m.opt_id)
            if child is not None:
                child.last_feedback = time.monotonic()
            if isinstance(m, msg.IterationReport):
                improved |= self._absorb_report(m)
            elif isinstance(m, msg.OptimizerFinished):
                self._optimizer_finished(m)
            elif isinstance(m, msg.ChildFailed):
                self._optimizer_failed(m)
        if improved and self.incumbent_sharing:
            self._share_incumbent()

    def _absorb_report(self, report: msg.IterationReport) -> bool:
        k = len(report.fx)
        if k == 0:
            return False
        call_ids = np.arange(self.f_counter + 1, self.f_counter + k + 1, dtype=np.int64)
        self.f_counter += k
        self.opt_log.put_batch(report.opt_id, call_ids, report.x, report.fx, report.extras)
        finite = np.where(np.isfinite(report.fx), report.fx, np.inf)
        i = int(np.argmin(finite))
        if finite[i] < self.result.fx:
            self.result = Result(report.x[i].copy(), float(finite[i]), {},
                                 {"opt_id": report.opt_id, "type": self.opt_log.records[report.opt_id].opt_type})
            return True
        return False

    def _share_incumbent(self) -> None:
        for opt_id, child in self._children.items():
            if opt_id != self.result.origin["opt_id"] and child.stop_sent is None:
                self.backend.send(opt_id, msg.InjectIncumbent(self.result.x, self.result.fx))

    def _optimizer_finished(self, m: msg.OptimizerFinished) -> None:
        if m.opt_id not in self._children:
            return
        if m.opt_id in self.stopped_opts:
            cond = "GloMPO Termination"
        elif m.stopped:
            cond = f"Stopped: {m.reason}"
        else:
            cond = "Optimizer convergence" if m.success else "Optimizer ended without convergence"
            self.conv_counter += 1
        self._retire(m.opt_id, cond)
        self.logger.info("Optimizer %d ended: %s (best fx %s)", m.opt_id, cond, m.fx)

    def _optimizer_failed(self, m: msg.ChildFailed) -> None:
        if m.opt_id not in self._children:
            return  # it was already ended by force; its end is recorded
        self.opt_crashed = True
        if m.traceback:
            self.opt_log.put_message(m.opt_id, m.traceback)
        self._retire(m.opt_id, f"Error termination: {m.error}")
        self.logger.error("Optimizer %d crashed: %s\n%s", m.opt_id, m.error, m.traceback)

    def _retire(self, opt_id: int, end_cond: str) -> None:
        child = self._children.pop(opt_id, None)
        if child is None:
            return  # already retired (e.g. forced termination before its last message came)
        self.opt_log.put_metadata(opt_id, t_end=time.time(), end_cond=end_cond)
        self.backend.join_child(opt_id, 1.0)

    # ---------------------------------------------------------------- decisions

    def _stop_optimizer(self, opt_id: int, reason: str) -> None:
        child = self._children[opt_id]
        self.stopped_opts[opt_id] = time.time()
        child.stop_sent = time.monotonic()
        self.backend.send(opt_id, msg.Stop(reason))
        self.opt_log.put_message(opt_id, f"Stopped by manager: {reason}")
        self.logger.info("Stopping optimizer %d: %s", opt_id, reason)
        if self.aggressive_stop and self.backend.proc_backend:
            self._force_end(opt_id, "GloMPO Termination")

    def _force_end(self, opt_id: int, end_cond: str) -> None:
        if self.backend.stop_child(opt_id):
            self._retire(opt_id, end_cond)
        else:  # a thread cannot be killed: give its slot back and leave it to end with the process
            self._children[opt_id].abandoned = True
            self.opt_log.put_metadata(opt_id, end_cond=end_cond + " (thread abandoned)")

    def _check_unresponsive(self) -> None:
        if not self.allow_forced_terminations:
            return
        now = time.monotonic()
        for opt_id, child in list(self._children.items()):
            silent = now - (child.stop_sent or child.last_feedback)
            if not child.abandoned and silent > self._too_long:
                what = "did not end after its stop signal" if child.stop_sent else "sent no result"
                self.logger.warning("Optimizer %d %s for %.1f s: forcing its termination", opt_id, what, silent)
                self._force_end(opt_id, "Forced GloMPO Termination")

    def _check_stoppers(self) -> None:
        if self.stoppers is None or self.f_counter - self.last_stopcheck < self.stopcheck_interval:
            return
        if not self.result.origin:
            return
        self.last_stopcheck = self.f_counter
        self.stopcheck_counter += 1
        best_id = self.result.origin["opt_id"]
        for opt_id, child in list(self._children.items()):
            if child.stop_sent is not None or self.opt_log.n_evals(opt_id) == 0:
                continue
            if opt_id == best_id and not self.apply_stoppers_to_best:
                continue
            _reset(self.stoppers)
            if self.stoppers(self.opt_log, best_id, opt_id):
                self._stop_optimizer(opt_id, _text_with_result(self.stoppers))

    def _check_exit(self) -> None:
        _reset(self.exit_conditions)
        if self.exit_conditions(self):
            self.converged = True
            reason = getattr(self.exit_conditions, "reason", None)
            self.exit_reason = reason() if callable(reason) else str(self.exit_conditions)
            self.logger.info("Exit conditions met: %s", self.exit_reason)

    def _check_all_ended(self) -> None:
        if not self.spawning_opts and not any(not c.abandoned for c in self._children.values()):
            self.converged = True
            self.exit_reason = "no optimizers alive and spawning is stopped"
            self.logger.info("Ending: %s", self.exit_reason)

    def _log_status(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_status < self.status_interval:
            return
        self.last_status = now
        cpu, mem, load = self._monitor.snapshot()
        self.cpu_history.append(cpu)
        self.mem_history.append(mem)
        self.load_history.append(load)
        elapsed = self.t_used + now - self.t_start
        self.logger.info("Status: %d evaluations (%.1f/s), best fx %.6g, %d optimizers alive, CPU %.0f%%, "
                         "memory %.1f MB, load %.2f", self.f_counter, self.f_counter / max(elapsed, 1e-9),
                         self.result.fx, len(self._children), cpu, mem / 2 ** 20, load[0])

    # ================================================================ ending

    def _shutdown_children(self) -> None:
        """Stop every child, keep its last reports, and end it within ``end_timeout``."""
        if self.backend is None:
            return
        for opt_id, child in self._children.items():
            if child.stop_sent is None:
                child.stop_sent = time.monotonic()
                self.backend.send(opt_id, msg.Stop("manager is shutting down"))
        deadline = None if self.end_timeout is None else time.monotonic() + self.end_timeout
        while any(not c.abandoned for c in self._children.values()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._handle_messages(self.backend.poll(_POLL_TIMEOUT))
            self._check_unresponsive()
        for opt_id, child in list(self._children.items()):
            if child.abandoned:
                continue
            self.logger.warning("Optimizer %d did not end within end_timeout=%s s", opt_id, self.end_timeout)
            self._force_end(opt_id, "Forced GloMPO Termination")
        self._handle_messages(self.backend.poll(0))  # reports that raced with the termination
        self.backend.close()

    def _session_start(self) -> None:
        self.t_start = time.time()
        self.dt_starts.append(datetime.now())
        self.last_status = self.t_start
        self._monitor = ResourceMonitor()

    def _session_end(self) -> None:
        self._log_status(force=True)  # so every session leaves at least one resource snapshot
        self.t_end = time.time()
        self.dt_ends.append(datetime.now())
        session = self.t_end - self.t_start
        self.t_used += session
        self.result.stats = {
            "f_counter": self.f_counter, "o_counter": self.o_counter, "conv_counter": self.conv_counter,
            "stopped": len(self.stopped_opts), "crashed": self.opt_crashed, "t_session": session,
            "t_used": self.t_used, "exit_reason": self.exit_reason,
        }
        self.logger.info("Run ended after %.1f s and %d evaluations: %s", session, self.f_counter, self.exit_reason)

    def _purge_old_results(self) -> None:
        """Delete results of an earlier run (only reached when overwrite_existing allowed it)."""
        for path in self.paths.existing_results():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _write_outputs(self) -> None:
        from ..outputs import write_outputs

        try:
            write_outputs(self)
        except Exception:  # outputs must never hide the run's own outcome
            self.logger.exception("Writing the output files failed")

    def write_summary_file(self, dump_dir: str | Path | None = None) -> Path:
        """Write ``glompo_manager_log.yml`` (to ``dump_dir`` if given, else the working dir)."""
        from ..outputs.summary import write_summary

        if not self._is_initialised:
            raise GloMPOError("the manager is not initialised: nothing to summarise")
        directory = Path(dump_dir) if dump_dir is not None else self.working_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = RunPaths(directory).summary
        write_summary(self, path)
        return path


def _reset(criterion: Any) -> None:
    reset = getattr(criterion, "reset", None)
    if callable(reset):
        reset()


def _text_with_result(criterion: Any) -> str:
    text = getattr(criterion, "str_with_result", None)
    return text() if callable(text) else str(criterion)
