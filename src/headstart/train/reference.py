"""What the model computed before a stage moved it, as logits over pooled features: what ``ewc`` and ``lwf`` keep.

A guard against forgetting needs an *output* of the starting model to protect (EWC's Fisher is the
curvature of its log-likelihood, LwF distils its predictions). Which output, in order:

1. **the previous task's head**, when the model continues from an earlier fit (continual learning:
   ``warm_start``, ``headstart fit --from``): the head rows of the classes it had learned, frozen as they
   were when this fit began;
2. **the pretraining classifier**, where the backbone ships one (MobileNetV2's and EfficientNet-Lite's
   ImageNet-1k heads, ``Backbone.source_head``): the pretrained network's own predictions on the user's inputs;
3. otherwise (a sentence encoder, a headless image encoder), **the similarity structure** of its
   features: each example's softmax over its cosine similarities to the other examples of the batch,
   at scale 20 (the in-batch softmax sentence-transformers' ``MultipleNegativesRankingLoss`` trains
   such encoders with, at its default scale). It is a proper predictive distribution over "which other
   example is most like this one", so its Fisher and its distillation are defined exactly as for a
   classifier, and keeping it keeps what an embedding model is used for: which inputs it finds alike.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["SIMILARITY_SCALE", "Reference", "frozen_copy", "reference_for"]

SIMILARITY_SCALE = 20.0
_MASKED = -1e4  # an example's similarity to itself: out of its own softmax (finite, so KL stays finite)


def frozen_copy(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """A copy that never trains and never joins the model's tree (not moved by ``.to``, not saved)."""
    out = copy.deepcopy(module).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out.to(device) if device is not None else out


@dataclass
class Reference:
    """Logits of the starting model's output over pooled features: its frozen heads', or in-batch similarities."""

    kind: str  # "previous", "source" or "similarity"
    what: str  # for notes: "the previous task's head (5 classes)"
    heads: list[nn.Module] = field(default_factory=list)

    def logits(self, features: Tensor) -> Tensor:
        """``[batch, K]``: the heads' logits side by side, or each example's scaled cosine to the others
        (``[batch, batch]``, itself masked out)."""
        features = features.float()
        if self.heads:
            return torch.cat([head(features) for head in self.heads], dim=1)
        unit = nn.functional.normalize(features, dim=-1)
        eye = torch.eye(len(unit), dtype=torch.bool, device=unit.device)
        return (SIMILARITY_SCALE * unit @ unit.T).masked_fill(eye, _MASKED)

    def usable(self, batch_size: int) -> bool:
        """A similarity needs another example in the batch to be a distribution."""
        return bool(self.heads) or batch_size >= 2


def reference_for(model, previous: list[nn.Module] | None, device: torch.device) -> Reference:
    """The output a guard keeps for ``model`` (an ``AdaptedModel`` at the start of a stage); ``previous``: frozen
    heads of the task(s) it learned before this fit (continual learning), None for a fit from the pretrained body."""
    if previous:
        n = sum(h.out_features for h in previous)
        return Reference("previous", f"the previous task's head ({n} classes)", [h.to(device) for h in previous])
    source = model.backbone.source_head()
    if source is not None:
        return Reference("source", f"{model.backbone.name}'s pretraining classifier ({source.out_features} classes)",
                         [frozen_copy(source, device)])
    return Reference("similarity", "the similarity structure of its features (in-batch softmax, scale "
                     f"{SIMILARITY_SCALE:g})")
