"""The YAML summary of a run (``glompo_manager_log.yml``): settings, counters, resources, result."""

from __future__ import annotations

import getpass
import math
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import __version__
from .atomic import atomic_write_text
from .task_label import task_label

__all__ = ("summary_dict", "write_summary")


def _plain(value: Any) -> Any:
    """Turn numpy and other objects into what safe YAML can hold."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _stats(values: list[float]) -> dict[str, float] | None:
    """Average and peak of a status history (``max`` kept as an alias of ``peak`` for old readers)."""
    if not values:
        return None
    peak = float(np.max(values))
    return {"mean": float(np.mean(values)), "peak": peak, "max": peak, "min": float(np.min(values))}


def _time_used(m) -> float:
    """Seconds used by all sessions, the running one included."""
    from .run_status import in_session

    return m.t_used + (time.time() - m.t_start if in_session(m) else 0.0)


def _checkpoints(m) -> dict[str, Any]:
    """Checkpoints taken (all sessions), those still on disk, and each one's size and time."""
    return {"made": len(m.checkpoint_history), "names": sorted(m.checkpoint_history),
            "on_disk": list(m.checkpoint_files),
            "last_exit_checkpoint": m.exit_checkpoint,
            "details": list(m.checkpoint_log)}


def _log_section(m) -> dict[str, Any]:
    from .run_status import log_status

    status = log_status(m)
    if not status:
        return {"hdf5_log": None}
    return {"hdf5_log": Path(status.get("path", "")).name or None, "complete": bool(status.get("complete", False)),
            "rows": status.get("rows"), "problem": status.get("problem") or None}


def _combinable_text(obj: Any) -> str | None:
    return None if obj is None else obj.str_with_result()


def summary_dict(manager) -> dict[str, Any]:
    """Everything the summary file holds, as plain data."""
    from .run_status import in_session, run_state
    from .read_log import END_CATEGORIES, end_category

    m = manager
    sessions = [{"start": s, "end": e} for s, e in zip(m.dt_starts, m.dt_ends + [None] * len(m.dt_starts))]
    records = m.opt_log.records if m.opt_log is not None else {}
    end_conds = [r.end_cond for r in records.values()]
    categories = [end_category(r.end_cond, r.t_end) for r in records.values()]
    running = in_session(m)
    load = [row[0] for row in m.load_history]
    res = m.result
    return _plain({
        "assignment": {
            "glompo_hpc_version": __version__,
            "run_id": m.run_identity.run_id if m.run_identity is not None else None,
            "task": task_label(m.task),
            "working_dir": Path(m.working_dir).resolve(),
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "sessions": sessions,
            "t_used": _time_used(m),
        },
        "settings": {
            "backend": m.backend_name,
            "max_jobs": m.max_jobs,
            "n_parms": m.n_parms,
            "seed": m.seed,  # repeats the run: setup(seed=...) / manager.seed
            "bounds": [list(b) for b in m.bounds],
            "opt_selector": str(m.opt_selector),
            "x0_generator": str(m.x0_generator),
            "stoppers": _combinable_text(m.stoppers),
            "exit_conditions": _combinable_text(m.exit_conditions),
            "stopcheck_interval": m.stopcheck_interval,
            "apply_stoppers_to_best": m.apply_stoppers_to_best,
            "share_best_solutions": m.incumbent_sharing,
            "force_terminations_after": m.force_terminations_after,
            "aggressive_stop": m.aggressive_stop,
            "end_timeout": m.end_timeout,
            "is_log_detailed": m.is_log_detailed,
            "summary_files": m.summary_files,
            "split_printstreams": m.split_printstreams,
            "status_interval": m.status_interval,
        },
        "counters": {
            "function_evaluations": m.f_counter,
            "stopper_checks": m.stopcheck_counter,
            "optimizers": {
                "started": m.o_counter,
                "stopped_by_manager": len(m.stopped_opts),
                "converged": m.conv_counter,
                "crashed": sum(1 for c in end_conds if c.startswith("Error")),
                "forced_terminations": sum(1 for c in end_conds if c.startswith("Forced")),
                "alive": categories.count("alive"),
                "by_end": {c: categories.count(c) for c in END_CATEGORIES if categories.count(c)},
            },
        },
        "run_information": {
            "cpu_percent": _stats(m.cpu_history),
            "memory_bytes": _stats(m.mem_history),
            "load_1min": _stats(load),
            "status_snapshots": len(m.cpu_history),
        },
        "checkpoints": _checkpoints(m),
        "log": _log_section(m),
        "solution": {
            "fx": res.fx if res.fx is not None and math.isfinite(res.fx) else None,
            "x": res.x,
            "origin": res.origin,
            "exit_reason": m.exit_reason,
            "state": run_state(m, final=not running),
        },
        "optimizers": {
            opt_id: {"type": r.opt_type, "slots": r.slots, "t_start": _when(r.t_start), "t_end": _when(r.t_end),
                     "end_condition": r.end_cond, "evaluations": m.opt_log.n_evals(opt_id),
                     "best_fx": _finite_or_none(m.opt_log.best(opt_id)[1])}
            for opt_id, r in records.items()
        },
    })


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp) if timestamp is not None else None


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def write_summary(manager, path: Path) -> None:
    """Write the summary atomically."""
    text = yaml.safe_dump(summary_dict(manager), sort_keys=False, default_flow_style=None, width=120)
    atomic_write_text(path, text)
