"""``dann``: domain-adversarial training (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

A domain discriminator (its parameters owned by the term: they join the optimiser as the group
``term.dann``) learns to tell the pooled features of a labelled source batch from those of as many
unlabelled target examples (the fit context's ``target`` source); the features reach it through a
gradient-reversal layer, so the same step that trains the discriminator pushes the body towards
features it cannot tell apart. ``value`` is the discriminator's binary cross-entropy, averaged over the
two domains. The reversal's coefficient rises from 0 to 1 as ``2 / (1 + exp(−10 p)) − 1`` over the
stage's progress ``p`` (the paper's schedule, TLlib's ``WarmStartGradientReverseLayer``), so the
discriminator's early, uninformed gradients do not disturb the body.

The discriminator is TLlib's ``DomainDiscriminator`` made small for a few hundred examples on a CPU
(two hidden layers of 256 without BatchNorm, which a 16-example batch of one domain would skew). The
strategy ``dann`` registered here is ``full`` plus the term; its source-only baseline is ``full``.

The discriminator trains at a new head's rate (``Term.modules_lr``: 1e-3, as TLlib trains it beside its new
classifier at ten times the backbone's rate), not the fitted body's: at ``full``'s 5e-5 on a conv net it barely
learned in a run, its loss stayed at log 2 on domains a linear probe separates completely, and its reversed gradient
was noise to the body.

The target batch runs through a conv net's BatchNorm at the statistics the model predicts with
(``target_features``). TLlib instead concatenates source and target into one batch, so BatchNorm sees
both domains at once; either way the target's features in training are the ones it is predicted from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..declare import option
from ..strategies.finetune import adaptation_strategy
from .base import Term, register_term, target_features


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient times ``−coeff`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def reverse_gradient(x: Tensor, coeff: float) -> Tensor:
    return _Reverse.apply(x, coeff)


def reversal_coefficient(progress: float) -> float:
    """Ganin et al.'s schedule: 0 at the start, about 1 by the end."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(1.0, max(0.0, progress)))) - 1.0


@register_term
@dataclass
class DANN(Term):
    name = "dann"
    kind = "adaptation"
    source = "target"
    summary = "a domain discriminator through gradient reversal: features it cannot tell apart (DANN)"
    default_weight = 1.0
    # 2: the target batch through BatchNorm at the predicting statistics, not its own; 3: the discriminator at a new
    # head's rate (``Term.modules_lr``), not the body's
    behaviour_version = 3
    hidden: int = option(256, "units in each of the discriminator's two hidden layers", low=1)

    def prepare(self, ctx) -> None:
        dim = ctx.model.backbone.feature_dim
        generator = ctx.generator(self.name)  # its initial weights: seeded, never moving the run's other draws
        self.discriminator = nn.Sequential(nn.Linear(dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                                           nn.ReLU(), nn.Linear(self.hidden, 1))
        with torch.no_grad():
            for layer in self.discriminator:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
                    layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 * bound - bound)
        self.discriminator.to(ctx.device)
        self.steps = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator}

    def value(self, model, batch, ctx) -> Tensor:
        source = batch.features(model, ctx.boundary).float()
        target = target_features(model, ctx, max(1, len(batch.index)))
        coeff = reversal_coefficient(self.steps / max(1, ctx.total_steps))
        self.steps += 1
        logits = self.discriminator(reverse_gradient(torch.cat([source, target]), coeff))[:, 0]
        domains = torch.cat([torch.ones(len(source)), torch.zeros(len(target))]).to(logits.device)
        weights = torch.cat([torch.full((len(source),), 0.5 / len(source)),
                             torch.full((len(target),), 0.5 / len(target))]).to(logits.device)
        return (nn.functional.binary_cross_entropy_with_logits(logits, domains, reduction="none") * weights).sum()


adaptation_strategy("dann", order=71, summary="full fine-tune plus a domain discriminator through gradient reversal "
                                             "(DANN; source-only baseline: full)")
