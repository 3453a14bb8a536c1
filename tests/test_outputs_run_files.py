"""Reading a run from its files for watch/report: bad input, exact tables, downsampled plots,
a log still being written, every backend."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from glompo_hpc.core.optlog import OptimizerRecord
from glompo_hpc.outputs.hdf5_log import HDF5LogWriter
from glompo_hpc.outputs.html_report import report_data, report_html
from glompo_hpc.outputs.run_files import best_so_far, downsample, read_run
from support.runs import cli, finished_run, tree_digest, write_job

COMMANDS = (["watch", "--once"], ["report", "-o", "elsewhere/report.html"])


def _one_line_exit_2(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("glompo-hpc: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_directory_that_is_not_a_run(tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a run\n")
    before = tree_digest(tmp_path)
    result = cli(command[0], tmp_path, *command[1:], cwd=tmp_path)
    _one_line_exit_2(result, "is not a glompo_hpc run", "glompo_log.h5")
    assert tree_digest(tmp_path) == before
    _one_line_exit_2(cli(command[0], tmp_path / "missing", *command[1:], cwd=tmp_path), "no such directory")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_damaged_log(tmp_path, command):
    run = tmp_path / "run"
    run.mkdir()
    (run / "glompo_log.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(3000))
    before = tree_digest(tmp_path)
    _one_line_exit_2(cli(command[0], run, *command[1:], cwd=tmp_path), "cannot read", "glompo_log.h5")
    assert tree_digest(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_run_with_summary_files_below_3(tmp_path, command):
    job = write_job(tmp_path, budget=400, summary_files=1)
    assert cli("run", job, cwd=tmp_path).returncode == 0
    before = tree_digest(tmp_path)
    _one_line_exit_2(cli(command[0], tmp_path / "run", *command[1:], cwd=tmp_path), "summary_files below 3")
    assert tree_digest(tmp_path) == before


def test_downsample_keeps_the_extremes_and_best_so_far_is_exact():
    rng = np.random.default_rng(0)
    fx = rng.normal(size=100_000)
    ids = np.arange(1, len(fx) + 1)
    x, y = downsample(ids, fx, 600)
    assert len(y) <= 600 and y.min() == fx.min() and y.max() == fx.max()
    assert np.all(np.diff(x) > 0)
    fx[5] = np.nan  # non-finite values are not plotted
    assert np.all(np.isfinite(downsample(ids[:10], fx[:10], 600)[1]))


def _synthetic_log(path, optimizers=20, rows=50_000, state="running"):
    """A log of optimizers * rows evaluations written by the real writer, left open (a run in progress)."""
    info = lambda final: {"state": "finished" if final else state, "f_counter": optimizers * rows,  # noqa: E731
                          "pid": os.getpid(), "best_fx": 0.0, "best_opt_id": 1}
    writer = HDF5LogWriter.create(path, 2, run_attrs={"host": os.uname().nodename}, info=info, flush_seconds=0)
    rng = np.random.default_rng(1)
    for opt_id in range(1, optimizers + 1):
        writer.add_optimizer(OptimizerRecord(opt_id, "CMAOptimizer", t_start=1_700_000_000.0 + opt_id))
    call = 1
    for start in range(0, rows, 10_000):
        for opt_id in range(1, optimizers + 1):
            k = min(10_000, rows - start)
            fx = np.abs(rng.normal(size=k)) * 10.0 / (1 + start) + opt_id
            writer.append(opt_id, np.arange(call, call + k), rng.normal(size=(k, 2)), fx, None)
            call += k
        writer.flush()
    return writer


@pytest.mark.slow
def test_a_million_evaluations_give_a_small_report_with_exact_tables(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    writer = _synthetic_log(run / "glompo_log.h5")
    try:
        files = read_run(run)  # the writer is still open: a run in progress
        assert files.running and files.evaluations == 1_000_000
        page = report_html(files)
        assert len(page) < 3_000_000, len(page)
        data = report_data(files)
        assert sum(o["evals"] for o in data["optimizers"]) == 1_000_000
        assert [o["best"] for o in data["optimizers"]] == [o.best_fx for o in files.optimizers]
        assert sum(len(o["x"]) for o in data["optimizers"]) <= 60_000
        assert json.loads(page.split('id="run-data">')[1].split("</script>")[0])["running"] is True
    finally:
        writer.close()
    assert read_run(run).attrs["state"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_every_backend_leaves_a_readable_run(tmp_path, backend):
    files = read_run(finished_run(tmp_path, backend))
    assert not files.running and files.attrs["backend"] == backend
    assert files.evaluations == sum(o.rows for o in files.optimizers) >= 3000
    ids, best = files.best_trajectory
    assert best[-1] == min(o.best_fx for o in files.optimizers)
    assert np.all(np.diff(best[:-1]) < 0)  # one point per improvement, then the last evaluation
    assert files.stop_reasons  # the stoppers ended some optimizers and said why
    assert files.checkpoints and files.session_starts
    assert best_so_far([])[0].size == 0
