"""The command line: ``python -m glompo_hpc [COMMAND] JOB.yaml [options]``.

Every subcommand is one small function registered in :data:`COMMANDS` with :func:`command`,
together with a function adding its arguments; a new subcommand (submit, resume, summary, ...)
is one more registered pair and nothing else changes. A first argument that is not a known
command means ``run``: ``python -m glompo_hpc job.yaml`` runs the job.

Mistakes a user can make (an invalid job file, a missing file, old results in the working
directory, a setting the manager rejects) print one line ``glompo-hpc: error: <message>`` on
stderr and exit with code 2, without a traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import __version__
from .errors import CheckpointError, ConfigurationError, TaskNotRestored

# This module imports nothing heavy (numpy, the job machinery) at import time: `python -m glompo_hpc`
# must reach main(), which handles SIGTERM/SIGUSR2, within milliseconds, not after the seconds
# numpy, scipy and cma take to load on a busy node (a signal then would kill the process).

# EXIT_REQUEUE: the run was stopped by SIGUSR2/SIGTERM and left a checkpoint, so a job script should
# requeue it. Equal to glompo_hpc.slurm.walltime.EXIT_REQUEUE (tests/slurm/test_walltime.py checks);
# not imported from there because the glompo_hpc.slurm package loads the whole job machinery.
EXIT_REQUEUE = 3

__all__ = ("main", "command", "COMMANDS", "CliError")

logger = logging.getLogger("glompo_hpc.cli")

PROG = "glompo-hpc"
DEFAULT_COMMAND = "run"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `cat` or `grep` return when the reader has gone

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user error with a ready message; ``main`` prints it as one line and exits 2."""


class OtherRankError(CliError):
    """An error every MPI rank meets alike: rank 0 prints it, the others exit 2 without repeating it."""


class SignalExit(Exception):
    """SIGTERM/SIGUSR2 arrived before (or after) the manager ran: nothing is lost, end cleanly."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_signal_exit(signum: int, frame: Any) -> None:
    raise SignalExit(signum)


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument setup and handler."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register the decorated function as subcommand ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, add_arguments, handler)
        return handler

    return register


# ------------------------------------------------------------ shared helpers

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _add_job_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB.yaml", help="the job file (its keys: docs/jobfile.md)")


def _load(path: str, overrides: dict[str, Any] | None = None) -> Any:
    from .jobfile import load_job_file  # imported late: `--help` stays fast

    try:
        with _job_limits(path):
            return load_job_file(path, overrides)  # it names every problem of the file itself
    except FileNotFoundError as e:
        raise CliError(str(e)) from None


@contextlib.contextmanager
def _job_limits(path: str) -> Iterator[None]:
    """One line for the interpreter's own limits, which a job file can reach while it is checked
    or built: nesting deeper than the recursion limit, a size (dims) too large to allocate. The
    job file module names every invalid *setting* (and unreadable YAML) itself."""
    try:
        yield
    except RecursionError:
        raise CliError(f"{path}: the job file is nested too deeply, or a YAML alias holds itself") from None
    except (MemoryError, OverflowError) as e:
        raise CliError(f"{path}: a size in the job file is too large to build ({type(e).__name__}"
                       f"{': ' + str(e) if str(e) else ''})") from None


class _CompactFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")


@contextlib.contextmanager
def _logging(level: str, file: str | None = None) -> Iterator[None]:
    """Send ``glompo_hpc`` log records to stderr (and ``file``) while the block runs."""
    root = logging.getLogger("glompo_hpc")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(_CompactFormatter())
    if file is not None:
        try:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(file, encoding="utf-8"))
        except OSError as e:
            raise CliError(f"logging.file: cannot open {file!r}: {e.strerror or e}") from None
        handlers[1].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.setLevel(level)
    for h in handlers:
        root.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(old_level)


# ------------------------------------------------------------ run

def _run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_job_argument(parser)
    over = parser.add_argument_group("overrides of the job file's manager settings")
    over.add_argument("--working-dir", metavar="DIR",
                      help="directory for the outputs (relative to the current directory; default: the job "
                           "file's manager.working_dir, else <job file name>_run beside the job file)")
    over.add_argument("--overwrite", action="store_true", help="delete results of an earlier run in the working dir")
    over.add_argument("--backend", choices=("threads", "processes", "processes_forced", "mpi"),
                      help="how optimizers run in parallel")
    over.add_argument("--max-jobs", type=_positive_int, metavar="N", help="slots for the optimizers")
    over.add_argument("--summary-files", type=int, choices=range(4), metavar="{0,1,2,3}",
                      help="outputs to write: 0 none, 1 YAML summary, 2 + plots, 3 + HDF5 log "
                           "(default: the job file's manager.summary_files, else 3)")
    out = parser.add_argument_group("output")
    levels = out.add_mutually_exclusive_group()
    levels.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="log level on stderr (default: the job file's logging.level)")
    levels.add_argument("--quiet", action="store_true", help="log warnings and errors only; the result is still printed")
    parser.add_argument("--resume", choices=("auto", "never"), default="never",
                        help="auto: if the working dir holds a valid checkpoint, resume from the newest one "
                             "(what a requeued job needs); never (default): always start afresh")


def _manager_overrides(args: argparse.Namespace) -> dict[str, Any]:
    manager: dict[str, Any] = {}
    if args.working_dir is not None:
        manager["working_dir"] = str(Path(args.working_dir).resolve())
    if args.overwrite:
        manager["overwrite_existing"] = True
    for name in ("backend", "max_jobs", "summary_files"):
        if getattr(args, name) is not None:
            manager[name] = getattr(args, name)
    return {"manager": manager} if manager else {}


def _format_result(result: Any) -> str:
    """The run's outcome as aligned ``Label: value`` lines for stdout."""
    import numpy as np

    stats = result.stats or {}
    x = "none" if result.x is None else np.array2string(np.asarray(result.x, dtype=float), precision=8,
                                                         separator=", ", threshold=50, max_line_width=10**6)
    started = stats.get("o_counter", "?")
    detail = _end_counts_text(stats)
    seconds = stats.get("t_session", stats.get("t_used"))
    lines = [
        ("Best fx", f"{result.fx:.10g}"),
        ("Best x", x),
        ("Found by", f"optimizer {result.origin.get('opt_id')} ({result.origin.get('type')})" if result.origin else "-"),
        ("Evaluations", str(stats.get("f_counter", "?"))),
        ("Optimizers", f"{started} started" + (f" ({detail})" if detail else "")),
        ("Time", "?" if seconds is None else f"{seconds:.1f} s"),
        ("Exit reason", str(stats.get("exit_reason") or "?")),
    ]
    return "\n".join(f"{label + ':':<13} {value}" for label, value in lines)


def _end_counts_text(stats: dict[str, Any]) -> str:
    """``4 converged, 5 stopped, 1 unfinished``: the optimizers by how they ended, the categories and
    counts of ``glompo-hpc summary`` and the plot legend (zero counts left out)."""
    by_end = stats.get("by_end") or {}
    if not by_end:  # a result from before the categories were counted: the old two counters
        return ", ".join(f"{stats[k]} {label}" for k, label in (("stopped", "stopped"), ("conv_counter", "converged"))
                         if k in stats)
    return ", ".join(f"{n} {category}" for category, n in by_end.items() if n)


def _mpi_ranks(spec: Any) -> contextlib.AbstractContextManager[bool]:
    """Under MPI with more than one rank, rank 0 runs the job (True) while the other ranks serve its
    children until it ends (False); otherwise simply True."""
    from .backends import check_mpi_backend, mpi_workers, mpi_world_size
    from .backends.mpi_env import mpi_world_rank

    size = mpi_world_size()
    if size < 2:
        if spec.manager.backend == "mpi":
            check_mpi_backend()  # a clear error: one rank, or no mpi4py
        return contextlib.nullcontext(True)
    if spec.manager.backend != "mpi":
        error = CliError if mpi_world_rank() == 0 else OtherRankError
        raise error(f"this program runs as {size} MPI ranks but manager.backend is {spec.manager.backend!r}: "
                    "every rank would run its own copy of the job; use backend mpi (or leave it out)")
    from .jobfile import idle_rank_warning
    if mpi_world_rank() == 0 and (warning := idle_rank_warning(spec, size)):
        print(f"{PROG}: warning: {warning}", file=sys.stderr, flush=True)
    return mpi_workers(spec.mpi.slots, spec.mpi.cores_per_rank)


@command("run", "run the optimization a job file describes (the default command)", _run_arguments)
def cmd_run(args: argparse.Namespace) -> int:
    """Build the job, run (or resume) the manager, print the result; see ``_exit_code``.

    Under MPI every rank parses the job file (so a bad one fails everywhere alike); only rank 0
    builds and runs it, and the other ranks return 0 once it has ended.
    """
    spec = _load(args.job, _manager_overrides(args))
    _refuse_single_rank_world()  # srun's N tasks without MPI: refused before any file is written
    level = "WARNING" if args.quiet else (args.log_level or spec.logging.level)
    from .backends.blas_threads import limit_blas_threads
    limit_blas_threads()  # before any child starts (threads, forks, ranks): a slot is one core
    with _logging(level, spec.logging.file), _mpi_ranks(spec) as is_manager:
        if not is_manager:
            signal.signal(signal.SIGUSR2, _ignore_signal)  # a USR2 forwarded after the run must not fail this rank
            return 0
        from .core.manager import GloMPOManager
        from .jobfile import build_manager_kwargs, describe

        with _job_limits(args.job):
            kwargs = build_manager_kwargs(spec)
        logger.info("Job %s: %s", args.job, describe(spec, kwargs))
        checkpoint = _resume_point(kwargs) if args.resume == "auto" else None
        if args.resume == "auto" and checkpoint is None and _killed_before_first_checkpoint(kwargs):
            kwargs["overwrite_existing"] = True
        try:
            if checkpoint is not None:
                logger.warning("Resuming from checkpoint %s", checkpoint)
                # the state comes from the checkpoint; where it runs (transport, slots, and the working
                # dir the checkpoint was found in, even if the run was moved there) from this launch
                manager = GloMPOManager.load_manager(checkpoint, task=kwargs["task"], backend=kwargs.get("backend"),
                                                     max_jobs=kwargs.get("max_jobs"),
                                                     working_dir=kwargs.get("working_dir", "."))
            else:
                manager = GloMPOManager.new_manager(**kwargs)
        except FileExistsError as e:
            raise CliError(f"{e} (or run with --overwrite)") from None
        with _progress(manager, quiet=args.quiet):
            result = _start_guarded(manager, spec.slurm.margin_s)
    print(_format_result(result), flush=True)
    return _exit_code(manager)


def _start_guarded(manager: Any, margin_s: float) -> Any:
    """Run the manager; in a SLURM job with a known end, a guard sends SIGUSR2 ``margin_s`` before it
    (the manager then checkpoints and exits with EXIT_REQUEUE)."""
    from .slurm.walltime import guard_for_run

    with guard_for_run(margin_s) or contextlib.nullcontext():
        result = manager.start_manager()
    # mpirun may forward a late USR2 after a normal end, and a TERM may come while the result is
    # printed: neither may fail a run whose outputs are written (nor claim it never ran). A Python
    # no-op rather than SIG_IGN, which programs started later would inherit (a shell cannot trap it)
    for sig in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, _ignore_signal)
    return result


def _progress(manager: Any, quiet: bool) -> contextlib.AbstractContextManager[None]:
    """The run's progress on stderr (outputs/progress.py): a live panel on a terminal, status lines
    in a batch job's log; none with --quiet."""
    from .outputs.progress import ProgressMode, show_progress

    return show_progress(manager, ProgressMode.OFF if quiet else ProgressMode.AUTO)


def _ignore_signal(signum: int, frame: Any) -> None:
    logger.info("Ignoring %s: the run has ended", signal.Signals(signum).name)


def _resume_point(kwargs: dict[str, Any]) -> Path | None:
    """The newest valid checkpoint of this job's working directory, if any.

    Checkpoints that all fail to verify are an error (unless overwriting was asked for), not a
    reason to start afresh: a fresh start would replace the run's log and mix new checkpoints
    with the damaged ones, and the damage deserves a look first.
    """
    from .checkpointing import CheckpointingControl
    from .core.checkpoint_file import latest_checkpoint, list_checkpoints

    control = kwargs.get("checkpoint_control") or CheckpointingControl()
    directory = Path(control.checkpointing_dir)
    if not directory.is_absolute():
        directory = Path(kwargs.get("working_dir", ".")) / directory
    found = latest_checkpoint(directory)
    damaged = list_checkpoints(directory) if found is None else []
    if damaged and not kwargs.get("overwrite_existing"):
        raise CliError(f"--resume auto: no checkpoint in {str(directory)!r} verifies "
                       f"({', '.join(p.name for p in damaged)}; see the errors above); nothing was changed: "
                       "repair or move them away, or run with --overwrite to start afresh")
    return found


def _killed_before_first_checkpoint(kwargs: dict[str, Any]) -> bool:
    """True when the working dir holds files of a run that left no checkpoint and ended no session
    (no YAML summary, which every session end writes): one killed early, by a node failure, the OOM
    killer or SIGKILL. Nothing there can be resumed and nothing finished needs protecting, so
    ``--resume auto`` starts afresh over those files, as a requeued job must."""
    from .core.paths import RunPaths

    paths = RunPaths(Path(kwargs.get("working_dir", ".")))
    found = paths.existing_results()
    if not found or paths.summary in found:
        return False
    logger.warning("No checkpoint in %s and no run ended there: the files of the run killed before its first "
                   "checkpoint (%s) are replaced by a fresh start", paths.working_dir,
                   ", ".join(p.name for p in found))
    return True


def _exit_code(manager: Any) -> int:
    """0 at a normal end; EXIT_REQUEUE when a signal ended the run after a checkpoint; else
    128 + the signal's number; EXIT_USER_ERROR when the run ended because its optimizers kept crashing."""
    from .core.state import EndKind

    interrupted = getattr(manager, "interrupted", None)
    if not interrupted and manager.state.end is not None and manager.state.end.kind is EndKind.CRASH_LOOP:
        # a job that cannot work (an optimizer setting, a task that always raises): not a success
        print(f"{PROG}: error: {_one_line(Exception(manager.exit_reason))} (their errors are in the log)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    if not interrupted:
        return 0
    if getattr(manager, "exit_checkpoint", None) is not None:
        print(f"{PROG}: interrupted by {interrupted}; checkpoint {manager.exit_checkpoint} written: "
              "resume with --resume auto", file=sys.stderr)
        return EXIT_REQUEUE
    print(f"{PROG}: interrupted by {interrupted}; the result above is the best found so far", file=sys.stderr)
    try:
        return 128 + signal.Signals[interrupted].value
    except KeyError:
        return EXIT_INTERRUPTED


# ------------------------------------------------------------ resume

def _resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="CHECKPOINT_OR_WORKDIR",
                        help="a checkpoint file, or a working directory whose newest valid checkpoint is used")
    parser.add_argument("job", nargs="?", metavar="JOB.yaml",
                        help="the job file: supplies the task (needed when the checkpoint holds none) and logging")
    parser.add_argument("--log-level", type=str.upper, default=None,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))


@command("resume", "resume an optimization from a checkpoint (or a working directory's newest one)",
         _resume_arguments)
def cmd_resume(args: argparse.Namespace) -> int:
    from .core.checkpoint_file import latest_checkpoint
    from .core.manager import GloMPOManager

    _refuse_single_rank_world()  # srun's N tasks without MPI: refused before any file is written
    source = Path(args.source)
    overrides: dict[str, Any] = {}
    if source.is_dir():
        found = latest_checkpoint(source / "checkpoints")
        if found is not None:  # a run's directory: resume there, also if it was moved or copied
            overrides["working_dir"] = source
        found = found or latest_checkpoint(source)
        if found is None:
            raise CliError(f"no valid checkpoint in {str(source)!r} or its 'checkpoints' folder")
        source = found
    spec = _load(args.job) if args.job else None
    level = args.log_level or (spec.logging.level if spec else "WARNING")
    ranks = _mpi_ranks(spec) if spec is not None else _bare_mpi_ranks()
    with _logging(level, spec.logging.file if spec else None), ranks as is_manager:
        if not is_manager:
            signal.signal(signal.SIGUSR2, _ignore_signal)  # a USR2 forwarded after the run must not fail this rank
            return 0
        task = None
        if spec is not None:
            from .jobfile import build_task
            task = build_task(spec)
        try:
            manager = GloMPOManager.load_manager(source, task=task, **overrides)
        except TaskNotRestored as e:  # the command line's way to supply the task is the job file
            raise CliError(f"{e.problem}: give the job file that built it: "
                           f"{PROG} resume {args.source} JOB.yaml") from None
        with _progress(manager, quiet=False):
            result = _start_guarded(manager, spec.slurm.margin_s if spec is not None else 300)
    print(_format_result(result), flush=True)
    return _exit_code(manager)


def _bare_mpi_ranks() -> contextlib.AbstractContextManager[bool]:
    """Without a job file: under MPI with more than one rank, rank 0 resumes and the others serve."""
    from .backends import mpi_workers, mpi_world_size

    return mpi_workers() if mpi_world_size() > 1 else contextlib.nullcontext(True)


# ------------------------------------------------------------ validate

@command("validate", "check a job file and build its objects without running; prints 'OK: <summary>'",
         _add_job_argument)
def cmd_validate(args: argparse.Namespace) -> int:
    """Validate and build everything (the task included) but start nothing and write no file."""
    from .jobfile import build_manager_kwargs, describe

    spec = _load(args.job)
    with _logging("WARNING"), _job_limits(args.job):
        kwargs = build_manager_kwargs(spec)
    _warn_srun_without_mpi(spec)
    print(f"OK: {args.job}: {describe(spec, kwargs)}")
    return 0


# ------------------------------------------------------------ SLURM: submit, jobscript

def _refuse_single_rank_world() -> None:
    from .backends.mpi_env import check_single_rank_world

    check_single_rank_world()


def _warn_srun_without_mpi(spec: Any) -> None:
    from .backends.mpi_env import srun_mpi_warning

    warning = srun_mpi_warning(spec.slurm.ntasks, spec.slurm.srun_args, spec.slurm.setup)
    if warning is not None:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def _submit_arguments(parser: argparse.ArgumentParser) -> None:
    _add_job_argument(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch file and commands; submit nothing")


@command("submit", "submit the job to SLURM through submitit (checkpoint, requeue and resume at the time limit)",
         _submit_arguments)
def cmd_submit(args: argparse.Namespace) -> int:
    """Submit (or with --dry-run only print) the job; prints the job id and its log files."""
    from .slurm.submit import format_submission, submit

    _warn_srun_without_mpi(_load(args.job))  # the guards and one-line errors of every command; submit() reads it again
    try:
        submission = submit(args.job, dry_run=args.dry_run)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except ImportError as e:
        raise CliError(f"submit needs submitit (pip install 'glompo-hpc[slurm]'): {e}") from None
    except RuntimeError as e:  # submitit: no srun here; sbatch refused the job
        raise CliError(str(e)) from None
    print(format_submission(submission), flush=True)
    return 0


def _jobscript_arguments(parser: argparse.ArgumentParser) -> None:
    _add_job_argument(parser)
    parser.add_argument("--launcher", choices=("mpirun", "srun"), default="mpirun",
                        help="how the script starts the ranks (default: mpirun)")


@command("jobscript", "print an sbatch script for the job, filled in from its slurm: section", _jobscript_arguments)
def cmd_jobscript(args: argparse.Namespace) -> int:
    """Print the script; creates the job's log directory, which SLURM needs before the job starts."""
    from .slurm.jobscript import node_python, render_jobscript, requeue_warning

    spec = _load(args.job)
    log_dir = spec.base_dir / Path(spec.slurm.log_dir).expanduser()
    # rendered first: a value it refuses (a line break) must not leave a directory behind
    text = render_jobscript(spec.slurm, args.launcher, job_file=Path(args.job).resolve(), log_dir=log_dir,
                            python=node_python(spec.slurm, sys.executable))
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"slurm.log_dir: cannot create {str(log_dir)!r}: {e.strerror or e}") from None
    if warning := requeue_warning(spec.checkpointing):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    print(text, end="", flush=True)
    return 0


# ------------------------------------------------------------ entry point

def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="GloMPO (Globally Managed Parallel Optimization) for HPC clusters.",
        epilog=f"'{PROG} JOB.yaml' is short for '{PROG} {DEFAULT_COMMAND} JOB.yaml'. "
               f"Run '{PROG} COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd.handler)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None, early_signals: Sequence[int] = ()) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error, 130 interrupted).

    ``early_signals``: signals that arrived before main() was called (``python -m glompo_hpc``
    records them while importing); they are acted on as if they came now.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, DEFAULT_COMMAND)  # `glompo-hpc job.yaml --backend threads` and `glompo-hpc --quiet job.yaml`
    # While the manager runs it handles these signals itself (checkpoint, clean stop); before and
    # after, they end the command cleanly instead of killing it mid-write. Installed first thing, so
    # a USR2 during argument parsing is not lost (and those `python -m` saw while importing are replayed).
    # The previous handlers come back at the end, so callers of main() in a process of their own
    # are left as they were.
    watched = [s for s in (signal.SIGTERM, getattr(signal, "SIGUSR2", None)) if s is not None]
    previous = {sig: signal.getsignal(sig) for sig in watched}
    for sig in watched:
        signal.signal(sig, _raise_signal_exit)
    try:
        for sig in list(early_signals):
            signal.raise_signal(sig)  # our handler turns it into SignalExit, handled below
        code = _dispatch(argv)
        sys.stdout.flush()  # here, not at exit: a reader gone (`| head`) is then handled below
        return code
    except BrokenPipeError:
        # `glompo-hpc summary DIR | head`: the reader has all it wanted; end quietly like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SignalExit as e:
        print(f"{PROG}: interrupted by {e} before the optimization ran", file=sys.stderr)
        # USR2 is the scheduler's "time is up": nothing was lost, so ask for a requeue
        return EXIT_REQUEUE if e.signum == getattr(signal, "SIGUSR2", None) else 128 + e.signum
    except OtherRankError:
        return EXIT_USER_ERROR
    except (CliError, ConfigurationError, CheckpointError, FileExistsError) as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _dispatch(argv: list[str]) -> int:
    """Parse ``argv`` and run its command."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on usage errors (2)
        return int(e.code or 0)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    return args.handler(args)


# ------------------------------------------------------------ summary, plot (outputs of a run)

def _workdir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workdir", metavar="WORKDIR", help="the run's working directory")


@command("summary", "print the state of a run (running or finished) from its files", _workdir_argument)
def cmd_summary(args: argparse.Namespace) -> int:
    """Best fx and x, evaluations, optimizers by state and time used, from glompo_log.h5 or the YAML."""
    from .compat import glompo_run_refusal
    from .outputs.report import RunFilesMissing, run_report

    refusal = glompo_run_refusal(args.workdir)  # GloMPO's YAML is not safe-loadable: say what it is instead
    if refusal:
        raise CliError(refusal)
    try:
        report = run_report(args.workdir)
    except RunFilesMissing as e:
        raise CliError(str(e)) from None
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read the run in {args.workdir!r}: {e}") from None
    print(report)  # outside the try: a closed pipe is not a run that cannot be read (main() handles it)
    return 0


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    _workdir_argument(parser)
    parser.add_argument("--output", metavar="DIR", help="where to write the PNG files (default: WORKDIR)")


@command("plot", "draw trajectories.png and best_so_far.png from a run's glompo_log.h5", _plot_arguments)
def cmd_plot(args: argparse.Namespace) -> int:
    """Write the plots from the HDF5 log (a running run's log works too) and print their paths."""
    from .core.paths import RunPaths
    from .outputs.plots import MISSING_MATPLOTLIB, write_plots

    workdir = Path(args.workdir)
    if not workdir.is_dir():
        raise CliError(f"no such directory: {args.workdir!r}")
    log = RunPaths(workdir).hdf5_log
    if not log.is_file():
        raise CliError(f"{args.workdir!r} holds no {log.name} (plots are drawn from the log of summary_files=3)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError(MISSING_MATPLOTLIB) from None
    output = Path(args.output) if args.output else workdir
    try:
        output.mkdir(parents=True, exist_ok=True)
        for path in write_plots(log, output):
            print(path)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot plot {str(log)!r}: {e}") from None
    return 0


# ------------------------------------------------------------ watch, report (outputs/watch.py, outputs/html_report.py)

def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    _workdir_argument(parser)
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="time between refreshes")
    parser.add_argument("--once", action="store_true", help="print one frame and exit (for scripts)")


@command("watch", "a live terminal view of a run (running or finished), read from its files", _watch_arguments)
def cmd_watch(args: argparse.Namespace) -> int:
    """Refresh until the run ends or Ctrl-C; nothing in the run's directory is written."""
    from .outputs.run_files import NotARun
    from .outputs.watch import watch

    if not args.interval > 0:
        raise CliError(f"--interval must be a positive number of seconds, got {args.interval}")
    try:
        return watch(args.workdir, interval=args.interval, once=args.once)
    except NotARun as e:
        raise CliError(str(e)) from None


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    _workdir_argument(parser)
    parser.add_argument("-o", "--output", metavar="FILE", default="report.html",
                        help="the HTML file to write (default: report.html in the current directory)")


@command("report", "write one self-contained HTML report of a run (running or finished)", _report_arguments)
def cmd_report(args: argparse.Namespace) -> int:
    """Read the run's files and write the report; prints its path."""
    from .outputs.html_report import write_report
    from .outputs.run_files import NotARun, read_run

    try:
        run = read_run(args.workdir)
    except NotARun as e:
        raise CliError(str(e)) from None
    try:
        print(write_report(run, Path(args.output)))
    except OSError as e:
        raise CliError(f"cannot write {args.output!r}: {e.strerror or e}") from None
    return 0
