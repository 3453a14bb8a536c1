"""glompo_log.h5: contents against the run, flush protocol (live read, SIGKILL), resume rollback, I/O errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.optimizers import CrashingOptimizer, PidTask, SleepyTask, WalkOptimizer, sphere

from glompo_hpc import cli
from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.core.optlog import OptimizerLog, OptimizerRecord
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.outputs.hdf5_log import HDF5LogWriter
from glompo_hpc.outputs.read_log import read_log
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import BestUnmoving

BOUNDS = [(-5.0, 5.0)] * 3
TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """Plots are tested in test_outputs_plots; here they only cost time."""
    monkeypatch.setattr("glompo_hpc.outputs.plots.write_plots", lambda source, directory: [])


def make(tmp_path, task=sphere, **kwargs) -> GloMPOManager:
    kwargs.setdefault("max_jobs", 2)
    kwargs.setdefault("backend", "threads")
    kwargs.setdefault("exit_conditions", MaxFuncCalls(1500))
    kwargs.setdefault("summary_files", 3)
    selector = kwargs.pop("selector", CycleSelector((WalkOptimizer, {"iters": 60})))
    return GloMPOManager.new_manager(task, BOUNDS, selector, working_dir=tmp_path, **kwargs)


def check_against_run(path: Path, m: GloMPOManager) -> None:
    """Row counts equal f_counter, call ids 1..f_counter once each, the best in the file is the result."""
    log = read_log(path, columns=("call_id", "x", "fx"))
    ids = np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))
    assert log.n_rows == m.f_counter and np.array_equal(ids, np.arange(1, m.f_counter + 1))
    best = min(log.optimizers, key=lambda o: o.best_fx)
    i = int(np.argmin(best.data["fx"]))
    assert best.best_fx == m.result.fx == best.data["fx"][i] and np.array_equal(best.data["x"][i], m.result.x)
    assert best.opt_id == m.result.origin["opt_id"] == log.attrs["best_opt_id"]
    for o in log.optimizers:
        assert o.rows == m.opt_log.n_evals(o.opt_id) == len(o.data["fx"]) == len(o.data["x"])
        record = m.opt_log.records[o.opt_id]
        assert (o.opt_type, o.end_cond, o.t_end, o.slots) == (record.opt_type, record.end_cond, record.t_end,
                                                              record.slots)


# ------------------------------------------------------------------ contents

@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_log_holds_every_evaluation_of_the_run(tmp_path, backend):
    selector = CycleSelector((WalkOptimizer, {"iters": 60}), (CrashingOptimizer, {"crash_after": 3}))
    m = make(tmp_path, task=PidTask(), backend=backend, is_log_detailed=True, selector=selector,
             stoppers=BestUnmoving(40, 0.01))
    m.start_manager()
    path = tmp_path / "glompo_log.h5"
    check_against_run(path, m)
    log = read_log(path, columns=("extras", "messages"))
    a = log.attrs
    assert (a["f_counter"], a["o_counter"], a["state"], a["exit_reason"]) == (m.f_counter, m.o_counter, "finished",
                                                                              "MaxFuncCalls(fmax=1500)")
    assert a["complete"] is True and a["n_parms"] == 3 and np.array_equal(a["bounds"], BOUNDS)
    assert a["glompo_hpc_version"] and a["hdf5_version"] and a["user"] and a["host"] and "PidTask" in a["task"]
    crashed = [o for o in log.optimizers if o.category == "crashed"]
    assert crashed and "deliberate crash" in crashed[0].data["messages"][0]
    pids = np.concatenate([o.data["extras"]["pid"] for o in log.optimizers])
    assert pids.dtype == np.int64 and len(pids) == m.f_counter and set(pids) <= {os.getpid()} | set(pids)
    assert {t for o in log.optimizers for t in o.data["extras"]["tag"]} == {"tag"}
    with h5py.File(path, "r") as f:  # plain h5py opens the finished file: chunked, resizable, compressed
        ds = f["optimizer_1/x"]
        assert ds.chunks is not None and ds.maxshape == (None, 3) and ds.compression == "gzip"


class NamelessExtras:
    def __call__(self, x):
        return sphere(x)

    def detailed_call(self, x):
        return sphere(x), {"a": 1}, None


def test_extras_without_headers_are_kept_as_text(tmp_path):
    m = make(tmp_path, task=NamelessExtras(), is_log_detailed=True, exit_conditions=MaxFuncCalls(200))
    m.start_manager()
    log = read_log(tmp_path / "glompo_log.h5", columns=("extras",))
    text = log.optimizers[0].data["extras"]
    assert log.attrs["extras_layout"] == "text" and text.shape[1] == 2 and text[0].tolist() == ["{'a': 1}", ""]


# ------------------------------------------------------------------ flush protocol

RUN_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from support.optimizers import SleepyTask, WalkOptimizer
from glompo_hpc import CycleSelector, GloMPOManager, MaxFuncCalls
m = GloMPOManager.new_manager(SleepyTask(delay=0.0003), [(-5.0, 5.0)] * 3,
                              CycleSelector((WalkOptimizer, {{"iters": 150, "batch": 8}})), working_dir={wd!r},
                              max_jobs=2, backend="threads", exit_conditions=MaxFuncCalls(10 ** 9), summary_files=3,
                              split_printstreams=False)
m.start_manager()
"""


def wait_for_rows(path: Path, minimum: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            n = read_log(path).n_rows
            if n >= minimum:
                return n
        time.sleep(0.1)
    raise AssertionError(f"the log did not reach {minimum} rows in {timeout} s")


def test_live_read_from_another_process_then_sigkill_leaves_every_flushed_evaluation(tmp_path, capsys):
    wd = tmp_path / "run"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RUN_SCRIPT.format(tests=str(TESTS), wd=str(wd))))
    env = {**os.environ, "GLOMPO_HPC_LOG_FLUSH_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = wd / "glompo_log.h5"
    try:
        seen = [wait_for_rows(path, 1)]
        for _ in range(6):  # read while the run writes: every read is a consistent, growing prefix
            wait_for_rows(path, seen[-1] + 1, timeout=60)  # the next flush has landed
            log = read_log(path, columns=("call_id",))
            ids = np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))
            assert np.array_equal(ids, np.arange(1, len(ids) + 1)) and log.attrs["state"] == "running"
            seen.append(len(ids))
        assert seen == sorted(seen) and seen[-1] > seen[0]
        assert cli.main(["summary", str(wd)]) == 0 and "running (log flushed" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(path, "r") as f:  # opens with plain h5py, no recovery step
        groups = [g for name, g in f.items() if name.startswith("optimizer_")]
        for g in groups:  # no half-written group: the rows attribute and every dataset agree
            rows = int(g.attrs["rows"])
            assert len(g["call_id"]) == len(g["x"]) == len(g["fx"]) == rows
        ids = np.sort(np.concatenate([g["call_id"][:] for g in groups]))
        assert len(ids) >= seen[-1] and np.array_equal(ids, np.arange(1, len(ids) + 1))
        assert f.attrs["f_counter"] >= len(ids) and f.attrs["state"] == "running"
    assert cli.main(["summary", str(wd)]) == 0 and "killed?" in capsys.readouterr().out


def test_pending_rows_trigger_a_flush_and_rows_per_optimizer_reports_the_file(tmp_path):
    path = tmp_path / "log.h5"
    w = HDF5LogWriter.create(path, 2, flush_seconds=None, flush_rows=100)
    w.add_optimizer(OptimizerRecord(1, "Walk", 0.0))
    w.append(1, np.arange(1, 51), np.zeros((50, 2)), np.ones(50), None)
    assert w.rows_per_optimizer() == {} and w.flushes == 0  # below flush_rows: still in memory
    w.append(1, np.arange(51, 101), np.zeros((50, 2)), np.ones(50), None)
    assert w.flushes == 1 and w.rows_per_optimizer() == {1: 100}
    assert w.close() == {"path": str(path), "complete": True, "problem": None, "rows": 100, "flushes": 2}
    assert read_log(path).optimizers[0].rows == 100


# ------------------------------------------------------------------ resume

def write_log(path: Path, rows: dict[int, int]) -> None:
    w = HDF5LogWriter.create(path, 2, headers={"k": "int64", "s": "str"}, flush_seconds=None)
    call = 1
    for opt_id, n in rows.items():
        w.add_optimizer(OptimizerRecord(opt_id, "Walk", 0.0))
        fx = np.linspace(10, 1, n)
        fx[n // 2] = -1.0  # the best sits in the middle: a rollback before it changes the best
        extras = np.array([[i, f"s{i}"] for i in range(n)], dtype=object)
        w.append(opt_id, np.arange(call, call + n), np.zeros((n, 2)), fx, extras)
        call += n
    w.close()


def test_open_for_resume_truncates_to_the_checkpoint_and_drops_unknown_groups(tmp_path):
    path = tmp_path / "glompo_log.h5"
    write_log(path, {1: 40, 2: 30, 3: 20})
    with h5py.File(path, "a") as f:  # what a flush cut short by an error can leave: a group without rows
        f.create_group("optimizer_9").create_dataset("fx", data=[1.0])
    w = HDF5LogWriter.open_for_resume(path, {1: 10, 2: 30}, flush_seconds=None)
    assert w.rows_per_optimizer() == {1: 10, 2: 30} and w.problem is None
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["optimizer_1", "optimizer_2"]
        g = f["optimizer_1"]
        assert [len(g[c]) for c in ("call_id", "x", "fx", "extras/k", "extras/s")] == [10] * 5
        assert g.attrs["rows"] == 10 and g.attrs["best_fx"] == g["fx"][9] and g.attrs["best_call_id"] == 10
        assert f["optimizer_2"].attrs["best_fx"] == -1.0
    w.adopt([OptimizerRecord(1, "Walk", 0.0, t_end=5.0, end_cond="GloMPO Termination"),
             OptimizerRecord(2, "Walk", 0.0), OptimizerRecord(4, "Walk", 1.0)])
    w.append(1, np.arange(100, 103), np.ones((3, 2)), np.array([0.5, 7, 8]), np.array([[1, "a"]] * 3, dtype=object))
    w.append(4, np.arange(103, 105), np.ones((2, 2)), np.array([3.0, 2.0]), None)
    w.append(4, np.arange(105, 106), np.ones((1, 2)), np.array([1.0]), np.array([[7, "z"]], dtype=object))
    assert w.close()["complete"] is True
    log = read_log(path, columns=("call_id", "extras"))
    by_id = {o.opt_id: o for o in log.optimizers}
    assert by_id[1].rows == 13 and by_id[1].end_cond == "GloMPO Termination" and by_id[1].best_fx == 0.5
    assert list(by_id[1].data["extras"]["s"][-3:]) == ["a"] * 3 and by_id[4].rows == 3
    k4, s4 = by_id[4].data["extras"]["k"], by_id[4].data["extras"]["s"]
    assert list(k4) == [np.iinfo(np.int64).min] * 2 + [7] and list(s4) == ["", "", "z"]  # rows without extras
    assert log.attrs["sessions"] == 2


def test_resume_asking_for_rows_the_file_lacks_marks_the_log_incomplete(tmp_path):
    path = tmp_path / "glompo_log.h5"
    write_log(path, {1: 5})
    w = HDF5LogWriter.open_for_resume(path, {1: 8, 2: 3}, flush_seconds=None)
    assert "3 of 8 rows missing" in w.problem and "optimizer 2: 3 rows missing" in w.problem
    w.close()
    assert read_log(path).attrs["complete"] is False


def test_resumed_run_appends_to_its_log_and_rows_match_the_state(tmp_path):
    # a task slow enough that the interval checkpoint lands mid-run, with rows written after it
    first = make(tmp_path, task=SleepyTask(delay=0.001), exit_conditions=MaxFuncCalls(700),
                 checkpoint_control=CheckpointingControl(checkpoint_eval_interval=300, naming_format="ck_%(count)"))
    first.start_manager()
    resumed = GloMPOManager.load_manager(tmp_path / "checkpoints" / "ck_000.tar", exit_conditions=MaxFuncCalls(1200))
    assert resumed.f_counter < first.f_counter  # rows written after the checkpoint must go
    loaded = resumed.write_summary_file(tmp_path / "loaded")  # works before the resumed session runs
    assert f"function_evaluations: {resumed.f_counter}" in loaded.read_text()
    resumed.start_manager()
    check_against_run(tmp_path / "glompo_log.h5", resumed)
    attrs = read_log(tmp_path / "glompo_log.h5").attrs
    assert attrs["sessions"] == 2 and attrs["complete"] is True and attrs["f_counter"] == resumed.f_counter


# ------------------------------------------------------------------ errors never stop the run

def test_a_write_error_disables_the_log_and_is_reported(tmp_path, caplog):
    path = tmp_path / "glompo_log.h5"
    w = HDF5LogWriter.create(path, 1, flush_seconds=None)
    w.add_optimizer(OptimizerRecord(1, "Walk", 0.0))
    path.unlink()
    path.mkdir()  # the file is gone and cannot come back: every open fails
    w.append(1, np.array([1]), np.zeros((1, 1)), np.ones(1), None)
    assert w.flush() is False and w.failed
    w.append(1, np.array([2]), np.zeros((1, 1)), np.ones(1), None)  # ignored, no exception
    status = w.close()
    assert status["complete"] is False and "disabled" in caplog.text and "IsADirectoryError" in status["problem"]


def test_a_log_that_cannot_be_opened_leaves_the_run_and_the_summary_intact(tmp_path, caplog):
    m = make(tmp_path, exit_conditions=MaxFuncCalls(300))
    (tmp_path / "glompo_log.h5").mkdir()  # after set-up, so the run starts and meets it
    result = m.start_manager()
    assert m.f_counter >= 300 and result.fx < np.inf
    assert "could not be opened" in caplog.text
    summary = (tmp_path / "glompo_manager_log.yml").read_text()
    assert "complete: false" in summary and "could not be opened" in summary


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2 MiB tmpfs: a disk that fills up mid-run. Needs root (mount)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full variant runs only where it can")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_mid_run_disables_the_log_keeps_what_it_holds_and_the_run_goes_on(tmp_path, tiny_fs, caplog,
                                                                                     monkeypatch):
    monkeypatch.setattr("glompo_hpc.outputs.hdf5_log.FLUSH_ROWS", 2000)
    selector = CycleSelector((WalkOptimizer, {"iters": 2000, "batch": 50}))
    m = make(tiny_fs, selector=selector, exit_conditions=MaxFuncCalls(40_000), split_printstreams=False)
    m.start_manager()
    assert m.f_counter >= 40_000 and m.exit_reason == "MaxFuncCalls(fmax=40000)"
    assert m.opt_log.sink_status["complete"] is False and "nearly full" in caplog.text and "disabled" in caplog.text
    log = read_log(tiny_fs / "glompo_log.h5", columns=("call_id",))  # what was flushed is intact
    ids = np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))
    assert 0 < len(ids) < m.f_counter and np.array_equal(ids, np.arange(1, len(ids) + 1))
    assert log.attrs["complete"] is False and "nearly full" in log.attrs["problem"]
    assert "complete: false" in (tiny_fs / "glompo_manager_log.yml").read_text()
