"""``prototype``: nearest class mean of frozen features (cosine), the ProtoNets idea without meta-training.

Each class is the normalised mean of its examples' unit-length features (training and validation: nothing
is chosen on a held-out split), and an example goes to the class whose mean it is most similar to. The head
holds the means, so a linear head over features gives ``scale · ‖f‖/mean‖f‖ · cos(f, mean)``: the ranking of
cosine. It is built for 1 to 8 labels per class, where a fitted head has too few examples to learn from
(Snell et al., 2017, "Prototypical Networks"; at these budgets a frozen body's class means are what
few-shot learning without meta-training comes down to: Chen et al., 2019; Wang et al., 2019, "SimpleShot").

``prior="names"`` is the zero-shot → few-shot bridge: each class starts at its name's prompt embedding
(zero-shot's, from the class names or ``descriptions``) counted as ``prior_weight`` examples, and its
labelled examples move it: a class with no example is its name, one with many is its examples (with no
example at all it is zero-shot, so it also runs at a budget of 0). This needs a backbone that embeds text in
its feature space (a text encoder; CLIP for images).

The softmax scale is chosen by leave-one-out log-loss over ``SCALES``: each example is scored against the
means without it, which is exact and costs one matrix product. With a class of a single example and no
prior, leaving it out leaves its class empty: the encoder's own scale (``zero_shot_scale``) is kept. The
leave-one-out accuracy is the note's held-out estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..declare import option
from ..errors import HeadstartError
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy
from .zeroshot import TEMPLATES, check_templates, clean_descriptions, prompt_embeddings, prompts_for

__all__ = ["SCALES", "Prototype", "leave_one_out"]

#: softmax scales (cosine × scale) the leave-one-out log-loss chooses from
SCALES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def leave_one_out(units: np.ndarray, labels: np.ndarray, sums: np.ndarray) -> np.ndarray | None:
    """Cosine of every example with each class direction, its own class's without it (``sums``: per class, the
    sum of its unit features plus any prior); None when leaving some example out empties its class."""
    gram = units @ sums.T  # (n, C): u_i · s_c
    sq = (sums * sums).sum(1)  # ‖s_c‖²
    rows = np.arange(len(labels))
    own = sums[labels]
    own_sq = sq[labels] - 2 * gram[rows, labels] + (units * units).sum(1)  # ‖s_y - u_i‖²
    if (own_sq <= 1e-10 * np.maximum(sq[labels], 1)).any():
        return None
    cos = gram / np.sqrt(np.maximum(sq, 1e-20))[None, :]
    cos[rows, labels] = ((units * (own - units)).sum(1)) / np.sqrt(own_sq)
    return cos


@register_strategy
@dataclass
class Prototype(Strategy):
    name = "prototype"
    trains = "head"
    order = 18
    summary = "frozen body, nearest class mean (cosine); prior='names' starts each class at its name's embedding"
    closed_form = True
    default_monitor = "none"
    prior: str = option("none", "'none' (the examples alone) or 'names' (each class starts at its name's prompt "
                        "embedding, moved by its examples)", choices=("none", "names"))
    prior_weight: float = option(1.0, "with prior='names': how many examples the name's embedding counts as",
                                 low=0.0, low_open=True)
    templates: tuple[str, ...] = field(default=(), metadata={
        "help": "with prior='names': prompts, each with {} for the class name (default: zero-shot's, by modality)"})
    descriptions: dict[str, tuple[str, ...]] | None = option(
        None, "with prior='names': per class name, texts that describe it, used as its prompts "
        "(--class-descriptions FILE)", neutral=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.templates = check_templates(self.templates, self.name)
        self.descriptions = clean_descriptions(self.descriptions, self.name)
        if self.prior == "none" and (self.templates or self.descriptions):
            raise HeadstartError("prototype's templates and descriptions are prompts for its prior; set prior=names "
                                 "to use them, or leave them out.")

    @property
    def runs_without_labels(self) -> bool:
        """With the names' prior, no example leaves each class at its name: zero-shot, the start of its curve."""
        return self.prior == "names"

    @property
    def uses_descriptions(self) -> bool:
        return self.prior == "names"

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({})

    def solve(self, model: AdaptedModel, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
              y_val: np.ndarray, *, seed: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Any]:
        feats = torch.cat([x_train, x_val]).double()
        labels = np.concatenate([y_train, y_val]).astype(np.int64)
        n_classes = model.head.out_features
        units = torch.nn.functional.normalize(feats, dim=-1).numpy()
        sums = np.zeros((n_classes, units.shape[1]))
        np.add.at(sums, labels, units)
        counts = np.bincount(labels, minlength=n_classes)
        prior_note = ""
        if self.prior == "names":
            backbone = model.backbone
            prompts = prompts_for(classes, self.templates or TEMPLATES[backbone.modality], self.descriptions,
                                  owner="prototype's prior")
            sums += self.prior_weight * prompt_embeddings(backbone, prompts).double().numpy()
            prior_note = f", each class starting at its name's embedding (weight {self.prior_weight:g})"
        empty = [str(classes[c]) if c < len(classes) else str(c) for c in np.flatnonzero(counts == 0)]
        if empty and self.prior == "none":
            raise HeadstartError(f"prototype has no example of class {empty[0]!r} to take its mean; give each class "
                                 "at least one labelled example, or set prior=names to start it at its name.")
        scale, loss, acc = self._scale(units, labels, sums, float(model.backbone.zero_shot_scale))
        norm = float(feats.norm(dim=-1).mean().clamp(min=1e-6)) if len(feats) else 1.0  # as zero-shot's
        rows = torch.nn.functional.normalize(torch.from_numpy(sums), dim=-1)
        with torch.no_grad():
            model.head.weight.copy_((rows * scale / norm).to(model.head.weight))
            model.head.bias.zero_()
        if acc is not None:
            how = f"scale {scale:g} chosen by leave-one-out log-loss (leave-one-out accuracy {acc:.3f})"
        else:
            why = "no example to choose one on" if not len(labels) else "a class of one example: nothing to leave out"
            how = f"the encoder's scale {scale:g} ({why})"
        return {"val_loss": loss, "val_acc": acc, "scale": scale,
                "note": f"nearest class mean (cosine) of {len(labels)} examples{prior_note}; {how}"}

    @staticmethod
    def _scale(units: np.ndarray, labels: np.ndarray, sums: np.ndarray,
               fallback: float) -> tuple[float, float | None, float | None]:
        """The scale with the lowest leave-one-out log-loss, with that loss and the accuracy; the fallback
        (and no estimate) when an example cannot be left out."""
        cos = leave_one_out(units, labels, sums) if len(labels) else None
        if cos is None:
            return fallback, None, None
        rows = np.arange(len(labels))
        acc = float((cos.argmax(1) == labels).mean())
        best = None
        for s in SCALES:
            z = s * cos
            z -= z.max(1, keepdims=True)
            loss = float((np.log(np.exp(z).sum(1)) - z[rows, labels]).mean())
            if best is None or loss < best[1]:
                best = (s, loss)
        assert best is not None
        return best[0], best[1], acc
