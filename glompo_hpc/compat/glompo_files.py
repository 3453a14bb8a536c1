"""Recognising what GloMPO wrote: its checkpoints and run directories are refused in one line.

glompo_hpc cannot continue a GloMPO run: GloMPO's checkpoints are pickles of GloMPO's own
classes (unpickling them would need GloMPO and run its code) and its log is a PyTables file of
another layout. Without these checks such files read as corrupt ("invalid header") or as a raw
YAML traceback; with them the user learns at once what the file is and what to do.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

__all__ = ("glompo_checkpoint_refusal", "glompo_run_refusal", "REMEDY")

REMEDY = "not loadable by glompo_hpc; start a new run or use GloMPO to finish it"
_GZIP_MAGIC = b"\x1f\x8b"
#: Members every GloMPO 3.x checkpoint holds at its root (see its manager's ``checkpoint``).
_GLOMPO_MEMBERS = {"manager", "opt_log"}
_VERSION_LINE = re.compile(r"^\s*GloMPO Version:\s*['\"]?([0-9][0-9A-Za-z.+-]*)", re.MULTILINE)


def glompo_checkpoint_refusal(path: str | Path) -> str | None:
    """The one-line refusal if ``path`` is a GloMPO checkpoint (a gzipped tar with its layout), else None."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                return None
        with tarfile.open(path, "r:gz") as tar:
            names = {name.strip("/").lstrip("./") for name in tar.getnames()}
    except (OSError, tarfile.TarError, EOFError):
        return None
    if not _GLOMPO_MEMBERS <= names:
        return None
    return f"{str(path)!r} is a checkpoint written by GloMPO: {REMEDY}"


def glompo_run_refusal(workdir: str | Path) -> str | None:
    """The one-line refusal if ``workdir`` holds a GloMPO run's outputs, else None.

    Recognised by the ``GloMPO Version`` line of its ``glompo_manager_log.yml``, or an HDF5 log
    without glompo_hpc's ``format`` attribute but with GloMPO's ``glompo_version``.
    """
    workdir = Path(workdir)
    summary = workdir / "glompo_manager_log.yml"
    try:
        match = _VERSION_LINE.search(summary.read_text(errors="replace"))
    except OSError:
        match = None
    if match:
        return f"{str(workdir)!r} holds a run written by GloMPO {match.group(1)}: {REMEDY}"
    version = _hdf5_glompo_version(workdir / "glompo_log.h5")
    if version is not None:
        return f"{str(workdir)!r} holds a run written by GloMPO {version}: {REMEDY}"
    return None


def _hdf5_glompo_version(log: Path) -> str | None:
    if not log.is_file():
        return None
    try:
        import h5py

        with h5py.File(log, "r") as f:
            attrs = dict(f.attrs)
    except (OSError, ImportError):
        return None
    if "format" in attrs or "glompo_version" not in attrs:
        return None
    version = attrs["glompo_version"]
    try:
        return ".".join(str(int(v)) for v in version)
    except TypeError:
        return str(version)
