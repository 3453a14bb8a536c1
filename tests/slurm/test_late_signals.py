"""Issue 17.1 on the real one-node SLURM: a USR2 or TERM that lands as a run ends leaves the job COMPLETED.

Each job runs a generated ``mpirun`` batch script (3 ranks) whose processes send themselves the
signal at one stage of the shut-down (``GLOMPO_HPC_SIGNAL_AT``, set by the job file's ``setup:``
lines), so the race is the same every time. The jobs are submitted at once and run side by side.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from glompo_hpc import cli
from slurm_support import Slurm, write_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CASES = [("decided", "SIGUSR2"), ("outputs", "SIGTERM"), ("printed", "SIGUSR2"), ("worker-end", "SIGTERM")]


def mpi_backend_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
        from glompo_hpc.backends import mpi  # noqa: F401
    except ImportError as e:
        return f"the mpirun script runs the MPI backend: {e}"
    return None


@pytest.fixture(scope="module")
def late_signal_jobs(slurm: Slurm, tmp_path_factory) -> dict[str, tuple]:
    if mpi_backend_missing():
        pytest.skip(mpi_backend_missing())
    jobs = {}
    base = tmp_path_factory.mktemp("late signals")
    for stage, sig in CASES:
        setup = f"['export GLOMPO_HPC_SIGNAL_AT={stage}:{sig}']"
        job = write_job(base / stage, fmax=300, summary_files=1, backend="mpi",
                        slurm=f"{{time: 5, ntasks: 3, log_dir: logs, mpirun_args: [--oversubscribe], setup: {setup}}}")
        script = job.parent / "job.sbatch"
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert cli.main(["jobscript", str(job)]) == 0
        script.write_text(text.getvalue())
        jobs[stage] = (job, slurm.sbatch(script, cwd=job.parent), sig)
    return jobs


@pytest.mark.parametrize("stage", [stage for stage, _ in CASES])
def test_a_signal_at_each_shutdown_stage_leaves_the_job_completed_with_exit_0(slurm, late_signal_jobs, stage):
    job, job_id, sig = late_signal_jobs[stage]
    info = slurm.wait(job_id, timeout=500)
    log = (job.parent / "logs" / f"glompo-{job_id}.out").read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert f"sending {sig} at stage '{stage}'" in log
    summary = yaml.safe_load((job.parent / "run" / "glompo_manager_log.yml").read_text())
    assert summary["solution"]["exit_reason"] == "MaxFuncCalls(fmax=300)"
    assert int(info["Restarts"]) == 0, log
