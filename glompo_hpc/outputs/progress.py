"""Progress of a running manager in the terminal: a live panel on a TTY, status lines otherwise.

:func:`snapshot_of` is the only place that reads the manager: it copies what the display needs
into a plain :class:`ProgressSnapshot` (so a restructured manager is re-pointed here alone).
:func:`show_progress` runs a background thread that takes a snapshot every few tenths of a second
and draws it with `rich <https://rich.readthedocs.io>`_ (``Live``: it redraws in place, keeps
log records above the panel and degrades to plain text where the terminal cannot do more), or,
off a terminal (SLURM's output files), logs one status line every ``GLOMPO_HPC_PROGRESS_SECONDS``
(default 60 s) and at the end through the ``glompo_hpc.progress`` logger.

The command line shows progress for ``run`` and ``resume`` (``GLOMPO_HPC_PROGRESS=off`` or
``--quiet`` turns it off); the Python API shows nothing unless asked::

    with show_progress(manager):
        manager.start_manager()
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, TextIO

from ..env_settings import env_choice, env_float, env_str

__all__ = ("ProgressSnapshot", "ProgressMode", "snapshot_of", "show_progress", "evaluation_budget", "status_line",
           "environment_settings")

logger = logging.getLogger("glompo_hpc.progress")

LIVE_REFRESH = 0.5  # s between redraws of the live panel
RATE_WINDOW = 30.0  # s of history the evaluation rate is measured over


class ProgressMode(enum.Enum):
    """How progress is shown: ``auto`` picks LIVE on a terminal and LINES elsewhere."""

    AUTO = "auto"
    LIVE = "live"
    LINES = "lines"
    OFF = "off"


_MODES = tuple(m.value for m in ProgressMode)


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the progress display shows, copied from the manager at one moment."""

    f_counter: int
    budget: int | None
    best_fx: float
    best_opt_id: int
    started: int
    alive: int
    stopped: int
    converged: int
    t_used: float
    sessions: int
    checkpoints: int
    last_checkpoint: str | None
    exit_reason: str
    taken_at: float


def evaluation_budget(exit_conditions: Any) -> int | None:
    """The smallest ``MaxFuncCalls`` budget among the exit conditions' leaves (None: no budget)."""
    from ..exit_conditions import MaxFuncCalls

    if exit_conditions is None:
        return None
    budgets = [leaf.fmax for leaf in exit_conditions if isinstance(leaf, MaxFuncCalls)]
    return min(budgets) if budgets else None


def snapshot_of(manager: Any) -> ProgressSnapshot:
    """Copy the manager's progress; read only, safe from another thread (it retries a dict changed
    while it was being copied)."""
    from .read_log import end_category

    m = manager
    for _ in range(5):
        try:
            records = list(m.opt_log.records.values()) if m.opt_log is not None else []
            break
        except RuntimeError:  # the manager added an optimizer while we copied
            continue
    else:
        records = []
    categories = [end_category(r.end_cond, r.t_end) for r in records]
    now = time.time()
    running = m.t_start is not None and (m.t_end is None or m.t_end < m.t_start)
    fx = m.result.fx
    checkpoints = list(m.checkpoint_log)
    return ProgressSnapshot(
        f_counter=int(m.f_counter), budget=evaluation_budget(m.exit_conditions),
        best_fx=float(fx) if fx is not None and math.isfinite(fx) else math.nan,
        best_opt_id=int(m.result.origin.get("opt_id", -1)) if m.result.origin else -1,
        started=len(records), alive=categories.count("alive"), stopped=categories.count("stopped"),
        converged=categories.count("converged"),
        t_used=float(m.t_used + (now - m.t_start if running else 0.0)), sessions=len(m.dt_starts),
        checkpoints=len(checkpoints), last_checkpoint=checkpoints[-1]["name"] if checkpoints else None,
        exit_reason=str(m.exit_reason or ""), taken_at=now)


class _History:
    """What one snapshot cannot tell: the evaluation rate, and when the best last improved."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, int]] = deque()
        self.best = math.inf
        self.improved_at: float | None = None
        self.checkpoint_at: float | None = None
        self._checkpoints = -1

    def add(self, s: ProgressSnapshot) -> None:
        self.points.append((s.taken_at, s.f_counter))
        while len(self.points) > 2 and s.taken_at - self.points[0][0] > RATE_WINDOW:
            self.points.popleft()
        if math.isfinite(s.best_fx) and s.best_fx < self.best:
            self.best, self.improved_at = s.best_fx, s.taken_at
        if s.checkpoints != self._checkpoints:
            self.checkpoint_at = s.taken_at if self._checkpoints >= 0 and s.checkpoints else self.checkpoint_at
            self._checkpoints = s.checkpoints

    def rate(self) -> float:
        (t0, f0), (t1, f1) = self.points[0], self.points[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else 0.0


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(max(seconds, 0))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _fields(s: ProgressSnapshot, h: _History) -> dict[str, str]:
    """The display's values as text, shared by the panel and the status line."""
    rate = h.rate()
    evals = f"{s.f_counter:,}" + (f"/{s.budget:,} ({100 * s.f_counter / s.budget:.0f}%)" if s.budget else "")
    eta = (s.budget - s.f_counter) / rate if s.budget and rate > 0 and s.f_counter < s.budget else None
    improved = "" if h.improved_at is None else f", improved {_duration(s.taken_at - h.improved_at)} ago"
    best = "none" if math.isnan(s.best_fx) else f"{s.best_fx:.6g} (opt {s.best_opt_id}{improved})"
    checkpoint = "none" if s.last_checkpoint is None else s.last_checkpoint + (
        "" if h.checkpoint_at is None else f", {_duration(s.taken_at - h.checkpoint_at)} ago")
    return {"evaluations": evals, "best": best,
            "optimizers": f"{s.alive} alive, {s.stopped} stopped, {s.converged} converged ({s.started} started)",
            "rate": f"{rate:,.1f}/s", "time": _duration(s.t_used) + ("" if eta is None else f", ~{_duration(eta)} to "
                                                                                           "budget"),
            "session": f"{s.sessions}", "checkpoint": checkpoint}


def status_line(s: ProgressSnapshot, h: _History | None = None) -> str:
    """One line: evaluations, best, optimizers, rate, time, checkpoint."""
    if h is None:
        h = _History()
        h.add(s)
    f = _fields(s, h)
    return (f"{f['evaluations']} evaluations, best {f['best']}; optimizers {f['optimizers']}; {f['rate']}; "
            f"time {f['time']}; session {f['session']}; last checkpoint {f['checkpoint']}")


def _panel(s: ProgressSnapshot, h: _History) -> Any:
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    f = _fields(s, h)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="ellipsis", no_wrap=True)
    if s.budget:
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=s.budget, completed=min(s.f_counter, s.budget), width=24), f["evaluations"])
        grid.add_row("evaluations", bar)
    else:
        grid.add_row("evaluations", f["evaluations"])
    for label in ("best", "optimizers", "rate", "time", "checkpoint"):
        grid.add_row(label, f[label])
    title = "glompo-hpc" + (f" · session {s.sessions}" if s.sessions > 1 else "")
    return Panel(grid, title=title, title_align="left", expand=False)


def environment_settings() -> tuple[ProgressMode | None, float]:
    """``GLOMPO_HPC_PROGRESS`` (None if unset) and ``GLOMPO_HPC_PROGRESS_SECONDS`` (default 60).

    Raises:
        ConfigurationError: a variable holds a bad value.
    """
    wanted = env_str("GLOMPO_HPC_PROGRESS")
    mode = None if wanted is None else ProgressMode(env_choice("GLOMPO_HPC_PROGRESS", _MODES, "auto"))
    return mode, env_float("GLOMPO_HPC_PROGRESS_SECONDS", 60.0)


def _resolve(mode: ProgressMode | str, stream: TextIO) -> ProgressMode:
    mode = environment_settings()[0] or ProgressMode(mode)
    if mode is ProgressMode.AUTO:
        return ProgressMode.LIVE if stream.isatty() else ProgressMode.LINES
    return mode


def _interval() -> float:
    return environment_settings()[1]


@contextlib.contextmanager
def show_progress(manager: Any, mode: ProgressMode | str = ProgressMode.AUTO,
                  stream: TextIO | None = None) -> Iterator[None]:
    """Show the manager's progress while the block runs (typically ``manager.start_manager()``).

    Args:
        manager: The manager to watch; only read, through :func:`snapshot_of`.
        mode: ``auto`` (live panel on a terminal, else status lines), ``live``, ``lines`` or
            ``off``; the environment variable ``GLOMPO_HPC_PROGRESS`` overrides it.
        stream: Where the live panel is drawn (default ``sys.stderr``).
    """
    stream = stream or sys.stderr
    mode = _resolve(mode, stream)
    period = _interval()  # read before the run starts, so a bad value stops nothing under way
    if mode is ProgressMode.OFF:
        yield
        return
    history = _History()
    stop = threading.Event()

    def snap() -> ProgressSnapshot:
        s = snapshot_of(manager)
        history.add(s)
        return s

    if mode is ProgressMode.LINES:
        thread = threading.Thread(target=_lines_loop, args=(snap, history, stop, period), daemon=True,
                                  name="glompo-hpc-progress")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            logger.info("Progress: %s", status_line(snap(), history))
        return
    with _live(stream) as live:
        thread = threading.Thread(target=_live_loop, args=(snap, history, stop, live), daemon=True,
                                  name="glompo-hpc-progress")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            live.update(_panel(snap(), history), refresh=True)


def _lines_loop(snap: Any, history: _History, stop: threading.Event, period: float) -> None:
    while not stop.wait(period):
        logger.info("Progress: %s", status_line(snap(), history))


def _live_loop(snap: Any, history: _History, stop: threading.Event, live: Any) -> None:
    while not stop.is_set():
        live.update(_panel(snap(), history), refresh=True)
        stop.wait(LIVE_REFRESH)


@contextlib.contextmanager
def _live(stream: TextIO) -> Iterator[Any]:
    """A rich Live on ``stream``; log records written to the same terminal go above the panel."""
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream)
    with Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
              redirect_stderr=stream is sys.stderr) as live:
        moved = _point_log_handlers(stream, sys.stderr)
        try:
            yield live
        finally:
            for handler, old in moved:
                handler.setStream(old)


def _point_log_handlers(old: TextIO, new: TextIO) -> list[tuple[logging.StreamHandler, TextIO]]:
    """Make the glompo_hpc log handlers writing to ``old`` write to ``new`` (rich's proxy, which
    prints above the panel) instead of through it."""
    if new is old:
        return []
    moved = []
    for handler in logging.getLogger("glompo_hpc").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is old:
            moved.append((handler, handler.setStream(new)))
    return moved
