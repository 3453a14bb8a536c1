"""SLURM: job scripts, submission through submitit, and surviving the time limit (docs/slurm.md).

- :mod:`.environment`: job id, restart count, end time and rank (SLURM, or a local twin).
- :mod:`.walltime`: the requeue countdown and the walltime guard.
- :mod:`.jobscript`: ``sbatch`` scripts (``mpirun`` or ``srun``) from a job file's ``slurm:`` section.
- :mod:`.submit`: :func:`submit` a job file through submitit, with a checkpointable callable.

``glompo_hpc.slurm.submit`` is the function; its module's other names are imported from the
module path (``from glompo_hpc.slurm.submit import GlompoRun``). Nothing here imports submitit
until a submission is made, so the package loads without it.
"""

from .environment import JobEnvironment, LocalEnvironment, SlurmEnvironment, detect
from .jobscript import LAUNCHERS, generic_jobscript, render_jobscript
from .submit import Submission, submit
from .walltime import EXIT_REQUEUE, RequeueBudget, WalltimeGuard, guard_for_run, requeue_refusal

__all__ = ("EXIT_REQUEUE", "RequeueBudget", "WalltimeGuard", "guard_for_run", "requeue_refusal",
           "JobEnvironment", "LocalEnvironment", "SlurmEnvironment", "detect", "LAUNCHERS", "render_jobscript",
           "generic_jobscript", "Submission", "submit")
