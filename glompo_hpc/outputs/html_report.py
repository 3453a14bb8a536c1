"""``glompo-hpc report RUN_DIR``: one self-contained HTML file describing a run.

The page holds its data as JSON and its own small script and style sheet (``report_assets/``,
written for this project: canvas plots with zoom, hover and a log scale, a sortable table, an
SVG timeline), so it opens offline in any browser: no server, no network, no CDN. Trajectories
are downsampled for display (``run_files.downsample``) so a run of 10^6 evaluations stays a few
MB; the numbers in the tables are exact. Works on a run in progress (it shows the state when
read).
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .read_log import OptimizerData
from .run_files import RunFiles, downsample

__all__ = ("report_html", "write_report", "TOTAL_POINTS")

TOTAL_POINTS = 60_000  # trajectory points in the page over all optimizers
MAX_POINTS = 600  # per optimizer (the min and max of each of 300 buckets)
MIN_POINTS = 40  # per optimizer, however many there are


def _num(v: Any) -> float | None:
    """A JSON-safe number (None for NaN and infinities, which JSON cannot hold)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _optimizer(o: OptimizerData, run: RunFiles, points: int) -> dict[str, Any]:
    ids, fx = downsample(o.data["call_id"], o.data["fx"], points)
    return {"id": o.opt_id, "type": o.opt_type, "state": o.category, "best": _num(o.best_fx), "evals": o.rows,
            "t_start": _num(o.t_start), "t_end": _num(o.t_end), "end": o.end_cond,
            "stopper": run.stop_reasons.get(o.opt_id, ""), "x": ids.tolist(), "y": [float(v) for v in fx]}


def _settings(run: RunFiles) -> list[tuple[str, str]]:
    a = run.attrs
    out = [(key, str(a[key])) for key in ("task", "backend", "max_jobs", "n_parms", "created", "user", "host",
                                          "glompo_hpc_version") if key in a]
    if "bounds" in a:
        out.append(("bounds", json.dumps(np.asarray(a["bounds"]).tolist())))
    for key, value in (run.summary.get("settings") or {}).items():
        if key not in dict(out) and key != "bounds":
            out.append((key, json.dumps(value) if not isinstance(value, str) else value))
    return out


def _outcome(run: RunFiles) -> list[tuple[str, str]]:
    a = run.attrs
    best_x = np.asarray(a.get("best_x", []), dtype=float).ravel()
    found = a.get("best_opt_id", -1)
    return [("state", run.state_text), ("best fx", "none" if _num(a.get("best_fx")) is None
                                        else f"{float(a['best_fx']):.10g}"),
            ("best x", ", ".join(f"{v:.8g}" for v in best_x) or "none"),
            ("found by", f"optimizer {found} ({a.get('best_opt_type', '')})" if found not in (-1, None) else "-"),
            ("evaluations", f"{run.evaluations:,}"), ("optimizers", str(len(run.optimizers))),
            ("time used", f"{float(a.get('t_used', 0) or 0):.1f} s"),
            ("sessions", str(len(run.session_starts) or a.get("sessions", 1))),
            ("checkpoints", str(len(run.checkpoints))),
            ("log", "complete" if a.get("complete", True) else f"incomplete: {a.get('problem', '')}")]


def report_data(run: RunFiles) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data."""
    n = max(len(run.optimizers), 1)
    points = min(MAX_POINTS, max(MIN_POINTS, TOTAL_POINTS // n))
    ids, best = run.best_trajectory
    return {"title": run.workdir.resolve().name, "workdir": str(run.workdir.resolve()),
            "generated": datetime.fromtimestamp(run.read_at).isoformat(timespec="seconds"),
            "running": run.running, "settings": _settings(run), "outcome": _outcome(run),
            "best": {"x": ids.tolist(), "y": [float(v) for v in best]},
            "optimizers": [_optimizer(o, run, points) for o in run.optimizers],
            "checkpoints": [{"name": c.name, "f_counter": c.f_counter, "time": c.time} for c in run.checkpoints],
            "sessions": run.session_starts}


def _asset(name: str) -> str:
    return (resources.files("glompo_hpc.outputs") / "report_assets" / name).read_text(encoding="utf-8")


def report_html(run: RunFiles) -> str:
    """The report page as one string."""
    data = json.dumps(report_data(run), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = html.escape(f"glompo-hpc report: {run.workdir.resolve().name}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<style>{_asset('report.css')}</style></head>\n<body>\n{_asset('report_body.html')}\n"
            f"<script type=\"application/json\" id=\"run-data\">{data}</script>\n"
            f"<script>{_asset('report.js')}</script>\n</body></html>\n")


def write_report(run: RunFiles, path: Path) -> Path:
    """Write the report to ``path`` (its directory is created) and return the path.

    Raises:
        OSError: the file cannot be written.
    """
    from .atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, report_html(run))
    return path
