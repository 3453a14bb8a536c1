"""BaseOptimizer: the contract every child optimizer fulfils.

A child optimizer talks to the manager only through this class: evaluations it makes through the
``function`` it is given are recorded and reported in batches; ``check_messages()`` (call it once
an iteration) flushes that batch and obeys the manager's Stop, Pause, SaveState and
InjectIncumbent messages. Subclasses implement ``minimize`` and, when they hold state worth more
than their public attributes, ``checkpoint_save``/``checkpoint_load``.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import dill
import numpy as np

from ..compat.apply import gone_message, warn_old_name
from ..compat.table import Place, row
from ..protocol import messages as msg
from ..protocol.result import MinimizeResult
from ..errors import ConfigurationError, GloMPOError

__all__ = ("BaseOptimizer", "ManagerLink", "MinimizeResult")

EVALUATION_BACKENDS = ("threads", "processes")
#: GloMPO 3.1's ``message_manager`` codes: 0 "I converged", 1 "paused" (sent by its base class), 9 a text.
CONVERGED, PAUSED, TEXT = 0, 1, 9
_GLOMPO_INIT_ARGS = ("_opt_id", "_signal_pipe", "_results_queue", "_pause_flag")


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

    #: Whether keywords the constructor does not name are options of the algorithm (CMA's cma
    #: options, scipy's minimize arguments). False: each keyword of a selector option must be a
    #: named parameter, and an unknown one fails at setup() with a did-you-mean. None (the
    #: default): True when a subclass's own ``__init__`` takes ``**kwargs``.
    free_options: bool | None = None

    #: Attributes that never go into a checkpoint (transport handles, loggers, pools).
    _transient = ("_link", "logger", "_pending", "_flush_evaluations")

    #: Sends the evaluations buffered since the last report; set by the task wrapper of the child
    #: (``attach_evaluation_flush``). A class default, so subclasses that skip ``__init__`` have it.
    _flush_evaluations: Callable[[], None] | None = None

    def __init__(self, *args: Any, workers: int = 1, backend: str = "threads", is_log_detailed: bool = False,
                 **kwargs: Any):
        workers, backend, is_log_detailed = _init_arguments(args, kwargs, workers, backend, is_log_detailed)
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
        self.converged_message: str | None = None  # set by GloMPO 3.1's message_manager(0, reason)

    # ------------------------------------------------------------ the algorithm

    @abstractmethod
    def minimize(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], callbacks: Callable | None = None,
                 **kwargs: Any) -> MinimizeResult:
        """Minimize ``function`` from ``x0`` within ``bounds``.

        Call ``self.check_messages()`` once per iteration and return when ``self.stop_requested``.
        ``function`` also offers ``function.batch(xs)`` to evaluate many points over ``workers``.
        """

    def run(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
            bounds: Sequence[tuple[float, float]]) -> MinimizeResult:
        """What the child host calls: ``minimize``, with GloMPO 3.1's habits turned into a result.

        A ``minimize`` returning None (common in 3.1) ends cleanly: the optimizer's best point
        becomes its result (``x`` None here; the host fills it from the task wrapper) and a warning
        is logged. ``message_manager(0, reason)`` marks the result successful.
        """
        result = self.minimize(function, x0, bounds)
        if result is None:
            self.logger.warning("%s.minimize returned None: its best evaluation is taken as its result (return a "
                                "MinimizeResult)", type(self).__name__)
            warn_old_name(row(Place.OPTIMIZER, "minimize returning None"), type(self).__name__)
            result = MinimizeResult()
        if result.stats is None:  # 3.1's MinimizeResult started with stats None
            result.stats = {}
        if self.converged_message is not None:
            result.success = True
        return result

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

    def message_manager(self, message: msg.ChildMessage | int, text: str | None = None) -> None:
        """Send a message to the manager (the child host and the task wrapper do; optimizers need not).

        GloMPO 3.1's integer codes still work: ``0`` (converged: the result is marked successful,
        ``text`` is the reason) and ``9`` (``text`` is logged as a warning), each with a
        DeprecationWarning naming the new way; any other code raises GloMPOError saying why.
        """
        if isinstance(message, int):
            self._glompo_message(message, text)
        elif self._link is not None:
            self._link.send(message)

    def _glompo_message(self, code: int, text: str | None) -> None:
        where = f"{type(self).__name__}.message_manager"
        if code == CONVERGED:
            warn_old_name(row(Place.OPTIMIZER, "message_manager(0, reason)"), where)
            self.converged_message = text or "converged"
        elif code == TEXT:
            warn_old_name(row(Place.OPTIMIZER, "message_manager(9, text)"), where)
            self.logger.warning("Optimizer %s: %s", self.opt_id, text)
        elif code == PAUSED:
            raise GloMPOError(gone_message(row(Place.OPTIMIZER, "message_manager(1)"), where))
        else:
            raise GloMPOError(f"{where}({code!r}): GloMPO 3.1 knew codes 0 (converged), 1 (paused) and 9 (text); "
                              "return a MinimizeResult to end, log text with self.logger")

    @property
    def _pause_signal(self) -> "_NoPause":
        """GloMPO 3.1's pause event: its ``wait()`` returns at once, as ``check_messages()`` pauses."""
        return _NoPause(self)

    @property
    def _signal_pipe(self) -> ManagerLink | None:
        """GloMPO 3.1's manager pipe, tested by its optimizers before ``check_messages()``: the link."""
        return self._link

    def poll_stop(self) -> bool:
        """Cheap check between evaluations: reads pending manager messages, acts on Stop only."""
        if self._link is not None:
            while (m := self._link.receive(0.0)) is not None:
                if isinstance(m, msg.Stop):
                    self._stop(m.reason)
                else:
                    self._pending.append(m)
        return self.stop_requested

    def check_messages(self) -> None:
        """Report the evaluations made since the last call, then obey the manager's messages.

        Call once per iteration: this is the consistent point where Pause and SaveState act.
        """
        self.n_iterations += 1
        if self._flush_evaluations is not None:
            self._flush_evaluations()
        self.poll_stop()
        while self._pending:
            self._handle(self._pending.pop(0))

    def attach_evaluation_flush(self, flush: Callable[[], None]) -> None:
        """Have ``check_messages`` call ``flush`` first: the child's evaluations reach the manager
        at each iteration, before any pause or checkpoint."""
        self._flush_evaluations = flush

    def _stop(self, reason: str) -> None:
        # set here too: a GloMPO 3.1 callstop does not call super(), and the host reads stop_requested
        self.stop_reason = reason or "stopped"
        self.callstop(reason)

    def _handle(self, m: msg.ManagerMessage) -> None:
        if isinstance(m, msg.Stop):
            self._stop(m.reason)
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
                self._stop(m.reason)
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
        opt.__dict__.setdefault("converged_message", None)  # absent from checkpoints of earlier versions
        return opt

    def _all_transient(self) -> set[str]:
        names: set[str] = set()
        for klass in type(self).__mro__:
            names.update(getattr(klass, "_transient", ()))
        return names

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}(workers={self.workers}{', ' + settings if settings else ''})"


class _NoPause:
    """What ``self._pause_signal`` returns: 3.1's ``wait()`` call, which is not needed any more."""

    def __init__(self, optimizer: BaseOptimizer):
        self.optimizer = optimizer

    def wait(self, timeout: float | None = None) -> bool:
        warn_old_name(row(Place.OPTIMIZER, "self._pause_signal.wait()"), type(self.optimizer).__name__)
        return True


def _init_arguments(args: tuple, kwargs: dict[str, Any], workers: Any, backend: Any,
                    is_log_detailed: Any) -> tuple[Any, Any, Any]:
    """``workers, backend, is_log_detailed`` from positional arguments of either signature.

    glompo_hpc's are ``(workers, backend, is_log_detailed)``; GloMPO 3.1's subclasses pass
    ``(_opt_id, _signal_pipe, _results_queue, _pause_flag, workers, backend, is_log_detailed)``,
    whose first four the manager now supplies (``attach``): they are dropped with a warning,
    as are the same four given by keyword.
    """
    legacy = [name for name in _GLOMPO_INIT_ARGS if name in kwargs]
    for name in legacy:
        kwargs.pop(name)
    if len(args) > 3 or legacy:
        warn_old_name(row(Place.OPTIMIZER, "BaseOptimizer.__init__(_opt_id, _signal_pipe, _results_queue, "
                                           "_pause_flag, ...)"), "BaseOptimizer")
    if len(args) > 3:
        args = args[4:]
    if len(args) > 3:
        raise ConfigurationError(f"BaseOptimizer takes at most (workers, backend, is_log_detailed) positionally, "
                                 f"got {len(args)} more arguments")
    given = dict(zip(("workers", "backend", "is_log_detailed"), args))
    return given.get("workers", workers), given.get("backend", backend), given.get("is_log_detailed", is_log_detailed)
