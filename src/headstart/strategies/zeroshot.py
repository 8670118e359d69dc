"""``zero-shot``: no training; each class is the embedding of its name in a few prompts, and an example goes to the
class whose embedding it is most similar to (cosine).

Text: the backbone embeds the prompts itself ("This text is about {}."), in the space of its own features.
Images: the backbone must embed text in the space of its image features, which a CLIP checkpoint does
(``hf:openai/clip-vit-base-patch32``: its text tower and projection); any other image model is refused in one
sentence. The head's rows are the normalised mean prompt embedding of each class, so a linear head over
features gives ``‖f‖·cos(f, class)``: the same ranking as cosine. Its scale (the softmax temperature) is the
encoder's own (CLIP's ``logit_scale``; 20 for a sentence encoder) over the mean feature norm of the
training inputs, their labels unused: nothing labelled is learned, so the validation accuracy it reports is
an honest held-out estimate. ``descriptions`` (``--class-descriptions FILE``) gives a class prompts in the
user's words instead ("fresh" says little; "a positive movie review" says what it means). Class names that
are codes (``0``, ``LABEL_3``) without descriptions are refused rather than compared with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..declare import option
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy

__all__ = ["TEMPLATES", "ZeroShot", "check_templates", "clean_descriptions", "prompt_embeddings", "prompts_for"]

TEMPLATES = {"text": ("{}.", "This text is about {}."),
             "image": ("a photo of a {}.", "a photo of the {}.", "an image of a {}.")}
_CODE = re.compile(r"(label|class)?[\s_-]*\d+", re.IGNORECASE)


def prompts_for(classes: tuple[str, ...], templates: tuple[str, ...],
                descriptions: dict[str, tuple[str, ...]] | None = None, owner: str = "zero-shot") -> list[list[str]]:
    """Per class, its prompts: its own descriptions when given (``{}`` in one is its name), else the templates
    around its name. Codes without descriptions, and descriptions of classes the data lack, are refused."""
    descriptions = descriptions or {}
    unknown = sorted(set(descriptions) - {str(c) for c in classes})
    if unknown:
        raise HeadstartError(f"The class descriptions name {unknown[0]!r}, which is not one of the classes "
                             f"({', '.join(map(str, classes))}); spell each class as the labels do.")
    codes = [str(c) for c in classes if _CODE.fullmatch(str(c).strip()) and str(c) not in descriptions]
    if classes and len(codes) == len(classes) or (codes and descriptions):
        raise HeadstartError(f"{owner} compares examples with their class names, but {', '.join(codes[:4])} "
                             f"{'is a code' if len(codes) == 1 else 'are codes'}; describe each class in words "
                             "(--class-descriptions FILE: 'positive: a glowing review'), give the labels as words, "
                             "or use a strategy that learns from labelled examples (probe).")
    out = []
    for c in classes:
        name = str(c).replace("_", " ").strip()
        own = descriptions.get(str(c))
        out.append([d.replace("{}", name) for d in own] if own else [t.format(name) for t in templates])
    return out


def clean_descriptions(value: Any, owner: str) -> dict[str, tuple[str, ...]] | None:
    """A ``descriptions`` option (class name -> one text or several) as name -> non-empty texts; one sentence
    naming ``owner`` (the strategy) for anything else."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise HeadstartError(f"The 'descriptions' option of {owner} maps each class name to its descriptions "
                             "(e.g. {'positive': ['a glowing review']}).")
    clean = {}
    for name, texts in value.items():
        texts = (texts,) if isinstance(texts, str) else texts
        if not isinstance(texts, (list, tuple)) or not texts or not all(
                isinstance(t, str) and t.strip() for t in texts):
            raise HeadstartError(f"The 'descriptions' option of {owner} gives class {name!r} no text; give each class "
                                 "one or more non-empty descriptions.")
        clean[str(name)] = tuple(t.strip() for t in texts)
    return clean


def check_templates(templates: tuple[str, ...], owner: str) -> tuple[str, ...]:
    """Each template holds ``{}`` once (where the class name goes)."""
    templates = tuple(str(t) for t in templates)
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise HeadstartError(f"The {owner} template {bad[0]!r} must hold {{}} once, where the class name goes "
                             "(e.g. 'a photo of a {}.').")
    return templates


def prompt_embeddings(backbone: Any, per_class: list[list[str]]) -> torch.Tensor:
    """One unit-length row per class (``per_class``: its prompts, ``prompts_for``): the mean of its prompts'
    normalised embeddings, normalised."""
    flat = [p for prompts in per_class for p in prompts]
    emb = torch.nn.functional.normalize(backbone.embed_prompts(flat).float(), dim=-1)
    rows, start = [], 0
    for prompts in per_class:
        rows.append(emb[start:start + len(prompts)].mean(0))
        start += len(prompts)
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


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
    descriptions: dict[str, tuple[str, ...]] | None = option(
        None, "per class name, texts that describe it, used as its prompts instead of the templates "
        "(--class-descriptions FILE)", neutral=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.templates = check_templates(self.templates, self.name)
        self.descriptions = clean_descriptions(self.descriptions, self.name)

    @property
    def uses_descriptions(self) -> bool:
        return True

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({})

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, seed: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Any]:
        backbone = model.backbone
        templates = self.templates or TEMPLATES[backbone.modality]
        prompts = prompts_for(classes, templates, self.descriptions)
        rows = prompt_embeddings(backbone, prompts)
        # features are not unit length: the training inputs' mean norm (their labels unused) sets the temperature;
        # with no training inputs, unit length is assumed (the ranking, so every prediction, is the same either way)
        norm = float(x_train.norm(dim=-1).mean().clamp(min=1e-6)) if len(x_train) else 1.0
        scale = float(backbone.zero_shot_scale) / norm
        with torch.no_grad():
            model.head.weight.copy_((rows * scale).to(model.head.weight))
            model.head.bias.zero_()
        how = (f"{len(self.descriptions)} described in the user's words, the rest" if self.descriptions
               else f"{len(classes)} classes")
        out: dict[str, Any] = {"val_loss": None, "val_acc": None,
                               "note": f"no training: {how} × {len(templates)} prompts, e.g. {prompts[0][0]!r}"}
        # no label is learned from, so every labelled example is held out: the validation ones, else the training ones
        x_eval, y_eval = (x_val, y_val) if len(x_val) else (x_train, y_train)
        if len(x_eval):
            with torch.no_grad():
                logits = model.head(x_eval.to(model.head.weight))
                target = torch.as_tensor(y_eval, dtype=torch.long)
            out["val_loss"] = float(torch.nn.functional.cross_entropy(logits, target))
            out["val_acc"] = float((logits.argmax(1) == target).float().mean())
        return out
