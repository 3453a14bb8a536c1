"""The YAML summary, the `summary`/`plot` commands, and the status line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from support.optimizers import CrashingOptimizer, WalkOptimizer, sphere

from glompo_hpc import cli
from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import BestUnmoving


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """Plots are tested in test_outputs_plots; here they only cost time."""
    monkeypatch.setattr("glompo_hpc.outputs.plots.write_plots", lambda source, directory: [])


def run(tmp_path, level: int, **kwargs) -> GloMPOManager:
    selector = CycleSelector((WalkOptimizer, {"iters": 60}), (CrashingOptimizer, {"crash_after": 3}))
    kwargs.setdefault("exit_conditions", MaxFuncCalls(1000))
    m = GloMPOManager.new_manager(sphere, [(-5.0, 5.0)] * 3, selector, working_dir=tmp_path, max_jobs=2,
                                  backend="threads", summary_files=level, stoppers=BestUnmoving(40, 0.01),
                                  split_printstreams=False, **kwargs)
    m.start_manager()
    return m


def test_summary_holds_every_section_and_matches_the_run(tmp_path):
    m = run(tmp_path, 3, checkpoint_control=CheckpointingControl(checkpoint_eval_interval=400,
                                                                  naming_format="ck_%(count)"))
    s = yaml.safe_load((tmp_path / "glompo_manager_log.yml").read_text())
    assert list(s) == ["assignment", "settings", "counters", "run_information", "checkpoints", "log", "solution",
                       "optimizers"]
    a = s["assignment"]
    assert a["user"] and a["host"] and len(a["sessions"]) == 1 and a["sessions"][0]["end"] and a["t_used"] > 0
    assert "WalkOptimizer" in s["settings"]["opt_selector"] and "BestUnmoving" in s["settings"]["stoppers"]
    c = s["counters"]
    assert c["function_evaluations"] == m.f_counter and c["optimizers"]["started"] == m.o_counter
    by_end = c["optimizers"]["by_end"]
    assert sum(by_end.values()) == m.o_counter and by_end["crashed"] == c["optimizers"]["crashed"] > 0
    for key in ("cpu_percent", "memory_bytes", "load_1min"):
        assert set(s["run_information"][key]) >= {"mean", "peak"}
    assert s["checkpoints"]["made"] == len(m.checkpoint_history) >= 1 and "ck_000.tar" in s["checkpoints"]["names"]
    assert s["log"] == {"hdf5_log": "glompo_log.h5", "complete": True, "rows": m.f_counter, "problem": None}
    sol = s["solution"]
    assert sol["fx"] == m.result.fx and np.allclose(sol["x"], m.result.x) and sol["state"] == "finished"
    assert sol["origin"] == m.result.origin and sol["exit_reason"] == "MaxFuncCalls(fmax=1000)"
    assert sum(o["evaluations"] for o in s["optimizers"].values()) == m.f_counter


def test_below_level_3_the_summary_says_there_is_no_log(tmp_path):
    run(tmp_path, 1)
    assert yaml.safe_load((tmp_path / "glompo_manager_log.yml").read_text())["log"] == {"hdf5_log": None}


def test_status_line_reports_evaluations_rate_best_optimizers_and_resources(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="glompo_hpc.manager"):
        # a task slow enough that the run spans several status intervals however fast the machine
        from support.optimizers import SleepyTask
        GloMPOManager.new_manager(SleepyTask(delay=0.001), [(-5.0, 5.0)] * 3,
                                  CycleSelector((WalkOptimizer, {"iters": 60})), working_dir=tmp_path, max_jobs=2,
                                  backend="threads", status_interval=0.05, exit_conditions=MaxFuncCalls(400),
                                  split_printstreams=False).start_manager()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Status:")]
    assert len(lines) >= 2
    for part in ("evaluations (", "/s), best fx", "optimizers alive", "CPU", "memory", "MB, load"):
        assert part in lines[-1]


# ------------------------------------------------------------------ CLI

@pytest.mark.parametrize("level", [1, 3])
def test_summary_command_prints_the_state_of_a_finished_run(tmp_path, level, capsys):
    m = run(tmp_path, level)
    assert cli.main(["summary", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["State"].strip() == "finished: MaxFuncCalls(fmax=1000)"
    assert float(fields["Best fx"]) == pytest.approx(m.result.fx, rel=1e-9)
    assert fields["Evaluations"].strip().startswith(str(m.f_counter))
    assert f"{m.o_counter} started" in fields["Optimizers"] and "crashed" in fields["Optimizers"]
    assert fields["Found by"].strip() == f"optimizer {m.result.origin['opt_id']} (WalkOptimizer)"
    assert ("glompo_log.h5" if level == 3 else "glompo_manager_log.yml") in fields["Source"]


def test_plot_command_draws_from_the_log(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    run(tmp_path / "run", 3)  # its own plots are skipped (no_plots): the command draws them
    assert not list((tmp_path / "run").glob("*.png"))
    monkeypatch.undo()
    assert cli.main(["plot", str(tmp_path / "run"), "--output", str(tmp_path / "figs")]) == 0
    written = capsys.readouterr().out.split()
    assert {p.rsplit("/", 1)[1] for p in written} >= {"trajectories.png", "best_so_far.png"}
    assert all((tmp_path / "figs" / p.rsplit("/", 1)[1]).is_file() for p in written)


@pytest.mark.parametrize("command, setup, fragment", [
    ("summary", None, "no such directory"),
    ("summary", "empty", "holds no glompo_log.h5 or glompo_manager_log.yml"),
    ("summary", "foreign", "cannot read the run"),
    ("plot", None, "no such directory"),
    ("plot", "empty", "holds no glompo_log.h5"),
])
def test_commands_refuse_bad_directories_with_one_line(tmp_path, capsys, command, setup, fragment):
    target = tmp_path / "run"
    if setup:
        target.mkdir()
    if setup == "foreign":
        (target / "glompo_manager_log.yml").write_text("- just a list\n")
    assert cli.main([command, str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("glompo-hpc: error: ") and fragment in captured.err
