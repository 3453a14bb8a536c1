"""The job environment, the walltime guard and the requeue countdown, with the local twin (no SLURM)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime

import pytest

from glompo_hpc import cli
from glompo_hpc.slurm import environment as envmod
from glompo_hpc.slurm.environment import LocalEnvironment, SlurmEnvironment, detect, parse_squeue_time
from glompo_hpc.slurm.walltime import (EXIT_REQUEUE, RequeueBudget, WalltimeGuard, guard_for_run,
                                       requeue_refusal)

pytestmark = pytest.mark.timeout(60)


class FlagHandler:
    """A handler that only records, installed for the duration of a test (main thread)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.received: list[float] = []

    def __call__(self, signum, frame) -> None:
        self.received.append(time.time())

    def __enter__(self) -> "FlagHandler":
        self.previous = signal.signal(self.signum, self)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(self.signum, self.previous)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class CountedEnd(LocalEnvironment):
    """A twin whose end a test can move, that counts the guard's reads of it: the guard has looked
    (and found nothing due) once ``reads`` has grown, an event instead of a sleep."""

    def __init__(self, end: float | None) -> None:
        super().__init__({})
        self.end = end
        self.reads = 0

    @property
    def end_time(self):
        self.reads += 1
        return self.end


# ------------------------------------------------------------ the exit status contract

def test_requeue_status_is_the_command_lines():
    assert EXIT_REQUEUE == cli.EXIT_REQUEUE == 3


# ------------------------------------------------------------ environments

def test_squeue_times_parse_as_local_time_and_no_end_is_none():
    assert parse_squeue_time("2030-01-02T03:04:05\n") == datetime(2030, 1, 2, 3, 4, 5).timestamp()
    for text in ("Unknown", "N/A", "NONE", "", "INVALID"):
        assert parse_squeue_time(text) is None


def test_detect_picks_slurm_inside_a_job_and_the_twin_elsewhere():
    assert isinstance(detect({"SLURM_JOB_ID": "42"}), SlurmEnvironment)
    assert isinstance(detect({}), LocalEnvironment)


def test_slurm_environment_reads_the_variables():
    env = SlurmEnvironment({"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "3", "SLURM_PROCID": "2", "SLURM_NTASKS": "4"})
    assert (env.job_id, env.restart_count, env.rank, env.num_tasks) == ("42", 3, 2, 4)
    first_start = SlurmEnvironment({"SLURM_JOB_ID": "42"})
    assert first_start.restart_count == 0  # SLURM sets SLURM_RESTART_COUNT only after a requeue


def test_mpi_rank_wins_over_the_batch_shells_procid():
    # under mpirun in a batch script every rank inherits SLURM_PROCID=0 from the shell
    env = SlurmEnvironment({"SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "OMPI_COMM_WORLD_RANK": "3"})
    assert env.rank == 3


def test_slurm_end_time_and_state_come_from_squeue(monkeypatch):
    calls = []

    class Done:
        returncode, stderr = 0, ""

        def __init__(self, stdout):
            self.stdout = stdout

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return Done({"%e": "2030-01-02T03:04:05\n", "%T": "RUNNING\n"}[cmd[-1]])

    monkeypatch.setattr(envmod.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(envmod.subprocess, "run", fake_run)
    env = SlurmEnvironment({"SLURM_JOB_ID": "42"})
    assert env.end_time == datetime(2030, 1, 2, 3, 4, 5).timestamp()
    assert env.job_state() == "RUNNING"
    assert calls[0] == ["/usr/bin/squeue", "-h", "-j", "42", "-o", "%e"]


def test_slurm_end_time_is_none_without_squeue(monkeypatch):
    monkeypatch.setattr(envmod.shutil, "which", lambda name: None)
    assert SlurmEnvironment({"SLURM_JOB_ID": "42"}).end_time is None


def test_local_twin_reads_its_variables_and_arguments_override_them():
    env = LocalEnvironment({"GLOMPO_HPC_JOB_END_TIME": "1234.5", "GLOMPO_HPC_RESTART_COUNT": "2",
                            "GLOMPO_HPC_JOB_ID": "local-1", "GLOMPO_HPC_JOB_STATE": "RUNNING"})
    assert (env.end_time, env.restart_count, env.job_id, env.job_state()) == (1234.5, 2, "local-1", "RUNNING")
    assert LocalEnvironment({"GLOMPO_HPC_RESTART_COUNT": "2"}, restart_count=5).restart_count == 5
    assert LocalEnvironment({}).end_time is None
    assert LocalEnvironment({"GLOMPO_HPC_JOB_END_TIME": "soon"}).end_time is None  # warned, not raised


# ------------------------------------------------------------ requeue countdown

def test_budget_allows_max_requeues_restarts_then_refuses_with_a_clear_message():
    assert RequeueBudget(2, 0).allows_requeue() and RequeueBudget(2, 1).allows_requeue()
    spent = RequeueBudget(2, 2, job_id="77")
    assert not spent.allows_requeue() and spent.remaining == 0
    message = spent.exhausted_message("run/checkpoints/c.tar")
    for part in ("job 77", "restarted 2 time(s)", "slurm.max_requeues (2)", "not requeued", "run/checkpoints/c.tar"):
        assert part in message
    assert not RequeueBudget(0, 0).allows_requeue()  # max_requeues: 0 means never


def test_refusal_names_the_spent_budget_and_a_job_that_no_longer_runs():
    running = LocalEnvironment({}, job_id="5", restart_count=1)
    assert requeue_refusal(3, running) is None
    assert "restarted 3 time(s)" in requeue_refusal(3, LocalEnvironment({}, job_id="5", restart_count=3))
    cancelled = LocalEnvironment({"GLOMPO_HPC_JOB_STATE": "COMPLETING"}, job_id="5")
    assert "COMPLETING" in requeue_refusal(3, cancelled)


# ------------------------------------------------------------ walltime guard

def test_guard_sends_sigusr2_at_end_minus_margin():
    end = time.time() + 1.5
    with FlagHandler(signal.SIGUSR2) as flag:
        with WalltimeGuard(margin_s=1.0, env=LocalEnvironment({}, end_time=end)) as guard:
            assert wait_until(lambda: flag.received, timeout=5)
        assert guard.fired
        assert flag.received[0] >= guard.fired_at >= end - 1.0  # due at end - margin, never before
        assert len(flag.received) == 1  # once


def test_guard_reads_the_twins_end_from_the_environment(monkeypatch):
    monkeypatch.setenv("GLOMPO_HPC_JOB_END_TIME", str(time.time() + 0.2))  # due at once
    with FlagHandler(signal.SIGUSR2) as flag:
        with WalltimeGuard(margin_s=0.2):  # detect(): the local twin, from the variable
            assert wait_until(lambda: flag.received, timeout=30)


def test_guard_stopped_before_its_time_sends_nothing():
    env = CountedEnd(time.time() + 3600)
    with FlagHandler(signal.SIGUSR2) as flag:
        guard = WalltimeGuard(margin_s=0.0, env=env, refresh_s=0.05).start()
        assert wait_until(lambda: env.reads >= 1, timeout=30)
        guard.stop()
        env.end = time.time() - 1  # now due: a guard still watching would send at its next read
        # stop() returned: no thread is left that could send, now or later
        assert not [t for t in threading.enumerate() if t.name == "glompo-walltime-guard"]
    assert not flag.received and not guard.fired


def test_guard_waits_for_a_listener_instead_of_killing_the_process(caplog):
    # SIGWINCH: its default action is to ignore, so the test process survives a wrong send
    signum = signal.SIGWINCH
    previous = signal.signal(signum, signal.SIG_DFL)
    try:
        guard = WalltimeGuard(margin_s=10.0, env=LocalEnvironment({}, end_time=time.time() + 1), signum=signum)
        guard.LISTEN_POLL_S = 0.02
        with caplog.at_level(logging.INFO, logger="glompo_hpc.slurm.walltime"), guard:
            assert wait_until(lambda: "waiting for the manager to listen" in caplog.text, timeout=30)
            assert not guard.fired  # due at once, but nobody listens yet
            with FlagHandler(signum) as flag:
                assert wait_until(lambda: flag.received, timeout=5)
            assert guard.fired
    finally:
        signal.signal(signum, previous)


def test_guard_with_an_unknown_end_never_fires():
    env = CountedEnd(None)
    with FlagHandler(signal.SIGUSR2) as flag:
        with WalltimeGuard(margin_s=0.0, env=env, refresh_s=0.05) as guard:
            assert wait_until(lambda: env.reads >= 5, timeout=30)  # asked again and again
    assert not flag.received and not guard.fired


def test_guard_follows_a_changed_end():
    env = CountedEnd(time.time() + 100)  # e.g. `scontrol update TimeLimit=` shortened the job
    with FlagHandler(signal.SIGUSR2) as flag:
        with WalltimeGuard(margin_s=0.0, env=env, refresh_s=0.05):
            assert wait_until(lambda: env.reads >= 2, timeout=30)  # it has looked, and looked again
            assert not flag.received
            env.end = time.time() + 0.2
            assert wait_until(lambda: flag.received, timeout=30)


def test_guard_for_run_only_on_rank_zero_and_with_an_end():
    end = time.time() + 1000
    assert isinstance(guard_for_run(60, LocalEnvironment({}, end_time=end)), WalltimeGuard)
    assert guard_for_run(60, LocalEnvironment({}, end_time=end, rank=1)) is None
    assert guard_for_run(60, LocalEnvironment({})) is None
    with pytest.raises(ValueError, match="margin_s"):
        WalltimeGuard(-1, LocalEnvironment({}))


def test_guard_makes_a_real_manager_checkpoint_and_stop(tmp_path):
    """The guard's SIGUSR2 lands in the manager's handler: checkpoint, stop, outputs (threads backend)."""
    from glompo_hpc.checkpointing import CheckpointingControl
    from glompo_hpc.jobfile import build_manager_kwargs, validate
    from glompo_hpc.core.manager import GloMPOManager

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    spec = validate({"task": {"function": "glompo_hpc.tasks.functions:Rastrigin", "kwargs": {"dims": 3, "delay": 0.005}},
                     "optimizers": {"options": [{"type": "CMAOptimizer", "sigma0": 2.0, "popsize": 8}]},
                     "exit_conditions": "MaxFuncCalls(fmax=1000000)",
                     "manager": {"backend": "threads", "max_jobs": 2, "working_dir": str(tmp_path / "run"),
                                 "summary_files": 1}},
                    base_dir=tmp_path)
    kwargs = build_manager_kwargs(spec)
    kwargs["checkpoint_control"] = CheckpointingControl()
    manager = GloMPOManager.new_manager(**kwargs)
    t0 = time.time()
    with WalltimeGuard(margin_s=1.0, env=LocalEnvironment({}, end_time=t0 + 3.0)) as guard:
        manager.start_manager()
    assert guard.fired
    assert manager.interrupted == "SIGUSR2"
    assert manager.exit_checkpoint is not None and manager.exit_checkpoint.exists()
