"""``lp-ft``: linear probe first, then a full fine-tune starting from the probed head (Kumar et al., 2022).

Starting the fine-tune with a good head keeps the early, large gradients from distorting the
pretrained features, which helps most out of distribution. The probe fits on the training labels
only (C by cross-validation within them), so the validation labels stay unseen for the fine-tune's
early stopping; the probe's solution itself (epoch 0) is an early-stopping candidate, so LP-FT
never ends worse on validation than its probe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..train.model import ParamPlan
from .base import Strategy, register_strategy
from .finetune import Full
from .probe import Probe


@dataclass
class _FineTuneStage(Full):
    """The FT stage: the head already fits, so it trains at the body's rate."""

    name = "lp-ft/ft"
    default_head_lr = None
    starts_fitted = True


@register_strategy
@dataclass
class LPFT(Strategy):
    name = "lp-ft"
    summary = "probe first (L-BFGS), then full fine-tune from the probed head"
    default_lr = Full.default_lr
    default_head_lr = None

    def stages(self) -> list[Strategy]:
        return [Probe(solver="lbfgs", selection="train"), _FineTuneStage()]

    def plan(self, n_blocks: int) -> ParamPlan:  # what finally trains: everything
        return _FineTuneStage().plan(n_blocks)
