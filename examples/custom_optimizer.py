"""Your own optimizer as a GloMPO child: a BaseOptimizer subclass, checked, then managed.

    python examples/custom_optimizer.py            # 4-D Ackley
    python examples/custom_optimizer.py --quick    # 2-D, what the test runs
    python examples/custom_optimizer.py --check    # run the conformance kit on it first

The contract (glompo_hpc/optimizers/base.py): evaluate through the ``function`` you are given
(``function.batch`` spreads points over ``workers``), call ``self.check_messages()`` once per
iteration (it reports to the manager and obeys stop, pause, checkpoint and injection), and return
once ``self.stop_requested``. The conformance kit proves all of it; run it in your own tests:

    from glompo_hpc.optimizers.conformance import check_optimizer
    check_optimizer(lambda: LocalRandomSearch(workers=2))
"""

import argparse
import math

import numpy as np

from glompo_hpc import Ackley, BaseOptimizer, CycleSelector, GloMPOManager, MinimizeResult


class LocalRandomSearch(BaseOptimizer):
    """A (1+lambda) evolution strategy: sample ``workers`` points around the best one, keep the
    best if it is better, and adapt the step by the 1/5th success rule.

    Args:
        step: Initial step, as a fraction of each parameter's range.
        min_step: Converged when the step falls below this fraction of the range.
        seed: Seed of its random generator; None: the manager gives each child its own.
        workers: Points sampled per iteration, evaluated in parallel; the slots it occupies.
        backend: How those points are evaluated in parallel: 'threads' or 'processes'.
        is_log_detailed: Passed on by the manager; evaluations then go through ``detailed_call``.
    """

    def __init__(self, step=0.1, min_step=1e-9, seed=None, workers=1, backend="threads", is_log_detailed=False):
        # the keyword arguments given to super() are shown in the summary file and the log
        super().__init__(workers, backend, is_log_detailed, step=step, min_step=min_step, seed=seed)
        self.step = step
        self.min_step = min_step
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # The search state. The default checkpoint_save pickles every attribute (the generator
        # too), so a restored child continues exactly where it was paused.
        self.x = None
        self.fx = math.inf
        self.sigma = None

    def reseed(self, seed):
        """The manager's seed for this child; a seed given by the user wins."""
        if self.seed is None:
            self.rng = np.random.default_rng(seed)

    def inject(self, x, fx):
        """The manager's best point (with share_best_solutions=True): jump to it if it is better."""
        super().inject(x, fx)
        if fx < self.fx:
            self.x, self.fx = np.array(x, dtype=float), float(fx)

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        box = np.asarray(bounds, dtype=float).reshape(-1, 2)
        low, high = box[:, 0], box[:, 1]
        if self.x is None or not self.is_restart:  # a restored child goes on from its saved state
            self.x = np.clip(np.asarray(x0, dtype=float), low, high)
            self.fx = float(function(self.x))
            self.sigma = self.step * (high - low)

        converged = False
        while not self.stop_requested:
            if np.all(self.sigma < self.min_step * (high - low)):
                converged = True
                break
            candidates = np.clip(self.x + self.sigma * self.rng.standard_normal((self.workers, len(box))), low, high)
            values = np.asarray(function.batch(candidates), dtype=float)
            values[~np.isfinite(values)] = math.inf  # a failed evaluation is never an improvement
            best = int(np.argmin(values))
            if values[best] < self.fx:
                self.x, self.fx = candidates[best], float(values[best])
                self.sigma = self.sigma * 1.22  # 1.22 * 0.95**4 = 1: the step holds when 1 in 5 succeeds
            else:
                self.sigma = self.sigma * 0.95
            if callbacks is not None and callbacks(self):
                break
            self.check_messages()  # report this iteration's evaluations; obey the manager

        return MinimizeResult(success=converged, x=self.x.copy(), fx=self.fx)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-D problem (the test's setting)")
    parser.add_argument("--check", action="store_true", help="run the conformance kit before the run")
    parser.add_argument("--working-dir", default="runs/custom_optimizer", help="where the outputs go")
    args = parser.parse_args()

    if args.check:
        from glompo_hpc.optimizers.conformance import check_optimizer

        check_optimizer(lambda: LocalRandomSearch(workers=2))  # raises ConformanceError on a breach
        print("Conformance: LocalRandomSearch keeps the child contract")

    # Ackley: a deep global minimum f(0, ..., 0) = 0 in a field of shallow local ones that trap a
    # local search; the manager's restarts from new points get it out.
    task = Ackley(dims=2 if args.quick else 4)
    manager = GloMPOManager.new_manager(
        task, task.bounds,
        CycleSelector((LocalRandomSearch, {"step": 0.1, "workers": 2})),
        working_dir=args.working_dir, overwrite_existing=True, max_jobs=4,
        backend="processes",  # children in processes: the class must be importable or defined in __main__
        seed=5, summary_files=1,
    )
    result = manager.start_manager()

    print(f"Best fx:     {result.fx:.6g}   (the global minimum is {task.min_fx})")
    print(f"Best x:      {[round(float(v), 6) for v in result.x]}")
    print(f"Found by:    optimizer {result.origin['opt_id']} ({result.origin['type']})")
    print(f"Evaluations: {result.stats['f_counter']}")
    print(f"Optimizers:  {result.stats['o_counter']} started, {result.stats['stopped']} stopped by the manager, "
          f"{result.stats['conv_counter']} converged")
    print(f"Exit reason: {result.stats['exit_reason']}")


if __name__ == "__main__":  # importing this file (e.g. for its classes) must not start a run
    main()
