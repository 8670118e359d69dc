"""``prototype``: nearest class mean of unit features, its leave-one-out scale, and the names' prior that bridges
zero-shot (no example) and the class means (many)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.data import Task
from headstart.errors import HeadstartError
from headstart.strategies import create_strategy
from headstart.strategies.prototype import SCALES, leave_one_out

from .conftest import tiny_backbone

UNSEEN = ["good fun", "dull film", "great plot", "awful actor", "love it", "hate it"]


def _adapter(**options):
    return Adapter(lambda p: tiny_backbone("minilm-l6", p), "prototype", strategy_options=options or None,
                   feature_cache=None)


def _units(texts):
    return torch.nn.functional.normalize(tiny_backbone("minilm-l6").embed(list(texts)).double(), dim=-1).numpy()


def test_each_example_goes_to_the_class_whose_mean_it_is_most_similar_to(text_task):
    clf = _adapter().fit(text_task)
    units = _units(text_task.inputs)
    means = np.stack([units[text_task.labels == c].mean(0) for c in (0, 1)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    expected = (_units(UNSEEN) @ means.T).argmax(1)
    assert (clf.predict_proba(UNSEEN).argmax(1) == expected).all()
    assert clf.result_.stop_reason.value == "solved"
    assert any("nearest class mean (cosine) of 48 examples" in n for n in clf.result_.notes)


def test_leave_one_out_cosines_are_those_of_the_means_without_the_example():
    rng = np.random.default_rng(0)
    units = rng.normal(size=(13, 6))
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1, 2])
    prior = rng.normal(size=(3, 6)) * 0.3
    for extra in (np.zeros((3, 6)), prior):
        sums = extra.copy()
        np.add.at(sums, labels, units)
        cos = leave_one_out(units, labels, sums)
        for i in range(len(labels)):
            without = extra.copy()
            keep = np.arange(len(labels)) != i
            np.add.at(without, labels[keep], units[keep])
            brute = units[i] @ (without / np.linalg.norm(without, axis=1, keepdims=True)).T
            assert cos[i] == pytest.approx(brute, abs=1e-9)


def test_a_class_of_one_example_cannot_be_left_out_without_a_prior():
    units = np.eye(3)[:3]
    sums = units.copy()
    assert leave_one_out(units, np.array([0, 1, 2]), sums) is None
    assert leave_one_out(units, np.array([0, 1, 2]), sums + 0.1) is not None  # a prior keeps each class non-empty


def test_one_example_per_class_keeps_the_encoders_scale_and_the_scale_is_chosen_beyond_it(text_task):
    one = text_task.subset([0, 1])
    clf = _adapter().fit(one)
    assert any("the encoder's scale 20 (a class of one example" in n for n in clf.result_.notes)
    assert clf.result_.best_val_acc is None
    many = _adapter().fit(text_task)
    chosen = [n for n in many.result_.notes if "chosen by leave-one-out log-loss" in n]
    assert chosen and any(f"scale {s:g} chosen" in chosen[0] for s in SCALES)
    assert 0.0 <= many.result_.best_val_acc <= 1.0


def test_with_no_example_the_names_prior_is_zero_shot():
    zero = Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None).fit(
        None, classes=["pos", "neg"])
    proto = _adapter(prior="names").fit(None, classes=["pos", "neg"])
    assert proto.predict_proba(UNSEEN) == pytest.approx(zero.predict_proba(UNSEEN), abs=1e-5)


def test_the_prior_weighs_as_many_examples_as_it_says(text_task):
    few = text_task.subset([0, 1, 2, 3])
    zero = Adapter(lambda p: tiny_backbone("minilm-l6", p), "zero-shot", feature_cache=None).fit(few)
    means = _adapter().fit(few)
    heavy = _adapter(prior="names", prior_weight=1e6).fit(few)
    light = _adapter(prior="names", prior_weight=1e-6).fit(few)
    assert (heavy.predict_proba(UNSEEN).argmax(1) == zero.predict_proba(UNSEEN).argmax(1)).all()
    assert (light.predict_proba(UNSEEN).argmax(1) == means.predict_proba(UNSEEN).argmax(1)).all()
    # the two ends disagree somewhere on these texts, so the weight is what moved the prediction
    assert (zero.predict_proba(UNSEEN).argmax(1) != means.predict_proba(UNSEEN).argmax(1)).any()


def test_a_class_with_no_example_and_no_prior_is_named():
    from headstart.strategies import prepare_model
    from headstart.train.model import AdaptedModel

    model = AdaptedModel(tiny_backbone("minilm-l6"), 3)
    strategy = create_strategy("prototype")
    prepare_model(model, strategy)
    x = torch.randn(4, model.backbone.feature_dim)
    with pytest.raises(HeadstartError, match=r"^prototype has no example of class 'c' to take its mean; .*prior=names"):
        strategy.solve(model, x, np.array([0, 1, 0, 1]), x[:0], np.zeros(0, dtype=np.int64), classes=("a", "b", "c"))


@pytest.mark.parametrize("options,says", [
    ({"templates": ("about {}",)}, "prototype's templates and descriptions are prompts for its prior; set prior=names"),
    ({"prior": "names", "templates": ("no slot",)}, "must hold {} once"),
    ({"prior": "names", "prior_weight": 0}, "prior_weight"),
    ({"prior": "guess"}, "'prior' parameter of prototype must be 'none' or 'names'"),
])
def test_bad_prototype_options_are_refused(options, says):
    with pytest.raises(HeadstartError, match=says):
        create_strategy("prototype", **options)


def test_a_saved_prototype_predicts_the_same(text_task, tmp_path):
    clf = _adapter(prior="names").fit(text_task)
    again = Adapter.load(clf.save(tmp_path / "m"), backbone=lambda p: tiny_backbone("minilm-l6", p))
    assert again.predict_proba(UNSEEN) == pytest.approx(clf.predict_proba(UNSEEN), abs=1e-6)


def test_prototype_on_images_with_a_prior_needs_a_text_tower():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8) for _ in range(6)]
    task = Task(images, np.array([0, 1] * 3), ("cat", "dog"), "image", "toy")
    names = ["mobilenetv2"]
    plain = Adapter(lambda p: tiny_backbone(names[0], p), "prototype", feature_cache=None).fit(task)
    assert plain.predict(images).shape == (6,)
    with pytest.raises(HeadstartError, match="embeds images only; comparing images with their class names"):
        Adapter(lambda p: tiny_backbone(names[0], p), "prototype", strategy_options={"prior": "names"},
                feature_cache=None).fit(task)

