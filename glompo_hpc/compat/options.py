"""Optimizer options checked when the run is set up, and GloMPO 3.1's selector 3-tuples.

An option's keyword arguments used to be checked only when the manager first built that
optimizer: with a ChainSelector, a misspelt second option crashed a run hundreds of evaluations
in. ``check_selector_options`` builds each option once at ``setup()`` instead, so any mistake
fails before the first evaluation, with a did-you-mean from the constructor's parameters.
"""

from __future__ import annotations

import difflib
import inspect
import re
import warnings
from typing import Any, Iterable

from ..errors import ConfigurationError
from .apply import _user_stacklevel
from .table import GLOMPO_VERSION

__all__ = ("check_selector_options", "constructor_parameters", "from_glompo_triple")

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def constructor_parameters(cls: type) -> list[str]:
    """The named keyword parameters of ``cls`` and the classes its ``__init__`` passes ``**kwargs`` to."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and not p.name.startswith("_") and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _did_you_mean(bad: str, cls: type) -> str:
    close = difflib.get_close_matches(bad, constructor_parameters(cls), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        f"; {cls.__name__} takes {constructor_parameters(cls)}"


def _unknown_keywords(cls: type, kwargs: dict[str, Any]) -> list[str]:
    """Keywords of ``kwargs`` that ``cls`` does not name, unless its ``**kwargs`` take free options."""
    from ..optimizers.base import BaseOptimizer  # here: the optimizers import this package

    free = cls.free_options
    if free is None:
        free = any(p.kind is p.VAR_KEYWORD for klass in cls.__mro__[:cls.__mro__.index(BaseOptimizer)]
                   if "__init__" in vars(klass) for p in inspect.signature(vars(klass)["__init__"]).parameters.values())
    return [] if free else sorted(k for k in kwargs if k not in constructor_parameters(cls))


def check_selector_options(selector: Any) -> None:
    """Build every option of ``selector`` once (all of a ChainSelector's entries too).

    Raises:
        ConfigurationError: an option that cannot be built, naming it, the error and, for an
            unknown keyword, the closest parameter names.
    """
    options: Iterable[Any] = getattr(selector, "options", ())  # a user's selector need not keep a list
    for index, option in enumerate(options):
        if option.prototype is not None:
            continue  # built by the user already
        unknown = _unknown_keywords(option.opt_class, option.init_kwargs)
        if unknown:
            raise ConfigurationError(f"optimizer option {index} ({option}): unknown keyword {unknown[0]!r}"
                                     f"{_did_you_mean(unknown[0], option.opt_class)}")
        try:
            option.build()
        except ConfigurationError as e:
            raise ConfigurationError(f"optimizer option {index} ({option}): {e}") from None
        except TypeError as e:
            match = _UNEXPECTED.search(str(e))
            hint = _did_you_mean(match.group(1), option.opt_class) if match else ""
            raise ConfigurationError(f"optimizer option {index} ({option}) cannot be built: {e}{hint}") from None


def from_glompo_triple(item: tuple, where: str) -> tuple[type, dict[str, Any]]:
    """GloMPO 3.1's ``(cls, init_kwargs, call_kwargs)`` as a ``(cls, init_kwargs)`` pair.

    ``minimize`` takes no keyword arguments in glompo_hpc. Call keywords naming a constructor
    parameter (CMAOptimizer's ``sigma0``, which 3.1 took in ``minimize``) move there with a
    DeprecationWarning; any other is refused, as it would be silently lost.
    """
    cls, init_kwargs, call_kwargs = item
    init_kwargs = dict(init_kwargs or {})
    call_kwargs = dict(call_kwargs or {})
    if not call_kwargs:
        message = f"{where}: drop the third element of GloMPO {GLOMPO_VERSION}'s (class, init_kwargs, call_kwargs)"
        warnings.warn(message, DeprecationWarning, stacklevel=_user_stacklevel())
        return cls, init_kwargs
    accepted = constructor_parameters(cls) if isinstance(cls, type) else []
    lost = sorted(k for k in call_kwargs if k not in accepted)
    if lost:
        raise ConfigurationError(f"{where}: minimize() takes no keyword arguments in glompo_hpc, so call_kwargs "
                                 f"{lost} would be lost; have {getattr(cls, '__name__', cls)}.__init__ take them")
    both = sorted(set(call_kwargs) & set(init_kwargs))
    if both:
        raise ConfigurationError(f"{where}: {both} given both as init_kwargs and call_kwargs")
    warnings.warn(f"{where}: GloMPO {GLOMPO_VERSION}'s call_kwargs {sorted(call_kwargs)} are constructor "
                  f"arguments now: write ({cls.__name__}, {{**init_kwargs, **call_kwargs}})",
                  DeprecationWarning, stacklevel=_user_stacklevel())
    return cls, {**init_kwargs, **call_kwargs}
