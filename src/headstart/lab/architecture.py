"""The architecture strip: a backbone's blocks in order, what each holds and what a strategy trains in it.

Counts come from the model as a run builds it (the strategy's structural changes, e.g. LoRA's adapters,
applied; its parameter plan setting ``requires_grad``), so the pill's number is the run's own
``trainable_params``. The frozen-blocks slider needs no model at all: ``partial:k`` trains the top ``k``
blocks and the head, so its count is the head plus those blocks' totals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backbones import Backbone, resolve_backbone
from ..strategies import create_strategy
from ..strategies.runner import prepare_model
from ..train.model import AdaptedModel, build_param_groups, count_trainable

__all__ = ["finetune_for", "frozen_for", "strip"]


def strip(backbone: str | Callable[[bool], Backbone], strategy: str, n_classes: int,
          backbone_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Blocks (name, parameters, trainable parameters) and the head, as ``strategy``'s last stage trains them."""
    s = create_strategy(strategy)
    body = resolve_backbone(backbone, s.pretrained, **(backbone_options or {}))
    model = AdaptedModel(body, n_classes)
    prepare_model(model, s)
    stage = s.stages()[-1]
    build_param_groups(model, stage.plan(model.n_blocks), 1.0, 1.0, 0.0)
    blocks = [{"name": name, "params": sum(p.numel() for p in block.parameters()),
               "trainable": sum(p.numel() for p in block.parameters() if p.requires_grad)}
              for name, block in zip(model.backbone.block_names(), model.backbone.blocks)]
    return {"strategy": strategy, "backbone": model.backbone.name, "pretrained": s.pretrained, "blocks": blocks,
            "head": sum(p.numel() for p in model.head.parameters()), "trainable": count_trainable(model)}


def finetune_for(frozen: int, n_blocks: int) -> str:
    """The strategy a frozen-blocks setting means: full at 0 frozen, the probe at all frozen, else partial."""
    if not 0 <= frozen <= n_blocks:
        raise ValueError(f"frozen blocks must be between 0 and {n_blocks}")
    return "full" if frozen == 0 else "probe" if frozen == n_blocks else f"partial:{n_blocks - frozen}"


def frozen_for(strategy: str, n_blocks: int) -> int | None:
    """The frozen-blocks setting of a strategy, or None when it is not one of the slider's."""
    if strategy == "full":
        return 0
    if strategy == "probe":
        return n_blocks
    if strategy.startswith("partial:") and strategy[8:].isdigit() and 0 < int(strategy[8:]) <= n_blocks:
        return n_blocks - int(strategy[8:])
    return None
