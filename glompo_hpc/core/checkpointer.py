"""Taking a checkpoint of a running manager: pause, gather, write, prune, resume.

Protocol (the same on every backend, since it is only messages):

1. Pause every live child. A child pauses at its next ``check_messages()`` (an iteration
   boundary), after flushing its evaluations, so the manager has every evaluation made before the
   pause and none after: nothing is half in and half out.
2. Each paused child saves its own state (``checkpoint_save``) into the staging folder on the
   shared file system and answers StateSaved.
3. The manager pickles its own state and the task, flushes the HDF5 log, records how many rows
   each optimizer has in it, and packs everything into one archive (checkpoint_file).
4. Children resume (or, for a checkpoint at exit, are then stopped).

A child that does not pause within ``pause_timeout`` (an evaluation longer than that) is left out:
its evaluations so far are in the checkpoint, and on resume it is recorded as ended rather than
restored. Older checkpoints are deleted (``keep_past``) only after the new one is complete.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from ..checkpointing import CheckpointingControl
from ..errors import CheckpointError
from ..protocol import messages as msg
from .checkpoint_file import write_checkpoint_file
from .settings import Settings
from .signals import signal_hook
from .snapshot import LiveOptimizer, capture_state, save_task
from .state import RunState

__all__ = ("Checkpointer", "ChildChannel", "NO_CHILDREN")

logger = logging.getLogger("glompo_hpc.checkpoint")


class ChildChannel(Protocol):
    """What the checkpointer needs of the live children; the session provides it."""

    def pausable(self) -> dict[int, tuple[type, int]]:
        """Children that can pause now (not stopping, not abandoned): id -> (class, slots)."""

    def alive(self) -> set[int]:
        """Children not yet ended."""

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        """Send ``message`` to child ``opt_id``."""

    def gather(self, expected: set[int], kind: type, timeout: float) -> dict[int, msg.ChildMessage]:
        """Absorb every message until each expected child answered with ``kind``, ended, or
        ``timeout`` passed; returns the answers by child."""


class _NoChildren:
    """Between sessions: no child to pause or save."""

    def pausable(self) -> dict[int, tuple[type, int]]:
        return {}

    def alive(self) -> set[int]:
        return set()

    def send(self, opt_id: int, message: msg.ManagerMessage) -> None:
        raise KeyError(opt_id)

    def gather(self, expected: set[int], kind: type, timeout: float) -> dict[int, msg.ChildMessage]:
        return {}


NO_CHILDREN: ChildChannel = _NoChildren()


class Checkpointer:
    """Takes checkpoints of a run into ``control``'s directory and keeps its records in the state."""

    def __init__(self, control: CheckpointingControl, working_dir: Path):
        self.control = control
        self.working_dir = Path(working_dir)

    def remove_leftovers(self) -> None:
        """Delete what checkpoints interrupted by a SIGKILL left (staging folders, unnamed archives):
        they are never taken for checkpoints, but would pile up over many requeues. Only this run
        writes here (its working directory is refused to any other), so none is in progress."""
        if not self.directory.is_dir():
            return
        for leftover in [*self.directory.glob(".staging_*"), *self.directory.glob(".*.tar.*.tmp")]:
            logger.info("Removing %s, left by an interrupted checkpoint", leftover.name)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    @property
    def directory(self) -> Path:
        d = Path(self.control.checkpointing_dir)
        return d if d.is_absolute() else self.working_dir / d

    def take(self, settings: Settings, state: RunState, task: Any, session_start: float | None,
             children: ChildChannel = NO_CHILDREN, then_stop: bool = False) -> Path | None:
        """Take a checkpoint now; returns its path, or None if it failed (and raising was not asked).

        ``session_start``: when the running session began (None between sessions).
        """
        state.last_checkpoint_eval = state.f_counter
        state.last_checkpoint_time = started = time.time()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = self._unique_name()
        staging = self.directory / f".staging_{name}"
        paused: set[int] = set()
        try:
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "optimizers").mkdir(parents=True)
            pausable = children.pausable()
            paused = self._pause_children(children, set(pausable))
            live = self._save_children(children, pausable, paused, staging)
            path = self._write(staging, name, live, settings, state, task, session_start)
        except Exception as e:
            if self.control.raise_checkpoint_fail:
                raise CheckpointError(f"checkpoint {name!r} failed: {type(e).__name__}: {e}") from e
            logger.warning("Checkpoint %r failed: %s: %s", name, type(e).__name__, e)
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if not then_stop:
                for opt_id in paused & children.alive():
                    children.send(opt_id, msg.Resume())
        self._prune(path, state.checkpoint_files)
        seconds, size = time.time() - started, path.stat().st_size
        state.checkpoint_log.append({"name": path.name, "f_counter": state.f_counter, "optimizers": len(paused),
                                     "seconds": round(seconds, 4), "bytes": size})
        logger.info("Checkpoint written: %s (%d evaluations, %d optimizers, %.1f MB, %.2f s)", path,
                    state.f_counter, len(paused), size / 2 ** 20, seconds)
        signal_hook("checkpoint-written")
        return path

    def _unique_name(self) -> str:
        """The control's next name; never one already on disk (two checkpoints in one second)."""
        base = name = self.control.get_name()
        n = 1
        while (self.directory / f"{name}.tar").exists():
            name = f"{base}_{n}"
            n += 1
        return name

    # ------------------------------------------------------------ steps

    def _pause_children(self, children: ChildChannel, targets: set[int]) -> set[int]:
        for opt_id in targets:
            children.send(opt_id, msg.Pause())
        paused = set(children.gather(targets, msg.ChildPaused, self.control.pause_timeout)) & children.alive()
        for opt_id in sorted((targets - paused) & children.alive()):
            logger.warning("Optimizer %d did not pause within %.0f s: it is left out of the checkpoint",
                           opt_id, self.control.pause_timeout)
        return paused

    def _save_children(self, children: ChildChannel, pausable: dict[int, tuple[type, int]], paused: set[int],
                       staging: Path) -> list[LiveOptimizer]:
        for opt_id in paused:
            children.send(opt_id, msg.SaveState(str(staging / "optimizers" / f"{opt_id:04d}.pkl")))
        answers = children.gather(paused, msg.StateSaved, self.control.pause_timeout)
        live = []
        for opt_id in sorted(paused & children.alive()):
            opt_class, slots = pausable[opt_id]
            answer = answers.get(opt_id)
            ok = answer is not None and not answer.error and Path(answer.path).is_file()
            if not ok:
                why = answer.error if answer is not None else "no answer in time"
                logger.warning("Optimizer %d could not save its state (%s): it will not be restored", opt_id, why)
            live.append(LiveOptimizer(opt_id, opt_class, slots, f"optimizers/{opt_id:04d}.pkl" if ok else None))
        return live

    def _write(self, staging: Path, name: str, live: list[LiveOptimizer], settings: Settings, state: RunState,
               task: Any, session_start: float | None) -> Path:
        log = state.opt_log
        if log.sink is not None:
            log.sink.flush()
        rows = {opt_id: log.n_evals(opt_id) for opt_id in log.opt_ids}
        self.control.count += 1  # before the state is captured, so a resumed run names its next one afresh
        (staging / "manager.pkl").write_bytes(capture_state(settings, state, live, session_start))
        task_saved_as = save_task(task, staging, self.control.force_task_save)
        info = {"name": name, "f_counter": state.f_counter, "o_counter": state.o_counter, "task": task_saved_as,
                "log_rows": {str(k): v for k, v in rows.items()},
                "live_optimizers": [lo.opt_id for lo in live if lo.state_file],
                **(state.run_identity.as_dict() if state.run_identity is not None else {})}
        path = write_checkpoint_file(staging, self.directory / f"{name}.tar", info)
        state.checkpoint_history.add(path.name)
        state.checkpoint_files.append(path.name)
        return path

    def _prune(self, newest: Path, on_disk: list[str]) -> None:
        """Delete the oldest beyond ``keep_past``; ``on_disk`` (the state's list) is updated."""
        keep = self.control.keep_past
        if keep < 0:
            return
        old = [n for n in on_disk if n != newest.name]
        for name in old[:max(0, len(old) - keep)]:
            (self.directory / name).unlink(missing_ok=True)
            on_disk.remove(name)
