"""Job file -> objects: the one place where a job file becomes GloMPOManager.setup() arguments.

Three steps, each usable alone:

* :func:`load_job_file` reads YAML (``yaml.safe_load`` only: a job file cannot construct Python
  objects) and calls :func:`validate`;
* :func:`validate` checks the structure (schema.py), imports the task callable, resolves every
  component name and checks its parameters against the class's ``__init__`` signature;
* :func:`build_manager_kwargs` builds the task and the components and returns the keyword
  arguments of ``GloMPOManager.setup``.

Paths: relative paths in a job file (``manager.working_dir``, ``logging.file``) are relative to
the job file's directory, so a job runs the same from any current directory. Import paths
(``task.function``, ``pkg.module:Class`` component types) resolve with the job file's directory
and the current directory on ``sys.path`` (a module next to the job file just works).

Builders fill some parameters the job file need not repeat: any stopper or generator taking
``bounds`` gets the job's bounds, a generator taking ``task`` gets the task, and with
``manager.seed`` set every generator, selector, stopper or exit condition taking ``seed`` gets
its own seed derived from it; ``manager.seed`` also goes to ``setup(seed=...)``, from which the
manager gives every optimizer a seed of its own (derived from the seed and the optimizer's id).
"""

from __future__ import annotations

import functools
import inspect
import logging
import operator
import random
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..backends.mpi_env import auto_backend
from ..errors import ConfigurationError, JobFileError
from .registry import bind_parameters, import_object, resolve
from .yaml_text import parse_yaml
from .conditions import Combination, ComponentSpec, Condition
from .registry import show
from .schema import JobSpec, ManagerSpec, parse_bounds, parse_job
from .overview import describe, idle_rank_warning  # noqa: F401 (their old home)

__all__ = ("load_job_file", "validate", "build_manager_kwargs", "build_task", "describe", "idle_rank_warning")

logger = logging.getLogger("glompo_hpc.jobfile")

# Parameters a builder fills in when the job file leaves them out, per family.
_INJECTED = {"stopper": ("bounds",), "generator": ("bounds", "task"), "exit condition": (),
             "spawn controller": (), "selector": (), "optimizer": ()}
# Exceptions a component constructor raises for bad arguments; anything else is a bug and propagates.
_ARGUMENT_ERRORS = (ConfigurationError, ValueError, TypeError)


# ------------------------------------------------------------ reading

def load_job_file(path: str | Path, overrides: Mapping[str, Any] | None = None) -> JobSpec:
    """Read and validate a YAML job file.

    Args:
        path: The job file.
        overrides: Settings that take precedence over the file's, as a nested mapping, e.g.
            ``{"manager": {"backend": "threads"}}`` (command-line options). They are merged
            before validation, so they are checked like the file's own settings.

    Raises:
        FileNotFoundError: the file does not exist.
        JobFileError: unreadable file, invalid YAML (the message names the file and line), a top
            level that is not a mapping, or any invalid setting.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"job file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise JobFileError(str(path), f"cannot read the job file: {e}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise JobFileError(str(path), "the job file is empty; it needs at least a 'task' key")
    if not isinstance(data, Mapping):
        raise JobFileError(str(path), f"line 1: the top level must be a mapping of keys (task, bounds, "
                                      f"optimizers, ...), got a {type(data).__name__}")
    if overrides:
        data = _merged(data, overrides)
    return validate(data, base_dir=path.resolve().parent, source=path)


def _merged(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        elif not isinstance(value, Mapping) or out.get(key) is None:
            out[key] = value
        # else: the file's value there is not a mapping; validation reports it
    return out


def _add_import_dirs(*dirs: Path) -> None:
    """Put the job file's directory, then the cwd, at the front of sys.path (once each)."""
    for d in reversed(dirs):
        text = str(d)
        if text not in sys.path:
            sys.path.insert(0, text)


def validate(data: Mapping[str, Any], base_dir: str | Path | None = None, source: str | Path | None = None) -> JobSpec:
    """Check a job dict and resolve its names; nothing is built and nothing is started.

    Args:
        data: The job file's content (``yaml.safe_load`` output).
        base_dir: Directory relative paths and imports are resolved against (default: cwd).
        source: The file the dict came from, for messages.

    Raises:
        JobFileError: the first invalid setting, naming its key path and value.
    """
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    spec = parse_job(data, source=Path(source) if source is not None else None, base_dir=base)
    _add_import_dirs(base, Path.cwd())
    spec.task.target = import_object(spec.task.function, "task.function", "task")
    if not callable(spec.task.target):
        raise JobFileError("task.function", f"{spec.task.function} is not callable")
    spec.manager.working_dir = str(base / Path(_working_dir(spec)).expanduser())
    if spec.manager.backend is None:  # the default follows the launch: MPI ranks, or one node
        spec.manager.backend = auto_backend()
    if spec.logging.file is not None:
        spec.logging.file = str(base / Path(spec.logging.file).expanduser())

    if spec.optimizers is not None:
        _resolve_optimizers(spec)
    for cond, family in ((spec.stoppers, "stopper"), (spec.exit_conditions, "exit condition")):
        for leaf in _leaves(cond):
            _resolve(leaf, family)
    if spec.generator is not None:
        _resolve(spec.generator, "generator")
    return spec


def _working_dir(spec: JobSpec) -> str:
    """The job file's ``manager.working_dir``, or by default ``<job file stem>_run``: one folder per
    job file beside it, so the job file's own folder (often holding other jobs and their task code)
    never fills with outputs and two job files in one folder never share a run. A dict validated
    without a file keeps the reference's current directory."""
    if spec.manager.working_dir is not None:
        return spec.manager.working_dir
    return f"{spec.source.stem}_run" if spec.source is not None else "."


def _resolve_optimizers(spec: JobSpec) -> None:
    opts = spec.optimizers
    _resolve_selector(spec)
    for option in opts.options:
        _resolve(option, "optimizer")
        workers = option.params.get("workers", 1)
        if spec.manager.max_jobs is not None and isinstance(workers, int) and workers > spec.manager.max_jobs:
            raise JobFileError(f"{option.key_path}.workers", f"{workers} slots exceed manager.max_jobs = "
                                                             f"{spec.manager.max_jobs}: it could never start")
    for controller in opts.allow_spawn:
        _resolve(controller, "spawn controller")


def _resolve_selector(spec: JobSpec) -> None:
    """The selector, with ``optimizers.fcall_thresholds`` passed on (only ChainSelector-like classes take it)."""
    opts = spec.optimizers
    selector = opts.selector
    selector.cls, selector.alias = resolve("selector", selector.type, selector.type_path)
    takes = "fcall_thresholds" in inspect.signature(selector.cls).parameters
    if opts.fcall_thresholds is not None:
        if not takes:
            raise JobFileError("optimizers.fcall_thresholds", f"{selector.type} takes no fcall_thresholds "
                                                              f"(ChainSelector does)")
        if "fcall_thresholds" in selector.params:
            raise JobFileError("optimizers.fcall_thresholds", "given twice (also in optimizers.selector)")
    elif takes and "fcall_thresholds" not in selector.params:
        raise JobFileError("optimizers.fcall_thresholds", f"missing: {selector.type} needs one evaluation "
                                                          f"count per option change")
    selector.params = bind_parameters(selector.cls, (), selector.params, selector.key_path,
                                      injected=("fcall_thresholds",), hidden=("allow_spawn",))
    if opts.fcall_thresholds is not None:
        selector.params["fcall_thresholds"] = opts.fcall_thresholds


def _leaves(cond: Condition | bool | None) -> Iterator[ComponentSpec]:
    if isinstance(cond, Combination):
        for item in cond.items:
            yield from _leaves(item)
    elif isinstance(cond, ComponentSpec):
        yield cond


def _resolve(comp: ComponentSpec, family: str) -> None:
    """Fill ``comp.cls`` and turn its arguments into checked keywords."""
    comp.cls, comp.alias = resolve(family, comp.type, comp.type_path or comp.key_path)
    try:
        comp.params = bind_parameters(comp.cls, comp.args, comp.params, comp.key_path,
                                      param_paths=not comp.from_expression, injected=_INJECTED[family],
                                      alias=comp.alias)
    except JobFileError as e:
        message = str(e)[len(e.key_path) + 2:]
        if comp.from_expression and comp.type not in message:  # the key path cannot name the call
            raise JobFileError(e.key_path, f"in {comp.type}: {message}") from None
        raise
    comp.args = ()


# ------------------------------------------------------------ building

def build_task(spec: JobSpec) -> Any:
    """The task: the imported callable itself, or what calling it (a class/factory) returns."""
    task_spec = spec.task
    target = task_spec.target
    if target is None:
        raise JobFileError("task", "the job spec was not validated (use validate() or load_job_file())")
    call = task_spec.factory
    if call is None:
        call = inspect.isclass(target) or bool(task_spec.args) or bool(task_spec.kwargs)
    if not call:
        return target
    try:
        task = target(*task_spec.args, **task_spec.kwargs)
    except (*_ARGUMENT_ERRORS, OSError) as e:
        raise JobFileError("task", f"{task_spec.function}(...) failed: {type(e).__name__}: {e}") from None
    if not callable(task):
        raise JobFileError("task", f"{task_spec.function}(...) returned {show(task)}, which is not callable")
    return task


def _task_bounds(spec: JobSpec, task: Any) -> list[tuple[float, float]]:
    if spec.bounds is not None:
        return spec.bounds
    bounds = getattr(task, "bounds", None)
    if bounds is None:
        raise JobFileError("bounds", f"missing: the task {spec.task.function} has no 'bounds' attribute, so the "
                                     f"job file must give bounds ([[min, max], ...] or {{min, max, dims}})")
    try:
        bounds = [list(map(float, pair)) for pair in bounds]
    except (TypeError, ValueError):
        raise JobFileError("bounds", f"the task's bounds attribute is not a list of (min, max) pairs: "
                                     f"{show(bounds)}") from None
    return parse_bounds(bounds, "task.bounds")  # type: ignore[return-value]


def _task_dimension(task: Any) -> int | None:
    """The number of parameters a task says it takes (its ``bounds``' length, else an integer
    ``dims``), or None: any callable is a task, and most say nothing."""
    bounds = getattr(task, "bounds", None)
    try:
        if bounds is not None and not isinstance(bounds, (str, bytes)):
            return len(bounds)
    except TypeError:
        pass
    dims = getattr(task, "dims", None)
    return dims if isinstance(dims, int) and not isinstance(dims, bool) else None


def _check_dimension(spec: JobSpec, task: Any, bounds: list) -> None:
    """Bounds of another length than the task's parameters fail now, not in every optimizer."""
    expected = _task_dimension(task)
    if spec.bounds is not None and expected is not None and expected != len(bounds):
        raise JobFileError("bounds", f"{len(bounds)} [min, max] pairs, but the task {spec.task.function} takes "
                                     f"{expected} parameters: give one pair per parameter")


def _with_extras(comp: ComponentSpec, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``comp.params`` plus those of ``extra`` the class takes and the job file did not set."""
    params = dict(comp.params)
    try:
        accepted = inspect.signature(comp.cls).parameters
    except (TypeError, ValueError):
        accepted = {}
    for name, value in extra.items():
        if name in accepted and name not in params:
            params[name] = value
    return params


def _construct(comp: ComponentSpec, extra: Mapping[str, Any], *args: Any) -> Any:
    """``comp.cls(*args, **params)``, constructor argument errors turned into JobFileErrors."""
    try:
        return comp.cls(*args, **_with_extras(comp, extra))
    except _ARGUMENT_ERRORS as e:
        raise _constructor_error(comp, e) from None


def _constructor_error(comp: ComponentSpec, error: Exception) -> JobFileError:
    text = str(error) or type(error).__name__
    first = text.split()[0].split("[")[0].rstrip(":") if text.split() else ""
    # Constructors here start their messages with the parameter's name ("calls must be ..."):
    # when that names a parameter the job file set, point the key path at it.
    if not comp.from_expression and first in comp.params:
        return JobFileError(f"{comp.key_path}.{first}", text)
    prefix = f"{comp.type}: " if comp.type not in text and (comp.from_expression or not first) else ""
    return JobFileError(comp.key_path, f"{prefix}{text}")


def _build_condition(cond: Condition | bool | None, extra: Mapping[str, Any], seeds: dict[int, int]) -> Any:
    if cond is None or cond is False:  # None: the recommended ones; False: none (stoppers)
        return cond
    if isinstance(cond, Combination):
        parts = [_build_condition(item, extra, seeds) for item in cond.items]
        try:
            return functools.reduce(operator.and_ if cond.op == "all" else operator.or_, parts)
        except TypeError as e:  # e.g. a user class from another family
            raise JobFileError(cond.key_path, f"cannot combine {cond}: {e}") from None
    return _construct(cond, {**extra, **_seed_for(cond, seeds)})


def _seed_for(comp: ComponentSpec, seeds: dict[int, int]) -> dict[str, int]:
    return {"seed": seeds[id(comp)]} if id(comp) in seeds else {}


def _derived_seeds(spec: JobSpec) -> dict[int, int]:
    """One independent seed per seedable component, in job-file order, from ``manager.seed``."""
    if spec.manager.seed is None:
        return {}
    seedable = [*_leaves(spec.stoppers), *_leaves(spec.exit_conditions)]
    if spec.optimizers is not None:
        seedable.insert(0, spec.optimizers.selector)
    if spec.generator is not None:
        seedable.append(spec.generator)
    children = np.random.SeedSequence(spec.manager.seed).spawn(len(seedable))
    return {id(c): int(s.generate_state(1)[0]) for c, s in zip(seedable, children)}


def build_manager_kwargs(spec: JobSpec) -> dict[str, Any]:
    """Build the task and every component; return the keyword arguments of ``GloMPOManager.setup``.

    With ``manager.seed`` set, numpy's and Python's global RNGs are seeded first.

    Raises:
        JobFileError: the task cannot be built, bounds are missing, or a constructor rejected its
            arguments (the key path names the component, or the parameter when the message does).
    """
    if spec.manager.seed is not None:
        np.random.seed(spec.manager.seed)
        random.seed(spec.manager.seed)
    seeds = _derived_seeds(spec)
    task = build_task(spec)
    bounds = _task_bounds(spec, task)
    _check_dimension(spec, task, bounds)
    extra = {"bounds": bounds}
    kwargs: dict[str, Any] = {
        "task": task,
        "bounds": bounds,
        "opt_selector": None if spec.optimizers is None else _build_selector(spec, seeds),
        "stoppers": _build_condition(spec.stoppers, extra, seeds),
        "exit_conditions": _build_condition(spec.exit_conditions, extra, seeds),
        "x0_generator": None if spec.generator is None else
        _construct(spec.generator, {**extra, "task": task, **_seed_for(spec.generator, seeds)}),
        "checkpoint_control": spec.checkpointing,
    }
    for f in fields(ManagerSpec):
        kwargs[f.name] = getattr(spec.manager, f.name)
    return kwargs


def _build_selector(spec: JobSpec, seeds: dict[int, int]) -> Any:
    opts = spec.optimizers
    options = []
    for option in opts.options:
        _construct(option, {})  # a trial build, so bad optimizer settings fail now and not in a child
        options.append((option.cls, dict(option.params)))
    controllers = [_construct(c, {}) for c in opts.allow_spawn]
    try:
        selector = _construct(opts.selector, {"allow_spawn": controllers or None, **_seed_for(opts.selector, seeds)},
                              *options)
    except JobFileError as e:
        if opts.fcall_thresholds is None or e.key_path != f"{opts.selector.key_path}.fcall_thresholds":
            raise
        # the thresholds were written under optimizers:, not under the selector
        raise JobFileError("optimizers.fcall_thresholds", str(e)[len(e.key_path) + 2:]) from None
    return selector
