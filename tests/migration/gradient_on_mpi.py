"""3.1's gradient optimizer on MPI ranks (run by test_glompo31_scripts under mpirun -n 3)."""

import sys
import warnings

from glompo_hpc import CycleSelector, GloMPOManager, MaxFuncCalls
from glompo_hpc.backends import mpi_workers
from glompo31_components import GradientTask, SteepestGradient

warnings.simplefilter("ignore", DeprecationWarning)
with mpi_workers() as is_manager:
    if is_manager:
        manager = GloMPOManager.new_manager(
            GradientTask(), ((-10, 10), (-10, 10)),
            CycleSelector((SteepestGradient, {"max_iters": 10000, "precision": 1e-8, "gamma": [0.1, 0.01]}, None)),
            backend="mpi", working_dir=sys.argv[1], convergence_checker=MaxFuncCalls(3000))
        result = manager.start_manager()
        print(f"BEST {result.fx:.6f} [{result.x[0]:.4f}, {result.x[1]:.4f}] CONVERGED {manager.conv_counter}",
              flush=True)
