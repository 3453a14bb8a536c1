"""Reading ``glompo_log.h5``: a finished log, or one a running manager is still writing.

The writer (``hdf5_log``) keeps the file closed between flushes and holds an exclusive ``flock``
on it while it flushes; :func:`read_log` holds a shared one while it reads, so it always sees the
state of a complete flush (plain h5py readers with HDF5's default file locking take the same
lock: during a flush their open fails with "unable to lock file", and a retry succeeds). Where
the file system has no locks, reads are retried on errors. Rows count only up to each group's
``rows`` attribute (the writer sets it after the datasets) and groups without it are skipped.

Example::

    from glompo_hpc.outputs.read_log import read_log
    log = read_log("run/glompo_log.h5", columns=("call_id", "fx"))
    for opt in log.optimizers:
        print(opt.opt_id, opt.opt_type, opt.end_cond, opt.rows, opt.best_fx)
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, readers rely on retries alone
    fcntl = None  # type: ignore[assignment]

__all__ = ("LogData", "OptimizerData", "read_log", "read_open_log", "with_log_file", "optimizer_groups", "flush_lock", "LogFormatError", "FORMAT_NAME", "GROUP_PREFIX",
           "ROW_COLUMNS", "end_category", "decode")

logger = logging.getLogger("glompo_hpc.outputs.read_log")
T = TypeVar("T")
READ_LOCK_WAIT = 10.0  # s: a reader waits this long for a flush to end (flushes take milliseconds)

FORMAT_NAME = "glompo_hpc optimization log"
GROUP_PREFIX = "optimizer_"
ROW_COLUMNS = ("call_id", "x", "fx")


class LogFormatError(ValueError):
    """The file is not a glompo_hpc log (or not one this version can read)."""


@dataclass
class OptimizerData:
    """One optimizer of the log: its attributes and the columns that were read."""

    opt_id: int
    opt_type: str
    t_start: float
    t_end: float | None
    end_cond: str
    slots: int
    rows: int
    best_fx: float
    best_call_id: int
    settings: str = ""
    data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def category(self) -> str:
        return end_category(self.end_cond, self.t_end)


@dataclass
class LogData:
    """The root attributes and optimizers of a log."""

    path: Path
    attrs: dict[str, Any]
    optimizers: list[OptimizerData]

    @property
    def n_rows(self) -> int:
        return sum(o.rows for o in self.optimizers)


#: How an optimizer ended, by category; the one definition the result lines, ``summary``, the YAML
#: summary and the plot legend count by. 'stopped': ended by the manager's stoppers; 'unfinished':
#: still running when the run ended (its exit conditions, or a signal) and stopped with it.
END_CATEGORIES = ("alive", "converged", "stopped", "unfinished", "crashed", "forced", "other")


def end_category(end_cond: str, t_end: float | None) -> str:
    """One of END_CATEGORIES from an end condition text (as the session writes them)."""
    if t_end is None or (isinstance(t_end, float) and math.isnan(t_end)):
        return "alive"
    text = end_cond or ""
    if text.startswith("Error"):
        return "crashed"
    if text.startswith("Forced"):
        return "forced"
    if text.startswith("GloMPO Termination"):  # the manager's Stop after a stopper fired
        return "stopped"
    if text.startswith("Stopped"):  # 'Stopped: manager is shutting down': the run ended around it
        return "unfinished"
    if text.startswith("Optimizer"):  # 'Optimizer convergence', 'Optimizer ended without convergence'
        return "converged"
    return "other"


def end_counts(records: Any) -> dict[str, int]:
    """Optimizers per END_CATEGORIES entry, from ``OptimizerLog.records`` (all categories, zeros included)."""
    categories = [end_category(r.end_cond, r.t_end) for r in records.values()]
    return {c: categories.count(c) for c in END_CATEGORIES}


def decode(value: Any) -> Any:
    """h5py attribute values as plain Python: bytes to str, numpy scalars to numbers."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_log(path: str | Path, columns: Sequence[str] = (), retries: int = 5, retry_wait: float = 0.2) -> LogData:
    """Read a log's attributes and the requested row columns of every optimizer.

    Args:
        path: The ``glompo_log.h5`` file.
        columns: Any of ``call_id``, ``x``, ``fx``, ``extras`` (``extras`` gives a dict of
            columns or, for tasks without ``headers()``, an (n, m) array of text).
        retries: Attempts when the file is met mid-flush.
        retry_wait: Seconds between attempts.

    Raises:
        FileNotFoundError: no such file.
        LogFormatError: the file is not a glompo_hpc log.
        OSError: the file could not be read after all attempts.
    """
    path = Path(path)
    return with_log_file(path, lambda f: _read(f, path, columns), retries, retry_wait)


def with_log_file(path: str | Path, read: Callable[[Any], T], retries: int = 5, retry_wait: float = 0.2) -> T:
    """Open the log read-only (no HDF5 file locking), call ``read(file)``, and retry on failure.

    A failure is typical of a file met in the middle of a flush; ``read`` is simply run again.

    Raises:
        FileNotFoundError: no such file.
        LogFormatError: the file is not a glompo_hpc log.
        OSError: the file could not be read after all attempts.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no HDF5 log at {str(path)!r}")
    last: Exception | None = None
    for attempt in range(max(retries, 1)):
        try:
            with flush_lock(path, exclusive=False, timeout=READ_LOCK_WAIT), h5py.File(path, "r", locking=False) as f:
                if decode(f.attrs.get("format")) != FORMAT_NAME:
                    raise LogFormatError(f"{str(path)!r} is an HDF5 file but not a glompo_hpc log")
                return read(f)
        except LogFormatError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as e:  # a half-written state: try again
            last = e
            if attempt + 1 < retries:
                time.sleep(retry_wait)
    if isinstance(last, OSError):
        raise OSError(f"cannot read the HDF5 log {str(path)!r}: {last}") from None
    raise OSError(f"cannot read the HDF5 log {str(path)!r}: {type(last).__name__}: {last}")


def read_open_log(f: Any, columns: Sequence[str] = ()) -> LogData:
    """:func:`read_log` of a file already open in :func:`with_log_file`'s ``read`` (so a caller
    can read more from the same consistent state)."""
    return _read(f, Path(f.filename), columns)


def _read(f: Any, path: Path, columns: Sequence[str]) -> LogData:
    attrs = {k: decode(v) for k, v in f.attrs.items()}
    optimizers = []
    for group in optimizer_groups(f):
        a = group.attrs
        rows = int(a["rows"])
        t_end = float(a.get("t_end", math.nan))
        opt = OptimizerData(
            opt_id=int(a["id"]), opt_type=str(decode(a.get("type", ""))), t_start=float(a.get("t_start", math.nan)),
            t_end=None if math.isnan(t_end) else t_end, end_cond=str(decode(a.get("end_cond", ""))),
            slots=int(a.get("slots", 1)), rows=rows, best_fx=float(a.get("best_fx", math.inf)),
            best_call_id=int(a.get("best_call_id", -1)), settings=str(decode(a.get("settings", ""))))
        for column in columns:
            opt.data[column] = _read_column(group, column, rows)
        optimizers.append(opt)
    optimizers.sort(key=lambda o: o.opt_id)
    return LogData(path, attrs, optimizers)


@contextmanager
def flush_lock(path: Path, exclusive: bool, timeout: float) -> Iterator[bool]:
    """An advisory ``flock`` on the log: exclusive while the writer flushes, shared while a reader reads.

    It is the same kind of lock HDF5's own file locking takes, so plain ``h5py.File(path, "r")``
    readers take part too. Yields True if the lock is held; False if it could not be taken
    within ``timeout`` or the file system does not support it (the caller then goes on unlocked).
    """
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR if exclusive else os.O_RDONLY)  # NFS wants write access for LOCK_EX
    except OSError:
        yield False
        return
    locked = False
    try:
        deadline = time.monotonic() + timeout
        operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(fd, operation)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            except OSError:  # no locks on this file system
                break
        yield locked
    finally:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def optimizer_groups(f: Any) -> list[Any]:
    """The complete optimizer groups of an open log (a group without ``rows`` is skipped: a flush
    creating it did not complete)."""
    return [g for name, g in f.items() if name.startswith(GROUP_PREFIX) and "rows" in g.attrs]


def _read_column(group: Any, column: str, rows: int) -> Any:
    if column in ROW_COLUMNS:
        return group[column][:rows]
    if column == "extras":
        if "extras" in group:
            return {name: _plain_strings(ds[:rows]) for name, ds in group["extras"].items()}
        if "extras_text" in group:
            return _plain_strings(group["extras_text"][:rows])
        return {}
    if column == "messages":
        return [decode(m) for m in group["messages"][:]] if "messages" in group else []
    raise KeyError(f"unknown log column {column!r}; choose from {ROW_COLUMNS + ('extras', 'messages')}")


def _plain_strings(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "O":
        return np.vectorize(decode, otypes=[object])(values) if values.size else values
    return values
