"""What the layers above plug into the manager: the transports by name, and the run's output files.

``core`` never imports ``backends`` or ``outputs`` (docs/architecture.md, the layers). They
register here instead, as submitit's executors and mpi4py.futures' pools stand on a core that
does not know them: ``glompo_hpc.backends`` registers one :class:`BackendKind` per ``backend``
setting and its launcher detection, ``glompo_hpc.outputs`` registers its :class:`RunOutputs`.
The package's ``__init__`` (the top layer) names these built-in providers; they are imported on
the first look-up, so ``import glompo_hpc`` stays cheap and a manager built from
``glompo_hpc.core.manager`` directly finds them too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ..errors import ConfigurationError

if TYPE_CHECKING:  # annotations only: ``import glompo_hpc`` imports this module and must stay cheap
    from pathlib import Path

    from ..protocol.log_sink import LogSink
    from .backend import Backend

__all__ = ("BackendKind", "RunOutputs", "register_backend", "register_backend_detection", "register_outputs",
           "backend_kind", "backend_names", "detected_backend", "run_outputs", "provide_builtins")


class BackendKind(NamedTuple):
    """One value of the ``backend`` setting and how to serve it.

    Attributes:
        name: The setting's value (``'threads'``, ``'mpi'``, ...).
        make: Builds the transport for one session.
        check: Raises the ConfigurationError ``make`` would (e.g. 'mpi' on one rank), building nothing.
        default_max_jobs: Slots when ``max_jobs`` is not given.
    """

    name: str
    make: Callable[[], Backend]
    check: Callable[[], None]
    default_max_jobs: Callable[[], int]


class RunOutputs(ABC):
    """The files a run leaves, as the manager asks for them. No method may raise into the run
    except ``write_summary``, which the user calls explicitly."""

    @abstractmethod
    def open_log_sink(self, manager: Any) -> LogSink | None:
        """The sink the run's ``OptimizerLog`` streams to for one session (None: no log file)."""

    @abstractmethod
    def write_outputs(self, manager: Any) -> None:
        """Close the log and write the summary and plots the settings ask for (end of a session)."""

    @abstractmethod
    def write_summary(self, manager: Any, path: Path) -> None:
        """Write the YAML summary to ``path``."""

    @abstractmethod
    def end_counts(self, records: Any) -> dict[str, int]:
        """Optimizers by how they ended, from ``OptimizerLog.records``, as the summary counts them."""


_backends: dict[str, BackendKind] = {}
_detection: list[Callable[[], str]] = []
_outputs: list[RunOutputs] = []
_builtins: list[Callable[[], None]] = []


def register_backend(kind: BackendKind) -> None:
    """Offer a transport under ``kind.name`` (a later registration of the same name replaces it)."""
    _backends[kind.name] = kind


def register_backend_detection(detect: Callable[[], str]) -> None:
    """The function that names the backend to use when none is given (the launcher's)."""
    _detection[:] = [detect]


def register_outputs(outputs: RunOutputs) -> None:
    """The run's output files (one provider; a later registration replaces it)."""
    _outputs[:] = [outputs]


def provide_builtins(load: Callable[[], None]) -> None:
    """Called by the package's ``__init__``: ``load`` imports the built-in providers, which register."""
    _builtins.append(load)


def _load_builtins() -> None:
    while _builtins:
        _builtins.pop(0)()


def backend_names() -> tuple[str, ...]:
    """Every registered ``backend`` value, in registration order."""
    _load_builtins()
    return tuple(_backends)


def backend_kind(name: str) -> BackendKind:
    """The registered transport ``name``.

    Raises:
        ConfigurationError: no backend of that name.
    """
    _load_builtins()
    if name not in _backends:
        raise ConfigurationError(f"backend must be one of {tuple(_backends)}, got {name!r}")
    return _backends[name]


def detected_backend() -> str:
    """The backend to use when the setting is not given ('mpi' under a launcher with more than one rank)."""
    _load_builtins()
    if not _detection:
        raise ConfigurationError("no backend detection is registered: import glompo_hpc.backends")
    return _detection[0]()


def run_outputs() -> RunOutputs:
    """The registered output files."""
    _load_builtins()
    if not _outputs:
        raise ConfigurationError("no run outputs are registered: import glompo_hpc.outputs")
    return _outputs[0]
