"""The real packaged weights and datasets, offline (fetched once from their registry packages)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from headstart.backbones import create_backbone
from headstart.data import load_task

pytestmark = pytest.mark.integration
ESPRESSO = 967  # ImageNet-1k class index


def test_minilm_paraphrases_are_closer_than_unrelated_pairs():
    b = create_backbone("minilm-l6")
    e = b.embed(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell today.",
                 "Someone is having a meal."])
    sim = e @ e.T
    assert sim[0, 1] > 0.5 and sim[0, 3] > sim[0, 2] and sim[1, 3] > sim[1, 2] and sim[0, 2] < 0.2


@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnet-lite0"])
def test_vision_backbones_recognise_espresso(name):
    from skimage import data

    b = create_backbone(name)
    logits = b.source_logits([data.coffee()])
    assert int(logits.argmax()) == ESPRESSO and torch.softmax(logits, 1)[0, ESPRESSO] > 0.5


def test_rotten_tomatoes_is_complete():
    task = load_task("rotten-tomatoes")
    assert len(task) == 12808 and task.counts() == {"fresh": 7403, "rotten": 5405}


def test_cli_lists_packaged_backbones_as_available_offline():
    cmd = [sys.executable, "-m", "headstart.cli", "backbones", "--fetch"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for name in ("minilm-l6", "mobilenetv2", "efficientnet-lite0"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert "yes (" in line
