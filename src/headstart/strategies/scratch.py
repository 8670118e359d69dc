"""``scratch``: the random-init twin, every block trained at a from-scratch learning rate (the baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backbones import Backbone
from ..train.model import ParamPlan
from .base import Strategy, register_strategy


@register_strategy
@dataclass
class Scratch(Strategy):
    name = "scratch"
    summary = "random init, everything trains: the baseline that tells whether pretraining helps"
    pretrained = False
    default_lr = 1e-3  # conv nets; transformer backbones declare a lower ``scratch_lr``
    default_head_lr = None
    default_epochs = 30

    def lr_for(self, backbone: Backbone) -> float:
        return backbone.scratch_lr  # what the architecture trains at from random init

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)})
