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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .errors import OtherRankError, UserError
from .run import PROG, ExitCode, RunRequest, guarded
from .run_support import job_limits as _job_limits
from .run_support import load_job as _load
from .run_support import log_to_stderr as _logging

# This module imports nothing heavy (numpy, the job machinery) at import time: `python -m glompo_hpc`
# must reach main(), which handles SIGTERM/SIGUSR2, within milliseconds, not after the seconds
# numpy, scipy and cma take to load on a busy node (a signal then would kill the process).

__all__ = ("main", "command", "COMMANDS", "CliError", "OtherRankError")

CliError = UserError  # a user error with a ready message; main prints it as one line and exits 2
EXIT_REQUEUE = ExitCode.REQUEUE  # the exit codes are glompo_hpc.run.ExitCode
EXIT_BROKEN_PIPE = ExitCode.BROKEN_PIPE
DEFAULT_COMMAND = "run"

Handler = Callable[[argparse.Namespace], int]


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
                        help="auto: if the working dir holds a valid checkpoint of its run, resume from the newest "
                             "one (what a requeued job needs); never (default): always start afresh")
    _add_resume_choices(parser)


def _add_resume_choices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-checkpoint-settings", action="store_true",
                        help="on a resume, where the job file's task, bounds or components differ from the "
                             "checkpoint's, keep the checkpoint's (without this such a resume is refused)")
    parser.add_argument("--force", action="store_true",
                        help="resume a run that has finished although the job file does not change its budget "
                             "(or, with resume, a checkpoint whose directory now holds another run)")


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


@command("run", "run the optimization a job file describes (the default command)", _run_arguments)
def cmd_run(args: argparse.Namespace) -> int:
    """Build the job, run (or resume) the manager, print the result; see glompo_hpc.run."""
    from .run import run
    from .slurm.walltime import guard_for_run

    request = RunRequest(args.job, _manager_overrides(args), args.resume, args.keep_checkpoint_settings,
                         args.force, "WARNING" if args.quiet else args.log_level, progress=not args.quiet)
    return run(request, guard=guard_for_run)


# ------------------------------------------------------------ resume

def _resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="CHECKPOINT_OR_WORKDIR",
                        help="a checkpoint file, or a working directory whose newest valid checkpoint is used")
    parser.add_argument("job", nargs="?", metavar="JOB.yaml",
                        help="the job file: supplies the task (needed when the checkpoint holds none) and logging")
    parser.add_argument("--log-level", type=str.upper, default=None,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    _add_resume_choices(parser)


@command("resume", "resume an optimization from a checkpoint (or a working directory's newest one)",
         _resume_arguments)
def cmd_resume(args: argparse.Namespace) -> int:
    from .run import resume_from
    from .slurm.walltime import guard_for_run

    return resume_from(args.source, args.job, args.log_level, args.keep_checkpoint_settings, args.force,
                       guard=guard_for_run)


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


def main(argv: list[str] | None = None, early_signals: Sequence[int] = ()) -> int:
    """Run the command line; returns the exit code (glompo_hpc.run.ExitCode: 0 ok, 2 user error,
    3 checkpointed after a time-limit signal, 130 interrupted).

    ``early_signals``: signals that arrived before main() was called (``python -m glompo_hpc``
    records them while importing); they are acted on as if they came now. The previous signal
    handlers come back at the end, so callers of main() in a process of their own are left as
    they were.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, DEFAULT_COMMAND)  # `glompo-hpc job.yaml --backend threads` and `glompo-hpc --quiet job.yaml`
    return guarded(lambda: _dispatch(argv), early_signals)


def _dispatch(argv: list[str]) -> int:
    """Parse ``argv`` and run its command."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on usage errors (2)
        return int(e.code or 0)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return ExitCode.USER_ERROR
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
    from .protocol.paths import RunPaths
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
