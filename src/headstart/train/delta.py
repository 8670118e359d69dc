"""Δθ: how far training moved the backbone's weights from where they started, in total and per block.

Only the tensors a strategy's plan lets train are snapshotted (nothing for a probe, two blocks for
``partial:2``), so measuring costs no more memory than the training itself. For LoRA layers the base
weight is frozen and the distance is that of the low-rank update ``B·A·s`` (PEFT's
``get_delta_weight``), i.e. of the effective weight, not of the adapter matrices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from ..backbones import Backbone

__all__ = ["snapshot", "weight_distance"]


@torch.no_grad()
def snapshot(backbone: Backbone, names: Iterable[str] | None = None) -> dict[str, Tensor]:
    """A copy of the named parameters (default: every non-adapter one), taken before training."""
    wanted = None if names is None else set(names)
    return {n: p.detach().clone() for n, p in backbone.named_parameters()
            if "lora_" not in n and (wanted is None or n in wanted)}


@torch.no_grad()
def weight_distance(backbone: Backbone, start: dict[str, Tensor]) -> dict[str, object]:
    names = backbone.block_names()
    per_block = [0.0] * len(names)
    for n, p in backbone.named_parameters():
        if n in start and n.startswith("blocks."):
            per_block[int(n.split(".")[1])] += float(torch.linalg.vector_norm(p - start[n])) ** 2
    for n, m in backbone.named_modules():
        if n.startswith("blocks.") and hasattr(m, "get_delta_weight") and "default" in getattr(m, "lora_A", {}):
            per_block[int(n.split(".")[1])] += float(torch.linalg.vector_norm(m.get_delta_weight("default"))) ** 2
    base = math.sqrt(sum(float(torch.linalg.vector_norm(p)) ** 2 for n, p in backbone.named_parameters()
                         if "lora_" not in n))
    total = math.sqrt(sum(per_block))
    return {"l2": total, "relative": total / base if base else 0.0,
            "per_block": {name: math.sqrt(v) for name, v in zip(names, per_block)}}
