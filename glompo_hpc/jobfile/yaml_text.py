"""A job file's text as Python data: ``yaml.safe_load`` with the job file's own rules.

YAML 1.2 floats without a dot (``1e-6``) are numbers, alias bombs are refused before they are
expanded, and every way reading can fail (also on hostile input) is one JobFileError whose line
is where the mistake is.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import JobFileError

__all__ = ("parse_yaml", "JobFileLoader", "MAX_ALIAS_VALUES")


# What YAML aliases may add to a job file: a real one repeats a few settings (dozens of values); an
# alias bomb ("billion laughs", 9 levels of 10 aliases) adds 10**9, which every error message
# (repr of the bad value) and check would expand: minutes and gigabytes.
MAX_ALIAS_VALUES = 100_000


class JobFileLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats without a dot, such as ``1e-6`` and
    ``2E+3``: YAML 1.1, which PyYAML follows, makes them strings, which no user means in a job file."""


JobFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _error_mark(error: yaml.YAMLError, text: str) -> Any:
    """Where to report a YAML error. PyYAML's mark is where it noticed the problem: for something
    left open (a bracket, brace or quote) that is the next token, often lines later. Then the real
    place is the end of the last line with content before the mark."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    context = str(getattr(error, "context", "") or "")
    if "quoted" in context and getattr(error, "context_mark", None) is not None:
        return error.context_mark  # the opening quote: every line after it is inside the string
    if mark is None or "flow" not in context or not 0 < mark.index <= len(text):
        return mark
    before = text[:mark.index]
    lines = before.split("\n")
    if lines[-1].strip():  # content before the mark on its own line: the mark is right
        return mark
    for number in range(len(lines) - 2, -1, -1):
        content = lines[number].split("#", 1)[0].rstrip()
        if content:
            return yaml.Mark(mark.name, mark.index, number, len(content), None, None)
    return mark


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)``, with every way it can fail (also on hostile input) as one JobFileError."""
    loader = None
    try:  # yaml.safe_load's two steps, with the alias count between them: the text is parsed once
        loader = JobFileLoader(text)  # its reader already rejects characters YAML forbids
        root = loader.get_single_node()
        _refuse_alias_bombs(root, source)
        return loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = _error_mark(e, text)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise JobFileError(source, f"{where}invalid YAML: {problem}") from None
    except RecursionError:
        raise JobFileError(source, "the job file is nested too deeply, or a YAML alias holds itself") from None
    except ValueError as e:  # e.g. an integer literal too long to convert
        raise JobFileError(source, f"cannot read the job file: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _refuse_alias_bombs(root: Any, source: str) -> None:
    """Count the document's values with and without expanding aliases, on the node graph (expanding
    nothing); refuse it if aliases add more than MAX_ALIAS_VALUES."""
    expanded: dict[int, int] = {}

    def values(node: Any) -> int:
        if id(node) not in expanded:
            expanded[id(node)] = 1  # an alias inside its own anchor counts once
            children = node.value if isinstance(node, yaml.SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
            expanded[id(node)] = 1 + sum(values(c) for c in children)
        return expanded[id(node)]

    added = (values(root) - len(expanded)) if root is not None else 0
    if added > MAX_ALIAS_VALUES:
        raise JobFileError(source, f"its YAML aliases expand to {added:,} more values (the most allowed is "
                                   f"{MAX_ALIAS_VALUES:,}): an alias bomb?")
