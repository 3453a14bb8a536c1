"""How many evaluations per second the manager absorbs, per backend, with a near-zero-cost task.

Each child evaluates batches of ``--batch`` points (a CMA-ES population) and reports them as one
IterationReport; the manager appends them to the columnar log and updates the incumbent. The
figure is the manager's ceiling: a real task is far slower. Also prints the manager's own CPU
time per evaluation. Run: ``python -m bench.manager_throughput``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np

from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.core.result import MinimizeResult
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.optimizers.base import BaseOptimizer
from glompo_hpc.selectors import CycleSelector


def zero(x) -> float:
    return float(x[0])


class BatchPump(BaseOptimizer):
    """Evaluates random batches forever (until stopped): the cheapest possible child."""

    def __init__(self, batch: int = 12, **kwargs):
        super().__init__(**kwargs)
        self.batch = batch

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        rng = np.random.default_rng(self.opt_id)
        b = np.asarray(bounds)
        while not self.stop_requested:
            function.batch(rng.uniform(b[:, 0], b[:, 1], (self.batch, len(b))))
            self.check_messages()
        return MinimizeResult(False, None, float("inf"))


def one_run(backend: str, children: int, batch: int, evals: int) -> tuple[float, float]:
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    m = GloMPOManager.new_manager(zero, [(-1, 1)] * 10, CycleSelector((BatchPump, {"batch": batch})),
                                  working_dir="/tmp/glompo_bench", overwrite_existing=True, max_jobs=children,
                                  backend=backend, exit_conditions=MaxFuncCalls(evals), split_printstreams=False)
    t0 = time.perf_counter()
    m.start_manager()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    manager_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return m.f_counter / wall, manager_cpu / m.f_counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'backend':<10} {'children':>8} {'evals/s (median)':>17} {'min..max':>21} {'mgr CPU us/eval':>16}")
    for backend in ("threads", "processes"):
        for children in (1, 2):
            runs = [one_run(backend, children, args.batch, args.evals) for _ in range(args.repeats)]
            rates = [r for r, _ in runs]
            cpu = statistics.median(c for _, c in runs) * 1e6
            print(f"{backend:<10} {children:>8} {statistics.median(rates):>17,.0f} "
                  f"{min(rates):>10,.0f}..{max(rates):<10,.0f} {cpu:>16.2f}"
                  + ("   (threads: CPU includes the children)" if backend == "threads" else ""))


if __name__ == "__main__":
    main()
