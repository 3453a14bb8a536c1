"""The HDF5 log writers of a process (outputs/h5_writers.py): a forked child's copy never writes the
parent's file, and a writer left open when the interpreter exits is closed with its rows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np

from glompo_hpc.core.optlog import OptimizerRecord
from glompo_hpc.outputs.hdf5_log import HDF5LogWriter


def _rows(path) -> int:
    with h5py.File(path, "r", locking=False) as f:
        return int(f["optimizer_1"].attrs["rows"])


def test_a_forked_child_never_writes_the_parents_log(tmp_path):
    writer = HDF5LogWriter.create(tmp_path / "log.h5", 2, flush_seconds=None)
    writer.add_optimizer(OptimizerRecord(1, "Walk", 0.0))
    writer.append(1, np.arange(1, 11), np.zeros((10, 2)), np.ones(10), None)
    pid = os.fork()
    if pid == 0:  # the child: its copy is disabled, so closing it writes nothing
        disabled = writer.failed
        writer.append(1, np.arange(11, 21), np.zeros((10, 2)), np.ones(10), None)
        writer.close()
        os._exit(0 if disabled else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not writer.failed
    writer.close()
    assert _rows(tmp_path / "log.h5") == 10  # the parent's rows, none of the child's


def test_a_writer_left_open_is_closed_at_exit_with_its_rows(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np
        from glompo_hpc.core.optlog import OptimizerRecord
        from glompo_hpc.outputs.hdf5_log import HDF5LogWriter
        writer = HDF5LogWriter.create({str(tmp_path / "log.h5")!r}, 2, flush_seconds=None)
        writer.add_optimizer(OptimizerRecord(1, "Walk", 0.0))
        writer.append(1, np.arange(1, 8), np.zeros((7, 2)), np.ones(7), None)
    """)  # ends without close()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _rows(tmp_path / "log.h5") == 7
