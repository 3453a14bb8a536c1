"""glompo_hpc: Globally Managed Parallel Optimization (GloMPO) on HPC clusters.

Every public class is importable from here::

    from glompo_hpc import GloMPOManager, CMAOptimizer, CycleSelector, BestUnmoving, MaxFuncCalls
"""

__version__ = "0.1.0"

from .backends import mpi_workers
from .checkpointing import CheckpointingControl
from .core.manager import GloMPOManager
from .core.optlog import OptimizerLog
from .core.result import MinimizeResult, Result
from .errors import CheckpointError, ConfigurationError, GloMPOError, JobFileError
from .exit_conditions import *  # noqa: F401,F403 (each family module defines __all__)
from .exit_conditions import __all__ as _exit_names
from .generators import *  # noqa: F401,F403
from .generators import __all__ as _generator_names
from .optimizers import *  # noqa: F401,F403
from .optimizers import __all__ as _optimizer_names
from .selectors import *  # noqa: F401,F403
from .selectors import __all__ as _selector_names
from .stoppers import *  # noqa: F401,F403
from .stoppers import __all__ as _stopper_names
from .tasks import *  # noqa: F401,F403
from .tasks import __all__ as _task_names

__all__ = ("__version__", "GloMPOManager", "mpi_workers", "CheckpointingControl", "OptimizerLog", "MinimizeResult", "Result",
           "GloMPOError", "ConfigurationError", "JobFileError", "CheckpointError",
           *_exit_names, *_generator_names, *_optimizer_names, *_selector_names, *_stopper_names, *_task_names)
