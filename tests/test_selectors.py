"""Tests of the optimizer selectors and spawn controllers (glompo_hpc.selectors)."""

from __future__ import annotations

import types

import dill
import numpy as np
import pytest

from glompo_hpc.core.optlog import OptimizerLog
from glompo_hpc.core.result import MinimizeResult
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.optimizers.base import BaseOptimizer
from glompo_hpc.selectors import (ChainSelector, CycleSelector, IterSpawnStop, NOptimizersSpawnStop,
                                  OptimizerOption, RandomSelector)


class Walker(BaseOptimizer):
    """Tiny optimizer: evaluates x0 once."""

    def __init__(self, step=0.1, history=None, **kwargs):
        super().__init__(**kwargs)
        self.step = step
        self.history = [] if history is None else history

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        fx = function(x0)
        self.history.append(fx)
        return MinimizeResult(True, np.asarray(x0, dtype=float), fx)


class Other(Walker):
    pass


def make_manager(f_counter=0, o_counter=0):
    return types.SimpleNamespace(n_parms=2, bounds=[(0, 1), (0, 1)], f_counter=f_counter, o_counter=o_counter,
                                 result=types.SimpleNamespace(x=None, fx=float("inf")), opt_log=OptimizerLog(2))


def picks(selector, manager, n, slots=8):
    return [selector.select_optimizer(manager, slots) for _ in range(n)]


# ------------------------------------------------------------ options

def test_options_from_class_instance_tuple_build_independent_optimizers():
    proto = Walker(step=0.5, workers=2)
    sel = CycleSelector(Walker, proto, (Other, {"step": 0.3, "history": [1.0]}))
    cls_opt, inst_opt, tup_opt = sel.options
    assert (cls_opt.opt_class, cls_opt.workers, cls_opt.prototype) == (Walker, 1, None)
    assert (inst_opt.opt_class, inst_opt.workers, inst_opt.prototype) == (Walker, 2, proto)
    assert (tup_opt.opt_class, tup_opt.init_kwargs["step"]) == (Other, 0.3)
    for option in sel.options:
        a, b = option.build(), option.build()
        assert type(a) is option.opt_class and a is not b and a is not proto
        a.history.append(99.0)
        assert 99.0 not in b.history
    assert proto.history == [] and tup_opt.init_kwargs["history"] == [1.0]
    built = inst_opt.build()
    assert (built.step, built.workers) == (0.5, 2)
    assert built.minimize(lambda x: float(sum(x)), [0.25, 0.25], [(0, 1)] * 2).fx == 0.5


def test_option_str_and_selector_str():
    sel = ChainSelector(Walker, (Other, {"step": 0.3, "workers": 2}), fcall_thresholds=[10],
                        allow_spawn=[IterSpawnStop(100), NOptimizersSpawnStop(5)])
    assert str(sel.options[1]) == "Other(step=0.3, workers=2)"
    assert str(sel) == ("ChainSelector(options=[Walker(), Other(step=0.3, workers=2)], fcall_thresholds=[10], "
                        "allow_spawn=[IterSpawnStop(max_calls=100), NOptimizersSpawnStop(max_opts=5)])")
    assert str(CycleSelector(Walker(step=1, workers=3))) == "CycleSelector(options=[Walker(workers=3)])"
    assert sel.max_workers == 2


def test_option_passed_directly_and_equality():
    option = OptimizerOption(Walker, {"workers": 3})
    sel = CycleSelector(option)
    assert sel.options[0] is option and option.workers == 3
    assert OptimizerOption(Walker, {"a": 1}) == OptimizerOption(Walker, {"a": 1})
    with pytest.raises(AttributeError):
        option.opt_class = Other  # frozen


# ------------------------------------------------------------ selection rules

def test_cycle_round_robin():
    sel = CycleSelector(Walker, Other, (Walker, {"step": 1}))
    got = picks(sel, make_manager(), 7)
    assert [o.opt_class for o in got] == [Walker, Other, Walker] * 2 + [Walker]
    assert got[2].init_kwargs == {"step": 1} and got[0].init_kwargs == {}


def test_random_selector_seeded_and_covers_options():
    def draw(seed):
        return [sel.opt_class for sel in picks(RandomSelector(Walker, Other, seed=seed), make_manager(), 40)]

    assert draw(1) == draw(1)
    assert set(draw(1)) == {Walker, Other}
    assert draw(1) != draw(2)


def test_chain_moves_at_thresholds_and_last_option_stays():
    sel = ChainSelector(Walker, Other, (Walker, {"step": 2}), fcall_thresholds=[10, 20])
    m = make_manager()
    for f, expected in [(0, Walker), (9, Walker), (10, Other), (19, Other), (20, Walker), (10**6, Walker)]:
        m.f_counter = f
        option = sel.select_optimizer(m, 1)
        assert option.opt_class is expected, f
    assert option.init_kwargs == {"step": 2}


def test_chain_extra_threshold_ends_spawning_for_good():
    sel = ChainSelector(Walker, Other, fcall_thresholds=[5, 8])
    m = make_manager(f_counter=8)
    assert sel.select_optimizer(m, 4) is False
    m.f_counter = 0
    assert sel.select_optimizer(m, 4) is False  # over for good


# ------------------------------------------------------------ slots and spawn control

def test_none_when_option_needs_more_slots_and_it_is_kept():
    sel = CycleSelector((Walker, {"workers": 3}), Other)
    m = make_manager()
    assert sel.select_optimizer(m, 2) is None
    assert sel.select_optimizer(m, 2) is None  # the big one is not skipped for the small one
    first = sel.select_optimizer(m, 3)
    assert (first.opt_class, first.workers) == (Walker, 3)
    assert sel.select_optimizer(m, 1).opt_class is Other


def test_random_selector_holds_unfitting_choice():
    sel = RandomSelector((Walker, {"workers": 4}), Other, seed=0)
    m = make_manager()
    results = picks(sel, m, 30, slots=1)
    first_none = results.index(None)  # the big option is drawn sooner or later (p = 2**-30 it is not)
    assert all(r.opt_class is Other for r in results[:first_none])
    # once drawn, it is offered until 4 slots are free, not redrawn in favour of the small one
    assert results[first_none:] == [None] * (30 - first_none)
    assert sel.select_optimizer(m, 4).workers == 4


def test_spawn_controllers():
    m = make_manager(f_counter=99, o_counter=3)
    assert IterSpawnStop(100)(m) and not IterSpawnStop(99)(m)
    assert NOptimizersSpawnStop(4)(m) and not NOptimizersSpawnStop(3)(m)


@pytest.mark.parametrize("allow_spawn", [IterSpawnStop(10), [NOptimizersSpawnStop(100), IterSpawnStop(10)],
                                         (lambda manager: manager.f_counter < 10)])
def test_false_when_a_controller_forbids(allow_spawn):
    sel = CycleSelector(Walker, allow_spawn=allow_spawn)
    m = make_manager(f_counter=5)
    assert isinstance(sel.select_optimizer(m, 1), OptimizerOption)
    m.f_counter = 10
    assert sel.select_optimizer(m, 1) is False
    m.f_counter = 0
    assert sel.select_optimizer(m, 1) is False and sel.spawning_stopped


def test_false_takes_precedence_over_slots():
    sel = CycleSelector((Walker, {"workers": 5}), allow_spawn=NOptimizersSpawnStop(0))
    assert sel.select_optimizer(make_manager(), 1) is False


# ------------------------------------------------------------ persistence

def test_dill_round_trip_keeps_cycle_position_and_held_option():
    sel = CycleSelector(Walker, Other, (Walker, {"workers": 2}), allow_spawn=IterSpawnStop(100))
    m = make_manager()
    picks(sel, m, 2)
    assert sel.select_optimizer(m, 1) is None  # third option held
    clone = dill.loads(dill.dumps(sel))
    resumed = picks(clone, m, 3)
    assert [(o.opt_class, o.workers) for o in resumed] == [(Walker, 2), (Walker, 1), (Other, 1)]
    rnd = RandomSelector(Walker, Other, seed=3)
    picks(rnd, m, 5)
    rnd_clone = dill.loads(dill.dumps(rnd))
    assert picks(rnd, m, 10) == picks(rnd_clone, m, 10)


# ------------------------------------------------------------ validation

class NotAnOptimizer:
    pass


@pytest.mark.parametrize("build, fragment", [
    (lambda: CycleSelector(), "at least one"),
    (lambda: CycleSelector(Walker, NotAnOptimizer), "optimizer option 1: <class"),
    (lambda: CycleSelector(BaseOptimizer), "abstract"),
    (lambda: CycleSelector("cma"), "'cma'"),
    (lambda: CycleSelector((Walker, {"step": 1}, 3)), "pair"),
    (lambda: CycleSelector((Walker, [1, 2])), "[1, 2]"),
    (lambda: CycleSelector((NotAnOptimizer, {})), "NotAnOptimizer"),
    (lambda: CycleSelector((Walker, {"workers": 0})), "workers"),
    (lambda: CycleSelector(Walker, allow_spawn=[IterSpawnStop(3), 7]), "allow_spawn[1]: 7"),
    (lambda: IterSpawnStop(-1), "-1"),
    (lambda: NOptimizersSpawnStop(2.5), "2.5"),
    (lambda: ChainSelector(Walker, Other, fcall_thresholds=[]), "got 0"),
    (lambda: ChainSelector(Walker, Other, fcall_thresholds=[1, 2, 3]), "got 3"),
    (lambda: ChainSelector(Walker, Other, Walker, fcall_thresholds=[5, 5]), "fcall_thresholds[1] = 5"),
    (lambda: ChainSelector(Walker, Other, fcall_thresholds=[-4]), "-4"),
    (lambda: ChainSelector(Walker, Other, fcall_thresholds=7), "7"),
])
def test_validation_names_bad_value(build, fragment):
    with pytest.raises(ConfigurationError) as info:
        build()
    assert fragment in str(info.value)
