"""Undo a pytest-mpi side effect of this folder's name.

pytest-mpi skips, without ``--with-mpi``, every test whose keywords include "mpi", and a test's
keywords include the names of its folders: so it would skip every test here, also the ordinary
ones (unit tests, and the tests that launch ``mpirun`` themselves). After it has run, this hook
takes its skip back from the tests that carry no ``mpi`` mark.
"""

from __future__ import annotations

import pytest

_PYTEST_MPI_SKIP = "need --with-mpi option to run"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("mpi") is None:
            item.own_markers[:] = [m for m in item.own_markers
                                   if not (m.name == "skip" and m.kwargs.get("reason") == _PYTEST_MPI_SKIP)]
