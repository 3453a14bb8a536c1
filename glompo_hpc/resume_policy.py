"""The resume policy: which checkpoint, if any, continues the run a working directory holds.

A checkpoint is resumed only if it belongs to the run the directory holds (its run id,
:mod:`glompo_hpc.core.run_identity`), and only if the job file still describes that run: a job
file whose task, bounds, components or seed changed describes another run, and the resume is
refused naming each difference, unless the user says to keep the checkpoint's settings. A
larger (or smaller) budget is applied and logged. A run that has finished is not resumed unless
its budget is changed or ``--force`` is given: that would replace its final answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError, UserError

__all__ = ("ResumePlan", "job_settings", "resume_point", "compare_settings", "finished_reason",
           "evaluations_recorded", "held_identity", "SETTINGS_OF_THE_RUN", "SETTINGS_APPLIED_ON_RESUME")

logger = logging.getLogger("glompo_hpc.cli")
PROG = "glompo-hpc"


#: Settings a resume keeps from the checkpoint: a job file that changed them describes another run.
SETTINGS_OF_THE_RUN = ("task", "bounds", "optimizers", "stoppers", "generator", "seed")
#: Settings a resume takes from the job file (a larger budget), applied and logged.
SETTINGS_APPLIED_ON_RESUME = ("exit_conditions",)


@dataclass
class ResumePlan:
    """What ``--resume auto`` (or ``resume``) decided for the run a working directory holds.

    Attributes:
        checkpoint: The checkpoint to continue from (None: start a new run).
        start_afresh: The run the directory holds left nothing to resume (killed before its first
            checkpoint): a new run starts over its files.
        finished: The exit reason, when that run has finished and the job file does not change its
            budget (``--resume auto`` warns that going on replaces its result).
        applied: ``load_checkpoint`` overrides taken from the job file (``exit_conditions``).
        settings: The settings record of the resumed run (None: its checkpoint records none).
    """

    checkpoint: Path | None = None
    start_afresh: bool = False
    finished: str | None = None
    applied: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] | None = None

    def load_overrides(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # the state comes from the checkpoint; where it runs (transport, slots, and the working
        # dir the checkpoint was found in, even if the run was moved there) from this launch
        return {"backend": kwargs.get("backend"), "max_jobs": kwargs.get("max_jobs"),
                "working_dir": kwargs.get("working_dir", "."), **self.applied}


def job_settings(spec: Any, kwargs: dict[str, Any]) -> dict[str, str]:
    """The job file's record of what the run optimizes, as plain text (compared on every resume)."""
    import json

    task = spec.task
    bounds = [[float(lo), float(hi)] for lo, hi in kwargs["bounds"]]
    return {"task": f"{task.function} args={_text(task.args)} kwargs={_text(task.kwargs)}",
            "bounds": json.dumps(bounds), "optimizers": _text(spec.optimizers), "stoppers": _text(spec.stoppers),
            "generator": _text(spec.generator), "seed": repr(spec.manager.seed),
            "exit_conditions": _text(spec.exit_conditions)}


def _text(value: Any) -> str:
    import dataclasses

    from .jobfile.conditions import Combination, ComponentSpec

    if isinstance(value, (ComponentSpec, Combination)):
        return str(value)
    if dataclasses.is_dataclass(value):
        return "{" + ", ".join(f"{f.name}: {_text(getattr(value, f.name))}" for f in dataclasses.fields(value)
                               if f.metadata.get("key", True)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in sorted(value.items(), key=str)) + "}"
    return repr(value)


def resume_point(kwargs: dict[str, Any], settings: dict[str, str] | None, keep_checkpoint_settings: bool = False,
                 force: bool = False) -> ResumePlan:
    """``--resume auto``: the newest valid checkpoint *of the run the working directory holds*.

    Checkpoints of any other run (an earlier run in the same directory) are never resumed. A
    directory whose run left no checkpoint and no summary of its own was killed early: a new run
    starts over it. Checkpoints that all fail to verify are an error, not a reason to start afresh.
    """
    from .core.checkpoint_file import list_checkpoints, open_checkpoint
    from .core.run_identity import RunIdentity, read_manifest

    working_dir = Path(kwargs.get("working_dir", "."))
    directory = _checkpoint_dir(kwargs)
    overwrite = bool(kwargs.get("overwrite_existing"))
    held = held_identity(working_dir)
    ours, others = [], []
    for path in list_checkpoints(directory):
        manifest = read_manifest(path)
        (others if manifest is not None and RunIdentity.from_dict(manifest) != held else ours).append(path)
    if others:
        logger.warning("--resume auto: %d checkpoint(s) in %s belong to another run than the one %s holds (%s): "
                       "not resumed", len(others), directory, working_dir, held.run_id if held else "no run id")
    if held is None and others and not ours and not overwrite:
        raise UserError(f"--resume auto: the checkpoints in {str(directory)!r} belong to another run than the one "
                        f"{str(working_dir)!r} holds (it has no run id file): continue one of them with "
                        f"'{PROG} resume CHECKPOINT JOB.yaml', or run with --overwrite to start afresh")
    found = None
    for path in ours:
        try:
            open_checkpoint(path).close()
            found = path
            break
        except CheckpointError as e:
            logger.error("Skipping checkpoint: %s", e)
    if found is None:
        if ours and not overwrite:
            raise UserError(f"--resume auto: no checkpoint in {str(directory)!r} verifies "
                            f"({', '.join(p.name for p in ours)}; see the errors above); nothing was changed: "
                            "repair or move them away, or run with --overwrite to start afresh")
        return ResumePlan(start_afresh=_killed_before_first_checkpoint(working_dir, held, bool(others)))
    plan = compare_settings(found, settings, kwargs.get("exit_conditions"), keep_checkpoint_settings)
    plan.finished = None if plan.applied or force else finished_reason(working_dir, _id(held))
    return plan


def held_identity(working_dir: Path) -> Any:
    from .core.run_identity import read_identity

    try:
        return read_identity(working_dir)
    except ValueError as e:
        raise UserError(f"{e}; nothing was changed: repair it, or run with --overwrite to start afresh") from None


def _checkpoint_dir(kwargs: dict[str, Any]) -> Path:
    from .checkpointing import CheckpointingControl

    control = kwargs.get("checkpoint_control") or CheckpointingControl()
    directory = Path(control.checkpointing_dir)
    return directory if directory.is_absolute() else Path(kwargs.get("working_dir", ".")) / directory


def compare_settings(checkpoint: Path, settings: dict[str, str] | None, exit_conditions: Any,
                     keep_checkpoint_settings: bool) -> ResumePlan:
    """A plan to resume ``checkpoint``, or a UserError naming what the job file (``settings``, its
    built ``exit_conditions``) changed."""
    from .core.run_identity import checkpoint_identity

    identity = checkpoint_identity(checkpoint)
    saved = identity.settings if identity is not None else None
    plan = ResumePlan(checkpoint=checkpoint, settings=saved)
    if saved is None or settings is None:
        return plan  # said once the checkpoint has loaded (see run.announce_resume)
    differ = {k: (saved.get(k), settings[k]) for k in settings if saved.get(k) != settings[k]}
    kept = {k: v for k, v in differ.items() if k not in SETTINGS_APPLIED_ON_RESUME}
    if kept and not keep_checkpoint_settings:
        what = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in kept.items())
        raise UserError(f"the job file no longer matches the run of checkpoint {str(checkpoint)!r} ({what}): to "
                        "continue that run with its own settings add --keep-checkpoint-settings; to start the job "
                        "file's run afresh use --overwrite")
    for key, (old, new) in kept.items():
        logger.warning("Resuming with the checkpoint's %s (%s), not the job file's (%s)", key, old, new)
    if "exit_conditions" in differ:
        old, new = differ["exit_conditions"]
        logger.warning("Resuming with the job file's exit conditions %s (the checkpoint's were %s)", new, old)
        plan.applied["exit_conditions"] = exit_conditions
        plan.settings = {**saved, "exit_conditions": new}
    return plan


def _read_summary(working_dir: Path) -> dict | None:
    import yaml

    from .protocol.paths import RunPaths

    path = RunPaths(working_dir).summary
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _summary_of(working_dir: Path, run_id: str | None) -> dict | None:
    """The summary in ``working_dir`` if it is of run ``run_id`` (None: a run without id)."""
    summary = _read_summary(working_dir)
    if summary is None:
        return None
    return summary if (summary.get("assignment") or {}).get("run_id") == run_id else None


def _id(identity: Any) -> str | None:
    return identity.run_id if identity is not None else None


def finished_reason(working_dir: Path, run_id: str | None) -> str | None:
    """The exit reason of run ``run_id`` if its summary in ``working_dir`` says it has finished."""
    summary = _summary_of(working_dir, run_id)
    solution = (summary or {}).get("solution") or {}
    return str(solution.get("exit_reason")) if solution.get("state") in ("finished", "ended") else None


def evaluations_recorded(working_dir: Path, run_id: str | None) -> int | None:
    """How many evaluations the run's own HDF5 log (else its summary) records; None if neither is there."""
    from .protocol.paths import RunPaths

    log = RunPaths(working_dir).hdf5_log
    if log.is_file():
        try:
            import h5py

            with h5py.File(log, "r") as f:
                if str(f.attrs.get("run_id", "")) == (run_id or "") and "f_counter" in f.attrs:
                    return int(f.attrs["f_counter"])
        except Exception:  # a damaged log is the rollback's business (it is set aside); here only a count is lost
            pass
    summary = _summary_of(working_dir, run_id)
    value = ((summary or {}).get("counters") or {}).get("function_evaluations")
    return int(value) if isinstance(value, int) else None


def _killed_before_first_checkpoint(working_dir: Path, held: Any, other_checkpoints: bool) -> bool:
    """True when the run the directory holds left files but no checkpoint and no summary of its
    own: it was killed early (node failure, OOM killer, SIGKILL), perhaps while an overwrite was
    deleting an earlier run. Nothing can be resumed and nothing finished needs protecting, so
    ``--resume auto`` starts it afresh over those files (deleting the other run's checkpoints)."""
    from .protocol.paths import RunPaths

    found = RunPaths(working_dir).existing_results()
    if _summary_of(working_dir, _id(held)) is not None or not (found or (held is not None and other_checkpoints)):
        return False
    logger.warning("No checkpoint of the run in %s and no end of it recorded: it was killed before its first "
                   "checkpoint; starting it afresh over %s", working_dir,
                   ", ".join(p.name for p in found) or "the other run's checkpoints")
    return True
