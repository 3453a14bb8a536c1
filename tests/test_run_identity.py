"""A run has an identity (issue 18.1): --resume auto can never continue another run's checkpoint.

Every kill and signal is delivered at a named stage by the GLOMPO_HPC_SIGNAL_AT hook
(glompo_hpc/core/signals.py), so each case is deterministic: no sleeps, no timing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile

import dill
import pytest
import yaml

from glompo_hpc.core.checkpoint_file import list_checkpoints

pytestmark = pytest.mark.timeout(300)

JOB = """
task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 3, delay: 0.002}}}}  # sleeps: the child never starves the manager
bounds: {bounds}
optimizers: {{options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
exit_conditions: "MaxFuncCalls(fmax={budget})"
manager: {{backend: threads, max_jobs: 1, working_dir: {workdir}, summary_files: 3, seed: {seed}}}
checkpointing: {{checkpoint_eval_interval: 200}}
"""


def write_job(tmp_path, budget=600, seed=1, bounds="[[-5, 5], [-5, 5], [-5, 5]]", workdir="run"):
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(budget=budget, seed=seed, bounds=bounds, workdir=workdir))
    return path


def cli(*args, signal_at=None):
    env = dict(os.environ)
    env.pop("GLOMPO_HPC_SIGNAL_AT", None)
    if signal_at:
        env["GLOMPO_HPC_SIGNAL_AT"] = signal_at
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *map(str, args)], capture_output=True, text=True,
                          timeout=240, env=env)


def summary(workdir):
    return yaml.safe_load((workdir / "glompo_manager_log.yml").read_text())


def run_id(workdir):
    return json.loads((workdir / "glompo_run.json").read_text())["run_id"]


def manifest(path):
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("manifest.json").read())


def finished_run(tmp_path):
    """The issue's first step: a run with checkpoints that finished."""
    job = write_job(tmp_path)
    done = cli("run", job)
    assert done.returncode == 0, done.stderr
    workdir = tmp_path / "run"
    assert summary(workdir)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=600)"
    assert list_checkpoints(workdir / "checkpoints")
    return job, workdir


def test_the_id_is_in_the_directory_the_checkpoints_the_log_and_the_summary(tmp_path):
    _, workdir = finished_run(tmp_path)
    rid = run_id(workdir)
    assert len(rid) == 32
    assert summary(workdir)["assignment"]["run_id"] == rid
    for path in list_checkpoints(workdir / "checkpoints"):
        assert manifest(path)["run_id"] == rid
        assert manifest(path)["settings"]["exit_conditions"] == "MaxFuncCalls(fmax=600)"
    import h5py
    with h5py.File(workdir / "glompo_log.h5", "r") as f:
        assert f.attrs["run_id"] == rid


@pytest.mark.parametrize("stage", ["run-id-written", "checkpoints-deleted", "purged"])
def test_overwrite_killed_before_its_first_checkpoint_never_resumes_the_old_run(tmp_path, stage):
    """The issue's sequence: a finished run; the job file changed and run with --overwrite; SIGKILL
    before the new run's first checkpoint (at each stage of the overwrite); then --resume auto."""
    job, workdir = finished_run(tmp_path)
    old_id = run_id(workdir)
    write_job(tmp_path, budget=900, seed=2)
    killed = cli("run", job, "--overwrite", signal_at=f"{stage}:SIGKILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    new_id = run_id(workdir)
    assert new_id != old_id
    resumed = cli("run", job, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" not in resumed.stderr
    assert "Exit reason:  MaxFuncCalls(fmax=900)" in resumed.stdout  # the job file's run, not the old one
    assert summary(workdir)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=900)"
    assert summary(workdir)["assignment"]["run_id"] == run_id(workdir)
    for path in list_checkpoints(workdir / "checkpoints"):  # the old run's checkpoints are gone
        assert manifest(path)["run_id"] == run_id(workdir) != old_id


def test_overwrite_deletes_the_earlier_runs_checkpoints(tmp_path):
    job, workdir = finished_run(tmp_path)
    old = set(list_checkpoints(workdir / "checkpoints"))
    again = cli("run", job, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert not old & set(list_checkpoints(workdir / "checkpoints"))


def interrupted_run(tmp_path, **job):
    """A run stopped by USR2 right after its first checkpoint: it checkpoints again and exits 3."""
    path = write_job(tmp_path, **job)
    stopped = cli("run", path, signal_at="checkpoint-written:SIGUSR2")
    assert stopped.returncode == 3, stopped.stderr
    return path, tmp_path / "run"


@pytest.mark.parametrize("change, named", [({"seed": 7}, "seed: 1 -> 7"),
                                           ({"bounds": "[[-4, 4], [-5, 5], [-5, 5]]"}, "bounds:")])
def test_a_changed_job_file_is_refused_naming_the_difference_unless_told_to_keep(tmp_path, change, named):
    job, workdir = interrupted_run(tmp_path)
    write_job(tmp_path, **change)
    refused = cli("run", job, "--resume", "auto")
    assert refused.returncode == 2
    assert named in refused.stderr and "--keep-checkpoint-settings" in refused.stderr
    assert refused.stderr.count("\n") == 1 or "glompo-hpc: error:" in refused.stderr.splitlines()[-1]
    kept = cli("run", job, "--resume", "auto", "--keep-checkpoint-settings")
    assert kept.returncode == 0, kept.stderr
    assert "Resuming from checkpoint" in kept.stderr and "not the job file's" in kept.stderr
    assert summary(workdir)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=600)"


def test_a_larger_budget_in_the_job_file_is_applied_and_logged(tmp_path):
    job, workdir = interrupted_run(tmp_path)
    write_job(tmp_path, budget=800)
    resumed = cli("run", job, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "job file's exit conditions MaxFuncCalls(fmax=800)" in resumed.stderr
    assert summary(workdir)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=800)"
    assert len(summary(workdir)["assignment"]["sessions"]) == 2


def test_a_moved_directory_resumes_its_own_run(tmp_path):
    job, workdir = interrupted_run(tmp_path)
    rid = run_id(workdir)
    shutil.move(workdir, tmp_path / "moved")
    resumed = cli("run", job, "--resume", "auto", "--working-dir", tmp_path / "moved")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from checkpoint" in resumed.stderr
    assert summary(tmp_path / "moved")["assignment"]["run_id"] == rid == run_id(tmp_path / "moved")
    assert not workdir.exists()


def test_checkpoints_of_another_run_in_a_directory_without_an_id_are_refused(tmp_path):
    job, workdir = interrupted_run(tmp_path)
    (workdir / "glompo_run.json").unlink()
    refused = cli("run", job, "--resume", "auto")
    assert refused.returncode == 2 and "belong to another run" in refused.stderr


def strip_identity(path):
    """Rewrite a checkpoint as glompo_hpc wrote it before run ids: no id in its manifest or state."""
    import hashlib
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    info = json.loads(members.pop("manifest.json"))
    info.pop("run_id"), info.pop("settings")
    record = dill.loads(members["manager.pkl"])
    record["state"].pop("run_identity")
    members["manager.pkl"] = dill.dumps(record)
    info["members"]["manager.pkl"] = hashlib.sha256(members["manager.pkl"]).hexdigest()
    with tarfile.open(path, "w") as tar:
        for name, data in [("manifest.json", json.dumps(info).encode()), *members.items()]:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))


def test_checkpoints_older_than_run_ids_still_resume_in_their_own_directory(tmp_path):
    job, workdir = interrupted_run(tmp_path)
    for path in list_checkpoints(workdir / "checkpoints"):
        strip_identity(path)
    (workdir / "glompo_run.json").unlink()
    state = summary(workdir)
    state["assignment"].pop("run_id")
    (workdir / "glompo_manager_log.yml").write_text(yaml.safe_dump(state))
    resumed = cli("run", job, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from checkpoint" in resumed.stderr and "records no job settings" in resumed.stderr
    assert summary(workdir)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=600)"
    assert not (workdir / "glompo_run.json").exists()  # it stays a run without id


def test_a_checkpoint_without_id_is_not_taken_for_the_run_a_directory_holds(tmp_path):
    job, workdir = interrupted_run(tmp_path)
    for path in list_checkpoints(workdir / "checkpoints"):
        strip_identity(path)
    resumed = cli("run", job, "--resume", "auto")
    assert "Resuming" not in resumed.stderr
    assert "belong to another run" in resumed.stderr
    # the run the directory holds left no checkpoint of its own but a summary: nothing silently replaces it
    assert resumed.returncode == 2 and "--overwrite" in resumed.stderr


def test_resume_of_a_checkpoint_whose_directory_now_holds_another_run_is_refused(tmp_path):
    job, workdir = finished_run(tmp_path)
    kept = tmp_path / "kept.tar"
    shutil.copy(list_checkpoints(workdir / "checkpoints")[0], kept)
    assert cli("run", job, "--overwrite").returncode == 0
    before = (workdir / "glompo_manager_log.yml").read_bytes()
    refused = cli("resume", kept, job)
    assert refused.returncode == 2 and "is of another run than the one" in refused.stderr
    assert (workdir / "glompo_manager_log.yml").read_bytes() == before
