"""The run's explicit records: one settings table, the documented names, allow-listed checkpoints."""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import tarfile

import dill
import numpy as np
import pytest
from support.optimizers import WalkOptimizer, sphere

from glompo_hpc import (CheckpointingControl, CycleSelector, GloMPOManager, MaxFuncCalls,
                        RandomGenerator)
from glompo_hpc.core.checkpoint_file import open_checkpoint
from glompo_hpc.core.settings import SETTINGS, SETTING_NAMES, Settings
from glompo_hpc.core.state import STATE_FORMAT, EndKind, RunState
from glompo_hpc.errors import CheckpointError, ConfigurationError
from glompo_hpc.exit_conditions import BaseExitCondition
from glompo_hpc.jobfile.schema import ManagerSpec
from glompo_hpc.selectors import BaseSelector

from pathlib import Path

BOUNDS = [(-5.0, 5.0)] * 2
FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_from_main_b80b930.tar"


def make(tmp_path, selector=None, **kwargs) -> GloMPOManager:
    kwargs.setdefault("max_jobs", 2)
    kwargs.setdefault("backend", "threads")
    kwargs.setdefault("exit_conditions", MaxFuncCalls(300))
    selector = selector or CycleSelector((WalkOptimizer, {"iters": 20}))
    return GloMPOManager.new_manager(sphere, BOUNDS, selector, working_dir=tmp_path, **kwargs)


def call_ids(manager: GloMPOManager) -> np.ndarray:
    return np.sort(np.concatenate([manager.opt_log.history(i, "call_id") for i in manager.opt_log.opt_ids]))


# ------------------------------------------------------------------ one table of settings

def test_setup_signature_and_job_file_defaults_are_the_table_defaults():
    parameters = inspect.signature(GloMPOManager.setup).parameters
    assert [n for n in parameters if n not in ("self", "task")] == sorted(SETTING_NAMES, key=list(parameters).index)
    assert set(parameters) - {"self", "task"} == set(SETTING_NAMES)
    for row in SETTINGS:
        if parameters[row.name].default is not inspect.Parameter.empty:
            assert parameters[row.name].default == row.default, row.name
    job_defaults = {f.name: f.default for f in dataclasses.fields(ManagerSpec)}
    # the command line's defaults for cluster work (issue 18): results on disk in '<job>_run/'
    cluster_defaults = {"working_dir": None, "summary_files": 3}
    for row in SETTINGS:
        if row.name in job_defaults:
            assert job_defaults[row.name] == cluster_defaults.get(row.name, row.default), row.name


def test_load_checkpoint_accepts_exactly_the_table_names(tmp_path):
    m = make(tmp_path, checkpoint_control=CheckpointingControl(naming_format="ck"))
    path = m.checkpoint()
    with pytest.raises(ConfigurationError) as err:
        GloMPOManager.load_manager(path, nonsense=1)
    assert "nonsense" in str(err.value) and "share_best_solutions" in str(err.value)


def test_documented_names_are_read_from_the_records(tmp_path):
    m = make(tmp_path, share_best_solutions=True, force_terminations_after=30,
             checkpoint_control=CheckpointingControl(naming_format="ck"))
    assert isinstance(m.settings, Settings) and isinstance(m.state, RunState)
    assert m.share_best_solutions is True and m.incumbent_sharing is True
    assert m.force_terminations_after == 30 and m.allow_forced_terminations
    m.start_manager()
    assert m.f_counter >= 300 and m.state.end.kind is EndKind.EXIT_CONDITIONS
    assert m.exit_reason == "MaxFuncCalls(fmax=300)" == m.result.stats["exit_reason"]
    m.checkpoint()
    assert m.last_iter_checkpoint == m.last_checkpoint_eval == m.f_counter
    assert m.last_time_checkpoint == m.last_checkpoint_time > 0
    with pytest.raises(AttributeError):
        m.max_jobs = 8  # settings change only through setup() / load_checkpoint() and their checks


def test_components_read_a_view_they_cannot_change(tmp_path):
    seen = []

    class Snooping(BaseExitCondition):
        def __call__(self, manager) -> bool:
            seen.append((manager.f_counter, manager.max_jobs, manager.share_best_solutions))
            with pytest.raises(AttributeError):
                manager.f_counter = 0
            return manager.f_counter >= 100

    m = make(tmp_path, exit_conditions=Snooping())
    m.start_manager()
    assert seen[0] == (0, 2, False) and seen[-1][0] >= 100 and m.f_counter >= 100


# ------------------------------------------------------------------ checkpoints from an allow-list

def _saved_record(path) -> dict:
    with open_checkpoint(path) as c:
        return dill.loads(c.member("manager.pkl").read_bytes())


def test_a_checkpoint_holds_the_records_and_nothing_else(tmp_path):
    m = make(tmp_path, checkpoint_control=CheckpointingControl(naming_format="ck"))
    m.scratch = object()  # an attribute added to a manager by a script never enters a checkpoint
    record = _saved_record(m.checkpoint())
    assert record["format_version"] == STATE_FORMAT
    assert set(record) == {"format_version", "settings", "state", "live_optimizers", "rng_states"}
    assert set(record["settings"]) == {f.name for f in dataclasses.fields(Settings)}
    assert set(record["state"]) == {f.name for f in dataclasses.fields(RunState)}


def test_a_checkpoint_of_another_format_is_refused_in_one_line_naming_both(tmp_path):
    m = make(tmp_path, checkpoint_control=CheckpointingControl(naming_format="ck"))
    path = m.checkpoint()
    record = _saved_record(path)
    record["format_version"] = 99
    future = tmp_path / "future.tar"
    _replace_member(path, future, "manager.pkl", dill.dumps(record))
    with pytest.raises(CheckpointError) as err:
        GloMPOManager.load_manager(future)
    text = str(err.value)
    assert "\n" not in text and "version 99" in text and f"versions 1 and {STATE_FORMAT}" in text


def _replace_member(source, target, name, data) -> None:
    """A copy of a checkpoint with one member replaced, its manifest digest updated."""
    import hashlib
    import io
    import json

    with tarfile.open(source) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    members[name] = data
    manifest = json.loads(members["manifest.json"])
    manifest["members"][name] = hashlib.sha256(data).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(target, "w") as tar:
        for member, blob in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_a_checkpoint_written_by_main_loads_and_finishes_with_every_evaluation_once(tmp_path):
    path = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, path)
    r = GloMPOManager.load_manager(path, working_dir=tmp_path / "resumed", exit_conditions=MaxFuncCalls(400))
    assert r.f_counter == 168 and r.o_counter == 2 and r.max_jobs == 2 and r.seed == 11
    assert r.force_terminations_after == -1 and r.share_best_solutions is False
    assert sorted(opt_id for opt_id, _ in r._restored) == [1, 2]
    assert len(r.dt_starts) == 1 and r.t_used > 0 and r.checkpoint_control.count == 1
    r.start_manager()
    assert r.f_counter >= 400 and r.state.end.kind is EndKind.EXIT_CONDITIONS
    assert np.array_equal(call_ids(r), np.arange(1, r.f_counter + 1))


# ------------------------------------------------------------------ resuming on fewer slots (issue 17)

def test_resume_on_fewer_slots_with_a_new_selector_applies_it_before_checking(tmp_path):
    wide = CycleSelector((WalkOptimizer, {"workers": 2, "iters": 10 ** 6}))
    m = make(tmp_path, selector=wide, exit_conditions=MaxFuncCalls(200),
             checkpoint_control=CheckpointingControl(naming_format="ck_%(count)", checkpoint_eval_interval=100))
    m.start_manager()
    path = tmp_path / "checkpoints" / "ck_000.tar"
    with pytest.raises(ConfigurationError, match="needs 2 slots but max_jobs is 1"):
        GloMPOManager.load_manager(path, max_jobs=1)  # the old selector could never start its option
    narrow = CycleSelector((WalkOptimizer, {"iters": 30}))
    r = GloMPOManager.load_manager(path, max_jobs=1, opt_selector=narrow, working_dir=tmp_path / "small",
                                   exit_conditions=MaxFuncCalls(400))
    assert r.max_jobs == 1 and r.opt_selector is narrow and isinstance(r.opt_selector, BaseSelector)
    assert r._restored and all(opt.workers == 1 for _, opt in r._restored)
    for _, opt in r._restored:  # the walk now ends on its own: a thread left to run floods the log
        opt.iters = 25
    r.start_manager()
    assert r.f_counter >= 400 and np.array_equal(call_ids(r), np.arange(1, r.f_counter + 1))


def test_a_checkpoint_between_sessions_touches_nothing_but_its_own_file(tmp_path):
    m = make(tmp_path, checkpoint_control=CheckpointingControl(naming_format="ck_%(count)"))
    first = m.checkpoint()
    mine = first.parent / ".staging_someone_elses"  # only a session's start clears leftovers
    mine.mkdir()
    second = m.checkpoint()
    assert mine.is_dir() and first.exists() and second.exists() and m.backend is None
    assert m.checkpoint_files == [first.name, second.name] and len(m.checkpoint_log) == 2
