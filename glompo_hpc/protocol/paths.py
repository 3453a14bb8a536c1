"""RunPaths: the one owner of every file name in a working directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ("RunPaths",)


@dataclass(frozen=True)
class RunPaths:
    working_dir: Path

    @property
    def summary(self) -> Path:
        return self.working_dir / "glompo_manager_log.yml"

    @property
    def hdf5_log(self) -> Path:
        return self.working_dir / "glompo_log.h5"

    @property
    def trajectories(self) -> Path:
        return self.working_dir / "trajectories.png"

    @property
    def trajectories_log(self) -> Path:
        return self.working_dir / "trajectories_log.png"

    @property
    def best_so_far(self) -> Path:
        return self.working_dir / "best_so_far.png"

    @property
    def printstreams(self) -> Path:
        return self.working_dir / "glompo_optimizer_printstreams"

    def results(self) -> list[Path]:
        """Files and folders that a previous run leaves and a new run would overwrite."""
        return [self.summary, self.hdf5_log, self.trajectories, self.trajectories_log, self.best_so_far,
                self.printstreams]

    def existing_results(self) -> list[Path]:
        return [p for p in self.results() if p.exists()]

    def intervention(self, name: str) -> Path:
        return self.working_dir / name
