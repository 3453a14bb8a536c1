"""Moved to :mod:`glompo_hpc.protocol.result`; this old path is the same module.

Kept because checkpoints written before the move name classes by this path and users' code
imports it (docs/architecture.md, "Old module paths").
"""

import sys

from ..protocol import result

sys.modules[__name__] = result
