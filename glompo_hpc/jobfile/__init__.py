"""Job files: YAML descriptions of an optimization, validated and turned into manager arguments.

``load_job_file(path)`` reads and validates a file, ``validate(dict)`` validates a dict, and
``build_manager_kwargs(spec)`` builds the task and components and returns the keyword arguments of
``GloMPOManager.setup``. The format is documented in docs/jobfile.md (generated from schema.py).
"""

from .build import build_manager_kwargs, build_task, load_job_file, validate
from .schema import JobSpec
from .overview import describe, idle_rank_warning

__all__ = ("load_job_file", "validate", "build_manager_kwargs", "build_task", "describe", "idle_rank_warning",
           "JobSpec")
