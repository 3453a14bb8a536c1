"""Moved to :mod:`glompo_hpc.core.backend` (the interface the manager drives, defined where it is
used); this old path is the same module, kept for users' backends and code that import it
(docs/architecture.md, "Old module paths").
"""

import sys

from ..core import backend

sys.modules[__name__] = backend
