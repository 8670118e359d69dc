"""Test-time adaptation: a fitted model adjusted on unlabelled examples of the deployment domain, no label needed.

- ``bn-adapt`` (Li et al., 2016, AdaBN): every BatchNorm's running statistics recomputed over the
  target examples (a cumulative average, as ``torch.optim.swa_utils.update_bn``); nothing trains. For
  conv nets; a backbone without BatchNorm (a transformer) is refused in one sentence.
- ``tent`` (Wang et al., ICLR 2021): the normalisation layers' scale and shift trained to minimise the
  entropy of the model's predictions on target batches (BatchNorm in conv nets, after bn-adapt's
  statistics; LayerNorm in transformers), everything else frozen, dropout off. The paper adapts online
  with test-batch statistics; here it is offline over the target examples (``epochs`` passes, Adam at
  ``lr``), and BatchNorm then predicts with the target statistics bn-adapt computed, so predictions do
  not depend on which examples share a batch.

Each is a *test-time stage* (``Strategy.test_time``): the race runs it after its recipe's stages as an
entry (``bn-adapt`` and ``tent`` are ``full`` plus the stage, so their source-only baseline is
``full``), and ``Adapter.adapt(target, "tent")`` / ``headstart predict --adapt tent --target FILE`` run
it on any fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..declare import option
from ..errors import HeadstartError
from ..train.loop import BatchSource
from ..train.model import AdaptedModel, ParamPlan
from .base import Strategy, register_strategy
from .finetune import Full

__all__ = ["TEST_TIME", "BatchNormAdapt", "Tent", "batchnorm_adapt", "test_time_stage"]

_BN = nn.modules.batchnorm._BatchNorm
_NORMS = (_BN, nn.LayerNorm, nn.GroupNorm)


def _to(state, device):
    return {k: v.to(device) for k, v in state.items()}


@torch.no_grad()
def batchnorm_adapt(model: AdaptedModel, target: BatchSource, device: torch.device, batch_size: int,
                    seed: int = 0, limit: int = 2048) -> int:
    """Every BatchNorm's running statistics over (up to ``limit``) target examples, drawn at random (``seed``) and
    batched in a random order: a file sorted by class would otherwise give statistics of its first classes, batch
    by batch of one class; returns how many layers."""
    norms = [m for m in model.backbone.modules() if isinstance(m, _BN)]
    if not norms:
        raise HeadstartError(f"bn-adapt recomputes BatchNorm statistics, and {model.backbone.name} has no BatchNorm "
                             "(a transformer normalises each example on its own): use tent, which adapts its "
                             "LayerNorms.")
    training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    picked = np.random.default_rng(seed).permutation(len(target))[:limit]
    with torch.no_grad():
        for start in range(0, len(picked), batch_size):
            state, _ = target.batch(picked[start:start + batch_size].tolist())
            model.features(_to(state, device), 0)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    model.train(training)
    return len(norms)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1).mean()


@dataclass
class TestTimeStage(Strategy):
    """A stage that learns from unlabelled target examples only, after the recipe's stages (or on a fitted model)."""

    test_time: ClassVar[bool] = True
    trains = "head"  # nothing a saved model keeps apart from what its recipe trains: the stage adjusts in place
    closed_form: ClassVar[bool] = False

    def plan(self, n_blocks: int) -> ParamPlan:
        return ParamPlan({}, train_head=False)

    def stage_validates(self, monitor: str | None = None) -> bool:
        return False

    def adapt(self, model: AdaptedModel, target: BatchSource, device: torch.device, batch_size: int,
              seed: int) -> str:
        """Adjust ``model`` on ``target`` in place; returns one line for the run's notes."""
        raise NotImplementedError


@dataclass
class BatchNormStage(TestTimeStage):
    name = "bn-adapt/stage"
    summary = "BatchNorm statistics recomputed on the target examples"
    behaviour_version = 2  # 2: over a random draw of the target in random batches, not its first examples in order

    def adapt(self, model, target, device, batch_size, seed) -> str:
        n = batchnorm_adapt(model, target, device, batch_size, seed)
        return f"bn-adapt: {n} BatchNorm layers' statistics recomputed on {min(len(target), 2048)} target examples"


@dataclass
class TentStage(TestTimeStage):
    name = "tent/stage"
    summary = "normalisation scale and shift trained to minimise prediction entropy on the target examples"
    behaviour_version = 2  # 2: a conv net's BatchNorm statistics first, over a random draw of the target
    lr: float = option(1e-4, "Adam's rate for the normalisation layers' scale and shift", low=0.0, low_open=True)
    epochs: int = option(1, "passes over the target examples", low=1)

    def adapt(self, model, target, device, batch_size, seed) -> str:
        if any(isinstance(m, _BN) for m in model.backbone.modules()):
            batchnorm_adapt(model, target, device, batch_size, seed)
        params = [p for m in model.backbone.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)]
        if not params:
            raise HeadstartError(f"tent trains the normalisation layers' scale and shift, and {model.backbone.name} "
                                 "has none; use another adaptation strategy (coral, dann, iw).")
        was = {p: p.requires_grad for p in model.parameters()}
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        training = model.training
        model.eval()  # no dropout; BatchNorm predicts with the target statistics just computed
        optimizer = torch.optim.Adam(params, lr=self.lr)
        rng = np.random.default_rng(seed)
        size = max(2, batch_size)
        first = last = None
        for _ in range(self.epochs):
            order = rng.permutation(len(target))
            for start in range(0, len(order), size):
                state, _ = target.batch(order[start:start + size].tolist())
                loss = _entropy(model(_to(state, device), 0))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last = float(loss.detach())
                first = last if first is None else first
        for p, flag in was.items():
            p.requires_grad_(flag)
        model.train(training)
        return (f"tent: {sum(p.numel() for p in params):,} normalisation parameters adapted over {len(target)} target "
                f"examples ({self.epochs} pass(es), lr {self.lr:g}); prediction entropy {first:.3f} → {last:.3f}")


TEST_TIME: dict[str, type[TestTimeStage]] = {"bn-adapt": BatchNormStage, "tent": TentStage}


def test_time_stage(method: str) -> TestTimeStage:
    """The stage ``method`` names (``predict --adapt``), or one sentence listing them."""
    if method not in TEST_TIME:
        raise HeadstartError(f"Unknown test-time adaptation {method!r}; use one of {', '.join(TEST_TIME)}.")
    return TEST_TIME[method]()


@register_strategy
@dataclass
class BatchNormAdapt(Full):
    """``full``, then BatchNorm statistics recomputed on the target examples (``--target FILE``)."""

    name = "bn-adapt"
    order = 73
    summary = "full fine-tune, then BatchNorm statistics recomputed on unlabelled target examples (AdaBN)"
    modalities = ("image",)

    def stages(self) -> list[Strategy]:
        return [*super().stages(), BatchNormStage()]


@register_strategy
@dataclass
class Tent(Full):
    """``full``, then its normalisation layers adapted by entropy minimisation on the target examples."""

    name = "tent"
    order = 74
    summary = "full fine-tune, then normalisation layers adapted to minimise prediction entropy on target examples"
    tent_lr: float = option(1e-4, "Adam's rate for the normalisation layers' scale and shift", low=0.0,
                            low_open=True)
    tent_epochs: int = option(1, "passes over the target examples", low=1)

    def stages(self) -> list[Strategy]:
        return [*super().stages(), TentStage(lr=self.tent_lr, epochs=self.tent_epochs)]
