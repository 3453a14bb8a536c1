"""On the real one-node SLURM: a generated script and a submitit submission run short jobs to the
end without a requeue, and a one-minute job gets USR2 in its trap before the limit."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from slurm_support import Slurm, write_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def jobscript(slurm: Slurm, job: Path, launcher: str) -> Path:
    text = slurm.run(sys.executable, "-m", "glompo_hpc", "jobscript", str(job), "--launcher", launcher).stdout
    script = job.parent / f"glompo {launcher}.sbatch"
    script.write_text(text)
    return script


def script_log(job: Path, job_id: str, log_dir: str = "slurm logs") -> str:
    return (job.parent / log_dir / f"glompo-{job_id}.out").read_text()


def test_generated_script_runs_a_short_job_to_completion_without_requeue(slurm, tmp_path):
    job = write_job(tmp_path / "job dir", fmax=800, slurm="{time: 2, log_dir: 'slurm logs', job_name: 'short;$(x)'}")
    job_id = slurm.sbatch(jobscript(slurm, job, "srun"), cwd=tmp_path)
    info = slurm.wait(job_id, timeout=120)
    log = script_log(job, job_id)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert info["Restarts"] == "0" and info["JobName"] == "short;$(x)"
    assert "Exit reason:  MaxFuncCalls(fmax=800)" in log
    assert "the run exited with status 0" in log and "requeue" not in log.lower()
    assert (job.parent / "run" / "glompo_manager_log.yml").exists()


def test_submit_through_submitit_runs_a_short_job_and_returns_its_id(slurm_env, tmp_path):
    from glompo_hpc.slurm.submit import submit

    job = write_job(tmp_path / "sub dir", fmax=800, slurm="{time: 2, log_dir: 'sub logs'}")
    sub = submit(job)
    slurm_env.jobs.append(sub.job_id)
    assert re.fullmatch(r"\d+", sub.job_id)
    info = slurm_env.wait(sub.job_id, timeout=120)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "0", sub.stderr.read_text()
    outcome = sub.job.result()  # sacct is off here: submitit warns and reads the result file
    assert outcome["exit_code"] == 0 and outcome["job_id"] == sub.job_id and not outcome["requeued"]
    assert sub.stdout == job.parent / "sub logs" / sub.job_id / f"{sub.job_id}_0_log.out"
    assert "Exit reason:  MaxFuncCalls(fmax=800)" in sub.stdout.read_text()


def test_one_minute_job_gets_usr2_before_its_limit_and_max_requeues_stops_it(slurm, tmp_path):
    """The trap sees USR2 before the limit, the run checkpoints and asks for a requeue, and with
    max_requeues: 0 the script refuses with the reason instead of requeueing."""
    job = write_job(tmp_path / "limit dir", fmax=10**7, delay=0.01, checkpointing="{checkpoint_eval_interval: 1000000}",
                    slurm="{time: 1, signal_delay_s: 20, max_requeues: 0, log_dir: 'slurm logs'}")
    job_id = slurm.sbatch(jobscript(slurm, job, "mpirun"), cwd=tmp_path)
    info = slurm.wait(job_id, timeout=150, skip_begin_time=False)
    log = script_log(job, job_id)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "3:0", log  # the run's status, not a kill
    assert info["Restarts"] == "0"
    warned = re.search(r"^(\S+ \S+) glompo job script: USR2: the time limit is near", log, re.M)
    assert warned, log
    start = datetime.fromisoformat(info["StartTime"])
    assert (datetime.strptime(warned[1], "%Y-%m-%d %H:%M:%S") - start).total_seconds() < 60
    assert "interrupted by SIGUSR2; checkpoint" in log
    assert "the run exited with status 3" in log
    assert f"job {job_id} was already restarted 0 time(s), the most max_requeues (0) allows: not requeued" in log
    assert list((job.parent / "run" / "checkpoints").glob("*.tar"))
