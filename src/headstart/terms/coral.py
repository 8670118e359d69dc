"""``coral``: Deep CORAL (Sun & Saenko, 2016): align the second-order statistics of source and target features.

``value = ||C_s − C_t||²_F / (4 d²)`` between the covariance matrices of the pooled features of each
training batch (labelled, source domain) and of as many unlabelled target examples drawn from the fit
context's ``target`` source. A domain-adaptation term: any fine-tune takes it as ``adapt=coral``, and
the strategy ``coral`` registered here is ``full`` plus the term, so its source-only baseline is
``full`` on the same draws. The features of the source batch are the ones the data term used
(computed once per step); the target batch runs the same trainable top (cached bottom included), its BatchNorm
layers (conv nets) at the statistics the model predicts with (``target_features``), so the target features aligned
in training are the ones it predicts from.

The default weight is 1, the paper's choice for its (AlexNet) features; SKADA's and TLlib's CORAL
losses compute the same quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..strategies.finetune import adaptation_strategy
from .base import Term, register_term, target_features


def coral_distance(source: Tensor, target: Tensor) -> Tensor:
    """``||C_s − C_t||²_F / (4 d²)`` of two feature batches ``[n, d]`` (unbiased covariances)."""
    d = source.shape[1]

    def cov(x: Tensor) -> Tensor:
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / max(1, x.shape[0] - 1)
    return ((cov(source) - cov(target)) ** 2).sum() / (4 * d * d)


@register_term
@dataclass
class Coral(Term):
    name = "coral"
    kind = "adaptation"
    source = "target"
    summary = "align the covariance of source and target features (Deep CORAL)"
    default_weight = 1.0
    behaviour_version = 2  # 2: the target batch through BatchNorm at the predicting statistics, not its own

    def value(self, model, batch, ctx) -> Tensor:
        source = batch.features(model, ctx.boundary).float()
        target = target_features(model, ctx, max(2, len(batch.index)))
        if source.shape[0] < 2:
            return torch.zeros((), device=source.device)
        return coral_distance(source, target)


adaptation_strategy("coral", order=70,
                    summary="full fine-tune plus Deep CORAL on unlabelled target examples (source-only baseline: full)")
