"""GloMPO's checkpoints and run directories are refused in one line; checkpoint names and places."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from glompo_hpc import (CheckpointingControl, CycleSelector, GloMPOManager, MaxFuncCalls, RandomOptimizer,
                        Rastrigin, latest_checkpoint, list_checkpoints)
from glompo_hpc.errors import CheckpointError, ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def _glompo_checkpoint(path: Path) -> Path:
    """A file laid out as GloMPO 3.1's checkpoint() writes one: a gzipped tar of its pickles."""
    with tarfile.open(path, "x:gz") as tar:
        for name in ("task", "manager", "opt_log", "optimizers/0001"):
            data = b"not a pickle this test would ever load"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _glompo_run_dir(path: Path) -> Path:
    """What GloMPO 3.1 leaves in a working directory: its YAML summary carries python tags."""
    path.mkdir()
    (path / "glompo_manager_log.yml").write_text(
        "Assignment:\n  GloMPO Version: 3.1.1\n  Task: Michalewicz\n"
        "Settings:\n  x0 Generator: !!python/object:glompo.generators.random.RandomGenerator {}\n")
    return path


def test_loading_a_glompo_checkpoint_says_what_it_is_in_one_line(tmp_path):
    path = _glompo_checkpoint(tmp_path / "glompo_checkpoint_20240101_120000.tar.gz")
    with pytest.raises(CheckpointError) as err:
        GloMPOManager().load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.endswith("is a checkpoint written by GloMPO: not loadable by glompo_hpc; start a new run or "
                            "use GloMPO to finish it")
    corrupt = tmp_path / "broken.tar"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        GloMPOManager().load_checkpoint(corrupt)


@pytest.mark.parametrize("command", ["summary", "resume"])
def test_summary_or_resume_of_a_glompo_run_directory_is_one_line_and_exit_2(tmp_path, command):
    run = _glompo_run_dir(tmp_path / "glompo_run")
    proc = subprocess.run([sys.executable, "-m", "glompo_hpc", command, str(run)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("glompo-hpc: error: ")
    assert "holds a run written by GloMPO 3.1.1: not loadable by glompo_hpc; start a new run or use GloMPO to " \
           "finish it" in proc.stderr


def _run(tmp_path, control, working_dir="run"):
    task = Rastrigin(dims=2)
    manager = GloMPOManager().setup(task=task, bounds=task.bounds, opt_selector=CycleSelector(RandomOptimizer),
                                    working_dir=tmp_path / working_dir, backend="threads", max_jobs=1,
                                    exit_conditions=MaxFuncCalls(40), checkpoint_control=control)
    manager.start_manager()
    return manager


def test_latest_checkpoint_is_public_and_checkpointing_dir_is_below_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = _run(tmp_path, CheckpointingControl(checkpoint_at_conv=True, checkpointing_dir="chk",
                                                  naming_format="c_%(count)"))
    assert not (tmp_path / "chk").exists()  # the documented difference from 3.1 (its cwd)
    assert latest_checkpoint(tmp_path / "run" / "chk") == list_checkpoints(tmp_path / "run" / "chk")[0]
    assert latest_checkpoint(tmp_path / "run" / "chk").name == "c_000.tar"
    absolute = _run(tmp_path, CheckpointingControl(checkpoint_at_conv=True,
                                                   checkpointing_dir=(tmp_path / "chk").resolve()), "run2")
    assert latest_checkpoint(tmp_path / "chk") is not None  # 3.1's place, asked for explicitly
    assert manager.working_dir != absolute.working_dir


def test_a_naming_format_is_honoured_as_written_and_a_compressed_one_refused():
    assert CheckpointingControl(naming_format="chk_%(count).tar").get_name() == "chk_000"  # + '.tar' once
    assert CheckpointingControl(naming_format="chk_%(count)").get_name() == "chk_000"
    with pytest.raises(ConfigurationError, match="uncompressed tar"):
        CheckpointingControl(naming_format="chk_%(count).tar.gz")
