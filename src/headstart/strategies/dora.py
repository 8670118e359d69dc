"""``dora``: weight-decomposed low-rank adaptation (DoRA, Liu et al., ICML 2024), PEFT's ``use_dora``.

DoRA splits each adapted weight into a magnitude (one number per output) and a direction, trains the
magnitude directly and the direction through LoRA's low-rank update; it closes part of LoRA's gap to
a full fine-tune at the same rank. Same targets, rank, scaling and rate as ``lora`` (the paper trains
it at LoRA's rate), plus one magnitude vector per adapted layer (``lora_magnitude_vector``, saved
with the adapters). Each step costs more than LoRA's: the weight's norm is recomputed every forward
pass. Merging for export folds magnitude and direction into the base weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backbones import Backbone
from .base import register_strategy
from .lora import LoRA


@register_strategy
@dataclass
class DoRA(LoRA):
    name = "dora"
    order = 61
    summary = "LoRA with a trained magnitude per output (PEFT's DoRA), from the probe's head"

    def peft_config(self, backbone: Backbone) -> Any:
        config = super().peft_config(backbone)
        config.use_dora = True
        return config
