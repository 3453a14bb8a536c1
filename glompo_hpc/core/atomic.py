"""Moved to :mod:`glompo_hpc.protocol.atomic`; this old path is the same module.

Kept because checkpoints written before the move name classes by this path and users' code
imports it (docs/architecture.md, "Old module paths").
"""

import sys

from ..protocol import atomic

sys.modules[__name__] = atomic
