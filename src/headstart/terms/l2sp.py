"""``l2sp``: keep the weights that train near where they started (L2-SP, Li, Grandvalet & Davoine, ICML 2018).

``value = ½ Σ ||θ − θpre||²`` over every backbone parameter the stage trains, θpre snapshotted when the
stage starts (for a fine-tune: the pretrained body). The head is left to AdamW's weight decay, the
paper's ``β`` term. A guard: any fine-tune takes it as ``guard=l2sp`` (``guard_weight``).

The default weight, 1, is measured (``benchmarks/forgetting.py --weights``, BENCHMARKS.md "Forgetting"):
on MiniLM-L6 fine-tuned on rotten-tomatoes at 128 labels per class it is the largest weight whose
selection accuracy stays within noise of no guard (0.778 against 0.760), and it keeps 93.8% of the
pretrained features' accuracy on 20newsgroups where no guard keeps 71.7%; at 10 selection accuracy
falls to 0.702. TLlib's examples use 0.01 (``tllib.regularization.delta.SPRegularization``), which
kept 80.5% there. TLlib is not a dependency for one sum of squares, and its modules expect a
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
    default_weight = 1.0
    behaviour_version = 2  # the default weight went from 0.01 to 1: runs at the old default are not reused

    def prepare(self, ctx) -> None:
        # (parameter, θpre) pairs, found once: the per-step value only subtracts
        self.pairs = [(p, p.detach().clone()) for p in ctx.model.backbone.parameters() if p.requires_grad]

    def value(self, model, batch, ctx) -> Tensor:
        if not self.pairs:
            return torch.zeros((), device=ctx.device)
        return 0.5 * sum(((p - p0) ** 2).sum() for p, p0 in self.pairs)
