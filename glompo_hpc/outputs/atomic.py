"""Atomic writes live in ``glompo_hpc.protocol.atomic`` (checkpoints and the run identity use them
below the outputs layer); this name stays for code that imports it from here."""

from ..protocol.atomic import *  # noqa: F401,F403
from ..protocol.atomic import __all__  # noqa: F401
