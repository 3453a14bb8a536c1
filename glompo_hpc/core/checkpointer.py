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

from ..checkpointing import CheckpointingControl
from ..errors import CheckpointError
from . import messages as msg
from .checkpoint_file import write_checkpoint_file
from .signals import signal_hook
from .snapshot import LiveOptimizer, capture_state, save_task

__all__ = ("Checkpointer",)

logger = logging.getLogger("glompo_hpc.checkpoint")


class Checkpointer:
    """Decides when checkpoints are due and takes them, for one run session."""

    def __init__(self, session, control: CheckpointingControl):
        self.session = session
        self.manager = session.m
        self.control = control
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
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
        return d if d.is_absolute() else Path(self.manager.working_dir) / d

    def due(self) -> bool:
        m, c = self.manager, self.control
        return (m.f_counter - m.last_checkpoint_eval >= c.checkpoint_eval_interval
                or time.time() - m.last_checkpoint_time >= c.checkpoint_time_interval)

    def take(self, then_stop: bool = False) -> Path | None:
        """Take a checkpoint now; returns its path, or None if it failed (and raising was not asked)."""
        m = self.manager
        m.last_checkpoint_eval = m.f_counter
        m.last_checkpoint_time = started = time.time()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = self._unique_name()
        staging = self.directory / f".staging_{name}"
        paused: set[int] = set()
        try:
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "optimizers").mkdir(parents=True)
            paused = self._pause_children()
            live = self._save_children(paused, staging)
            path = self._write(staging, name, live)
        except Exception as e:
            if self.control.raise_checkpoint_fail:
                raise CheckpointError(f"checkpoint {name!r} failed: {type(e).__name__}: {e}") from e
            logger.warning("Checkpoint %r failed: %s: %s", name, type(e).__name__, e)
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if not then_stop:
                for opt_id in paused:
                    self.session.backend.send(opt_id, msg.Resume())
        self._prune(path)
        seconds, size = time.time() - started, path.stat().st_size
        m.checkpoint_log.append({"name": path.name, "f_counter": m.f_counter, "optimizers": len(paused),
                                 "seconds": round(seconds, 4), "bytes": size})
        logger.info("Checkpoint written: %s (%d evaluations, %d optimizers, %.1f MB, %.2f s)", path, m.f_counter,
                    len(paused), size / 2 ** 20, seconds)
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

    def _pause_children(self) -> set[int]:
        s = self.session
        targets = {i for i, c in s.children.items() if c.stop_sent is None and not c.abandoned}
        for opt_id in targets:
            s.backend.send(opt_id, msg.Pause())
        paused = self._collect(targets, msg.ChildPaused) & set(s.children)
        for opt_id in sorted((targets - paused) & set(s.children)):
            logger.warning("Optimizer %d did not pause within %.0f s: it is left out of the checkpoint",
                           opt_id, self.control.pause_timeout)
        return paused

    def _save_children(self, paused: set[int], staging: Path) -> list[LiveOptimizer]:
        s = self.session
        for opt_id in paused:
            s.backend.send(opt_id, msg.SaveState(str(staging / "optimizers" / f"{opt_id:04d}.pkl")))
        answers: dict[int, msg.StateSaved] = {}
        self._collect(paused, msg.StateSaved, answers)
        live = []
        for opt_id in sorted(paused & set(s.children)):
            child = s.children[opt_id]
            answer = answers.get(opt_id)
            ok = answer is not None and not answer.error and Path(answer.path).is_file()
            if not ok:
                why = answer.error if answer is not None else "no answer in time"
                logger.warning("Optimizer %d could not save its state (%s): it will not be restored", opt_id, why)
            live.append(LiveOptimizer(opt_id, child.opt_class, child.slots,
                                      f"optimizers/{opt_id:04d}.pkl" if ok else None))
        return live

    def _collect(self, expected: set[int], kind: type, answers: dict | None = None) -> set[int]:
        """Absorb messages until every expected child answered with ``kind`` (or ended, or timeout)."""
        s = self.session
        got: set[int] = set()
        deadline = time.monotonic() + self.control.pause_timeout
        while (expected - got) & set(s.children) and time.monotonic() < deadline:
            messages = s.backend.poll(0.05)
            for message in messages:
                if isinstance(message, kind):
                    got.add(message.opt_id)
                    if answers is not None:
                        answers[message.opt_id] = message
            s.handle_messages(messages)
        return got

    def _write(self, staging: Path, name: str, live: list[LiveOptimizer]) -> Path:
        m = self.manager
        sink = m.opt_log.sink
        if sink is not None and hasattr(sink, "flush"):
            sink.flush()
        rows = {opt_id: m.opt_log.n_evals(opt_id) for opt_id in m.opt_log.opt_ids}
        self.control.count += 1  # before the state is captured, so a resumed run names its next one afresh
        (staging / "manager.pkl").write_bytes(capture_state(m, live))
        task_saved_as = save_task(m.task, staging, self.control.force_task_save)
        info = {"name": name, "f_counter": m.f_counter, "o_counter": m.o_counter, "task": task_saved_as,
                "log_rows": {str(k): v for k, v in rows.items()},
                "live_optimizers": [lo.opt_id for lo in live if lo.state_file],
                **(m.run_identity.as_dict() if m.run_identity is not None else {})}
        path = write_checkpoint_file(staging, self.directory / f"{name}.tar", info)
        m.checkpoint_history.add(path.name)
        m.checkpoint_files.append(path.name)
        return path

    def _prune(self, newest: Path) -> None:
        keep = self.control.keep_past
        if keep < 0:
            return
        order = self.manager.checkpoint_files
        old = [n for n in order if n != newest.name]
        for name in old[:max(0, len(old) - keep)]:
            (self.directory / name).unlink(missing_ok=True)
            order.remove(name)
