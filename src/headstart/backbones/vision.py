"""Shared base for convolutional image backbones: a list of stages over a feature map, global pooling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HeadstartError
from .base import Backbone, State
from .imaging import ImageTransform, image_inputs

__all__ = ["ConvBackbone", "Stage", "load_checkpoint"]


class Stage(nn.Module):
    """Wraps a plain ``x -> x`` module as a state-to-state block."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, state: State) -> State:
        return {"x": self.module(state["x"])}


class ConvBackbone(Backbone):
    modality = "image"
    peft_family = "conv"

    def __init__(self, stages: Sequence[nn.Module], feature_dim: int, transform: ImageTransform, *,
                 name: str, pretrained: bool, source: str, source_head: nn.Linear | None = None) -> None:
        super().__init__(name=name, pretrained=pretrained, source=source)
        self.blocks = nn.ModuleList(Stage(m) for m in stages)
        self.feature_dim = feature_dim
        self.transform = transform
        # The source task's classifier (ImageNet), kept outside the module tree: never trained, never counted,
        # never saved (the packaged checkpoint holds it); ``source_logits`` and the guards (``source_head``) read it.
        object.__setattr__(self, "_source_head", source_head)

    def source_head(self) -> nn.Linear | None:
        return self._source_head

    def preprocess(self, inputs: Sequence[Any]) -> State:
        return {"x": self.transform(image_inputs(inputs, self.name))}

    @property
    def preprocess_id(self) -> str:
        return self.transform.id

    def pool(self, state: State) -> Tensor:
        return state["x"].mean(dim=(2, 3))


    def small_twin(self) -> Backbone:
        from .small import conv4

        return conv4(self.transform, name=self.name)

    @torch.no_grad()
    def source_logits(self, inputs: Sequence[Any]) -> Tensor:
        """Logits over the pretraining classes (ImageNet-1k) from the kept source classifier."""
        if self._source_head is None:
            raise HeadstartError(f"{self.name} has no source classifier (random init or a headless checkpoint).")
        return self._source_head(self.embed(inputs))


def load_checkpoint(model: nn.Module, path: str | Path, name: str) -> None:
    """Load a ``.pth``/``.pt``/``.safetensors`` state dict with strict key matching and a clear error."""
    path = Path(path)
    if not path.is_file():
        raise HeadstartError(f"{name}: checkpoint {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise HeadstartError(
            f"{name}: checkpoint {path.name} does not match the architecture "
            f"(missing {len(missing)} keys e.g. {missing[:3]}, unexpected {len(unexpected)} e.g. {unexpected[:3]})."
        )
