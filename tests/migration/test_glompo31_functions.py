"""Test functions: the guide's table of differences from GloMPO 3.1 covers each one and is true."""

from __future__ import annotations

import re

import numpy as np
import pytest

from glompo_hpc.compat.guide import GUIDE
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.tasks import ALL_FUNCTIONS, LennardJones, Levy, Rosenbrock, Schwefel, Shekel, StyblinskiTang


def _function_rows() -> dict[str, str]:
    text = GUIDE.read_text()
    section = text[text.index("## Test functions"):]
    section = section[:section.index("\n## ", 1)]
    return dict(re.findall(r"^\| `(\w+)` \| (.*)$", section, re.M))


def test_every_function_has_a_row_saying_how_it_differs_from_31():
    rows = _function_rows()
    assert set(rows) == {cls.__name__ for cls in ALL_FUNCTIONS}


def test_the_documented_differences_hold():
    x = np.array([100.0, -250.0, 7.0])
    glompo31_schwefel = np.sum(-x * np.sin(np.sqrt(np.abs(x))))
    assert Schwefel(3)(x) == pytest.approx(glompo31_schwefel + 418.982887 * 3, abs=1e-5)
    w = 1 + (np.array([2.0, -3.0]) - 1) / 4
    glompo31_levy = (np.sin(np.pi * w[0]) ** 2 + np.sum((w - 1) ** 2 * (1 + 10 * np.sin(np.pi * w + 1) ** 2))
                     + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))
    assert Levy(2)([2.0, -3.0]) != pytest.approx(glompo31_levy)
    assert StyblinskiTang(2).bounds[0] == (-5.0, 5.0) and Rosenbrock(2).bounds[0] == (-5.0, 10.0)
    assert Shekel().bounds[0] == (0.0, 10.0)
    with pytest.raises(ConfigurationError):
        Shekel(dims=2)


def test_lennard_jones_takes_31s_atoms_dims_eps_sigma_and_has_an_analytic_gradient():
    lj = LennardJones(4, 2, eps=1.5, sigma=0.8)  # 3.1's positional (atoms, dims), then eps and sigma
    assert lj.dims == 8 and lj.spatial_dims == 2 and len(lj.bounds) == 8
    assert repr(lj) == "LennardJones(atoms=4, dims=2, eps=1.5, sigma=0.8)"
    pair = LennardJones(2, eps=2.0, sigma=1.5)
    r_min = 2 ** (1 / 6) * 1.5  # a pair's minimum: -eps at 2^(1/6) sigma
    assert pair([0, 0, 0, r_min, 0, 0]) == pytest.approx(-2.0)
    assert pair.min_fx == pytest.approx(-2.0) and LennardJones(5, dims=2).min_fx is None
    rng = np.random.default_rng(3)
    for f in (lj, LennardJones(5), pair):
        x = rng.uniform(*f.bounds[0], f.dims)
        h = 1e-6
        numeric = [(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(f.dims)]
        assert np.allclose(f.jacobian(x), numeric, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigurationError, match="eps"):
        LennardJones(3, eps=0)
