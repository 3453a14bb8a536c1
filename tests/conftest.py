"""Settings every test shares.

Each test's subprocesses get a temporary directory of their own (``TMPDIR``). Open MPI's launcher
keeps its session files in ``$TMPDIR/ompi.<pid>``; a launcher killed by a test leaves that folder
behind, and a later ``mpirun`` that happens to get the same PID (the suite starts thousands of
processes, so PIDs come round) finds the old rendezvous files and dies with "The PMIx server's
listener thread failed to start". A folder per test makes that collision impossible.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest


def pytest_configure(config):
    tempfile.gettempdir()  # fix this process's own temporary folder before any test changes TMPDIR


@pytest.fixture(autouse=True)
def _subprocess_tmpdir(monkeypatch, tmp_path_factory):
    tmp_path_factory.getbasetemp()  # pytest's folders stay where they were
    # short: PMIx puts Unix socket paths (at most 107 bytes) under it
    path = tempfile.mkdtemp(prefix="gt", dir=tempfile.gettempdir())
    monkeypatch.setenv("TMPDIR", path)
    yield
    shutil.rmtree(path, ignore_errors=True)
