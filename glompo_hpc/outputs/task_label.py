"""How the summary and the log name the task: by what built it, not ``<mod.X object at 0x7f...>``.

A task class with a ``__repr__`` of its own keeps it. Otherwise the label is the class's import
path and the constructor arguments it kept under their own names (``myfuncs.Rosen(dims=6)``, the
job file's ``task: {function: myfuncs:Rosen, kwargs: {dims: 6}}``); a function is its import path.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ("task_label",)

MAX_VALUE_CHARS = 60  # a long argument (an array, a data path list) is shortened, not dropped


def task_label(task: Any) -> str:
    """A readable, address-free name of ``task`` for files a user reads."""
    if inspect.isfunction(task) or inspect.isbuiltin(task) or inspect.isclass(task):
        return _path(task)
    cls = type(task)
    if cls.__repr__ is not object.__repr__:
        return repr(task)
    return f"{_path(cls)}({', '.join(f'{name}={_short(value)}' for name, value in _kept_arguments(task))})"


def _path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}" if getattr(obj, "__module__", None) else obj.__qualname__


def _kept_arguments(task: Any) -> list[tuple[str, Any]]:
    """Constructor parameters the instance holds as attributes of the same name."""
    try:
        parameters = inspect.signature(type(task)).parameters
    except (TypeError, ValueError):
        return []
    attributes = getattr(task, "__dict__", {})  # a user's object: it may have no __dict__ (slots)
    return [(name, attributes[name]) for name in parameters if name in attributes]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."
