"""Fine-tuning strategies that differ only in which blocks train and at what rate: partial, full, lldr."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import HeadstartError
from ..train.model import ParamPlan
from .base import Strategy, register_strategy


@register_strategy
@dataclass
class Partial(Strategy):
    """Only the top ``k`` blocks and the head train; the frozen bottom is cached when not augmenting."""

    name = "partial"
    summary = "top-k blocks and the head train; the frozen bottom runs once"
    shorthand = "k"
    default_lr = 1e-4
    k: int = field(default=2, metadata={"help": "how many of the top blocks train"})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise HeadstartError(f"The 'k' parameter of partial must be a positive integer. Got {self.k!r} instead.")

    def plan(self, n_blocks: int) -> ParamPlan:
        if self.k > n_blocks:
            raise HeadstartError(f"partial:{self.k} asks for more blocks than the backbone has ({n_blocks}); "
                                 f"use k <= {n_blocks}, or 'full'.")
        return ParamPlan({i: 1.0 for i in range(n_blocks - self.k, n_blocks)})


@register_strategy
@dataclass
class Full(Strategy):
    """Everything trains at a small learning rate (1/20 of scratch's) after a warm-up; the head faster."""

    name = "full"
    summary = "every block trains at a small LR with warm-up"
    default_lr = 5e-5

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: 1.0 for i in range(n_blocks)})


@register_strategy
@dataclass
class LLDR(Strategy):
    """Layer-wise LR decay: the head at ``lr``, the top block at ``lr·decay``, the one below at ``lr·decay²``..."""

    name = "lldr"
    summary = "layer-wise (discriminative) LR decay from the head down"
    default_lr = 5e-4
    default_head_lr = None  # the head trains at the base rate
    decay: float = field(default=0.7, metadata={"help": "each block's rate is the one above times this"})

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise HeadstartError(f"The 'decay' parameter of lldr must be in (0, 1]. Got {self.decay!r} instead.")

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({i: self.decay ** (n_blocks - i) for i in range(n_blocks)})
