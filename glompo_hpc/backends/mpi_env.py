"""Is this program an MPI rank? Answered from the environment, without importing mpi4py.

Importing mpi4py initialises MPI, and a ``spawn`` child of a script that imports it hangs
(DESIGN.md), so every decision that can be taken before MPI starts is taken here from the
variables the MPI launchers set: Open MPI's ``mpirun`` (``OMPI_COMM_WORLD_*``), MPICH/Hydra,
Intel MPI and ``srun --mpi=pmi2`` (``PMI_*``), MVAPICH2 (``MV2_COMM_WORLD_*``) and
``srun --mpi=pmix`` (``PMIX_RANK`` with ``SLURM_STEP_NUM_TASKS``). ``SLURM_NTASKS`` alone is not
used: an sbatch script has it but is one process.
"""

from __future__ import annotations

import importlib.util
import os

from ..errors import ConfigurationError

__all__ = ("mpi_world_size", "mpi_world_rank", "under_mpi", "auto_backend", "check_mpi_backend",
           "check_slots", "rank_cpus", "SLOTS_MODES")

SLOTS_MODES = ("ranks", "cores")

# (size variable, rank variable) per launcher, most specific first.
_LAUNCHER_VARS = (
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMI_SIZE", "PMI_RANK"),
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),
    ("PMIX_SIZE", "PMIX_RANK"),
)


def _int_var(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def mpi_world_size() -> int:
    """Ranks in MPI_COMM_WORLD as the launcher announced them; 1 when not started by an MPI launcher."""
    for size_var, _ in _LAUNCHER_VARS:
        size = _int_var(size_var)
        if size is not None:
            return max(1, size)
    if "PMIX_RANK" in os.environ:  # srun --mpi=pmix: PMIx gives the rank, SLURM the step's size
        size = _int_var("SLURM_STEP_NUM_TASKS")
        if size is not None:
            return max(1, size)
    return 1


def mpi_world_rank() -> int:
    """This process's rank in MPI_COMM_WORLD per the launcher; 0 when not under MPI."""
    for _, rank_var in _LAUNCHER_VARS:
        rank = _int_var(rank_var)
        if rank is not None:
            return rank
    return 0


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
