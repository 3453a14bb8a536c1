"""Faults during a run: hung children, slow stops, and signals to the manager's process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from support.optimizers import MarkedTask, SleepyTask, WalkOptimizer

from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxOptsStarted
from glompo_hpc.generators import SinglePointGenerator
from glompo_hpc.selectors import CycleSelector

BOUNDS = [(-5.0, 5.0)] * 2
HANG_AT = SinglePointGenerator(BOUNDS, [4.0, 0.0])  # SleepyTask(hang_above=3) hangs on its first call


def hung_run(tmp_path, backend, **kwargs) -> GloMPOManager:
    return GloMPOManager.new_manager(SleepyTask(hang_above=3.0), BOUNDS, CycleSelector((WalkOptimizer, {"iters": 5})),
                                     working_dir=tmp_path, max_jobs=1, backend=backend, x0_generator=HANG_AT,
                                     **kwargs)


def test_hung_process_child_is_terminated_and_replaced(tmp_path):
    # one slot: optimizer n+1 starts only once optimizer n was terminated, so the first three always
    # are (the fourth, started as the run ends, may be stopped by the shut-down first)
    m = hung_run(tmp_path, "processes", force_terminations_after=0.5, exit_conditions=MaxOptsStarted(4))
    m.start_manager()  # the task hangs for an hour: the run ends only if the child is ended
    ends = [m.opt_log.records[i].end_cond for i in (1, 2, 3)]
    assert ends.count("Forced GloMPO Termination") == 3 and m.o_counter == 4


def test_hung_thread_child_is_abandoned_and_the_run_ends(tmp_path):
    # as above: the first two are always abandoned, the third may be stopped by the shut-down first
    m = hung_run(tmp_path, "threads", force_terminations_after=0.5, exit_conditions=MaxOptsStarted(3))
    m.start_manager()  # the task hangs for an hour: the run ends only if the child is ended
    assert all("thread abandoned" in m.opt_log.records[i].end_cond for i in (1, 2)) and m.o_counter == 3


def run_ended_while_hanging(tmp_path, backend, **kwargs) -> GloMPOManager:
    """A run whose only optimizer hangs in its first evaluation, ended (EXIT file) once it surely
    hangs there; a hung thread is let go when the test ends."""
    marks, gate = tmp_path / "marks", tmp_path / "gate"
    marks.mkdir()
    m = GloMPOManager.new_manager(MarkedTask(str(marks), str(gate), gate_from=1), BOUNDS,
                                  CycleSelector((WalkOptimizer, {"iters": 5})), working_dir=tmp_path, max_jobs=1,
                                  backend=backend, exit_conditions=MaxOptsStarted(10), **kwargs)

    def end_the_run_once_hanging():
        wait_for(lambda: MarkedTask.evaluations(marks)[0], "the first evaluation")
        (tmp_path / "EXIT").touch()

    ender = threading.Thread(target=end_the_run_once_hanging)
    ender.start()
    try:
        m.start_manager()  # the run ends only if end_timeout bounds the shut-down
    finally:
        gate.touch()
        ender.join(60)
    return m


def test_without_forced_terminations_end_timeout_bounds_the_shutdown(tmp_path):
    m = run_ended_while_hanging(tmp_path, "processes", end_timeout=0.5)
    assert m.opt_log.records[1].end_cond == "Forced GloMPO Termination"
    assert not m.allow_forced_terminations


def test_thread_end_timeout_leaves_a_hung_thread_behind(tmp_path):
    m = run_ended_while_hanging(tmp_path, "threads", end_timeout=0.3)
    assert "thread abandoned" in m.opt_log.records[1].end_cond


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; the bound only turns a hang into a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("aggressive", [False, True])
def test_aggressive_stop_terminates_a_stopped_process_at_once(tmp_path, aggressive):
    # optimizer 1's third evaluation waits for the gate file, and a STOP_1 intervention comes while it
    # waits: a polite stop lets that evaluation finish, an aggressive one terminates the process first
    marks, gate, stop_file = tmp_path / "marks", tmp_path / "gate", tmp_path / "STOP_1"
    marks.mkdir()
    m = GloMPOManager.new_manager(MarkedTask(str(marks), str(gate), gate_from=3), BOUNDS,
                                  CycleSelector((WalkOptimizer, {"iters": 5, "batch": 1})),
                                  working_dir=tmp_path, max_jobs=1, backend="processes", stoppers=False,
                                  aggressive_stop=aggressive, exit_conditions=MaxOptsStarted(2), end_timeout=60)
    stopped = {}

    def stop_optimizer_1_in_its_evaluation():
        try:
            wait_for(lambda: any(n.endswith("-3") for n in MarkedTask.evaluations(marks)[0]),
                     "optimizer 1's third evaluation")
            (stopped["pid"],) = {int(n.split("-")[0]) for n in MarkedTask.evaluations(marks)[0]}
            stop_file.touch()
            wait_for(lambda: not stop_file.exists(), "the manager to act on STOP_1")
            if aggressive:
                wait_for(lambda: not pid_alive(stopped["pid"]), "the stopped process to be terminated")
        finally:
            gate.touch()

    watcher = threading.Thread(target=stop_optimizer_1_in_its_evaluation)
    watcher.start()
    m.start_manager()
    watcher.join(60)
    started, finished = MarkedTask.evaluations(marks)
    cut_off = any(n.startswith(f"{stopped['pid']}-") and n.endswith("-3") for n in started - finished)
    assert cut_off == aggressive  # aggressive: terminated mid-evaluation; polite: the evaluation finished
    assert "STOP_1 intervention file" in m.opt_log.records[1].messages[-1]


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from support.optimizers import MarkedTask, WalkOptimizer
    from glompo_hpc.core.manager import GloMPOManager
    from glompo_hpc.selectors import CycleSelector
    from glompo_hpc.exit_conditions import MaxFuncCalls
    m = GloMPOManager.new_manager(MarkedTask({marks!r}, marked=1, delay=0.01), [(-5, 5)] * 2, CycleSelector((WalkOptimizer, {{"iters": 10**6}})),
                                  working_dir={wd!r}, max_jobs=2, backend={backend!r}, summary_files=1,
                                  exit_conditions=MaxFuncCalls(10**9))
    print("started", flush=True)
    r = m.start_manager()
    print("interrupted", m.interrupted, r.fx, m.f_counter, flush=True)
    sys.exit(1 if m.interrupted else 0)
""")


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_children_writes_outputs_and_returns(tmp_path, backend, sig):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = SCRIPT.format(tests=str(Path(__file__).parent), wd=str(tmp_path), backend=backend, marks=str(marks))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "started"
    wait_for(lambda: MarkedTask.evaluations(marks)[1], "a first evaluation")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert f"interrupted {sig.name}" in out
    summary = yaml.safe_load((tmp_path / "glompo_manager_log.yml").read_text())
    assert summary["solution"]["exit_reason"] == f"interrupted by {sig.name}"
    assert summary["counters"]["function_evaluations"] == int(out.split()[-1]) > 0
    if backend == "processes":  # no child process outlives the manager
        leftover = subprocess.run(["pgrep", "-f", "glompo-opt"], capture_output=True, text=True).stdout
        assert str(proc.pid) not in leftover
