"""Job files: valid files build the expected objects; every kind of mistake gives one clear line."""

from __future__ import annotations

import copy
import textwrap

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glompo_hpc.checkpointing import CheckpointingControl
from glompo_hpc.errors import JobFileError
from glompo_hpc.exit_conditions import MaxFuncCalls, MaxSeconds, OrExitCondition, TargetCost
from glompo_hpc.generators import AnnealingGenerator, PerturbationGenerator, RandomGenerator
from glompo_hpc.jobfile import JobSpec, build_manager_kwargs, load_job_file, validate
from glompo_hpc.jobfile.conditions import parse_expression
from glompo_hpc.jobfile.registry import FAMILIES, resolve
from glompo_hpc.optimizers import CMAOptimizer, RandomOptimizer, ScipyOptimizer
from glompo_hpc.selectors import ChainSelector, CycleSelector, IterSpawnStop
from glompo_hpc.stoppers import (AndStopper, BestUnmoving, MinFuncCalls, OrStopper, ParameterDistance, TypeHunter,
                                 ValueAnnealing)
from glompo_hpc.tasks.functions import Rastrigin

RASTRIGIN = "glompo_hpc.tasks.functions:Rastrigin"

VALID = {
    "task": {"function": RASTRIGIN, "kwargs": {"dims": 2}},
    "bounds": [[-5, 5], [-5, 5]],
    "optimizers": {
        "selector": "CycleSelector",
        "options": [{"type": "CMAOptimizer", "sigma0": 0.3, "workers": 1}, {"type": "RandomOptimizer", "iters": 10}],
        "allow_spawn": [{"type": "IterSpawnStop", "max_calls": 1000}],
    },
    "stoppers": "BestUnmoving(calls=100, tol=0.01) & MinFuncCalls(min_pts=50) | ValueAnnealing()",
    "exit_conditions": {"any": [{"type": "MaxFuncCalls", "fmax": 2000}, "TargetCost(0.0)"]},
    "generator": {"type": "RandomGenerator"},
    "manager": {"backend": "threads", "max_jobs": 2, "seed": 1, "working_dir": "out"},
    "checkpointing": {"checkpoint_time_interval": 60},
    "logging": {"level": "info"},
}


def job(**changes) -> dict:
    """VALID with top-level keys replaced (None deletes the key)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def build(data: dict) -> dict:
    return build_manager_kwargs(validate(data))


def error(data: dict) -> JobFileError:
    with pytest.raises(JobFileError) as info:
        build(data)
    return info.value


# ------------------------------------------------------------ valid files

def test_valid_job_builds_expected_objects(tmp_path):
    spec = validate(job(), base_dir=tmp_path)
    assert isinstance(spec, JobSpec)
    kw = build_manager_kwargs(spec)
    assert isinstance(kw["task"], Rastrigin) and kw["task"].dims == 2
    assert kw["bounds"] == [(-5.0, 5.0), (-5.0, 5.0)]
    sel = kw["opt_selector"]
    assert isinstance(sel, CycleSelector)
    assert [o.opt_class for o in sel.options] == [CMAOptimizer, RandomOptimizer]
    assert sel.options[0].init_kwargs == {"sigma0": 0.3, "workers": 1}
    assert len(sel.allow_spawn) == 1 and isinstance(sel.allow_spawn[0], IterSpawnStop)
    assert sel.allow_spawn[0].max_calls == 1000
    assert isinstance(kw["x0_generator"], RandomGenerator)
    assert isinstance(kw["checkpoint_control"], CheckpointingControl)
    assert kw["checkpoint_control"].checkpoint_time_interval == 60
    assert kw["backend"] == "threads" and kw["max_jobs"] == 2
    assert kw["working_dir"] == str(tmp_path.resolve() / "out")
    assert kw["seed"] == spec.manager.seed
    assert spec.logging.level == "INFO"
    # the keys are exactly setup()'s parameters
    assert set(kw) == {"task", "bounds", "opt_selector", "working_dir", "overwrite_existing", "max_jobs", "backend",
                       "exit_conditions", "x0_generator", "stoppers", "share_best_solutions", "stopcheck_interval",
                       "apply_stoppers_to_best", "status_interval", "checkpoint_control", "summary_files",
                       "is_log_detailed", "force_terminations_after", "aggressive_stop", "end_timeout",
                       "split_printstreams", "seed"}


def test_minimal_job_uses_defaults():
    kw = build({"task": RASTRIGIN})
    assert kw["bounds"] == Rastrigin().bounds  # taken from the task
    # None: setup() fills in the recommended configuration (tests/test_defaults.py)
    assert kw["opt_selector"] is kw["stoppers"] is kw["exit_conditions"] is kw["x0_generator"] is None
    # the command line's defaults for cluster work (docs/jobfile.md): periodic checkpoints, every output
    control = kw["checkpoint_control"]
    assert (control.checkpoint_time_interval, control.keep_past) == (1800, 2) and kw["seed"] is None
    assert kw["backend"] == "processes" and kw["max_jobs"] is None and kw["summary_files"] == 3
    assert kw["split_printstreams"] is True and kw["end_timeout"] is None


def _structure(criterion) -> tuple:
    members = getattr(criterion, "members", None)
    if members is None:
        return (type(criterion), tuple(sorted(criterion.settings().items())))
    return (type(criterion), tuple(_structure(m) for m in members))


def test_stopper_expression_and_mapping_forms_build_the_same_structure():
    expr = build(job(stoppers="BestUnmoving(calls=100, tol=0.01) & MinFuncCalls(min_pts=50) | ValueAnnealing()",
                     manager={"backend": "threads"}))["stoppers"]
    mapping = build(job(stoppers={"any": [
        {"all": [{"type": "BestUnmoving", "calls": 100, "tol": 0.01}, "MinFuncCalls(50)"]},
        {"type": "ValueAnnealing"}]}, manager={"backend": "threads"}))["stoppers"]
    assert isinstance(expr, OrStopper) and isinstance(expr.members[0], AndStopper)
    assert [type(leaf) for leaf in expr] == [BestUnmoving, MinFuncCalls, ValueAnnealing]
    assert expr.members[0].members[0].calls == 100 and expr.members[0].members[0].tol == 0.01
    assert _structure(expr) == _structure(mapping)


def test_expression_precedence_and_parentheses():
    flat = build(job(stoppers="MinFuncCalls(1) | MinFuncCalls(2) & MinFuncCalls(3)"))["stoppers"]
    assert isinstance(flat, OrStopper) and isinstance(flat.members[1], AndStopper)
    grouped = build(job(stoppers="(MinFuncCalls(1) | MinFuncCalls(2)) & MinFuncCalls(3)"))["stoppers"]
    assert isinstance(grouped, AndStopper) and isinstance(grouped.members[0], OrStopper)
    chain = build(job(stoppers="MinFuncCalls(1) & MinFuncCalls(2) & MinFuncCalls(3)"))["stoppers"]
    assert isinstance(chain, AndStopper) and len(chain.members) == 3
    bare = build(job(stoppers="ValueAnnealing"))["stoppers"]
    assert isinstance(bare, ValueAnnealing)


def test_expression_literals():
    kw = build(job(stoppers="TypeHunter(CMAOptimizer) & BestUnmoving(calls=10, tol=0.5) | TypeStopper('X')",
                   exit_conditions="TargetCost(-1.5, atol=+1e-3) | MaxSeconds(overall_max=1e3)"))
    hunter, unmoving = kw["stoppers"].members[0].members
    assert hunter.opt_class == "CMAOptimizer" and unmoving.tol == 0.5
    assert kw["stoppers"].members[1].opt_class == "X"
    target, overall = kw["exit_conditions"].members
    assert (target.target, target.atol) == (-1.5, 1e-3) and overall.overall_max == 1000.0
    leaf = parse_expression("X(a=inf, b=null, c=true, d=[1, (2, 'x')], e=None, f=False)", "k")
    assert leaf.params == {"a": float("inf"), "b": None, "c": True, "d": [1, (2, "x")], "e": None, "f": False}


@pytest.mark.parametrize("family, alias, canonical", [
    ("stopper", "BestFunctionValueUnmoving", BestUnmoving),
    ("stopper", "TypeStopper", TypeHunter),
    ("exit condition", "MaxTotalFunctionCalls", MaxFuncCalls),
    ("exit condition", "TargetFunctionValue", TargetCost),
    ("exit condition", "TimeLimit", MaxSeconds),
    ("optimizer", "ScipyOptimizeWrapper", ScipyOptimizer),
])
def test_aliases_resolve_to_the_same_class(family, alias, canonical):
    assert resolve(family, alias, "x")[0] is canonical
    assert resolve(family, canonical.__name__, "x")[0] is canonical


def test_every_registered_name_resolves():
    for family, fam in FAMILIES.items():
        for name in [*fam.names, *fam.aliases]:
            assert isinstance(resolve(family, name, "x")[0], type)


def test_alias_positional_order_follows_the_alias():
    exits = build(job(exit_conditions="TimeLimitThroughRestarts(60) | TimeLimit(30) | MaxTotalFunctionCalls(10)"))
    assert isinstance(exits["exit_conditions"], OrExitCondition)
    through, session, calls = exits["exit_conditions"].members
    assert (through.overall_max, through.session_max) == (60, None)
    assert (session.session_max, session.overall_max) == (30, None)
    assert isinstance(calls, MaxFuncCalls) and calls.fmax == 10


def test_bounds_forms_and_injection():
    kw = build(job(bounds={"min": -1, "max": 2, "dims": 3}, task={"function": RASTRIGIN, "kwargs": {"dims": 3}},
                   stoppers="ParameterDistance(0.1)",
                   generator={"type": "PerturbationGenerator", "x0": [0, 0, 0], "scale": 0.5}))
    assert kw["bounds"] == [(-1.0, 2.0)] * 3
    stopper, gen = kw["stoppers"], kw["x0_generator"]
    assert isinstance(stopper, ParameterDistance) and stopper.relative_distance == 0.1
    assert isinstance(gen, PerturbationGenerator) and gen.bounds.tolist() == [[-1.0, 2.0]] * 3


def test_annealing_generator_gets_the_task():
    kw = build(job(generator={"type": "AnnealingGenerator", "maxiter": 2}))
    assert isinstance(kw["x0_generator"], AnnealingGenerator) and kw["x0_generator"].task is kw["task"]


def test_chain_selector_with_thresholds():
    kw = build(job(optimizers={"selector": "ChainSelector", "fcall_thresholds": [100],
                               "options": ["CMAOptimizer", {"type": "ScipyOptimizeWrapper", "method": "Powell"}]}))
    sel = kw["opt_selector"]
    assert isinstance(sel, ChainSelector) and sel.fcall_thresholds == (100,)
    assert sel.options[1].opt_class is ScipyOptimizer and sel.options[1].init_kwargs == {"method": "Powell"}


def test_seed_makes_components_reproducible():
    def draws():
        kw = build(job(generator="RandomGenerator", manager={"seed": 42}))
        return [kw["x0_generator"].generate(None).tolist() for _ in range(3)], np.random.random()

    assert draws() == draws()
    kw = build(job(generator="RandomGenerator", manager={"seed": 43}))
    assert kw["x0_generator"].generate(None).tolist() != draws()[0][0]


def test_job_file_paths_and_user_modules(tmp_path, monkeypatch):
    (tmp_path / "usertask_jobfile.py").write_text(textwrap.dedent("""
        from glompo_hpc.stoppers import BaseStopper

        def sphere(x):
            return float(sum(v * v for v in x))

        def make_task(scale):
            return lambda x: scale * sphere(x)

        class Never(BaseStopper):
            def __init__(self, patience=3):
                self.patience = patience
            def __call__(self, log, best_opt_id, tested_opt_id):
                return False

        class NotAStopper:
            pass
    """))
    (tmp_path / "job.yaml").write_text(textwrap.dedent("""
        task: usertask_jobfile:sphere
        bounds: [[-1, 1], [-1, 1]]
        stoppers: "usertask_jobfile.Never(5) | {type}"
        manager: {{working_dir: results, backend: threads}}
        logging: {{file: logs/run.log}}
    """).format(type="MinFuncCalls(10)"))
    monkeypatch.chdir("/")
    spec = load_job_file(tmp_path / "job.yaml")
    kw = build_manager_kwargs(spec)
    assert kw["task"]([1.0, 2.0]) == 5.0  # a plain function is the task itself
    assert kw["working_dir"] == str(tmp_path.resolve() / "results")
    assert spec.logging.file == str(tmp_path.resolve() / "logs" / "run.log")
    assert type(kw["stoppers"].members[0]).__name__ == "Never" and kw["stoppers"].members[0].patience == 5
    factory = build({"task": {"function": "usertask_jobfile:make_task", "kwargs": {"scale": 2}}, "bounds": [[0, 1]]})
    assert factory["task"]([3.0]) == 18.0  # a function given kwargs is a factory
    e = error({"task": RASTRIGIN, "stoppers": {"type": "usertask_jobfile:NotAStopper"}})
    assert e.key_path == "stoppers.type" and "not a BaseStopper subclass" in str(e)
    e = error({"task": "usertask_jobfile:sphere"})
    assert e.key_path == "bounds" and "no 'bounds' attribute" in str(e)


def test_overrides_are_validated_like_the_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job()))
    spec = load_job_file(path, {"manager": {"backend": "processes", "summary_files": 2}})
    assert (spec.manager.backend, spec.manager.summary_files, spec.manager.max_jobs) == ("processes", 2, 2)
    with pytest.raises(JobFileError, match=r"^manager\.max_jobs: expected an integer >= 1"):
        load_job_file(path, {"manager": {"max_jobs": 0}})


# ------------------------------------------------------------ mistakes

@pytest.mark.parametrize("data, key_path, fragments", [
    (job(colour="red"), "colour", ["unknown key", "valid keys: task (required)", "bounds=null", "optimizers=null", "manager={...}"]),
    (job(task=None), "task", ["missing required key"]),
    (job(manager={"max_jobs": "four"}), "manager.max_jobs", ["expected an integer >= 1", "'four'"]),
    (job(manager={"backend": "gpu"}), "manager.backend", ["'threads'", "'mpi'", "got 'gpu'"]),
    (job(manager={"summary_files": 4}), "manager.summary_files", ["0..3", "got 4"]),
    (job(manager={"overwrite_existing": "yes"}), "manager.overwrite_existing", ["true or false", "'yes'"]),
    (job(manager={"status_interval": "1e3"}), "manager.status_interval", ["write 1.0e+3"]),
    (job(manager={"workdir": "x"}), "manager.workdir", ["unknown key", "working_dir=null", "seed=null"]),
    (job(bounds=[[0, 1], [0, 1], [1.0, 1.0]]), "bounds[2]", ["min 1.0 >= max 1.0"]),
    (job(bounds={"min": 3, "max": 1, "dims": 2}), "bounds", ["min 3.0 >= max 1.0"]),
    (job(bounds=[[0, 1, 2]]), "bounds[0]", ["[min, max] pair", "[0, 1, 2]"]),
    (job(bounds="wide"), "bounds", ["'wide'"]),
    (job(task="no_such_module_xyz:f"), "task.function", ["cannot import", "no_such_module_xyz"]),
    (job(task="glompo_hpc.tasks.functions:Nope"), "task.function", ["no attribute 'Nope'"]),
    (job(task="not a path"), "task.function", ["'not a path'", "pkg.module:name"]),
    (job(task={"function": RASTRIGIN, "kwargs": {"dims": 0}}), "task", ["dims", "got 0"]),
    (job(stoppers="BestUnmovin(calls=1)"), "stoppers", ["unknown stopper 'BestUnmovin'", "did you mean 'BestUnmoving'",
                                                         "MinFuncCalls", "BestFunctionValueUnmoving = BestUnmoving"]),
    (job(stoppers="BestUnmoving(calls=5, foo=2)"), "stoppers", ["unknown parameter 'foo'", "calls (required), tol=0"]),
    (job(stoppers={"type": "BestUnmoving", "calls": 5, "tols": 1}), "stoppers.tols",
     ["unknown parameter 'tols'", "did you mean 'tol'", "calls (required), tol=0"]),
    (job(stoppers="BestUnmoving()"), "stoppers", ["needs parameter 'calls'"]),
    (job(stoppers="BestUnmoving(1, 2, 3)"), "stoppers", ["at most 2 positional"]),
    (job(stoppers={"type": "BestUnmoving", "calls": -1}), "stoppers.calls", ["calls", "-1"]),
    (job(stoppers=["MinFuncCalls(1)"]), "stoppers", ["{all: [...]} or {any: [...]}"]),
    (job(stoppers={"all": []}), "stoppers.all", ["non-empty list"]),
    (job(stoppers={"any": ["MinFuncCalls(1)", {"tpye": "MinFuncCalls"}]}), "stoppers.any[1]", ["missing key 'type'"]),
    (job(exit_conditions={"type": "MaxFuncCalls"}), "exit_conditions", ["needs parameter 'fmax'"]),
    (job(exit_conditions="MaxSeconds()"), "exit_conditions", ["MaxSeconds", "exactly one"]),
    (job(optimizers={"options": ["CMAOptimizer", {"type": "CMAOptimizer", "sigma0": -1}]}),
     "optimizers.options[1].sigma0", ["sigma0", "-1"]),
    (job(optimizers={"options": [{"type": "Adam"}]}), "optimizers.options[0].type", ["unknown optimizer 'Adam'",
                                                                                   "CMAOptimizer"]),
    (job(optimizers={"options": [{"type": "CMAOptimizer", "workers": 4}]}), "optimizers.options[0].workers",
     ["4 slots exceed manager.max_jobs = 2"]),
    (job(optimizers={"options": []}), "optimizers.options", ["non-empty list"]),
    (job(optimizers={"selector": "ChainSelector"}), "optimizers.fcall_thresholds", ["missing"]),
    (job(optimizers={"fcall_thresholds": [10]}), "optimizers.fcall_thresholds", ["CycleSelector takes no"]),
    (job(optimizers={"selector": "ChainSelector", "fcall_thresholds": [10, 5], "options": ["CMAOptimizer"] * 2}),
     "optimizers.fcall_thresholds", ["increase"]),
    (job(optimizers={"allow_spawn": [{"type": "IterSpawnStop", "max_calls": "x"}]}),
     "optimizers.allow_spawn[0].max_calls", ["'x'"]),
    (job(generator={"type": "PerturbationGenerator", "x0": [9, 9], "scale": 0.1}), "generator.x0", ["outside"]),
    (job(generator={"type": "glompo_hpc.stoppers:BestUnmoving"}), "generator.type", ["not a BaseGenerator subclass"]),
    (job(checkpointing={"keep_past": -3}), "checkpointing.keep_past", ["-3"]),
    (job(checkpointing={"count": 1}), "checkpointing.count", ["unknown key", "checkpoint_time_interval=inf"]),
    (job(logging={"level": "LOUD"}), "logging.level", ["'LOUD'", "DEBUG"]),
])
def test_mistakes_name_the_key_path_and_value(data, key_path, fragments):
    e = error(data)
    assert e.key_path == key_path
    message = str(e)
    assert message.startswith(f"{key_path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("expression", [
    "__import__('os').system('x')",
    "BestUnmoving(calls=open('/etc/passwd'))",
    "MinFuncCalls(1) and MinFuncCalls(2)",
    "MinFuncCalls(1) + MinFuncCalls(2)",
    "MinFuncCalls(**{'min_pts': 1})",
    "[MinFuncCalls(1)][0]",
    "lambda: 1",
    "MinFuncCalls(min_pts=(lambda: 5)())",
    "MinFuncCalls(1); import os",
    "MinFuncCalls(min_pts=1 if True else 2)",
    "getattr(MinFuncCalls, '__init__')",
    "MinFuncCalls(1).__class__",
    "MinFuncCalls(",
    "",
])
def test_unsafe_or_invalid_expressions_are_rejected(expression):
    e = error(job(stoppers=expression))
    assert e.key_path == "stoppers"
    assert "\n" not in str(e)


def test_dotted_names_in_expressions_are_never_called():
    e = error(job(stoppers="os.system('echo pwned')"))
    assert e.key_path == "stoppers" and "not a BaseStopper subclass" in str(e)


def test_yaml_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: glompo_hpc.tasks.functions:Rastrigin\nmanager:\n  backend: [threads\n")
    with pytest.raises(JobFileError, match=r"bad\.yaml: line \d+, column \d+: invalid YAML"):
        load_job_file(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- task\n- bounds\n")
    with pytest.raises(JobFileError, match=r"list\.yaml: line 1: the top level must be a mapping.*got a list"):
        load_job_file(top)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(JobFileError, match="empty"):
        load_job_file(empty)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_job_file(tmp_path / "missing.yaml")


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("task: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(JobFileError, match="invalid YAML"):
        load_job_file(path)


@pytest.mark.parametrize("text, fragment", [
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)),
     "an alias bomb"),
    ("task: " + "9" * 5000 + "\n", "cannot read the job file"),
])
def test_hostile_yaml_is_one_job_file_error_for_library_callers_too(tmp_path, text, fragment):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(JobFileError, match=fragment):
        load_job_file(path)


def test_a_line_break_in_a_slurm_value_is_refused_by_validation(tmp_path):
    with pytest.raises(JobFileError, match=r"slurm.job_name: .* holds a line break"):
        validate({"task": RASTRIGIN, "slurm": {"job_name": "x\nrm -rf ~"}}, base_dir=tmp_path)


# ------------------------------------------------------------ property: never another exception type

_text = st.sampled_from(["", "x", "CMAOptimizer", "BestUnmoving(1)", "MinFuncCalls(min_pts=2) | ValueAnnealing()",
                         "threads", "INFO", "x:y", "a.b", "(", RASTRIGIN, "1e3", "nan"]) | \
    st.text(alphabet="xyz01-:.[](),&|= '", max_size=12)
_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | _text
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                       max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


_ALL_PATHS = [p for p in _paths(VALID) if p]


@st.composite
def _mutated_jobs(draw):
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(_values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(_text)] = draw(_values)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the path
            pass
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_jobs())
def test_mutated_jobs_validate_or_fail_with_job_file_error(data):
    try:
        assert isinstance(validate(data), JobSpec)
    except JobFileError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_jobs())
def test_mutated_jobs_build_or_fail_with_job_file_error(data):
    try:
        spec = validate(data)
        build_manager_kwargs(spec)
    except JobFileError as e:
        assert str(e) and "\n" not in str(e)


def test_path_helpers_cover_the_valid_job():
    assert ("manager", "backend") in _ALL_PATHS and ("optimizers", "options", 1, "iters") in _ALL_PATHS


@pytest.mark.parametrize("world, mpi, max_jobs, idle", [
    (4, {}, 2, 1), (4, {}, 3, None), (4, {}, None, None), (8, {"slots": "cores", "cores_per_rank": 2}, 4, 5),
    (8, {"slots": "cores"}, 2, None),  # cores read on the ranks: unknown here, no guess
])
def test_idle_rank_warning_says_how_many_and_what_to_change(world, mpi, max_jobs, idle):
    from glompo_hpc.jobfile import idle_rank_warning

    spec = validate({**VALID, "manager": {"backend": "mpi", "max_jobs": max_jobs}, "mpi": mpi})
    warning = idle_rank_warning(spec, world)
    if idle is None:
        assert warning is None
    else:
        assert f"{idle} worker rank(s) will idle" in warning and "leave max_jobs out" in warning
        assert f"mpirun -n {world - idle}" in warning


def test_the_manager_section_is_the_settings_table():
    """``manager:`` has one key per row of core/settings.py's SETTINGS with a file_key (a new
    setting is one row there), each checked: a wrong type is refused naming the key, a right
    value reaches setup() unchanged."""
    import dataclasses

    from glompo_hpc.core.settings import SETTINGS
    from glompo_hpc.jobfile.schema import ManagerSpec

    rows = [row for row in SETTINGS if row.file_key is not None]
    assert [f.name for f in dataclasses.fields(ManagerSpec)] == [row.name for row in rows]
    for row in rows:
        with pytest.raises(JobFileError, match=rf"^manager\.{row.name}: expected .*, got \[1\]"):
            validate(job(manager={row.name: [1]}))
    given = {"seed": 7, "backend": "threads", "max_jobs": 2, "status_interval": 0.5,
             "end_timeout": 3.0, "summary_files": 1, "aggressive_stop": True}
    assert {k: getattr(validate(job(manager=given)).manager, k) for k in given} == given
