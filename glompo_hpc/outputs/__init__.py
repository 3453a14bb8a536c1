"""Outputs: what a run leaves in its working directory, by ``summary_files`` level.

0 nothing; 1 the YAML summary (``glompo_manager_log.yml``); 2 also the trajectory plots
(``trajectories.png``, ``trajectories_log.png`` when values span decades, ``best_so_far.png``);
3 also the HDF5 log (``glompo_log.h5``), streamed while the run goes (``open_log_sink``).

The manager calls :func:`open_log_sink` when a session starts and :func:`write_outputs` when it
ends (normal end, exit condition, crash, signal). Neither ever raises into the run: a failure is
logged and recorded as an incomplete log in the summary.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.optlog import LogSink
from .run_status import in_session, log_status, run_state  # re-exported: callers import them from here

__all__ = ("write_outputs", "open_log_sink", "log_status", "run_key", "run_state", "in_session")

logger = logging.getLogger("glompo_hpc.outputs")


def run_key(manager: Any) -> str:
    """Identifies one optimization across sessions and resumes (its first start and its bounds)."""
    first = manager.dt_starts[0].isoformat() if manager.dt_starts else ""
    bounds = np.ascontiguousarray(manager.bounds, dtype=float).tobytes()
    return hashlib.sha256(f"{first}|{manager.n_parms}|".encode() + bounds).hexdigest()[:16]


def _headers(manager: Any) -> dict[str, str] | None:
    if not manager.is_log_detailed or not callable(getattr(manager.task, "headers", None)):
        return None
    try:
        headers = manager.task.headers()
    except Exception as e:
        logger.warning("task.headers() failed (%s: %s): extras are logged as text", type(e).__name__, e)
        return None
    if not headers:
        return None
    if isinstance(headers, dict):
        return {str(k): str(v) for k, v in headers.items()}
    return {str(name): "str" for name in headers}  # names without types: text keeps every value


def _static_attrs(manager: Any) -> dict[str, Any]:
    from .task_label import task_label

    return {"task": task_label(manager.task), "bounds": np.asarray(manager.bounds, dtype=float),
            "working_dir": str(Path(manager.working_dir).resolve()), "user": getpass.getuser(),
            "host": socket.gethostname(), "pid": os.getpid(), "run_key": run_key(manager),
            "created": manager.dt_starts[0].isoformat(timespec="seconds") if manager.dt_starts else "",
            "backend": str(manager.backend_name), "max_jobs": int(manager.max_jobs)}


def _info(manager: Any):
    """The root attributes rewritten at each flush. Runs in the flushing thread: reads only."""

    def info(final: bool) -> dict[str, Any]:
        m = manager
        now = time.time()
        running = in_session(m)
        res = m.result
        return {
            "state": run_state(m, final), "f_counter": int(m.f_counter), "o_counter": int(m.o_counter),
            "run_id": m.run_identity.run_id if m.run_identity is not None else "",
            "conv_counter": int(m.conv_counter), "stopcheck_counter": int(m.stopcheck_counter),
            "stopped_by_manager": len(m.stopped_opts), "exit_reason": str(m.exit_reason or ""),
            "t_used": float(m.t_used + (now - m.t_start if running else 0.0)),
            "best_fx": float(res.fx) if res.fx is not None and math.isfinite(res.fx) else math.nan,
            "best_x": np.asarray(res.x, dtype=float) if res.x is not None else np.empty(0),
            "best_opt_id": int(res.origin.get("opt_id", -1)) if res.origin else -1,
            "best_opt_type": str(res.origin.get("type", "")) if res.origin else "",
            "checkpoints": len(m.checkpoint_history), "pid": os.getpid(),
            # for `glompo-hpc watch` and `report` (outputs/run_files.py): sessions and checkpoints mid-run
            "session_starts": json.dumps([d.timestamp() for d in m.dt_starts]),
            "checkpoint_log": json.dumps(list(m.checkpoint_log)[-100:], default=str),
        }

    return info


def open_log_sink(manager: Any) -> LogSink | None:
    """The HDF5 writer streaming every evaluation to ``glompo_log.h5`` (level 3), else None.

    A new run gets a new file. A manager that already holds history (resumed from a checkpoint)
    appends to the existing log of the same run after rolling it back to the rows the manager
    knows (``open_for_resume``); if that log is missing, belongs to another run or is too damaged
    to roll back, a new file is started and marked incomplete (the old file is kept under another
    name).
    """
    if manager.summary_files < 3 or manager.opt_log is None:
        return None
    from .hdf5_log import HDF5LogWriter, flush_settings

    log = manager.opt_log
    path = manager.paths.hdf5_log
    # read before the try: a bad variable is the user's to fix, not a log to go on without
    options = {"headers": _headers(manager), "info": _info(manager), **flush_settings()}
    log.extra_headers = tuple(options["headers"] or ())
    known = {opt_id: log.n_evals(opt_id) for opt_id in log.opt_ids}
    try:
        if known and path.is_file() and _log_run_key(path) == run_key(manager):
            writer = _resume_log(manager, path, known, options)
        else:
            if path.exists() and known:
                _move_aside(path, "belongs to another run (or is unreadable)")
            writer = HDF5LogWriter.create(path, manager.n_parms, run_attrs=_static_attrs(manager), **options)
            if any(known.values()):
                writer.problem = f"the log starts at a resumed session: {sum(known.values())} earlier evaluations " \
                                 "are not in it"
        writer.adopt(log.records.values())
    except Exception as e:  # the run goes on without a log
        problem = f"the HDF5 log could not be opened: {type(e).__name__}: {e}"
        logger.error("%s. The run goes on without it.", problem)
        log.sink_status = {"path": str(path), "complete": False, "problem": problem, "rows": 0}
        return None
    log.sink_status = writer.status()
    logger.info("Logging every evaluation to %s", path)
    return writer


def _log_run_key(path: Path) -> str | None:
    from .read_log import decode

    try:
        import h5py
        with h5py.File(path, "r", locking=False) as f:
            return decode(f.attrs.get("run_key"))
    except Exception:
        return None


def _resume_log(manager: Any, path: Path, known: dict[int, int], options: dict[str, Any]) -> Any:
    """Append to this run's log after rolling it back to the checkpoint. A log too damaged to roll
    back (garbage in its metadata or data) is kept aside and a new one started, so the resumed run
    is still logged and the damaged file is neither lost nor touched again by later sessions."""
    from .hdf5_log import HDF5LogWriter

    resume_options = {k: v for k, v in options.items() if k != "headers"}  # the file's extras layout continues
    try:
        return HDF5LogWriter.open_for_resume(path, known, run_attrs=_static_attrs(manager), **resume_options)
    except Exception as e:  # h5py raises OSError, RuntimeError, KeyError, ValueError for damaged files
        damage = f"{type(e).__name__}: {e}"
        try:
            kept = _move_aside(path, f"cannot be rolled back to the checkpoint ({damage})")
        except OSError:  # not even renamed (read-only directory): report the damage itself
            raise e from None
    writer = HDF5LogWriter.create(path, manager.n_parms, run_attrs=_static_attrs(manager), **options)
    writer.problem = (f"the log of the earlier sessions was damaged ({damage}) and is kept as {kept.name}; this log "
                      f"starts at the resumed session: {sum(known.values())} earlier evaluations are not in it")
    return writer


def _move_aside(path: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}.{stamp}.previous{path.suffix}")
    path.rename(target)
    logger.warning("%s %s: kept as %s; a new log is started", path, why, target.name)
    return target


def write_outputs(manager: Any) -> None:
    """End of a session: close the HDF5 log, then write the files ``summary_files`` asks for.

    Each step is guarded on its own, so a failing plot never costs the summary.
    """
    log = manager.opt_log
    sink = log.sink if log is not None else None
    if sink is not None:
        try:
            log.sink_status = sink.close()
        except Exception as e:
            logger.exception("Closing the HDF5 log failed")
            log.sink_status = {**log.sink_status, "complete": False, "problem": f"close failed: {e}"}
        log.sink = None
    if manager.summary_files >= 1:
        try:
            from .summary import write_summary
            write_summary(manager, manager.paths.summary)
        except Exception:
            logger.exception("Writing the YAML summary failed")
    if manager.summary_files >= 2:
        try:
            from .plots import write_plots
            h5 = manager.paths.hdf5_log
            use_file = manager.summary_files >= 3 and h5.is_file() and log.sink_status.get("rows", 0) > 0
            write_plots(h5 if use_file else manager, manager.working_dir)
        except Exception:
            logger.exception("Writing the plots failed")
