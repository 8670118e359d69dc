"""The advisor's rule (size × gap → recipe), judged at the labels per class the recipe will learn from."""

from __future__ import annotations

import pytest

from headstart.cli import main
from headstart.race import ResultStore, advise
from headstart.race.advisor import CLOSE_ERROR_REDUCTION, SMALL_PER_CLASS, decide

from .conftest import tiny_backbone
from .race_child import toy_task
from .test_race_backbones import A  # a registered tiny text encoder


@pytest.mark.parametrize(("per_class", "reduction", "lm", "expected"), [
    (SMALL_PER_CLASS - 1, CLOSE_ERROR_REDUCTION, (1.0, 0.0), ("small", "close", "probe")),
    (SMALL_PER_CLASS - 1, CLOSE_ERROR_REDUCTION - 0.01, (1.0, 0.0), ("small", "far", "full")),
    (SMALL_PER_CLASS - 1, 0.9, (0.0, 1.0), ("small", "far", "full")),  # LogME must agree as well
    (SMALL_PER_CLASS, 0.9, (1.0, 0.0), ("large", "close", "full")),
    (SMALL_PER_CLASS, 0.0, (1.0, 0.0), ("large", "far", "full")),
])
def test_the_rule_reads_both_lines(per_class, reduction, lm, expected):
    assert decide(per_class, reduction, *lm) == expected


def test_the_lines_can_be_moved():
    assert decide(40, 0.1, 1.0, 0.0, small_per_class=32, close_error_reduction=0.05) == ("large", "close", "full")
    assert decide(40, 0.1, 1.0, 0.0, small_per_class=64, close_error_reduction=0.05) == ("small", "close", "probe")


@pytest.fixture
def tiny_advisor(monkeypatch):
    monkeypatch.setattr("headstart.race.advisor.create_backbone",
                        lambda name, pretrained, **o: tiny_backbone(name, pretrained))


def test_a_budget_below_the_pool_decides_the_size(tiny_advisor):
    task = toy_task(600)  # two classes, hundreds of labels each in the pool
    whole = advise(task, "minilm-l6", subset=40)
    at_8 = advise(task, "minilm-l6", subset=40, budget=8)
    assert whole.size == "large" and whole.budget is None
    assert at_8.size == "small" and at_8.budget == 8
    assert (at_8.error_reduction, at_8.gap) == (whole.error_reduction, whole.gap)  # the signals do not depend on it
    assert "8 labelled examples per class to learn from (the race's largest budget" in at_8.reasons[0]
    above = advise(task, "minilm-l6", subset=40, budget=10_000)  # more than the pool holds: the pool decides
    assert above.size == "large" and above.reasons[0].startswith(f"{whole.labels_per_class_median:g} labelled")


def test_a_race_is_advised_at_its_largest_budget(toy_csv, tmp_path, capsys):
    out = tmp_path / "race"
    main(["compare", str(toy_csv), "--backbone", A, "--strategies", "probe", "--budgets", "4,8", "--seeds", "1",
          "--quiet", "--out", str(out)])
    with ResultStore(out / "results.sqlite") as store:
        advice = store.get_meta("advice")
    assert advice["budget"] == 8 and advice["size"] == "small"  # the toy's pool holds about 50 per class
    assert "8 labelled examples per class to learn from (the race's largest budget" in advice["reasons"][0]
    assert "The race agrees" in capsys.readouterr().out or advice["strategy"] != "probe"


def test_the_labels_per_class_flag_is_checked_first(capsys, no_work):
    assert main(["advise", "rotten-tomatoes", "--labels-per-class", "0"]) == 2
    expected = "--labels-per-class must be a positive integer. Got 0 instead (e.g. --labels-per-class 32)."
    assert expected in capsys.readouterr().err
