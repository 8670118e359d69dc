"""What the training loop minimises, and over which batches: the one hook every training stage plugs into.

The loop owns the rest (optimiser, schedule, clipping, precision, validation, early stopping,
callbacks, interrupts, the NaN policy); an ``Objective`` says only

- ``steps(n, batch_size, generator)``: the index lists of one epoch (default: a shuffled partition);
- ``loss(model, batch, boundary)``: the data term of one step (default: cross-entropy of the head);
- ``penalty(model)``: a term on the weights added every step (L2-SP, EWC; default: none);
- ``bind(ctx)``: the stage's fit context, before ``prepare`` (its extra sources, such as unlabelled target
  examples drawn with ``ctx.draw``; a generator of its own); kept as ``self.ctx``;
- ``prepare(model, train, boundary, device)``: called once before the first step, to snapshot the
  starting weights, precompute a frozen teacher's outputs on the training items, estimate per-example
  weights (importance weighting) or open a second batch stream that ``loss`` then draws from;
- ``validates``: False for an objective with nothing held out (contrastive training sees the
  validation labels too): the loop then records training loss only and never early-stops.

``Batch.index`` are positions in the training source, so per-example side information computed in
``prepare`` (a teacher's logits) lines up with the batch. ``Batch.features`` runs the forward pass once
per step, shared by the data term and every term of ``terms/`` (CORAL aligns these same features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..backbones import State
from .model import AdaptedModel

if TYPE_CHECKING:
    from .loop import BatchSource

__all__ = ["Batch", "CrossEntropy", "Objective"]


@dataclass
class Batch:
    index: list[int]  # positions in the training source
    state: State  # model-ready inputs (on the device)
    labels: Tensor  # on the device
    _features: Tensor | None = field(default=None, repr=False)

    def features(self, model: AdaptedModel, boundary: int) -> Tensor:
        """The pooled features of this batch, computed once per step."""
        if self._features is None:
            self._features = model.features(self.state, boundary)
        return self._features


class Objective:
    """Cross-entropy of the head's logits over shuffled mini-batches; subclass and override what differs."""

    validates: bool = True

    def steps(self, n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return [i.tolist() for i in torch.randperm(n, generator=generator).split(batch_size)]

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        return math.ceil(n / batch_size)

    ctx = None  # the stage's FitContext, once bound

    def bind(self, ctx) -> None:
        """The stage's fit context (``FitContext``), before ``prepare``."""
        self.ctx = ctx

    def prepare(self, model: AdaptedModel, train: BatchSource, boundary: int,  # noqa: B027 (optional hook)
              device: torch.device) -> None:
        """Once, before the first step."""

    def loss(self, model: AdaptedModel, batch: Batch, boundary: int) -> Tensor:
        # the features are the batch's own (shared with the terms); a data-parallel wrapper runs its forward
        shared = isinstance(model, AdaptedModel)
        logits = model.head(batch.features(model, boundary)) if shared else model(batch.state, boundary)
        return nn.functional.cross_entropy(logits.float(), batch.labels)

    def penalty(self, model: AdaptedModel) -> Tensor | None:
        return None

    def describe(self) -> str:
        return "cross-entropy"


class CrossEntropy(Objective):
    """The default objective, by name."""
