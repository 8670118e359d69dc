"""Δθ: how far training moved the backbone's weights from where they started, in total and per block.

For LoRA layers the base weight is frozen and the distance is that of the low-rank update ``B·A·s``
(PEFT's ``get_delta_weight``), i.e. of the effective weight, not of the adapter matrices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..backbones import Backbone

__all__ = ["snapshot", "weight_distance"]


@torch.no_grad()
def snapshot(backbone: Backbone) -> dict[str, Tensor]:
    """A copy of every non-adapter parameter (taken before training)."""
    return {n: p.detach().clone() for n, p in backbone.named_parameters() if "lora_" not in n}


@torch.no_grad()
def weight_distance(backbone: Backbone, start: dict[str, Tensor]) -> dict[str, object]:
    names = backbone.block_names()
    per_block = [0.0] * len(names)
    for n, p in backbone.named_parameters():
        if n in start and n.startswith("blocks."):
            per_block[int(n.split(".")[1])] += float((p.detach() - start[n]).double().pow(2).sum())
    for n, m in backbone.named_modules():
        if n.startswith("blocks.") and hasattr(m, "get_delta_weight") and "default" in getattr(m, "lora_A", {}):
            per_block[int(n.split(".")[1])] += float(m.get_delta_weight("default").double().pow(2).sum())
    total_base = sum(float(t.double().pow(2).sum()) for t in start.values())
    total = math.sqrt(sum(per_block))
    return {"l2": total, "relative": total / math.sqrt(total_base) if total_base else 0.0,
            "per_block": {name: math.sqrt(v) for name, v in zip(names, per_block)}}
