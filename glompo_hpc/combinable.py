"""Criteria that combine with ``&`` and ``|``: the machinery shared by stoppers and exit conditions.

A *family* (stoppers, exit conditions) is declared by subclassing :class:`BaseCombinable` with a
``family`` keyword; that name becomes the logger ``glompo_hpc.<family>``. The family then declares
its own combination classes by mixing :class:`AndCombination` / :class:`OrCombination` with its
base class::

    class BaseStopper(BaseCombinable, family="stopper"): ...
    class AndStopper(AndCombination, BaseStopper): ...
    class OrStopper(OrCombination, BaseStopper): ...

Those two subclasses register themselves with the family (class hook), so ``a & b`` on two
stoppers builds an ``AndStopper``, which *is* a ``BaseStopper`` and combines further.

Rules every criterion follows:

* ``__call__`` returns a bool and stores it in ``last_result``. Subclasses need not do the
  storing themselves: every ``__call__`` a subclass defines is wrapped so its result is coerced to
  ``bool`` and recorded (``None`` means "not evaluated").
* Evaluation is lazy: ``x | y`` skips ``y`` when ``x`` is True, ``x & y`` skips ``y`` when ``x`` is
  False. A combination resets its whole subtree before evaluating, so a skipped leaf shows
  ``None`` rather than a stale result from an earlier call.
* Settings shown by ``str()`` are the ``__init__`` parameters, read back from attributes of the
  same name. A subclass that stores a parameter under another name simply omits it from the text.
"""

from __future__ import annotations

import functools
import inspect
import logging
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterator

from .validation import check_int, check_real

__all__ = ("BaseCombinable", "Combination", "AndCombination", "OrCombination", "check_int", "check_real")

# Sequences longer than this are abbreviated in str() (bounds of a 100-parameter problem would
# otherwise drown the text); repr() always shows them in full.
_MAX_SHOWN_ITEMS = 4


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > _MAX_SHOWN_ITEMS:
        return f"[{value[0]!r}, ..., {value[-1]!r}] ({len(value)} items)"
    return repr(value)


def _recording(call: Callable[..., Any]) -> Callable[..., bool]:
    """Wrap a ``__call__`` so its result is stored as a plain bool in ``last_result``."""

    @functools.wraps(call)
    def wrapper(self: BaseCombinable, *args: Any, **kwargs: Any) -> bool:
        result = bool(call(self, *args, **kwargs))
        self.last_result = result
        return result

    wrapper._records_result = True  # type: ignore[attr-defined]
    return wrapper


class BaseCombinable(ABC):
    """Base of every criterion that can be combined with ``&`` and ``|``.

    Subclass it with ``family="name"`` to start a new family; subclasses of that family base
    inherit the family. Criteria of different families cannot be combined.

    Attributes:
        last_result: Result of the latest evaluation; None before the first one and after
            :meth:`reset`.
        logger: ``logging.getLogger("glompo_hpc.<family>")`` (a class attribute, so it is never
            pickled with the criterion).
    """

    last_result: bool | None = None
    logger: ClassVar[logging.Logger] = logging.getLogger("glompo_hpc")

    # Set on the family base by __init_subclass__; None on BaseCombinable and the generic mixins.
    _family: ClassVar[str | None] = None
    _family_base: ClassVar[type[BaseCombinable] | None] = None
    _combiners: ClassVar[dict[str, type[Combination]]] = {}
    # Set by the combination mixins: "&" or "|".
    _operator: ClassVar[str | None] = None

    def __init_subclass__(cls, family: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if family is not None:
            cls._family = family
            cls._family_base = cls
            cls._combiners = {}
            cls.logger = logging.getLogger(f"glompo_hpc.{family}")
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "__isabstractmethod__", False) \
                and not getattr(call, "_records_result", False):
            cls.__call__ = _recording(call)  # type: ignore[method-assign]
        if cls._operator is not None and cls._family_base is not None:
            # A family's And/Or class: the hook that makes `a & b` return an instance of the family.
            cls._family_base._combiners[cls._operator] = cls

    @abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        """Evaluate the criterion; the family base fixes the signature."""

    # ------------------------------------------------------------ combining

    def __and__(self, other: object) -> BaseCombinable:
        return self._combine("&", other)

    def __or__(self, other: object) -> BaseCombinable:
        return self._combine("|", other)

    def _combine(self, operator: str, other: object) -> BaseCombinable:
        if not isinstance(other, BaseCombinable):
            return NotImplemented
        if self._family_base is None or self._family_base is not other._family_base:
            mine = self._family_base.__name__ if self._family_base else type(self).__name__
            theirs = other._family_base.__name__ if other._family_base else type(other).__name__
            raise TypeError(f"cannot combine {self} (a {mine}) with {other} (a {theirs}): "
                            f"only criteria of the same family combine")
        combiner = self._family_base._combiners.get(operator)
        if combiner is None:
            raise TypeError(f"the {self._family_base.__name__} family defines no {operator!r} combination")
        # Flatten chains of the same operator: a & b & c is one And of three members, which
        # evaluates identically and prints without redundant parentheses.
        members: list[BaseCombinable] = []
        for side in (self, other):
            if isinstance(side, Combination) and side._operator == operator:
                members.extend(side.members)
            else:
                members.append(side)
        return combiner(*members)

    # ------------------------------------------------------------ inspection

    def __iter__(self) -> Iterator[BaseCombinable]:
        """Yield the leaves; a single criterion is its own only leaf."""
        yield self

    def reset(self) -> None:
        """Forget the last result (of every leaf, for a combination)."""
        self.last_result = None

    def settings(self) -> dict[str, Any]:
        """The ``__init__`` parameters, read back from attributes of the same name."""
        found = {}
        for name, parm in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or parm.kind in (parm.VAR_POSITIONAL, parm.VAR_KEYWORD):
                continue
            if name in self.__dict__ or hasattr(type(self), name):
                found[name] = getattr(self, name)
        return found

    def __str__(self) -> str:
        body = ", ".join(f"{k}={_short(v)}" for k, v in self.settings().items())
        return f"{type(self).__name__}({body})"

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({body})"

    def str_with_result(self) -> str:
        """``str(self)`` followed by the last result, e.g. ``MinFuncCalls(min_pts=10) = True``."""
        return f"{self} = {self.last_result}"


class Combination(BaseCombinable):
    """Two or more criteria of one family joined by one operator."""

    def __init__(self, *members: BaseCombinable):
        if len(members) < 2:
            raise TypeError(f"{type(self).__name__} needs at least two members, got {len(members)}")
        for member in members:
            if not isinstance(member, BaseCombinable) or (
                    self._family_base is not None and not isinstance(member, self._family_base)):
                raise TypeError(f"{type(self).__name__} cannot hold {member!r}")
        self.members: tuple[BaseCombinable, ...] = tuple(members)

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        # Resetting first means leaves skipped by short-circuiting report None, not a stale value.
        self.reset()
        return self._evaluate(*args, **kwargs)

    @abstractmethod
    def _evaluate(self, *args: Any, **kwargs: Any) -> bool:
        """Evaluate the members lazily."""

    def __iter__(self) -> Iterator[BaseCombinable]:
        for member in self.members:
            yield from member

    def reset(self) -> None:
        self.last_result = None
        for member in self.members:
            member.reset()

    def settings(self) -> dict[str, Any]:
        return {}

    def _join(self, render: Callable[[BaseCombinable], str]) -> str:
        parts = [f"({render(m)})" if isinstance(m, Combination) else render(m) for m in self.members]
        return f" {self._operator} ".join(parts)

    def __str__(self) -> str:
        return self._join(str)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(m) for m in self.members)})"

    def str_with_result(self) -> str:
        """Each leaf with its result, e.g. ``(A = True & B = False) | C = None``."""
        return self._join(lambda m: m.str_with_result())


class AndCombination(Combination):
    """True when every member is True; stops at the first False member."""

    _operator = "&"

    def _evaluate(self, *args: Any, **kwargs: Any) -> bool:
        return all(member(*args, **kwargs) for member in self.members)


class OrCombination(Combination):
    """True when any member is True; stops at the first True member."""

    _operator = "|"

    def _evaluate(self, *args: Any, **kwargs: Any) -> bool:
        return any(member(*args, **kwargs) for member in self.members)
