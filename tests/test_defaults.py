"""The recommended configuration is what a user gets when they give no components, in setup()
and in a job file; the run's seed reproduces it; children use one BLAS thread per slot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from glompo_hpc import GloMPOManager
from glompo_hpc.backends.blas_threads import THREAD_VARIABLES, limit_blas_threads, threads_per_slot
from glompo_hpc.core.checkpoint_file import latest_checkpoint
from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.defaults import PopulationScheduleSelector, default_popsize
from glompo_hpc.exit_conditions import MaxFuncCalls, TargetCost
from glompo_hpc.generators import ExploitExploreGenerator, RandomGenerator
from glompo_hpc.optimizers.cma import CMAOptimizer
from glompo_hpc.optimizers.random import RandomOptimizer
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import EvaluationsUnmoving, MinFuncCalls
from glompo_hpc.tasks.functions import Rastrigin

from tests.support.blas_probe import BlasThreadProbe, recorded_threads

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = [(-5.12, 5.12)] * 4


def sphere(x) -> float:
    return float(np.sum(np.square(x)))


def new(tmp_path, **kwargs) -> GloMPOManager:
    kwargs.setdefault("backend", "threads")
    kwargs.setdefault("max_jobs", 2)
    return GloMPOManager.new_manager(sphere, BOUNDS, working_dir=tmp_path, **kwargs)


def test_setup_without_components_gets_the_recommended_configuration(tmp_path):
    m = new(tmp_path / "plain")
    assert isinstance(m.exit_conditions, MaxFuncCalls) and m.exit_conditions.fmax == 2000 * 4
    assert isinstance(m.opt_selector, PopulationScheduleSelector)
    pops = [o.init_kwargs["popsize"] for o in m.opt_selector.options]
    assert pops == [default_popsize(4) * k for k in (1, 2, 4, 8)]  # each a multiple of the 2 slots
    assert all(o.opt_class is CMAOptimizer and o.workers == 2 for o in m.opt_selector.options)
    assert m.opt_selector.fcall_thresholds == (1200, 2800, 4800)  # 15 %, 35 %, 60 % of the budget
    assert isinstance(m.x0_generator, ExploitExploreGenerator) and m.x0_generator.max_func_calls == 8000
    assert [type(leaf) for leaf in m.stoppers] == [EvaluationsUnmoving, MinFuncCalls]
    assert isinstance(m.seed, int) and m.seed >= 0

    # a budget given in the exit conditions sizes the schedule and the generator
    m = new(tmp_path / "budget", exit_conditions=TargetCost(0.0) | MaxFuncCalls(5000))
    assert m.opt_selector.fcall_thresholds == (750, 1750, 3000) and m.x0_generator.max_func_calls == 5000


def test_what_the_user_gives_is_kept_and_stoppers_false_means_none(tmp_path):
    selector, generator = CycleSelector(RandomOptimizer), RandomGenerator(BOUNDS)
    m = new(tmp_path, opt_selector=selector, x0_generator=generator, stoppers=False)
    assert m.opt_selector is selector and m.x0_generator is generator and m.stoppers is None


def test_the_recommended_run_finds_the_minimum_and_records_its_seed(tmp_path):
    m = new(tmp_path, summary_files=1, exit_conditions=TargetCost(0.0, atol=1e-8) | MaxFuncCalls(8000))
    result = m.start_manager()
    assert result.fx < 1e-8 and m.o_counter >= 1
    summary = yaml.safe_load((tmp_path / "glompo_manager_log.yml").read_text())
    assert summary["settings"]["seed"] == m.seed
    assert "PopulationScheduleSelector" in summary["settings"]["opt_selector"]


def test_a_recorded_seed_repeats_the_run(tmp_path):
    def run(wd, seed):
        m = new(wd, max_jobs=1, stoppers=False, seed=seed, exit_conditions=MaxFuncCalls(1500))
        m.start_manager()
        ids = np.concatenate([m.opt_log.history(i, "call_id") for i in m.opt_log.opt_ids])
        fx = np.concatenate([m.opt_log.history(i, "fx") for i in m.opt_log.opt_ids])
        return m.seed, fx[np.argsort(ids)][:1400]

    seed, first = run(tmp_path / "a", None)
    assert np.array_equal(run(tmp_path / "b", seed)[1], first)


def test_copies_of_one_prototype_sample_differently_unless_the_user_fixed_a_seed(tmp_path):
    def first_points(wd, prototype):
        m = new(wd, opt_selector=CycleSelector(prototype), stoppers=False, exit_conditions=MaxFuncCalls(60))
        m.start_manager()
        # an optimizer started just before the budget ran out may have no evaluation
        return [tuple(m.opt_log.history(i, "x")[0]) for i in m.opt_log.opt_ids if m.opt_log.n_evals(i)]

    drawn = first_points(tmp_path / "free", RandomOptimizer(iters=5))
    assert len(drawn) > 2 and len(set(drawn)) == len(drawn)
    fixed = first_points(tmp_path / "fixed", RandomOptimizer(iters=5, seed=7))
    assert len(fixed) > 2 and len(set(fixed)) == 1


def test_a_resume_on_fewer_slots_resizes_the_recommended_children(tmp_path):
    m = new(tmp_path, max_jobs=4, exit_conditions=MaxFuncCalls(1000),
            checkpoint_control=CheckpointingControl(checkpoint_at_init=True))
    assert {o.workers for o in m.opt_selector.options} == {4}
    m.start_manager()
    path = latest_checkpoint(tmp_path / "checkpoints")
    resumed = GloMPOManager.load_manager(path, task=sphere, max_jobs=1, working_dir=tmp_path / "again")
    assert {o.workers for o in resumed.opt_selector.options} == {1} and resumed.seed == m.seed
    resumed.start_manager()
    assert resumed.f_counter >= 1000


def test_a_minimal_job_file_runs_the_recommended_configuration(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3}},
        "exit_conditions": "TargetCost(0.0, atol=1e-6) | MaxFuncCalls(15000)",
        "manager": {"backend": "threads", "max_jobs": 2, "summary_files": 1, "seed": 5}}))
    run = subprocess.run([sys.executable, "-m", "glompo_hpc", str(job)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # the command line's default working dir: '<job file name>_run' beside the job file
    settings = yaml.safe_load((tmp_path / "job_run" / "glompo_manager_log.yml").read_text())["settings"]
    assert settings["seed"] == 5 and settings["opt_selector"].startswith("PopulationScheduleSelector")
    assert settings["stoppers"].startswith("EvaluationsUnmoving")
    assert settings["x0_generator"].startswith("ExploitExploreGenerator")


def test_stoppers_false_in_a_job_file_means_none(tmp_path):
    from glompo_hpc.jobfile import build_manager_kwargs, validate

    kwargs = build_manager_kwargs(validate({"task": "glompo_hpc.tasks.functions:Rastrigin", "stoppers": False,
                                            "manager": {"backend": "threads"}}, base_dir=tmp_path))
    m = GloMPOManager.new_manager(**{**kwargs, "working_dir": tmp_path})
    assert m.stoppers is None and isinstance(m.opt_selector, PopulationScheduleSelector)


# ------------------------------------------------------------ one BLAS thread per slot

def test_process_children_use_one_blas_thread(tmp_path):
    m = GloMPOManager.new_manager(BlasThreadProbe(str(tmp_path / "probe")), BOUNDS, working_dir=tmp_path,
                                  backend="processes", max_jobs=2, exit_conditions=MaxFuncCalls(200))
    (tmp_path / "probe").mkdir()
    m.start_manager()
    threads = recorded_threads(tmp_path / "probe")
    assert threads and set(threads.values()) == {1}


@pytest.mark.parametrize("variable, expected", [(None, "1"), ("OMP_NUM_THREADS", "2")])
def test_the_command_line_limits_blas_unless_the_user_chose(tmp_path, variable, expected):
    """The CLI run itself (threads backend: evaluations in the manager's process) is limited too."""
    probe = tmp_path / "probe"
    probe.mkdir()
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "task": {"function": "tests.support.blas_probe:BlasThreadProbe", "kwargs": {"out_dir": str(probe)}},
        "bounds": {"min": -1, "max": 1, "dims": 3}, "exit_conditions": "MaxFuncCalls(100)",
        "manager": {"backend": "threads", "max_jobs": 1}}))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if variable is not None:
        env[variable] = expected
    run = subprocess.run([sys.executable, "-m", "glompo_hpc", str(job)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert set(recorded_threads(probe).values()) == {int(expected)}


def test_a_thread_count_the_user_chose_is_applied_even_after_numpy_loaded(monkeypatch):
    from threadpoolctl import threadpool_info

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    try:
        assert limit_blas_threads() == 2
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {2}
        monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: the next variable decides
        assert threads_per_slot() == 2
        monkeypatch.delenv("OPENBLAS_NUM_THREADS")
        assert limit_blas_threads() == 1
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
    finally:
        monkeypatch.undo()
        limit_blas_threads()  # leave this process as the rest of the suite expects
