"""Helpers for the SLURM tests: the cluster handle (run, sbatch, wait for a job) and job files."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLUSTER_SCRIPT = HERE / "local_cluster.sh"
VENV_BIN = Path(sys.executable).parent
TASK = "glompo_hpc.tasks.functions:Rastrigin"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def cluster_command(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), command], capture_output=True, text=True, env=env,
                          timeout=timeout)


@dataclass
class Slurm:
    """A running cluster: the environment for its clients, and helpers to run and watch jobs."""

    conf: str
    env: dict[str, str]
    started_here: bool
    jobs: list[str] = field(default_factory=list)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        out = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, timeout=timeout, **kw)
        if check and out.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)} failed ({out.returncode}): {out.stdout}{out.stderr}")
        return out

    def sbatch(self, script: Path, *args: str, cwd: Path | None = None) -> str:
        job_id = self.run("sbatch", "--parsable", str(script), *args, cwd=cwd).stdout.strip().split(";")[0]
        self.jobs.append(job_id)
        return job_id

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (MinJobAge keeps finished jobs there for 10 minutes)."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(word.split("=", 1) for word in shlex.split(out) if "=" in word)

    REQUEUE_SETTLE_S = 3.0  # s: slurmd refuses to relaunch a job it killed a moment ago ("already killed")

    def release_requeued(self) -> None:
        """Let this session's requeued jobs start now instead of after SLURM's 120 s BeginTime.

        Not at once: a requeue resets the job's submit time (%V), and a relaunch within about a
        second of it fails ("Job N already killed, do not launch batch job"): the job then FAILS.
        """
        pending = self.run("squeue", "-h", "-t", "PENDING", "-o", "%i %r %V", check=False).stdout.splitlines()
        for line in pending:
            job_id, reason, submitted = (line.split() + ["", "", ""])[:3]
            if reason != "BeginTime" or job_id not in self.jobs:
                continue
            try:
                waited = time.time() - datetime.fromisoformat(submitted).timestamp()
            except ValueError:
                waited = self.REQUEUE_SETTLE_S
            if waited >= self.REQUEUE_SETTLE_S:
                self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now", check=False)

    def wait(self, job_id: str, timeout: float, skip_begin_time: bool = True) -> dict[str, str]:
        """Wait until the job has ended, skipping the BeginTime of requeued jobs (this one's and the others')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if skip_begin_time:
                self.release_requeued()
            info = self.job_info(job_id)
            if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                        "BOOT_FAIL", "DEADLINE", "PREEMPTED"):
                return info
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not end within {timeout:.0f} s: {self.job_info(job_id)}")


def write_job(directory: Path, *, fmax: int = 2000, delay: float = 0.0, slurm: str = "", checkpointing: str = "",
              summary_files: int = 1, backend: str = "threads", name: str = "job.yaml") -> Path:
    """A small Rastrigin job file in ``directory`` (created), with optional slurm/checkpointing sections.

    Two optimizer slots: ``max_jobs: 2`` for threads/processes; with ``mpi`` the ranks give the slots.
    """
    directory.mkdir(parents=True, exist_ok=True)
    slots = "" if backend == "mpi" else "max_jobs: 2, "
    text = textwrap.dedent(f"""
        task: {{function: "{TASK}", kwargs: {{dims: 3, delay: {delay}}}}}
        optimizers: {{options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
        exit_conditions: "MaxFuncCalls(fmax={fmax})"
        manager: {{backend: {backend}, {slots}working_dir: run, summary_files: {summary_files}, seed: 1}}
        logging: {{level: INFO}}
    """).lstrip()
    text += f"checkpointing: {checkpointing or 'false'}\n"  # none unless asked for (the job file default is on)
    if slurm:
        text += f"slurm: {slurm}\n"
    path = directory / name
    path.write_text(text)
    return path


WEIRD_NAME = "opt;run $(touch pwned) 'x' \"y\" & `id`"


def sbatch_options(text: str) -> dict[str, str | bool]:
    """The ``#SBATCH`` options as sbatch reads them (shell words), ``##SBATCH`` lines left out."""
    options: dict[str, str | bool] = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            (word,) = shlex.split(line[len("#SBATCH "):])  # exactly one word: quoting held
            name, _, value = word.partition("=")
            options[name] = value if _ else True
    return options
