"""GloMPOManager: set-up validation, the run on each backend, and every setup() parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from support.optimizers import CrashingOptimizer, PidTask, SleepyTask, WalkOptimizer, sphere

from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.exit_conditions import KillsAfterConvergence, MaxFuncCalls, MaxOptsStarted
from glompo_hpc.generators import SinglePointGenerator
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import BaseStopper

BACKENDS = ["threads", "processes"]
BOUNDS = [(-5.0, 5.0)] * 3


def make(tmp_path, task=sphere, selector=None, **kwargs) -> GloMPOManager:
    kwargs.setdefault("max_jobs", 2)
    kwargs.setdefault("exit_conditions", MaxFuncCalls(1500))
    kwargs.setdefault("backend", "threads")
    selector = selector or CycleSelector((WalkOptimizer, {"iters": 60}))
    return GloMPOManager.new_manager(task, kwargs.pop("bounds", BOUNDS), selector, working_dir=tmp_path, **kwargs)


def rows_in_log(manager: GloMPOManager) -> int:
    return sum(manager.opt_log.n_evals(i) for i in manager.opt_log.opt_ids)


# ------------------------------------------------------------------ set-up validation

@pytest.mark.parametrize("bad, key, fragment", [
    ({"bounds": [(-1, 1), (2, 2)]}, "bounds", "bounds[1]: min 2.0 >= max 2.0"),
    ({"bounds": [(1, -1)]}, "bounds", "bounds[0]"),
    ({"bounds": [(0, math.inf)]}, "bounds", "must be finite"),
    ({"bounds": "abc"}, "bounds", "bounds"),
    ({"backend": "gpu"}, "backend", "'gpu'"),
    ({"max_jobs": 0}, "max_jobs", "max_jobs must be an integer >= 1, got 0"),
    ({"max_jobs": "4"}, "max_jobs", "'4'"),
    ({"summary_files": 4}, "summary_files", "got 4"),
    ({"stopcheck_interval": 0}, "stopcheck_interval", "got 0"),
    ({"status_interval": 0}, "status_interval", "got 0"),
    ({"end_timeout": -1}, "end_timeout", "got -1"),
    ({"force_terminations_after": -5}, "force_terminations_after", "got -5"),
    ({"checkpoint_control": {"keep_past": 1}}, "checkpoint_control", "CheckpointingControl"),
    ({"exit_conditions": 42}, "exit_conditions", "42"),
])
def test_setup_rejects_bad_arguments_naming_them(tmp_path, bad, key, fragment):
    with pytest.raises(ConfigurationError) as err:
        make(tmp_path, **bad)
    assert key in str(err.value) and fragment in str(err.value)


def test_setup_rejects_non_callable_task_and_bad_selector(tmp_path):
    with pytest.raises(ConfigurationError, match="task must be callable, got 3"):
        make(tmp_path, task=3)
    with pytest.raises(ConfigurationError, match="opt_selector"):
        GloMPOManager().setup(sphere, BOUNDS, "CMA", working_dir=tmp_path)


def test_option_needing_more_slots_than_max_jobs_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="needs 3 slots but max_jobs is 2"):
        make(tmp_path, selector=CycleSelector((WalkOptimizer, {"workers": 3})))


def test_second_initialisation_raises_and_start_needs_setup(tmp_path):
    with pytest.raises(RuntimeError, match="not initialised"):
        GloMPOManager().start_manager()
    m = make(tmp_path)
    assert m.is_initialised
    with pytest.raises(RuntimeError, match="already initialised"):
        m.setup(sphere, BOUNDS, CycleSelector(WalkOptimizer), working_dir=tmp_path)


def test_defaults_match_the_reference(tmp_path):
    m = GloMPOManager().setup(sphere, BOUNDS, CycleSelector(WalkOptimizer), working_dir=tmp_path)
    assert m.backend_name == "processes" and m.proc_backend and m.opts_daemonic
    assert m.end_timeout == 10.0 and m.stopcheck_interval == 100 and m.status_interval == 600
    assert m.summary_files == 0 and m.split_printstreams and not m.incumbent_sharing
    assert not m.allow_forced_terminations and not m.aggressive_stop and not m.apply_stoppers_to_best
    # where the reference has no default or GloMPO's: the recommended configuration (test_defaults.py)
    assert isinstance(m.exit_conditions, MaxFuncCalls) and m.exit_conditions.fmax == 2000 * 3
    assert type(m.x0_generator).__name__ == "ExploitExploreGenerator"
    assert str(m.stoppers) == "EvaluationsUnmoving(calls=30, tol=0.001) & MinFuncCalls(min_pts=300)"
    assert m.max_jobs >= 1 and m.n_parms == 3 and m.f_counter == 0 and m.t_used == 0
    threads = GloMPOManager().setup(sphere, BOUNDS, CycleSelector(WalkOptimizer), working_dir=tmp_path / "t",
                                    backend="threads")
    assert threads.end_timeout is None and not threads.proc_backend


def test_checkpoint_control_is_stored(tmp_path):
    cc = CheckpointingControl(checkpoint_eval_interval=100)
    assert make(tmp_path, checkpoint_control=cc).checkpoint_control is cc


def test_overwrite_existing_guards_old_results(tmp_path):
    make(tmp_path, summary_files=1).start_manager()
    with pytest.raises(FileExistsError, match="glompo_manager_log.yml"):
        make(tmp_path)
    (tmp_path / "user_notes.txt").write_text("keep me")
    m = make(tmp_path, overwrite_existing=True, summary_files=0)
    m.start_manager()
    assert not (tmp_path / "glompo_manager_log.yml").exists()  # purged, and level 0 writes none
    assert (tmp_path / "user_notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------ the run

@pytest.mark.parametrize("backend", BACKENDS)
def test_run_finds_minimum_and_accounts_every_evaluation(tmp_path, backend):
    m = make(tmp_path, backend=backend, max_jobs=2)
    result = m.start_manager()
    assert m.converged and m.exit_reason == "MaxFuncCalls(fmax=1500)"
    assert result.fx < 0.05 and np.allclose(sphere(result.x), result.fx)
    assert m.f_counter >= 1500 and m.f_counter == rows_in_log(m)
    ids = np.concatenate([m.opt_log.history(i, "call_id") for i in m.opt_log.opt_ids])
    assert sorted(ids) == list(range(1, m.f_counter + 1))  # every evaluation once, numbered globally
    best_in_log = min(m.opt_log.best(i)[1] for i in m.opt_log.opt_ids)
    assert best_in_log == result.fx and result.origin["type"] == "WalkOptimizer"
    assert result.stats["f_counter"] == m.f_counter and result.stats["exit_reason"] == m.exit_reason
    assert m.o_counter >= 2 and m.t_used > 0 and len(m.dt_starts) == len(m.dt_ends) == 1
    assert m.last_opt_spawn[1] == m.o_counter
    x, fx, stats, origin = result  # unpacks like GloMPO's NamedTuple
    assert x is result.x and fx == result.fx and stats is result.stats and origin is result.origin


def test_kills_after_convergence_ends_after_first_convergence(tmp_path):
    """GloMPO's default exit condition, still there for those who ask for it."""
    m = make(tmp_path, exit_conditions=KillsAfterConvergence(), selector=CycleSelector((WalkOptimizer, {"iters": 5})))
    m.start_manager()
    assert m.conv_counter >= 1 and "KillsAfterConvergence" in m.exit_reason


def test_slots_are_never_overbooked(tmp_path):
    """Note 3 of the reference: an optimizer needing k slots starts only when k are free."""
    sel = CycleSelector((WalkOptimizer, {"workers": 2, "iters": 20}), (WalkOptimizer, {"iters": 20}))
    m = make(tmp_path, selector=sel, max_jobs=3, exit_conditions=MaxOptsStarted(8))
    m.start_manager()
    recs = list(m.opt_log.records.values())
    for r in recs:  # at every optimizer's start, the slots of those alive fit max_jobs
        alive = [o for o in recs if o.t_start <= r.t_start and (o.t_end is None or o.t_end > r.t_start)]
        assert sum(o.slots for o in alive) <= 3


def test_selector_spawn_stop_ends_run_when_all_finish(tmp_path):
    from glompo_hpc.selectors import NOptimizersSpawnStop
    sel = CycleSelector((WalkOptimizer, {"iters": 5}), allow_spawn=NOptimizersSpawnStop(3))
    m = make(tmp_path, selector=sel, exit_conditions=MaxFuncCalls(10 ** 9))
    m.start_manager()
    assert m.o_counter == 3 and not m.spawning_opts
    assert m.exit_reason == "no optimizers alive and spawning is stopped"


def test_x0_generator_is_used(tmp_path):
    x = np.array([1.0, -2.0, 3.0])
    m = make(tmp_path, x0_generator=SinglePointGenerator(BOUNDS, x), exit_conditions=MaxOptsStarted(3))
    m.start_manager()
    for opt_id in m.opt_log.opt_ids:
        if m.opt_log.n_evals(opt_id):
            assert np.array_equal(m.opt_log.history(opt_id, "x")[0], x)


class RecordingStopper(BaseStopper):
    """Stops every optimizer it is asked about, and records (best, tested) pairs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __call__(self, log, best_opt_id, tested_opt_id):
        self.calls.append((best_opt_id, tested_opt_id, log.n_evals(tested_opt_id)))
        return True


@pytest.mark.parametrize("to_best", [False, True])
def test_stoppers_stopcheck_interval_and_apply_stoppers_to_best(tmp_path, to_best):
    stopper = RecordingStopper()
    m = make(tmp_path, task=SleepyTask(delay=0.001), stoppers=stopper, stopcheck_interval=50,
             apply_stoppers_to_best=to_best, exit_conditions=MaxFuncCalls(1500), max_jobs=2)
    m.start_manager()
    assert stopper.calls and m.stopcheck_counter > 0 and m.last_stopcheck > 0
    assert all(n > 0 for _, _, n in stopper.calls)  # only optimizers with history are tested
    tested_best = [b == t for b, t, _ in stopper.calls]
    assert any(tested_best) == to_best
    assert m.stopcheck_counter <= m.f_counter // 50  # checks are spaced by stopcheck_interval evaluations
    assert set(m.stopped_opts) == {t for _, t, _ in stopper.calls}
    assert {m.opt_log.records[i].end_cond for i in m.stopped_opts} == {"GloMPO Termination"}


def test_share_best_solutions_injects_incumbent(tmp_path):
    received = []

    class Listener(WalkOptimizer):
        def inject(self, x, fx):
            super().inject(x, fx)
            received.append(fx)

    m = make(tmp_path, task=SleepyTask(delay=0.001), selector=CycleSelector((Listener, {"iters": 80})),
             share_best_solutions=True, exit_conditions=MaxFuncCalls(1000))
    m.start_manager()
    assert m.incumbent_sharing and received and min(received) >= m.result.fx


@pytest.mark.parametrize("backend", BACKENDS)
def test_is_log_detailed_keeps_extras(tmp_path, backend):
    import os
    m = make(tmp_path, task=PidTask(), backend=backend, is_log_detailed=True, exit_conditions=MaxFuncCalls(200))
    m.start_manager()
    busiest = max(m.opt_log.opt_ids, key=m.opt_log.n_evals)  # under load one child may never get going
    extras = m.opt_log.history(busiest, "extras")
    assert extras.shape[1] == 2 and set(extras[:, 1]) == {"tag"}
    pids = set(extras[:, 0])
    assert (pids == {os.getpid()}) == (backend == "threads")


@pytest.mark.parametrize("backend", BACKENDS)
def test_status_interval_fills_histories(tmp_path, backend):
    from support.optimizers import SleepyTask
    m = make(tmp_path, task=SleepyTask(delay=0.002), backend=backend, status_interval=0.05,
             exit_conditions=MaxFuncCalls(300))
    m.start_manager()
    assert len(m.cpu_history) >= 2 and len(m.mem_history) == len(m.cpu_history) == len(m.load_history)
    assert all(mem > 1e6 for mem in m.mem_history) and all(len(load) == 3 for load in m.load_history)


# ------------------------------------------------------------------ outputs

def test_summary_file_levels_and_dump_dir(tmp_path):
    m = make(tmp_path / "run", summary_files=1)
    m.start_manager()
    data = yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())
    assert data["counters"]["function_evaluations"] == m.f_counter
    assert data["solution"]["fx"] == m.result.fx and data["solution"]["exit_reason"] == m.exit_reason
    assert data["settings"]["max_jobs"] == 2 and len(data["settings"]["bounds"]) == 3
    assert data["counters"]["optimizers"]["started"] == m.o_counter
    assert data["run_information"]["memory_bytes"]["max"] > 0
    assert len(data["assignment"]["sessions"]) == 1
    dumped = m.write_summary_file(tmp_path / "elsewhere")
    assert yaml.safe_load(dumped.read_text())["solution"]["fx"] == m.result.fx


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_printstreams(tmp_path, backend):
    class Talker(WalkOptimizer):
        def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
            import sys
            print(f"hello from {self.opt_id}", flush=True)
            print(f"warning from {self.opt_id}", file=sys.stderr, flush=True)
            return super().minimize(function, x0, bounds)

    m = make(tmp_path, selector=CycleSelector((Talker, {"iters": 5})), backend=backend,
             exit_conditions=MaxOptsStarted(2))
    m.start_manager()
    folder = tmp_path / "glompo_optimizer_printstreams"
    assert "hello from 1" in (folder / "printstream_0001.out").read_text()
    assert "warning from 2" in (folder / "printstream_0002.err").read_text()
    m2 = make(tmp_path / "off", selector=CycleSelector((Talker, {"iters": 5})), backend=backend,
              split_printstreams=False, exit_conditions=MaxOptsStarted(1))
    m2.start_manager()
    assert not (tmp_path / "off" / "glompo_optimizer_printstreams").exists()


# ------------------------------------------------------------------ faults

@pytest.mark.parametrize("backend", BACKENDS)
def test_crashing_optimizer_is_recorded_and_run_goes_on(tmp_path, backend):
    sel = CycleSelector((CrashingOptimizer, {"crash_after": 3}), (WalkOptimizer, {"iters": 100}))
    m = make(tmp_path, selector=sel, backend=backend, exit_conditions=MaxFuncCalls(1200))
    result = m.start_manager()
    assert m.opt_crashed and math.isfinite(result.fx)
    crashed = [r for r in m.opt_log.records.values() if r.end_cond.startswith("Error termination")]
    assert crashed and "deliberate crash in optimizer" in crashed[0].end_cond
    assert any("Traceback" in text for text in crashed[0].messages)
    assert m.o_counter > 2  # the crashed slot was reused
    assert m.f_counter == rows_in_log(m)  # the crashed optimizer's evaluations are kept


class _BadValues:
    """Returns NaN, inf, None or a string on some points."""

    def __call__(self, x):
        k = int(abs(x[0]) * 1000) % 5
        return {0: float("nan"), 1: float("inf"), 2: None, 3: "oops"}.get(k, sphere(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_numeric_values_are_logged_as_nan_and_never_become_the_incumbent(tmp_path, backend):
    m = make(tmp_path, task=_BadValues(), backend=backend, exit_conditions=MaxFuncCalls(800))
    result = m.start_manager()
    fx = np.concatenate([m.opt_log.history(i, "fx") for i in m.opt_log.opt_ids])
    assert np.isnan(fx).any() and np.isinf(fx).any()
    assert math.isfinite(result.fx) and result.fx == np.min(fx[np.isfinite(fx)])
    assert not m.opt_crashed


class _RaisingTask:
    def __call__(self, x):
        if x[0] > 4.0:
            raise ValueError(f"task cannot evaluate x0={x[0]:.3f}")
        return sphere(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_task_that_raises_crashes_only_its_optimizer(tmp_path, backend):
    gen = SinglePointGenerator(BOUNDS, [4.5, 0.0, 0.0])
    # one slot: each optimizer starts after the previous one crashed
    m = make(tmp_path, task=_RaisingTask(), backend=backend, x0_generator=gen, max_jobs=1,
             exit_conditions=MaxOptsStarted(4))
    m.start_manager()
    assert m.opt_crashed and m.o_counter == 4
    ends = [m.opt_log.records[i].end_cond for i in (1, 2, 3)]
    assert all(e.startswith("Error termination: ValueError: task cannot evaluate x0=4.500") for e in ends)


def test_the_manager_seed_makes_a_one_slot_run_reproducible(tmp_path):
    """Every optimizer gets a seed derived from setup(seed=...) and its id: same seed, same run,
    whatever numpy's global generator holds; each optimizer still samples differently."""
    from glompo_hpc import CMAOptimizer, RandomGenerator, Rastrigin

    def run(wd, seed, global_seed):
        np.random.seed(global_seed)  # must not matter
        m = make(wd, task=Rastrigin(dims=3), selector=CycleSelector((CMAOptimizer, {"sigma0": 2.0, "popsize": 6})),
                 max_jobs=1, x0_generator=RandomGenerator(BOUNDS, seed=2), exit_conditions=MaxFuncCalls(3000),
                 stoppers=False, seed=seed)
        m.start_manager()
        return m

    a, b, c = run(tmp_path / "a", 11, 1), run(tmp_path / "b", 11, 2), run(tmp_path / "c", 12, 1)

    def fx_in_call_order(m):
        ids = np.concatenate([m.opt_log.history(i, "call_id") for i in m.opt_log.opt_ids])
        fx = np.concatenate([m.opt_log.history(i, "fx") for i in m.opt_log.opt_ids])
        return fx[np.argsort(ids)][:2900]  # where the run stops depends on batch timing, not the sequence

    assert a.seed == 11 and a.stoppers is None
    assert np.array_equal(fx_in_call_order(a), fx_in_call_order(b)) and a.o_counter > 1
    assert not np.array_equal(fx_in_call_order(a), fx_in_call_order(c))
    firsts = [tuple(a.opt_log.history(i, "x")[1]) for i in a.opt_log.opt_ids if a.opt_log.n_evals(i) > 1]
    assert len(set(firsts)) == len(firsts)  # different optimizers sample differently
