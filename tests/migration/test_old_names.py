"""Every row of the GloMPO 3.1 table does what the guide's generated tables say.

The table (glompo_hpc/compat/table.py) drives both the code and the guide; these tests drive
each row through the public API, so a row whose name stopped working fails here.
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from glompo_hpc import (AnnealingGenerator, CheckpointingControl, CMAOptimizer, CycleSelector, GloMPOManager,
                        KillsAfterConvergence, MaxFuncCalls, RandomOptimizer, Rastrigin, TypeHunter)
from glompo_hpc.compat import OLD_NAMES, Change, Place, StatsWithOldKeys
from glompo_hpc.compat.guide import BEGIN, END, GUIDE, generated_block, render
from glompo_hpc.compat.table import rows_for
from glompo_hpc.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_the_guides_tables_are_generated_from_the_table():
    """docs/migrating-from-glompo.md: regenerate with `python -m glompo_hpc.compat.guide` after a table change."""
    text = GUIDE.read_text()
    assert BEGIN in text and END in text
    assert generated_block(text) == render().strip("\n")


def test_every_place_and_row_appears_in_the_guide():
    block = generated_block(GUIDE.read_text())
    for r in OLD_NAMES:
        assert r.old in block and r.place.value in block


def _in_messages(text: str) -> str:
    """How a table entry reads in a one-line message: code spans become quotes."""
    return text.replace("`", "'")


def _setup_kwargs(tmp_path, **extra):
    task = Rastrigin(dims=2)
    kwargs = dict(task=task, bounds=task.bounds, opt_selector=CycleSelector(RandomOptimizer),
                  working_dir=tmp_path / "run", backend="threads", max_jobs=1)
    kwargs.update(extra)
    return kwargs


OLD_SETUP_VALUES = {"convergence_checker": MaxFuncCalls(50), "killing_conditions": None, "hunt_frequency": 7,
                    "status_frequency": 30, "aggressive_kill": True}
NEW_VALUES = {"convergence_checker": lambda m: str(m.exit_conditions) == str(MaxFuncCalls(50)),
              "killing_conditions": lambda m: m.stoppers is None,  # 3.1's None: no stoppers
              "hunt_frequency": lambda m: m.stopcheck_interval == 7,
              "status_frequency": lambda m: m.status_interval == 30,
              "aggressive_kill": lambda m: m.aggressive_stop is True}


@pytest.mark.parametrize("r", [r for r in rows_for(Place.SETUP) if r.change is Change.RENAMED], ids=lambda r: r.old)
def test_a_renamed_setup_keyword_works_with_one_warning_naming_the_new_spelling(tmp_path, r):
    assert r.new in inspect.signature(GloMPOManager.setup).parameters
    with pytest.warns(DeprecationWarning, match=rf"'{r.old}'.*use '{r.new}'") as record:
        manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, **{r.old: OLD_SETUP_VALUES[r.old]}))
    assert len([w for w in record if issubclass(w.category, DeprecationWarning)]) == 1
    assert NEW_VALUES[r.old](manager)


def test_convergence_checker_none_keeps_glompo_31s_default(tmp_path):
    with pytest.warns(DeprecationWarning):
        manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, convergence_checker=None))
    assert str(manager.exit_conditions) == str(KillsAfterConvergence())


@pytest.mark.parametrize("r", [r for r in rows_for(Place.SETUP) if r.change is Change.GONE], ids=lambda r: r.old)
def test_a_gone_setup_keyword_fails_in_one_line_naming_the_replacement(tmp_path, r):
    with pytest.raises(ConfigurationError) as err:
        GloMPOManager().setup(**_setup_kwargs(tmp_path, **{r.old: {"x": 1} if r.old.endswith("args") else True}))
    message = str(err.value)
    assert "\n" not in message and r.old in message and _in_messages(r.new) in message
    assert not (tmp_path / "run").exists()  # refused before anything was created
    with pytest.warns(DeprecationWarning, match="has no effect"):
        GloMPOManager().setup(**_setup_kwargs(tmp_path, **{r.old: r.harmless[0]}))


def test_an_old_and_a_new_spelling_together_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="'hunt_frequency' and 'stopcheck_interval' are the same setting"):
        GloMPOManager().setup(**_setup_kwargs(tmp_path, hunt_frequency=5, stopcheck_interval=5))


def test_load_checkpoint_translates_old_keywords_too(tmp_path):
    manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, exit_conditions=MaxFuncCalls(20)))
    manager.start_manager()
    path = manager.checkpoint()
    with pytest.warns(DeprecationWarning, match="'hunt_frequency'"):
        loaded = GloMPOManager.load_manager(path, hunt_frequency=3, working_dir=tmp_path / "again")
    assert loaded.stopcheck_interval == 3


def test_manager_aliases_read_the_new_attribute_with_a_warning_and_are_read_only(tmp_path):
    manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, exit_conditions=MaxFuncCalls(30)))
    manager.start_manager()
    for r in rows_for(Place.MANAGER):
        if r.change is Change.GONE:
            with pytest.raises(AttributeError, match=re.escape(_in_messages(r.new))):
                getattr(manager, r.old)
            continue
        with pytest.warns(DeprecationWarning, match=rf"GloMPOManager.{r.old}.*use '{r.new}'"):
            value = getattr(manager, r.old)
        assert value is getattr(manager, r.new) or value == getattr(manager, r.new)
        with pytest.raises(AttributeError, match=f"set '{r.new}'"):
            setattr(manager, r.old, value)


def test_result_stats_answer_glompo_31s_keys(tmp_path):
    manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, exit_conditions=MaxFuncCalls(30)))
    result = manager.start_manager()
    assert isinstance(result.stats, StatsWithOldKeys)
    for r in rows_for(Place.STATS):
        assert r.new in result.stats
        with pytest.warns(DeprecationWarning, match=f"'{r.old}'"):
            assert result.stats[r.old] == result.stats[r.new]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert result.stats.get("f_evals") == manager.f_counter
    assert result.stats.get("no_such_key", "absent") == "absent"
    with pytest.raises(KeyError):
        result.stats["no_such_key"]


def test_constructor_keywords_of_31_are_translated():
    with pytest.warns(DeprecationWarning, match="checkpoint_iter_frequency"):
        control = CheckpointingControl(checkpoint_iter_frequency=300, checkpoint_time_frequency=60)
    assert control.checkpoint_eval_interval == 300 and control.checkpoint_time_interval == 60
    with pytest.warns(DeprecationWarning, match="'opt_to_kill'.*'opt_class'"):
        assert TypeHunter(opt_to_kill=CMAOptimizer).opt_class == "CMAOptimizer"
    with pytest.warns(DeprecationWarning, match="'injection_frequency'.*'injection_interval'"):
        assert CMAOptimizer(injection_frequency=5).injection_interval == 5
    task = Rastrigin(dims=2)
    with pytest.warns(DeprecationWarning, match="'qa'"):
        gen = AnnealingGenerator(task.bounds, task, qa=-6.0, qv=2.5)
    assert (gen.accept, gen.visit) == (-6.0, 2.5)
    with pytest.raises(ConfigurationError, match="'restart_temp_ratio'.*maxiter"):
        AnnealingGenerator(task.bounds, task, restart_temp_ratio=2e-5)


def test_every_renamed_constructor_keyword_names_a_real_parameter():
    owners = {Place.CHECKPOINTING_CONTROL: CheckpointingControl, Place.TYPE_HUNTER: TypeHunter,
              Place.CMA: CMAOptimizer, Place.ANNEALING: AnnealingGenerator, Place.SETUP: GloMPOManager.setup}
    for place, owner in owners.items():
        for r in rows_for(place):
            if r.change is Change.RENAMED:
                assert r.new in inspect.signature(owner).parameters, (place, r.old)


def test_optimizer_log_names_of_31_explain_their_replacement(tmp_path):
    manager = GloMPOManager().setup(**_setup_kwargs(tmp_path, exit_conditions=MaxFuncCalls(30)))
    manager.start_manager()
    for r in rows_for(Place.OPT_LOG):
        with pytest.raises(AttributeError, match=re.escape(_in_messages(r.new))):
            getattr(manager.opt_log, r.old.split("(")[0])
    assert len(manager.opt_log) >= 1 and manager.opt_log.best(1)[1] <= np.inf  # the replacements exist
    assert manager.opt_log.records[1].opt_id == 1


def test_an_unknown_setup_keyword_names_the_closest_accepted_one(tmp_path):
    with pytest.raises(ConfigurationError, match=r"unknown keyword 'stopcheck_intervall'; did you mean "
                                                 r"'stopcheck_interval'\? it accepts \['task', 'bounds'"):
        GloMPOManager().setup(**_setup_kwargs(tmp_path, stopcheck_intervall=3))
