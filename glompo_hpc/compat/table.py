"""The one table of GloMPO 3.1 names: what each became, or why it is gone.

Every old spelling glompo_hpc accepts or refuses is a row here. The keyword translation of
``setup()`` and the constructors, the manager's read-only aliases, the old ``Result.stats`` keys,
3.1's ``message_manager`` codes and the tables of docs/migrating-from-glompo.md are all read
from :data:`OLD_NAMES`, so the code and the guide cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

__all__ = ("Place", "Change", "OldName", "OLD_NAMES", "GLOMPO_VERSION", "rows_for", "row")

#: The GloMPO release the table was read from.
GLOMPO_VERSION = "3.1"


class Place(Enum):
    """Where an old name is written; the value is the guide's heading for it."""

    SETUP = "`GloMPOManager.setup()` and `load_checkpoint()` keywords"
    MANAGER = "`GloMPOManager` attributes"
    STATS = "`Result.stats` keys"
    CHECKPOINTING_CONTROL = "`CheckpointingControl()` keywords"
    TYPE_HUNTER = "`TypeHunter()` keywords"
    CMA = "`CMAOptimizer()` keywords"
    ANNEALING = "`AnnealingGenerator()` keywords"
    OPTIMIZER = "inside your `BaseOptimizer` subclass"
    OPT_LOG = "`manager.opt_log` (GloMPO's `BaseLogger`)"


class Change(Enum):
    """What happens to an old name."""

    RENAMED = "accepted, with a `DeprecationWarning` naming the new spelling"
    GONE = "refused with a one-line error saying why"


@dataclass(frozen=True)
class OldName:
    """One GloMPO 3.1 name.

    Attributes:
        place: Where it is written.
        old: The 3.1 spelling.
        new: The glompo_hpc spelling (RENAMED), or what to use instead (GONE; may be prose).
        change: Accepted or refused.
        why: The reason, for the guide and the error message.
        translate: RENAMED keywords whose values mean something else now: the 3.1 value in,
            the glompo_hpc value with 3.1's meaning out.
        harmless: GONE keywords accepted (with a warning) at these values, which ask for nothing.
    """

    place: Place
    old: str
    new: str
    change: Change
    why: str = ""
    translate: Callable[[Any], Any] | None = field(default=None, compare=False)
    harmless: tuple = ()


def _no_stoppers_for_none(value: Any) -> Any:
    return False if value is None else value  # 3.1: None meant no hunters; glompo_hpc: None = recommended


def _glompo_exit_for_none(value: Any) -> Any:
    if value is None:  # 3.1's default, kept when the old spelling asks for it explicitly
        from ..exit_conditions import KillsAfterConvergence
        return KillsAfterConvergence()
    return value


R, G = Change.RENAMED, Change.GONE
_HUNT = "hunters are called stoppers: they stop optimizers, they do not kill processes"

OLD_NAMES: tuple[OldName, ...] = (
    OldName(Place.SETUP, "convergence_checker", "exit_conditions", R,
            "names what it decides; `None` under the old name keeps 3.1's `KillsAfterConvergence()`",
            translate=_glompo_exit_for_none),
    OldName(Place.SETUP, "killing_conditions", "stoppers", R,
            _HUNT + "; `None` under the old name keeps 3.1's meaning, no stoppers", translate=_no_stoppers_for_none),
    OldName(Place.SETUP, "hunt_frequency", "stopcheck_interval", R, _HUNT),
    OldName(Place.SETUP, "status_frequency", "status_interval", R, "it is an interval in seconds"),
    OldName(Place.SETUP, "aggressive_kill", "aggressive_stop", R, _HUNT),
    OldName(Place.SETUP, "visualisation", "`glompo-hpc plot WORKDIR` or `glompo-hpc summary WORKDIR`", G,
            "GloMPOScope's live window needs a display a cluster node does not have; the log is read "
            "while the run writes it", harmless=(False, None)),
    OldName(Place.SETUP, "visualisation_args", "`glompo-hpc plot WORKDIR`", G,
            "GloMPOScope is gone (see `visualisation`)", harmless=(None, {})),

    OldName(Place.MANAGER, "convergence_checker", "exit_conditions", R, "the `setup()` keyword's new name"),
    OldName(Place.MANAGER, "killing_conditions", "stoppers", R, _HUNT),
    OldName(Place.MANAGER, "hunt_frequency", "stopcheck_interval", R, _HUNT),
    OldName(Place.MANAGER, "status_frequency", "status_interval", R, "it is an interval in seconds"),
    OldName(Place.MANAGER, "aggressive_kill", "aggressive_stop", R, _HUNT),
    OldName(Place.MANAGER, "hunt_victims", "stopped_opts", R, _HUNT + "; the same dict: opt_id -> time stopped"),
    OldName(Place.MANAGER, "hunt_counter", "stopcheck_counter", R, _HUNT),
    OldName(Place.MANAGER, "last_hunt", "last_stopcheck", R, _HUNT),
    OldName(Place.MANAGER, "visualisation", "`glompo-hpc plot WORKDIR`", G, "GloMPOScope is gone"),
    OldName(Place.MANAGER, "visualisation_args", "`glompo-hpc plot WORKDIR`", G, "GloMPOScope is gone"),
    OldName(Place.MANAGER, "scope", "`glompo-hpc plot WORKDIR`", G, "GloMPOScope is gone"),

    OldName(Place.STATS, "f_evals", "f_counter", R, "the manager attribute's name"),
    OldName(Place.STATS, "opts_started", "o_counter", R, "the manager attribute's name"),
    OldName(Place.STATS, "opts_killed", "stopped", R, _HUNT),
    OldName(Place.STATS, "opts_conv", "conv_counter", R, "the manager attribute's name"),
    OldName(Place.STATS, "end_cond", "exit_reason", R, "3.1 left it None; it now names the exit condition"),

    OldName(Place.CHECKPOINTING_CONTROL, "checkpoint_iter_frequency", "checkpoint_eval_interval", R,
            "it counts evaluations, not iterations"),
    OldName(Place.CHECKPOINTING_CONTROL, "checkpoint_time_frequency", "checkpoint_time_interval", R,
            "it is an interval in seconds"),
    OldName(Place.TYPE_HUNTER, "opt_to_kill", "opt_class", R, _HUNT + "; a class or its name"),
    OldName(Place.CMA, "injection_frequency", "injection_interval", R,
            "the least number of generations between two injections, as in 3.1"),
    OldName(Place.ANNEALING, "qa", "accept", R, "scipy `dual_annealing`'s name for the acceptance parameter"),
    OldName(Place.ANNEALING, "qv", "visit", R, "scipy `dual_annealing`'s name for the visiting parameter"),
    OldName(Place.ANNEALING, "restart_temp_ratio", "`maxiter` / `maxfun`", G,
            "the generator now runs scipy's `dual_annealing`, which re-anneals on its own schedule"),

    OldName(Place.OPTIMIZER, "message_manager(0, reason)", "return `MinimizeResult(success=True)`", R,
            "the optimizer's end is reported for it; code 0 is still read as 'converged'"),
    OldName(Place.OPTIMIZER, "message_manager(9, text)", "`self.logger.warning(text)`", R,
            "code 9 is still logged as a warning; it no longer goes into the HDF5 log's messages"),
    OldName(Place.OPTIMIZER, "message_manager(1)", "nothing: `check_messages()` acknowledges pauses", G,
            "3.1's base class sent it itself; pausing is now done inside `check_messages()`"),
    OldName(Place.OPTIMIZER, "self._pause_signal.wait()", "`self.check_messages()` once per iteration", R,
            "`check_messages()` pauses at a consistent point; the old call returns at once"),
    OldName(Place.OPTIMIZER, "BaseOptimizer.__init__(_opt_id, _signal_pipe, _results_queue, _pause_flag, ...)",
            "`super().__init__(workers, backend, is_log_detailed)`", R,
            "the manager attaches the id and channel before `minimize`; the four leading arguments are dropped"),
    OldName(Place.OPTIMIZER, "function.detailed_call(x)", "`function.detailed_call(x)`", R,
            "the same call on glompo_hpc's task wrapper, on every backend (MPI too)"),
    OldName(Place.OPTIMIZER, "minimize returning None", "return a `MinimizeResult`", R,
            "accepted with a warning: the optimizer's best point becomes its result"),
    OldName(Place.OPTIMIZER, "selector option (cls, init_kwargs, call_kwargs)", "`(cls, init_kwargs)`", R,
            "`minimize` takes no keyword arguments now; call_kwargs naming a constructor parameter (CMA's "
            "`sigma0`) move there, others are refused"),

    OldName(Place.OPT_LOG, "get_history(opt_id, track)", "`history(opt_id, column)`", G,
            "the log holds bounded columns; the full history is in `glompo_log.h5`"),
    OldName(Place.OPT_LOG, "get_best_iter()", "`manager.result` (`x`, `fx`, `origin`)", G,
            "the manager keeps the best point; the log keeps per-optimizer bests: `best(opt_id)`"),
    OldName(Place.OPT_LOG, "get_metadata(opt_id, key)", "`records[opt_id]` (an `OptimizerRecord`)", G,
            "metadata are the record's attributes"),
    OldName(Place.OPT_LOG, "n_optimizers", "`len(manager.opt_log)`", G, "the log is a container of optimizers"),
)


def rows_for(place: Place) -> tuple[OldName, ...]:
    """The rows of one place, in table order."""
    return tuple(r for r in OLD_NAMES if r.place is place)


def row(place: Place, old: str) -> OldName | None:
    """The row for ``old`` at ``place``, or None if it is not an old name there."""
    for r in OLD_NAMES:
        if r.place is place and r.old == old:
            return r
    return None
