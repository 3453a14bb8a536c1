"""The job file reference (docs/jobfile.md), generated from the schema dataclasses so it cannot drift.

``python -m glompo_hpc.jobfile.reference > docs/jobfile.md`` regenerates it; a test checks the
committed file equals the output.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

from ..checkpointing import CheckpointingControl
from . import conditions, schema

__all__ = ("render",)

#: The head of docs/jobfile.md (Markdown): the format as a user writes it.
GUIDE = """\
A job file is a YAML mapping with these top-level keys (only `task` is required):

```yaml
task:                      # the function to minimize
  function: mypkg.tasks:Rastrigin   # 'pkg.module:callable'; short form: task: mypkg.tasks:f
  args: []                 # when the callable is a class or factory, it is called with these
  kwargs: {dims: 2}
  factory: null            # null: classes are called; functions are called only if args/kwargs given
bounds: [[-5, 5], [-5, 5]] # or {min: -5, max: 5, dims: 2}; optional if the task has .bounds
optimizers:                # the selector and the optimizers it may start
  selector: CycleSelector  # or {type: RandomSelector, seed: 1}
  options:
    - {type: CMAOptimizer, workers: 1, sigma0: 0.3}
  allow_spawn: [{type: IterSpawnStop, max_calls: 10000}]
  fcall_thresholds: null   # ChainSelector only
stoppers: "BestUnmoving(calls=100, tol=0.01) & MinFuncCalls(min_pts=50) | ValueAnnealing()"
exit_conditions: {any: [{type: MaxFuncCalls, fmax: 20000}, "TargetCost(0.0)"]}
generator: {type: RandomGenerator}
manager: {backend: threads, max_jobs: 4, working_dir: results, seed: 1}
mpi: {slots: ranks, cores_per_rank: null}   # backend mpi only
checkpointing: {checkpoint_time_interval: 3600}
logging: {level: INFO, file: null}
slurm: {time: "1-00:00:00", ntasks: 4, account: myproj, max_requeues: 10}
```

The smallest job file is `task` and `bounds`. What it leaves out gets:

- **optimizers, stoppers, exit conditions, generator**: the recommended configuration (the
  evidence is in docs/benchmarks.md): CMA-ES optimizers whose population grows over the budget,
  `EvaluationsUnmoving & MinFuncCalls` stoppers (`stoppers: false` for none), an
  `ExploitExploreGenerator`, and `MaxFuncCalls(2000 x parameters)`.
- **results on disk**: `manager.summary_files: 3` (the YAML summary, the plots and the HDF5 log
  `glompo_log.h5`) in `manager.working_dir`, by default the folder `<job file name>_run` beside
  the job file (`rastrigin.yaml` runs in `rastrigin_run/`): a cluster job's result must outlive
  its terminal, and one folder per job file keeps runs of different job files apart and the
  job file's own folder free of outputs.
- **checkpoints**: every 30 minutes (`checkpoint_time_interval: 1800`, `keep_past: 2`) and at
  the time limit or `scancel`, so a requeued or resumed job continues where it stopped.
  `checkpointing: false` turns them off.

These are the job file's (command line's) defaults; the Python API (`GloMPOManager.setup`)
keeps GloMPO's: no files, no checkpoints, the current directory.

Relative paths (`manager.working_dir`, `logging.file`, `slurm.log_dir`) are relative to the
job file's directory. Numbers such as `1e-6` are read as numbers (YAML 1.2), not as text.
"""

#: (top-level key, section class) in the order a job file is usually written.
SECTIONS = (("task", schema.TaskSpec), ("optimizers", schema.OptimizersSpec), ("manager", schema.ManagerSpec),
            ("mpi", schema.MPISpec), ("checkpointing", CheckpointingControl), ("logging", schema.LoggingSpec),
            ("slurm", schema.SlurmSpec))
HIDDEN = {"count"}  # CheckpointingControl's counter: state, not a setting
#: What a section's class cannot say itself: defaults that depend on the section being left out.
NOTES = {"checkpointing": "Left out of the job file: a checkpoint every 1800 s, keeping the last three "
                          "(`checkpoint_time_interval: 1800, keep_past: 2`), plus one at the time limit. "
                          "`false` or `null`: no checkpoints. Given as a mapping: the table's defaults "
                          "apply to the keys it leaves out (`true`: all of them; then checkpoints are "
                          "taken only at a signal)."}


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return "null" if f.default is None else repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if isinstance(value, list):
            value = [getattr(v, "type", v) for v in value]
        return repr(value)
    return "required"


def _type(section: type, f: dataclasses.Field) -> str:
    hints = typing.get_type_hints(section)
    text = str(hints.get(f.name, f.type)).replace("typing.", "").replace("<class '", "").replace("'>", "")
    text = text.replace("NoneType", "null").replace(" | ", " or ").replace("pathlib.Path", "path")
    return text.replace(" or None", " or null")


def markdown(text: str) -> str:
    """Docstring text as Markdown: reST ``code`` as `code`, and Sphinx roles (``:mod:`x```, which
    MkDocs prints verbatim) as plain `x`."""
    text = re.sub(r":(?:mod|class|func|meth|data|attr|obj|exc):`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _split_args(doc: str) -> tuple[str, dict[str, str]]:
    """A Google docstring's prose and its ``Args:`` entries (name -> one-line description)."""
    prose, _, args = doc.partition("\nArgs:\n")
    described: dict[str, str] = {}
    name = None
    for line in args.splitlines():
        match = re.match(r"\s{4}(\w+): (.*)", line)
        if match:
            name = match[1]
            described[name] = match[2].strip()
        elif name is not None and line.strip():
            described[name] += " " + line.strip()
    return prose.strip(), described


def _section(key: str, section: type) -> list[str]:
    prose, described = _split_args(inspect.cleandoc(section.__doc__ or ""))
    lines = [f"## `{key}:`", "", markdown(prose), ""]
    if key in NOTES:
        lines += [NOTES[key], ""]
    lines += ["| key | type | default | meaning |" if described else "| key | type | default |",
              "|---|---|---|---|" if described else "|---|---|---|"]
    for f in dataclasses.fields(section):
        if f.metadata.get("key", True) and f.name not in HIDDEN:
            row = f"| `{f.name}` | `{_type(section, f)}` | `{_default(f)}` |"
            lines.append(row + (f" {markdown(described.get(f.name, ''))} |" if described else ""))
    return lines + [""]


def render() -> str:
    """The whole reference as Markdown."""
    parts = ["# Job file reference", "",
             "<!-- Generated from glompo_hpc/jobfile/schema.py by `python -m glompo_hpc.jobfile.reference`; "
             "do not edit by hand. -->", "", GUIDE.rstrip(), "",
             "Top-level keys: " + ", ".join(f"`{f.name}`" for f in dataclasses.fields(schema.JobSpec)
                                           if f.metadata.get("key", True)) + ".", "",
             "`bounds` and `generator` are described above; component names and parameters are those of "
             "docs/components.md (every parameter of a component's constructor is a key).", "",
             "## `stoppers:` and `exit_conditions:`", "", markdown(inspect.cleandoc(conditions.__doc__ or "")), ""]
    for key, section in SECTIONS:
        parts += _section(key, section)
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
