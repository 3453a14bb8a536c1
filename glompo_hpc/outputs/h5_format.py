"""Low-level pieces of the HDF5 log format: attribute values, extras types, row helpers.

Kept apart from the writer (``hdf5_log``) so that module holds only the flush protocol.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..protocol.optlog import OptimizerRecord
from .read_log import FORMAT_NAME, GROUP_PREFIX

__all__ = ("FORMAT_VERSION", "COMPRESSION", "attr_value", "h5_type", "coerce", "extras_block", "append_text",
           "append_extras", "write_record", "row_datasets", "roll_back_group", "roll_back_groups", "check_space",
           "versions", "new_log_attributes", "require_row_datasets", "append_rows")

FORMAT_VERSION = 1
MAX_TEXT = 16_000  # characters of one text attribute: the default object header holds < 64 KiB
# gzip (deflate) is in every HDF5 build, so the files stay readable by any tool for years.
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_STRING_TYPES = {"str", "string", "object", "o", "u", "s", "bytes"}


def attr_value(value: Any) -> Any:
    """A value h5py can store as an attribute."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + " ...[truncated]"
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.number)) for v in value):
        return np.asarray(value, dtype=float)
    if isinstance(value, dict):
        return attr_value(json.dumps(value, default=str))
    return attr_value(str(value))


def h5_type(type_name: Any) -> tuple[Any, Any]:
    """(HDF5 dtype, fill value) of an extras column declared as ``type_name`` in ``headers()``."""
    import h5py

    text = str(type_name).strip().lower()
    if text in _STRING_TYPES:
        return h5py.string_dtype(), ""
    try:
        dtype = np.dtype(text)
    except TypeError:
        return h5py.string_dtype(), ""
    if dtype.kind in "USOV":
        return h5py.string_dtype(), ""
    if dtype.kind == "f":
        return dtype, np.nan
    if dtype.kind in "iu":
        return dtype, np.iinfo(dtype).min if dtype.kind == "i" else 0
    if dtype.kind == "b":
        return dtype, False
    return np.dtype(float), np.nan



def row_datasets(g: Any) -> list[Any]:
    out = [g[name] for name in ("call_id", "x", "fx", "extras_text") if name in g]
    if "extras" in g:
        out += list(g["extras"].values())
    return out


def write_record(g: Any, r: OptimizerRecord) -> None:
    for key, value in (("id", r.opt_id), ("type", r.opt_type), ("t_start", float(r.t_start)),
                       ("t_end", math.nan if r.t_end is None else float(r.t_end)), ("end_cond", r.end_cond),
                       ("slots", r.slots), ("settings", r.settings)):
        g.attrs[key] = attr_value(value)


def append_text(g: Any, texts: list[str]) -> None:
    import h5py

    ds = g.get("messages")
    if ds is None:
        ds = g.create_dataset("messages", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(64,))
    n = ds.shape[0]
    ds.resize((n + len(texts),))
    ds[n:] = np.array(texts, dtype=object)


def extras_block(batches: list[tuple], k: int) -> np.ndarray:
    """The extras of several batches as one (k, m) object array; None where a batch had none."""
    width = max((np.shape(b[3])[1] for b in batches if b[3] is not None and np.ndim(b[3]) == 2), default=0)
    block = np.full((k, width), None, dtype=object)
    row = 0
    for b in batches:
        n = len(b[2])
        if b[3] is not None and np.ndim(b[3]) == 2:
            block[row:row + n, :np.shape(b[3])[1]] = b[3]
        row += n
    return block


def coerce(column: np.ndarray, dtype: Any, fill: Any) -> np.ndarray:
    """``column`` as ``dtype``; values that do not convert become ``fill`` (NaN, the int minimum, '')."""
    if getattr(dtype, "kind", None) not in tuple("biuf"):  # h5py's vlen string type
        return np.array(["" if v is None else str(v) for v in column], dtype=object)
    try:
        return np.asarray(column, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        out = np.empty(len(column), dtype=dtype)
        for i, v in enumerate(column):
            try:
                out[i] = fill if v is None else v
            except (TypeError, ValueError, OverflowError):
                out[i] = fill
        return out


def versions() -> dict[str, str]:
    import platform

    import h5py

    from .. import __version__
    return {"glompo_hpc_version": __version__, "h5py_version": h5py.version.version,
            "hdf5_version": h5py.version.hdf5_version, "numpy_version": np.__version__,
            "python_version": platform.python_version()}




def append_extras(g: Any, n: int, block: np.ndarray, headers: dict[str, Any] | None, chunk_rows: int) -> None:
    """Write the (k, m) object ``block`` of extras as rows ``n..n+k`` of group ``g``.

    With ``headers`` one typed dataset per name under ``extras/`` (created, padded to ``n`` rows
    with the fill value, if missing); without, the (rows, m) text dataset ``extras_text``.
    """
    import h5py

    k = len(block)
    if headers is None:
        ds = g.get("extras_text")
        if ds is None:
            ds = g.create_dataset("extras_text", shape=(n, 0), maxshape=(None, None), dtype=h5py.string_dtype(),
                                  chunks=(chunk_rows, 4), **COMPRESSION)
        width = max(ds.shape[1], block.shape[1])
        ds.resize((n + k, width))
        text = np.full((k, width), "", dtype=object)
        for (i, j), v in np.ndenumerate(block):
            text[i, j] = "" if v is None else str(v)
        ds[n:] = text
        return
    group = g.require_group("extras")
    for j, (name, type_name) in enumerate(headers.items()):
        dtype, fill = h5_type(type_name)
        ds = group.get(name)
        if ds is None:
            # A vlen-string fill value puts one heap object per chunk row on disk (20x the file): none for text.
            fill_kw = {"fillvalue": fill} if getattr(dtype, "kind", "O") in "biuf" else {}
            ds = group.create_dataset(name, shape=(n,), maxshape=(None,), dtype=dtype, chunks=(chunk_rows,),
                                      **fill_kw, **COMPRESSION)
        if k:
            column = block[:, j] if j < block.shape[1] else np.full(k, None, dtype=object)
            ds.resize((n + k,))
            ds[n:] = coerce(column, dtype, fill)


def roll_back_group(f: Any, name: str, rows_per_opt: Mapping[int, int],
                    problems: list[str]) -> tuple[int, int, tuple[float, int] | None] | None:
    """Truncate optimizer group ``name`` to ``rows_per_opt[id]`` rows, or delete it.

    A group of an optimizer not in ``rows_per_opt``, or without its ``rows`` attribute (left by a
    flush cut short), is deleted (returns None). Otherwise returns (id, rows kept, (best fx, its
    call id) or None); rows the file lacks are described in ``problems``.
    """
    g = f[name]
    opt_id, committed = g.attrs.get("id"), g.attrs.get("rows")
    if opt_id is None or committed is None or int(opt_id) not in rows_per_opt:
        del f[name]
        return None
    opt_id, wanted = int(opt_id), int(rows_per_opt[int(opt_id)])
    rows = min(int(committed), wanted, *(len(g[c]) for c in ("call_id", "x", "fx") if c in g))
    if rows < wanted:
        problems.append(f"optimizer {opt_id}: {wanted - rows} of {wanted} rows missing")
    for ds in row_datasets(g):
        if ds.shape[0] != rows:
            ds.resize(rows, axis=0)
    fx = g["fx"][:rows] if "fx" in g else np.empty(0)
    clean = np.where(np.isfinite(fx), fx, np.inf)
    best = None
    if rows and np.isfinite(clean.min()):
        i = int(np.argmin(clean))
        best = (float(clean[i]), int(g["call_id"][i]))
    g.attrs["best_fx"], g.attrs["best_call_id"] = best or (math.inf, -1)
    g.attrs["rows"] = rows
    return opt_id, rows, best


def check_space(path: Path, rows: int, groups: int, n_parms: int, n_extras: int, chunk_rows: int) -> None:
    """Raise OSError(ENOSPC) unless the file system of ``path`` surely has room for a flush.

    HDF5 cannot recover from a write that fails half way (ENOSPC): its state for the file stays
    dirty and it may crash when it closes the file, even at interpreter exit. So a flush goes
    ahead only if the free space exceeds a generous bound of what it may write: its ``rows``
    uncompressed, the partly filled chunk of every dataset of the ``groups`` it touches, and
    1 MiB for metadata. Quotas are not seen here: there a failed write is caught and logged.
    """
    row_bytes = 8 * (n_parms + 2) + 16 * n_extras + 64
    chunk_bytes = chunk_rows * 8 * (n_parms + 2 + n_extras)
    need = int(1.5 * rows * row_bytes) + groups * chunk_bytes + (1 << 20)
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(errno.ENOSPC, f"the file system is nearly full: {free} bytes free, a flush may need up to {need}")


def roll_back_groups(f: Any, rows_per_opt: Mapping[int, int],
                     problems: list[str]) -> tuple[dict[int, int], dict[int, tuple[float, int]]]:
    """Roll every optimizer group back with :func:`roll_back_group`; returns the rows kept and the
    (best fx, its call id) per optimizer. Optimizers with rows but no group are described in
    ``problems``."""
    rows_kept: dict[int, int] = {}
    bests: dict[int, tuple[float, int]] = {}
    for name in list(f.keys()):
        if name.startswith(GROUP_PREFIX):
            kept = roll_back_group(f, name, rows_per_opt, problems)
            if kept is not None:
                opt_id, rows, best = kept
                rows_kept[opt_id] = rows
                if best is not None:
                    bests[opt_id] = best
    for opt_id, rows in rows_per_opt.items():
        if rows > 0 and opt_id not in rows_kept:
            problems.append(f"optimizer {opt_id}: {rows} rows missing")
    return rows_kept, bests


def new_log_attributes(n_parms: int, headers: Mapping[str, Any] | None,
                       run_attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The root attributes of a new log: format, versions, layout of the extras, and the run's own."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **versions(), "n_parms": n_parms,
            "extras_layout": "columns" if headers else "text",
            "extras_headers": json.dumps({k: str(v) for k, v in (headers or {}).items()}),
            "sessions": 1, "complete": True, "problem": "", **(run_attrs or {})}


def require_row_datasets(g: Any, n_parms: int, chunk_rows: int) -> None:
    """The resizable ``call_id``, ``x`` and ``fx`` datasets of an optimizer's group, made if missing."""
    for name, shape, dtype in (("call_id", (0,), np.int64), ("x", (0, n_parms), np.float64), ("fx", (0,), np.float64)):
        if name not in g:
            g.create_dataset(name, shape=shape, maxshape=(None,) + shape[1:], dtype=dtype,
                             chunks=(chunk_rows,) + shape[1:], **COMPRESSION)


def append_rows(g: Any, n: int, batches: list[tuple], headers: Mapping[str, Any] | None,
                chunk_rows: int) -> tuple[int, tuple[float, int] | None]:
    """Write ``batches`` of (call ids, x, fx, extras) after row ``n`` of group ``g`` (the ``rows``
    attribute is the caller's to move). Returns the rows written and the lowest finite (fx, call
    id) among them, or None."""
    call_ids = np.concatenate([np.asarray(b[0], dtype=np.int64).reshape(-1) for b in batches])
    x = np.concatenate([np.asarray(b[1], dtype=float).reshape(len(b[2]), -1) for b in batches])
    fx = np.concatenate([np.asarray(b[2], dtype=float).reshape(-1) for b in batches])
    k = len(fx)
    for name, values in (("call_id", call_ids), ("x", x), ("fx", fx)):
        ds = g[name]
        ds.resize(n + k, axis=0)
        ds[n:] = values
    if any(b[3] is not None for b in batches) or "extras" in g or "extras_text" in g:
        append_extras(g, n, extras_block(batches, k), headers, chunk_rows)
    clean = np.where(np.isfinite(fx), fx, np.inf)
    i = int(np.argmin(clean))
    return k, ((float(clean[i]), int(call_ids[i])) if np.isfinite(clean[i]) else None)
