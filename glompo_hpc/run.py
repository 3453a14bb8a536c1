"""The run entry point: run (or resume) a job file, and the exit codes that say how it ended.

Used by the command line (``glompo-hpc run``, ``resume``) and by the submitit callable
(:class:`glompo_hpc.slurm.submit.GlompoRun`), so the resume policy and the exit codes live in one
place. :data:`ExitCode` is the one table of exit codes. The policy of ``--resume auto`` (which
checkpoint, if any, continues the run the working directory holds) is :func:`resume_point`.

This module imports nothing heavy at import time (numpy, the job machinery): ``python -m
glompo_hpc`` must install its signal handlers within milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import CheckpointError, ConfigurationError, OtherRankError, TaskNotRestored, UserError
from .run_support import PROG

__all__ = ("ExitCode", "RunRequest", "run", "run_program", "resume_from", "guarded", "exit_code", "announce_resume")

logger = logging.getLogger("glompo_hpc.cli")


class ExitCode(IntEnum):
    """Exit status of ``glompo-hpc``; a signal that ended a run without a checkpoint gives 128 + its number."""

    OK = 0
    FAILED = 1  # an unexpected error (a traceback was printed)
    USER_ERROR = 2  # a mistake the message names: a bad job file, old results, optimizers that keep crashing
    REQUEUE = 3  # stopped by SIGUSR2/SIGTERM after a checkpoint: a job script should requeue it
    INTERRUPTED = 130  # 128 + SIGINT, the shell convention
    BROKEN_PIPE = 141  # 128 + SIGPIPE: what `cat` or `grep` return when the reader has gone

    @staticmethod
    def for_signal(signum: int) -> int:
        return 128 + int(signum)


class SignalExit(Exception):
    """SIGTERM/SIGUSR2 arrived before the manager ran: nothing is lost, end cleanly."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_signal_exit(signum: int, frame: Any) -> None:
    raise SignalExit(signum)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def guarded(call: Callable[[], int], early_signals: Sequence[int] = (), restore_signals: bool = True) -> int:
    """Run ``call`` as a program: user errors as one line and exit 2, Ctrl-C 130, and SIGTERM/SIGUSR2
    before the manager runs as a clean exit (USR2: :data:`ExitCode.REQUEUE`, nothing was lost).

    While the manager runs it handles these signals itself; once its outcome is decided they are
    logged and ignored up to the end of ``call`` (see :mod:`glompo_hpc.core.signals`).
    ``restore_signals=False`` leaves those handlers in place afterwards (the submitit callable
    decides itself what comes next). ``early_signals`` arrived before this was called.
    """
    from .core.signals import LATE_SIGNALS, late_signals_ignored, signal_hook

    previous = {sig: signal.getsignal(sig) for sig in LATE_SIGNALS}
    for sig in LATE_SIGNALS:
        signal.signal(sig, _raise_signal_exit)
    try:
        with late_signals_ignored():
            for sig in list(early_signals):
                signal.raise_signal(sig)  # our handler turns it into SignalExit, handled below
            code = call()
            sys.stdout.flush()  # here, not at exit: a reader gone (`| head`) is then handled below
            signal_hook("exiting")
            return code
    except BrokenPipeError:
        # `glompo-hpc summary DIR | head`: the reader has all it wanted; end quietly like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE
    except SignalExit as e:
        print(f"{PROG}: interrupted by {e} before the optimization ran", file=sys.stderr)
        return ExitCode.REQUEUE if e.signum == getattr(signal, "SIGUSR2", None) else ExitCode.for_signal(e.signum)
    except OtherRankError:  # rank 0 prints it
        return ExitCode.USER_ERROR
    except (UserError, ConfigurationError, CheckpointError, FileExistsError) as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return ExitCode.USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        if restore_signals:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def run_program(request: "RunRequest", guard: Callable[[float], Any] | None = None,
                restore_signals: bool = True) -> int:
    """:func:`run` as a program (see :func:`guarded`): what the submitit callable runs."""
    return guarded(lambda: run(request, guard), restore_signals=restore_signals)


# ------------------------------------------------------------ one run

@dataclass(frozen=True)
class RunRequest:
    """What to run: a job file, overrides of its settings, and how to treat an earlier run.

    Args:
        job: The job file.
        overrides: Job-file keys that replace the file's (``{"manager": {"max_jobs": 2}}``).
        resume: ``"auto"``: continue the run the working directory holds from its newest
            checkpoint, if it has one; ``"never"``: always start a new run.
        keep_checkpoint_settings: On a resume, where the job file's task, bounds or components
            differ from the checkpoint's, keep the checkpoint's (else such a resume is refused).
        force: Resume a run that has finished although the job file does not raise its budget.
        log_level: Log level on stderr (None: the job file's).
        progress: Show the run's progress on stderr (outputs/progress.py): a live panel on a
            terminal, status lines in a batch job's log.
    """

    job: str
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: str = "never"
    keep_checkpoint_settings: bool = False
    force: bool = False
    log_level: str | None = None
    progress: bool = True


def run(request: RunRequest, guard: Callable[[float], Any] | None = None) -> int:
    """Build the job, run (or resume) the manager, print the result; returns the exit code.

    Under MPI every rank parses the job file (so a bad one fails everywhere alike); only rank 0
    builds and runs it, and the other ranks return 0 once it has ended. ``guard(margin_s)``: the
    walltime guard to hold around the run (:func:`glompo_hpc.slurm.walltime.guard_for_run`).
    """
    from .core.signals import signal_hook
    from .run_support import (check_environment, job_limits, load_job, log_to_stderr, mpi_ranks, print_result,
                              serve_as_worker)

    from .backends.mpi_env import check_single_rank_world  # late: the backends package loads numpy and cma

    spec = load_job(request.job, request.overrides)
    check_single_rank_world()  # srun's N tasks without MPI: refused before any file is written
    check_environment()
    from .backends.blas_threads import limit_blas_threads
    from .backends.launcher_terminal import rank_0_takes_terminal
    limit_blas_threads()  # before any child starts (threads, forks, ranks): a slot is one core
    with log_to_stderr(request.log_level or spec.logging.level, spec.logging.file), rank_0_takes_terminal(), \
            mpi_ranks(spec) as is_manager:  # Ctrl-C under mpirun: to rank 0, which keeps everything
        if not is_manager:
            serve_as_worker()
            return ExitCode.OK
        from .core.manager import GloMPOManager
        from .core.run_identity import RunIdentity
        from .jobfile import build_manager_kwargs, describe
        from .resume_policy import job_settings, resume_point
        
        with job_limits(request.job):
            kwargs = build_manager_kwargs(spec)
        logger.info("Job %s: %s", request.job, describe(spec, kwargs))
        settings = job_settings(spec, kwargs)
        plan = (resume_point(kwargs, settings, request.keep_checkpoint_settings, request.force)
                if request.resume == "auto" else None)
        if plan is not None and plan.finished is not None:
            # as before run ids: a requeue never follows a finished run, so this is a user's own choice
            logger.warning("The run in %s has finished (%s): going on from its checkpoint replaces its result "
                           "(glompo-hpc resume refuses this without --force)", kwargs.get("working_dir", "."),
                           plan.finished)
        try:
            if plan is not None and plan.checkpoint is not None:
                manager = GloMPOManager.load_manager(plan.checkpoint, task=kwargs["task"], **plan.load_overrides(kwargs))
                if manager.run_identity is not None and plan.settings is not None:
                    manager.run_identity = RunIdentity(manager.run_identity.run_id, plan.settings)
                announce_resume(manager, plan.checkpoint, settings_unrecorded=plan.settings is None)
            else:
                if plan is not None and plan.start_afresh:
                    kwargs["overwrite_existing"] = True
                manager = GloMPOManager.new_manager(**kwargs)
                manager.run_identity = RunIdentity(manager.run_identity.run_id, settings)  # compared on resume
        except FileExistsError as e:
            raise UserError(f"{e} (or run with --overwrite)") from None
        result = start(manager, spec.slurm.margin_s, guard, request.progress)
    print_result(result)
    signal_hook("printed")
    return exit_code(manager)


def start(manager: Any, margin_s: float, guard: Callable[[float], Any] | None, progress: bool = True) -> Any:
    """Run the manager, with the walltime guard (if any) sending SIGUSR2 ``margin_s`` before the
    job's end (the manager then checkpoints and the program exits with ExitCode.REQUEUE), and its
    progress on stderr unless ``progress`` is False."""
    from .outputs.progress import ProgressMode, show_progress

    with show_progress(manager, ProgressMode.AUTO if progress else ProgressMode.OFF), \
            (guard(margin_s) if guard is not None else None) or contextlib.nullcontext():
        return manager.start_manager()


def exit_code(manager: Any) -> int:
    """0 at a normal end; REQUEUE when SIGUSR2/SIGTERM ended the run after a checkpoint; else
    128 + the signal's number; USER_ERROR when the run ended because its optimizers kept crashing."""
    from .core.state import EndKind

    end = manager.state.end
    if end is not None and end.kind is EndKind.CRASH_LOOP:
        # a job that cannot work (an optimizer setting, a task that always raises): not a success
        print(f"{PROG}: error: {one_line(Exception(end.detail))} (their errors are in the log)", file=sys.stderr)
        return ExitCode.USER_ERROR
    interrupted = manager.interrupted
    if end is None or end.kind is not EndKind.INTERRUPTED or not interrupted:
        return ExitCode.OK
    signum = signal.Signals[interrupted]
    if manager.exit_checkpoint is not None:
        print(f"{PROG}: interrupted by {interrupted}; checkpoint {manager.exit_checkpoint} written: to continue, "
              f"run the same command with --resume auto (or: {PROG} resume {manager.working_dir} JOB.yaml)",
              file=sys.stderr)
        # Ctrl-C is the user's own stop, not the scheduler's "requeue me"
        return ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.REQUEUE
    print(f"{PROG}: interrupted by {interrupted}; the result above is the best found so far", file=sys.stderr)
    return ExitCode.for_signal(signum)


def announce_resume(manager: Any, checkpoint: Path, settings_unrecorded: bool = False) -> None:
    """Say on stderr from which checkpoint the run goes on, and how many evaluations made after it
    are discarded (the HDF5 log is rolled back to the checkpoint when the session starts)."""
    from .resume_policy import evaluations_recorded

    identity = manager.run_identity
    recorded = evaluations_recorded(Path(manager.working_dir), identity.run_id if identity is not None else None)
    at = manager.f_counter
    lost = (f"{recorded - at} evaluation(s) made after it are discarded (the log is rolled back to {at})"
            if recorded is not None and recorded > at else "no evaluation recorded after it is discarded")
    logger.warning("Resuming from checkpoint %s (%d evaluations); %s", checkpoint, at, lost)
    if settings_unrecorded:
        logger.warning("Checkpoint %s records no job settings (written by the Python API, or before run ids): "
                       "the job file was not compared with it", checkpoint.name)


def resume_from(source: str | Path, job: str | None = None, log_level: str | None = None,
                keep_checkpoint_settings: bool = False, force: bool = False,
                guard: Callable[[float], Any] | None = None) -> int:
    """``glompo-hpc resume``: go on from a checkpoint, or from the newest checkpoint of the run a
    working directory holds. With a job file, it supplies the task and is compared with the
    checkpoint's settings like ``--resume auto``. A finished run is resumed only with a changed
    budget or ``force``: resuming it from a mid-run checkpoint would replace its final answer."""
    from .core.manager import GloMPOManager
    from .resume_policy import compare_settings, finished_reason, held_identity, job_settings
    from .run_support import (check_environment, job_limits, load_job, log_to_stderr, mpi_ranks, print_result,
                              serve_as_worker)

    from .backends.launcher_terminal import rank_0_takes_terminal
    from .backends.mpi_env import check_single_rank_world

    check_single_rank_world()  # srun's N tasks without MPI: refused before any file is written
    check_environment()
    checkpoint, overrides = _resume_source(Path(source))
    spec = load_job(job) if job else None
    with log_to_stderr(log_level or (spec.logging.level if spec else "WARNING"), spec.logging.file if spec else None), \
            rank_0_takes_terminal(), mpi_ranks(spec) as is_manager:
        if not is_manager:
            serve_as_worker()
            return ExitCode.OK
        task = None
        if spec is not None:
            from .jobfile import build_manager_kwargs

            with job_limits(job):
                kwargs = build_manager_kwargs(spec)
            task = kwargs["task"]
            plan = compare_settings(checkpoint, job_settings(spec, kwargs), kwargs.get("exit_conditions"),
                                    keep_checkpoint_settings)
            overrides.update(plan.applied)
        try:
            manager = GloMPOManager.load_manager(checkpoint, task=task, **overrides)
        except TaskNotRestored as e:  # the command line's way to supply the task is the job file
            raise UserError(f"{e.problem}: give the job file that built it: {PROG} resume {source} JOB.yaml") \
                from None
        identity = manager.run_identity
        held = held_identity(Path(manager.working_dir))
        if held is not None and held != identity and not force:
            raise UserError(f"checkpoint {str(checkpoint)!r} is of another run than the one {manager.working_dir} "
                            f"now holds (run {held.run_id}): resuming it there would mix the two runs' files; "
                            "pass --force to do it anyway")
        reason = finished_reason(Path(manager.working_dir), identity.run_id if identity is not None else None)
        if reason is not None and not force and "exit_conditions" not in overrides:
            raise UserError(f"the run in {manager.working_dir} has finished ({reason}); resuming it from "
                            f"{checkpoint.name} would replace its result: raise its budget in the job file, "
                            "or pass --force")
        announce_resume(manager, checkpoint, settings_unrecorded=spec is not None and plan.settings is None)
        result = start(manager, spec.slurm.margin_s if spec is not None else 300, guard)
    print_result(result)
    return exit_code(manager)


def _resume_source(source: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume and the load overrides a run directory implies."""
    from .core.checkpoint_file import latest_checkpoint, list_checkpoints, open_checkpoint
    from .core.run_identity import checkpoint_identity
    from .resume_policy import held_identity

    if not source.is_dir():
        return source, {}
    from .compat import glompo_run_refusal

    refusal = glompo_run_refusal(source)  # say what it is rather than 'no valid checkpoint'
    if refusal:
        raise UserError(refusal)
    held = held_identity(source)
    for path in list_checkpoints(source / "checkpoints"):
        if checkpoint_identity(path) == held:
            try:
                open_checkpoint(path).close()
            except CheckpointError as e:
                logger.error("Skipping checkpoint: %s", e)
                continue
            return path, {"working_dir": source}  # a run's directory: resume there, also if it was moved
    found = latest_checkpoint(source)
    if found is None:
        raise UserError(f"no valid checkpoint of the run in {str(source)!r} (in its 'checkpoints' folder or itself)")
    return found, {}
