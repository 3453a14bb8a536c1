"""Is this program an MPI rank? Answered from the environment, without importing mpi4py.

Importing mpi4py initialises MPI, and a ``spawn`` child of a script that imports it hangs
(DESIGN.md), so every decision that can be taken before MPI starts is taken here from the
variables the launchers set, kept in ONE table, :data:`LAUNCHERS` (``slurm/environment.py``
reads the rank from it too). Node-local ranks (``OMPI_COMM_WORLD_LOCAL_RANK``,
``MPI_LOCALRANKID``, ``SLURM_LOCALID``) are listed there only as such and are never taken for a
process's global rank.

SLURM's own variables do not make an MPI world: an sbatch script has ``SLURM_NTASKS`` but is one
process, and ``srun`` without ``--mpi=...`` (on a cluster whose ``MpiDefault`` is ``none``)
starts N programs that each see an MPI world of one rank. :func:`check_single_rank_world`
refuses that case before anything is written.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import ConfigurationError

__all__ = ("mpi_world_size", "mpi_world_rank", "under_mpi", "auto_backend", "check_mpi_backend",
           "check_slots", "rank_cpus", "SLOTS_MODES", "Launcher", "LAUNCHERS", "launcher_rank",
           "SLURM_SRUN", "srun_step_tasks", "check_single_rank_world", "check_world_matches_launcher",
           "srun_mpi_warning")

SLOTS_MODES = ("ranks", "cores")


@dataclass(frozen=True)
class Launcher:
    """The variables one launcher sets in each process it starts.

    Attributes:
        name: Who sets them.
        rank: This process's global rank.
        size: The number of processes started together (None: take ``SLURM_STEP_NUM_TASKS``).
        local_rank: The rank among the processes on this node; never a global rank.
        mpi: True when the variables mean an MPI world (SLURM's alone do not).
    """

    name: str
    rank: str
    size: str | None
    local_rank: str | None
    mpi: bool = True


# Most specific first: under `mpirun` inside a batch script every rank inherits the batch shell's
# SLURM_PROCID=0, so the MPI launchers' variables are read before SLURM's.
LAUNCHERS: tuple[Launcher, ...] = (
    Launcher("Open MPI mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    Launcher("MPICH/Hydra, Intel MPI, srun --mpi=pmi2", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    Launcher("MVAPICH2 mpirun_rsh", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK"),
    Launcher("PMIx (srun --mpi=pmix, prterun)", "PMIX_RANK", "PMIX_SIZE", None),
    Launcher("SLURM srun (not MPI by itself)", "SLURM_PROCID", None, "SLURM_LOCALID", mpi=False),
)
PMIX, SLURM_SRUN = LAUNCHERS[-2], LAUNCHERS[-1]

SRUN_MPI_ADVICE = ("tell srun how to start MPI: add --mpi=pmix (or pmi2; 'srun --mpi=list' shows what this "
                   "cluster offers) to the job file's slurm.srun_args, or to your own srun line")


def _int_var(name: str | None, environ: Mapping[str, str] | None = None) -> int | None:
    if name is None:
        return None
    try:
        return int((os.environ if environ is None else environ)[name])
    except (KeyError, ValueError):
        return None


def srun_step_tasks(environ: Mapping[str, str] | None = None) -> int:
    """Tasks in this srun step (``SLURM_STEP_NUM_TASKS``); 1 outside srun, e.g. in the batch script itself."""
    return max(1, _int_var("SLURM_STEP_NUM_TASKS", environ) or 1)


def launcher_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's global rank from the first MPI launcher of :data:`LAUNCHERS` whose rank variable
    is set; None when none started it (the caller then asks its scheduler, e.g. ``SLURM_PROCID``)."""
    for launcher in LAUNCHERS:
        if launcher.mpi:
            rank = _int_var(launcher.rank, environ)
            if rank is not None:
                return rank
    return None


def mpi_world_size(environ: Mapping[str, str] | None = None) -> int:
    """Ranks in MPI_COMM_WORLD as the launcher announced them; 1 when not started by an MPI launcher."""
    for launcher in LAUNCHERS:
        if launcher.mpi:
            size = _int_var(launcher.size, environ)
            if size is not None:
                return max(1, size)
    if _int_var(PMIX.rank, environ) is not None:  # srun --mpi=pmix: PMIx gives the rank, SLURM the step's size
        return srun_step_tasks(environ)
    return 1


def mpi_world_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank in MPI_COMM_WORLD per the launcher; 0 when not under MPI."""
    rank = launcher_rank(environ)
    return 0 if rank is None else rank


def check_single_rank_world(environ: Mapping[str, str] | None = None) -> None:
    """Refuse srun's N > 1 tasks that are not one MPI world: each would run its own manager.

    Raises:
        ConfigurationError: one line saying what happened and what to do.
    """
    tasks = srun_step_tasks(environ)
    if tasks > 1 and mpi_world_size(environ) == 1:
        raise ConfigurationError(
            f"srun started {tasks} tasks, but each sees an MPI world of 1 rank (srun was not told to start MPI, "
            f"and this cluster's MpiDefault does not): every task would run its own manager in the same "
            f"working directory; nothing was written. {SRUN_MPI_ADVICE}; or run a single task (ntasks 1)")


def check_world_matches_launcher(mpi_size: int, environ: Mapping[str, str] | None = None) -> None:
    """Refuse an MPI world of one rank where the launcher started more (mpi4py built against another
    MPI than the launcher's): every rank would run its own manager.

    Raises:
        ConfigurationError: one line saying what happened and what to do.
    """
    announced = mpi_world_size(environ)
    if mpi_size == 1 and announced > 1:
        raise ConfigurationError(
            f"the launcher started {announced} ranks, but MPI sees a world of 1 rank in each: mpi4py is built "
            f"against another MPI than the launcher's ('python -c \"import mpi4py.MPI as M; "
            f"print(M.Get_library_version())\"' names it); every rank would run its own manager, so nothing was "
            f"written. Use the mpirun of that MPI, or srun with the --mpi= plugin it supports ('srun --mpi=list')")


def srun_mpi_warning(ntasks: int, srun_args: Sequence[str], setup: Sequence[str] = ()) -> str | None:
    """A warning for a job file whose srun would start ``ntasks`` > 1 tasks without MPI, else None.

    srun is told by ``--mpi=TYPE`` (``--mpi TYPE``) among its arguments or by ``SLURM_MPI_TYPE`` set in
    the job's ``setup`` lines; without either, the cluster's ``MpiDefault`` decides, often ``none``.
    """
    told = any(a == "--mpi" or a.startswith("--mpi=") for a in srun_args) or any("SLURM_MPI_TYPE" in line
                                                                                  for line in setup)
    if ntasks <= 1 or told:
        return None
    return (f"slurm.ntasks is {ntasks} but nothing tells srun how to start MPI (no --mpi=... in slurm.srun_args, "
            f"no SLURM_MPI_TYPE in slurm.setup): unless this cluster's MpiDefault starts MPI "
            f"('scontrol show config | grep MpiDefault'), the run will refuse to start; {SRUN_MPI_ADVICE}")


def under_mpi() -> bool:
    """True when an MPI launcher started this program with more than one rank."""
    return mpi_world_size() > 1


def auto_backend(default: str = "processes") -> str:
    """The backend to use when none is named: 'mpi' under MPI with more than one rank, else ``default``."""
    return "mpi" if under_mpi() else default


def check_mpi_backend() -> None:
    """Raise a clear ConfigurationError if backend 'mpi' cannot work in this program.

    It needs mpi4py and more than one rank (rank 0 manages, the others host the optimizers).
    """
    if importlib.util.find_spec("mpi4py") is None:
        raise ConfigurationError("backend 'mpi' needs the mpi4py package: pip install mpi4py (built against "
                                 "your cluster's MPI), then run under mpirun/srun with 2 or more ranks")
    size = mpi_world_size()
    if size < 2:
        raise ConfigurationError(f"backend 'mpi' needs 2 or more MPI ranks (rank 0 manages, the others run the "
                                 f"optimizers), but this program runs as {size} rank: start it with e.g. "
                                 f"'mpirun -n 4 python -m glompo_hpc job.yaml', or choose backend 'processes'")


def check_slots(slots: str, cores_per_rank: int | None = None) -> None:
    """Raise ConfigurationError unless ``slots`` is 'ranks' or 'cores' and ``cores_per_rank`` None or >= 1."""
    if slots not in SLOTS_MODES:
        raise ConfigurationError(f"mpi slots must be one of {SLOTS_MODES}, got {slots!r}")
    if cores_per_rank is not None and (not isinstance(cores_per_rank, int) or isinstance(cores_per_rank, bool)
                                       or cores_per_rank < 1):
        raise ConfigurationError(f"mpi cores_per_rank must be an integer >= 1 or None, got {cores_per_rank!r}")


def rank_cpus(explicit: int | None = None) -> int:
    """CPUs this rank may use: its slots under ``slots: cores``.

    In order: ``explicit`` (the job file's ``mpi.cores_per_rank``); ``SLURM_CPUS_PER_TASK`` (``srun -c k``);
    the CPUs this process is bound to, shared by the ranks on this node when the launcher did not
    bind them (the affinity mask is then the whole node).
    """
    if explicit is not None:
        return max(1, int(explicit))
    slurm = _int_var("SLURM_CPUS_PER_TASK")
    if slurm is not None and slurm > 0:
        return slurm
    try:
        bound = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        bound = os.cpu_count() or 1
    local = _int_var("OMPI_COMM_WORLD_LOCAL_SIZE") or _int_var("MPI_LOCALNRANKS") or 1
    if bound >= (os.cpu_count() or bound) and local > 1:
        return max(1, bound // local)
    return max(1, bound)
