"""Migrating from GloMPO 3.1: its spellings accepted or explained, from one table (``table.py``).

The manager, ``CheckpointingControl`` and a few components each apply the table with one local
hook (a decorator); docs/migrating-from-glompo.md's tables are generated from it by
``python -m glompo_hpc.compat.guide``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any, Callable, TypeVar

from .apply import StatsWithOldKeys, old_attribute_names, old_keywords, translate_keywords
from .glompo_files import glompo_checkpoint_refusal, glompo_run_refusal
from .options import check_selector_options, from_glompo_triple
from ..errors import ConfigurationError
from .table import GLOMPO_VERSION, OLD_NAMES, Change, OldName, Place

__all__ = ("GLOMPO_VERSION", "OLD_NAMES", "Change", "OldName", "Place", "StatsWithOldKeys", "old_attribute_names",
           "old_keywords", "translate_keywords", "glompo_checkpoint_refusal", "glompo_run_refusal",
           "check_selector_options", "from_glompo_triple", "setup_keywords")

F = TypeVar("F", bound=Callable[..., Any])


def setup_keywords(method: F) -> F:
    """Decorate ``setup``/``load_checkpoint``: GloMPO 3.1 keywords are translated, and the options
    of the ``opt_selector`` given are each built once, so a bad one fails before any evaluation."""
    where = f"{method.__name__}()"
    signature = inspect.signature(method)
    names = [n for n, p in signature.parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    @functools.wraps(method)
    def with_old_keywords(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs = translate_keywords(Place.SETUP, kwargs, where)
        unknown = [] if takes_any else [k for k in kwargs if k not in names]
        if unknown:  # instead of Python's bare TypeError, the accepted names and the closest one
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigurationError(f"{where} got an unknown keyword {unknown[0]!r}; {hint}it accepts {names}")
        selector = signature.bind_partial(self, *args, **kwargs).arguments.get("opt_selector")
        if selector is not None:
            check_selector_options(selector)
        return method(self, *args, **kwargs)
    return with_old_keywords  # type: ignore[return-value]
