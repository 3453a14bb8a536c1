"""OptimizerLog: columnar history in bounded memory, exact counts and bests after rows leave memory."""

from __future__ import annotations

import math

import dill
import numpy as np
import pytest

from glompo_hpc.core.optlog import OptimizerLog, rows_needed_by
from glompo_hpc.stoppers import BestUnmoving, EvaluationsUnmoving, LastPointsInvalid, MinFuncCalls


class Feeder:
    """Feeds batches to a log with globally increasing call ids."""

    def __init__(self, log: OptimizerLog):
        self.log = log
        self.next_id = 1

    def __call__(self, opt_id: int, fx, x=None, extras=None) -> None:
        fx = np.asarray(fx, dtype=float)
        if opt_id not in self.log:
            self.log.add_optimizer(opt_id, "Walk", 0.0)
        x = np.tile(fx[:, None], (1, self.log.n_parms)) if x is None else np.asarray(x, dtype=float)
        ids = np.arange(self.next_id, self.next_id + len(fx))
        self.next_id += len(fx)
        self.log.put_batch(opt_id, ids, x, fx, extras)


def test_live_optimizer_keeps_a_window_but_counts_and_bests_stay_exact():
    log = OptimizerLog(2, tail_rows=100)
    feed = Feeder(log)
    rng = np.random.default_rng(1)
    values = rng.uniform(1, 2, 5000)
    values[1234] = 0.5  # the best, long gone from memory at the end
    values[4000] = math.nan
    for chunk in np.array_split(values, 97):
        feed(1, chunk)
    assert log.n_evals(1) == 5000 and len(log) == 5000
    x, fx, call = log.best(1)
    assert fx == 0.5 and call == 1235 and np.array_equal(x, [0.5, 0.5])
    kept = log.history(1, "fx")
    assert 100 <= len(kept) <= 125 + 52  # the window plus its slack (and at most one batch)
    assert log.first_row(1) == 5000 - len(kept)
    assert np.array_equal(kept, values[-len(kept):], equal_nan=True)
    assert np.array_equal(log.history(1, "call_id"), np.arange(5001 - len(kept), 5001))
    assert log.best_fx(1) == 0.5 and log.best_fx(1, 50) == 0.5  # running best includes forgotten rows
    assert np.array_equal(log.tail(1, "fx", 10), values[-10:])


def test_a_batch_longer_than_the_window_keeps_its_end():
    log = OptimizerLog(1, tail_rows=10)
    feed = Feeder(log)
    feed(1, np.arange(100.0, 0, -1))
    assert log.n_evals(1) == 100 and np.array_equal(log.history(1, "fx"), np.arange(10.0, 0, -1))
    assert log.best(1)[1:] == (1.0, 100)


def test_ended_optimizers_are_cut_to_their_last_row_beyond_the_budget():
    log = OptimizerLog(1, tail_rows=1000, ended_rows=150)
    feed = Feeder(log)
    for opt_id in (1, 2, 3):
        feed(opt_id, np.linspace(10, opt_id, 100))
    log.put_metadata(1, t_end=1.0, end_cond="Optimizer convergence")
    assert len(log.history(1, "fx")) == 100  # 100 ended rows fit the budget of 150
    log.end_optimizer(2, 2.0, "GloMPO Termination")
    assert len(log.history(1, "fx")) == 1 and len(log.history(2, "fx")) == 100  # the first to end goes first
    assert log.n_evals(1) == 100 and log.best(1)[1] == 1.0 and log.history(1, "fx")[0] == 1.0
    assert log.records[2].end_cond == "GloMPO Termination" and len(log.history(3, "fx")) == 100  # alive: untouched
    feed(1, [0.25])  # a report that raced with the end is still counted
    assert log.n_evals(1) == 101 and log.best(1)[1] == 0.25 and log.tail(1, "fx", 1)[0] == 0.25


def test_non_finite_values_never_count_as_best():
    log = OptimizerLog(1)
    feed = Feeder(log)
    feed(1, [math.nan, math.inf, -math.inf])
    assert log.best(1) == (None, math.inf, -1) and log.best_fx(1) == math.inf
    feed(1, [3.0, -math.inf, 2.0])
    assert log.best(1)[1:] == (2.0, 6) and list(log.history(1, "fx_best")) == [math.inf] * 3 + [3.0, 3.0, 2.0]


def test_reading_beyond_memory_widens_the_window_and_errs_towards_not_stopping(caplog):
    log = OptimizerLog(1, tail_rows=20)
    feed = Feeder(log)
    feed(1, np.full(200, 5.0))
    stopper = BestUnmoving(calls=100)
    with caplog.at_level("INFO", logger="glompo_hpc.core.optlog"):
        assert stopper(log, 1, 1) is False  # the old value is not in memory: inf, so no stop
    assert "beyond the" in caplog.text and log.tail_rows == 100
    feed(1, np.full(150, 5.0))
    assert len(log.history(1, "fx")) >= 100 and stopper(log, 1, 1) is True  # now answered exactly


def test_stoppers_read_exact_windows_within_tail_rows():
    log = OptimizerLog(1, tail_rows=50)
    feed = Feeder(log)
    feed(1, np.r_[np.linspace(9, 1, 1000), np.full(49, 1.0)])
    assert BestUnmoving(calls=50)(log, 1, 1) is True and BestUnmoving(calls=51)(log, 1, 1) is False
    assert EvaluationsUnmoving(calls=49)(log, 1, 1) is True and LastPointsInvalid(3)(log, 1, 1) is False
    assert MinFuncCalls(1049)(log, 1, 1) is True


def test_rows_needed_by_reads_every_leaf():
    assert rows_needed_by(None) == 1
    assert rows_needed_by(BestUnmoving(300) & (MinFuncCalls(10) | LastPointsInvalid(7))) == 300
    assert rows_needed_by(EvaluationsUnmoving(calls=12_345)) == 12_345


def test_extras_are_kept_with_their_rows():
    log = OptimizerLog(1, tail_rows=4)
    feed = Feeder(log)
    extras = np.array([[i, f"t{i}"] for i in range(6)], dtype=object)
    feed(1, np.arange(6.0), extras=extras)
    assert log.history(1, "extras").tolist() == extras[-4:].tolist()
    with pytest.raises(KeyError, match="unknown history column"):
        log.history(1, "nope")


def test_a_failing_sink_is_dropped_and_noted(caplog):
    class Broken:
        def add_optimizer(self, record):
            raise OSError("disk full")

    log = OptimizerLog(1, sink=Broken())
    Feeder(log)(1, [1.0])
    assert log.sink is None and log.sink_status["complete"] is False and "disk full" in log.sink_status["problem"]
    assert log.n_evals(1) == 1 and "sink failed" in caplog.text


def test_log_pickles_with_its_bounded_state():
    log = OptimizerLog(2, tail_rows=30, ended_rows=10)
    feed = Feeder(log)
    feed(1, np.arange(500.0))
    log.put_metadata(1, t_end=1.0)
    back = dill.loads(dill.dumps(log))
    assert back.n_evals(1) == 500 and back.best(1)[1] == 0.0 and back.tail_rows == 30
    assert len(dill.dumps(log)) < 20_000  # not 500 rows


def test_a_pickled_log_holds_its_rows_not_its_spare_capacity():
    """The arrays grow by doubling; a checkpoint saves the rows held, and appending after a restore works."""
    log = OptimizerLog(6, tail_rows=10_000)
    feed = Feeder(log)
    feed(1, np.arange(1100.0))  # the arrays have grown to 2048 rows
    per_row = 8 * (6 + 3)  # call_id, x (6), fx, fx_best
    assert len(dill.dumps(log)) < 1100 * per_row + 8_000  # about 1100 rows, not 2048
    back = dill.loads(dill.dumps(log))
    assert np.array_equal(back.history(1, "fx"), np.arange(1100.0))
    Feeder.__init__(feed, back)
    feed.next_id = 1101
    feed(1, np.arange(1100.0, 1300.0))
    assert np.array_equal(back.history(1, "fx"), np.arange(1300.0)) and back.n_evals(1) == 1300
