"""One BLAS/OpenMP thread per slot.

A slot is one core, but numpy's BLAS (OpenBLAS, MKL) starts one thread per core in every process
that calls it: with ``max_jobs`` children on ``max_jobs`` cores, CMA-ES's linear algebra or a
numpy-heavy task would then run ``max_jobs`` x cores threads and slow every child down. So child
processes, MPI evaluator processes and the command line limit the thread pools already loaded
in their process to one thread (threadpoolctl does this at run time, also after numpy was
imported, which environment variables cannot). Programs a task starts are not affected.

A user who wants another count per slot sets it the usual way, e.g. ``OMP_NUM_THREADS=4`` (with
``max_jobs`` lowered to match): the first of ``THREAD_VARIABLES`` holding a positive integer is
applied instead of 1. It is applied, not just left alone, because the variables only act on a
library when it loads, and by then numpy's BLAS may already run with a thread per core.
"""

from __future__ import annotations

import logging
import os

__all__ = ("THREAD_VARIABLES", "threads_per_slot", "limit_blas_threads")

logger = logging.getLogger("glompo_hpc.backends")

#: Environment variables by which a user chooses a thread count, in the order they are read.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def threads_per_slot() -> int:
    """The first of ``THREAD_VARIABLES`` holding a positive integer, else 1."""
    for name in THREAD_VARIABLES:
        text = os.environ.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
    return 1


def limit_blas_threads() -> int:
    """Limit this process's BLAS and OpenMP pools to ``threads_per_slot()`` threads; returns it."""
    from threadpoolctl import threadpool_limits

    threads = threads_per_slot()
    threadpool_limits(limits=threads)
    logger.debug("BLAS/OpenMP thread pools limited to %d thread(s)", threads)
    return threads
