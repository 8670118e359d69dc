"""A run that uses no parameter-efficient method never imports PEFT (with it, transformers' generation stack:
seconds before a conv net's first epoch in the lab), and a model with tuner layers still has them found."""

import subprocess
import sys
from pathlib import Path

import torch

from headstart.train import AdaptedModel
from headstart.train.delta import injected_names, snapshot, tuner_layers, weight_distance

from .conftest import tiny_backbone

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from tests.conftest import tiny_backbone
from headstart.train import AdaptedModel
from headstart.train.delta import snapshot, weight_distance
model = AdaptedModel(tiny_backbone("mobilenetv2"), 3)
start = snapshot(model.backbone)
weight_distance(model.backbone, start)
print("peft" in sys.modules)
"""


def test_measuring_a_plain_model_does_not_import_peft():
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_tuner_layers_are_found_once_a_method_injected_them():
    from headstart.strategies import create_strategy

    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    assert tuner_layers(model.backbone) == []
    create_strategy("lora").configure(model)
    found = tuner_layers(model.backbone)
    assert found and all(hasattr(layer, "merge") for _, layer in found)
    start = snapshot(model.backbone)
    assert injected_names(model.backbone) and not set(start) & injected_names(model.backbone)
    lora_b = next(p for n, p in model.backbone.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        lora_b.add_(0.1)
    assert weight_distance(model.backbone, start)["l2"] > 0
