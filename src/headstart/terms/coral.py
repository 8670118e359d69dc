"""``coral``: Deep CORAL (Sun & Saenko, 2016): align the second-order statistics of source and target features.

``value = ||C_s − C_t||²_F / (4 d²) + ||μ_s − μ_t||² / d`` between the covariances and means of the pooled
features of each training batch (labelled, source domain) and of as many unlabelled target examples drawn from the fit
context's ``target`` source. A domain-adaptation term: any fine-tune takes it as ``adapt=coral``, and
the strategy ``coral`` registered here is ``full`` plus the term, so its source-only baseline is
``full`` on the same draws. The features of the source batch are the ones the data term used
(computed once per step); the target batch runs the same trainable top (cached bottom included), its BatchNorm
layers (conv nets) at the statistics the model predicts with (``target_features``), so the target features aligned
in training are the ones it predicts from.

The paper aligns the covariances only. TLlib's ``CorrelationAlignmentLoss`` and DomainBed's CORAL add the squared
distance between the two means (averaged over the dimensions), and so does this one: covariances alone leave the
target's features free to sit wherever their shape matches, and on digits → mnist-5k they sent every target example
to one class (0.10 on the target against source-only ``full``'s 0.30; BENCHMARKS.md, "Domain shift"). The default
weight is 1, the paper's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..strategies.finetune import adaptation_strategy
from .base import Term, register_term, target_features


def coral_distance(source: Tensor, target: Tensor) -> Tensor:
    """``||C_s − C_t||²_F / (4 d²) + ||μ_s − μ_t||² / d`` of two feature batches ``[n, d]`` (unbiased
    covariances)."""
    d = source.shape[1]

    def cov(x: Tensor) -> Tensor:
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / max(1, x.shape[0] - 1)
    return ((cov(source) - cov(target)) ** 2).sum() / (4 * d * d) + ((source.mean(0) - target.mean(0)) ** 2).mean()


@register_term
@dataclass
class Coral(Term):
    name = "coral"
    kind = "adaptation"
    source = "target"
    summary = "align the covariances and means of source and target features (Deep CORAL)"
    default_weight = 1.0
    # 2: the target batch through BatchNorm at the predicting statistics, not its own; 3: the means aligned too
    behaviour_version = 3

    def value(self, model, batch, ctx) -> Tensor:
        source = batch.features(model, ctx.boundary).float()
        target = target_features(model, ctx, max(2, len(batch.index)))
        if source.shape[0] < 2:
            return torch.zeros((), device=source.device)
        return coral_distance(source, target)


adaptation_strategy("coral", order=70,
                    summary="full fine-tune plus Deep CORAL on unlabelled target examples (source-only baseline: full)")
