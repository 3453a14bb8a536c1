"""One BLAS/OpenMP thread per slot.

A slot is one core, but numpy's BLAS (OpenBLAS, MKL) starts one thread per core in every process
that calls it: with ``max_jobs`` children on ``max_jobs`` cores, CMA-ES's linear algebra or a
numpy-heavy task would then run ``max_jobs`` x cores threads and slow every child down. So child
processes, MPI evaluator processes and the command line limit the thread pools already loaded
in their process to one thread (threadpoolctl does this at run time, also after numpy was
imported, which environment variables cannot). Programs a task starts are not affected.

A user who wants more threads per slot sets any of ``THREAD_VARIABLES`` (e.g.
``OMP_NUM_THREADS=4``, with ``max_jobs`` lowered to match): then nothing is limited.
"""

from __future__ import annotations

import logging
import os

__all__ = ("THREAD_VARIABLES", "limit_blas_threads")

logger = logging.getLogger("glompo_hpc.backends")

#: Environment variables by which a user chooses thread counts; any of them set disables the limit.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def limit_blas_threads() -> bool:
    """Limit this process's BLAS and OpenMP pools to one thread, unless the user chose a count.

    Returns True when the limit was applied.
    """
    chosen = [name for name in THREAD_VARIABLES if os.environ.get(name, "").strip()]
    if chosen:
        logger.debug("Thread pools left as %s chose", ", ".join(chosen))
        return False
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    return True
