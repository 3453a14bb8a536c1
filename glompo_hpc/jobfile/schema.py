"""The job file schema: one dataclass per section; its fields ARE the valid keys and their defaults.

The user's guide to the format is reference.GUIDE (the head of docs/jobfile.md, which
reference.py renders from it and these dataclasses). Design choice: the manager's settings (every
``GloMPOManager.setup`` parameter that is not a component, plus ``seed``) live under
``manager:`` rather than at the top level, so the top level names *what* is optimized and
*how*, and ``manager:`` maps one-to-one onto setup()'s keywords. This module only checks
structure and scalar values; ``build.py`` resolves names and checks component parameters
against their classes. Section docstrings are user text (they are the reference's prose).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..backends import BACKENDS  # noqa: F401 (re-exported: its old home)
from ..backends.mpi_env import SLOTS_MODES
from ..checkpointing import CheckpointingControl
from ..core.settings import SETTINGS, FileKey
from ..errors import ConfigurationError, JobFileError
from .conditions import Combination, ComponentSpec, Condition, parse_component, parse_condition
from .registry import show

__all__ = ("JobSpec", "TaskSpec", "BoundsRange", "OptimizersSpec", "ComponentSpec", "Combination", "Condition",
           "ManagerSpec", "MPISpec", "LoggingSpec", "SlurmSpec", "BACKENDS", "parse_job", "parse_bounds",
           "parse_condition", "slurm_time_seconds")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# ------------------------------------------------------------ scalar checks

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _got(value: Any) -> str:
    text = f"got {show(value)}"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return text
        # PyYAML reads 1e3 (no dot, no sign on the exponent) as a string: a common surprise.
        text += " (a string: YAML reads numbers like 1e3 as text, write 1.0e+3)"
    return text


def _check(desc: str, ok: Callable[[Any], bool], nullable: bool) -> Callable[[Any, str], Any]:
    def check(value: Any, key_path: str) -> Any:
        if value is None and nullable:
            return None
        if not ok(value):
            raise JobFileError(key_path, f"expected {desc}{' or null' if nullable else ''}, {_got(value)}")
        return value
    return check


def _boolean(nullable: bool = False) -> Callable[[Any, str], Any]:
    return _check("true or false", lambda v: isinstance(v, bool), nullable)


def _integer(lo: int | None = None, hi: int | None = None, nullable: bool = False) -> Callable[[Any, str], Any]:
    desc = "an integer" + (f" in {lo}..{hi}" if lo is not None and hi is not None else
                           f" >= {lo}" if lo is not None else "")
    return _check(desc, lambda v: isinstance(v, int) and not isinstance(v, bool)
                  and (lo is None or v >= lo) and (hi is None or v <= hi), nullable)


def _number(lo: float | None = None, nullable: bool = False, strict: bool = False) -> Callable[[Any, str], Any]:
    desc = "a number" + (f" {'>' if strict else '>='} {lo}" if lo is not None else "")
    return _check(desc, lambda v: _is_number(v) and v == v  # v == v: not NaN
                  and (lo is None or v > lo or (not strict and v == lo)), nullable)


def _string(nullable: bool = False) -> Callable[[Any, str], Any]:
    return _check("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()), nullable)


def _one_of(options: tuple[str, ...]) -> Callable[[Any, str], Any]:
    return _check("one of " + ", ".join(repr(o) for o in options), lambda v: v in options, False)


def _key(check: Callable[[Any, str], Any] | None = None, default: Any = None, **kw: Any) -> Any:
    return field(default=default, metadata={"check": check} if check else {}, **kw)


# ------------------------------------------------------------ sections

@dataclass
class TaskSpec:
    """``task:``: the function to minimize, or a class or factory that returns it."""

    # target (not a key): the imported callable, filled in by build.validate
    function: str = _key(_string(), default=dataclasses.MISSING)
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    factory: bool | None = _key(_boolean(nullable=True))
    target: Any = field(default=None, metadata={"key": False})


@dataclass
class BoundsRange:
    """``bounds: {min, max, dims}``: the same range for every parameter."""

    min: float = _key(_number(), default=dataclasses.MISSING)
    max: float = _key(_number(), default=dataclasses.MISSING)
    dims: int = _key(_integer(lo=1, hi=10 ** 6), default=dataclasses.MISSING)  # more would not fit in memory


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
    if key.choices:
        return _check("one of " + ", ".join(repr(c) for c in key.choices), lambda v: v in key.choices, key.nullable)
    if key.kind is bool:
        return _boolean(key.nullable)
    if key.kind is int:
        return _integer(key.low, key.high, key.nullable)
    if key.kind is float:
        return _number(key.low, key.nullable, key.strict)
    return _string(key.nullable)


def _manager_spec() -> type:
    """``ManagerSpec``: one field per row of the manager's table of settings (core/settings.py) that
    is a ``manager:`` key, in table order, so a new setting is one row there."""
    keys = [(row.name, row.file_key.kind | None if row.file_key.nullable else row.file_key.kind,
             _key(_file_key_check(row.file_key), row.file_default)) for row in SETTINGS if row.file_key is not None]
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

    slots: str = _key(_one_of(SLOTS_MODES), "ranks")
    cores_per_rank: int | None = _key(_integer(lo=1, nullable=True), None)


def _level(value: Any, key_path: str) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise JobFileError(key_path, f"expected one of {', '.join(LOG_LEVELS)}, {_got(value)}")


@dataclass
class LoggingSpec:
    """``logging:``: level of the ``glompo_hpc`` loggers; ``file`` (relative to the job file) adds a log file."""

    level: str = _key(_level, "INFO")
    file: str | None = _key(_string(nullable=True), None)


def slurm_time_seconds(value: Any) -> int:
    """A SLURM time limit in seconds: minutes (an integer) or "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"."""
    match = re.fullmatch(r"\s*(?:(\d+)-)?(\d+(?::\d+){0,2})\s*", value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = 60 * value
    elif match is None:
        raise ValueError(f"not a SLURM time limit: {value!r}")
    else:
        n = [int(p) for p in match[2].split(":")]
        if match[1] is None and len(n) < 3:
            n = [0] + n  # "M" and "M:S" count minutes, not hours
        hours, minutes, secs = (n + [0, 0])[:3]
        seconds = int(match[1] or 0) * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError(f"a time limit must be more than zero, got {value!r}")
    return seconds


def _slurm_time(value: Any, key_path: str) -> str:
    try:
        slurm_time_seconds(value)
    except ValueError:
        raise JobFileError(key_path, f"expected minutes or \"H:M:S\", \"D-H:M:S\" (SLURM's forms, > 0), {_got(value)}") from None
    return str(value)


def _strings(value: Any, key_path: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JobFileError(key_path, f"expected a list of strings, {_got(value)}")
    return list(value)


def _sbatch_options(value: Any, key_path: str) -> list[str]:
    options = _strings(value, key_path)
    for i, option in enumerate(options):
        if not re.fullmatch(r"--[A-Za-z][\w-]*(=.+)?", option):
            raise JobFileError(f"{key_path}[{i}]", f"expected a long sbatch option, '--name=value' or '--name' "
                                                   f"(e.g. '--mail-type=END'), got {show(option)}")
    return options


@dataclass
class SlurmSpec:
    """``slurm:``: the SLURM request (``submit``, ``jobscript``) and the walltime behaviour (docs/slurm.md).

    ``time``: SLURM's forms. USR2 comes ``signal_delay_s`` (SLURM) or ``margin_s`` (the run's own
    guard) before the limit; the run checkpoints and asks for a requeue, at most ``max_requeues``
    times. ``mem``, ``qos``, ``gres``, ``constraint``: the ``#SBATCH`` options of those names
    (e.g. ``mem: 4G``); ``sbatch``: any other options, one per item (``--mail-type=END``), each
    written as an ``#SBATCH`` line, so a regenerated script keeps them. ``setup``: shell lines run
    before the launch, verbatim. ``python``: the interpreter on the nodes; null: ``python3`` from
    the PATH the ``setup`` lines leave (the environment they activate), or without ``setup`` the
    interpreter that wrote the script. ``log_dir``: relative to the job file's directory.
    """

    job_name: str = _key(_string(), "glompo")
    time: str = _key(_slurm_time, "01:00:00")
    nodes: int = _key(_integer(lo=1), 1)
    ntasks: int = _key(_integer(lo=1), 1)
    cpus_per_task: int = _key(_integer(lo=1), 1)
    partition: str | None = _key(_string(nullable=True), None)
    account: str | None = _key(_string(nullable=True), None)
    mem: str | None = _key(_string(nullable=True), None)
    qos: str | None = _key(_string(nullable=True), None)
    gres: str | None = _key(_string(nullable=True), None)
    constraint: str | None = _key(_string(nullable=True), None)
    sbatch: list = _key(_sbatch_options, dataclasses.MISSING, default_factory=list)
    signal_delay_s: int | None = _key(_integer(lo=1, nullable=True), None)  # null: min(300, limit / 4)
    margin_s: float | None = _key(_number(lo=0, nullable=True), None)  # null: as signal_delay_s
    max_requeues: int = _key(_integer(lo=0), 10)
    srun_args: list = _key(_strings, dataclasses.MISSING, default_factory=list)
    mpirun_args: list = _key(_strings, dataclasses.MISSING, default_factory=list)
    setup: list = _key(_strings, dataclasses.MISSING, default_factory=list)
    python: str | None = _key(_string(nullable=True), None)
    log_dir: str = _key(_string(), "slurm_logs")

    def __post_init__(self) -> None:
        if self.signal_delay_s is None:
            self.signal_delay_s = max(1, min(300, self.time_seconds // 4))
        if self.margin_s is None:
            self.margin_s = self.signal_delay_s

    @property
    def time_seconds(self) -> int:
        return slurm_time_seconds(self.time)


@dataclass
class JobSpec:
    """A validated job file. ``source`` and ``base_dir`` are not keys: where the file was read."""

    task: TaskSpec = _key(default=dataclasses.MISSING)
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


# ------------------------------------------------------------ generic section reading

def _keys(section: type, exclude: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(section) if f.metadata.get("key", True) and f.name not in exclude]


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"{f.name}={'null' if f.default is None else show(f.default, 40)}"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if isinstance(value, list):  # e.g. the default optimizer options: show their names
            value = [v.type if isinstance(v, ComponentSpec) else v for v in value]
        return f"{f.name}={{...}}" if dataclasses.is_dataclass(value) else f"{f.name}={show(value, 40)}"
    return f"{f.name} (required)"


def _join(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _mapping(value: Any, key_path: str, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise JobFileError(key_path, f"expected {what}, got {show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise JobFileError(key_path, f"keys must be strings, got {show(key)}")
    return value


def read_section(section: type, value: Any, key_path: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a mapping's keys against a dataclass's fields and apply their checks.

    Returns the checked values (fields absent from the mapping are left out, so the dataclass
    defaults apply). Unknown keys fail with the list of valid keys and their defaults.
    """
    fields = _keys(section, exclude)
    names = {f.name for f in fields}
    data = _mapping(value, key_path, f"a mapping with keys {', '.join(sorted(names))}")
    for key in data:
        if key not in names:
            valid = ", ".join(_default_text(f) for f in fields)
            raise JobFileError(_join(key_path, key), f"unknown key; valid keys: {valid}")
    out = {}
    for f in fields:
        if f.name in data:
            check = f.metadata.get("check")
            out[f.name] = check(data[f.name], _join(key_path, f.name)) if check else data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise JobFileError(_join(key_path, f.name), "missing required key")
    return out


# ------------------------------------------------------------ sections with several forms

def parse_task(value: Any) -> TaskSpec:
    if isinstance(value, str):
        value = {"function": value}
    data = read_section(TaskSpec, value, "task")
    if not isinstance(data.get("args", []), list):
        raise JobFileError("task.args", f"expected a list, got {show(data['args'])}")
    _mapping(data.get("kwargs", {}), "task.kwargs", "a mapping of keyword arguments")
    return TaskSpec(**data)


def _pair(item: Any, key_path: str) -> tuple[float, float]:
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise JobFileError(key_path, f"expected a [min, max] pair, got {show(item)}")
    for v in item:
        if not _is_number(v):
            raise JobFileError(key_path, f"expected numbers [min, max], {_got(v)}")
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


def _slurm(value: Any) -> SlurmSpec:
    spec = SlurmSpec(**read_section(SlurmSpec, value, "slurm"))
    for f in dataclasses.fields(SlurmSpec):  # a line break would end a job script's line: injection
        texts = getattr(spec, f.name)
        for i, text in enumerate(texts if isinstance(texts, list) else [texts]):
            if isinstance(text, str) and any(c in text for c in "\n\r\0"):
                where = f"slurm.{f.name}" + (f"[{i}]" if isinstance(texts, list) else "")
                raise JobFileError(where, f"{text!r} holds a line break or NUL, which a job script cannot quote")
    limit = spec.time_seconds
    for name in ("signal_delay_s", "margin_s"):
        if getattr(spec, name) >= limit:
            raise JobFileError(f"slurm.{name}", f"{getattr(spec, name)} s is not less than the time limit "
                                                f"{spec.time!r} ({limit} s): the run would stop as soon as it starts")
    if spec.ntasks < spec.nodes:
        raise JobFileError("slurm.ntasks", f"{spec.ntasks} tasks cannot fill {spec.nodes} nodes")
    return spec


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
        spec.slurm = _slurm(top["slurm"])
    logging.getLogger("glompo_hpc.jobfile").debug("parsed job file %s", source or "<dict>")
    return spec
