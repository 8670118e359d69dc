"""Typed ``KEY=VALUE`` options (the CLI's ``--set``): each value converted to the type its option declares.

The options are the fields of ``TrainConfig`` and of the strategies in use, with the types their
dataclasses declare; a value that does not fit, or a key nobody declares, is one sentence naming the
option, what it takes and an example.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from .errors import HeadstartError
from .strategies import create_strategy
from .train import TrainConfig

__all__ = ["convert_option", "declared_options", "parse_options"]

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def declared_options(strategies: Sequence[str] = ()) -> dict[str, Any]:
    """Option name -> declared type, for ``TrainConfig`` and the given strategies (by spec, e.g. ``partial:2``)."""
    out: dict[str, Any] = {}
    for cls in [TrainConfig] + [type(create_strategy(s)) for s in strategies]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, hints[f.name])
    return out


def _describe(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        return f"comma-separated {_describe(args[0])}s"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a word"}.get(tp, str(tp))


def convert_option(name: str, text: str, tp: Any) -> Any:
    """``text`` as a value of type ``tp``; a HeadstartError naming ``name`` when it is not one."""
    value = text.strip()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    try:
        if origin in (typing.Union, types.UnionType):
            if value.lower() == "none" and type(None) in args:
                return None
            for member in (a for a in args if a is not type(None)):
                try:
                    return convert_option(name, value, member)
                except HeadstartError:
                    continue
            raise ValueError(value)
        if origin is tuple:
            return tuple(convert_option(name, part, args[0]) for part in value.split(",") if part.strip())
        if tp is bool:
            if value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError(value)
        if tp is int:
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if not value:
                raise ValueError(value)
            return value
    except ValueError:
        pass
    else:
        raise HeadstartError(f"The option {name!r} has a type headstart cannot read from text ({tp}).")
    raise HeadstartError(f"--set {name}={text!r}: {name} takes {_describe(tp)}. Example: --set {name}="
                         f"{_example(tp)}.")


def _example(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _example(next(a for a in args if a is not type(None)))
    if typing.get_origin(tp) is tuple:
        return "0.1,1,10"
    return {bool: "true", int: "4", float: "0.001", str: "auto"}.get(tp, "...")


def parse_options(pairs: Sequence[str], strategies: Sequence[str] = ()) -> dict[str, Any]:
    """``["lr=1e-3", "rank=4"]`` -> ``{"lr": 0.001, "rank": 4}``, typed by the options' declarations."""
    declared = declared_options(strategies)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise HeadstartError(f"--set takes KEY=VALUE (e.g. --set rank=4); got {pair!r}.")
        if key not in declared:
            raise HeadstartError(f"--set {key}: no such option for {', '.join(strategies) or 'this command'}. "
                                 f"Options: {', '.join(sorted(declared))}.")
        out[key] = convert_option(key, value, declared[key])
    return out
