"""User interventions: empty files dropped in the working directory while a run goes.

``STOP_<id>`` stops that optimizer; ``EXIT`` ends the run cleanly with its outputs; ``CHKPT`` takes a
checkpoint now (default settings if none were configured). Each file is removed once handled.
The directory is looked at no more than once a second: on cluster file systems a directory
listing is not free.
"""

from __future__ import annotations

import logging
import re
import time

from .paths import RunPaths

__all__ = ("InterventionWatcher",)

logger = logging.getLogger("glompo_hpc.manager")
_STOP = re.compile(r"STOP_(\d+)$")
INTERVAL = 1.0


class InterventionWatcher:
    def __init__(self, paths: RunPaths):
        self.paths = paths
        self._last = 0.0

    def check(self, session) -> None:
        now = time.monotonic()
        if now - self._last < INTERVAL:
            return
        self._last = now
        try:
            names = [p.name for p in self.paths.working_dir.iterdir() if p.is_file()]
        except OSError:
            return
        for name in names:
            if name == "CHKPT":
                self._consume(name)
                logger.info("Intervention file CHKPT: taking a checkpoint")
                session.take_checkpoint()
            elif name == "EXIT":
                self._consume(name)
                session.end_run("EXIT intervention file")
            elif (match := _STOP.match(name)) is not None:
                self._consume(name)
                opt_id = int(match.group(1))
                child = session.children.get(opt_id)
                if child is None or child.stop_sent is not None:
                    logger.warning("Intervention file %s: optimizer %d is not running", name, opt_id)
                else:
                    session.stop_optimizer(opt_id, f"{name} intervention file")

    def _consume(self, name: str) -> None:
        (self.paths.working_dir / name).unlink(missing_ok=True)
