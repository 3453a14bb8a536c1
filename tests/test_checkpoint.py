"""Checkpoints: what they hold, that they resume exactly, and that damaged ones are refused."""

from __future__ import annotations

import json
import logging
import tarfile
import threading
import time

import numpy as np
import pytest
from support.optimizers import SleepyTask, WalkOptimizer, sphere

from glompo_hpc import (CheckpointingControl, CMAOptimizer, CycleSelector, GloMPOManager, MaxFuncCalls,
                        MaxOptsStarted, RandomGenerator)
from glompo_hpc.core.checkpoint_file import latest_checkpoint, list_checkpoints, open_checkpoint
from glompo_hpc.errors import CheckpointError, ConfigurationError

BOUNDS = [(-5.0, 5.0)] * 3


def control(**kwargs) -> CheckpointingControl:
    kwargs.setdefault("naming_format", "ck_%(count)")
    return CheckpointingControl(**kwargs)


def make(tmp_path, task=sphere, selector=None, **kwargs) -> GloMPOManager:
    kwargs.setdefault("max_jobs", 2)
    kwargs.setdefault("backend", "threads")
    kwargs.setdefault("exit_conditions", MaxFuncCalls(1200))
    selector = selector or CycleSelector((WalkOptimizer, {"iters": 40}))
    return GloMPOManager.new_manager(task, BOUNDS, selector, working_dir=tmp_path, **kwargs)


def call_ids(manager: GloMPOManager) -> np.ndarray:
    return np.sort(np.concatenate([manager.opt_log.history(i, "call_id") for i in manager.opt_log.opt_ids]))


# ------------------------------------------------------------------ the file

def test_checkpoint_file_is_verified_and_holds_the_documented_members(tmp_path):
    m = make(tmp_path, checkpoint_control=control())
    path = m.checkpoint()
    assert path == tmp_path / "checkpoints" / "ck_000.tar" and path.stat().st_mode & 0o002 == 0
    with open_checkpoint(path) as c:
        assert c.manifest["format_version"] == 1 and c.manifest["task"] == "pickle"
        assert set(c.manifest["members"]) == {"manager.pkl", "task.pkl"}
    assert "ck_000.tar" in m.checkpoint_history


def _rewrite(path, mutate):
    """Rewrite a checkpoint archive after ``mutate(name, data) -> data``."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            data = mutate(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            import io
            tar.addfile(info, io.BytesIO(data))


def test_damaged_checkpoints_give_clear_errors_naming_the_file(tmp_path):
    m = make(tmp_path, checkpoint_control=control())
    good = m.checkpoint()
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(good.read_bytes())
    _rewrite(corrupt, lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == "manager.pkl" else d)
    with pytest.raises(CheckpointError, match=r"corrupt\.tar.*'manager.pkl' fails its checksum"):
        GloMPOManager.load_manager(corrupt)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[:700])
    with pytest.raises(CheckpointError, match=r"truncated\.tar.*truncated"):
        GloMPOManager.load_manager(truncated)
    future = tmp_path / "future.tar"
    future.write_bytes(good.read_bytes())
    _rewrite(future, lambda n, d: json.dumps({**json.loads(d), "format_version": 99}).encode()
             if n == "manifest.json" else d)
    with pytest.raises(CheckpointError, match="format version 99"):
        GloMPOManager.load_manager(future)
    with pytest.raises(CheckpointError, match="does not exist"):
        GloMPOManager.load_manager(tmp_path / "nothing.tar")


def test_latest_checkpoint_skips_a_corrupt_newest_one(tmp_path, caplog):
    m = make(tmp_path, checkpoint_control=control())
    first = m.checkpoint()
    time.sleep(0.01)
    second = m.checkpoint()
    assert latest_checkpoint(first.parent) == second
    second.write_bytes(second.read_bytes()[:300])
    with caplog.at_level(logging.ERROR, "glompo_hpc.checkpoint"):
        assert latest_checkpoint(first.parent) == first
    assert "ck_001.tar" in caplog.text and "truncated" in caplog.text


def test_a_resumed_run_removes_what_killed_checkpoints_left_and_nothing_else(tmp_path):
    m = make(tmp_path, checkpoint_control=control())
    first = m.checkpoint()
    leftovers = [first.parent / ".staging_ck_007", first.parent / ".ck_007.tar.0123abcd.tmp"]
    (leftovers[0] / "optimizers").mkdir(parents=True)
    (leftovers[0] / "optimizers" / "0001.pkl").write_bytes(b"half")
    leftovers[1].write_bytes(b"half an archive")
    (first.parent / "notes.txt").write_text("mine")
    resumed = GloMPOManager.load_manager(first, exit_conditions=MaxFuncCalls(300))
    resumed.start_manager()
    assert not any(p.exists() for p in leftovers)
    assert (first.parent / "notes.txt").read_text() == "mine" and latest_checkpoint(first.parent) is not None
    assert first.exists()


def test_keep_past_deletes_old_ones_only_after_a_new_one_exists(tmp_path):
    m = make(tmp_path, checkpoint_control=control(keep_past=1))
    for _ in range(4):
        m.checkpoint()
    names = sorted(p.name for p in list_checkpoints(tmp_path / "checkpoints"))
    assert names == ["ck_002.tar", "ck_003.tar"]
    assert {"ck_000.tar", "ck_003.tar"} <= m.checkpoint_history


# ------------------------------------------------------------------ resuming

@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_periodic_checkpoint_mid_run_resumes_with_every_evaluation_once(tmp_path, backend):
    sel = CycleSelector((CMAOptimizer, {"sigma0": 1.0, "popsize": 8}))
    m = make(tmp_path, task=SleepyTask(delay=0.0005), selector=sel, backend=backend,
             checkpoint_control=control(checkpoint_eval_interval=400), exit_conditions=MaxFuncCalls(1000))
    m.start_manager()
    assert len(m.checkpoint_history) >= 2
    path = tmp_path / "checkpoints" / "ck_001.tar"
    r = GloMPOManager.load_manager(path, exit_conditions=MaxFuncCalls(2000))
    at_checkpoint = r.f_counter
    assert 800 <= at_checkpoint < m.f_counter and r.t_used > 0 and len(r.dt_ends) == 1
    restored = dict(r._restored)
    assert restored and all(opt.is_restart for opt in restored.values())
    assert all(opt.es.countiter > 0 for opt in restored.values())  # CMA continues its distribution
    r.start_manager()
    assert r.f_counter >= 2000 and len(r.dt_starts) == 2 and r.t_used > m.t_used / 2
    assert np.array_equal(call_ids(r), np.arange(1, r.f_counter + 1))
    for opt_id in restored:  # the same optimizers went on evaluating after the resume
        ids = r.opt_log.history(opt_id, "call_id")
        assert ids.max() > at_checkpoint


def _seeded_run(tmp_path, budget, cc=None):
    sel = CycleSelector((CMAOptimizer, {"sigma0": 1.0, "popsize": 6, "seed": 3}))
    return GloMPOManager.new_manager(sphere, BOUNDS, sel, working_dir=tmp_path, max_jobs=1, backend="threads",
                                     x0_generator=RandomGenerator(BOUNDS, seed=7), checkpoint_control=cc,
                                     exit_conditions=MaxFuncCalls(budget), overwrite_existing=True)


def test_resume_is_deterministic_on_one_thread_slot(tmp_path):
    straight = _seeded_run(tmp_path / "a", 900)
    straight.start_manager()
    # at_conv: the checkpoint exists whatever the load (an interval one may be skipped when a burst of
    # reports crosses both the interval and the budget in one loop turn)
    broken = _seeded_run(tmp_path / "b", 500, control(checkpoint_at_conv=True))
    broken.start_manager()
    resumed = GloMPOManager.load_manager(tmp_path / "b" / "checkpoints" / "ck_000.tar",
                                         exit_conditions=MaxFuncCalls(900))
    resumed.start_manager()

    def fx_by_call(m):
        ids = np.concatenate([m.opt_log.history(i, "call_id") for i in m.opt_log.opt_ids])
        fx = np.concatenate([m.opt_log.history(i, "fx") for i in m.opt_log.opt_ids])
        return fx[np.argsort(ids)][:890]

    assert np.array_equal(fx_by_call(straight), fx_by_call(resumed))


@pytest.mark.parametrize("when", ["checkpoint_at_init", "checkpoint_at_conv"])
def test_checkpoints_at_init_and_at_convergence_load_and_run(tmp_path, when):
    m = make(tmp_path, checkpoint_control=control(**{when: True}))
    m.start_manager()
    (path,) = list_checkpoints(tmp_path / "checkpoints")
    r = GloMPOManager.load_manager(path, exit_conditions=MaxFuncCalls(2000), working_dir=tmp_path / "more")
    assert (r.f_counter == 0) == (when == "checkpoint_at_init")
    r.start_manager()
    assert r.f_counter >= 2000 and np.array_equal(call_ids(r), np.arange(1, r.f_counter + 1))


def test_chkpt_stop_and_exit_intervention_files(tmp_path):
    m = make(tmp_path, task=SleepyTask(delay=0.002), exit_conditions=MaxFuncCalls(10 ** 7),
             selector=CycleSelector((WalkOptimizer, {"iters": 10 ** 6})))

    def wait_until_taken(name):  # the manager deletes an intervention file once it has acted on it
        path = tmp_path / name
        path.touch()
        deadline = time.monotonic() + 60
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def drop_files():
        wait_until_taken("CHKPT")
        wait_until_taken("STOP_1")
        (tmp_path / "EXIT").touch()

    dropper = threading.Thread(target=drop_files, daemon=True)
    dropper.start()
    m.start_manager()
    dropper.join(60)
    assert m.exit_reason == "EXIT intervention file"
    assert 1 in m.stopped_opts and "STOP_1 intervention file" in m.opt_log.records[1].messages[-1]
    assert not any((tmp_path / n).exists() for n in ("CHKPT", "STOP_1", "EXIT"))
    (path,) = list_checkpoints(tmp_path / "checkpoints")  # default settings when none were configured
    r = GloMPOManager.load_manager(path, exit_conditions=MaxFuncCalls(300 + len(call_ids(m)) // 10))
    r.start_manager()
    assert np.array_equal(call_ids(r), np.arange(1, r.f_counter + 1))


def test_a_child_busy_past_pause_timeout_is_left_out_and_recorded(tmp_path):
    task = SleepyTask(delay=0.0, hang_above=4.0, hang=3.0)
    from glompo_hpc import SinglePointGenerator
    m = make(tmp_path, task=task, max_jobs=1, x0_generator=SinglePointGenerator(BOUNDS, [4.5, 0, 0]),
             exit_conditions=MaxOptsStarted(2), checkpoint_control=control(pause_timeout=0.3),
             force_terminations_after=2.0)
    # the checkpoint is asked for while the only child is inside its 3 s evaluation
    threading.Timer(0.5, lambda: (tmp_path / "CHKPT").touch()).start()
    m.start_manager()
    (path,) = list_checkpoints(tmp_path / "checkpoints")
    r = GloMPOManager.load_manager(path)
    assert not r._restored
    assert r.opt_log.records[1].end_cond == "Not resumed: no state in the checkpoint"


# ------------------------------------------------------------------ the task and overrides

class LockedTask:
    """A task that cannot be pickled (it holds a live generator, which dill refuses)."""

    def __init__(self, offset=0.0):
        self.offset = offset
        self.stream = (i for i in range(3))

    def __call__(self, x):
        return sphere(x) + self.offset


class SavableLockedTask(LockedTask):
    def checkpoint_save(self, path):
        (path / "offset.txt").write_text(str(self.offset))

    @classmethod
    def checkpoint_load(cls, path):
        return cls(float((path / "offset.txt").read_text()))


def test_task_saved_three_ways(tmp_path):
    plain = make(tmp_path / "p", task=LockedTask(), checkpoint_control=control()).checkpoint()
    with pytest.raises(CheckpointError, match="holds no task: pass task="):
        GloMPOManager.load_manager(plain)
    assert GloMPOManager.load_manager(plain, task=LockedTask(1.0)).task.offset == 1.0
    files = make(tmp_path / "f", task=SavableLockedTask(2.5), checkpoint_control=control()).checkpoint()
    with pytest.raises(CheckpointError, match="task_loader"):
        GloMPOManager.load_manager(files)
    loaded = GloMPOManager.load_manager(files, task_loader=SavableLockedTask.checkpoint_load)
    assert loaded.task.offset == 2.5
    forced = make(tmp_path / "x", task=SavableLockedTask(3.0), checkpoint_control=control(force_task_save=True))
    with open_checkpoint(forced.checkpoint()) as c:
        assert c.manifest["task"] == "files"


def test_overrides_and_slot_apportioning(tmp_path):
    sel = CycleSelector((WalkOptimizer, {"workers": 2, "iters": 10 ** 6}))
    m = make(tmp_path, task=SleepyTask(delay=0.002), selector=sel, max_jobs=4,
             checkpoint_control=control(checkpoint_eval_interval=100), exit_conditions=MaxFuncCalls(250))
    m.start_manager()
    path = tmp_path / "checkpoints" / "ck_000.tar"
    with pytest.raises(ConfigurationError, match="nonsense"):
        GloMPOManager.load_manager(path, nonsense=1)
    r = GloMPOManager.load_manager(path, max_jobs=2, working_dir=tmp_path / "elsewhere",
                                   exit_conditions=MaxFuncCalls(400))
    assert len(r._restored) == 2 and all(opt.workers == 1 for _, opt in r._restored)
    r.start_manager()
    assert r.working_dir == tmp_path / "elsewhere" and r.f_counter >= 400


def test_time_interval_counts_from_the_session_start(tmp_path):
    m = make(tmp_path, task=SleepyTask(delay=0.002), checkpoint_control=control(checkpoint_time_interval=0.6),
             selector=CycleSelector((WalkOptimizer, {"iters": 10 ** 6})), exit_conditions=MaxFuncCalls(10 ** 9))
    threading.Timer(2.0, lambda: (tmp_path / "EXIT").touch()).start()
    m.start_manager()
    assert 1 <= len(m.checkpoint_log) <= 3  # none at once (the interval starts with the session)
    first = m.checkpoint_log[0]
    assert first["bytes"] > 0 and first["f_counter"] > 0 and first["optimizers"] == 2
