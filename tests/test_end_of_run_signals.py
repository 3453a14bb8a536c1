"""Signals at the end of a run (issue 17.1) and Ctrl-C that keeps everything (issue 18.3).

A signal that arrives once the run's outcome is decided must neither kill the process nor change
its exit code. The GLOMPO_HPC_SIGNAL_AT hook makes the process signal itself at each stage of its
shut-down, so each race is deterministic. Processes and MPI ranks are real.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glompo_hpc import GloMPOManager
from glompo_hpc.core.checkpoint_file import list_checkpoints
from glompo_hpc.exit_conditions import MaxFuncCalls

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]
STAGES = ["decided", "outputs", "printed", "exiting"]

JOB = """
task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 3, delay: 0.002}}}}  # a sleeping task: the child never starves the manager
bounds: {{min: -5, max: 5, dims: 3}}
optimizers: {{options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
exit_conditions: "MaxFuncCalls(fmax=400)"
manager: {{backend: {backend}, working_dir: run, summary_files: 1, seed: 1}}
checkpointing: {{checkpoint_eval_interval: 150, pause_timeout: 20}}
logging: {{level: INFO}}
"""


def write_job(tmp_path, backend="threads"):
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(backend=backend))
    return path


def environment(signal_at=None):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in [n for n in env if n.startswith(("OMPI_COMM_WORLD", "PMI_", "PMIX_", "GLOMPO_HPC_SIGNAL_AT"))]:
        del env[name]
    if signal_at:
        env["GLOMPO_HPC_SIGNAL_AT"] = signal_at
    return env


def run(*argv, signal_at=None, launcher=()):
    return subprocess.run([*launcher, sys.executable, "-m", "glompo_hpc", *map(str, argv)], capture_output=True,
                          text=True, timeout=240, env=environment(signal_at))


def summary(tmp_path):
    return yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())


@pytest.mark.parametrize("sig", ["SIGUSR2", "SIGTERM"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_late_signal_at_each_shutdown_stage_neither_kills_nor_changes_the_exit_code(tmp_path, stage, sig):
    done = run("run", write_job(tmp_path), signal_at=f"{stage}:{sig}")
    assert done.returncode == 0, done.stderr
    assert f"sending {sig} at stage '{stage}'" in done.stderr
    assert f"Ignoring {sig}" in done.stderr
    assert "Exit reason:  MaxFuncCalls(fmax=400)" in done.stdout
    assert summary(tmp_path)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=400)"


MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
needs_mpi = [pytest.mark.slow, pytest.mark.skipif(MPIRUN is None, reason="mpirun not found"),
             pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="no mpi4py")]


@pytest.mark.parametrize("sig", ["SIGUSR2", "SIGTERM"])
@pytest.mark.parametrize("stage", ["decided", "outputs", "printed", "worker-end"])
def test_under_mpirun_a_late_signal_on_rank_0_or_a_worker_rank_keeps_exit_code_0(tmp_path, stage, sig):
    if MPIRUN is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpirun and mpi4py")
    done = run("run", write_job(tmp_path, backend="mpi"), signal_at=f"{stage}:{sig}",
               launcher=(MPIRUN, "--oversubscribe", "-n", "3"))
    assert done.returncode == 0, done.stderr
    assert f"sending {sig} at stage '{stage}'" in done.stderr
    assert summary(tmp_path)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=400)"


def test_ctrl_c_checkpoints_names_the_signal_and_says_how_to_continue(tmp_path):
    job = write_job(tmp_path)
    stopped = run("run", job, signal_at="checkpoint-written:SIGINT")
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted by SIGINT; checkpoint" in stopped.stderr and "--resume auto" in stopped.stderr
    state = summary(tmp_path)
    assert state["solution"]["exit_reason"] == "interrupted by SIGINT"
    assert state["counters"]["optimizers"]["crashed"] == 0
    checkpoints = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert len(checkpoints) == 2  # the periodic one and the one Ctrl-C took
    resumed = run("run", job, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from checkpoint {checkpoints[0]}" in resumed.stderr
    assert summary(tmp_path)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=400)"


def test_resume_says_what_it_discards_and_refuses_a_finished_run_without_force(tmp_path):
    job = write_job(tmp_path)
    done = run("run", job)
    assert done.returncode == 0, done.stderr
    workdir = tmp_path / "run"
    total = summary(tmp_path)["counters"]["function_evaluations"]
    refused = run("resume", workdir, job)
    assert refused.returncode == 2 and "has finished (MaxFuncCalls(fmax=400))" in refused.stderr
    assert "--force" in refused.stderr
    newest = list_checkpoints(workdir / "checkpoints")[0]
    from glompo_hpc.core.run_identity import read_manifest
    at = read_manifest(newest)["f_counter"]
    forced = run("resume", workdir, job, "--force")
    assert forced.returncode == 0, forced.stderr
    # the newest checkpoint is the one the end of the run wrote if a periodic one fell due in its last turn
    lost = (f"{total - at} evaluation(s) made after it are discarded (the log is rolled back to {at})"
            if total > at else "no evaluation recorded after it is discarded")
    assert f"Resuming from checkpoint {newest} ({at} evaluations); {lost}" in forced.stderr


def test_python_api_callers_keep_their_own_handlers(tmp_path):
    def mine(signum, frame):
        pass

    previous = {sig: signal.signal(sig, mine) for sig in (signal.SIGUSR2, signal.SIGTERM)}
    try:
        manager = GloMPOManager.new_manager(task=lambda x: float(sum(v * v for v in x)), bounds=[(-1, 1)] * 2,
                                            working_dir=tmp_path, backend="threads", max_jobs=1,
                                            exit_conditions=MaxFuncCalls(50), summary_files=0)
        manager.start_manager()
        assert all(signal.getsignal(sig) is mine for sig in previous)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
