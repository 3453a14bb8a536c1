"""Trajectory plots: written at levels 2 and 3, drawn from a glompo_log.h5 alone, and no crash without matplotlib."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from support.optimizers import CrashingOptimizer, WalkOptimizer, sphere

from glompo_hpc import cli
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.outputs.plots import MISSING_MATPLOTLIB, plot_best_so_far, plot_trajectories, spans_decades
from glompo_hpc.selectors import CycleSelector
from glompo_hpc.stoppers import BestUnmoving

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

PNGS = {"trajectories.png", "trajectories_log.png", "best_so_far.png"}


def run(tmp_path, level: int, budget: int = 1200) -> GloMPOManager:
    selector = CycleSelector((WalkOptimizer, {"iters": 60}), (CrashingOptimizer, {"crash_after": 3}))
    m = GloMPOManager.new_manager(sphere, [(-5.0, 5.0)] * 3, selector, working_dir=tmp_path, max_jobs=2,
                                  backend="threads", exit_conditions=MaxFuncCalls(budget), summary_files=level,
                                  stoppers=BestUnmoving(40, 0.01), split_printstreams=False)
    m.start_manager()
    return m


def pngs(directory) -> set[str]:
    return {p.name for p in directory.glob("*.png")}


@pytest.mark.parametrize("level", [1, 2, 3])
def test_levels_write_the_plots_from_memory_or_from_the_log(tmp_path, level):
    run(tmp_path, level)
    assert pngs(tmp_path) == (set() if level < 2 else PNGS)  # sphere from x0 to the minimum spans decades
    assert (tmp_path / "glompo_log.h5").exists() == (level == 3)
    for name in pngs(tmp_path):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_from_a_log_file_alone_return_figures_with_every_optimizer(tmp_path):
    m = run(tmp_path / "run", 3)
    alone = tmp_path / "elsewhere" / "copy.h5"
    alone.parent.mkdir()
    shutil.copy(tmp_path / "run" / "glompo_log.h5", alone)
    fig = plot_trajectories(alone, log_scale=None)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    traced = [line for line in ax.get_lines() if len(line.get_xdata())]
    assert len(traced) == m.o_counter - sum(1 for i in m.opt_log.opt_ids if m.opt_log.n_evals(i) == 0)
    assert ax.get_yscale() == "log"  # decided from the data, which spans decades
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert any(label.startswith("crashed (") for label in labels) and "WalkOptimizer" in labels
    best = plot_best_so_far(alone)
    step = best.axes[0].get_lines()[0]
    assert step.get_ydata()[-1] == m.result.fx and step.get_xdata()[-1] == m.f_counter
    assert isinstance(plot_trajectories(tmp_path / "run"), Figure)  # a working directory works too


def test_plots_from_a_manager_note_when_memory_holds_only_recent_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("glompo_hpc.core.optlog.DEFAULT_TAIL_ROWS", 20)
    monkeypatch.setattr("glompo_hpc.core.optlog.DEFAULT_ENDED_ROWS", 10)
    m = run(tmp_path, 0, budget=600)
    fig = plot_trajectories(m)
    assert "in-memory rows only" in fig.axes[0].get_title()


def test_spans_decades():
    assert spans_decades(np.array([1e-4, 1.0, 3.0])) and not spans_decades(np.array([1.0, 900.0, np.nan]))
    assert spans_decades(np.array([-1e4, 0.0, 1.0])) and not spans_decades(np.array([np.inf, 2.0]))


def test_without_matplotlib_the_run_logs_a_clear_message_and_writes_no_plot(tmp_path, monkeypatch, caplog, capsys):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    m = run(tmp_path, 3)
    assert m.converged and pngs(tmp_path) == set() and (tmp_path / "glompo_manager_log.yml").is_file()
    assert "No plots written" in caplog.text and "pip install 'glompo-hpc[plot]'" in caplog.text
    with pytest.raises(ImportError, match="pip install"):
        plot_trajectories(tmp_path)
    assert cli.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"glompo-hpc: error: {MISSING_MATPLOTLIB}" and "\n" not in err
