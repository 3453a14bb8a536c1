"""The problems of the quality suite: test functions with known minima, budgets and success tolerance.

A :class:`Problem` names one test function of :mod:`glompo_hpc.tasks.functions` in one
dimension, with the evaluation budget every contender gets on it. Success means reaching
``f* + tol`` with ``tol = TOL_REL * max(1, |f*|)``: 1e-6 relative to the minimum's scale, about
the precision to which the Lennard-Jones minima are published.

Budgets are ``BUDGET_PER_DIM * dims`` evaluations (2e4 in 10-D, 6e4 in 30-D in full mode). The
Lennard-Jones clusters of 4 and 10 atoms stand in for 10-D and 30-D (12 and 30 coordinates).

Most of these functions are separable (a sum of one-dimensional terms), which favours searches
that move one coordinate at a time. The ``rotated`` mode checks that: Rastrigin and
Styblinski-Tang composed with a fixed random rotation about their minimum (:class:`Rotated`),
which keeps the landscape and the minimum but couples the coordinates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from glompo_hpc.tasks import functions

from .landscapes import LANDSCAPES

__all__ = ("Problem", "Rotated", "TOL_REL", "HARD_TOL", "SOLVED", "suite", "select", "EXPENSIVE_PROBLEMS",
           "ROTATED_PROBLEMS", "HARD_FUNCTIONS")

#: Relative success tolerance: reached when best <= f* + TOL_REL * max(1, |f*|).
TOL_REL = 1e-6

#: Full-mode budget in evaluations per parameter.
BUDGET_PER_DIM = 2000

#: (class name, short name, multimodal) of the suite's functions, Lennard-Jones apart.
_FUNCTIONS = (
    ("Rastrigin", "rastrigin", True),
    ("Ackley", "ackley", True),
    ("Griewank", "griewank", True),
    ("Schwefel", "schwefel", True),
    ("Levy", "levy", True),
    ("Michalewicz", "michalewicz", True),
    ("StyblinskiTang", "styblinski", True),
    ("Rosenbrock", "rosenbrock", False),
)

#: Atom count of the Lennard-Jones cluster standing in for each nominal dimension.
_LJ_ATOMS = {10: 4, 30: 10}

#: Problems of the expensive (wall-clock) mode: ones most contenders solve within the budget, so
#: that a time to target exists.
EXPENSIVE_PROBLEMS = ("ackley-10", "levy-10", "lj-4")


#: Functions of the rotated mode (their values grow outside the box, so the rotation cannot
#: bring a lower value in).
ROTATED_PROBLEMS = (("Rastrigin", "rastrigin-rot"), ("StyblinskiTang", "styblinski-rot"))

#: The hard mode's function groups: (name, short name, class); the Rastrigin group is the rotated
#: one of the rotated mode, one rotation per instance.
HARD_FUNCTIONS = (("SchaffersF7", "schaffers"), ("LunacekBiRastrigin", "lunacek"), ("Composition", "composition"),
                  ("Rastrigin", "rastrigin-rot"))

#: The hard mode runs to this absolute precision (its functions have f* = 0) ...
HARD_TOL = 1e-8

#: ... and counts a problem solved at this one (the reporting target of issue 14 and of BBOB's
#: "easy" targets).
SOLVED = 1e-2

#: Seed of the rotation: the same rotation for every run and contender (one problem instance).
ROTATION_SEED = 2024


class Rotated:
    """``f(x_min + Q (x - x_min))`` for a random orthogonal ``Q``: ``f`` with coupled coordinates.

    The minimum and its value are unchanged; ``bounds``, ``min_fx``, ``dims`` and ``delay`` are the
    wrapped function's.

    Args:
        function: A test function with a known ``min_x``.
        seed: Seed of the rotation.
    """

    def __init__(self, function: functions.BenchmarkFunction, seed: int = ROTATION_SEED):
        if function.min_x is None:
            raise ValueError(f"{function!r} has no known minimum to rotate about")
        self.function = function
        self.bounds = function.bounds
        self.min_fx = function.min_fx
        self.min_x = np.asarray(function.min_x, dtype=float)
        self.dims = function.dims
        q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((self.dims, self.dims)))
        self.rotation = q * np.sign(np.diag(r))  # uniformly distributed over the orthogonal group

    def __call__(self, x: Sequence[float]) -> float:
        return self.function(self.min_x + self.rotation @ (np.asarray(x, dtype=float) - self.min_x))

    def __repr__(self) -> str:
        return f"Rotated({self.function!r})"


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        name: Short unique name, e.g. ``rastrigin-10`` or ``lj-10`` (10 atoms).
        cls: Class name in :mod:`glompo_hpc.tasks.functions`.
        kwargs: Constructor arguments (``dims`` or ``atoms``).
        dims: Number of parameters.
        budget: Evaluations every contender may make.
        multimodal: False for the unimodal control (Rosenbrock).
        rotated: Compose with a fixed random rotation (:class:`Rotated`).
        instance: Seed of the random instance (rotation, optimum) of a hard-mode problem; 0 for the
            fixed functions of the other modes.
        tol_abs: Absolute success tolerance (the hard mode's); None: ``TOL_REL`` relative.
    """

    name: str
    cls: str
    kwargs: dict[str, Any] = field(hash=False)
    dims: int
    budget: int
    multimodal: bool = True
    rotated: bool = False
    instance: int = 0
    tol_abs: float | None = None

    @property
    def group(self) -> str:
        """The function and dimension, without the instance: ``lunacek-10``."""
        return self.name.rsplit("-i", 1)[0] if self.instance else self.name

    def build(self, delay: float = 0.0) -> Any:
        """A fresh instance of the test function, sleeping ``delay`` seconds per evaluation."""
        if self.cls in {c.__name__ for c in LANDSCAPES.values()}:
            landscape = next(c for c in LANDSCAPES.values() if c.__name__ == self.cls)
            return landscape(self.dims, self.instance or 1, delay)
        function = getattr(functions, self.cls)(delay=delay, **self.kwargs)
        if self.rotated:
            return Rotated(function, seed=ROTATION_SEED + self.instance)
        return function

    @property
    def f_star(self) -> float:
        return float(self.build().min_fx)

    @property
    def tol(self) -> float:
        return self.tol_abs if self.tol_abs is not None else TOL_REL * max(1.0, abs(self.f_star))

    @property
    def bounds(self) -> np.ndarray:
        return np.asarray(self.build().bounds, dtype=float)

    def with_budget(self, budget: int) -> "Problem":
        return Problem(self.name, self.cls, dict(self.kwargs), self.dims, int(budget), self.multimodal, self.rotated,
                       self.instance, self.tol_abs)


def _all(dims: Sequence[int], per_dim: int) -> list[Problem]:
    out = []
    for d in dims:
        for cls, short, multimodal in _FUNCTIONS:
            out.append(Problem(f"{short}-{d}", cls, {"dims": d}, d, per_dim * d, multimodal))
        atoms = _LJ_ATOMS[d]
        out.append(Problem(f"lj-{atoms}", "LennardJones", {"atoms": atoms}, 3 * atoms, per_dim * d, True))
    return out


def hard(dims: Sequence[int] = (10, 20), instances: int = 3, per_dim: int = BUDGET_PER_DIM) -> list[Problem]:
    """The hard mode's problems: every HARD_FUNCTIONS group in every dimension, ``instances`` each."""
    return [Problem(f"{short}-{d}-i{i}", cls, {"dims": d}, d, per_dim * d, True, cls == "Rastrigin", i, HARD_TOL)
            for d in dims for cls, short in HARD_FUNCTIONS for i in range(1, instances + 1)]


def suite(mode: str) -> list[Problem]:
    """The problems of a mode: ``full`` (10-D and 30-D), ``quick`` (10-D, a tenth of the budget),
    ``expensive`` (three 10-D problems most contenders solve, full budget; run them with a delay)
    or ``rotated`` (rotated Rastrigin and Styblinski-Tang in 10-D, full budget)."""
    if mode == "full":
        return _all((10, 30), BUDGET_PER_DIM)
    if mode == "quick":
        return _all((10,), BUDGET_PER_DIM // 10)
    if mode == "expensive":
        return [p for p in _all((10,), BUDGET_PER_DIM) if p.name in EXPENSIVE_PROBLEMS]
    if mode == "rotated":
        return [Problem(f"{short}-10", cls, {"dims": 10}, 10, BUDGET_PER_DIM * 10, True, True)
                for cls, short in ROTATED_PROBLEMS]
    if mode == "hard":
        return hard()
    if mode == "hard-quick":
        return hard((10,), 1, BUDGET_PER_DIM // 10)
    raise ValueError(f"unknown mode {mode!r}; choose full, quick, expensive, rotated, hard or hard-quick")


def select(problems: Sequence[Problem], patterns: str | None) -> list[Problem]:
    """The problems whose name matches one of the comma-separated glob ``patterns`` (all if None)."""
    if not patterns:
        return list(problems)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [p for p in problems if any(fnmatch.fnmatch(p.name, pat) for pat in pats)]
    if not chosen:
        raise ValueError(f"no problem matches {patterns!r}; available: {', '.join(p.name for p in problems)}")
    return chosen
