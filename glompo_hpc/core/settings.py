"""The manager's settings: one table (``SETTINGS``) from which the record, its checks and defaults come.

Each row names a ``setup()`` keyword, its default, the function that checks a value and stores
it (with anything derived from it) on a ``Settings`` record, so a new run and a resumed run with
changed settings follow the same rules. Rows are applied in table order (later ones read earlier
ones); whether the selector's options fit the slots is checked once, after every row, so a
resumed run can change ``max_jobs`` and ``opt_selector`` in one call. A row's ``file_key`` says
how it is written under a job file's ``manager:``; the job file's schema and its reference page
(docs/jobfile.md) are derived from these rows.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..checkpointing import CheckpointingControl
from ..defaults import (budget_of, recommended_exit_conditions, recommended_generator, recommended_selector,
                        recommended_stoppers)
from ..errors import ConfigurationError
from ..exit_conditions import BaseExitCondition
from ..generators import BaseGenerator
from ..selectors import BaseSelector
from ..stoppers import BaseStopper
from ..validation import check_bounds, check_choice, check_int, check_number
from .plugins import backend_kind, backend_names, detected_backend
from ..protocol.paths import RunPaths
from .seeds import GENERATOR_KEY, derived_seed, root_seed
from .run_lock import refuse_if_locked

__all__ = ("Settings", "Setting", "FileKey", "SAME_DEFAULT", "SETTINGS", "SETTING_NAMES", "apply_settings", "prepare_working_dir")

logger = logging.getLogger("glompo_hpc.manager")


@dataclass
class Settings:
    """A run's settings after their checks (``setup()`` keywords, under GloMPO's attribute names)."""

    bounds: np.ndarray | None = None
    n_parms: int | None = None
    seed: int | None = None
    working_dir: Path | None = None
    overwrite_existing: bool = False
    backend_name: str | None = None
    proc_backend: bool | None = None
    opts_daemonic: bool | None = None
    max_jobs: int | None = None
    exit_conditions: BaseExitCondition | None = None
    opt_selector: BaseSelector | None = None
    x0_generator: BaseGenerator | None = None
    stoppers: BaseStopper | None = None
    incumbent_sharing: bool = False
    stopcheck_interval: int = 100
    apply_stoppers_to_best: bool = False
    status_interval: float = 600.0
    checkpoint_control: CheckpointingControl | None = None
    summary_files: int = 0
    is_log_detailed: bool = False
    force_terminations_after: float = -1
    allow_forced_terminations: bool = False
    aggressive_stop: bool = False
    end_timeout: float | None = None
    split_printstreams: bool = True

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.working_dir)

    def as_record(self) -> dict[str, Any]:
        """The fields, by name, for a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


SETTINGS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings))


#: ``FileKey.default`` when the job file's default is ``setup()``'s.
SAME_DEFAULT: Any = object()


@dataclass(frozen=True)
class FileKey:
    """How a setting is written under a job file's ``manager:``: the key's type and range, from which
    jobfile/schema.py derives ``ManagerSpec``'s field, its check and its line in docs/jobfile.md.

    Args:
        kind: ``bool``, ``int``, ``float`` or ``str``.
        low: The smallest value accepted (numbers).
        high: The largest value accepted (integers).
        strict: ``low`` itself is refused.
        nullable: ``null`` is accepted (it means ``setup()``'s None).
        choices: Returns the accepted strings, if only some are (read when the job file's schema
            is built: the registered backends).
        default: The job file's default where it differs from ``setup()``'s (the command line's
            defaults for cluster work); else :data:`SAME_DEFAULT`.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    strict: bool = False
    nullable: bool = False
    choices: Callable[[], tuple[str, ...]] | None = None
    default: Any = SAME_DEFAULT


@dataclass(frozen=True)
class Setting:
    """One row of the table: a ``setup()`` keyword, its default, its check-and-store function and,
    for a key of the job file's ``manager:`` section, how it is written there (None: not a key
    there; components and checkpointing have their own sections)."""

    name: str
    default: Any
    apply: Callable[[Settings, Any], None]
    file_key: FileKey | None = None

    @property
    def file_default(self) -> Any:
        """The default of the job file's key (``file_key`` must be set)."""
        return self.default if self.file_key.default is SAME_DEFAULT else self.file_key.default


def _bounds(s: Settings, value) -> None:
    s.bounds = check_bounds(value)
    s.n_parms = len(s.bounds)


def _seed(s: Settings, value) -> None:
    s.seed = root_seed(value)


def _working_dir(s: Settings, value) -> None:
    s.working_dir = Path(value)


def _backend(s: Settings, value) -> None:
    if value is None:
        value = detected_backend()  # 'mpi' under mpirun/srun with more than one rank, else 'processes'
    s.backend_name = check_choice("backend", value, backend_names())
    backend_kind(value).check()  # 'mpi' without mpi4py, on one rank or outside mpi_workers: a clear error now
    s.proc_backend = value != "threads"
    s.opts_daemonic = value != "processes_forced"


def _max_jobs(s: Settings, value) -> None:
    s.max_jobs = backend_kind(s.backend_name).default_max_jobs() if value is None else check_int("max_jobs", value, 1)


def _component(attribute: str, base: type, default: Callable | None = None, optional: bool = False) -> Callable:
    """A setter for a component: None means the recommended one; False, if ``optional``, none at all."""
    def setter(s: Settings, value) -> None:
        if value is None and default is not None:
            value = default(s)
        elif value is False and optional:
            value = None
        if value is not None and not isinstance(value, base):
            raise ConfigurationError(f"{attribute} must be a {base.__name__}, got {value!r}")
        setattr(s, attribute, value)
    return setter


# The defaults are the recommended configuration (glompo_hpc/defaults.py, evidence in
# docs/benchmarks.md), each used only where the user gave nothing.

def _default_exit_conditions(s: Settings):
    return recommended_exit_conditions(s.n_parms)


def _default_selector(s: Settings):  # the recommended CMA-ES children, sized for the slots and the budget
    return recommended_selector(s.bounds, s.max_jobs, budget_of(s.exit_conditions, s.n_parms))


def _default_generator(s: Settings):
    budget = budget_of(s.exit_conditions, s.n_parms)
    return recommended_generator(s.bounds, budget, seed=derived_seed(s.seed, GENERATOR_KEY))


def _default_stoppers(s: Settings):
    return recommended_stoppers(s.bounds)


def _flag(attribute: str) -> Callable:
    def setter(s: Settings, value) -> None:
        setattr(s, attribute, bool(value))
    return setter


def _int_at_least(attribute: str, low: int) -> Callable:
    def setter(s: Settings, value) -> None:
        setattr(s, attribute, check_int(attribute, value, low))
    return setter


def _status_interval(s: Settings, value) -> None:
    s.status_interval = check_number("status_interval", value, 0, strict=True)


def _checkpoint_control(s: Settings, value) -> None:
    if value is not None and not isinstance(value, CheckpointingControl):
        raise ConfigurationError(f"checkpoint_control must be a CheckpointingControl, got {value!r}")
    s.checkpoint_control = value


def _summary_files(s: Settings, value) -> None:
    s.summary_files = check_int("summary_files", value, 0)
    if s.summary_files > 3:
        raise ConfigurationError(f"summary_files must be 0, 1, 2 or 3, got {value!r}")


def _force_terminations_after(s: Settings, value) -> None:
    s.force_terminations_after = check_number("force_terminations_after", value, -1)
    s.allow_forced_terminations = s.force_terminations_after > 0
    if s.allow_forced_terminations and not s.proc_backend:
        logger.warning("force_terminations_after is set but the backend is 'threads': threads cannot be "
                       "terminated; hung optimizers will be abandoned (their slots are reused) instead")


def _end_timeout(s: Settings, value) -> None:
    default = None if s.backend_name == "threads" else 10.0
    s.end_timeout = default if value is None else check_number("end_timeout", value, 0)


#: Every setup() keyword but ``task``: its default and its check, in the order they are applied.
SETTINGS: tuple[Setting, ...] = (
    Setting("bounds", None, _bounds),
    Setting("seed", None, _seed, FileKey(int, 0, 2 ** 32 - 1, nullable=True)),
    # the job file's null: a folder '<job file name>_run' beside the job file
    Setting("working_dir", ".", _working_dir, FileKey(str, nullable=True, default=None)),
    Setting("overwrite_existing", False, _flag("overwrite_existing"), FileKey(bool)),
    Setting("backend", None, _backend, FileKey(str, nullable=True, choices=backend_names)),
    Setting("max_jobs", None, _max_jobs, FileKey(int, 1, nullable=True)),
    Setting("exit_conditions", None, _component("exit_conditions", BaseExitCondition, _default_exit_conditions)),
    # after max_jobs and exit_conditions: the default is sized by both
    Setting("opt_selector", None, _component("opt_selector", BaseSelector, _default_selector)),
    Setting("x0_generator", None, _component("x0_generator", BaseGenerator, _default_generator)),
    Setting("stoppers", None, _component("stoppers", BaseStopper, _default_stoppers, optional=True)),
    Setting("share_best_solutions", False, _flag("incumbent_sharing"), FileKey(bool)),
    Setting("stopcheck_interval", 100, _int_at_least("stopcheck_interval", 1), FileKey(int, 1)),
    Setting("apply_stoppers_to_best", False, _flag("apply_stoppers_to_best"), FileKey(bool)),
    Setting("status_interval", 600, _status_interval, FileKey(float, 0, strict=True)),
    Setting("checkpoint_control", None, _checkpoint_control),
    # the job file keeps every result on disk (summary, plots, HDF5 log): a cluster job outlives its terminal
    Setting("summary_files", 0, _summary_files, FileKey(int, 0, 3, default=3)),
    Setting("is_log_detailed", False, _flag("is_log_detailed"), FileKey(bool)),
    Setting("force_terminations_after", -1, _force_terminations_after, FileKey(float, -1)),
    Setting("aggressive_stop", False, _flag("aggressive_stop"), FileKey(bool)),
    Setting("end_timeout", None, _end_timeout, FileKey(float, 0, nullable=True)),
    Setting("split_printstreams", True, _flag("split_printstreams"), FileKey(bool)),
)

SETTING_NAMES: tuple[str, ...] = tuple(row.name for row in SETTINGS)


def apply_settings(s: Settings, given: dict[str, Any]) -> None:
    """Validate and store ``given`` (setup() keywords) in table order, then check the slots."""
    unknown = set(given) - set(SETTING_NAMES)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; valid ones are {list(SETTING_NAMES)}")
    for row in SETTINGS:
        if row.name in given:
            row.apply(s, given[row.name])
    if {"max_jobs", "opt_selector", "backend"} & set(given):
        _fit_selector(s)


def _fit_selector(s: Settings) -> None:
    """Let the selector re-size its options for the slots, then check every option fits."""
    s.opt_selector.fit_slots(s.max_jobs)
    for option in s.opt_selector.options:
        if option.workers > s.max_jobs:
            raise ConfigurationError(
                f"optimizer option {option} needs {option.workers} slots but max_jobs is {s.max_jobs}")


def prepare_working_dir(s: Settings, refuse_old_results: bool) -> None:
    """Create the working directory; refuse old results unless overwriting is allowed."""
    try:
        s.working_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"working_dir {str(s.working_dir)!r} cannot be created: {e}") from None
    refuse_if_locked(s.working_dir)  # a directory in use says so, not 'holds results of an earlier run'
    old = s.paths.existing_results()
    if refuse_old_results and old and not s.overwrite_existing:
        names = ", ".join(p.name for p in old)
        raise FileExistsError(f"working_dir {str(s.working_dir)!r} holds results of an earlier run ({names}); "
                              "pass overwrite_existing=True or choose another directory")
    _check_writable(s)


def _check_writable(s: Settings) -> None:
    """Refuse a working directory the run could not write to (a read-only mount, no permission)
    before anything starts: the run would lose every checkpoint, log and summary, and overwriting
    would fail half way through deleting the old results."""
    if not (s.summary_files or s.checkpoint_control is not None or s.split_printstreams or s.overwrite_existing):
        return
    try:
        with tempfile.TemporaryFile(dir=s.working_dir):
            pass
    except OSError as e:
        raise ConfigurationError(f"working_dir {str(s.working_dir)!r} is not writable ({e.strerror or e}); "
                                 "nothing was changed") from None
