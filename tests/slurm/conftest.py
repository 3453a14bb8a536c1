"""Fixtures for the SLURM tests: a real one-node SLURM (tests/slurm/local_cluster.sh).

Tests that need SLURM take the ``slurm`` fixture. It starts the cluster once per session (the
script installs the Debian packages if they are missing; it needs root) and stops it at the end
if it started it. Where SLURM cannot be started the tests skip with the reason, except in CI
(``CI=true``), where that is a failure: CI must prove the walltime cycle on a real scheduler.
"""

from __future__ import annotations

import os
import subprocess
from typing import Iterator

import pytest

from slurm_support import CLUSTER_SCRIPT, ROOT, VENV_BIN, Slurm, cluster_command, in_ci


@pytest.fixture(scope="session")
def slurm() -> Iterator[Slurm]:
    """The one-node SLURM, started if needed; skips (fails in CI) if it cannot be started."""
    env = dict(os.environ)
    before = cluster_command("status", env, timeout=30)
    try:
        started = cluster_command("start", env, timeout=900)  # a first start may apt-get install the packages
    except subprocess.TimeoutExpired:
        started = subprocess.CompletedProcess([], 1, "", "local_cluster.sh start timed out after 900 s")
    conf = next((line.split("=", 1)[1] for line in started.stdout.splitlines()
                 if line.startswith("export SLURM_CONF=")), None)
    if started.returncode != 0 or conf is None:
        reason = f"SLURM could not be started by {CLUSTER_SCRIPT.relative_to(ROOT)}: " \
                 f"{(started.stderr or started.stdout).strip()[-800:]}"
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    # sbatch passes the submitter's environment to the job: the venv's python and mpirun, and
    # Open MPI's consent to run as root (CI runs as root)
    env.update(SLURM_CONF=conf, PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cluster = Slurm(conf, env, started_here=before.returncode != 0)
    yield cluster
    if cluster.jobs:
        subprocess.run(["scancel", *cluster.jobs], env=env, capture_output=True, timeout=30)
    if cluster.started_here:
        cluster_command("stop", env, timeout=60)


@pytest.fixture
def slurm_env(slurm: Slurm, monkeypatch: pytest.MonkeyPatch) -> Slurm:
    """The cluster, with its environment also in this process (for submitit, which calls sbatch)."""
    for key in ("SLURM_CONF", "PATH", "OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "PYTHONUNBUFFERED"):
        monkeypatch.setenv(key, slurm.env[key])
    return slurm
