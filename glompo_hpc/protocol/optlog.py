"""OptimizerLog: the manager's record of every child's evaluations, stored by column, in bounded memory.

Each optimizer's history is a few numpy arrays (global call id, x, fx, running best fx, extras),
so appending a batch costs one slice copy and no Python object is kept per evaluation. Stoppers
read it through ``tail``/``best_fx``/``n_evals``/``best``; the running-best column makes "best
value N evaluations ago" an O(1) lookup.

Memory stays bounded however long the run:

* a LIVE optimizer keeps only its last ``tail_rows`` rows (a sliding window; default 10 000,
  environment variable ``GLOMPO_HPC_LOG_TAIL_ROWS``). Older rows leave memory.
* ENDED optimizers keep their rows while all ended optimizers together hold at most
  ``ended_rows`` rows (default 10 000, ``GLOMPO_HPC_LOG_ENDED_ROWS``); beyond that the
  optimizers that ended first are cut down to their last row.
* ``n_evals``, ``best`` and ``best_fx(opt_id)`` stay exact for every optimizer: the count, the
  best point and the running best are tracked incrementally as rows arrive.

``history`` therefore returns the part of an optimizer's history still in memory (from row
``first_row(opt_id)`` on); the full history of every optimizer is in the HDF5 log
(``summary_files=3``), which receives every batch through ``sink`` as it arrives.

A request for more rows than are in memory (a stopper window longer than ``tail_rows``) widens
the window for later calls and is answered from what is there: ``tail`` returns fewer rows and
``best_fx`` returns inf ("not known that far back"), so such stoppers err on the side of not
stopping. ``rows_needed_by(stoppers)`` gives the window a stopper combination needs up front.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..compat import Place, old_attribute_names
from ..env_settings import env_int
from .log_sink import LogSink

__all__ = ("OptimizerLog", "OptimizerRecord", "LogSink", "rows_needed_by", "DEFAULT_TAIL_ROWS",
           "DEFAULT_ENDED_ROWS", "default_tail_rows", "default_ended_rows")

logger = logging.getLogger("glompo_hpc.core.optlog")

COLUMNS = ("call_id", "x", "fx", "fx_best")


DEFAULT_TAIL_ROWS = 10_000  # when GLOMPO_HPC_LOG_TAIL_ROWS is unset
DEFAULT_ENDED_ROWS = 10_000  # when GLOMPO_HPC_LOG_ENDED_ROWS is unset


def default_tail_rows() -> int:
    """Rows kept per live optimizer unless told otherwise: ``GLOMPO_HPC_LOG_TAIL_ROWS`` or 10 000."""
    return env_int("GLOMPO_HPC_LOG_TAIL_ROWS", DEFAULT_TAIL_ROWS, minimum=1)


def default_ended_rows() -> int:
    """Rows kept for the ended optimizers together: ``GLOMPO_HPC_LOG_ENDED_ROWS`` or 10 000."""
    return env_int("GLOMPO_HPC_LOG_ENDED_ROWS", DEFAULT_ENDED_ROWS, minimum=1)


@dataclass
class OptimizerRecord:
    """Metadata of one child optimizer.

    ``opt_lineage`` names (``module:qualname``) its class and every class it derives from, so a
    component can ask whether it is an instance of a class; records from checkpoints written
    before it existed have none.
    """

    opt_id: int
    opt_type: str
    t_start: float
    slots: int = 1
    settings: str = ""
    t_end: float | None = None
    end_cond: str = ""
    messages: list[str] = field(default_factory=list)
    opt_lineage: tuple[str, ...] = ()


def class_lineage(cls: type) -> tuple[str, ...]:
    """``module:qualname`` of ``cls`` and of each class it derives from, ``object`` left out."""
    return tuple(f"{c.__module__}:{c.__qualname__}" for c in cls.__mro__ if c is not object)


def rows_needed_by(criteria: Any) -> int:
    """The longest window (``calls``/``n_iters``) any leaf of a stopper combination reads; 1 if none."""
    if criteria is None:
        return 1
    try:
        leaves: Iterable[Any] = iter(criteria)
    except TypeError:
        leaves = (criteria,)
    needed = 1
    for leaf in leaves:
        for name in ("calls", "n_iters"):
            value = getattr(leaf, name, None)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                needed = max(needed, int(value))
    return needed


class _Columns:
    """The in-memory rows of one optimizer (the last ``limit`` of them) and its exact totals."""

    def __init__(self, n_parms: int, limit: int):
        self.limit = limit
        self.offset = 0  # rows that have left memory
        self.n = 0  # rows in memory
        self._alloc(n_parms, min(64, limit))
        self.extras: np.ndarray | None = None
        self.run_best = math.inf  # running best (finite values only) over ALL rows
        self.best_fx = math.inf
        self.best_x: np.ndarray | None = None
        self.best_call = -1

    def __getstate__(self) -> dict[str, Any]:
        # Only the rows held: the arrays' spare capacity (up to half of them, unset memory) would
        # otherwise go into every checkpoint. Appending after a resume grows them again.
        state = dict(self.__dict__)
        for name in ("call_id", "x", "fx", "fx_best", "extras"):
            if state[name] is not None:
                state[name] = state[name][:self.n].copy()
        return state

    def _alloc(self, n_parms: int, capacity: int) -> None:
        self.call_id = np.empty(capacity, dtype=np.int64)
        self.x = np.empty((capacity, n_parms), dtype=float)
        self.fx = np.empty(capacity, dtype=float)
        self.fx_best = np.empty(capacity, dtype=float)

    @property
    def total(self) -> int:
        return self.offset + self.n

    @property
    def capacity(self) -> int:
        return len(self.fx)

    def append(self, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray, extras: np.ndarray | None) -> None:
        fx = np.asarray(fx, dtype=float).reshape(-1)
        k = len(fx)
        if k == 0:
            return
        call_ids = np.asarray(call_ids, dtype=np.int64).reshape(-1)
        x = np.asarray(x, dtype=float).reshape(k, -1)
        # Non-finite values never count as a best (the manager's incumbent rule): +inf there only.
        clean = np.where(np.isfinite(fx), fx, np.inf)
        running = np.minimum.accumulate(np.concatenate(([self.run_best], clean)))[1:]
        i = int(np.argmin(clean))
        if clean[i] < self.best_fx:  # strict: the first evaluation reaching a value stays the best
            self.best_fx, self.best_x, self.best_call = float(clean[i]), x[i].copy(), int(call_ids[i])
        self.run_best = float(running[-1])
        if k > self.limit:  # a batch longer than the window: only its end is kept
            skip = k - self.limit
            self.offset += self.n + skip
            self.n = 0
            call_ids, x, fx, running = call_ids[skip:], x[skip:], fx[skip:], running[skip:]
            extras = extras[skip:] if extras is not None else None
            k = self.limit
        self._make_room(k)
        s = slice(self.n, self.n + k)
        self.call_id[s] = call_ids
        self.x[s] = x
        self.fx[s] = fx
        self.fx_best[s] = running
        if extras is not None:
            self._append_extras(np.asarray(extras, dtype=object).reshape(k, -1), k)
        self.n += k

    def _make_room(self, k: int) -> None:
        """Ensure ``n + k`` rows fit, growing up to the window plus some slack, then dropping old rows."""
        needed = self.n + k
        if needed <= self.capacity:
            return
        # Slack above the window makes trimming (a copy of ``limit`` rows) happen once per
        # ``slack`` appended rows instead of at every batch.
        ceiling = self.limit + max(self.limit // 4, 16)
        if needed <= ceiling:
            self._resize(min(ceiling, max(needed, 2 * self.capacity)), keep_from=0)
            return
        keep_from = self.n - max(self.limit - k, 0)
        self.offset += keep_from
        self._resize(max(ceiling, (self.n - keep_from) + k), keep_from=keep_from)

    def _resize(self, capacity: int, keep_from: int) -> None:
        kept = self.n - keep_from
        for name in ("call_id", "x", "fx", "fx_best", "extras"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.empty((capacity,) + old.shape[1:], dtype=old.dtype)
            new[:kept] = old[keep_from:self.n]
            setattr(self, name, new)
        self.n = kept

    def _append_extras(self, extras: np.ndarray, k: int) -> None:
        if self.extras is None:
            self.extras = np.empty((self.capacity, extras.shape[1]), dtype=object)
        if extras.shape[1] > self.extras.shape[1]:
            wider = np.empty((self.capacity, extras.shape[1]), dtype=object)
            wider[:, :self.extras.shape[1]] = self.extras
            self.extras = wider
        self.extras[self.n:self.n + k, :extras.shape[1]] = extras

    def shrink(self, limit: int) -> None:
        """Keep only the last ``limit`` rows, in arrays of that size (the rest of the memory is freed)."""
        self.limit = limit
        if self.n > limit or self.capacity > max(limit, 1):
            keep_from = max(self.n - limit, 0)
            self.offset += keep_from
            self._resize(max(limit, 1), keep_from=keep_from)

    def widen(self, limit: int) -> None:
        self.limit = max(self.limit, limit)


@old_attribute_names(Place.OPT_LOG)  # GloMPO 3.1's BaseLogger methods explain their replacement
class OptimizerLog:
    """History and metadata of every child optimizer, in bounded memory (see the module notes).

    Args:
        n_parms: Dimensionality of the problem.
        sink: Optional receiver of every record and batch (e.g. the HDF5 log writer).
        tail_rows: Rows kept in memory per live optimizer (the longest stopper window it serves).
        ended_rows: Rows kept in memory for all ended optimizers together; beyond that the first
            to end keep only their last row.
    """

    def __init__(self, n_parms: int, sink: LogSink | None = None, tail_rows: int | None = None,
                 ended_rows: int | None = None):
        self.n_parms = n_parms
        self.sink = sink
        self.records: dict[int, OptimizerRecord] = {}
        self._columns: dict[int, _Columns] = {}
        self.extra_headers: tuple[str, ...] = ()
        self.tail_rows = max(int(tail_rows if tail_rows is not None else default_tail_rows()), 1)
        self.ended_rows = max(int(ended_rows if ended_rows is not None else default_ended_rows()), 0)
        self._ended_in_memory: dict[int, None] = {}  # ended optimizers not yet cut down, oldest first
        #: What the sink reported when it closed or failed (path, complete, problem, rows); kept
        #: through checkpoints so the summary of a resumed run still knows an earlier gap.
        self.sink_status: dict[str, Any] = {}
        self._warned_short: set[tuple[int, int]] = set()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints written before the bounded-memory fields existed still load.
        state.setdefault("tail_rows", default_tail_rows())
        state.setdefault("ended_rows", default_ended_rows())
        state.setdefault("_ended_in_memory", {})
        state.setdefault("sink_status", {})
        state.setdefault("_warned_short", set())
        self.__dict__.update(state)

    # ------------------------------------------------------------ writing

    def add_optimizer(self, opt_id: int, opt_type: str, t_start: float, slots: int = 1, settings: str = "",
                      lineage: tuple[str, ...] = ()) -> None:
        record = OptimizerRecord(opt_id, opt_type, t_start, slots, settings, opt_lineage=lineage)
        self.records[opt_id] = record
        self._columns[opt_id] = _Columns(self.n_parms, self.tail_rows)
        self._to_sink("add_optimizer", record)

    def put_batch(self, opt_id: int, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray,
                  extras: np.ndarray | None = None) -> None:
        self._columns[opt_id].append(call_ids, x, fx, extras)
        self._to_sink("append", opt_id, call_ids, x, fx, extras)

    def put_metadata(self, opt_id: int, **fields: Any) -> None:
        """Set record fields (``t_end``, ``end_cond``) of an optimizer.

        Setting ``t_end`` marks the optimizer as ended: its rows then count against ``ended_rows``.
        """
        record = self.records[opt_id]
        for key, value in fields.items():
            setattr(record, key, value)
        if fields.get("t_end") is not None and opt_id not in self._ended_in_memory:
            self._ended_in_memory[opt_id] = None
            self._enforce_ended_budget()
        self._to_sink("update_optimizer", record)

    def end_optimizer(self, opt_id: int, t_end: float, end_cond: str) -> None:
        """Record the end of an optimizer (same as ``put_metadata(opt_id, t_end=..., end_cond=...)``)."""
        self.put_metadata(opt_id, t_end=t_end, end_cond=end_cond)

    def put_message(self, opt_id: int, text: str) -> None:
        self.records[opt_id].messages.append(text)
        self._to_sink("add_message", opt_id, text)

    def _enforce_ended_budget(self) -> None:
        held = sum(self._columns[i].n for i in self._ended_in_memory)
        while held > self.ended_rows and self._ended_in_memory:
            oldest = next(iter(self._ended_in_memory))
            del self._ended_in_memory[oldest]
            c = self._columns[oldest]
            held -= c.n - min(c.n, 1)
            c.shrink(1)

    def _to_sink(self, method: str, *args: Any) -> None:
        """Forward to the sink; a failing sink is dropped, never allowed to stop the run."""
        if self.sink is None:
            return
        try:
            getattr(self.sink, method)(*args)
        except Exception as e:  # the sink should catch its own errors; this is the last guard
            logger.error("The log sink failed in %s (%s: %s); it is disabled, the run goes on", method,
                         type(e).__name__, e)
            self.sink_status = {**self.sink_status, "complete": False,
                                "problem": f"sink failed in {method}: {type(e).__name__}: {e}"}
            self.sink = None

    # ------------------------------------------------------------ reading

    def __contains__(self, opt_id: int) -> bool:
        return opt_id in self.records

    def __len__(self) -> int:
        """Total number of evaluations logged (in memory or not)."""
        return sum(c.total for c in self._columns.values())

    @property
    def opt_ids(self) -> list[int]:
        return list(self.records)

    def n_evals(self, opt_id: int) -> int:
        """Evaluations logged for ``opt_id`` (exact, also after rows left memory)."""
        return self._columns[opt_id].total if opt_id in self._columns else 0

    def first_row(self, opt_id: int) -> int:
        """Index (0-based, in the optimizer's own history) of the first row still in memory."""
        return self._columns[opt_id].offset

    def history(self, opt_id: int, column: str) -> np.ndarray:
        """The in-memory part of a column (``call_id``, ``x``, ``fx``, ``fx_best`` or ``extras``), read-only.

        That is the whole history while it fits (see the module notes); the full history is in
        the HDF5 log. ``first_row(opt_id)`` says how many rows came before it.
        """
        c = self._columns[opt_id]
        if column == "extras":
            return c.extras[:c.n] if c.extras is not None else np.empty((c.n, 0), dtype=object)
        if column not in COLUMNS:
            raise KeyError(f"unknown history column {column!r}; choose from {COLUMNS + ('extras',)}")
        view = getattr(c, column)[:c.n]
        view.flags.writeable = False
        return view

    def tail(self, opt_id: int, column: str, n: int) -> np.ndarray:
        """The last ``n`` entries of a column (fewer if the optimizer made fewer evaluations).

        Asking for more rows than memory holds widens the window for later calls (see module notes).
        """
        if n <= 0:
            return self.history(opt_id, column)[:0]
        c = self._columns[opt_id]
        if n > c.n and c.total > c.n:
            self._short_window(opt_id, n)
        return self.history(opt_id, column)[-n:]

    def best(self, opt_id: int) -> tuple[np.ndarray | None, float, int]:
        """(x, fx, call_id) of the optimizer's best finite evaluation; (None, inf, -1) if none. Exact."""
        c = self._columns.get(opt_id)
        if c is None or c.best_x is None:
            return None, float("inf"), -1
        return c.best_x.copy(), c.best_fx, c.best_call

    def best_fx(self, opt_id: int, calls_ago: int = 0) -> float:
        """Running best value ``calls_ago`` evaluations before the last one (inf if not that old).

        Non-finite values never count. Beyond the rows in memory the answer is inf as well, and
        the window widens for later calls (see module notes).
        """
        c = self._columns[opt_id]
        if calls_ago <= 0:
            return c.run_best if c.total else float("inf")
        i = c.n - 1 - calls_ago
        if i >= 0:
            return float(c.fx_best[i])
        if c.total - 1 - calls_ago >= 0:
            self._short_window(opt_id, calls_ago + 1)
        return float("inf")

    def _short_window(self, opt_id: int, needed: int) -> None:
        c = self._columns[opt_id]
        if opt_id in self._ended_in_memory or c.limit == 1:
            return  # an ended optimizer is not judged any more; its window does not matter
        if needed > self.tail_rows:
            self.tail_rows = needed
            for i, other in self._columns.items():  # every live optimizer is judged by the same stoppers
                if i not in self._ended_in_memory and other.limit > 1:
                    other.widen(needed)
        c.widen(needed)
        key = (opt_id, needed)
        if key not in self._warned_short:
            self._warned_short.add(key)
            logger.info("A reader asked for the last %d rows of optimizer %d, beyond the %d kept in memory; the "
                        "window now keeps %d rows (pass tail_rows >= rows_needed_by(stoppers) to avoid this)",
                        needed, opt_id, c.n, self.tail_rows)
