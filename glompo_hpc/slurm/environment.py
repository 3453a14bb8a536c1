"""Where a run is: job id, restart count, end of the allocation and rank, read from the environment.

:class:`SlurmEnvironment` reads SLURM's variables (and asks ``squeue`` for the job's end time,
which SLURM 22.05 does not export); :class:`LocalEnvironment` is its twin for tests and for runs
outside SLURM: the same properties from ``GLOMPO_HPC_*`` variables or constructor arguments, so a
test can give a plain process a walltime and a restart count. Both differ only in their
variable table and in how they find the end time, in the manner of submitit's ``JobEnvironment``.

``detect()`` picks the SLURM one inside a SLURM job and the local one elsewhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from datetime import datetime
from typing import ClassVar, Mapping

from ..backends.mpi_env import SLURM_SRUN, launcher_rank

__all__ = ("JobEnvironment", "SlurmEnvironment", "LocalEnvironment", "detect", "parse_squeue_time")

logger = logging.getLogger("glompo_hpc.slurm.environment")



def parse_squeue_time(text: str) -> float | None:
    """An ``squeue -o %e`` timestamp (local time, ``2024-05-01T12:34:56``) as epoch seconds.

    Returns None for the values SLURM prints when there is no end (``Unknown``, ``N/A``, ``NONE``,
    empty) or anything else that is not a timestamp.
    """
    text = text.strip()
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as squeue prints it
    except ValueError:
        return None


class JobEnvironment:
    """The job around this process. Subclasses set :attr:`_env` (property -> variable name).

    Args:
        environ: The variables to read (default: ``os.environ``, read at each access).
    """

    _env: ClassVar[dict[str, str]] = {}
    name: ClassVar[str] = "base"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _get(self, key: str) -> str | None:
        value = self.environ.get(self._env[key], "")
        return value or None

    def _int(self, key: str, default: int) -> int:
        value = self._get(key)
        try:
            return default if value is None else int(value)
        except ValueError:
            logger.warning("%s=%r is not an integer; using %d", self._env[key], value, default)
            return default

    @property
    def job_id(self) -> str | None:
        """The scheduler's job id, or None outside a job."""
        return self._get("job_id")

    @property
    def restart_count(self) -> int:
        """How often this job was requeued and started again (0 on the first start)."""
        return self._int("restart_count", 0)

    @property
    def num_tasks(self) -> int:
        return self._int("num_tasks", 1)

    @property
    def rank(self) -> int:
        """This process's global rank: the MPI launchers' variables first (backends.mpi_env.LAUNCHERS;
        under `mpirun` inside a batch script every rank inherits the batch shell's SLURM_PROCID=0),
        then the scheduler's."""
        rank = launcher_rank(self.environ)
        return self._int("rank", 0) if rank is None else rank

    @property
    def end_time(self) -> float | None:
        """When the allocation ends (epoch seconds), or None if unknown or unlimited."""
        raise NotImplementedError

    def job_state(self) -> str | None:
        """The scheduler's state of this job (``RUNNING``, ``COMPLETING``, ...), or None if unknown."""
        return None

    def seconds_left(self) -> float | None:
        """Seconds until :attr:`end_time` (negative once past), or None if unknown."""
        end = self.end_time
        return None if end is None else end - time.time()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(job_id={self.job_id!r}, restart_count={self.restart_count}, "
                f"rank={self.rank}, end_time={self.end_time!r})")


class SlurmEnvironment(JobEnvironment):
    """Inside a SLURM job (``SLURM_JOB_ID`` is set)."""

    name = "slurm"
    _env = {
        "job_id": "SLURM_JOB_ID",
        "restart_count": "SLURM_RESTART_COUNT",
        "num_tasks": "SLURM_NTASKS",
        "rank": SLURM_SRUN.rank,
    }
    SQUEUE_TIMEOUT = 30.0  # s: a busy controller can be slow; the guard retries later anyway

    def _squeue(self, field: str) -> str | None:
        """One ``squeue -o`` field of this job, or None (logged) if squeue fails."""
        job_id = self.job_id
        squeue = shutil.which("squeue")
        if job_id is None or squeue is None:
            return None
        try:
            out = subprocess.run([squeue, "-h", "-j", job_id, "-o", field], capture_output=True, text=True,
                                 timeout=self.SQUEUE_TIMEOUT, env=dict(self.environ))
        except (OSError, subprocess.TimeoutExpired) as e:
            logger.warning("squeue for job %s failed: %s", job_id, e)
            return None
        if out.returncode != 0:
            logger.warning("squeue for job %s failed (exit %d): %s", job_id, out.returncode, out.stderr.strip())
            return None
        lines = out.stdout.strip().splitlines()
        return lines[0].strip() if lines else None

    @property
    def end_time(self) -> float | None:
        # SLURM 22.05 exports no end time, and the limit can change while the job runs
        # (`scontrol update TimeLimit=`), so ask the controller each time.
        text = self._squeue("%e")
        return None if text is None else parse_squeue_time(text)

    def job_state(self) -> str | None:
        return self._squeue("%T")


class LocalEnvironment(JobEnvironment):
    """The local twin: no scheduler; the same properties from ``GLOMPO_HPC_*`` variables.

    ``GLOMPO_HPC_JOB_END_TIME`` (epoch seconds) gives a plain process a walltime, and
    ``GLOMPO_HPC_RESTART_COUNT`` a restart count (and ``GLOMPO_HPC_JOB_STATE`` a state), so tests
    exercise the walltime guard and the requeue countdown without SLURM. Keyword arguments
    override the variables.

    Args:
        environ: The variables to read (default: ``os.environ``).
        job_id: Overrides ``GLOMPO_HPC_JOB_ID``.
        restart_count: Overrides ``GLOMPO_HPC_RESTART_COUNT``.
        end_time: Overrides ``GLOMPO_HPC_JOB_END_TIME``.
        rank: Overrides the rank variables.
    """

    name = "local"
    _env = {
        "job_id": "GLOMPO_HPC_JOB_ID",
        "restart_count": "GLOMPO_HPC_RESTART_COUNT",
        "num_tasks": "GLOMPO_HPC_NUM_TASKS",
        "rank": "GLOMPO_HPC_RANK",
        "end_time": "GLOMPO_HPC_JOB_END_TIME",
        "job_state": "GLOMPO_HPC_JOB_STATE",
    }

    def __init__(self, environ: Mapping[str, str] | None = None, *, job_id: str | None = None,
                 restart_count: int | None = None, end_time: float | None = None, rank: int | None = None) -> None:
        super().__init__(environ)
        self._job_id, self._restart_count, self._end_time, self._rank = job_id, restart_count, end_time, rank

    @property
    def job_id(self) -> str | None:
        return self._job_id if self._job_id is not None else super().job_id

    @property
    def restart_count(self) -> int:
        return self._restart_count if self._restart_count is not None else super().restart_count

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else super().rank

    @property
    def end_time(self) -> float | None:
        if self._end_time is not None:
            return self._end_time
        value = self._get("end_time")
        try:
            return None if value is None else float(value)
        except ValueError:
            logger.warning("%s=%r is not a number of seconds; no end time", self._env["end_time"], value)
            return None

    def job_state(self) -> str | None:
        return self._get("job_state")


def detect(environ: Mapping[str, str] | None = None) -> JobEnvironment:
    """The SLURM environment inside a SLURM job, else the local twin."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_JOB_ID"):
        return SlurmEnvironment(environ)
    return LocalEnvironment(environ)
