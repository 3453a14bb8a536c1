"""Damaged files met by ``glompo-hpc run JOB --resume auto`` and ``glompo-hpc resume``.

What a user relies on, measured here through the command line:

* A damaged HDF5 log never costs the run: garbage in its rows or its metadata, a truncated file,
  a file that is not HDF5 or the log of another run is kept aside as
  ``glompo_log.<time>.previous.h5``, a new log (marked incomplete) takes the resumed session and
  the run resumes from its checkpoint, which is left untouched.
* A damaged newest checkpoint is skipped (the error names it) and ``--resume auto`` goes on from
  the older one; the damaged file stays where it was. When no checkpoint verifies, ``--resume auto``
  stops with a one-line error (exit 2) and changes nothing. ``resume`` of a damaged checkpoint is a
  one-line error naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from glompo_hpc.cli import main
from glompo_hpc.outputs.read_log import read_log

BUDGET = 1500
# checkpoints after ~500 and ~1000 evaluations; the run ends at ~1500, so the log is ahead of both
JOB = {
    "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": 0.001}},
    "optimizers": {"selector": "CycleSelector", "options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
    "stoppers": "BestUnmoving(calls=400, tol=0.01)",
    "generator": {"type": "RandomGenerator"},
    "exit_conditions": f"MaxFuncCalls(fmax={BUDGET})",
    "manager": {"backend": "threads", "max_jobs": 2, "working_dir": "run", "summary_files": 3, "seed": 1,
                "split_printstreams": False},
    "checkpointing": {"checkpoint_eval_interval": 500, "naming_format": "ck_%(count)"},
    "logging": {"level": "WARNING"},
}


def cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """The command line in this process (saves an interpreter start per call); paths are absolute."""
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): digest(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def manifest_evals(path: Path) -> int:
    with tarfile.open(path) as tar:
        return int(json.load(tar.extractfile("manifest.json"))["f_counter"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished run with two periodic checkpoints and a log holding rows after both."""
    base = tmp_path_factory.mktemp("finished")
    (base / "job.yaml").write_text(yaml.safe_dump(JOB))
    done = subprocess.run([sys.executable, "-m", "glompo_hpc", "run", "job.yaml"], cwd=base, capture_output=True,
                          text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (base / "run" / "checkpoints").iterdir()) == ["ck_000.tar", "ck_001.tar"]
    return base


@pytest.fixture
def copied_run(finished_run, tmp_path) -> Path:
    """A private copy of the finished run (the job file and its working dir), elsewhere on disk."""
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def summary_of(run: Path) -> dict:
    return yaml.safe_load((run / "glompo_manager_log.yml").read_text())


def log_ids(path: Path) -> list[int]:
    log = read_log(path, columns=("call_id",))
    return sorted(int(i) for o in log.optimizers for i in o.data["call_id"])


# ------------------------------------------------------------------ the control case

def test_a_moved_run_resumes_in_its_new_place_with_its_log_rolled_back(finished_run, copied_run, capsys):
    before = tree_digest(finished_run)
    resumed = cli(capsys, "run", str(copied_run / "job.yaml"), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    run = copied_run / "run"
    summary = summary_of(run)
    evals = summary["counters"]["function_evaluations"]
    assert log_ids(run / "glompo_log.h5") == list(range(1, evals + 1)) and summary["log"]["complete"] is True
    assert len(summary["assignment"]["sessions"]) == 2
    assert tree_digest(finished_run) == before  # the original place is not written to


# ------------------------------------------------------------------ a damaged HDF5 log

def garbage_in_rows(path: Path) -> None:
    """Random bytes over optimizer 1's first compressed chunk of fx: the rollback must read it."""
    with h5py.File(path, "r") as f:
        chunk = f["optimizer_1/fx"].id.get_chunk_info(0)
    with open(path, "r+b") as out:
        out.seek(chunk.byte_offset)
        out.write(np.random.default_rng(0).bytes(chunk.size))


def garbage_over_half(path: Path) -> None:
    """Random bytes over the middle half of the file: metadata and rows alike."""
    data = bytearray(path.read_bytes())
    a, b = len(data) // 4, 3 * len(data) // 4
    data[a:b] = np.random.default_rng(1).bytes(b - a)
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def not_hdf5(path: Path) -> None:
    path.write_text("results of something else\n" * 20)


def another_runs_log(path: Path) -> None:
    """A valid log of another optimization (another run key), e.g. copied here by mistake."""
    with h5py.File(path, "a") as f:
        f.attrs["run_key"] = "0123456789abcdef"


@pytest.mark.parametrize("damage", [garbage_in_rows, garbage_over_half, truncated, not_hdf5, another_runs_log])
def test_a_damaged_log_is_kept_aside_and_the_run_resumes_from_its_checkpoint(copied_run, damage, capsys):
    run = copied_run / "run"
    damage(run / "glompo_log.h5")
    damaged, checkpoints = digest(run / "glompo_log.h5"), tree_digest(run / "checkpoints")
    resumed = cli(capsys, "run", str(copied_run / "job.yaml"), "--resume", "auto")
    assert resumed.returncode == 0 and "Best fx" in resumed.stdout, resumed.stderr
    (aside,) = run.glob("glompo_log.*.previous.h5")
    assert re.search(rf"glompo_log\.h5 .*kept as {re.escape(aside.name)}; a new log is started", resumed.stderr)
    if damage is garbage_in_rows:  # readable as this run's log, but the rollback fails half way
        assert "cannot be rolled back to the checkpoint" in resumed.stderr
    else:  # never opened for writing
        assert digest(aside) == damaged
    assert tree_digest(run / "checkpoints").items() >= checkpoints.items()  # the old checkpoints untouched
    resumed_from = manifest_evals(run / "checkpoints" / "ck_001.tar")
    evals = summary_of(run)["counters"]["function_evaluations"]
    assert log_ids(run / "glompo_log.h5") == list(range(resumed_from + 1, evals + 1))  # the resumed session
    attrs = read_log(run / "glompo_log.h5").attrs
    assert attrs["complete"] is False and f"{resumed_from} earlier evaluations are not in it" in attrs["problem"]
    assert summary_of(run)["log"]["complete"] is False


# ------------------------------------------------------------------ damaged checkpoints

def test_resume_auto_skips_a_damaged_newest_checkpoint_and_leaves_it_in_place(copied_run, capsys):
    run = copied_run / "run"
    newest = run / "checkpoints" / "ck_001.tar"
    newest.write_bytes(newest.read_bytes()[:30_000])  # cut short, as by a full disk or a copy interrupted
    damaged = digest(newest)
    resumed = cli(capsys, "run", str(copied_run / "job.yaml"), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"Skipping checkpoint: checkpoint '\S*ck_001\.tar' is truncated", resumed.stderr)
    assert re.search(r"Resuming from checkpoint \S*ck_000\.tar", resumed.stderr)
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z] ", line) for line in resumed.stderr.splitlines())  # one line each
    assert digest(newest) == damaged  # kept for inspection; the resumed run names its own ck_001_1
    summary = summary_of(run)
    evals = summary["counters"]["function_evaluations"]
    assert log_ids(run / "glompo_log.h5") == list(range(1, evals + 1)) and summary["log"]["complete"] is True


def test_resume_auto_without_any_valid_checkpoint_stops_and_changes_nothing(copied_run, capsys):
    run = copied_run / "run"
    for path in (run / "checkpoints").glob("*.tar"):
        path.write_bytes(path.read_bytes()[:700])
    (run / "glompo_manager_log.yml").unlink()  # as if killed: no session ended
    before = tree_digest(run)
    resumed = cli(capsys, "run", str(copied_run / "job.yaml"), "--resume", "auto")
    assert resumed.returncode == 2, resumed.stderr
    last = resumed.stderr.strip().splitlines()[-1]
    assert last.startswith("glompo-hpc: error: --resume auto: no checkpoint in") and "ck_000.tar" in last
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z] |glompo-hpc: error: ", line) for line in resumed.stderr.splitlines())
    assert tree_digest(run) == before  # the log of the run is not replaced


def flip_a_byte_of(member: str):
    def mutate(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name == member else data
    return mutate


def future_version(name: str, data: bytes) -> bytes:
    return json.dumps({**json.loads(data), "format_version": 99}).encode() if name == "manifest.json" else data


def rewrite_members(path: Path, mutate) -> None:
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            data = mutate(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:30_000]), "is truncated"),
    (lambda p: rewrite_members(p, flip_a_byte_of("manager.pkl")),
     "is corrupted: member 'manager.pkl' fails its checksum"),
    (lambda p: rewrite_members(p, future_version), "has format version 99"),
], ids=["truncated", "bit_flip", "future_version"])
def test_resume_of_a_damaged_checkpoint_is_one_line_naming_it(copied_run, damage, reason, capsys):
    run = copied_run / "run"
    checkpoint = run / "checkpoints" / "ck_001.tar"
    damage(checkpoint)
    before = tree_digest(run)
    resumed = cli(capsys, "resume", str(checkpoint), str(copied_run / "job.yaml"))
    assert resumed.returncode == 2 and len(resumed.stderr.strip().splitlines()) == 1, resumed.stderr
    assert f"checkpoint '{checkpoint}' {reason}" in resumed.stderr
    assert tree_digest(run) == before
