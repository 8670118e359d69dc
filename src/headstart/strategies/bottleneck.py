"""``adapter``: bottleneck adapters (Houlsby et al., ICML 2019; Pfeiffer et al., 2021), the body frozen.

One small residual MLP after every block past the first (each transformer layer, each conv stage):
``x + up(relu(down(x)))``, ``down`` to ``dim / reduction`` features (16: 24 on MiniLM's 384), on the
last axis of a transformer's states or as 1×1 convolutions on a conv net's channels. ``up`` starts at
zero, so at step 0 the body is the pretrained one and the model is the probe it starts from (like every
fine-tune, ``finetune.py``). This is the Pfeiffer placement (one adapter per layer) at the block's
output, where headstart's blocks meet, rather than inside the layer before its last LayerNorm: the
same module works on every backbone headstart runs block by block.

Written here on the parameter-efficient base rather than taken from the ``adapters`` package: its
1.3 release requires transformers 4.57 and cannot be installed beside transformers 5, and it patches
the model's own ``forward``, which headstart never calls. The adapters are nonlinear, so they cannot
be folded into the weights for export; the ONNX export carries them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..declare import option
from ..errors import HeadstartError
from ..train.model import AdaptedModel
from .base import register_strategy
from .tuner import NamedTensors, hook_once

NAME = "bottleneck"


class Bottleneck(nn.Module):
    """``x + up(relu(down(x)))`` over the feature axis (``conv``: channels of a feature map); ``up`` starts at 0."""

    def __init__(self, dim: int, width: int, conv: bool) -> None:
        super().__init__()
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.down, self.up = layer(dim, width), layer(width, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


def _key(state: dict[str, Any]) -> str | None:
    """The state's main tensor: a transformer's ``hidden`` [batch, tokens, dim] or a conv net's ``x`` [b, c, h, w]."""
    if isinstance(state.get("hidden"), torch.Tensor) and state["hidden"].ndim == 3:
        return "hidden"
    if isinstance(state.get("x"), torch.Tensor) and state["x"].ndim == 4:
        return "x"
    return None


def _apply(block: nn.Module, args: Any, state: dict[str, Any]) -> dict[str, Any] | None:
    """Forward hook of an adapted block: its output through the block's bottleneck (unchanged without one: a bank's
    other member is active)."""
    adapter = getattr(block, NAME, None)
    if adapter is None:
        return None
    key = _key(state)
    return {**state, key: adapter(state[key])}


def _example(backbone: Any) -> dict[str, Any]:
    if backbone.modality == "text":
        return backbone.preprocess(["a short example text"])
    return backbone.preprocess([np.zeros((64, 64, 3), dtype=np.uint8)])


@register_strategy
@dataclass
class BottleneckAdapter(NamedTensors):
    name = "adapter"
    order = 64
    summary = "bottleneck adapters after every block (Houlsby / Pfeiffer), from the probe's head"
    prefix = NAME
    trains: ClassVar[str] = "injected"
    adds = NAME
    default_lr = 1e-3
    reduction: int = option(16, "the bottleneck has dim / reduction features", low=1)

    def configure(self, model: AdaptedModel) -> None:
        backbone = model.backbone
        if any(hasattr(block, NAME) for block in backbone.blocks):
            return  # configured already (a second fit on the same model, or loading)
        device = next(backbone.parameters()).device
        state = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in _example(backbone).items()}
        training = backbone.training
        backbone.eval()  # measuring the sizes must not move BatchNorm's statistics (nor draw dropout)
        with torch.no_grad():
            for i, block in enumerate(backbone.blocks):
                state = block(state)
                if i == 0:
                    continue  # the embeddings or the stem: the input side, left as it is
                key = _key(state)
                if key is None:
                    raise HeadstartError(f"adapter needs each block of {backbone.name} to output token states or "
                                         "feature maps; use lora or bitfit on it.")
                dim = state[key].shape[-1] if key == "hidden" else state[key].shape[1]
                adapter = Bottleneck(dim, max(1, dim // self.reduction), conv=key == "x").to(device)
                block.add_module(NAME, adapter)
                hook_once(block, _apply)
        backbone.train(training)
