"""Generators pickled before generators.py became a package (tests/fixtures/generators_before_split.dill,
written with dill by the single-module code) load after it: a checkpoint names them by
``glompo_hpc.generators.<Class>``, which the package keeps importable, with their random state."""

from __future__ import annotations

from pathlib import Path

import dill

from glompo_hpc import generators

FIXTURE = Path(__file__).parent / "fixtures" / "generators_before_split.dill"


def test_generators_pickled_by_the_single_module_load_from_the_package():
    with FIXTURE.open("rb") as f:
        fixture = dill.load(f)
    assert set(fixture["pickles"]) == set(generators.__all__) - {"BaseGenerator"}
    for name, data in fixture["pickles"].items():
        assert b"glompo_hpc.generators\x94" in data  # written when the classes lived in that module
        generator = dill.loads(data)
        assert type(generator) is getattr(generators, name)
        assert str(generator) == fixture["expected"][name]["str"]
        assert generator.rng.random() == fixture["expected"][name]["next"]  # the random state went through
