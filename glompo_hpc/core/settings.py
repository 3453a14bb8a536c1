"""The manager's settings: validated one by one, for ``setup()`` and for ``load_checkpoint`` overrides.

Each setting has one function that checks its value and stores it (with anything derived from
it) on the manager, so a new run and a resumed run with changed settings follow the same rules.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..backends import BACKENDS, auto_backend, check_backend, default_max_jobs
from ..checkpointing import CheckpointingControl
from ..defaults import (budget_of, recommended_exit_conditions, recommended_generator, recommended_selector,
                        recommended_stoppers)
from ..errors import ConfigurationError
from ..validation import check_bounds, check_choice, check_int, check_number
from .seeds import GENERATOR_KEY, derived_seed, root_seed
from .run_lock import refuse_if_locked

__all__ = ("SETTINGS", "apply_settings", "prepare_working_dir")

logger = logging.getLogger("glompo_hpc.manager")


def _bounds(m, value) -> None:
    m.bounds = check_bounds(value)
    m.n_parms = len(m.bounds)


def _seed(m, value) -> None:
    m.seed = root_seed(value)


def _opt_selector(m, value) -> None:
    if value is None:  # the recommended CMA-ES children, sized for the slots and the budget
        value = recommended_selector(m.bounds, m.max_jobs, budget_of(m.exit_conditions, m.n_parms))
    if not callable(getattr(value, "select_optimizer", None)):
        raise ConfigurationError(f"opt_selector must be a BaseSelector, got {value!r}")
    m.opt_selector = value
    _fit_selector(m)


def _fit_selector(m) -> None:
    """Let a selector that sizes its options by the slots re-size them, then check every option fits."""
    fit = getattr(m.opt_selector, "fit_slots", None)
    if fit is not None:
        fit(m.max_jobs)
    for option in getattr(m.opt_selector, "options", ()):
        if option.workers > m.max_jobs:
            raise ConfigurationError(
                f"optimizer option {option} needs {option.workers} slots but max_jobs is {m.max_jobs}")


def _backend(m, value) -> None:
    if value is None:
        value = auto_backend()  # 'mpi' under mpirun/srun with more than one rank, else 'processes'
    m.backend_name = check_choice("backend", value, BACKENDS)
    check_backend(value)  # 'mpi' without mpi4py, on one rank or outside mpi_workers: a clear error now
    m.proc_backend = value != "threads"
    m.opts_daemonic = value != "processes_forced"


def _max_jobs(m, value) -> None:
    m.max_jobs = default_max_jobs(m.backend_name) if value is None else check_int("max_jobs", value, 1)
    if m.opt_selector is not None:  # a resumed run's selector, checked against the new slots
        _fit_selector(m)


def _component(attribute: str, method: str, default: Callable | None = None, optional: bool = False) -> Callable:
    """A setter for a component: None means the recommended one; False, if ``optional``, none at all."""
    def setter(m, value) -> None:
        if value is None and default is not None:
            value = default(m)
        elif value is False and optional:
            value = None
        if value is not None and not callable(getattr(value, method, None)):
            raise ConfigurationError(f"{attribute} has no {method}(): got {value!r}")
        setattr(m, attribute, value)
    return setter


# The defaults are the recommended configuration (glompo_hpc/defaults.py, evidence in
# docs/benchmarks.md), each used only where the user gave nothing.

def _default_exit_conditions(m):
    return recommended_exit_conditions(m.n_parms)


def _default_generator(m):
    budget = budget_of(m.exit_conditions, m.n_parms)
    return recommended_generator(m.bounds, budget, seed=derived_seed(m.seed, GENERATOR_KEY))


def _default_stoppers(m):
    return recommended_stoppers(m.bounds)


def _flag(attribute: str) -> Callable:
    def setter(m, value) -> None:
        setattr(m, attribute, bool(value))
    return setter


def _checkpoint_control(m, value) -> None:
    if value is not None and not isinstance(value, CheckpointingControl):
        raise ConfigurationError(f"checkpoint_control must be a CheckpointingControl, got {value!r}")
    m.checkpoint_control = value


def _summary_files(m, value) -> None:
    m.summary_files = check_int("summary_files", value, 0)
    if m.summary_files > 3:
        raise ConfigurationError(f"summary_files must be 0, 1, 2 or 3, got {value!r}")


def _force_terminations_after(m, value) -> None:
    m._too_long = check_number("force_terminations_after", value, -1)
    m.allow_forced_terminations = m._too_long > 0
    if m.allow_forced_terminations and not m.proc_backend:
        logger.warning("force_terminations_after is set but the backend is 'threads': threads cannot be "
                       "terminated; hung optimizers will be abandoned (their slots are reused) instead")


def _end_timeout(m, value) -> None:
    default = None if m.backend_name == "threads" else 10.0
    m.end_timeout = default if value is None else check_number("end_timeout", value, 0)


def _working_dir(m, value) -> None:
    m.working_dir = Path(value)


#: setup() keyword -> setter, in the order they must be applied (later ones read earlier ones).
SETTINGS: dict[str, Callable[[Any, Any], None]] = {
    "bounds": _bounds,
    "seed": _seed,
    "working_dir": _working_dir,
    "overwrite_existing": _flag("overwrite_existing"),
    "backend": _backend,
    "max_jobs": _max_jobs,
    "exit_conditions": _component("exit_conditions", "__call__", _default_exit_conditions),
    "opt_selector": _opt_selector,  # after max_jobs and exit_conditions: the default is sized by both
    "x0_generator": _component("x0_generator", "generate", _default_generator),
    "stoppers": _component("stoppers", "__call__", _default_stoppers, optional=True),
    "share_best_solutions": _flag("incumbent_sharing"),
    "stopcheck_interval": lambda m, v: setattr(m, "stopcheck_interval", check_int("stopcheck_interval", v, 1)),
    "apply_stoppers_to_best": _flag("apply_stoppers_to_best"),
    "status_interval": lambda m, v: setattr(m, "status_interval",
                                            check_number("status_interval", v, 0, strict=True)),
    "checkpoint_control": _checkpoint_control,
    "summary_files": _summary_files,
    "is_log_detailed": _flag("is_log_detailed"),
    "force_terminations_after": _force_terminations_after,
    "aggressive_stop": _flag("aggressive_stop"),
    "end_timeout": _end_timeout,
    "split_printstreams": _flag("split_printstreams"),
}


def apply_settings(manager, settings: dict[str, Any]) -> None:
    """Validate and store ``settings`` (setup() keywords) in dependency order."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; valid ones are {list(SETTINGS)}")
    for name, setter in SETTINGS.items():
        if name in settings:
            setter(manager, settings[name])


def prepare_working_dir(manager, refuse_old_results: bool) -> None:
    """Create the working directory; refuse old results unless overwriting is allowed."""
    try:
        manager.working_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"working_dir {str(manager.working_dir)!r} cannot be created: {e}") from None
    refuse_if_locked(manager.working_dir)  # a directory in use says so, not 'holds results of an earlier run'
    old = manager.paths.existing_results()
    if refuse_old_results and old and not manager.overwrite_existing:
        names = ", ".join(p.name for p in old)
        raise FileExistsError(f"working_dir {str(manager.working_dir)!r} holds results of an earlier run ({names}); "
                              "pass overwrite_existing=True or choose another directory")
    _check_writable(manager)


def _check_writable(manager) -> None:
    """Refuse a working directory the run could not write to (a read-only mount, no permission)
    before anything starts: the run would lose every checkpoint, log and summary, and overwriting
    would fail half way through deleting the old results."""
    m = manager
    if not (m.summary_files or m.checkpoint_control is not None or m.split_printstreams or m.overwrite_existing):
        return
    try:
        with tempfile.TemporaryFile(dir=m.working_dir):
            pass
    except OSError as e:
        raise ConfigurationError(f"working_dir {str(m.working_dir)!r} is not writable ({e.strerror or e}); "
                                 "nothing was changed") from None
