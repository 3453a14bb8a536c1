"""Trajectory plots of a run: fx of every optimizer by evaluation, and the best value so far.

Every function takes a *source*: a manager (its in-memory log, which for long runs holds only
the recent rows of each optimizer), a ``glompo_log.h5`` path, or a working directory holding
one. The functions return the matplotlib ``Figure`` (built without pyplot, so no global state
changes) for the caller to restyle or save. The log is read optimizer by optimizer in blocks and
thinned as it is read, so plotting a log of any length takes bounded memory.

matplotlib is the optional extra ``plot``; without it the functions raise ImportError with the
install command, and :func:`write_plots` logs that message and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.paths import RunPaths
from .read_log import decode, end_category, optimizer_groups, with_log_file

__all__ = ("plot_trajectories", "plot_best_so_far", "write_plots", "spans_decades", "MISSING_MATPLOTLIB")

logger = logging.getLogger("glompo_hpc.outputs.plots")

MISSING_MATPLOTLIB = "plots need matplotlib, which is not installed: pip install 'glompo-hpc[plot]'"
# Points drawn over all optimizers (each gets an equal share, at least MIN_POINTS): longer traces
# are thinned keeping each bin's min and max. More points cost memory and time, not detail.
MAX_POINTS = 200_000
MIN_POINTS = 2_000


def _share(n_optimizers: int) -> int:
    return max(MIN_POINTS, MAX_POINTS // max(n_optimizers, 1))
DECADES = 3.0  # a log-scale variant is drawn when finite |fx| spans at least this many decades
# Marker of each way an optimizer can end (alive optimizers get none).
END_MARKERS = {"converged": ("*", "tab:green", "converged"), "stopped": ("X", "tab:red", "stopped by manager"),
               "unfinished": ("o", "tab:blue", "running at the end"),
               "crashed": ("P", "black", "crashed"), "forced": ("s", "tab:orange", "forced termination"),
               "other": ("D", "tab:gray", "other end")}


@dataclass
class _Trace:
    """One optimizer, reduced to what the plots draw: a thinned trace and its own improvements."""

    opt_id: int
    opt_type: str
    category: str
    call_id: np.ndarray  # thinned
    fx: np.ndarray  # thinned
    improved_call: np.ndarray  # where the optimizer's own running best improved (all of them)
    improved_fx: np.ndarray
    last_call: int
    end_point: tuple[float, float] | None  # (call id, fx) of its last finite evaluation


class _TraceBuilder:
    """Builds a _Trace from blocks of rows, so a long history never sits in memory whole.

    Bins of ``size`` rows keep their min and max (spikes stay visible); blocks handed to ``add``
    must be multiples of ``size`` except the last.
    """

    def __init__(self, n_rows: int, max_points: int):
        self.size = max(1, int(np.ceil(n_rows / max(max_points // 2, 1))))
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.improved: list[tuple[np.ndarray, np.ndarray]] = []
        self.run_best = np.inf
        self.last_call = -1
        self.end_point: tuple[float, float] | None = None

    @property
    def block_rows(self) -> int:
        return self.size * max(1, (1 << 20) // self.size)

    def add(self, call: np.ndarray, fx: np.ndarray) -> None:
        n = len(fx)
        if n == 0:
            return
        finite = np.isfinite(fx)
        if self.size == 1:
            keep = np.arange(n)
        else:
            bins = int(np.ceil(n / self.size))
            pad = bins * self.size - n
            low = np.concatenate([np.where(finite, fx, np.inf), np.full(pad, np.inf)]).reshape(bins, self.size)
            high = np.concatenate([np.where(finite, fx, -np.inf), np.full(pad, -np.inf)]).reshape(bins, self.size)
            starts = np.arange(bins) * self.size
            keep = np.unique(np.concatenate([starts + low.argmin(1), starts + high.argmax(1), [0, n - 1]]))
            keep = keep[keep < n]
        self.parts.append((call[keep], fx[keep]))
        clean = np.where(finite, fx, np.inf)
        running = np.minimum.accumulate(np.concatenate(([self.run_best], clean)))
        better = np.flatnonzero(running[1:] < running[:-1])
        self.improved.append((call[better], running[1:][better]))
        self.run_best = float(running[-1])
        self.last_call = int(call[-1])
        if finite.any():
            i = int(np.flatnonzero(finite)[-1])
            self.end_point = (float(call[i]), float(fx[i]))

    def build(self, opt_id: int, opt_type: str, category: str) -> _Trace:
        def join(parts: list, k: int, dtype: Any) -> np.ndarray:
            return np.concatenate([p[k] for p in parts]) if parts else np.empty(0, dtype=dtype)

        return _Trace(opt_id, opt_type, category, join(self.parts, 0, np.int64), join(self.parts, 1, float),
                      join(self.improved, 0, np.int64), join(self.improved, 1, float), self.last_call, self.end_point)


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return Figure(figsize=(9, 5.5), layout="constrained")


def _traces_from_file(f: Any) -> tuple[list[_Trace], str]:
    traces = []
    groups = optimizer_groups(f)
    for g in groups:
        a = g.attrs
        rows = int(a["rows"])
        builder = _TraceBuilder(rows, _share(len(groups)))
        for start in range(0, rows, builder.block_rows):
            stop = min(rows, start + builder.block_rows)
            builder.add(g["call_id"][start:stop], g["fx"][start:stop])
        t_end = float(a.get("t_end", np.nan))
        traces.append(builder.build(int(a["id"]), str(decode(a.get("type", ""))),
                                    end_category(str(decode(a.get("end_cond", ""))), None if np.isnan(t_end) else t_end)))
    traces.sort(key=lambda t: t.opt_id)
    complete = bool(f.attrs.get("complete", True))
    return traces, "" if complete else "log incomplete: " + str(decode(f.attrs.get("problem", "")))


def _traces(source: Any) -> tuple[list[_Trace], str]:
    """The traces of every optimizer, and a note on what the source holds."""
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        return source  # already built (write_plots reads the file once for all plots)
    if isinstance(source, (str, Path)):
        path = Path(source)
        return with_log_file(RunPaths(path).hdf5_log if path.is_dir() else path, _traces_from_file)
    log = getattr(source, "opt_log", None)
    if log is None:
        raise TypeError(f"cannot plot {source!r}: give a manager, a glompo_log.h5 path or a working directory")
    traces, partial = [], False
    for opt_id, record in log.records.items():
        partial |= log.first_row(opt_id) > 0
        call, fx = np.asarray(log.history(opt_id, "call_id")), np.asarray(log.history(opt_id, "fx"))
        builder = _TraceBuilder(len(fx), _share(len(log.records)))
        builder.add(call, fx)
        traces.append(builder.build(opt_id, record.opt_type, end_category(record.end_cond, record.t_end)))
    return traces, "in-memory rows only (early rows are in glompo_log.h5)" if partial else ""


def spans_decades(fx: np.ndarray, decades: float = DECADES) -> bool:
    """True when the finite, non-zero ``|fx|`` cover at least ``decades`` orders of magnitude."""
    a = np.abs(fx[np.isfinite(fx)])
    a = a[a > 0]
    return a.size >= 2 and float(np.log10(a.max() / a.min())) >= decades


def _set_log_scale(ax: Any, fx: np.ndarray) -> None:
    finite = fx[np.isfinite(fx)]
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    else:
        a = np.abs(finite[finite != 0])
        linthresh = max(float(a.min()), float(a.max()) * 1e-12) if a.size else 1.0
        ax.set_yscale("symlog", linthresh=linthresh)


def _type_colours(traces: list[_Trace]) -> dict[str, Any]:
    from matplotlib import colormaps

    types = sorted({t.opt_type for t in traces})
    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(types)}


def plot_trajectories(source: Any, log_scale: bool | None = False) -> Any:
    """fx against evaluation number (global call id) for every optimizer, ends marked by kind.

    Args:
        source: A manager, a ``glompo_log.h5`` path or a working directory.
        log_scale: True for a log (or symlog, when values are <= 0) y axis; None to decide from
            the data (:func:`spans_decades`); False for linear.

    Returns:
        The matplotlib Figure.
    """
    fig = _figure()
    traces, note = _traces(source)
    ax = fig.add_subplot()
    colours = _type_colours(traces)
    ends: dict[str, list[tuple[float, float]]] = {}
    for t in traces:
        if len(t.fx):
            ax.plot(t.call_id, t.fx, lw=0.8, color=colours[t.opt_type], alpha=0.85)
        if t.category in END_MARKERS and t.end_point is not None:
            ends.setdefault(t.category, []).append((t.last_call, t.end_point[1]))
    for category, points in ends.items():
        marker, colour, label = END_MARKERS[category]
        px, py = zip(*points)
        ax.scatter(px, py, marker=marker, color=colour, s=60, zorder=3, label=f"{label} ({len(points)})")
    for name, colour in colours.items():
        ax.plot([], [], color=colour, label=name)
    all_fx = np.concatenate([t.fx for t in traces]) if traces else np.empty(0)
    if log_scale or (log_scale is None and spans_decades(all_fx)):
        _set_log_scale(ax, all_fx)
    ax.set_xlabel("function evaluation")
    ax.set_ylabel("fx")
    ax.set_title(f"Optimizer trajectories ({len(traces)} optimizers)" + (f"\n{note}" if note else ""))
    if traces:
        ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_best_so_far(source: Any, log_scale: bool | None = None) -> Any:
    """The best fx found so far against evaluation number, improvements coloured by optimizer type.

    Every improvement of the overall best is an improvement of some optimizer's own best, so the
    curve is built from those points only (the full history is never needed in memory).
    """
    fig = _figure()
    traces, note = _traces(source)
    ax = fig.add_subplot()
    calls = np.concatenate([t.improved_call for t in traces]) if traces else np.empty(0)
    if calls.size:
        fx = np.concatenate([t.improved_fx for t in traces])
        types = np.concatenate([np.full(len(t.improved_call), t.opt_type, dtype=object) for t in traces])
        order = np.argsort(calls, kind="stable")
        calls, fx, types = calls[order], fx[order], types[order]
        running = np.minimum.accumulate(fx)
        better = np.concatenate(([True], running[1:] < running[:-1]))
        calls, best, types = calls[better], running[better], types[better]
        last = max(t.last_call for t in traces)
        ax.step(np.append(calls, last), np.append(best, best[-1]), where="post", color="tab:blue", lw=1.2,
                label="best so far")
        for name, colour in _type_colours(traces).items():
            sel = types == name
            if sel.any():
                ax.scatter(calls[sel], best[sel], s=14, color=colour, zorder=3, label=f"found by {name}")
        ax.annotate(f"{best[-1]:.6g}", (last, best[-1]), textcoords="offset points", xytext=(-5, 8), ha="right",
                    fontsize="small")
        if log_scale or (log_scale is None and spans_decades(best)):
            _set_log_scale(ax, best)
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("function evaluation")
    ax.set_ylabel("best fx so far")
    ax.set_title("Best value so far" + (f"\n{note}" if note else ""))
    ax.grid(alpha=0.3)
    return fig


def write_plots(source: Any, directory: str | Path) -> list[Path]:
    """Write ``trajectories.png``, ``best_so_far.png`` and, when values span decades,
    ``trajectories_log.png`` into ``directory``; returns the files written.

    A missing matplotlib is logged and nothing is written; other errors propagate.
    """
    paths = RunPaths(Path(directory))
    try:
        _figure()
    except ImportError as e:
        logger.warning("No plots written: %s", e)
        return []
    built = _traces(source)  # read once for all the plots
    written = []
    for fig, path in ((plot_trajectories(built, log_scale=False), paths.trajectories),
                      (plot_best_so_far(built), paths.best_so_far)):
        fig.savefig(path, dpi=110)
        written.append(path)
    traces = built[0]
    if spans_decades(np.concatenate([t.fx for t in traces]) if traces else np.empty(0)):
        plot_trajectories(built, log_scale=True).savefig(paths.trajectories_log, dpi=110)
        written.append(paths.trajectories_log)
    return written
