"""Stoppers save evaluations of an expensive task: the same search with and without them.

    python examples/expensive_task.py                # 10 ms per evaluation, under a minute
    python examples/expensive_task.py --quick        # 1 ms per evaluation, what the test runs
    python examples/expensive_task.py --delay 0.05   # any cost per evaluation

Both runs start the same CMA-ES children, one at a time, from the same points with the same
seeds, and end when one of them reaches the global minimum. Without stoppers every child that
lands in a poor basin polishes that minimum until CMA-ES's own tolerances end it; with a stopper
the manager ends it as soon as its values stop moving and gives its slots to the next child. The
child that finds the global minimum is the same in both runs, so what differs is only what was
spent on the others.
"""

import argparse
import math
import time

import numpy as np

from glompo_hpc import (BaseFunction, CMAOptimizer, CycleSelector, EvaluationsUnmoving, GloMPOManager,
                        MaxFuncCalls, MinFuncCalls, RandomGenerator, TargetCost)


class ExpensiveTask(BaseFunction):
    """Stands in for a simulation that takes ``delay`` seconds per call: Rastrigin plus a sleep.

    A sleep, like an external program or numpy, releases the GIL, so the 'threads' backend runs
    such evaluations in parallel.
    """

    def __init__(self, dims, delay):
        self.dims = dims
        self.delay = delay
        self.bounds = [(-5.12, 5.12)] * dims

    def __call__(self, x):
        time.sleep(self.delay)
        x = np.asarray(x, dtype=float)
        return float(10 * len(x) + np.sum(x * x - 10 * np.cos(2 * math.pi * x)))


def search(task, budget, stoppers, working_dir, seed):
    """Evaluations and seconds until the global minimum (0) is reached, and the children started."""
    manager = GloMPOManager.new_manager(
        task, task.bounds,
        # one child at a time, its population evaluated two points at a time over both slots
        CycleSelector((CMAOptimizer, {"sigma0": 2.0, "popsize": 6, "workers": 2})),
        working_dir=working_dir, overwrite_existing=True, max_jobs=2, backend="threads",
        # the same start points in both runs (the default generator adapts to the log, which differs)
        x0_generator=RandomGenerator(task.bounds, seed=seed),
        exit_conditions=TargetCost(0.0, atol=1e-6) | MaxFuncCalls(budget),
        stoppers=stoppers,  # False: none at all (None would mean the recommended ones)
        stopcheck_interval=10,  # check often: every evaluation past the point of no progress is waste
        seed=seed,  # the same seeds for the children in both runs
    )
    result = manager.start_manager()
    reached = result.fx <= 1e-6
    return result.stats["f_counter"], result.stats["t_session"], result.stats["o_counter"], reached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 ms per evaluation (the test's setting)")
    parser.add_argument("--delay", type=float, help="seconds per evaluation (default 0.01, --quick 0.001)")
    parser.add_argument("--working-dir", default="runs/expensive_task", help="where the outputs go")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    delay = args.delay if args.delay is not None else (0.001 if args.quick else 0.01)

    task = ExpensiveTask(dims=2, delay=delay)
    n = task.dims
    budget = 20000  # a safety net: both runs are meant to end on the target
    # A child has settled in its basin when its last 10 n values lie within 0.1 % of each other;
    # judge none before it has made 20 n evaluations.
    stoppers = EvaluationsUnmoving(calls=10 * n, tol=1e-3) & MinFuncCalls(20 * n)

    runs = {}
    for label, chosen in (("without stoppers", False), ("with stoppers", stoppers)):
        runs[label] = search(task, budget, chosen, f"{args.working_dir}/{label.replace(' ', '_')}", args.seed)
        evals, seconds, children, reached = runs[label]
        outcome = "reached the global minimum" if reached else "did NOT reach the global minimum"
        print(f"{label + ':':<18} {outcome} after {evals:5d} evaluations, {seconds:5.1f} s, {children} children")

    (without, t_without, _, _), (with_, t_with, _, _) = runs.values()
    print(f"Stoppers saved {without - with_} evaluations ({100 * (without - with_) / without:.0f} %) "
          f"and {t_without - t_with:.1f} s at {1000 * delay:g} ms per evaluation")


if __name__ == "__main__":
    main()
