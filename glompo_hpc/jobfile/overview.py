"""A job file told back to its user: the one-line description of the job for the log, and what to
change when ``manager.max_jobs`` would leave MPI worker ranks idle."""

from __future__ import annotations

from typing import Any, Mapping

from .schema import JobSpec

__all__ = ("describe", "idle_rank_warning")


def describe(spec: JobSpec, kwargs: Mapping[str, Any] | None = None) -> str:
    """One line summing up a job; with ``kwargs`` (built) it shows the built objects' settings."""
    if kwargs is not None:
        dims: Any = len(kwargs["bounds"])
        stoppers, exits = kwargs["stoppers"], kwargs["exit_conditions"]
    else:
        dims = len(spec.bounds) if spec.bounds else "?"
        stoppers, exits = spec.stoppers, spec.exit_conditions
    if spec.optimizers is None:
        optimizers = "recommended (CMA-ES, growing population)"
    else:
        optimizers = f"{spec.optimizers.selector.type}[{', '.join(o.type for o in spec.optimizers.options)}]"
    parts = [f"task {spec.task.function} ({dims} parameters)",
             f"optimizers {optimizers}",
             f"stoppers {'none' if stoppers is False else 'recommended' if stoppers is None else stoppers}",
             f"exit {exits if exits is not None else 'recommended (MaxFuncCalls(2000 x parameters))'}",
             f"backend {spec.manager.backend}",
             f"working_dir {spec.manager.working_dir}"]
    return "; ".join(parts)


def idle_rank_warning(spec: JobSpec, world_size: int) -> str | None:
    """What to change when ``manager.max_jobs`` leaves MPI worker ranks without work, else None.

    Rank 0 runs the manager and every other rank offers slots (one each under ``slots: ranks``,
    ``cores_per_rank`` each under ``slots: cores``); slots beyond ``max_jobs`` are never used.
    """
    if spec.manager.backend != "mpi" or spec.manager.max_jobs is None or world_size < 2:
        return None
    per_rank = 1 if spec.mpi.slots == "ranks" else spec.mpi.cores_per_rank
    if per_rank is None:  # cores read on the ranks themselves: unknown here
        return None
    workers = world_size - 1
    busy = -(-spec.manager.max_jobs // per_rank)  # ranks that max_jobs slots fill
    if busy >= workers:
        return None
    idle = workers - busy
    return (f"manager.max_jobs = {spec.manager.max_jobs} under {world_size} MPI ranks ({workers} worker rank(s) "
            f"offering {workers * per_rank} slot(s)): {idle} worker rank(s) will idle; leave max_jobs out to use "
            f"every rank, or start {busy + 1} ranks (mpirun -n {busy + 1})")
