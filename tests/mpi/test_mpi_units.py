"""MPI backend parts that need no MPI: Backoff, launcher detection, errors, the job file's mpi section,
the CLI's MPI dispatch, and the batch spreading of a leader child."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from glompo_hpc import cli
from glompo_hpc.backends import BACKENDS, check_backend, default_max_jobs, make_backend, mpi_workers
from glompo_hpc.backends.backoff import POLL_MAX_SLEEP_VAR, Backoff, poll_max_sleep
from glompo_hpc.backends.mpi_batch import RemoteBatch
from glompo_hpc.backends.mpi_env import (auto_backend, check_mpi_backend, mpi_world_rank, mpi_world_size,
                                         rank_cpus)
from glompo_hpc.errors import ConfigurationError, JobFileError
from glompo_hpc.jobfile import validate

LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_SIZE",
                 "PMI_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "PMIX_SIZE", "PMIX_RANK",
                 "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_CPUS_PER_TASK")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---------------------------------------------------------------- Backoff

def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff(max_sleep=0.008, min_sleep=0.001)
    assert [b.next_delay() for _ in range(6)] == [0.0, 0.001, 0.002, 0.004, 0.008, 0.008]
    assert b.next_delay(limit=0.003) == 0.003
    b.reset()
    assert b.next_delay() == 0.0


def test_backoff_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(POLL_MAX_SLEEP_VAR, "0.01")
    assert poll_max_sleep() == 0.01 and Backoff().max_sleep == 0.01
    for bad in ("x", "0", "-1", "5"):
        monkeypatch.setenv(POLL_MAX_SLEEP_VAR, bad)
        with pytest.raises(ConfigurationError, match=POLL_MAX_SLEEP_VAR):
            poll_max_sleep()
    monkeypatch.delenv(POLL_MAX_SLEEP_VAR)
    assert poll_max_sleep() == 0.005


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize("env, size, rank", [
    ({}, 1, 0),
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2"}, 4, 2),
    ({"PMI_SIZE": "8", "PMI_RANK": "7"}, 8, 7),
    ({"MV2_COMM_WORLD_SIZE": "3", "MV2_COMM_WORLD_RANK": "1"}, 3, 1),
    ({"PMIX_RANK": "5", "SLURM_STEP_NUM_TASKS": "16"}, 16, 5),
    ({"SLURM_NTASKS": "64"}, 1, 0),  # an sbatch script: one process, not an MPI rank
], ids=["none", "openmpi", "pmi", "mvapich", "srun-pmix", "sbatch-script"])
def test_world_size_and_rank_come_from_the_launcher(no_launcher, env, size, rank):
    for name, value in env.items():
        no_launcher.setenv(name, value)
    assert (mpi_world_size(), mpi_world_rank()) == (size, rank)
    assert auto_backend() == ("mpi" if size > 1 else "processes")


def test_rank_cpus_prefers_the_explicit_setting_then_slurm(no_launcher):
    assert rank_cpus(3) == 3
    no_launcher.setenv("SLURM_CPUS_PER_TASK", "6")
    assert rank_cpus() == 6 and rank_cpus(2) == 2
    no_launcher.delenv("SLURM_CPUS_PER_TASK")
    assert rank_cpus() >= 1


def test_backend_mpi_with_one_rank_is_a_clear_error(no_launcher):
    assert "mpi" in BACKENDS
    with pytest.raises(ConfigurationError, match="needs 2 or more MPI ranks.*mpirun"):
        check_mpi_backend()
    with pytest.raises(ConfigurationError, match="needs 2 or more MPI ranks"):
        make_backend("mpi")
    with pytest.raises(ConfigurationError, match="needs 2 or more MPI ranks"):
        default_max_jobs("mpi")
    with pytest.raises(ConfigurationError, match="needs 2 or more MPI ranks"):
        check_backend("mpi")
    check_backend("threads")


def test_backend_mpi_without_mpi4py_names_the_package(no_launcher):
    no_launcher.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigurationError, match="needs the mpi4py package"):
        check_mpi_backend()


def test_mpi_workers_without_a_launcher_runs_the_block_and_loads_no_mpi():
    code = ("import sys\nfrom glompo_hpc.backends import mpi_workers\n"
            "with mpi_workers(slots='cores') as is_manager:\n    assert is_manager is True\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_mpi_workers_checks_its_arguments(no_launcher):
    with pytest.raises(ConfigurationError, match="slots"):
        with mpi_workers(slots="nodes"):
            pass
    with pytest.raises(ConfigurationError, match="cores_per_rank"):
        with mpi_workers(cores_per_rank=0):
            pass


# ---------------------------------------------------------------- job file and CLI

JOB = {"task": "glompo_hpc.tasks.functions:Rastrigin", "bounds": {"min": -1, "max": 1, "dims": 2}}


def test_job_file_mpi_section(no_launcher):
    spec = validate(dict(JOB, mpi={"slots": "cores", "cores_per_rank": 4}))
    assert (spec.mpi.slots, spec.mpi.cores_per_rank) == ("cores", 4)
    assert validate(JOB).mpi.slots == "ranks"
    with pytest.raises(JobFileError, match=r"^mpi\.slots: expected one of 'ranks', 'cores'"):
        validate(dict(JOB, mpi={"slots": "nodes"}))
    with pytest.raises(JobFileError, match=r"^mpi\.cores: unknown key; valid keys: slots='ranks', cores_per_rank"):
        validate(dict(JOB, mpi={"cores": 2}))


def test_job_file_backend_defaults_to_mpi_under_an_mpi_launcher(no_launcher):
    assert validate(JOB).manager.backend == "processes"
    no_launcher.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert validate(JOB).manager.backend == "mpi"
    assert validate(dict(JOB, manager={"backend": "threads"})).manager.backend == "threads"


def test_cli_refuses_a_single_node_backend_on_many_ranks(no_launcher, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("task: glompo_hpc.tasks.functions:Rastrigin\nbounds: {min: -1, max: 1, dims: 2}\n"
                   "manager: {backend: threads}\n")
    no_launcher.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert cli.main([str(job)]) == 2
    err = capsys.readouterr().err
    assert "runs as 4 MPI ranks but manager.backend is 'threads'" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- batch spreading in a leader child

def _fake_host(conn, helpers: int, fail: bool = False) -> None:
    """The host's side of the batch pipe: 'evaluates' each helper part as 10 * x[0]."""
    while True:
        try:
            seq, parts = conn.recv()
        except EOFError:
            return
        assert len(parts) == helpers
        outcomes = [[(10.0 * x[0], ()) for x in part] for part in parts]
        conn.send((seq, [] if fail else outcomes, "Traceback: boom" if fail else ""))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 12])
def test_remote_batch_keeps_the_order_and_evaluates_the_first_part_here(n):
    here, there = mp.Pipe()
    host = threading.Thread(target=_fake_host, args=(there, 2), daemon=True)
    host.start()
    xs = [np.array([float(i), 0.0]) for i in range(n)]
    local = []
    batch = RemoteBatch(here, helpers=2)
    out = batch(xs, lambda x: (local.append(x[0]) or float(x[0]), ()))
    first = len(np.array_split(np.arange(n), 3)[0])
    assert [fx for fx, _ in out] == [float(i) if i < first else 10.0 * i for i in range(n)]
    assert local == [float(i) for i in range(first)]
    here.close()


def test_remote_batch_raises_the_helpers_error():
    here, there = mp.Pipe()
    threading.Thread(target=_fake_host, args=(there, 1, True), daemon=True).start()
    with pytest.raises(RuntimeError, match="(?s)failed on a helper rank.*boom"):
        RemoteBatch(here, helpers=1)([np.zeros(2), np.ones(2)], lambda x: (0.0, ()))
