"""The job file schema: one dataclass per section; its fields ARE the valid keys and their defaults.

The user's guide to the format is reference.GUIDE (the head of docs/jobfile.md, which
reference.py renders from it and these dataclasses). Design choice: the manager's settings (every
``GloMPOManager.setup`` parameter that is not a component, plus ``seed``) live under
``manager:`` rather than at the top level, so the top level names *what* is optimized and
*how*, and ``manager:`` maps one-to-one onto setup()'s keywords. This module only checks
structure and scalar values; ``build.py`` resolves names and checks component parameters
against their classes. Section docstrings are user text (they are the reference's prose).
The scalar checks and the reading of a section are in ``fields.py``, the ``slurm:`` section in
``slurm_spec.py``; ``manager:``'s keys come from the manager's table of settings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..backends import BACKENDS  # noqa: F401 (re-exported: its old home)
from ..backends.mpi_env import SLOTS_MODES
from ..checkpointing import CheckpointingControl
from ..core.settings import SETTINGS, FileKey
from ..errors import ConfigurationError, JobFileError
from .conditions import Combination, ComponentSpec, Condition, parse_component, parse_condition
from .fields import (boolean, got, integer, is_number, key_field, mapping, number, one_of, read_section, scalar_check,
                     string)
from .registry import show
from .slurm_spec import SlurmSpec, parse_slurm, slurm_time_seconds

__all__ = ("JobSpec", "TaskSpec", "BoundsRange", "OptimizersSpec", "ComponentSpec", "Combination", "Condition",
           "ManagerSpec", "MPISpec", "LoggingSpec", "SlurmSpec", "BACKENDS", "parse_job", "parse_bounds",
           "parse_condition", "slurm_time_seconds")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# ------------------------------------------------------------ sections

@dataclass
class TaskSpec:
    """``task:``: the function to minimize, or a class or factory that returns it."""

    # target (not a key): the imported callable, filled in by build.validate
    function: str = key_field(string(), default=dataclasses.MISSING)
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    factory: bool | None = key_field(boolean(nullable=True))
    target: Any = field(default=None, metadata={"key": False})


@dataclass
class BoundsRange:
    """``bounds: {min, max, dims}``: the same range for every parameter."""

    min: float = key_field(number(), default=dataclasses.MISSING)
    max: float = key_field(number(), default=dataclasses.MISSING)
    dims: int = key_field(integer(lo=1, hi=10 ** 6), default=dataclasses.MISSING)  # more would not fit in memory


def _default_options() -> list[ComponentSpec]:
    return [ComponentSpec("CMAOptimizer", key_path="optimizers.options[0]", type_path="optimizers.options[0]")]


@dataclass
class OptimizersSpec:
    """``optimizers:``: the selector, its optimizer options and spawn controllers."""

    selector: Any = "CycleSelector"
    options: list = field(default_factory=_default_options)
    allow_spawn: list = field(default_factory=list)
    fcall_thresholds: list | None = None


_MANAGER_DOC = """``manager:``: the GloMPOManager.setup() settings, plus ``seed``.

    ``working_dir`` is relative to the job file's directory; null (the default) is a folder named
    after the job file, ``<name>_run``, beside it. ``summary_files`` defaults to 3 (summary, plots
    and HDF5 log). ``seed`` (an integer) seeds numpy's
    and Python's global RNGs, gives every seedable component (generator, selector, stoppers,
    exit conditions with a ``seed`` parameter) its own seed derived from it, and is setup()'s
    ``seed``: every optimizer gets a seed derived from it and its id. null: a fresh seed,
    recorded in the summary file (``settings.seed``) so the run can be repeated.
    """


def _file_key_check(key: FileKey) -> Callable[[Any, str], Any]:
    if key.choices is not None:
        options = key.choices()
        return scalar_check("one of " + ", ".join(repr(c) for c in options), lambda v: v in options, key.nullable)
    if key.kind is bool:
        return boolean(key.nullable)
    if key.kind is int:
        return integer(key.low, key.high, key.nullable)
    if key.kind is float:
        return number(key.low, key.nullable, key.strict)
    return string(key.nullable)


def _manager_spec() -> type:
    """``ManagerSpec``: one field per row of the manager's table of settings (core/settings.py) that
    is a ``manager:`` key, in table order, so a new setting is one row there."""
    keys = [(row.name, row.file_key.kind | None if row.file_key.nullable else row.file_key.kind,
             key_field(_file_key_check(row.file_key), row.file_default)) for row in SETTINGS if row.file_key is not None]
    spec = dataclasses.make_dataclass("ManagerSpec", keys, namespace={"__doc__": _MANAGER_DOC})
    spec.__module__ = __name__  # pickled job specs name it here
    return spec


ManagerSpec = _manager_spec()


@dataclass
class MPISpec:
    """``mpi:``: how the worker ranks offer slots when ``manager.backend`` is 'mpi' (ignored otherwise).

    ``slots: ranks``: each worker rank is one slot; an optimizer with ``workers: k`` runs on one
    rank and k-1 helper ranks evaluate parts of its batches. ``slots: cores``: each worker rank
    offers ``cores_per_rank`` slots (null: ``SLURM_CPUS_PER_TASK``, else the CPUs it is bound to)
    and runs an optimizer's workers inside it.
    """

    slots: str = key_field(one_of(SLOTS_MODES), "ranks")
    cores_per_rank: int | None = key_field(integer(lo=1, nullable=True), None)


def _level(value: Any, key_path: str) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise JobFileError(key_path, f"expected one of {', '.join(LOG_LEVELS)}, {got(value)}")


@dataclass
class LoggingSpec:
    """``logging:``: level of the ``glompo_hpc`` loggers; ``file`` (relative to the job file) adds a log file."""

    level: str = key_field(_level, "INFO")
    file: str | None = key_field(string(nullable=True), None)


@dataclass
class JobSpec:
    """A validated job file. ``source`` and ``base_dir`` are not keys: where the file was read."""

    task: TaskSpec = key_field(default=dataclasses.MISSING)
    bounds: list | None = None
    optimizers: OptimizersSpec | None = None  # None: the recommended selector
    stoppers: Condition | bool | None = None  # None: the recommended stoppers; False: none
    exit_conditions: Condition | None = None
    generator: ComponentSpec | None = None
    manager: ManagerSpec = field(default_factory=ManagerSpec)
    mpi: MPISpec = field(default_factory=MPISpec)
    checkpointing: CheckpointingControl | None = None
    logging: LoggingSpec = field(default_factory=LoggingSpec)
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    source: Path | None = field(default=None, metadata={"key": False})
    base_dir: Path = field(default=Path("."), metadata={"key": False})


# ------------------------------------------------------------ sections with several forms

def parse_task(value: Any) -> TaskSpec:
    if isinstance(value, str):
        value = {"function": value}
    data = read_section(TaskSpec, value, "task")
    if not isinstance(data.get("args", []), list):
        raise JobFileError("task.args", f"expected a list, got {show(data['args'])}")
    mapping(data.get("kwargs", {}), "task.kwargs", "a mapping of keyword arguments")
    return TaskSpec(**data)


def _pair(item: Any, key_path: str) -> tuple[float, float]:
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise JobFileError(key_path, f"expected a [min, max] pair, got {show(item)}")
    for v in item:
        if not is_number(v):
            raise JobFileError(key_path, f"expected numbers [min, max], {got(v)}")
    try:
        lo, hi = float(item[0]), float(item[1])
    except OverflowError:  # an integer beyond float range
        lo = hi = math.inf
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise JobFileError(key_path, f"bounds must be finite, got {show(list(item))}")
    if lo >= hi:
        raise JobFileError(key_path, f"min {lo!r} >= max {hi!r}")
    return lo, hi


def parse_bounds(value: Any, key_path: str = "bounds") -> list[tuple[float, float]] | None:
    """``[[min, max], ...]`` or ``{min, max, dims}`` -> list of (min, max) float pairs."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        r = BoundsRange(**read_section(BoundsRange, value, key_path))
        pair = _pair([r.min, r.max], key_path)
        return [pair] * r.dims
    if not isinstance(value, (list, tuple)) or isinstance(value, str):
        raise JobFileError(key_path, f"expected a list of [min, max] pairs or {{min, max, dims}}, got {show(value)}")
    if not value:
        raise JobFileError(key_path, "expected at least one [min, max] pair, got an empty list")
    return [_pair(item, f"{key_path}[{i}]") for i, item in enumerate(value)]


# ------------------------------------------------------------ the whole file

#: ``checkpointing:`` left out of a job file: a checkpoint every half hour (at most 30 minutes of
#: work lost to a node failure; pausing the optimizers for it costs well under a second), keeping
#: the two before the newest (a damaged newest one still leaves one to resume from).
CLUSTER_CHECKPOINTING = {"checkpoint_time_interval": 1800, "keep_past": 2}


def _checkpointing(value: Any) -> CheckpointingControl | None:
    """``false`` or ``null``: none; ``true``: the reference's settings (checkpoints on signals only)."""
    if value is None or value is False:
        return None
    if value is True:
        return CheckpointingControl()
    data = read_section(CheckpointingControl, value, "checkpointing", exclude=("count",))
    try:
        return CheckpointingControl(**data)
    except (ConfigurationError, TypeError, ValueError) as e:
        name = str(e).split()[0] if str(e) else ""
        path = f"checkpointing.{name}" if name in data else "checkpointing"
        raise JobFileError(path, str(e)) from None


def _optimizers(value: Any) -> OptimizersSpec:
    data = read_section(OptimizersSpec, value, "optimizers")
    spec = OptimizersSpec(**data)
    spec.selector = parse_component(spec.selector, "optimizers.selector")
    if "options" in data:
        if not isinstance(spec.options, list) or not spec.options:
            raise JobFileError("optimizers.options", f"expected a non-empty list of optimizers, got {show(spec.options)}")
        spec.options = [parse_component(o, f"optimizers.options[{i}]") for i, o in enumerate(spec.options)]
    allow = spec.allow_spawn
    if allow is None:
        allow = []
    elif not isinstance(allow, list):
        allow = [allow]
    spec.allow_spawn = [parse_component(a, f"optimizers.allow_spawn[{i}]") for i, a in enumerate(allow)]
    if spec.fcall_thresholds is not None and not isinstance(spec.fcall_thresholds, list):
        raise JobFileError("optimizers.fcall_thresholds", f"expected a list of integers, got {show(spec.fcall_thresholds)}")
    return spec


def parse_job(data: Any, source: Path | None = None, base_dir: Path | None = None) -> JobSpec:
    """Check a job file's structure and scalar values (names are resolved by build.validate)."""
    top = read_section(JobSpec, data, "")
    spec = JobSpec(task=parse_task(top["task"]), source=source, base_dir=base_dir or Path("."))
    spec.bounds = parse_bounds(top.get("bounds"))
    if top.get("optimizers") is not None:
        spec.optimizers = _optimizers(top["optimizers"])
    spec.stoppers = False if top.get("stoppers") is False else parse_condition(top.get("stoppers"), "stoppers")
    spec.exit_conditions = parse_condition(top.get("exit_conditions"), "exit_conditions")
    if top.get("generator") is not None:
        spec.generator = parse_component(top["generator"], "generator")
    if top.get("manager") is not None:
        spec.manager = ManagerSpec(**read_section(ManagerSpec, top["manager"], "manager"))
    if top.get("mpi") is not None:
        spec.mpi = MPISpec(**read_section(MPISpec, top["mpi"], "mpi"))
    spec.checkpointing = _checkpointing(top.get("checkpointing", CLUSTER_CHECKPOINTING))
    if top.get("logging") is not None:
        spec.logging = LoggingSpec(**read_section(LoggingSpec, top["logging"], "logging"))
    if top.get("slurm") is not None:
        spec.slurm = parse_slurm(top["slurm"])
    logging.getLogger("glompo_hpc.jobfile").debug("parsed job file %s", source or "<dict>")
    return spec
