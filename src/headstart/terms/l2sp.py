"""``l2sp``: keep the weights that train near where they started (L2-SP, Li, Grandvalet & Davoine, ICML 2018).

``value = ½ Σ ||θ − θpre||²`` over every backbone parameter the stage trains, θpre snapshotted when the
stage starts (for a fine-tune: the pretrained body). The head is left to AdamW's weight decay, the
paper's ``β`` term. A guard: any fine-tune takes it as ``guard=l2sp`` (``guard_weight``).

The default weight 0.01 is TLlib's (``tllib.regularization.delta.SPRegularization`` with its
examples' trade-off); TLlib is not a dependency for one sum of squares, and its modules expect a
``nn.Module`` pair rather than a running loop. A parameter-efficient method's injected tensors start
at zero (LoRA's B) or one (IA3), so the guard there pulls the update towards none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Term, register_term


@register_term
@dataclass
class L2SP(Term):
    name = "l2sp"
    kind = "guard"
    summary = "½·Σ‖θ − θpre‖² over the backbone's trained weights (L2-SP)"
    default_weight = 0.01

    def prepare(self, ctx) -> None:
        # (parameter, θpre) pairs, found once: the per-step value only subtracts
        self.pairs = [(p, p.detach().clone()) for p in ctx.model.backbone.parameters() if p.requires_grad]

    def value(self, model, batch, ctx) -> Tensor:
        if not self.pairs:
            return torch.zeros((), device=ctx.device)
        return 0.5 * sum(((p - p0) ** 2).sum() for p, p0 in self.pairs)
