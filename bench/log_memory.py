"""Manager memory with the HDF5 log on (summary_files=3): flat from 1e5 to 1e6 logged evaluations.

The same run (threads backend, a near-zero-cost task, optimizers that each make 20 000
evaluations and end) is made to each size in its own subprocess, so each peak RSS is measured
cleanly. Printed per size: peak RSS of the manager process during the run (taken when the run
hands over to the end-of-session outputs) and at the very end (outputs, i.e. the plots, included),
evaluation rate, the log writer's own throughput (rows per second of flush time), flushes, and
file size. ``--compare-unbounded`` adds the same runs with the in-memory window made unlimited,
to show what the bound saves.

Run: ``python -m bench.log_memory [--sizes 100000 1000000] [--compare-unbounded]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from glompo_hpc.core.result import MinimizeResult
from glompo_hpc.optimizers.base import BaseOptimizer

N_PARMS = 10


def cheap(x) -> float:
    return float(x[0] * x[0] + x[1])


class Pump(BaseOptimizer):
    """Evaluates ``iters`` random batches of ``batch`` points, then ends (so optimizers come and go)."""

    def __init__(self, batch: int = 100, iters: int = 200, **kwargs):
        super().__init__(**kwargs)
        self.batch, self.iters = batch, iters

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        rng = np.random.default_rng(self.opt_id)
        b = np.asarray(bounds)
        for _ in range(self.iters):
            if self.stop_requested:
                break
            function.batch(rng.uniform(b[:, 0], b[:, 1], (self.batch, len(b))))
            self.check_messages()
        return MinimizeResult(True, None, float("inf"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(evals: int) -> None:
    """One run; prints its figures as JSON on the last line."""
    import glompo_hpc.outputs as outputs
    from glompo_hpc import CycleSelector, GloMPOManager, MaxFuncCalls
    from glompo_hpc.outputs.hdf5_log import HDF5LogWriter

    figures: dict[str, float] = {"flush_s": 0.0, "flush_rows": 0, "flushes": 0}
    original_flush, original_outputs = HDF5LogWriter.flush, outputs.write_outputs

    def timed_flush(self, final=False):
        with self._buf_lock:
            rows = self._pending_rows
        t0 = time.perf_counter()
        ok = original_flush(self, final)
        figures["flush_s"] += time.perf_counter() - t0
        figures["flush_rows"] += rows
        figures["flushes"] += 1
        return ok

    def outputs_after_peak(manager):
        figures["peak_run_mb"] = peak_rss_mb()  # the peak of the run itself, before the plots
        t0 = time.perf_counter()
        original_outputs(manager)
        figures["outputs_s"] = time.perf_counter() - t0

    HDF5LogWriter.flush = timed_flush
    outputs.write_outputs = outputs_after_peak
    with tempfile.TemporaryDirectory(prefix="glompo_log_memory_") as wd:
        m = GloMPOManager.new_manager(cheap, [(-1.0, 1.0)] * N_PARMS, CycleSelector((Pump, {})), working_dir=wd,
                                      max_jobs=2, backend="threads", exit_conditions=MaxFuncCalls(evals),
                                      summary_files=3, split_printstreams=False)
        figures["baseline_mb"] = peak_rss_mb()
        t0 = time.perf_counter()
        m.start_manager()
        figures["wall_s"] = time.perf_counter() - t0
        figures["file_mb"] = os.path.getsize(os.path.join(wd, "glompo_log.h5")) / 2 ** 20
    figures.update(evaluations=m.f_counter, optimizers=m.o_counter, peak_end_mb=peak_rss_mb(),
                   in_memory_rows=sum(len(m.opt_log.history(i, "fx")) for i in m.opt_log.opt_ids))
    print(json.dumps(figures))


def measure(evals: int, unbounded: bool) -> dict[str, float]:
    env = dict(os.environ)
    if unbounded:
        env.update(GLOMPO_HPC_LOG_TAIL_ROWS=str(10 ** 9), GLOMPO_HPC_LOG_ENDED_ROWS=str(10 ** 9))
    out = subprocess.run([sys.executable, "-m", "bench.log_memory", "--child", str(evals)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--compare-unbounded", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    modes = [False, True] if args.compare_unbounded else [False]
    print(f"{'memory':<10} {'evals':>9} {'opts':>5} {'rows kept':>9} {'RSS run MB':>10} {'RSS end MB':>10} "
          f"{'evals/s':>9} {'write rows/s':>12} {'flushes':>7} {'file MB':>8} {'outputs s':>9}")
    for unbounded in modes:
        for evals in args.sizes:
            f = measure(evals, unbounded)
            rate = f["flush_rows"] / f["flush_s"] if f["flush_s"] else float("nan")
            print(f"{'unbounded' if unbounded else 'bounded':<10} {f['evaluations']:>9,} {f['optimizers']:>5} "
                  f"{f['in_memory_rows']:>9,} {f['peak_run_mb']:>10.1f} {f['peak_end_mb']:>10.1f} "
                  f"{f['evaluations'] / f['wall_s']:>9,.0f} {rate:>12,.0f} {f['flushes']:>7.0f} "
                  f"{f['file_mb']:>8.1f} {f['outputs_s']:>9.2f}")
    print(f"(baseline RSS after imports and set-up: {f['baseline_mb']:.1f} MB; {N_PARMS} parameters, 2 thread slots)")


if __name__ == "__main__":
    main()
