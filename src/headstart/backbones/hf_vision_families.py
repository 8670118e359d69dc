"""How each Hugging Face image-encoder family is run block by block (``hf_vision.py`` builds the backbone).

A family names, by attribute path inside the model ``AutoModel`` loads, the modules of block 0 (``stem``),
the list of layers or stages (one block each) and the modules after the last layer (``final``, which join
the last block), and says how each is called and how the last hidden states become one feature vector:
the same computation as the model's own ``forward`` and its ``pooler_output`` (or, for ViT and DeiT, the
[CLS] state their classifiers read; for CLIP, the projected image embedding its zero-shot compares with
text). ``tests/test_hf_vision.py`` checks each family against the model's own forward.

- ViT, DeiT, DINOv2: patch embeddings, transformer layers, final LayerNorm, the [CLS] token;
- CLIP (a full checkpoint, or its vision tower alone): embeddings and the pre-LayerNorm, layers, the
  post-LayerNorm of [CLS] and, in a full checkpoint, the visual projection;
- ConvNeXt: stem, four stages, LayerNorm of the spatial mean; ResNet: stem, stages, the spatial mean;
- Swin: patch embeddings, stages (each ends by merging patches), LayerNorm, the mean over tokens; the
  patch grid's height and width travel in the state, as ``grid``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .base import State

__all__ = ["VISION_FAMILIES", "VisionFamily", "vision_family_of", "vision_types"]


def _get(model: nn.Module, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part, None)
        if model is None:
            return None
    return model


class VisionFamily:
    types: ClassVar[tuple[str, ...]] = ()
    stem: ClassVar[tuple[str, ...]] = ("embeddings",)
    layers: ClassVar[str] = "layers"
    final: ClassVar[tuple[str, ...]] = ("layernorm",)
    peft: ClassVar[str] = "vit"
    #: the learning rate that trains the architecture from a random init (transformers need ~1e-4)
    scratch_lr: ClassVar[float] = 1e-4

    def modules(self, model: nn.Module) -> tuple[dict[str, nn.Module], list[nn.Module], dict[str, nn.Module]] | None:
        """(stem, layers, final) found in ``model``, or None when a path is missing (not this family's model)."""
        stem = {p.replace(".", "_"): _get(model, p) for p in self.stem}
        layers = _get(model, self.layers)
        final = {p.replace(".", "_"): _get(model, p) for p in self.final}
        final = {k: v for k, v in final.items() if v is not None and not isinstance(v, nn.Identity)}
        if any(v is None for v in stem.values()) or not isinstance(layers, nn.ModuleList) or not len(layers):
            return None
        return stem, list(layers), final

    def feature_dim(self, model: nn.Module) -> int:
        return int(model.config.hidden_size)

    def embed(self, stem: nn.ModuleDict, pixels: Tensor) -> State:
        (module,) = stem.values()
        return {"hidden": module(pixels)}

    def layer(self, layer: nn.Module, state: State) -> State:
        return {"hidden": layer(state["hidden"], None)}  # no attention mask: every patch is real

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        return final["layernorm"](state["hidden"])[:, 0]


class ViT(VisionFamily):
    types = ("vit", "deit")


class Dinov2(VisionFamily):
    types = ("dinov2",)
    layers = "encoder.layer"


class CLIP(VisionFamily):
    types = ("clip",)
    stem = ("vision_model.embeddings", "vision_model.pre_layrnorm")
    layers = "vision_model.encoder.layers"
    final = ("vision_model.post_layernorm", "visual_projection")

    def feature_dim(self, model: nn.Module) -> int:
        return int(model.config.projection_dim)

    def embed(self, stem: nn.ModuleDict, pixels: Tensor) -> State:
        embeddings, norm = stem.values()
        return {"hidden": norm(embeddings(pixels))}

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        x = final["vision_model_post_layernorm"](state["hidden"][:, 0])
        return final["visual_projection"](x) if "visual_projection" in final else x


class CLIPVision(CLIP):
    """A CLIP vision tower saved alone (``CLIPVisionModel``): no projection, features of its hidden size."""

    types = ("clip_vision_model",)
    stem = ("embeddings", "pre_layrnorm")
    layers = "encoder.layers"
    final = ("post_layernorm",)

    def feature_dim(self, model: nn.Module) -> int:
        return int(model.config.hidden_size)

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        return final["post_layernorm"](state["hidden"][:, 0])


class ConvNext(VisionFamily):
    types = ("convnext",)
    layers = "encoder.stages"
    peft = "convnext"
    scratch_lr = 1e-3

    def feature_dim(self, model: nn.Module) -> int:
        return int(model.config.hidden_sizes[-1])

    def layer(self, layer: nn.Module, state: State) -> State:
        return {"hidden": layer(state["hidden"])}

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        return final["layernorm"](state["hidden"].mean(dim=(-2, -1)))


class ResNet(ConvNext):
    types = ("resnet",)
    stem = ("embedder",)
    final = ()
    peft = "resnet"

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        return state["hidden"].mean(dim=(-2, -1))


def _grid(height: int, width: int, hidden: Tensor) -> Tensor:
    """The patch grid's size, one row per example (a state is batch-first, so it can be cached per example)."""
    return torch.tensor([[height, width]], device=hidden.device).repeat(hidden.shape[0], 1)


class Swin(VisionFamily):
    types = ("swin",)
    layers = "encoder.layers"

    def feature_dim(self, model: nn.Module) -> int:
        return int(model.num_features)

    def embed(self, stem: nn.ModuleDict, pixels: Tensor) -> State:
        hidden, (height, width) = stem["embeddings"](pixels)
        return {"hidden": hidden, "grid": _grid(height, width, hidden)}

    def layer(self, layer: nn.Module, state: State) -> State:
        height, width = (int(v) for v in state["grid"][0])
        hidden = layer(state["hidden"], (height, width))[0]
        if layer.downsample is not None:  # patch merging halves the grid, rounding up (the encoder's own rule)
            height, width = (height + 1) // 2, (width + 1) // 2
        return {"hidden": hidden, "grid": _grid(height, width, hidden)}

    def finish(self, final: nn.ModuleDict, state: State) -> Tensor:
        return final["layernorm"](state["hidden"]).mean(dim=1)


VISION_FAMILIES: tuple[VisionFamily, ...] = (ViT(), Dinov2(), CLIP(), CLIPVision(), ConvNext(), ResNet(), Swin())


def vision_family_of(model_type: str) -> VisionFamily | None:
    return next((f for f in VISION_FAMILIES if model_type in f.types), None)


def vision_types() -> list[str]:
    return [t for f in VISION_FAMILIES for t in f.types]
