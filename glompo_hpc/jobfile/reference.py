"""The job file reference (docs/jobfile.md), generated from the schema dataclasses so it cannot drift.

``python -m glompo_hpc.jobfile.reference > docs/jobfile.md`` regenerates it; a test checks the
committed file equals the output.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

from ..checkpointing import CheckpointingControl
from . import conditions, schema

__all__ = ("render",)

#: (top-level key, section class) in the order a job file is usually written.
SECTIONS = (("task", schema.TaskSpec), ("optimizers", schema.OptimizersSpec), ("manager", schema.ManagerSpec),
            ("mpi", schema.MPISpec), ("checkpointing", CheckpointingControl), ("logging", schema.LoggingSpec),
            ("slurm", schema.SlurmSpec))
HIDDEN = {"count"}  # CheckpointingControl's counter: state, not a setting


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return "required" if f.default is dataclasses.MISSING else ("null" if f.default is None else repr(f.default))
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if isinstance(value, list):
            value = [getattr(v, "type", v) for v in value]
        return repr(value)
    return "required"


def _type(section: type, f: dataclasses.Field) -> str:
    hints = typing.get_type_hints(section)
    text = str(hints.get(f.name, f.type)).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "null").replace(" | ", " or ")


def _section(key: str, section: type) -> list[str]:
    doc = inspect.cleandoc(section.__doc__ or "")
    lines = [f"## `{key}:`", "", doc, "", "| key | type | default |", "|---|---|---|"]
    for f in dataclasses.fields(section):
        if f.metadata.get("key", True) and f.name not in HIDDEN:
            lines.append(f"| `{f.name}` | `{_type(section, f)}` | `{_default(f)}` |")
    return lines + [""]


def render() -> str:
    """The whole reference as Markdown."""
    intro = inspect.cleandoc(schema.__doc__ or "")
    parts = ["# Job file reference", "",
             "_Generated from `glompo_hpc/jobfile/schema.py` by `python -m glompo_hpc.jobfile.reference`; "
             "do not edit by hand._", "", intro, "",
             "Top-level keys: " + ", ".join(f"`{f.name}`" for f in dataclasses.fields(schema.JobSpec)
                                           if f.metadata.get("key", True)) + ".", "",
             "`bounds` and `generator` are described above; component names and parameters are those of "
             "docs/components.md (every parameter of a component's constructor is a key).", "",
             "## `stoppers:` and `exit_conditions:`", "", inspect.cleandoc(conditions.__doc__ or ""), ""]
    for key, section in SECTIONS:
        parts += _section(key, section)
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
