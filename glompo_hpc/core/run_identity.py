"""A run's identity: which run a working directory holds, and which run each checkpoint belongs to.

Every new run (``setup()``, not a resume) draws a run id. When its session starts it writes
``glompo_run.json`` (the id and the settings it was asked to run with) into its working
directory, and every checkpoint's manifest carries the same two, as do the HDF5 log and the
summary. ``--resume auto`` resumes only a checkpoint whose id is the one the directory holds, so
the checkpoints of an earlier run in the same directory can never be taken for this one's.

The id file is written *before* an overwriting run deletes anything of the earlier run: a kill at
any moment of that clean-up leaves a directory that names the new run, whose leftovers are then
recognised as another run's.

Checkpoints written before run ids existed (no ``run_id`` in their manifest) still load. They
belong to a run "without identity": ``--resume auto`` resumes one only in a directory that holds
no id file (that run's own directory, which an older glompo_hpc wrote), and a run continued from
one keeps no id, so its later checkpoints and requeues behave as before.
"""

from __future__ import annotations

import json
import logging
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol.atomic import atomic_write_text
from .checkpoint_file import list_checkpoints
from .signals import signal_hook

__all__ = ("RUN_ID_FILE", "RunIdentity", "read_identity", "read_manifest", "checkpoint_identity", "claim_working_dir",
           "checkpoint_dir")

RUN_ID_FILE = "glompo_run.json"
logger = logging.getLogger("glompo_hpc.checkpoint")


@dataclass(frozen=True)
class RunIdentity:
    """The id of one run and the settings it was started with (None from the Python API).

    Args:
        run_id: 32 hex digits, drawn when the run is set up.
        settings: Plain text of what the run optimizes (task, bounds, components, budget), as the
            command line records it from the job file; compared with the job file on a resume.
    """

    run_id: str
    settings: dict[str, str] | None = field(default=None, compare=False)

    @classmethod
    def new(cls, settings: dict[str, str] | None = None) -> "RunIdentity":
        return cls(uuid.uuid4().hex, settings)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "settings": self.settings}

    @classmethod
    def from_dict(cls, data: Any) -> "RunIdentity | None":
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            return None
        settings = data.get("settings")
        return cls(data["run_id"], dict(settings) if isinstance(settings, dict) else None)


def read_identity(working_dir: str | Path) -> RunIdentity | None:
    """The identity of the run ``working_dir`` holds; None if it holds no id file (no run, or one
    written before run ids existed). An unreadable id file is an error, not "no run"."""
    path = Path(working_dir) / RUN_ID_FILE
    if not path.is_file():
        return None
    try:
        identity = RunIdentity.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(path)!r} cannot be read: {e}") from None
    if identity is None:
        raise ValueError(f"{str(path)!r} holds no run_id")
    return identity


def read_manifest(path: str | Path) -> dict | None:
    """A checkpoint's manifest, read without extracting or verifying the archive; None if it cannot
    be read (a damaged file is reported when it is opened for real)."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member is not None else None
    except (tarfile.TarError, OSError, KeyError, ValueError, EOFError):
        return None
    return manifest if isinstance(manifest, dict) else None


def checkpoint_identity(path: str | Path) -> RunIdentity | None:
    """The identity in a checkpoint's manifest; None for a checkpoint older than run ids (or unreadable)."""
    return RunIdentity.from_dict(read_manifest(path))


def _write_identity(working_dir: Path, identity: RunIdentity) -> None:
    atomic_write_text(working_dir / RUN_ID_FILE, json.dumps(identity.as_dict(), indent=1) + "\n")


def claim_working_dir(manager: Any, resumed: bool) -> None:
    """Record the manager's run as the one its working directory holds; for a new run that may
    overwrite, then delete the checkpoints of every other run in its checkpoint folder.

    Called as a session starts, before anything of an earlier run is deleted (see the module).
    """
    identity = manager.run_identity
    if identity is None:
        return  # a run resumed from a checkpoint older than run ids: it stays without one
    working_dir = Path(manager.working_dir)
    writes_results = manager.summary_files or manager.checkpoint_control is not None
    if not (writes_results or manager.overwrite_existing or (working_dir / RUN_ID_FILE).exists()):
        return  # a run that leaves nothing to resume or protect adds no file to (say) the current directory
    working_dir.mkdir(parents=True, exist_ok=True)
    _write_identity(working_dir, identity)
    signal_hook("run-id-written")
    if resumed or not manager.overwrite_existing:
        return
    for path in list_checkpoints(checkpoint_dir(manager)):
        if checkpoint_identity(path) != identity:
            logger.warning("Deleting checkpoint %s of an earlier run (overwrite_existing)", path)
            path.unlink(missing_ok=True)
    signal_hook("checkpoints-deleted")


def checkpoint_dir(manager: Any) -> Path:
    """The manager's checkpoint folder (the default one when checkpointing is off: an earlier run
    in the same directory may have written there)."""
    control = manager.checkpoint_control
    directory = Path(control.checkpointing_dir) if control is not None else Path("checkpoints")
    return directory if directory.is_absolute() else Path(manager.working_dir) / directory
