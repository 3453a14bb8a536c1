"""Real runs for the watch/report/progress tests: job files run by the command line in subprocesses."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

JOB = """
task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 3, delay: {delay}}}}}
optimizers: {{options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
stoppers: "BestUnmoving(calls=120, tol=0.01) & MinFuncCalls(min_pts=120)"
exit_conditions: "MaxFuncCalls(fmax={budget})"
manager: {{backend: {backend}, max_jobs: 2, working_dir: run, summary_files: {summary_files}, seed: 3}}
checkpointing: {{checkpoint_eval_interval: {checkpoint_every}}}
logging: {{level: {level}}}
"""
EVENT_WAIT = 120.0  # s: the longest a test waits for an event (a file appearing) before failing


def write_job(directory: Path, backend: str = "threads", budget: int = 3000, delay: float = 0.0,
              summary_files: int = 3, checkpoint_every: int = 1000, level: str = "WARNING") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "job.yaml"
    path.write_text(JOB.format(backend=backend, budget=budget, delay=delay, summary_files=summary_files,
                               checkpoint_every=checkpoint_every, level=level))
    return path


def cli(*args: object, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, **kwargs)


def wait_for(predicate, what: str, timeout: float = EVENT_WAIT, poll: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (an event: a file, a screen); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def finished_run(directory: Path, backend: str = "threads") -> Path:
    """A run that ended normally; returns its working directory."""
    job = write_job(directory, backend)
    done = cli("run", job, cwd=directory)
    assert done.returncode == 0, done.stderr
    return directory / "run"


def requeued_run(directory: Path) -> Path:
    """A run stopped by SIGUSR2 after its first checkpoint (as at a SLURM time limit) and resumed by
    ``--resume auto``: two sessions in one log."""
    job = write_job(directory, budget=3000, delay=0.001, checkpoint_every=600)
    proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "run", str(job)], cwd=directory,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list((directory / "run" / "checkpoints").glob("*.tar")) or proc.poll() is not None,
             "the first checkpoint")
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=EVENT_WAIT)
    assert proc.returncode == 3, err
    resumed = cli("run", job, "--resume", "auto", cwd=directory)
    assert resumed.returncode == 0, resumed.stderr
    return directory / "run"


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` with its content hash (to prove nothing was written)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}
