"""Ctrl-C in a real terminal under ``mpirun`` keeps everything (issue 18, Deliver 3).

An interactive ``bash`` runs in a real pseudo-terminal (its session leader, with job control)
and starts ``mpirun -n 3 python -m glompo_hpc JOB.yaml`` as a user would. The test types Ctrl-C
(the ^C byte written to the terminal's master side, so the terminal's line discipline sends
SIGINT to its foreground process group) once the run logs evaluations, and reads the terminal's
foreground group from the master side (``tcgetpgrp``). The run ends by that Ctrl-C alone (its exit
condition is far away), so nothing depends on timing.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from test_mpi_launch import mpi_env, mpirun, rank_processes
from test_mpi_launch import wait_for_evaluations as wait_for_status_line
from test_mpi_launch import pytestmark as needs_mpi

from glompo_hpc.core.checkpoint_file import list_checkpoints

EXIT_STATUS = re.compile(rb"EXIT-STATUS=(\d+)")
pytestmark = [*needs_mpi, pytest.mark.timeout(400)]  # two MPI runs each on a loaded 2-core machine


class Terminal:
    """An interactive bash in a pty of its own; what it prints is collected by a reader thread."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.pid, self.master = pty.fork()  # the child: a new session, the pty its controlling terminal
        if self.pid == 0:
            os.chdir(cwd)
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.output = b""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.type("PS1='$ '; PROMPT_COMMAND=''; echo READY-$((6*7))")
        self.wait_for(rb"READY-42")

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # bash has exited: the pty is closed
                return
            if not data:
                return
            with self._lock:
                self.output += data

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def text(self) -> str:
        with self._lock:
            return self.output.decode(errors="replace")

    def wait_for(self, pattern: bytes, timeout: float = 120.0) -> re.Match:
        """Until ``pattern`` appears in the terminal's output (an event: a line printed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = re.search(pattern, self.output)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared on the terminal:\n{self.text()[-6000:]}")

    def exit_status(self) -> int:
        return int(self.wait_for(EXIT_STATUS)[1])

    def foreground_group(self) -> int:
        return os.tcgetpgrp(self.master)

    def close(self) -> None:
        """End bash and whatever it started that is still running (only our own processes)."""
        try:
            shell = psutil.Process(self.pid)
            ours = shell.children(recursive=True)
        except psutil.NoSuchProcess:
            ours = []
        for proc in ours:
            with_ignored(proc.kill)
        with_ignored(lambda: os.kill(self.pid, signal.SIGKILL))
        os.waitpid(self.pid, 0)
        os.close(self.master)


def with_ignored(call) -> None:
    try:
        call()
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass


@pytest.fixture
def terminal(tmp_path):
    term = Terminal(tmp_path, mpi_env())
    yield term
    term.close()


def write_job(tmp_path: Path, exit_conditions: str, checkpointing: bool = True) -> Path:
    job = {
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": 0.002}},
        # optimizers that never end by themselves: whenever the run is under way, two are running
        "optimizers": {"options": [{"type": "RandomOptimizer", "iters": 10**6}]},
        "stoppers": False,
        "exit_conditions": exit_conditions,
        "manager": {"working_dir": "run", "summary_files": 3, "seed": 1, "status_interval": 0.2},
        "checkpointing": {"pause_timeout": 20} if checkpointing else False,
        "logging": {"level": "INFO", "file": "run.log"},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def command(job: Path, background: bool = False) -> str:
    line = " ".join(mpirun(3, "-m", "glompo_hpc", str(job)))
    return f"{line} & wait $!; echo EXIT-STATUS=$?" if background else f"{line}; echo EXIT-STATUS=$?"


def wait_for_evaluations(log: Path, terminal: Terminal) -> None:
    """Until the run's log has a status line counting evaluations (the run is under way)."""
    counted = re.compile(r"Status: ([1-9]\d*) evaluations")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and counted.search(log.read_text(errors="replace")):
            return
        if EXIT_STATUS.search(terminal.text().encode()):
            break
        time.sleep(0.05)
    raise AssertionError(f"no status line with evaluations in {log}; terminal:\n{terminal.text()[-6000:]}")


def rank_0(shell_pid: int) -> psutil.Process:
    ranks = [p for p in psutil.Process(shell_pid).children(recursive=True)
             if with_environ(p).get("OMPI_COMM_WORLD_RANK") == "0"]
    assert ranks, "no rank 0 under the shell"
    return min(ranks, key=lambda p: p.create_time())  # its forked children inherit its environment


def with_environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


def summary(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())


def test_ctrl_c_under_mpirun_checkpoints_and_resume_auto_finishes_with_every_evaluation_once(tmp_path, terminal):
    job = write_job(tmp_path, "MaxSeconds(session_max=600)")  # ends only by the Ctrl-C
    terminal.type(command(job))
    wait_for_evaluations(tmp_path / "run.log", terminal)
    leader = rank_0(terminal.pid)
    assert terminal.foreground_group() == leader.pid == os.getpgid(leader.pid)  # Ctrl-C now reaches rank 0
    terminal.ctrl_c()
    status = terminal.exit_status()
    out = terminal.text()
    assert terminal.foreground_group() == terminal.pid  # the shell has its terminal back

    # what one node does on Ctrl-C (tests/test_end_of_run_signals.py): exit 130, a checkpoint, how to go on
    assert status == 130, out[-6000:]
    assert "Traceback" not in out  # no rank failed on its way out
    state = summary(tmp_path)
    assert state["solution"]["exit_reason"] == "interrupted by SIGINT"
    assert "Exit reason:  interrupted by SIGINT" in out
    assert "interrupted by SIGINT; checkpoint" in out and "--resume auto" in out
    optimizers = state["counters"]["optimizers"]
    assert optimizers["crashed"] == 0 and "crashed" not in optimizers["by_end"]
    assert optimizers["by_end"] == {"unfinished": 2}  # the running ones, stopped by the interrupt
    checkpoints = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert len(checkpoints) == 1 and state["checkpoints"]["last_exit_checkpoint"] == str(checkpoints[0])
    at_interrupt = state["counters"]["function_evaluations"]

    # --resume auto goes on from that checkpoint to the end, each evaluation in the log once
    budget = at_interrupt + 400
    write_job(tmp_path, f"MaxFuncCalls(fmax={budget})")
    resumed = subprocess.run(mpirun(3, "-m", "glompo_hpc", str(job), "--resume", "auto"), cwd=tmp_path,
                             env=mpi_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert f"Resuming from checkpoint {checkpoints[0]} ({at_interrupt} evaluations)" in resumed.stderr
    final = summary(tmp_path)
    assert final["solution"]["exit_reason"] == f"MaxFuncCalls(fmax={budget})"
    from glompo_hpc.outputs.read_log import read_log

    f_counter = final["counters"]["function_evaluations"]
    log = read_log(tmp_path / "run" / "glompo_log.h5", columns=("call_id",))
    call_ids = np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))
    assert np.array_equal(call_ids, np.arange(1, f_counter + 1))  # none lost, none twice


def test_mpirun_in_the_background_leaves_the_terminal_to_the_shell(tmp_path, terminal):
    job = write_job(tmp_path, "MaxFuncCalls(fmax=600)")
    terminal.type(command(job, background=True))
    wait_for_evaluations(tmp_path / "run.log", terminal)
    assert rank_0(terminal.pid)  # under way, and past the point where rank 0 would take the terminal
    assert terminal.foreground_group() == terminal.pid
    assert terminal.exit_status() == 0, terminal.text()[-6000:]
    assert "took the terminal" not in (tmp_path / "run.log").read_text()
    assert summary(tmp_path)["solution"]["exit_reason"] == "MaxFuncCalls(fmax=600)"


def test_the_shell_gets_its_terminal_back_when_rank_0_is_killed(tmp_path, terminal):
    job = write_job(tmp_path, "MaxSeconds(session_max=600)")
    terminal.type(command(job))
    wait_for_evaluations(tmp_path / "run.log", terminal)
    leader = rank_0(terminal.pid)
    assert terminal.foreground_group() == leader.pid
    leader.kill()  # SIGKILL: no finally, no atexit; mpirun ends the job, then the shell takes its terminal
    assert terminal.exit_status() != 0
    assert terminal.foreground_group() == terminal.pid
    terminal.type("echo STILL-$((40+2))")
    terminal.wait_for(rb"STILL-42")


def test_sigterm_to_each_ranks_process_group_ends_running_optimizers_as_unfinished_not_crashed(tmp_path):
    """What SLURM does at a time limit or on scancel (SIGTERM to every process of the step) and
    mpirun when it ends a job (SIGTERM to each rank's process group, then SIGKILL): the worker ranks'
    children die of it at once. Here no SIGKILL follows, so the summary shows how they are counted."""
    job = write_job(tmp_path, "MaxSeconds(session_max=600)", checkpointing=False)
    proc = subprocess.Popen(mpirun(3, "-m", "glompo_hpc", str(job)), cwd=tmp_path, env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_status_line(tmp_path / "run.log", proc, timeout=120)
        ranks = rank_processes(proc)
        assert len(ranks) == 3, ranks
        for rank in ranks:
            os.killpg(os.getpgid(rank.pid), signal.SIGTERM)
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-6000:]
    state = summary(tmp_path)
    assert state["solution"]["exit_reason"] == "interrupted by SIGTERM"
    assert state["counters"]["optimizers"]["crashed"] == 0, out[-6000:]
    assert state["counters"]["optimizers"]["by_end"] == {"unfinished": 2}, out[-6000:]


def test_ctrl_z_is_passed_on_to_mpirun_and_a_ctrl_c_then_still_ends_the_job(tmp_path, terminal):
    """Ctrl-Z reaches rank 0 alone; stopped, it would leave the terminal to a group the shell does not
    know of. It hands the terminal back and passes the SIGTSTP to mpirun (which stops every rank, as
    without rank 0 holding the terminal), so the next Ctrl-C reaches mpirun and ends the job."""
    job = write_job(tmp_path, "MaxSeconds(session_max=600)")
    terminal.type(command(job))
    wait_for_evaluations(tmp_path / "run.log", terminal)
    leader = rank_0(terminal.pid)
    launcher = leader.parent()
    assert terminal.foreground_group() == leader.pid
    os.write(terminal.master, b"\x1a")  # ^Z
    terminal.wait_for(rb"Ctrl-Z: passed on to the MPI launcher")
    deadline = time.monotonic() + 60
    while leader.status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)  # until mpirun has stopped rank 0 (an event: its state)
    assert leader.status() == psutil.STATUS_STOPPED
    assert terminal.foreground_group() == os.getpgid(launcher.pid)
    terminal.ctrl_c()
    assert terminal.exit_status() != 0
    assert terminal.foreground_group() == terminal.pid
    terminal.type("echo STILL-$((40+2))")
    terminal.wait_for(rb"STILL-42")
