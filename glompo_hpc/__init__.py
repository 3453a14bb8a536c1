"""glompo_hpc: Globally Managed Parallel Optimization (GloMPO) on HPC clusters.

Every public class is importable from here::

    from glompo_hpc import GloMPOManager, CMAOptimizer, CycleSelector, BestUnmoving, MaxFuncCalls

Names are imported on first use (PEP 562): ``import glompo_hpc`` stays cheap, so a program such as
``python -m glompo_hpc`` under mpirun can set up its signal handling before numpy, scipy and cma
load (seconds per rank on a busy node, during which a scheduler's signal would otherwise kill it).
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import plugins as _plugins

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, ...]] = {
    ".core.manager": ("GloMPOManager",),
    ".backends": ("mpi_workers",),
    ".checkpointing": ("CheckpointingControl",),
    ".core.checkpoint_file": ("latest_checkpoint", "list_checkpoints"),
    ".protocol.optlog": ("OptimizerLog",),
    ".protocol.result": ("MinimizeResult", "Result"),
    ".errors": ("GloMPOError", "ConfigurationError", "JobFileError", "CheckpointError"),
    ".exit_conditions": ("BaseExitCondition", "AndExitCondition", "OrExitCondition", "MaxFuncCalls", "TargetCost",
                         "NOptConverged", "MaxOptsStarted", "MaxKills", "KillsAfterConvergence", "MaxSeconds",
                         "MaxTotalFunctionCalls", "TargetFunctionValue", "MaxOptimizersConverged",
                         "MaxOptimizersStarted", "MaxOptimizersStopped", "StopsAfterConvergence", "TimeLimit",
                         "TimeLimitThroughRestarts"),
    ".optimizer_logs": ("SplitOptimizerLogs",),
    ".generators": ("BaseGenerator", "RandomGenerator", "SinglePointGenerator", "IncumbentGenerator",
                    "ExploitExploreGenerator", "PerturbationGenerator", "BasinHoppingGenerator", "AnnealingGenerator"),
    ".optimizers": ("BaseOptimizer", "CMAOptimizer", "ScipyOptimizer", "ScipyOptimizeWrapper", "RandomOptimizer"),
    ".selectors": ("OptimizerOption", "BaseSelector", "CycleSelector", "RandomSelector", "ChainSelector",
                   "BaseSpawnController", "IterSpawnStop", "NOptimizersSpawnStop"),
    ".stoppers": ("BaseStopper", "AndStopper", "OrStopper", "BestUnmoving", "EvaluationsUnmoving", "LastPointsInvalid",
                  "MinFuncCalls", "ParameterDistance", "StepSize", "TimeAnnealing", "ValueAnnealing", "TypeHunter",
                  "BasinHeld", "NotBest", "PolishDue", "BestFunctionValueUnmoving", "CurrentFunctionValueUnmoving",
                  "MaxSequentialInvalidPoints",
                  "TypeStopper"),
    ".tasks": ("BaseFunction", "ALL_FUNCTIONS", "Rastrigin", "Ackley", "Griewank", "Levy", "Michalewicz", "Schwefel",
               "StyblinskiTang", "Rosenbrock", "Shekel", "LennardJones"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ("__version__", *_MODULE_OF)


def _builtin_providers() -> None:
    """The backends and output files the manager finds in ``core.plugins``; imported on its first
    look-up (each module registers itself), so ``import glompo_hpc`` stays cheap."""
    from .backends import kinds  # noqa: F401
    from .outputs import run_outputs  # noqa: F401


_plugins.provide_builtins(_builtin_providers)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'glompo_hpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
