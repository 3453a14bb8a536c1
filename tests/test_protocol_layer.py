"""The protocol layer's moved modules and the registries through which the manager reaches its
transports and output files (docs/architecture.md, the layers)."""

from __future__ import annotations

import importlib
import pickletools
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from support.optimizers import WalkOptimizer, sphere

from glompo_hpc import CycleSelector, GloMPOManager, MaxFuncCalls
from glompo_hpc.backends.threads import ThreadsBackend
from glompo_hpc.core import plugins
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.outputs.run_outputs import FileOutputs
from glompo_hpc.protocol import MOVED_MODULES
from glompo_hpc.protocol.optlog import OptimizerLog

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_from_main_b80b930.tar"
BOUNDS = [(-5.0, 5.0)] * 2


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_an_old_module_path_is_the_moved_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_every_alias_module_is_listed_as_moved():
    package = Path(importlib.import_module("glompo_hpc").__file__).parent
    aliases = {"glompo_hpc." + ".".join(path.relative_to(package).with_suffix("").parts)
               for path in package.rglob("*.py") if "sys.modules[__name__] = " in path.read_text()}
    assert aliases == set(MOVED_MODULES)


def test_the_package_itself_imports_the_new_paths_only():
    """The alias modules are for users' checkpoints and scripts; code that imported through them
    would tie the layers to the old places again."""
    package = Path(importlib.import_module("glompo_hpc").__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        module = "glompo_hpc." + ".".join(path.relative_to(package).with_suffix("").parts)
        if module in MOVED_MODULES:
            continue
        for imported in imported_modules(path, module):
            if imported in MOVED_MODULES:
                offenders.append(f"{module} imports {imported}")
    assert not offenders, offenders


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of the modules that ``path`` imports (relative imports resolved)."""
    import ast
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_patching_through_an_old_path_reaches_the_code_that_reads_it(monkeypatch):
    monkeypatch.setattr("glompo_hpc.core.optlog.DEFAULT_TAIL_ROWS", 7)
    assert importlib.import_module("glompo_hpc.protocol.optlog").DEFAULT_TAIL_ROWS == 7


def _modules_named(pickle_bytes: bytes) -> set[str]:
    return {str(arg) for _, arg, _ in pickletools.genops(pickle_bytes) if str(arg).startswith("glompo_hpc.")}


def test_a_checkpoint_from_main_loads_without_the_old_modules(tmp_path, monkeypatch):
    with tarfile.open(FIXTURE) as archive:
        named = _modules_named(archive.extractfile("manager.pkl").read())
    assert {"glompo_hpc.core.optlog", "glompo_hpc.core.result"} <= named  # what makes this test mean something
    plugins.backend_names(), plugins.run_outputs()  # the built-in providers load before the old paths vanish
    for old in MOVED_MODULES:
        monkeypatch.setitem(sys.modules, old, None)  # 'import glompo_hpc.core.optlog' now fails
    path = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, path)
    manager = GloMPOManager.load_manager(path, working_dir=tmp_path / "resumed", backend="threads")
    assert type(manager.opt_log) is OptimizerLog and manager.f_counter == 168


def test_an_unknown_backend_is_refused_naming_it_and_the_registered_ones():
    with pytest.raises(ConfigurationError, match=r"backend must be one of \('threads', 'processes', "
                                                 r"'processes_forced', 'mpi'\), got 'carrier-pigeon'"):
        plugins.backend_kind("carrier-pigeon")


class _RecordingOutputs(FileOutputs):
    def __init__(self):
        self.calls: list[str] = []

    def open_log_sink(self, manager):
        self.calls.append("open_log_sink")
        return super().open_log_sink(manager)

    def write_outputs(self, manager):
        self.calls.append("write_outputs")
        super().write_outputs(manager)


@pytest.fixture
def registries():
    """Restores the built-in registrations after a test replaces them."""
    threads, outputs = plugins.backend_kind("threads"), plugins.run_outputs()
    yield
    plugins.register_backend(threads)
    plugins.register_outputs(outputs)


def test_the_session_runs_the_registered_transport_and_outputs(tmp_path, registries):
    made: list[ThreadsBackend] = []

    def make() -> ThreadsBackend:
        made.append(ThreadsBackend())
        return made[-1]

    plugins.register_backend(plugins.backend_kind("threads")._replace(make=make))
    outputs = _RecordingOutputs()
    plugins.register_outputs(outputs)
    manager = GloMPOManager.new_manager(sphere, BOUNDS, CycleSelector((WalkOptimizer, {"iters": 20})),
                                        working_dir=tmp_path, max_jobs=2, backend="threads",
                                        exit_conditions=MaxFuncCalls(100), summary_files=1)
    manager.start_manager()
    assert len(made) == 1 and manager.f_counter >= 100
    assert outputs.calls == ["open_log_sink", "write_outputs"]
    assert (tmp_path / "glompo_manager_log.yml").exists()
