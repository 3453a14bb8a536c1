"""Tests of the benchmark functions in glompo_hpc.tasks."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np
import pytest

import glompo_hpc.tasks as tasks
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.tasks import (ALL_FUNCTIONS, Ackley, BaseFunction, Griewank, LennardJones, Levy,
                              Michalewicz, Rastrigin, Rosenbrock, Schwefel, Shekel, StyblinskiTang)

CASES = [
    Rastrigin(1), Rastrigin(2), Rastrigin(10),
    Ackley(1), Ackley(3), Ackley(10),
    Griewank(2), Griewank(7),
    Levy(1), Levy(2), Levy(6),
    Michalewicz(2), Michalewicz(5), Michalewicz(10),
    Schwefel(1), Schwefel(2), Schwefel(6),
    StyblinskiTang(1), StyblinskiTang(3), StyblinskiTang(8),
    Rosenbrock(2), Rosenbrock(3), Rosenbrock(10),
    Shekel(m=5), Shekel(m=7), Shekel(m=10),
    LennardJones(2), LennardJones(3), LennardJones(5), LennardJones(13),
    Rastrigin(3, shift_positive=True), Michalewicz(5, shift_positive=True),
    StyblinskiTang(4, shift_positive=True), Shekel(m=7, shift_positive=True),
    LennardJones(6, shift_positive=True),
]
WITH_MIN_X = [f for f in CASES if f.min_x is not None]
TOL = 1e-9


def sample(f: tasks.functions.BenchmarkFunction, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` points drawn uniformly from the bounds of ``f``."""
    low, high = np.array(f.bounds).T
    return np.random.default_rng(seed).uniform(low, high, size=(n, f.dims))


# ---- minima ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("f", WITH_MIN_X, ids=repr)
def test_value_at_min_x_is_min_fx(f):
    assert f.min_x.shape == (f.dims,)
    assert all(lo <= xi <= hi for xi, (lo, hi) in zip(f.min_x, f.bounds))
    assert f(f.min_x) == pytest.approx(f.min_fx, abs=TOL)


@pytest.mark.parametrize("f", WITH_MIN_X, ids=repr)
def test_min_x_beats_its_neighbourhood(f):
    steps = np.random.default_rng(1).normal(scale=1e-3, size=(20, f.dims))
    assert all(f(f.min_x + step) >= f.min_fx - TOL for step in steps)


@pytest.mark.parametrize("f", CASES, ids=repr)
def test_random_points_are_not_below_the_minimum_and_worse_than_it(f):
    values = np.array([f(x) for x in sample(f)])
    assert np.all(values >= f.min_fx - TOL)
    assert np.all(values > f.min_fx + 1e-6)  # the minimum is not flat across the domain


@pytest.mark.parametrize(("dims", "published", "tol"), [(2, -1.8013, 5e-5), (5, -4.687658, 5e-7),
                                                        (10, -9.66015, 5e-6)])
def test_michalewicz_matches_published_minima(dims, published, tol):
    assert Michalewicz(dims).min_fx == pytest.approx(published, abs=tol)


@pytest.mark.parametrize(("m", "published"), [(5, -10.1532), (7, -10.4029), (10, -10.5364)])
def test_shekel_matches_published_minima(m, published):
    assert Shekel(m=m).min_fx == pytest.approx(published, abs=5e-5)


def test_schwefel_and_styblinski_tang_match_published_minimizers():
    assert Schwefel(3).min_x == pytest.approx([420.9687] * 3, abs=5e-5)
    assert StyblinskiTang(3).min_x == pytest.approx([-2.903534] * 3, abs=5e-7)
    assert StyblinskiTang(3).min_fx == pytest.approx(-39.16617 * 3, abs=1e-4)


@pytest.mark.parametrize("f", [Rastrigin(4, shift_positive=True), Levy(3, shift_positive=True),
                               Michalewicz(3, shift_positive=True), Shekel(shift_positive=True),
                               StyblinskiTang(2, shift_positive=True)], ids=repr)
def test_shift_positive_moves_the_minimum_to_zero(f):
    assert f.min_fx == 0.0
    assert f(f.min_x) == pytest.approx(0.0, abs=TOL)
    unshifted = type(f)(**{"dims": f.dims, **({"m": f.m} if hasattr(f, "m") else {})})
    x = sample(f, n=1)[0]
    assert f(x) - unshifted(x) == pytest.approx(-unshifted.min_fx)


def test_shift_positive_uses_the_pair_bound_when_the_minimum_is_unknown():
    f = LennardJones(20, shift_positive=True)
    assert f.min_fx is None and f.min_x is None
    x = sample(f, n=1)[0]
    assert f(x) - LennardJones(20)(x) == pytest.approx(20 * 19 / 2)


# ---- Lennard-Jones -------------------------------------------------------------------------------
R_MIN = 2 ** (1 / 6)


def rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q


def test_lennard_jones_dimer_at_the_pair_minimum_gives_minus_one():
    f = LennardJones(2)
    pos = np.array([[0.0, 0.0, 0.0], [R_MIN, 0.0, 0.0]])
    assert f(pos.ravel()) == pytest.approx(-1.0, abs=TOL)
    moved = pos @ rotation(0).T + [0.1, -0.2, 0.3]
    assert f(moved.ravel()) == pytest.approx(-1.0, abs=TOL)
    fx, repulsion, attraction, min_distance = f.detailed_call(moved.ravel())
    assert (repulsion, attraction, min_distance) == pytest.approx((1.0, -2.0, R_MIN))


def test_lennard_jones_triangle_and_tetrahedron_are_the_known_minima():
    triangle = R_MIN * np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0]])
    assert LennardJones(3)(triangle.ravel()) == pytest.approx(-3.0, abs=TOL)
    tetrahedron = R_MIN / math.sqrt(8) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    assert LennardJones(4)(tetrahedron.ravel()) == pytest.approx(-6.0, abs=TOL)


def test_lennard_jones_table_and_overlapping_atoms():
    assert [LennardJones(n).min_fx for n in (2, 3, 4, 13)] == [-1.0, -3.0, -6.0, -44.326801]
    assert LennardJones(14).min_fx is None
    assert LennardJones(3).dims == 9 and len(LennardJones(3).bounds) == 9
    assert LennardJones(2)(np.zeros(6)) == math.inf


# ---- detailed_call, headers ------------------------------------------------------------------------
@pytest.mark.parametrize("f", CASES, ids=repr)
def test_detailed_call_agrees_with_call_and_headers(f):
    headers = f.headers()
    for x in sample(f, n=5, seed=2):
        fx, *extras = f.detailed_call(x)
        assert fx == f(x)
        assert isinstance(fx, float)
        assert len(extras) == (0 if headers is None else len(headers))
        for extra, dtype in zip(extras, (headers or {}).values()):
            assert np.asarray(extra).dtype.kind == np.dtype(dtype).kind


@pytest.mark.parametrize("f", [Rastrigin(5), Rosenbrock(5)], ids=repr)
def test_extras_add_up_to_the_value(f):
    x = sample(f, n=1)[0]
    fx, first, second = f.detailed_call(x)
    assert first + second == pytest.approx(fx)


def test_griewank_ackley_and_shekel_extras():
    assert Griewank(3).detailed_call([0, 0, 0]) == (0.0, 0.0, 1.0)
    fx, radial, cosine = Ackley(2).detailed_call([0.0, 0.0])
    assert (radial, cosine) == pytest.approx((-20.0, -math.e))
    assert Shekel(m=10).detailed_call([1.0, 1.0, 1.0, 1.0])[1] == 1
    assert Levy(2).headers() is None and Levy(2).detailed_call([1, 1]) == (Levy(2)([1, 1]),)


# ---- delay ----------------------------------------------------------------------------------------
def test_delay_makes_each_call_take_at_least_delay():
    f = Rastrigin(2, delay=0.05)
    for call in (f, f.detailed_call):
        start = time.perf_counter()
        call([0.5, 0.5])
        assert time.perf_counter() - start >= 0.05


# ---- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("f", [Rastrigin(3), Shekel(), LennardJones(2), Michalewicz(2)], ids=repr)
def test_wrong_length_raises_naming_it(f):
    with pytest.raises(ConfigurationError, match=f"got length {f.dims + 1}"):
        f(np.zeros(f.dims + 1))
    with pytest.raises(ConfigurationError, match=f"got length {f.dims - 1}"):
        f.detailed_call([0.0] * (f.dims - 1))
    with pytest.raises(ConfigurationError, match=r"got shape \(2, "):
        f(np.zeros((2, f.dims)))


@pytest.mark.parametrize(("build", "named"), [
    (lambda: Rastrigin(0), "0"), (lambda: Ackley(-3), "-3"), (lambda: Levy(2.5), "2.5"),
    (lambda: Griewank(True), "True"), (lambda: Schwefel("3"), "'3'"),
    (lambda: Rastrigin(2, delay=-1), "-1"), (lambda: Ackley(2, delay=math.nan), "nan"),
    (lambda: Levy(2, delay=math.inf), "inf"), (lambda: Rosenbrock(1), "1"),
    (lambda: Shekel(3), "3"), (lambda: Shekel(m=6), "6"), (lambda: LennardJones(1), "1"),
    (lambda: Michalewicz(2, m=0), "0"),
])
def test_bad_arguments_raise_naming_the_value(build, named):
    with pytest.raises(ConfigurationError, match=f"got .*{named}"):
        build()


# ---- repr, pickling, exports --------------------------------------------------------------------
def test_repr():
    assert repr(Rastrigin(dims=5)) == "Rastrigin(dims=5)"
    assert repr(Ackley(3, delay=0.5, shift_positive=True)) == \
        "Ackley(dims=3, delay=0.5, shift_positive=True)"
    assert repr(Michalewicz(2, m=5)) == "Michalewicz(dims=2, m=5.0)"
    assert repr(Shekel(m=7)) == "Shekel(dims=4, m=7)"
    assert repr(LennardJones(4)) == "LennardJones(atoms=4)"


@pytest.mark.parametrize("f", CASES + [Rastrigin(2, delay=0.01)], ids=repr)
def test_pickle_round_trip(f):
    g = pickle.loads(pickle.dumps(f))
    assert repr(g) == repr(f)
    assert (g.dims, g.bounds, g.min_fx, g.delay) == (f.dims, f.bounds, f.min_fx, f.delay)
    x = sample(f, n=1)[0]
    assert g.detailed_call(x) == f.detailed_call(x)


def test_exports():
    names = {cls.__name__ for cls in ALL_FUNCTIONS}
    assert names == {"Rastrigin", "Ackley", "Griewank", "Levy", "Michalewicz", "Schwefel",
                     "StyblinskiTang", "Rosenbrock", "Shekel", "LennardJones"}
    assert all(issubclass(cls, BaseFunction) and name in tasks.__all__ for cls, name in
               zip(ALL_FUNCTIONS, (cls.__name__ for cls in ALL_FUNCTIONS)))
    assert "BaseFunction" in tasks.__all__
