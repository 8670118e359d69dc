"""Image encoders from Hugging Face transformers, exposed block by block (the families: ``hf_vision_families.py``).

``hf:<repo id or folder>`` of a ViT, DeiT, DINOv2, CLIP, ConvNeXt, ResNet or Swin checkpoint: the model's own
image processor prepares the pixels (its PIL backend: no torchvision), block 0 is the stem (patch or
convolutional embeddings), each transformer layer or stage is one block, and the last block ends in the
family's own pooling, so ``partial:k``, ``lldr``, LoRA and the frozen-prefix cache work as they do for text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HeadstartError
from ..imaging import ImageTransform, image_inputs, to_pil
from .base import Backbone, State
from .hf_vision_families import VisionFamily, vision_family_of, vision_types

__all__ = ["HFVisionBackbone"]


class _Stem(nn.Module):
    """Block 0: pixels to the first hidden states."""

    def __init__(self, family: VisionFamily, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.stem = nn.ModuleDict(modules)
        self._family = family  # a plain attribute: not a module, not saved

    def forward(self, state: State) -> State:
        return self._family.embed(self.stem, state["pixels"])


class _Stage(nn.Module):
    """One layer or stage; the last one also runs the family's final modules and pooling (``features``)."""

    def __init__(self, family: VisionFamily, layer: nn.Module, final: dict[str, nn.Module] | None) -> None:
        super().__init__()
        self.layer = layer
        self.last = final is not None
        if final:
            self.final = nn.ModuleDict(final)
        self._family = family

    def forward(self, state: State) -> State:
        state = self._family.layer(self.layer, state)
        if self.last:
            return {"features": self._family.finish(getattr(self, "final", nn.ModuleDict()), state)}
        return state


class HFVisionBackbone(Backbone):
    """A transformers image encoder split into [stem, layer or stage 1, ..., N]; its own processor and pooling."""

    modality = "image"

    def __init__(self, model: nn.Module, processor: Any, *, name: str, pretrained: bool, source: str,
                 tokenizer: Any = None) -> None:
        super().__init__(name=name, pretrained=pretrained, source=source)
        kind = getattr(model.config, "model_type", "")
        family = vision_family_of(kind)
        if family is None:
            raise HeadstartError(f"{name}: the {kind!r} image family is not supported (headstart runs an encoder "
                                 f"block by block and knows how to for {', '.join(vision_types())}); use one of "
                                 "those.")
        found = family.modules(model)
        if found is None:
            raise HeadstartError(f"{name}: this {kind} checkpoint ({type(model).__name__}) has no "
                                 f"{', '.join(family.stem)} or {family.layers}; is it an image encoder?")
        if getattr(model.config, "_attn_implementation", None) is None:
            model.config._attn_implementation = "sdpa"
        stem, layers, final = found
        last = len(layers) - 1
        self.blocks = nn.ModuleList([_Stem(family, stem)] + [
            _Stage(family, layer, final if i == last else None) for i, layer in enumerate(layers)])
        self.processor = processor
        self.family = kind
        self.peft_family = family.peft
        self.scratch_lr = family.scratch_lr
        self.feature_dim = family.feature_dim(model)
        # CLIP's text tower, for zero-shot by class name: kept outside the module tree (never trained, never
        # counted, not in a saved adapter; it is loaded again with the checkpoint)
        object.__setattr__(self, "_clip", model if kind == "clip" else None)
        self.tokenizer = tokenizer
        if kind == "clip":
            self.zero_shot_scale = float(model.logit_scale.detach().exp())

    @torch.no_grad()
    def embed_prompts(self, texts: Sequence[str]) -> Tensor:
        """CLIP's projected text embeddings of ``texts``, the space its image features are compared in."""
        if self._clip is None:
            return super().embed_prompts(texts)
        if self.tokenizer is None:
            raise HeadstartError(f"{self.name} has no tokenizer files, so it cannot embed class prompts for zero-shot; "
                                 "use the checkpoint with its tokenizer (save_pretrained of the processor too).")
        device = next(self.parameters()).device
        text = nn.ModuleList([self._clip.text_model, self._clip.text_projection]).to(device).eval()
        out = []
        for i in range(0, len(texts), 64):
            batch = self.tokenizer(list(texts[i:i + 64]), padding=True, truncation=True, return_tensors="pt")
            pooled = text[0](input_ids=batch["input_ids"].to(device),
                             attention_mask=batch["attention_mask"].to(device)).pooler_output
            out.append(text[1](pooled).cpu())
        return torch.cat(out)

    def preprocess(self, inputs: Sequence[Any]) -> State:
        images = [to_pil(x) for x in image_inputs(inputs, self.name)]
        pixels = self.processor(images, return_tensors="pt")["pixel_values"]
        return {"pixels": pixels}

    @property
    def preprocess_id(self) -> str:
        config = self.processor.to_json_string()
        return f"hf-image|{type(self.processor).__name__}|{hashlib.sha256(config.encode()).hexdigest()[:16]}"

    def pool(self, state: State) -> Tensor:
        return state["features"]

    def block_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, len(self.blocks))]

    def small_twin(self) -> Backbone:
        """Conv-4 on images of the processor's size and normalisation (from scratch: the ``scratch-small`` baseline)."""
        from .small import conv4

        return conv4(_transform_like(self.processor), name=self.name)


def _transform_like(processor: Any) -> ImageTransform:
    """headstart's own transform at the size and normalisation of ``processor`` (the centre crop, when it crops)."""
    sizes = [getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None,
             getattr(processor, "size", None)]
    side = next((v for size in sizes if size is not None
                 for v in (size.get("height"), size.get("shortest_edge")) if v), 224)
    mean = tuple(getattr(processor, "image_mean", None) or ImageTransform.mean)
    std = tuple(getattr(processor, "image_std", None) or ImageTransform.std)
    return ImageTransform(size=int(side), mean=mean, std=std)
