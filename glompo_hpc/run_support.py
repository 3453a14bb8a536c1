"""What running a job file needs around the manager: reading the file, logging, MPI ranks, the result.

Shared by :mod:`glompo_hpc.run` and the command line; imports nothing heavy at import time.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigurationError, OtherRankError, UserError

__all__ = ("PROG", "load_job", "check_environment", "job_limits", "log_to_stderr", "mpi_ranks", "format_result", "end_counts_text",
           "print_result", "serve_as_worker")

logger = logging.getLogger("glompo_hpc.cli")
PROG = "glompo-hpc"


def load_job(path: str, overrides: dict[str, Any] | None = None) -> Any:
    """The validated job file; a missing file is a UserError (the job file module names the rest)."""
    from .jobfile import load_job_file  # imported late: `--help` stays fast

    try:
        with job_limits(path):
            return load_job_file(path, overrides)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None


def check_environment() -> None:
    """Read every ``GLOMPO_HPC_*`` setting (glompo_hpc/env_settings.py) once, before anything runs.

    Each is otherwise read where it is used, some only once the manager's session has started;
    a bad value then stops the run before it starts: one line, exit 2, on every MPI rank alike.
    """
    from .backends.backoff import poll_max_sleep
    from .backends.mpi_env import mpi_world_rank
    from .protocol.optlog import default_ended_rows, default_tail_rows
    from .outputs.hdf5_log import flush_settings
    from .outputs.progress import environment_settings

    try:
        for read in (flush_settings, default_tail_rows, default_ended_rows, environment_settings, poll_max_sleep):
            read()
    except ConfigurationError as e:
        raise (UserError if mpi_world_rank() == 0 else OtherRankError)(str(e)) from None


@contextlib.contextmanager
def job_limits(path: str) -> Iterator[None]:
    """One line for the interpreter's own limits, which a job file can reach while it is checked
    or built: nesting deeper than the recursion limit, a size (dims) too large to allocate. The
    job file module names every invalid *setting* (and unreadable YAML) itself."""
    try:
        yield
    except RecursionError:
        raise UserError(f"{path}: the job file is nested too deeply, or a YAML alias holds itself") from None
    except (MemoryError, OverflowError) as e:
        raise UserError(f"{path}: a size in the job file is too large to build ({type(e).__name__}"
                        f"{': ' + str(e) if str(e) else ''})") from None


class _CompactFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")


@contextlib.contextmanager
def log_to_stderr(level: str, file: str | None = None) -> Iterator[None]:
    """Send ``glompo_hpc`` log records to stderr (and ``file``) while the block runs."""
    root = logging.getLogger("glompo_hpc")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(_CompactFormatter())
    if file is not None:
        try:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(file, encoding="utf-8"))
        except OSError as e:
            raise UserError(f"logging.file: cannot open {file!r}: {e.strerror or e}") from None
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


def mpi_ranks(spec: Any | None) -> contextlib.AbstractContextManager[bool]:
    """Under MPI with more than one rank, rank 0 runs the job (True) while the other ranks serve its
    children until it ends (False); otherwise simply True. ``spec`` None: no job file (resume)."""
    from .backends import check_mpi_backend, mpi_workers, mpi_world_size
    from .backends.mpi_env import mpi_world_rank

    size = mpi_world_size()
    if size < 2:
        if spec is not None and spec.manager.backend == "mpi":
            check_mpi_backend()  # a clear error: one rank, or no mpi4py
        return contextlib.nullcontext(True)
    if spec is not None and spec.manager.backend != "mpi":
        error = UserError if mpi_world_rank() == 0 else OtherRankError
        raise error(f"this program runs as {size} MPI ranks but manager.backend is {spec.manager.backend!r}: "
                    "every rank would run its own copy of the job; use backend mpi (or leave it out)")
    if spec is not None and mpi_world_rank() == 0:
        from .jobfile import idle_rank_warning
        if warning := idle_rank_warning(spec, size):
            print(f"{PROG}: warning: {warning}", file=sys.stderr, flush=True)
    if mpi_world_rank() != 0:
        # rank 0 decides how the run ends (and checkpoints on USR2/TERM); a worker that died of
        # the same signal would turn its optimizer into a crash, or a finished run into a failure
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            signal.signal(sig, _worker_ignores)
    if spec is None:
        return mpi_workers()
    return mpi_workers(spec.mpi.slots, spec.mpi.cores_per_rank)


def _worker_ignores(signum: int, frame: Any) -> None:
    logger.info("Worker rank: ignoring %s (rank 0 ends the run)", signal.Signals(signum).name)


def serve_as_worker() -> None:
    """A worker rank whose service has ended (rank 0's run is over): its late-signal handlers stay."""
    from .core.signals import signal_hook

    signal_hook("worker-end")


def format_result(result: Any) -> str:
    """The run's outcome as aligned ``Label: value`` lines for stdout."""
    import numpy as np

    stats = result.stats or {}
    x = "none" if result.x is None else np.array2string(np.asarray(result.x, dtype=float), precision=8,
                                                         separator=", ", threshold=50, max_line_width=10**6)
    started = stats.get("o_counter", "?")
    detail = end_counts_text(stats)
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


def end_counts_text(stats: dict[str, Any]) -> str:
    """``4 converged, 5 stopped, 1 unfinished``: the optimizers by how they ended, the categories and
    counts of ``glompo-hpc summary`` and the plot legend (zero counts left out)."""
    by_end = stats.get("by_end") or {}
    if not by_end:  # a result from before the categories were counted: the old two counters
        return ", ".join(f"{stats[k]} {label}" for k, label in (("stopped", "stopped"), ("conv_counter", "converged"))
                         if k in stats)
    return ", ".join(f"{n} {category}" for category, n in by_end.items() if n)


def print_result(result: Any) -> None:
    print(format_result(result), flush=True)
