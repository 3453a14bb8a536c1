"""One run directory, one manager, on the real one-node SLURM: ``submit`` with ``ntasks > 1``.

With a working MPI launch (``srun_args: [--mpi=pmix]``) the three tasks are one MPI world (rank 0
manages, ranks 1-2 host the optimizers) and the run completes across requeues with every
evaluation logged once. Without it (the cluster's ``MpiDefault`` is ``none``) srun starts
separate single-rank programs: each refuses in one line and nothing is written to the run's
directory. Both jobs are submitted at once and run side by side.
"""

from __future__ import annotations

import re
import sys
import time

import pytest
from slurm_support import Slurm, write_job
from test_requeue_cycle import CHECKPOINTING, FMAX, check_final_run, mpi_backend_missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
submitit = pytest.importorskip("submitit")

# The test delivers the time-limit signal itself (scancel --signal=USR2, to every task, as SLURM's
# --signal does) once the run has started, instead of a short limit: SLURM checks limits about
# every 30 s, and on a loaded machine its early USR2 can land while submitit is still unpickling
# the job, before any handler is installed, which kills the job (a limit of submitit's start-up,
# not of the run). The limit is long enough that SLURM itself never signals.
WITH_MPI = "{time: 10, ntasks: 3, max_requeues: 3, log_dir: 'slurm logs', srun_args: [--mpi=pmix]}"
WITHOUT_MPI = "{time: 5, ntasks: 2, log_dir: 'slurm logs'}"


def submit(slurm: Slurm, job) -> tuple[str, str]:
    """``glompo-hpc submit JOB``: the job id and what the command printed on stderr."""
    done = slurm.run(sys.executable, "-m", "glompo_hpc", "submit", str(job))
    return re.search(r"^Submitted job (\d+)", done.stdout, re.M).group(1), done.stderr


@pytest.fixture(scope="module")
def jobs(slurm: Slurm, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("one manager")
    submitted = {}
    if mpi_backend_missing() is None:
        job = write_job(base / "with mpi", fmax=FMAX, delay=0.002, summary_files=3, slurm=WITH_MPI,
                        checkpointing=CHECKPOINTING, backend="mpi")
        submitted["with mpi"] = (job, *submit(slurm, job))
    job = write_job(base / "without mpi", slurm=WITHOUT_MPI, backend="processes")
    submitted["without mpi"] = (job, *submit(slurm, job))
    slurm.jobs.extend(job_id for _, job_id, _ in submitted.values())
    return submitted


def wait_for_file(path, slurm: Slurm, job_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        state = slurm.job_info(job_id).get("JobState")
        assert state in ("PENDING", "CONFIGURING", "RUNNING") and time.monotonic() < deadline, \
            f"{path} did not appear; job {job_id} is {state}"
        time.sleep(0.2)


def task_stderr(job, job_id: str, task: int) -> str:
    return (job.parent / "slurm logs" / job_id / f"{job_id}_{task}_log.err").read_text()


def test_submit_with_an_mpi_launch_completes_across_requeues_each_evaluation_once(slurm, jobs):
    if "with mpi" not in jobs:
        pytest.skip(mpi_backend_missing())
    job, job_id, warning = jobs["with mpi"]
    assert "warning" not in warning
    wait_for_file(job.parent / "run" / "glompo_log.h5", slurm, job_id)  # the run has started
    slurm.run("scancel", "--signal=USR2", job_id)
    info = slurm.wait(job_id, timeout=500)
    err = task_stderr(job, job_id, 0)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", err
    restarts = int(info["Restarts"])
    assert restarts >= 1, err
    assert "backend mpi" in err and err.count("Resuming from checkpoint") == restarts
    out = (job.parent / "slurm logs" / job_id / f"{job_id}_0_log.out").read_text()
    check_final_run(job, out)  # every evaluation in the log exactly once, across the allocations


def test_submit_without_an_mpi_launch_is_refused_in_one_line_and_writes_nothing(slurm, jobs):
    job, job_id, warning = jobs["without mpi"]
    assert "glompo-hpc: warning: slurm.ntasks is 2 but nothing tells srun how to start MPI" in warning
    info = slurm.wait(job_id, timeout=300)
    assert info["JobState"] == "FAILED" and int(info["Restarts"]) == 0
    for task in (0, 1):
        err = task_stderr(job, job_id, task)
        errors = [line for line in err.splitlines() if line.startswith("glompo-hpc: error:")]
        assert len(errors) == 1, err
        assert errors[0].startswith("glompo-hpc: error: srun started 2 tasks, but each sees an MPI world of 1 rank")
        assert "--mpi=" in errors[0] and "srun --mpi=list" in errors[0] and "slurm.srun_args" in errors[0]
    assert not (job.parent / "run").exists()
