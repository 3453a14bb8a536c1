"""Combining criteria with & and |: laziness, reset, strings, families, pickling."""

import logging

import dill
import numpy as np
import pytest

from glompo_hpc.combinable import AndCombination, BaseCombinable, OrCombination
from glompo_hpc.core.optlog import OptimizerLog
from glompo_hpc.exit_conditions import BaseExitCondition, MaxFuncCalls
from glompo_hpc.stoppers import AndStopper, BaseStopper, MinFuncCalls, OrStopper, TimeAnnealing


class Probe(BaseStopper):
    """A stopper with a fixed answer that counts how often it was asked."""

    def __init__(self, value, name="p"):
        self.value = value
        self.name = name
        self.n_calls = 0

    def __call__(self, log, best_opt_id, tested_opt_id):
        self.n_calls += 1
        return self.value


def call(criterion):
    return criterion(None, 0, 1)


@pytest.fixture
def abc():
    return Probe(True, "a"), Probe(False, "b"), Probe(True, "c")


# ------------------------------------------------------------ structure and family

def test_combinations_are_members_of_the_family(abc):
    a, b, _ = abc
    assert isinstance(a & b, AndStopper) and isinstance(a & b, BaseStopper)
    assert isinstance(a | b, OrStopper) and isinstance(a | b, BaseStopper)
    assert isinstance((a | b) & a, BaseStopper)


def test_same_operator_chains_flatten_into_one_combination(abc):
    a, b, c = abc
    combo = a & b & c
    assert combo.members == (a, b, c)
    assert str(combo) == ("Probe(value=True, name='a') & Probe(value=False, name='b')"
                          " & Probe(value=True, name='c')")


def test_and_binds_tighter_than_or(abc):
    a, b, c = abc
    combo = a | b & c
    assert isinstance(combo, OrStopper)
    assert combo.members[0] is a and isinstance(combo.members[1], AndStopper)
    assert str(combo) == "Probe(value=True, name='a') | (Probe(value=False, name='b') & Probe(value=True, name='c'))"
    assert str((a | b) & c) == "(Probe(value=True, name='a') | Probe(value=False, name='b')) & Probe(value=True, name='c')"


def test_iteration_yields_leaves_in_order(abc):
    a, b, c = abc
    assert list((a | b) & (c | a)) == [a, b, c, a]
    assert list(a) == [a]


def test_repr_shows_structure(abc):
    a, b, _ = abc
    assert repr(a & b) == "AndStopper(Probe(value=True, name='a'), Probe(value=False, name='b'))"


def test_mixing_families_raises_naming_both():
    stopper, condition = MinFuncCalls(5), MaxFuncCalls(100)
    with pytest.raises(TypeError, match=r"MinFuncCalls\(min_pts=5\).*MaxFuncCalls\(fmax=100\)"):
        _ = stopper & condition
    with pytest.raises(TypeError, match=r"MaxFuncCalls\(fmax=100\).*MinFuncCalls\(min_pts=5\)"):
        _ = condition | stopper


def test_combining_with_a_non_criterion_raises(abc):
    with pytest.raises(TypeError):
        _ = abc[0] & 3


def test_combination_needs_two_members(abc):
    with pytest.raises(TypeError, match="at least two"):
        AndStopper(abc[0])


def test_base_classes_are_abstract():
    with pytest.raises(TypeError):
        BaseStopper()
    with pytest.raises(TypeError):
        BaseExitCondition()


def test_loggers_are_named_by_family():
    assert MinFuncCalls(1).logger is logging.getLogger("glompo_hpc.stopper")
    assert MaxFuncCalls(1).logger is logging.getLogger("glompo_hpc.exitcondition")


def test_generic_combinations_register_per_family():
    assert issubclass(AndStopper, AndCombination) and issubclass(OrStopper, OrCombination)
    assert BaseStopper._combiners == {"&": AndStopper, "|": OrStopper}
    assert BaseExitCondition._combiners["&"] is not AndStopper


# ------------------------------------------------------------ evaluation

def test_or_skips_the_rest_after_true(abc):
    a, b, _ = abc
    assert call(a | b) is True
    assert (a.n_calls, b.n_calls) == (1, 0)


def test_and_skips_the_rest_after_false(abc):
    a, b, c = abc
    assert call(b & c) is False
    assert (b.n_calls, c.n_calls) == (1, 0)
    assert call(a & c) is True
    assert (a.n_calls, c.n_calls) == (1, 1)


def test_or_evaluates_on_after_false(abc):
    _, b, c = abc
    assert call(b | c) is True
    assert (b.n_calls, c.n_calls) == (1, 1)


def test_results_are_stored_as_plain_bools():
    probe = Probe(np.bool_(True))
    assert call(probe) is True and probe.last_result is True
    assert Probe(1).last_result is None


def test_skipped_leaves_show_no_stale_result(abc):
    a, b, _ = abc
    combo = b | Probe(True, "d")
    call(combo)
    assert combo.members[1].last_result is True
    b.value = True
    call(combo)
    assert b.last_result is True and combo.members[1].last_result is None


def test_reset_clears_every_leaf(abc):
    a, b, c = abc
    combo = (a & b) | c
    call(combo)
    combo.reset()
    assert [leaf.last_result for leaf in combo] == [None, None, None]
    assert combo.last_result is None


def test_str_with_result(abc):
    a, b, c = abc
    combo = (a & b) | c
    call(combo)
    assert combo.str_with_result() == ("(Probe(value=True, name='a') = True & Probe(value=False, name='b') = False)"
                                       " | Probe(value=True, name='c') = True")
    assert MinFuncCalls(3).str_with_result() == "MinFuncCalls(min_pts=3) = None"


def test_long_settings_are_abbreviated_in_str_only():
    probe = Probe(list(range(10)))
    assert str(probe) == "Probe(value=[0, ..., 9] (10 items), name='p')"
    assert repr(probe) == "Probe(value=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], name='p')"


def test_user_subclass_without_init_call_still_works():
    class Always(BaseCombinable, family="testfamily"):
        def __call__(self):
            return 1

    class AndAlways(AndCombination, Always):
        pass

    combo = Always() & Always()
    assert isinstance(combo, AndAlways) and combo() is True
    assert [leaf.last_result for leaf in combo] == [True, True]


def test_dill_round_trip_keeps_state_and_randomness():
    log = OptimizerLog(1)
    for opt_id, n in ((0, 10), (1, 40)):
        log.add_optimizer(opt_id, "CMAOptimizer", 0.0)
        log.put_batch(opt_id, np.arange(n), np.zeros((n, 1)), np.ones(n))
    combo = MinFuncCalls(2) & TimeAnnealing(crit_ratio=1, seed=7)
    combo(log, 0, 1)
    copy = dill.loads(dill.dumps(combo))
    assert str(copy) == str(combo)
    assert [leaf.last_result for leaf in copy] == [leaf.last_result for leaf in combo]
    assert isinstance(copy, AndStopper)
    assert [copy(log, 0, 1) for _ in range(20)] == [combo(log, 0, 1) for _ in range(20)]
