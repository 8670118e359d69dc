"""Δθ: how far training moved the backbone's weights from where they started, in total and per block.

Only the tensors a strategy's plan lets train are snapshotted (nothing for a probe, two blocks for
``partial:2``), so measuring costs no more memory than the training itself. For a parameter-efficient
method's layers (any PEFT tuner layer) the base weight is frozen and the distance is that of the
effective weight, not of the injected tensors: LoRA's low-rank update ``B·A·s`` (PEFT's
``get_delta_weight``), or, for a method without it (IA3, DoRA's magnitude, LN tuning), the merged weight minus
the base weight.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..backbones import Backbone

__all__ = ["injected_names", "snapshot", "tuner_layers", "weight_distance"]


def tuner_layers(module: torch.nn.Module) -> list[tuple[str, Any]]:
    """(name, layer) of every PEFT tuner layer in ``module``. A model can hold one only once PEFT has been imported
    (the methods that inject them import it), so a model without any never pays PEFT's import (seconds, with
    transformers' generation stack): the lab's first point of a conv net waited on it."""
    if "peft.tuners.tuners_utils" not in sys.modules:
        return []
    base = sys.modules["peft.tuners.tuners_utils"].BaseTunerLayer
    return [(n, m) for n, m in module.named_modules() if isinstance(m, base)]



def injected_names(backbone: Backbone) -> set[str]:
    """Names of the tensors a parameter-efficient method injected (LoRA's A and B, IA3's vectors, ...)."""
    return {f"{n}.{attr}.{pn}" for n, m in tuner_layers(backbone) for attr in m.adapter_layer_names
            if isinstance(getattr(m, attr, None), torch.nn.Module)
            for pn, _ in getattr(m, attr).named_parameters()}


def _effective_delta(layer: Any) -> Tensor | None:
    """How far a tuner layer's effective weight is from its frozen base weight."""
    if "default" not in getattr(layer, "active_adapters", ()):
        return None
    if (hasattr(layer, "get_delta_weight") and "default" in getattr(layer, "lora_A", {})
            and not getattr(layer, "use_dora", {}).get("default")):  # DoRA's magnitude is not in B·A: merge it
        return layer.get_delta_weight("default")
    merged = copy.deepcopy(layer)
    merged.merge(safe_merge=True)
    return merged.get_base_layer().weight - layer.get_base_layer().weight


@torch.no_grad()
def snapshot(backbone: Backbone, names: Iterable[str] | None = None) -> dict[str, Tensor]:
    """A copy of the named parameters (default: every one a method did not inject), taken before training."""
    wanted, injected = None if names is None else set(names), injected_names(backbone)
    return {n: p.detach().clone() for n, p in backbone.named_parameters()
            if n not in injected and (wanted is None or n in wanted)}


@torch.no_grad()
def weight_distance(backbone: Backbone, start: dict[str, Tensor]) -> dict[str, object]:
    names = backbone.block_names()
    per_block = [0.0] * len(names)
    for n, p in backbone.named_parameters():
        if n in start and n.startswith("blocks."):
            per_block[int(n.split(".")[1])] += float(torch.linalg.vector_norm(p - start[n])) ** 2
    for n, m in tuner_layers(backbone):
        delta = _effective_delta(m) if n.startswith("blocks.") else None
        if delta is not None:
            per_block[int(n.split(".")[1])] += float(torch.linalg.vector_norm(delta)) ** 2
    injected = injected_names(backbone)
    base = math.sqrt(sum(float(torch.linalg.vector_norm(p)) ** 2 for n, p in backbone.named_parameters()
                         if n not in injected))
    total = math.sqrt(sum(per_block))
    return {"l2": total, "relative": total / base if base else 0.0,
            "per_block": {name: math.sqrt(v) for name, v in zip(names, per_block)}}
