"""Bad job files against the command line: random bytes and text, YAML of random shapes, deep
nesting, alias bombs, python tags, and mutations of valid jobs (examples/*.yaml and a minimal
one): deleted keys, wrong types, huge, negative, NaN and infinite numbers, unicode.

`validate` and `run` must end in exactly one of two ways: one line ``glompo-hpc: error: ...``
as the last line of stderr with exit code 2, or success (exit 0; `run` prints its result).
Never a traceback, a hang or memory blown up. Jobs that validate are run for real, made tiny: their
exit conditions are OR-ed with a small evaluation and time budget, in a temporary working dir.

Most examples run in-process through ``cli.main``; a sample in real ``python -m glompo_hpc``
processes. Everything runs under an address-space cap (current size + 3 GiB), so a job asking
for absurd memory meets MemoryError, which must also end in one line, not in the OOM killer.
CI runs a fixed, derandomized set; ``GLOMPO_NIGHTLY=1`` runs ten times more, freshly random.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from glompo_hpc import cli
from glompo_hpc.core.session import CRASH_LOOP, CRASH_LOOP_LIMIT

ROOT = Path(__file__).resolve().parents[2]
NIGHTLY = os.environ.get("GLOMPO_NIGHTLY", "").strip() == "1"
ERROR = "glompo-hpc: error: "
CAP_BYTES = 3 << 30  # what a job may allocate beyond the interpreter's current size
RASTRIGIN = "glompo_hpc.tasks.functions:Rastrigin"

pytestmark = pytest.mark.timeout(600 if NIGHTLY else 180)  # a hang fails instead of blocking CI

# Explicit everything (optimizers, stoppers, exit conditions, generator): the defaults may change.
MINIMAL: dict[str, Any] = {
    "task": {"function": RASTRIGIN, "kwargs": {"dims": 2}},
    "bounds": [[-5, 5], [-5, 5]],
    "optimizers": {"selector": "CycleSelector", "options": [{"type": "RandomOptimizer", "iters": 10}]},
    "stoppers": "MinFuncCalls(min_pts=5) & BestUnmoving(calls=10, tol=0.1)",
    "exit_conditions": "MaxFuncCalls(fmax=30)",
    "generator": {"type": "RandomGenerator"},
    "manager": {"backend": "threads", "max_jobs": 1, "working_dir": "run", "summary_files": 1, "seed": 1},
    "checkpointing": {"checkpoint_eval_interval": 10, "keep_past": 1},
    "logging": {"level": "WARNING"},
    "slurm": {"time": "00:10:00", "job_name": "fuzz", "srun_args": ["--mpi=pmix"]},
}
EXAMPLES = {str(p.relative_to(ROOT)): yaml.safe_load(p.read_text())
            for p in sorted((ROOT / "examples").rglob("*.yaml"))}
BASES = {"minimal": MINIMAL, **EXAMPLES}
TINY_BUDGET = ["MaxFuncCalls(fmax=40)", "MaxSeconds(session_max=15)"]


def fuzz_settings(examples: int) -> settings:
    """Fixed examples in CI (derandomized, no database); ten times as many, random, nightly."""
    return settings(max_examples=examples * (10 if NIGHTLY else 1), derandomize=not NIGHTLY, deadline=None,
                    database=None if not NIGHTLY else settings.default.database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------ running the command line

@dataclasses.dataclass
class Outcome:
    code: int
    out: str
    err: str


@contextlib.contextmanager
def memory_cap() -> Iterator[None]:
    """Limit this process's address space to its current size + CAP_BYTES while the block runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = psutil.Process().memory_info().vms + CAP_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def in_process(*argv: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), memory_cap():
        code = cli.main(list(argv))
    return Outcome(code, out.getvalue(), err.getvalue())


def in_subprocess(*argv: str, cwd: Path) -> Outcome:
    """``python -m glompo_hpc ARGV`` with the same address-space cap (ulimit -v, in KiB)."""
    cap_kib = (psutil.Process().memory_info().vms + CAP_BYTES) // 1024
    command = ["bash", "-c", f'ulimit -v {cap_kib} && exec "$@"', "bash", sys.executable, "-m", "glompo_hpc", *argv]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def run_args(job: Path) -> list[str]:
    """`run` in a fresh working dir beside the job; optimizer crash reports (ERROR) left out of the
    output: a manager crash is CRITICAL and stays, so a traceback there still fails the test."""
    return ["run", str(job), "--working-dir", str(job.parent / "wd"), "--overwrite", "--log-level", "CRITICAL"]


def assert_clean_end(result: Outcome, command: str) -> None:
    """One line of error with exit 2, or success; no traceback anywhere."""
    everything = result.out + result.err
    if currently_in_test_context():
        event(f"{command}: exit {result.code}")  # --hypothesis-show-statistics: how many ran, how many failed
    assert "Traceback" not in everything, everything[-4000:]
    assert result.code in (0, 2), f"exit {result.code}: {everything[-3000:]}"
    errors = [line for line in result.err.splitlines() if line.startswith(ERROR)]
    if result.code == 2:
        assert len(errors) == 1 and result.err.rstrip("\n").endswith(errors[0]), result.err[-3000:]
        assert len(errors[0]) > len(ERROR) + 5
    else:
        assert not errors, result.err[-3000:]
        assert result.out.startswith("OK: ") if command == "validate" else "Exit reason:" in result.out


# ------------------------------------------------------------ hostile documents

def flow_bomb(depth: int, width: int) -> str:
    """A "billion laughs" value written inline: ``width ** depth`` values after expanding aliases."""
    if depth == 0:
        return "&l0 [" + ", ".join(["lol"] * width) + "]"
    return f"&l{depth} [{flow_bomb(depth - 1, width)}, " + ", ".join([f"*l{depth - 1}"] * (width - 1)) + "]"


def _leaf_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, prefix + (key,))
    elif isinstance(node, list) and node:
        for i, value in enumerate(node):
            yield from _leaf_paths(value, prefix + (i,))
    else:
        yield prefix


def _set(data: Any, path: tuple, value: Any) -> Any:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


BOMB_PLACES = list(_leaf_paths(MINIMAL))
PLACEHOLDER = "PLACEHOLDER_FOR_A_BOMB"


@st.composite
def alias_bombs(draw) -> bytes:
    """MINIMAL with one of its values replaced by an inline alias bomb."""
    data = copy.deepcopy(MINIMAL)
    _set(data, draw(st.sampled_from(BOMB_PLACES)), PLACEHOLDER)
    bomb = flow_bomb(draw(st.integers(6, 9)), draw(st.integers(8, 12)))
    return yaml.safe_dump(data).replace(PLACEHOLDER, bomb).encode()


def nested(depth: int, style: str) -> bytes:
    if style == "flow list":
        return ("[" * depth + "]" * depth).encode()
    if style == "flow map":
        return ("{a: " * depth + "1" + "}" * depth).encode()
    if style == "under bounds":
        return f"task: {RASTRIGIN}\nbounds: {'[' * depth}1{']' * depth}\n".encode()
    budget = "exit_conditions: 'MaxFuncCalls(fmax=40)'\n"  # at depths Python manages it is a valid job: keep it tiny
    return f"task: {RASTRIGIN}\n{budget}stoppers: {'{any: [' * depth}ValueAnnealing{']}' * depth}\n".encode()


PYTHON_TAGS = [  # the marker file must never appear: no tag may construct anything
    "task: !!python/object/apply:os.system ['touch MARKER']\n",
    "!!python/object/apply:os.system ['touch MARKER']\n",
    "task: !!python/object/new:subprocess.Popen [['touch', 'MARKER']]\n",
    "task: !!python/name:os.system\n",
    f"task: {RASTRIGIN}\nmanager: !!python/object:glompo_hpc.core.manager.GloMPOManager {{}}\n",
    f"task: {RASTRIGIN}\nbounds: !!python/tuple [[0, 1], [0, 1]]\n",
    "%TAG !p! tag:yaml.org,2002:python/\n---\ntask: !p!object/apply:os.system ['touch MARKER']\n",
    f"task: {RASTRIGIN}\nlogging: !custom {{level: INFO}}\n",
    "task: !!binary Z2xvbXBv\n",
]

_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
            | st.sampled_from(["task", RASTRIGIN, "CMAOptimizer", "MaxFuncCalls(1)", ".inf", "~", "null"]))
_shapes = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=10) | st.sampled_from(["task", "bounds", "manager"]),
                                         inner, max_size=4), max_leaves=12)


def hostile_documents(marker: Path) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        _shapes.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
        st.builds(nested, st.sampled_from([60, 900, 5000, 40_000]),
                  st.sampled_from(["flow list", "flow map", "under bounds", "under stoppers"])),
        alias_bombs(),
        st.sampled_from(PYTHON_TAGS).map(lambda t: t.replace("MARKER", str(marker)).encode()),
    )


# ------------------------------------------------------------ mutations of valid jobs

_WORDS = ["", " ", "x", "é中😀", "\u202eevil", "a" * 5000, "$(touch pwned)", "`id`", "'\"", "1e3", "nan", "-1",
          "threads", "processes", "mpi", "DEBUG", "CMAOptimizer", "RandomOptimizer", "ScipyOptimizer",
          "CycleSelector", "ChainSelector", "RandomGenerator", "MaxFuncCalls(fmax=5)", "TargetCost(0)",
          "BestUnmoving(calls=3)", "MinFuncCalls(1) | ValueAnnealing()", "(", "x:y", "a.b",
          "glompo_hpc.tasks.functions:Ackley", "no_such_module_xyz:f", "json:loads", "math:sqrt"]
_KEYS = ["task", "function", "args", "kwargs", "factory", "bounds", "min", "max", "dims", "optimizers", "selector",
         "options", "allow_spawn", "fcall_thresholds", "type", "workers", "iters", "sigma0", "popsize", "method",
         "stoppers", "exit_conditions", "any", "all", "generator", "manager", "backend", "max_jobs", "seed",
         "summary_files", "checkpointing", "keep_past", "logging", "level", "slurm", "time", "ntasks", "é", ""]
_HUGE = [2 ** 31, 2 ** 63, 10 ** 30, -10 ** 30, 10 ** 400, 1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324,
         -0.0]
# Text for `run` values: no path separators or "~", so a mutated path never leaves the temporary dir.
_RUN_TEXT = st.text(st.characters(blacklist_characters="/\\~", blacklist_categories=("Cs",)), max_size=12)


def values(for_run: bool) -> st.SearchStrategy[Any]:
    """Replacement values; for `run`, integers stay small (slots, dims, populations are real there)."""
    numbers = st.integers(-3, 8) if for_run else (st.integers() | st.sampled_from(_HUGE))
    words = st.sampled_from([w for w in _WORDS if not for_run or "/" not in w])
    scalars = st.none() | st.booleans() | numbers | st.floats() | words | (_RUN_TEXT if for_run else st.text())
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3), max_leaves=6)


def _all_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _all_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _all_paths(value, prefix + (i,))


def same_kind(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the kind already there: many of these still validate, so the job runs."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-2, 8)
    if isinstance(value, float):
        return st.floats(-10, 10) | st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
    if isinstance(value, str):
        return st.sampled_from(_WORDS)
    return st.just(value)


@st.composite
def mutated_jobs(draw, for_run: bool = False) -> dict:
    """A base job with 1 to 3 changes anywhere in it: a value of the same kind (most often), of any
    kind, a deleted key or an added one."""
    data = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_all_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["same kind", "same kind", "any kind", "delete", "add"]))
        if action == "same kind":
            parent[path[-1]] = draw(same_kind(parent[path[-1]]))
        elif action == "any kind":
            parent[path[-1]] = draw(values(for_run))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(_KEYS))] = draw(values(for_run))
    return data


def tiny(job: Any) -> Any:
    """The job with its exit conditions OR-ed with TINY_BUDGET (if it is a mapping at all)."""
    if not isinstance(job, dict):
        return job
    job = dict(job)
    original = job.get("exit_conditions")
    job["exit_conditions"] = {"any": ([original] if original is not None else []) + TINY_BUDGET}
    return job


def dump(job: Any) -> bytes:
    return yaml.safe_dump(job, allow_unicode=True).encode()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write_job(scratch: Path, content: bytes, name: str = "job.yaml") -> Path:
    path = scratch / name
    path.write_bytes(content)
    return path


# ------------------------------------------------------------ the properties

@fuzz_settings(120)
@given(data=st.data())
def test_hostile_documents_are_refused_in_one_line(scratch, data):
    command = data.draw(st.sampled_from(["validate", "run"]))
    marker = scratch / "marker_created_by_a_tag"
    job = write_job(scratch, data.draw(hostile_documents(marker)))
    assert_clean_end(in_process(*(run_args(job) if command == "run" else ["validate", str(job)])), command)
    assert not marker.exists()


@fuzz_settings(200)
@given(job=mutated_jobs())
def test_mutated_jobs_validate_or_fail_in_one_line(scratch, job):
    assert_clean_end(in_process("validate", str(write_job(scratch, dump(job)))), "validate")


@fuzz_settings(60)
@given(job=mutated_jobs(for_run=True))
def test_mutated_jobs_run_tiny_or_fail_in_one_line(scratch, job):
    path = write_job(scratch, dump(tiny(job)))
    assert_clean_end(in_process(*run_args(path)), "run")


@fuzz_settings(10)
@given(data=st.data())
def test_a_sample_in_real_processes(scratch, data):
    command = data.draw(st.sampled_from(["validate", "run"]))
    marker = scratch / "marker_created_in_a_subprocess"
    content = data.draw(st.one_of(hostile_documents(marker), mutated_jobs(for_run=True).map(lambda j: dump(tiny(j)))))
    path = write_job(scratch, content, "sub.yaml")
    argv = run_args(path) if command == "run" else ["validate", str(path)]
    assert_clean_end(in_subprocess(*argv, cwd=scratch), command)
    assert not marker.exists()


def test_a_valid_job_runs_in_a_real_process(scratch):
    """The sample above is mostly refusals: one real process that runs, for certain."""
    result = in_subprocess(*run_args(write_job(scratch, dump(tiny(MINIMAL)), "valid.yaml")), cwd=scratch)
    assert_clean_end(result, "run")
    assert result.code == 0 and "Exit reason:  MaxFuncCalls(fmax=30)" in result.out


# ------------------------------------------------------------ what the fuzz found (fixed), pinned

FOUND = {  # each was a traceback, minutes of work or gigabytes of memory before its fix
    "deep_flow_nesting": nested(5000, "flow list"),
    "deep_stoppers_nesting": nested(900, "under stoppers"),
    "alias_holding_itself": f"task: {RASTRIGIN}\nstoppers: &a {{any: [*a]}}\n".encode(),
    "integer_of_5000_digits": f"task: {RASTRIGIN}\nexit_conditions: {{type: MaxFuncCalls, fmax: {'9' * 5000}}}\n"
                              .encode(),
    "bounds_dims_beyond_an_index": f"task: {RASTRIGIN}\nbounds: {{min: -1, max: 1, dims: {10 ** 30}}}\n".encode(),
    "task_dims_beyond_memory": f"task: {{function: {RASTRIGIN}, kwargs: {{dims: {10 ** 12}}}}}\n".encode(),
    "alias_bomb_in_bounds": f"task: {RASTRIGIN}\nbounds: {flow_bomb(9, 10)}\n".encode(),
    "alias_bomb_in_a_parameter": f"task: {RASTRIGIN}\nexit_conditions: {{type: MaxFuncCalls, fmax: "
                                 f"{flow_bomb(9, 10)}}}\n".encode(),
    "unknown_scipy_method": dump({**MINIMAL, "optimizers": {"options": [{"type": "ScipyOptimizer", "method": "xx"}]}}),
}
FOUND_MESSAGES = {
    "deep_flow_nesting": "nested too deeply", "deep_stoppers_nesting": "nested too deeply",
    "alias_holding_itself": "a YAML alias holds itself", "integer_of_5000_digits": "cannot read the job file",
    "bounds_dims_beyond_an_index": "bounds.dims: expected an integer in 1..1000000",
    "task_dims_beyond_memory": "too large to build",
    "alias_bomb_in_bounds": "an alias bomb", "alias_bomb_in_a_parameter": "an alias bomb",
    "unknown_scipy_method": "optimizers.options[0].method: method 'xx' is not a scipy.optimize.minimize method",
}


BUILT_ONLY_BY_RUN_AND_VALIDATE = {"task_dims_beyond_memory", "unknown_scipy_method"}  # jobscript builds nothing


@pytest.mark.parametrize("command", ["validate", "run", "jobscript"])
@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_cases_end_in_one_named_line(tmp_path, case, command):
    if command == "jobscript" and case in BUILT_ONLY_BY_RUN_AND_VALIDATE:
        return
    job = write_job(tmp_path, FOUND[case])
    result = in_process(*(run_args(job) if command == "run" else [command, str(job)]))
    assert_clean_end(result, command)
    assert result.code == 2 and FOUND_MESSAGES[case] in result.err


def crash_job(options: list[dict]) -> dict:
    return {**MINIMAL, "optimizers": {"selector": "CycleSelector", "options": options},
            "exit_conditions": "MaxFuncCalls(fmax=200)"}


NEWTON_WITHOUT_JACOBIAN = {"type": "ScipyOptimizer", "method": "Newton-CG"}  # scipy raises when it starts


def test_a_job_whose_optimizers_all_crash_ends_with_exit_2(tmp_path):
    """Was: optimizers started and crashed forever (thousands a minute, a printstream file each)."""
    job = write_job(tmp_path, dump(crash_job([NEWTON_WITHOUT_JACOBIAN])))
    result = in_process(*run_args(job))
    assert_clean_end(result, "run")
    assert result.code == 2 and f"{ERROR}{CRASH_LOOP}: {CRASH_LOOP_LIMIT} in a row crashed" in result.err
    assert "Jacobian is required" in result.err and f"Optimizers:   {CRASH_LOOP_LIMIT} started" in result.out


def test_crashing_optimizers_beside_working_ones_do_not_stop_the_run(tmp_path):
    """Crashes between evaluations are not a loop: the run goes on to its budget and exits 0."""
    options = [NEWTON_WITHOUT_JACOBIAN, {"type": "RandomOptimizer", "iters": 5}]
    job = write_job(tmp_path, dump(crash_job(options)))
    result = in_process(*run_args(job))
    assert_clean_end(result, "run")
    assert result.code == 0 and "Exit reason:  MaxFuncCalls(fmax=200)" in result.out
