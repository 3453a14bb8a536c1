"""The ``ngopt`` contender: Nevergrad's NGOpt with ``num_workers = slots``, asked and told in batches.

Nevergrad is an optional extra of the bench (``pip install -e .[bench]``), never of glompo_hpc.

**numpy 2.** nevergrad 1.0.12's metamodel (``nevergrad.optimization.metamodel.learn_on_k_best``,
which NGOpt's chosen optimizers call every few hundred evaluations to propose the optimum of a
quadratic fitted to the best points) evaluates its model with ``float(model.predict(X))``, the
``float()`` of a one-element array, which numpy 2 rejects. :func:`patch_metamodel` replaces that
function, in the modules that imported it, by a wrapper that runs it with numpy's scalar
conversion made to accept such arrays again: inside the call, ``float`` of a size-1 array is the
array's one element (numpy 1's behaviour). The proposal is then made as nevergrad intends; when
the metamodel fails any other way, nevergrad's own ``MetaModelFailure`` fallback applies. Nothing
outside the bench is touched.
"""

from __future__ import annotations

import builtins
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

__all__ = ("patch_metamodel", "run")

_PATCH_LOCK = threading.Lock()
_patched = False


def _float_of_size_one(value: Any = 0.0) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    return _BUILTIN_FLOAT(value)


_BUILTIN_FLOAT = builtins.float


def patch_metamodel() -> None:
    """Make nevergrad's ``learn_on_k_best`` convert one-element arrays as under numpy 1 (idempotent)."""
    global _patched
    with _PATCH_LOCK:
        if _patched:
            return
        from nevergrad.optimization import differentialevolution, metamodel, optimizerlib

        original = metamodel.learn_on_k_best

        @functools.wraps(original)
        def learn_on_k_best(*args: Any, **kwargs: Any) -> Any:
            # The module's global name ``float`` shadows the builtin for this module only.
            metamodel.float = _float_of_size_one
            try:
                return original(*args, **kwargs)
            finally:
                del metamodel.float

        metamodel.learn_on_k_best = learn_on_k_best
        optimizerlib.learn_on_k_best = learn_on_k_best
        assert differentialevolution.metamodel is metamodel  # it calls metamodel.learn_on_k_best
        _patched = True


def run(task: Callable, bounds: np.ndarray, budget: int, slots: int, seed: int, spent: type[Exception],
        parallel: bool) -> None:
    """Minimize ``task`` until it raises ``spent`` (or NGOpt's own budget ends).

    Args:
        task: The recorded task; raises ``spent`` once the budget is used or the target reached.
        bounds: (min, max) rows.
        budget: NGOpt's budget (the run's).
        slots: ``num_workers``, and the size of every ask/tell batch.
        seed: Seed of the parametrization's random state.
        spent: The exception ending the run.
        parallel: Evaluate each batch over ``slots`` threads (for a task with a delay).
    """
    import nevergrad as ng

    patch_metamodel()
    param = ng.p.Array(init=bounds.mean(axis=1)).set_bounds(bounds[:, 0], bounds[:, 1])
    param.random_state = np.random.RandomState(seed % 2**32)
    optimizer = ng.optimizers.NGOpt(parametrization=param, budget=budget, num_workers=slots)
    pool = ThreadPoolExecutor(slots) if parallel and slots > 1 else None
    try:
        asked = 0
        while asked < budget:
            batch = [optimizer.ask() for _ in range(min(slots, budget - asked))]
            asked += len(batch)
            points = [c.value for c in batch]
            values = list(pool.map(task, points)) if pool else [task(x) for x in points]
            for candidate, value in zip(batch, values):
                optimizer.tell(candidate, value)
    except spent:
        pass
    finally:
        if pool is not None:
            pool.shutdown()
