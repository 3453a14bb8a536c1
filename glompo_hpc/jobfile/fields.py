"""The pieces every job-file section is read with: scalar checks that name the bad value, and
reading a mapping against a section's dataclass (its fields are the valid keys and defaults)."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Callable, Mapping

from ..errors import JobFileError
from .conditions import ComponentSpec
from .registry import show

__all__ = ("is_number", "got", "scalar_check", "boolean", "integer", "number", "string", "one_of", "key_field",
           "section_keys", "default_text", "join_path", "mapping", "read_section")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def got(value: Any) -> str:
    text = f"got {show(value)}"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return text
        # PyYAML reads 1e3 (no dot, no sign on the exponent) as a string: a common surprise.
        text += " (a string: YAML reads numbers like 1e3 as text, write 1.0e+3)"
    return text


def scalar_check(desc: str, ok: Callable[[Any], bool], nullable: bool) -> Callable[[Any, str], Any]:
    def check(value: Any, key_path: str) -> Any:
        if value is None and nullable:
            return None
        if not ok(value):
            raise JobFileError(key_path, f"expected {desc}{' or null' if nullable else ''}, {got(value)}")
        return value
    return check


def boolean(nullable: bool = False) -> Callable[[Any, str], Any]:
    return scalar_check("true or false", lambda v: isinstance(v, bool), nullable)


def integer(lo: int | None = None, hi: int | None = None, nullable: bool = False) -> Callable[[Any, str], Any]:
    desc = "an integer" + (f" in {lo}..{hi}" if lo is not None and hi is not None else
                           f" >= {lo}" if lo is not None else "")
    return scalar_check(desc, lambda v: isinstance(v, int) and not isinstance(v, bool)
                  and (lo is None or v >= lo) and (hi is None or v <= hi), nullable)


def number(lo: float | None = None, nullable: bool = False, strict: bool = False) -> Callable[[Any, str], Any]:
    desc = "a number" + (f" {'>' if strict else '>='} {lo}" if lo is not None else "")
    return scalar_check(desc, lambda v: is_number(v) and v == v  # v == v: not NaN
                  and (lo is None or v > lo or (not strict and v == lo)), nullable)


def string(nullable: bool = False) -> Callable[[Any, str], Any]:
    return scalar_check("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()), nullable)


def one_of(options: tuple[str, ...]) -> Callable[[Any, str], Any]:
    return scalar_check("one of " + ", ".join(repr(o) for o in options), lambda v: v in options, False)


def key_field(check: Callable[[Any, str], Any] | None = None, default: Any = None, **kw: Any) -> Any:
    return field(default=default, metadata={"check": check} if check else {}, **kw)


# ------------------------------------------------------------ reading a section

def section_keys(section: type, exclude: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(section) if f.metadata.get("key", True) and f.name not in exclude]


def default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"{f.name}={'null' if f.default is None else show(f.default, 40)}"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if isinstance(value, list):  # e.g. the default optimizer options: show their names
            value = [v.type if isinstance(v, ComponentSpec) else v for v in value]
        return f"{f.name}={{...}}" if dataclasses.is_dataclass(value) else f"{f.name}={show(value, 40)}"
    return f"{f.name} (required)"


def join_path(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def mapping(value: Any, key_path: str, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise JobFileError(key_path, f"expected {what}, got {show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise JobFileError(key_path, f"keys must be strings, got {show(key)}")
    return value


def read_section(section: type, value: Any, key_path: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a mapping's keys against a dataclass's fields and apply their checks.

    Returns the checked values (fields absent from the mapping are left out, so the dataclass
    defaults apply). Unknown keys fail with the list of valid keys and their defaults.
    """
    fields = section_keys(section, exclude)
    names = {f.name for f in fields}
    data = mapping(value, key_path, f"a mapping with keys {', '.join(sorted(names))}")
    for key in data:
        if key not in names:
            valid = ", ".join(default_text(f) for f in fields)
            raise JobFileError(join_path(key_path, key), f"unknown key; valid keys: {valid}")
    out = {}
    for f in fields:
        if f.name in data:
            check = f.metadata.get("check")
            out[f.name] = check(data[f.name], join_path(key_path, f.name)) if check else data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise JobFileError(join_path(key_path, f.name), "missing required key")
    return out
