"""Applying the table of GloMPO 3.1 names: keyword translation, read-only aliases, old stats keys."""

from __future__ import annotations

import functools
import sys
import warnings
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import ConfigurationError
from .table import GLOMPO_VERSION, Change, OldName, Place, row, rows_for

__all__ = ("translate_keywords", "old_keywords", "old_attribute_names", "StatsWithOldKeys", "warn_old_name",
           "gone_message")

F = TypeVar("F", bound=Callable[..., Any])
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _user_stacklevel() -> int:
    """The stack level of the first frame outside glompo_hpc: the line of the user's script, so
    Python's default filter shows the warning there (it shows DeprecationWarnings in __main__)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    return level


def _quoted(text: str) -> str:
    """A table entry in a one-line message: code spans (prose entries) become quotes."""
    return text.replace("`", "'") if "`" in text else f"'{text}'"


def warn_old_name(r: OldName, where: str) -> None:
    """The DeprecationWarning of one RENAMED row."""
    why = f" ({r.why.replace('`', chr(39))})" if r.why else ""
    warnings.warn(f"{where}: '{r.old}' is GloMPO {GLOMPO_VERSION}'s spelling; use {_quoted(r.new)}{why}",
                  DeprecationWarning, stacklevel=_user_stacklevel())


def gone_message(r: OldName, where: str) -> str:
    """The one-line error of one GONE row."""
    return f"{where}: '{r.old}' (GloMPO {GLOMPO_VERSION}) is gone: {r.why.replace('`', chr(39))}; " \
           f"use {_quoted(r.new)} instead"


def _is_harmless(value: Any, r: OldName) -> bool:
    return any(value is h or (type(value) is type(h) and value == h) for h in r.harmless)


def translate_keywords(place: Place, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """``kwargs`` with GloMPO 3.1 keywords of ``place`` renamed (each warned about once per call site).

    Raises:
        ConfigurationError: a keyword that is gone (with what to use instead), or an old and a new
            spelling of the same keyword given together.
    """
    out = dict(kwargs)
    for name in kwargs:
        r = row(place, name)
        if r is None:
            continue
        value = out.pop(name)
        if r.change is Change.GONE:
            if not _is_harmless(value, r):
                raise ConfigurationError(gone_message(r, where))
            warnings.warn(f"{where}: '{r.old}={value!r}' (GloMPO {GLOMPO_VERSION}) has no effect: remove it "
                          f"({r.why})", DeprecationWarning, stacklevel=_user_stacklevel())
            continue
        if r.new in kwargs:
            raise ConfigurationError(f"{where}: '{r.old}' and '{r.new}' are the same setting (GloMPO "
                                     f"{GLOMPO_VERSION}'s and glompo_hpc's spelling); give only '{r.new}'")
        warn_old_name(r, where)
        out[r.new] = r.translate(value) if r.translate is not None else value
    return out


def old_keywords(place: Place, where: str) -> Callable[[F], F]:
    """Decorate a function (a constructor's ``__init__``) to accept the old keywords of ``place``."""
    def decorate(func: F) -> F:
        @functools.wraps(func)
        def accepting_old_keywords(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **translate_keywords(place, kwargs, where))
        return accepting_old_keywords  # type: ignore[return-value]
    return decorate


def _alias(r: OldName, owner: str) -> property:
    where = f"{owner}.{r.old}"
    if r.change is Change.GONE:
        def refuse(self: Any) -> Any:
            raise AttributeError(gone_message(r, where))
        return property(refuse, doc=f"Gone since GloMPO {GLOMPO_VERSION}: use {r.new}.")
    read = attrgetter(r.new)

    def get(self: Any) -> Any:
        warn_old_name(r, where)
        return read(self)

    def refuse_set(self: Any, value: Any) -> None:
        raise AttributeError(f"{where} is a read-only alias of GloMPO {GLOMPO_VERSION}'s spelling: set '{r.new}'")
    return property(get, refuse_set, doc=f"Read-only alias of ``{r.new}`` (GloMPO {GLOMPO_VERSION}'s name).")


def old_attribute_names(place: Place) -> Callable[[type], type]:
    """Class decorator: a property per row of ``place``, aliasing a RENAMED name or explaining a GONE one.

    Rows written as calls (``get_history(opt_id, track)``) alias the method's name.
    """
    def decorate(cls: type) -> type:
        for r in rows_for(place):
            name = r.old.split("(")[0]
            if name in vars(cls):
                raise TypeError(f"{cls.__name__}.{name} exists: it cannot also be GloMPO {GLOMPO_VERSION}'s alias")
            setattr(cls, name, _alias(r, cls.__name__))
        return cls
    return decorate


class StatsWithOldKeys(dict):
    """``Result.stats``: a dict also answering GloMPO 3.1's key names, with a DeprecationWarning."""

    def _old(self, key: Any) -> OldName | None:
        r = row(Place.STATS, key) if isinstance(key, str) else None
        return r if r is not None and r.new in self else None

    def __missing__(self, key: Any) -> Any:
        r = self._old(key)
        if r is None:
            raise KeyError(key)
        warn_old_name(r, "Result.stats")
        return self[r.new]

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self or self._old(key) is not None else default

    def __reduce__(self) -> tuple:  # pickles (and checkpoints) as the plain dict it is
        return dict, (dict(self),)
