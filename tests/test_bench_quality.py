"""The quality benchmark (bench/quality): the quick mode end to end on a tiny problem set, and its parts."""

from __future__ import annotations

import csv
import math
import threading
from collections import defaultdict

import numpy as np
import pytest

from bench.quality import __main__ as cli
from bench.quality import hardreport, ngopt, problems, report, runner
from bench.quality.contenders import CONTENDERS, BudgetSpent, Recorder, SeededSelector, run_contender
from glompo_hpc import (CMAOptimizer, ConfigurationError, CycleSelector, GloMPOManager, MaxFuncCalls, TargetCost,
                        defaults)
from glompo_hpc.tasks.functions import Rastrigin

#: The module's runs are whole benchmark runs (NGOpt among them): minutes on a loaded machine.
pytestmark = pytest.mark.timeout(600)

PROBLEMS = "rastrigin-10,rosenbrock-10"
DEFAULTS = cli.DEFAULT_CONTENDERS.split(",")  # every contender but the CycleSelector pair
SEEDS = 2


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    code = cli.main(["--mode", "quick", "--problems", PROBLEMS, "--seeds", str(SEEDS), "--budget-scale", "0.25",
                     "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_quick_mode_writes_every_output(quick_run):
    for name in ("results.csv", "table.md", "best_so_far.png", "traces.json.gz"):
        assert (quick_run / name).stat().st_size > 0, name
    assert (quick_run / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (quick_run / "table.md").read_text()
    assert "| problem | glompo | unmanaged | ipop | bipop | de | da |" in table
    assert "#### rastrigin-10" in table and "#### rosenbrock-10" in table


def test_one_row_per_problem_contender_and_seed(quick_run):
    rows = runner.read_csv(quick_run / "results.csv")
    n_problems = len(PROBLEMS.split(","))
    assert set(DEFAULTS) == set(CONTENDERS) - {"cycle", "cycle-unmanaged"} and "ngopt" in DEFAULTS
    assert len(rows) == n_problems * len(DEFAULTS) * SEEDS
    keys = {(r.problem, r.contender, r.seed) for r in rows}
    assert len(keys) == len(rows)
    with open(quick_run / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def test_results_are_consistent(quick_run):
    rows = runner.read_csv(quick_run / "results.csv")
    budgets = defaultdict(set)
    for r in rows:
        budgets[r.problem].add(r.budget)
        assert r.best_fx >= r.f_star - r.tol, r  # nobody beats the known minimum
        assert 1 <= r.evals <= r.budget, r  # the budget is respected
        assert r.success == (r.best_fx <= r.f_star + r.tol), r
        if r.success:
            assert r.evals_to_target == r.evals and r.time_to_target <= r.wall
        else:
            assert math.isnan(r.evals_to_target) and math.isnan(r.time_to_target)
    assert all(len(b) == 1 for b in budgets.values())  # the same budget for every contender of a problem
    assert budgets["rastrigin-10"] == {500}


def test_traces_match_the_rows(quick_run):
    rows = runner.read_csv(quick_run / "results.csv")
    traces = runner.read_traces(quick_run / "traces.json.gz")
    for r in rows:
        runs = traces[r.problem][r.contender]
        assert len(runs) == SEEDS
    for p, entry in traces.items():
        for c in DEFAULTS:
            for t in entry[c]:
                values = np.array([np.inf if v is None else v for v in t])
                assert np.all(np.diff(values) <= 0)  # best so far never rises
        best = {(r.contender, r.seed): r.best_fx for r in rows if r.problem == p}
        seeds = sorted({s for _, s in best})
        for c in DEFAULTS:
            assert [t[-1] for t in entry[c]] == pytest.approx([best[(c, s)] for s in seeds], rel=1e-5)  # 6 digits


def test_report_rebuilds_from_the_files(quick_run, capsys):
    (quick_run / "table.md").unlink()
    assert cli.main(["--report", str(quick_run)]) == 0
    assert "glompo against each contender" in capsys.readouterr().out
    assert (quick_run / "table.md").exists()


def test_expensive_mode_spreads_evaluations_over_the_slots(tmp_path):
    code = cli.main(["--mode", "expensive", "--problems", "lj-4", "--seeds", "1", "--budget-scale", "0.01",
                     "--delay", "0.0005", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    rows = runner.read_csv(tmp_path / "results.csv")
    assert sorted(r.contender for r in rows) == sorted(DEFAULTS)
    assert all(r.delay == 0.0005 and 1 <= r.evals <= r.budget == 200 for r in rows)
    assert "slot use" in (tmp_path / "table.md").read_text()


def test_recorder_cuts_at_budget_and_target():
    f = Rastrigin(dims=2)
    rec = Recorder(f, f, budget=3, target=-1.0, raising=True)
    for x in ([1, 1], [2, 2], [3, 3]):
        rec(x)
    with pytest.raises(BudgetSpent):
        rec([0, 0])
    assert rec.n == 3 and rec.hit is None and list(rec.best_so_far()) == [2.0, 2.0, 2.0]

    rec = Recorder(f, f, budget=10, target=1e-9, raising=False)
    rec([1, 1])
    assert rec([0, 0]) == 0.0 and rec.hit == 2 and rec.done
    assert rec([1, 1]) == 2.0 and rec.n == 2  # still answers, no longer records


def test_recorder_is_thread_safe():
    f = Rastrigin(dims=2)
    rec = Recorder(f, f, budget=4000, target=-1.0, raising=False)

    def work():
        for _ in range(1000):
            rec([0.5, 0.5])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rec.n == rec.calls == 4000 and np.isfinite(rec.fx).all()


def test_seeded_selector_gives_every_child_its_own_repeatable_seed():
    def seeds(root):
        sel = SeededSelector(CycleSelector((CMAOptimizer, {"sigma0": 1.0})), root)
        return [sel.select_optimizer(None, 1).init_kwargs["seed"] for _ in range(5)]

    first = seeds(7)
    assert len(set(first)) == 5 and seeds(7) == first and seeds(8) != first


def test_suites_and_selection():
    full = problems.suite("full")
    assert {p.dims for p in full} == {10, 12, 30}
    assert {p.budget for p in full} == {20_000, 60_000}
    assert [p.name for p in problems.select(full, "lj-*")] == ["lj-4", "lj-10"]
    assert all(p.dims == 10 or p.name == "lj-4" for p in problems.suite("quick"))
    assert [p.name for p in problems.suite("expensive")] == list(problems.EXPENSIVE_PROBLEMS)
    assert all(p.rotated for p in problems.suite("rotated"))
    with pytest.raises(ValueError):
        problems.select(full, "nothing-*")


def test_rotation_keeps_the_minimum_and_couples_the_coordinates():
    problem = problems.suite("rotated")[0]
    f, base = problem.build(), Rastrigin(dims=10)
    assert f(f.min_x) == pytest.approx(problem.f_star, abs=1e-12)
    x = np.random.default_rng(0).uniform(-5, 5, 10)
    assert f(x) == pytest.approx(base(f.min_x + f.rotation @ (x - f.min_x)))
    assert f(x) != pytest.approx(base(x))
    assert np.allclose(problem.build().rotation, f.rotation)  # one fixed instance


def test_versus_rules():
    def s(median, successes, ert=math.inf):
        return report.Stats("p", "c", 10, median, median, median, successes, math.nan, ert, math.nan, 0.0, 100)

    assert report._versus(s(1.0, 5), s(2.0, 5), 1e-6) == "win"
    assert report._versus(s(1.0, 5), s(1.0, 6), 1e-6) == "loss"
    assert report._versus(s(1.0, 6), s(2.0, 5), 1e-6) == "win"
    assert report._versus(s(1.0, 5), s(2.0, 6), 1e-6) == "split"
    assert report._versus(s(1e-7, 10, 100), s(2e-7, 10, 105), 1e-6) == "tie"
    assert report._versus(s(1e-7, 10, 100), s(2e-7, 10, 200), 1e-6) == "win"


def test_recommended_configuration_is_valid_for_the_manager(tmp_path):
    bounds = [(-5.0, 5.0)] * 10
    config = defaults.recommended_configuration(bounds, 4, max_func_calls=1000, seed=1)
    assert set(config) == {"opt_selector", "stoppers", "x0_generator", "exit_conditions", "share_best_solutions",
                           "stopcheck_interval"}
    options = config["opt_selector"].options
    assert all(o.opt_class is CMAOptimizer and o.workers == 4 for o in options)
    assert [o.init_kwargs["popsize"] for o in options] == [12, 20, 40, 80]  # 10, 20, 40, 80 in multiples of 4
    assert config["opt_selector"].fcall_thresholds == (150, 350, 600)
    assert config["x0_generator"].max_func_calls == 1000
    assert str(config["exit_conditions"]) == "MaxFuncCalls(fmax=1000)"
    manager = GloMPOManager.new_manager(Rastrigin(dims=10), bounds, working_dir=tmp_path, backend="threads",
                                        max_jobs=4, **config)  # every setting accepted
    assert manager.is_initialised


def test_recommended_children_follow_the_slots_and_the_box():
    cls, kwargs = defaults.recommended_optimizer([(0.0, 10.0), (0.0, 1.0)], max_jobs=64)
    assert kwargs["sigma0"] == pytest.approx(2.0) and kwargs["CMA_stds"] == [1.0, 0.1]
    assert kwargs["popsize"] == kwargs["workers"] == defaults.default_popsize(2)  # fewer than 64: all at once
    _, one_slot = defaults.recommended_optimizer([(0.0, 1.0)] * 30, max_jobs=1)
    assert "workers" not in one_slot and one_slot["popsize"] == 14
    _, two = defaults.recommended_optimizer([(0.0, 1.0)] * 30, max_jobs=4, concurrent=2)
    assert two["workers"] == 2 and two["popsize"] == 14


def test_budget_of_reads_max_func_calls_from_exit_conditions():
    assert defaults.budget_of(TargetCost(0.0) | MaxFuncCalls(500) | MaxFuncCalls(900), 3) == 500
    assert defaults.budget_of(TargetCost(0.0), 3) == defaults.budget_of(None, 3) == 6000


def test_recommended_components_reject_bad_input():
    with pytest.raises(ConfigurationError):
        defaults.recommended_selector([(-1.0, 1.0)], 4, schedule=[(0.5, 1)])
    with pytest.raises(ConfigurationError):
        defaults.recommended_stoppers([(-1.0, 1.0)], kind="sometimes")
    with pytest.raises(ConfigurationError):
        defaults.recommended_generator([(1.0, -1.0)])
    with pytest.raises(ConfigurationError):
        defaults.recommended_optimizer([(-1.0, 1.0)], max_jobs=0)
    assert defaults.recommended_stoppers([(-1.0, 1.0)], kind="none") is False  # setup()'s "none"


@pytest.mark.parametrize("contender, variant, stopped_by", [
    ("unmanaged", {}, None), ("glompo", {"stoppers": "none"}, None), ("glompo", {}, "EvaluationsUnmoving")])
def test_contenders_without_stoppers_really_run_without(monkeypatch, contender, variant, stopped_by):
    """setup()'s stoppers=None means the recommended ones: the suite must say False for none."""
    built = []
    original = GloMPOManager.new_manager.__func__

    def capture(cls, *args, **kwargs):
        built.append(original(cls, *args, **kwargs))
        return built[-1]

    monkeypatch.setattr(GloMPOManager, "new_manager", classmethod(capture))
    task = Rastrigin(dims=3)
    run_contender(contender, task, task, task.bounds, 300, 0.0, 1e-8, seed=1, slots=2, glompo_options=variant)
    stoppers = built[0].stoppers
    assert (stoppers is None) if stopped_by is None else (type(next(iter(stoppers))).__name__ == stopped_by)


# ------------------------------------------------------------ hard mode, peers and polishing (issue 14)

def test_hard_quick_mode_reports_precision_pairs_and_ecdf(tmp_path):
    code = cli.main(["--mode", "hard-quick", "--seeds", "1", "--budget-scale", "0.3",
                     "--contenders", "glompo,bipop,ngopt,cycle", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    rows = runner.read_csv(tmp_path / "results.csv")
    assert {hardreport.group_of(r.problem) for r in rows} == {
        "schaffers-10", "lunacek-10", "composition-10", "rastrigin-rot-10"}
    assert sorted({r.contender for r in rows}) == ["bipop", "cycle", "glompo", "ngopt"]
    assert all(r.f_star == 0 and r.tol == problems.HARD_TOL and 1 <= r.evals <= r.budget == 600 for r in rows)
    table = (tmp_path / "table.md").read_text()
    assert "| group | glompo | bipop | ngopt | cycle |" in table and "| vs bipop |" in table
    assert (tmp_path / "ecdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hard_landscapes_have_their_minimum_where_they_say():
    for problem in problems.suite("hard-quick"):
        f = problem.build()
        assert f(f.min_x) == pytest.approx(0.0, abs=1e-12), problem.name
        points = np.random.default_rng(1).uniform(-5, 5, (50, problem.dims))
        assert min(f(x) for x in points) > 1e-3, problem.name
    one, two = (problems.hard((10,), 2)[i].build() for i in (0, 1))  # schaffers instances 1 and 2
    assert not np.allclose(one.min_x, two.min_x)


def test_runtimes_to_the_target_ladder_come_from_the_traces():
    grid = np.array([1, 10, 100])
    hits = hardreport._runtimes([50.0, 0.5, 1e-9], grid, 0.0)
    assert hits[0] == 1 and hits[hardreport.SOLVED_INDEX] == 100 and hits[-1] == 100  # 1e2, 1e-2, 1e-8
    assert np.isinf(hardreport._runtimes([50.0, 50.0, None], grid, 0.0)[10]).all()  # 10^0 never reached


def test_ngopt_runs_past_the_metamodel_under_numpy_2():
    """nevergrad 1.0.12's metamodel calls float() of a one-element array, which numpy 2 refuses;
    ngopt.patch_metamodel keeps NGOpt running through its metamodel proposals."""
    from nevergrad.optimization import optimizerlib

    calls = []
    ngopt.patch_metamodel()
    patched = optimizerlib.learn_on_k_best

    def counting(*args, **kwargs):
        calls.append(1)
        return patched(*args, **kwargs)

    class Spent(Exception):
        pass

    evaluations = []

    def sphere(x):
        if len(evaluations) >= 600:
            raise Spent
        evaluations.append(1)
        return float(np.sum(np.square(x)) + 1)

    try:
        optimizerlib.learn_on_k_best = counting
        ngopt.run(sphere, np.array([[-5.0, 5.0]] * 10), 20_000, 4, 1, Spent, parallel=False)
    finally:
        optimizerlib.learn_on_k_best = patched
    assert calls and len(evaluations) == 600  # the metamodel was used, and the run went on to the cut


def test_polish_configuration_stops_the_running_child_and_starts_at_the_incumbent():
    config = defaults.recommended_configuration([(-5.0, 5.0)] * 4, 4, 1000, polish=(0.9, 0.01))
    assert config["apply_stoppers_to_best"] is True
    assert str(config["stoppers"]).endswith("| PolishDue(calls=900)")
    last = config["opt_selector"].options[-1].init_kwargs
    assert last["sigma0"] == pytest.approx(0.1) and config["opt_selector"].fcall_thresholds[-1] == 900
    assert config["x0_generator"].polish_after == 0.9
