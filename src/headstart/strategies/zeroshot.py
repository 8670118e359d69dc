"""``zero-shot``: no training; each class is the embedding of its name in a few prompts, and an example goes to the
class whose embedding it is most similar to (cosine).

Text: the backbone embeds the prompts itself ("This text is about {}."), in the space of its own features.
Images: the backbone must embed text in the space of its image features, which a CLIP checkpoint does
(``hf:openai/clip-vit-base-patch32``: its text tower and projection); any other image model is refused in one
sentence. The head's rows are the normalised mean prompt embedding of each class, so a linear head over
features gives ``‖f‖·cos(f, class)``: the same ranking as cosine. Its scale (the softmax temperature) is the
encoder's own (CLIP's ``logit_scale``; 20 for a sentence encoder) over the mean feature norm of the
training inputs, their labels unused: nothing labelled is learned, so the validation accuracy it reports is
an honest held-out estimate. Class names that are codes (``0``, ``LABEL_3``) are refused rather than
compared with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy

__all__ = ["ZeroShot", "prompt_embeddings"]

TEMPLATES = {"text": ("{}.", "This text is about {}."),
             "image": ("a photo of a {}.", "a photo of the {}.", "an image of a {}.")}
_CODE = re.compile(r"(label|class)?[\s_-]*\d+", re.IGNORECASE)


def prompt_embeddings(backbone: Any, classes: tuple[str, ...], templates: tuple[str, ...]) -> torch.Tensor:
    """One unit-length row per class: the mean of its prompts' normalised embeddings, normalised."""
    codes = [c for c in classes if _CODE.fullmatch(str(c).strip())]
    if classes and len(codes) == len(classes):
        raise HeadstartError(f"zero-shot compares examples with their class names, but these classes are codes "
                             f"({', '.join(map(str, classes[:4]))}); give the labels as words (e.g. 'positive', "
                             "'negative'), or use a strategy that learns from labelled examples (probe).")
    names = [str(c).replace("_", " ").strip() for c in classes]
    prompts = [t.format(n) for n in names for t in templates]
    emb = torch.nn.functional.normalize(backbone.embed_prompts(prompts).float(), dim=-1)
    per_class = emb.view(len(names), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(per_class, dim=-1)


@register_strategy
@dataclass
class ZeroShot(Strategy):
    name = "zero-shot"
    trains = "head"
    order = 15
    summary = "no training: each class is its name's embedding in prompts (text encoders; CLIP for images)"
    closed_form = True
    uses_labels = False
    default_monitor = "none"
    templates: tuple[str, ...] = field(default=(), metadata={
        "help": "prompts, each with {} for the class name and no comma (default: by modality)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.templates = tuple(str(t) for t in self.templates)
        bad = [t for t in self.templates if t.count("{}") != 1]
        if bad:
            raise HeadstartError(f"The zero-shot template {bad[0]!r} must hold {{}} once, where the class name goes "
                                 "(e.g. 'a photo of a {}.').")

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({})

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, seed: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Any]:
        backbone = model.backbone
        templates = self.templates or TEMPLATES[backbone.modality]
        rows = prompt_embeddings(backbone, classes, templates)
        # features are not unit length: the training inputs' mean norm (their labels unused) sets the temperature;
        # with no training inputs, unit length is assumed (the ranking, so every prediction, is the same either way)
        norm = float(x_train.norm(dim=-1).mean().clamp(min=1e-6)) if len(x_train) else 1.0
        scale = float(backbone.zero_shot_scale) / norm
        with torch.no_grad():
            model.head.weight.copy_((rows * scale).to(model.head.weight))
            model.head.bias.zero_()
        out: dict[str, Any] = {"val_loss": None, "val_acc": None,
                               "note": f"no training: {len(classes)} classes × {len(templates)} prompts, "
                                       f"e.g. {templates[0].format(str(classes[0]))!r}"}
        if len(x_val):
            with torch.no_grad():
                logits = model.head(x_val.to(model.head.weight))
                target = torch.as_tensor(y_val, dtype=torch.long)
            out["val_loss"] = float(torch.nn.functional.cross_entropy(logits, target))
            out["val_acc"] = float((logits.argmax(1) == target).float().mean())
        return out
