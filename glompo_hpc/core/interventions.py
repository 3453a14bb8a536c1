"""User interventions: empty files dropped in the working directory while a run goes.

``STOP_<id>`` stops that optimizer; ``EXIT`` ends the run cleanly with its outputs; ``CHKPT`` takes a
checkpoint now (default settings if none were configured). Each file is removed once read; what it
asks for is returned as actions for the session to apply. The directory is looked at no more than
once a second: on cluster file systems a directory listing is not free.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Collection

from .actions import Action, EndRun, StopOptimizer, TakeCheckpoint
from ..protocol.paths import RunPaths
from .state import EndKind

__all__ = ("InterventionWatcher",)

logger = logging.getLogger("glompo_hpc.manager")
_STOP = re.compile(r"STOP_(\d+)$")
INTERVAL = 1.0


class InterventionWatcher:
    def __init__(self, paths: RunPaths):
        self.paths = paths
        self._last = 0.0

    def check(self, running: Collection[int]) -> list[Action]:
        """The actions the intervention files ask for; ``running``: optimizers that can be stopped."""
        now = time.monotonic()
        if now - self._last < INTERVAL:
            return []
        self._last = now
        try:
            names = [p.name for p in self.paths.working_dir.iterdir() if p.is_file()]
        except OSError:
            return []
        actions: list[Action] = []
        for name in names:
            if name == "CHKPT":
                self._consume(name)
                logger.info("Intervention file CHKPT: taking a checkpoint")
                actions.append(TakeCheckpoint())
            elif name == "EXIT":
                self._consume(name)
                actions.append(EndRun(EndKind.INTERVENTION, "EXIT intervention file"))
            elif (match := _STOP.match(name)) is not None:
                self._consume(name)
                opt_id = int(match.group(1))
                if opt_id in running:
                    actions.append(StopOptimizer(opt_id, f"{name} intervention file"))
                else:
                    logger.warning("Intervention file %s: optimizer %d is not running", name, opt_id)
        return actions

    def _consume(self, name: str) -> None:
        (self.paths.working_dir / name).unlink(missing_ok=True)
