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

from ..checkpointing import CheckpointingControl
from ..compat import Place, StatsWithOldKeys, old_attribute_names, setup_keywords
from ..errors import CheckpointError, ConfigurationError, GloMPOError
from .checkpoint_file import open_checkpoint
from .backend import Backend
from .checkpointer import Checkpointer
from ..protocol.optlog import OptimizerLog, default_tail_rows, rows_needed_by
from ..protocol.paths import RunPaths
from .plugins import detected_backend, run_outputs
from .run_identity import RunIdentity, claim_working_dir
from ..protocol.result import Result
from .session import RunSession
from .run_lock import RunLock
from .settings import SETTING_NAMES, Settings, apply_settings, prepare_working_dir
from ..validation import check_task
from .signals import SignalFlag, signal_hook
from .snapshot import LiveOptimizer, load_task, restore_state
from .state import EndKind, RunState
from .view import RunView, expose_records

__all__ = ("GloMPOManager",)


@old_attribute_names(Place.MANAGER)  # GloMPO 3.1's attribute names, read-only (glompo_hpc/compat)
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
        self.settings = Settings()
        self.state = RunState()
        self.task: Callable[[Sequence[float]], float] | None = None
        self._is_initialised = False
        self._running = False
        self._session: RunSession | None = None
        # (opt_id, optimizer) loaded from a checkpoint, restarted by the session as slots free up
        self.restored_optimizers: list[tuple[int, Any]] = []
        self._resume_log_rows: dict[int, int] | None = None

    # ================================================================ set-up

    @property
    def is_initialised(self) -> bool:
        """True once ``setup`` or ``load_checkpoint`` has run; a second initialisation raises."""
        return self._is_initialised

    @property
    def _restored(self) -> list[tuple[int, Any]]:  # the name scripts and tests of earlier versions read
        return self.restored_optimizers

    @property
    def is_running(self) -> bool:
        """True while ``start_manager()`` runs."""
        return self._running

    @property
    def backend(self) -> Backend | None:
        """The running session's transport (None between sessions)."""
        return self._session.backend if self._session is not None else None

    @property
    def optimizer_queue(self) -> Backend | None:
        """The transport into which children place their results (GloMPO's results queue)."""
        return self.backend

    @property
    def exit_reason(self) -> str:
        """Why the run ended, as users read it ('' while it runs)."""
        return self.state.exit_reason

    @property
    def paths(self) -> RunPaths:
        return self.settings.paths

    def view(self) -> RunView:
        """A read-only view of this run, for components."""
        return RunView(self.settings, self.state, self.task, self.logger)

    @setup_keywords  # GloMPO 3.1's keywords and a first build of every optimizer option
    def setup(self, task: Callable[[Sequence[float]], float], bounds: Sequence[tuple[float, float]], opt_selector=None,
              working_dir: str | Path = ".", overwrite_existing: bool = False, max_jobs: int | None = None,
              backend: str | None = None, exit_conditions=None, x0_generator=None, stoppers=None,
              share_best_solutions: bool = False, stopcheck_interval: int = 100,
              apply_stoppers_to_best: bool = False, status_interval: float = 600,
              checkpoint_control: CheckpointingControl | None = None, summary_files: int = 0,
              is_log_detailed: bool = False, force_terminations_after: float = -1, aggressive_stop: bool = False,
              end_timeout: float | None = None, split_printstreams: bool = True,
              seed: int | None = None) -> "GloMPOManager":
        """Build a new optimization. Parameters are those of GloMPO's ``setup`` (see docs/api.md).

        Where GloMPO differs: ``opt_selector``, ``exit_conditions``, ``x0_generator`` and
        ``stoppers`` left as None get the recommended configuration (glompo_hpc.defaults; pass
        ``stoppers=False`` for no stoppers), and ``seed`` (None: fresh entropy, recorded in
        ``self.seed``) gives every optimizer an independent seed derived from it and its id.

        Raises:
            ConfigurationError: an argument is invalid; the message names it and its value.
            FileExistsError: ``working_dir`` holds results of an earlier run and ``overwrite_existing`` is False.
            RuntimeError: the manager is already initialised.
        """
        self._refuse_second_initialisation()
        check_task(task)
        apply_settings(self.settings, {
            "bounds": bounds, "opt_selector": opt_selector, "working_dir": working_dir,
            "overwrite_existing": overwrite_existing, "max_jobs": max_jobs, "backend": backend,
            "exit_conditions": exit_conditions, "x0_generator": x0_generator, "stoppers": stoppers,
            "share_best_solutions": share_best_solutions, "stopcheck_interval": stopcheck_interval,
            "apply_stoppers_to_best": apply_stoppers_to_best, "status_interval": status_interval,
            "checkpoint_control": checkpoint_control, "summary_files": summary_files,
            "is_log_detailed": is_log_detailed, "force_terminations_after": force_terminations_after,
            "aggressive_stop": aggressive_stop, "end_timeout": end_timeout,
            "split_printstreams": split_printstreams, "seed": seed})
        self.task = task
        self.state.run_identity = RunIdentity.new()
        prepare_working_dir(self.settings, refuse_old_results=True)
        # stoppers with windows longer than the default in-memory tail are answered exactly from the start
        self.state.opt_log = OptimizerLog(self.n_parms,
                                          tail_rows=max(default_tail_rows(), rows_needed_by(self.stoppers)))
        self._is_initialised = True
        self.logger.info("Manager set up: %d parameters, %d slots, backend %s", self.n_parms, self.max_jobs, backend)
        return self

    def _refuse_second_initialisation(self) -> None:
        if self._is_initialised:
            raise RuntimeError("this GloMPOManager is already initialised; create a new one for a new run")

    @setup_keywords
    def load_checkpoint(self, path: str | Path, task_loader: Callable | None = None, task: Callable | None = None,
                        **glompo_kwargs: Any) -> "GloMPOManager":
        """Resume a run from a checkpoint file.

        Args:
            path: The checkpoint (``.tar``) to load.
            task_loader: Rebuilds the task from the files ``task.checkpoint_save`` put in the
                checkpoint (e.g. ``MyTask.checkpoint_load``); used when the task was not pickled.
            task: The task itself; takes precedence over anything saved.
            **glompo_kwargs: ``setup()`` settings that replace the saved ones (not ``task``). New
                ``bounds`` apply to new optimizers only; a smaller ``max_jobs`` shares the slots
                equally among the restored optimizers; a new ``working_dir`` gets a new HDF5 log
                unless a ``glompo_log.h5`` was copied there.

        Raises:
            CheckpointError: the file is missing, truncated, corrupted, of another format version,
                or holds no usable task and none was given.
        """
        self._refuse_second_initialisation()
        unknown = sorted(set(glompo_kwargs) - set(SETTING_NAMES))
        if unknown:
            raise ConfigurationError(f"load_checkpoint cannot change {unknown}; it accepts {list(SETTING_NAMES)}")
        with open_checkpoint(path) as contents:
            state_file = contents.member("manager.pkl")
            if state_file is None:
                raise CheckpointError(f"checkpoint {str(path)!r} has no manager state")
            self.settings, self.state, live = restore_state(state_file, Path(path))
            self.task = load_task(contents.root, contents.manifest.get("task", "none"), Path(path), task, task_loader)
            check_task(self.task)
            restored = self._restore_optimizers(contents.root, live, Path(path))
            self._resume_log_rows = {int(k): int(v) for k, v in contents.manifest.get("log_rows", {}).items()}
            ended_at = float(contents.manifest.get("created", time.time()))
        self._close_unrestored({opt_id for opt_id, _ in restored}, ended_at)
        if "backend" not in glompo_kwargs:
            # where the run resumes decides the transport: under mpirun 'mpi'; an MPI run resumed
            # on one node falls back to processes
            detected = detected_backend()
            if detected == "mpi" or self.backend_name == "mpi":
                glompo_kwargs = {**glompo_kwargs, "backend": detected}
        if glompo_kwargs.get("backend", self.backend_name) == "mpi" and "max_jobs" not in glompo_kwargs:
            glompo_kwargs = {**glompo_kwargs, "max_jobs": None}  # MPI slots follow this allocation's ranks
        apply_settings(self.settings, glompo_kwargs)
        self.restored_optimizers = restored
        self._share_slots()
        prepare_working_dir(self.settings, refuse_old_results=False)
        self._is_initialised = True
        self.logger.info("Loaded checkpoint %s: %d evaluations, %d optimizers to resume", path, self.f_counter,
                         len(restored))
        return self

    def _restore_optimizers(self, root: Path, live: list[LiveOptimizer], source: Path) -> list[tuple[int, Any]]:
        restored = []
        for lo in live:
            if lo.state_file is None:
                continue
            try:
                restored.append((lo.opt_id, lo.opt_class.checkpoint_load(root / lo.state_file)))
            except Exception as e:
                raise CheckpointError(f"optimizer {lo.opt_id} ({lo.opt_class.__name__}) in checkpoint "
                                      f"{str(source)!r} cannot be restored: {type(e).__name__}: {e}") from None
        return restored

    def _close_unrestored(self, restored_ids: set[int], when: float) -> None:
        """Optimizers alive at checkpoint time but not restorable are recorded as ended then."""
        for opt_id, record in self.opt_log.records.items():
            if record.t_end is None and opt_id not in restored_ids:
                self.opt_log.put_metadata(opt_id, t_end=when, end_cond="Not resumed: no state in the checkpoint")

    def _share_slots(self) -> None:
        """A smaller ``max_jobs`` than the restored optimizers need: slots are apportioned equally."""
        needed = sum(opt.workers for _, opt in self.restored_optimizers)
        if needed <= self.max_jobs or not self.restored_optimizers:
            return
        share = max(1, self.max_jobs // len(self.restored_optimizers))
        for _, opt in self.restored_optimizers:
            opt.workers = min(opt.workers, share)
        self.logger.warning("The restored optimizers need %d slots but max_jobs is %d: each now gets at most %d "
                            "worker(s); optimizers may not honour the change", needed, self.max_jobs, share)

    def checkpoint(self) -> Path | None:
        """Save the manager and its optimizers to disk; returns the checkpoint's path (None if it failed).

        Uses ``checkpoint_control`` (default settings if none). The task is pickled, else saved with
        ``task.checkpoint_save``, else left out (then ``load_checkpoint(task=...)`` must supply it).
        """
        if not self._is_initialised:
            raise RuntimeError("the manager is not initialised: nothing to checkpoint")
        if self._session is not None:
            return self._session.take_checkpoint()
        control = self.checkpoint_control or CheckpointingControl()
        return Checkpointer(control, self.working_dir).take(self.settings, self.state, self.task, None)

    # ================================================================ the run

    def start_manager(self) -> Result:
        """Run the optimization until an exit condition holds; returns the best result.

        On Ctrl-C, SIGTERM or SIGUSR2 the children are stopped, the outputs written and the result
        so far returned; ``interrupted`` then names the signal (with checkpointing configured, SIGTERM
        and SIGUSR2 first take a checkpoint: ``exit_checkpoint``). A crash of the manager itself is
        re-raised after the same clean-up.
        """
        if not self._is_initialised:
            raise RuntimeError("the manager is not initialised: call setup() or load_checkpoint() first")
        if self._running:
            raise RuntimeError("start_manager() is already running")
        if self.converged:
            self.logger.warning("this optimization has already ended (%s)", self.exit_reason)
            return self.result
        run_lock = RunLock(self.working_dir)
        run_lock.acquire()  # before anything is written: one run directory, one manager
        self._running = True
        self._session = session = RunSession(self)
        self._session_start()
        try:
            with SignalFlag() as signals:
                try:
                    claim_working_dir(self, resumed=self._resume_log_rows is not None)  # before any deletion
                    self._purge_old_results()
                    signal_hook("purged")
                    session.run(signals)
                except KeyboardInterrupt:  # a second Ctrl-C: the user insists, no checkpoint
                    session.interrupt("SIGINT", checkpoint=False)
                except BaseException as e:
                    self.state.finish(EndKind.MANAGER_CRASHED, f"manager crashed: {type(e).__name__}: {e}")
                    self.logger.critical("Manager crashed:\n%s", traceback.format_exc())
                    raise
                finally:
                    session.shutdown()
                    session.log_status(force=True)  # so every session leaves at least one snapshot
                    self._session_end()
                    signal_hook("outputs")  # tests: a late signal while the outputs are written
                    self._write_outputs()
        finally:
            self._running = False
            self._session = None
            run_lock.release()
        return self.result

    # ================================================================ ending

    def _session_start(self) -> None:
        self.t_start = time.time()
        self.dt_starts.append(datetime.now())
        self.last_status = self.t_start
        self.last_checkpoint_time = self.t_start  # the time interval counts from each session's start
        self.exit_checkpoint = None
        self.interrupted = None

    def _session_end(self) -> None:
        self.t_end = time.time()
        self.dt_ends.append(datetime.now())
        session = self.t_end - self.t_start
        self.t_used += session
        self.result.stats = StatsWithOldKeys({
            "f_counter": self.f_counter, "o_counter": self.o_counter, "conv_counter": self.conv_counter,
            "stopped": len(self.stopped_opts), "crashed": self.opt_crashed, "t_session": session,
            "t_used": self.t_used, "exit_reason": self.exit_reason, "by_end": self._end_counts(),
        })
        self.logger.info("Run ended after %.1f s and %d evaluations: %s", session, self.f_counter, self.exit_reason)

    def _end_counts(self) -> dict[str, int]:
        """Optimizers by how they ended, counted as ``summary`` and the plots count them."""
        return run_outputs().end_counts(self.opt_log.records) if self.opt_log is not None else {}

    def _purge_old_results(self) -> None:
        """Delete results of an earlier run if overwriting is allowed. A resumed run keeps the HDF5
        log, which it appends to."""
        if not self.overwrite_existing:
            return
        keep = {self.paths.hdf5_log} if self._resume_log_rows is not None else set()
        for path in self.paths.existing_results():
            if path in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _write_outputs(self) -> None:
        try:
            run_outputs().write_outputs(self)
        except Exception:  # outputs must never hide the run's own outcome
            self.logger.exception("Writing the output files failed")

    def write_summary_file(self, dump_dir: str | Path | None = None) -> Path:
        """Write ``glompo_manager_log.yml`` (to ``dump_dir`` if given, else the working dir)."""
        if not self._is_initialised:
            raise GloMPOError("the manager is not initialised: nothing to summarise")
        directory = Path(dump_dir) if dump_dir is not None else self.working_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = RunPaths(directory).summary
        run_outputs().write_summary(self, path)
        return path


# GloMPO's documented attributes (docs/api.md), read from the two records; the state's stay
# writable for scripts that adjust a loaded run before resuming it.
expose_records(GloMPOManager, writable_state=True)
