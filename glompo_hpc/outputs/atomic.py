"""Atomic writes live in ``glompo_hpc.core.atomic`` (checkpoints and the run identity use them
below the outputs layer); this name stays for code that imports it from here."""

from ..core.atomic import *  # noqa: F401,F403
from ..core.atomic import __all__  # noqa: F401
