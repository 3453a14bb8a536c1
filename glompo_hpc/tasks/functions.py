"""Benchmark test functions with known global minima.

Every class is a BaseFunction evaluated at one point ``x`` (a list or array of length ``dims``)
with vectorised numpy arithmetic. Each carries ``bounds`` (its standard search domain), ``min_x``
and ``min_fx`` (the global minimum, None where it is not unique or not known) and ``dims``.

Common constructor arguments:

* ``delay``: seconds to sleep in every evaluation, to mimic an expensive task.
* ``shift_positive``: add ``-min_fx`` so that the global minimum sits at 0 (``min_fx`` then
  reads 0.0); where the minimum is unknown, add minus a proven lower bound instead.

Formulas and minima follow S. Surjanovic & D. Bingham, *Virtual Library of Simulation
Experiments: Test Functions and Datasets* (https://www.sfu.ca/~ssurjano), unless stated otherwise.
Where we carry more digits than published (Schwefel, Styblinski-Tang, Shekel, Michalewicz), the
class docstring says how they were refined. ``ALL_FUNCTIONS`` lists every class.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..validation import check_int, check_number
from .benchmark import BenchmarkFunction

__all__ = ("Rastrigin", "Ackley", "Griewank", "Levy", "Michalewicz", "Schwefel", "StyblinskiTang",
           "Rosenbrock", "Shekel", "LennardJones", "ALL_FUNCTIONS")


class Rastrigin(BenchmarkFunction):
    """Rastrigin: f(x) = 10 d + sum_i [x_i^2 - 10 cos(2 pi x_i)] on [-5.12, 5.12]^d.

    Global minimum f(0, ..., 0) = 0. Extras: the ``quadratic`` part sum_i x_i^2 and the
    ``cosine`` part 10 sum_i [1 - cos(2 pi x_i)]; they add up to f.
    """

    _DOMAIN = (-5.12, 5.12)
    _HEADERS = {"quadratic": "float64", "cosine": "float64"}

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        quadratic = float(np.sum(x**2))
        cosine = float(10.0 * np.sum(1.0 - np.cos(2.0 * np.pi * x)))
        return quadratic + cosine, quadratic, cosine

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.zeros(self.dims), 0.0


class Ackley(BenchmarkFunction):
    """Ackley: f(x) = -a exp(-b sqrt(mean_i x_i^2)) - exp(mean_i cos(c x_i)) + a + e.

    With a = 20, b = 0.2, c = 2 pi, on [-32.768, 32.768]^d. Global minimum f(0, ..., 0) = 0. Extras: the ``radial`` term
    -a exp(-b sqrt(mean x^2)) and the ``cosine`` term -exp(mean cos(c x)).
    """

    _DOMAIN = (-32.768, 32.768)
    _HEADERS = {"radial": "float64", "cosine": "float64"}

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        radial = float(-20.0 * np.exp(-0.2 * np.sqrt(np.mean(x**2))))
        cosine = float(-np.exp(np.mean(np.cos(2.0 * np.pi * x))))
        return radial + cosine + 20.0 + np.e, radial, cosine

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.zeros(self.dims), 0.0


class Griewank(BenchmarkFunction):
    """Griewank: f(x) = 1 + sum_i x_i^2 / 4000 - prod_i cos(x_i / sqrt(i)) on [-600, 600]^d.

    Global minimum f(0, ..., 0) = 0. Extras: the ``quadratic`` sum and the cosine ``product``.
    """

    _DOMAIN = (-600.0, 600.0)
    _HEADERS = {"quadratic": "float64", "product": "float64"}

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        quadratic = float(np.sum(x**2) / 4000.0)
        product = float(np.prod(np.cos(x / np.sqrt(np.arange(1, self.dims + 1)))))
        return 1.0 + quadratic - product, quadratic, product

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.zeros(self.dims), 0.0


class Levy(BenchmarkFunction):
    """Levy: with w_i = 1 + (x_i - 1) / 4, on [-10, 10]^d,

    f(x) = sin^2(pi w_1) + sum_{i<d} (w_i - 1)^2 [1 + 10 sin^2(pi w_i + 1)]
           + (w_d - 1)^2 [1 + sin^2(2 pi w_d)].

    Global minimum f(1, ..., 1) = 0.
    """

    _DOMAIN = (-10.0, 10.0)

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        w = 1.0 + (x - 1.0) / 4.0
        head = np.sin(np.pi * w[0]) ** 2
        middle = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(np.pi * w[:-1] + 1.0) ** 2))
        tail = (w[-1] - 1.0) ** 2 * (1.0 + np.sin(2.0 * np.pi * w[-1]) ** 2)
        return (head + middle + tail,)

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.ones(self.dims), 0.0


@functools.lru_cache(maxsize=None)
def _michalewicz_coordinate(i: int, m: float) -> tuple[float, float]:
    """Minimizer and minimum over [0, pi] of the i-th Michalewicz term -sin(x) sin^2m(i x^2 / pi)."""
    from scipy.optimize import minimize_scalar

    def term(x: Any) -> Any:
        return -np.sin(x) * (np.sin(i * x**2 / np.pi) ** 2) ** m

    # The term has about i sharp peaks; the grid resolves each and the three best are refined.
    grid = np.linspace(0.0, np.pi, 200 * i + 1001)
    values = term(grid)
    lowest = np.argsort(values)[:3]
    step = grid[1]
    refined = [minimize_scalar(term, bounds=(max(grid[k] - step, 0.0), min(grid[k] + step, np.pi)),
                               method="bounded", options={"xatol": 1e-12}) for k in lowest]
    best = min(refined, key=lambda r: r.fun)
    return float(best.x), float(best.fun)


class Michalewicz(BenchmarkFunction):
    """Michalewicz: f(x) = -sum_i sin(x_i) sin^(2m)(i x_i^2 / pi) on [0, pi]^d, steepness m (10).

    Published minima for m = 10 (Surjanovic & Bingham): -1.8013 (d = 2), -4.687658 (d = 5),
    -9.66015 (d = 10). The function is separable, so ``min_x`` and ``min_fx`` for any d and m follow
    from one-dimensional minima, computed once per coordinate (dense grid, then bounded Brent
    refinement); they reproduce the published values.
    """

    _DOMAIN = (0.0, math.pi)

    def __init__(self, dims: int = 2, delay: float = 0.0, shift_positive: bool = False,
                 m: float = 10.0):
        if isinstance(m, bool) or not isinstance(m, (int, float, np.number)) or not m > 0:
            raise ConfigurationError(f"m must be a number > 0, got {m!r}")
        self.m = float(m)
        super().__init__(dims, delay, shift_positive)

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        i = np.arange(1, self.dims + 1)
        return (-np.sum(np.sin(x) * (np.sin(i * x**2 / np.pi) ** 2) ** self.m),)

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        coords, values = zip(*(_michalewicz_coordinate(i, self.m) for i in range(1, self.dims + 1)))
        return np.array(coords), float(sum(values))

    def _repr_args(self) -> dict[str, Any]:
        return {"dims": self.dims} | ({} if self.m == 10.0 else {"m": self.m})


class Schwefel(BenchmarkFunction):
    """Schwefel: f(x) = 418.982887272433 d - sum_i x_i sin(sqrt|x_i|) on [-500, 500]^d.

    Global minimum f(420.968748785682, ...) = 0. The constant is the maximum of x sin(sqrt x),
    refined from the published 418.9829 so that the minimum is 0 rather than 1.27e-5 d.
    """

    _DOMAIN = (-500.0, 500.0)
    _PEAK_X = 420.9687487856824
    _PEAK_FX = 418.982887272433

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        return (self._PEAK_FX * self.dims - np.sum(x * np.sin(np.sqrt(np.abs(x)))),)

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.full(self.dims, self._PEAK_X), 0.0


class StyblinskiTang(BenchmarkFunction):
    """Styblinski-Tang: f(x) = 1/2 sum_i (x_i^4 - 16 x_i^2 + 5 x_i) on [-5, 5]^d.

    Global minimum f(-2.903534031400779, ...) = -39.16616570377141 d, by bounded Brent
    minimization of the one-dimensional term; the often quoted -39.16599 d is off in the 4th
    decimal, while the minimizer -2.903534 agrees.
    """

    _DOMAIN = (-5.0, 5.0)
    _MIN_COORD = -2.903534031400779
    _MIN_PER_DIM = -39.16616570377141

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        return (0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x),)

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.full(self.dims, self._MIN_COORD), self._MIN_PER_DIM * self.dims


class Rosenbrock(BenchmarkFunction):
    """Rosenbrock: f(x) = sum_{i<d} [100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2] on [-5, 10]^d, d >= 2.

    Global minimum f(1, ..., 1) = 0. Extras: the ``valley`` part sum 100 (x_{i+1} - x_i^2)^2
    and the ``distance`` part sum (1 - x_i)^2; they add up to f.
    """

    _DOMAIN = (-5.0, 10.0)
    _HEADERS = {"valley": "float64", "distance": "float64"}

    def __init__(self, dims: int = 2, delay: float = 0.0, shift_positive: bool = False):
        super().__init__(dims, delay, shift_positive, min_dims=2)

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        valley = float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2))
        distance = float(np.sum((1.0 - x[:-1]) ** 2))
        return valley + distance, valley, distance

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        return np.ones(self.dims), 0.0


_SHEKEL_A = np.array([[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7],
                      [2, 9, 2, 9], [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]])
_SHEKEL_C = np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5]) / 10.0
# m: (min_x, min_fx), refined by Nelder-Mead then BFGS from (4, 4, 4, 4).
_SHEKEL_MINIMA = {
    5: ((4.0000371524, 4.0001332787, 4.0000371511, 4.0001332771), -10.153199679058229),
    7: ((4.0005729143, 4.0006893660, 3.9994897108, 3.9996061600), -10.402940566818662),
    10: ((4.0007465303, 4.0005929368, 3.9996633958, 3.9995097993), -10.536409816692045),
}


class Shekel(BenchmarkFunction):
    """Shekel: f(x) = -sum_{j<m} 1 / (sum_k (x_k - A_jk)^2 + c_j) on [0, 10]^4, m in {5, 7, 10}.

    A and c are the standard tables (Dixon & Szego 1978). Published minima near (4, 4, 4, 4):
    -10.1532 (m = 5), -10.4029 (m = 7), -10.5364 (m = 10); the digits here are refined.
    Extra: ``well``, the index j of the largest term, i.e. the basin the point lies in.
    """

    _DOMAIN = (0.0, 10.0)
    _HEADERS = {"well": "int64"}

    def __init__(self, dims: int = 4, delay: float = 0.0, shift_positive: bool = False, m: int = 10):
        if dims != 4:
            raise ConfigurationError(f"Shekel is defined for dims=4 only, got dims={dims!r}")
        if m not in _SHEKEL_MINIMA:
            raise ConfigurationError(f"Shekel m must be one of {sorted(_SHEKEL_MINIMA)}, got {m!r}")
        self.m = int(m)
        super().__init__(dims, delay, shift_positive)

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        wells = 1.0 / (np.sum((x - _SHEKEL_A[:self.m]) ** 2, axis=1) + _SHEKEL_C[:self.m])
        return -np.sum(wells), int(np.argmax(wells))

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        min_x, min_fx = _SHEKEL_MINIMA[self.m]
        return np.array(min_x), min_fx

    def _repr_args(self) -> dict[str, Any]:
        return {"dims": self.dims, "m": self.m}


# Global minima in reduced units (epsilon = sigma = 1) from the Cambridge Cluster Database,
# https://www-wales.ch.cam.ac.uk/CCD.html (Wales & Doye, J. Phys. Chem. A 101, 5111, 1997).
_LJ_MINIMA = {2: -1.0, 3: -3.0, 4: -6.0, 5: -9.103852, 6: -12.712062, 7: -16.505384,
              8: -19.821489, 9: -24.113360, 10: -28.422532, 11: -32.765970, 12: -37.967600,
              13: -44.326801}


class LennardJones(BenchmarkFunction):
    """Lennard-Jones cluster energy: E(x) = 4 eps sum_{i<j} [(sigma / r_ij)^12 - (sigma / r_ij)^6].

    ``x`` holds the positions of ``atoms`` atoms in ``dims`` spatial dimensions (as GloMPO 3.1's
    ``LennardJones(atoms, dims, eps, sigma)``), (x_1, y_1, z_1, x_2, ...): ``self.dims`` is
    atoms x dims, ``self.spatial_dims`` the dimension per atom. Coordinates lie in
    ±sigma atoms^(1/dims), room for the compact minimum structure. ``min_x`` is None (degenerate
    under translation, rotation and permutation). ``min_fx`` is eps times the Cambridge Cluster
    Database value for 2 to 13 atoms in 3-D (published to 1e-6), else None; ``shift_positive``
    then uses the lower bound -eps atoms (atoms - 1) / 2 (no pair is below -eps). Extras: the
    ``repulsion`` and ``attraction`` sums and the smallest pair distance ``min_distance``.
    ``jacobian(x)`` is the analytic gradient.
    """

    _HEADERS = {"repulsion": "float64", "attraction": "float64", "min_distance": "float64"}

    def __init__(self, atoms: int = 3, dims: int = 3, eps: float = 1.0, sigma: float = 1.0, *,
                 delay: float = 0.0, shift_positive: bool = False):
        self.atoms = check_int("atoms", atoms, 2)
        self.spatial_dims = check_int("dims", dims, 1)
        self.eps = float(check_number("eps", eps, 0, strict=True))
        self.sigma = float(check_number("sigma", sigma, 0, strict=True))
        super().__init__(self.spatial_dims * self.atoms, delay, shift_positive)

    def _domain(self) -> tuple[float, float]:
        half = self.sigma * self.atoms ** (1.0 / self.spatial_dims)
        return (-half, half)

    def _pairs(self, x: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pair indices i < j, separations x_i - x_j and squared distances."""
        i, j = np.triu_indices(self.atoms, 1)
        pos = np.asarray(x, dtype=float).reshape(self.atoms, self.spatial_dims)
        delta = pos[i] - pos[j]
        return i, j, delta, np.sum(delta**2, axis=1)

    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        r2 = self._pairs(x)[3]
        if np.min(r2) == 0.0:  # two atoms on top of each other
            return math.inf, math.inf, -math.inf, 0.0
        inv6 = (self.sigma**2 / r2) ** 3
        repulsion, attraction = float(4.0 * self.eps * np.sum(inv6**2)), float(-4.0 * self.eps * np.sum(inv6))
        return repulsion + attraction, repulsion, attraction, math.sqrt(float(np.min(r2)))

    def jacobian(self, x: Sequence[float]) -> np.ndarray:
        """The analytic gradient dE/dx (length atoms x dims), as GloMPO 3.1's ``jacobian``."""
        i, j, delta, r2 = self._pairs(x)
        s2 = self.sigma**2
        with np.errstate(divide="ignore", invalid="ignore"):  # coinciding atoms: infinite components
            # d/dx_i of 4 eps [(s^2/r^2)^6 - (s^2/r^2)^3] = -24 eps (2 s^12 r^-14 - s^6 r^-8) (x_i - x_j)
            pair_grad = (-24.0 * self.eps * (2.0 * s2**6 * r2**-7 - s2**3 * r2**-4))[:, None] * delta
        grad = np.zeros((self.atoms, self.spatial_dims))
        np.add.at(grad, i, pair_grad)
        np.add.at(grad, j, -pair_grad)
        return grad.ravel()

    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        known = _LJ_MINIMA.get(self.atoms) if self.spatial_dims == 3 else None
        return None, None if known is None else self.eps * known

    def _lower_bound(self) -> float:
        return -self.eps * self.atoms * (self.atoms - 1) / 2.0

    def _repr_args(self) -> dict[str, Any]:
        given = {"dims": (self.spatial_dims, 3), "eps": (self.eps, 1.0), "sigma": (self.sigma, 1.0)}
        return {"atoms": self.atoms} | {k: v for k, (v, default) in given.items() if v != default}


ALL_FUNCTIONS: tuple[type[BenchmarkFunction], ...] = (
    Rastrigin, Ackley, Griewank, Levy, Michalewicz, Schwefel, StyblinskiTang, Rosenbrock, Shekel,
    LennardJones)
