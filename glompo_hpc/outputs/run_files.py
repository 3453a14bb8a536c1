"""A run's state read only from its files, for ``glompo-hpc watch`` and ``glompo-hpc report``.

Reads ``glompo_log.h5`` through :func:`read_log.with_log_file` (read-only, under the shared lock
of the writer's flush protocol, retried when met mid-flush), the YAML summary if present, and the
checkpoint files' names and times. Nothing in the run's directory is written or locked for
writing, so a running manager is never blocked (a read takes the shared ``flock`` for the
milliseconds it lasts; a flush waiting longer goes ahead unlocked, see ``hdf5_log``).

Trajectories are cut for display by :func:`downsample`; every number in the tables is exact.
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

from ..protocol.paths import RunPaths
from .read_log import LogData, LogFormatError, OptimizerData, optimizer_groups, read_open_log, with_log_file

__all__ = ("RunFiles", "Checkpoint", "NotARun", "RunReader", "read_run", "downsample", "best_so_far", "STOP_PREFIX")

STOP_PREFIX = "Stopped by manager: "  # core/session.py's message when a stopper ends an optimizer


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


def read_run(workdir: str | Path) -> RunFiles:
    """Read the run in ``workdir`` once (see :class:`RunReader`)."""
    return RunReader(workdir).read()


Columns = dict[int, tuple[np.ndarray, np.ndarray]]  # opt_id: (call ids, fx) read so far


class RunReader:
    """Reads a run again and again (``watch``), fetching only the rows each optimizer gained since
    the last read, so a refresh holds the log's shared lock for milliseconds even at 10^6 rows.

    Args:
        workdir: The run's working directory.
    """

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self._columns: Columns = {}

    def read(self) -> RunFiles:
        """The run as its files say now.

        Raises:
            NotARun: no such directory, no log (``summary_files`` below 3), or a file that is not
                a glompo_hpc log or cannot be read (damaged).
        """
        workdir, paths = self.workdir, RunPaths(self.workdir)
        if not workdir.is_dir():
            raise NotARun(f"no such directory: {str(workdir)!r}")
        if not paths.hdf5_log.is_file():
            if paths.summary.is_file():
                raise NotARun(f"{str(workdir)!r} has no {paths.hdf5_log.name}: this run was made with summary_files "
                              "below 3 (watch and report read the HDF5 log); 'glompo-hpc summary' reads what it has")
            raise NotARun(f"{str(workdir)!r} is not a glompo_hpc run: it holds no {paths.hdf5_log.name}")
        try:
            log, self._columns = with_log_file(paths.hdf5_log, self._read_new_rows)
        except LogFormatError as e:
            raise NotARun(str(e)) from None
        except OSError as e:
            raise NotARun(f"cannot read {str(paths.hdf5_log)!r} (damaged?): {e}") from None
        attrs, optimizers = log.attrs, log.optimizers
        for opt in optimizers:
            opt.data["call_id"], opt.data["fx"] = self._columns[opt.opt_id]
        summary = _summary(paths.summary)
        return RunFiles(workdir=workdir, attrs=attrs, optimizers=optimizers,
                        best_trajectory=best_so_far(optimizers), stop_reasons=_stop_reasons(optimizers),
                        checkpoints=_checkpoints(workdir, attrs, summary),
                        session_starts=_session_starts(attrs, summary), summary=summary, read_at=time.time())

    def _read_new_rows(self, f: Any) -> tuple[LogData, Columns]:
        """Inside the log's lock: attributes, messages, and the rows not read before. A group with
        fewer rows than read before was rolled back by a resume: it is read again from the start."""
        log = read_open_log(f, ("messages",))
        columns: Columns = {}
        for group in optimizer_groups(f):
            opt_id, rows = int(group.attrs["id"]), int(group.attrs["rows"])
            ids, fx = self._columns.get(opt_id, (np.empty(0, dtype=np.int64), np.empty(0)))
            if len(fx) > rows:
                ids, fx = ids[:0], fx[:0]
            if rows > len(fx):
                ids = np.concatenate([ids, group["call_id"][len(fx):rows]])
                fx = np.concatenate([fx, group["fx"][len(fx):rows]])
            columns[opt_id] = (ids, fx)
        return log, columns


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
    size = -(-n // buckets)  # ceil: buckets of equal size, the last one padded
    padded = np.full(buckets * size, np.nan)
    padded[:n] = fx
    grid = padded.reshape(buckets, size)
    start = np.arange(buckets) * size
    lows = start + np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    highs = start + np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    index = np.unique(np.concatenate([lows, highs]))
    index = index[index < n]
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
