"""What a checkpoint holds of the manager and its task, and how it comes back.

A checkpoint holds an allow-list: the fields of the ``Settings`` and ``RunState`` records (the
components are settings), a format version, the global random number generator states and the
list of optimizers that were alive. An attribute added to the manager never enters a checkpoint. The
task is saved in the first of three ways that works (reference, ``checkpoint()`` notes): pickled
with dill; else with ``task.checkpoint_save(dir)`` (rebuilt by a ``task_loader``); else not at all,
and ``load_checkpoint(task=...)`` must supply it.
"""

from __future__ import annotations

import io
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import dill
import numpy as np

from ..errors import CheckpointError, TaskNotRestored
from ..protocol import MOVED_MODULES
from .settings import SETTINGS_FIELDS, Settings
from .state import STATE_FIELDS, STATE_FORMAT, RunState

__all__ = ("LiveOptimizer", "capture_state", "restore_state", "save_task", "load_task")

logger = logging.getLogger("glompo_hpc.checkpoint")


class _Unpickler(dill.Unpickler):
    """Finds a class a checkpoint names by a module path that has since moved (MOVED_MODULES) at
    its new path, so old checkpoints load without relying on the alias modules left there."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def _unpickle(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


@dataclass
class LiveOptimizer:
    """An optimizer alive at checkpoint time: enough to restart it where it was."""

    opt_id: int
    opt_class: type
    slots: int
    state_file: str | None  # member name in the checkpoint, None if it could not be saved


def capture_state(settings: Settings, state: RunState, live: list[LiveOptimizer], session_start: float | None) \
        -> bytes:
    """The run's records, pickled: exactly the fields of Settings and RunState, nothing else.

    ``session_start``: when the running session began (None between sessions); it counts as
    ended at this moment.
    """
    saved = state.as_record()
    if session_start is not None:
        saved["t_used"] = state.t_used + time.time() - session_start
        saved["dt_ends"] = state.dt_ends + [datetime.now()]
    saved["converged"] = False  # a resumed run continues; its exit conditions are evaluated afresh
    saved["end"] = None
    record = {"format_version": STATE_FORMAT, "settings": settings.as_record(), "state": saved,
              "live_optimizers": live, "rng_states": {"numpy": np.random.get_state(), "python": random.getstate()}}
    log = state.opt_log
    sink, log.sink = log.sink, None  # an open file handle; the log position is in the manifest instead
    try:
        return dill.dumps(record)
    finally:
        log.sink = sink


def restore_state(blob_path: Path, source: Path) -> tuple[Settings, RunState, list[LiveOptimizer]]:
    """The settings and state a checkpoint saved, and the optimizers that were alive.

    Reads format 2 (the records) and format 1 (main up to b80b930: the manager's ``__dict__``);
    any other version is refused in one line naming both.
    """
    try:
        with open(blob_path, "rb") as f:
            record = _Unpickler(f).load()
    except Exception as e:  # unpickling runs arbitrary code; any failure means an unusable file
        raise CheckpointError(f"the manager state in the checkpoint cannot be loaded: {type(e).__name__}: {e}") \
            from None
    if "format_version" not in record:
        record = _from_format_1(record)
    version = record["format_version"]
    if version != STATE_FORMAT:
        raise CheckpointError(f"checkpoint {str(source)!r} holds run state format version {version}; this "
                              f"glompo_hpc reads versions 1 and {STATE_FORMAT}")
    settings, state = Settings(), RunState()
    _fill(settings, record["settings"], SETTINGS_FIELDS)
    _fill(state, record["state"], STATE_FIELDS)
    rng = record.get("rng_states")
    if rng:
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
    return settings, state, record.get("live_optimizers", [])


def _fill(target: Any, saved: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in saved:
            setattr(target, name, saved[name])


#: Format 1 attribute names that glompo_hpc now keeps under another name.
_FORMAT_1_RENAMES = {"_too_long": "force_terminations_after"}


def _from_format_1(old: dict[str, Any]) -> dict[str, Any]:
    """Main's checkpoints (b80b930 and earlier) pickled the manager's ``__dict__``: sort its
    attributes into the two records by name. Attributes that no longer exist are dropped; the
    exit reason is not kept (a resumed run's outcome is decided afresh)."""
    named = {_FORMAT_1_RENAMES.get(k, k): v for k, v in old.items()}
    return {"format_version": STATE_FORMAT,
            "settings": {k: v for k, v in named.items() if k in SETTINGS_FIELDS},
            "state": {k: v for k, v in named.items() if k in STATE_FIELDS and k != "end"},
            "live_optimizers": old.get("_live_optimizers", []), "rng_states": old.get("_rng_states")}


def save_task(task: Any, staging: Path, force_task_save: bool) -> str:
    """Save the task into ``staging``; returns how: 'pickle', 'files' or 'none'."""
    if not force_task_save:
        try:
            blob = dill.dumps(task)
        except Exception as e:
            logger.info("The task cannot be pickled (%s: %s); trying task.checkpoint_save", type(e).__name__, e)
        else:
            # Outside the try: a failed write (disk full, read-only) fails the checkpoint like any of
            # its files, rather than passing for an unpicklable task and leaving a task-less checkpoint.
            (staging / "task.pkl").write_bytes(blob)
            return "pickle"
    saver = getattr(task, "checkpoint_save", None)
    if callable(saver):
        folder = staging / "task"
        folder.mkdir()
        try:
            saver(folder)
            return "files"
        except Exception as e:
            logger.warning("task.checkpoint_save failed (%s: %s): the checkpoint holds no task", type(e).__name__, e)
            for p in folder.iterdir():
                p.unlink()
    logger.warning("The checkpoint holds no task: load_checkpoint(task=...) will have to supply it")
    return "none"


def load_task(root: Path, how: str, source: Path, task: Any, task_loader: Callable | None) -> Any:
    """The task for a resumed run: ``task`` if given, else rebuilt from the checkpoint."""
    if task is not None:
        return task
    if how == "pickle":
        try:
            return _unpickle((root / "task.pkl").read_bytes())
        except Exception as e:
            raise TaskNotRestored(f"the task in checkpoint {str(source)!r} cannot be unpickled ({type(e).__name__}: "
                                  f"{e})", "pass task=... to load_checkpoint") from None
    if how == "files":
        if task_loader is None:
            raise TaskNotRestored(f"checkpoint {str(source)!r} saved its task as files",
                                  "pass task_loader=... (e.g. YourTask.checkpoint_load) or task=... to load_checkpoint")
        return task_loader(root / "task")
    raise TaskNotRestored(f"checkpoint {str(source)!r} holds no task", "pass task=... to load_checkpoint")
