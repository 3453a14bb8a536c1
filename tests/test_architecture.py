"""The package's import graph against the layers of docs/architecture.md (tools/import_layers.py).

No import cycles at all, lazy imports included. The upward imports and long modules that remain
(issue 13's open part) are listed here by name: the lists may shrink, never grow, so a change
that adds one fails here and says which.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import import_layers  # noqa: E402

KNOWN_UPWARD = {
    ("core.manager", "backends"),
    ("core.session", "backends"),
    ("core.settings", "backends"),
    ("optimizers.base", "core.messages"),
    ("optimizers.base", "core.result"),
    ("optimizers.conformance", "backends.base"),
    ("optimizers.conformance", "backends.child_host"),
    ("optimizers.conformance", "backends.threads"),
    ("optimizers.conformance", "core.messages"),
    ("stoppers", "core.optlog"),
}


def test_no_import_cycles():
    assert import_layers.cycles(import_layers.read_modules(), lazy=True) == []


def test_no_new_upward_imports():
    new = set(import_layers.upward_imports(import_layers.read_modules())) - KNOWN_UPWARD
    assert not new, f"imports from a lower layer to a higher one: {sorted(new)}"


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
