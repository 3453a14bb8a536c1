"""Shut-down at scale and saved states under MPI, with real ranks under ``mpirun``.

* 8 hung children (a task that ignores SIGTERM and never returns) end with one wait, not eight:
  every kill order is sent before the first answer is awaited, on the backend and from the
  manager's end of run.
* A child's saved state reaches rank 0 in the reply message, not through the file system: the
  worker ranks run in another directory, where the checkpoint's relative path does not exist, and
  every live optimizer is still in the checkpoint.
"""

from __future__ import annotations

import subprocess
import tarfile
import textwrap
from pathlib import Path

import psutil
from test_mpi_launch import mpi_env, mpirun, pytestmark  # noqa: F401 (pytestmark: skipped without MPI)

from glompo_hpc import GloMPOManager, MaxFuncCalls
from glompo_hpc.core.checkpoint_file import latest_checkpoint

HUNG_CHILDREN = textwrap.dedent("""
    import logging, os, signal, sys, time
    from pathlib import Path
    import numpy as np
    from glompo_hpc import BaseExitCondition, GloMPOManager, RandomOptimizer, CycleSelector, mpi_workers
    from glompo_hpc.backends import ChildSpec, make_backend

    workdir = Path(sys.argv[1])
    BOUNDS = [(-1.0, 1.0)] * 2


    class HungTask:
        # Ignores SIGTERM and never returns: its process ends only by SIGKILL. Says so in a file.
        def __init__(self, ready_dir):
            self.ready_dir = ready_dir

        def __call__(self, x):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            (Path(self.ready_dir) / str(os.getpid())).touch()
            while True:
                time.sleep(3600)


    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records = []

        def emit(self, record):
            self.records.append(record.getMessage())


    class AllHung(BaseExitCondition):
        # the run ends once every child is inside the task (an event, not a race with their start)
        def __init__(self, ready_dir, n):
            self.ready_dir, self.n = ready_dir, n

        def __call__(self, manager):
            return len(list(Path(self.ready_dir).iterdir())) >= self.n


    def wait_for_files(directory, n):
        while len(list(directory.iterdir())) < n:
            time.sleep(0.05)
        return [int(p.name) for p in directory.iterdir()]


    records = Records()
    mpi_logger = logging.getLogger("glompo_hpc.backends.mpi")
    mpi_logger.addHandler(records)
    mpi_logger.setLevel(logging.DEBUG)
    with mpi_workers(slots="cores", cores_per_rank=2) as is_manager:
        if is_manager:
            # 1. the backend: 8 children that cannot be confirmed within kill_timeout (< the hosts'
            # 2 s SIGTERM grace) cost one timeout in all
            ready = workdir / "ready"
            ready.mkdir()
            backend = make_backend("mpi")
            backend.kill_timeout = 1.0
            for opt_id in range(1, 9):
                backend.start_child(ChildSpec(opt_id, RandomOptimizer(seed=opt_id), HungTask(ready),
                                              np.zeros(2), np.array(BOUNDS)))
            pids = wait_for_files(ready, 8)
            answers = backend.stop_children(range(1, 9))
            timeouts = [r for r in records.records if r.startswith("No confirmation")]
            print("BACKEND", answers == {i: True for i in range(1, 9)},
                  not any(backend.is_alive(i) for i in range(1, 9)), len(timeouts),
                  all(f"{i} on rank" in timeouts[0] for i in range(1, 9)) if timeouts else False, flush=True)
            backend.close()  # the hosts end every child before they confirm the session's end
            print("PIDS", *pids, flush=True)

            # 2. the manager's end of run: the 8 stragglers are forced with one kill round
            records.records.clear()
            ready2 = workdir / "ready2"
            ready2.mkdir()
            m = GloMPOManager.new_manager(HungTask(ready2), BOUNDS, CycleSelector((RandomOptimizer, {})),
                                          working_dir=workdir / "run", backend="mpi", max_jobs=8, end_timeout=1.0,
                                          exit_conditions=AllHung(ready2, 8), split_printstreams=False)
            m.start_manager()
            rounds = [r for r in records.records if r.startswith("Kill orders sent")]
            ends = sorted(set(r.end_cond for r in m.opt_log.records.values()))
            print("SESSION", m.o_counter, len(rounds), rounds[0] if rounds else "", ends, flush=True)
""")


def output_line(stdout: str, key: str) -> list[str]:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith(key + " ")]
    return line.split()[1:]


def test_eight_hung_children_end_with_one_wait(tmp_path):
    script = tmp_path / "hung.py"
    script.write_text(HUNG_CHILDREN)
    proc = subprocess.run(mpirun(5, str(script), str(tmp_path)), cwd=tmp_path, env=mpi_env(),
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # every child stopped and released; one wait expired for all eight, not eight waits
    assert output_line(proc.stdout, "BACKEND") == ["True", "True", "1", "True"], proc.stderr[-3000:]
    for pid in map(int, output_line(proc.stdout, "PIDS")):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    started, rounds, *rest = output_line(proc.stdout, "SESSION")
    assert (started, rounds) == ("8", "1"), proc.stdout[-3000:]
    line = " ".join(rest)
    assert "optimizers [1, 2, 3, 4, 5, 6, 7, 8]" in line and "'Forced GloMPO Termination'" in line, line


SAVED_STATES = textwrap.dedent("""
    from glompo_hpc import *
    with mpi_workers() as is_manager:
        if is_manager:
            task = Rastrigin(dims=2, delay=0.001)
            m = GloMPOManager.new_manager(
                task, task.bounds, CycleSelector((CMAOptimizer, {"sigma0": 2.0, "popsize": 8})),
                working_dir="run", exit_conditions=MaxFuncCalls(400), split_printstreams=False,
                checkpoint_control=CheckpointingControl(checkpoint_at_conv=True, naming_format="ck"))
            m.start_manager()
            print("RESULT", m.max_jobs, flush=True)
""")


def test_saved_states_reach_rank_0_in_the_reply_not_through_the_file_system(tmp_path):
    manager_dir, worker_dir = tmp_path / "rank0", tmp_path / "workers"
    manager_dir.mkdir()
    worker_dir.mkdir()
    script = tmp_path / "saved_states.py"
    script.write_text(SAVED_STATES)
    # MPMD: rank 0 in one directory, the worker ranks in another, where "run/..." does not exist
    launcher, program = mpirun(1, str(script))[0], mpirun(1, str(script))[4:]
    line = [launcher, "--oversubscribe", "--wdir", str(manager_dir), "-n", "1", *program,
            ":", "--wdir", str(worker_dir), "-n", "2", *program]
    proc = subprocess.run(line, cwd=tmp_path, env=mpi_env(), capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert output_line(proc.stdout, "RESULT") == ["2"]
    assert "could not save its state" not in proc.stderr, proc.stderr[-3000:]
    assert not (worker_dir / "run").exists()  # the workers never wrote on rank 0's path
    checkpoint = latest_checkpoint(manager_dir / "run" / "checkpoints")
    with tarfile.open(checkpoint) as tar:
        states = sorted(n for n in tar.getnames() if n.startswith("optimizers/") and n.endswith(".pkl"))
    assert len(states) == 2, states  # both live optimizers (one per worker rank) are in it
    resumed = GloMPOManager.load_manager(str(checkpoint), exit_conditions=MaxFuncCalls(800), backend="threads",
                                         working_dir=tmp_path / "resumed")
    ids = [int(Path(s).stem) for s in states]
    before = {i: resumed.opt_log.n_evals(i) for i in ids}
    resumed.start_manager()
    assert all(resumed.opt_log.n_evals(i) > before[i] for i in ids)  # restored from their states, they ran on
