"""Property tests (Hypothesis, bounded) per entry point: drawn bad option values, inapplicable options and
malformed tables must end in one sentence and a non-zero exit: never a traceback, never work started on
garbage, never a silent success.

The draws come from the declarations themselves (every declared field of ``TrainConfig`` and of every
registered strategy, the command line's own flags), so an option added later is drawn too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headstart import TrainConfig
from headstart.cli import main
from headstart.cli_train import FLAGS
from headstart.data import from_arrays, load_task
from headstart.declare import _hints
from headstart.errors import HeadstartError
from headstart.strategies import create_strategy, list_strategies

#: HEADSTART_FUZZ=400 for a longer search than CI's
BOUNDED = settings(max_examples=int(os.environ.get("HEADSTART_FUZZ", 40)), deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])
JUNK = st.sampled_from(["fast", "", " ", "1,2", "none?", "[1]", "{}"]) | st.lists(st.integers(), max_size=2) | \
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)


def _bad_values(cls: type, f: dataclasses.Field) -> st.SearchStrategy:
    """Values field ``f`` of ``cls`` must refuse: outside its range or choices, or of another type."""
    meta, tp = f.metadata, _hints(cls)[f.name]
    kinds = set(typing.get_args(tp)) or {tp}
    tuple_like = typing.get_origin(tp) is tuple  # a list is a valid value of a tuple option
    junk = JUNK.filter(lambda v: not isinstance(v, list)) if tuple_like else JUNK
    if meta.get("choices") is None and (str in kinds or tp == tuple[str, ...]):  # free text: a template, where
        junk = junk.filter(lambda v: not (isinstance(v, str) and "{}" in v))  # any text holding {} is valid
    out = [junk, st.just(math.nan), st.just(math.inf)] if bool not in kinds else [junk, st.sampled_from([2, "yes"])]
    choices = meta.get("choices")
    if choices is not None:
        values = choices() if callable(choices) else choices
        out.append(st.text(min_size=1, max_size=6).filter(lambda v: v not in values))
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        top = low if meta.get("low_open") else low - 1e-9
        out.append(st.floats(max_value=top, allow_nan=False, allow_infinity=False, min_value=-1e6)
                   if float in kinds else st.integers(max_value=math.ceil(top) - (0 if meta.get("low_open") else 1),
                                                      min_value=-10**6))
    if high is not None:
        bottom = high if meta.get("high_open") else high + 1e-9
        out.append(st.floats(min_value=bottom, max_value=1e6, allow_nan=False))
    if int in kinds and float not in kinds and bool not in kinds:
        out.append(st.sampled_from([1.5, True]))
    return st.one_of(out)


def _declared(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


TRAIN_FIELDS = _declared(TrainConfig)
STRATEGY_FIELDS = [(name, f) for name in list_strategies() for f in _declared(type(create_strategy(name)))]


@BOUNDED
@given(data=st.data())
def test_any_bad_training_option_is_refused_in_one_sentence(data):
    f = data.draw(st.sampled_from(TRAIN_FIELDS))
    value = data.draw(_bad_values(TrainConfig, f))
    with pytest.raises(HeadstartError) as err:
        TrainConfig(**{f.name: value})
    assert f"'{f.name}'" in str(err.value) and "\n" not in str(err.value)


@BOUNDED
@given(data=st.data())
def test_any_bad_strategy_option_is_refused_in_one_sentence(data):
    name, f = data.draw(st.sampled_from(STRATEGY_FIELDS))
    value = data.draw(_bad_values(type(create_strategy(name)), f))
    with pytest.raises(HeadstartError) as err:
        create_strategy(name, **{f.name: value})
    assert f.name in str(err.value) and "\n" not in str(err.value)


COMMANDS = {"compare": ["compare", "rotten-tomatoes", "--backbone", "minilm-l6", "--out", "{out}"],
            "fit": ["fit", "rotten-tomatoes", "--backbone", "minilm-l6", "--out", "{out}"],
            "advise": ["advise", "rotten-tomatoes", "--backbone", "minilm-l6"],
            "lab": ["lab", "rotten-tomatoes", "--backbone", "minilm-l6", "--port", "{port}"]}
INT = st.integers(min_value=-10**6, max_value=10**6)


@functools.cache
def _commands_with(flag: str) -> list[str]:
    from headstart.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return [c for c in COMMANDS if any(flag in a.option_strings for a in sub.choices[c]._actions)]


CLI_BAD = [(flag, st.integers(min_value=-10**6, max_value=int(allowed["low"]) - 1).map(str)
            | (st.integers(min_value=int(allowed["high"]) + 1, max_value=10**9).map(str) if "high" in allowed
               else st.nothing()))
           for _, (flag, allowed) in FLAGS.items() if allowed.get("integer")]
CLI_BAD += [("--max-length", st.integers(min_value=-10**6, max_value=1).map(str)),
            ("--image-size", INT.map(str)),  # a text backbone takes no image size at all
            ("--epochs", st.integers(min_value=-10**6, max_value=0).map(str)),
            ("--batch-size", st.integers(min_value=-10**6, max_value=0).map(str)),
            ("--lr", st.floats(max_value=0.0, allow_nan=False, min_value=-1e9).map(repr) | st.just("nan")),
            ("--set", st.sampled_from([f for f in TRAIN_FIELDS if _hints(TrainConfig)[f.name] is not bool]).flatmap(
                lambda f: _bad_values(TrainConfig, f).filter(lambda v: isinstance(v, (int, float, str))
                                                             and not isinstance(v, bool) and str(v).strip()
                                                             and "=" not in str(v))
                .map(lambda v, f=f: f"{f.name}={v}")))]


@BOUNDED
@given(data=st.data())
def test_every_command_refuses_any_bad_flag_before_any_work(capsys, no_work, tmp_path, data):
    flag, values = data.draw(st.sampled_from([(flag, v) for flag, v in CLI_BAD if _commands_with(flag)]))
    command = data.draw(st.sampled_from(_commands_with(flag)))
    value = data.draw(values)
    argv = [a.format(out=tmp_path / "o", port=8765) for a in COMMANDS[command]] + [flag, value]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal (a value that is not a number at all): usage + a sentence
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err and "error:" in err.splitlines()[-1], (argv, err)
    assert err.strip().splitlines()[-1].count(". ") <= 2, err  # a sentence (and its example), not a report


# -- tables ------------------------------------------------------------------------------------------------------
FIELD = st.text(alphabet="abcdefgh xyz", min_size=1, max_size=8).filter(lambda t: t.strip())


@BOUNDED
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=4), min_size=1, max_size=12),
       delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_a_table_whose_rows_do_not_match_its_header_is_refused_by_line(tmp_path_factory, rows, delimiter):
    path = tmp_path_factory.mktemp("t") / "data.csv"
    lines = [delimiter.join(["text", "label"])] + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ragged = [i + 2 for i, r in enumerate(rows) if len(r) != 2]
    try:
        task = load_task(path)
    except HeadstartError as exc:
        message = str(exc)
        assert "\n" not in message
        if ragged and "fields" in message:
            assert f"line{'s' if len(ragged) > 1 else ''} {ragged[0]} " in message
        return
    assert not ragged, f"rows {ragged} do not have two fields, yet the table loaded as {task.classes}"
    assert set(task.classes) <= {r[1].strip() for r in rows}  # every class is a value of the label column


@BOUNDED
@given(labels=st.lists(st.one_of(st.none(), st.just(math.nan), st.just(""), st.integers(0, 3),
                                 st.sampled_from(["a", "b"]), st.floats(0, 1, allow_nan=False), st.booleans()),
                       min_size=2, max_size=10))
def test_any_labels_in_the_api_are_classes_faithfully_or_a_sentence(labels):
    inputs = [f"text {i}" for i in range(len(labels))]
    try:
        task = from_arrays(inputs, labels, min_classes=1)
    except HeadstartError as exc:
        assert "\n" not in str(exc)
        return
    kinds = {type(v) for v in labels}
    assert len(kinds) == 1 or kinds == {int, float}, f"mixed labels {labels} were accepted"
    assert all(v is not None and v == v and v != "" for v in labels)
    assert len(task.classes) == len({str(int(v)) if isinstance(v, float) else str(v) for v in labels})
    assert np.array_equal(np.array(task.classes)[task.labels],
                          [str(int(v)) if isinstance(v, float) else str(v) for v in labels])


# -- the lab's API -------------------------------------------------------------------------------------------------
JSONISH = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=6), st.lists(st.integers(), max_size=2))


def test_the_labs_settings_refuse_garbage_and_queue_nothing(toy_csv, tmp_path):
    from .test_lab_api import open_lab

    session = open_lab(toy_csv, tmp_path / "lab")

    @BOUNDED
    @given(budget=JSONISH, lr=JSONISH, frozen=JSONISH)
    def check(budget, lr, frozen):
        try:
            b, rate, f = session.check_setting(budget, lr, frozen)
        except ValueError as exc:
            assert "\n" not in str(exc) and " must " in str(exc)
            return
        assert not isinstance(budget, bool) and b in session.budgets and float(budget) == b
        assert f is None or (not isinstance(frozen, bool) and float(frozen) == f)
        assert rate is None or (not isinstance(lr, bool) and float(lr) == rate)

    check()
