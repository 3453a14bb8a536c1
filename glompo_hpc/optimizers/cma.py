"""CMAOptimizer: the covariance matrix adaptation evolution strategy of the ``cma`` package.

Each generation is one ``ask``/``tell`` cycle. The whole population goes to ``function.batch`` so
the optimizer's ``workers`` evaluate it in parallel, and ``check_messages()`` runs after every
``tell``, where the state of the strategy is complete: Pause and SaveState act there.

Units and defaults:
    ``sigma0`` is the initial step size in parameter units (absolute, like GloMPO's), not a fraction
    of the box. About a quarter of the box width is a good start; for parameters on different
    scales pass cma's ``CMA_stds`` (per-dimension multipliers of ``sigma0``).

Termination:
    The manager decides when a run is long enough, so cma's default iteration budget (``maxiter``,
    about ``100 + 150 (N+3)^2 / sqrt(popsize)``) is switched off; cma's convergence criteria
    (``tolfun``, ``tolfunhist``, ``tolx``, ``tolstagnation``, ``tolflatfitness``,
    ``tolconditioncov``, ``tolupsigma``, ``tolfacupx``, ...) all stay, because a converged
    optimizer is information the manager counts. Any limit given explicitly in ``cma_options``
    (``maxiter`` included) is used as given. ``success`` is True when cma ended by its own criteria.

Non-finite values:
    cma ranks a population. A NaN or +/-inf value is handed to cma (never to the log, which keeps
    the true value) as a number strictly worse than the worst finite value of that population (or
    of the run, when the population has none). Among themselves such points rank by their distance
    from the best valid point found so far, nearer being better, so even a wholly invalid
    population points back to the valid region; before any valid value was seen, farther from the
    mean ranks better, so the search widens until it finds one. Either way the values differ: a
    flat population would trip cma's ``tolfun`` and fake a convergence.

Injection:
    Off by default: the manager's incumbent is only stored. With ``force_injects=True`` each new
    incumbent is put as it is into the next population (``es.inject(force=True)``; the point is
    rebuilt as ``mean + sigma * ((x - mean) / sigma)``, so it is evaluated up to rounding, and
    cma's bound transformation moves points lying in its transition zone next to a bound). With
    ``force_injects=False`` and an ``injection_interval`` it is only a direction from the mean whose
    length cma may shorten: a nudge. ``injection_interval`` is the least number of generations
    between two injections.

Checkpoints:
    The whole ``CMAEvolutionStrategy`` is pickled with the optimizer, including the private random
    generator it samples from, so a loaded optimizer continues the same distribution (mean, step
    size, covariance, generation count) and even draws the same next population as the
    uninterrupted run would have.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import cma
import numpy as np
from cma.restricted_gaussian_sampler import GaussVDSampler, GaussVkDSampler

from ..compat import Place, old_keywords
from ..errors import ConfigurationError
from .base import BaseOptimizer, MinimizeResult

__all__ = ("CMAOptimizer",)

#: sampler name -> the cma sampler class that implements it (None: cma's full covariance matrix)
SAMPLERS = {"full": None, "vd": GaussVDSampler, "vkd": GaussVkDSampler}


class _Randn:
    """cma's ``randn`` option backed by a private generator.

    cma samples from ``numpy.random`` by default, a global state shared by every optimizer thread
    and lost on checkpoint. This object travels inside the pickled strategy instead.
    """

    def __init__(self, seed: int | None):
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CMAOptimizer(BaseOptimizer):
    """CMA-ES child optimizer.

    Args:
        sigma0: Initial step size, in parameter units (see the module docstring).
        sampler: 'full' (full covariance matrix), 'vd' (VD-CMA, linear cost in the dimension) or
            'vkd' (VkD-CMA); the restricted samplers suit high dimensions (cma advises them from 10
            parameters on) and want a population of 4 or more.
        verbose: cma's console display: False for none, True for every generation, an int ``n``
            for every ``n``-th generation (cma's ``verb_disp``).
        keep_files: Write cma's data files into the working directory, named
            ``cma_opt<opt_id>_*``; False writes none.
        force_injects: True puts the manager's incumbent exactly into the next population; False
            only nudges the mean towards it. Injection is on when this is True or
            ``injection_interval`` is set.
        injection_interval: Least number of generations between two injections (0 when None and
            ``force_injects`` is True).
        workers: Parallel evaluations; when > 1 it is also the default population size.
        backend: 'threads' or 'processes' for the workers.
        is_log_detailed: Evaluate through ``task.detailed_call``.
        **cma_options: Any option of ``cma.CMAOptions()`` (``popsize``, ``seed``, ``tolfun``, ...).
            ``bounds`` is not accepted here: the bounds are the manager's.
    """


    @old_keywords(Place.CMA, "CMAOptimizer()")  # GloMPO 3.1's injection_frequency
    def __init__(self, sigma0: float = 0.5, sampler: str = "full", verbose: bool | int = False,
                 keep_files: bool = False, force_injects: bool | None = None, injection_interval: int | None = None,
                 workers: int = 1, backend: str = "threads", is_log_detailed: bool = False, **cma_options: Any):
        if not isinstance(sigma0, (int, float, np.number)) or not math.isfinite(sigma0) or sigma0 <= 0:
            raise ConfigurationError(f"sigma0 must be a positive finite number, got {sigma0!r}")
        if sampler not in SAMPLERS:
            raise ConfigurationError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
        if injection_interval is not None and (not isinstance(injection_interval, (int, np.integer))
                                               or isinstance(injection_interval, bool) or injection_interval < 0):
            raise ConfigurationError(f"injection_interval must be None or an integer >= 0, got {injection_interval!r}")
        _check_cma_options(cma_options)
        super().__init__(workers, backend, is_log_detailed, sigma0=sigma0, sampler=sampler, verbose=verbose,
                         keep_files=keep_files, force_injects=force_injects, injection_interval=injection_interval,
                         **cma_options)
        self.sigma0 = float(sigma0)
        self.sampler = sampler
        self.verbose = verbose
        self.keep_files = bool(keep_files)
        self.force_injects = force_injects
        self.injection_interval = injection_interval
        self.cma_options = dict(cma_options)
        self._explicit_seed = self.cma_options.get("seed") is not None
        if not self._explicit_seed:
            # built outside a manager; a manager replaces it with a seed of its own (reseed)
            self.cma_options["seed"] = int(np.random.randint(0, 2 ** 31 - 1))
        self.n_nonfinite = 0
        self._es: cma.CMAEvolutionStrategy | None = None
        self._best_x: np.ndarray | None = None
        self._best_fx = math.inf
        self._worst_fx = -math.inf
        self._inject_pending = False
        self._last_injection: int | None = None

    @property
    def es(self) -> cma.CMAEvolutionStrategy | None:
        """The strategy of the current (or last) run; None before ``minimize``."""
        return self._es

    # ------------------------------------------------------------ the algorithm

    def minimize(self, function: Callable[[Sequence[float]], float], x0: Sequence[float],
                 bounds: Sequence[tuple[float, float]], callbacks: Callable | None = None,
                 **kwargs: Any) -> MinimizeResult:
        """Run CMA-ES until cma converges, ``callbacks(self)`` returns True, or the manager stops it.

        A loaded optimizer (``is_restart``) continues its saved strategy and ignores ``x0``.
        ``callbacks``, if given, is called with the optimizer after every generation.
        """
        if self._es is None or not self.is_restart:
            self._es = self._new_strategy(x0, bounds)
        es = self._es
        ended_by_callback = False
        while not self.stop_requested and not es.stop():
            self._inject_if_due(es)
            population = es.ask()
            fx = np.asarray(function.batch(population), dtype=float)
            self._track_best(population, fx)
            es.tell(population, self._rankable(population, fx, es).tolist())
            es.logger.add()  # writes only when keep_files set cma's verb_log
            es.disp()
            if callbacks is not None and callbacks(self):
                ended_by_callback = True
                break
            self.check_messages()
        cma_stop = {k: str(v) for k, v in es.stop().items()}
        stats = {"evaluations": int(es.countevals), "iterations": int(es.countiter), "sigma": float(es.sigma),
                 "cma_stop": cma_stop, "nonfinite": self.n_nonfinite}
        success = bool(cma_stop) and not self.stop_requested and not ended_by_callback
        x = None if self._best_x is None else self._best_x.copy()
        return MinimizeResult(success=success, x=x, fx=self._best_fx, stats=stats)

    def reseed(self, seed: int) -> None:
        if not self._explicit_seed and self._es is None:
            self.cma_options["seed"] = int(seed)

    def inject(self, x: np.ndarray, fx: float) -> None:
        """Store the incumbent; it enters the next population if injection is on and due."""
        super().inject(x, fx)
        self._inject_pending = True

    # ------------------------------------------------------------ helpers

    def _new_strategy(self, x0: Sequence[float], bounds: Sequence[tuple[float, float]]) -> cma.CMAEvolutionStrategy:
        bounds = np.asarray(bounds, dtype=float).reshape(-1, 2)
        user = dict(self.cma_options)
        randn = _Randn(user.pop("seed", None))
        opts: dict[str, Any] = {
            "bounds": [bounds[:, 0].tolist(), bounds[:, 1].tolist()],
            "maxiter": math.inf,  # the manager owns the budget; see the module docstring
            "verbose": 1 if self.verbose else -9,
            "verb_disp": int(self.verbose),
            "verb_log": 1 if self.keep_files else 0,
            "verb_filenameprefix": f"cma_opt{'' if self.opt_id is None else self.opt_id}_",
            "randn": randn,
            "seed": math.nan,  # nan: cma must leave the global numpy generator alone
        }
        if self.workers > 1:
            opts["popsize"] = self.workers
        sampler = SAMPLERS[self.sampler]
        if sampler is not None:
            opts = sampler.extend_cma_options(opts)
            opts["CMA_sampler_options"] = {"randn": randn}
        opts.update(user)
        x0 = np.clip(np.asarray(x0, dtype=float).reshape(-1), bounds[:, 0], bounds[:, 1])
        return cma.CMAEvolutionStrategy(x0, self.sigma0, opts)

    def _inject_if_due(self, es: cma.CMAEvolutionStrategy) -> None:
        if not self._inject_pending or self.incumbent is None:
            return
        if self.injection_interval is None and self.force_injects is not True:
            self._inject_pending = False  # injection is off: the incumbent is only kept
            return
        interval = self.injection_interval or 0
        if self._last_injection is not None and es.countiter - self._last_injection < interval:
            return  # stays pending; a newer incumbent replaces it meanwhile
        es.inject([self.incumbent[0]], force=bool(self.force_injects))
        self._last_injection = es.countiter
        self._inject_pending = False
        self.logger.debug("Injected the incumbent (fx=%g) at generation %d", self.incumbent[1], es.countiter)

    def _track_best(self, population: Sequence[np.ndarray], fx: np.ndarray) -> None:
        finite = np.isfinite(fx)
        if not finite.any():
            return
        i = int(np.argmin(np.where(finite, fx, np.inf)))
        if fx[i] < self._best_fx:
            self._best_fx, self._best_x = float(fx[i]), np.array(population[i], dtype=float)
        self._worst_fx = max(self._worst_fx, float(fx[finite].max()))

    def _rankable(self, population: Sequence[np.ndarray], fx: np.ndarray,
                  es: cma.CMAEvolutionStrategy) -> np.ndarray:
        """Values for cma's ranking: non-finite ones become worse than every finite one."""
        bad = ~np.isfinite(fx)
        if not bad.any():
            return fx
        self.n_nonfinite += int(bad.sum())
        good = fx[~bad]
        if good.size:
            worst, best = float(good.max()), float(good.min())
        elif math.isfinite(self._best_fx):
            worst, best = self._worst_fx, self._best_fx
        else:
            worst = best = 0.0
        scale = max(worst - best, abs(worst), 1.0)
        xs = np.asarray(population, dtype=float)[bad]
        if self._best_x is not None:  # nearer the best valid point ranks better
            distance = np.linalg.norm(xs - self._best_x, axis=1) / max(float(es.sigma), 1e-300)
        else:  # nothing valid seen yet: farther from the mean ranks better, so the search widens
            distance = 1.0 / (1.0 + np.linalg.norm(xs - es.mean, axis=1) / max(float(es.sigma), 1e-300))
        out = fx.copy()
        out[bad] = worst + scale * (1.0 + distance)
        return out


def _check_cma_options(options: dict[str, Any]) -> None:
    """Fail early, naming the key, on options cma does not know or that belong to the manager."""
    if "bounds" in options:
        raise ConfigurationError("CMAOptimizer takes its bounds from the manager; remove the 'bounds' option")
    known = cma.CMAOptions()
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        import difflib
        hints = {k: difflib.get_close_matches(k, list(known), n=3) for k in unknown}
        raise ConfigurationError(f"unknown cma option(s) {unknown}; close matches: {hints} "
                                 "(see cma.CMAOptions() for the full list)")
