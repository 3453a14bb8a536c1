"""The streaming HDF5 log ``glompo_log.h5``: every evaluation of every optimizer, by column.

Layout: root attributes (format, versions, task, bounds, user, host; counters, best, state,
``complete`` rewritten at each flush) and one group ``optimizer_<id>`` per optimizer (attributes
id, type, t_start, t_end, end_cond, slots, settings, best, ``rows``; datasets ``call_id``, ``x``,
``fx``, ``messages``, extras). docs/outputs.md describes every field.

Flush protocol (chosen over SWMR, which cannot add groups or attributes while writing): batches
are buffered in memory and written by a background thread every ``flush_seconds`` (default 5 s,
``GLOMPO_HPC_LOG_FLUSH_SECONDS``) and as soon as ``flush_rows`` rows are pending (default 8 192,
``GLOMPO_HPC_LOG_FLUSH_ROWS``; at twice that the appending thread flushes itself, so memory stays
bounded when the disk is slower than the run), and by ``flush()``/``close()`` (checkpoints, session end). A
flush opens the file, creates new groups, appends rows, sets each group's ``rows`` attribute
*after* its datasets, and closes the file. Between flushes the file is closed and complete: a
reader may open it read-only at any time, and a SIGKILL leaves every evaluation up to the last
flush. Readers trust ``rows`` and skip groups without it, so a flush cut short by an error never
shows a half-written group; a kill within the milliseconds of a flush itself is the residual
risk. The file is opened without HDF5 file locking, so neither a reader that keeps it open nor a
file system without locks can stop the log.

Errors: an I/O error (disk full, read-only directory, file removed) is logged once, disables the
writer and marks the log incomplete; the run goes on.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import h5py  # at import time: its exit handlers must be registered before ours (they run in reverse)
import numpy as np

from ..protocol.optlog import LogSink, OptimizerRecord
from ..env_settings import env_float, env_int
from . import h5_writers
from .h5_format import (FORMAT_VERSION, append_extras, append_rows, append_text, attr_value, check_space,
                        new_log_attributes, require_row_datasets, roll_back_groups, write_record)
from .read_log import FORMAT_NAME, GROUP_PREFIX, LogFormatError, decode, flush_lock

__all__ = ("HDF5LogWriter", "open_for_resume", "flush_settings", "FORMAT_VERSION", "FLUSH_SECONDS", "FLUSH_ROWS")

logger = logging.getLogger("glompo_hpc.outputs.hdf5_log")

_HEARTBEAT = 60.0  # s: root attributes are refreshed this often even when no row arrives
# s: how long a flush waits for readers to release the file; a reader that keeps it open longer
# (an interactive session) must not stop the log, so the flush then goes ahead unlocked.
WRITE_LOCK_WAIT = 2.0
IO_WAIT = 120.0  # s: the longest anything waits for a flush in progress (a hung file system)


#: Defaults of ``flush_seconds`` and ``flush_rows`` when GLOMPO_HPC_LOG_FLUSH_SECONDS/_ROWS are unset.
FLUSH_SECONDS = 5.0
FLUSH_ROWS = 8_192


def flush_settings() -> dict[str, Any]:
    """``flush_seconds`` and ``flush_rows`` from GLOMPO_HPC_LOG_FLUSH_SECONDS/_ROWS, else the defaults.

    Raises:
        ConfigurationError: a variable holds a bad value.
    """
    return {"flush_seconds": env_float("GLOMPO_HPC_LOG_FLUSH_SECONDS", FLUSH_SECONDS),
            "flush_rows": env_int("GLOMPO_HPC_LOG_FLUSH_ROWS", FLUSH_ROWS, minimum=1)}

class HDF5LogWriter(LogSink):
    """Receives the OptimizerLog's records and batches and streams them to ``path``.

    Create with :meth:`create` (a new log) or :meth:`open_for_resume` (append to an existing one);
    both raise on errors, after which the writer itself never raises.

    Args:
        path: The log file.
        n_parms: Problem dimension.
        headers: ``{name: numpy type}`` of the detailed-call extras, or None (text fallback).
        info: Called at each flush with ``final`` (True at close); returns root attributes
            (counters, best, state ...). Runs in the flushing thread: it must only read.
        flush_seconds: Time between background flushes (0 or None: no background thread;
            default ``FLUSH_SECONDS``).
        flush_rows: Pending rows that trigger a flush in the appending thread (default ``FLUSH_ROWS``).
    """

    def __init__(self, path: str | Path, n_parms: int, headers: Mapping[str, Any] | None = None,
                 info: Callable[[bool], dict[str, Any]] | None = None, flush_seconds: Any = "default",
                 flush_rows: int | None = None):
        self.path = Path(path)
        self.n_parms = int(n_parms)
        self.headers = dict(headers) if headers else None
        self.info = info
        # Module defaults are read here, not bound at definition, so settings made at run time apply.
        if flush_seconds == "default" or flush_rows is None:
            defaults = flush_settings()
            flush_seconds = defaults["flush_seconds"] if flush_seconds == "default" else flush_seconds
            flush_rows = defaults["flush_rows"] if flush_rows is None else flush_rows
        self.flush_seconds = flush_seconds
        self.flush_rows = max(int(flush_rows), 1)
        # Each flush rewrites the last, partly filled chunk of every dataset it appends to, so chunks
        # are kept small (~32 KiB of x): big chunks made a flush of 25 optimizers 7x slower.
        self.chunk_rows = int(max(256, min(4096, 4096 // max(self.n_parms, 1))))
        self.problem: str | None = None  # why the log is incomplete (None: complete so far)
        self.failed = False
        self.flushes = 0
        self._rows: dict[int, int] = {}  # rows committed to the file per optimizer
        self._best: dict[int, tuple[float, int]] = {}
        self._records: dict[int, OptimizerRecord] = {}
        self._new: list[int] = []  # optimizers whose group is still to be created
        self._dirty: set[int] = set()  # optimizers whose attributes changed
        self._batches: dict[int, list[tuple]] = {}
        self._messages: dict[int, list[str]] = {}
        self._pending_rows = 0
        self._last_write = 0.0
        self._buf_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned_lock = False
        h5_writers.track(self)

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | Path, n_parms: int, run_attrs: Mapping[str, Any] | None = None,
               **options: Any) -> "HDF5LogWriter":
        """A new log at ``path`` (an existing file is replaced) with the static root attributes."""
        writer = cls(path, n_parms, **options)
        attrs = new_log_attributes(n_parms, writer.headers, run_attrs)
        # Persistent free-space tracking lets later flushes reuse the space of rewritten chunks;
        # without it every open/close cycle leaked it (20x the data after 200 small flushes).
        with h5py.File(writer.path, "w", locking=False, fs_strategy="fsm", fs_persist=True) as f:
            for key, value in attrs.items():
                f.attrs[key] = attr_value(value)
        writer._start()
        return writer

    @classmethod
    def open_for_resume(cls, path: str | Path, rows_per_opt: Mapping[int, int],
                        run_attrs: Mapping[str, Any] | None = None, **options: Any) -> "HDF5LogWriter":
        """Append to an existing log after rolling it back to a checkpoint.

        Every optimizer's datasets are truncated to ``rows_per_opt[opt_id]`` rows (rows written
        after the checkpoint go, so log and state agree); groups of optimizers not in the dict,
        and groups a cut-short flush left without their ``rows`` attribute, are deleted. If the
        file holds fewer rows than asked the log is marked incomplete.

        Raises:
            FileNotFoundError, LogFormatError, OSError: the file is missing, foreign or unreadable.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no HDF5 log to resume at {str(path)!r}")
        problems: list[str] = []
        with flush_lock(path, exclusive=True, timeout=WRITE_LOCK_WAIT), h5py.File(path, "a", locking=False) as f:
            if decode(f.attrs.get("format")) != FORMAT_NAME:
                raise LogFormatError(f"{str(path)!r} is not a glompo_hpc log")
            if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise LogFormatError(f"{str(path)!r} has log format {f.attrs['format_version']}, newer than this "
                                     f"glompo_hpc reads ({FORMAT_VERSION})")
            headers = json.loads(decode(f.attrs.get("extras_headers", "{}")) or "{}") or None
            writer = cls(path, int(f.attrs["n_parms"]), headers=headers, **options)
            writer._rows, writer._best = roll_back_groups(f, rows_per_opt, problems)
            if not bool(f.attrs.get("complete", True)):
                problems.insert(0, decode(f.attrs.get("problem", "")) or "incomplete before resuming")
            for key, value in (run_attrs or {}).items():
                f.attrs[key] = attr_value(value)
            f.attrs["sessions"] = int(f.attrs.get("sessions", 1)) + 1
            if problems:
                writer.problem = "; ".join(problems)
                f.attrs["complete"] = np.bool_(False)
                f.attrs["problem"] = attr_value(writer.problem)
        if problems:
            logger.warning("HDF5 log %s is incomplete: %s", path, writer.problem)
        writer._start()
        return writer

    def adopt(self, records: Iterable[OptimizerRecord]) -> None:
        """Take the manager's records (after a resume): attributes are rewritten, missing groups made."""
        with self._buf_lock:
            for record in records:
                self._records[record.opt_id] = record
                if record.opt_id in self._rows:
                    self._dirty.add(record.opt_id)
                elif record.opt_id not in self._new:
                    self._new.append(record.opt_id)

    def _start(self) -> None:
        self._last_write = time.monotonic()
        if self.flush_seconds:
            self._thread = threading.Thread(target=self._flush_loop, name="glompo-hpc-log-flush", daemon=True)
            self._thread.start()

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)  # the period, or earlier when append() wakes it
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._buf_lock:
                pending = bool(self._pending_rows or self._new or self._dirty or self._messages)
            if pending or time.monotonic() - self._last_write >= _HEARTBEAT:
                self.flush()

    # ------------------------------------------------------------ the sink protocol

    def add_optimizer(self, record: OptimizerRecord) -> None:
        if self.failed:
            return
        with self._buf_lock:
            self._records[record.opt_id] = record
            self._new.append(record.opt_id)

    def append(self, opt_id: int, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray,
               extras: np.ndarray | None) -> None:
        if self.failed or len(fx) == 0:
            return
        with self._buf_lock:
            self._batches.setdefault(opt_id, []).append((call_ids, x, fx, extras))
            self._pending_rows += len(fx)
            pending = self._pending_rows
        if pending < self.flush_rows:
            return
        background = self._thread is not None and self._thread.is_alive()
        if background:
            self._wake.set()  # the manager's thread does not wait for the disk...
        if not background or pending >= 2 * self.flush_rows:
            self.flush()  # ...unless the disk falls behind: then it does, so memory stays bounded

    def update_optimizer(self, record: OptimizerRecord) -> None:
        if self.failed:
            return
        with self._buf_lock:
            self._records[record.opt_id] = record
            self._dirty.add(record.opt_id)

    def add_message(self, opt_id: int, text: str) -> None:
        if self.failed:
            return
        with self._buf_lock:
            self._messages.setdefault(opt_id, []).append(text)

    # ------------------------------------------------------------ flushing

    def flush(self, final: bool = False) -> bool:
        """Write everything pending and close the file again; False if the log is (now) disabled."""
        if not self._io_lock.acquire(timeout=IO_WAIT):  # a flush hung on the file system (NFS, Lustre)
            logger.error("HDF5 log %s: a flush has not finished in %.0f s; this one is skipped", self.path, IO_WAIT)
            return False
        try:
            if self.failed or (self._closed and not final):
                return not self.failed
            with self._buf_lock:
                new, self._new = self._new, []
                dirty, self._dirty = self._dirty, set()
                batches, self._batches = self._batches, {}
                messages, self._messages = self._messages, {}
                self._pending_rows = 0
                records = dict(self._records)
            try:
                rows = sum(len(b[2]) for group in batches.values() for b in group)
                check_space(self.path, rows, len(batches) + len(new) + len(dirty) + len(messages), self.n_parms,
                            len(self.headers or ()), self.chunk_rows)
            except OSError as e:  # refused before HDF5 met the error: the file is intact and can say so
                self._fail(e, mark_file=True)
                return False
            try:
                with flush_lock(self.path, exclusive=True, timeout=WRITE_LOCK_WAIT) as locked, \
                        h5py.File(self.path, "a", locking=False) as f:
                    if not locked and not self._warned_lock:
                        self._warned_lock = True
                        logger.info("HDF5 log %s: flushing without the file lock (a reader holds it, or the file "
                                    "system has no locks); readers may need to retry", self.path)
                    for opt_id in new:
                        self._create_group(f, records[opt_id])
                    for opt_id, group_batches in batches.items():
                        self._append_rows(self._group(f, opt_id, records), opt_id, group_batches)
                    for opt_id, texts in messages.items():
                        append_text(self._group(f, opt_id, records), texts)
                    for opt_id in dirty - set(new):
                        write_record(self._group(f, opt_id, records), records[opt_id])
                    self._write_root(f, final)
            except Exception as e:  # read-only, file removed, a write error: never stop the run
                self._fail(e)
                return False
            self.flushes += 1
            self._last_write = time.monotonic()
            return True
        finally:
            self._io_lock.release()

    def _group(self, f: Any, opt_id: int, records: dict[int, OptimizerRecord]) -> Any:
        """The optimizer's group, created first if it is not in the file (a record never announced)."""
        name = f"{GROUP_PREFIX}{opt_id}"
        if name not in f or "rows" not in f[name].attrs:
            self._create_group(f, records.get(opt_id) or OptimizerRecord(opt_id, "unknown", math.nan))
        return f[name]

    def _create_group(self, f: Any, record: OptimizerRecord) -> None:
        g = f.require_group(f"{GROUP_PREFIX}{record.opt_id}")
        require_row_datasets(g, self.n_parms, self.chunk_rows)
        if self.headers:  # named extras: every group has its columns, even one that never evaluated
            append_extras(g, self._rows.get(record.opt_id, 0), np.empty((0, 0), dtype=object), self.headers,
                          self.chunk_rows)
        write_record(g, record)
        self._rows.setdefault(record.opt_id, 0)
        g.attrs["best_fx"], g.attrs["best_call_id"] = self._best.get(record.opt_id, (math.inf, -1))
        g.attrs["rows"] = self._rows[record.opt_id]  # last: the group is complete from here on

    def _append_rows(self, g: Any, opt_id: int, batches: list[tuple]) -> None:
        n = self._rows[opt_id]
        k, best = append_rows(g, n, batches, self.headers, self.chunk_rows)
        if best is not None and best[0] < self._best.get(opt_id, (math.inf, -1))[0]:
            self._best[opt_id] = best
            g.attrs["best_fx"], g.attrs["best_call_id"] = best
        g.attrs["rows"] = n + k  # last: readers count rows up to here
        self._rows[opt_id] = n + k

    def _write_root(self, f: Any, final: bool) -> None:
        attrs: dict[str, Any] = {}
        if self.info is not None:
            try:
                attrs = dict(self.info(final))
            except Exception as e:  # the attributes are a courtesy; the rows matter
                logger.debug("log info provider failed: %s: %s", type(e).__name__, e)
        attrs["last_flush"] = time.time()
        attrs["rows"] = sum(self._rows.values())
        attrs["complete"] = self.problem is None
        attrs["problem"] = self.problem or ""
        for key, value in attrs.items():
            f.attrs[key] = attr_value(value)

    def _fail(self, error: BaseException, mark_file: bool = False) -> None:
        self.failed = True
        self.problem = f"writing stopped after an error: {type(error).__name__}: {error}"
        self._stop.set()
        with self._buf_lock:
            self._batches, self._messages, self._new, self._dirty = {}, {}, [], set()
            self._pending_rows = 0
        logger.error("HDF5 log %s: %s. The log is disabled and incomplete from here on; the run goes on.",
                     self.path, self.problem)
        if not mark_file:
            return  # after an HDF5 error the library's state for this file is not to be trusted
        try:  # a few bytes of attributes: usually still fits
            with h5py.File(self.path, "a", locking=False) as f:
                f.attrs["complete"] = np.bool_(False)
                f.attrs["problem"] = attr_value(self.problem)
        except Exception:
            pass

    # ------------------------------------------------------------ control

    def rows_per_optimizer(self) -> dict[int, int]:
        """Rows of each optimizer in the file now (call ``flush()`` first to include pending rows)."""
        with self._io_lock:
            return dict(self._rows)

    def status(self) -> dict[str, Any]:
        """Path, completeness, the reason if incomplete, and rows written (for the summary)."""
        return {"path": str(self.path), "complete": self.problem is None, "problem": self.problem,
                "rows": sum(self._rows.values()), "flushes": self.flushes}

    def close(self) -> dict[str, Any]:
        """Stop the background flushes, write everything with the final attributes; returns ``status()``."""
        if not self._closed:
            self._stop.set()
            self._wake.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(IO_WAIT)
            if not self.failed:
                self.flush(final=True)
            self._closed = True
            h5_writers.forget(self)
        return self.status()

    # ------------------------------------------------------------ across fork (h5_writers)

    def hold_io(self) -> bool:
        return self._io_lock.acquire(timeout=IO_WAIT)

    def release_io(self) -> None:
        self._io_lock.release()

    def disable_in_child(self) -> None:
        # A forked child holds a copy of this writer; it must never write the parent's file.
        self._closed = True
        self.failed = True
        self._thread = None


def open_for_resume(path: str | Path, rows_per_opt: Mapping[int, int], **options: Any) -> HDF5LogWriter:
    """Module-level alias of :meth:`HDF5LogWriter.open_for_resume`."""
    return HDF5LogWriter.open_for_resume(path, rows_per_opt, **options)
