"""What a checkpoint holds of the manager and its task, and how it comes back.

The manager's state is every attribute except the live transport and loggers (``TRANSIENT``),
plus the global random number generator states and the list of optimizers that were alive. The
task is saved in the first of three ways that works (reference, ``checkpoint()`` notes): pickled
with dill; else with ``task.checkpoint_save(dir)`` (rebuilt by a ``task_loader``); else not at all,
and ``load_checkpoint(task=...)`` must supply it.
"""

from __future__ import annotations

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

__all__ = ("LiveOptimizer", "capture_state", "restore_state", "save_task", "load_task", "TRANSIENT")

logger = logging.getLogger("glompo_hpc.checkpoint")

#: Manager attributes that never go into a checkpoint: live transport, loggers, the run's guards.
TRANSIENT = frozenset({"logger", "backend", "task", "_running", "_session", "_monitor", "_restored",
                       "_resume_log_rows", "_is_initialised"})


@dataclass
class LiveOptimizer:
    """An optimizer alive at checkpoint time: enough to restart it where it was."""

    opt_id: int
    opt_class: type
    slots: int
    state_file: str | None  # member name in the checkpoint, None if it could not be saved


def capture_state(manager, live: list[LiveOptimizer]) -> bytes:
    """The manager's state, pickled. A running session counts as ended at this moment."""
    state = {k: v for k, v in manager.__dict__.items() if k not in TRANSIENT}
    if manager._running and manager.t_start is not None:
        state["t_used"] = manager.t_used + time.time() - manager.t_start
        state["dt_ends"] = manager.dt_ends + [datetime.now()]
    state["converged"] = False  # a resumed run continues; its exit conditions are evaluated afresh
    state["_live_optimizers"] = live
    state["_rng_states"] = {"numpy": np.random.get_state(), "python": random.getstate()}
    sink = manager.opt_log.sink
    manager.opt_log.sink = None  # an open file handle; the log position is in the manifest instead
    try:
        return dill.dumps(state)
    finally:
        manager.opt_log.sink = sink


def restore_state(manager, blob_path: Path) -> list[LiveOptimizer]:
    """Load the manager's state into ``manager``; returns the optimizers that were alive."""
    try:
        with open(blob_path, "rb") as f:
            state = dill.load(f)
    except Exception as e:  # unpickling runs arbitrary code; any failure means an unusable file
        raise CheckpointError(f"the manager state in the checkpoint cannot be loaded: {type(e).__name__}: {e}") \
            from None
    live = state.pop("_live_optimizers", [])
    rng = state.pop("_rng_states", None)
    manager.__dict__.update(state)
    if rng:
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
    return live


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
            return dill.loads((root / "task.pkl").read_bytes())
        except Exception as e:
            raise TaskNotRestored(f"the task in checkpoint {str(source)!r} cannot be unpickled ({type(e).__name__}: "
                                  f"{e})", "pass task=... to load_checkpoint") from None
    if how == "files":
        if task_loader is None:
            raise TaskNotRestored(f"checkpoint {str(source)!r} saved its task as files",
                                  "pass task_loader=... (e.g. YourTask.checkpoint_load) or task=... to load_checkpoint")
        return task_loader(root / "task")
    raise TaskNotRestored(f"checkpoint {str(source)!r} holds no task", "pass task=... to load_checkpoint")
