"""The job file's ``slurm:`` section: the SLURM request and the walltime behaviour (docs/slurm.md)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..errors import JobFileError
from .fields import got, integer, key_field, number, read_section, string
from .registry import show

__all__ = ("SlurmSpec", "slurm_time_seconds", "parse_slurm")


def slurm_time_seconds(value: Any) -> int:
    """A SLURM time limit in seconds: minutes (an integer) or "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"."""
    match = re.fullmatch(r"\s*(?:(\d+)-)?(\d+(?::\d+){0,2})\s*", value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = 60 * value
    elif match is None:
        raise ValueError(f"not a SLURM time limit: {value!r}")
    else:
        n = [int(p) for p in match[2].split(":")]
        if match[1] is None and len(n) < 3:
            n = [0] + n  # "M" and "M:S" count minutes, not hours
        hours, minutes, secs = (n + [0, 0])[:3]
        seconds = int(match[1] or 0) * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError(f"a time limit must be more than zero, got {value!r}")
    return seconds


def _slurm_time(value: Any, key_path: str) -> str:
    try:
        slurm_time_seconds(value)
    except ValueError:
        raise JobFileError(key_path, f"expected minutes or \"H:M:S\", \"D-H:M:S\" (SLURM's forms, > 0), {got(value)}") from None
    return str(value)


def _strings(value: Any, key_path: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JobFileError(key_path, f"expected a list of strings, {got(value)}")
    return list(value)


def _sbatch_options(value: Any, key_path: str) -> list[str]:
    options = _strings(value, key_path)
    for i, option in enumerate(options):
        if not re.fullmatch(r"--[A-Za-z][\w-]*(=.+)?", option):
            raise JobFileError(f"{key_path}[{i}]", f"expected a long sbatch option, '--name=value' or '--name' "
                                                   f"(e.g. '--mail-type=END'), got {show(option)}")
    return options


@dataclass
class SlurmSpec:
    """``slurm:``: the SLURM request (``submit``, ``jobscript``) and the walltime behaviour (docs/slurm.md).

    ``time``: SLURM's forms. USR2 comes ``signal_delay_s`` (SLURM) or ``margin_s`` (the run's own
    guard) before the limit; the run checkpoints and asks for a requeue, at most ``max_requeues``
    times. ``mem``, ``qos``, ``gres``, ``constraint``: the ``#SBATCH`` options of those names
    (e.g. ``mem: 4G``); ``sbatch``: any other options, one per item (``--mail-type=END``), each
    written as an ``#SBATCH`` line, so a regenerated script keeps them. ``setup``: shell lines run
    before the launch, verbatim. ``python``: the interpreter on the nodes; null: ``python3`` from
    the PATH the ``setup`` lines leave (the environment they activate), or without ``setup`` the
    interpreter that wrote the script. ``log_dir``: relative to the job file's directory.
    """

    job_name: str = key_field(string(), "glompo")
    time: str = key_field(_slurm_time, "01:00:00")
    nodes: int = key_field(integer(lo=1), 1)
    ntasks: int = key_field(integer(lo=1), 1)
    cpus_per_task: int = key_field(integer(lo=1), 1)
    partition: str | None = key_field(string(nullable=True), None)
    account: str | None = key_field(string(nullable=True), None)
    mem: str | None = key_field(string(nullable=True), None)
    qos: str | None = key_field(string(nullable=True), None)
    gres: str | None = key_field(string(nullable=True), None)
    constraint: str | None = key_field(string(nullable=True), None)
    sbatch: list = key_field(_sbatch_options, dataclasses.MISSING, default_factory=list)
    signal_delay_s: int | None = key_field(integer(lo=1, nullable=True), None)  # null: min(300, limit / 4)
    margin_s: float | None = key_field(number(lo=0, nullable=True), None)  # null: as signal_delay_s
    max_requeues: int = key_field(integer(lo=0), 10)
    srun_args: list = key_field(_strings, dataclasses.MISSING, default_factory=list)
    mpirun_args: list = key_field(_strings, dataclasses.MISSING, default_factory=list)
    setup: list = key_field(_strings, dataclasses.MISSING, default_factory=list)
    python: str | None = key_field(string(nullable=True), None)
    log_dir: str = key_field(string(), "slurm_logs")

    def __post_init__(self) -> None:
        if self.signal_delay_s is None:
            self.signal_delay_s = max(1, min(300, self.time_seconds // 4))
        if self.margin_s is None:
            self.margin_s = self.signal_delay_s

    @property
    def time_seconds(self) -> int:
        return slurm_time_seconds(self.time)


def parse_slurm(value: Any) -> SlurmSpec:
    spec = SlurmSpec(**read_section(SlurmSpec, value, "slurm"))
    for f in dataclasses.fields(SlurmSpec):  # a line break would end a job script's line: injection
        texts = getattr(spec, f.name)
        for i, text in enumerate(texts if isinstance(texts, list) else [texts]):
            if isinstance(text, str) and any(c in text for c in "\n\r\0"):
                where = f"slurm.{f.name}" + (f"[{i}]" if isinstance(texts, list) else "")
                raise JobFileError(where, f"{text!r} holds a line break or NUL, which a job script cannot quote")
    limit = spec.time_seconds
    for name in ("signal_delay_s", "margin_s"):
        if getattr(spec, name) >= limit:
            raise JobFileError(f"slurm.{name}", f"{getattr(spec, name)} s is not less than the time limit "
                                                f"{spec.time!r} ({limit} s): the run would stop as soon as it starts")
    if spec.ntasks < spec.nodes:
        raise JobFileError("slurm.ntasks", f"{spec.ntasks} tasks cannot fill {spec.nodes} nodes")
    return spec
