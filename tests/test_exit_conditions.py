"""Exit conditions on a fake manager: thresholds, state, time, reasons."""

import math
import time
from types import SimpleNamespace

import dill
import pytest

from glompo_hpc import exit_conditions as ec
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.exit_conditions import (AndExitCondition, BaseExitCondition, KillsAfterConvergence, MaxFuncCalls,
                                        MaxKills, MaxOptsStarted, MaxSeconds, NOptConverged, TargetCost)


def manager(**attrs):
    fields = dict(f_counter=0, o_counter=0, conv_counter=0, stopped_opts={}, fx=math.inf,
                  t_start=time.time(), t_used=0.0)
    fields.update(attrs)
    fields["result"] = SimpleNamespace(fx=fields.pop("fx"))
    return SimpleNamespace(**fields)


def stops(n):
    return {opt_id: 1000.0 + opt_id for opt_id in range(n)}


@pytest.mark.parametrize("condition, below, at", [
    (MaxFuncCalls(1000), dict(f_counter=999), dict(f_counter=1000)),
    (NOptConverged(3), dict(conv_counter=2), dict(conv_counter=3)),
    (MaxOptsStarted(4), dict(o_counter=3), dict(o_counter=4)),
    (MaxKills(2), dict(stopped_opts=stops(1)), dict(stopped_opts=stops(2))),
    (TargetCost(1.0, atol=0.5), dict(fx=1.5000001), dict(fx=1.5)),
])
def test_threshold_conditions(condition, below, at):
    assert condition(manager(**below)) is False
    assert condition(manager(**at)) is True
    assert condition.last_result is True


def test_target_cost_without_result_is_false():
    assert TargetCost(-1e300)(manager()) is False


class TestKillsAfterConvergence:
    def test_default_fires_at_first_convergence(self):
        condition = KillsAfterConvergence()
        assert condition(manager(stopped_opts=stops(5))) is False
        assert condition(manager(conv_counter=1, stopped_opts=stops(5))) is True

    def test_counts_only_stops_after_the_convergences(self):
        condition = KillsAfterConvergence(n_killed=2, n_converged=2)
        assert condition(manager(conv_counter=1, stopped_opts=stops(3))) is False
        assert condition.stops_at_convergence is None
        assert condition(manager(conv_counter=2, stopped_opts=stops(3))) is False
        assert condition.stops_at_convergence == 3
        assert condition(manager(conv_counter=2, stopped_opts=stops(4))) is False
        assert condition(manager(conv_counter=2, stopped_opts=stops(5))) is True

    def test_state_survives_reset_and_pickling(self):
        condition = KillsAfterConvergence(n_killed=1) | MaxFuncCalls(10**6)
        condition(manager(conv_counter=1, stopped_opts=stops(2)))
        condition.reset()
        copy = dill.loads(dill.dumps(condition))
        assert copy.members[0].stops_at_convergence == 2
        assert copy(manager(conv_counter=1, stopped_opts=stops(3))) is True
        assert copy.reason() == "KillsAfterConvergence(n_killed=1, n_converged=1)"


class TestMaxSeconds:
    def test_session_limit(self):
        ten_s_ago = time.time() - 10
        assert MaxSeconds(session_max=5)(manager(t_start=ten_s_ago, t_used=1e6)) is True
        assert MaxSeconds(session_max=20)(manager(t_start=ten_s_ago, t_used=1e6)) is False

    def test_overall_limit_includes_earlier_sessions(self):
        ten_s_ago = time.time() - 10
        assert MaxSeconds(overall_max=105)(manager(t_start=ten_s_ago, t_used=100)) is True
        assert MaxSeconds(overall_max=120)(manager(t_start=ten_s_ago, t_used=100)) is False

    def test_str_shows_the_limit_in_force(self):
        assert str(MaxSeconds(session_max=3600)) == "MaxSeconds(session_max=3600.0)"
        assert str(ec.TimeLimit(overall_max=60)) == "MaxSeconds(overall_max=60.0)"

    @pytest.mark.parametrize("kwargs", [{}, dict(session_max=1, overall_max=2)])
    def test_exactly_one_limit(self, kwargs):
        with pytest.raises(ConfigurationError, match="exactly one"):
            MaxSeconds(**kwargs)


@pytest.mark.parametrize("make, bad", [
    (lambda: MaxFuncCalls(0), "fmax must be an integer >= 1, got 0"),
    (lambda: MaxFuncCalls(1.5), "fmax .* got 1.5"),
    (lambda: TargetCost(math.inf), "target .* got inf"),
    (lambda: TargetCost(0, atol=-1), "atol .* got -1"),
    (lambda: NOptConverged(0), "nconv .* got 0"),
    (lambda: MaxOptsStarted(-1), "omax .* got -1"),
    (lambda: MaxKills(0), "kills_max .* got 0"),
    (lambda: KillsAfterConvergence(n_killed=-1), "n_killed .* got -1"),
    (lambda: KillsAfterConvergence(n_converged=0), "n_converged .* got 0"),
    (lambda: MaxSeconds(session_max=-5), "session_max .* got -5"),
    (lambda: MaxSeconds(overall_max="1h"), "overall_max .* got '1h'"),
])
def test_validation_names_the_bad_value(make, bad):
    with pytest.raises(ConfigurationError, match=bad):
        make()


# ------------------------------------------------------------ reasons

def test_reason_of_a_leaf():
    condition = MaxFuncCalls(1000)
    assert condition.reason() == ""
    condition(manager(f_counter=1000))
    assert condition.reason() == "MaxFuncCalls(fmax=1000)"


def test_reason_names_only_the_leaves_that_fired():
    condition = MaxFuncCalls(100) | NOptConverged(2) | MaxOptsStarted(1)
    assert condition(manager(conv_counter=2, o_counter=5)) is True
    assert condition.reason() == "NOptConverged(nconv=2)"
    assert condition.members[2].last_result is None


def test_reason_of_combinations():
    condition = (MaxFuncCalls(100) & NOptConverged(2)) | MaxOptsStarted(3)
    assert isinstance(condition.members[0], AndExitCondition) and isinstance(condition, BaseExitCondition)
    condition(manager(f_counter=100, conv_counter=2))
    assert condition.reason() == "MaxFuncCalls(fmax=100) & NOptConverged(nconv=2)"
    condition(manager(f_counter=100, o_counter=3))
    assert condition.reason() == "MaxOptsStarted(omax=3)"
    assert condition.str_with_result() == ("(MaxFuncCalls(fmax=100) = True & NOptConverged(nconv=2) = False)"
                                           " | MaxOptsStarted(omax=3) = True")
    condition(manager())
    assert condition.reason() == ""


def test_reason_of_nested_parts():
    condition = (MaxFuncCalls(1) | MaxKills(1)) & (NOptConverged(1) | MaxOptsStarted(1))
    condition(manager(f_counter=1, conv_counter=1))
    assert condition.reason() == "MaxFuncCalls(fmax=1) & NOptConverged(nconv=1)"
    # A hand-built Or holding a fired And keeps the And readable.
    inner = MaxFuncCalls(1) & NOptConverged(1)
    outer = ec.OrExitCondition(inner, MaxKills(1))
    outer(manager(f_counter=1, conv_counter=1))
    assert outer.reason() == "MaxFuncCalls(fmax=1) & NOptConverged(nconv=1)"


def test_reason_is_a_conjunction_of_the_responsible_leaves():
    condition = ec.AndExitCondition(MaxFuncCalls(1) | NOptConverged(5), MaxKills(1) & MaxOptsStarted(1))
    condition(manager(f_counter=1, stopped_opts=stops(1), o_counter=1))
    assert condition.reason() == "MaxFuncCalls(fmax=1) & MaxKills(kills_max=1) & MaxOptsStarted(omax=1)"


def test_aliases_are_the_same_classes():
    assert ec.MaxTotalFunctionCalls is MaxFuncCalls
    assert ec.TargetFunctionValue is TargetCost
    assert ec.MaxOptimizersConverged is NOptConverged
    assert ec.MaxOptimizersStarted is MaxOptsStarted
    assert ec.MaxOptimizersStopped is MaxKills
    assert ec.StopsAfterConvergence is KillsAfterConvergence
    assert ec.TimeLimit is MaxSeconds
    assert set(ec.__all__) <= set(dir(ec))
