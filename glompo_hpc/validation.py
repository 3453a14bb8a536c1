"""Argument checks shared by the manager and every component: each error names the bad value."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import ConfigurationError

__all__ = ("check_bounds", "check_int", "check_real", "check_number", "check_task", "check_choice")


def check_task(task: Any) -> None:
    if not callable(task):
        raise ConfigurationError(f"task must be callable, got {task!r} of type {type(task).__name__}")


def check_bounds(bounds: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, 2) float array of finite (min, max) pairs with min < max."""
    try:
        arr = np.array(bounds, dtype=float)
    except (TypeError, ValueError):
        raise ConfigurationError(f"bounds must be a sequence of (min, max) pairs, got {bounds!r}") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ConfigurationError(f"bounds must be a non-empty sequence of (min, max) pairs, got {bounds!r}")
    for i, (lo, hi) in enumerate(arr):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ConfigurationError(f"bounds[{i}] must be finite, got ({lo}, {hi})")
        if lo >= hi:
            raise ConfigurationError(
                f"bounds[{i}]: min {lo} >= max {hi} (to fix a parameter, fix it inside the task instead)")
    return arr


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value: Any, minimum: float = -math.inf, inclusive: bool = True) -> float:
    """``value`` as a float; it must be finite and >= (or >, if not ``inclusive``) ``minimum``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)
    if not (ok and (value >= minimum if inclusive else value > minimum)):
        bound = "" if minimum == -math.inf else f" {'>=' if inclusive else '>'} {minimum:g}"
        raise ConfigurationError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_number(name: str, value: Any, minimum: float, allow_none: bool = False, strict: bool = False) -> Any:
    """A number >= (or > if ``strict``) ``minimum``; infinity allowed (e.g. "never")."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and not math.isnan(value)
    if not ok or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ConfigurationError(f"{name} must be a number {relation} {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value
