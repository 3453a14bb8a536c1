"""Components and conditions as a job file writes them: names, mappings, expressions, all/any.

A component is written ``Name`` or ``{type: Name, param: value, ...}``. Stoppers and exit
conditions may also be written as

* an expression string: calls of component names with literal arguments (numbers, strings,
  booleans, null/None, inf, lists, tuples), combined with ``&`` (binds tighter) and ``|`` and
  parentheses, e.g. ``"BestUnmoving(calls=100, tol=0.01) & MinFuncCalls(50) | ValueAnnealing()"``.
  A bare name is a call without arguments; a dotted name ``pkg.mod.Class`` is an import path. A
  bare name as an argument is read as a string: ``TypeHunter(CMAOptimizer)``.
  The text is parsed (Python's ``ast`` module) and never evaluated: any other syntax is rejected.
  Positional arguments skip the parameters filled automatically (``bounds``, ``task``), so
  ``ParameterDistance(0.1)`` sets ``relative_distance``.
* ``{all: [...]}`` (combined with ``&``) or ``{any: [...]}`` (combined with ``|``), whose items are
  any of these forms, nested freely.
"""
# Names stay unresolved here; build.validate resolves them with the registry.

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from ..errors import JobFileError
from .registry import show

__all__ = ("ComponentSpec", "Combination", "Condition", "parse_component", "parse_condition", "parse_expression")

_MAX_EXPRESSION = 5000  # characters; a longer "expression" is certainly not one


def _join(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name(value: Any, key_path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobFileError(key_path, f"expected a component name, got {show(value)}")
    return value.strip()


@dataclass
class ComponentSpec:
    """One component: its name (registry name, alias or import path) and parameters.

    Not a section of its own: ``type`` plus the component's parameters. ``cls`` and ``alias`` are
    filled in by build.validate, which also turns ``args`` into keywords of ``params``.
    """

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    args: tuple = ()
    key_path: str = ""
    from_expression: bool = False
    type_path: str = ""
    cls: Any = None
    alias: Any = None

    def __str__(self) -> str:
        items = [show(a, 40) for a in self.args] + [f"{k}={show(v, 40)}" for k, v in self.params.items()]
        return f"{self.type}({', '.join(items)})"


@dataclass
class Combination:
    """``{all: [...]}`` (``&``) or ``{any: [...]}`` (``|``) of conditions."""

    op: str
    items: list[Condition]
    key_path: str = ""

    def __str__(self) -> str:
        sign = " & " if self.op == "all" else " | "
        return sign.join(f"({i})" if isinstance(i, Combination) else str(i) for i in self.items)


Condition = Union[ComponentSpec, Combination]


def parse_component(value: Any, key_path: str) -> ComponentSpec:
    """``Name`` or ``{type: Name, param: value, ...}``."""
    if isinstance(value, str):
        return ComponentSpec(_name(value, key_path), key_path=key_path, type_path=key_path)
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise JobFileError(key_path, f"expected a component name or a mapping {{type: Name, parameter: value, ...}}, "
                                     f"got {show(value)}")
    if "type" not in value:
        raise JobFileError(key_path, f"missing key 'type' (the component name) in {show(dict(value))}")
    data = value
    name = _name(data["type"], _join(key_path, "type"))
    return ComponentSpec(name, {k: v for k, v in data.items() if k != "type"}, key_path=key_path,
                         type_path=_join(key_path, "type"))


def parse_condition(value: Any, key_path: str) -> Condition | None:
    """A stopper/exit-condition tree from any of its forms (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_expression(value, key_path)
    if isinstance(value, Mapping):
        ops = [k for k in ("all", "any") if k in value]
        if ops:
            if len(value) != 1:
                extra = ", ".join(show(k) for k in value if k != ops[0])
                raise JobFileError(key_path, f"{{{ops[0]}: [...]}} takes no other keys, got {extra}")
            items = value[ops[0]]
            path = _join(key_path, ops[0])
            if not isinstance(items, list) or not items:
                raise JobFileError(path, f"expected a non-empty list of conditions, got {show(items)}")
            parsed = []
            for i, item in enumerate(items):
                if item is None:
                    raise JobFileError(f"{path}[{i}]", "expected a condition, got None")
                parsed.append(parse_condition(item, f"{path}[{i}]"))
            return parsed[0] if len(parsed) == 1 else Combination(ops[0], parsed, path)
        return parse_component(value, key_path)
    hint = " (a list is ambiguous: use {all: [...]} or {any: [...]})" if isinstance(value, list) else ""
    raise JobFileError(key_path, f"expected an expression string, {{type: Name, ...}}, {{all: [...]}} or "
                                 f"{{any: [...]}}, got {show(value)}{hint}")


# ------------------------------------------------------------ expressions

class _Unsafe(Exception):
    """An expression node outside the allowed grammar."""


def _node_text(node: ast.AST) -> str:
    return {ast.BoolOp: "'and'/'or' (use & and |)", ast.Compare: "a comparison", ast.Attribute: "an attribute",
            ast.Subscript: "a subscript", ast.Lambda: "a lambda", ast.Starred: "a *argument"}.get(
        type(node), f"{type(node).__name__} syntax")


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and _is_number(node.operand.value):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(n) for n in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Name):
        # YAML spellings of the constants, and inf; any other bare name is read as its text, so
        # that TypeHunter(CMAOptimizer) names a class without quotes. Nothing is ever looked up.
        return {"null": None, "true": True, "false": False, "inf": math.inf}.get(node.id, node.id)
    raise _Unsafe(f"argument {_node_text(node)}: only literal numbers, strings, booleans, None, lists and "
                  f"tuples are allowed")


def _dotted(node: ast.AST) -> str:
    """``Name`` or a dotted import path ``pkg.mod.Name`` used as a component name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise _Unsafe(f"{_node_text(node)} where a component name was expected")


def _expr_node(node: ast.AST, key_path: str) -> Condition:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        op = "all" if isinstance(node.op, ast.BitAnd) else "any"
        items: list[Condition] = []
        for side in (node.left, node.right):
            sub = _expr_node(side, key_path)
            # a & b & c is one 'all' of three, as the combination classes flatten it too
            if isinstance(sub, Combination) and sub.op == op:
                items.extend(sub.items)
            else:
                items.append(sub)
        return Combination(op, items, key_path)
    if isinstance(node, (ast.Name, ast.Attribute)):
        return ComponentSpec(_dotted(node), key_path=key_path, from_expression=True, type_path=key_path)
    if isinstance(node, ast.Call):
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise _Unsafe("**arguments are not allowed")
            kwargs[kw.arg] = _literal(kw.value)
        args = tuple(_literal(a) for a in node.args)
        return ComponentSpec(_dotted(node.func), kwargs, args, key_path, from_expression=True, type_path=key_path)
    if isinstance(node, ast.BinOp):
        raise _Unsafe(f"operator {type(node.op).__name__} (only & and | combine conditions)")
    raise _Unsafe(_node_text(node))


def parse_expression(text: str, key_path: str) -> Condition:
    """Parse ``"A(x=1) & B() | C"`` with :mod:`ast` (never evaluated) into a condition tree."""
    if len(text) > _MAX_EXPRESSION:
        raise JobFileError(key_path, f"expression longer than {_MAX_EXPRESSION} characters")
    if not text.strip():
        raise JobFileError(key_path, "empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _expr_node(tree.body, key_path)
    except SyntaxError as e:
        raise JobFileError(key_path, f"invalid expression {show(text)}: {e.msg}") from None
    except _Unsafe as e:
        raise JobFileError(key_path, f"expression {show(text)} not allowed: {e}; write calls of component "
                                     f"names with literal arguments combined with & and |") from None
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        raise JobFileError(key_path, f"invalid expression {show(text)}: {type(e).__name__}") from None
