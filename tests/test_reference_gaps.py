"""Gaps against GloMPO's reference: TimeLimitThroughRestarts from Python, STOP_<id> stops as manager
stops, TypeHunter matching instances (subclasses), and the SplitOptimizerLogs logging filter."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.optimizers import WalkOptimizer, sphere

import glompo_hpc
from glompo_hpc import exit_conditions as ec
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.core.optlog import OptimizerLog, class_lineage
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.exit_conditions import MaxFuncCalls, MaxKills, MaxSeconds
from glompo_hpc.jobfile.build import build_manager_kwargs, validate
from glompo_hpc.optimizers import CMAOptimizer, ScipyOptimizer
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import TypeHunter

BOUNDS = [(-5.0, 5.0)] * 2


# ---------------------------------------------------------------- TimeLimitThroughRestarts

def test_time_limit_through_restarts_is_importable_and_is_the_job_files_condition(tmp_path):
    assert glompo_hpc.TimeLimitThroughRestarts is ec.TimeLimitThroughRestarts
    from_python = glompo_hpc.TimeLimitThroughRestarts(3600)
    spec = validate({"task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 2}},
                     "exit_conditions": "TimeLimitThroughRestarts(3600)"}, base_dir=tmp_path)
    from_job_file = build_manager_kwargs(spec)["exit_conditions"]
    assert type(from_python) is type(from_job_file) is MaxSeconds
    assert str(from_python) == str(from_job_file) == "MaxSeconds(overall_max=3600.0)"
    # the limit holds through restarts: earlier sessions' time counts
    assert from_python(SimpleNamespace(t_start=time.time(), t_used=3600.0)) is True
    assert from_python(SimpleNamespace(t_start=time.time(), t_used=10.0)) is False


def test_time_limit_through_restarts_refuses_a_bad_limit():
    with pytest.raises(ConfigurationError, match="overall_max.*-1"):
        glompo_hpc.TimeLimitThroughRestarts(-1)


# ---------------------------------------------------------------- STOP_<id> counts as a manager stop

class StopFileTask:
    """Sphere that drops the intervention file ``STOP_1`` at its first call (optimizer 1 is then running)."""

    def __init__(self, workdir: Path):
        self.stop_file = workdir / "STOP_1"
        self.dropped = False

    def __call__(self, x) -> float:
        if not self.dropped:
            self.dropped = True
            self.stop_file.touch()
        return sphere(x)


def test_a_stop_file_counts_as_a_manager_stop_towards_max_kills(tmp_path):
    # Without the STOP_1 file counting, only the time limit could end this run.
    m = GloMPOManager.new_manager(StopFileTask(tmp_path), BOUNDS, CycleSelector((WalkOptimizer, {"iters": 10 ** 7})),
                                  working_dir=tmp_path, backend="threads", max_jobs=1, stoppers=False,
                                  exit_conditions=MaxKills(1) | MaxSeconds(session_max=120), split_printstreams=False)
    m.start_manager()
    assert list(m.stopped_opts) == [1]
    assert m.exit_reason == "MaxKills(kills_max=1)"
    assert "STOP_1 intervention file" in m.opt_log.records[1].messages[-1]


# ---------------------------------------------------------------- TypeHunter: instance of

class MyCMA(CMAOptimizer):
    pass


class SubWalk(WalkOptimizer):
    pass


def log_of(**classes: type) -> OptimizerLog:
    log = OptimizerLog(1)
    for opt_id, cls in enumerate(classes.values(), start=1):
        log.add_optimizer(opt_id, cls.__name__, 0.0, lineage=class_lineage(cls))
    return log


def test_type_hunter_matches_subclasses_by_class_and_by_name():
    log = log_of(sub=MyCMA, cma=CMAOptimizer, scipy=ScipyOptimizer)
    for target in (CMAOptimizer, "CMAOptimizer"):
        hunter = TypeHunter(target)
        assert [hunter(log, 0, opt_id) for opt_id in (1, 2, 3)] == [True, True, False]
    assert [TypeHunter(MyCMA)(log, 0, opt_id) for opt_id in (1, 2, 3)] == [True, False, False]
    assert str(TypeHunter(CMAOptimizer)) == "TypeHunter(opt_class='CMAOptimizer')"


def test_type_hunter_given_a_class_does_not_match_another_class_of_the_same_name():
    other_cma = type("CMAOptimizer", (WalkOptimizer,), {})
    log = log_of(other=other_cma)
    assert TypeHunter(CMAOptimizer)(log, 0, 1) is False
    assert TypeHunter("CMAOptimizer")(log, 0, 1) is True  # a name (job files) is only a name


def test_type_hunter_stops_a_subclass_in_a_run(tmp_path):
    m = GloMPOManager.new_manager(sphere, BOUNDS, CycleSelector((SubWalk, {"iters": 10 ** 7})),
                                  working_dir=tmp_path, backend="threads", max_jobs=1, stopcheck_interval=1,
                                  stoppers=TypeHunter(WalkOptimizer), apply_stoppers_to_best=True,
                                  exit_conditions=MaxKills(1) | MaxFuncCalls(10 ** 7), split_printstreams=False)
    m.start_manager()
    assert list(m.stopped_opts) == [1] and m.exit_reason == "MaxKills(kills_max=1)"
    assert m.opt_log.records[1].opt_type == "SubWalk"
    assert "TypeHunter(opt_class='WalkOptimizer') = True" in m.opt_log.records[1].messages[-1]


# ---------------------------------------------------------------- SplitOptimizerLogs

@pytest.fixture
def optimizers_handler(tmp_path):
    """A handler on 'glompo_hpc.optimizers' writing every optimizer record to all.log; removed after."""
    parent = logging.getLogger("glompo_hpc.optimizers")
    handler = logging.FileHandler(tmp_path / "all.log")
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    old_level = parent.level
    parent.setLevel(logging.INFO)
    parent.addHandler(handler)
    yield handler
    parent.removeHandler(handler)
    parent.setLevel(old_level)
    handler.close()


@pytest.mark.parametrize("propagate", [False, True])
def test_split_optimizer_logs_writes_one_file_per_optimizer(tmp_path, optimizers_handler, propagate):
    splitter = glompo_hpc.SplitOptimizerLogs(tmp_path / "split", propagate=propagate,
                                             formatter=logging.Formatter("%(levelname)s %(message)s"))
    optimizers_handler.addFilter(splitter)
    logging.getLogger("glompo_hpc.optimizers.opt1").info("one says hi")
    logging.getLogger("glompo_hpc.optimizers.opt12").warning("twelve says hi")
    logging.getLogger("glompo_hpc.optimizers.opt1").info("one again")
    logging.getLogger("glompo_hpc.optimizers").info("not an optimizer's own logger")
    splitter.close()
    optimizers_handler.flush()
    assert (tmp_path / "split" / "optimizer_1.log").read_text() == "INFO one says hi\nINFO one again\n"
    assert (tmp_path / "split" / "optimizer_12.log").read_text() == "WARNING twelve says hi\n"
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["optimizer_1.log", "optimizer_12.log"]
    everything = (tmp_path / "all.log").read_text()
    assert "glompo_hpc.optimizers: not an optimizer's own logger" in everything
    assert ("one says hi" in everything) is propagate and ("twelve says hi" in everything) is propagate


class TalkingWalk(WalkOptimizer):
    """Logs one line per iteration through its own logger."""

    def check_messages(self) -> None:
        self.logger.info("optimizer %d at iteration %d", self.opt_id, self.n_iterations)
        super().check_messages()


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_split_optimizer_logs_in_a_run(tmp_path, optimizers_handler, backend):
    optimizers_handler.addFilter(glompo_hpc.SplitOptimizerLogs(tmp_path / "split"))
    m = GloMPOManager.new_manager(sphere, BOUNDS, CycleSelector((TalkingWalk, {"iters": 5})),
                                  working_dir=tmp_path / "run", backend=backend, max_jobs=2, stoppers=False,
                                  exit_conditions=MaxFuncCalls(100), split_printstreams=False)
    m.start_manager()
    files = list((tmp_path / "split").iterdir())
    # an optimizer logs at the end of each iteration, before its evaluations are reported: every
    # optimizer with a reported iteration (1 + 4 evaluations) has its file, and no other file exists
    talked = {i for i in m.opt_log.opt_ids if m.opt_log.n_evals(i) >= 5}
    assert len(talked) >= 2 and talked <= {int(f.stem.split("_")[1]) for f in files} <= set(m.opt_log.opt_ids)
    for f in files:
        opt_id = int(f.stem.split("_")[1])
        lines = f.read_text().splitlines()
        assert lines and all(line.startswith(f"optimizer {opt_id} at iteration ") for line in lines)
    assert "at iteration" not in (tmp_path / "all.log").read_text()
