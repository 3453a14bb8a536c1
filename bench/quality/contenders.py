"""The contenders: optimizers a user could pick, each run on one problem, budget, seed and slot count.

Every contender minimizes a :class:`Recorder`, which wraps the test function, counts the
evaluations in the order they happen (across threads), timestamps them and stops recording at
the budget or at the first value within the success tolerance. The scipy and ``cma`` contenders
are cut there by a :class:`BudgetSpent` exception; the two glompo_hpc contenders end through
their exit conditions (``MaxFuncCalls | TargetCost``), and any evaluation a child makes past the
cut (the manager sees results one generation at a time) is not recorded: every contender is
judged on exactly its first ``budget`` evaluations.

Contenders (``CONTENDERS``):

* ``glompo``: glompo_hpc with the recommended configuration of :mod:`glompo_hpc.defaults`.
* ``unmanaged``: the same CMA-ES children (the same selector: populations, slots per child and
  population schedule) through the same glompo_hpc machinery, without stoppers or an
  incumbent-aware generator: each child runs until cma's own convergence criteria end it, and the
  next starts from a uniformly random point. That is independent restarts filling the slots, what
  a user without the manager would do, and the difference to ``glompo`` is the management alone.
* ``ipop`` / ``bipop``: one ``cma.fmin2`` with IPOP (population doubling) or BIPOP restarts
  (``restarts=9``), each from a random point, ``sigma0`` = 0.2 x box width (Hansen's BBOB setting).
* ``de``: ``scipy.optimize.differential_evolution`` (defaults; ``maxiter`` from the budget).
* ``da``: ``scipy.optimize.dual_annealing`` (defaults; ``maxfun`` = budget).
* ``cycle`` / ``cycle-unmanaged``: a fixed-population configuration as GloMPO's users write it,
  ``CycleSelector((CMAOptimizer, {"sigma0": 0.2 x width}))`` (one slot per child, so ``slots``
  children side by side), with the default stoppers and generator, or without stoppers and with
  random starts: the manager's decisions alone make the difference.
* ``ngopt``: Nevergrad's ``NGOpt`` with ``num_workers`` = slots, asked and told in batches of
  ``slots`` points (:mod:`.ngopt`, which also says how nevergrad 1.0.12 is kept working under
  numpy 2).

Slots: the glompo_hpc contenders fill ``slots`` with child optimizers (threads backend). In
expensive mode (a delay per evaluation) ``ipop``/``bipop`` evaluate each population over
``slots`` threads (``parallel_objective``) and ``de`` its generations (``workers`` with deferred
updating); ``da`` is sequential by design and uses one slot. Without a delay every scipy/cma
contender runs sequentially: evaluation counts, not time, are compared.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from glompo_hpc import CycleSelector, GloMPOManager, MaxFuncCalls, RandomGenerator, TargetCost
from glompo_hpc import defaults
from glompo_hpc.optimizers.cma import CMAOptimizer
from glompo_hpc.selectors import BaseSelector, OptimizerOption

__all__ = ("BudgetSpent", "Recorder", "Trial", "SeededSelector", "CONTENDERS", "SEQUENTIAL", "run_contender")


class BudgetSpent(Exception):
    """Raised by a Recorder in ``raising`` mode once the budget is used or the target reached."""


class Recorder:
    """Thread-safe counting wrapper of the task.

    Records the first ``budget`` finite-or-not values in evaluation order, with their times since
    construction, and stops recording at the first value ``<= target``. After that, ``raising``
    recorders raise :class:`BudgetSpent`; the others keep answering through ``fast`` (the same
    function without its delay), so that children still running do not hold up the end.

    Args:
        function: The task.
        fast: The same task without delay (may be ``function`` itself).
        budget: Evaluations recorded at most.
        target: Success threshold (``f* + tol``).
        raising: Raise BudgetSpent once done.
    """

    def __init__(self, function: Callable, fast: Callable, budget: int, target: float, raising: bool):
        self.function = function
        self.fast = fast
        self.budget = int(budget)
        self.target = float(target)
        self.raising = raising
        self.fx = np.full(self.budget, np.nan)
        self.t = np.full(self.budget, np.nan)
        self.n = 0
        self.calls = 0
        self.hit: int | None = None  # 1-based evaluation count at which the target was reached
        self.done = False
        self._lock = threading.Lock()
        self.t0 = time.perf_counter()

    def __call__(self, x: Any) -> float:
        if self.done:
            if self.raising:
                raise BudgetSpent
            return float(self.fast(x))
        fx = float(self.function(x))
        now = time.perf_counter() - self.t0
        with self._lock:
            self.calls += 1
            if not self.done:
                self.fx[self.n] = fx
                self.t[self.n] = now
                self.n += 1
                if fx <= self.target:
                    self.hit = self.n
                    self.done = True
                elif self.n >= self.budget:
                    self.done = True
        return fx

    def best_so_far(self) -> np.ndarray:
        """Running minimum of the recorded values (non-finite ones count as +inf)."""
        clean = np.where(np.isfinite(self.fx[:self.n]), self.fx[:self.n], np.inf)
        return np.minimum.accumulate(clean) if self.n else clean

    @property
    def time_to_target(self) -> float:
        return float(self.t[self.hit - 1]) if self.hit else math.nan


@dataclass
class Trial:
    """One run's inputs: the recorded task, its box, budget, success target, seed and slots."""

    task: Recorder
    bounds: np.ndarray
    budget: int
    f_star: float
    tol: float
    seed: int
    slots: int
    parallel: bool = False  # spread the sequential contenders' evaluations over the slots
    glompo_options: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------ glompo_hpc contenders

class SeededSelector(BaseSelector):
    """Wraps a selector so that every CMA-ES child it starts gets a seed of its own.

    The seeds are drawn from ``numpy.random.SeedSequence(seed)``, so a run repeats its children
    and no two children share one. Other optimizer classes are started unchanged.

    Args:
        inner: The selector deciding what to start.
        seed: Root seed of the children's seeds.
    """

    def __init__(self, inner: BaseSelector, seed: int):
        super().__init__(*inner.options)
        self.inner = inner
        self._seeds = np.random.SeedSequence(seed)

    def select_optimizer(self, manager: Any, slots_available: int) -> Any:
        option = self.inner.select_optimizer(manager, slots_available)
        if not isinstance(option, OptimizerOption) or not issubclass(option.opt_class, CMAOptimizer):
            return option
        child_seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        return OptimizerOption(option.opt_class, {**option.init_kwargs, "seed": child_seed})

    def _choose(self, manager: Any) -> Any:
        return self.inner._choose(manager)

    def __str__(self) -> str:
        return f"SeededSelector({self.inner})"


def _run_manager(trial: Trial, selector: BaseSelector, **settings: Any) -> None:
    exits = MaxFuncCalls(trial.budget) | TargetCost(trial.f_star, atol=trial.tol)
    settings.setdefault("stoppers", False)  # no stoppers unless the contender has some (None: setup()'s default)
    with tempfile.TemporaryDirectory(prefix="glompo_quality_") as work:
        manager = GloMPOManager.new_manager(
            trial.task, trial.bounds, SeededSelector(selector, trial.seed), working_dir=work,
            overwrite_existing=True, max_jobs=trial.slots, backend="threads", exit_conditions=exits,
            summary_files=0, split_printstreams=False, **settings)
        manager.start_manager()


def run_glompo(trial: Trial) -> None:
    """glompo_hpc with its recommended configuration (``trial.glompo_options`` override it)."""
    config = defaults.recommended_configuration(trial.bounds, trial.slots, trial.budget, seed=trial.seed,
                                                **trial.glompo_options)
    del config["exit_conditions"]  # the suite's own: budget | target
    selector = config.pop("opt_selector")
    _run_manager(trial, selector, **config)


def run_unmanaged(trial: Trial) -> None:
    """The recommended CMA-ES children, restarted from random points, no stoppers or sharing."""
    config = defaults.recommended_configuration(trial.bounds, trial.slots, trial.budget, seed=trial.seed,
                                                **trial.glompo_options)
    _run_manager(trial, config["opt_selector"], x0_generator=RandomGenerator(trial.bounds, seed=trial.seed))


def cycle_selector(trial: Trial) -> BaseSelector:
    """CMA-ES children of cma's default population, one slot each, sigma0 = 0.2 x the box width:
    a CycleSelector as GloMPO's users write it (issue 14's ``sigma0 2`` on a width-10 box)."""
    width = float((trial.bounds[:, 1] - trial.bounds[:, 0]).max())
    return CycleSelector((CMAOptimizer, {"sigma0": defaults.SIGMA_FRACTION * width}))


def run_cycle(trial: Trial) -> None:
    """The fixed-population CycleSelector with the default stoppers and generator (setup()'s, i.e.
    those of the recommended configuration; ``trial.glompo_options`` picks their kinds)."""
    config = defaults.recommended_configuration(trial.bounds, trial.slots, trial.budget, seed=trial.seed,
                                                **trial.glompo_options)
    _run_manager(trial, cycle_selector(trial), stoppers=config["stoppers"], x0_generator=config["x0_generator"],
                 stopcheck_interval=config["stopcheck_interval"])


def run_cycle_unmanaged(trial: Trial) -> None:
    """The same children as ``cycle``, restarted from random points, no stoppers."""
    _run_manager(trial, cycle_selector(trial), x0_generator=RandomGenerator(trial.bounds, seed=trial.seed))


# ------------------------------------------------------------ cma and scipy contenders

def _pool_map(trial: Trial) -> tuple[ThreadPoolExecutor | None, Callable | None]:
    if not trial.parallel or trial.slots < 2:
        return None, None
    pool = ThreadPoolExecutor(trial.slots)
    return pool, lambda xs: list(pool.map(trial.task, xs))


def _run_cma(trial: Trial, bipop: bool) -> None:
    import cma

    b = trial.bounds
    width = b[:, 1] - b[:, 0]
    rng = np.random.default_rng(trial.seed)
    np.random.seed(trial.seed % 2**32)  # BIPOP draws its small-run parameters from numpy's global generator
    options = {"bounds": [b[:, 0].tolist(), b[:, 1].tolist()], "seed": trial.seed + 1, "verbose": -9,
               "CMA_stds": (width / width.max()).tolist(), "maxfevals": trial.budget}
    pool, batch = _pool_map(trial)
    try:
        cma.fmin2(None if batch else trial.task, lambda: rng.uniform(b[:, 0], b[:, 1]), 0.2 * float(width.max()),
                  options, restarts=BIPOP_RESTARTS if bipop else 100, bipop=bipop, parallel_objective=batch)
    except BudgetSpent:
        pass
    finally:
        if pool is not None:
            pool.shutdown()


#: BIPOP's restarts (cma counts the large-population ones): Hansen's BBOB setting of 9.
BIPOP_RESTARTS = 9


def run_ipop(trial: Trial) -> None:
    """cma.fmin2 with IPOP restarts (population doubled at each restart)."""
    _run_cma(trial, bipop=False)


def run_bipop(trial: Trial) -> None:
    """cma.fmin2 with BIPOP restarts (large and small population regimes interleaved)."""
    _run_cma(trial, bipop=True)


def run_de(trial: Trial) -> None:
    """scipy's differential_evolution with default settings; maxiter spans the budget."""
    from scipy.optimize import differential_evolution

    popsize = 15 * len(trial.bounds)  # scipy's default population: popsize=15 per parameter
    pool, _ = _pool_map(trial)
    extra = {"workers": lambda f, xs: list(pool.map(f, xs)), "updating": "deferred"} if pool else {}
    try:
        differential_evolution(trial.task, trial.bounds, seed=trial.seed, maxiter=trial.budget // popsize + 1,
                               **extra)
    except BudgetSpent:
        pass
    finally:
        if pool is not None:
            pool.shutdown()


def run_da(trial: Trial) -> None:
    """scipy's dual_annealing with default settings; maxfun is the budget (always sequential)."""
    from scipy.optimize import dual_annealing

    try:
        dual_annealing(trial.task, trial.bounds, seed=trial.seed, maxfun=trial.budget)
    except BudgetSpent:
        pass


def run_ngopt(trial: Trial) -> None:
    """Nevergrad's NGOpt with ``num_workers = slots``, asked and told in batches of ``slots`` points
    (evaluated over ``slots`` threads when the task has a delay)."""
    from . import ngopt

    ngopt.run(trial.task, trial.bounds, trial.budget, trial.slots, trial.seed, BudgetSpent, trial.parallel)


#: name -> (run function, raises at the cut)
CONTENDERS: dict[str, tuple[Callable[[Trial], None], bool]] = {
    "glompo": (run_glompo, False),
    "unmanaged": (run_unmanaged, False),
    "ipop": (run_ipop, True),
    "bipop": (run_bipop, True),
    "de": (run_de, True),
    "da": (run_da, True),
    "ngopt": (run_ngopt, True),
    "cycle": (run_cycle, False),
    "cycle-unmanaged": (run_cycle_unmanaged, False),
}


#: Contenders that evaluate one point at a time whatever the slots.
SEQUENTIAL = frozenset({"da"})


def run_contender(name: str, function: Callable, fast: Callable, bounds: np.ndarray, budget: int, f_star: float,
                  tol: float, seed: int, slots: int, parallel: bool = False,
                  glompo_options: dict[str, Any] | None = None) -> tuple[Recorder, float]:
    """Run one contender; returns its Recorder and the run's whole wall time (s)."""
    run, raising = CONTENDERS[name]
    recorder = Recorder(function, fast, budget, f_star + tol, raising)
    trial = Trial(recorder, np.asarray(bounds, dtype=float), budget, f_star, tol, seed, slots, parallel,
                  dict(glompo_options or {}))
    run(trial)
    return recorder, time.perf_counter() - recorder.t0
