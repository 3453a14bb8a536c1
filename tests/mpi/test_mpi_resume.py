"""Checkpoints across transports and world sizes: MPI 4 ranks -> 3 ranks -> 5 ranks, MPI -> threads,
and threads -> MPI, each resume keeping every evaluation exactly once."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
from test_mpi_launch import mpi_env, mpirun, pytestmark  # noqa: F401 (pytestmark: skipped without MPI)

from glompo_hpc import CheckpointingControl, CMAOptimizer, CycleSelector, GloMPOManager, MaxFuncCalls, Rastrigin
from glompo_hpc.core.checkpoint_file import latest_checkpoint

# Run under mpirun: start (no checkpoint given) or resume (checkpoint given), then print the counters.
SCRIPT = textwrap.dedent("""
    import sys
    from glompo_hpc import *
    workdir, checkpoint, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with mpi_workers() as is_manager:
        if is_manager:
            if checkpoint == "-":
                task = Rastrigin(dims=3, delay=0.001)
                m = GloMPOManager.new_manager(
                    task, task.bounds, CycleSelector((CMAOptimizer, {"sigma0": 2.0, "popsize": 8})),
                    working_dir=workdir, overwrite_existing=True, exit_conditions=MaxFuncCalls(budget),
                    checkpoint_control=CheckpointingControl(checkpoint_at_conv=True, naming_format="ck_%(count)"))
            else:
                m = GloMPOManager.load_manager(checkpoint, exit_conditions=MaxFuncCalls(budget))
            m.start_manager()
            ids = sorted(i for o in m.opt_log.opt_ids for i in m.opt_log.history(o, "call_id"))
            print("RESULT", m.backend_name, m.max_jobs, m.f_counter, ids == list(range(1, m.f_counter + 1)),
                  len(m.dt_starts), flush=True)
""")


def run_ranks(tmp_path: Path, n: int, checkpoint: str, budget: int) -> list[str]:
    script = tmp_path / "run_ranks.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(mpirun(n, str(script), str(tmp_path / "run"), checkpoint, str(budget)), cwd=tmp_path,
                          env=mpi_env(), capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    return line.split()[1:]


def newest(tmp_path: Path) -> str:
    return str(latest_checkpoint(tmp_path / "run" / "checkpoints"))


def test_resume_with_fewer_and_more_ranks_then_on_threads(tmp_path):
    backend, slots, f1, contiguous, sessions = run_ranks(tmp_path, 4, "-", 600)
    assert (backend, slots, contiguous, sessions) == ("mpi", "3", "True", "1") and int(f1) >= 600
    backend, slots, f2, contiguous, sessions = run_ranks(tmp_path, 3, newest(tmp_path), 1200)
    assert (backend, slots, contiguous, sessions) == ("mpi", "2", "True", "2") and int(f2) >= 1200
    backend, slots, f3, contiguous, sessions = run_ranks(tmp_path, 5, newest(tmp_path), 1800)
    assert (backend, slots, contiguous, sessions) == ("mpi", "4", "True", "3") and int(f3) >= 1800
    # ... and the MPI run's checkpoint resumes on one node without MPI
    m = GloMPOManager.load_manager(newest(tmp_path), exit_conditions=MaxFuncCalls(2400), backend="threads")
    m.start_manager()
    ids = np.sort(np.concatenate([m.opt_log.history(o, "call_id") for o in m.opt_log.opt_ids]))
    assert m.f_counter >= 2400 and np.array_equal(ids, np.arange(1, m.f_counter + 1)) and len(m.dt_starts) == 4


def test_threads_checkpoint_resumes_under_mpi(tmp_path):
    task = Rastrigin(dims=3, delay=0.001)
    m = GloMPOManager.new_manager(task, task.bounds, CycleSelector((CMAOptimizer, {"sigma0": 2.0, "popsize": 8})),
                                  working_dir=tmp_path / "run", backend="threads", max_jobs=2,
                                  exit_conditions=MaxFuncCalls(500),
                                  checkpoint_control=CheckpointingControl(checkpoint_at_conv=True))
    m.start_manager()
    backend, slots, f, contiguous, sessions = run_ranks(tmp_path, 3, newest(tmp_path), 1000)
    assert (backend, slots, contiguous, sessions) == ("mpi", "2", "True", "2") and int(f) >= 1000

