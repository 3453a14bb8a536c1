"""Tests of the starting-point generators (glompo_hpc.generators)."""

from __future__ import annotations

import types

import dill
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glompo_hpc.core.optlog import OptimizerLog
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.generators import (AnnealingGenerator, BasinHoppingGenerator, ExploitExploreGenerator,
                                   IncumbentGenerator, PerturbationGenerator, RandomGenerator,
                                   SinglePointGenerator)

BOUNDS = [(-1.0, 1.0), (0.0, 10.0), (-5.0, -2.0)]


def make_manager(bounds=BOUNDS, f_counter=0, o_counter=0, result_x=None, result_fx=float("inf")):
    return types.SimpleNamespace(n_parms=len(bounds), bounds=bounds, f_counter=f_counter, o_counter=o_counter,
                                 result=types.SimpleNamespace(x=result_x, fx=result_fx),
                                 opt_log=OptimizerLog(len(bounds)))


def add_result(manager, opt_id, x, fx, ended=False, first_call=None):
    """Log one evaluation (x, fx) for optimizer ``opt_id`` (created when new)."""
    log = manager.opt_log
    if opt_id not in log:
        log.add_optimizer(opt_id, "Fake", t_start=0.0)
    call = first_call if first_call is not None else len(log)
    log.put_batch(opt_id, np.array([call]), np.array([x], dtype=float), np.array([fx], dtype=float))
    if ended:
        log.put_metadata(opt_id, t_end=1.0, end_cond="converged")


def inside(x, bounds):
    b = np.asarray(bounds, dtype=float)
    return x.shape == (len(b),) and np.all(x >= b[:, 0]) and np.all(x <= b[:, 1])


bounds_strategy = st.lists(
    st.tuples(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6)).map(lambda t: (t[0], t[0] + t[1])),
    min_size=1, max_size=6)


# ------------------------------------------------------------ shape, bounds, seeds

@settings(max_examples=30, deadline=None)
@given(bounds=bounds_strategy, seed=st.integers(0, 2**32 - 1))
def test_simple_generators_stay_in_bounds(bounds, seed):
    manager = make_manager(bounds, f_counter=50)
    x0 = np.mean(np.asarray(bounds), axis=1)
    add_result(manager, 1, x0, 1.0, ended=True)
    gens = [RandomGenerator(bounds, seed=seed), SinglePointGenerator(bounds, seed=seed),
            IncumbentGenerator(bounds, seed=seed), ExploitExploreGenerator(bounds, 100, seed=seed),
            PerturbationGenerator(x0, bounds, scale=1.0, seed=seed), BasinHoppingGenerator(seed=seed)]
    for gen in gens:
        for _ in range(3):
            assert inside(gen.generate(manager), bounds), gen


@pytest.mark.parametrize("factory", [
    lambda s: RandomGenerator(BOUNDS, seed=s),
    lambda s: SinglePointGenerator(BOUNDS, seed=s),
    lambda s: ExploitExploreGenerator(BOUNDS, 100, seed=s),
    lambda s: PerturbationGenerator([0, 5, -3], BOUNDS, scale=[0.1, 1, 0.5], seed=s),
    lambda s: BasinHoppingGenerator(seed=s),
])
def test_seed_reproduces_and_dill_resumes(factory):
    def run(gen, n=5):
        manager = make_manager(f_counter=60)
        add_result(manager, 1, [0.5, 5, -3], 2.0, ended=True)
        add_result(manager, 2, [-0.5, 1, -4], 1.0, ended=True)
        return [gen.generate(manager) for _ in range(n)]

    assert np.array_equal(run(factory(7)), run(factory(7)))
    assert not np.array_equal(run(factory(7)), run(factory(8)))
    gen = factory(3)
    run(gen, 2)
    clone = dill.loads(dill.dumps(gen))
    assert np.array_equal(run(gen), run(clone))


def test_str_names_settings():
    assert str(ExploitExploreGenerator(BOUNDS, 100, focus=2)) == \
        "ExploitExploreGenerator(max_func_calls=100, focus=2.0)"
    assert "temperature=1.0" in str(BasinHoppingGenerator())
    assert str(RandomGenerator([(0, 1)] * 9)) == "RandomGenerator(bounds=[[0.0, 1.0], ..., [0.0, 1.0]] (9 items))"


# ------------------------------------------------------------ behaviour

def test_single_point_is_fixed():
    gen = SinglePointGenerator(BOUNDS, x=[0.1, 2, -3])
    m = make_manager()
    assert np.array_equal(gen.generate(m), [0.1, 2, -3])
    gen = SinglePointGenerator(BOUNDS, seed=1)
    first = gen.generate(m)
    assert inside(first, BOUNDS) and np.array_equal(first, gen.generate(m))


def test_incumbent_returns_best_or_random():
    gen = IncumbentGenerator(BOUNDS, seed=0)
    assert inside(gen.generate(make_manager()), BOUNDS)
    best = np.array([0.25, 3.0, -4.0])
    x = gen.generate(make_manager(result_x=best, result_fx=-1.0))
    assert np.array_equal(x, best) and x is not best


def test_exploit_explore_limits():
    gen = ExploitExploreGenerator(BOUNDS, max_func_calls=100, seed=4)
    m = make_manager(f_counter=0)
    add_result(m, 1, [0.5, 5, -3], 1.0)
    add_result(m, 2, [-0.5, 1, -4], 2.0)
    bests = {(0.5, 5.0, -3.0), (-0.5, 1.0, -4.0)}
    assert tuple(gen.generate(m)) not in bests  # alpha = 0: purely random
    m.f_counter = 250  # alpha clipped to 1: exactly some optimizer's best
    picks = [tuple(gen.generate(m)) for _ in range(300)]
    assert set(picks) == bests
    assert picks.count((0.5, 5.0, -3.0)) > picks.count((-0.5, 1.0, -4.0))  # weights 2:1 favour the better
    assert gen.alpha(50) == pytest.approx(0.5)
    assert ExploitExploreGenerator(BOUNDS, 100, focus=2).alpha(50) == pytest.approx(0.25)


def test_exploit_explore_blend_and_empty_log():
    gen = ExploitExploreGenerator(BOUNDS, max_func_calls=100, seed=5)
    m = make_manager(f_counter=100)
    assert inside(gen.generate(m), BOUNDS)  # no results yet: random even at alpha = 1
    add_result(m, 1, [0.0, 5.0, -3.5], 0.0)
    m.f_counter = 50
    x = gen.generate(m)
    assert inside(x, BOUNDS)
    # the blend is the midpoint of the best and a point in the box, so within half a box of the best
    half = (np.diff(np.asarray(BOUNDS), axis=1).ravel()) / 2
    assert np.all(np.abs(x - [0.0, 5.0, -3.5]) <= half + 1e-12)


def test_perturbation_concentrates_and_truncates():
    x0 = [1.0, 0.0, -2.0]  # on the bounds: half of each normal is cut away
    gen = PerturbationGenerator(x0, BOUNDS, scale=0.01, seed=2)
    pts = np.array([gen.generate(make_manager()) for _ in range(200)])
    assert all(inside(p, BOUNDS) for p in pts)
    assert np.all(np.abs(pts - x0) < 0.1)
    wide = PerturbationGenerator([0, 5, -3], BOUNDS, scale=[100, 100, 100], seed=2)
    assert all(inside(wide.generate(None), BOUNDS) for _ in range(50))


def test_basin_hopping_first_basin_and_steps():
    gen = BasinHoppingGenerator(max_step_size=0.1, seed=0)
    m = make_manager()
    assert inside(gen.generate(m), BOUNDS) and gen.basin is None  # nothing logged: random
    add_result(m, 1, [0.0, 5.0, -3.5], 3.0)  # live optimizer seeds the first basin
    x = gen.generate(m)
    assert np.array_equal(gen.basin[0], [0.0, 5.0, -3.5]) and gen.n_tests == 0
    width = np.array([2.0, 10.0, 3.0])
    assert np.all(np.abs(x - [0.0, 5.0, -3.5]) <= 0.1 * width + 1e-12)


def test_basin_hopping_metropolis():
    gen = BasinHoppingGenerator(temperature=0, seed=0)
    m = make_manager()
    add_result(m, 1, [0.0, 5.0, -3.5], 3.0, ended=True)
    gen.generate(m)
    add_result(m, 2, [0.5, 5.0, -3.5], 4.0, ended=True)  # worse at T = 0: rejected
    gen.generate(m)
    assert gen.basin[1] == 3.0 and (gen.n_tests, gen.n_accepted) == (1, 0)
    gen.generate(m)  # no newly ended optimizer: no test
    assert gen.n_tests == 1
    add_result(m, 3, [0.5, 6.0, -3.5], 2.0, ended=True)
    add_result(m, 4, [0.5, 7.0, -3.5], 1.0, ended=True)  # best of the new ones is the trial
    gen.generate(m)
    assert gen.basin[1] == 1.0 and (gen.n_tests, gen.n_accepted) == (2, 1)
    hot = BasinHoppingGenerator(temperature=1e9, seed=0)
    hot.basin = (np.zeros(3), -5.0)
    hot._considered = set()
    hot.generate(m)  # huge temperature: the worse trial (fx = 1) is accepted
    assert hot.basin[1] == 1.0


def test_basin_hopping_adapts_step_size():
    m = make_manager()
    shrink = BasinHoppingGenerator(temperature=0, interval=2, factor=0.5, max_step_size=0.4, seed=0)
    grow = BasinHoppingGenerator(temperature=0, interval=2, factor=0.5, max_step_size=0.4, seed=0)
    add_result(m, 0, [0.0, 5.0, -3.5], 0.0, ended=True)
    shrink.generate(m)
    grow.generate(m)
    grow.step_size = 0.1
    for k in range(1, 5):  # every trial is worse: nothing accepted at T = 0
        add_result(m, k, [0.0, 5.0, -3.5], float(k), ended=True)
        shrink.generate(m)
    assert shrink.step_size == pytest.approx(0.4 * 0.5 ** 2)
    m2 = make_manager()
    add_result(m2, 0, [0.0, 5.0, -3.5], 0.0, ended=True)
    grow.basin, grow._considered = None, set()
    grow.generate(m2)
    for k in range(1, 7):  # every trial is better: all accepted, step grows up to the cap
        add_result(m2, k, [0.0, 5.0, -3.5], float(-k), ended=True)
        grow.generate(m2)
    assert grow.step_size == pytest.approx(0.4)


def test_annealing_counts_task_calls_exactly():
    calls = []

    def task(x):
        calls.append(np.array(x))
        return float(np.sum(np.square(x)))

    gen = AnnealingGenerator(BOUNDS, task, maxiter=3, seed=1)
    m = make_manager(result_x=np.array([0.5, 5.0, -3.0]), result_fx=1.0)
    before = gen.n_task_calls
    x = gen.generate(m)
    assert inside(x, BOUNDS)
    assert gen.n_task_calls - before == gen.last_task_calls == len(calls) > 0  # what the manager adds
    assert task(x) <= task([0.5, 5.0, -3.0])  # the best it saw, never worse than its start
    calls.clear()
    before = gen.n_task_calls
    gen.generate(make_manager())
    assert gen.n_task_calls - before == gen.last_task_calls == len(calls)
    assert gen.last_task_calls == gen.budget == 1 + 2 * 3 * 3  # maxiter iterations of 2 * n_parms, plus the start
    clone = dill.loads(dill.dumps(gen))  # the running total survives a checkpoint
    assert clone.n_task_calls == gen.n_task_calls == 2 * gen.budget


def test_annealing_budget_non_finite_and_task_errors():
    nan_calls = []
    gen = AnnealingGenerator(BOUNDS, lambda x: nan_calls.append(1) or float("nan"), maxiter=50, maxfun=7, seed=1)
    start = np.array([0.5, 5.0, -3.0])
    x = gen.generate(make_manager(result_x=start))
    assert np.array_equal(x, start)  # nothing finite seen: the unannealed start point
    assert gen.n_task_calls == len(nan_calls) == 7  # scipy's 1000 re-draws are cut at the budget

    def broken(x):
        raise KeyError("task failed")

    with pytest.raises(KeyError, match="task failed"):
        AnnealingGenerator(BOUNDS, broken, seed=0).generate(make_manager())


# ------------------------------------------------------------ validation

@pytest.mark.parametrize("build, fragment", [
    (lambda: RandomGenerator([(1, 0)]), "bounds[0]"),
    (lambda: RandomGenerator([(0, np.inf)]), "bounds[0]"),
    (lambda: RandomGenerator([1, 2]), "(min, max) pairs"),
    (lambda: SinglePointGenerator(BOUNDS, x=[0, 5, 7]), "x[2] = 7.0"),
    (lambda: SinglePointGenerator(BOUNDS, x=[0, 5]), "got 2"),
    (lambda: ExploitExploreGenerator(BOUNDS, 0), "max_func_calls"),
    (lambda: ExploitExploreGenerator(BOUNDS, 10, focus=-1), "focus"),
    (lambda: PerturbationGenerator([0, 5, -3], BOUNDS, scale=0), "scale"),
    (lambda: PerturbationGenerator([0, 5, -3], BOUNDS, scale=[1, -1, 1]), "dimension 1"),
    (lambda: PerturbationGenerator([0, 5, -3], BOUNDS, scale=[1, 1]), "scale"),
    (lambda: PerturbationGenerator([0, 50, -3], BOUNDS, scale=1), "x0[1] = 50.0"),
    (lambda: BasinHoppingGenerator(temperature=-1), "-1"),
    (lambda: BasinHoppingGenerator(max_step_size=1.5), "1.5"),
    (lambda: BasinHoppingGenerator(target_accept_rate=1), "target_accept_rate"),
    (lambda: BasinHoppingGenerator(interval=0), "interval"),
    (lambda: BasinHoppingGenerator(factor=1.2), "1.2"),
    (lambda: AnnealingGenerator(BOUNDS, task=3), "task"),
    (lambda: AnnealingGenerator(BOUNDS, sum, maxiter=0), "maxiter"),
    (lambda: AnnealingGenerator(BOUNDS, sum, visit=3.5), "visit must be a finite number in (1, 3], got 3.5"),
])
def test_validation_names_bad_value(build, fragment):
    with pytest.raises(ConfigurationError) as info:
        build()
    assert fragment in str(info.value)


def test_exploit_explore_polishes_the_incumbent_after_its_point():
    gen = ExploitExploreGenerator(BOUNDS, max_func_calls=100, seed=6, polish_after=0.9)
    m = make_manager(f_counter=80)
    add_result(m, 1, [0.5, 5, -3], 1.0)
    add_result(m, 2, [-0.5, 1, -4], 2.0)
    assert len({tuple(gen.generate(m)) for _ in range(20)}) == 20  # before 90 %: blends, all different
    m.f_counter = 90
    assert {tuple(gen.generate(m)) for _ in range(20)} == {(0.5, 5.0, -3.0)}  # the best optimizer's best
    assert str(gen) == "ExploitExploreGenerator(max_func_calls=100, focus=1.0, polish_after=0.9)"
    with pytest.raises(ConfigurationError, match="polish_after"):
        ExploitExploreGenerator(BOUNDS, 100, polish_after=1.5)
