"""``lora``: low-rank adapters injected by PEFT into the backbone's own layers; the head trains too.

Targets come from the parameter-efficient base's table (``tuner.TARGETS``): the attention projections
and feed-forward layers of a text encoder, the pointwise convolutions of a vision one. Like every
fine-tune, the head starts from the probe's solution (``finetune.py``): with B = 0 the adapted model
*is* the probe at step 0. A saved model keeps only the adapter matrices and the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backbones import Backbone
from ..declare import option
from .base import register_strategy
from .tuner import ParameterEfficient, peft_targets


@register_strategy
@dataclass
class LoRA(ParameterEfficient):
    name = "lora"
    order = 60
    summary = "low-rank adapters (PEFT) on attention, feed-forward / pointwise layers, from the probe's head"
    prefix = "lora_"
    # 5e-4 and the last epoch, like the other fine-tunes: at 1e-3 the adapters drift over 100 epochs of 8
    # labels per class unless early stopping catches them, and early stopping on a small validation split
    # restores noise (BENCHMARKS.md, "Early stopping on a small validation split")
    default_lr = 5e-4
    rank: int = option(8, "rank of the low-rank update B·A", low=1)
    alpha: float = option(16.0, "scaling: the update is multiplied by alpha / rank", low=0.0, low_open=True)
    dropout: float = option(0.05, "dropout on the adapters' input", low=0.0, high=1.0, high_open=True)

    def peft_config(self, backbone: Backbone) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=peft_targets(backbone, "lora"), bias="none")
