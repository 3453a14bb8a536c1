"""BaseOptimizer: the contract every child optimizer fulfils.

A child optimizer talks to the manager only through this class: evaluations it makes through the
``function`` it is given are recorded and reported in batches; ``check_messages()`` (call it once
an iteration) flushes that batch and obeys the manager's Stop, Pause, SaveState and
InjectIncumbent messages. Subclasses implement ``minimize`` and, when they hold state worth more
than their public attributes, ``checkpoint_save``/``checkpoint_load``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import dill
import numpy as np

from ..core import messages as msg
from ..core.result import MinimizeResult
from ..errors import ConfigurationError

__all__ = ("BaseOptimizer", "ManagerLink", "MinimizeResult")

EVALUATION_BACKENDS = ("threads", "processes")


class ManagerLink(Protocol):
    """The child's end of a backend channel."""

    def send(self, message: msg.ChildMessage) -> None: ...

    def receive(self, timeout: float | None = 0.0) -> msg.ManagerMessage | None:
        """Next message from the manager; waits up to ``timeout`` s (None: forever, 0: not at all)."""


class BaseOptimizer(ABC):
    """Base class of child optimizers.

    Args:
        workers: Slots this optimizer occupies, and the parallelism of its own evaluations.
        backend: How its ``workers`` evaluate in parallel: 'threads' or 'processes'.
        is_log_detailed: Route evaluations through ``task.detailed_call`` (normally set by the manager).
        **kwargs: Kept in ``self.settings`` for subclasses and the summary file.
    """

    #: Attributes that never go into a checkpoint (transport handles, loggers, pools).
    _transient = ("_link", "logger", "_pending", "_flush_evaluations")

    def __init__(self, workers: int = 1, backend: str = "threads", is_log_detailed: bool = False, **kwargs: Any):
        if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
            raise ConfigurationError(f"workers must be an integer >= 1, got {workers!r}")
        if backend not in EVALUATION_BACKENDS:
            raise ConfigurationError(f"optimizer backend must be one of {EVALUATION_BACKENDS}, got {backend!r}")
        self.workers = int(workers)
        self.backend = backend
        self.is_log_detailed = bool(is_log_detailed)
        self.settings: dict[str, Any] = dict(kwargs)
        self.opt_id: int | None = None
        self.incumbent: tuple[np.ndarray, float] | None = None
        self.is_restart = False
        self.stop_reason: str | None = None
        self.n_iterations = 0
        self.logger = logging.getLogger("glompo_hpc.optimizers")
        self._link: ManagerLink | None = None
        self._pending: list[msg.ManagerMessage] = []

    # ------------------------------------------------------------ the algorithm

    @abstractmethod
    def minimize(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], callbacks: Callable | None = None,
                 **kwargs: Any) -> MinimizeResult:
        """Minimize ``function`` from ``x0`` within ``bounds``.

        Call ``self.check_messages()`` once per iteration and return when ``self.stop_requested``.
        ``function`` also offers ``function.batch(xs)`` to evaluate many points over ``workers``.
        """

    def callstop(self, reason: str = "") -> None:
        """Ask the optimizer to end at its next chance. Overriding methods must call super()."""
        self.stop_reason = reason or "stopped"

    @property
    def stop_requested(self) -> bool:
        return self.stop_reason is not None

    def reseed(self, seed: int) -> None:
        """Called by the manager on every new optimizer, before it starts, with a seed of its own.

        The seeds derive from the manager's ``seed`` and the optimizer's id, so a run with the
        same seed repeats its optimizers, and no two optimizers share a random stream (copies of
        one prototype would otherwise all sample alike). Optimizers with randomness override it
        and ignore it when the user gave an explicit seed; the default does nothing.
        """

    def inject(self, x: np.ndarray, fx: float) -> None:
        """Receive the manager's incumbent. The default only stores it in ``self.incumbent``."""
        self.incumbent = (np.asarray(x, dtype=float), float(fx))

    # ------------------------------------------------------------ messaging

    def attach(self, opt_id: int, link: ManagerLink | None) -> None:
        """Called by the child host before ``minimize``: gives the id and the manager channel."""
        self.opt_id = opt_id
        self._link = link
        self.logger = logging.getLogger(f"glompo_hpc.optimizers.opt{opt_id}")

    def message_manager(self, message: msg.ChildMessage) -> None:
        if self._link is not None:
            self._link.send(message)

    def poll_stop(self) -> bool:
        """Cheap check between evaluations: reads pending manager messages, acts on Stop only."""
        if self._link is not None:
            while (m := self._link.receive(0.0)) is not None:
                if isinstance(m, msg.Stop):
                    self.callstop(m.reason)
                else:
                    self._pending.append(m)
        return self.stop_requested

    def check_messages(self) -> None:
        """Report the evaluations made since the last call, then obey the manager's messages.

        Call once per iteration: this is the consistent point where Pause and SaveState act.
        """
        self.n_iterations += 1
        flush = getattr(self, "_flush_evaluations", None)
        if flush is not None:
            flush()
        self.poll_stop()
        while self._pending:
            self._handle(self._pending.pop(0))

    def _handle(self, m: msg.ManagerMessage) -> None:
        if isinstance(m, msg.Stop):
            self.callstop(m.reason)
        elif isinstance(m, msg.InjectIncumbent):
            self.inject(m.x, m.fx)
        elif isinstance(m, msg.SaveState):
            self._save_state_for_manager(m.path)
        elif isinstance(m, msg.Pause):
            self._wait_while_paused()

    def _wait_while_paused(self) -> None:
        self.message_manager(msg.ChildPaused(self.opt_id))
        while True:
            m = self._link.receive(timeout=None)
            if isinstance(m, msg.Resume):
                return
            if isinstance(m, msg.Stop):
                self.callstop(m.reason)
                return
            self._handle(m)

    def _save_state_for_manager(self, path: str) -> None:
        error = ""
        try:
            self.checkpoint_save(path)
        except Exception as e:  # reported to the manager, which decides whether a checkpoint failed
            error = f"{type(e).__name__}: {e}"
        self.message_manager(msg.StateSaved(self.opt_id, path, error))

    # ------------------------------------------------------------ checkpointing

    def checkpoint_save(self, path: str | Path) -> None:
        """Write this optimizer's state to ``path``. The default pickles (dill) every attribute
        not listed in ``_transient``; subclasses extend ``_transient`` or override both methods."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._all_transient()}
        with open(path, "wb") as f:
            dill.dump(state, f)

    @classmethod
    def checkpoint_load(cls, path: str | Path, **kwargs: Any) -> "BaseOptimizer":
        """Rebuild an optimizer saved by ``checkpoint_save``; ``kwargs`` override saved attributes."""
        with open(path, "rb") as f:
            state = dill.load(f)
        opt = cls.__new__(cls)
        opt.__dict__.update(state)
        opt.__dict__.update(kwargs)
        opt.logger = logging.getLogger("glompo_hpc.optimizers")
        opt._link = None
        opt._pending = []
        opt.is_restart = True
        opt.stop_reason = None
        return opt

    def _all_transient(self) -> set[str]:
        names: set[str] = set()
        for klass in type(self).__mro__:
            names.update(getattr(klass, "_transient", ()))
        return names

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}(workers={self.workers}{', ' + settings if settings else ''})"
