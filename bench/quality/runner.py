"""Runs every (problem, contender, seed) job, in worker processes when asked, and collects the rows.

Each job builds its problem afresh, runs one contender on it through a Recorder and returns one
CSV row (a :class:`Row`) plus the run's best-so-far sampled at fixed evaluation counts (the
``grid``), which is all the report needs for the plot.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .contenders import run_contender
from .problems import Problem

__all__ = ("Job", "Row", "grid", "run_job", "run_all", "write_csv", "read_csv", "write_traces", "read_traces")

#: Environment every worker needs: one BLAS thread per process. cma's linear algebra otherwise
#: starts a BLAS thread pool per call that spins against the child threads (2-4x slower runs).
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Job:
    """One run to make. ``label`` names the contender in the outputs (a variant may differ from
    ``contender`` by its ``glompo_options``)."""

    problem: Problem
    contender: str
    seed: int
    slots: int
    delay: float = 0.0
    label: str = ""
    glompo_options: str = "{}"  # JSON text, so that jobs stay hashable and picklable

    @property
    def name(self) -> str:
        return self.label or self.contender


@dataclass
class Row:
    """One run's outcome; the CSV columns."""

    problem: str
    dims: int
    multimodal: bool
    contender: str
    seed: int
    slots: int
    delay: float
    budget: int
    f_star: float
    tol: float
    evals: int            # evaluations recorded (<= budget; fewer when the target was reached or it ended)
    best_fx: float
    success: bool
    evals_to_target: float  # nan when not reached
    time_to_target: float   # s; nan when not reached
    t_last: float           # s, when the last recorded evaluation ended
    wall: float             # s, the whole run including set-up and shut-down


def grid(budget: int, points: int = 60) -> np.ndarray:
    """Evaluation counts (1..budget, log-spaced) at which best-so-far traces are sampled."""
    return np.unique(np.geomspace(1, budget, points).round().astype(int))


def run_job(job: Job) -> tuple[Row, np.ndarray]:
    """Run one job; returns its row and its best-so-far on ``grid(budget)`` (nan before any value)."""
    p = job.problem
    function, fast = p.build(job.delay), p.build()
    f_star, tol = float(fast.min_fx), p.tol
    recorder, wall = run_contender(job.contender, function, fast, np.asarray(fast.bounds), p.budget, f_star, tol,
                                   job.seed, job.slots, parallel=job.delay > 0,
                                   glompo_options=json.loads(job.glompo_options))
    best = recorder.best_so_far()
    g = grid(p.budget)
    trace = np.full(len(g), np.nan)
    if len(best):
        idx = np.minimum(g, len(best)) - 1
        trace = best[idx]  # after an early end (target reached) the last best carries on
    best_fx = float(best[-1]) if len(best) else math.inf
    row = Row(p.name, p.dims, p.multimodal, job.name, job.seed, job.slots, job.delay, p.budget, f_star, tol,
              recorder.n, best_fx, recorder.hit is not None, float(recorder.hit or math.nan),
              recorder.time_to_target, float(recorder.t[recorder.n - 1]) if recorder.n else math.nan, wall)
    return row, trace


def _init_worker() -> None:
    os.environ.update(SINGLE_THREAD_ENV)


def run_all(jobs: Sequence[Job], workers: int = 1,
            progress: Callable[[int, int, Row], None] | None = None) -> list[tuple[Row, np.ndarray]]:
    """Run the jobs (``workers`` processes; 1 runs them here, in order); results in job order."""
    results: list[Any] = [None] * len(jobs)
    if workers <= 1:
        for i, job in enumerate(jobs):
            results[i] = run_job(job)
            if progress:
                progress(i + 1, len(jobs), results[i][0])
        return results
    # Longest first, so that the last jobs are short and the processes finish together.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].problem.budget * jobs[i].problem.dims)
    ctx = multiprocessing.get_context("spawn")  # children run threads: no fork of a threaded process
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(run_job, jobs[i]): i for i in order}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            results[i] = future.result()
            if progress:
                progress(done, len(jobs), results[i][0])
    return results


# ------------------------------------------------------------ files

def write_csv(rows: Iterable[Row], path: Path) -> None:
    rows = list(rows)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, [f.name for f in fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def read_csv(path: Path) -> list[Row]:
    """Rows of a results CSV, typed back."""
    kinds = {f.name: f.type for f in fields(Row)}
    conv = {"int": int, "float": float, "bool": lambda s: s == "True", "str": str}
    with open(path, newline="") as fh:
        return [Row(**{k: conv[kinds[k]](v) for k, v in rec.items()}) for rec in csv.DictReader(fh)]


def write_traces(results: Sequence[tuple[Row, np.ndarray]], path: Path) -> None:
    """Best-so-far traces as gzipped JSON: ``{problem: {"grid": [...], contender: [[seed trace], ...]}}``
    (values to 6 significant digits)."""
    out: dict[str, dict[str, Any]] = {}
    for row, trace in results:
        entry = out.setdefault(row.problem, {"grid": grid(row.budget).tolist(), "f_star": row.f_star, "tol": row.tol})
        entry.setdefault(row.contender, []).append([None if not np.isfinite(v) else float(f"{v:.6g}") for v in trace])
    with gzip.open(path, "wt") as fh:
        json.dump(out, fh, separators=(",", ":"))


def read_traces(path: Path) -> dict[str, dict[str, Any]]:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)
