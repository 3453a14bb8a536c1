"""One run directory, one manager: the working-directory lock (glompo_hpc/core/run_lock.py).

Every wait here is on an event (a line on a pipe, a threading.Event), never on a sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from support.optimizers import WalkOptimizer, sphere

from glompo_hpc import cli
from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.core.run_lock import LOCK_FILE, RunDirectoryBusy, RunLock
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.selectors import CycleSelector

pytestmark = pytest.mark.timeout(120)
BOUNDS = [(-5.0, 5.0)] * 2

HOLDER = textwrap.dedent("""
    import sys
    from glompo_hpc.core.run_lock import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.readline()  # hold until told (or killed)
""")


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock on tmp_path, until the test ends or kills it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def manager(tmp_path, task=sphere, **kwargs) -> GloMPOManager:
    kwargs.setdefault("exit_conditions", MaxFuncCalls(60))
    return GloMPOManager.new_manager(task, BOUNDS, CycleSelector((WalkOptimizer, {"iters": 10})),
                                     working_dir=tmp_path, max_jobs=1, backend="threads", seed=1, **kwargs)


def test_a_second_process_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(RunDirectoryBusy) as info:
        RunLock(tmp_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert f"host {socket.gethostname()}, PID {holder.pid}, since " in message and str(tmp_path) in message


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / LOCK_FILE).read_text().strip()  # the dead holder's line is still there ...
    result = manager(tmp_path, summary_files=1).start_manager()  # ... but the lock is the kernel's, and gone
    assert result.fx is not None
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released at the end


def test_a_manager_refuses_a_directory_in_use_before_writing_anything(tmp_path, holder):
    (tmp_path / "before.txt").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunDirectoryBusy, match=f"PID {holder.pid}"):
        manager(tmp_path, summary_files=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_command_line_refuses_in_one_line(tmp_path, holder, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(f"""
        task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 2}}}}
        optimizers: {{options: [{{type: CMAOptimizer, sigma0: 1.0}}]}}
        exit_conditions: "MaxFuncCalls(fmax=50)"
        manager: {{backend: threads, max_jobs: 1, working_dir: {str(tmp_path)!r}, summary_files: 1}}
    """))
    assert cli.main(["run", str(job), "--log-level", "WARNING"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("glompo-hpc: error:")]
    assert len(errors) == 1 and errors[0].startswith("glompo-hpc: error: working_dir") and f"PID {holder.pid}" in errors[0]
    assert not (tmp_path / "glompo_manager_log.yml").exists() and not (tmp_path / "glompo_log.h5").exists()


class GatedTask:
    """Sphere whose first call says so and then waits for the test's go-ahead."""

    def __init__(self):
        self.running, self.go = threading.Event(), threading.Event()

    def __call__(self, x) -> float:
        self.running.set()
        assert self.go.wait(60)
        return sphere(x)


def test_two_managers_in_one_process_exclude_each_other(tmp_path):
    second = manager(tmp_path)  # set up before the first runs: start_manager must refuse by itself
    task = GatedTask()
    first = manager(tmp_path, task=task, summary_files=1)
    runner = threading.Thread(target=first.start_manager)
    runner.start()
    try:
        assert task.running.wait(60)
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(RunDirectoryBusy, match=f"PID {os.getpid()}"):
            second.start_manager()
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        assert not second._running
    finally:
        task.go.set()
        runner.join(60)
    assert first.result.fx is not None and first.f_counter > 0


def test_a_resume_in_the_same_process_after_an_end(tmp_path):
    control = CheckpointingControl(checkpoint_at_conv=True, checkpointing_dir=str(tmp_path / "checkpoints"))
    first = manager(tmp_path, checkpoint_control=control, summary_files=1)
    first.start_manager()
    checkpoint = sorted((tmp_path / "checkpoints").glob("*.tar"))[-1]
    again = GloMPOManager.load_manager(checkpoint, task=sphere, exit_conditions=MaxFuncCalls(120))
    again.start_manager()
    assert again.f_counter >= 120 > first.f_counter
    RunLock(tmp_path).acquire()  # free again: nothing holds it after the ends


def test_a_fork_child_does_not_keep_the_lock(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    hold_r, hold_w = os.pipe()  # the child lives until the parent closes hold_w
    ready_r, ready_w = os.pipe()  # the child says it runs (its at-fork hooks have run by then)
    pid = os.fork()
    if pid == 0:
        os.close(hold_w)
        os.write(ready_w, b"r")
        os.read(hold_r, 1)
        os._exit(0)
    os.close(hold_r)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"r"
        lock.release()
        with RunLock(tmp_path):  # free although the child, still alive, inherited the descriptor
            pass
    finally:
        os.close(hold_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def test_the_lock_file_is_not_a_result(tmp_path):
    with RunLock(tmp_path):
        pass
    assert (tmp_path / LOCK_FILE).exists()
    m = manager(tmp_path, summary_files=1)  # the lock file is not 'results of an earlier run'
    assert m.paths.existing_results() == []
    m.start_manager()
    assert Path(tmp_path / LOCK_FILE).exists()
