"""A run's state read only from its files, for ``glompo-hpc watch`` and ``glompo-hpc report``.

Reads ``glompo_log.h5`` through :func:`read_log.with_log_file` (read-only, under the shared lock
of the writer's flush protocol, retried when met mid-flush), the YAML summary if present, and the
checkpoint files' names and times. Nothing in the run's directory is written or locked for
writing, so a running manager is never blocked (a read takes the shared ``flock`` for the
milliseconds it lasts; a flush waiting longer goes ahead unlocked, see ``hdf5_log``).

Trajectories are cut for display (:func:`downsample`); every number in the tables is exact.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..core.paths import RunPaths
from .read_log import LogFormatError, OptimizerData, read_log

__all__ = ("RunFiles", "Checkpoint", "NotARun", "read_run", "downsample", "best_so_far", "STOP_PREFIX")

STOP_PREFIX = "Stopped by manager: "  # core/session.py's message when a stopper ends an optimizer
TRAJECTORY_POINTS = 600  # per optimizer, for display (min and max of each bucket are kept)


class NotARun(ValueError):
    """The directory is not a run that watch/report can read (the message says why)."""


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: its name, the evaluations it holds, and its file time if still on disk."""

    name: str
    f_counter: int | None
    time: float | None


@dataclass
class RunFiles:
    """What a run's files say, at the moment they were read."""

    workdir: Path
    attrs: dict[str, Any]
    optimizers: list[OptimizerData]
    trajectories: dict[int, tuple[np.ndarray, np.ndarray]]  # opt_id: (call ids, fx), downsampled
    best_trajectory: tuple[np.ndarray, np.ndarray]  # (call id, best fx so far) at each improvement
    stop_reasons: dict[int, str]  # opt_id: the stopper text that ended it
    checkpoints: list[Checkpoint]
    session_starts: list[float]
    summary: dict[str, Any] = field(default_factory=dict)
    read_at: float = 0.0

    @property
    def evaluations(self) -> int:
        return int(self.attrs.get("f_counter", sum(o.rows for o in self.optimizers)))

    @property
    def running(self) -> bool:
        """True while the log says a session is running (or has no state yet: it was just created,
        before its first flush) and its writer is not known dead."""
        return self.attrs.get("state", "running") == "running" and not writer_gone(self.attrs)

    @property
    def state_text(self) -> str:
        """'running', or how the run ended (with the exit reason), or that its writer died."""
        state = str(self.attrs.get("state", "running"))
        if state == "running":
            return "running" if self.running else "not running: the writer ended without closing the log (killed?)"
        reason = self.attrs.get("exit_reason")
        return f"{state}: {reason}" if reason else state


def writer_gone(attrs: dict[str, Any]) -> bool:
    """True if the log's writer process is known dead (only knowable on the same host)."""
    if attrs.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(attrs.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def read_run(workdir: str | Path, points: int = TRAJECTORY_POINTS) -> RunFiles:
    """Read the run in ``workdir``.

    Raises:
        NotARun: no such directory, no log (``summary_files`` below 3), or a file that is not a
            glompo_hpc log or cannot be read (damaged).
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise NotARun(f"no such directory: {str(workdir)!r}")
    paths = RunPaths(workdir)
    if not paths.hdf5_log.is_file():
        if paths.summary.is_file():
            raise NotARun(f"{str(workdir)!r} has no {paths.hdf5_log.name}: this run was made with summary_files below "
                          f"3 (watch and report read the HDF5 log); 'glompo-hpc summary' reads what it has")
        raise NotARun(f"{str(workdir)!r} is not a glompo_hpc run: it holds no {paths.hdf5_log.name}")
    try:
        log = read_log(paths.hdf5_log, columns=("call_id", "fx", "messages"))
    except LogFormatError as e:
        raise NotARun(str(e)) from None
    except OSError as e:
        raise NotARun(f"cannot read {str(paths.hdf5_log)!r} (damaged?): {e}") from None
    attrs, optimizers = log.attrs, log.optimizers
    summary = _summary(paths.summary)
    trajectories = {o.opt_id: downsample(o.data["call_id"], o.data["fx"], points) for o in optimizers}
    return RunFiles(workdir=workdir, attrs=attrs, optimizers=optimizers, trajectories=trajectories,
                    best_trajectory=best_so_far(optimizers), stop_reasons=_stop_reasons(optimizers),
                    checkpoints=_checkpoints(workdir, attrs, summary), session_starts=_session_starts(attrs, summary),
                    summary=summary, read_at=time.time())


def _stop_reasons(optimizers: list[OptimizerData]) -> dict[int, str]:
    reasons = {}
    for opt in optimizers:
        for text in opt.data.get("messages", []):
            if str(text).startswith(STOP_PREFIX):
                reasons[opt.opt_id] = str(text)[len(STOP_PREFIX):]
    return reasons


def _summary(path: Path) -> dict[str, Any]:
    """The YAML summary (written at each session end), or {} if missing or unreadable."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _json_attr(attrs: dict[str, Any], name: str) -> list[Any]:
    try:
        value = json.loads(attrs.get(name) or "[]")
    except (TypeError, ValueError):
        return []
    return value if isinstance(value, list) else []


def _checkpoints(workdir: Path, attrs: dict[str, Any], summary: dict[str, Any]) -> list[Checkpoint]:
    """Checkpoints from the log (mid-run) or the summary, with the time of those still on disk."""
    details = _json_attr(attrs, "checkpoint_log") or list((summary.get("checkpoints") or {}).get("details") or [])
    on_disk = {p.stem: p.stat().st_mtime for p in (workdir / "checkpoints").glob("*.tar") if p.is_file()}
    found = [Checkpoint(str(d.get("name", "?")).removesuffix(".tar"), d.get("f_counter"),
                        on_disk.pop(str(d.get("name", "")).removesuffix(".tar"), None))
             for d in details if isinstance(d, dict)]
    found += [Checkpoint(name, None, when) for name, when in on_disk.items()]
    return sorted(found, key=lambda c: (c.time or math.inf, c.f_counter or 0))


def _session_starts(attrs: dict[str, Any], summary: dict[str, Any]) -> list[float]:
    starts = [float(t) for t in _json_attr(attrs, "session_starts")]
    if starts:
        return starts
    from datetime import datetime

    out = []
    for s in (summary.get("assignment") or {}).get("sessions") or []:
        try:
            out.append(datetime.fromisoformat(str(s["start"])).timestamp())
        except (KeyError, TypeError, ValueError):
            continue
    return out


def downsample(call_ids: np.ndarray, fx: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` (call id, fx) pairs keeping the shape: each bucket's min and max.

    Non-finite values are dropped (a plot cannot place them).
    """
    call_ids, fx = np.asarray(call_ids), np.asarray(fx, dtype=float)
    keep = np.isfinite(fx)
    call_ids, fx = call_ids[keep], fx[keep]
    n = len(fx)
    if n <= points:
        return call_ids, fx
    buckets = max(points // 2, 1)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    picks = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            part = fx[lo:hi]
            picks += sorted({lo + int(np.argmin(part)), lo + int(np.argmax(part))})
    index = np.asarray(picks)
    return call_ids[index], fx[index]


def best_so_far(optimizers: list[OptimizerData]) -> tuple[np.ndarray, np.ndarray]:
    """(call id, best fx so far) at every improvement of the run's best, plus the last call: exact."""
    ids = [o.data["call_id"] for o in optimizers if len(o.data.get("call_id", ()))]
    if not ids:
        return np.empty(0, dtype=np.int64), np.empty(0)
    call_ids = np.concatenate(ids)
    fx = np.concatenate([o.data["fx"] for o in optimizers if len(o.data.get("call_id", ()))]).astype(float)
    order = np.argsort(call_ids, kind="stable")
    call_ids, fx = call_ids[order], np.where(np.isfinite(fx[order]), fx[order], np.inf)
    running = np.minimum.accumulate(fx)
    improved = np.ones(len(fx), dtype=bool)
    improved[1:] = running[1:] < running[:-1]
    improved[-1] = True
    keep = improved & np.isfinite(running)
    return call_ids[keep], running[keep]
