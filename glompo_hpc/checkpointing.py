"""CheckpointingControl: when and how the manager takes checkpoints (the settings only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .compat import Place, old_keywords
from .errors import ConfigurationError

__all__ = ("CheckpointingControl",)

_COMPRESSED = (".gz", ".tgz", ".bz2", ".xz", ".zip")
_TOKENS = ("date", "year", "yr", "month", "day", "time", "hour", "min", "sec", "count")


@dataclass
class CheckpointingControl:
    """Checkpoint settings.

    Args:
        checkpoint_time_interval: Seconds between checkpoints (inf: never on time).
        checkpoint_eval_interval: Evaluations between checkpoints (inf: never on count).
        checkpoint_at_init: Take one before any optimizer starts.
        checkpoint_at_conv: Take one when the run ends on its exit conditions.
        raise_checkpoint_fail: Raise (and end the run) when a checkpoint fails, instead of warning.
        force_task_save: Save the task with ``task.checkpoint_save`` even if it pickles.
        keep_past: How many older checkpoints to keep (-1: all). Older ones are deleted only after
            the new one is complete.
        naming_format: File name pattern; tokens ``%(date)`` ``%(year)`` ``%(yr)`` ``%(month)``
            ``%(day)`` ``%(time)`` ``%(hour)`` ``%(min)`` ``%(sec)`` ``%(count)``.
        checkpointing_dir: Directory of the checkpoints (relative paths are below the working dir).
        pause_timeout: Seconds to wait for children to pause at an iteration boundary; a child
            busy for longer (a long evaluation) is left out of the checkpoint and not restored.
        count: Checkpoints taken so far (the ``%(count)`` token).
    """

    checkpoint_time_interval: float = math.inf
    checkpoint_eval_interval: float = math.inf
    checkpoint_at_init: bool = False
    checkpoint_at_conv: bool = False
    raise_checkpoint_fail: bool = False
    force_task_save: bool = False
    keep_past: int = -1
    naming_format: str = "glompo_checkpoint_%(date)_%(time)"
    checkpointing_dir: str | Path = "checkpoints"
    pause_timeout: float = 60.0
    count: int = 0

    def __post_init__(self) -> None:
        for name in ("checkpoint_time_interval", "checkpoint_eval_interval", "pause_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be a number > 0, got {value!r}")
        if isinstance(self.keep_past, bool) or not isinstance(self.keep_past, int) or self.keep_past < -1:
            raise ConfigurationError(f"keep_past must be an integer >= -1, got {self.keep_past!r}")
        if not isinstance(self.naming_format, str) or not self.naming_format.strip():
            raise ConfigurationError(f"naming_format must be a non-empty string, got {self.naming_format!r}")
        try:
            self.get_name(datetime(2000, 1, 1))
        except (KeyError, ValueError) as e:
            raise ConfigurationError(f"naming_format {self.naming_format!r} has an unknown token: {e}; "
                                     f"valid tokens are {', '.join(_TOKENS)}") from None
        if self.naming_format.lower().endswith(_COMPRESSED):
            raise ConfigurationError(f"naming_format {self.naming_format!r} names a compressed archive, but "
                                     "checkpoints are uncompressed tar files: end it with '.tar' or with no extension")
        self.checkpointing_dir = Path(self.checkpointing_dir)

    def get_name(self, now: datetime | None = None) -> str:
        """The next checkpoint's file name from ``naming_format``."""
        now = now or datetime.now()
        fields = {"date": now.strftime("%Y%m%d"), "year": now.strftime("%Y"), "yr": now.strftime("%y"),
                  "month": now.strftime("%m"), "day": now.strftime("%d"), "time": now.strftime("%H%M%S"),
                  "hour": now.strftime("%H"), "min": now.strftime("%M"), "sec": now.strftime("%S"),
                  "count": f"{self.count:03d}"}
        fmt = self.naming_format
        for token in fields:
            fmt = fmt.replace(f"%({token})", f"%({token})s")
        name = fmt % fields
        # the checkpointer appends '.tar': a format that ends with it already is honoured as written
        return name[:-len(".tar")] if name.endswith(".tar") else name


# GloMPO 3.1's checkpoint_iter_frequency / checkpoint_time_frequency (glompo_hpc/compat/table.py)
CheckpointingControl.__init__ = old_keywords(Place.CHECKPOINTING_CONTROL,  # type: ignore[method-assign]
                                             "CheckpointingControl()")(CheckpointingControl.__init__)
