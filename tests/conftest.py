"""Shared fixtures: tiny backbones from the registry, tiny tasks built by hand."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # no test asks a model hub (child processes inherit it)
# the forgetting probe's text reference: 48 short texts in 4 topics here, not 20newsgroups (a 38 MB fetch); images keep
# their default, scikit-learn's digits, which is always here
os.environ["HEADSTART_REFERENCE_TEXT"] = os.path.join(os.path.dirname(__file__), "data", "reference_texts.csv")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from headstart.backbones import get_spec, list_backbones  # noqa: E402
from headstart.data import Task  # noqa: E402

# Every registry entry, by its tiny build: a new entry is tested by being registered.
REGISTERED = list_backbones()


def tiny_backbone(name: str, pretrained: bool = True):
    spec, _ = get_spec(name + "tiny" if name.endswith(":") else name)
    return spec.build_tiny(pretrained)


def sample_inputs(backbone, n: int = 4):
    if backbone.modality == "text":
        words = ["good movie", "bad plot and dull actor", "great fun", "awful film, I hate it", "love this"]
        return [words[i % len(words)] for i in range(n)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(20 + i, 24, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture
def text_task() -> Task:
    """A learnable two-class text task: the label is whether the text says good or bad things."""
    pos = ["good movie", "great film", "love this fun plot", "a great actor", "very good", "so fun"]
    neg = ["bad movie", "awful film", "hate this dull plot", "a bad actor", "very awful", "so dull"]
    texts = [t for pair in zip(pos * 4, neg * 4) for t in pair]
    labels = np.array([0, 1] * (len(texts) // 2))
    return Task(texts, labels, ("pos", "neg"), "text", "toy-text", "tests")


@pytest.fixture
def no_work(monkeypatch):
    """Reaching the race, the advisor, a fit or the lab's session is a failure: bad input is refused first."""
    import headstart.cli_race as cli_race
    import headstart.lab.session as session
    import headstart.race as race
    from headstart import Adapter

    def reached(*args, **kwargs):
        raise AssertionError("work started before the bad input was refused")

    monkeypatch.setattr(cli_race, "race", reached)
    monkeypatch.setattr(race, "advise", reached)
    monkeypatch.setattr(Adapter, "fit", reached)
    monkeypatch.setattr(session.LabSession, "open", reached)


@pytest.fixture
def toy_csv(tmp_path):
    """The toy race task (``race_child.toy_task``) as a CSV file, as a user would give it."""
    import csv

    from .race_child import toy_task

    task = toy_task()
    path = tmp_path / "toy.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, task.classes[y]) for t, y in zip(task.inputs, task.labels))
    return path
