"""The smallest run of the Python API: a task, its bounds, and the recommended defaults for the rest.

    python examples/python_minimal.py            # 4-D Rastrigin, 8000 evaluations
    python examples/python_minimal.py --quick    # 2-D, what the test runs

Left out, the selector, stoppers, generator and exit conditions are the recommended ones
(glompo_hpc/defaults.py): CMA-ES children whose population grows as the budget is used, a
stopper for children stuck in a basin no better than the best, new children starting ever closer
to the best points, and a budget of 2000 evaluations per parameter.
"""

import argparse
import math

from glompo_hpc import GloMPOManager


def rastrigin(x):
    """Stands in for your model: any callable taking the parameters and returning one float.

    About 10**n local minima in the box below; the global one is f(0, ..., 0) = 0.
    """
    return 10 * len(x) + sum(xi * xi - 10 * math.cos(2 * math.pi * xi) for xi in x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-D problem (the test's setting)")
    parser.add_argument("--working-dir", default="runs/python_minimal", help="where the outputs go")
    parser.add_argument("--backend", default="threads", choices=("threads", "processes"))
    args = parser.parse_args()

    dims = 2 if args.quick else 4
    bounds = [(-5.12, 5.12)] * dims
    manager = GloMPOManager.new_manager(
        rastrigin, bounds,
        working_dir=args.working_dir,
        overwrite_existing=True,  # an example is rerun often; a real run would rather refuse to clobber
        max_jobs=2,  # slots: evaluations running at once (at most the cores you have)
        backend=args.backend,  # 'threads' suits tasks that release the GIL (numpy, external programs)
        seed=1,  # every random stream derives from it: a rerun repeats this one, up to timing
        summary_files=1,  # glompo_manager_log.yml: what ran, and why each child ended
    )
    result = manager.start_manager()

    print(f"Best fx:     {result.fx:.6g}   (the global minimum is 0)")
    print(f"Best x:      {[round(float(v), 6) for v in result.x]}")
    print(f"Evaluations: {result.stats['f_counter']}")
    print(f"Optimizers:  {result.stats['o_counter']} started, {result.stats['stopped']} stopped by the manager")
    print(f"Exit reason: {result.stats['exit_reason']}")


if __name__ == "__main__":  # importing this file (e.g. to reuse rastrigin) must not start a run
    main()
