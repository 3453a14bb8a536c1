"""Each stopper stops when its condition holds and not otherwise, on a real OptimizerLog."""

import math

import dill
import numpy as np
import pytest

from glompo_hpc.core.optlog import OptimizerLog
from glompo_hpc.errors import ConfigurationError
from glompo_hpc import stoppers as st
from glompo_hpc.stoppers import (BestUnmoving, EvaluationsUnmoving, LastPointsInvalid, MinFuncCalls,
                                 ParameterDistance, StepSize, TimeAnnealing, TypeHunter, ValueAnnealing)

BEST, TESTED, OTHER = 0, 1, 2


class CMAOptimizer:
    """Stands in for the real class: TypeHunter compares class names only."""


def feed(log, opt_id, fx, x=None, opt_type="CMAOptimizer"):
    """Append evaluations to ``opt_id`` (registering it first), x defaults to zeros."""
    fx = np.asarray(fx, dtype=float)
    x = np.zeros((len(fx), log.n_parms)) if x is None else np.asarray(x, dtype=float).reshape(len(fx), -1)
    if opt_id not in log:
        log.add_optimizer(opt_id, opt_type, 0.0)
    start = len(log)
    log.put_batch(opt_id, np.arange(start, start + len(fx)), x, fx)
    return log


def log_with(fx_tested, fx_best=(1.0,), n_parms=1):
    log = OptimizerLog(n_parms)
    feed(log, BEST, fx_best)
    return feed(log, TESTED, fx_tested)


def judge(stopper, log, best=BEST, tested=TESTED):
    return stopper(log, best, tested)


# ------------------------------------------------------------ value-based

class TestBestUnmoving:
    def test_stops_when_best_did_not_move(self):
        assert judge(BestUnmoving(3), log_with([10, 5, 5, 5])) is True

    def test_keeps_an_improving_optimizer(self):
        assert judge(BestUnmoving(3), log_with([10, 5, 4.9])) is False

    def test_change_exactly_at_tolerance_stops(self):
        assert judge(BestUnmoving(2, tol=0.1), log_with([10, 9])) is True
        assert judge(BestUnmoving(2, tol=0.1), log_with([10, 8.99])) is False

    def test_window_longer_than_history_never_stops(self):
        assert judge(BestUnmoving(5), log_with([5, 5, 5, 5])) is False

    def test_no_finite_value_at_window_start_never_stops(self):
        assert judge(BestUnmoving(2, tol=0.5), log_with([math.nan, 3])) is False
        assert judge(BestUnmoving(2), log_with([math.nan, math.inf])) is False


class TestEvaluationsUnmoving:
    def test_stops_on_flat_values(self):
        assert judge(EvaluationsUnmoving(3), log_with([9, 1, 1, 1])) is True

    def test_spread_exactly_at_tolerance_stops(self):
        # std([0, 2]) == 1 == abs(2 * 0.5)
        assert judge(EvaluationsUnmoving(2, tol=0.5), log_with([0, 2])) is True
        assert judge(EvaluationsUnmoving(2, tol=0.49), log_with([0, 2])) is False

    def test_only_the_window_counts(self):
        assert judge(EvaluationsUnmoving(2), log_with([0, 100, 100])) is True
        assert judge(EvaluationsUnmoving(3), log_with([0, 100, 100])) is False

    def test_non_finite_values_or_short_history_never_stop(self):
        assert judge(EvaluationsUnmoving(2, tol=1), log_with([1, math.nan])) is False
        assert judge(EvaluationsUnmoving(4), log_with([1, 1, 1])) is False


class TestLastPointsInvalid:
    def test_stops_after_n_invalid_values(self):
        log = log_with([1, math.nan, math.inf])
        assert judge(LastPointsInvalid(2), log) is True
        assert judge(LastPointsInvalid(3), log) is False
        assert judge(LastPointsInvalid(), log_with([1, -math.inf])) is True

    def test_short_history_never_stops(self):
        assert judge(LastPointsInvalid(3), log_with([math.nan, math.nan])) is False


def test_min_func_calls_is_a_gate():
    log = log_with([1, 2, 3, 4])
    assert judge(MinFuncCalls(4), log) is True
    assert judge(MinFuncCalls(5), log) is False
    assert judge(MinFuncCalls(1), log, tested=99) is False


# ------------------------------------------------------------ position-based

BOX = [(0, 3), (0, 4)]  # diagonal 5


def positions_log(tested_x, best_x=(0, 0), other_x=None):
    log = OptimizerLog(2)
    feed(log, BEST, [1.0], [best_x])
    feed(log, TESTED, [2.0] * len(tested_x), tested_x)
    if other_x is not None:
        feed(log, OTHER, [3.0], [other_x])
    return log


class TestParameterDistance:
    def test_distance_exactly_at_limit_stops(self):
        # limit 0.5 * 5 = 2.5 == |(1.5, 2)|
        assert judge(ParameterDistance(BOX, 0.5), positions_log([(9, 9), (1.5, 2)])) is True
        assert judge(ParameterDistance(BOX, 0.5), positions_log([(1.5, 2.01)])) is False

    def test_only_last_points_count(self):
        assert judge(ParameterDistance(BOX, 0.1), positions_log([(0, 0), (3, 4)])) is False

    def test_test_all_compares_with_every_other_optimizer(self):
        log = positions_log([(3, 4)], other_x=(3, 3.9))
        assert judge(ParameterDistance(BOX, 0.1), log) is False
        assert judge(ParameterDistance(BOX, 0.1, test_all=True), log) is True

    def test_never_compares_an_optimizer_with_itself(self):
        log = positions_log([(1, 1)])
        assert judge(ParameterDistance(BOX, 0.5), log, best=TESTED) is False
        assert judge(ParameterDistance(BOX, 0.5, test_all=True), log, best=TESTED) is True  # close to BEST

    def test_bounds_must_match_the_task(self):
        with pytest.raises(ConfigurationError, match="3 bounds but the task has 2"):
            judge(ParameterDistance(BOX + [(0, 1)], 0.5), positions_log([(1, 1)]))


class TestStepSize:
    def test_mean_step_below_tolerance_stops(self):
        # limit 0.1 * 5 = 0.5
        assert judge(StepSize(BOX, 3, 0.1), positions_log([(9, 9), (0, 0), (0.25, 0), (0.5, 0)])) is True

    def test_mean_step_at_tolerance_does_not_stop(self):
        assert judge(StepSize(BOX, 3, 0.1), positions_log([(0, 0), (0.5, 0), (1, 0)])) is False

    def test_short_history_never_stops(self):
        assert judge(StepSize(BOX, 3, 0.1), positions_log([(0, 0), (0, 0)])) is False


# ------------------------------------------------------------ random and type

def counts_log(n_best, n_tested):
    return log_with(np.ones(n_tested), fx_best=np.ones(n_best))


class TestTimeAnnealing:
    def test_never_stops_optimizers_that_ran_no_longer_than_the_best(self):
        stopper = TimeAnnealing(crit_ratio=1, seed=0)
        assert not any(judge(stopper, counts_log(10, 10)) for _ in range(200))

    def test_long_running_optimizer_usually_stops(self):
        stopper = TimeAnnealing(seed=0)
        assert sum(judge(stopper, counts_log(1, 100)) for _ in range(200)) > 180

    def test_seed_makes_it_reproducible_and_pickling_keeps_the_stream(self):
        log = counts_log(5, 10)
        first, second = TimeAnnealing(seed=42), TimeAnnealing(seed=42)
        draws = [judge(first, log) for _ in range(30)]
        assert draws == [judge(second, log) for _ in range(30)]
        assert 0 < sum(draws) < 30
        copy = dill.loads(dill.dumps(first))
        assert [judge(copy, log) for _ in range(30)] == [judge(first, log) for _ in range(30)]


class TestValueAnnealing:
    def test_never_stops_an_optimizer_as_good_as_the_best(self):
        stopper = ValueAnnealing(seed=0)
        assert not any(judge(stopper, log_with([1.0], fx_best=[1.0])) for _ in range(100))
        assert not any(judge(stopper, log_with([0.5], fx_best=[1.0])) for _ in range(100))

    def test_never_stops_when_best_is_zero(self):
        assert not any(judge(ValueAnnealing(seed=0), log_with([5.0], fx_best=[0.0])) for _ in range(100))

    def test_much_worse_optimizer_stops(self):
        assert all(judge(ValueAnnealing(seed=0), log_with([1000.0], fx_best=[1.0])) for _ in range(50))
        assert judge(ValueAnnealing(seed=0), log_with([math.nan], fx_best=[1.0])) is True

    def test_twice_the_best_stops_with_one_minus_med_kill_chance(self):
        stopper = ValueAnnealing(med_kill_chance=0.8, seed=3)
        log = log_with([2.0], fx_best=[1.0])
        assert 0.1 < np.mean([judge(stopper, log) for _ in range(1000)]) < 0.3

    def test_seed_makes_it_reproducible(self):
        log = log_with([2.0], fx_best=[1.0])
        a, b = ValueAnnealing(seed=5), ValueAnnealing(seed=5)
        assert [judge(a, log) for _ in range(30)] == [judge(b, log) for _ in range(30)]


def test_type_hunter_accepts_a_class_or_its_name():
    log = log_with([1.0])
    feed(log, OTHER, [1.0], opt_type="ScipyOptimizer")
    for target in (CMAOptimizer, "CMAOptimizer"):
        hunter = TypeHunter(target)
        assert str(hunter) == "TypeHunter(opt_class='CMAOptimizer')"
        assert judge(hunter, log) is True
        assert judge(hunter, log, tested=OTHER) is False
        assert judge(hunter, log, tested=99) is False


def test_type_hunter_aims_another_stopper():
    log = log_with([1, 1, 1])
    feed(log, OTHER, [1, 1, 1], opt_type="ScipyOptimizer")
    combo = TypeHunter("ScipyOptimizer") & MinFuncCalls(2)
    assert judge(combo, log) is False and combo.members[1].last_result is None
    assert judge(combo, log, tested=OTHER) is True


def test_aliases_are_the_same_classes():
    assert st.BestFunctionValueUnmoving is BestUnmoving
    assert st.CurrentFunctionValueUnmoving is EvaluationsUnmoving
    assert st.MaxSequentialInvalidPoints is LastPointsInvalid
    assert st.TypeStopper is TypeHunter
    assert set(st.__all__) <= set(dir(st))


def test_str_shows_settings():
    assert str(BestUnmoving(calls=100, tol=0.01)) == "BestUnmoving(calls=100, tol=0.01)"
    assert str(StepSize(BOX, 10)) == "StepSize(bounds=((0.0, 3.0), (0.0, 4.0)), calls=10, relative_tol=0.05)"
    assert str(TimeAnnealing(2, seed=1)) == "TimeAnnealing(crit_ratio=2.0, seed=1)"


@pytest.mark.parametrize("make, bad", [
    (lambda: BestUnmoving(0), "calls must be an integer >= 2, got 0"),
    (lambda: BestUnmoving(1), "got 1"),
    (lambda: BestUnmoving(2.5), "calls .* got 2.5"),
    (lambda: BestUnmoving(True), "calls .* got True"),
    (lambda: BestUnmoving(5, tol=-0.1), "tol must .* got -0.1"),
    (lambda: EvaluationsUnmoving(5, tol=math.nan), "tol must .* got nan"),
    (lambda: LastPointsInvalid(0), "n_iters .* got 0"),
    (lambda: MinFuncCalls(-3), "min_pts .* got -3"),
    (lambda: ParameterDistance(BOX, 0), "relative_distance must be a finite number > 0, got 0"),
    (lambda: ParameterDistance([(0, 1), (2, 1)], 0.1), r"bounds\[1\]: min 2.0 >= max 1.0"),
    (lambda: ParameterDistance([], 0.1), "non-empty"),
    (lambda: ParameterDistance([1, 2], 0.1), r"pairs, got \[1, 2\]"),
    (lambda: StepSize(BOX, 1), "calls .* got 1"),
    (lambda: StepSize(BOX, 5, relative_tol=-1), "relative_tol .* got -1"),
    (lambda: TimeAnnealing(0), "crit_ratio .* got 0"),
    (lambda: ValueAnnealing(1), "med_kill_chance must be < 1, got 1"),
    (lambda: ValueAnnealing(0), "med_kill_chance .* got 0"),
    (lambda: TypeHunter(3), "opt_class .* got 3"),
])
def test_validation_names_the_bad_value(make, bad):
    with pytest.raises(ConfigurationError, match=bad):
        make()


# ------------------------------------------------------------ basin and polishing (issue 14)

def test_basin_held_stops_a_worse_optimizer_settled_near_a_better_best():
    log = OptimizerLog(2)
    feed(log, BEST, [1.0], x=[[0.0, 0.0]])
    feed(log, TESTED, [5.0, 3.0], x=[[9.0, 9.0], [0.5, 0.0]])  # its best (3.0) sits 0.5 from BEST's (1.0)
    stopper = st.BasinHeld([(-10, 10), (-10, 10)], relative_distance=0.05)  # limit 0.05 * 28.3 = 1.41
    assert judge(stopper, log) is True
    assert judge(st.BasinHeld([(-10, 10), (-10, 10)], relative_distance=0.01), log) is False  # limit 0.28


def test_basin_held_spares_the_better_and_the_distant():
    log = OptimizerLog(2)
    feed(log, BEST, [1.0], x=[[0.0, 0.0]])
    feed(log, TESTED, [0.5], x=[[0.1, 0.0]])  # better than its neighbour: it holds the basin
    feed(log, OTHER, [2.0], x=[[8.0, 8.0]])  # worse, but far from every better best
    stopper = st.BasinHeld([(-10, 10), (-10, 10)], relative_distance=0.05)
    assert judge(stopper, log) is False
    assert judge(stopper, log, tested=OTHER) is False
    assert judge(stopper, log, tested=BEST) is True  # finished or not, TESTED's better best counts


def test_polish_due_stops_only_optimizers_started_before_the_point():
    log = OptimizerLog(1)
    feed(log, BEST, [3.0] * 6)
    due = st.PolishDue(calls=8)
    assert judge(due, log, tested=BEST) is False  # 6 evaluations made: not yet
    feed(log, TESTED, [2.0] * 4)  # evaluations 7-10: TESTED started before the point
    assert judge(due, log, tested=BEST) is True and judge(due, log) is True
    feed(log, OTHER, [1.0] * 2)  # started after the point (log held 10 >= 8): a polishing child
    assert judge(due, log, tested=OTHER) is False


def test_not_best_spares_the_best():
    log = log_with([2.0])
    assert judge(st.NotBest(), log) is True and judge(st.NotBest(), log, tested=BEST) is False
    assert judge(st.NotBest() & MinFuncCalls(1), log, tested=BEST) is False
