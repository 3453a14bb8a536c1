"""BenchmarkFunction: what every test function of ``functions.py`` shares.

Argument checks, the per-call ``delay``, the ``shift_positive`` shift and ``__repr__``; the
functions themselves only supply their terms, minimum and domain.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..validation import check_int
from .base import BaseFunction

__all__ = ("BenchmarkFunction",)


class BenchmarkFunction(BaseFunction):
    """Shared machinery: argument checks, the per-call delay, the positive shift and ``__repr__``.

    Subclasses set ``_DOMAIN`` (or override ``_domain``), ``_HEADERS`` when ``_terms`` returns
    extras, and implement ``_terms`` and ``_minimum``.
    """

    _DOMAIN: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    _HEADERS: ClassVar[dict[str, str] | None] = None

    def __init__(self, dims: int = 2, delay: float = 0.0, shift_positive: bool = False,
                 min_dims: int = 1):
        self.dims = check_int("dims", dims, min_dims)
        if isinstance(delay, bool) or not isinstance(delay, (int, float, np.number)) \
                or not math.isfinite(delay) or delay < 0:
            raise ConfigurationError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
        self.delay = float(delay)
        self.shift_positive = bool(shift_positive)
        self.bounds: list[tuple[float, float]] = [self._domain()] * self.dims
        self.min_x, raw_min_fx = self._minimum()
        self._shift = 0.0
        if self.shift_positive:
            self._shift = -(raw_min_fx if raw_min_fx is not None else self._lower_bound())
        self.min_fx = None if raw_min_fx is None else raw_min_fx + self._shift

    # ---- to implement ----------------------------------------------------------------------------
    @abstractmethod
    def _terms(self, x: np.ndarray) -> tuple[Any, ...]:
        """``(fx, *extras)`` at the validated point ``x``, before the shift."""

    @abstractmethod
    def _minimum(self) -> tuple[np.ndarray | None, float | None]:
        """``(min_x, min_fx)`` before the shift."""

    def _lower_bound(self) -> float:
        """A proven lower bound, used for ``shift_positive`` when ``min_fx`` is unknown."""
        raise NotImplementedError

    def _domain(self) -> tuple[float, float]:
        return self._DOMAIN

    def _repr_args(self) -> dict[str, Any]:
        return {"dims": self.dims}

    # ---- public interface ------------------------------------------------------------------------
    def __call__(self, x: Sequence[float]) -> float:
        """The function value at ``x``, after sleeping ``delay`` seconds."""
        return self.detailed_call(x)[0]

    def detailed_call(self, x: Sequence[float]) -> tuple[Any, ...]:
        """``(fx, *extras)`` at ``x``, with the extras named by ``headers``."""
        arr = np.asarray(x, dtype=float)
        if arr.shape != (self.dims,):
            got = f"length {len(arr)}" if arr.ndim == 1 else f"shape {arr.shape}"
            raise ConfigurationError(f"{self!r} needs x of length {self.dims}, got {got}")
        if self.delay:
            time.sleep(self.delay)
        fx, *extras = self._terms(arr)
        return (float(fx) + self._shift, *extras)

    def headers(self) -> dict[str, str] | None:
        """Names and numpy type strings of the extras of ``detailed_call``; None if there are none."""
        return None if self._HEADERS is None else dict(self._HEADERS)

    def __repr__(self) -> str:
        args = self._repr_args()
        if self.delay:
            args["delay"] = self.delay
        if self.shift_positive:
            args["shift_positive"] = True
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
