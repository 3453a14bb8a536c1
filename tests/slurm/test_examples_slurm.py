"""The SLURM example (examples/slurm/) on the real one-node SLURM: each of its scripts (mpirun,
srun), submitted as its header says, runs a quick version of its job file over MPI ranks to the
end, without a requeue.

The quick version differs from examples/slurm/job.yaml only in its budget and working directory;
the request is cut to two tasks (the manager and one child) on sbatch's command line, which
overrides the script's #SBATCH lines, so it fits any test machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slurm_support import ROOT, Slurm

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EXAMPLE = ROOT / "examples" / "slurm"
FMAX = 1500


def quick_job(directory: Path) -> Path:
    job = yaml.safe_load((EXAMPLE / "job.yaml").read_text())
    job["exit_conditions"] = f"MaxFuncCalls(fmax={FMAX})"
    job["manager"]["working_dir"] = "run"  # next to the quick job file, in the test's directory
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def submit(slurm: Slurm, script: Path, job: Path, *sbatch_options: str) -> str:
    """``sbatch [options] SCRIPT JOB`` from the job's directory, as the example's header says."""
    out = slurm.run("sbatch", "--parsable", *sbatch_options, str(script), job.name, cwd=job.parent)
    job_id = out.stdout.strip().split(";")[0]
    slurm.jobs.append(job_id)  # cancelled at the end of the session if still there
    return job_id


@pytest.mark.parametrize("launcher", ["mpirun", "srun"])
def test_example_script_runs_the_example_job_over_mpi_to_the_end(slurm, tmp_path, launcher):
    pytest.importorskip("mpi4py", reason="the example job runs the MPI backend")
    job = quick_job(tmp_path)
    job_id = submit(slurm, EXAMPLE / f"run_{launcher}.sbatch", job, "--ntasks=2")
    info = slurm.wait(job_id, timeout=150)
    log_file = tmp_path / f"glompo-{job_id}.out"
    log = log_file.read_text() if log_file.exists() else f"(no {log_file.name})"
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert info["Restarts"] == "0" and info["JobName"] == "glompo-rastrigin", info
    assert f"Exit reason:  MaxFuncCalls(fmax={FMAX})" in log
    assert "the run exited with status 0" in log and "requeueing" not in log
    assert "MPI: 1 worker ranks" in log and "backend mpi" in log  # rank 0 manages, rank 1 hosts the child
    run = tmp_path / "run"
    assert (run / "glompo_manager_log.yml").exists() and (run / "glompo_log.h5").exists()
