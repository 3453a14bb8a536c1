"""The launcher variables (one table, backends/mpi_env.py LAUNCHERS), read by the MPI backend and by
slurm/environment.py alike, and the refusal of srun's N tasks that are not one MPI world."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from glompo_hpc import cli
from glompo_hpc.backends import mpi_env
from glompo_hpc.backends.mpi_env import (LAUNCHERS, check_single_rank_world, mpi_world_rank, mpi_world_size,
                                         srun_mpi_warning)
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.slurm.environment import LocalEnvironment, SlurmEnvironment

BATCH = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "3", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
SRUN_STEP = {**BATCH, "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "3"}

# (launcher, environment of the process with global rank 2 of 3, node-local rank 1)
WORLDS = {
    "Open MPI mpirun in a batch script": {**BATCH, "OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3",
                                          "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
    "MPICH/Hydra mpiexec": {"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "1"},
    "Intel MPI mpirun": {**BATCH, "PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"},
    "MVAPICH2 mpirun_rsh": {"MV2_COMM_WORLD_RANK": "2", "MV2_COMM_WORLD_SIZE": "3",
                            "MV2_COMM_WORLD_LOCAL_RANK": "1"},
    "srun --mpi=pmix": {**SRUN_STEP, "SLURM_PROCID": "2", "SLURM_LOCALID": "1", "PMIX_RANK": "2"},
    "srun --mpi=pmi2": {**SRUN_STEP, "SLURM_PROCID": "2", "SLURM_LOCALID": "1", "PMI_RANK": "2", "PMI_SIZE": "3"},
}


@pytest.mark.parametrize("name", WORLDS)
def test_every_launcher_gives_the_global_rank_and_size(name):
    env = WORLDS[name]
    assert mpi_world_size(env) == 3 and mpi_world_rank(env) == 2
    assert SlurmEnvironment(env).rank == 2 and LocalEnvironment(env).rank == 2
    check_single_rank_world(env)  # one MPI world: allowed


@pytest.mark.parametrize("variable", [launcher.local_rank for launcher in LAUNCHERS if launcher.local_rank])
def test_a_node_local_rank_is_never_a_global_one(variable):
    env = {**BATCH, variable: "1"}  # e.g. the second rank on this node, and nothing global said
    assert mpi_world_rank(env) == 0 and mpi_world_size(env) == 1
    assert SlurmEnvironment(env).rank == 0  # the batch shell's SLURM_PROCID


def test_the_table_knows_every_launcher_once():
    ranks = [launcher.rank for launcher in LAUNCHERS]
    assert len(set(ranks)) == len(ranks)
    assert {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"} == set(ranks)
    assert [launcher.rank for launcher in LAUNCHERS if not launcher.mpi] == ["SLURM_PROCID"]
    local = {launcher.local_rank for launcher in LAUNCHERS} - {None}
    assert local.isdisjoint(ranks)


def test_slurm_environment_rank_outside_mpi_is_srun_s():
    assert SlurmEnvironment({**SRUN_STEP, "SLURM_PROCID": "1"}).rank == 1
    assert LocalEnvironment({"GLOMPO_HPC_RANK": "1"}).rank == 1
    assert SlurmEnvironment({}).rank == 0


def test_srun_tasks_without_mpi_are_refused_in_one_line():
    with pytest.raises(ConfigurationError) as info:
        check_single_rank_world({**SRUN_STEP, "SLURM_PROCID": "1"})
    message = str(info.value)
    assert "\n" not in message and "srun started 3 tasks" in message and "MPI world of 1 rank" in message
    assert "--mpi=" in message and "srun --mpi=list" in message and "slurm.srun_args" in message


@pytest.mark.parametrize("env", [{}, BATCH, {**BATCH, "SLURM_STEP_NUM_TASKS": "1"}], ids=["none", "batch", "one"])
def test_one_process_is_not_refused(env):
    check_single_rank_world(env)  # the batch script itself, a one-task step, no SLURM


@pytest.mark.parametrize(("srun_args", "setup", "warns"), [
    ([], [], True),
    (["--overcommit"], [], True),
    (["--mpi=pmix"], [], False),
    (["--mpi", "pmi2"], [], False),
    ([], ["export SLURM_MPI_TYPE=pmix"], False),
])
def test_srun_mpi_warning(srun_args, setup, warns):
    warning = srun_mpi_warning(3, srun_args, setup)
    assert (warning is not None) == warns
    if warns:
        assert "slurm.ntasks is 3" in warning and "--mpi=" in warning and "srun --mpi=list" in warning
    assert srun_mpi_warning(1, srun_args, setup) is None


def write_job(tmp_path, slurm: str):
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(f"""
        task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 2}}}}
        optimizers: {{options: [{{type: CMAOptimizer, sigma0: 1.0}}]}}
        exit_conditions: "MaxFuncCalls(fmax=50)"
        manager: {{max_jobs: 1, working_dir: run, summary_files: 1}}
        slurm: {slurm}
    """))
    return job


@pytest.mark.parametrize("command", [["validate"], ["submit", "--dry-run"]])
@pytest.mark.parametrize(("slurm", "warns"), [("{ntasks: 3}", True), ("{ntasks: 3, srun_args: [--mpi=pmix]}", False),
                                              ("{ntasks: 1}", False)])
def test_validate_and_dry_run_warn_about_srun_without_mpi(tmp_path, capsys, command, slurm, warns):
    if command[0] == "submit":
        pytest.importorskip("submitit")
    job = write_job(tmp_path, slurm)
    assert cli.main([command[0], str(job), *command[1:]]) == 0
    err = capsys.readouterr().err
    assert ("glompo-hpc: warning: slurm.ntasks is 3 but nothing tells srun how to start MPI" in err) == warns


@pytest.mark.parametrize("command", ["run", "resume"])
def test_run_under_srun_without_mpi_refuses_before_writing(tmp_path, capsys, monkeypatch, command):
    job = write_job(tmp_path, "{ntasks: 3}")
    for key, value in {**SRUN_STEP, "SLURM_PROCID": "1"}.items():
        monkeypatch.setenv(key, value)
    for launcher in LAUNCHERS:
        if launcher.mpi:
            monkeypatch.delenv(launcher.rank, raising=False)
    argv = ["run", str(job)] if command == "run" else ["resume", str(tmp_path / "run"), str(job)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glompo-hpc: error: srun started 3 tasks"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"]  # no working dir, no log


def test_a_launcher_world_that_mpi_sees_as_one_rank_is_refused_before_writing(tmp_path):
    """mpi4py built against another MPI than the launcher's: the launcher announces 3 ranks (here
    MPICH's PMI variables, which this Open MPI ignores), MPI itself starts a world of 1."""
    pytest.importorskip("mpi4py")
    job = write_job(tmp_path, "{ntasks: 1}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "SLURM_"))}
    env.update(PMI_RANK="0", PMI_SIZE="3", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run([sys.executable, "-m", "glompo_hpc", "run", str(job)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("glompo-hpc: error:")]
    assert len(errors) == 1 and "the launcher started 3 ranks, but MPI sees a world of 1 rank" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"]


def test_module_has_one_table():
    # the rank variables are named in the table only (slurm/environment.py imports it)
    import inspect

    from glompo_hpc.slurm import environment

    source = inspect.getsource(environment)
    for launcher in LAUNCHERS:
        if launcher.mpi:
            assert launcher.rank not in source
    assert mpi_env.LAUNCHERS is LAUNCHERS
