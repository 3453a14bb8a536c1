"""The checkpoint file: one tar archive with a manifest of checksums, written atomically.

Layout inside ``NAME.tar``::

    manifest.json          format version, package version, time, f_counter, sha256 of every member
    manager.pkl            the manager's state (dill)
    task.pkl | task/...    the task, pickled or as the files of task.checkpoint_save (or absent)
    optimizers/NNNN.pkl    each live optimizer's checkpoint_save file

The archive is built from a staging directory, written under a temporary name in the same
directory, fsynced and renamed: a crash leaves the old checkpoints and at most a stray ``.tmp``.
Reading verifies the manifest and every checksum before anything is unpickled, so a truncated or
corrupted file gives a CheckpointError naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import CheckpointError
from ..protocol.atomic import atomic_path

__all__ = ("FORMAT_VERSION", "CheckpointContents", "write_checkpoint_file", "open_checkpoint", "latest_checkpoint",
           "list_checkpoints")

FORMAT_VERSION = 1
SUFFIX = ".tar"
logger = logging.getLogger("glompo_hpc.checkpoint")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checkpoint_file(staging: Path, destination: Path, info: dict) -> Path:
    """Pack ``staging`` (a directory) into ``destination`` (.tar) atomically, with a manifest."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    manifest = {"format_version": FORMAT_VERSION, "glompo_hpc_version": __version__, "created": time.time(),
                **info, "members": {str(p.relative_to(staging)): _sha256(p) for p in files}}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    with atomic_path(destination) as tmp_path:  # mode 0666 & ~umask, like every other output
        with tarfile.open(tmp_path, "w") as tar:
            tar.add(staging / "manifest.json", arcname="manifest.json")
            for p in files:
                tar.add(p, arcname=str(p.relative_to(staging)))
    return destination


@dataclass
class CheckpointContents:
    """An opened, verified checkpoint, extracted in a temporary directory (removed by ``close``)."""

    path: Path
    root: Path
    manifest: dict

    def member(self, name: str) -> Path | None:
        p = self.root / name
        return p if p.exists() else None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "CheckpointContents":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_checkpoint(path: str | Path) -> CheckpointContents:
    """Extract and verify a checkpoint. Raises CheckpointError naming the file on any defect."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    root = Path(tempfile.mkdtemp(prefix="glompo_checkpoint_"))
    try:
        try:
            with open(path, "rb") as f:
                _check_trust(path, os.fstat(f.fileno()))  # of the file read below, not of a name
                # "r:": checkpoints are plain tar; probing every compression made a multi-line message
                with tarfile.open(fileobj=f, mode="r:") as tar:
                    tar.extractall(root, filter="data")  # 'data' refuses absolute paths and links outside root
        except (tarfile.TarError, EOFError, OSError) as e:
            from ..compat import glompo_checkpoint_refusal  # a GloMPO checkpoint is not a corrupt one: say so

            raise CheckpointError(glompo_checkpoint_refusal(path)
                                  or f"checkpoint {str(path)!r} is truncated or not a checkpoint: {e}") from None
        manifest = _read_manifest(path, root)
        for name, digest in manifest["members"].items():
            member = root / name
            if not member.is_file() or _sha256(member) != digest:
                raise CheckpointError(f"checkpoint {str(path)!r} is corrupted: member {name!r} fails its checksum")
        return CheckpointContents(path, root, manifest)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _check_trust(path: Path, st: os.stat_result) -> None:
    """Refuse a checkpoint anyone may have replaced; warn about one another user wrote.

    Loading a checkpoint unpickles it, which runs any code it holds (docs/security.md).
    """
    if st.st_mode & stat.S_IWOTH:
        raise CheckpointError(f"checkpoint {str(path)!r} is world-writable: anyone could have replaced it, and "
                              f"loading it runs the code it holds; if you trust it, remove that permission "
                              f"(chmod o-w {shlex.quote(str(path))}) and load it again")
    uid = os.geteuid() if hasattr(os, "geteuid") else st.st_uid
    if st.st_uid != uid:
        logger.warning("Checkpoint %s belongs to another user (uid %d; you are uid %d): loading it runs the code "
                       "it holds; load only checkpoints you trust", path, st.st_uid, uid)


def _read_manifest(path: Path, root: Path) -> dict:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has no readable manifest: {e}") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {version!r}; this glompo_hpc "
                              f"{__version__} reads version {FORMAT_VERSION}")
    if not isinstance(manifest.get("members"), dict):
        raise CheckpointError(f"checkpoint {str(path)!r} has a malformed manifest")
    return manifest


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, newest first (by modification time)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.suffix == SUFFIX and p.is_file() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest checkpoint in ``directory`` that opens and verifies; corrupt newer ones are reported
    (logged) and skipped. None if there is no valid one."""
    for path in list_checkpoints(directory):
        try:
            open_checkpoint(path).close()
            return path
        except CheckpointError as e:
            logger.error("Skipping checkpoint: %s", e)
    return None
