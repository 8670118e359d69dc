"""``ia3``: learned rescaling vectors (IA3, Liu et al., 2022) injected by PEFT; the body stays frozen, the head trains.

IA3 multiplies the keys and values of every attention layer and the feed-forward's inner activation
by learned vectors that start at one, so at step 0 the model *is* the probe it starts from (like every
fine-tune, ``finetune.py``); on the conv nets it rescales each pointwise convolution's output channels.
Targets come from the parameter-efficient base's table (``tuner.TARGETS``: ``ia3`` and
``ia3.feedforward``). On MiniLM it trains 13,824 numbers besides the head (six layers × 384 + 384 +
1,536), against LoRA-8's 331,776. Its rate, 3e-2, is the rate sweep's best (``benchmarks/peft_family.py
--sweep``: mean selection accuracy 0.687 over 3 seeds on rotten-tomatoes at 32 labels per class, 0.684 at
1e-2, 0.659 at T-Few's 3e-3, 0.657 at 0.1): vectors of ones need far larger steps than LoRA's
zero-initialised B. The sweep ran on a text encoder; on conv nets the rate stays T-Few's 3e-3
(``default_image_lr``) until a sweep on images measures one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backbones import Backbone
from .base import register_strategy
from .tuner import ParameterEfficient, peft_targets


@register_strategy
@dataclass
class IA3(ParameterEfficient):
    name = "ia3"
    order = 65
    summary = "learned rescaling of keys, values and feed-forward activations (PEFT's IA3), from the probe's head"
    prefix = "ia3_"
    default_lr = 3e-2
    default_image_lr = 3e-3

    def peft_config(self, backbone: Backbone) -> Any:
        from peft import IA3Config

        return IA3Config(target_modules=peft_targets(backbone, "ia3"),
                         feedforward_modules=peft_targets(backbone, "ia3.feedforward", required=False))
