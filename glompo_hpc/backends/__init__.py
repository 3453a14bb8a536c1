"""Backends: the transports between the manager and its children, chosen by one factory."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from ..errors import ConfigurationError
from ..core.backend import Backend, ChildSpec
from .mpi_env import auto_backend, check_mpi_backend, check_single_rank_world, check_slots, mpi_world_size

__all__ = ("Backend", "ChildSpec", "make_backend", "check_backend", "default_max_jobs", "BACKENDS", "mpi_workers",
           "auto_backend", "check_mpi_backend", "mpi_world_size")

BACKENDS = ("threads", "processes", "processes_forced", "mpi")


def _mpi_world():
    """Rank 0's MPI world, or a ConfigurationError saying what is missing. Imports mpi4py only under MPI."""
    check_mpi_backend()
    from .mpi_world import active_world

    world = active_world()
    if world is None:
        raise ConfigurationError("backend 'mpi' needs the other ranks to serve: build and run the manager on rank 0 "
                                 "inside 'with glompo_hpc.mpi_workers() as is_manager:' (rank 0 gets True), or run "
                                 "'python -m glompo_hpc job.yaml' under mpirun")
    return world


def check_backend(name: str) -> None:
    """Raise the ConfigurationError ``make_backend(name)`` would, without building anything.

    For setup(): 'mpi' needs mpi4py, more than one rank, and this code running on rank 0 inside
    ``mpi_workers`` (the CLI does that); the other backends always work.
    """
    if name == "mpi":
        _mpi_world()
    elif name not in BACKENDS:
        raise ConfigurationError(f"backend must be one of {BACKENDS}, got {name!r}")


def make_backend(name: str) -> Backend:
    """The backend for a ``backend`` setting.

    Raises:
        ConfigurationError: unknown name, or 'mpi' where it cannot work (no mpi4py, one rank, or
            outside an ``mpi_workers`` block on rank 0).
    """
    if name == "threads":
        from .threads import ThreadsBackend
        return ThreadsBackend()
    if name in ("processes", "processes_forced"):
        from .processes import ProcessesBackend
        return ProcessesBackend(forced=name == "processes_forced")
    if name == "mpi":
        world = _mpi_world()
        from .mpi import MPIBackend
        return MPIBackend(world)
    raise ConfigurationError(f"backend must be one of {BACKENDS}, got {name!r}")


def default_max_jobs(name: str) -> int:
    """Slots when ``max_jobs`` is not given.

    'mpi': one per worker rank (``slots: ranks``) or the sum of the worker ranks' CPUs (``slots: cores``).
    Otherwise one less than the CPUs this process may use (at least 1).
    """
    if name == "mpi":
        return _mpi_world().max_jobs
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, n - 1)


@contextlib.contextmanager
def mpi_workers(slots: str = "ranks", cores_per_rank: int | None = None, comm: Any = None) -> Iterator[bool]:
    """Rank 0 gets True and runs the block (build the manager there); the other ranks serve the
    manager's children until rank 0 leaves the block, then get False.

    Without an MPI launcher (or with one rank) it yields True and imports no MPI, so the script
    runs unchanged on one node. See :func:`glompo_hpc.backends.mpi_world.mpi_workers` for the arguments.
    """
    check_slots(slots, cores_per_rank)
    if comm is None and mpi_world_size() < 2:
        check_single_rank_world()  # srun's N tasks without MPI would each run a manager
        yield True
        return
    try:
        from .mpi_world import mpi_workers as _workers
    except ImportError as e:
        raise ConfigurationError(f"running under MPI needs mpi4py ({e}): pip install mpi4py") from None
    with _workers(slots, cores_per_rank, comm) as is_manager:
        yield is_manager
