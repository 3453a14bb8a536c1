"""The built-in backends, registered with the manager's registry (``core/plugins.py``) on import.

The manager never imports this package: the package's ``__init__`` names this module as a built-in
provider, so every ``backend`` setting resolves through ``core.plugins.backend_kind``.
"""

from __future__ import annotations

from functools import partial

from ..core.plugins import BackendKind, register_backend, register_backend_detection
from . import BACKENDS, auto_backend, check_backend, default_max_jobs, make_backend

for _name in BACKENDS:
    register_backend(BackendKind(_name, make=partial(make_backend, _name), check=partial(check_backend, _name),
                                 default_max_jobs=partial(default_max_jobs, _name)))
register_backend_detection(auto_backend)
