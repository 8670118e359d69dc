"""``FitContext``: what every hook of a training stage sees (strategies' terms, callbacks).

The runner builds one per stage: the model and its boundary (where its forward pass starts), the
resolved config, the device, the training and validation sources, named extra sources (unlabelled
target examples for domain adaptation, an earlier task's examples, a replay buffer) and the class
names. ``generator(name)`` gives a term a seeded generator of its own; ``draw(name, n)`` the next
``n`` items of an extra source as a model-ready state, cycling through a seeded permutation of its
own, so neither moves the training batches' order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import HeadstartError

if TYPE_CHECKING:
    from ..backbones import Backbone, State
    from .config import TrainConfig
    from .loop import BatchSource
    from .model import AdaptedModel

__all__ = ["FitContext"]


@dataclass
class FitContext:
    model: AdaptedModel
    cfg: TrainConfig
    device: torch.device
    boundary: int  # where the forward pass starts: 0 for raw inputs, a block boundary for cached states
    train: BatchSource
    val: BatchSource | None
    stage: str
    classes: tuple[str, ...] = ()
    sources: dict[str, BatchSource] = field(default_factory=dict)
    #: frozen heads of the task(s) the model learned before this fit (continual learning), empty for a fit from the
    #: pretrained body: what a guard against forgetting keeps (``train/reference.py``)
    previous: list[torch.nn.Module] = field(default_factory=list)
    #: optimiser steps the stage plans (set by the loop once it has planned its epochs): a term's schedule (DANN's
    #: gradient-reversal coefficient) reads its progress against it
    total_steps: int = 0
    _cursors: dict[str, _Cursor] = field(default_factory=dict, repr=False)

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    def source(self, name: str) -> BatchSource:
        if name not in self.sources:
            raise HeadstartError(f"{self.stage} needs the {name!r} examples, which this fit was not given"
                                 + (" (--target FILE, or Adapter.fit(..., target=...))." if name == "target" else "."))
        return self.sources[name]

    def generator(self, name: str) -> torch.Generator:
        """A generator of ``name``'s own (a term's random draws: a dropout mask, sampled pairs), seeded by the run's
        seed and the name, so a term's randomness is reproducible and never moves the training batches' order."""
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + zlib.crc32(name.encode()))

    def draw(self, name: str, n: int) -> State:
        """The next ``n`` items of source ``name`` (wrapping around, reshuffled each pass), on the device."""
        src = self.source(name)
        cursor = self._cursors.setdefault(name, _Cursor(np.random.default_rng([self.cfg.seed, len(src)])))
        state, _ = src.batch(cursor.take(min(n, len(src)), len(src)))
        return {k: v.to(self.device, non_blocking=True) for k, v in state.items()}


class _Cursor:
    """Where a source's draws are: a permutation per pass, from the source's own generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.order, self.at = rng, np.empty(0, dtype=np.int64), 0

    def take(self, n: int, size: int) -> list[int]:
        index: list[int] = []
        while len(index) < n:
            if self.at >= len(self.order):
                self.order, self.at = self.rng.permutation(size), 0
            step = min(n - len(index), len(self.order) - self.at)
            index += self.order[self.at:self.at + step].tolist()
            self.at += step
        return index
