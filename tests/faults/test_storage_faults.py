"""The working directory's file system fails: it fills up, it is read-only, it turns read-only.

Each case runs on a small tmpfs mounted for the test (root only: CI runs as root; elsewhere the
tests fail saying so instead of silently skipping). What a user relies on:

* A full disk never stops the run: the HDF5 log disables itself before HDF5 could meet a failed
  write (it keeps every row it holds), each checkpoint that does not fit fails with a warning
  naming it and leaves nothing behind, and the newest complete checkpoint stays the one to resume.
* A read-only working directory is refused before anything starts (exit 2, one line naming it).
* A directory that turns read-only mid-run: the run finishes and prints its result; checkpoints,
  log and summary fail with errors saying why; what was written before stays valid, and once the
  directory is writable again ``--resume auto`` continues from the last checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from glompo_hpc.core.checkpoint_file import latest_checkpoint, list_checkpoints, open_checkpoint, write_checkpoint_file
from glompo_hpc.core.snapshot import save_task
from glompo_hpc.outputs.read_log import read_log
from glompo_hpc.tasks.functions import Rastrigin

pytestmark = pytest.mark.slow


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(args)} failed: {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a fresh tmpfs of ``size`` (e.g. '1m') and returns it; all are unmounted after."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a tmpfs and need root (CI runs them as root); run them as root")
    mounted: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        mounted.append(where)
        return where

    try:
        yield make
    finally:
        for where in mounted:
            if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], check=False)  # a process still holds a file


def remount(where: Path, mode: str, timeout: float = 20.0) -> None:
    """Remount ``ro`` or ``rw``; a file open for writing makes ``ro`` fail (EBUSY) for a moment: retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return mount("-o", f"remount,{mode}", str(where))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def write_job(directory: Path, workdir: Path, budget: int, delay: float, interval: int) -> Path:
    job = {  # every component explicit: the defaults of setup() are changing
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": delay}},
        "optimizers": {"selector": "CycleSelector", "options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
        "stoppers": "BestUnmoving(calls=400, tol=0.01)",
        "generator": {"type": "RandomGenerator"},
        "exit_conditions": f"MaxFuncCalls(fmax={budget})",
        "manager": {"backend": "threads", "max_jobs": 2, "working_dir": str(workdir), "summary_files": 3, "seed": 1,
                    "split_printstreams": False},  # printstreams stay open: they would block a remount
        "checkpointing": {"checkpoint_eval_interval": interval, "naming_format": "ck_%(count)"},
        "logging": {"level": "WARNING"},
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def glompo(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # a process of its own: should HDF5 ever crash on a failed write, the test sees it as an exit code
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *args], capture_output=True, text=True, timeout=150,
                          **kwargs)


def tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def check_checkpoints_are_whole(directory: Path) -> list[Path]:
    """No temporary file or staging folder left; every checkpoint on disk verifies. Newest first."""
    assert sorted(p.name for p in directory.iterdir() if not p.name.endswith(".tar")) == []
    found = list_checkpoints(directory)
    for path in found:
        open_checkpoint(path).close()
    assert found and latest_checkpoint(directory) == found[0]
    return found


def flushed_ids(path: Path) -> np.ndarray:
    log = read_log(path, columns=("call_id",))
    return np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))


# ------------------------------------------------------------------ a disk that fills up

def fill(where: Path) -> None:
    with open(where / "filler", "wb", buffering=0) as f:  # unbuffered: closing it has nothing left to write
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_a_checkpoint_that_does_not_fit_fails_and_leaves_nothing(tmpfs, tmp_path):
    disk = tmpfs("1m")
    (disk / "checkpoints").mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "manager.pkl").write_bytes(os.urandom(600_000))  # one fits in 1 MiB, two do not
    good = write_checkpoint_file(staging, disk / "checkpoints" / "ck_000.tar", {"f_counter": 1})
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint_file(staging, disk / "checkpoints" / "ck_001.tar", {"f_counter": 2})
    assert check_checkpoints_are_whole(disk / "checkpoints") == [good]
    full = disk / "staging"
    full.mkdir()
    fill(disk)
    # a task that pickles but cannot be written is a failed checkpoint, not a checkpoint without its task
    with pytest.raises(OSError, match="No space left"):
        save_task(Rastrigin(dims=3), full, force_task_save=False)


def test_disk_filling_up_mid_run_fails_checkpoints_cleanly_and_the_run_goes_on(tmpfs, tmp_path):
    disk = tmpfs("3m")  # the log gets a few flushes in before the checkpoints fill it
    job = write_job(tmp_path, disk / "run", budget=8000, delay=0.0005, interval=400)
    done = glompo("run", str(job))
    assert done.returncode == 0 and "Exit reason:  MaxFuncCalls(fmax=8000)" in done.stdout, done.stderr
    assert re.search(r"HDF5 log \S+ .*the file system is nearly full.* The log is disabled", done.stderr)
    failed = re.findall(r"Checkpoint '(ck_\d+)' failed: OSError: \[Errno 28\] No space left on device", done.stderr)
    assert failed, done.stderr
    assert "holds no task" not in done.stderr  # a write error is not taken for an unpicklable task
    kept = check_checkpoints_are_whole(disk / "run" / "checkpoints")  # the newest whole one is the one to resume
    assert not {f"{name}.tar" for name in failed} & {p.name for p in kept}
    ids = flushed_ids(disk / "run" / "glompo_log.h5")  # what was flushed before the disk filled is intact
    assert 0 < len(ids) < 8000 and np.array_equal(ids, np.arange(1, len(ids) + 1))
    assert read_log(disk / "run" / "glompo_log.h5").attrs["complete"] is False


# ------------------------------------------------------------------ a read-only working directory

def test_a_read_only_working_dir_is_refused_at_start_in_one_line(tmpfs, tmp_path):
    disk = tmpfs("16m")
    run = disk / "run"
    job = write_job(tmp_path, run, budget=800, delay=0.0, interval=300)
    assert glompo("run", str(job)).returncode == 0  # a finished run with checkpoints, then the mount turns ro
    remount(disk, "ro")
    before = tree_digest(run)
    refused = f"glompo-hpc: error: working_dir '{run}' is not writable (Read-only file system); nothing was changed\n"
    for options in (["--overwrite"], ["--resume", "auto"]):  # start afresh over it, or go on from its checkpoint
        done = glompo("run", str(job), "--log-level", "ERROR", *options)
        assert (done.returncode, done.stderr) == (2, refused), options
    new = run.parent / "new"
    done = glompo("run", str(job), "--working-dir", str(new))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"working_dir '{new}' cannot be created" in done.stderr
    # the Python API refuses it alike, before touching anything
    from glompo_hpc import GloMPOManager, ConfigurationError
    with pytest.raises(ConfigurationError, match="is not writable"):
        GloMPOManager.new_manager(lambda x: float(np.sum(np.square(x))), [(-1, 1)] * 2, working_dir=run,
                                  overwrite_existing=True, backend="threads")
    assert tree_digest(run) == before


# ------------------------------------------------------------------ read-only from the middle of a run

def start_then_freeze(job: Path, disk: Path, tmp_path: Path) -> subprocess.Popen:
    """Start the run; remount its file system read-only once its first checkpoint exists."""
    err = open(tmp_path / "run.err", "w")
    with err:
        proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "run", str(job)], stdout=subprocess.DEVNULL,
                                stderr=err)
    deadline = time.monotonic() + 120
    while not list_checkpoints(disk / "run" / "checkpoints"):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    remount(disk, "ro")
    assert proc.poll() is None, "the run ended before its directory turned read-only"
    return proc


def test_a_working_dir_turning_read_only_mid_run_keeps_what_was_written(tmpfs, tmp_path):
    disk = tmpfs("16m")
    job = write_job(tmp_path, disk / "run", budget=4000, delay=0.001, interval=400)
    proc = start_then_freeze(job, disk, tmp_path)
    assert proc.wait(timeout=150) == 0  # the run finished and printed its result
    err = (tmp_path / "run.err").read_text()
    assert re.search(r"Checkpoint 'ck_\d+' failed: OSError: \[Errno 30\] Read-only file system", err), err
    assert "Writing the YAML summary failed" in err and err.count("Read-only file system") >= 2
    remount(disk, "rw")
    kept = check_checkpoints_are_whole(disk / "run" / "checkpoints")[0]
    ids = flushed_ids(disk / "run" / "glompo_log.h5")
    assert np.array_equal(ids, np.arange(1, len(ids) + 1))
    resumed = glompo("run", str(job), "--resume", "auto")  # writable again: the run goes on from its checkpoint
    assert resumed.returncode == 0 and f"Resuming from checkpoint {kept}" in resumed.stderr, resumed.stderr
    summary = yaml.safe_load((disk / "run" / "glompo_manager_log.yml").read_text())
    evals = summary["counters"]["function_evaluations"]
    assert evals >= 4000 and np.array_equal(flushed_ids(disk / "run" / "glompo_log.h5"), np.arange(1, evals + 1))
