"""Faults during a run: hung children, slow stops, and signals to the manager's process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from support.optimizers import SleepyTask, WalkOptimizer

from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxOptsStarted, MaxSeconds
from glompo_hpc.generators import SinglePointGenerator
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import MinFuncCalls

BOUNDS = [(-5.0, 5.0)] * 2
HANG_AT = SinglePointGenerator(BOUNDS, [4.0, 0.0])  # SleepyTask(hang_above=3) hangs on its first call


def hung_run(tmp_path, backend, **kwargs) -> GloMPOManager:
    return GloMPOManager.new_manager(SleepyTask(hang_above=3.0), BOUNDS, CycleSelector((WalkOptimizer, {"iters": 5})),
                                     working_dir=tmp_path, max_jobs=1, backend=backend, x0_generator=HANG_AT,
                                     **kwargs)


def test_hung_process_child_is_terminated_and_replaced(tmp_path):
    m = hung_run(tmp_path, "processes", force_terminations_after=0.5, exit_conditions=MaxOptsStarted(3))
    t0 = time.monotonic()
    m.start_manager()
    assert time.monotonic() - t0 < 8
    ends = [r.end_cond for r in m.opt_log.records.values()]
    assert ends.count("Forced GloMPO Termination") == 3 and m.o_counter == 3


def test_hung_thread_child_is_abandoned_and_the_run_ends(tmp_path):
    m = hung_run(tmp_path, "threads", force_terminations_after=0.5, exit_conditions=MaxOptsStarted(2))
    t0 = time.monotonic()
    m.start_manager()
    assert time.monotonic() - t0 < 8
    assert all("thread abandoned" in r.end_cond for r in m.opt_log.records.values())


def test_without_forced_terminations_end_timeout_bounds_the_shutdown(tmp_path):
    m = hung_run(tmp_path, "processes", end_timeout=0.5, exit_conditions=MaxSeconds(session_max=0.5))
    t0 = time.monotonic()
    m.start_manager()
    assert time.monotonic() - t0 < 8
    assert m.opt_log.records[1].end_cond == "Forced GloMPO Termination"
    assert not m.allow_forced_terminations


def test_thread_end_timeout_leaves_a_hung_thread_behind(tmp_path):
    m = hung_run(tmp_path, "threads", end_timeout=0.3, exit_conditions=MaxSeconds(session_max=0.3))
    t0 = time.monotonic()
    m.start_manager()
    assert time.monotonic() - t0 < 5
    assert "thread abandoned" in m.opt_log.records[1].end_cond


@pytest.mark.parametrize("aggressive", [False, True])
def test_aggressive_stop_terminates_a_stopped_process_at_once(tmp_path, aggressive):
    # each evaluation takes 3 s: a polite stop waits for the evaluation, an aggressive one does not
    m = GloMPOManager.new_manager(SleepyTask(delay=3.0), BOUNDS,
                                  CycleSelector((WalkOptimizer, {"iters": 5, "batch": 1})),
                                  working_dir=tmp_path, max_jobs=2, backend="processes",
                                  stoppers=MinFuncCalls(1), stopcheck_interval=1, aggressive_stop=aggressive,
                                  exit_conditions=MaxOptsStarted(3), end_timeout=10)
    m.start_manager()
    stopped = [r for i, r in m.opt_log.records.items() if i in m.stopped_opts]
    assert stopped
    durations = [r.t_end - m.stopped_opts[r.opt_id] for r in stopped]
    if aggressive:
        assert max(durations) < 2.0
    else:
        assert max(durations) > 1.0


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from support.optimizers import SleepyTask, WalkOptimizer
    from glompo_hpc.core.manager import GloMPOManager
    from glompo_hpc.selectors import CycleSelector
    from glompo_hpc.exit_conditions import MaxFuncCalls
    m = GloMPOManager.new_manager(SleepyTask(delay=0.01), [(-5, 5)] * 2, CycleSelector((WalkOptimizer, {{"iters": 10**6}})),
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
    script = SCRIPT.format(tests=str(Path(__file__).parent), wd=str(tmp_path), backend=backend)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 5, err
    assert proc.returncode == 1, err
    assert f"interrupted {sig.name}" in out
    summary = yaml.safe_load((tmp_path / "glompo_manager_log.yml").read_text())
    assert summary["solution"]["exit_reason"] == f"interrupted by {sig.name}"
    assert summary["counters"]["function_evaluations"] == int(out.split()[-1]) > 0
    if backend == "processes":  # no child process outlives the manager
        leftover = subprocess.run(["pgrep", "-f", "glompo-opt"], capture_output=True, text=True).stdout
        assert str(proc.pid) not in leftover
