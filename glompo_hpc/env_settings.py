"""Settings read from environment variables: one reader, one error policy.

Every ``GLOMPO_HPC_*`` setting (log flush period, progress mode, polling cap, ...) is read here,
when it is needed, by one of :func:`env_int`, :func:`env_float`, :func:`env_bool`, :func:`env_str`
or :func:`env_choice`. An unset or empty variable gives the caller's default; a value that is not
valid raises :class:`~glompo_hpc.errors.ConfigurationError` naming the variable, the bad value and
what was expected (the command line prints it as one line and exits 2), rather than being ignored
with a warning that scrolls past in a job's output.

The variables MPI launchers set (rank, world size) are not settings and are read only by
``backends/mpi_env.py``'s table of launchers.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

from .errors import ConfigurationError

__all__ = ("env_int", "env_float", "env_bool", "env_str", "env_choice")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _text(name: str, environ: Mapping[str, str] | None) -> str:
    return (os.environ if environ is None else environ).get(name, "").strip()


def _bad(name: str, text: str, expected: str) -> ConfigurationError:
    return ConfigurationError(f"environment variable {name}={text!r} is not valid: expected {expected}")


def _range(low: float | None, high: float | None, *, open_low: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def env_int(name: str, default: int, *, minimum: int | None = None,
            environ: Mapping[str, str] | None = None) -> int:
    """The integer in variable ``name``, or ``default`` if it is unset or empty.

    Args:
        name: The variable.
        default: Returned when the variable is unset or empty (not checked).
        minimum: The smallest value accepted.
        environ: The variables to read (default ``os.environ``).

    Raises:
        ConfigurationError: the value is not an integer, or is below ``minimum``.
    """
    text = _text(name, environ)
    if not text:
        return default
    expected = "an integer" + (f" {_range(minimum, None, open_low=False)}" if minimum is not None else "")
    try:
        value = int(text)
    except ValueError:
        raise _bad(name, text, expected) from None
    if minimum is not None and value < minimum:
        raise _bad(name, text, expected)
    return value


def env_float(name: str, default: float, *, positive: bool = True, maximum: float | None = None,
              environ: Mapping[str, str] | None = None) -> float:
    """The finite number in variable ``name``, or ``default`` if it is unset or empty.

    Args:
        name: The variable.
        default: Returned when the variable is unset or empty (not checked).
        positive: Accept only values > 0 (the variables are periods and sizes).
        maximum: The largest value accepted.
        environ: The variables to read (default ``os.environ``).

    Raises:
        ConfigurationError: the value is not a finite number or is out of range.
    """
    text = _text(name, environ)
    if not text:
        return default
    bounds = _range(0 if positive else None, maximum, open_low=True)
    expected = "a finite number" + (f" {bounds}" if bounds else "")
    try:
        value = float(text)
    except ValueError:
        raise _bad(name, text, expected) from None
    if not math.isfinite(value) or (positive and value <= 0) or (maximum is not None and value > maximum):
        raise _bad(name, text, expected)
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """The yes/no in variable ``name`` (``1/true/yes/on``, ``0/false/no/off``, any case), or ``default``.

    Raises:
        ConfigurationError: the value is none of those words.
    """
    text = _text(name, environ)
    if not text:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _bad(name, text, f"one of {', '.join(_TRUE + _FALSE)}")


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The text of variable ``name`` without surrounding blanks, or ``default`` if unset or empty."""
    return _text(name, environ) or default


def env_choice(name: str, choices: Sequence[str], default: str, *,
               environ: Mapping[str, str] | None = None) -> str:
    """One of ``choices`` from variable ``name`` (compared in lower case), or ``default``.

    Raises:
        ConfigurationError: the value is not one of ``choices``.
    """
    text = _text(name, environ)
    if not text:
        return default
    if text.lower() not in choices:
        raise _bad(name, text, f"one of {', '.join(choices)}")
    return text.lower()
