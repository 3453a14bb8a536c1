"""Seeded fault campaigns on the real command line, and faults of single child optimizers.

Campaign 1 (SIGKILL): each trial runs ``glompo-hpc run job.yaml --resume auto`` with periodic
checkpoints and the HDF5 log, kills the whole process group with SIGKILL (a node failure, the OOM
killer) at a moment drawn from the trial's seed, once or several times, then lets a last
``--resume auto`` finish. Campaign 2 (signals): one SIGUSR2 or SIGTERM per trial, from the very
start-up to after the end; the exit code must be the documented one and a resume must finish.
Every trial ends with the same checks: exit 0, every evaluation in ``glompo_log.h5`` exactly once
(call ids 1..f_counter), log, summary and printed result agree, and rows that existed at the
checkpoint a resume started from are unchanged.

Modes (environment variables):

- default (CI): 20 trials per campaign, runs of about a second, 3 trials at a time.
- ``GLOMPO_NIGHTLY=1``: 200 trials per campaign, longer runs, up to 5 kills per trial.
- ``GLOMPO_FAULT_SEED=N``: the campaign seed (default 20261128); trial i uses seed N + i.
- ``GLOMPO_FAULT_TRIALS=K``: run K trials. A failure prints its trial seed and kill moments;
  replay it with ``GLOMPO_FAULT_SEED=<trial seed> GLOMPO_FAULT_TRIALS=1``.
- ``GLOMPO_FAULT_WORKERS=W``: trials run at once (default 3).

Every test here carries the ``faults`` marker (``pytest -m faults`` selects them, ``-m "not faults"``
leaves them out).

Launching: most runs are forked from a "fork server", a Python process that has imported
glompo_hpc once and runs ``python -m glompo_hpc`` (runpy, the real ``__main__``) in a fresh
forked process of its own session for each launch. This saves the ~1.5 s of imports per launch
that would make the campaigns too slow for CI; signals and kills reach exactly the process tree a
real launch has. Some start-up trials launch a cold ``python -m glompo_hpc`` instead, so that the
import phase is hit too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import yaml
from support.optimizers import SleepyTask, WalkOptimizer

from glompo_hpc import (BestUnmoving, CheckpointingControl, CycleSelector, GloMPOManager, MaxFuncCalls,
                        RandomGenerator)
from glompo_hpc.core.checkpoint_file import latest_checkpoint, list_checkpoints, open_checkpoint
from glompo_hpc.outputs.read_log import read_log

NIGHTLY = os.environ.get("GLOMPO_NIGHTLY", "") not in ("", "0")
SEED = int(os.environ.get("GLOMPO_FAULT_SEED", "20261128"))
TRIALS = int(os.environ.get("GLOMPO_FAULT_TRIALS", "200" if NIGHTLY else "20"))
WORKERS = int(os.environ.get("GLOMPO_FAULT_WORKERS", "3"))
BUDGET = 4000 if NIGHTLY else 1500  # evaluations per run; with the 1 ms task about a second in CI
MAX_KILLS = 5 if NIGHTLY else 3
CAMPAIGN_TIMEOUT = 6 * 3600 if NIGHTLY else 900  # generous: the machine may be heavily loaded
RUN_TIMEOUT = 180.0  # s for one launch to end on its own; only a hang takes that long
EXIT_REQUEUE = 3  # docs/slurm.md: stopped by a signal after a checkpoint
EVAL_INTERVAL = 200

JOB = """\
task: {{function: "glompo_hpc.tasks.functions:Rastrigin", kwargs: {{dims: 3, delay: 0.001}}}}
optimizers: {{selector: CycleSelector, options: [{{type: CMAOptimizer, sigma0: 2.0, popsize: 8}}]}}
stoppers: "BestUnmoving(calls=300, tol=0.01)"
exit_conditions: "MaxFuncCalls(fmax={budget})"
generator: {{type: RandomGenerator}}
manager: {{backend: {backend}, max_jobs: 2, working_dir: run, summary_files: 3, seed: {seed}}}
checkpointing: {{checkpoint_eval_interval: {interval}, keep_past: 3}}
logging: {{level: INFO}}
"""

pytestmark = pytest.mark.faults


# ====================================================================== launching runs

FORK_SERVER = r"""
import atexit, json, os, runpy, select, sys, traceback
import glompo_hpc.cli, glompo_hpc.jobfile, glompo_hpc.core.manager, glompo_hpc.outputs.hdf5_log
import glompo_hpc.outputs.summary, glompo_hpc.outputs.plots, glompo_hpc.backends.processes
import glompo_hpc.backends.threads, glompo_hpc.tasks.functions
try:
    import matplotlib.figure, matplotlib.backends.backend_agg
except ImportError:
    pass

proto = os.fdopen(os.dup(1), "w", buffering=1)


def run_child(request):
    proto.close()
    os.setsid()  # its own process group, as a batch job's: the whole tree can be killed at once
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "out"), (2, "err")):
        f = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(request["cwd"])
    sys.argv = ["glompo_hpc", *request["argv"]]
    code = 1
    try:
        runpy.run_module("glompo_hpc", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    atexit._run_exitfuncs()  # what the end of the interpreter would run (the HDF5 log's close)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


print(json.dumps({"ready": os.getpid()}), file=proto)
buffer = b""
while True:
    if select.select([0], [], [], 0.01)[0]:
        data = os.read(0, 1 << 16)
        if not data:
            break
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                run_child(request)
            print(json.dumps({"started": request["id"], "pid": pid}), file=proto)
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        print(json.dumps({"exited": pid, "rc": os.waitstatus_to_exitcode(status)}), file=proto)
"""


class ForkServer:
    """Client of FORK_SERVER: launches runs and learns their exit codes (it is their parent)."""

    def __init__(self, log: Path):
        self._err = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True)
        ready = self.proc.stdout.readline()
        assert ready.startswith('{"ready"'), f"the fork server did not start: {log.read_text()}"
        self._cond = threading.Condition()
        self._started: dict[int, int] = {}
        self._exited: dict[int, int] = {}
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "started" in message:
                    self._started[message["started"]] = message["pid"]
                else:
                    self._exited[message["exited"]] = message["rc"]
                self._cond.notify_all()

    def spawn(self, cwd: Path, argv: list[str], out: Path, err: Path) -> int:
        with self._cond:
            self._next += 1
            rid = self._next
            request = {"id": rid, "cwd": str(cwd), "argv": argv, "out": str(out), "err": str(err)}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            assert self._cond.wait_for(lambda: rid in self._started, 60), "the fork server did not answer"
            return self._started[rid]

    def returncode(self, pid: int, timeout: float) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exited, timeout)
            return self._exited.get(pid)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._err.close()


@dataclass
class Launch:
    """One ``glompo-hpc`` process (the leader of its own process group)."""

    pid: int
    cold: bool
    out: Path
    err: Path
    _returncode: Callable[[float], int | None]
    started: float = field(default_factory=time.time)

    def poll(self, timeout: float = 0.0) -> int | None:
        return self._returncode(timeout)

    def wait(self) -> int:
        rc = self.poll(RUN_TIMEOUT)
        if rc is None:
            self.kill_group()
            raise AssertionError(f"run {self.pid} did not end within {RUN_TIMEOUT} s:\n{self.tail()}")
        return rc

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        if self.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def send(self, sig: int, group: bool) -> bool:
        """Send ``sig``; False if the run had already ended."""
        if self.poll() is not None:
            return False
        try:
            os.killpg(self.pid, sig) if group else os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:])


class Launcher:
    """Starts ``glompo-hpc run JOB --resume auto`` in a trial directory, warm or cold."""

    def __init__(self, server: ForkServer):
        self.server = server

    def run(self, trial_dir: Path, cold: bool = False) -> Launch:
        n = len(list(trial_dir.glob("launch_*.err")))
        out, err = trial_dir / f"launch_{n}.out", trial_dir / f"launch_{n}.err"
        argv = ["run", "job.yaml", "--resume", "auto"]
        if not cold:
            pid = self.server.spawn(trial_dir, argv, out, err)
            return Launch(pid, False, out, err, lambda t: self.server.returncode(pid, t))
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", *argv], cwd=trial_dir, stdout=o, stderr=e,
                                    start_new_session=True)

        def returncode(timeout: float) -> int | None:
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        return Launch(proc.pid, True, out, err, returncode)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("fork_server") / "server.err")
    yield Launcher(server)
    server.close()


# ====================================================================== the run directory

class RunDir:
    """What a trial's working directory shows: checkpoints, staging folders, the log."""

    def __init__(self, trial_dir: Path):
        self.path = trial_dir / "run"
        self.checkpoints = self.path / "checkpoints"
        self.log = self.path / "glompo_log.h5"
        self.summary = self.path / "glompo_manager_log.yml"

    def tars(self) -> list[Path]:
        return list_checkpoints(self.checkpoints)

    def in_progress(self, since: float) -> list[Path]:
        """Staging folders and temporary archives of checkpoints begun after ``since``."""
        try:
            entries = list(os.scandir(self.checkpoints))
        except FileNotFoundError:
            return []
        return [Path(e.path) for e in entries if e.name.startswith(".") and _mtime(e) >= since]

    def log_rows(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{call_id: (x, fx)} of every row in the log."""
        log = read_log(self.log, columns=("call_id", "x", "fx"))
        rows = {}
        for o in log.optimizers:
            for cid, x, fx in zip(o.data["call_id"], o.data["x"], o.data["fx"]):
                assert int(cid) not in rows, f"call id {cid} appears twice in the log"
                rows[int(cid)] = (x, fx)
        return rows


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def wait_until(launch: Launch, condition: Callable[[], bool], period: float, timeout: float = 120.0) -> bool:
    """Poll ``condition`` until it holds (True) or the run ends or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if launch.poll(period) is not None:
            return condition()
    return False


# ====================================================================== invariants

def assert_intact(rd: RunDir, where: str) -> dict:
    """After a kill: every checkpoint on disk verifies, the log opens and holds call ids 1..N once.

    Returns the rows (call_id -> (x, fx)) up to the checkpoint a resume will start from, which
    must come through the rest of the trial unchanged.
    """
    for tar in rd.tars():
        open_checkpoint(tar).close()  # raises CheckpointError naming a damaged one
    newest = latest_checkpoint(rd.checkpoints)
    if newest is None:
        return {}
    with open_checkpoint(newest) as c:
        f_checkpoint = int(c.manifest["f_counter"])
    rows = rd.log_rows()
    ids = np.array(sorted(rows), dtype=np.int64)
    assert np.array_equal(ids, np.arange(1, len(ids) + 1)), f"{where}: log call ids have gaps"
    assert len(ids) >= f_checkpoint, f"{where}: the log lost rows the checkpoint {newest.name} counted"
    return {cid: rows[cid] for cid in range(1, f_checkpoint + 1)}


def assert_finished(rd: RunDir, launch: Launch, kept: dict, where: str) -> None:
    """A run that ended normally: every evaluation once, and log, summary and stdout agree."""
    summary = yaml.safe_load(rd.summary.read_text())
    log = read_log(rd.log, columns=("call_id", "fx"))
    f = summary["counters"]["function_evaluations"]
    ids = np.concatenate([o.data["call_id"] for o in log.optimizers])
    unique, counts = np.unique(ids, return_counts=True)
    assert not (counts > 1).any(), f"{where}: call ids logged twice: {unique[counts > 1][:10]}"
    missing = np.setdiff1d(np.arange(1, f + 1), unique)
    assert len(missing) == 0 and len(ids) == f, f"{where}: {f} evaluations, {len(ids)} rows, missing {missing[:10]}"
    assert log.attrs["f_counter"] == log.attrs["rows"] == f >= BUDGET, where
    assert log.attrs["complete"] and log.attrs["state"] == "finished", f"{where}: {log.attrs['problem']}"
    assert summary["log"]["complete"] and summary["solution"]["state"] == "finished", where
    assert summary["solution"]["exit_reason"] == f"MaxFuncCalls(fmax={BUDGET})", where
    fx = np.concatenate([o.data["fx"] for o in log.optimizers])
    best = float(np.min(fx[np.isfinite(fx)]))
    assert summary["solution"]["fx"] == best == log.attrs["best_fx"], where
    printed = re.search(r"^Best fx:\s+(\S+)$", launch.stdout(), re.M)
    assert printed and float(printed.group(1)) == pytest.approx(best, rel=1e-9), f"{where}: {launch.stdout()}"
    with h5py.File(rd.log, "r") as h5:  # no group longer or shorter than its rows attribute
        for name, group in h5.items():
            n = int(group.attrs["rows"])
            assert len(group["call_id"]) == len(group["fx"]) == len(group["x"]) == n, f"{where}: {name}"
    final = rd.log_rows()
    changed = [cid for cid, (x, fx) in kept.items()
               if not (np.array_equal(final[cid][0], x) and np.array_equal(final[cid][1], fx, equal_nan=True))]
    assert not changed, f"{where}: rows from before the resume point changed: call ids {changed[:10]}"


def new_trial(tmp_path: Path, seed: int) -> tuple[Path, str]:
    backend = ("threads", "processes")[seed % 2]
    trial_dir = tmp_path / f"trial_{seed}"
    trial_dir.mkdir()
    text = JOB.format(budget=BUDGET, backend=backend, seed=seed, interval=EVAL_INTERVAL)
    (trial_dir / "job.yaml").write_text(text)
    return trial_dir, backend


def run_campaign(trial: Callable[[int], str]) -> Counter:
    """Run TRIALS trials, WORKERS at a time; fail with every failing trial's replay line."""
    seeds = [SEED + i for i in range(TRIALS)]
    failures: list[str] = []
    outcomes: Counter = Counter()

    def guarded(seed: int) -> None:
        try:
            outcomes.update(trial(seed).split(";"))
        except Exception as e:  # noqa: BLE001 - every failure is reported with its seed below
            failures.append(f"trial seed {seed} (replay: GLOMPO_FAULT_SEED={seed} GLOMPO_FAULT_TRIALS=1): "
                            f"{type(e).__name__}: {e}")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(guarded, seeds))
    print(f"\n{len(seeds) - len(failures)}/{len(seeds)} trials passed; outcomes: {dict(sorted(outcomes.items()))}")
    assert not failures, "\n\n".join(failures)
    return outcomes


# ====================================================================== campaign 1: SIGKILL

PHASES = ("startup", "early", "mid", "in-checkpoint", "end")


@dataclass
class KillPlan:
    phase: str
    value: float  # startup/early: delay in s; mid: checkpoints to wait for
    cold: bool

    def __str__(self) -> str:
        return f"{self.phase}({self.value:.3f}{', cold' if self.cold else ''})"


def kill_plans(rng: np.random.Generator) -> list[KillPlan]:
    plans = []
    for _ in range(int(rng.integers(1, MAX_KILLS + 1))):
        phase = str(rng.choice(PHASES, p=[0.25, 0.15, 0.25, 0.25, 0.1]))
        value = {"startup": rng.uniform(0, 0.5), "early": rng.uniform(0, 0.3), "mid": rng.integers(1, 4),
                 "in-checkpoint": 0.0, "end": rng.uniform(0, 0.05)}[phase]
        plans.append(KillPlan(phase, float(value), phase == "startup" and rng.random() < 0.3))
    return plans


def reach(launch: Launch, rd: RunDir, plan: KillPlan) -> None:
    """Wait for the plan's moment (returns at once if the run ends first)."""
    if plan.phase == "startup":
        launch.poll(plan.value)
    elif plan.phase == "early":
        wait_until(launch, (rd.path / "glompo_optimizer_printstreams").exists, 0.005)
        launch.poll(plan.value)
    elif plan.phase == "mid":
        before = {p.name for p in rd.tars()}
        wait_until(launch, lambda: len({p.name for p in rd.tars()} - before) >= plan.value, 0.005)
        launch.poll(0.02)
    elif plan.phase == "in-checkpoint":
        wait_until(launch, lambda: bool(rd.in_progress(launch.started)), 0.002)
    else:  # the session has ended and writes its outputs, prints, exits
        wait_until(launch, rd.summary.exists, 0.005)
        launch.poll(plan.value)


def landed(rd: RunDir, launch: Launch, had_checkpoint: bool, new: set[str]) -> str:
    """Where a SIGKILL landed, from what it left behind."""
    if rd.in_progress(launch.started):
        return "during a checkpoint"
    if rd.summary.exists() and rd.summary.stat().st_mtime >= launch.started:
        return "after the session ended, while it wrote outputs or exited"
    if not rd.tars():
        return "before the first checkpoint"
    if not new:
        return "resumed, before its next checkpoint" if had_checkpoint else "before the first checkpoint"
    return "mid-run, after checkpoints"


def sigkill_trial(launcher: Launcher, tmp_path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    trial_dir, backend = new_trial(tmp_path, seed)
    rd, plans, kept, seen = RunDir(trial_dir), kill_plans(rng), {}, []
    where = f"seed {seed}, {backend}, kills {[str(p) for p in plans]}"
    for i, plan in enumerate(plans):
        before = {p.name for p in rd.tars()}
        launch = launcher.run(trial_dir, plan.cold)
        try:
            reach(launch, rd, plan)
            killed = launch.send(signal.SIGKILL, group=True)
            rc = launch.wait()
        finally:
            launch.kill_group()
        if not killed or rc != -signal.SIGKILL:
            assert rc == 0, f"{where}: launch {i} ended with {rc} before its kill:\n{launch.tail()}"
            seen.append("ended before the kill")
            break
        seen.append(landed(rd, launch, bool(before), {p.name for p in rd.tars()} - before))
        kept = assert_intact(rd, f"{where}, after kill {i} ({seen[-1]})") or kept
    else:
        checkpoint = latest_checkpoint(rd.checkpoints)
        launch = launcher.run(trial_dir)
        rc = launch.wait()
        assert rc == 0, f"{where}: the last resume ended with {rc}:\n{launch.tail()}"
        resumed = re.search(r"Resuming from checkpoint (\S+)", launch.stderr())
        resumed_name = Path(resumed.group(1)).name if resumed else None
        assert resumed_name == (checkpoint.name if checkpoint else None), \
            f"{where}: resumed from {resumed_name}, newest valid checkpoint {checkpoint}"
        seen.append("resumed at the end" if checkpoint else "fresh start at the end")
    assert_finished(rd, launch, kept, f"{where}, landed {seen}")
    return ";".join([f"{backend}", *seen])


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_sigkill_campaign_resumes_with_every_evaluation_once(launcher, tmp_path):
    outcomes = run_campaign(lambda seed: sigkill_trial(launcher, tmp_path, seed))
    if TRIALS >= 20:  # the campaign exercised both recoveries, not one of them only
        assert outcomes["resumed at the end"] and outcomes["before the first checkpoint"], outcomes


# ====================================================================== campaign 2: SIGUSR2 / SIGTERM

@dataclass
class SignalPlan:
    sig: signal.Signals
    phase: str
    value: float
    group: bool  # the whole process group (scancel signals every process of a job step)
    cold: bool

    def __str__(self) -> str:
        return (f"{self.sig.name} {self.phase}({self.value:.3f}{', group' if self.group else ''}"
                f"{', cold' if self.cold else ''})")


def signal_plan(seed: int, rng: np.random.Generator) -> SignalPlan:
    sig = (signal.SIGUSR2, signal.SIGTERM)[(seed // 2) % 2]  # every signal meets every backend
    phase = str(rng.choice(("startup", "early", "mid", "late", "end"), p=[0.25, 0.15, 0.2, 0.2, 0.2]))
    value = {"startup": rng.uniform(0, 0.6), "early": rng.uniform(0, 0.2), "mid": rng.integers(1, 5),
             "late": rng.uniform(0, 0.4), "end": rng.uniform(0, 0.05)}[phase]
    return SignalPlan(sig, phase, float(value), bool(rng.random() < 0.3), phase == "startup" and rng.random() < 0.4)


def reach_signal_moment(launch: Launch, rd: RunDir, plan: SignalPlan) -> None:
    if plan.phase != "late":
        reach(launch, rd, KillPlan(plan.phase, plan.value, plan.cold))
        return
    # late: once the run reports a checkpoint within two intervals of its budget
    wait_until(launch, lambda: checkpointed_evaluations(launch) >= BUDGET - 2 * EVAL_INTERVAL, 0.005)
    launch.poll(plan.value)


def checkpointed_evaluations(launch: Launch) -> int:
    """Evaluations at the last checkpoint the run reported (its INFO log on stderr)."""
    counts = re.findall(r"Checkpoint written: \S+ \((\d+) evaluations", launch.stderr())
    return int(counts[-1]) if counts else 0


def judge_signal_exit(rd: RunDir, launch: Launch, plan: SignalPlan, rc: int, where: str) -> str:
    """The documented exit of a signalled run; returns the outcome's name."""
    err = launch.stderr()
    if rc == 0:
        assert "interrupted" not in err, f"{where}: exit 0 but:\n{launch.tail()}"
        return "finished before the signal acted"
    if "before the optimization ran" in err:  # the CLI's own handler, before the manager listened
        expected = EXIT_REQUEUE if plan.sig == signal.SIGUSR2 else 128 + plan.sig
        assert rc == expected, f"{where}: exit {rc} for {plan.sig.name} before the run, documented {expected}"
        assert not rd.tars(), f"{where}: a checkpoint although the optimization never ran"
        return "stopped before the manager ran"
    if rc == -plan.sig:  # only while the interpreter starts or exits, when no code of ours listens
        if launch.cold and not rd.path.exists():
            return "killed during interpreter start-up"
        finished = rd.summary.exists() and yaml.safe_load(rd.summary.read_text())["solution"]["state"] == "finished"
        assert finished and "Best fx" in launch.stdout(), f"{where}: killed by {plan.sig.name}:\n{launch.tail()}"
        return "finished, then killed while exiting"
    assert rc == EXIT_REQUEUE, f"{where}: exit {rc}, documented {EXIT_REQUEUE}:\n{launch.tail()}"
    written = re.search(rf"interrupted by {plan.sig.name}; checkpoint (\S+) written", err)
    assert written, f"{where}: exit 3 without naming its checkpoint:\n{launch.tail()}"
    path = Path(written.group(1))
    newest = latest_checkpoint(rd.checkpoints)
    assert newest and newest.resolve() == path.resolve(), f"{where}: {path} is not the newest valid checkpoint"
    manager = GloMPOManager.load_manager(path)  # loadable, with the state it claims
    with open_checkpoint(path) as c:
        assert manager.f_counter == c.manifest["f_counter"], where
    summary = yaml.safe_load(rd.summary.read_text())
    assert summary["solution"]["exit_reason"] == f"interrupted by {plan.sig.name}", where
    assert read_log(rd.log).attrs["state"] == "interrupted", where
    return "checkpointed, exit 3"


def signal_trial(launcher: Launcher, tmp_path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    trial_dir, backend = new_trial(tmp_path, seed)
    rd, plan = RunDir(trial_dir), signal_plan(seed, rng)
    where = f"seed {seed}, {backend}, {plan}"
    launch = launcher.run(trial_dir, plan.cold)
    try:
        reach_signal_moment(launch, rd, plan)
        launch.send(plan.sig, plan.group)
        rc = launch.wait()
    finally:
        launch.kill_group()
    outcome = judge_signal_exit(rd, launch, plan, rc, where)
    kept = {}
    if rc != 0:
        if rd.log.exists() and rd.tars():
            kept = assert_intact(rd, where)
        launch = launcher.run(trial_dir)
        rc = launch.wait()
        assert rc == 0, f"{where}: the resume ended with {rc}:\n{launch.tail()}"
    assert_finished(rd, launch, kept, f"{where}, {outcome}")
    return f"{backend};{plan.sig.name}: {outcome}"


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_signal_campaign_checkpoints_exit_3_and_resumes(launcher, tmp_path):
    outcomes = run_campaign(lambda seed: signal_trial(launcher, tmp_path, seed))
    if TRIALS >= 20:
        assert sum(n for k, n in outcomes.items() if k.endswith("checkpointed, exit 3")) >= 2, outcomes


def test_cli_module_loads_nothing_heavy_so_signals_are_handled_from_the_start():
    """`python -m glompo_hpc` handles SIGTERM/SIGUSR2 from main() on; before it, a signal kills
    the process. Importing the CLI must therefore not load numpy, scipy, cma or h5py (seconds on
    a busy node)."""
    code = "import sys, glompo_hpc.cli; print(sorted({m.split('.')[0] for m in sys.modules} & HEAVY))"
    heavy = "{'numpy', 'scipy', 'cma', 'h5py', 'matplotlib'}"
    out = subprocess.run([sys.executable, "-c", f"HEAVY = {heavy}; {code}"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"


# ====================================================================== faults of one child optimizer

BOUNDS = [(-5.0, 5.0)] * 3


class KillOnceTask(SleepyTask):
    """Sphere; the first process to make its ``after``-th call SIGKILLs itself (as the OOM killer
    would). The flag file makes it happen once per run, whichever child gets there first."""

    def __init__(self, flag: Path, after: int = 25):
        super().__init__(delay=0.0005)
        self.flag, self.after, self.calls = str(flag), after, 0

    def __call__(self, x) -> float:
        self.calls += 1
        if self.calls == self.after and _first_to_claim(self.flag):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(x)


def _first_to_claim(flag: str) -> bool:
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


FAULT_TEXT = {"start": "deliberate fault at start", "midway": "deliberate fault midway"}


class FaultyWalk(WalkOptimizer):
    """A WalkOptimizer that fails in one place: 'start' (before any evaluation), 'midway' (after
    three iterations), 'checkpoint_save' (raises) or 'checkpoint_kill' (SIGKILLs its process
    while saving, once per run: ``flag``)."""

    def __init__(self, fault: str = "start", flag: str = "", **kwargs):
        super().__init__(**kwargs)
        self.fault, self.flag = fault, flag

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        if self.fault == "start":
            raise RuntimeError(FAULT_TEXT["start"])
        return super().minimize(function, x0, bounds, callbacks, **kwargs)

    def check_messages(self) -> None:
        super().check_messages()
        if self.fault == "midway" and self.n_iterations >= 3:
            raise RuntimeError(FAULT_TEXT["midway"])

    def checkpoint_save(self, path) -> None:
        if self.fault == "checkpoint_save":
            raise OSError("deliberate fault in checkpoint_save")
        if self.fault == "checkpoint_kill" and _first_to_claim(self.flag):
            os.kill(os.getpid(), signal.SIGKILL)
        super().checkpoint_save(path)


def child_fault_run(tmp_path: Path, backend: str, selector, task=None, **kwargs) -> GloMPOManager:
    kwargs.setdefault("checkpoint_control", CheckpointingControl(checkpoint_eval_interval=300,
                                                                 naming_format="ck_%(count)"))
    return GloMPOManager.new_manager(
        task or SleepyTask(delay=0.0005), BOUNDS, selector, working_dir=tmp_path, max_jobs=2, backend=backend,
        exit_conditions=MaxFuncCalls(1500), stoppers=BestUnmoving(calls=400, tol=0.0),
        x0_generator=RandomGenerator(BOUNDS, seed=5), **kwargs)


def call_ids(manager: GloMPOManager) -> np.ndarray:
    return np.sort(np.concatenate([manager.opt_log.history(i, "call_id") for i in manager.opt_log.opt_ids]))


def resume_and_finish(path: Path, budget: int) -> GloMPOManager:
    """Resume a checkpoint to a larger budget; every evaluation must appear once."""
    resumed = GloMPOManager.load_manager(path, exit_conditions=MaxFuncCalls(budget))
    resumed.start_manager()
    assert resumed.f_counter >= budget
    assert np.array_equal(call_ids(resumed), np.arange(1, resumed.f_counter + 1))
    return resumed


def test_child_process_killed_like_by_the_oom_killer_is_recorded_and_its_slot_reused(tmp_path):
    sel = CycleSelector((WalkOptimizer, {"iters": 60}))
    m = child_fault_run(tmp_path, "processes", sel, task=KillOnceTask(tmp_path / "killed"), summary_files=3)
    m.start_manager()
    assert m.exit_reason == "MaxFuncCalls(fmax=1500)" and m.opt_crashed
    killed = [r for r in m.opt_log.records.values() if "killed by signal SIGKILL" in r.end_cond]
    assert len(killed) == 1 and killed[0].end_cond.startswith("Error termination")
    assert any(r.t_start >= killed[0].t_end for r in m.opt_log.records.values())  # its slot went to a new one
    log = read_log(tmp_path / "glompo_log.h5", columns=("call_id",))
    ids = np.sort(np.concatenate([o.data["call_id"] for o in log.optimizers]))
    assert np.array_equal(ids, np.arange(1, m.f_counter + 1))  # what it reported before dying is kept, once
    assert {o.opt_id: o.category for o in log.optimizers}[killed[0].opt_id] == "crashed"
    assert m.checkpoint_log  # checkpoints went on for the others
    resume_and_finish(tmp_path / "checkpoints" / m.checkpoint_log[-1]["name"], 2200)


def test_child_process_killed_while_saving_its_checkpoint(tmp_path):
    flag = str(tmp_path / "killed")
    sel = CycleSelector((FaultyWalk, {"fault": "checkpoint_kill", "flag": flag, "iters": 80}),
                        (WalkOptimizer, {"iters": 80}))
    m = child_fault_run(tmp_path, "processes", sel)
    m.start_manager()
    assert m.exit_reason == "MaxFuncCalls(fmax=1500)" and m.opt_crashed
    (killed,) = [i for i, r in m.opt_log.records.items() if "killed by signal SIGKILL" in r.end_cond]
    died_at = m.opt_log.records[killed].t_end
    paths = [tmp_path / "checkpoints" / entry["name"] for entry in m.checkpoint_log]
    manifests = [open_checkpoint_manifest(p) for p in paths]
    # the checkpoint it died in was completed without it, holding the other optimizers
    after = [(p, mf) for p, mf in zip(paths, manifests) if mf["created"] >= died_at]
    assert after and all(killed not in mf["live_optimizers"] for _, mf in after)
    assert set().union(*(mf["live_optimizers"] for _, mf in after))
    resumed = resume_and_finish(after[0][0], 2200)
    assert "killed by signal SIGKILL" in resumed.opt_log.records[killed].end_cond


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("fault", ["start", "midway", "checkpoint_save"])
def test_child_raising_is_recorded_and_the_others_are_checkpointed(tmp_path, caplog, backend, fault):
    sel = CycleSelector((FaultyWalk, {"fault": fault, "iters": 80}), (WalkOptimizer, {"iters": 80}))
    m = child_fault_run(tmp_path, backend, sel)
    with caplog.at_level(logging.WARNING, "glompo_hpc"):
        m.start_manager()
    assert m.exit_reason == "MaxFuncCalls(fmax=1500)" and m.checkpoint_log
    faulty = {i for i, r in m.opt_log.records.items() if r.opt_type == "FaultyWalk"}
    if fault == "checkpoint_save":
        assert not m.opt_crashed  # the optimizer goes on; only its state is missing from the checkpoint
        assert "could not save its state (OSError: deliberate fault in checkpoint_save)" in caplog.text
    else:
        assert m.opt_crashed and m.o_counter >= 4  # crashed slots were reused
        records = m.opt_log.records
        error = f"Error termination: RuntimeError: {FAULT_TEXT[fault]}"
        crashed = {i for i in faulty if records[i].end_cond == error}
        assert crashed and all(any("Traceback" in text for text in records[i].messages) for i in crashed)
        assert all("shutting down" in records[i].end_cond for i in faulty - crashed)  # alive at the end
    assert np.array_equal(call_ids(m), np.arange(1, m.f_counter + 1))
    paths = [tmp_path / "checkpoints" / entry["name"] for entry in m.checkpoint_log]
    saved = [set(open_checkpoint_manifest(p)["live_optimizers"]) for p in paths]
    assert set().union(*saved)  # the healthy optimizers were saved
    if fault == "checkpoint_save":
        assert not set().union(*saved) & faulty  # a faulty optimizer never, and never restored
        left_out = set()
        for p in paths:  # each one alive at a checkpoint is recorded, on load, as not resumed
            records = GloMPOManager.load_manager(p).opt_log.records
            left_out |= {i for i in faulty & set(records) if records[i].end_cond == NOT_RESUMED}
        assert left_out
    resume_and_finish(paths[-1], 2200)


NOT_RESUMED = "Not resumed: no state in the checkpoint"


def open_checkpoint_manifest(path: Path) -> dict:
    with open_checkpoint(path) as c:
        return c.manifest
