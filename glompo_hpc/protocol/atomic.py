"""Atomic file writing: a crash leaves either the old file or the new one, never half of one.

The temporary file is created with mode 0666 filtered by the umask, like any file ``open()``
creates, so the result has the permissions the user's other files get. Not ``tempfile.mkstemp``:
it makes 0600 files, and widening them needs the umask, which can only be read by setting it
(``os.umask(0)`` and back): for that moment every other thread of the process (optimizer
threads, a user's task) would create world-writable files.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ("atomic_path", "atomic_write_text", "new_temporary_beside")


def new_temporary_beside(path: Path | str) -> Path:
    """Create an empty, uniquely named hidden file beside ``path`` (mode 0666 & ~umask); return it."""
    path = Path(path)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {str(path)!r}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    tmp_path = new_temporary_beside(path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
