"""Budgets below ``VALIDATED_FROM`` per class: every label trains, nothing is held out, and only the strategies that
choose nothing on validation examples run there; contrastive's synthetic texts at budgets 0 and up."""

from __future__ import annotations

import numpy as np
import pytest

from headstart import Adapter
from headstart.data import VALIDATED_FROM, Task, draw, make_splits
from headstart.errors import HeadstartError
from headstart.race import RaceSpec, run_race
from headstart.strategies import create_strategy
from headstart.strategies.contrastive import templated_examples
from headstart.strategies.runner import check_validation
from headstart.train.config import TrainConfig

from .conftest import tiny_backbone
from .race_child import toy_task

VALIDATING = {"monitor": "val_acc"}


def _tiny(p):
    return tiny_backbone("minilm-l6", p)


def test_validation_starts_at_four_per_class():
    assert VALIDATED_FROM == 4
    task = toy_task(120)
    s = make_splits(task)
    for budget in (1, 2, 3):
        tr, va = draw(task, s, budget, seed=0)
        assert len(va) == 0 and np.bincount(task.labels[tr]).tolist() == [budget, budget]
    tr, va = draw(task, s, 4, seed=0)
    assert np.bincount(task.labels[va]).tolist() == [1, 1]


def test_strategies_that_keep_a_best_epoch_wait_for_four_per_class():
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe", "prototype", "lora"], budgets=[1, 2, 8], seeds=1,
                    train_options=VALIDATING)
    ran = [(r.strategy, r.budget) for r in spec.runs()]
    assert ("lora", 1) not in ran and ("lora", 2) not in ran and ("lora", 8) in ran
    assert {("probe", 1), ("prototype", 1), ("probe", 2), ("prototype", 2)} <= set(ran)
    assert spec.skipped() == ("at 1, 2 labels per class nothing is held out for validation: lora keeps its best "
                              "epoch by it and starts at 4 or more.")
    # with no early stopping a fine-tune keeps its last epoch and needs no validation: it runs at 1
    assert ("lora", 1) in [(r.strategy, r.budget) for r in RaceSpec(
        "toy", "minilm-l6", strategies=["probe", "lora"], budgets=[1, 8], seeds=1).runs()]


def test_a_budget_where_nothing_runs_is_refused():
    with pytest.raises(HeadstartError, match=r"^No strategy of lora runs at 2 labels per class: below 4 labels per "
                                             r"class nothing is held out.*drop the budget 2\.$"):
        RaceSpec("toy", "minilm-l6", strategies=["lora"], budgets=[2, 8], train_options=VALIDATING)


def test_an_unvalidated_draw_is_a_run_identity_of_its_own():
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe"], budgets=[2, 4], seeds=1)
    two, four = spec.runs()
    assert spec.run_identity(two, "d")["draw"] == "unvalidated"
    assert "draw" not in spec.run_identity(four, "d")


@pytest.mark.parametrize("spec,monitor,refused", [
    ("full", "val_acc", True), ("full", None, False), ("probe", None, False), ("prototype", None, False),
    ("lora", "val_loss", True), ("contrastive", None, False),
])
def test_a_fit_that_chooses_on_validation_examples_needs_some(spec, monitor, refused):
    strategy, cfg = create_strategy(spec), TrainConfig(monitor=monitor)
    if refused:
        with pytest.raises(HeadstartError, match=rf"^{spec} keeps its best epoch by validation examples, and there "
                                                 "are none .*monitor='none'"):
            check_validation(strategy, cfg, None)
    else:
        check_validation(strategy, cfg, None)
    check_validation(strategy, cfg, Task(["a", "b"], np.array([0, 1]), ("x", "y"), "text"))  # validation given


def test_probe_learns_from_every_example_given_and_a_validating_fit_holds_some_out(monkeypatch, text_task):
    import headstart.adapter as adapter

    held = []
    original = adapter.holdout
    monkeypatch.setattr(adapter, "holdout", lambda task, seed: held.append(len(task)) or original(task, seed=seed))
    Adapter(_tiny, "probe", feature_cache=None).fit(text_task)
    assert held == []
    Adapter(_tiny, "full", epochs=1, monitor="val_acc", precision="fp32", feature_cache=None).fit(text_task)
    assert held == [len(text_task)]


def test_the_race_runs_one_label_per_class_with_nothing_held_out(tmp_path):
    spec = RaceSpec("toy", "minilm-l6", strategies=["probe", "prototype", "full"], budgets=[1, 4], seeds=1,
                    train_options={"epochs": 1, "precision": "fp32", **VALIDATING})
    records = run_race(spec, tmp_path, task=toy_task(160), backbone=_tiny, progress=False)
    ran = sorted((r["strategy"], r["budget"]) for r in records)
    assert ran == [("full", 4), ("probe", 1), ("probe", 4), ("prototype", 1), ("prototype", 4)]
    one = [r for r in records if r["budget"] == 1]
    assert all(r["n_train"] == 2 and r["n_val"] == 0 for r in one)
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in records)


def test_synthetic_texts_are_setfits_templated_dataset():
    texts, labels = templated_examples(("sports", "politics"), 3)
    assert texts == ["This sentence is sports"] * 3 + ["This sentence is politics"] * 3 and labels == [0, 0, 0, 1, 1, 1]
    texts, _ = templated_examples(("a", "b"), 3, descriptions={"a": ("first", "second")})
    assert texts[:3] == ["first", "second", "first"] and texts[3:] == ["This sentence is b"] * 3
    with pytest.raises(HeadstartError, match="contrastive's synthetic option"):
        templated_examples(("0", "1"), 2)  # codes say nothing to an encoder


def test_contrastive_with_synthetic_texts_runs_without_a_label():
    clf = Adapter(_tiny, "contrastive", strategy_options={"synthetic": 4}, epochs=1, precision="fp32",
                  feature_cache=None).fit(None, classes=["pos", "neg"])
    assert any("trained on the 8 examples made from the class names" in n for n in clf.result_.notes)
    assert set(clf.predict(["good", "bad"])) <= {"pos", "neg"}


def test_synthetic_texts_join_the_labelled_ones(text_task):
    clf = Adapter(_tiny, "contrastive", strategy_options={"synthetic": 2}, epochs=1, precision="fp32",
                  feature_cache=None).fit(text_task)
    assert any(f"trained on the {len(text_task) + 4} training + 0 validation" in n for n in clf.result_.notes)


@pytest.mark.parametrize("options,says", [
    ({"descriptions": {"pos": ["good"]}}, "contrastive's descriptions are the texts its synthetic option makes"),
    ({"synthetic": 2, "template": "no slot"}, "must hold {} once"),
    ({"synthetic": -1}, "synthetic"),
])
def test_bad_synthetic_options_are_refused(options, says):
    with pytest.raises(HeadstartError, match=says):
        create_strategy("contrastive", **options)


def test_synthetic_texts_are_refused_for_images():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8) for _ in range(6)]
    task = Task(images, np.array([0, 1] * 3), ("cat", "dog"), "image", "toy")
    with pytest.raises(HeadstartError, match="makes texts from the class names, and these are image examples"):
        Adapter(lambda p: tiny_backbone("mobilenetv2", p), "contrastive", strategy_options={"synthetic": 2},
                feature_cache=None).fit(task)


def test_the_class_descriptions_flag_reaches_every_strategy_that_reads_them(tmp_path):
    from headstart.cli import build_parser
    from headstart.cli_train import train_options

    file = tmp_path / "d.txt"
    file.write_text("fresh: a positive movie review\nrotten: a negative movie review\n")
    parse = build_parser().parse_args

    def routed(strategies, *extra):
        args = parse(["compare", "rotten-tomatoes", "--out", str(tmp_path / "o"), "--strategies", strategies,
                      "--class-descriptions", str(file), *extra])
        return sorted(k for k in train_options(args) if k.endswith(".descriptions"))

    assert routed("zero-shot,prototype[prior=names],probe") == ["prototype.descriptions", "zero-shot.descriptions"]
    assert routed("prototype,contrastive", "--set", "contrastive.synthetic=4") == ["contrastive.descriptions"]
    with pytest.raises(HeadstartError, match=r"^--class-descriptions describes the classes for zero-shot, prototype "
                                             r"with prior=names and contrastive with synthetic texts, and none of "
                                             r"prototype, contrastive is one"):
        routed("prototype,contrastive")
