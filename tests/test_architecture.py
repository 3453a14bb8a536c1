"""The package's import graph against the layers of docs/architecture.md (tools/import_layers.py).

No import cycles at all, lazy imports included; no module-level import from a lower layer to a
higher one; the few imports inside functions that run upward are listed here with their reason
(the list may shrink, never grow, so a change that adds one fails here and says which). The
layer order itself is written once, in tools/import_layers.py's LAYERS.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import import_layers  # noqa: E402

# Imports inside functions that run upward, each for a reason written here. ``compat`` (GloMPO
# 3.1's spellings) sits in the protocol layer because the evaluation log applies it; two of its
# translations build a component when one is asked for.
LAZY_UPWARD = {
    ("compat.options", "optimizers.base"),    # checks an optimizer option's keywords against its class
    ("compat.table", "exit_conditions"),      # 3.1's convergence_checker=None meant KillsAfterConvergence()
}


def test_no_import_cycles():
    assert import_layers.cycles(import_layers.read_modules(), lazy=True) == []


def test_no_upward_imports():
    upward = import_layers.upward_imports(import_layers.read_modules())
    assert upward == [], f"imports from a lower layer to a higher one: {upward}"


def test_no_new_lazy_upward_imports():
    new = set(import_layers.upward_imports(import_layers.read_modules(), lazy=True)) - LAZY_UPWARD
    assert not new, f"imports inside functions from a lower layer to a higher one: {sorted(new)}"


def test_the_manager_imports_no_backend_and_no_output():
    """core/ reaches the transports and the output files only through core/plugins.py's registries."""
    modules = import_layers.read_modules()
    reached = {(name, target) for name, module in modules.items() if import_layers.layer_of(name) <= 2
               for target in module.eager | module.lazy if target.split(".")[0] in ("backends", "outputs")}
    assert reached == set()


def test_the_layer_order():
    """Written once, in tools/import_layers.py: what may import what."""
    names = [name for name, _ in import_layers.LAYERS]
    assert names == ["protocol", "components", "core", "backends+outputs", "entry points"]
    layer = import_layers.layer_of
    assert layer("protocol.messages") < layer("optimizers.base") < layer("core.session") < layer("backends.mpi")
    assert layer("core.signals") == layer("compat") == 0
    assert layer("optimizers.conformance") == 4  # runs a real backend: a front end beside the optimizers


def test_every_module_has_a_layer():
    for name in import_layers.read_modules():
        import_layers.layer_of(name)  # raises for a module no layer names


def test_the_checker_sees_a_cycle_and_an_upward_import():
    modules = {name: import_layers.Module(name, Path(name), 1) for name in ("errors", "cli")}
    modules["errors"].eager.add("cli")
    modules["cli"].lazy.add("errors")
    assert import_layers.upward_imports(modules) == [("errors", "cli")]
    assert import_layers.cycles(modules) == []
    assert import_layers.cycles(modules, lazy=True) == [["cli", "errors"]]
