"""Component names a job file may use, and how they become classes.

Each *family* (optimizers, selectors, spawn controllers, stoppers, exit conditions, generators)
maps its public names, and the aliases the GloMPO/ParAMS documentation uses, to an import path.
Nothing is imported until a name is resolved, so a job file that never names an optimizer does
not pay for importing ``cma``, and a family whose module is broken only fails the job files that
use it.

Besides registry names, a job file may give an import path ``pkg.module:Class`` (or
``pkg.module.Class``) to use its own subclass; it must subclass the family's base class.

This module also checks a component's parameters against its ``__init__`` signature
(:func:`bind_parameters`), because that is where "which names are valid" is answered.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import JobFileError

__all__ = ("Family", "FAMILIES", "resolve", "import_object", "bind_parameters", "describe_parameters",
           "valid_names", "show")

logger = logging.getLogger("glompo_hpc.jobfile")

_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class Alias:
    """Another name for a registry class, optionally with its own positional parameter order.

    ``positional`` exists because some documented aliases take a different first argument than
    the class they map to: ``TimeLimitThroughRestarts(3600)`` means ``MaxSeconds(overall_max=3600)``.
    """

    target: str
    positional: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Family:
    """One kind of component.

    Attributes:
        key: Name used in messages, e.g. 'stopper'.
        base: Import path of the base class user classes must derive from (None: any class).
        names: Public name -> import path.
        aliases: Alias -> :class:`Alias`.
    """

    key: str
    base: str | None
    names: Mapping[str, str]
    aliases: Mapping[str, Alias] = field(default_factory=dict)


def _same_module(module: str, *names: str) -> dict[str, str]:
    return {name: f"{module}:{name}" for name in names}


FAMILIES: dict[str, Family] = {
    "optimizer": Family(
        "optimizer", "glompo_hpc.optimizers.base:BaseOptimizer",
        {"CMAOptimizer": "glompo_hpc.optimizers.cma:CMAOptimizer",
         "ScipyOptimizer": "glompo_hpc.optimizers.scipy:ScipyOptimizer",
         "RandomOptimizer": "glompo_hpc.optimizers.random:RandomOptimizer"},
        {"ScipyOptimizeWrapper": Alias("ScipyOptimizer")}),
    "selector": Family(
        "selector", "glompo_hpc.selectors:BaseSelector",
        _same_module("glompo_hpc.selectors", "CycleSelector", "RandomSelector", "ChainSelector")),
    "spawn controller": Family(
        "spawn controller", "glompo_hpc.selectors:BaseSpawnController",
        _same_module("glompo_hpc.selectors", "IterSpawnStop", "NOptimizersSpawnStop")),
    "stopper": Family(
        "stopper", "glompo_hpc.stoppers:BaseStopper",
        _same_module("glompo_hpc.stoppers", "BestUnmoving", "EvaluationsUnmoving", "LastPointsInvalid",
                     "MinFuncCalls", "ParameterDistance", "StepSize", "TimeAnnealing", "ValueAnnealing",
                     "TypeHunter", "BasinHeld", "NotBest", "PolishDue"),
        {"BestFunctionValueUnmoving": Alias("BestUnmoving"),
         "CurrentFunctionValueUnmoving": Alias("EvaluationsUnmoving"),
         "MaxSequentialInvalidPoints": Alias("LastPointsInvalid"),
         "TypeStopper": Alias("TypeHunter")}),
    "exit condition": Family(
        "exit condition", "glompo_hpc.exit_conditions:BaseExitCondition",
        _same_module("glompo_hpc.exit_conditions", "MaxFuncCalls", "TargetCost", "NOptConverged",
                     "MaxOptsStarted", "MaxKills", "KillsAfterConvergence", "MaxSeconds"),
        {"MaxTotalFunctionCalls": Alias("MaxFuncCalls"),
         "TargetFunctionValue": Alias("TargetCost"),
         "MaxOptimizersConverged": Alias("NOptConverged"),
         "MaxOptimizersStarted": Alias("MaxOptsStarted"),
         "MaxOptimizersStopped": Alias("MaxKills"),
         "StopsAfterConvergence": Alias("KillsAfterConvergence"),
         "TimeLimit": Alias("MaxSeconds", ("session_max",)),
         "TimeLimitThroughRestarts": Alias("MaxSeconds", ("overall_max",))}),
    "generator": Family(
        "generator", "glompo_hpc.generators:BaseGenerator",
        _same_module("glompo_hpc.generators", "RandomGenerator", "SinglePointGenerator", "IncumbentGenerator",
                     "ExploitExploreGenerator", "PerturbationGenerator", "BasinHoppingGenerator",
                     "AnnealingGenerator")),
}


def valid_names(family: str) -> str:
    """Human-readable list of a family's names and aliases, for error messages."""
    fam = FAMILIES[family]
    text = ", ".join(fam.names)
    if fam.aliases:
        text += " (aliases: " + ", ".join(f"{a} = {al.target}" for a, al in fam.aliases.items()) + ")"
    return text + ", or an import path 'pkg.module:Class'"


def show(value: Any, limit: int = 60) -> str:
    """``repr`` shortened for one-line error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def import_object(path: Any, key_path: str, what: str = "object") -> Any:
    """Import ``pkg.module:name`` (or ``pkg.module.name``) and return the object.

    Args:
        path: The import path as written in the job file.
        key_path: Where it was written, for the error.
        what: What the object should be, for the error ('task', 'stopper class').

    Raises:
        JobFileError: the path is malformed, the module cannot be imported or lacks the name.
    """
    if not isinstance(path, str) or not path.strip():
        raise JobFileError(key_path, f"expected an import path 'pkg.module:name' for the {what}, got {show(path)}")
    text = path.strip()
    if ":" in text:
        module_name, _, attr = text.partition(":")
    else:
        module_name, _, attr = text.rpartition(".")
    if not _IDENTIFIER_PATH.match(module_name or "") or not _IDENTIFIER_PATH.match(attr or ""):
        raise JobFileError(key_path, f"{show(path)} is not an import path of the form 'pkg.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise JobFileError(key_path, f"cannot import {show(path)}: no module named {e.name!r}") from None
    except Exception as e:  # a user module may raise anything at import time; keep it to one line
        logger.debug("importing %s failed", module_name, exc_info=True)
        raise JobFileError(key_path, f"cannot import {show(path)}: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JobFileError(key_path, f"cannot import {show(path)}: module {module_name!r} has no "
                                         f"attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _load_registered(family: Family, name: str, key_path: str) -> type:
    path = family.names[name]
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        # Optional dependencies (cma, ...) or a family module missing in this installation.
        raise JobFileError(key_path, f"{family.key} {name} is unavailable: {type(e).__name__}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise JobFileError(key_path, f"{family.key} {name} is unavailable: {module_name} defines no {attr}") from None


def _base_class(family: Family, key_path: str) -> type | None:
    if family.base is None:
        return None
    module_name, _, attr = family.base.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise JobFileError(key_path, f"cannot check {family.key} classes: base class {family.base} is "
                                     f"unavailable ({e})") from None


def resolve(family: str, name: Any, key_path: str) -> tuple[type, Alias | None]:
    """The class a job file names, and the alias used (if any).

    Args:
        family: A key of :data:`FAMILIES`.
        name: A registry name, an alias, or an import path.
        key_path: Where the name was written, for errors.

    Raises:
        JobFileError: unknown name (the message lists the valid ones), unimportable path, or a class
            that is not a subclass of the family's base.
    """
    fam = FAMILIES[family]
    if not isinstance(name, str) or not name.strip():
        raise JobFileError(key_path, f"expected a {fam.key} name, got {show(name)}; valid: {valid_names(family)}")
    name = name.strip()
    if name in fam.names:
        return _load_registered(fam, name, key_path), None
    if name in fam.aliases:
        alias = fam.aliases[name]
        return _load_registered(fam, alias.target, key_path), alias
    if ":" not in name and "." not in name:
        close = difflib.get_close_matches(name, [*fam.names, *fam.aliases], n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise JobFileError(key_path, f"unknown {fam.key} {name!r}{hint}; valid: {valid_names(family)}")
    cls = import_object(name, key_path, f"{fam.key} class")
    base = _base_class(fam, key_path)
    if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
        expected = base.__name__ if base is not None else "a class"
        raise JobFileError(key_path, f"{name} is not a {expected} subclass")
    return cls, None


# ------------------------------------------------------------ parameters

def _signature(cls: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(cls)
    except (TypeError, ValueError):  # builtins and C extensions may have no signature
        return None


def describe_parameters(cls: Any, skip: Iterable[str] = ()) -> str:
    """``calls (required), tol=0`` for an error message; ``skip`` hides injected parameters."""
    sig = _signature(cls)
    if sig is None:
        return "(unknown)"
    parts = []
    for p in sig.parameters.values():
        if p.name in skip:
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        elif p.default is p.empty:
            parts.append(f"{p.name} (required)")
        else:
            parts.append(f"{p.name}={show(p.default, 30)}")
    return ", ".join(parts) or "none"


def bind_parameters(cls: type, args: tuple, params: Mapping[str, Any], key_path: str, *,
                    param_paths: bool = True, injected: Iterable[str] = (), alias: Alias | None = None,
                    hidden: Iterable[str] = ()) -> dict[str, Any]:
    """Check a component's arguments against ``cls.__init__`` and return them all as keywords.

    Args:
        cls: The component class.
        args: Positional arguments (the expression form ``Name(1, 2)``).
        params: Keyword arguments.
        key_path: Where the component is written.
        param_paths: True when each parameter has its own key (mapping form): errors then name
            ``key_path.param``. False for the expression form, where only ``key_path`` exists.
        injected: Parameters the builder fills in when absent (``bounds``, ``task``): never
            reported missing.
        alias: The alias used, whose ``positional`` order overrides the class's.
        hidden: Parameters the job file must not set (given by the builder), e.g. selector options.

    Raises:
        JobFileError: too many positional arguments, an unknown or duplicated parameter, or a
            missing required one. Messages list the valid parameters with their defaults.
    """
    name = cls.__name__
    sig = _signature(cls)
    if sig is None:
        if args:
            raise JobFileError(key_path, f"{name} takes keyword parameters only, got positional {show(args)}")
        return dict(params)
    injected, hidden = set(injected), set(hidden)
    skip = injected | hidden
    valid = f"valid parameters of {name}: {describe_parameters(cls, hidden)}"
    named = {p.name: p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())

    def where(param: str) -> str:
        return f"{key_path}.{param}" if param_paths else key_path

    if alias is not None and alias.positional is not None:
        positional = list(alias.positional)
    else:
        positional = [p.name for p in named.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in skip]
    if len(args) > len(positional):
        raise JobFileError(key_path, f"{name} takes at most {len(positional)} positional argument(s) "
                                     f"({', '.join(positional) or 'none'}), got {len(args)}; {valid}")
    bound = dict(zip(positional, args))
    for key, value in params.items():
        if not isinstance(key, str):
            raise JobFileError(key_path, f"parameter names must be strings, got {show(key)}")
        if key in bound:
            raise JobFileError(where(key), f"{name} got two values for {key!r} (positional and keyword)")
        if key in hidden or (key not in named and not takes_any):
            close = difflib.get_close_matches(key, [n for n in named if n not in hidden], n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise JobFileError(where(key), f"unknown parameter {key!r} = {show(value, 40)}{hint}; {valid}")
        bound[key] = value
    missing = [p for p in named.values()
               if p.default is p.empty and p.name not in bound and p.name not in skip]
    if missing:
        raise JobFileError(key_path, f"{name} needs parameter {missing[0].name!r}; {valid}")
    return bound
