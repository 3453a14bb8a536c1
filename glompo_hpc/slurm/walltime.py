"""The walltime guard, the requeue countdown and the exit status that means "checkpointed, requeue me".

A run inside an allocation with an end has three ways to learn that time is nearly up:

1. SLURM sends SIGUSR2 ``signal_delay_s`` before the limit (``#SBATCH --signal=B:USR2@S``: to
   the batch shell, whose trap forwards it; submitit's ``--signal=USR2@S``: to every task);
2. the :class:`WalltimeGuard`, a timer thread in rank 0 that knows the job's end (``squeue``) and
   sends SIGUSR2 to its own process at ``end - margin_s``: it covers runs started without the job
   scripts (``srun``/``salloc`` by hand) and sites that do not deliver the signal;
3. SIGTERM at the limit itself (or on preemption), with ``KillWait`` seconds before SIGKILL.

The manager handles SIGUSR2 and SIGTERM alike: a flag, then at its next loop turn a checkpoint,
the children stopped, the outputs written, and ``glompo-hpc run`` exits with
:attr:`glompo_hpc.run.ExitCode.REQUEUE` (3). The job script (or the submitit callable) then requeues the job, unless
:func:`requeue_refusal` objects; the next start runs ``glompo-hpc run JOB --resume auto``.

:class:`RequeueBudget` is the countdown: a job that has been restarted ``max_requeues`` times is
not requeued again, with a message saying so and how to go on.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..run import ExitCode
from .environment import JobEnvironment, detect

__all__ = ("EXIT_REQUEUE", "RequeueBudget", "WalltimeGuard", "guard_for_run", "requeue_refusal")

logger = logging.getLogger("glompo_hpc.slurm.walltime")

#: The old name of :attr:`glompo_hpc.run.ExitCode.REQUEUE` (the one table of exit codes), kept for scripts.
EXIT_REQUEUE = ExitCode.REQUEUE


@dataclass(frozen=True)
class RequeueBudget:
    """How many more requeues a job may have: ``max_requeues - restart_count``.

    Args:
        max_requeues: The most restarts allowed (``slurm.max_requeues``).
        restart_count: Restarts so far (``SLURM_RESTART_COUNT``).
        job_id: For the messages.
    """

    max_requeues: int
    restart_count: int = 0
    job_id: str | None = None

    @classmethod
    def from_environment(cls, max_requeues: int, env: JobEnvironment | None = None) -> "RequeueBudget":
        env = env or detect()
        return cls(max_requeues, env.restart_count, env.job_id)

    @property
    def remaining(self) -> int:
        return max(0, self.max_requeues - self.restart_count)

    def allows_requeue(self) -> bool:
        return self.restart_count < self.max_requeues

    def exhausted_message(self, checkpoint: str | Path | None = None) -> str:
        """The message for a job that may not be requeued again."""
        job = f"job {self.job_id}" if self.job_id else "this job"
        where = f" the last checkpoint is {checkpoint};" if checkpoint else ""
        return (f"{job} was already restarted {self.restart_count} time(s), the most slurm.max_requeues "
                f"({self.max_requeues}) allows: not requeued again;{where} to go on, raise slurm.max_requeues "
                f"or submit the job again (its next start resumes with --resume auto)")


def requeue_refusal(max_requeues: int, env: JobEnvironment | None = None) -> str | None:
    """Why this job must not be requeued now, or None if it may.

    Two reasons: the countdown is spent, or the job is no longer running (``scancel`` or the
    hard limit came first: SLURM would otherwise requeue a cancelled job).
    """
    env = env or detect()
    budget = RequeueBudget.from_environment(max_requeues, env)
    if not budget.allows_requeue():
        return budget.exhausted_message()
    state = env.job_state()
    if state is not None and state != "RUNNING":
        return f"job {env.job_id} is {state} (cancelled or past its limit): not requeued"
    return None


class WalltimeGuard:
    """A timer thread that sends ``signum`` to this process ``margin_s`` before the job ends.

    The end comes from the job environment (``squeue`` under SLURM; ``GLOMPO_HPC_JOB_END_TIME``
    for the local twin) and is asked again every ``refresh_s``, since a limit can be changed
    while the job runs. The signal is sent once, and only while a Python handler for it is
    installed (the manager's): a guard whose time comes during start-up waits until the manager
    listens, and one that is stopped or whose run is over never kills the process.

    Use it as a context manager around ``manager.start_manager()``.

    Args:
        margin_s: Seconds before the end to send the signal.
        env: The job environment (default: detected).
        signum: The signal (SIGUSR2: the manager checkpoints and stops).
        refresh_s: Seconds between two reads of the end time.
        pid: The process to signal (default: this one).
    """

    LISTEN_POLL_S = 0.2  # s: how often a due guard looks for the manager's handler

    def __init__(self, margin_s: float, env: JobEnvironment | None = None, signum: int = signal.SIGUSR2,
                 refresh_s: float = 300.0, pid: int | None = None) -> None:
        if margin_s < 0:
            raise ValueError(f"margin_s must be >= 0, got {margin_s!r}")
        self.margin_s = float(margin_s)
        self.env = env or detect()
        self.signum = signal.Signals(signum)
        self.refresh_s = float(refresh_s)
        self.pid = os.getpid() if pid is None else pid
        self.fired_at: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def deadline(self) -> float | None:
        """When the signal is due (epoch seconds), or None if the job's end is unknown."""
        end = self.env.end_time
        return None if end is None else end - self.margin_s

    def start(self) -> "WalltimeGuard":
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="glompo-walltime-guard", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the timer; after this returns the guard sends nothing."""
        with self._lock:
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> "WalltimeGuard":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ the thread

    def _watch(self) -> None:
        announced = False
        while not self._stop.is_set():
            due = self.deadline()
            if due is None:
                if not announced:
                    logger.info("Walltime guard: the job's end is unknown; asking again every %.0f s", self.refresh_s)
                    announced = True
                self._stop.wait(self.refresh_s)
                continue
            if not announced:
                left = due + self.margin_s - time.time()
                if left < self.margin_s:
                    logger.warning("Walltime guard: only %.0f s left in the job, less than the margin of %.0f s: "
                                   "the run will checkpoint and stop at once", left, self.margin_s)
                else:
                    logger.info("Walltime guard: %s at %s (%.0f s before the job ends)", self.signum.name,
                                datetime.fromtimestamp(due).strftime("%Y-%m-%d %H:%M:%S"), self.margin_s)
                announced = True
            wait = due - time.time()
            if wait > 0:
                # wake up to re-read the end at most every refresh_s; the last stretch in one wait
                self._stop.wait(min(wait, self.refresh_s))
                continue
            self._fire_when_listened()
            return

    def _listened(self) -> bool:
        handler = signal.getsignal(self.signum)
        return callable(handler)  # SIG_DFL/SIG_IGN/None: nobody would act on it (SIG_DFL would kill)

    def _fire_when_listened(self) -> None:
        waited = False
        left = self.env.seconds_left()  # outside the lock: under SLURM this runs squeue
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                if self._listened():
                    logger.warning("Walltime guard: the job ends in %s: sending %s to process %d so the run "
                                   "checkpoints and stops", "?" if left is None else f"{left:.0f} s",
                                   self.signum.name, self.pid)
                    self.fired_at = time.time()
                    os.kill(self.pid, self.signum)
                    return
            if not waited:
                logger.info("Walltime guard: due, waiting for the manager to listen for %s", self.signum.name)
                waited = True
            self._stop.wait(self.LISTEN_POLL_S)


def guard_for_run(margin_s: float, env: JobEnvironment | None = None, **kwargs: Any) -> WalltimeGuard | None:
    """The guard a run should hold, or None: only rank 0 (the manager) and only in a job with an end.

    The end is looked up once here (``squeue`` under SLURM), so outside a scheduler this costs nothing.
    """
    env = env or detect()
    if env.rank != 0:
        return None
    if env.end_time is None:
        if env.job_id is not None:
            logger.info("Job %s has no known end: no walltime guard", env.job_id)
        return None
    return WalltimeGuard(margin_s, env, **kwargs)
