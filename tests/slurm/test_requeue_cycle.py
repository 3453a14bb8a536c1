"""Acceptance on the real one-node SLURM: walltime -> checkpoint -> requeue -> resume -> finish.

A job with a one-minute limit whose optimization needs more evaluations than one allocation can
make: USR2 arrives before the limit, the run checkpoints and exits with the requeue status, the
job is requeued (the test skips SLURM's 120 s BeginTime), the next start resumes with
``--resume auto`` and appends to the same HDF5 log, until the run ends on its exit condition.
Done once with ``mpirun`` starting three MPI ranks inside a generated batch script (rank 0
manages, ranks 1-2 host the optimizers) and once through ``submit`` (submitit, threads backend:
``mpirun`` inside submitit is known to hang). Both jobs run side by side to keep the wall time down.

Contract with the command line (issue 4): ``glompo-hpc run JOB --resume auto`` resumes from the
newest valid checkpoint in the working directory, else starts afresh; interrupted by SIGUSR2 or
SIGTERM with checkpointing configured it checkpoints and exits with EXIT_REQUEUE (3).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from slurm_support import Slurm, write_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# USR2 comes at least signal_delay_s = 10 s before the one-minute limit (SLURM checks limits about
# every 30 s, so it may come up to ~30 s earlier): an allocation gives the run at most ~50 s, less
# its start-up. Two optimizer slots with 10 ms evaluations make at most 200 evaluations/s, so
# 11000 evaluations (55 s or more) always need at least one requeue; a loaded machine needs more,
# which max_requeues allows.
FMAX = 11_000
SLURM = "{time: 1, signal_delay_s: 10, max_requeues: 12, log_dir: 'slurm logs'}"
# --oversubscribe: the test cluster offers 4 CPUs on what may be a 2-core machine, and Open MPI
# refuses to bind 3 ranks to 2 cores
SLURM_MPI = ("{time: 1, ntasks: 3, signal_delay_s: 10, max_requeues: 12, log_dir: 'slurm logs', "
             "mpirun_args: [--oversubscribe]}")
CHECKPOINTING = "{checkpoint_time_interval: 15}"


def mpi_backend_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
        from glompo_hpc.backends import mpi  # noqa: F401
    except ImportError as e:
        return f"the mpirun cycle runs the MPI backend: {e}"
    return None


@dataclass
class CycleJob:
    job: Path
    job_id: str
    log: Path | None = None  # the batch script's log (mpirun); submitit's stderr otherwise
    submission: object = None


@pytest.fixture(scope="module")
def cycle_jobs(slurm: Slurm, tmp_path_factory) -> dict[str, CycleJob]:
    """Both jobs, submitted at once so they run side by side."""
    jobs = {}
    base = tmp_path_factory.mktemp("requeue cycle")
    if mpi_backend_missing() is None:
        job = write_job(base / "mpirun job", fmax=FMAX, delay=0.01, summary_files=3, slurm=SLURM_MPI,
                        checkpointing=CHECKPOINTING, backend="mpi")
        text = slurm.run(sys.executable, "-m", "glompo_hpc", "jobscript", str(job), "--launcher", "mpirun").stdout
        script = job.parent / "glompo mpirun.sbatch"
        script.write_text(text)
        job_id = slurm.sbatch(script, cwd=job.parent)
        jobs["mpirun"] = CycleJob(job, job_id, log=job.parent / "slurm logs" / f"glompo-{job_id}.out")

    from glompo_hpc.slurm.submit import submit

    job = write_job(base / "submitit job", fmax=FMAX, delay=0.01, summary_files=3, slurm=SLURM,
                    checkpointing=CHECKPOINTING)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in slurm.env.items():
            mp.setenv(key, value)
        sub = submit(job)
    slurm.jobs.append(sub.job_id)
    jobs["submitit"] = CycleJob(job, sub.job_id, log=sub.stderr, submission=sub)
    return jobs


def check_final_run(job: Path, printed: str) -> tuple[float, int]:
    """Every evaluation in the HDF5 log exactly once, and the result the run printed is the log's."""
    from glompo_hpc.outputs.read_log import read_log

    run = job.parent / "run"
    summary = yaml.safe_load((run / "glompo_manager_log.yml").read_text())
    assert summary["solution"]["exit_reason"] == f"MaxFuncCalls(fmax={FMAX})"
    f_counter = summary["counters"]["function_evaluations"]
    log = read_log(run / "glompo_log.h5", columns=("call_id", "fx"))
    call_ids = np.concatenate([o.data["call_id"] for o in log.optimizers])
    assert sum(o.rows for o in log.optimizers) == f_counter == len(call_ids)
    assert np.array_equal(np.sort(call_ids), np.arange(1, f_counter + 1))  # none lost, none twice
    best = min(float(np.min(o.data["fx"])) for o in log.optimizers if o.rows)
    assert summary["solution"]["fx"] == pytest.approx(best, rel=0, abs=0)
    reported = [float(x) for x in re.findall(r"^Best fx:\s+(\S+)", printed, re.M)]
    assert reported and reported[-1] == pytest.approx(best, rel=1e-9)  # printed with 10 significant digits
    return best, f_counter


def test_mpirun_script_checkpoints_requeues_resumes_and_finishes(slurm, cycle_jobs):
    if "mpirun" not in cycle_jobs:
        pytest.skip(mpi_backend_missing())
    cj = cycle_jobs["mpirun"]
    info = slurm.wait(cj.job_id, timeout=560)
    log = cj.log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    restarts = int(info["Restarts"])
    assert restarts >= 1, log  # SLURM_RESTART_COUNT grew
    # a warning may also reach the last allocation as its run ends; that run still ends with 0
    assert log.count("USR2: the time limit is near") >= restarts
    assert log.count("checkpointed: requeueing job") == restarts
    assert f"start {restarts + 1} on" in log
    assert log.count("Resuming from checkpoint") == restarts
    assert log.rstrip().endswith("the run exited with status 0")
    check_final_run(cj.job, log)


def test_submit_checkpoints_requeues_resumes_and_finishes(slurm, cycle_jobs):
    cj = cycle_jobs["submitit"]
    info = slurm.wait(cj.job_id, timeout=560)
    err = cj.log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", err
    restarts = int(info["Restarts"])
    assert restarts >= 1, err
    assert err.count("interrupted by SIGUSR2; checkpoint") >= restarts
    assert err.count("Requeueing") >= restarts and err.count("Resuming from checkpoint") == restarts
    outcome = cj.submission.job.result()
    assert outcome["exit_code"] == 0 and outcome["restart_count"] == restarts
    check_final_run(cj.job, cj.submission.stdout.read_text())
