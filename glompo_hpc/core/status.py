"""Resource snapshots (psutil) for the manager's status histories."""

from __future__ import annotations

import os

import psutil

__all__ = ("ResourceMonitor",)


class ResourceMonitor:
    """CPU% and memory of this process and its children, and the system load.

    psutil's cpu_percent measures since its previous call on the same Process object, so the
    objects are kept between snapshots (a new child's first reading is 0).
    """

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._procs: dict[int, psutil.Process] = {}
        self._me.cpu_percent()

    def snapshot(self) -> tuple[float, float, tuple[float, float, float]]:
        """(cpu percent, memory in bytes (RSS), load averages 1/5/15 min)."""
        procs = [self._me]
        try:
            procs += self._me.children(recursive=True)
        except psutil.Error:
            pass
        cpu, mem = 0.0, 0.0
        alive: dict[int, psutil.Process] = {}
        for p in procs:
            known = self._procs.get(p.pid, p) if p is not self._me else p
            try:
                cpu += known.cpu_percent()
                mem += known.memory_info().rss
                alive[p.pid] = known
            except psutil.Error:
                continue
        self._procs = alive
        return cpu, mem, tuple(os.getloadavg())
