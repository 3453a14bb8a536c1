"""In-process MPI tests, collected only when named (the launcher test in test_mpi_launch.py runs them
under mpirun), so an ordinary run does not list them as skipped.

In-process MPI tests (pytest-mpi): every rank runs each test; rank 0 manages, the others serve.

Run: ``mpirun --oversubscribe -n 4 python -m pytest --with-mpi tests/mpi/mpi_rank_cases.py``
(test_mpi_launch.py does so from the ordinary test run). Without ``--with-mpi`` they are skipped.
Assertions run on rank 0 inside ``mpi_workers``; the other ranks pass once rank 0 releases them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
from mpi_tasks import FailingOnRank, RankRecordingTask, SleepyTask, Walker, sphere

from glompo_hpc.backends import ChildSpec, make_backend, mpi_workers
from glompo_hpc.core import messages as msg
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.exit_conditions import MaxFuncCalls, MaxOptsStarted
from glompo_hpc.generators import SinglePointGenerator
from glompo_hpc.selectors import CycleSelector

pytestmark = [pytest.mark.mpi(min_size=4), pytest.mark.timeout(60)]

BOUNDS = [(-5.0, 5.0)] * 2


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="glompo_mpi_"))  # tmp_path would race: 4 pytest processes share its root
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for(backend, kind, opt_id, timeout=10.0, into=None):
    """Poll until a message of ``kind`` for ``opt_id`` arrives; returns it (others go to ``into``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in backend.poll(0.05):
            if isinstance(m, kind) and m.opt_id == opt_id:
                return m
            if into is not None:
                into.append(m)
    raise AssertionError(f"no {kind.__name__} from optimizer {opt_id} within {timeout} s")


def new_manager(workdir, task, selector, **kwargs):
    kwargs.setdefault("split_printstreams", False)
    return GloMPOManager.new_manager(task, BOUNDS, selector, working_dir=workdir, overwrite_existing=True,
                                     backend="mpi", **kwargs)


def test_make_backend_mpi_outside_mpi_workers_says_how_to_fix():
    with pytest.raises(ConfigurationError, match="mpi_workers"):
        make_backend("mpi")


def test_backend_relays_every_manager_message_and_starts_a_restored_optimizer(workdir):
    with mpi_workers() as is_manager:
        if not is_manager:
            return
        backend = make_backend("mpi")
        try:
            backend.start_child(ChildSpec(1, Walker(batch=2), sphere, np.zeros(2), np.array(BOUNDS)))
            report = wait_for(backend, msg.IterationReport, 1)
            assert report.x.shape == (2, 2) and report.fx.shape == (2,)
            backend.send(1, msg.Pause())
            wait_for(backend, msg.ChildPaused, 1)
            time.sleep(0.2)
            backend.poll(0)  # reports flushed before the pause
            assert not [m for m in backend.poll(0.3) if isinstance(m, msg.IterationReport)]
            state = workdir / "opt1.pkl"
            backend.send(1, msg.SaveState(str(state)))
            saved = wait_for(backend, msg.StateSaved, 1)
            assert saved.error == "" and state.exists()
            backend.send(1, msg.InjectIncumbent(np.ones(2), 2.0))
            backend.send(1, msg.Resume())
            wait_for(backend, msg.IterationReport, 1)

            restored = Walker.checkpoint_load(state)
            assert restored.is_restart
            backend.start_child(ChildSpec(2, restored, sphere, np.zeros(2), np.array(BOUNDS)))
            wait_for(backend, msg.IterationReport, 2)
            for opt_id in (1, 2):
                backend.send(opt_id, msg.Stop("test over"))
                final = wait_for(backend, msg.OptimizerFinished, opt_id)
                assert final.stopped and final.reason == "test over"
                assert backend.join_child(opt_id, 5) and not backend.is_alive(opt_id)
        finally:
            backend.close()


def test_a_crashing_child_is_reported_with_its_traceback_and_its_rank_reused(workdir):
    with mpi_workers() as is_manager:
        if not is_manager:
            return
        selector = CycleSelector((Walker, {"iters": 15, "log_dir": str(workdir), "crash_on_rank": 2}))
        m = new_manager(workdir, SleepyTask(delay=0.002), selector, max_jobs=3, exit_conditions=MaxOptsStarted(9))
        m.start_manager()
        ends = {i: r.end_cond for i, r in m.opt_log.records.items()}
        crashed = [i for i, end in ends.items() if end.startswith("Error termination")]
        assert m.opt_crashed and len(crashed) == 1, ends
        assert "deliberate crash on rank 2" in ends[crashed[0]]
        assert "Traceback" in "".join(m.opt_log.records[crashed[0]].messages)
        starts = [line.split() for line in (workdir / "starts.txt").read_text().splitlines()]
        on_rank_2 = [int(opt) for opt, rank in starts if rank == "2"]
        assert crashed[0] in on_rank_2, starts
        served_again = [i for i in on_rank_2 if i > crashed[0] and m.opt_log.n_evals(i) > 0
                        and not ends[i].startswith("Error")]
        assert served_again, (starts, ends)  # rank 2 ran later optimizers after the crash


def test_a_hung_task_is_killed_on_its_rank_and_the_slot_reused(workdir):
    with mpi_workers() as is_manager:
        if not is_manager:
            return
        hang_at = SinglePointGenerator(BOUNDS, [4.0, 0.0])  # SleepyTask(hang_above=3) hangs on the first batch
        m = new_manager(workdir, SleepyTask(hang_above=3.0), CycleSelector((Walker, {})), max_jobs=3,
                        x0_generator=hang_at, force_terminations_after=1.0, exit_conditions=MaxOptsStarted(5))
        m.start_manager()  # returns only because the hung tasks (an hour each) were killed
        ends = [r.end_cond for r in m.opt_log.records.values()]
        # The last ones may see the shutdown's Stop before their first (hanging) evaluation and end cleanly.
        assert ends[:3] == ["Forced GloMPO Termination"] * 3, ends
        assert m.o_counter == 5  # 5 optimizers through 3 slots: the killed ones' slots were reused
        from glompo_hpc.backends.mpi_world import active_world  # not at the top: plain pytest must not load MPI

        host_pids = [h.pid for h in active_world().hosts.values()]
        deadline = time.monotonic() + 30  # generous: only a child that is never reaped reaches it
        while any(psutil.Process(pid).children() for pid in host_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [psutil.Process(pid).children() for pid in host_pids if psutil.Process(pid).children()]


def test_workers_spread_evaluations_over_helper_ranks(workdir):
    with mpi_workers(slots="ranks") as is_manager:
        if not is_manager:
            return
        calls = workdir / "calls.txt"
        selector = CycleSelector((Walker, {"iters": 20, "batch": 9, "workers": 3}))
        m = new_manager(workdir, RankRecordingTask(str(calls)), selector, exit_conditions=MaxFuncCalls(20 * 9))
        assert m.max_jobs == 3
        m.start_manager()
        ranks = Counter(line.split()[0] for line in calls.read_text().splitlines())
        assert set(ranks) == {"1", "2", "3"}, ranks  # leader and two helpers each evaluated a third
        assert all(n == 20 * 3 for n in ranks.values()), ranks
        assert m.f_counter == 20 * 9 and m.opt_log.records[1].end_cond == "Optimizer convergence"


def test_a_task_failing_on_a_helper_rank_fails_its_optimizer_with_the_helpers_traceback(workdir):
    with mpi_workers(slots="ranks") as is_manager:
        if not is_manager:
            return
        selector = CycleSelector((Walker, {"iters": 5, "batch": 6, "workers": 3}))
        m = new_manager(workdir, FailingOnRank(3), selector, exit_conditions=MaxOptsStarted(2))
        m.start_manager()
        end = m.opt_log.records[1].end_cond
        assert end.startswith("Error termination: RuntimeError: the task failed on a helper rank"), end
        text = "".join(m.opt_log.records[1].messages)
        assert "(helper rank 3)" in text and "task broke on rank 3" in text, text


def test_cores_slots_run_an_optimizers_workers_inside_one_rank(workdir):
    with mpi_workers(slots="cores", cores_per_rank=2) as is_manager:
        if not is_manager:
            return
        calls = workdir / "calls.txt"
        selector = CycleSelector((Walker, {"iters": 10, "batch": 4, "workers": 2}))
        m = new_manager(workdir, RankRecordingTask(str(calls)), selector, exit_conditions=MaxFuncCalls(100))
        assert m.max_jobs == 6  # 3 worker ranks x 2 cores
        m.start_manager()
        lines = [line.split() for line in calls.read_text().splitlines()]
        assert len(lines) == m.f_counter > 0
        assert len({rank for rank, _ in lines}) >= 2  # optimizers were placed on different ranks
        # Each optimizer's two workers are threads of its own process: no helper rank evaluated.
        evaluated = [i for i in m.opt_log.records if m.opt_log.n_evals(i) > 0]
        assert len({pid for _, pid in lines}) == len(evaluated) >= 2


def test_two_runs_share_one_set_of_worker_ranks(workdir):
    with mpi_workers() as is_manager:
        if not is_manager:
            return
        for i in range(2):
            m = new_manager(workdir / f"run{i}", sphere, CycleSelector((Walker, {"iters": 5})),
                            exit_conditions=MaxFuncCalls(200))
            result = m.start_manager()
            assert m.f_counter >= 200 and np.isfinite(result.fx)
