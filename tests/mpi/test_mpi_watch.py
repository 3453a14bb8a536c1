"""`watch` and `report` on a run made by real MPI ranks (issue 15: every backend).

The readers only read files; this checks that what rank 0 writes under MPI (the HDF5 log, its
root attributes, the summary, checkpoints) is what they understand.
"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from glompo_hpc.outputs.run_files import read_run
from test_mpi_launch import mpi_env, mpirun, pytestmark  # noqa: F401 (marks: slow, needs mpirun)


def test_watch_and_report_read_a_run_made_by_mpi_ranks(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3}},
        "optimizers": {"options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
        "exit_conditions": "MaxFuncCalls(1500)",
        "manager": {"working_dir": "run", "summary_files": 3, "seed": 3},
        "checkpointing": {"checkpoint_eval_interval": 500, "pause_timeout": 10},
    }))
    ran = subprocess.run(mpirun(3, "-m", "glompo_hpc", "run", str(job), "--quiet"), cwd=tmp_path, env=mpi_env(),
                         capture_output=True, text=True, timeout=170)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    evaluations = int(re.search(r"Evaluations:\s+(\d+)", ran.stdout)[1])

    files = read_run(tmp_path / "run")
    assert files.attrs["backend"] == "mpi" and not files.running
    assert files.evaluations == evaluations == sum(o.rows for o in files.optimizers)
    assert files.checkpoints

    watch = subprocess.run([sys.executable, "-m", "glompo_hpc", "watch", "run", "--once"], cwd=tmp_path,
                           env={**mpi_env(), "COLUMNS": "80"}, capture_output=True, text=True, timeout=120)
    assert watch.returncode == 0, watch.stderr
    assert f"evaluations {evaluations:,} " in watch.stdout, watch.stdout
    assert "The run is not running (finished: MaxFuncCalls(fmax=1500))" in watch.stdout, watch.stdout

    page = tmp_path / "report.html"
    report = subprocess.run([sys.executable, "-m", "glompo_hpc", "report", "run", "-o", str(page)], cwd=tmp_path,
                            env=mpi_env(), capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    html = page.read_text()
    assert "<script src=" not in html and "MaxFuncCalls(fmax=1500)" in html
