"""Selectors: which optimizer the manager starts next, and whether it may start any more.

A selector holds the available optimizer options and answers
``select_optimizer(manager, slots_available)`` with the :class:`OptimizerOption` to start,
None when the chosen option needs more slots than are free (ask again later), or False when
spawning is over for good. Spawn controllers (``allow_spawn``) are small callables taking the
manager and returning True while new optimizers may still be started.
"""

from __future__ import annotations

import copy
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from .compat import from_glompo_triple
from .errors import ConfigurationError
from .validation import check_int
from .optimizers.base import BaseOptimizer

__all__ = (
    "OptimizerOption",
    "BaseSelector",
    "CycleSelector",
    "RandomSelector",
    "ChainSelector",
    "BaseSpawnController",
    "IterSpawnStop",
    "NOptimizersSpawnStop",
)

logger = logging.getLogger("glompo_hpc.selectors")

SpawnController = Callable[[Any], bool]


# ------------------------------------------------------------ options

@dataclass(frozen=True)
class OptimizerOption:
    """One optimizer the manager may start: a class with its keyword arguments, or a prototype.

    Attributes:
        opt_class: The BaseOptimizer subclass.
        init_kwargs: Keyword arguments for ``opt_class`` (ignored when a prototype is given).
        prototype: An instance to copy for every start, instead of calling ``opt_class``.
    """

    opt_class: type[BaseOptimizer]
    init_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    prototype: BaseOptimizer | None = field(default=None, hash=False)

    @property
    def workers(self) -> int:
        """Slots the optimizer occupies once started."""
        if self.prototype is not None:
            return self.prototype.workers
        return int(self.init_kwargs.get("workers", 1))

    def build(self) -> BaseOptimizer:
        """A fresh optimizer, independent of every other one built from this option."""
        if self.prototype is not None:
            return copy.deepcopy(self.prototype)
        return self.opt_class(**copy.deepcopy(self.init_kwargs))

    def __str__(self) -> str:
        if self.prototype is not None:
            return repr(self.prototype)
        args = ", ".join(f"{k}={v!r}" for k, v in self.init_kwargs.items())
        return f"{self.opt_class.__name__}({args})"


def _check_class(cls: Any, where: str) -> type[BaseOptimizer]:
    if not (isinstance(cls, type) and issubclass(cls, BaseOptimizer)):
        raise ConfigurationError(f"{where}: {cls!r} is not a BaseOptimizer subclass")
    if inspect.isabstract(cls):
        raise ConfigurationError(f"{where}: {cls.__name__} is abstract (it does not implement minimize)")
    return cls


def _to_option(item: Any, index: int) -> OptimizerOption:
    """Normalise one user-given option: a class, an instance, a (class, kwargs) pair or an option."""
    where = f"optimizer option {index}"
    if isinstance(item, OptimizerOption):
        option = item
    elif isinstance(item, BaseOptimizer):
        option = OptimizerOption(type(item), {}, prototype=item)
    elif isinstance(item, type):
        option = OptimizerOption(_check_class(item, where), {})
    elif isinstance(item, (tuple, list)):
        if len(item) == 3 and (item[2] is None or isinstance(item[2], Mapping)):  # GloMPO 3.1's call_kwargs
            item = from_glompo_triple(tuple(item), where)
        if len(item) != 2:
            raise ConfigurationError(f"{where}: expected a (class, init_kwargs) pair, got {item!r}")
        cls, kwargs = item
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise ConfigurationError(f"{where}: init_kwargs must be a dict of keyword arguments, got {kwargs!r}")
        option = OptimizerOption(_check_class(cls, where), dict(kwargs))
    else:
        raise ConfigurationError(f"{where}: {item!r} is not a BaseOptimizer subclass, instance, "
                                 f"or (class, init_kwargs) pair")
    workers = option.workers if option.prototype is not None else option.init_kwargs.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConfigurationError(f"{where}: workers must be an integer >= 1, got {workers!r}")
    return option


# ------------------------------------------------------------ spawn controllers

class BaseSpawnController(ABC):
    """A rule deciding whether new optimizers may still be started; True = spawning allowed."""

    @abstractmethod
    def __call__(self, manager: Any) -> bool: ...

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    __repr__ = __str__


class IterSpawnStop(BaseSpawnController):
    """Allows spawning while the manager has made fewer than ``max_calls`` evaluations.

    Args:
        max_calls: Evaluation count (``manager.f_counter``) from which no optimizer starts.
    """

    def __init__(self, max_calls: int):
        self.max_calls = check_int("max_calls", max_calls, 0)

    def __call__(self, manager: Any) -> bool:
        return manager.f_counter < self.max_calls


class NOptimizersSpawnStop(BaseSpawnController):
    """Allows spawning while fewer than ``max_opts`` optimizers have been started.

    Args:
        max_opts: Number of started optimizers (``manager.o_counter``) from which no more start.
    """

    def __init__(self, max_opts: int):
        self.max_opts = check_int("max_opts", max_opts, 0)

    def __call__(self, manager: Any) -> bool:
        return manager.o_counter < self.max_opts


def _to_controllers(allow_spawn: Any) -> tuple[SpawnController, ...]:
    if allow_spawn is None:
        return ()
    items = tuple(allow_spawn) if isinstance(allow_spawn, (list, tuple)) else (allow_spawn,)
    for i, c in enumerate(items):
        if not callable(c):
            raise ConfigurationError(f"allow_spawn[{i}]: {c!r} is not callable (expected a spawn controller)")
    return items


# ------------------------------------------------------------ selectors

class BaseSelector(ABC):
    """Chooses the optimizer the manager starts next.

    An option that was chosen but did not fit the free slots stays chosen: the next call offers
    it again rather than choosing anew, so an optimizer needing many slots is never skipped in
    favour of smaller ones (subclasses whose choice depends only on the manager's state, like
    ChainSelector, choose afresh each time). Once a spawn controller forbids spawning, the
    selector answers False for good.

    Args:
        *avail_opts: The optimizers to choose from; each a BaseOptimizer subclass (started with
            no arguments), an instance (deep-copied for every start), or a ``(class, init_kwargs)``
            pair.
        allow_spawn: None, one spawn controller, or a list of them (spawning needs all to allow).
    """

    #: Keep an option that did not fit the free slots, to offer it again next time.
    _sticky = True

    def __init__(self, *avail_opts: Any, allow_spawn: SpawnController | Sequence[SpawnController] | None = None):
        if not avail_opts:
            raise ConfigurationError(f"{type(self).__name__} needs at least one optimizer option")
        self.options: tuple[OptimizerOption, ...] = tuple(_to_option(o, i) for i, o in enumerate(avail_opts))
        self.allow_spawn: tuple[SpawnController, ...] = _to_controllers(allow_spawn)
        self.logger = logger
        self.spawning_stopped = False
        self._held: OptimizerOption | None = None

    def fit_slots(self, max_jobs: int) -> None:
        """Re-size the options for ``max_jobs`` slots (called when the run's slots are set); none by default."""

    @property
    def max_workers(self) -> int:
        """Largest slot need among the options; the manager checks it against ``max_jobs``."""
        return max(o.workers for o in self.options)

    def spawn_allowed(self, manager: Any) -> bool:
        """True while every spawn controller allows spawning (and none has ever forbidden it)."""
        if not self.spawning_stopped:
            for controller in self.allow_spawn:
                if not controller(manager):
                    self.spawning_stopped = True
                    self.logger.info("spawning stopped by %s", controller)
                    break
        return not self.spawning_stopped

    def select_optimizer(self, manager: Any, slots_available: int) -> OptimizerOption | None | Literal[False]:
        """The option to start now; None if it needs more than ``slots_available``; False when done.

        Args:
            manager: The manager (read-only: ``f_counter``, ``o_counter``, ...).
            slots_available: Slots free right now.
        """
        if not self.spawn_allowed(manager):
            return False
        option = self._held if self._held is not None else self._choose(manager)
        if option is False:
            self.spawning_stopped = True
            self.logger.info("%s has no option left: spawning stopped", type(self).__name__)
            return False
        if option.workers > slots_available:
            self._held = option if self._sticky else None
            return None
        self._held = None
        self.logger.debug("selected %s", option)
        return option

    @abstractmethod
    def _choose(self, manager: Any) -> OptimizerOption | Literal[False]:
        """The next option by this selector's rule (False: no option left, ever)."""

    def __str__(self) -> str:
        opts = ", ".join(str(o) for o in self.options)
        spawn = ", ".join(str(c) for c in self.allow_spawn)
        extra = "".join(f", {k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}(options=[{opts}]{extra}{f', allow_spawn=[{spawn}]' if spawn else ''})"

    def _settings(self) -> dict[str, Any]:
        return {}

    __repr__ = __str__


class CycleSelector(BaseSelector):
    """Starts the options in turn, round robin, from the first.

    Args:
        *avail_opts: See :class:`BaseSelector`.
        allow_spawn: See :class:`BaseSelector`.
    """

    def __init__(self, *avail_opts: Any, allow_spawn: SpawnController | Sequence[SpawnController] | None = None):
        super().__init__(*avail_opts, allow_spawn=allow_spawn)
        self.position = 0

    def _choose(self, manager: Any) -> OptimizerOption:
        option = self.options[self.position]
        self.position = (self.position + 1) % len(self.options)
        return option


class RandomSelector(BaseSelector):
    """Picks an option uniformly at random.

    Args:
        *avail_opts: See :class:`BaseSelector`.
        allow_spawn: See :class:`BaseSelector`.
        seed: Seed of the selector's ``numpy.random.Generator`` (None: fresh entropy).
    """

    def __init__(self, *avail_opts: Any, allow_spawn: SpawnController | Sequence[SpawnController] | None = None,
                 seed: int | np.random.SeedSequence | np.random.Generator | None = None):
        super().__init__(*avail_opts, allow_spawn=allow_spawn)
        self.rng = np.random.default_rng(seed)

    def _choose(self, manager: Any) -> OptimizerOption:
        return self.options[int(self.rng.integers(len(self.options)))]


class ChainSelector(BaseSelector):
    """Starts option i until ``manager.f_counter`` reaches ``fcall_thresholds[i]``, then option i+1.

    With one threshold fewer than options, the last option runs to the end of the run; with as
    many thresholds as options, the last threshold ends spawning (the selector answers False).

    Args:
        *avail_opts: See :class:`BaseSelector`.
        fcall_thresholds: Strictly increasing evaluation counts (>= 0).
        allow_spawn: See :class:`BaseSelector`.
    """

    _sticky = False  # the choice follows f_counter, so a held option could be out of date

    def __init__(self, *avail_opts: Any, fcall_thresholds: Sequence[int],
                 allow_spawn: SpawnController | Sequence[SpawnController] | None = None):
        super().__init__(*avail_opts, allow_spawn=allow_spawn)
        try:
            thresholds = list(fcall_thresholds)
        except TypeError as e:
            raise ConfigurationError(f"fcall_thresholds must be a sequence of integers, "
                                     f"got {fcall_thresholds!r}") from e
        n = len(self.options)
        if len(thresholds) not in (n - 1, n):
            raise ConfigurationError(f"fcall_thresholds needs {n - 1} or {n} values for {n} options, "
                                     f"got {len(thresholds)}: {fcall_thresholds!r}")
        for i, t in enumerate(thresholds):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
                raise ConfigurationError(f"fcall_thresholds[{i}] must be an integer >= 0, got {t!r}")
            if i and t <= thresholds[i - 1]:
                raise ConfigurationError(f"fcall_thresholds must increase strictly, but fcall_thresholds[{i}] = "
                                         f"{t!r} follows {thresholds[i - 1]!r}")
        self.fcall_thresholds = tuple(int(t) for t in thresholds)

    def current_index(self, f_counter: int) -> int:
        """Index of the option in force after ``f_counter`` evaluations (== len(options) when done)."""
        return sum(f_counter >= t for t in self.fcall_thresholds)

    def _choose(self, manager: Any) -> OptimizerOption | Literal[False]:
        i = self.current_index(manager.f_counter)
        return False if i >= len(self.options) else self.options[i]

    def _settings(self) -> dict[str, Any]:
        return {"fcall_thresholds": list(self.fcall_thresholds)}
