"""From-scratch baselines: what pretraining has to beat.

- ``scratch``: the backbone's random-init twin, every block trained at the rate the architecture
  trains at from a random init;
- ``scratch-small``: a small model sized for small data, on the backbone's own preprocessing
  (Conv-4 for images, a bag of n-grams for text; ``backbones/small.py``), trained from scratch. On a
  few hundred labels it is often the stronger baseline: a random-init MobileNetV2 or MiniLM has far
  more capacity than the data can fit.

The negative-transfer check puts the better of the two (on selection data) against the best transfer
strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..backbones import Backbone
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy


@register_strategy
@dataclass
class Scratch(Strategy):
    name = "scratch"
    order = 0
    summary = "random init, everything trains: the baseline that tells whether pretraining helps"
    pretrained = False
    default_lr = 1e-3  # conv nets; transformer backbones declare a lower ``scratch_lr``
    default_head_lr = None
    default_epochs = 30
    default_min_steps = 100  # the fine-tunes' step budget: a baseline must not lose for being stopped sooner

    def lr_for(self, backbone: Backbone) -> float:
        return backbone.scratch_lr  # what the architecture trains at from random init

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)})


@register_strategy
@dataclass
class ScratchSmall(Scratch):
    name = "scratch-small"
    order = 1
    summary = "a small model (Conv-4 / bag of n-grams) trained from scratch: the small-data baseline"
    default_epochs = 50

    def configure(self, model: AdaptedModel) -> None:
        if getattr(model.backbone, "is_small_twin", False):
            return  # already swapped (a second fit on the same model)
        small = model.backbone.small_twin()
        small.is_small_twin = True
        model.backbone = small
        model.head = nn.Linear(small.feature_dim, model.head.out_features)
