"""How long ending hung children takes under MPI: all kill orders at once versus one at a time.

Starts 8 children whose task ignores SIGTERM and never returns (each then needs its host's 2 s
SIGTERM grace and a SIGKILL), on 4 worker ranks with 2 slots each, and prints the seconds rank 0
spends in ``MPIBackend.stop_children`` (every order sent, one wait) and in a loop of ``stop_child``
(one order and one wait per child, as the end of a run did before). Prints, never asserts.

Run from the repository root: ``python -m bench.mpi_shutdown`` (it starts ``mpirun`` itself).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_CHILDREN = 8

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import numpy as np
    from glompo_hpc import RandomOptimizer, mpi_workers
    from glompo_hpc.backends import ChildSpec, make_backend

    N = int(sys.argv[2])


    class HungTask:
        def __init__(self, ready_dir):
            self.ready_dir = ready_dir

        def __call__(self, x):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            (Path(self.ready_dir) / str(os.getpid())).touch()
            while True:
                time.sleep(3600)


    def start_hung(backend, first, ready):
        ready.mkdir()
        ids = list(range(first, first + N))
        for opt_id in ids:
            backend.start_child(ChildSpec(opt_id, RandomOptimizer(seed=opt_id), HungTask(ready), np.zeros(2),
                                          np.array([(-1.0, 1.0)] * 2)))
        while len(list(ready.iterdir())) < N:
            time.sleep(0.05)
        return ids


    with mpi_workers(slots="cores", cores_per_rank=2) as is_manager:
        if is_manager:
            workdir = Path(sys.argv[1])
            backend = make_backend("mpi")
            ids = start_hung(backend, 1, workdir / "a")
            t0 = time.perf_counter()
            backend.stop_children(ids)
            together = time.perf_counter() - t0
            ids = start_hung(backend, 100, workdir / "b")
            t0 = time.perf_counter()
            for opt_id in ids:
                backend.stop_child(opt_id)
            one_by_one = time.perf_counter() - t0
            backend.close()
            print(f"RESULT {together:.2f} {one_by_one:.2f}", flush=True)
""")


def main() -> None:
    mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    if mpirun is None:
        sys.exit("mpirun not found")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="glompo_bench_shutdown_") as tmp:
        script = Path(tmp) / "hung.py"
        script.write_text(SCRIPT)
        proc = subprocess.run([mpirun, "--oversubscribe", "-n", "5", sys.executable, str(script), tmp,
                               str(N_CHILDREN)], env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"the run failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    together, one_by_one = map(float, lines[0].split()[1:])
    print(f"{N_CHILDREN} hung children on 4 worker ranks (2 slots each), each needing its host's 2 s SIGTERM grace:")
    print(f"  stop_children (all orders, one wait): {together:6.2f} s")
    print(f"  stop_child one at a time:             {one_by_one:6.2f} s")
    print(f"  ratio:                                {one_by_one / max(together, 1e-9):6.1f} x")


if __name__ == "__main__":
    main()
