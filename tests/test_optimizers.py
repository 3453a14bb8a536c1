"""The shipped optimizers, each run as the backends run them: run_child in a thread with a QueueLink."""

from __future__ import annotations

import math
import queue
import threading

import numpy as np
import pytest

from glompo_hpc.backends.threads import QueueLink
from glompo_hpc.core import messages as msg
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.optimizers import CMAOptimizer, RandomOptimizer, ScipyOptimizer, ScipyOptimizeWrapper
from glompo_hpc.optimizers.conformance import ChildRun, RecordingTask

BOX2 = [(-5.0, 5.0)] * 2


def sphere(x) -> float:
    return float(np.sum((np.asarray(x) - 0.5) ** 2))


def rosenbrock(x) -> float:
    x = np.asarray(x)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rows(run: ChildRun) -> np.ndarray:
    """Every reported point, in report order."""
    return np.vstack([r.x for r in run.reports()])


def wait_for_reports(run: ChildRun, n: int, timeout: float = 10.0) -> None:
    run.wait_until(lambda: len(run.reports()) >= n, timeout, f"{n} reports")


def save_and_stop_at(opt, task: RecordingTask, x0, bounds, gate_at: int, path) -> ChildRun:
    """Hold the run at call ``gate_at``, then ask for a checkpoint and a stop together."""
    task.close_gate(gate_at)
    with ChildRun(opt, task, x0, bounds) as run:
        assert task.blocked.wait(10)
        run.send(msg.SaveState(str(path)))
        run.send(msg.Stop("test"))
        task.open_gate()
        saved = run.wait_for(msg.StateSaved, 10, "StateSaved", since=0)
        final = run.finish(10)
    assert saved.error == "" and final.stopped
    return run


# ---------------------------------------------------------------- CMA

@pytest.mark.parametrize("task, dims", [(sphere, 2), (sphere, 5), (rosenbrock, 2)])
def test_cma_converges_by_its_own_criteria(task, dims):
    opt = CMAOptimizer(sigma0=1.0, seed=1)
    with ChildRun(opt, task, np.full(dims, 3.0), [(-5.0, 5.0)] * dims) as run:
        final = run.finish(15)
    optimum = np.full(dims, 0.5 if task is sphere else 1.0)
    assert final.success and not final.stopped
    assert final.fx < 1e-8 and np.allclose(final.x, optimum, atol=1e-3)
    assert final.stats["cma_stop"] and "maxiter" not in final.stats["cma_stop"]
    assert final.stats["evaluations"] == sum(len(r.fx) for r in run.reports())


def test_cma_population_is_evaluated_in_parallel_over_workers():
    # Each call waits until all 3 of a generation are inside at once: a barrier, not a sleep. Its timeout
    # is only reached when the calls run one after another (parallelism absent), however slow the machine.
    lock, running, peak = threading.Lock(), [0], [0]
    all_three_inside = threading.Barrier(3, timeout=30)
    full_generations = [0]

    def slow(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            if all_three_inside.wait() == 0:
                with lock:
                    full_generations[0] += 1
        except threading.BrokenBarrierError:
            pass  # released by abort() at the stop, or timed out: full_generations tells which
        with lock:
            running[0] -= 1
        return sphere(x)

    with ChildRun(CMAOptimizer(sigma0=1.0, workers=3), slow, [3.0, 3.0], BOX2) as run:
        wait_for_reports(run, 3)
        generations_met = full_generations[0]
        all_three_inside.abort()  # a generation cut short by the stop must not wait out the timeout
        run.send(msg.Stop("test"))
        final = run.finish(10)
    assert final.stopped and peak[0] == 3
    assert generations_met >= 3  # every reported generation had its 3 calls running at the same time
    assert all(len(r.fx) == 3 for r in run.reports())  # popsize follows workers; one report a generation


def test_cma_resume_continues_the_same_distribution(tmp_path):
    path = tmp_path / "cma.ckpt"
    reference = ChildRun(CMAOptimizer(sigma0=1.0, seed=3, maxiter=12), RecordingTask(sphere, delay=0), [3.0, 3.0], BOX2)
    with reference:
        reference.finish(10)
    expected = rows(reference)  # 12 generations of 6

    first = CMAOptimizer(sigma0=1.0, seed=3, maxiter=12)
    save_and_stop_at(first, RecordingTask(sphere, delay=0), [3.0, 3.0], BOX2, gate_at=30, path=path)
    loaded = CMAOptimizer.checkpoint_load(path)
    assert loaded.is_restart and loaded.es is not first.es
    assert loaded.es.countiter == first.es.countiter == 6
    assert loaded.es.sigma == first.es.sigma
    np.testing.assert_array_equal(loaded.es.mean, first.es.mean)
    np.testing.assert_array_equal(loaded.es.C, first.es.C)

    with ChildRun(loaded, RecordingTask(sphere, delay=0), [-4.0, 4.0], BOX2) as resumed:  # x0 is ignored
        final = resumed.finish(10)
    assert final.success and final.stats["iterations"] == 12 and "maxiter" in final.stats["cma_stop"]
    np.testing.assert_array_equal(rows(resumed), expected[36:])  # the very points the unbroken run drew


def test_cma_survives_nan_and_inf():
    def holes(x):
        if x[0] > 1.0:
            return math.nan
        if x[1] < -1.0:
            return math.inf
        return sphere(x)

    opt = CMAOptimizer(sigma0=0.5, seed=2)  # x0 is deep in the NaN region: whole populations are NaN
    with ChildRun(opt, holes, [4.0, 4.0], BOX2) as run:
        final = run.finish(15)
    assert isinstance(final, msg.OptimizerFinished) and final.success
    assert final.fx < 1e-8 and final.stats["nonfinite"] > 0
    assert np.isnan(np.concatenate([r.fx for r in run.reports()])).any()  # the log keeps the true values


@pytest.mark.parametrize("force, expect_exact", [(True, True), (None, False)])
def test_cma_injection(force, expect_exact):
    x_inj = np.array([-1.234567, 0.7654321])
    task = RecordingTask(sphere, delay=0)
    task.close_gate(12)
    with ChildRun(CMAOptimizer(sigma0=0.5, seed=0, force_injects=force), task, [3.0, 3.0], BOX2) as run:
        assert task.blocked.wait(10)
        run.send(msg.InjectIncumbent(x_inj, sphere(x_inj)))
        task.open_gate()
        wait_for_reports(run, 5)
        run.send(msg.Stop("test"))
        run.finish(10)
    hit = np.isclose(rows(run), x_inj, rtol=0, atol=1e-12).all(axis=1).any()
    assert hit == expect_exact
    assert np.array_equal(run.optimizer.incumbent[0], x_inj)


def test_cma_rejects_bad_settings():
    with pytest.raises(ConfigurationError, match="tolfunn"):
        CMAOptimizer(tolfunn=1e-3)
    with pytest.raises(ConfigurationError, match="bounds"):
        CMAOptimizer(bounds=[0, 1])
    with pytest.raises(ConfigurationError, match="sampler"):
        CMAOptimizer(sampler="diag")
    with pytest.raises(ConfigurationError, match="sigma0"):
        CMAOptimizer(sigma0=0)


def test_cma_vd_sampler_runs():
    with ChildRun(CMAOptimizer(sigma0=1.0, sampler="vd", seed=4), sphere, [3.0] * 4, [(-5.0, 5.0)] * 4) as run:
        final = run.finish(15)
    assert final.fx < 1e-6


# ---------------------------------------------------------------- scipy

@pytest.mark.parametrize("method", ["Nelder-Mead", "L-BFGS-B", "Powell"])
def test_scipy_minimizes_sphere(method):
    with ChildRun(ScipyOptimizer(method), sphere, [3.0, -2.0], BOX2) as run:
        final = run.finish(10)
    assert final.success and final.fx < 1e-6 and np.allclose(final.x, 0.5, atol=1e-3)


@pytest.mark.parametrize("method", ["Nelder-Mead", "L-BFGS-B", "Powell"])
def test_scipy_stops_between_evaluations(method):
    task = RecordingTask(sphere, delay=0)
    task.close_gate(5)
    with ChildRun(ScipyOptimizer(method), task, [3.0, -2.0], BOX2) as run:
        assert task.blocked.wait(10)
        run.send(msg.Stop("test"))
        n_at_stop = task.n_started
        task.open_gate()
        final = run.finish(10)
    assert final.stopped and not final.success
    assert task.n_started == n_at_stop  # the evaluation in progress finished; no new one began


@pytest.mark.parametrize("method", ["Nelder-Mead", "TNC", "COBYLA"])
def test_scipy_callback_ends_the_run_on_stop(method):
    # a plain function cannot raise OptimizerStopped: only the callback can end this run
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    opt = ScipyOptimizer(method)
    opt.attach(1, QueueLink(queue.SimpleQueue(), inbox))
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 10:
            inbox.put(msg.Stop("test"))
        return rosenbrock(x)

    result = opt.minimize(f, [-1.2, 1.0], [(-5.0, 5.0)] * 2)
    assert opt.stop_requested and not result.success and len(calls) < 60


def test_scipy_unbounded_method_never_leaves_the_box():
    task = RecordingTask(lambda x: float(np.sum(np.asarray(x) ** 2)), delay=0)
    box = [(1.0, 5.0), (-5.0, 5.0)]  # the unconstrained minimum x=0 is outside
    with ChildRun(ScipyOptimizer("BFGS"), task, [3.0, 3.0], box) as run:
        final = run.finish(10)
    xs = np.array([x for x, _ in task.done])
    assert isinstance(final, msg.OptimizerFinished) and (xs[:, 0] >= 1.0).all()
    assert ScipyOptimizeWrapper is ScipyOptimizer and not ScipyOptimizer("BFGS").uses_bounds


def test_scipy_loaded_optimizer_restarts_from_its_best_point(tmp_path):
    path = tmp_path / "scipy.ckpt"
    first = ScipyOptimizer("Nelder-Mead")
    save_and_stop_at(first, RecordingTask(rosenbrock, delay=0), [-1.2, 1.0], BOX2, gate_at=40, path=path)
    loaded = ScipyOptimizer.checkpoint_load(path)
    assert loaded.is_restart and loaded.best_x is not None
    seen = []
    loaded.minimize(lambda x: seen.append(np.array(x)) or rosenbrock(x), [4.0, 4.0], BOX2)
    np.testing.assert_array_equal(seen[0], first.best_x)


def test_scipy_rejects_arguments_it_owns():
    with pytest.raises(ConfigurationError, match="callback"):
        ScipyOptimizer(callback=print)


# ---------------------------------------------------------------- random

def test_random_is_reproducible_with_a_seed():
    runs = []
    for _ in range(2):
        with ChildRun(RandomOptimizer(iters=5, seed=7, workers=2), sphere, [0.0, 0.0], BOX2) as run:
            final = run.finish(10)
        assert final.success and final.stats["iterations"] == 5
        runs.append(rows(run))
    assert runs[0].shape == (10, 2)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert ((runs[0] >= -5) & (runs[0] <= 5)).all()


def test_random_resumes_where_it_was(tmp_path):
    path = tmp_path / "random.ckpt"
    with ChildRun(RandomOptimizer(iters=10, seed=7, workers=2), sphere, [0.0, 0.0], BOX2) as reference:
        reference.finish(10)
    save_and_stop_at(RandomOptimizer(iters=10, seed=7, workers=2), RecordingTask(sphere, delay=0), [0.0, 0.0],
                     BOX2, gate_at=8, path=path)
    loaded = RandomOptimizer.checkpoint_load(path)
    assert loaded.is_restart and loaded.iteration == 5
    with ChildRun(loaded, sphere, [0.0, 0.0], BOX2) as resumed:
        final = resumed.finish(10)
    assert final.success and final.stats["iterations"] == 10
    np.testing.assert_array_equal(rows(resumed), rows(reference)[10:])
