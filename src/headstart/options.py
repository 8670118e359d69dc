"""Typed ``KEY=VALUE`` options (the CLI's ``--set``): each value converted to the type its option declares.

The options are the fields of ``TrainConfig`` and of the strategies in use, with the types their
dataclasses declare; a value that does not fit, or a key nobody declares, is one sentence naming the
option, what it takes and an example. ``STRATEGY.KEY=VALUE`` (``lora.rank=4``, ``full.lr=2e-5``)
sets an option for one strategy of a race only; a plain strategy option (``rank=4``) goes to every
strategy that declares it, a training option (``lr=1e-4``) to all of them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from .declare import _describe, convert_option
from .errors import HeadstartError
from .strategies import base_name, create_strategy, split_entry
from .train import TrainConfig

__all__ = ["check_options", "convert_option", "declared_options", "describe_type", "options_for", "parse_options"]



def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def declared_options(strategies: Sequence[str] = ()) -> dict[str, Any]:
    """Option name -> declared type, for ``TrainConfig`` and the given strategies (by spec, e.g. ``partial:2``),
    plus ``STRATEGY.KEY`` for each strategy's own and the training options."""
    out: dict[str, Any] = dict(_fields(TrainConfig))
    for spec in strategies:
        own = _fields(type(create_strategy(spec)))
        for name, tp in own.items():
            out.setdefault(name, tp)
        for prefix in dict.fromkeys([split_entry(spec)[0], base_name(spec)]):
            out.update({f"{prefix}.{name}": tp for name, tp in {**_fields(TrainConfig), **own}.items()})
    return out


def options_for(options: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The options that apply to one strategy (by spec): training options, the strategy options it declares,
    and ``STRATEGY.KEY`` options addressed to it (which win)."""
    own = set(_fields(type(create_strategy(strategy))))
    train = set(_fields(TrainConfig))
    plain = {k: v for k, v in options.items() if "." not in k and (k in train or k in own)}
    addressed = {k.rpartition(".")[2]: v for k, v in options.items()
                 if "." in k and k.rpartition(".")[0] in (split_entry(strategy)[0], base_name(strategy))}
    return {**plain, **addressed}


def check_options(options: dict[str, Any], strategies: Sequence[str]) -> None:
    """Every option applies to at least one strategy, and each strategy's options are valid for it."""
    declared = declared_options(strategies)
    unknown = sorted(k for k in options if k not in declared)
    if unknown:
        raise HeadstartError(f"The option {unknown[0]!r} applies to none of {', '.join(strategies)}. Options: "
                             f"{', '.join(sorted(k for k in declared if '.' not in k))} (or STRATEGY.OPTION).")
    for spec in strategies:
        _, strategy_options = TrainConfig.from_options(options_for(options, spec))
        create_strategy(spec, **strategy_options)


def describe_type(cls: type, name: str) -> str:
    """What option ``name`` of dataclass ``cls`` takes, in words."""
    return _describe(_fields(cls)[name])


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
                                 f"Options: {', '.join(sorted(k for k in declared if '.' not in k))} (or "
                                 "STRATEGY.OPTION for one strategy, e.g. lora.rank).")
        out[key] = convert_option(key, value, declared[key])
    return out
