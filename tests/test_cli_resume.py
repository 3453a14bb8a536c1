"""The command line's checkpoint cycle: a signal leaves a checkpoint (exit 3), --resume auto goes on."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

JOB = """
task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 3, delay: 0.002}}}}
optimizers: {{options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
exit_conditions: "MaxFuncCalls(fmax={budget})"
manager: {{backend: {backend}, max_jobs: 2, working_dir: run, summary_files: 1}}
{checkpointing}
"""


def write_job(tmp_path, backend="threads", budget=2500, checkpointing=True):
    text = JOB.format(backend=backend, budget=budget,
                      checkpointing="checkpointing: {checkpoint_eval_interval: 500}" if checkpointing
                      else "checkpointing: false")
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def start_and_signal(job, sig, wait_for_start=True):
    """Run the job, signal it once its session has started (its signal handlers are in place; the
    printstreams folder appears), or, without ``wait_for_start``, at once after launch."""
    started = job.parent / "run" / "glompo_optimizer_printstreams"
    proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "run", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while wait_for_start and not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize("backend, sig", [("threads", signal.SIGTERM), ("processes", signal.SIGUSR2)])
def test_signal_checkpoints_and_resume_auto_finishes(tmp_path, backend, sig):
    job = write_job(tmp_path, backend)
    code, out, err = start_and_signal(job, sig)
    assert code == 3, err
    assert f"interrupted by {sig.name}; checkpoint" in err
    first = yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())
    assert first["solution"]["exit_reason"] == f"interrupted by {sig.name}"
    resumed = cli("run", job, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from checkpoint" in resumed.stderr
    summary = yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())
    assert summary["counters"]["function_evaluations"] >= 2500
    assert len(summary["assignment"]["sessions"]) == 2
    assert summary["solution"]["exit_reason"] == "MaxFuncCalls(fmax=2500)"


def test_resume_auto_without_checkpoint_starts_afresh_and_resume_command(tmp_path):
    job = write_job(tmp_path, budget=600)
    fresh = cli("run", job, "--resume", "auto")
    assert fresh.returncode == 0 and "Resuming" not in fresh.stderr
    original = (tmp_path / "run" / "glompo_manager_log.yml").read_bytes()
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    # the run has finished: resuming it (from its last checkpoint) needs --force (docs/checkpointing.md)
    again = cli("resume", tmp_path / "copy", job, "--log-level", "INFO", "--force")
    assert again.returncode == 0, again.stderr
    assert "Loaded checkpoint" in again.stderr
    # a run directory given to resume is where the run goes on, also when it was copied or moved
    assert (tmp_path / "run" / "glompo_manager_log.yml").read_bytes() == original
    resumed = yaml.safe_load((tmp_path / "copy" / "glompo_manager_log.yml").read_text())
    assert len(resumed["assignment"]["sessions"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("resume", empty)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no valid checkpoint" in missing.stderr and "Traceback" not in missing.stderr


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a checkpoint")
    res = cli("resume", bad)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "bad.tar" in res.stderr


def test_signal_without_checkpointing_exits_128_plus_signal(tmp_path):
    job = write_job(tmp_path, checkpointing=False, budget=10 ** 6)
    code, out, err = start_and_signal(job, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "Best fx" in out, err
    # early, while the job file is being read: no traceback, no half-written output
    code, out, err = start_and_signal(job, signal.SIGTERM, wait_for_start=False)
    assert code in (128 + signal.SIGTERM, -signal.SIGTERM) and "Traceback" not in err
