"""OptimizerLog: the manager's record of every child's evaluations, stored by column.

Each optimizer's history is a few numpy arrays (global call id, x, fx, running best fx, extras)
that grow by doubling, so appending a batch costs one slice copy and no Python object is kept
per evaluation. Stoppers read it through ``history``/``tail``/``n_evals``/``best``; the
running-best column makes "best value N evaluations ago" an O(1) lookup.

``sink`` (optional) receives every batch as it arrives; the HDF5 writer plugs in there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ("OptimizerLog", "OptimizerRecord", "LogSink")

COLUMNS = ("call_id", "x", "fx", "fx_best")


class LogSink(Protocol):
    def add_optimizer(self, record: "OptimizerRecord") -> None: ...

    def append(self, opt_id: int, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray,
               extras: np.ndarray | None) -> None: ...

    def update_optimizer(self, record: "OptimizerRecord") -> None: ...


@dataclass
class OptimizerRecord:
    """Metadata of one child optimizer."""

    opt_id: int
    opt_type: str
    t_start: float
    slots: int = 1
    settings: str = ""
    t_end: float | None = None
    end_cond: str = ""
    messages: list[str] = field(default_factory=list)


class _Columns:
    """Growable column store of one optimizer's evaluations."""

    def __init__(self, n_parms: int, capacity: int = 64):
        self.n = 0
        self.call_id = np.empty(capacity, dtype=np.int64)
        self.x = np.empty((capacity, n_parms), dtype=float)
        self.fx = np.empty(capacity, dtype=float)
        self.fx_best = np.empty(capacity, dtype=float)
        self.extras: np.ndarray | None = None

    def append(self, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray, extras: np.ndarray | None) -> None:
        k = len(fx)
        if self.n + k > len(self.fx):
            self._grow(self.n + k)
        s = slice(self.n, self.n + k)
        self.call_id[s] = call_ids
        self.x[s] = x
        self.fx[s] = fx
        # NaN must not poison the running best: treat it as +inf there only.
        clean = np.where(np.isnan(fx), np.inf, fx)
        prev = self.fx_best[self.n - 1] if self.n else np.inf
        self.fx_best[s] = np.minimum.accumulate(np.concatenate(([prev], clean)))[1:]
        if extras is not None:
            self._append_extras(extras, k)
        self.n += k

    def _append_extras(self, extras: np.ndarray, k: int) -> None:
        if self.extras is None:
            self.extras = np.empty((len(self.fx), extras.shape[1]), dtype=object)
        if extras.shape[1] > self.extras.shape[1]:
            wider = np.empty((len(self.extras), extras.shape[1]), dtype=object)
            wider[:, :self.extras.shape[1]] = self.extras
            self.extras = wider
        self.extras[self.n:self.n + k, :extras.shape[1]] = extras

    def _grow(self, needed: int) -> None:
        cap = max(needed, 2 * len(self.fx))
        for name in ("call_id", "x", "fx", "fx_best", "extras"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.empty((cap,) + old.shape[1:], dtype=old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)


class OptimizerLog:
    """History and metadata of every child optimizer.

    Args:
        n_parms: Dimensionality of the problem.
        sink: Optional receiver of every record and batch (e.g. the HDF5 log writer).
    """

    def __init__(self, n_parms: int, sink: LogSink | None = None):
        self.n_parms = n_parms
        self.sink = sink
        self.records: dict[int, OptimizerRecord] = {}
        self._columns: dict[int, _Columns] = {}
        self.extra_headers: tuple[str, ...] = ()

    # ------------------------------------------------------------ writing

    def add_optimizer(self, opt_id: int, opt_type: str, t_start: float, slots: int = 1, settings: str = "") -> None:
        record = OptimizerRecord(opt_id, opt_type, t_start, slots, settings)
        self.records[opt_id] = record
        self._columns[opt_id] = _Columns(self.n_parms)
        if self.sink:
            self.sink.add_optimizer(record)

    def put_batch(self, opt_id: int, call_ids: np.ndarray, x: np.ndarray, fx: np.ndarray,
                  extras: np.ndarray | None = None) -> None:
        self._columns[opt_id].append(call_ids, x, fx, extras)
        if self.sink:
            self.sink.append(opt_id, call_ids, x, fx, extras)

    def put_metadata(self, opt_id: int, **fields: Any) -> None:
        """Set record fields (``t_end``, ``end_cond``) of an optimizer."""
        record = self.records[opt_id]
        for key, value in fields.items():
            setattr(record, key, value)
        if self.sink:
            self.sink.update_optimizer(record)

    def put_message(self, opt_id: int, text: str) -> None:
        self.records[opt_id].messages.append(text)

    # ------------------------------------------------------------ reading

    def __contains__(self, opt_id: int) -> bool:
        return opt_id in self.records

    def __len__(self) -> int:
        """Total number of evaluations logged."""
        return sum(c.n for c in self._columns.values())

    @property
    def opt_ids(self) -> list[int]:
        return list(self.records)

    def n_evals(self, opt_id: int) -> int:
        return self._columns[opt_id].n if opt_id in self._columns else 0

    def history(self, opt_id: int, column: str) -> np.ndarray:
        """The whole column (``call_id``, ``x``, ``fx``, ``fx_best`` or ``extras``) as a read-only view."""
        c = self._columns[opt_id]
        if column == "extras":
            return c.extras[:c.n] if c.extras is not None else np.empty((c.n, 0), dtype=object)
        if column not in COLUMNS:
            raise KeyError(f"unknown history column {column!r}; choose from {COLUMNS + ('extras',)}")
        view = getattr(c, column)[:c.n]
        view.flags.writeable = False
        return view

    def tail(self, opt_id: int, column: str, n: int) -> np.ndarray:
        """The last ``n`` entries of a column (fewer if the optimizer made fewer evaluations)."""
        return self.history(opt_id, column)[-n:] if n > 0 else self.history(opt_id, column)[:0]

    def best(self, opt_id: int) -> tuple[np.ndarray | None, float, int]:
        """(x, fx, call_id) of the optimizer's best finite evaluation; (None, inf, -1) if none."""
        c = self._columns.get(opt_id)
        if c is None or c.n == 0 or not np.isfinite(c.fx_best[c.n - 1]):
            return None, float("inf"), -1
        i = int(np.nanargmin(np.where(np.isfinite(c.fx[:c.n]), c.fx[:c.n], np.inf)))
        return c.x[i].copy(), float(c.fx[i]), int(c.call_id[i])

    def best_fx(self, opt_id: int, calls_ago: int = 0) -> float:
        """Running best value ``calls_ago`` evaluations before the last one (inf if not that old)."""
        c = self._columns[opt_id]
        i = c.n - 1 - calls_ago
        return float(c.fx_best[i]) if i >= 0 else float("inf")
