"""``lora``: low-rank adapters injected by PEFT into the backbone's own layers; the head trains too.

Targets come from the backbone (``lora_targets``): the attention projections and feed-forward layers
of a text encoder, the pointwise convolutions of a vision one. Like every fine-tune, the head starts
from the probe's solution (``finetune.py``): with B = 0 the adapted model *is* the probe at step 0.
PEFT does the injection and the layers; a saved model keeps only the adapter matrices and the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import register_strategy
from .finetune import FineTune


@register_strategy
@dataclass
class LoRA(FineTune):
    name = "lora"
    order = 60
    summary = "low-rank adapters (PEFT) on attention, feed-forward / pointwise layers, from the probe's head"
    # 5e-4 and the last epoch, like the other fine-tunes: at 1e-3 the adapters drift over 100 epochs of 8
    # labels per class unless early stopping catches them, and early stopping on a small validation split
    # restores noise (BENCHMARKS.md, "Early stopping on a small validation split")
    default_lr = 5e-4
    rank: int = field(default=8, metadata={"help": "rank of the low-rank update B·A"})
    alpha: float = field(default=16.0, metadata={"help": "scaling: the update is multiplied by alpha / rank"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the adapters' input"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise HeadstartError(f"The 'rank' parameter of lora must be a positive integer. Got {self.rank!r} instead.")
        if self.alpha <= 0:
            raise HeadstartError(f"The 'alpha' parameter of lora must be positive. Got {self.alpha!r} instead.")
        if not 0.0 <= self.dropout < 1.0:
            raise HeadstartError(f"The 'dropout' parameter of lora must be in [0, 1). Got {self.dropout!r} instead.")

    def configure(self, model: AdaptedModel) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        targets = model.backbone.lora_targets()
        if not targets:
            raise HeadstartError(f"{model.backbone.name} names no layers for LoRA to adapt.")
        if any("lora_" in n for n, _ in model.backbone.named_parameters()):
            return  # already injected (e.g. a second fit on the same model)
        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                            target_modules=targets, bias="none")
        inject_adapter_in_model(config, model.backbone)

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)}, only="lora_")

    def save_filter(self, key: str) -> bool:
        return "lora_" in key
