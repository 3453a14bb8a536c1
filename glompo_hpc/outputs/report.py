"""The state of a run, running or finished, read from its files (for ``glompo-hpc summary``).

The HDF5 log is preferred: its root attributes are rewritten at every flush, so they describe a
running run too. Without it (``summary_files`` 1 or 2) the YAML summary, written when a session
ends, is used.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..protocol.paths import RunPaths
from .read_log import END_CATEGORIES, LogData, end_category, read_log
from .run_files import writer_gone

__all__ = ("run_report", "RunFilesMissing")

CATEGORIES = END_CATEGORIES


class RunFilesMissing(FileNotFoundError):
    """The directory holds none of the files a run leaves."""


def run_report(workdir: str | Path) -> str:
    """Aligned ``Label: value`` lines describing the run in ``workdir``.

    Raises:
        RunFilesMissing: no such directory, or neither ``glompo_log.h5`` nor the YAML summary in it.
        OSError, ValueError: a file exists but cannot be read.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise RunFilesMissing(f"no such directory: {str(workdir)!r}")
    paths = RunPaths(workdir)
    if paths.hdf5_log.is_file():
        try:
            return _format(workdir, _from_log(read_log(paths.hdf5_log)))
        except (OSError, ValueError):
            if not paths.summary.is_file():
                raise
    if paths.summary.is_file():
        return _format(workdir, _from_summary(paths.summary))
    raise RunFilesMissing(f"{str(workdir)!r} holds no {paths.hdf5_log.name} or {paths.summary.name}: "
                          "not a glompo_hpc working directory (or summary_files=0)")


def _from_log(log: LogData) -> dict[str, Any]:
    a = log.attrs
    state = str(a.get("state", "?"))
    if state == "running":
        age = time.time() - float(a.get("last_flush", time.time()))
        state = ("not running: the writer ended without closing the log (killed?); "
                 f"data up to its last flush {age:.0f} s ago") if writer_gone(a) else \
            f"running (log flushed {age:.0f} s ago)"
    elif a.get("exit_reason"):
        state = f"{state}: {a['exit_reason']}"
    counts = {c: 0 for c in CATEGORIES}
    for opt in log.optimizers:
        counts[opt.category] += 1
    best_fx = float(a.get("best_fx", math.nan))
    complete = bool(a.get("complete", True))
    return {"state": state, "best_fx": best_fx, "best_x": a.get("best_x"),
            "found_by": (a.get("best_opt_id", -1), a.get("best_opt_type", "")),
            "evaluations": f"{a.get('f_counter', log.n_rows)} ({log.n_rows} rows in {log.path.name})",
            "started": len(log.optimizers), "counts": counts, "t_used": a.get("t_used"),
            "log": "complete" if complete else f"incomplete: {a.get('problem', '')}",
            "source": f"{log.path.name}, last flush "
                      f"{datetime.fromtimestamp(float(a.get('last_flush', 0))).isoformat(timespec='seconds')}"}


def _from_summary(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or "counters" not in data:
        raise ValueError(f"{str(path)!r} is not a glompo_hpc summary")
    sol, counters = data.get("solution", {}) or {}, data.get("counters", {}) or {}
    counts = {c: 0 for c in CATEGORIES}
    for opt in (data.get("optimizers") or {}).values():
        counts[end_category(opt.get("end_condition", ""), 0.0 if opt.get("t_end") else None)] += 1
    origin = sol.get("origin") or {}
    log = data.get("log") or {}
    state = sol.get("state", "ended")
    return {"state": f"{state}: {sol.get('exit_reason')}" if sol.get("exit_reason") else state,
            "best_fx": sol.get("fx") if sol.get("fx") is not None else math.nan, "best_x": sol.get("x"),
            "found_by": (origin.get("opt_id", -1), origin.get("type", "")),
            "evaluations": str(counters.get("function_evaluations", "?")),
            "started": (counters.get("optimizers") or {}).get("started", sum(counts.values())),
            "counts": counts, "t_used": (data.get("assignment") or {}).get("t_used"),
            "log": "none" if not log.get("hdf5_log") else
            ("complete" if log.get("complete") else f"incomplete: {log.get('problem')}"),
            "source": f"{path.name} (written at the end of the last session)"}


def _format(workdir: Path, r: dict[str, Any]) -> str:
    x = r["best_x"]
    x_text = "none" if x is None or np.size(x) == 0 else np.array2string(
        np.asarray(x, dtype=float), precision=8, separator=", ", threshold=50, max_line_width=10 ** 6)
    fx = r["best_fx"]
    opt_id, opt_type = r["found_by"]
    counts = ", ".join(f"{n} {c}" for c, n in r["counts"].items() if n or c in ("alive", "converged", "stopped",
                                                                                 "crashed"))
    t_used = r["t_used"]
    lines = [
        ("Run", str(workdir.resolve())),
        ("State", r["state"]),
        ("Best fx", "none" if fx is None or not math.isfinite(float(fx)) else f"{float(fx):.10g}"),
        ("Best x", x_text),
        ("Found by", f"optimizer {opt_id} ({opt_type})" if opt_id not in (None, -1) else "-"),
        ("Evaluations", r["evaluations"]),
        ("Optimizers", f"{r['started']} started: {counts}"),
        ("Time used", "?" if t_used is None else f"{float(t_used):.1f} s"),
        ("Log", r["log"]),
        ("Source", r["source"]),
    ]
    return "\n".join(f"{label + ':':<13} {value}" for label, value in lines)
