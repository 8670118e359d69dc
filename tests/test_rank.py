"""``rank``: candidates scored on frozen features of the pool only (LogME, H-score, probe accuracy), best first by
the probe's accuracy unless told another score; a candidate that cannot be used keeps a row saying why."""

from __future__ import annotations

import re

import numpy as np
import pytest

from headstart.data import Task
from headstart.errors import HeadstartError
from headstart.race import rank as rank_module
from headstart.race.rank import format_ranking, hscore, parse_candidate, rank_backbones


def _labels(n=120, classes=3):
    return np.arange(n) % classes


def test_the_h_score_is_higher_when_class_means_explain_the_features():
    rng = np.random.default_rng(0)
    y = _labels()
    noise = rng.normal(size=(len(y), 64))
    informative = noise + 3.0 * np.eye(3)[y] @ rng.normal(size=(3, 64))
    assert hscore(informative, y) > 2 * hscore(noise, y) > 0
    wide = rng.normal(size=(len(y), 500))  # more dimensions than examples: shrinkage keeps it finite
    assert np.isfinite(hscore(wide, y))


def test_candidates_parse_with_their_own_options():
    assert parse_candidate("minilm-l6") == ("minilm-l6", {})
    assert parse_candidate("mobilenetv2[image_size=64]") == ("mobilenetv2", {"image_size": 64})
    with pytest.raises(HeadstartError, match="does not apply to minilm-l6"):
        parse_candidate("minilm-l6[image_size=64]")
    with pytest.raises(HeadstartError, match="backbone options are key=value"):
        parse_candidate("mobilenetv2[64]")


@pytest.fixture
def fake_features(monkeypatch):
    """Three candidates by name: features that separate the classes, noise, and one that cannot load."""
    rng = np.random.default_rng(0)
    seen = []

    def features(task, sample, name, options, cache):
        seen.append(sample)
        if name == "broken":
            raise HeadstartError("broken: could not load it.")
        noise = rng.normal(size=(len(sample), 32))
        if name == "good":
            return noise + 4.0 * np.eye(len(task.classes))[sample.labels] @ rng.normal(size=(len(task.classes), 32))
        return noise

    monkeypatch.setattr(rank_module, "_features", features)
    return seen


def test_the_candidate_whose_features_fit_the_labels_ranks_first(fake_features):
    y = _labels(300)
    task = Task([f"text {i}" for i in range(len(y))], y, ("a", "b", "c"), "text", "toy")
    rows = rank_backbones(task, [("noise", {}), ("broken", {}), ("good", {})], subset=90)
    assert [r.backbone for r in rows] == ["good", "noise", "broken"]
    assert rows[0].mean_rank == 1.0 and rows[0].probe_acc > 0.9 > rows[1].probe_acc
    assert rows[-1].error == "broken: could not load it." and rows[-1].logme is None
    first, second, third = fake_features
    assert first.inputs == second.inputs == third.inputs  # every candidate scored on the same examples
    assert len(first) == 90


@pytest.fixture
def scripted_scores(monkeypatch):
    """Candidates whose three scores disagree: each candidate's features carry its index, each score is looked up."""
    table = {"a": (3.0, 1.0, 0.70), "b": (1.0, 3.0, 0.80), "c": (2.0, 2.0, 0.90), "d": (0.5, 0.5, 0.60)}
    names = list(table)
    monkeypatch.setattr(rank_module, "_features",
                        lambda task, sample, name, options, cache: np.full((len(sample), 2), names.index(name)))
    for position, signal in enumerate(("logme", "hscore", "_cv_probe")):
        monkeypatch.setattr(rank_module, signal,
                            lambda f, y, *rest, position=position: table[names[int(f[0, 0])]][position])
    y = _labels(120, 3)
    return Task([f"text {i}" for i in range(len(y))], y, ("x", "y", "z"), "text", "toy"), names


def test_candidates_are_ordered_by_the_probe_accuracy_unless_told_another_score(scripted_scores):
    task, names = scripted_scores
    order = {by: [r.backbone for r in rank_backbones(task, [(n, {}) for n in names], subset=90, by=by)]
             for by in ("probe_acc", "mean_rank", "logme", "hscore")}
    assert order["probe_acc"] == ["c", "b", "a", "d"]
    assert order["logme"] == ["a", "c", "b", "d"] and order["hscore"] == ["b", "c", "a", "d"]
    # mean ranks: a (1+3+2)/3 = 2, b (3+1+2)/3 = 2, c (2+2+1)/3 = 1.67, d 4; a and b tie: the probe breaks it
    assert order["mean_rank"] == ["c", "b", "a", "d"]
    default = rank_backbones(task, [(n, {}) for n in names], subset=90)
    assert [r.backbone for r in default] == order["probe_acc"]
    text = format_ranking(default, "toy")
    assert "Race c and b: the best probe accuracy" in text and "--backbones c,b" in text
    assert "Race a and c: the best LogME." in format_ranking(
        rank_backbones(task, [(n, {}) for n in names], subset=90, by="logme"), by="logme")


def test_an_unknown_order_is_one_sentence(scripted_scores):
    task, names = scripted_scores
    with pytest.raises(HeadstartError, match=r"rank orders candidates by one of probe_acc, mean_rank, logme, hscore; "
                                             r"got 'accuracy'\."):
        rank_backbones(task, [(names[0], {})], by="accuracy")


def test_only_the_pool_is_looked_at(fake_features):
    from headstart.data import make_splits

    y = _labels(300)
    task = Task([f"text {i}" for i in range(len(y))], y, ("a", "b", "c"), "text", "toy")
    rank_backbones(task, [("good", {})], subset=1000)
    pool = {task.inputs[i] for i in make_splits(task, seed=0).pool}
    assert set(fake_features[0].inputs) <= pool


def test_a_candidate_listed_twice_is_refused():
    task = Task(["a", "b"] * 4, np.array([0, 1] * 4), ("x", "y"), "text", "toy")
    with pytest.raises(HeadstartError, match="listed twice"):
        rank_backbones(task, ["minilm-l6", "minilm-l6"])


@pytest.mark.integration
def test_headstart_rank_scores_the_packaged_vision_backbones_on_digits(capsys):
    from headstart.cli import main

    main(["rank", "mnist-5k", "--backbones", "mobilenetv2[image_size=64],efficientnet-lite0[image_size=64],minilm-l6",
          "--subset", "200"])
    out = capsys.readouterr().out
    assert "mobilenetv2[image_size=64]" in out and "efficientnet-lite0[image_size=64]" in out
    assert "minilm-l6" in out and "not usable: minilm-l6 is a text model but the data are images" in out
    assert "Race " in out
    assert re.search(r"headstart compare mnist-5k --backbones '?(mobilenetv2|efficientnet-lite0)\[image_size=64\],"
                     r"(mobilenetv2|efficientnet-lite0)\[image_size=64\]'? --out runs/backbones", out)
