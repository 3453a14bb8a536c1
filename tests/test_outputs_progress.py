"""Progress during ``run``/``resume``: a live panel in a real terminal (a pty), status lines in a
batch log, nothing from the Python API unless asked."""

from __future__ import annotations

import logging
import os
import pty
import re
import subprocess
import sys

import pytest

from glompo_hpc import GloMPOManager, MaxFuncCalls, Rastrigin, TargetCost
from glompo_hpc.outputs.progress import ProgressMode, evaluation_budget, show_progress, snapshot_of
from support.runs import EVENT_WAIT, cli, write_job


def test_budget_is_the_smallest_max_func_calls_of_the_exit_conditions():
    assert evaluation_budget(TargetCost(0.0) | MaxFuncCalls(500) | MaxFuncCalls(300)) == 300
    assert evaluation_budget(TargetCost(0.0)) is None
    assert evaluation_budget(None) is None


def run_in_pty(args, cwd, columns=100):
    """Run the command line in a pseudo-terminal; returns (exit code, everything it drew)."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "30", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", *map(str, args)], cwd=cwd, stdin=child,
                            stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return proc.wait(timeout=EVENT_WAIT), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_terminal_shows_a_live_panel(tmp_path):
    job = write_job(tmp_path, budget=3000, delay=0.0005)
    code, screen = run_in_pty(["run", job], tmp_path)
    assert code == 0, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    for label in ("evaluations", "best", "optimizers", "rate", "time", "checkpoint"):
        assert re.search(rf"│ {label} ", plain), (label, plain[-2000:])
    assert re.search(r"3,\d\d\d/3,000 \(10\d%\)", plain)  # the last frame: the budget reached
    assert "\x1b[" in screen  # drawn in place with escape codes (rich), not line after line
    assert "Best fx:" in plain  # the result still follows


@pytest.mark.slow
def test_off_a_terminal_a_status_line_goes_to_the_log(tmp_path):
    job = write_job(tmp_path, budget=3000, level="INFO")
    done = cli("run", job, cwd=tmp_path, env={"GLOMPO_HPC_PROGRESS_SECONDS": "0.2"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " glompo_hpc.progress: Progress: " in line]
    assert lines, done.stderr
    # the last line counts the whole run: the budget or more (children finish the batch they are in)
    final = re.match(r"\d\d:\d\d:\d\d I glompo_hpc.progress: Progress: ([\d,]+)/3,000 \((\d+)%\) evaluations, best ",
                     lines[-1])
    assert final and int(final[1].replace(",", "")) >= 3000 and int(final[2]) >= 100, lines[-1]
    assert "\x1b" not in done.stderr
    quiet = cli("run", job, "--overwrite", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and "Progress:" not in quiet.stderr


def _manager(tmp_path):
    task = Rastrigin(dims=2)
    return GloMPOManager.new_manager(task, task.bounds, exit_conditions=MaxFuncCalls(600), backend="threads",
                                     working_dir=tmp_path / "api", max_jobs=2, summary_files=0)


def test_the_python_api_is_quiet_unless_asked(tmp_path, capfd, caplog):
    manager = _manager(tmp_path)
    with caplog.at_level(logging.INFO, logger="glompo_hpc.progress"):
        manager.start_manager()
    out, err = capfd.readouterr()
    assert "Progress" not in out + err and not [r for r in caplog.records if r.name == "glompo_hpc.progress"]
    asked = _manager(tmp_path / "asked")
    with caplog.at_level(logging.INFO, logger="glompo_hpc.progress"):
        with show_progress(asked, ProgressMode.LINES):
            asked.start_manager()
    lines = [r.getMessage() for r in caplog.records if r.name == "glompo_hpc.progress"]
    assert lines and re.search(r"/600 \(\d+%\) evaluations", lines[-1])
    snap = snapshot_of(asked)
    assert snap.f_counter >= 600 and snap.budget == 600 and snap.alive == 0 and snap.sessions == 1
