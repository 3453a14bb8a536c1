"""Time and size of a checkpoint against the number of live optimizers and the dimension.

Each case runs CMA-ES children (threads backend, a cheap task) and takes one checkpoint while all
of them are mid-run: the figures include pausing every child, each child saving its state, the
manager's own state and packing the archive. Run: ``python -m bench.checkpoint_size``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import numpy as np

from glompo_hpc import CheckpointingControl, CMAOptimizer, CycleSelector, GloMPOManager, MaxFuncCalls


def sphere(x) -> float:
    time.sleep(0.0005)  # slow enough that every child is mid-run when the checkpoint is taken
    return float(np.dot(x, x))


def one_case(n_opts: int, dims: int, repeats: int) -> tuple[float, float]:
    seconds, sizes = [], []
    for _ in range(repeats):
        wd = tempfile.mkdtemp(prefix="glompo_ckbench_")
        popsize = 8
        budget = n_opts * popsize * 20  # ~20 generations each, so all are mid-run at the checkpoint
        m = GloMPOManager.new_manager(
            sphere, [(-5, 5)] * dims, CycleSelector((CMAOptimizer, {"sigma0": 1.0, "popsize": popsize})),
            working_dir=wd, max_jobs=n_opts, backend="threads", split_printstreams=False,
            exit_conditions=MaxFuncCalls(budget),
            checkpoint_control=CheckpointingControl(checkpoint_eval_interval=budget // 2))
        m.start_manager()
        record = m.checkpoint_log[0]
        seconds.append(record["seconds"])
        sizes.append(record["bytes"])
        shutil.rmtree(wd)
    return statistics.median(seconds), statistics.median(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'optimizers':>10} {'dims':>6} {'median s':>10} {'median MB':>10} {'MB/optimizer':>13}")
    for dims in (10, 100, 400):
        for n_opts in (1, 4, 16):
            s, b = one_case(n_opts, dims, args.repeats)
            print(f"{n_opts:>10} {dims:>6} {s:>10.3f} {b / 2**20:>10.2f} {b / 2**20 / n_opts:>13.3f}")


if __name__ == "__main__":
    main()
