"""What the MPI backend costs: rank 0's absorption rate, worker utilisation and rank 0 CPU per evaluation.

Prints, in one run:

(a) evaluations per second the manager on rank 0 absorbs with a near-zero-cost task and 1, 3 and 7
    worker ranks (children evaluate CMA-ES-sized batches of ``--batch`` points and report each as
    one IterationReport), next to a raw mpi4py loop sending the same number of report-shaped
    messages to rank 0 (the transport's limit) and to the threads/processes backends with as many
    children;
(b) the fraction of worker time spent inside a 10 ms task (utilisation), per worker count;
(c) rank 0's CPU time per evaluation.

Run from the repository root: ``python -m bench.mpi_throughput`` (it starts ``mpirun`` itself).
Figures are medians over ``--repeats`` runs. On a machine with fewer cores than ranks they are
oversubscribed and only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.manager_throughput import BatchPump, zero
from glompo_hpc.core import messages as msg
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.selectors import CycleSelector

N_PARMS = 10
TASK_SECONDS = 0.010


def sleepy(x) -> float:
    time.sleep(TASK_SECONDS)
    return float(x[0])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def manager_run(backend: str, children: int, batch: int, evals: int, task=zero) -> dict:
    """One run; returns evaluations/s, manager CPU s per evaluation, reports and wall time."""
    workdir = tempfile.mkdtemp(prefix="glompo_bench_")
    try:
        m = GloMPOManager.new_manager(task, [(-1, 1)] * N_PARMS, CycleSelector((BatchPump, {"batch": batch})),
                                      working_dir=workdir, overwrite_existing=True, max_jobs=children,
                                      backend=backend, exit_conditions=MaxFuncCalls(evals),
                                      split_printstreams=False)
        cpu0, t0 = _cpu(), time.perf_counter()
        m.start_manager()
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rate": m.f_counter / wall, "cpu_per_eval": cpu / m.f_counter, "reports": m.f_counter // batch,
            "evals": m.f_counter, "wall": wall}


def raw_loop(comm, messages: int, batch: int) -> float:
    """Report-shaped messages from every worker rank to rank 0 with blocking send/recv; evaluations/s."""
    from mpi4py import MPI

    workers = comm.Get_size() - 1
    per_worker = max(1, messages // workers)
    comm.Barrier()
    t0 = time.perf_counter()
    if comm.Get_rank() == 0:
        for _ in range(per_worker * workers):
            comm.recv(source=MPI.ANY_SOURCE, tag=7)
    else:
        report = msg.IterationReport(comm.Get_rank(), np.random.rand(batch, N_PARMS), np.random.rand(batch), None, 1)
        for _ in range(per_worker):
            comm.send(report, dest=0, tag=7)
    comm.Barrier()
    return per_worker * workers * batch / (time.perf_counter() - t0)


def mpi_main(args: argparse.Namespace) -> None:
    """Under mpirun: the MPI figures for this world size; rank 0 prints them as one JSON line."""
    from mpi4py import MPI

    from glompo_hpc.backends import mpi_workers

    comm = MPI.COMM_WORLD
    runs, raws = [], []
    for _ in range(args.repeats):
        result = None
        with mpi_workers() as is_manager:
            if is_manager:
                result = manager_run("mpi", comm.Get_size() - 1, args.batch, args.evals)
                runs.append(result)
        reports = comm.bcast(result["reports"] if result else None, root=0)
        raws.append(raw_loop(comm, reports, args.batch))
    util = None
    with mpi_workers() as is_manager:
        if is_manager:
            workers = comm.Get_size() - 1
            evals = int(args.util_seconds / TASK_SECONDS) * workers
            r = manager_run("mpi", workers, args.batch, evals, task=sleepy)
            util = r["evals"] * TASK_SECONDS / (workers * r["wall"])
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps({"rates": [r["rate"] for r in runs], "cpu": [r["cpu_per_eval"] for r in runs],
                                      "raw": raws, "util": util}), flush=True)


def run_mpi(size: int, args: argparse.Namespace) -> dict:
    mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [mpirun, "--oversubscribe", "-n", str(size), sys.executable, "-m", "bench.mpi_throughput", "--under-mpi",
           "--evals", str(args.evals), "--batch", str(args.batch), "--repeats", str(args.repeats),
           "--util-seconds", str(args.util_seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"mpirun -n {size} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT "):])


def single_node_util(backend: str, children: int, args: argparse.Namespace) -> float:
    evals = int(args.util_seconds / TASK_SECONDS) * children
    r = manager_run(backend, children, args.batch, evals, task=sleepy)
    return r["evals"] * TASK_SECONDS / (children * r["wall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=120_000, help="evaluations per throughput run")
    parser.add_argument("--batch", type=int, default=12, help="points per iteration (CMA-ES population)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3, 7], help="worker ranks / children")
    parser.add_argument("--util-seconds", type=float, default=3.0, help="length of each 10 ms task run")
    parser.add_argument("--under-mpi", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.under_mpi:
        mpi_main(args)
        return
    print(f"{os.cpu_count()} CPUs; batch {args.batch}; {args.evals:,} evaluations per run; medians of "
          f"{args.repeats}" + ("  (ranks > CPUs: oversubscribed, indicative only)" if max(args.workers) + 1 >
                               (os.cpu_count() or 1) else ""))
    print(f"{'workers':>7} | {'mpi evals/s':>12} {'raw mpi4py':>11} {'mpi/raw':>7} | {'threads':>9} {'processes':>9} |"
          f" {'rank0 CPU us/eval':>17} | {'util mpi':>8} {'util proc':>9}")
    for workers in args.workers:
        m = run_mpi(workers + 1, args)
        rate, raw = statistics.median(m["rates"]), statistics.median(m["raw"])
        single = {b: statistics.median(manager_run(b, workers, args.batch, args.evals)["rate"]
                                       for _ in range(args.repeats)) for b in ("threads", "processes")}
        util_proc = single_node_util("processes", workers, args)
        print(f"{workers:>7} | {rate:>12,.0f} {raw:>11,.0f} {rate / raw:>7.2f} | {single['threads']:>9,.0f} "
              f"{single['processes']:>9,.0f} | {statistics.median(m['cpu']) * 1e6:>17.2f} | "
              f"{m['util']:>8.1%} {util_proc:>9.1%}", flush=True)


if __name__ == "__main__":
    main()
