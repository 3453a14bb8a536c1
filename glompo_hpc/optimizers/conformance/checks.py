"""The conformance checks, (a) to (f) of :mod:`glompo_hpc.optimizers.conformance`."""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...protocol import messages as msg
from .harness import CheckSetup, ConformanceError, Factory, describe_final

__all__ = ("check_optimizer", "check_reports", "check_stop", "check_pause", "check_checkpoint", "check_inject")


def check_reports(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                  gate_after: int = 3) -> None:
    """(a) IterationReports are well formed and hold exactly the evaluations the task saw."""
    setup = CheckSetup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory, gated=False) as run:
        run.wait_until(lambda: len(run.reports()) >= 2, timeout, "two IterationReports")
        run.send(msg.Stop("conformance check"))
        run.finish(timeout, " after a Stop")
    n = len(setup.bounds)
    iteration = -math.inf
    for i, r in enumerate(run.reports()):
        where = f"IterationReport #{i}"
        if r.opt_id != run.opt_id:
            raise ConformanceError(f"{where} has opt_id {r.opt_id}, expected {run.opt_id}")
        if not isinstance(r.x, np.ndarray) or r.x.ndim != 2 or r.x.shape[1] != n or r.x.shape[0] < 1:
            raise ConformanceError(f"{where}: x must be an array of shape (k>=1, {n}), got {np.shape(r.x)}")
        if not isinstance(r.fx, np.ndarray) or r.fx.shape != (r.x.shape[0],):
            raise ConformanceError(f"{where}: fx must have shape ({r.x.shape[0]},), got {np.shape(r.fx)}")
        if r.iteration < iteration:
            raise ConformanceError(f"{where}: iteration went back from {iteration} to {r.iteration}")
        iteration = r.iteration
    reported = Counter(_row_key(x, fx) for r in run.reports() for x, fx in zip(r.x, r.fx))
    evaluated = Counter(_row_key(x, fx) for x, fx in run.task.done)
    if reported != evaluated:
        raise ConformanceError(f"reported rows differ from the task's evaluations: "
                               f"{sum((evaluated - reported).values())} evaluation(s) never reported, "
                               f"{sum((reported - evaluated).values())} reported row(s) never evaluated "
                               f"({sum(evaluated.values())} evaluations, {sum(reported.values())} rows)")


def _row_key(x: np.ndarray, fx: float) -> tuple:
    fx = float(fx)
    return tuple(np.asarray(x, dtype=float).tolist()), fx if math.isfinite(fx) else repr(fx)


def check_stop(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
               gate_after: int = 3) -> None:
    """(b) A Stop sent mid-run ends it promptly with OptimizerFinished(stopped=True)."""
    setup = CheckSetup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        run.send(msg.Stop("conformance check"))
        n_at_stop = run.task.n_started
        run.task.open_gate()
        final = run.finish(timeout, " after a Stop")
    if not final.stopped:
        raise ConformanceError(f"the run ended after a Stop with stopped=False ({describe_final(final)}, "
                               f"{run.task.n_started - n_at_stop} evaluations after the Stop)")
    if final.reason != "conformance check":
        raise ConformanceError(f"the stop reason is {final.reason!r}, expected the Stop's 'conformance check' "
                               "(an overriding callstop must call super().callstop(reason))")


def check_pause(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                gate_after: int = 3, pause_window: float = 0.2) -> None:
    """(c) Pause is answered with ChildPaused; nothing is evaluated until Resume; the run goes on."""
    setup = CheckSetup(task, bounds, x0, timeout, gate_after)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        since = len(run.messages)
        run.send(msg.Pause())
        run.task.open_gate()
        run.wait_for(msg.ChildPaused, timeout, "the answer to Pause (does minimize call self.check_messages() "
                                               "once per iteration?)", since)
        n_paused = run.task.n_started
        time.sleep(pause_window)
        run.drain(0.0)
        if run.task.n_started != n_paused:
            raise ConformanceError(f"the optimizer evaluated the task {run.task.n_started - n_paused} time(s) "
                                   "while paused")
        _resume_then_stop(run, n_paused, timeout, "an evaluation after Resume")


def check_inject(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                 gate_after: int = 3) -> None:
    """(e) InjectIncumbent is handled without error and the run goes on."""
    setup = CheckSetup(task, bounds, x0, timeout, gate_after)
    x_inj = setup.bounds.mean(axis=1)
    with setup.run(factory) as run:
        setup.wait_blocked(run)
        since = len(run.messages)
        run.send(msg.InjectIncumbent(x_inj, float(run.task.task(x_inj))))
        # messages are handled in order, so ChildPaused proves the injection was processed
        run.send(msg.Pause())
        run.task.open_gate()
        run.wait_for(msg.ChildPaused, timeout, "the Pause sent after InjectIncumbent", since)
        _resume_then_stop(run, run.task.n_started, timeout, "an evaluation after the injection")


def _resume_then_stop(run: Any, n_paused: int, timeout: float, expected: str) -> None:
    """Resume a paused run, wait for an evaluation beyond ``n_paused``, then stop it and see it end."""
    run.send(msg.Resume())
    run.wait_until(lambda: run.task.n_started > n_paused, timeout, expected)
    run.send(msg.Stop("conformance check"))
    run.finish(timeout, " after a Stop")


def check_checkpoint(factory: Factory, task: Callable | None = None, bounds=None, x0=None, timeout: float = 30.0,
                     gate_after: int = 3) -> None:
    """(d) SaveState gets StateSaved without error; the loaded optimizer is a restart and runs."""
    setup = CheckSetup(task, bounds, x0, timeout, gate_after)
    with tempfile.TemporaryDirectory(prefix="glompo-conformance-") as tmp:
        path = str(Path(tmp) / "optimizer.ckpt")
        with setup.run(factory) as run:
            setup.wait_blocked(run)
            since = len(run.messages)
            run.send(msg.SaveState(path))
            run.task.open_gate()
            saved = run.wait_for(msg.StateSaved, timeout, "the answer to SaveState", since)
            run.send(msg.Stop("conformance check"))
            run.finish(timeout, " after a Stop")
        if saved.error:
            raise ConformanceError(f"checkpoint_save failed: {saved.error}")
        if saved.path != path or not Path(path).exists():
            raise ConformanceError(f"StateSaved names {saved.path!r}, but nothing was written at {path!r}")
        kind = type(run.optimizer)
        try:
            loaded = kind.checkpoint_load(path)
        except Exception as e:
            raise ConformanceError(f"{kind.__name__}.checkpoint_load failed: {type(e).__name__}: {e}") from e
        if not isinstance(loaded, kind):
            raise ConformanceError(f"checkpoint_load returned {type(loaded).__name__}, expected {kind.__name__}")
        if not loaded.is_restart:
            raise ConformanceError("a loaded optimizer must have is_restart True")
        with setup.run(loaded, gated=False) as rerun:
            rerun.wait_until(lambda: rerun.task.n_started > 0, timeout, "the loaded optimizer's first evaluation")
            rerun.send(msg.Stop("conformance check"))
            rerun.finish(timeout, " after a Stop")
        if rerun.task.n_started == 0:
            raise ConformanceError("the loaded optimizer ended without evaluating the task")


def check_optimizer(factory: Factory, task: Callable | None = None, bounds: Sequence[tuple[float, float]] | None = None,
                    x0: Sequence[float] | None = None, timeout: float = 30.0, gate_after: int = 3) -> None:
    """Run every check on fresh optimizers from ``factory``; raise ConformanceError on the first failure.

    Args:
        factory: Makes a new optimizer for each check; give it a budget well above ``gate_after``.
        task: The function to minimize (default: a 2-D sphere centred at 0.5).
        bounds: (n, 2) box (default: [-5, 5] per parameter).
        x0: Start point (default: 70 % of the way across the box).
        timeout: Seconds any single wait may take.
        gate_after: The kit acts when the optimizer starts its evaluation number ``gate_after + 1``.
    """
    for check in (check_reports, check_stop, check_pause, check_inject, check_checkpoint):
        check(factory, task=task, bounds=bounds, x0=x0, timeout=timeout, gate_after=gate_after)
