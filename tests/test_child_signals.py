"""Every child process gets the same signal dispositions, from one function
(backends/child_signals.py): Ctrl-C and SIGUSR2 ignored (the manager decides how children end),
SIGTERM default (so terminate() ends a hung child)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

from glompo_hpc import GloMPOManager, MaxFuncCalls
from glompo_hpc.backends.child_signals import CHILD_SIGNAL_DISPOSITIONS
from glompo_hpc.backends.mpi_batch import evaluator_main
from support.runs import EVENT_WAIT

EXPECTED = {"SIGINT": "SIG_IGN", "SIGTERM": "SIG_DFL", "SIGUSR2": "SIG_IGN"}


def _disposition(handler: object) -> str:
    return handler.name if isinstance(handler, signal.Handlers) else "python handler"


class RecordsDispositions:
    """A sphere that writes, once per process evaluating it, that process's signal dispositions."""

    def __init__(self, directory: Path):
        self.directory = str(directory)

    def __call__(self, x) -> float:
        path = Path(self.directory) / f"{os.getpid()}.json"
        if not path.exists():
            path.write_text(json.dumps({s.name: _disposition(signal.getsignal(s)) for s in CHILD_SIGNAL_DISPOSITIONS}))
        return float(sum(v * v for v in x))


def _records(directory: Path) -> dict[int, dict[str, str]]:
    return {int(p.stem): json.loads(p.read_text()) for p in directory.glob("*.json")}


def test_the_table_is_what_children_need():
    assert {s.name: d.name for s, d in CHILD_SIGNAL_DISPOSITIONS.items()} == EXPECTED


def test_process_backend_children_get_the_dispositions(tmp_path):
    seen = tmp_path / "seen"
    seen.mkdir()
    manager = GloMPOManager.new_manager(RecordsDispositions(seen), [(-2.0, 2.0)] * 2, backend="processes",
                                        exit_conditions=MaxFuncCalls(200), working_dir=tmp_path / "run",
                                        max_jobs=2, summary_files=0)
    manager.start_manager()
    records = _records(seen)
    assert records and os.getpid() not in records  # evaluated in child processes only
    assert all(record == EXPECTED for record in records.values()), records


def test_an_mpi_helper_evaluator_gets_the_dispositions(tmp_path):
    # as on a rank host, which ignores TERM while it serves: its forked evaluator must not inherit that
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ctx = mp.get_context("fork")
        host_end, evaluator_end = ctx.Pipe()
        evaluator = ctx.Process(target=evaluator_main, args=(RecordsDispositions(tmp_path), False, evaluator_end))
        evaluator.start()
    finally:
        signal.signal(signal.SIGTERM, previous)
    evaluator_end.close()
    host_end.send((1, [[1.0, 2.0]]))
    seq, outcomes, error = host_end.recv()  # the answer: the evaluation (and its record) is done
    evaluator.terminate()  # the fork holds both pipe ends, so closing ours is no EOF there
    evaluator.join(EVENT_WAIT)
    if evaluator.is_alive():  # SIGTERM ignored: fail, without leaving the process behind
        evaluator.kill()
        evaluator.join()
    assert evaluator.exitcode == -signal.SIGTERM  # the default disposition, not the host's SIG_IGN
    assert (seq, len(outcomes), error) == (1, 1, "")
    assert _records(tmp_path) == {evaluator.pid: EXPECTED}
