"""``glompo-hpc watch RUN_DIR``: a live terminal view of a run another process is writing.

Everything comes from the run's files (:class:`run_files.RunReader`: read-only, under the log's
shared lock only while reading, new rows only), so it works from a login node while a SLURM job on
other nodes runs, and never blocks or changes the run. One frame fits 80x24: state, evaluations
and throughput, a sparkline of the best value so far, the optimizers (state, best, evaluations,
why each ended), stopper decisions, checkpoints and sessions (requeues).
"""

from __future__ import annotations

import math
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from .read_log import OptimizerData
from .run_files import NotARun, RunFiles, RunReader

__all__ = ("render_frame", "watch", "sparkline")

SPARK = "▁▂▃▄▅▆▇█"
TABLE_ROWS = 8  # optimizers shown: the live ones first, then the most recently ended


def sparkline(values: list[float], width: int) -> str:
    """``values`` as ``width`` block characters (log-scaled when they span decades and are > 0)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or width < 1:
        return ""
    if len(finite) > width:  # resample by position: the best-so-far is monotone, so the last of a bucket
        finite = [finite[min(len(finite) - 1, int((i + 1) * len(finite) / width) - 1)] for i in range(width)]
    lo, hi = min(finite), max(finite)
    if lo > 0 and hi / lo > 100:
        finite, lo, hi = [math.log10(v) for v in finite], math.log10(lo), math.log10(hi)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))] for v in finite)


def _clock(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _fmt(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.6g}"


def _why(opt: OptimizerData, run: RunFiles) -> str:
    if opt.category == "alive":
        return ""
    reason = run.stop_reasons.get(opt.opt_id)
    return f"stopper: {reason}" if reason else opt.end_cond


def _optimizer_table(run: RunFiles, rows: int) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
    for name, kw in (("id", {"justify": "right"}), ("type", {"min_width": 12, "max_width": 16}),
                     ("state", {"min_width": 9}), ("best", {"justify": "right", "min_width": 11}),
                     ("evals", {"justify": "right"}),
                     ("ended because", {"max_width": 40, "no_wrap": True, "overflow": "ellipsis"})):
        table.add_column(name, **kw)
    shown = sorted(run.optimizers, key=lambda o: (o.category != "alive", -(o.t_end or o.t_start or 0)))[:rows]
    styles = {"alive": "green", "stopped": "yellow", "crashed": "red", "forced": "red"}
    for o in sorted(shown, key=lambda o: o.opt_id):
        table.add_row(str(o.opt_id), Text(o.opt_type), Text(o.category, style=styles.get(o.category, "")),
                      _fmt(o.best_fx), f"{o.rows:,}", Text(_why(o, run)))
    return table


def _header(run: RunFiles, rate: float | None) -> list[str]:
    from rich.markup import escape

    a = run.attrs
    counts: dict[str, int] = {}
    for o in run.optimizers:
        counts[o.category] = counts.get(o.category, 0) + 1
    t_used = float(a.get("t_used", 0.0) or 0.0)
    overall = run.evaluations / t_used if t_used > 0 else 0.0
    last = run.checkpoints[-1] if run.checkpoints else None
    sessions = len(run.session_starts) or int(a.get("sessions", 1))
    state = "[green]running" if run.running else f"[bold]{escape(run.state_text)}"
    return [
        f"[bold]glompo-hpc watch[/] {escape(str(run.workdir))}  [dim](read {_clock(run.read_at)})",
        f"state: {state}",
        f"evaluations {run.evaluations:,}  best {_fmt(float(a.get('best_fx', math.nan)))} "
        f"(opt {a.get('best_opt_id', '-')})  time {t_used:.0f} s",
        f"throughput {overall:,.1f}/s overall" + ("" if rate is None else f", {rate:,.1f}/s now") +
        f"  sessions {sessions}" + (f" ({sessions - 1} requeue{'s' * (sessions > 2)})" if sessions > 1 else ""),
        "optimizers " + (", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "none yet"),
        f"checkpoints {len(run.checkpoints)}" + ("" if last is None else f", last at {_clock(last.time)}, "
                                                 f"{last.f_counter if last.f_counter is not None else '?'} "
                                                 f"evaluations ({escape(last.name)})"),
    ]


def _line(markup: str) -> Any:
    from rich.text import Text

    text = Text.from_markup(markup, overflow="ellipsis")
    text.no_wrap = True
    return text


def render_frame(run: RunFiles, width: int = 80, rate: float | None = None, note: str = "") -> Any:
    """One frame of the view (a rich renderable) for a terminal ``width`` columns wide."""
    from rich.console import Group
    from rich.text import Text

    lines: list[Any] = [_line(line) for line in _header(run, rate)]
    best = list(run.best_trajectory[1])
    spark = sparkline(best, max(width - 12, 10))
    lines.append(_line(f"best so far [cyan]{spark}[/]" if spark else "best so far: no evaluation yet"))
    lines.append(_optimizer_table(run, TABLE_ROWS))
    decisions = [(o.t_end or 0, f"{_clock(o.t_end)} opt {o.opt_id}: {run.stop_reasons[o.opt_id]}")
                 for o in run.optimizers if o.opt_id in run.stop_reasons]
    for _, text in sorted(decisions)[-3:]:
        lines.append(Text(f"stopper {text}", no_wrap=True, overflow="ellipsis", style="yellow"))
    if note:
        lines.append(Text(note, style="bold red", no_wrap=True, overflow="ellipsis"))
    if not run.running:
        lines.append(Text(f"The run is not running ({run.state_text}).", style="bold", no_wrap=True,
                          overflow="ellipsis"))
    return Group(*lines)


def watch(workdir: str | Path, interval: float = 2.0, once: bool = False, console: Any = None) -> int:
    """Show the run in ``workdir`` until it ends (or Ctrl-C); ``once``: print one frame and return.

    Returns 0; raises :class:`run_files.NotARun` if the directory cannot be read at the start.
    """
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    width = min(console.width, 120)
    reader = RunReader(workdir)
    run = reader.read()  # a bad directory is an error before anything is drawn
    if once:
        console.print(render_frame(run, width))
        return 0
    previous, rate, note = run, None, ""
    stop = threading.Event()
    # Ctrl-C only sets a flag: a KeyboardInterrupt raised inside h5py or rich could end the
    # process by the signal instead of cleanly, and the frame being read is finished first.
    old_handler = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        with Live(render_frame(run, width), console=console, auto_refresh=False, vertical_overflow="crop") as live:
            while run.running and not stop.wait(interval):
                try:
                    run, note = reader.read(), ""
                except NotARun as e:  # removed, or unreadable for longer than the retries: say so, go on
                    note = f"cannot read the run now: {e}"
                if run.read_at > previous.read_at:
                    rate = (run.evaluations - previous.evaluations) / (run.read_at - previous.read_at)
                    previous = run
                live.update(render_frame(run, width, rate, note), refresh=True)
    finally:
        signal.signal(signal.SIGINT, old_handler)
    return 0
