"""Weakly structured multimodal landscapes of the ``hard`` mode, each a family of random instances.

Every instance moves the optimum to a random point and couples the coordinates by random
rotations, so nothing a separable or axis-aligned search could exploit is left. Definitions follow
the BBOB noiseless suite (N. Hansen et al., *Real-Parameter Black-Box Optimization Benchmarking
2009: Noiseless Functions Definitions*, INRIA RR-6829):

* :class:`SchaffersF7` (BBOB f17): ``s_i = sqrt(z_i^2 + z_{i+1}^2)``,
  ``f = (mean(sqrt(s) + sqrt(s) sin^2(50 s^0.2)))^2`` of an asymmetric, ill-conditioned (10) and
  rotated ``z``: a rugged surface whose ruggedness fades toward the optimum.
* :class:`LunacekBiRastrigin` (BBOB f24): two funnels, the global one narrower and a wider one
  ``~ 1`` higher, both covered by a rotated, ill-conditioned (100) Rastrigin. Built to defeat
  large-population searches that follow the bulk of the landscape into the wide funnel.
* :class:`Composition` (in the manner of the CEC composition functions): ``K`` basins at random
  centres, each a rotated base function (Rastrigin, Schaffers F7, ellipsoid, Griewank-like
  cosine, sphere) weighted by a Gaussian of its own width, with biases ``0, 5, 10, ...``: the
  global one is the narrowest, the widest carries the largest bias.

All live on ``[-5, 5]^n`` with a quadratic penalty outside, ``min_fx = 0``; ``delay`` sleeps
per evaluation like :mod:`glompo_hpc.tasks.functions`.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

__all__ = ("Landscape", "SchaffersF7", "LunacekBiRastrigin", "Composition", "LANDSCAPES")

BOX = 5.0


def rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random orthogonal matrix, uniform over the group."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _conditioning(n: int, alpha: float) -> np.ndarray:
    """BBOB's Lambda^alpha diagonal: ``alpha^(0.5 i / (n - 1))``."""
    return alpha ** (0.5 * np.arange(n) / max(1, n - 1))


def _asymmetric(z: np.ndarray, beta: float) -> np.ndarray:
    """BBOB's T_asy^beta: positive coordinates raised to ``1 + beta i/(n-1) sqrt(z_i)``."""
    n = len(z)
    expo = 1 + beta * np.arange(n) / max(1, n - 1) * np.sqrt(np.maximum(z, 0))
    return np.where(z > 0, np.abs(z) ** expo, z)


def _penalty(x: np.ndarray) -> float:
    return float(np.sum(np.maximum(0.0, np.abs(x) - BOX) ** 2))


def _schaffers(z: np.ndarray) -> float:
    s = np.sqrt(z[:-1] ** 2 + z[1:] ** 2)
    return float(np.mean(np.sqrt(s) + np.sqrt(s) * np.sin(50 * s ** 0.2) ** 2) ** 2)


def _rastrigin(z: np.ndarray) -> float:
    return float(10 * (len(z) - np.sum(np.cos(2 * np.pi * z))) + z @ z)


class Landscape:
    """Shared parts: dimension, instance, box, minimum, delay and evaluation of a point.

    Args:
        dims: Number of parameters (>= 2).
        instance: Seed of the instance's optimum and rotations.
        delay: Seconds to sleep per evaluation.
    """

    def __init__(self, dims: int, instance: int = 1, delay: float = 0.0):
        self.dims = int(dims)
        self.instance = int(instance)
        self.delay = float(delay)
        self.bounds = [(-BOX, BOX)] * self.dims
        self.min_fx = 0.0
        self.rng = np.random.default_rng([self.dims, self.instance, sum(map(ord, type(self).__name__))])

    def __call__(self, x: Sequence[float]) -> float:
        if self.delay:
            time.sleep(self.delay)
        return self.value(np.asarray(x, dtype=float))

    def value(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dims={self.dims}, instance={self.instance})"


class SchaffersF7(Landscape):
    """BBOB f17, conditioning 10 (see the module docstring)."""

    def __init__(self, dims: int, instance: int = 1, delay: float = 0.0):
        super().__init__(dims, instance, delay)
        self.min_x = self.rng.uniform(-4, 4, self.dims)
        self.r, self.q = rotation(self.rng, self.dims), rotation(self.rng, self.dims)
        self.scale = _conditioning(self.dims, 10)

    def value(self, x: np.ndarray) -> float:
        z = (self.scale * (self.q @ _asymmetric(self.r @ (x - self.min_x), 0.5)))
        return _schaffers(z) + 10 * _penalty(x)


class LunacekBiRastrigin(Landscape):
    """BBOB f24 (see the module docstring): the optimum at ``+-1.25`` per coordinate, signs drawn."""

    MU0 = 2.5

    def __init__(self, dims: int, instance: int = 1, delay: float = 0.0):
        super().__init__(dims, instance, delay)
        self.signs = np.where(self.rng.random(self.dims) < 0.5, -1.0, 1.0)
        self.min_x = self.signs * self.MU0 / 2
        self.s = 1 - 1 / (2 * np.sqrt(self.dims + 20) - 8.2)
        self.mu1 = -np.sqrt((self.MU0 ** 2 - 1) / self.s)
        r, q = rotation(self.rng, self.dims), rotation(self.rng, self.dims)
        self.transform = q @ np.diag(_conditioning(self.dims, 100)) @ r

    def value(self, x: np.ndarray) -> float:
        xh = 2 * self.signs * x
        funnels = min(np.sum((xh - self.MU0) ** 2), self.dims + self.s * np.sum((xh - self.mu1) ** 2))
        z = self.transform @ (xh - self.MU0)
        return float(funnels + 10 * (self.dims - np.sum(np.cos(2 * np.pi * z)))) + 1e4 * _penalty(x)


class Composition(Landscape):
    """Five basins of widths 0.5 to 2.5 (the global one narrowest), biases 0, 5, ..., 20."""

    SIGMAS = (0.5, 1.0, 1.5, 2.0, 2.5)
    BIASES = (0.0, 5.0, 10.0, 15.0, 20.0)

    def __init__(self, dims: int, instance: int = 1, delay: float = 0.0):
        super().__init__(dims, instance, delay)
        k = len(self.SIGMAS)
        self.centres = self.rng.uniform(-4, 4, (k, self.dims))
        self.rotations = [rotation(self.rng, self.dims) for _ in range(k)]
        self.min_x = self.centres[0]
        cond = _conditioning(self.dims, 1e3)
        self.bases = (
            lambda z: _rastrigin(z),
            lambda z: 10 * _schaffers(z),
            lambda z: float(np.sum((cond * z) ** 2)) / 100,
            lambda z: float(z @ z / 4 - 10 * np.prod(np.cos(z / np.sqrt(np.arange(1, len(z) + 1)))) + 10),
            lambda z: float(z @ z),
        )

    def value(self, x: np.ndarray) -> float:
        d2 = np.sum((x - self.centres) ** 2, axis=1)
        if d2[0] == 0.0:
            return 0.0 + _penalty(x)
        w = np.exp(-d2 / (2 * self.dims * np.square(self.SIGMAS))) / np.sqrt(np.maximum(d2, 1e-300))
        total = w.sum()
        w = w / total if total > 0 else np.full(len(w), 1 / len(w))
        parts = [base(rot @ (x - c)) + bias for base, rot, c, bias in
                 zip(self.bases, self.rotations, self.centres, self.BIASES)]
        return float(w @ parts) + _penalty(x)


#: short name -> class
LANDSCAPES: dict[str, type[Landscape]] = {
    "schaffers": SchaffersF7,
    "lunacek": LunacekBiRastrigin,
    "composition": Composition,
}
