"""Options declared once: type (the dataclass annotation), default, help, allowed values or range, and what a
value means to a run's identity. Training options, strategy options and term options all use ``option``.

``neutral`` is the value at which an option changes nothing: a run whose option is at its neutral value
has the key it had before the option existed (``guard=None``; ``guard_weight=None``, "the guard's own
default"). An option without ``neutral`` is always part of the key. ``check_declared`` turns the
declarations into scikit-learn-style messages ("The 'rank' parameter of lora must be ... Got ... instead.").
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .errors import HeadstartError

__all__ = ["NO_NEUTRAL", "allowed", "check_declared", "check_value", "convert_option", "identity_options", "option"]

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
NO_NEUTRAL = object()  # the option is always part of a run's identity


def option(default: Any, help: str, *, choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
           low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           neutral: Any = NO_NEUTRAL, example: Any = None) -> Any:
    """A dataclass field with its declaration in ``metadata`` (``choices`` may be a callable: a registry).

    ``example`` is a valid value shown in the message that refuses a bad one (default: the default, or the
    first choice)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
        "neutral": neutral, "example": example if example is not None else default})


def _choices(meta: dict[str, Any]) -> Sequence[Any] | None:
    choices = meta.get("choices")
    return choices() if callable(choices) else choices


def _must(meta: dict[str, Any], optional: bool, integer: bool) -> str:
    choices = _choices(meta)
    if choices is not None:
        words = [repr(c) for c in choices] + (["None"] if optional else [])
        if len(words) <= 2:
            return " or ".join(words)
        return "one of " + ", ".join(words[:-1]) + " or " + words[-1]
    low, high = meta.get("low"), meta.get("high")
    if high is None and (low, bool(meta.get("low_open"))) in ((1, False), (0, True)):
        return ("a positive integer" if integer else "positive") + (" or None" if optional else "")
    if high is None and low == 0 and not meta.get("low_open"):
        return ("a non-negative integer" if integer else "non-negative") + (" or None" if optional else "")
    if high is None and low is not None:
        bound = f"more than {low:g}" if meta.get("low_open") else f"at least {low:g}"
        return (f"an integer of {bound}" if integer else bound) + (" or None" if optional else "")
    left = "(" if meta.get("low_open") else "["
    right = ")" if meta.get("high_open") else "]"
    span = f"in {left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
    return ("an integer " if integer else "") + span + (" or None" if optional else "")


def _fits(value: Any, meta: dict[str, Any]) -> bool:
    choices = _choices(meta)
    if choices is not None:
        return value in choices
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value <= low if meta.get("low_open") else value < low):
        return False
    return not (high is not None and (value >= high if meta.get("high_open") else value > high))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kinds(cls: type, f: dataclasses.Field) -> tuple[bool, bool]:
    """(None allowed, integers only) for field ``f`` of dataclass ``cls``, from its annotation."""
    tp = _hints(cls)[f.name]
    kinds = set(typing.get_args(tp)) or {tp}
    return type(None) in kinds or f.default is None, int in kinds and float not in kinds


def allowed(cls: type, f: dataclasses.Field) -> str | None:
    """What a declared option of dataclass ``cls`` accepts, in words (``'l2sp' or None``, ``in (0, 1]``); None if
    the field declares no choices or range."""
    meta = f.metadata
    if "help" not in meta or (_choices(meta) is None and meta.get("low") is None and meta.get("high") is None):
        return None
    return _must(meta, *_kinds(cls, f))


def check_declared(obj: Any, owner: str) -> None:
    """Every declared option of dataclass ``obj`` holds an allowed value (None passes where it is the default)."""
    for f in dataclasses.fields(obj):
        meta = f.metadata
        if "help" not in meta:
            continue
        value = getattr(obj, f.name)
        optional, integer = _kinds(type(obj), f)
        if value is None and optional:
            continue
        if _choices(meta) is None and meta.get("low") is None and meta.get("high") is None:
            _check_type(f.name, value, _hints(type(obj))[f.name], owner, f.default)
            continue
        _check(f.name, value, meta, owner, optional, integer)


def _fits_type(value: Any, kind: Any) -> bool:
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return not isinstance(kind, type) or isinstance(value, kind)


def _check_type(name: str, value: Any, tp: Any, owner: str, default: Any) -> None:
    """An option without a range or choices still holds its declared type (``augment="yes"`` is not True)."""
    kinds = [a for a in (typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,))
             if a is not type(None)]
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if origin is bool and isinstance(value, bool):
            return
        if origin is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return
        if origin is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return
        if origin is tuple and isinstance(value, (tuple, list)):  # a list from JSON (a saved model) is a tuple
            args = [a for a in typing.get_args(kind) if a is not Ellipsis]
            if all(_fits_type(v, args[0]) for v in value) if args else True:
                return
            continue
        if origin not in (bool, float, int) and isinstance(origin, type) and isinstance(value, origin):
            return
        if not isinstance(origin, type):  # a type headstart does not check here
            return
    raise HeadstartError(f"The {name!r} parameter of {owner} must be {_describe(tp)}. Got {value!r} instead "
                         f"(e.g. {name}={default!r}).")


def check_value(name: str, value: Any, owner: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, choices: Sequence[Any] | None = None,
                integer: bool = False, optional: bool = False, example: Any = None, flag: str | None = None) -> Any:
    """``value`` if it is allowed, else the declared-option sentence; for settings that are not dataclass fields
    (a command line's ``--threads``, an executor's threads). ``flag`` names it as typed (``--threads``)."""
    meta = {"choices": choices, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "example": example}
    if not (value is None and optional):
        _check(name, value, meta, owner, optional, integer, flag)
    return value


def _check(name: str, value: Any, meta: dict[str, Any], owner: str, optional: bool, integer: bool,
           flag: str | None = None) -> None:
    if _fits(value, meta) and not (integer and not isinstance(value, numbers.Integral)):
        return
    example = meta.get("example")
    if example is None:
        choices = _choices(meta)
        example = choices[0] if choices else None
    if example is None and meta.get("low") is not None and not meta.get("low_open"):
        example = meta["low"]
    shown = f"{flag} {example}" if flag else f"{name}={example!r}"
    subject = f"{flag}" if flag else f"The {name!r} parameter of {owner}"
    raise HeadstartError(f"{subject} must be {_must(meta, optional, integer)}. Got {value!r} instead"
                         + (f" (e.g. {shown})." if example is not None else "."))


def identity_options(obj: Any) -> dict[str, Any]:
    """``obj``'s options as a run's identity holds them: every option, less those at their neutral value."""
    out = dataclasses.asdict(obj)
    for f in dataclasses.fields(obj):
        neutral = f.metadata.get("neutral", NO_NEUTRAL)
        if neutral is not NO_NEUTRAL and out.get(f.name) == neutral:
            del out[f.name]
    return out


def _describe(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        return "comma-separated " + {float: "numbers", int: "whole numbers"}.get(args[0], "words")
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a word"}.get(tp, str(tp))


def convert_option(name: str, text: str, tp: Any, context: str | None = None) -> Any:
    """``text`` as a value of type ``tp``; a HeadstartError naming ``name`` (in ``context``: where it was written,
    ``--set name=text`` by default) when it is not one."""
    value = text.strip()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    try:
        if origin in (typing.Union, types.UnionType):
            if value.lower() == "none" and type(None) in args:
                return None
            for member in (a for a in args if a is not type(None)):
                try:
                    return convert_option(name, value, member, context)
                except HeadstartError:
                    continue
            raise ValueError(value)
        if origin is tuple:
            return tuple(convert_option(name, part, args[0], context) for part in value.split(",") if part.strip())
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
    where, example = (context, f"{name}={_example(tp)}") if context else (f"--set {name}={text!r}",
                                                                          f"--set {name}={_example(tp)}")
    raise HeadstartError(f"{where}: {name} takes {_describe(tp)}. Example: {example}.")


def _example(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _example(next(a for a in args if a is not type(None)))
    if typing.get_origin(tp) is tuple:
        return "0.1,1,10"
    return {bool: "true", int: "4", float: "0.001", str: "auto"}.get(tp, "...")
