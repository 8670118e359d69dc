"""Choosing on tiny data: repeated k-fold cross-validation within each run's labels instead of a selection part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headstart.data import Task, make_splits
from headstart.errors import HeadstartError
from headstart.race import RaceSpec, prepare_race, run_race
from headstart.race.choosing import CV_TEST_FROM, cross_validate, resolve_choice
from headstart.report import write_report

from .conftest import tiny_backbone
from .race_child import toy_task


def _strict_json(path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _race(n: int, out, **kw):
    spec = RaceSpec("toy", "minilm-l6", **{"strategies": ["scratch-small", "probe"], "budgets": [None], "seeds": 2,
                                           "train_options": {"epochs": 2, "precision": "fp32"}, **kw})
    records = run_race(spec, out, task=toy_task(n), backbone=lambda p: tiny_backbone("minilm-l6", p), progress=False)
    return spec, records


@pytest.mark.parametrize("per_class, mode, test_fraction", [
    (8, "cv", 0.0),  # too small for a test part too
    (CV_TEST_FROM, "cv", 0.2),  # a test part from 10 of every class
    (40, "cv", 0.2),  # a fifth would be 8 per class: too few to choose on
    (50, "selection", 0.2),  # a fifth is 10 per class: a selection part
])
def test_auto_cross_validates_when_a_selection_part_would_be_too_small(per_class, mode, test_fraction):
    task = toy_task(2 * per_class)
    chosen, fraction, note = resolve_choice("auto", task, test_file=False)
    assert (chosen, fraction) == (mode, test_fraction)
    assert (note is not None) == (fraction == 0.0)
    if note:
        assert "no test part" in note and f"{per_class} examples" in note and "--test" in note


def test_a_forced_choice_is_kept_and_a_test_file_needs_no_test_part():
    small, large = toy_task(16), toy_task(200)
    assert resolve_choice("selection", small, test_file=False)[:2] == ("selection", 0.2)
    assert resolve_choice("cv", large, test_file=False)[:2] == ("cv", 0.2)
    assert resolve_choice("auto", small, test_file=True) == ("cv", 0.0, None)


def test_a_split_without_a_selection_part_keeps_every_label_for_the_pool_and_the_test():
    task = toy_task(40)
    splits = make_splits(task, selection_fraction=0.0, test_fraction=0.2)
    assert len(splits.selection) == 0 and len(splits.test) == 8 and len(splits.pool) == 32
    assert not set(splits.pool) & set(splits.test)


def test_every_label_scores_once_out_of_fold_and_copies_share_a_fold():
    texts = [f"t{i // 2}" for i in range(40)]  # every text twice: 20 pairs of exact copies
    task = Task(texts, np.array([(i // 2) % 2 for i in range(40)]), ("a", "b"), "text", "copies")
    labelled = np.arange(40)
    seen: list[tuple[set, set, set]] = []

    def fit_predict(train, val, held):
        seen.append((set(train.tolist()), set(val.tolist()), set(held.tolist())))
        return task.labels[held]  # a perfect model

    out = cross_validate(task, labelled, folds=5, seed=0, validates=True, fit_predict=fit_predict)
    assert out["acc"] == 1.0 and out["folds"] == 5 and out["n"] == 40
    held_all = [i for _, _, held in seen for i in held]
    assert sorted(held_all) == list(range(40))  # each label scored exactly once
    for train, val, held in seen:
        assert not (train | val) & held and not train & val and val  # validation comes out of the training folds
        for i in held:  # its copy is held out with it, never trained on
            assert (i ^ 1) in held


def test_data_with_a_single_example_of_a_class_are_refused_before_any_work():
    task = Task(["a", "b", "c", "d"], np.array([0, 1, 1, 1]), ("x", "y"), "text", "one")
    with pytest.raises(HeadstartError, match="one: a class has a single distinct example"):
        resolve_choice("auto", task, test_file=True)


def test_a_class_with_one_label_cannot_be_cross_validated():
    task = Task(["a", "b", "c"], np.array([0, 1, 1]), ("x", "y"), "text", "one")
    with pytest.raises(HeadstartError, match="at least 2 labels of every class"):
        cross_validate(task, np.arange(3), folds=5, seed=0, validates=False, fit_predict=lambda *a: a[2] * 0)


def test_a_tiny_race_chooses_by_cross_validation_and_still_reports_on_its_test_part(tmp_path):
    spec, records = _race(40, tmp_path / "race")
    assert spec.choose == "auto"  # the caller's spec; the race resolved its own copy
    for r in records:
        assert r["cv"]["folds"] == 5 and r["n_selection"] == r["n_train"] + r["n_val"] == 32
        assert r["sel_acc"] == r["cv"]["acc"] and r["test_acc"] is not None and r["n_test"] == 8
    summary_path = tmp_path / "race" / "results.json"
    page = write_report(tmp_path / "race").read_text(encoding="utf-8")
    summary = _strict_json(summary_path)
    assert summary["chosen_on"].startswith("Chosen by 5-fold cross-validation within each run's labels")
    assert "test accuracy on 8 held-out examples is only reported" in summary["chosen_on"]
    assert "cross-validated accuracy" in page and "in cross-validation within its labels" in page


def test_the_same_seed_gives_the_same_cross_validated_scores(tmp_path):
    _, first = _race(40, tmp_path / "a")
    _, second = _race(40, tmp_path / "b")
    assert [(r["key"], r["cv"]["fold_acc"]) for r in first] == [(r["key"], r["cv"]["fold_acc"]) for r in second]


def test_a_cross_validated_run_is_not_the_run_chosen_on_a_selection_part(tmp_path):
    task = toy_task(40)
    auto = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[8])
    forced = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[8], choose="selection")
    a, f = prepare_race(auto, task), prepare_race(forced, task)
    assert (auto.choose, len(a.selection), forced.choose, len(f.selection)) == ("cv", 0, "selection", 8)
    run = auto.runs()[0]
    assert auto.run_key(run, a.fingerprint) != forced.run_key(run, f.fingerprint)


def test_data_too_small_for_a_test_part_are_raced_and_say_so(tmp_path):
    spec, records = _race(16, tmp_path / "race", budgets=[1, 2, None])
    assert all(r["test_acc"] is None and r["n_test"] == 0 for r in records)
    assert {r["budget"] for r in records} == {2, None}  # 1 label of a class cannot both train and score
    write_report(tmp_path / "race")
    summary = _strict_json(tmp_path / "race" / "results.json")
    assert "there is no test part" in summary["chosen_on"]
    assert summary["negative_transfer"].startswith("No test part in this race")
    assert summary["recommendation"]["test_acc"] is None
    assert any("not measured: there is no test part" in r for r in summary["recommendation"]["reasons"])
    assert all(row["acc_mean"] is None for row in summary["table"])


def test_budget_one_is_named_when_a_race_cross_validates():
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[1, 2])
    prepare_race(spec, toy_task(40))  # tiny data: auto resolves to cross-validation
    assert [r.budget for r in spec.runs()] == [2, 2, 2]
    assert "at 1 label per class nothing is raced: this race chooses by cross-validation" in spec.skipped()
    with pytest.raises(HeadstartError, match="No strategy of probe runs at 1 labels per class: this race chooses by "
                                             "cross-validation"):
        RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[1], choose="cv")


def test_compare_chooses_by_cross_validation_when_asked(toy_csv, tmp_path, capsys):
    from headstart.cli import main

    from .test_race_backbones import A

    out = tmp_path / "r"
    assert main(["compare", str(toy_csv), "--backbone", A, "--strategies", "probe,prototype", "--budgets", "8",
                 "--seeds", "1", "--choose", "cv", "--cv-folds", "4", "--no-advice", "--quiet",
                 "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    assert "Chosen by 4-fold cross-validation within each run's labels" in printed
    summary = _strict_json(out / "results.json")
    assert "--choose cv --cv-folds 4" in summary["reproduce"]
    assert main(["compare", str(toy_csv), "--backbone", A, "--cv-folds", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--cv-folds must be an integer of at least 2. Got 1" in capsys.readouterr().err
