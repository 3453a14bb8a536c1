"""One run directory, one manager: an exclusive lock on a working directory while a manager runs there.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on the file ``.glompo.lock`` in the working directory.
The kernel drops it when the holding process exits in any way (SIGKILL, a node's OOM killer), so
no stale lock survives a crash; the file itself stays and only says who held it last.

Why ``flock`` and not POSIX ``fcntl`` locks: a POSIX lock belongs to the process and is dropped as
soon as the process closes ANY descriptor of the file (reading the holder's line would release
it), and two managers in one process (threads, tests) would both get it. A ``flock`` lock belongs
to one open file description: a second manager in the same process is refused like one in another
process, and only :meth:`RunLock.release` (or the process's end) frees it. A forked child inherits
the descriptor and with it a share of the lock; :func:`os.register_at_fork` closes the child's
copy, so an orphaned optimizer process cannot keep a dead manager's directory locked.

File systems (see docs/reliability.md): local file systems, NFSv4 and NFSv3 with lockd (the Linux
client implements ``flock`` with NFS byte-range locks, honoured across nodes), GPFS/Spectrum
Scale, CephFS and Lustre mounted with ``-o flock`` lock across nodes. Lustre mounted with
``localflock`` and BeeGFS without ``tuneUseGlobalFileLocks`` lock only between processes of one
node; Lustre with ``noflock`` refuses (this module then raises a ConfigurationError naming the
mount option rather than running unprotected).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import weakref
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigurationError

__all__ = ("RunLock", "RunDirectoryBusy", "LOCK_FILE", "refuse_if_locked")

LOCK_FILE = ".glompo.lock"

# descriptors held by this process's locks; a fork child closes its inherited copies
_held: "weakref.WeakSet[RunLock]" = weakref.WeakSet()


class RunDirectoryBusy(ConfigurationError):
    """Another manager runs in this working directory."""


def _close_inherited_locks() -> None:
    for lock in list(_held):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _holder_line() -> str:
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    job = os.environ.get("SLURM_JOB_ID")
    return f"host {socket.gethostname()}, PID {os.getpid()}, since {since}" + (f", SLURM job {job}" if job else "")


class RunLock:
    """The lock on one working directory; a context manager.

    Args:
        working_dir: The run's working directory (must exist).
    """

    def __init__(self, working_dir: str | Path) -> None:
        self.working_dir = Path(working_dir)
        self.path = self.working_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunDirectoryBusy` naming the holder (host, PID, since when).

        Raises:
            RunDirectoryBusy: another manager (in this or another process, on this or another node
                where the file system locks across nodes) holds it.
            ConfigurationError: the lock file cannot be created, or the file system does not lock.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this manager")
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirectoryBusy(_busy_message(self.working_dir, holder)) from None
            raise ConfigurationError(f"working_dir {str(self.working_dir)!r}: the file system refuses a lock on "
                                     f"{LOCK_FILE} ({e.strerror or e}); on Lustre mount with -o flock "
                                     "(see docs/reliability.md)") from None
        self._write_holder(_holder_line() + "\n")
        self._fd = fd
        _held.add(self)

    def release(self) -> None:
        """Drop the lock (no-op if not held). The file stays: removing it would race a new holder."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held.discard(self)
        self._write_holder("")  # the holder line names a live manager only
        os.close(fd)  # closing the only descriptor of this open file description drops the lock

    def _write_holder(self, text: str) -> None:
        """Write the holder line through a descriptor of its own, closed at once: the lock's descriptor
        is read-only, so a run holds no file open for writing between writes (a file system that turns
        read-only mid-run, or an admin's remount, is not blocked by it). Closing this descriptor
        leaves the flock alone: that belongs to the lock's own open file description."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError:
            return  # the holder line is information only; the lock itself is held
        try:
            os.write(fd, text.encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            # read-only: flock needs no write access (see _write_holder); the umask decides the mode
            return os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise ConfigurationError(f"working_dir {str(self.working_dir)!r}: cannot create the lock file "
                                     f"{LOCK_FILE} ({e.strerror or e})") from None

    def _forget_in_child(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the parent's descriptor still holds the lock

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.working_dir)!r}, held={self.held})"


def _busy_message(working_dir: Path, holder: str) -> str:
    return (f"working_dir {str(working_dir)!r} is in use by another manager ({holder}); one directory holds "
            "one run: wait for it to end, stop it, or choose another working_dir")


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "holder not yet recorded"


def refuse_if_locked(working_dir: str | Path) -> None:
    """Raise :class:`RunDirectoryBusy` if a manager runs in ``working_dir`` now; take no lock, write nothing.

    For ``setup()``/``load_checkpoint()``: a directory in use is named as such at once, not as
    'holds results of an earlier run'. A missing lock file means a free directory.
    """
    path = Path(working_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file (or unreadable: acquire() will say why)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirectoryBusy(_busy_message(Path(working_dir), _read_holder(fd))) from None
    finally:
        os.close(fd)  # also drops the shared probe lock
