"""What the MPI backend costs: rank 0's absorption rate, worker utilisation and rank 0 CPU per evaluation.

Prints, in one run:

(a) evaluations per second the manager on rank 0 absorbs with a near-zero-cost task and 1, 3 and 7
    worker ranks (children evaluate CMA-ES-sized batches of ``--batch`` points and report each as
    one IterationReport), next to a raw mpi4py loop sending the same number of report-shaped
    messages to rank 0 (the transport's limit) and to the threads/processes backends with as many
    children;
(b) the fraction of worker time spent inside a 10 ms task (utilisation), per worker count: of the
    whole run ("util mpi", start-up and shut-down included), and "steady": of each child's life from
    its first call to its last return (the task records these; see ``sleepy``), with the seconds
    from ``start_manager`` to the first call ("start s") and from the last return to its end ("end s");
(c) rank 0's CPU time per evaluation;
(d) what waiting costs: CPU seconds per wall second (psutil, the process alone, not its children)
    of rank 0 and of a worker rank's host while the 10 ms tasks run (both mostly wait: rank 0 for
    reports, the host for its child), and of a host with no child waiting for orders (``--idle-seconds``).

``--compare-with REV`` measures the MPI figures also for the code at git revision REV (checked out
in a temporary worktree, with this benchmark copied in), side by side, row by row, with ratios;
``--mpi-only`` skips the threads/processes columns.

Run from the repository root: ``python -m bench.mpi_throughput`` (it starts ``mpirun`` itself).
Figures are medians over ``--repeats`` runs. On a machine with fewer cores than ranks they are
oversubscribed and only indicative.
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import Iterator

import numpy as np
import psutil

from bench.manager_throughput import BatchPump, zero
from glompo_hpc.protocol import messages as msg
from glompo_hpc.core.manager import GloMPOManager
from glompo_hpc.exit_conditions import MaxFuncCalls
from glompo_hpc.selectors import CycleSelector

N_PARMS = 10
TASK_SECONDS = 0.010


STAMPS_VAR = "GLOMPO_BENCH_STAMPS"  # a directory: each child process records its evaluations there
_stamp = {"first": 0.0, "inside": 0.0, "fd": -1, "pid": 0}


def sleepy(x) -> float:
    """A 10 ms task; if ``GLOMPO_BENCH_STAMPS`` is set, this process's first call, last return and
    time inside calls go to a file there (one pwrite per call), for the steady-state utilisation."""
    start = time.time()
    time.sleep(TASK_SECONDS)
    stamps = os.environ.get(STAMPS_VAR)
    if stamps:
        end = time.time()
        if _stamp["pid"] != os.getpid():
            _stamp.update(first=start, inside=0.0, pid=os.getpid(),
                          fd=os.open(os.path.join(stamps, str(os.getpid())), os.O_WRONLY | os.O_CREAT, 0o644))
        _stamp["inside"] += end - start
        os.pwrite(_stamp["fd"], np.array([_stamp["first"], end, _stamp["inside"]]).tobytes(), 0)
    return float(x[0])


def steady_utilisation(stamps: str) -> tuple[float, float, float]:
    """Time inside task calls (a 10 ms sleep, however long it took) over the children's lives from
    first call to last return (start-up and shut-down left out): the share of its time a child
    spends evaluating, whatever the waiting ranks around it cost. Also the first call's and the
    last return's times (s since the epoch)."""
    inside = alive = 0.0
    firsts, lasts = [], []
    for path in Path(stamps).iterdir():
        first, last, in_calls = np.fromfile(path)
        inside += in_calls
        alive += last - first
        firsts.append(first)
        lasts.append(last)
    return inside / alive, min(firsts), max(lasts)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _own_cpu() -> float:
    """CPU seconds of this process alone (a rank host's children are not counted)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def manager_run(backend: str, children: int, batch: int, evals: int, task=zero) -> dict:
    """One run; returns evaluations/s, manager CPU s per evaluation, reports and wall time."""
    workdir = tempfile.mkdtemp(prefix="glompo_bench_")
    try:
        m = GloMPOManager.new_manager(task, [(-1, 1)] * N_PARMS, CycleSelector((BatchPump, {"batch": batch})),
                                      working_dir=workdir, overwrite_existing=True, max_jobs=children,
                                      backend=backend, exit_conditions=MaxFuncCalls(evals),
                                      split_printstreams=False)
        cpu0, t0, started = _cpu(), time.perf_counter(), time.time()
        m.start_manager()
        wall, cpu, ended = time.perf_counter() - t0, _cpu() - cpu0, time.time()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rate": m.f_counter / wall, "cpu_per_eval": cpu / m.f_counter, "reports": m.f_counter // batch,
            "evals": m.f_counter, "wall": wall, "started": started, "ended": ended}


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
    util = steady = ramp = None
    cpu0, t0 = _own_cpu(), time.perf_counter()
    with mpi_workers() as is_manager:
        if is_manager:
            workers = comm.Get_size() - 1
            evals = int(args.util_seconds / TASK_SECONDS) * workers
            r = manager_run("mpi", workers, args.batch, evals, task=sleepy)
            util = r["evals"] * TASK_SECONDS / (workers * r["wall"])
            steady, first, last = steady_utilisation(os.environ[STAMPS_VAR])
            ramp = (first - r["started"], r["ended"] - last)
    busy_cpu = comm.gather((_own_cpu() - cpu0) / (time.perf_counter() - t0), root=0)
    cpu0, t0 = _own_cpu(), time.perf_counter()
    with mpi_workers() as is_manager:
        if is_manager:
            time.sleep(args.idle_seconds)  # the hosts wait for orders that do not come
    idle_cpu = comm.gather((_own_cpu() - cpu0) / (time.perf_counter() - t0), root=0)
    if comm.Get_rank() == 0:
        import glompo_hpc

        print("RESULT " + json.dumps({"rates": [r["rate"] for r in runs], "cpu": [r["cpu_per_eval"] for r in runs],
                                      "raw": raws, "util": util, "steady": steady, "ramp": ramp, "rank0_cpu": busy_cpu[0],
                                      "host_cpu": statistics.median(busy_cpu[1:]),
                                      "idle_host_cpu": statistics.median(idle_cpu[1:]),
                                      "code": str(Path(glompo_hpc.__file__).parent.parent)}), flush=True)


def run_mpi(size: int, args: argparse.Namespace, tree: Path | None = None) -> dict:
    """The MPI figures for ``size`` ranks, running the code in ``tree`` (default: this checkout)."""
    mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    stamps = tempfile.mkdtemp(prefix="glompo_bench_stamps_")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **{STAMPS_VAR: stamps})
    cmd = [mpirun, "--oversubscribe", "-n", str(size), sys.executable, "-m", "bench.mpi_throughput", "--under-mpi",
           "--evals", str(args.evals), "--batch", str(args.batch), "--repeats", str(args.repeats),
           "--util-seconds", str(args.util_seconds), "--idle-seconds", str(args.idle_seconds)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=tree)
    finally:
        shutil.rmtree(stamps, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"mpirun -n {size} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT "):])


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A temporary worktree at ``rev`` with this benchmark copied in, so both trees measure alike."""
    tree = Path(tempfile.mkdtemp(prefix="glompo_bench_rev_"))
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True)
    try:
        shutil.copy(Path(__file__), tree / "bench" / "mpi_throughput.py")
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], capture_output=True)


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
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="length of the no-work run")
    parser.add_argument("--compare-with", metavar="REV", help="also measure the MPI figures at this git revision")
    parser.add_argument("--mpi-only", action="store_true", help="skip the threads/processes figures")
    parser.add_argument("--under-mpi", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.under_mpi:
        mpi_main(args)
        return
    print(f"{os.cpu_count()} CPUs; batch {args.batch}; {args.evals:,} evaluations per run; medians of "
          f"{args.repeats}" + ("  (ranks > CPUs: oversubscribed, indicative only)" if max(args.workers) + 1 >
                               (os.cpu_count() or 1) else ""))
    with contextlib.ExitStack() as stack:
        trees = {"this tree": None}
        if args.compare_with:
            trees = {args.compare_with: stack.enter_context(checkout(args.compare_with)), "this tree": None}
        print("CPU s/s: CPU seconds per wall second, while 10 ms tasks run (rank 0, a host with a child) "
              f"and with no work ({args.idle_seconds:g} s, a host without a child)")
        print(f"{'workers':>7} {'code':>10} | {'mpi evals/s':>12} {'raw mpi4py':>11} {'mpi/raw':>7} | "
              f"{'rank0 CPU us/eval':>17} | {'util mpi':>8} {'steady':>7} {'start s':>7} {'end s':>6} | {'CPU s/s: rank0':>14} {'host':>6} {'idle host':>9}")
        for workers in args.workers:
            rows = {name: run_mpi(workers + 1, args, tree) for name, tree in trees.items()}
            for name, m in rows.items():
                print(f"{workers:>7} {name[:10]:>10} | {_mpi_columns(m)}", flush=True)
            if args.compare_with:
                old, new = rows[args.compare_with], rows["this tree"]
                print(f"{workers:>7} {'new/old':>10} | {_ratio(new, old, 'rates'):>12.2f} {'':>11} {'':>7} | "
                      f"{_ratio(new, old, 'cpu'):>17.2f} | {new['util'] / old['util']:>8.3f} "
                      f"{new['steady'] / old['steady']:>7.3f} {new['ramp'][0] / old['ramp'][0]:>7.2f} "
                      f"{new['ramp'][1] / old['ramp'][1]:>6.2f} | "
                      f"{new['rank0_cpu'] / old['rank0_cpu']:>14.2f} {new['host_cpu'] / old['host_cpu']:>6.2f} "
                      f"{new['idle_host_cpu'] / old['idle_host_cpu']:>9.2f}", flush=True)
            if not args.mpi_only:
                single = {b: statistics.median(manager_run(b, workers, args.batch, args.evals)["rate"]
                                               for _ in range(args.repeats)) for b in ("threads", "processes")}
                print(f"{workers:>7} {'single':>10} | threads {single['threads']:,.0f} evals/s, processes "
                      f"{single['processes']:,.0f} evals/s, util processes "
                      f"{single_node_util('processes', workers, args):.1%}", flush=True)


def _ratio(new: dict, old: dict, key: str) -> float:
    return statistics.median(new[key]) / statistics.median(old[key])


def _mpi_columns(m: dict) -> str:
    rate, raw = statistics.median(m["rates"]), statistics.median(m["raw"])
    return (f"{rate:>12,.0f} {raw:>11,.0f} {rate / raw:>7.2f} | {statistics.median(m['cpu']) * 1e6:>17.2f} | "
            f"{m['util']:>8.1%} {m['steady']:>7.1%} {m['ramp'][0]:>7.2f} {m['ramp'][1]:>6.2f} | {m['rank0_cpu']:>14.3f} {m['host_cpu']:>6.3f} {m['idle_host_cpu']:>9.3f}")

if __name__ == "__main__":
    main()
